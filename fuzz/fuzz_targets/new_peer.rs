//! libFuzzer entry point of `new_peer`; the body is `peerbook_fuzz::new_peer`.
#![cfg_attr(fuzzing, no_main)]

#[cfg(fuzzing)]
libfuzzer_sys::fuzz_target!(|data: &[u8]| peerbook_fuzz::new_peer(data));

#[cfg(not(fuzzing))]
fn main() {
    eprintln!("build with cargo-fuzz: cargo xtask fuzz new_peer");
}
