//! The write-behind queue: the swarm's poll loop pushes [`Op`]s without
//! blocking; one thread applies them to the book in order (module `apply`).
//! When the queue is full, an op is folded into a per-peer "latest state" slot
//! instead (a connection, latest public key, latency, addresses, metadata) and
//! whatever cannot be kept that way (a session, a failed attempt, an older fact
//! it replaces with a different one, every fact of a peer past the overflow's
//! own capacity) is counted as dropped. Both the queue and the overflow hold at
//! most `capacity` entries: memory stays bounded whatever remote peers send.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;

use peerbook::{AddressSource, Backend, Error, PeerBook, SessionObservation};
use tracing::{debug, warn};

use crate::apply::apply;

/// One thing the swarm saw, as the book will record it.
#[derive(Clone, Debug)]
pub(crate) enum Op {
    /// Connected to the peer now: an upsert that counts as a success when we
    /// dialed it or dialed it before, else (an inbound connection from a peer we
    /// never connected to) learning of it.
    Connected {
        peer: String,
        public_key: Option<String>,
        via: Via,
    },
    /// A connection ended after a session (counted for a peer we connected to).
    Session {
        peer: String,
        observation: SessionObservation,
    },
    /// A dial failed (over these addresses, when known).
    DialFailed { peer: String, addrs: Vec<String> },
    /// The latest state heard of the peer (identify, ping).
    State { peer: String, state: State },
}

impl Op {
    fn peer(&self) -> &str {
        match self {
            Op::Connected { peer, .. }
            | Op::Session { peer, .. }
            | Op::DialFailed { peer, .. }
            | Op::State { peer, .. } => peer,
        }
    }

    /// The facts it tells, what [`Stats::dropped`](crate::Stats::dropped)
    /// counts when it is lost: a session or a dial failure is one; a connection
    /// or a state counts as the state it folds into ([`State::facts`]).
    fn facts(&self) -> u64 {
        match self {
            Op::Session { .. } | Op::DialFailed { .. } => 1,
            Op::Connected { public_key, .. } => 1 + u64::from(public_key.is_some()),
            Op::State { state, .. } => state.facts(),
        }
    }
}

/// How a connection came to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// The peer connected to us.
    Inbound,
    /// We dialed it, over this address when it is one to keep.
    Dialed(Option<String>),
}

/// What the book holds for a peer after an applied op, for the behaviour's
/// address mirror: its addresses, or `None` when the book has no such peer.
pub(crate) type Stored = HashMap<String, Option<Vec<String>>>;

/// Latest-state facts: a later one replaces an earlier one field by field.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// A connection that did not fit in the queue (folded in the overflow
    /// only). Applied as [`Op::Connected`] before the rest.
    pub connected: Option<Via>,
    pub public_key: Option<String>,
    pub latency_ms: Option<u32>,
    pub addresses: Vec<(String, AddressSource)>,
    pub metadata: BTreeMap<String, String>,
}

/// Set `slot` to `new` when it is `Some`; returns 1 if that replaced another
/// value (a fact lost), 0 if the slot was empty or held the same.
fn put<T: PartialEq>(slot: &mut Option<T>, new: Option<T>) -> u64 {
    let Some(new) = new else { return 0 };
    let lost = slot.as_ref().is_some_and(|old| *old != new);
    *slot = Some(new);
    u64::from(lost)
}

impl State {
    /// The facts it holds: the connection, the key, the latency, the address
    /// list (one), each metadata entry.
    fn facts(&self) -> u64 {
        u64::from(self.connected.is_some())
            + u64::from(self.public_key.is_some())
            + u64::from(self.latency_ms.is_some())
            + u64::from(!self.addresses.is_empty())
            + self.metadata.len() as u64
    }

