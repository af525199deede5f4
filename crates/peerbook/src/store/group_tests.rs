//! Tests of the group commit: the writer view over pending batches and the
//! leader's linger.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};

use super::{linger_budget, GroupCommit, MAX_LINGER};
use crate::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use crate::conformance::Rng;
use crate::error::{Error, Result};
use crate::MemoryBackend;

fn bound(rng: &mut Rng) -> Bound<Vec<u8>> {
    match rng.below(3) {
        0 => Bound::Unbounded,
        1 => Bound::Included(rng.key(3)),
        _ => Bound::Excluded(rng.key(3)),
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A batch of one put.
fn one(key: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, key.to_vec(), b"v".to_vec());
    batch
}

/// A group commit whose leaders may linger `budget` after a landing, with one
/// group of `size` batches (keys `a`, `b`, ...) landed (so `size` writers were
/// released), writing into
/// `backend` and recording each group's size in `groups`.
fn after_a_group_of<'a>(
    size: u8,
    budget: std::time::Duration,
    backend: &'a MemoryBackend,
    groups: &'a std::sync::Mutex<Vec<usize>>,
) -> (
    GroupCommit,
    impl Fn(WriteBatch) -> std::result::Result<(), (Error, bool)> + Copy + 'a,
) {
    let group = GroupCommit::default();
    group.lock_state().budget_override = Some(budget);
    let write = move |b: WriteBatch| {
        groups.lock().unwrap().push(b.ops().len());
        backend
            .write(b, Durability::Sync)
            .map_err(|e| (crate::Error::from(e), false))
    };
    let last = (0..size)
        .map(|i| group.apply(one(&[b'a' + i])).unwrap())
        .last()
        .expect("a group of at least one batch");
    group.wait(last, write).unwrap();
    (group, write)
}

