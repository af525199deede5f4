//! Replays every seed of `corpus/<target>/` and every crash file of
//! `artifacts/<target>/` (cargo-fuzz's output, when present) through the target's
//! body, as plain tests on stable: no cargo-fuzz, no libFuzzer. `known-crashes/` is
//! not replayed (inputs of open bugs, kept for whoever fixes them).
//!
//! `cargo xtask fuzz --replay` runs this; so does `cargo xtask ci`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            // Not cargo-fuzz's bookkeeping or a merge in progress.
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !name.starts_with('.')
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    let body = peerbook_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, body)| *body)
        .expect("a known target");
    let root = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    );
    let corpus = files(&root.join("corpus").join(target));
    let artifacts = files(&root.join("artifacts").join(target));
    assert!(
        !corpus.is_empty(),
        "corpus/{target}/ has no seed: every target keeps a few"
    );
    let start = Instant::now();
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&artifacts) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string panic)".into());
            failures.push(format!("{}: {msg}", path.display()));
        }
    }
    println!(
        "{target}: replayed {} corpus and {} artifact files in {:.2}s",
        corpus.len(),
        artifacts.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{target}: {} input(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = peerbook_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "decode_record",
            "open_sealed",
            "import_json",
            "file_open",
            "new_peer",
            "ops_memory_vs_file"
        ]
    );
}

#[test]
fn decode_record() {
    replay("decode_record");
}

#[test]
fn open_sealed() {
    replay("open_sealed");
}

#[test]
fn import_json() {
    replay("import_json");
}

#[test]
fn file_open() {
    replay("file_open");
}

#[test]
fn new_peer() {
    replay("new_peer");
}

#[test]
fn ops_memory_vs_file() {
    replay("ops_memory_vs_file");
}
