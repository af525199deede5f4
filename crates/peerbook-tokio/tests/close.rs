//! `close()` with reads in flight and clones closing at once: it must close the
//! book itself (`Some(backend)`) once it is the last clone, so the directory
//! reopens at once, whatever reads were running when it was called.

use std::future::Future;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use peerbook::{MasterKey, NewPeer, Options, PeerBook};
use peerbook_file::{FileBackend, FileOptions};
use peerbook_tokio::{AsyncPeerBook, Error, Strategy};

const STRATEGIES: [Strategy; 2] = [Strategy::WriterThread, Strategy::SpawnBlocking];

fn key() -> MasterKey {
    MasterKey::from_bytes([9; 32])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A file-backed book in `dir` holding peer "p".
fn file_book(dir: &std::path::Path, strategy: Strategy) -> AsyncPeerBook<FileBackend> {
    let backend = FileBackend::open(dir, FileOptions::default()).unwrap();
    let book = PeerBook::open(backend, Options::new(key())).unwrap();
    book.store_peer(NewPeer {
        peer_id: "p".into(),
        ..NewPeer::default()
    })
    .unwrap();
    AsyncPeerBook::with_strategy(book, strategy)
}

/// Start a read on `book` that waits in its closure until released, and drop
/// its future once the closure runs (a read given up on, a timeout say): the
/// read goes on in the blocking pool, holding the book. Returns its release and
/// a receiver told when the read has finished.
async fn slow_read(book: &AsyncPeerBook<FileBackend>) -> (mpsc::Sender<()>, mpsc::Receiver<bool>) {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<bool>();
    let reader = book.clone();
    let read = tokio::spawn(async move {
        reader
            .read(move |b| {
                entered_tx.send(()).unwrap();
                let _ = release_rx.recv();
                let found = b.get_peer("p")?.is_some();
                done_tx.send(found).unwrap();
                Ok(())
            })
            .await
    });
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();
    read.abort(); // drops `reader`: only the read in the pool holds the book
    let _ = read.await;
    (release_tx, done_rx)
}

/// Release a read after 200 ms, from another thread.
fn release_later(release: mpsc::Sender<()>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        let _ = release.send(());
    })
}

/// Review 5, finding 3: a read running in the blocking pool held its own share
/// of the book, so `close()` of the last clone found the book shared, only
/// flushed it and returned `Ok(None)`; the book closed later on the pool thread
/// (its errors lost) and reopening right after `close()` was `Locked`. `close()`
/// now waits for the reads in flight and closes the book itself.
#[test]
fn close_waits_for_a_read_in_flight_and_closes_the_book() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let book = file_book(dir.path(), strategy);
        runtime().block_on(async {
            let (release, done) = slow_read(&book).await;
            let released = release_later(release);
            let closed = book.close().await.unwrap();
            // the read started before close() ran whole, before it returned
            let read = done.try_recv();
            released.join().unwrap();
            assert!(
                closed.is_some(),
                "{strategy:?}: the last clone's close() left the book open"
            );
            assert_eq!(
                read,
                Ok(true),
                "{strategy:?}: close() did not wait for the read"
            );
            drop(closed);
            // reopens at once: no Locked
            FileBackend::open(dir.path(), FileOptions::default())
                .unwrap_or_else(|e| panic!("{strategy:?}: reopen right after close: {e}"));
        });
    }
}

/// Two clones closing at once, a read in flight: both found the book shared
/// (the other closer's share, the read's), and both returned `Ok(None)`. The
/// last of them to finish now closes the book.
#[test]
fn of_two_clones_closing_at_once_one_closes_the_book() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let book = file_book(dir.path(), strategy);
        runtime().block_on(async {
            let (release, done) = slow_read(&book).await;
            let released = release_later(release);
            let other = book.clone();
            let (a, b) = tokio::join!(tokio::spawn(book.close()), tokio::spawn(other.close()));
            released.join().unwrap();
            let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
            assert_eq!(
                usize::from(a.is_some()) + usize::from(b.is_some()),
                1,
                "{strategy:?}: exactly one of the closes closes the book"
            );
            drop((a, b));
            assert_eq!(done.try_recv(), Ok(true), "{strategy:?}");
            FileBackend::open(dir.path(), FileOptions::default())
                .unwrap_or_else(|e| panic!("{strategy:?}: reopen right after close: {e}"));
        });
    }
}

