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
    let sync = sync_write(backend);
    let write = move |b: WriteBatch| {
        groups.lock().unwrap().push(b.ops().len());
        sync(b)
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

/// A drain leaves the overlay empty: it clears the spaces that hold entries
/// (and skips the empty ones).
#[test]
fn a_drain_empties_the_overlay() {
    let (backend, groups) = (MemoryBackend::new(), std::sync::Mutex::new(Vec::new()));
    let (group, write) = after_a_group_of(1, std::time::Duration::ZERO, &backend, &groups);
    group.apply(one(b"c")).unwrap();
    assert!(group.lock_overlay().iter().any(|space| !space.is_empty()));
    group.drain(write).unwrap();
    assert!(group.lock_overlay().iter().all(|space| space.is_empty()));
    assert_eq!(
        backend.get(Space::Peers, b"c").unwrap(),
        Some(b"v".to_vec())
    );
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
                group.wait(seq, sync_write(&backend)).unwrap();
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

/// A Sync book on the memory backend holding peers `a` and `b`, shared so a hook
/// can write.
fn sync_book() -> std::sync::Arc<crate::PeerBook<MemoryBackend>> {
    sync_book_on(MemoryBackend::new())
}

/// A Sync book on `backend` holding peers `a` and `b` (attempts never blacklist).
fn sync_book_on<B: crate::backend::Backend>(backend: B) -> std::sync::Arc<crate::PeerBook<B>> {
    let mut options = crate::Options::new(crate::MasterKey::from_bytes([1; 32]))
        .with_clock(crate::ManualClock::new(1_700_000_000_000));
    options.durability = Durability::Sync;
    options.failed_attempts = u32::MAX;
    let book = crate::PeerBook::open(backend, options).unwrap();
    for id in ["a", "b"] {
        book.store_peer(crate::NewPeer {
            peer_id: id.into(),
            public_key: "pk".into(),
            ..crate::NewPeer::default()
        })
        .unwrap();
    }
    std::sync::Arc::new(book)
}

/// Run `f` on `book` in the next writer between its read ahead and its taking the
/// writer lock.
fn meanwhile<B: crate::backend::Backend + 'static>(
    book: &std::sync::Arc<crate::PeerBook<B>>,
    f: impl FnOnce(&crate::PeerBook<B>) + Send + 'static,
) {
    let hook_book = std::sync::Arc::clone(book);
    book.group.set_after_read_ahead(move || f(&hook_book));
}

/// `a`'s reconnection attempts.
fn attempts(book: &crate::PeerBook<MemoryBackend>) -> u32 {
    book.get_peer("a").unwrap().unwrap().reconnection_attempts
}

/// A writer that changes the peer between another writer's read ahead and its
/// taking the writer lock: the other writer reads again, and the book ends as
/// after the two writes one after the other.
#[test]
fn a_write_of_the_same_peer_after_a_read_ahead_is_not_lost() {
    let book = sync_book();
    meanwhile(&book, |b| {
        b.increment_reconnection_attempts("a").unwrap();
    });
    let record = book.increment_reconnection_attempts("a").unwrap();
    assert_eq!(
        record.reconnection_attempts, 2,
        "the first increment was lost"
    );
    assert_eq!(attempts(&book), 2);
    assert!(book.verify().unwrap().is_clean());
}

/// With nothing written between a read ahead and the writer lock, the read ahead
/// is kept (the engine read is not made again under the lock), and the write lands.
#[test]
fn an_undisturbed_read_ahead_is_kept() {
    let book = sync_book();
    for n in 1..=3 {
        assert_eq!(
            book.increment_reconnection_attempts("a")
                .unwrap()
                .reconnection_attempts,
            n
        );
    }
    assert_eq!(book.group.lock_state().reads_kept, 3);
    assert_eq!(attempts(&book), 3);
    // The same peer written meanwhile: that read ahead is dropped, the next kept.
    meanwhile(&book, |b| {
        b.update_last_seen("a").unwrap();
    });
    book.increment_reconnection_attempts("a").unwrap();
    assert_eq!(
        book.group.lock_state().reads_kept,
        4,
        "only the hook's own read"
    );
    assert_eq!(
        attempts(&book),
        1,
        "update_last_seen reset, then one increment"
    );
}

/// A writer whose read ahead is kept opens no backend view under the writer lock
/// (no engine snapshot, no overlay lock); one whose read ahead is dropped does.
#[test]
fn a_kept_read_ahead_opens_no_view() {
    use std::sync::atomic::Ordering::Relaxed;
    let book = sync_book();
    let before = book.group.views.load(Relaxed);
    for _ in 0..3 {
        book.increment_reconnection_attempts("a").unwrap();
    }
    assert_eq!(book.group.lock_state().reads_kept, 3);
    assert_eq!(book.group.views.load(Relaxed), before, "no view was needed");
    meanwhile(&book, |b| {
        b.update_last_seen("a").unwrap();
    });
    book.increment_reconnection_attempts("a").unwrap();
    assert_eq!(
        book.group.views.load(Relaxed),
        before + 1,
        "the dropped read ahead is read again through a view"
    );
    assert_eq!(attempts(&book), 1);
}

/// A landed group's entries leave the overlay even when no writer opens a view
/// (a writer whose read ahead holds opens none): the overlay holds only pending
/// batches.
#[test]
fn a_landed_group_leaves_the_overlay() {
    let backend = MemoryBackend::new();
    let group = GroupCommit::default();
    let write = sync_write(&backend);
    let seq = ["a", "b", "c"]
        .map(|k| group.apply(one(k.as_bytes())).unwrap())
        .into_iter()
        .last()
        .unwrap();
    assert_eq!(group.lock_overlay()[Space::Peers.index()].len(), 3);
    group.wait(seq, write).unwrap();
    assert!(
        group.lock_overlay().iter().all(BTreeMap::is_empty),
        "durable entries stay in the overlay"
    );
    assert_eq!(
        backend.get(Space::Peers, b"b").unwrap(),
        Some(b"v".to_vec())
    );
}

/// A group's write: `batch` synced into `backend`, its error never "not applied".
fn sync_write(
    backend: &MemoryBackend,
) -> impl Fn(WriteBatch) -> std::result::Result<(), (Error, bool)> + Copy + '_ {
    move |b: WriteBatch| {
        backend
            .write(b, Durability::Sync)
            .map_err(|e| (Error::from(e), false))
    }
}

