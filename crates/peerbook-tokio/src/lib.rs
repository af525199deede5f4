//! An async front for [`peerbook`]: [`AsyncPeerBook`] exposes the whole
//! [`PeerBook`] API as `async fn`, and no call ever runs on an executor thread (a
//! synced write blocks its thread for a whole fsync, 0.2-0.5 ms on a laptop disk,
//! which would stall every task of that worker).
//!
//! - **Writes** go to one dedicated writer thread through a channel (the default,
//!   [`Strategy::WriterThread`]), or each to tokio's blocking pool
//!   ([`Strategy::SpawnBlocking`]). The book serializes writers under one lock
//!   anyway, so a single writer thread does the same work without waking a pool
//!   thread per call. Measured on this project's 2-core machine, a burst of 1,000
//!   `record_session` calls from 50 tasks on a 2-worker runtime (file backend, fsync
//!   on each commit, debug build, 3 runs): writer thread 132-141 ms, `spawn_blocking`
//!   per call 144-156 ms (and up to 50 blocking-pool threads woken for the burst).
//!   With either, a 1 ms timer on the runtime fired at most 2-5 ms late.
//! - **Reads** go to tokio's blocking pool ([`tokio::task::spawn_blocking`]) and run
//!   in parallel with each other and with the writer; [`AsyncPeerBook::close`]
//!   waits for them.
//!
//! # Cancellation
//!
//! Each call is one atomic [`PeerBook`] operation, handed off whole: dropping the
//! future before it is first polled does nothing; dropping it later never leaves a
//! half-applied write, but a write already handed off runs to completion (or
//! failure) even though nobody awaits its result. Reads have no effect either way.
//!
//! # Closing
//!
//! [`AsyncPeerBook::close`] stops every clone's calls (later ones are
//! [`Error::Stopped`]), waits for the reads and writes started before it (their
//! futures dropped or not), flushes and closes the book, and says how that went:
//! the only way to know the book closed well. With other clones alive it returns
//! `Ok(None)` and the book closes with the last one; of clones closed at once,
//! the last to finish closes the book.
//! Dropping the last clone without it closes the book too (unless an `Arc` taken
//! from [`AsyncPeerBook::blocking`] outlives it), after the writes handed off
//! before, unseen (an error is lost), and when depends on where it is dropped:
//!
//! - **No tokio runtime current** (plain sync code, or after the runtime is gone):
//!   the drop waits for the reads and writes still running (their futures
//!   dropped: it blocks for as long as they run), and returns once the book is
//!   closed. It runs on the writer thread,
//!   which the drop then waits for, or (no writer thread) right there. `drop(book)` then
//!   reopening the same directory works, and exiting the process right after cuts
//!   nothing short. One exception: dropped on the writer thread itself (a clone
//!   moved into a [`write`](AsyncPeerBook::write) closure), the close is queued
//!   there to run right after that write, and the drop returns first.
//! - **A runtime current** (on an executor worker or in its blocking pool): the
//!   backend's close may block (a sync of pending [`Durability::Buffered`] writes,
//!   RocksDB's close), so the drop only hands it off and returns: to the writer
//!   thread after the writes queued before, or (no writer thread) to tokio's
//!   blocking pool, whose runtime waits for it when it shuts down (unless shut
//!   down with a timeout or in the background). A pool that cannot take it (shutting
//!   down, or the OS refuses it a thread: tokio's `spawn_blocking` would panic, and
//!   a drop never does) leaves it to run right there, blocking. Until it has run the directory stays locked, and a
//!   process that exits first (the writer thread is not waited for) may cut it
//!   short: await `close()`.
//!
//! ```
//! use peerbook::{MasterKey, MemoryBackend, NewPeer, Options, PeerBook, SessionObservation};
//! use peerbook_tokio::AsyncPeerBook;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), peerbook_tokio::Error> {
//!     let book = PeerBook::open(MemoryBackend::new(), Options::new(MasterKey::generate()?))?;
//!     let book = AsyncPeerBook::new(book);
//!     book.store_peer(NewPeer { peer_id: "peer-a".into(), ..Default::default() }).await?;
//!     let session = SessionObservation { success: true, uptime_ms: 60_000, latency_ms: Some(40) };
//!     let record = book.record_session("peer-a", &session).await?;
//!     assert_eq!(record.connection_quality.total_connections, 1);
//!     book.close().await?; // waits for queued writes, flushes, closes
//!     Ok(())
//! }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod api;

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::JoinHandle;

