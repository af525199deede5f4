//! AsyncPeerBook over real engines (memory and file backends), both write
//! strategies. The conformance kit drives a `PeerBook` directly, so these focused
//! tests mirror its main store rules through the async wrapper instead.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerbook::backend::{BookClaim, Direction, KeyRange, ReadView, Space, WriteBatch};
use peerbook::{
    AddressSource, Backend, BackendError, Durability, Error as BookError, ExportOptions,
    ImportMode, MasterKey, MemoryBackend, NewPeer, Options, PeerBook, PeerQuery,
    SessionObservation,
};
use peerbook_file::{FileBackend, FileOptions};
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

/// The store rules every backend must keep, through the async wrapper.
async fn store_rules<B: Backend + 'static>(book: AsyncPeerBook<B>) {
    // round trip, upsert keeps history
    book.store_peer(peer("a")).await.unwrap();
    book.record_session("a", &session(40)).await.unwrap();
    let again = book.store_peer(peer("a")).await.unwrap();
    assert_eq!(
        again.connection_quality.total_connections, 1,
        "upsert kept history"
    );
    let got = book
        .get_peer("a")
        .await
        .unwrap()
        .expect("stored peer is found");
    assert_eq!(got.public_key, "pk-a");
    assert_eq!(got.connection_quality.latency_ms, Some(40));

    // bad input: typed error, nothing changes
    let before = book.query_peers(&PeerQuery::default()).await.unwrap();
    let err = book.store_peer(peer("")).await.unwrap_err();
    assert!(
        matches!(err, Error::Book(BookError::InvalidInput { .. })),
        "{err:?}"
    );
    let err = book
        .record_session("nobody", &session(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Book(BookError::NotFound { .. })),
        "{err:?}"
    );
    let mut other = peer("a");
    other.public_key = "another".into();
    let err = book.learn_peer(other).await.unwrap_err();
    assert!(
        matches!(err, Error::Book(BookError::PublicKeyChanged { .. })),
        "{err:?}"
    );
    let err = book
        .add_address("a", "", AddressSource::Manual, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Book(BookError::InvalidInput { .. })),
        "{err:?}"
    );
    let after = book.query_peers(&PeerQuery::default()).await.unwrap();
    assert_eq!(before, after, "refused calls changed nothing");

    // addresses, metadata, update_peer, failures
    book.add_address("a", "/ip4/127.0.0.1/tcp/1", AddressSource::Reported, None)
        .await
        .unwrap();
    book.record_address_result("a", "/ip4/127.0.0.1/tcp/1", true)
        .await
        .unwrap();
    book.set_metadata("a", "agent", Some("x/1")).await.unwrap();
    book.update_peer("a", |r| {
        r.display_name = "renamed".into();
        Ok(())
    })
    .await
    .unwrap();
    let r = book.increment_reconnection_attempts("a").await.unwrap();
    assert_eq!(r.reconnection_attempts, 1);
    let r = book.get_peer("a").await.unwrap().unwrap();
    assert_eq!(r.addresses.len(), 1);
    assert!(r.addresses[0].last_success.is_some());
    assert_eq!(r.metadata.get("agent").map(String::as_str), Some("x/1"));
    assert_eq!(r.display_name, "renamed");

    // queries, stats, export/import, verify, remove
    book.learn_peer(peer("b")).await.unwrap();
    let all = book.query_peers(&PeerQuery::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(book.get_storage_stats().await.unwrap().peer_count, 2);
    let doc = book.export_data(ExportOptions::default()).await.unwrap();
    assert!(book.remove_peer("b").await.unwrap());
    assert!(book.get_peer("b").await.unwrap().is_none());
    book.import_data(&doc, ImportMode::Merge).await.unwrap();
    assert!(
        book.get_peer("b").await.unwrap().is_some(),
        "import restored b"
    );
    assert!(book.verify().await.unwrap().is_clean());
    book.flush().await.unwrap();
}