/// A read started once `close()` has begun is refused with `Error::Stopped`, as
/// a write is; a clone's `close()` (another clone alive) stops them too.
#[test]
fn reads_after_close_are_stopped() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let book = file_book(dir.path(), strategy);
        runtime().block_on(async {
            let other = book.clone();
            assert!(book.close().await.unwrap().is_none(), "a clone is alive");
            let err = other.get_peer("p").await.unwrap_err();
            assert!(matches!(err, Error::Stopped), "{strategy:?}: {err:?}");
            // the last clone's close closes it
            assert!(other.close().await.unwrap().is_some(), "{strategy:?}");
        });
    }
}

/// Start a write on `book` that waits in its closure until released, and drop
/// its future once the closure runs: the write goes on where writes run. Returns
/// its release and a receiver told when the write has landed.
async fn slow_write(book: &AsyncPeerBook<FileBackend>) -> (mpsc::Sender<()>, mpsc::Receiver<()>) {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let writer = book.clone();
    let write = tokio::spawn(async move {
        writer
            .write(move |b| {
                entered_tx.send(()).unwrap();
                let _ = release_rx.recv();
                b.store_peer(NewPeer {
                    peer_id: "late".into(),
                    ..NewPeer::default()
                })?;
                done_tx.send(()).unwrap();
                Ok(())
            })
            .await
    });
    tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();
    write.abort();
    let _ = write.await;
    (release_tx, done_rx)
}

/// Review 6 (session 26), finding 1: of two clones closing one after the other,
/// the second found the writer's queue and thread already taken by the first and
/// returned `Ok(None)` ("flushed") while a write handed off before both was still
/// running. Every `close()` now waits for the writes handed off before it.
#[test]
fn a_second_close_waits_for_the_writes_before_it() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let book = file_book(dir.path(), strategy);
        runtime().block_on(async {
            let (release, landed) = slow_write(&book).await;
            let released = release_later(release);
            let other = book.clone();
            let first = tokio::spawn(book.close());
            // the first close() has begun once calls are refused
            tokio::time::timeout(Duration::from_secs(10), async {
                while other.get_peer("p").await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await
            .unwrap_or_else(|_| panic!("{strategy:?}: calls still served 10 s into a close()"));
            let second = other.close().await.unwrap();
            assert_eq!(
                landed.try_recv(),
                Ok(()),
                "{strategy:?}: the second close() returned before the write it followed landed"
            );
            let first = first.await.unwrap().unwrap();
            released.join().unwrap();
            assert_eq!(
                usize::from(first.is_some()) + usize::from(second.is_some()),
                1,
                "{strategy:?}: exactly one of the closes closes the book"
            );
        });
    }
}

/// Review 6, finding 1 (its second case): a `close()` given up on (a timeout)
/// after it took the writer's queue left the last clone's `close()` unable to
/// wait for the writer: it returned `Ok(None)` and the book closed later on the
/// writer thread, the directory locked meanwhile.
#[test]
fn a_close_given_up_on_leaves_the_last_close_to_close_the_book() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let book = file_book(dir.path(), strategy);
        runtime().block_on(async {
            let (release, landed) = slow_write(&book).await;
            let other = book.clone();
            let given_up = tokio::time::timeout(Duration::from_millis(50), book.close()).await;
            assert!(
                given_up.is_err(),
                "{strategy:?}: the close waited for the write"
            );
            let released = release_later(release);
            let closed = other.close().await.unwrap();
            released.join().unwrap();
            assert_eq!(landed.try_recv(), Ok(()), "{strategy:?}");
            assert!(
                closed.is_some(),
                "{strategy:?}: the last close() left the book open"
            );
            drop(closed);
            FileBackend::open(dir.path(), FileOptions::default())
                .unwrap_or_else(|e| panic!("{strategy:?}: reopen right after close: {e}"));
        });
    }
}

