//! Unit tests of opening a book: what a schema migration writes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::backend::{Backend, Direction, Durability, KeyRange, Op, Space, WriteBatch};
use crate::conformance::hooked::HookedBackend;
use crate::{ManualClock, MasterKey, MemoryBackend, NewPeer, Options, PeerBook, Secret};

/// Puts and deletes of by_last_seen entries, over every batch written.
#[derive(Default)]
struct IndexWrites {
    puts: AtomicUsize,
    deletes: AtomicUsize,
}

/// A migration from 0 (a version-0 store: records, no meta) puts each
/// by_last_seen entry once: the 0 -> 1 rebuild leaves the index as it must be,
/// so the step to 4 does not delete it and put it all again.
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
    let seen = Arc::clone(&writes);
    let backend = HookedBackend::with_batches(legacy, move |_, batch| {
        for op in batch.map(WriteBatch::ops).unwrap_or_default() {
            match op {
                Op::Put {
                    space: Space::ByLastSeen,
                    ..
                } => seen.puts.fetch_add(1, Ordering::Relaxed),
                Op::Delete {
                    space: Space::ByLastSeen,
                    ..
                } => seen.deletes.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
    });
    let book = PeerBook::open(backend, options()).expect("open migrates a version-0 store");
    assert_eq!(writes.puts.load(Ordering::Relaxed), N, "entries put");
    assert_eq!(writes.deletes.load(Ordering::Relaxed), 0, "entries deleted");
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
