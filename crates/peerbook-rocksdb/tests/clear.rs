//! Tests of RocksBackend's clear: what it leaves in the files (no former key or
//! peer id, the MANIFEST included), readers running through it, views across it.

mod common;

use std::ops::ControlFlow;
use std::path::Path;

use common::{collect, index_key, index_workload, last_seen_key, small_options, temp_db};
use peerbook::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use peerbook::conformance::backend::count_in_view;
use peerbook::conformance::needles::{files_holding, id_forms};
use peerbook::conformance::Rng;
use peerbook_rocksdb::{RocksBackend, RocksOptions};

#[test]
fn clear_then_reopen_is_empty() {
    let (_dir, path) = temp_db();
    let rocks = RocksBackend::open(&path, small_options()).expect("open");
    let mut rng = Rng::new(42);
    index_workload(&mut rng, 1500, &[&rocks]);
    // Keys that no finite range end covers: they start with 0xff.
    let mut batch = WriteBatch::new();
    for space in Space::ALL {
        batch.put(space, vec![0xff], b"a".to_vec());
        batch.put(space, vec![0xff, 0xff, 0xff], b"b".to_vec());
        batch.put(space, vec![0xff, 0x00], b"c".to_vec());
        batch.put(space, vec![0x00], b"d".to_vec());
        // runs of 0xff up to the ranges' end and past it (point-deleted)
        for run in [8, 16, 17, 20] {
            batch.put(space, vec![0xff; run], b"e".to_vec());
            let mut key = vec![0xff; run];
            key.push(0x01);
            batch.put(space, key, b"f".to_vec());
        }
    }
    rocks.write(batch, Durability::Sync).unwrap();
    rocks.compact().expect("compact"); // part of the data in SST files, part not
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"in-memtable".to_vec(), b"x".to_vec());
    rocks.write(batch, Durability::Buffered).unwrap();

    let full = rocks.disk_usage().unwrap();
    rocks.clear(Durability::Sync).expect("clear");
    // clear flushes and compacts: the space comes back at once
    let cleared = rocks.disk_usage().unwrap();
    assert!(
        cleared < full,
        "clear reclaims the space of the old data ({full} -> {cleared})"
    );
    for space in Space::ALL {
        assert!(
            collect(&rocks, space, KeyRange::all(), Direction::Forward).is_empty(),
            "clear empties {space}"
        );
        assert_eq!(rocks.get(space, &[0xff, 0xff, 0xff]).unwrap(), None);
    }
    drop(rocks);

    let rocks = RocksBackend::open(&path, small_options()).expect("reopen");
    for space in Space::ALL {
        for dir in [Direction::Forward, Direction::Reverse] {
            assert!(
                collect(&rocks, space, KeyRange::all(), dir).is_empty(),
                "a cleared {space} is empty after reopen ({dir:?})"
            );
        }
    }
    assert_eq!(rocks.get(Space::Peers, b"peer-00001").unwrap(), None);

    // A compaction after clear has nothing left to reclaim; the backend keeps working.
    rocks.compact().expect("compact");
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"new".to_vec(), b"life".to_vec());
    rocks.write(batch, Durability::Sync).unwrap();
    assert_eq!(
        rocks.get(Space::Peers, b"new").unwrap(),
        Some(b"life".to_vec())
    );
}

/// `n` peer ids: the hex of 20 random bytes each, so no other byte sequence of
/// the files matches one by chance.
fn random_ids(rng: &mut Rng, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            rng.bytes(20)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes()
        })
        .collect()
}

