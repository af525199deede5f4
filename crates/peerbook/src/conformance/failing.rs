//! [`FailingBackend`]: fault injection by wrapping a real backend (the redb way),
//! and the conformance check that a write failure never leaves a book lying.
//!
//! The wrapper fails the Nth call of one kind (`write`, `flush`, `clear`, `get`,
//! `scan`, `view`), either before passing it to the engine (nothing applied) or after
//! (the engine applied it, the caller still sees an error: a lost acknowledgement, as
//! after a failed fsync). Reads fail the same way through a read view: a view's `get`
//! and `scan` count as [`FailOp::Get`] and [`FailOp::Scan`].

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::store::{sample_peer, T0};
use super::Factory;
use crate::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, ReadView, Space, Visit,
    WriteBatch,
};
use crate::{Error, ManualClock, MasterKey, Options, PeerBook, PeerQuery};

/// Which backend call a [`FailingBackend`] fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailOp {
    /// [`Backend::write`].
    Write,
    /// [`Backend::flush`].
    Flush,
    /// [`Backend::clear`].
    Clear,
    /// [`Backend::get`] and [`ReadView::get`] on a view of this backend.
    Get,
    /// [`Backend::scan`] and [`ReadView::scan`] on a view of this backend.
    Scan,
    /// [`Backend::view`].
    View,
}

/// Whether the failing call reaches the engine first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailWhen {
    /// Fail without calling the engine: nothing applied.
    Before,
    /// Call the engine, then report a failure anyway (writes land; reads see nothing).
    After,
    /// Fail without calling the engine, with the error marked
    /// [`BackendError::NotApplied`]: what a backend says when it knows nothing was
    /// applied.
    BeforeNotApplied,
}

#[derive(Debug, Default)]
struct Plan {
    /// `(op, calls of op left before the failing one, when)`.
    armed: Option<(FailOp, u64, FailWhen)>,
}

/// A [`Backend`] wrapper that fails one chosen call; see the [module docs](self).
#[derive(Debug)]
pub struct FailingBackend<B> {
    inner: B,
    plan: Mutex<Plan>,
    injected: AtomicU64,
}

impl<B: Backend> FailingBackend<B> {
    /// Wrap `inner`; nothing fails until [`fail_nth`](Self::fail_nth).
    pub fn new(inner: B) -> Self {
        FailingBackend {
            inner,
            plan: Mutex::new(Plan::default()),
            injected: AtomicU64::new(0),
        }
    }

    /// Fail the `n`-th call (1 = the next one) of `op` from now, `when` as given.
    pub fn fail_nth(&self, op: FailOp, n: u64, when: FailWhen) {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        plan.armed = Some((op, n.max(1), when));
    }