#[cfg(doc)]
use peerbook::Durability;
use peerbook::{Backend, PeerBook};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinError;

/// What an async call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The book refused or failed the call (match its variants as usual).
    #[error(transparent)]
    Book(#[from] peerbook::Error),
    /// The call could not run or finish: the book was closed, its writer thread
    /// stopped, or the runtime is shutting down. A write that reports this may or
    /// may not have landed (read it back).
    #[error("the async peerbook worker is gone (closed or runtime shutting down)")]
    Stopped,
    /// The call panicked, most likely in its closure (`update_peer`'s change, one
    /// given to [`AsyncPeerBook::write`] or [`AsyncPeerBook::read`]). Carries the
    /// panic's message as its code wrote it (the front adds no record contents).
    /// The writer goes on serving. A closure of `update_peer` runs on a copy of
    /// the record before anything is written: its panic leaves the book as an
    /// error it returned would; one given to `write` may have completed some of
    /// its calls (each of them whole) before it panicked.
    #[error("an async peerbook call panicked: {0}")]
    Panicked(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where writes run (reads always use tokio's blocking pool).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// One dedicated thread takes writes from a channel, in order of arrival.
    /// The channel is unbounded: every write handed off waits there, holding its
    /// arguments, until the thread gets to it (one per task awaiting a write,
    /// plus those whose futures were dropped after the hand-off). A caller that
    /// can start writes faster than the disk takes them (writes fired from
    /// tasks nobody awaits) should bound them itself, with a
    /// [`Semaphore`] say.
    #[default]
    WriterThread,
    /// Each write is a [`tokio::task::spawn_blocking`] task (so a write must be
    /// called within a tokio runtime, and one still queued in the pool when the
    /// runtime shuts down is dropped unrun). Writes run concurrently (the book
    /// still serializes them); `flush()` and `close()` wait for those handed off
    /// before them.
    SpawnBlocking,
}

type Job = Box<dyn FnOnce() + Send>;

struct Writer {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Closed by the writer thread as it ends (after its last job): what every
    /// `close()` awaits, so none returns while a write handed off before it is
    /// still queued or running, whichever closer took the queue.
    done: Arc<Semaphore>,
    /// The writer thread's id: a drop there must not wait for calls in flight.
    id: std::thread::ThreadId,
}

/// Closes the writer's `done` semaphore when the writer thread ends.
struct Done(Arc<Semaphore>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Writes in tokio's blocking pool (no writer thread) each hold one of the
/// pool's permits while they run; `flush()` and `close()` take all of them, and
/// the semaphore is fair: they wait for every write handed off before them, and
/// later writes wait for them. `close()` then closes it: later writes are
/// [`Error::Stopped`], as with a writer thread. Reads hold a permit of their own
/// semaphore the same way, which `close()` takes whole and closes.
const POOL_PERMITS: u32 = 1 << 28;

/// A share of the book held by a call running in tokio's blocking pool, with
/// the permit that lets `close()` wait for it: the share goes first (fields drop
/// in order), so once `close()` holds every permit no call still holds a share
/// (it would read as a clone alive and leave the book open), whether the call
/// ran or its task was dropped unrun.
struct Lease<B: Backend + 'static> {
    book: Arc<PeerBook<B>>,
    _permit: OwnedSemaphorePermit,
}

/// Take every permit of `semaphore` (waiting for the calls that hold one; it is
/// fair, so calls started later wait behind), then close it: later calls fail.
/// Returns at once if it is closed already (another `close()` waited).
async fn stop(semaphore: &Semaphore) {
    if let Ok(all) = semaphore.acquire_many(POOL_PERMITS).await {
        semaphore.close();
        drop(all);
    }
}

struct Inner<B: Backend + 'static> {
    /// `None` only once taken: by [`AsyncPeerBook::close`] or by the drop.
    book: Option<Arc<PeerBook<B>>>,
    writer: Option<Writer>,
    /// Used without a writer thread: see [`POOL_PERMITS`].
    pool: Arc<Semaphore>,
    /// Held by each read: see [`POOL_PERMITS`].
    reads: Arc<Semaphore>,
    /// Held by a `close()`'s flush of a book other clones still share: the flush
    /// holds a share of the book, which a later `close()` or drop waits for.
    /// Never closed.
    flushes: Arc<Semaphore>,
    /// Set when a `close()` begins: reads and writes started later are
    /// [`Error::Stopped`] at once, whatever `close()` is still waiting for. It
    /// stays set if that `close()` fails or is given up on: the clones' calls
    /// are then `Stopped`, and the book closes with the last clone.
    closing: AtomicBool,
}

impl<B: Backend + 'static> Inner<B> {
    fn book(&self) -> &Arc<PeerBook<B>> {
        self.book
            .as_ref()
            .expect("the book leaves only a closed or dropped Inner")
    }
}