/// Peer ids are not in any file once `clear` returns, nor after close and reopen:
/// not in the SST files, the write-ahead log, the `LOG`, nor the `MANIFEST`, whose
/// edits name each SST file's smallest and largest key. Nor are keys of the meta
/// column family, the last one `clear` compacts. The ids are random (hex of
/// 20 random bytes), so no other byte sequence of the files matches them by chance;
/// half of the book reaches SST files before the clear (the reopen flushes the log),
/// half is still in the memtable.
#[test]
fn clear_leaves_no_peer_id_in_any_file() {
    let (_dir, path) = temp_db();
    let mut rng = Rng::new(0x1d5_c1ea4);
    let ids = random_ids(&mut rng, 200);
    let meta_key = |id: &[u8]| [b"note-".as_slice(), id].concat();
    let mut needles = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        for (what, needle) in id_forms(id) {
            needles.push((format!("{what} of peer {i}"), needle));
        }
        needles.push((format!("meta key of peer {i}"), meta_key(id)));
    }
    let write_peers = |rocks: &RocksBackend, ids: &[Vec<u8>], rng: &mut Rng| {
        for chunk in ids.chunks(10) {
            let mut batch = WriteBatch::new();
            for id in chunk {
                let seen = 1_764_000_000_000 + rng.below(86_400_000);
                batch.put(Space::Peers, id.clone(), rng.bytes(300));
                batch.put(Space::ByLastSeen, last_seen_key(seen, id), rng.bytes(16));
                batch.put(Space::ByQuality, index_key(&[50], id), Vec::new());
            }
            batch.put(Space::Meta, b"counters".to_vec(), rng.bytes(24));
            // a Meta key as distinctive as an id: meta is the last column family
            // `clear` compacts
            batch.put(Space::Meta, meta_key(&chunk[0]), Vec::new());
            rocks.write(batch, Durability::Sync).expect("write");
        }
    };
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("open");
    write_peers(&rocks, &ids[..100], &mut rng);
    drop(rocks);
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("reopen");
    write_peers(&rocks, &ids[100..], &mut rng);
    let before = files_holding(&path, &needles);
    let files_before: std::collections::BTreeSet<_> =
        before.iter().map(|(file, _)| file.clone()).collect();
    assert!(
        files_before.iter().any(|f| f.ends_with(".sst")),
        "ids reached SST files before the clear: {files_before:?}"
    );

    rocks.clear(Durability::Sync).expect("clear");
    let after_clear = files_holding(&path, &needles);
    assert!(
        after_clear.is_empty(),
        "peer ids once clear returned: {after_clear:?}"
    );
    drop(rocks);
    let after_close = files_holding(&path, &needles);
    assert!(
        after_close.is_empty(),
        "peer ids after close: {after_close:?}"
    );
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("reopen");
    let after_reopen = files_holding(&path, &needles);
    assert!(
        after_reopen.is_empty(),
        "peer ids after reopen: {after_reopen:?}"
    );
    assert_eq!(rocks.get(Space::Peers, &ids[0]).unwrap(), None);
}

/// Readers on other threads keep reading through clears: every `get`, `scan` and
/// `view` succeeds; a get finds the value written or nothing; a view sees a
/// whole book or an empty one, never part of one (a peer and its index
/// entry go in one batch, clear is one batch); one reader keeps a view open at
/// all times (it takes the next before dropping the last); each clear finishes
/// within a minute (no deadlock with the readers).
#[test]
fn readers_run_through_clear() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    const PEERS: usize = 2000;
    let (_dir, path) = temp_db();
    let rocks = Arc::new(RocksBackend::open(&path, small_options()).expect("open"));
    let id = |n: usize| format!("peer-{n:05}").into_bytes();
    let value = |n: usize| format!("value of peer {n:05}").repeat(20).into_bytes();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (rocks, stop, reads) = (rocks.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(t);
                let mut held = rocks.view().expect("view");
                while !stop.load(Ordering::Relaxed) {
                    let n = rng.below(PEERS as u64) as usize;
                    let got = rocks.get(Space::Peers, &id(n)).expect("get");
                    assert!(got.is_none() || got == Some(value(n)), "a torn value");
                    match t {
                        0 => {
                            // a view's peers and index entries match
                            let view = rocks.view().expect("view");
                            let (peers, index) = (
                                count_in_view(&*view, Space::Peers),
                                count_in_view(&*view, Space::ByQuality),
                            );
                            assert_eq!(peers, index, "a view sees part of a batch");
                        }
                        1 => {
                            let mut n = 0usize;
                            rocks
                                .scan(
                                    Space::ByQuality,
                                    KeyRange::all(),
                                    Direction::Reverse,
                                    &mut |_, _| {
                                        n += 1;
                                        ControlFlow::Continue(())
                                    },
                                )
                                .expect("scan");
                        }
                        _ => {
                            // always one view open: the next before the last goes
                            let next = rocks.view().expect("view");
                            held.get(Space::Peers, &id(n)).expect("get in a view");
                            held = next;
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for round in 0..3 {
        for chunk in (0..PEERS).collect::<Vec<_>>().chunks(100) {
            let mut batch = WriteBatch::new();
            for &n in chunk {
                batch.put(Space::Peers, id(n), value(n));
                batch.put(Space::ByQuality, index_key(&[round], &id(n)), Vec::new());
            }
            rocks.write(batch, Durability::Sync).expect("write");
        }
        if round == 1 {
            rocks.compact().expect("compact"); // SST files, not only memtables
        }
        let before = reads.load(Ordering::Relaxed);
        let (done, finished) = mpsc::channel();
        let clearing = rocks.clone();
        std::thread::spawn(move || done.send(clearing.clear(Durability::Sync)));
        let cleared = finished
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("clear of round {round} still running after 60 s"));
        cleared.expect("clear");
        assert_eq!(rocks.get(Space::Peers, &id(0)).unwrap(), None);
        // the readers got through this clear too
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while reads.load(Ordering::Relaxed) < before + 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "the readers stopped reading"
            );
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("a reader failed");
    }
    assert!(collect(&*rocks, Space::Peers, KeyRange::all(), Direction::Forward).is_empty());
}

/// 100 peers with random hex ids, written and compacted into SST files, and
/// their ids as needles.
fn peers_in_sst_files(path: &Path, seed: u64) -> (RocksBackend, Vec<Vec<u8>>, Needles) {
    let mut rng = Rng::new(seed);
    let ids = random_ids(&mut rng, 100);
    let needles = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("id of peer {i}"), id.clone()))
        .collect();
    let rocks = RocksBackend::open(path, RocksOptions::default()).expect("open");
    let mut batch = WriteBatch::new();
    for id in &ids {
        batch.put(Space::Peers, id.clone(), rng.bytes(100));
    }
    rocks.write(batch, Durability::Sync).unwrap();
    rocks.compact().unwrap();
    (rocks, ids, needles)
}

