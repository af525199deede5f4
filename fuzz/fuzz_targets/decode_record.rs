//! libFuzzer entry point of `decode_record`; the body is `peerbook_fuzz::decode_record`.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerbook_fuzz::decode_record(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("build with cargo-fuzz: cargo xtask fuzz decode_record");
}
