//! libFuzzer entry point of `file_open`; the body is `peerbook_fuzz::file_open`.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerbook_fuzz::file_open(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("build with cargo-fuzz: cargo xtask fuzz file_open");
}
