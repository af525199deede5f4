//! Unit tests of opening a book: what a schema migration writes, and the
//! compaction it asks of the backend.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, Op, ReadView, Space, Visit,
    WriteBatch,
};
use crate::conformance::failing::FailingBackend;
use crate::conformance::hooked::HookedBackend;
use crate::conformance::migration::{to_schema_3, to_schema_4};
use crate::store::keys;
use crate::{ManualClock, MasterKey, MemoryBackend, NewPeer, Options, PeerBook, Secret};

/// Puts and deletes of by_last_seen entries, and of rank entries, over every
/// batch written.
#[derive(Default)]
struct IndexWrites {
    puts: AtomicUsize,
    deletes: AtomicUsize,
    rank_puts: AtomicUsize,
    rank_deletes: AtomicUsize,
}

impl IndexWrites {
    /// `backend` counting into `writes` the index ops of every batch it writes.
    fn counting<B: Backend>(backend: B, writes: &Arc<IndexWrites>) -> HookedBackend<B> {
        let seen = Arc::clone(writes);
        HookedBackend::with_batches(backend, move |_, batch| {
            for op in batch.map(WriteBatch::ops).unwrap_or_default() {
                let counter = match op {
                    Op::Put {
                        space: Space::ByLastSeen,
                        ..
                    } => &seen.puts,
                    Op::Delete {
                        space: Space::ByLastSeen,
                        ..
                    } => &seen.deletes,
                    Op::Put {
                        space: Space::ByQuality,
                        key,
                        ..
                    } if !keys::is_quality_key(key) => &seen.rank_puts,
                    Op::Delete {
                        space: Space::ByQuality,
                        key,
                    } if !keys::is_quality_key(key) => &seen.rank_deletes,
                    _ => continue,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    /// `(by_last_seen puts, deletes, rank puts, deletes)`.
    fn counts(&self) -> (usize, usize, usize, usize) {
        let load = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        (
            load(&self.puts),
            load(&self.deletes),
            load(&self.rank_puts),
            load(&self.rank_deletes),
        )
    }
}

/// A migration from 0 (a version-0 store: records, no meta) puts each
/// by_last_seen and rank entry once: the 0 -> 1 rebuild leaves the indexes as
/// they must be, so the steps to 4 and 5 do not delete them and put them all
/// again.
#[test]
fn migration_from_0_writes_the_last_seen_entries_once() {
    const N: usize = 10;
    let clock = ManualClock::new(1_700_000_000_000);
    let options = || Options::new(MasterKey::from_bytes([1; 32])).with_clock(clock.clone());
    let source = PeerBook::open(MemoryBackend::new(), options()).unwrap();
    for i in 0..N {
        source
            .store_peer(NewPeer {
                peer_id: format!("peer-{i}"),
                public_key: "pk".into(),
                shared_secret: Some(Secret::from(format!("secret of {i}"))),
                ..NewPeer::default()
            })
            .unwrap();
        clock.advance(std::time::Duration::from_secs(1));
    }
    let source = source.close().unwrap();
    // the records only: a store written before versioning
    let legacy = MemoryBackend::new();
    let mut batch = WriteBatch::new();
    source
        .scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |k, v| {
                batch.put(Space::Peers, k.to_vec(), v.to_vec());
                std::ops::ControlFlow::Continue(())
            },
        )
        .unwrap();
    legacy.write(batch, Durability::Sync).unwrap();

    let writes = Arc::new(IndexWrites::default());
    let backend = IndexWrites::counting(legacy, &writes);
    let book = PeerBook::open(backend, options()).expect("open migrates a version-0 store");
    assert_eq!(
        writes.counts(),
        (N, 0, N, 0),
        "by_last_seen and rank entries put once, none deleted"
    );
    assert!(book.verify().unwrap().is_clean());
    assert_eq!(
        book.backend()
            .inner()
            .get(Space::Meta, b"schema_version")
            .unwrap(),
        Some(super::SCHEMA_VERSION.to_be_bytes().to_vec())
    );
}

/// [`holds_book`](super::holds_book) is what `open` takes for an existing book:
/// not a bare backend, nor one with other meta keys; a book `open` made, and a
/// book from before schema versions (peer records, no version), are.
#[test]
fn holds_book_tells_books_from_bare_backends() {
    use super::holds_book;
    let bare = MemoryBackend::new();
    assert!(!holds_book(&bare).unwrap());
    let mut batch = WriteBatch::new();
    batch.put(Space::Meta, b"x".to_vec(), b"y".to_vec());
    bare.write(batch, Durability::Sync).unwrap();
    assert!(!holds_book(&bare).unwrap());
    let book = PeerBook::open(bare, Options::new(MasterKey::from_bytes([7; 32]))).unwrap();
    let backend = book.close().unwrap();
    assert!(holds_book(&backend).unwrap());
    let old = MemoryBackend::new();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"p".to_vec(), b"r".to_vec());
    old.write(batch, Durability::Sync).unwrap();
    assert!(holds_book(&old).unwrap());
    // through a trait object, as engine registries hold backends
    let shared: Arc<dyn Backend> = Arc::new(old);
    assert!(holds_book(&*shared).unwrap());
}

/// [`PeerBook::created_book`] is true only for the open that started the book:
/// a reopen, and the open migrating an older book, are not.
#[test]
fn created_book_only_for_the_open_that_started_it() {
    let key = MasterKey::from_bytes([7; 32]);
    let book = PeerBook::open(MemoryBackend::new(), Options::new(key.clone())).unwrap();
    assert!(book.created_book());
    let book = PeerBook::open(book.close().unwrap(), Options::new(key.clone())).unwrap();
    assert!(!book.created_book());
    let old = book.close().unwrap();
    to_schema_3(&old);
    let book = PeerBook::open(old, Options::new(key)).unwrap();
    assert!(!book.created_book());
}

/// A backend with no version and no peers but a `migrating` marker (a book
/// cleared, or whose first open crashed, beside a leftover marker) starts a new
/// book without the marker: the next open finds nothing to resume.
#[test]
fn a_new_book_drops_a_leftover_marker() {
    let key = MasterKey::from_bytes([7; 32]);
    let store = Compactions::default();
    let mut batch = WriteBatch::new();
    batch.put(
        Space::Meta,
        keys::META_MIGRATING.to_vec(),
        3u32.to_be_bytes().to_vec(),
    );
    store.write(batch, Durability::Sync).unwrap();
    let book = PeerBook::open(store.clone(), Options::new(key.clone())).unwrap();
    assert!(book.created_book());
    assert_eq!(
        store.get(Space::Meta, keys::META_MIGRATING).unwrap(),
        None,
        "the new book's meta drops the marker"
    );
    drop(book.close().unwrap());
    let book = PeerBook::open(store.clone(), Options::new(key)).unwrap();
    assert!(!book.created_book());
    assert_eq!(store.asked(), [], "no migration resumed, none compacted");
}

/// A [`MemoryBackend`] that records every space it is asked to compact, in
/// order (its clones share the record and the data).
#[derive(Clone, Default)]
struct Compactions {
    inner: MemoryBackend,
    asked: Arc<Mutex<Vec<Space>>>,
}

impl Compactions {
    fn asked(&self) -> Vec<Space> {
        self.asked.lock().unwrap().clone()
    }
}

impl Backend for Compactions {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
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
        self.inner.write(batch, durability)
    }
    fn flush(&self) -> Result<(), BackendError> {
        self.inner.flush()
    }
    fn clear(&self, durability: Durability) -> Result<(), BackendError> {
        self.inner.clear(durability)
    }
    fn disk_usage(&self) -> Result<u64, BackendError> {
        self.inner.disk_usage()
    }
    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }
    fn compact_space(&self, space: Space) -> Result<(), BackendError> {
        self.asked.lock().unwrap().push(space);
        self.inner.compact_space(space)
    }
}

/// A book of three peers opened through `wrap` on `store`, closed.
fn three_peers<B: Backend>(
    store: &Compactions,
    wrap: &impl Fn(Compactions) -> B,
    clock: &ManualClock,
) {
    let options = Options::new(MasterKey::from_bytes([1; 32])).with_clock(clock.clone());
    let book = PeerBook::open(wrap(store.clone()), options).unwrap();
    for i in 0..3 {
        book.store_peer(NewPeer {
            peer_id: format!("peer-{i}"),
            public_key: "pk".into(),
            ..NewPeer::default()
        })
        .unwrap();
        clock.advance(std::time::Duration::from_secs(1));
    }
    drop(book.close().unwrap());
}

/// The steps to schema 4 and 5 ask the backend to compact by_last_seen and
/// by_quality once each, and the request reaches the engine through the backend
/// `wrap` puts around it: a schema-3 book (by_last_seen in the old key layout)
/// opened through `wrap` migrates and compacts both, a schema-4 book (no rank
/// region) by_quality only; creating the book and reopening it migrated compact
/// nothing.
fn the_migration_compacts_the_indexes_through<B: Backend>(wrap: impl Fn(Compactions) -> B) {
    let clock = ManualClock::new(1_700_000_000_000);
    let options = || Options::new(MasterKey::from_bytes([1; 32])).with_clock(clock.clone());
    for (from, compacted) in [
        (3, &[Space::ByLastSeen, Space::ByQuality][..]),
        (4, &[Space::ByQuality][..]),
    ] {
        let store = Compactions::default();
        three_peers(&store, &wrap, &clock);
        assert_eq!(store.asked(), [], "a new book compacts nothing");
        if from == 3 {
            to_schema_3(&store);
        } else {
            to_schema_4(&store);
        }
        let book = PeerBook::open(wrap(store.clone()), options()).expect("open migrates");
        assert_eq!(
            store.get(Space::Meta, b"schema_version").unwrap(),
            Some(super::SCHEMA_VERSION.to_be_bytes().to_vec())
        );
        assert!(book.verify().unwrap().is_clean());
        drop(book.close().unwrap());
        assert_eq!(
            store.asked(),
            compacted,
            "from {from}: each space once, through the wrapper"
        );
        drop(PeerBook::open(wrap(store.clone()), options()).unwrap());
        assert_eq!(
            store.asked(),
            compacted,
            "from {from}: a migrated book's reopen compacts nothing"
        );
    }
}

#[test]
fn the_migration_compacts_the_indexes() {
    the_migration_compacts_the_indexes_through(|store| store);
}

#[test]
fn the_migration_compacts_the_indexes_through_an_arc() {
    the_migration_compacts_the_indexes_through(Arc::new);
}

#[test]
fn the_migration_compacts_the_indexes_through_a_hooked_backend() {
    the_migration_compacts_the_indexes_through(|store| HookedBackend::new(store, |_| {}));
}

#[test]
fn the_migration_compacts_the_indexes_through_a_failing_backend() {
    the_migration_compacts_the_indexes_through(FailingBackend::new);
}

/// A migration from 4 puts each record's rank entry, in by_quality, and writes
/// no other index entry: by_last_seen and the quality keys are schema 4's.
#[test]
fn migration_from_4_puts_only_the_rank_entries() {
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Compactions::default();
    three_peers(&store, &|store| store, &clock);
    let entries = |b: &dyn Backend| {
        [Space::ByLastSeen, Space::ByQuality].map(|space| {
            let mut out = Vec::new();
            b.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                std::ops::ControlFlow::Continue(())
            })
            .unwrap();
            out
        })
    };
    let want = entries(&store);
    let region = to_schema_4(&store);
    assert_eq!(region.len(), 3);
    let writes = Arc::new(IndexWrites::default());
    let backend = IndexWrites::counting(store.inner.clone(), &writes);
    let options = Options::new(MasterKey::from_bytes([1; 32])).with_clock(clock.clone());
    let book = PeerBook::open(backend, options).expect("open migrates schema 4");
    assert_eq!(writes.counts(), (0, 0, 3, 0), "the rank entries only");
    assert!(book.verify().unwrap().is_clean());
    assert!(
        entries(book.backend()) == want,
        "the indexes of the book before its downgrade"
    );
}