/// A leader whose group landed while a view holds the overlay (a long scan under the
/// writer lock) returns without pruning; the next group's leader prunes what it left.
#[test]
fn a_leader_does_not_wait_on_a_held_overlay_to_prune() {
    let backend = MemoryBackend::new();
    let group = GroupCommit::default();
    let write = sync_write(&backend);
    let seq = group.apply(one(b"a")).unwrap();
    let held = group.lock_overlay();
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let (group, write) = (&group, &write);
        s.spawn(move || {
            let outcome = group.wait(seq, write);
            let _ = tx.send(outcome.is_ok());
        });
        let returned = rx.recv_timeout(std::time::Duration::from_secs(30));
        drop(held);
        assert_eq!(returned, Ok(true), "the leader waited for the overlay");
    });
    assert_eq!(group.lock_overlay()[Space::Peers.index()].len(), 1);
    let seq = group.apply(one(b"b")).unwrap();
    group.wait(seq, write).unwrap();
    assert!(
        group.lock_overlay().iter().all(BTreeMap::is_empty),
        "the next leader left the durable entries"
    );
    assert_eq!(
        backend.get(Space::Peers, b"a").unwrap(),
        Some(b"v".to_vec())
    );
}

/// A read ahead older than the keys the group commit remembers is read again, even
/// when the write of the peer it missed is long durable.
#[test]
fn a_read_ahead_older_than_the_recent_keys_is_read_again() {
    let book = sync_book();
    meanwhile(&book, |b| {
        b.increment_reconnection_attempts("a").unwrap();
        for _ in 0..super::RECENT_KEYS {
            b.increment_reconnection_attempts("b").unwrap();
        }
    });
    book.increment_reconnection_attempts("a").unwrap();
    assert_eq!(attempts(&book), 2, "the first increment was lost");
}

/// A change outside the group commit (here a clear) between a read ahead and the
/// writer lock: the writer reads again and finds no peer.
#[test]
fn a_direct_write_after_a_read_ahead_is_seen() {
    let book = sync_book();
    meanwhile(&book, |b| b.clear_all().unwrap());
    match book.increment_reconnection_attempts("a") {
        Err(Error::NotFound { peer_id }) => assert_eq!(peer_id, "a"),
        other => panic!("a cleared peer must not come back: {other:?}"),
    }
    assert_eq!(book.get_peer("a").unwrap(), None);
    assert!(book.verify().unwrap().is_clean());
}

/// Eight threads incrementing one peer's attempts concurrently: none is lost.
#[test]
fn concurrent_increments_of_one_peer_all_land() {
    let book = sync_book();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..50 {
                    book.increment_reconnection_attempts("a").unwrap();
                }
            });
        }
    });
    assert_eq!(attempts(&book), 400);
    assert!(book.verify().unwrap().is_clean());
}

/// A read ahead that took a pending batch from the overlay, whose group write is
/// then refused before it applied anything: the writer reads the rolled-back state
/// again, so the refused write leaves no trace (the book ends as if only the
/// second write had been made).
#[test]
fn a_read_ahead_of_a_refused_batch_is_read_again() {
    use crate::conformance::failing::{FailOp, FailWhen, FailingBackend};
    use crate::conformance::group::GatedBackend;
    let book = sync_book_on(FailingBackend::new(GatedBackend::gated(
        MemoryBackend::new(),
    )));
    // write 1: the leader's update of b, held at the gate; write 2: the group of
    // the increment of a queued behind it, refused
    book.backend()
        .fail_nth(FailOp::Write, 2, FailWhen::BeforeNotApplied);
    let gate = book.backend().inner().hook();
    gate.set_closed(true);
    std::thread::scope(|s| {
        let leader = s.spawn(|| book.update_last_seen("b").map(drop));
        assert!(gate.wait_blocked(1), "the leader's write reached the gate");
        let applied = book.group.lock_state().applied;
        let refused = s.spawn(|| book.increment_reconnection_attempts("a").map(drop));
        while book.group.lock_state().applied == applied {
            std::thread::yield_now();
        }
        // the next writer reads a ahead with the refused increment pending, then
        // the gate opens and the refusal lands before it takes the writer lock
        let (tx, rx) = std::sync::mpsc::channel();
        meanwhile(&book, move |b| {
            b.backend().inner().hook().set_closed(false);
            let _ = rx.recv();
        });
        let second = s.spawn(|| book.increment_reconnection_attempts("a").map(drop));
        let refusal = refused.join().unwrap();
        tx.send(()).unwrap();
        assert!(refusal.is_err(), "the queued increment was refused");
        leader.join().unwrap().unwrap();
        second.join().unwrap().unwrap();
    });
    let a = book.get_peer("a").unwrap().unwrap();
    assert_eq!(
        a.reconnection_attempts, 1,
        "the refused increment came back"
    );
    assert!(book.verify().unwrap().is_clean());
}