type Needles = Vec<(String, Vec<u8>)>;

/// A view opened before the clear, on another thread, that ends while the clear
/// runs: the clear waits for it before compacting, so once it returns no id is in
/// any file (a compaction while the view lived would keep what its snapshot sees).
#[test]
fn clear_waits_for_a_view_begun_before_it() {
    let (_dir, path) = temp_db();
    let (rocks, ids, needles) = peers_in_sst_files(&path, 8);
    let opened = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let view = rocks.view().unwrap();
            opened.wait();
            // long enough for the clear to commit and reach its compaction
            std::thread::sleep(std::time::Duration::from_millis(300));
            view.get(Space::Peers, &ids[0]).unwrap()
        });
        opened.wait();
        rocks.clear(Durability::Sync).expect("clear");
        // before the reader is joined: RocksDB compacts a dropped view's entries
        // away in the background soon after, which would hide a clear that did
        // not wait
        let left = files_holding(&path, &needles);
        assert!(left.is_empty(), "ids once clear returned: {left:?}");
        assert!(
            reader.join().unwrap().is_some(),
            "the view saw the book from before the clear"
        );
    });
}

/// A plain scan (no view) in flight across the clear: its iterator pins the SST
/// files it reads, which the compaction replaces but RocksDB may delete only once
/// the scan ends. The clear waits at its end for such reads, so once it returns no
/// id is in any file.
#[test]
fn clear_waits_for_a_scan_holding_the_old_files() {
    let (_dir, path) = temp_db();
    let (rocks, _ids, needles) = peers_in_sst_files(&path, 9);
    let (started, scan_started) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let rocks = &rocks;
        let reader = scope.spawn(move || {
            let mut first = true;
            rocks
                .scan(
                    Space::Peers,
                    KeyRange::all(),
                    Direction::Forward,
                    &mut |_, _| {
                        if std::mem::take(&mut first) {
                            started.send(()).unwrap();
                            // hold the iterator, on the old files, while the clear runs
                            released.recv().unwrap();
                        }
                        ControlFlow::Continue(())
                    },
                )
                .unwrap();
        });
        scan_started.recv().unwrap();
        let releaser = scope.spawn(move || {
            // long enough for the clear to commit, compact and reach its last wait
            std::thread::sleep(std::time::Duration::from_millis(500));
            release.send(()).unwrap();
        });
        rocks.clear(Durability::Sync).expect("clear");
        let left = files_holding(&path, &needles);
        assert!(left.is_empty(), "ids once clear returned: {left:?}");
        reader.join().unwrap();
        releaser.join().unwrap();
    });
}

/// The one exception to "no former key once clear returns": a view the thread
/// calling `clear` holds itself (clear waits 5 s for it, in vain) keeps what it
/// sees, on disk too (a compaction keeps what a snapshot sees). Once the view is
/// dropped, RocksDB compacts those entries away in the background (the files
/// holding them are marked for compaction when the oldest snapshot goes), and
/// that compaction's new `MANIFEST` forgets their keys.
#[test]
fn view_across_clear_keeps_its_entries_until_dropped() {
    let (_dir, path) = temp_db();
    let (rocks, ids, needles) = peers_in_sst_files(&path, 7);
    let view = rocks.view().unwrap();
    rocks.clear(Durability::Sync).expect("clear");
    assert!(view.get(Space::Peers, &ids[0]).unwrap().is_some());
    assert!(
        !files_holding(&path, &needles).is_empty(),
        "the view's entries are on disk while it lives"
    );
    drop(view);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left = files_holding(&path, &needles);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "30 s after the view was dropped: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(rocks.get(Space::Peers, &ids[0]).unwrap(), None);
}
