//! Helpers the LMDB tests share: a whole-space scan, values that do not compress,
//! the refusal check and a small-map configuration.

use std::ops::ControlFlow;

use peerbook::backend::{Backend, BackendError, Direction, KeyRange, Space};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

pub const MIB: usize = 1 << 20;

pub fn scan_all(b: &LmdbBackend, space: Space, dir: Direction) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    b.scan(space, KeyRange::all(), dir, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .expect("scan");
    out
}

/// A value that says which key it belongs to, so a misplaced value is caught.
/// `len` bytes that depend on `key` and do not compress (the backend compresses
/// values; tests that count pages need values that keep their size).
pub fn value_for(key: u32, len: usize) -> Vec<u8> {
    let mut x = u64::from(key) ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Whether `result` is the refusal of a write that applied nothing, for `what`.
pub fn refused_unapplied(
    result: &Result<(), BackendError>,
    what: impl Fn(&BackendError) -> bool,
) -> bool {
    matches!(result, Err(e) if e.is_not_applied() && what(e.inner()))
}

pub fn small_map() -> LmdbOptions {
    LmdbOptions::default().with_initial_map_size(MIB)
}
