//! The index column families do not keep a tombstone-dense memtable or SST file
//! in the candidate walks' way: a scan that steps over many deleted index
//! entries gets the memtable flushed at the next writes to it
//! (`memtable_op_scan_flush_trigger`), and the
//! flushed file, dense with deletions, is compacted away
//! (`CompactOnDeletionCollector`). Without them RocksDB keeps both until the
//! memtable fills and L0 collects four files, and every query pays the
//! tombstones (the `candidates_churn` example measured 27 us -> 7 ms at 100k).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use peerbook::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};

use super::RocksBackend;
use crate::RocksOptions;

fn property(backend: &RocksBackend, space: Space, name: &str) -> u64 {
    let cf = backend.cf(space).expect("family");
    backend
        .db
        .property_int_value_cf(cf, name)
        .expect("property")
        .expect("a known property")
}

/// Wait up to a minute for `done` (background flushes and compactions on a
/// busy 2-core machine); a condition never met fails the test.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within a minute");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_scan_over_many_deleted_index_entries_gets_them_flushed_and_compacted() {
    for space in [Space::ByLastSeen, Space::ByQuality] {
        let dir = tempfile::tempdir().unwrap();
        let backend = RocksBackend::open(dir.path(), RocksOptions::default()).unwrap();
        // a churned head: 2,000 entries put, then deleted, one live entry after
        let key = |i: u32| [&b"k"[..], &i.to_be_bytes()].concat();
        let mut batch = WriteBatch::new();
        for i in 0..2_000 {
            batch.put(space, key(i), vec![1; 16]);
        }
        backend.write(batch, Durability::Sync).unwrap();
        let mut batch = WriteBatch::new();
        for i in 0..2_000 {
            batch.delete(space, key(i));
        }
        batch.put(space, key(5_000), vec![2; 16]);
        backend.write(batch, Durability::Sync).unwrap();
        assert_eq!(
            property(&backend, space, "rocksdb.num-deletes-active-mem-table"),
            2_000,
            "{space:?}: the deletions wait in the memtable"
        );
        // a walk from the head: it steps over every tombstone to the live entry
        let mut seen = Vec::new();
        backend
            .view()
            .unwrap()
            .scan(space, KeyRange::all(), Direction::Forward, &mut |k, _| {
                seen.push(k.to_vec());
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!(seen, [key(5_000)]);
        // the scan marks the memtable; the next write to it requests the flush,
        // and the write after that schedules it
        for i in 6_000..6_002 {
            let mut batch = WriteBatch::new();
            batch.put(space, key(i), vec![3; 16]);
            backend.write(batch, Durability::Sync).unwrap();
        }
        eventually("the memtable flushed", || {
            property(&backend, space, "rocksdb.num-deletes-active-mem-table") == 0
                && property(&backend, space, "rocksdb.num-immutable-mem-table") == 0
        });
        // the flushed file holds 2,000 deletions in a row: compacted out of L0
        eventually("the tombstones compacted out of level 0", || {
            property(&backend, space, "rocksdb.num-files-at-level0") == 0
        });
    }
}
