//! Helpers the RocksDB backend's test files share: a temporary database path,
//! small memtables, a scan collected, and a store-like workload.

// Each test file uses some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use peerbook::backend::{Backend, Durability, Space, WriteBatch};
pub use peerbook::conformance::backend::collect;
use peerbook::conformance::Rng;
use peerbook_rocksdb::RocksOptions;
use tempfile::TempDir;

pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

pub fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    (dir, path)
}

/// Memtables of 64 KiB: a few thousand writes go through flushes and compactions.
pub fn small_options() -> RocksOptions {
    let mut options = RocksOptions::default();
    options.peers_write_buffer_bytes = 64 * 1024;
    options.index_write_buffer_bytes = 64 * 1024;
    options.block_cache_bytes = 1 << 20;
    options
}

/// A store-like workload: peers updated again and again (each update deletes the
/// old index entries and writes new ones), some removed, counters in meta. The
/// same batches go to both backends.
pub fn index_workload(rng: &mut Rng, steps: usize, backends: &[&dyn Backend]) {
    const PEERS: u64 = 1500;
    let mut state: BTreeMap<Vec<u8>, (u64, u8)> = BTreeMap::new();
    for step in 0..steps {
        let mut batch = WriteBatch::new();
        for _ in 0..rng.below(4) + 1 {
            let peer = format!("peer-{:05}", rng.below(PEERS)).into_bytes();
            let old = state.get(&peer).copied();
            if let Some((seen, quality)) = old {
                batch.delete(Space::ByLastSeen, last_seen_key(seen, &peer));
                batch.delete(Space::ByQuality, index_key(&[quality], &peer));
            }
            if old.is_some() && rng.below(5) == 0 {
                batch.delete(Space::Peers, peer.clone());
                state.remove(&peer);
            } else {
                let seen = 1_700_000_000_000 + rng.below(30 * 86_400_000);
                let quality = rng.below(101) as u8;
                let len = 200 + rng.below(800) as usize;
                batch.put(Space::Peers, peer.clone(), rng.bytes(len));
                batch.put(Space::ByLastSeen, last_seen_key(seen, &peer), Vec::new());
                batch.put(Space::ByQuality, index_key(&[quality], &peer), Vec::new());
                state.insert(peer, (seen, quality));
            }
        }
        batch.put(
            Space::Meta,
            b"peer_count".to_vec(),
            (state.len() as u64).to_be_bytes().to_vec(),
        );
        let durability = if step % 10 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        for b in backends {
            b.write(batch.clone(), durability).expect("write");
        }
    }
}

/// The store's by_last_seen key (schema 4, newest first): the negated time, the
/// negated id, a 0xFF terminator.
pub fn last_seen_key(seen: u64, peer: &[u8]) -> Vec<u8> {
    let mut key = (!seen).to_be_bytes().to_vec();
    key.extend(peer.iter().map(|b| !b));
    key.push(0xFF);
    key
}

pub fn index_key(prefix: &[u8], peer: &[u8]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(peer);
    key
}
