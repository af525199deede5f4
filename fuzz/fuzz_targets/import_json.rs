//! libFuzzer entry point of `import_json`; the body is `peerbook_fuzz::import_json`.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerbook_fuzz::import_json(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("build with cargo-fuzz: cargo xtask fuzz import_json");
}
