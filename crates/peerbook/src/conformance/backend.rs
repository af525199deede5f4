//! Conformance tests of the [`Backend`] trait's semantics, over any engine.
//!
//! Each function panics (with a message saying which rule broke) when the backend
//! made by the [`Factory`] violates the contract of [`crate::backend`].

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{Factory, Rng};
use crate::backend::{Backend, Direction, Durability, KeyRange, ReadView, Space, WriteBatch};

fn put(b: &impl Backend, space: Space, key: &[u8], value: &[u8]) {
    let mut batch = WriteBatch::new();
    batch.put(space, key.to_vec(), value.to_vec());
    b.write(batch, Durability::Sync)
        .expect("write a single put");
}

/// Every entry of `space` in `range`, in `dir`'s order, as owned pairs: a whole
/// scan collected (it panics when the scan fails). Shared with the backends' own
/// tests.
pub fn collect(
    b: &(impl Backend + ?Sized),
    space: Space,
    range: KeyRange<'_>,
    dir: Direction,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    b.scan(space, range, dir, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .expect("scan");
    out
}

/// How many entries `view` sees in `space` (it panics when the scan fails).
/// Shared with the backends' own tests.
pub fn count_in_view(view: &(impl ReadView + ?Sized), space: Space) -> usize {
    let mut n = 0;
    view.scan(space, KeyRange::all(), Direction::Forward, &mut |_, _| {
        n += 1;
        ControlFlow::Continue(())
    })
    .expect("scan in a view");
    n
}

fn keys(b: &impl Backend, space: Space, range: KeyRange<'_>, dir: Direction) -> Vec<Vec<u8>> {
    collect(b, space, range, dir)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Point reads and writes: missing keys, overwrite, delete, empty and large values,
/// binary keys, and independence of the four spaces.
pub fn point_ops<F: Factory>(factory: &F) {
    let b = factory.create();
    assert_eq!(
        b.get(Space::Peers, b"missing").unwrap(),
        None,
        "missing key reads as None"
    );
    put(&b, Space::Peers, b"k", b"v1");
    assert_eq!(b.get(Space::Peers, b"k").unwrap(), Some(b"v1".to_vec()));
    put(&b, Space::Peers, b"k", b"v2");
    assert_eq!(
        b.get(Space::Peers, b"k").unwrap(),
        Some(b"v2".to_vec()),
        "put overwrites"
    );
    for other in [Space::ByLastSeen, Space::ByQuality, Space::Meta] {
        assert_eq!(
            b.get(other, b"k").unwrap(),
            None,
            "spaces are independent ({other})"
        );
    }
    put(&b, Space::Meta, b"k", b"meta");
    assert_eq!(
        b.get(Space::Peers, b"k").unwrap(),
        Some(b"v2".to_vec()),
        "a put in meta leaves peers alone"
    );

    put(&b, Space::ByQuality, b"empty", b"");
    assert_eq!(
        b.get(Space::ByQuality, b"empty").unwrap(),
        Some(Vec::new()),
        "empty values are stored"
    );

    let big: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    put(&b, Space::Peers, b"big", &big);
    assert_eq!(
        b.get(Space::Peers, b"big").unwrap().as_deref(),
        Some(big.as_slice()),
        "256 KiB value round-trips"
    );

    let binary = [0u8, 0xff, 0, 0x80, 1];
    put(&b, Space::ByLastSeen, &binary, b"bin");
    assert_eq!(
        b.get(Space::ByLastSeen, &binary).unwrap(),
        Some(b"bin".to_vec()),
        "binary keys"
    );
    assert_eq!(
        b.get(Space::ByLastSeen, &binary[..4]).unwrap(),
        None,
        "a key's prefix is another key"
    );

    let mut batch = WriteBatch::new();
    batch.delete(Space::Peers, b"k".to_vec());
    batch.delete(Space::Peers, b"never-existed".to_vec());
    b.write(batch, Durability::Sync)
        .expect("deleting a missing key is not an error");
    assert_eq!(b.get(Space::Peers, b"k").unwrap(), None, "delete removes");
    assert_eq!(
        b.get(Space::Meta, b"k").unwrap(),
        Some(b"meta".to_vec()),
        "delete in one space only"
    );

    b.write(WriteBatch::new(), Durability::Sync)
        .expect("an empty batch is accepted");
    b.write(WriteBatch::new(), Durability::Buffered)
        .expect("an empty buffered batch is accepted");
    b.flush().expect("flush");
    b.disk_usage().expect("disk_usage answers");
    assert!(!b.engine_name().is_empty(), "engine_name is not empty");
}

/// Scans: byte order both ways, every kind of bound, empty and inverted ranges,
/// early stop, and keys sharing prefixes.
pub fn scan_order_and_bounds<F: Factory>(factory: &F) {
    let b = factory.create();
    let mut model = BTreeMap::new();
    let raw: &[&[u8]] = &[
        b"",
        b"a",
        b"aa",
        b"ab",
        b"b",
        b"\x00",
        b"\x00\x00",
        b"\xff",
        b"\xff\xff",
        b"a\xff",
        b"m",
        b"z",
    ];
    let mut batch = WriteBatch::new();
    for (i, k) in raw.iter().enumerate().rev() {
        if k.is_empty() {
            continue; // empty keys are not used by the store
        }
        batch.put(Space::ByLastSeen, k.to_vec(), vec![i as u8]);
        model.insert(k.to_vec(), vec![i as u8]);
    }
    // noise in another space must not leak into the scan
    batch.put(Space::ByQuality, b"aa".to_vec(), b"other".to_vec());
    b.write(batch, Durability::Sync).unwrap();

    let all: Vec<_> = model.clone().into_iter().collect();
    assert_eq!(
        collect(&b, Space::ByLastSeen, KeyRange::all(), Direction::Forward),
        all,
        "forward scan is ascending byte order"
    );
    let rev: Vec<_> = all.iter().rev().cloned().collect();
    assert_eq!(
        collect(&b, Space::ByLastSeen, KeyRange::all(), Direction::Reverse),
        rev,
        "reverse scan is descending byte order"
    );

    let points: &[&[u8]] = &[
        b"",
        b"\x00",
        b"\x00\x00\x00",
        b"a",
        b"a\x00",
        b"ab",
        b"ac",
        b"b",
        b"zz",
        b"\xff",
        b"\xff\xff\xff",
    ];
    let mut bounds: Vec<Bound<&[u8]>> = vec![Bound::Unbounded];
    for p in points {
        bounds.push(Bound::Included(p));
        bounds.push(Bound::Excluded(p));
    }
    for lower in &bounds {
        for upper in &bounds {
            let range = KeyRange {
                lower: *lower,
                upper: *upper,
            };
            let expected: Vec<Vec<u8>> = model
                .keys()
                .filter(|k| range.contains(k))
                .cloned()
                .collect();
            assert_eq!(
                keys(&b, Space::ByLastSeen, range, Direction::Forward),
                expected,
                "forward scan of {range:?}"
            );
            let expected_rev: Vec<Vec<u8>> = expected.iter().rev().cloned().collect();
            assert_eq!(
                keys(&b, Space::ByLastSeen, range, Direction::Reverse),
                expected_rev,
                "reverse scan of {range:?}"
            );
        }
    }

    for dir in [Direction::Forward, Direction::Reverse] {
        for stop_after in [1usize, 3] {
            let mut seen = 0;
            b.scan(Space::ByLastSeen, KeyRange::all(), dir, &mut |_, _| {
                seen += 1;
                if seen == stop_after {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
            assert_eq!(
                seen, stop_after,
                "the scan stops when the visitor breaks ({dir:?})"
            );
        }
    }

    let empty = factory.create();
    assert!(
        keys(&empty, Space::Peers, KeyRange::all(), Direction::Forward).is_empty(),
        "an empty space scans empty"
    );
    assert!(
        keys(&empty, Space::Peers, KeyRange::all(), Direction::Reverse).is_empty(),
        "an empty space scans empty backwards"
    );
}

/// Batches: operations apply in order (the last one on a key wins), span spaces, and
/// become visible together to concurrent readers.
pub fn batch_semantics<F: Factory>(factory: &F) {
    let b = factory.create();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"x".to_vec(), b"1".to_vec());
    batch.delete(Space::Peers, b"x".to_vec());
    batch.delete(Space::Peers, b"y".to_vec());
    batch.put(Space::Peers, b"y".to_vec(), b"2".to_vec());
    batch.put(Space::Peers, b"z".to_vec(), b"a".to_vec());
    batch.put(Space::Peers, b"z".to_vec(), b"b".to_vec());
    batch.put(Space::ByLastSeen, b"i1".to_vec(), Vec::new());
    batch.put(Space::ByQuality, b"i2".to_vec(), Vec::new());
    batch.put(Space::Meta, b"count".to_vec(), b"2".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    assert_eq!(
        b.get(Space::Peers, b"x").unwrap(),
        None,
        "put then delete in one batch: absent"
    );
    assert_eq!(
        b.get(Space::Peers, b"y").unwrap(),
        Some(b"2".to_vec()),
        "delete then put in one batch: present"
    );
    assert_eq!(
        b.get(Space::Peers, b"z").unwrap(),
        Some(b"b".to_vec()),
        "the last put of a key wins"
    );
    assert_eq!(b.get(Space::ByLastSeen, b"i1").unwrap(), Some(Vec::new()));
    assert_eq!(b.get(Space::ByQuality, b"i2").unwrap(), Some(Vec::new()));
    assert_eq!(b.get(Space::Meta, b"count").unwrap(), Some(b"2".to_vec()));

    // Visibility: a reader never sees one half of a batch.
    let b = Arc::new(b);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let b = Arc::clone(&b);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Ordering::Relaxed) || checks == 0 {
                let mut pairs = Vec::new();
                b.scan(
                    Space::ByQuality,
                    KeyRange::all(),
                    Direction::Forward,
                    &mut |k, v| {
                        if k.starts_with(b"pair") {
                            pairs.push(v.to_vec());
                        }
                        ControlFlow::Continue(())
                    },
                )
                .unwrap();
                let a = b.get(Space::Peers, b"left").unwrap();
                let c = b.get(Space::Meta, b"right").unwrap();
                // A point read pair may straddle two batches; each value must at least be
                // a whole one, and the scanned pair (one snapshot where the engine has
                // them) must agree when both halves are present.
                if let (Some(a), Some(c)) = (&a, &c) {
                    assert_eq!(a.len(), 8, "a value is written whole");
                    assert_eq!(c.len(), 8, "a value is written whole");
                }
                if pairs.len() == 2 {
                    assert_eq!(pairs[0], pairs[1], "a scan never sees half of a batch");
                }
                checks += 1;
            }
            checks
        })
    };
    for i in 0u64..300 {
        let mut batch = WriteBatch::new();
        let v = i.to_be_bytes().to_vec();
        batch.put(Space::Peers, b"left".to_vec(), v.clone());
        batch.put(Space::Meta, b"right".to_vec(), v.clone());
        batch.put(Space::ByQuality, b"pair-a".to_vec(), v.clone());
        batch.put(Space::ByQuality, b"pair-b".to_vec(), v);
        b.write(batch, Durability::Buffered).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let checks = reader.join().expect("reader thread saw a torn batch");
    assert!(checks > 0);
    assert_eq!(
        b.get(Space::Peers, b"left").unwrap(),
        Some(299u64.to_be_bytes().to_vec())
    );
}

/// `clear` empties every space, and the backend keeps working afterwards.
pub fn clear_empties_everything<F: Factory>(factory: &F) {
    let b = factory.create();
    let mut batch = WriteBatch::new();
    for space in Space::ALL {
        for i in 0u32..50 {
            batch.put(space, i.to_be_bytes().to_vec(), vec![1; 10]);
        }
    }
    b.write(batch, Durability::Sync).unwrap();
    b.clear(Durability::Sync).unwrap();
    for space in Space::ALL {
        assert!(
            keys(&b, space, KeyRange::all(), Direction::Forward).is_empty(),
            "clear empties {space}"
        );
        assert_eq!(b.get(space, &7u32.to_be_bytes()).unwrap(), None);
    }
    put(&b, Space::Peers, b"after", b"clear");
    assert_eq!(
        b.get(Space::Peers, b"after").unwrap(),
        Some(b"clear".to_vec()),
        "writes work after clear"
    );
    b.clear(Durability::Buffered).unwrap();
    assert_eq!(b.get(Space::Peers, b"after").unwrap(), None);
}

/// Reads on other threads run through a clear: a view taken before it still sees
/// every entry when read while the clear runs (a snapshot, whatever the clear
/// does to the files), gets and scans on two more threads see whole values or
/// none, the clear returns, and a view taken after it sees an empty book.
pub fn reads_through_clear<F: Factory>(factory: &F)
where
    F::Backend: 'static,
{
    const KEYS: u32 = 64;
    let value = |i: u32| vec![i as u8; 48];
    let b = Arc::new(factory.create());
    let mut batch = WriteBatch::new();
    for i in 0..KEYS {
        batch.put(Space::Peers, i.to_be_bytes().to_vec(), value(i));
    }
    batch.put(Space::Meta, b"count".to_vec(), KEYS.to_be_bytes().to_vec());
    b.write(batch, Durability::Sync).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u32)
        .map(|t| {
            let (b, stop) = (Arc::clone(&b), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let i = (n * 7 + t) % KEYS;
                    let got = b.get(Space::Peers, &i.to_be_bytes()).expect("get");
                    assert!(got.is_none() || got == Some(value(i)), "a torn value");
                    b.scan(
                        Space::Peers,
                        KeyRange::all(),
                        Direction::Forward,
                        &mut |k, v| {
                            let i = u32::from_be_bytes(k.try_into().expect("a key written"));
                            assert_eq!(v, value(i), "a torn value in a scan");
                            ControlFlow::Continue(())
                        },
                    )
                    .expect("scan");
                    n += 1;
                }
            })
        })
        .collect();
    let (taken, view_taken) = std::sync::mpsc::channel();
    let old_reader = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || {
            let view = b.view().expect("view");
            taken.send(()).unwrap();
            // read while the clear runs (it may wait for this view to end)
            std::thread::sleep(std::time::Duration::from_millis(50));
            for i in 0..KEYS {
                assert_eq!(
                    view.get(Space::Peers, &i.to_be_bytes())
                        .expect("get in a view"),
                    Some(value(i)),
                    "a view taken before clear lost key {i}"
                );
            }
            assert_eq!(
                count_in_view(&*view, Space::Peers),
                KEYS as usize,
                "a view taken before clear scans every entry"
            );
            assert_eq!(
                view.get(Space::Meta, b"count").expect("get in a view"),
                Some(KEYS.to_be_bytes().to_vec())
            );
        })
    };
    view_taken.recv().unwrap();
    b.clear(Durability::Sync).expect("clear with readers");
    old_reader.join().expect("the view taken before clear");
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("a reader through clear");
    }
    let view = b.view().unwrap();
    for space in Space::ALL {
        assert_eq!(
            count_in_view(&*view, space),
            0,
            "a view after clear sees {space} empty"
        );
    }
}

