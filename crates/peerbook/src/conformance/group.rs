//! Conformance tests of the group commit (concurrent [`Durability::Sync`] writers
//! sharing one synced write): every acknowledged write is there for every reader,
//! no writer returns before the write holding its batch returned, and a failed group
//! write fails every writer it covered and poisons the book.
//!
//! [`GatedBackend`] holds the engine's writes behind a gate the test opens, to stage
//! a group (a leader's write blocked while others queue behind it).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::failing::{FailOp, FailWhen, FailingBackend};
use super::hooked::{Hook, HookedBackend};
use super::store::{sample_peer, T0};
use super::Factory;
use crate::backend::{Backend, Durability, WriteBatch};
use crate::{Error, ManualClock, MasterKey, Options, PeerBook};

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    /// Writes waiting at the closed gate now.
    blocked: usize,
    /// The number of operations of every write that passed, in order.
    writes: Vec<usize>,
}

/// The [`Hook`] of a [`GatedBackend`]: each write waits while the gate is
/// closed; flushes and clears pass. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

/// A [`Backend`] wrapper whose `write` waits while its [`Gate`] (reached through
/// [`hook`](HookedBackend::hook)) is closed; see the [module docs](self).
pub type GatedBackend<B> = HookedBackend<B, Gate>;

impl<B: Backend> HookedBackend<B, Gate> {
    /// Wrap `inner`, gate open.
    pub fn gated(inner: B) -> Self {
        HookedBackend::with_hook(inner, Gate::default())
    }
}

impl Gate {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Close (`true`) or open the gate; opening lets every waiting write through.
    pub fn set_closed(&self, closed: bool) {
        self.state().closed = closed;
        self.changed.notify_all();
    }

    /// Wait (up to 60 s) until `n` writes wait at the gate; false on timeout.
    pub fn wait_blocked(&self, n: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut state = self.state();
        while state.blocked < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// The operation count of every write that passed the gate, in order.
    pub fn writes(&self) -> Vec<usize> {
        self.state().writes.clone()
    }
}

impl Hook for Gate {
    fn before(&self, op: FailOp, batch: Option<&WriteBatch>) {
        let (FailOp::Write, Some(batch)) = (op, batch) else {
            return;
        };
        let mut state = self.state();
        state.blocked += 1;
        self.changed.notify_all();
        while state.closed {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        state.blocked -= 1;
        state.writes.push(batch.len());
    }
}

fn options(clock: &ManualClock) -> Options {
    let mut o = Options::new(MasterKey::from_bytes([42; 32])).with_clock(clock.clone());
    o.durability = Durability::Sync;
    o.failed_attempts = u32::MAX;
    o.max_peers = 100_000;
    o
}

/// How long a test lets queued writers reach their wait (they need one
/// read-modify-write each); the assertions hold whatever happens meanwhile.
const SETTLE: Duration = Duration::from_millis(500);

/// Eight Sync writers (increments on one shared peer, stores, updates and removes
/// of their own peers) race two readers. No update is lost (read-modify-writes see
/// the batches queued before them), a reader never sees a value go back, every
/// acknowledged write is visible right after it returns and after a reopen, and
/// the book verifies clean.
pub fn group_commit_writers_and_readers<F: Factory>(f: &F) {
    let clock = ManualClock::new(T0);
    let book = PeerBook::open(f.create(), options(&clock)).expect("open");
    book.store_peer(sample_peer("shared")).unwrap();
    let book = Arc::new(book);
    let rounds = 12u32;
    let acked_increments = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let (book, acked) = (Arc::clone(&book), Arc::clone(&acked_increments));
            std::thread::spawn(move || {
                let mut alive = HashSet::new();
                for i in 0..rounds {
                    let r = book.increment_reconnection_attempts("shared").unwrap();
                    acked.fetch_add(1, Ordering::SeqCst);
                    let seen = book.get_peer("shared").unwrap().unwrap();
                    assert!(
                        seen.reconnection_attempts >= r.reconnection_attempts,
                        "an acknowledged increment is not visible to a reader"
                    );
                    let id = format!("t{t}-{}", i % 4);
                    match i % 3 {
                        0 | 1 if !alive.contains(&id) => {
                            book.store_peer(sample_peer(&id)).unwrap();
                            alive.insert(id.clone());
                        }
                        0 | 1 => {
                            book.update_connection_quality(
                                &id,
                                crate::QualityUpdate {
                                    latency_ms: Some(Some(t * 100 + i)),
                                    ..Default::default()
                                },
                            )
                            .unwrap();
                        }
                        _ => {
                            let was = book.remove_peer(&id).unwrap();
                            assert_eq!(was, alive.remove(&id), "remove of {id}");
                        }
                    }
                    assert_eq!(
                        book.get_peer(&id).unwrap().is_some(),
                        alive.contains(&id),
                        "{id}: an acknowledged write is not visible to a reader"
                    );
                }
                alive.into_iter().collect::<Vec<_>>()
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let book = Arc::clone(&book);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..200 {
                    let r = book.get_peer("shared").unwrap().expect("always there");
                    assert!(
                        r.reconnection_attempts >= last,
                        "a reader saw a value go back"
                    );
                    last = r.reconnection_attempts;
                    std::thread::yield_now();
                }
            })
        })
        .collect();
    let mut alive: Vec<String> = Vec::new();
    for w in writers {
        alive.extend(w.join().expect("writer"));
    }
    for r in readers {
        r.join().expect("reader");
    }
    let book = Arc::into_inner(book).expect("threads done");
    let check = |book: &PeerBook<F::Backend>, context: &str| {
        let shared = book.get_peer("shared").unwrap().unwrap();
        assert_eq!(
            shared.reconnection_attempts as usize,
            acked_increments.load(Ordering::SeqCst),
            "{context}: lost update"
        );
        for id in &alive {
            assert!(book.get_peer(id).unwrap().is_some(), "{context}: {id} lost");
        }
        let stats = book.get_storage_stats().unwrap();
        assert_eq!(stats.peer_count as usize, alive.len() + 1, "{context}");
        let report = book.verify().unwrap();
        assert!(report.is_clean(), "{context}: {report:?}");
    };
    check(&book, "after the race");
    let backend = book.close().expect("close");
    let book = PeerBook::open(f.reopen(backend), options(&clock)).expect("reopen");
    check(&book, "after reopen");
}

