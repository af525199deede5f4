//! What only the async front has, over real engines (memory and file backends),
//! both write strategies: closing with a clone alive, 1,000 concurrent updates
//! with no write on an executor worker, dropped futures, the last clone dropped
//! without close. The store rules run through the async front in `conformance.rs`.

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Waker};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use peerbook::conformance::hooked::HookedBackend;
use peerbook::{
    Durability, MasterKey, MemoryBackend, NewPeer, Options, PeerBook, SessionObservation,
};
use peerbook_file::testing::{FsOp, HookedFs};
use peerbook_file::{FileBackend, FileOptions, StdFs};
use peerbook_tokio::{AsyncPeerBook, Error, Strategy};

const STRATEGIES: [Strategy; 2] = [Strategy::WriterThread, Strategy::SpawnBlocking];

fn key() -> MasterKey {
    MasterKey::from_bytes([9; 32])
}

fn peer(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        display_name: format!("peer {id}"),
        public_key: format!("pk-{id}"),
        ..Default::default()
    }
}

fn session(latency: u32) -> SessionObservation {
    SessionObservation {
        success: true,
        uptime_ms: 1_000,
        latency_ms: Some(latency),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn writes_after_close_of_a_clone_are_refused_typed() {
    for strategy in STRATEGIES {
        runtime().block_on(async {
            let book = PeerBook::open(MemoryBackend::new(), Options::new(key())).unwrap();
            let book = AsyncPeerBook::with_strategy(book, strategy);
            let other = book.clone();
            assert!(
                book.close().await.unwrap().is_none(),
                "a clone keeps it open"
            );
            let err = other.store_peer(peer("a")).await.unwrap_err();
            assert!(matches!(err, Error::Stopped), "{strategy:?}: {err:?}");
        });
    }
}

thread_local! {
    /// Set on every thread that runs one of the test's async tasks: the executor's workers.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

const TASKS: usize = 50;
const PER_TASK: usize = 20;
const PEERS: usize = 10;

/// 1,000 `record_session` calls from 50 tasks on a 2-worker runtime, synced file
/// backend. Returns (writes seen on a worker, total writes, burst time, max tick gap).
fn burst(strategy: Strategy, direct: bool) -> (usize, usize, Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let on_worker = Arc::new(AtomicUsize::new(0));
    let writes = Arc::new(AtomicUsize::new(0));
    // Counts writes, flushes and clears, and those made on an executor worker.
    let backend = HookedBackend::new(
        FileBackend::open(dir.path(), FileOptions::default()).unwrap(),
        {
            let (on_worker, writes) = (on_worker.clone(), writes.clone());
            move |_| {
                writes.fetch_add(1, Ordering::Relaxed);
                if WORKER.with(Cell::get) {
                    on_worker.fetch_add(1, Ordering::Relaxed);
                }
            }
        },
    );
    let book = PeerBook::open(backend, Options::new(key())).unwrap();
    for p in 0..PEERS {
        book.store_peer(peer(&format!("p{p}"))).unwrap();
    }
    let book = AsyncPeerBook::with_strategy(book, strategy);
    let rt = runtime();
    let (elapsed, max_gap) = rt.block_on(async {
        writes.store(0, Ordering::Relaxed);
        // A ticker on the runtime: how late does a 1 ms timer fire during the burst?
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = {
            let stop = stop.clone();
            tokio::spawn(async move {
                WORKER.with(|w| w.set(true));
                let mut max = Duration::ZERO;
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    WORKER.with(|w| w.set(true));
                    max = max.max(last.elapsed());
                    last = Instant::now();
                }
                max
            })
        };
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let book = book.clone();
                tokio::spawn(async move {
                    for i in 0..PER_TASK {
                        WORKER.with(|w| w.set(true));
                        let id = format!("p{}", (t + i) % PEERS);
                        if direct {
                            // the mistake this crate prevents: a blocking call on a worker
                            book.blocking().record_session(&id, &session(10)).unwrap();
                        } else {
                            book.record_session(&id, &session(10)).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        (elapsed, ticker.await.unwrap())
    });
    // every update landed, exactly
    let total: u32 = (0..PEERS)
        .map(|p| {
            book.blocking()
                .get_peer(&format!("p{p}"))
                .unwrap()
                .unwrap()
                .connection_quality
                .total_connections
        })
        .sum();
    assert_eq!(total as usize, TASKS * PER_TASK, "every update landed");
    (
        on_worker.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed),
        elapsed,
        max_gap,
    )
}

#[test]
fn thousand_concurrent_updates_land_and_never_write_on_a_worker() {
    for strategy in STRATEGIES {
        let (on_worker, writes, elapsed, gap) = burst(strategy, false);
        println!("{strategy:?}: 1000 synced updates in {elapsed:?}, max 1 ms tick gap {gap:?}");
        // concurrent Sync updates share engine writes (group commit): at most one
        // write per update, and the wrapper saw them (every update landed: above)
        assert!(
            (1..=TASKS * PER_TASK).contains(&writes),
            "engine writes seen: {writes}"
        );
        assert_eq!(
            on_worker, 0,
            "{strategy:?}: a write ran on an executor worker"
        );
    }
    // The check bites: blocking calls made from tasks are seen on the workers.
    let (on_worker, _, _, _) = burst(Strategy::WriterThread, true);
    assert!(on_worker > 0, "direct blocking calls must be caught");
}

/// Dropped futures: one never polled hands nothing off (nothing lands); one
/// dropped while its write runs, or while its write waits in the writer's
/// queue, still lands, whole. Review 5, finding 7: this test used to accept a
/// handed-off write that never landed, and checked `verify` on a memory book
/// (clean whatever the front does); it now fails on a front that skips or cuts
/// short a write whose caller is gone.
#[test]
fn dropped_futures_never_half_apply() {
    for strategy in STRATEGIES {
        runtime().block_on(async {
            let book = PeerBook::open(MemoryBackend::new(), Options::new(key())).unwrap();
            let book = AsyncPeerBook::with_strategy(book, strategy);
            // never polled: nothing handed off, nothing written
            drop(book.store_peer(peer("never")));
            // a two-step write, its future dropped between the steps
            let (entered_tx, entered_rx) = mpsc::channel::<()>();
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let running = tokio::spawn({
                let book = book.clone();
                async move {
                    book.write(move |b| {
                        b.store_peer(peer("running"))?;
                        entered_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                        b.record_session("running", &session(7))
                    })
                    .await
                }
            });
            tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
                .await
                .unwrap();
            // a write handed off behind it (queued on the writer thread; on the
            // pool it runs beside it): polled once, which hands it off, then
            // dropped (done or not)
            {
                let mut queued = std::pin::pin!(book.store_peer(peer("queued")));
                let mut cx = Context::from_waker(Waker::noop());
                let _ = queued.as_mut().poll(&mut cx);
            }
            running.abort();
            assert!(running.await.unwrap_err().is_cancelled());
            release_tx.send(()).unwrap();
            book.flush().await.unwrap(); // after every write handed off before it
            assert!(book.get_peer("never").await.unwrap().is_none());
            let running = book.get_peer("running").await.unwrap();
            let running =
                running.unwrap_or_else(|| panic!("{strategy:?}: a write handed off was dropped"));
            assert_eq!(
                (
                    running.public_key.as_str(),
                    running.connection_quality.total_connections
                ),
                ("pk-running", 1),
                "{strategy:?}: the write landed whole"
            );
            let queued = book.get_peer("queued").await.unwrap();
            assert!(queued.is_some(), "{strategy:?}: a queued write was dropped");
        });
    }
}

/// The store in `dir` reopened once a close handed off (unawaited) has let go of
/// its lock: the backend drops its file system (and a hook in it) before its lock.
fn reopen_once_released(dir: &std::path::Path) -> FileBackend {
    let start = Instant::now();
    loop {
        match FileBackend::open(dir, FileOptions::default()) {
            Ok(backend) => return backend,
            Err(peerbook::backend::BackendError::Locked { .. })
                if start.elapsed() < Duration::from_secs(10) =>
            {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

/// Sends the id of the thread it is dropped on.
struct OnDrop(mpsc::Sender<ThreadId>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(thread::current().id());
    }
}

/// Dropping the last clone without `close()` (here in a task, on an executor
/// worker) must not close the backend on the dropping thread: the file backend's
/// drop syncs the Buffered writes still pending, a whole fsync. The book goes to
/// the writer thread or the blocking pool; once it is dropped there the writes
/// are durable.
#[test]
fn dropping_the_last_clone_closes_the_backend_off_the_dropping_thread() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let syncs = Arc::new(Mutex::new(Vec::<ThreadId>::new()));
        let (dropped_tx, dropped_rx) = mpsc::channel();
        // Records the thread of every fsync; its hook is dropped with the backend.
        let fs = HookedFs::new(StdFs, {
            let (syncs, on_drop) = (syncs.clone(), OnDrop(dropped_tx));
            move |op, _path| {
                let _ = &on_drop;
                if op == FsOp::Sync {
                    syncs.lock().unwrap().push(thread::current().id());
                }
                Ok(())
            }
        });
        let backend =
            FileBackend::open_with_vfs(Arc::new(fs), dir.path(), FileOptions::default()).unwrap();
        let mut options = Options::new(key());
        options.durability = Durability::Buffered;
        let book = PeerBook::open(backend, options).unwrap();
        let book = AsyncPeerBook::with_strategy(book, strategy);
        let rt = runtime();
        let caller = rt.block_on(async {
            for p in 0..PEERS {
                book.store_peer(peer(&format!("p{p}"))).await.unwrap();
            }
            let syncs = syncs.clone();
            tokio::spawn(async move {
                syncs.lock().unwrap().clear();
                drop(book); // the last clone, never closed
                thread::current().id()
            })
            .await
            .unwrap()
        });
        let dropped_on = dropped_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the backend is dropped soon after the last clone");
        assert_ne!(
            dropped_on, caller,
            "{strategy:?}: the backend was dropped on the dropping worker"
        );
        let syncs = syncs.lock().unwrap().clone();
        assert!(
            !syncs.is_empty(),
            "{strategy:?}: the drop synced the pending Buffered writes"
        );
        assert!(
            !syncs.contains(&caller),
            "{strategy:?}: a sync ran on the dropping worker"
        );
        drop(rt);
        // durable: a new book on the directory finds every write
        let backend = reopen_once_released(dir.path());
        let book = PeerBook::open(backend, Options::new(key())).unwrap();
        for p in 0..PEERS {
            assert!(book.get_peer(&format!("p{p}")).unwrap().is_some(), "p{p}");
        }
    }
}

/// A panic in a user closure (`update_peer`'s change, `write`, `read`) is a typed
/// error for its caller; the book is unchanged (the change runs on a copy, before
/// the commit) and the writer serves the next writes.
#[test]
fn a_panicking_closure_is_a_typed_error_and_the_writer_keeps_serving() {
    for strategy in STRATEGIES {
        runtime().block_on(async {
            let book = PeerBook::open(MemoryBackend::new(), Options::new(key())).unwrap();
            let book = AsyncPeerBook::with_strategy(book, strategy);
            book.store_peer(peer("a")).await.unwrap();
            let err = book
                .update_peer("a", |record| {
                    record.display_name = "half-changed".into();
                    panic!("the change gave up")
                })
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Panicked(m) if m == "the change gave up"),
                "{strategy:?}: {err:?}"
            );
            let a = book.get_peer("a").await.unwrap().unwrap();
            assert_eq!(
                a.display_name, "peer a",
                "the panicked change is not stored"
            );
            assert!(!book.needs_reopen());
            assert!(book.verify().await.unwrap().is_clean());
            // the writer still serves
            book.store_peer(peer("b")).await.unwrap();
            let a = book
                .update_peer("a", |record| {
                    record.display_name = "changed".into();
                    Ok(())
                })
                .await
                .unwrap();
            assert_eq!(a.display_name, "changed");
            let owned = String::from("an owned message");
            let err = book
                .write(move |_| -> peerbook::Result<()> { panic!("{owned}") })
                .await
                .unwrap_err();
            assert!(
                matches!(&err, Error::Panicked(m) if m == "an owned message"),
                "{err:?}"
            );
            let err = book
                .read(|_| -> peerbook::Result<()> { std::panic::panic_any(7_u8) })
                .await
                .unwrap_err();
            assert!(matches!(&err, Error::Panicked(_)), "{err:?}");
            assert!(book.get_peer("b").await.unwrap().is_some());
            assert!(book.close().await.unwrap().is_some(), "closed whole");
        });
    }
}

/// `flush()` and `close()` wait for every write handed off before them, awaited
/// or not (here: one whose future was dropped while it ran).
#[test]
fn flush_and_close_wait_for_writes_handed_off_before_them() {
    for strategy in STRATEGIES {
        for close in [false, true] {
            runtime().block_on(async {
                let book = PeerBook::open(MemoryBackend::new(), Options::new(key())).unwrap();
                let book = AsyncPeerBook::with_strategy(book, strategy);
                let (entered_tx, entered_rx) = mpsc::channel::<()>();
                let (release_tx, release_rx) = mpsc::channel::<()>();
                let handed = tokio::spawn({
                    let book = book.clone();
                    async move {
                        book.write(move |b| {
                            entered_tx.send(()).unwrap();
                            release_rx.recv().unwrap();
                            b.store_peer(peer("late"))
                        })
                        .await
                    }
                });
                // the write runs; nobody awaits it any more
                tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
                    .await
                    .unwrap();
                handed.abort();
                let _ = handed.await;
                let release = thread::spawn(move || {
                    thread::sleep(Duration::from_millis(200));
                    release_tx.send(()).unwrap();
                });
                if close {
                    let backend = book.close().await.unwrap();
                    let backend = backend
                        .unwrap_or_else(|| panic!("{strategy:?}: no clone left, yet not closed"));
                    let book = PeerBook::open(backend, Options::new(key())).unwrap();
                    assert!(
                        book.get_peer("late").unwrap().is_some(),
                        "{strategy:?}: closed before the write landed"
                    );
                } else {
                    book.flush().await.unwrap();
                    assert!(
                        book.blocking().get_peer("late").unwrap().is_some(),
                        "{strategy:?}: flushed before the write landed"
                    );
                }
                release.join().unwrap();
            });
        }
    }
}

/// A file-backed book with Buffered writes pending (written with no runtime,
/// through `blocking()`), whose backend's every fsync takes 100 ms once `slow` is
/// set: a close still running when the caller goes on is caught reopening.
fn slow_closing_book(
    dir: &std::path::Path,
    strategy: Strategy,
) -> (AsyncPeerBook<FileBackend>, Arc<AtomicBool>) {
    let slow = Arc::new(AtomicBool::new(false));
    let fs = HookedFs::new(StdFs, {
        let slow = slow.clone();
        move |op, _path| {
            if op == FsOp::Sync && slow.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(100));
            }
            Ok(())
        }
    });
    let backend = FileBackend::open_with_vfs(Arc::new(fs), dir, FileOptions::default()).unwrap();
    let mut options = Options::new(key());
    options.durability = Durability::Buffered;
    let book = AsyncPeerBook::with_strategy(PeerBook::open(backend, options).unwrap(), strategy);
    for p in 0..PEERS {
        book.blocking().store_peer(peer(&format!("p{p}"))).unwrap();
    }
    (book, slow)
}

fn assert_reopens_with_every_peer(dir: &std::path::Path, what: &str) {
    let backend = FileBackend::open(dir, FileOptions::default())
        .unwrap_or_else(|e| panic!("{what}: reopen right after the drop: {e}"));
    let book = PeerBook::open(backend, Options::new(key())).unwrap();
    for p in 0..PEERS {
        assert!(
            book.get_peer(&format!("p{p}")).unwrap().is_some(),
            "{what}: p{p}"
        );
    }
}

/// With no runtime current, dropping the last clone closes the book before the
/// drop returns: the directory reopens right away (no Locked) and holds the
/// Buffered writes (a process exiting here would not cut the final sync).
#[test]
fn dropping_the_last_clone_with_no_runtime_closes_before_returning() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let (book, slow) = slow_closing_book(dir.path(), strategy);
        assert!(tokio::runtime::Handle::try_current().is_err());
        slow.store(true, Ordering::Relaxed);
        drop(book);
        assert_reopens_with_every_peer(dir.path(), &format!("{strategy:?}"));
    }
}