/// Writes that returned (Sync), flushed Buffered writes, deletes and clears all
/// survive closing and reopening the backend.
pub fn persistence_across_reopen<F: Factory>(factory: &F) {
    let b = factory.create();
    put(&b, Space::Peers, b"sync", b"1");
    put(&b, Space::Meta, b"gone", b"x");
    let mut batch = WriteBatch::new();
    batch.delete(Space::Meta, b"gone".to_vec());
    batch.put(Space::ByLastSeen, b"idx".to_vec(), Vec::new());
    b.write(batch, Durability::Sync).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::ByQuality, b"buffered".to_vec(), b"2".to_vec());
    b.write(batch, Durability::Buffered).unwrap();
    b.flush().unwrap();

    let b = factory.reopen(b);
    assert_eq!(
        b.get(Space::Peers, b"sync").unwrap(),
        Some(b"1".to_vec()),
        "a Sync write survives reopen"
    );
    assert_eq!(
        b.get(Space::ByQuality, b"buffered").unwrap(),
        Some(b"2".to_vec()),
        "a flushed Buffered write survives reopen"
    );
    assert_eq!(
        b.get(Space::Meta, b"gone").unwrap(),
        None,
        "a delete survives reopen"
    );
    assert_eq!(b.get(Space::ByLastSeen, b"idx").unwrap(), Some(Vec::new()));

    // many writes, then reopen twice
    let mut model = BTreeMap::new();
    for i in 0u32..500 {
        let key = format!("peer-{:05}", (i * 7919) % 1000).into_bytes();
        let value = i.to_le_bytes().to_vec();
        put(&b, Space::Peers, &key, &value);
        model.insert(key, value);
    }
    model.insert(b"sync".to_vec(), b"1".to_vec());
    let b = factory.reopen(b);
    let b = factory.reopen(b);
    let got: BTreeMap<_, _> = collect(&b, Space::Peers, KeyRange::all(), Direction::Forward)
        .into_iter()
        .collect();
    assert_eq!(got, model, "every write survives two reopens");

    b.clear(Durability::Sync).unwrap();
    let b = factory.reopen(b);
    for space in Space::ALL {
        assert!(
            keys(&b, space, KeyRange::all(), Direction::Forward).is_empty(),
            "a clear survives reopen ({space})"
        );
    }
    put(&b, Space::Peers, b"again", b"3");
    let b = factory.reopen(b);
    assert_eq!(b.get(Space::Peers, b"again").unwrap(), Some(b"3".to_vec()));
}