/// While the engine's write of a group is held, no writer returns: neither the one
/// whose write is held nor those queued behind it (their batches are applied to
/// the writer state, not durable); readers do not see the queued batches. Once the
/// gate opens every writer returns `Ok`, the queued writers share fewer engine
/// writes than there are writers, and all their writes are there: increments of one
/// peer queued behind each other each saw the one before (none lost).
pub fn group_commit_returns_only_after_the_write<F: Factory>(f: &F) {
    let clock = ManualClock::new(T0);
    let book = PeerBook::open(GatedBackend::gated(f.create()), options(&clock)).expect("open");
    book.store_peer(sample_peer("shared")).unwrap();
    let writers = 8;
    let before = book.backend().hook().writes().len();
    book.backend().hook().set_closed(true);
    let returned = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|t| {
                let (book, returned) = (&book, &returned);
                s.spawn(move || {
                    let r = if t % 2 == 0 {
                        book.increment_reconnection_attempts("shared").map(drop)
                    } else {
                        book.store_peer(sample_peer(&format!("q{t}"))).map(drop)
                    };
                    returned.fetch_add(1, Ordering::SeqCst);
                    r
                })
            })
            .collect();
        // assert only once the gate is open again: a failed assertion with the gate
        // closed would leave the scope waiting for the held writers forever
        let blocked = book.backend().hook().wait_blocked(1);
        std::thread::sleep(SETTLE);
        let returned_while_held = returned.load(Ordering::SeqCst);
        let visible_while_held = (1..writers)
            .step_by(2)
            .filter(|t| book.get_peer(&format!("q{t}")).unwrap().is_some())
            .count();
        book.backend().hook().set_closed(false);
        for h in handles {
            h.join().expect("writer").expect("every writer succeeds");
        }
        assert!(blocked, "no write reached the engine");
        assert_eq!(
            returned_while_held, 0,
            "a writer returned before the engine's write of its batch"
        );
        assert_eq!(
            visible_while_held, 0,
            "a reader saw a batch that is not durable yet"
        );
    });
    let writes = book.backend().hook().writes().len() - before;
    assert!(
        writes < writers,
        "{writers} queued writers took {writes} engine writes: no group commit"
    );
    assert_eq!(
        book.get_peer("shared")
            .unwrap()
            .unwrap()
            .reconnection_attempts,
        writers as u32 / 2,
        "an increment queued behind another one did not see it (lost update)"
    );
    for t in (1..writers).step_by(2) {
        assert!(book.get_peer(&format!("q{t}")).unwrap().is_some(), "q{t}");
    }
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// A book over `f`'s backend behind a gate and a fault switch, holding "first";
/// then the leader's update of "first" is held at the gate while `queued` writers
/// store `g0..`, and the group write of those queued behind it fails `when`.
/// Returns the book and each queued writer's result (the leader's must succeed).
#[allow(clippy::type_complexity)]
fn fail_a_queued_group<F: Factory>(
    f: &F,
    clock: &ManualClock,
    when: FailWhen,
    queued: usize,
) -> (
    PeerBook<FailingBackend<GatedBackend<F::Backend>>>,
    Vec<crate::Result<()>>,
) {
    let backend = FailingBackend::new(GatedBackend::gated(f.create()));
    let book = PeerBook::open(backend, options(clock)).expect("open");
    book.store_peer(sample_peer("first")).unwrap();
    // write 1: the leader's (held at the gate, then succeeds); write 2: the group
    // of the writers queued behind it, failing
    book.backend().fail_nth(FailOp::Write, 2, when);
    let gate = book.backend().inner().hook();
    gate.set_closed(true);
    let results = std::thread::scope(|s| {
        let leader = s.spawn(|| book.update_last_seen("first").map(drop));
        let blocked = gate.wait_blocked(1);
        let handles: Vec<_> = (0..queued)
            .map(|t| {
                let book = &book;
                s.spawn(move || book.store_peer(sample_peer(&format!("g{t}"))).map(drop))
            })
            .collect();
        std::thread::sleep(SETTLE);
        gate.set_closed(false);
        assert!(blocked, "{when:?}: no write reached the engine");
        leader
            .join()
            .expect("leader")
            .expect("the first write succeeds");
        handles
            .into_iter()
            .map(|h| h.join().expect("writer"))
            .collect()
    });
    (book, results)
}

