//! The memory map: it grows by itself with nothing lost, stops at its cap with a
//! `Full` refusal that changes nothing, grows while other threads read, and odd
//! sizes are clamped rather than fatal.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use peerbook::backend::{Backend, BackendError, Direction, Durability, Space, WriteBatch};
use peerbook_lmdb::{LmdbBackend, LmdbOptions, MIN_MAP_SIZE};

use crate::support::{refused_unapplied, scan_all, small_map, value_for, MIB};

#[test]
fn map_grows_automatically_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let b = LmdbBackend::open(&path, small_map()).unwrap();
    let start = b.map_size().unwrap();
    assert!(start <= MIB, "opens with the small map ({start})");

    // ~8 MiB in 64 batches of 32 x 4 KiB values, spread over two spaces.
    let mut expected = BTreeMap::new();
    for round in 0u32..64 {
        let mut batch = WriteBatch::new();
        for i in 0..32 {
            let key = round * 32 + i;
            let value = value_for(key, 4096);
            batch.put(Space::Peers, key.to_be_bytes().to_vec(), value.clone());
            batch.put(Space::ByLastSeen, key.to_be_bytes().to_vec(), Vec::new());
            expected.insert(key.to_be_bytes().to_vec(), value);
        }
        let durability = if round % 2 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        b.write(batch, durability)
            .unwrap_or_else(|e| panic!("batch {round}: {e}"));
    }
    // One batch alone several times the initial map: grows more than once in one write.
    let mut big = WriteBatch::new();
    for key in 10_000u32..10_768 {
        let value = value_for(key, 4096);
        big.put(Space::Peers, key.to_be_bytes().to_vec(), value.clone());
        expected.insert(key.to_be_bytes().to_vec(), value);
    }
    b.write(big, Durability::Sync).unwrap();
    b.flush().unwrap();

    let grown = b.map_size().unwrap();
    assert!(
        grown >= 8 * MIB,
        "the map grew past the data ({start} -> {grown})"
    );
    let check = |b: &LmdbBackend| {
        let got: BTreeMap<_, _> = scan_all(b, Space::Peers, Direction::Forward)
            .into_iter()
            .collect();
        assert_eq!(got.len(), expected.len(), "every entry is there");
        assert!(got == expected, "every value is intact");
        assert_eq!(
            scan_all(b, Space::ByLastSeen, Direction::Reverse).len(),
            64 * 32
        );
    };
    check(&b);

    drop(b);
    let b = LmdbBackend::open(&path, small_map()).unwrap();
    check(&b);
    // Reopening a grown book starts with room to spare: the next write needs no growth.
    assert!(b.map_size().unwrap() >= grown, "reopened map fits the data");
    let mut batch = WriteBatch::new();
    batch.put(Space::Meta, b"after-reopen".to_vec(), b"ok".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    assert_eq!(
        b.get(Space::Meta, b"after-reopen").unwrap(),
        Some(b"ok".to_vec())
    );
}

