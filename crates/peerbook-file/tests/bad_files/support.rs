//! Helpers the damaged-file tests share: stores with chosen batches, reading them
//! back, and the byte layout of the files (headers, frames) for damaging them.

use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use peerbook::backend::{
    Backend, BackendError, BackendExt, Direction, Dump, Durability, KeyRange, Space, WriteBatch,
};
use peerbook_file::testing::crc32c;
use peerbook_file::{FileBackend, FileOptions, RecoveryError};

/// A version-2 file header: magic, version, generation, 16-byte salt, CRC.
pub const HEADER: usize = 40;
pub const FRAME_HEADER: usize = 20;

pub fn options() -> FileOptions {
    // No automatic compaction: the tests decide where frames are.
    FileOptions::default().with_auto_compact(false)
}

pub fn open(dir: &Path) -> Result<FileBackend, BackendError> {
    FileBackend::open(dir, options())
}

pub fn put(b: &FileBackend, key: &str, value: &str, durability: Durability) {
    let mut batch = WriteBatch::new();
    batch.put(
        Space::Peers,
        key.as_bytes().to_vec(),
        value.as_bytes().to_vec(),
    );
    batch.put(Space::Meta, b"last".to_vec(), key.as_bytes().to_vec());
    b.write(batch, durability).expect("write");
}

pub fn dump(b: &FileBackend) -> Dump {
    b.dump().expect("dump")
}

pub fn keys(b: &FileBackend) -> Vec<String> {
    let mut out = Vec::new();
    b.scan(
        Space::Peers,
        KeyRange::all(),
        Direction::Forward,
        &mut |k, _| {
            out.push(String::from_utf8_lossy(k).into_owned());
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    out
}

/// A store with one batch per `(key, value, durability)` in its log, in order;
/// returns the temp dir, the store's dir and the path of the log.
pub fn store_with(batches: &[(&str, &str, Durability)]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = open(&dir).unwrap();
    for &(key, value, durability) in batches {
        put(&b, key, value, durability);
    }
    let g = b.stats().generation;
    drop(b);
    let log = dir.join(format!("log.{g}"));
    (tmp, dir, log)
}

/// A store with `n` Sync batches `k00`, `k01`, ... in its log; returns the dir and
/// the path of the log.
pub fn store_with_log(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let batches: Vec<(String, String)> = (0..n)
        .map(|i| (format!("k{i:02}"), format!("value number {i}")))
        .collect();
    let batches: Vec<(&str, &str, Durability)> = batches
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str(), Durability::Sync))
        .collect();
    store_with(&batches)
}

/// The snapshot of the generation of `log`.
pub fn snapshot_of(log: &Path) -> PathBuf {
    let name = log.file_name().unwrap().to_str().unwrap();
    log.with_file_name(name.replace("log", "snapshot"))
}

/// Write `data` to `path` with the bits of `mask` flipped in byte `at`.
pub fn write_flipped(path: &Path, data: &[u8], at: usize, mask: u8) {
    let mut bad = data.to_vec();
    bad[at] ^= mask;
    fs::write(path, &bad).unwrap();
}

/// Set the format version in the header of a file's `data`, its header CRC
/// rewritten to match.
pub fn set_version(data: &mut [u8], version: u32) {
    data[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c(&data[..36]);
    data[36..40].copy_from_slice(&crc.to_le_bytes());
}

/// Offsets of the frames of a log or snapshot file.
pub fn frame_offsets(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = HEADER;
    while off + FRAME_HEADER <= data.len() {
        out.push(off);
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        off += FRAME_HEADER + len;
    }
    assert_eq!(
        off,
        data.len(),
        "test parser: frames end at the end of the file"
    );
    out
}

/// The [`RecoveryError`] behind a `Corrupted` open (its source).
pub fn corrupted(result: Result<FileBackend, BackendError>) -> RecoveryError {
    match result {
        Err(BackendError::Corrupted {
            source: Some(source),
            ..
        }) => match source.downcast::<RecoveryError>() {
            Ok(e) => *e,
            Err(other) => panic!("Corrupted with a source that is not a RecoveryError: {other:?}"),
        },
        Err(other) => panic!("expected Corrupted, got {other:?}"),
        Ok(b) => panic!("expected Corrupted, opened with {:?}", b.recovery()),
    }
}
