//! The bodies of peerbook's fuzz targets, one `fn(&[u8])` each (see [`TARGETS`]).
//!
//! Each body panics when it finds a bug (a panic inside peerbook, or a broken
//! property asserted here) and returns normally otherwise. The libFuzzer binaries in
//! `fuzz_targets/` only call these; `tests/replay.rs` calls them on every file of
//! `corpus/<target>/` and `artifacts/<target>/` as a plain test.
//!
//! Every target keeps its work bounded by the input's size (libFuzzer's default
//! `-max_len` is 4096) and by small caps of its own, so no input can hang it.
//!
//! The bodies live in modules by role, all re-exported here: `records`
//! (`decode_record`, `open_sealed`, `import_json`), `file_open`, `new_peer`,
//! `ops_input` (the operations of `ops_memory_vs_file`) and `ops` (its body). This
//! file holds what they share: the target table, the key, the clock, a temp dir.

mod file_open;
mod new_peer;
mod ops;
mod ops_input;
mod records;

use std::path::Path;

use peerbook::{Durability, ManualClock, MasterKey, MemoryBackend, Options, PeerBook};

pub use file_open::{check_backend_reads, crc32c_append, file_open, fix_checksums, FileInput};
pub use new_peer::new_peer;
pub use ops::ops_memory_vs_file;
pub use ops_input::{Op, OpsInput, MAX_OPS};
pub use records::{decode_record, import_json, open_sealed};

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the directory under `corpus/` and `artifacts/`) and body.
pub const TARGETS: &[(&str, Body)] = &[
    ("decode_record", decode_record),
    ("open_sealed", open_sealed),
    ("import_json", import_json),
    ("file_open", file_open),
    ("new_peer", new_peer),
    ("ops_memory_vs_file", ops_memory_vs_file),
];

/// The fixed master key of every book the targets build (the seed corpora's exports
/// and sealed values use it too).
pub const KEY: [u8; 32] = [7; 32];

/// The time every book starts at (ms).
pub const START_MS: u64 = 1_700_000_000_000;

/// Options of a target's book: the fixed key, a manual clock at [`START_MS`].
pub fn options(clock: &ManualClock) -> Options {
    let mut o = Options::new(MasterKey::from_bytes(KEY)).with_clock(clock.clone());
    o.durability = Durability::Buffered;
    o
}

/// A fresh in-memory book with [`options`].
pub fn memory_book(clock: &ManualClock) -> PeerBook<MemoryBackend> {
    PeerBook::open(MemoryBackend::new(), options(clock)).expect("open a memory book")
}

/// A temporary directory, on tmpfs when there is one (fsync is free there).
pub fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("peerbook-fuzz")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::Builder::new()
        .prefix("peerbook-fuzz")
        .tempdir()
        .expect("create a temporary directory")
}