/// Many threads read while one writes; every read sees a whole value.
pub fn concurrent_readers<F: Factory>(factory: &F)
where
    F::Backend: 'static,
{
    let b = Arc::new(factory.create());
    for i in 0u32..64 {
        put(&*b, Space::Peers, &i.to_be_bytes(), &[i as u8; 32]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|t| {
            let b = Arc::clone(&b);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) || n < 100 {
                    let i = (n * 31 + t) % 64;
                    let v = b
                        .get(Space::Peers, &i.to_be_bytes())
                        .unwrap()
                        .expect("key present");
                    assert_eq!(v.len(), 32, "whole value");
                    assert!(v.iter().all(|x| *x == v[0]), "value not torn");
                    n += 1;
                }
            })
        })
        .collect();
    for round in 0u32..50 {
        let mut batch = WriteBatch::new();
        for i in 0u32..64 {
            batch.put(
                Space::Peers,
                i.to_be_bytes().to_vec(),
                vec![(i + round) as u8; 32],
            );
        }
        b.write(batch, Durability::Buffered).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader panicked");
    }
}

/// A deterministic random walk of batches and scans, compared step by step with an
/// ordered-map model; reopens the backend a few times on the way.
pub fn random_ops_match_model<F: Factory>(factory: &F) {
    let mut rng = Rng::new(0x5eed_b00c);
    let mut b = factory.create();
    let mut model: [BTreeMap<Vec<u8>, Vec<u8>>; 4] = Default::default();
    for step in 0..400 {
        let mut batch = WriteBatch::new();
        for _ in 0..rng.below(6) + 1 {
            let space = Space::ALL[rng.below(4) as usize];
            let key = rng.key(3);
            if rng.below(4) == 0 {
                model[space.index()].remove(&key);
                batch.delete(space, key);
            } else {
                let len = rng.below(40) as usize;
                let value = rng.bytes(len);
                model[space.index()].insert(key.clone(), value.clone());
                batch.put(space, key, value);
            }
        }
        let durability = if rng.below(2) == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        b.write(batch, durability).unwrap();
        if step % 97 == 96 {
            b.flush().unwrap();
            b = factory.reopen(b);
        }
        let space = Space::ALL[rng.below(4) as usize];
        let lo = rng.key(3);
        let hi = rng.key(3);
        let range = KeyRange {
            lower: Bound::Included(&lo),
            upper: Bound::Excluded(&hi),
        };
        let dir = if rng.below(2) == 0 {
            Direction::Forward
        } else {
            Direction::Reverse
        };
        let mut expected: Vec<(Vec<u8>, Vec<u8>)> = model[space.index()]
            .iter()
            .filter(|(k, _)| range.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if dir == Direction::Reverse {
            expected.reverse();
        }
        assert_eq!(
            collect(&b, space, range, dir),
            expected,
            "step {step}: scan of {space} {range:?} {dir:?}"
        );
        let probe = rng.key(3);
        assert_eq!(
            b.get(space, &probe).unwrap(),
            model[space.index()].get(&probe).cloned(),
            "step {step}: get"
        );
    }
}