    /// Fold `newer` in; returns how many facts it replaced by different ones
    /// (counted as dropped: a repeated value loses nothing).
    fn merge(&mut self, newer: State) -> u64 {
        let mut replaced = 0;
        match (&mut self.connected, newer.connected) {
            // an inbound one adds nothing to a connection, nor a dial with no
            // address to one over an address
            (_, None)
            | (Some(_), Some(Via::Inbound))
            | (Some(Via::Dialed(Some(_))), Some(Via::Dialed(None))) => {}
            (Some(Via::Dialed(Some(old))), Some(Via::Dialed(Some(new)))) => {
                replaced += u64::from(*old != new);
                *old = new;
            }
            (slot, Some(new)) => *slot = Some(new),
        }
        replaced += put(&mut self.public_key, newer.public_key);
        replaced += put(&mut self.latency_ms, newer.latency_ms);
        if !newer.addresses.is_empty() {
            replaced += u64::from(!self.addresses.is_empty() && self.addresses != newer.addresses);
            self.addresses = newer.addresses;
        }
        for (k, v) in newer.metadata {
            let old = self.metadata.insert(k, v.clone());
            replaced += u64::from(old.is_some_and(|old| old != v));
        }
        replaced
    }
}

#[derive(Default)]
struct Queue {
    ops: VecDeque<Op>,
    /// Per-peer latest state of ops that did not fit, in first-overflow order
    /// (at most `capacity` peers).
    overflow: HashMap<String, State>,
    overflow_order: Vec<String>,
    /// Ops taken by the writer and not yet applied.
    in_flight: usize,
    /// Their facts (see [`Op::facts`]).
    in_flight_facts: u64,
    closed: bool,
}

impl Queue {
    /// Fold `state` into `peer`'s overflow state; returns the facts lost. The
    /// overflow is bounded too (remote peers choose how many identities they
    /// show): a new peer past `capacity` peers is lost whole, every fact of it.
    fn fold(&mut self, peer: String, state: State, capacity: usize) -> u64 {
        let full = self.overflow.len() >= capacity;
        match self.overflow.get_mut(&peer) {
            Some(latest) => latest.merge(state),
            None if full => state.facts(),
            None => {
                self.overflow_order.push(peer.clone());
                self.overflow.insert(peer, state);
                0
            }
        }
    }
}

pub(crate) struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    capacity: usize,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Latest per peer, taken by the behaviour (one entry per peer the book
    /// answered for since the last take).
    stored: Mutex<Stored>,
    /// The behaviour's task, woken when `stored` gains entries.
    waker: Mutex<Option<Waker>>,
    /// How the thread ended, and who waits for it.
    finished: Mutex<End>,
}

/// The writer thread's end, as [`Finished`] and [`WriteBehind::shutdown`] tell it.
#[derive(Default)]
struct End {
    /// The thread ended.
    done: bool,
    /// It ended in a panic (the book or its backend).
    died: bool,
    /// Its final flush failed (told to the first caller that asks).
    flush_error: Option<peerbook::Error>,
    /// Who waits for the end.
    waker: Option<Waker>,
}

impl End {
    fn outcome(&mut self) -> Result<(), crate::Error> {
        if self.died {
            return Err(crate::Error::WriterDied);
        }
        self.flush_error
            .take()
            .map_or(Ok(()), |e| Err(crate::Error::Book(e)))
    }
}

fn end(shared: &Shared) -> MutexGuard<'_, End> {
    shared.finished.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the writer thread finished when dropped: at its end, panic included.
struct FinishOnDrop(Arc<Shared>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        // After a panic nothing applies the queue any more: take no more ops and
        // count what is queued or in flight as dropped, so `stats()` shows the loss
        // (after a normal end the queue is closed and empty: nothing to count).
        // Counted before the end is told: whoever awaited it (`shutdown_async`,
        // `wait_idle`) then reads `stats()` with the loss in it.
        {
            let mut q = lock(&self.0);
            q.closed = true;
            let lost = q.ops.iter().map(Op::facts).sum::<u64>()
                + q.overflow.values().map(State::facts).sum::<u64>()
                + q.in_flight_facts;
            q.ops.clear();
            q.overflow.clear();
            q.overflow_order.clear();
            q.in_flight = 0;
            q.in_flight_facts = 0;
            self.0.dropped.fetch_add(lost, Ordering::Relaxed);
        }
        let waker = {
            let mut f = end(&self.0);
            f.done = true;
            f.died = std::thread::panicking();
            f.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        // Wake `wait_idle` (under the queue lock: a waiter checks under it).
        drop(lock(&self.0));
        self.0.wake.notify_all();
    }
}