/// A group write that fails (before or after the engine applied it) fails every
/// writer queued in it: none returns `Ok`, one gets the engine's error and the
/// others [`Error::NeedsReopen`], the book is poisoned; after a reopen it verifies
/// clean, the writes acknowledged before are there and the failed group is wholly
/// there or wholly absent.
pub fn failed_group_write_fails_every_waiter<F: Factory>(f: &F) {
    for when in [FailWhen::Before, FailWhen::After] {
        let context = format!("group write failing {when:?}");
        let clock = ManualClock::new(T0);
        let queued = 6;
        let (book, results) = fail_a_queued_group(f, &clock, when, queued);
        let gate = book.backend().inner().hook();
        let engine_errors = results
            .iter()
            .filter(|r| matches!(r, Err(e) if !matches!(e, Error::NeedsReopen)))
            .count();
        assert!(
            results.iter().all(Result::is_err),
            "{context}: a writer of the failed group returned Ok"
        );
        assert!(
            engine_errors <= 1,
            "{context}: {engine_errors} engine errors"
        );
        assert!(book.needs_reopen(), "{context}: not poisoned");
        // Only a write failing after the engine call reaches the gate: then the
        // last write the gate saw is the failed group's.
        let group_ops = gate.writes().last().copied().unwrap_or(0);
        let one_store = gate.writes()[0];
        assert!(
            when != FailWhen::After || engine_errors == 0 || group_ops > one_store,
            "{context}: the failed write held one batch only ({group_ops} ops)"
        );
        assert!(matches!(
            book.store_peer(sample_peer("later")),
            Err(Error::NeedsReopen)
        ));
        let backend = book.close().expect("close").into_inner().into_inner();
        let book = PeerBook::open(f.reopen(backend), options(&clock)).expect("reopen");
        let report = book.verify().unwrap();
        assert!(report.is_clean(), "{context}: {report:?}");
        assert!(book.get_peer("first").unwrap().is_some());
        let landed = (0..queued)
            .filter(|t| book.get_peer(&format!("g{t}")).unwrap().is_some())
            .count();
        match when {
            FailWhen::Before | FailWhen::BeforeNotApplied => {
                assert_eq!(landed, 0, "{context}: a failed group landed")
            }
            FailWhen::After => assert_eq!(landed, queued, "{context}: half a group landed"),
        }
    }
}

/// A group write the backend refuses before applying anything
/// ([`BackendError::NotApplied`](crate::backend::BackendError::NotApplied), as LMDB's
/// map full at its cap): every writer queued in it fails with a backend error (none
/// with `NeedsReopen`), the book is NOT poisoned, none of the group's batches is
/// visible, and the next writes work at once on the rolled-back state: counters and
/// indexes agree (verify clean, stats count the peers), before and after a reopen.
pub fn refused_group_write_rejects_its_batches_and_rolls_back<F: Factory>(f: &F) {
    let clock = ManualClock::new(T0);
    let queued = 6;
    let (book, results) = fail_a_queued_group(f, &clock, FailWhen::BeforeNotApplied, queued);
    assert_eq!(book.backend().injected(), 1, "the refusal was injected");
    for r in &results {
        match r {
            Err(e) => assert_eq!(e.kind(), "backend", "a refused writer: {e}"),
            Ok(()) => panic!("a writer of the refused group returned Ok"),
        }
    }
    assert!(
        !book.needs_reopen(),
        "a refusal that applied nothing poisons nothing"
    );
    for t in 0..queued {
        assert!(book.get_peer(&format!("g{t}")).unwrap().is_none());
    }
    book.store_peer(sample_peer("later"))
        .expect("writes work at once after the refusal");
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 2);
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    let backend = book.close().expect("close").into_inner().into_inner();
    let book = PeerBook::open(f.reopen(backend), options(&clock)).expect("reopen");
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 2);
    assert!(book.get_peer("later").unwrap().is_some());
}