    /// Cancel an armed failure that has not struck yet.
    pub fn disarm(&self) {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        plan.armed = None;
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// The wrapped backend, borrowed.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped backend.
    pub fn into_inner(self) -> B {
        self.inner
    }

    /// `Some(when)` when this call of `op` must fail.
    fn trip(&self, op: FailOp) -> Option<FailWhen> {
        let mut plan = self.plan.lock().unwrap_or_else(|e| e.into_inner());
        match &mut plan.armed {
            Some((armed, left, when)) if *armed == op => {
                *left -= 1;
                if *left == 0 {
                    let when = *when;
                    plan.armed = None;
                    self.injected.fetch_add(1, Ordering::Relaxed);
                    Some(when)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn run<T>(
        &self,
        op: FailOp,
        call: impl FnOnce() -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        match self.trip(op) {
            None => call(),
            Some(FailWhen::Before) => Err(injected(op, FailWhen::Before)),
            Some(FailWhen::BeforeNotApplied) => {
                Err(injected(op, FailWhen::BeforeNotApplied).not_applied())
            }
            Some(FailWhen::After) => {
                call()?;
                Err(injected(op, FailWhen::After))
            }
        }
    }
}

fn injected(op: FailOp, when: FailWhen) -> BackendError {
    BackendError::Io(io::Error::other(format!(
        "injected {op:?} failure ({when:?} the engine call)"
    )))
}

/// A read view of a [`FailingBackend`]: its reads fail as the backend's do.
struct FailingView<'a, B> {
    backend: &'a FailingBackend<B>,
    inner: Box<dyn ReadView + 'a>,
}

impl<B: Backend> ReadView for FailingView<'_, B> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.backend.run(FailOp::Get, || self.inner.get(space, key))
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.backend.run(FailOp::Scan, || {
            self.inner.scan(space, range, direction, visitor)
        })
    }
}

impl<B: Backend> Backend for FailingBackend<B> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.run(FailOp::Get, || self.inner.get(space, key))
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.run(FailOp::Scan, || {
            self.inner.scan(space, range, direction, visitor)
        })
    }

    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        match self.trip(FailOp::View) {
            None => Ok(Box::new(FailingView {
                backend: self,
                inner: self.inner.view()?,
            })),
            Some(FailWhen::BeforeNotApplied) => {
                Err(injected(FailOp::View, FailWhen::BeforeNotApplied).not_applied())
            }
            Some(when) => Err(injected(FailOp::View, when)),
        }
    }

    fn book_claim(&self) -> BookClaim {
        self.inner.book_claim()
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        self.run(FailOp::Write, || self.inner.write(batch, durability))
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.run(FailOp::Flush, || self.inner.flush())
    }

    fn clear(&self, durability: Durability) -> Result<(), BackendError> {
        self.run(FailOp::Clear, || self.inner.clear(durability))
    }

    fn disk_usage(&self) -> Result<u64, BackendError> {
        self.inner.disk_usage()
    }

    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }

    fn compact_space(&self, space: Space) -> Result<(), BackendError> {
        self.inner.compact_space(space)
    }
}

/// A write, clear or flush refused with [`BackendError::NotApplied`] errs with the
/// backend's error, poisons nothing and changes nothing: the next writes work
/// without a reopen and the book verifies clean. An unmarked failure still
/// poisons (see [`injected_write_failures_poison_until_reopen`]).
pub fn not_applied_failures_poison_nothing<F: Factory>(f: &F) {
    let clock = ManualClock::new(T0);
    let book = PeerBook::open(FailingBackend::new(f.create()), options(&clock)).expect("open");
    for i in 0..4 {
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    let refused = |context: &str, result: crate::Result<()>| {
        let e = result.expect_err(context);
        assert_eq!(e.kind(), "backend", "{context}: {e}");
        assert!(!book.needs_reopen(), "{context}: poisoned");
    };
    book.backend()
        .fail_nth(FailOp::Write, 1, FailWhen::BeforeNotApplied);
    refused("store", book.store_peer(sample_peer("n0")).map(drop));
    assert_eq!(book.get_peer("n0").unwrap(), None, "nothing stored");
    book.backend()
        .fail_nth(FailOp::Write, 1, FailWhen::BeforeNotApplied);
    refused("remove", book.remove_peer("p0").map(drop));
    assert!(book.get_peer("p0").unwrap().is_some(), "nothing removed");
    book.backend()
        .fail_nth(FailOp::Flush, 1, FailWhen::BeforeNotApplied);
    refused("flush", book.flush());
    // The counters still match the data, and writes go on.
    assert!(book.verify().unwrap().is_clean());
    book.store_peer(sample_peer("n0"))
        .expect("a write after the refusals");
    assert!(book.remove_peer("p0").unwrap());
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 4);
    book.backend()
        .fail_nth(FailOp::Clear, 1, FailWhen::BeforeNotApplied);
    refused("clear", book.clear_all());
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 4);
    assert!(book.verify().unwrap().is_clean());
    book.clear_all().expect("a clear after the refusal");
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
    assert_eq!(book.backend().injected(), 4);
    // An unmarked failure still poisons.
    book.backend().fail_nth(FailOp::Write, 1, FailWhen::Before);
    assert!(book.store_peer(sample_peer("n1")).is_err());
    assert!(book.needs_reopen());
    assert!(matches!(
        book.store_peer(sample_peer("n2")),
        Err(Error::NeedsReopen)
    ));
}