/// The last clone dropped on the writer thread itself (moved into a write's
/// closure, the caller's future gone): no runtime is current there, but the drop
/// must not join its own thread; the close runs right after that write.
#[test]
fn dropping_the_last_clone_on_the_writer_thread_does_not_join_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (book, _slow) = slow_closing_book(dir.path(), Strategy::WriterThread);
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (dropped_tx, dropped_rx) = mpsc::channel();
    let rt = runtime();
    rt.block_on(async {
        let last = book.clone();
        let handed = tokio::spawn(async move {
            book.write(move |_| {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                // the last clone, dropped here on the writer thread
                let dropped = std::panic::catch_unwind(AssertUnwindSafe(|| drop(last)));
                dropped_tx.send(dropped.is_ok()).unwrap();
                Ok(())
            })
            .await
        });
        tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
            .await
            .unwrap();
        handed.abort(); // drops `book`: the clone in the closure is the last
        let _ = handed.await;
    });
    drop(rt);
    release_tx.send(()).unwrap();
    let dropped = dropped_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(dropped, "the drop on the writer thread panicked");
    // closed soon after, on the writer thread
    drop(reopen_once_released(dir.path()));
    assert_reopens_with_every_peer(dir.path(), "writer thread");
}

/// With a runtime current and no writer thread, the last clone's drop hands the
/// book to tokio's blocking pool, whose `spawn_blocking` panics when the OS
/// refuses it a thread. A drop must never panic (during an unwind that aborts):
/// the book is then closed right there. The refusal is real: the runtime's
/// threads ask for a stack larger than the address space.
#[test]
fn dropping_the_last_clone_when_the_pool_gets_no_thread_closes_it_inline() {
    let refusing = || {
        tokio::runtime::Builder::new_current_thread()
            .thread_stack_size(1 << 50)
            .build()
            .unwrap()
    };
    let spawn = refusing()
        .block_on(async { std::panic::catch_unwind(|| drop(tokio::task::spawn_blocking(|| ()))) });
    assert!(spawn.is_err(), "the OS gave the pool a thread");
    for unwinding in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (book, _slow) = slow_closing_book(dir.path(), Strategy::SpawnBlocking);
        refusing().block_on(async {
            if unwinding {
                let dropped = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    let _last = book;
                    panic!("dropped while unwinding");
                }));
                assert!(dropped.is_err());
            } else {
                drop(book);
            }
            // closed before the drop returned
            assert_reopens_with_every_peer(dir.path(), &format!("unwinding {unwinding}"));
        });
    }
}