/// The last clone gone without [`AsyncPeerBook::close`]: the book may be closing
/// with it (the backend's drop: a file sync of pending Buffered writes, LMDB's
/// sync, RocksDB's close), blocking work.
///
/// - With a tokio runtime current the dropping thread is likely an executor
///   worker, which must not block: the book goes to the writer thread (after the
///   writes queued before it), else to tokio's blocking pool, unawaited.
/// - With none (plain sync code, a runtime already gone) the drop closes the book
///   before it returns, so the directory can be reopened right after and a process
///   exit does not cut the final sync: the book goes to the writer thread, which is
///   then joined (it ends with that job), or is dropped here. Except on the writer
///   thread itself (the last clone dropped inside a write): it must not join itself,
///   so the book is queued to run right after that write.
impl<B: Backend + 'static> Drop for Inner<B> {
    fn drop(&mut self) {
        let Some(book) = self.book.take() else {
            return;
        };
        let mut job: Job = Box::new(move || drop(book));
        let runtime = tokio::runtime::Handle::try_current().ok();
        let on_writer = self
            .writer
            .as_ref()
            .is_some_and(|w| w.id == std::thread::current().id());
        if runtime.is_none() && !on_writer {
            // A call whose future was dropped may still run in a pool, holding a
            // share of the book: the book closes only once it ends, so wait for it.
            // (On the writer thread the close is queued behind the current write
            // instead: waiting there would hold every queued write, or wait on a
            // read that waits on this write's lock.)
            block_on(idle(&self.reads));
            block_on(idle(&self.pool));
            block_on(idle(&self.flushes));
        }
        if let Some(w) = self.writer.as_mut() {
            let queue = w.queue.get_mut().unwrap_or_else(PoisonError::into_inner);
            if let Some(queue) = queue.take() {
                match queue.send(job) {
                    Ok(()) => {
                        // The last sender gone: the thread ends after this job.
                        drop(queue);
                        let thread = w.thread.get_mut().unwrap_or_else(PoisonError::into_inner);
                        let thread = thread.take();
                        if let Some(thread) = thread.filter(|t| {
                            runtime.is_none() && t.thread().id() != std::thread::current().id()
                        }) {
                            // It catches every panic: it ends with the book's drop.
                            let _ = thread.join();
                        }
                        return;
                    }
                    Err(mpsc::SendError(back)) => job = back,
                }
            } else if runtime.is_none() {
                // A `close()` took the queue and was given up on before the writer
                // ended: its jobs hold shares of the book, so wait for them.
                let thread = w.thread.get_mut().unwrap_or_else(PoisonError::into_inner);
                if let Some(thread) = thread
                    .take()
                    .filter(|t| t.thread().id() != std::thread::current().id())
                {
                    let _ = thread.join();
                }
            }
        }
        match runtime {
            Some(runtime) => to_blocking_pool(&runtime, job),
            None => job(),
        }
    }
}