/// Resolves once the writer thread applied everything queued, flushed the book
/// and ended (see [`WriteBehind::close`]).
pub(crate) struct Finished(Arc<Shared>);

impl Future for Finished {
    type Output = Result<(), crate::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut f = end(&self.0);
        if f.done {
            return Poll::Ready(f.outcome());
        }
        if !f.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            f.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The write-behind handle: push without blocking, flush, shut down.
pub(crate) struct WriteBehind {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Queue> {
    // A panic in the writer cannot leave the queue half-changed (plain pushes/pops).
    shared.queue.lock().unwrap_or_else(|p| p.into_inner())
}

impl WriteBehind {
    /// Start the writer thread over `book`, with a queue of `capacity` ops.
    pub(crate) fn start<B: Backend + 'static>(
        book: Arc<PeerBook<B>>,
        capacity: usize,
    ) -> Result<Self, crate::Error> {
        Self::start_on(std::thread::Builder::new(), book, capacity)
    }

    /// [`start`](Self::start) on a thread `builder` makes: an
    /// [`Error::Spawn`](crate::Error::Spawn) if the OS refuses it.
    fn start_on<B: Backend + 'static>(
        builder: std::thread::Builder,
        book: Arc<PeerBook<B>>,
        capacity: usize,
    ) -> Result<Self, crate::Error> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            stored: Mutex::new(HashMap::new()),
            waker: Mutex::new(None),
            finished: Mutex::new(End::default()),
        });
        let finish = FinishOnDrop(Arc::clone(&shared));
        let thread = builder
            .name("peerbook-libp2p".into())
            .spawn(move || {
                run(&book, &finish.0);
                if let Err(e) = book.flush() {
                    // what was applied may not be durable: told at shutdown, and
                    // here for a store dropped without one
                    warn!(error = %e, "peerbook-libp2p: the final flush of the book failed");
                    finish.0.failed.fetch_add(1, Ordering::Relaxed);
                    end(&finish.0).flush_error = Some(e);
                }
                // the book's handle goes before the thread reports its end, so a
                // caller that awaited it can reopen the book once it dropped its own
                drop(book);
                drop(finish);
            })
            .map_err(crate::Error::Spawn)?;
        Ok(WriteBehind {
            shared,
            thread: Some(thread),
        })
    }

    /// Queue `op`; never blocks on the book (only on a short queue lock).
    pub(crate) fn push(&self, op: Op) {
        let mut q = lock(&self.shared);
        if q.closed {
            self.shared.dropped.fetch_add(op.facts(), Ordering::Relaxed);
            return;
        }
        if q.ops.len() < self.shared.capacity {
            q.ops.push_back(op);
        } else {
            let folded = match op {
                Op::State { peer, state } => Some((peer, state)),
                // a connection is folded into the peer's state (it decides
                // whether the peer is a success and its later sessions count)
                Op::Connected {
                    peer,
                    public_key,
                    via,
                } => Some((
                    peer,
                    State {
                        connected: Some(via),
                        public_key,
                        ..State::default()
                    },
                )),
                // sessions and attempts cannot be folded into a state
                _ => None,
            };
            let lost = match folded {
                Some((peer, state)) => q.fold(peer, state, self.shared.capacity),
                None => 1,
            };
            self.shared.dropped.fetch_add(lost, Ordering::Relaxed);
        }
        drop(q);
        self.shared.wake.notify_all();
    }

    /// What the book answered for each peer since the last call (see [`Stored`]).
    pub(crate) fn take_stored(&self) -> Stored {
        std::mem::take(&mut *self.shared.stored.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Wake `waker` when the book answers for a peer.
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.shared.waker.lock().unwrap_or_else(|p| p.into_inner());
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    /// Ops lost to a full queue so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Peers waiting in the overflow now.
    #[cfg(test)]
    pub(crate) fn overflowed(&self) -> usize {
        lock(&self.shared).overflow.len()
    }

    /// Ops the book refused or failed so far.
    pub(crate) fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// Block until every op queued so far is applied, or the thread ended (a
    /// panic in the book or backend: what was in flight is lost).
    pub(crate) fn wait_idle(&self) {
        let ended = || end(&self.shared).done;
        let idle = |q: &Queue| q.ops.is_empty() && q.overflow.is_empty() && q.in_flight == 0;
        let mut q = lock(&self.shared);
        while !(idle(&q) || ended()) {
            q = self.shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Take no more ops: the thread applies what is queued, flushes the book and
    /// ends ([`finished`](Self::finished) tells when). Never blocks; dropping the
    /// handle afterwards does not wait for the thread.
    pub(crate) fn close(&self) {
        lock(&self.shared).closed = true;
        self.shared.wake.notify_all();
    }

    /// Resolves once the thread ended (after [`close`](Self::close)): `Err` if
    /// it died, or if its final flush failed (told to the first that asks).
    pub(crate) fn finished(&self) -> Finished {
        Finished(Arc::clone(&self.shared))
    }

    /// Apply what is queued, flush the book, then stop the thread: blocks until
    /// it ended. Tells how it ended, as [`finished`](Self::finished) does.
    pub(crate) fn shutdown(&mut self) -> Result<(), crate::Error> {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        end(&self.shared).outcome()
    }
}

impl Drop for WriteBehind {
    /// After [`close`](WriteBehind::close) the thread is left to finish on its
    /// own (whoever closed it can await [`finished`](WriteBehind::finished)).
    /// Otherwise the handle was dropped without a shutdown: the queue is applied
    /// and the thread joined here, blocking the dropping thread (an async
    /// runtime's worker, if the swarm is dropped in a task), which is logged.
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (closed, pending) = {
            let q = lock(&self.shared);
            (q.closed, q.ops.len() + q.overflow.len() + q.in_flight)
        };
        if closed {
            return; // detached: it applies what is queued, flushes and ends
        }
        if pending > 0 {
            warn!(
                pending,
                "peerbook-libp2p: store dropped without shutdown; applying the queue on this thread (blocks it)"
            );
        }
        self.close();
        let _ = thread.join();
    }
}

fn run<B: Backend>(book: &PeerBook<B>, shared: &Shared) {
    loop {
        let batch: Vec<Op> = {
            let mut q = lock(shared);
            while q.ops.is_empty() && q.overflow.is_empty() && !q.closed {
                q = shared.wake.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            if q.ops.is_empty() && q.overflow.is_empty() {
                return; // closed and drained
            }
            let mut batch: Vec<Op> = q.ops.drain(..).collect();
            let order = std::mem::take(&mut q.overflow_order);
            for peer in order {
                if let Some(state) = q.overflow.remove(&peer) {
                    batch.push(Op::State { peer, state });
                }
            }
            q.in_flight = batch.len();
            q.in_flight_facts = batch.iter().map(Op::facts).sum();
            batch
        };
        let mut answered = Stored::new();
        for op in batch {
            let peer = op.peer().to_string();
            match apply(book, op) {
                Ok(Some(record)) => {
                    let addrs = record.addresses.into_iter().map(|a| a.addr).collect();
                    answered.insert(peer, Some(addrs));
                }
                Ok(None) => {
                    answered.insert(peer, None);
                }
                Err(e) => {
                    if matches!(e, Error::NotFound { .. }) {
                        answered.insert(peer, None); // the book dropped it
                    }
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                    debug!(error = %e, "peerbook-libp2p: an observation was not recorded");
                }
            }
        }
        if !answered.is_empty() {
            shared
                .stored
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(answered);
            let waker = shared
                .waker
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        {
            let mut q = lock(shared);
            q.in_flight = 0;
            q.in_flight_facts = 0;
        }
        shared.wake.notify_all();
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