/// Waits (at most 10 s) until a leader lingers.
fn until_lingering(group: &GroupCommit, leader: &std::thread::ScopedJoinHandle<'_, Result<()>>) {
    let since = std::time::Instant::now();
    while !group.lock_state().lingering {
        assert!(
            since.elapsed() < std::time::Duration::from_secs(10) && !leader.is_finished(),
            "the next leader did not linger for the released writers"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A leader lingers for the writers the last group released: after a group of
/// two batches landed, the next leader (one batch queued) waits for a second
/// apply and writes both in one group, instead of writing its own alone.
#[test]
fn next_leader_lingers_for_the_writers_the_last_group_released() {
    let (backend, groups) = (MemoryBackend::new(), std::sync::Mutex::new(Vec::new()));
    let (group, write) = after_a_group_of(2, std::time::Duration::from_secs(60), &backend, &groups);
    let third = group.apply(one(b"c")).unwrap();
    std::thread::scope(|s| {
        let leader = s.spawn(|| group.wait(third, write));
        until_lingering(&group, &leader);
        let fourth = group.apply(one(b"d")).unwrap();
        leader.join().unwrap().unwrap();
        group.wait(fourth, write).unwrap();
    });
    assert_eq!(*groups.lock().unwrap(), [2, 2], "c and d share one group");
}

/// A lingering leader is woken once its group is full, not by every apply before
/// (each such wake-up was a context switch per write, the leader checking and
/// sleeping again): after a group of three, the next leader sleeps through the
/// second apply and wakes at the third.
#[test]
fn a_lingering_leader_wakes_only_when_its_group_is_full() {
    let (backend, groups) = (MemoryBackend::new(), std::sync::Mutex::new(Vec::new()));
    let (group, write) = after_a_group_of(3, std::time::Duration::from_secs(60), &backend, &groups);
    let fourth = group.apply(one(b"d")).unwrap();
    std::thread::scope(|s| {
        let leader = s.spawn(|| group.wait(fourth, write));
        until_lingering(&group, &leader);
        let fifth = group.apply(one(b"e")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        // counts the wake-ups applies sent (a condvar may also wake spuriously)
        assert_eq!(group.lock_state().apply_wakes, 0, "woken before full");
        let sixth = group.apply(one(b"f")).unwrap();
        leader.join().unwrap().unwrap();
        group.wait(fifth, write).unwrap();
        group.wait(sixth, write).unwrap();
    });
    assert_eq!(
        *groups.lock().unwrap(),
        [3, 3],
        "d, e and f share one group"
    );
    assert_eq!(group.lock_state().apply_wakes, 1);
}

/// The budget runs from the landing, not from the next leader's arrival: a
/// writer coming after the burst ended writes at once, alone.
#[test]
fn a_leader_after_the_budget_since_the_landing_does_not_linger() {
    let (backend, groups) = (MemoryBackend::new(), std::sync::Mutex::new(Vec::new()));
    let budget = std::time::Duration::from_millis(20);
    let (group, write) = after_a_group_of(2, budget, &backend, &groups);
    std::thread::sleep(budget * 2);
    let third = group.apply(one(b"c")).unwrap();
    group.wait(third, write).unwrap();
    assert_eq!(group.lock_state().lingered, 0, "the budget was spent");
    assert_eq!(*groups.lock().unwrap(), [2, 1]);
}

/// A drain (under the writer lock: no batch can come) ends a linger at once
/// instead of waiting out its budget.
#[test]
fn a_drain_ends_a_linger() {
    let (backend, groups) = (MemoryBackend::new(), std::sync::Mutex::new(Vec::new()));
    let (group, write) = after_a_group_of(2, std::time::Duration::from_secs(60), &backend, &groups);
    let third = group.apply(one(b"c")).unwrap();
    let since = std::time::Instant::now();
    std::thread::scope(|s| {
        let leader = s.spawn(|| group.wait(third, write));
        until_lingering(&group, &leader);
        group.drain(write).unwrap();
        leader.join().unwrap().unwrap();
    });
    assert!(
        since.elapsed() < std::time::Duration::from_secs(30),
        "the drain waited out the 60 s linger"
    );
    assert_eq!(*groups.lock().unwrap(), [2, 1]);
    assert!(!group.lock_state().draining);
}

/// Half the last group write, at most MAX_LINGER: one slow fsync does not make
/// the next writers wait half of it.
#[test]
fn the_linger_budget_is_half_the_last_write_capped() {
    use std::time::Duration;
    assert_eq!(
        linger_budget(Duration::from_micros(200)),
        Duration::from_micros(100)
    );
    assert_eq!(linger_budget(Duration::from_secs(4)), MAX_LINGER);
    assert_eq!(linger_budget(Duration::ZERO), Duration::ZERO);
}

/// A writer's view (engine state + queued batches, some of them already
/// written) reads like the model of every applied batch: gets, and scans in both
/// directions over random ranges with early stops.
#[test]
fn writer_view_reads_like_every_applied_batch() {
    let mut rng = Rng::new(19);
    for round in 0..200 {
        let backend = MemoryBackend::new();
        let group = GroupCommit::default();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut queued = Vec::new();
        for _ in 0..rng.below(12) {
            let mut batch = WriteBatch::new();
            for _ in 0..=rng.below(4) {
                let key = rng.key(3);
                if rng.below(3) == 0 {
                    batch.delete(Space::Peers, key.clone());
                    model.remove(&key);
                } else {
                    let value = rng.bytes(2);
                    batch.put(Space::Peers, key.clone(), value.clone());
                    model.insert(key, value);
                }
            }
            if rng.below(3) == 0 && queued.is_empty() {
                // written straight to the engine, as under a drain
                backend.write(batch, Durability::Sync).unwrap();
                continue;
            }
            let seq = group.apply(batch.clone()).unwrap();
            queued.push(batch);
            if rng.below(4) == 0 {
                // a leader writes every queued batch; the next view prunes them
                group
                    .wait(seq, |b| {
                        backend
                            .write(b, Durability::Sync)
                            .map_err(|e| (crate::Error::from(e), false))
                    })
                    .unwrap();
                queued.clear();
            }
        }
        // a prefix of the queued batches has landed (a group written meanwhile)
        for batch in queued
            .iter()
            .take(rng.below(queued.len() as u64 + 1) as usize)
        {
            backend.write(batch.clone(), Durability::Sync).unwrap();
        }
        let view = group.writer_view(|| backend.view()).unwrap();
        for _ in 0..20 {
            let key = rng.key(3);
            assert_eq!(
                view.get(Space::Peers, &key).unwrap(),
                model.get(&key).cloned(),
                "round {round}: get"
            );
            let (lower, upper) = (bound(&mut rng), bound(&mut rng));
            let range = KeyRange {
                lower: as_ref(&lower),
                upper: as_ref(&upper),
            };
            let direction = if rng.below(2) == 0 {
                Direction::Forward
            } else {
                Direction::Reverse
            };
            let stop = rng.below(6) as usize + 1;
            let mut want: Vec<(Vec<u8>, Vec<u8>)> = if range.is_empty() {
                Vec::new()
            } else {
                model
                    .range::<[u8], _>((range.lower, range.upper))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            if direction == Direction::Reverse {
                want.reverse();
            }
            want.truncate(stop);
            let mut got = Vec::new();
            view.scan(Space::Peers, range, direction, &mut |k, v| {
                got.push((k.to_vec(), v.to_vec()));
                if got.len() >= stop {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
            assert_eq!(got, want, "round {round}: scan {direction:?}");
        }
    }
}