#[test]
fn store_rules_memory_backend() {
    for strategy in STRATEGIES {
        runtime().block_on(async {
            let book = PeerBook::open(MemoryBackend::new(), Options::new(key())).unwrap();
            let book = AsyncPeerBook::with_strategy(book, strategy);
            store_rules(book.clone()).await;
            assert!(book.close().await.unwrap().is_some());
        });
    }
}

#[test]
fn store_rules_file_backend_and_reopen() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        runtime().block_on(async {
            let backend = FileBackend::open(dir.path(), FileOptions::default()).unwrap();
            let book = AsyncPeerBook::with_strategy(
                PeerBook::open(backend, Options::new(key())).unwrap(),
                strategy,
            );
            store_rules(book.clone()).await;
            drop(book.close().await.unwrap().expect("sole owner closes"));
            // a process restart: the same directory again
            let backend = FileBackend::open(dir.path(), FileOptions::default()).unwrap();
            let book = AsyncPeerBook::new(PeerBook::open(backend, Options::new(key())).unwrap());
            let a = book
                .get_peer("a")
                .await
                .unwrap()
                .expect("a survives reopen");
            assert_eq!(a.connection_quality.latency_ms, Some(40));
            assert_eq!(a.addresses.len(), 1);
            book.close().await.unwrap();
        });
    }
}

#[test]
fn writes_after_close_of_a_clone_are_refused_typed() {
    runtime().block_on(async {
        let book = PeerBook::open(MemoryBackend::new(), Options::new(key())).unwrap();
        let book = AsyncPeerBook::new(book);
        let other = book.clone();
        assert!(
            book.close().await.unwrap().is_none(),
            "a clone keeps it open"
        );
        let err = other.store_peer(peer("a")).await.unwrap_err();
        assert!(matches!(err, Error::Stopped), "{err:?}");
    });
}

thread_local! {
    /// Set on every thread that runs one of the test's async tasks: the executor's workers.
    static WORKER: Cell<bool> = const { Cell::new(false) };
}

/// A real backend that counts writes and flushes made on an executor worker.
struct WatchedBackend<B> {
    inner: B,
    on_worker: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
}

impl<B: Backend> WatchedBackend<B> {
    fn check(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if WORKER.with(Cell::get) {
            self.on_worker.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<B: Backend> Backend for WatchedBackend<B> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<(), BackendError> {
        self.inner.scan(space, range, direction, visitor)
    }
    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        self.inner.view()
    }
    fn book_claim(&self) -> BookClaim {
        self.inner.book_claim()
    }
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        self.check();
        self.inner.write(batch, durability)
    }
    fn flush(&self) -> Result<(), BackendError> {
        self.check();
        self.inner.flush()
    }
    fn clear(&self, durability: Durability) -> Result<(), BackendError> {
        self.check();
        self.inner.clear(durability)
    }
    fn disk_usage(&self) -> Result<u64, BackendError> {
        self.inner.disk_usage()
    }
    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }
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
    let backend = WatchedBackend {
        inner: FileBackend::open(dir.path(), FileOptions::default()).unwrap(),
        on_worker: on_worker.clone(),
        writes: writes.clone(),
    };
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

#[test]
fn dropped_futures_never_half_apply() {
    for strategy in STRATEGIES {
        runtime().block_on(async {
            let book = PeerBook::open(MemoryBackend::new(), Options::new(key())).unwrap();
            let book = AsyncPeerBook::with_strategy(book, strategy);
            // never polled: nothing handed off, nothing written
            drop(book.store_peer(peer("never")));
            // handed off, then dropped while pending: the write still lands, whole
            let handed = tokio::spawn({
                let book = book.clone();
                async move { book.store_peer(peer("handed")).await }
            });
            tokio::task::yield_now().await;
            handed.abort();
            let _ = handed.await;
            book.flush().await.unwrap(); // after every write handed off before it
            assert!(book.get_peer("never").await.unwrap().is_none());
            if let Some(r) = book.get_peer("handed").await.unwrap() {
                assert_eq!(r.public_key, "pk-handed", "a landed write is whole");
            }
            assert!(
                book.verify().await.unwrap().is_clean(),
                "no half-applied write"
            );
        });
    }
}
