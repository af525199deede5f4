//! Conformance tests of consistency under concurrency: read views, paged walks
//! racing writers, key rotation racing writers and import, past blacklist ends,
//! and one book per backend instance.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::store::{sample_peer, T0};
use super::Factory;
use crate::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use crate::{
    CandidateQuery, Error, ExportOptions, ImportMode, ManualClock, MasterKey, NewPeer, Options,
    Order, PeerBook, PeerQuery, SortBy,
};

pub(super) fn options(clock: &ManualClock, key: MasterKey) -> Options {
    let mut o = Options::new(key).with_clock(clock.clone());
    o.durability = Durability::Buffered;
    o.max_peers = 100_000;
    o.failed_attempts = u32::MAX;
    o
}

pub(super) fn scan_all(
    view: &dyn crate::backend::ReadView,
    space: Space,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    view.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .expect("scan in a view");
    out
}

/// A view sees the backend as of its opening: a write on another thread after it
/// opened is invisible in its gets and scans (both directions, every space), and
/// visible to a new view.
pub fn view_is_a_snapshot<F: Factory>(f: &F) {
    let backend = f.create();
    let mut batch = WriteBatch::new();
    for i in 0..50u8 {
        batch.put(Space::Peers, vec![b'k', i], vec![i]);
        batch.put(Space::Meta, vec![b'm', i], vec![i]);
    }
    backend.write(batch, Durability::Sync).unwrap();
    let view = backend.view().expect("view");
    let before_peers = scan_all(&*view, Space::Peers);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut batch = WriteBatch::new();
            batch.put(Space::Peers, vec![b'k', 0], b"changed".to_vec());
            batch.delete(Space::Peers, vec![b'k', 1]);
            batch.put(Space::Peers, vec![b'k', 200], b"new".to_vec());
            batch.put(Space::Meta, vec![b'm', 0], b"changed".to_vec());
            backend.write(batch, Durability::Sync).unwrap();
        })
        .join()
        .expect("writer thread");
    });
    assert_eq!(view.get(Space::Peers, &[b'k', 0]).unwrap(), Some(vec![0]));
    assert_eq!(view.get(Space::Peers, &[b'k', 1]).unwrap(), Some(vec![1]));
    assert_eq!(view.get(Space::Peers, &[b'k', 200]).unwrap(), None);
    assert_eq!(view.get(Space::Meta, &[b'm', 0]).unwrap(), Some(vec![0]));
    assert_eq!(
        scan_all(&*view, Space::Peers),
        before_peers,
        "a scan in a view must not see a later write"
    );
    let mut reversed = Vec::new();
    view.scan(
        Space::Peers,
        KeyRange::all(),
        Direction::Reverse,
        &mut |k, _| {
            reversed.push(k.to_vec());
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    reversed.reverse();
    let keys: Vec<_> = before_peers.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        reversed, keys,
        "reverse scan in a view sees the same snapshot"
    );
    drop(view);
    let fresh = backend.view().unwrap();
    assert_eq!(
        fresh.get(Space::Peers, &[b'k', 0]).unwrap(),
        Some(b"changed".to_vec())
    );
    assert_eq!(fresh.get(Space::Peers, &[b'k', 1]).unwrap(), None);
}

/// A book of `n` plain peers at T0, stored in one import.
pub(super) fn populated<F: Factory>(f: &F, n: usize) -> (PeerBook<F::Backend>, ManualClock) {
    let clock = ManualClock::new(T0);
    let book =
        PeerBook::open(f.create(), options(&clock, MasterKey::from_bytes([42; 32]))).expect("open");
    let mut doc = book
        .export_data(ExportOptions {
            include_secrets: false,
        })
        .unwrap();
    for i in 0..n {
        clock.set(T0 + i as u64);
        let record = book
            .create_peer(NewPeer {
                peer_id: format!("peer-{i:05}"),
                display_name: "p".into(),
                public_key: "pk".into(),
                ..NewPeer::default()
            })
            .unwrap();
        doc.peers.push(record);
    }
    book.import_data(&doc, ImportMode::Merge).unwrap();
    clock.set(T0 + n as u64);
    (book, clock)
}

/// Queries (every sort and order) and candidates over 2,000 peers while another
/// thread keeps moving peers in the by_last_seen index: every result lists each
/// peer exactly once.
pub fn paged_query_under_concurrent_updates<F: Factory>(f: &F) {
    const N: usize = 2_000;
    let (book, clock) = populated(f, N);
    let book = Arc::new(book);
    let stop = Arc::new(AtomicBool::new(false));
    let updater = {
        let (book, clock, stop) = (Arc::clone(&book), clock.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                clock.advance(Duration::from_millis(1));
                // walk the peers in index order so the walker keeps meeting moved ones
                book.update_last_seen(&format!("peer-{:05}", i % N))
                    .expect("update");
                i += 7;
            }
            i
        })
    };
    let check = |what: &str, ids: Vec<String>| {
        let unique: BTreeSet<_> = ids.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "{what}: {} duplicate peers in one result",
            ids.len() - unique.len()
        );
        assert_eq!(ids.len(), N, "{what}: peers missing from one result");
    };
    for round in 0..6 {
        for (sort_by, order) in [
            (SortBy::LastSeen, Order::Asc),
            (SortBy::LastSeen, Order::Desc),
            (SortBy::Quality, Order::Asc),
            (SortBy::ReconnectionScore, Order::Desc),
        ] {
            let found = book
                .query_peers(&PeerQuery {
                    sort_by,
                    order,
                    ..PeerQuery::default()
                })
                .unwrap();
            check(
                &format!("round {round} query {sort_by:?} {order:?}"),
                found.into_iter().map(|r| r.peer_id.to_string()).collect(),
            );
        }
        let candidates = book
            .get_reconnection_candidates(&CandidateQuery {
                limit: N,
                max_age: None,
            })
            .unwrap();
        check(
            &format!("round {round} candidates"),
            candidates
                .into_iter()
                .map(|c| c.peer.peer_id.to_string())
                .collect(),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let updates = updater.join().expect("updater thread");
    assert!(updates > 0, "the updater ran");
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "verify after the race: {report:?}");
}