/// Wait until no call holds a permit of `semaphore` (returns at once once it is
/// closed: a `close()` waited already).
async fn idle(semaphore: &Semaphore) {
    drop(semaphore.acquire_many(POOL_PERMITS).await);
}

/// Poll `future` to its end on this thread, parked between polls: for a drop
/// outside any runtime (tokio's semaphores need none).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

/// Hand `job` to the runtime's blocking pool, never panicking (it runs in a
/// `Drop`, maybe during an unwind, where a panic aborts): `spawn_blocking` panics
/// when the pool has no thread and the OS refuses one; `job` then runs here, as
/// with no runtime (blocking this thread beats losing the close or aborting). A
/// pool shutting down drops the task unrun: `job` is then dropped here, which
/// drops the book all the same.
fn to_blocking_pool(runtime: &tokio::runtime::Handle, job: Job) {
    let slot = Arc::new(Mutex::new(Some(job)));
    let take =
        |slot: &Mutex<Option<Job>>| slot.lock().unwrap_or_else(PoisonError::into_inner).take();
    let queued = Arc::clone(&slot);
    // After a refused spawn the task may stay queued: it finds the slot empty.
    let task = move || {
        if let Some(job) = take(&queued) {
            job();
        }
    };
    if catch_unwind(AssertUnwindSafe(|| drop(runtime.spawn_blocking(task)))).is_err() {
        if let Some(job) = take(&slot) {
            job();
        }
    }
    // Dropped unrun (pool shutting down), the task left `job` in the slot: it
    // drops with the slot, here.
}

/// A [`PeerBook`] usable from async code: cheap to clone (an `Arc` inside), `Send +
/// Sync`, every call moved off the executor. See the crate docs.
pub struct AsyncPeerBook<B: Backend + 'static> {
    inner: Arc<Inner<B>>,
}

impl<B: Backend + 'static> Clone for AsyncPeerBook<B> {
    fn clone(&self) -> Self {
        AsyncPeerBook {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<B: Backend + 'static> std::fmt::Debug for AsyncPeerBook<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncPeerBook")
            .field("book", self.inner.book())
            .field("writer_thread", &self.inner.writer.is_some())
            .finish()
    }
}

