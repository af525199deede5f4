//! Concurrency stress of [`VersionedSpaces`](super::VersionedSpaces): writers put and
//! delete the same keys in two spaces in one batch while other threads open views,
//! hold a few of them for a while (closing the oldest or a younger one at random),
//! and check that every view keeps reading the state it opened on, consistent across
//! spaces; at the end, with every view closed, no history is left.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;

/// What a view reads: the peers and meta spaces whole, and the batch counter.
type Seen = (
    Vec<(Vec<u8>, Vec<u8>)>,
    Vec<(Vec<u8>, Vec<u8>)>,
    Option<Vec<u8>>,
);

const KEYS: u64 = 48;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn key(k: u64) -> Vec<u8> {
    format!("k{k:03}").into_bytes()
}

fn scan_all(view: &dyn ReadView, space: Space, direction: Direction) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    view.scan(space, KeyRange::all(), direction, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .unwrap();
    if direction == Direction::Reverse {
        out.reverse();
    }
    out
}

/// Read a view whole, checking what must hold of any state the writers leave:
/// peers and meta equal, no value newer than the batch counter, `get` agrees with
/// `scan`.
fn read(view: &VersionedView<'_>, round: u64) -> Seen {
    let direction = if round.is_multiple_of(2) {
        Direction::Forward
    } else {
        Direction::Reverse
    };
    let peers = scan_all(view, Space::Peers, direction);
    let meta = scan_all(view, Space::Meta, direction);
    let counter = view.get(Space::ByLastSeen, b"batch").unwrap();
    assert_eq!(peers, meta, "one batch wrote both spaces alike");
    let last = counter
        .as_ref()
        .map_or(0, |c| u64::from_be_bytes(c[..].try_into().unwrap()));
    for (k, v) in &peers {
        assert!(
            u64::from_be_bytes(v[..].try_into().unwrap()) <= last,
            "value newer than the view"
        );
        assert_eq!(view.get(Space::Peers, k).unwrap().as_ref(), Some(v));
    }
    let k = key(round % KEYS);
    let scanned = peers
        .iter()
        .find(|(pk, _)| *pk == k)
        .map(|(_, v)| v.clone());
    assert_eq!(
        view.get(Space::Meta, &k).unwrap(),
        scanned,
        "get of a key agrees with scan"
    );
    (peers, meta, counter)
}

#[test]
fn views_stay_stable_while_writers_write() {
    let initial: Vec<(Vec<u8>, Vec<u8>)> = (0..KEYS)
        .filter(|k| k % 3 != 0)
        .map(|k| (key(k), 0u64.to_be_bytes().to_vec()))
        .collect();
    let spaces = VersionedSpaces::from_entries(
        [
            initial.clone(),
            vec![(b"batch".to_vec(), 0u64.to_be_bytes().to_vec())],
            Vec::new(),
            initial.clone(),
        ]
        .map(super::tests::keyed),
    );
    let pinned = spaces.view();
    let pinned_seen = read(&pinned, 0);
    assert_eq!(pinned_seen.0, initial);
    let batch = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let checks = AtomicU64::new(0);
    std::thread::scope(|s| {
        for w in 0..2u64 {
            let (spaces, batch, stop) = (&spaces, &batch, &stop);
            s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (w + 1));
                while !stop.load(Ordering::Relaxed) {
                    spaces.apply(|b| {
                        // numbered under the write lock: batches are ordered by it
                        let g = batch.fetch_add(1, Ordering::Relaxed) + 1;
                        let value = g.to_be_bytes().to_vec();
                        b.put(Space::ByLastSeen, b"batch".to_vec(), value.clone());
                        if rng.below(200) == 0 {
                            b.clear();
                            b.put(Space::ByLastSeen, b"batch".to_vec(), value.clone());
                        }
                        for _ in 0..=rng.below(6) {
                            let k = key(rng.below(KEYS));
                            if rng.below(3) == 0 {
                                b.delete(Space::Peers, k.clone());
                                b.delete(Space::Meta, k);
                            } else {
                                b.put(Space::Peers, k.clone(), value.clone());
                                b.put(Space::Meta, k, value.clone());
                            }
                        }
                    });
                }
            });
        }
        let mut readers = Vec::new();
        for r in 0..2u64 {
            let (spaces, stop, checks) = (&spaces, &stop, &checks);
            readers.push(s.spawn(move || {
                let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (r + 7));
                let mut held: Vec<(VersionedView<'_>, Seen)> = Vec::new();
                let mut round = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    round += 1;
                    let view = spaces.view();
                    let seen = read(&view, round);
                    held.push((view, seen));
                    // re-read a held view: it still reads the state it opened on
                    let i = rng.below(held.len() as u64) as usize;
                    assert_eq!(
                        read(&held[i].0, round),
                        held[i].1,
                        "a view changed under writes"
                    );
                    // phases of holding a few views, and of holding none (then a
                    // batch often starts with no view open, one opening meanwhile)
                    let limit = if (round / 300).is_multiple_of(2) {
                        4
                    } else {
                        0
                    };
                    while held.len() > limit {
                        // close the oldest, or a younger one
                        let i = if rng.below(2) == 0 {
                            0
                        } else {
                            rng.below(held.len() as u64) as usize
                        };
                        let (view, seen) = held.remove(i);
                        assert_eq!(
                            read(&view, round + 1),
                            seen,
                            "a view changed before it closed"
                        );
                    }
                    checks.fetch_add(1, Ordering::Relaxed);
                }
                for (view, seen) in &held {
                    assert_eq!(&read(view, round), seen);
                }
            }));
        }
        // The first view pins the oldest versions (no pruning) for a while; once
        // closed, the readers' views take turns at being the oldest.
        let wait = |n: u64| {
            // (a reader that failed ends early: stop waiting, the scope re-raises it)
            while (checks.load(Ordering::Relaxed) < n || batch.load(Ordering::Relaxed) < n)
                && !readers.iter().any(|r| r.is_finished())
            {
                std::thread::yield_now();
            }
        };
        wait(1500);
        assert_eq!(
            read(&pinned, 0),
            pinned_seen,
            "the first view outlived many batches"
        );
        drop(pinned);
        wait(5000);
        stop.store(true, Ordering::Relaxed);
    });
    assert!(checks.load(Ordering::Relaxed) > 0);

    // With no view left, every key holds one value and no history is kept.
    let latest = read(&spaces.view(), 0);
    let state = spaces.read();
    assert!(
        state.history.is_empty(),
        "history left: {}",
        state.history.len()
    );
    for (i, map) in state.spaces.iter().enumerate() {
        assert!(
            map.values().all(|slot| matches!(slot, Slot::One(_))),
            "space {i} keeps versions"
        );
        assert_eq!(state.live[i], map.len(), "space {i}: live count");
    }
    let model: BTreeMap<_, _> = latest.0.iter().cloned().collect();
    assert_eq!(model.len(), state.spaces[Space::Peers.index()].len());
}
