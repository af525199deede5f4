//! libFuzzer entry point of `ops_memory_vs_file`; the body is `peerbook_fuzz::ops_memory_vs_file`.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerbook_fuzz::ops_memory_vs_file(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("build with cargo-fuzz: cargo xtask fuzz ops_memory_vs_file");
}