impl<B: Backend + 'static> AsyncPeerBook<B> {
    /// Wrap `book` with the default [`Strategy::WriterThread`].
    pub fn new(book: PeerBook<B>) -> Self {
        Self::with_strategy(book, Strategy::default())
    }

    /// Wrap `book`, running writes as `strategy` says. Needs no runtime to call:
    /// the writer thread is a plain OS thread.
    pub fn with_strategy(book: PeerBook<B>, strategy: Strategy) -> Self {
        let writer = match strategy {
            Strategy::SpawnBlocking => None,
            Strategy::WriterThread => {
                let (tx, rx) = mpsc::channel::<Job>();
                let done = Arc::new(Semaphore::new(0));
                let ended = Done(Arc::clone(&done));
                let thread = std::thread::Builder::new()
                    .name("peerbook-writer".into())
                    .spawn(move || {
                        let _ended = ended;
                        // Ends when every sender is gone (close or last clone dropped).
                        // A job reports its own panic (`run_caught`); this catch only
                        // keeps the thread alive whatever a job does.
                        for job in rx {
                            let _ = catch_unwind(AssertUnwindSafe(job));
                        }
                    })
                    .ok();
                // Without a thread (spawn refused), fall back to the blocking pool.
                thread.map(|t| Writer {
                    queue: Mutex::new(Some(tx)),
                    id: t.thread().id(),
                    thread: Mutex::new(Some(t)),
                    done,
                })
            }
        };
        AsyncPeerBook {
            inner: Arc::new(Inner {
                book: Some(Arc::new(book)),
                writer,
                pool: Arc::new(Semaphore::new(POOL_PERMITS as usize)),
                reads: Arc::new(Semaphore::new(POOL_PERMITS as usize)),
                flushes: Arc::new(Semaphore::new(POOL_PERMITS as usize)),
                closing: AtomicBool::new(false),
            }),
        }
    }

    /// Wait for every write handed off to the blocking pool so far (none to wait
    /// for with a writer thread: its queue keeps the order).
    pub(crate) async fn writes_handed_off(&self) -> Result<()> {
        if self.inner.writer.is_none() {
            let all = self.inner.pool.acquire_many(POOL_PERMITS).await;
            drop(all.map_err(|_| Error::Stopped)?);
        }
        Ok(())
    }

    /// The wrapped book, for blocking code that shares it (on a blocking thread).
    pub fn blocking(&self) -> &Arc<PeerBook<B>> {
        self.inner.book()
    }

    /// Run `f` on the book in tokio's blocking pool: any read, or a custom
    /// sequence of calls. Must be called within a tokio runtime. Once started it
    /// runs to its end even if this future is dropped, and [`close`](Self::close)
    /// waits for it; a read started once a `close()` (of any clone) has begun is
    /// [`Error::Stopped`].
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&PeerBook<B>) -> peerbook::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.open()?;
        let lease = Lease {
            _permit: Arc::clone(&self.inner.reads)
                .acquire_owned()
                .await
                .map_err(|_| Error::Stopped)?,
            book: Arc::clone(self.inner.book()),
        };
        let read = move || {
            let result = run_caught(&lease.book, f);
            drop(lease);
            result
        };
        joined(tokio::task::spawn_blocking(read).await)?
    }

    /// [`Error::Stopped`] once a `close()` has begun.
    fn open(&self) -> Result<()> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(Error::Stopped);
        }
        Ok(())
    }

    /// Run the write `f` on the book where writes run (see [`Strategy`]). Once the
    /// call is handed off it completes even if this future is dropped (with
    /// [`Strategy::SpawnBlocking`], unless the runtime shuts down before the pool
    /// starts it). With [`Strategy::SpawnBlocking`] it must be called within a
    /// tokio runtime. A write started once a `close()` (of any clone) has begun is
    /// [`Error::Stopped`].
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&PeerBook<B>) -> peerbook::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.open()?;
        let Some(writer) = &self.inner.writer else {
            // Handed off once the permit is ours: it goes with the write.
            let lease = Lease {
                _permit: Arc::clone(&self.inner.pool)
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Stopped)?,
                book: Arc::clone(self.inner.book()),
            };
            let write = move || {
                let result = run_caught(&lease.book, f);
                drop(lease);
                result
            };
            return joined(tokio::task::spawn_blocking(write).await)?;
        };
        let (tx, rx) = oneshot::channel();
        let book = Arc::clone(self.inner.book());
        let job: Job = Box::new(move || {
            // The caller may be gone (future dropped): the write stands anyway.
            let _ = tx.send(run_caught(&book, f));
        });
        {
            let queue = writer.queue.lock().map_err(|_| Error::Stopped)?;
            let sender = queue.as_ref().ok_or(Error::Stopped)?;
            sender.send(job).map_err(|_| Error::Stopped)?;
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(Error::Stopped),
        }
    }

    /// Stop every clone's reads and writes (later ones are [`Error::Stopped`]),
    /// wait for those started before (a read or write whose future was dropped
    /// included), flush, and close the book, returning its backend: the only way
    /// to know the book closed well.
    ///
    /// The book closes with the last clone: while another clone is alive (or an
    /// `Arc` from [`blocking`](Self::blocking)) this returns `Ok(None)` once the
    /// book is flushed, and the book stays open until the last clone drops (see
    /// the crate docs on dropping). Of clones closed at once, the last to finish
    /// closes the book (`Ok(Some(_))`, or its error); each waits for every call
    /// started before any of them. Must be called within a tokio runtime. A panic
    /// in the backend's flush or close is [`Error::Panicked`].
    pub async fn close(self) -> Result<Option<B>> {
        let inner = self.inner;
        inner.closing.store(true, Ordering::Release);
        // 1. No more writes; those handed off before are waited for, whichever
        // closer took the writer's queue (a `close()` given up on included).
        match &inner.writer {
            Some(w) => {
                drop(w.queue.lock().map_err(|_| Error::Stopped)?.take());
                // Closed when the writer thread has run its last job.
                let _ = w.done.acquire().await;
            }
            None => stop(&inner.pool).await,
        }
        // 2. No more reads; those running are waited for.
        stop(&inner.reads).await;
        // 3. A share of the book is held here only while `inner` is: so whoever
        // takes the last `inner` finds no other closer holding one.
        let mut inner = match Arc::try_unwrap(inner) {
            Ok(inner) => inner,
            Err(shared) => {
                // The flush's share of the book goes with a permit, so a later
                // close() or drop waits for it even if this close() is given up on.
                let lease = Lease {
                    _permit: Arc::clone(&shared.flushes)
                        .acquire_owned()
                        .await
                        .map_err(|_| Error::Stopped)?,
                    book: Arc::clone(shared.book()),
                };
                let flush = move || {
                    let flushed = lease.book.flush();
                    drop(lease);
                    flushed
                };
                // Dropped unseen when this turns out to be the last clone: the
                // close below flushes again and reports that.
                let flushed = joined(tokio::task::spawn_blocking(flush).await);
                // Another clone may have gone meanwhile (one closing at once).
                match Arc::into_inner(shared) {
                    Some(inner) => inner,
                    None => {
                        flushed??;
                        return Ok(None);
                    }
                }
            }
        };
        // A flush of an earlier close() given up on may still hold the book.
        idle(&inner.flushes).await;
        let book = inner.book.take().expect("an open book");
        drop(inner); // nothing left for its drop to hand off
        let closed = tokio::task::spawn_blocking(move || -> peerbook::Result<Option<B>> {
            match Arc::try_unwrap(book) {
                Ok(book) => book.close().map(Some),
                // an `Arc` from `blocking()` outlives this
                Err(shared) => shared.flush().map(|()| None),
            }
        })
        .await;
        Ok(joined(closed)??)
    }
}