/// Review 6, finding 2: the last clone dropped outside any runtime while a read
/// whose future was dropped still ran: the drop returned before the book closed
/// (the read held a share), and reopening the directory was `Locked`. The drop
/// now waits for calls in flight, as `close()` does.
#[test]
fn a_drop_outside_a_runtime_waits_for_a_read_in_flight() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let book = file_book(dir.path(), strategy);
        let rt = runtime();
        let (release, done) = rt.block_on(slow_read(&book));
        // dropped on a plain thread: no runtime current there, though `rt` is alive
        let (dropped_tx, dropped) = mpsc::channel::<()>();
        let dropping = thread::spawn(move || {
            drop(book);
            dropped_tx.send(()).unwrap();
        });
        assert_eq!(
            dropped.recv_timeout(Duration::from_millis(200)),
            Err(mpsc::RecvTimeoutError::Timeout),
            "{strategy:?}: the drop returned while the read still held the book"
        );
        release.send(()).unwrap();
        dropping.join().unwrap();
        assert_eq!(
            done.try_recv(),
            Ok(true),
            "{strategy:?}: the drop did not wait"
        );
        FileBackend::open(dir.path(), FileOptions::default())
            .unwrap_or_else(|e| panic!("{strategy:?}: reopen right after the drop: {e}"));
        drop(rt);
    }
}

/// Review 6, finding 3: without a writer thread, `close()` waited for the writes
/// in the pool before it stopped reads, so a read started meanwhile was served;
/// the docs promise `Error::Stopped` for any call started once a close began.
#[test]
fn calls_started_while_close_waits_are_stopped() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let book = file_book(dir.path(), strategy);
        runtime().block_on(async {
            let (release, _landed) = slow_write(&book).await;
            let other = book.clone();
            // polled once: the close has begun and waits for the write
            let mut closing = Box::pin(book.close());
            std::future::poll_fn(|cx| {
                assert!(closing.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            let read = other.get_peer("p").await;
            assert!(
                matches!(read, Err(Error::Stopped)),
                "{strategy:?}: {read:?}"
            );
            let write = other
                .store_peer(NewPeer {
                    peer_id: "q".into(),
                    ..NewPeer::default()
                })
                .await;
            assert!(
                matches!(write, Err(Error::Stopped)),
                "{strategy:?}: {write:?}"
            );
            release.send(()).unwrap();
            assert!(closing.await.unwrap().is_none(), "{strategy:?}");
            assert!(other.close().await.unwrap().is_some(), "{strategy:?}");
        });
    }
}

/// Review 7 (session 26), finding 1: a `close()` given up on while it flushed a
/// book another clone shared left the flush holding a share of the book; the
/// last clone's `close()` then found it shared and returned `Ok(None)`, and the
/// book closed later on a pool thread. A later close now waits for that flush.
#[test]
fn a_close_given_up_on_during_its_flush_leaves_the_last_close_to_close_the_book() {
    use peerbook::conformance::failing::FailOp;
    use peerbook::conformance::hooked::HookedBackend;
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let (entered_tx, entered) = mpsc::channel::<()>();
        let (release, released) = mpsc::channel::<()>();
        let hold = std::sync::Mutex::new(Some((entered_tx, released)));
        let backend = HookedBackend::new(
            FileBackend::open(dir.path(), FileOptions::default()).unwrap(),
            move |op| {
                // the first flush waits until released
                if op == FailOp::Flush {
                    if let Some((entered, released)) = hold.lock().unwrap().take() {
                        entered.send(()).unwrap();
                        let _ = released.recv();
                    }
                }
            },
        );
        let book = AsyncPeerBook::with_strategy(
            PeerBook::open(backend, Options::new(key())).unwrap(),
            strategy,
        );
        runtime().block_on(async {
            let other = book.clone();
            let first = tokio::spawn(book.close());
            tokio::task::spawn_blocking(move || entered.recv().unwrap())
                .await
                .unwrap();
            first.abort(); // given up on while its flush runs
            let _ = first.await;
            let released = release_later(release);
            let closed = other.close().await.unwrap();
            released.join().unwrap();
            assert!(
                closed.is_some(),
                "{strategy:?}: the last close() found the given-up flush's share"
            );
            drop(closed);
            FileBackend::open(dir.path(), FileOptions::default())
                .unwrap_or_else(|e| panic!("{strategy:?}: reopen right after close: {e}"));
        });
    }
}