/// rotate_key while three threads store peers with secrets and a fourth imports:
/// after every round, every secret of every peer opens under the current key, and
/// the book reopens with the final key and verifies clean.
pub fn rotate_key_under_concurrent_writers<F: Factory>(f: &F) {
    let clock = ManualClock::new(T0);
    let mut key_bytes = [42u8; 32];
    let book = PeerBook::open(
        f.create(),
        options(&clock, MasterKey::from_bytes(key_bytes)),
    )
    .expect("open");
    let book = Arc::new(book);
    for round in 0..20u8 {
        let mut doc = book.export_data(ExportOptions::default()).unwrap();
        doc.peers = (0..3)
            .map(|i| {
                book.create_peer(sample_peer(&format!("imp-{round}-{i}")))
                    .unwrap()
            })
            .collect();
        let doc = Arc::new(doc);
        key_bytes = [round.wrapping_add(100); 32];
        let new_key = MasterKey::from_bytes(key_bytes);
        let mut handles = Vec::new();
        for t in 0..3 {
            let book = Arc::clone(&book);
            handles.push(std::thread::spawn(move || {
                for i in 0..4 {
                    book.store_peer(sample_peer(&format!("r{round}-t{t}-{i}")))
                        .expect("store during rotation");
                }
            }));
        }
        {
            let (book, doc) = (Arc::clone(&book), Arc::clone(&doc));
            handles.push(std::thread::spawn(move || {
                match book.import_data(&doc, ImportMode::Merge) {
                    // the document was sealed under the key before rotation
                    Ok(_) | Err(Error::WrongKey) => {}
                    Err(e) => panic!("import during rotation: {e}"),
                }
            }));
        }
        book.rotate_key(&new_key).expect("rotate");
        for h in handles {
            h.join().expect("writer thread");
        }
        for record in book.query_peers(&PeerQuery::default()).unwrap() {
            book.open_shared_secret(&record).unwrap_or_else(|e| {
                panic!("round {round}: secret of {} lost: {e}", record.peer_id)
            });
            book.open_ice_credential(&record, 1).unwrap_or_else(|e| {
                panic!("round {round}: credential of {} lost: {e}", record.peer_id)
            });
        }
        let doc = book.export_data(ExportOptions::default()).unwrap();
        assert!(doc.key_check.is_some(), "export has a key check");
        let probe = PeerBook::open(
            crate::MemoryBackend::new(),
            options(&clock, MasterKey::from_bytes(key_bytes)),
        )
        .unwrap();
        probe
            .import_data(&doc, ImportMode::Replace)
            .unwrap_or_else(|e| panic!("round {round}: export pairs seals and key check: {e}"));
    }
    let book = Arc::try_unwrap(book).expect("threads joined");
    let backend = book.close().unwrap();
    let book = PeerBook::open(
        f.reopen(backend),
        options(&clock, MasterKey::from_bytes(key_bytes)),
    )
    .expect("reopen with the final key");
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// A blacklist that ended in the past (`Some(0)`, `Some(1)`, just before now) ranks
/// like no blacklist: the peer is a candidate and appears in score-sorted queries.
pub fn past_blacklist_ranked_normally<F: Factory>(f: &F) {
    let clock = ManualClock::new(T0);
    let book =
        PeerBook::open(f.create(), options(&clock, MasterKey::from_bytes([42; 32]))).unwrap();
    let ends = [Some(0), Some(1), Some(T0 - 1), Some(T0), None];
    for (i, end) in ends.iter().enumerate() {
        let mut record = book.create_peer(sample_peer(&format!("p{i}"))).unwrap();
        record.blacklist_until = *end;
        book.store_peer(record).unwrap();
    }
    let candidates = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: None,
        })
        .unwrap();
    let mut ids: Vec<_> = candidates
        .iter()
        .map(|c| c.peer.peer_id.to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["p0", "p1", "p2", "p3", "p4"],
        "past blacklist ends rank"
    );
    let ranked = book
        .query_peers(&PeerQuery {
            sort_by: SortBy::ReconnectionScore,
            ..PeerQuery::default()
        })
        .unwrap();
    assert_eq!(
        ranked.len(),
        ends.len(),
        "score-sorted query lists every peer"
    );
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// A second book over a backend instance a live book uses is refused with
/// `Locked` (with no engine error as source: the book itself refused); after the
/// first book is dropped or closed, it opens.
pub fn second_book_on_one_backend_refused<F: Factory>(f: &F) {
    let clock = ManualClock::new(T0);
    let opts = || options(&clock, MasterKey::from_bytes([42; 32]));
    let shared = Arc::new(f.create());
    let first = PeerBook::open(Arc::clone(&shared), opts()).expect("first book");
    first.store_peer(sample_peer("a")).unwrap();
    match PeerBook::open(Arc::clone(&shared), opts()) {
        Err(Error::Locked { source: None, .. }) => {}
        other => panic!("a second live book must be refused: {other:?}"),
    }
    drop(first);
    let second = PeerBook::open(Arc::clone(&shared), opts()).expect("after drop");
    assert!(second.get_peer("a").unwrap().is_some());
    let back = second.close().unwrap();
    let third = PeerBook::open(back, opts()).expect("after close");
    assert!(third.get_peer("a").unwrap().is_some());
}