/// The result of a task of tokio's blocking pool: a panic there (the backend's,
/// in its flush or close) is [`Error::Panicked`]; a task the runtime dropped
/// unrun (shutting down) is [`Error::Stopped`].
fn joined<T>(result: std::result::Result<T, JoinError>) -> Result<T> {
    result.map_err(|e| {
        if e.is_panic() {
            Error::Panicked(panic_message(e.into_panic()))
        } else {
            Error::Stopped
        }
    })
}

/// `f(book)`, a panic caught as [`Error::Panicked`]. Unwind safety: the book's
/// state is its backend's and its writer lock's; a panic under that lock leaves it
/// poisoned, which the book ignores (it keeps no half-made change there), and a
/// closure the book calls (`update_peer`'s) changes only a copy before the commit.
fn run_caught<B: Backend, T>(
    book: &PeerBook<B>,
    f: impl FnOnce(&PeerBook<B>) -> peerbook::Result<T>,
) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(|| f(book))) {
        Ok(result) => Ok(result?),
        Err(payload) => Err(Error::Panicked(panic_message(payload))),
    }
}

/// The text a panic was raised with (`panic!("..")` gives a `&str` or a `String`).
fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(message) => *message,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(message) => (*message).to_owned(),
            Err(_) => "a panic with no message".to_owned(),
        },
    }
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