#[test]
fn max_map_size_yields_full_and_the_failed_batch_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let options = LmdbOptions::default()
        .with_initial_map_size(MIB)
        .with_max_map_size(2 * MIB);
    let b = LmdbBackend::open(&path, options.clone()).unwrap();

    // A batch larger than the cap on its own.
    let mut huge = WriteBatch::new();
    for key in 0u32..1024 {
        huge.put(
            Space::Peers,
            key.to_be_bytes().to_vec(),
            value_for(key, 4096),
        );
    }
    match b
        .write(huge, Durability::Sync)
        .map_err(BackendError::into_inner)
    {
        Err(BackendError::Full { message, .. }) => {
            assert!(message.contains("max_map_size"), "clear message: {message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("a 4 MiB batch in a 2 MiB map: {other:?}"),
    }
    assert!(
        scan_all(&b, Space::Peers, Direction::Forward).is_empty(),
        "nothing of the failed batch was written"
    );

    // Fill up in 64 KiB batches until the cap refuses one.
    let mut written = BTreeMap::new();
    let mut failed_round = None;
    for round in 0u32..200 {
        let mut batch = WriteBatch::new();
        let mut this = Vec::new();
        for i in 0..16 {
            let key = round * 16 + i;
            let value = value_for(key, 4096);
            batch.put(Space::Peers, key.to_be_bytes().to_vec(), value.clone());
            this.push((key.to_be_bytes().to_vec(), value));
        }
        batch.put(
            Space::Meta,
            b"last-round".to_vec(),
            round.to_be_bytes().to_vec(),
        );
        match b.write(batch, Durability::Buffered) {
            Ok(()) => written.extend(this),
            Err(e) if e.is_not_applied() && matches!(e.inner(), BackendError::Full { .. }) => {
                failed_round = Some((round, this));
                break;
            }
            Err(e) => panic!("round {round}: unexpected {e}"),
        }
    }
    let (round, lost) = failed_round.expect("the cap is reached within 200 rounds");
    assert!(round > 0, "some batches fit before the cap");
    assert!(
        b.map_size().unwrap() <= 2 * MIB,
        "the map never passed its cap"
    );
    for (key, _) in &lost {
        assert_eq!(
            b.get(Space::Peers, key).unwrap(),
            None,
            "no key of the refused batch is visible"
        );
    }
    assert_eq!(
        b.get(Space::Meta, b"last-round").unwrap(),
        Some((round - 1).to_be_bytes().to_vec()),
        "the meta update of the refused batch did not happen either"
    );
    let got: BTreeMap<_, _> = scan_all(&b, Space::Peers, Direction::Forward)
        .into_iter()
        .collect();
    assert!(got == written, "every accepted batch is intact");

    // Still usable: reads, deletes that free room, flush, and a reopen.
    let mut batch = WriteBatch::new();
    for key in written.keys().take(64) {
        batch.delete(Space::Peers, key.clone());
    }
    b.write(batch, Durability::Sync)
        .expect("deleting frees room in a full map");
    b.flush().unwrap();
    let remaining = written.len() - 64;
    drop(b);
    let b = LmdbBackend::open(&path, options).unwrap();
    assert_eq!(
        scan_all(&b, Space::Peers, Direction::Forward).len(),
        remaining
    );
}

#[test]
fn concurrent_readers_while_writes_grow_the_map() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Arc::new(
        LmdbBackend::open(
            tmp.path().join("book"),
            LmdbOptions::default().with_initial_map_size(MIN_MAP_SIZE),
        )
        .unwrap(),
    );
    let start = b.map_size().unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // Each generation g rewrites keys 0..64 of `by_quality` with value g, adds 64 new
    // 1 KiB peers, and sets meta "gen" = g: one batch, so a scan sees one generation.
    let readers: Vec<_> = (0..4)
        .map(|t| {
            let b = Arc::clone(&b);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut scans = 0u64;
                let mut last_gen = 0u32;
                while !stop.load(Ordering::Relaxed) || scans < 20 {
                    let dir = if t % 2 == 0 {
                        Direction::Forward
                    } else {
                        Direction::Reverse
                    };
                    let rows = scan_all(&b, Space::ByQuality, dir);
                    if !rows.is_empty() {
                        assert_eq!(rows.len(), 64, "a scan sees whole batches");
                        let first = &rows[0].1;
                        assert!(
                            rows.iter().all(|(_, v)| v == first),
                            "a scan sees one generation"
                        );
                    }
                    if let Some(gen) = b.get(Space::Meta, b"gen").unwrap() {
                        let gen = u32::from_be_bytes(gen.try_into().unwrap());
                        assert!(gen >= last_gen, "generations never go back");
                        last_gen = gen;
                        let probe = (gen * 64).saturating_sub(1);
                        if gen > 0 {
                            let v = b
                                .get(Space::Peers, &probe.to_be_bytes())
                                .unwrap()
                                .expect("a peer of a committed generation");
                            assert_eq!(v, value_for(probe, 1024));
                        }
                    }
                    scans += 1;
                }
                scans
            })
        })
        .collect();

    for gen in 1u32..=200 {
        let mut batch = WriteBatch::new();
        for i in 0u32..64 {
            batch.put(
                Space::ByQuality,
                i.to_be_bytes().to_vec(),
                gen.to_be_bytes().to_vec(),
            );
            let peer = (gen - 1) * 64 + i;
            batch.put(
                Space::Peers,
                peer.to_be_bytes().to_vec(),
                value_for(peer, 1024),
            );
        }
        batch.put(Space::Meta, b"gen".to_vec(), gen.to_be_bytes().to_vec());
        b.write(batch, Durability::Buffered).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("a reader panicked") >= 20);
    }
    assert!(
        b.map_size().unwrap() > start,
        "the map grew while readers were reading"
    );
    assert_eq!(
        scan_all(&b, Space::Peers, Direction::Forward).len(),
        200 * 64
    );
}

#[test]
fn odd_options_are_clamped_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let options = LmdbOptions::default()
        .with_initial_map_size(0)
        .with_max_map_size(1)
        .with_max_readers(0);
    let b = LmdbBackend::open(tmp.path().join("book"), options).unwrap();
    assert!(b.map_size().unwrap() >= MIN_MAP_SIZE);
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"k".to_vec(), b"v".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    assert_eq!(b.get(Space::Peers, b"k").unwrap(), Some(b"v".to_vec()));
    // A batch over the (clamped) cap is Full, not a crash.
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"big".to_vec(), value_for(1, 1024 * 1024));
    assert!(refused_unapplied(&b.write(batch, Durability::Sync), |e| {
        matches!(e, BackendError::Full { .. })
    }));
}