fn options(clock: &ManualClock) -> Options {
    Options::new(MasterKey::from_bytes([42; 32])).with_clock(clock.clone())
}

/// Fail the 1st..3rd write of a run of store/update/remove operations, before and
/// after the engine applies it: the failed call errs, every later write of the book
/// is refused with `NeedsReopen` (reads still work, a failed read poisons nothing),
/// and after a reopen the book verifies clean, every acknowledged write is there,
/// and the failed one is either wholly there or wholly absent.
pub fn injected_write_failures_poison_until_reopen<F: Factory>(f: &F) {
    for when in [FailWhen::Before, FailWhen::After] {
        for nth in 1..=3u64 {
            let context = format!("write #{nth} failing {when:?}");
            let clock = ManualClock::new(T0);
            let book =
                PeerBook::open(FailingBackend::new(f.create()), options(&clock)).expect("open");
            for i in 0..4 {
                book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
            }
            // a failed read is no write failure
            book.backend().fail_nth(FailOp::View, 1, FailWhen::Before);
            assert!(book.query_peers(&PeerQuery::default()).is_err());
            book.update_last_seen("p0")
                .expect("a failed read poisons nothing");

            book.backend().fail_nth(FailOp::Write, nth, when);
            // (peer id, present after the op) of every acknowledged op, then the failed one
            let mut acked: Vec<(String, bool)> = Vec::new();
            let mut failed: Option<(String, bool)> = None;
            for step in 0..6u64 {
                clock.set(T0 + 1 + step);
                let (id, present, result) = match step % 3 {
                    0 => {
                        let id = format!("n{step}");
                        let r = book.store_peer(sample_peer(&id)).map(drop);
                        (id, true, r)
                    }
                    1 => {
                        let r = book.update_last_seen("p1").map(drop);
                        ("p1".to_string(), true, r)
                    }
                    _ => {
                        let id = format!("p{}", 2 + step / 3);
                        let r = book.remove_peer(&id).map(drop);
                        (id, false, r)
                    }
                };
                match result {
                    Ok(()) => {
                        assert!(
                            failed.is_none(),
                            "{context}: a write after a failure succeeded"
                        );
                        acked.push((id, present));
                    }
                    Err(Error::NeedsReopen) => {
                        assert!(failed.is_some(), "{context}: NeedsReopen without a failure")
                    }
                    Err(e) => {
                        assert!(failed.is_none(), "{context}: second failure {e}");
                        assert_eq!(e.kind(), "backend", "{context}: {e}");
                        assert!(book.needs_reopen(), "{context}: not poisoned");
                        failed = Some((id, present));
                    }
                }
            }
            let (failed_id, failed_present) = failed.expect("the injected failure hit");
            assert_eq!(book.backend().injected(), 2, "{context}");
            assert!(book.get_peer("p0").is_ok(), "{context}: reads still work");
            let backend = book.close().expect("close a poisoned book").into_inner();
            let book = PeerBook::open(f.reopen(backend), options(&clock)).expect("reopen");
            let report = book.verify().unwrap();
            assert!(
                report.is_clean(),
                "{context}: verify after reopen: {report:?}"
            );
            for (id, present) in &acked {
                if *id == failed_id {
                    continue; // its last state is the failed op's, checked below
                }
                assert_eq!(
                    book.get_peer(id).unwrap().is_some(),
                    *present,
                    "{context}: acknowledged write to {id} lost"
                );
            }
            let now_present = book.get_peer(&failed_id).unwrap().is_some();
            if when == FailWhen::Before {
                // nothing applied: the state before the failed op
                let before = acked
                    .iter()
                    .rev()
                    .find(|(id, _)| *id == failed_id)
                    .map_or(!failed_id.starts_with('n'), |(_, p)| *p);
                assert_eq!(now_present, before, "{context}: failed write half applied");
            } else {
                assert_eq!(now_present, failed_present, "{context}: applied write lost");
            }
            book.store_peer(sample_peer("after"))
                .expect("writes work after reopen");
        }
    }
}
