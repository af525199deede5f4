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
use crate::store::keys;
use crate::{
    CandidateQuery, Error, ExportOptions, ImportMode, ManualClock, MasterKey, NewPeer, Options,
    Order, PeerBook, PeerQuery, SortBy,
};

fn options(clock: &ManualClock, key: MasterKey) -> Options {
    let mut o = Options::new(key).with_clock(clock.clone());
    o.durability = Durability::Buffered;
    o.max_peers = 100_000;
    o.failed_attempts = u32::MAX;
    o
}

fn scan_all(view: &dyn crate::backend::ReadView, space: Space) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    view.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .expect("scan in a view");
    out
}

/// The by_last_seen entries of `book`, in key order.
fn last_seen_index<B: Backend>(book: &PeerBook<B>) -> Vec<(Vec<u8>, Vec<u8>)> {
    scan_all(&*book.backend().view().unwrap(), Space::ByLastSeen)
}

/// `(schema_version, meta migrating)` of a backend.
fn migration_state(backend: &impl Backend) -> (u32, Option<u32>) {
    let version = backend.get(Space::Meta, b"schema_version").unwrap();
    let version = keys::decode_u32(&version.expect("a schema version")).expect("4 bytes");
    let marker = backend.get(Space::Meta, keys::META_MIGRATING).unwrap();
    (
        version,
        marker.map(|m| keys::decode_u32(&m).expect("a marker of 4 bytes")),
    )
}

/// Into `batch`: every by_last_seen entry of `entries` (current layout) written
/// back in the key layout of schemas 1 to 3 (`last_seen` + id, oldest first).
fn to_legacy_layout(batch: &mut WriteBatch, entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
    for (k, v) in entries {
        let (seen, id) = keys::split_last_seen_key(&k).expect("current layout");
        batch.delete(Space::ByLastSeen, k);
        batch.put(Space::ByLastSeen, keys::legacy_last_seen_key(seen, &id), v);
    }
}

/// Writes `backend`'s by_last_seen index back the way schema 3 stored it (in the
/// old key layout, under schema version 3) and returns the index as it was: what
/// the migration to schema 4 must yield.
pub(crate) fn to_schema_3(backend: &impl Backend) -> Vec<(Vec<u8>, Vec<u8>)> {
    let index = scan_all(&*backend.view().unwrap(), Space::ByLastSeen);
    let mut batch = WriteBatch::new();
    to_legacy_layout(&mut batch, index.iter().cloned());
    batch.put(
        Space::Meta,
        b"schema_version".to_vec(),
        3u32.to_be_bytes().to_vec(),
    );
    backend.write(batch, Durability::Sync).unwrap();
    index
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
fn populated<F: Factory>(f: &F, n: usize) -> (PeerBook<F::Backend>, ManualClock) {
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

/// A schema-1 book (score hints without the blacklist tag, so `Some(0)` was stored
/// like `None`) of more peers than one migration batch: opening migrates it to
/// schema 2, after which it verifies clean and ranks the `Some(0)` peer.
pub fn schema_1_score_hints_migrate<F: Factory>(f: &F) {
    const N: usize = 1_500;
    let (book, clock) = populated(f, N);
    let mut record = book.get_peer("peer-00007").unwrap().unwrap();
    record.blacklist_until = Some(0);
    book.store_peer(record).unwrap();
    let backend = book.close().unwrap();
    // Write the book back the way schema 1 stored it.
    let mut old = Vec::new();
    backend
        .scan(
            Space::ByLastSeen,
            KeyRange::all(),
            Direction::Forward,
            &mut |k, v| {
                assert_eq!(v.len(), 16, "schema 2 hint");
                let mut v1 = v[..7].to_vec();
                v1.extend_from_slice(&v[8..]);
                old.push((k.to_vec(), v1));
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    let mut batch = WriteBatch::new();
    // and in the key layout of schema 1
    to_legacy_layout(&mut batch, old);
    batch.put(
        Space::Meta,
        b"schema_version".to_vec(),
        1u32.to_be_bytes().to_vec(),
    );
    backend.write(batch, Durability::Sync).unwrap();
    let backend = f.reopen(backend);
    let book = PeerBook::open(backend, options(&clock, MasterKey::from_bytes([42; 32])))
        .expect("open migrates schema 1");
    assert_eq!(
        book.backend().get(Space::Meta, b"schema_version").unwrap(),
        Some(crate::store::SCHEMA_VERSION.to_be_bytes().to_vec())
    );
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "after migration: {report:?}");
    let candidates = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: N,
            max_age: None,
        })
        .unwrap();
    assert_eq!(candidates.len(), N, "every peer ranks after migration");
}

/// A schema-3 book (by_last_seen keys `last_seen` + id, oldest first) of more peers
/// than one migration batch: a migration to schema 4 interrupted by a failed write
/// leaves version 3 untouched when its first write (the marker) failed, and
/// otherwise (the marker landed but was not acknowledged; after some delete
/// batches; after some put batches; before the marker's removal) version 4 with the
/// `migrating` marker naming version 3, which an older peerbook refuses; only a
/// last write that landed leaves no marker. The next open yields exactly the index
/// a clean migration does: the entries the book had before it was written back in
/// the old layout. A version-4 store with the marker and an intact index opens the
/// same, and so does one whose marker is damaged (a version not below 4, or not 4
/// bytes: the migration runs again from 0). At the edge of the batch loops (records
/// and entries an exact multiple of a batch) with a corrupt record, the migration
/// puts the entries of the decodable records only; verify reports the corrupt one
/// and repair quarantines it.
pub fn schema_3_index_migrates_after_interruption<F: Factory>(f: &F) {
    use super::failing::{FailOp, FailWhen, FailingBackend};
    const N: usize = 2_100; // with the two ties below: three batches of 1024
    let key = || MasterKey::from_bytes([42; 32]);
    // the schema-3 book of a clean schema-4 one of n + 2 peers, and the index it
    // must migrate to
    let downgraded = |n: usize| {
        let (book, clock) = populated(f, n);
        // ties: two peers seen at one time, one id a prefix of another
        for id in ["peer-0", "peer-00"] {
            book.store_peer(NewPeer {
                peer_id: id.into(),
                display_name: "p".into(),
                public_key: "pk".into(),
                ..NewPeer::default()
            })
            .unwrap();
        }
        let backend = book.close().unwrap();
        let want = to_schema_3(&backend);
        assert_eq!(want.len(), n + 2);
        (f.reopen(backend), clock, want)
    };
    let migrated = |book: &PeerBook<F::Backend>, want: &[(Vec<u8>, Vec<u8>)], context: &str| {
        assert_eq!(
            migration_state(book.backend()),
            (crate::store::SCHEMA_VERSION, None),
            "{context}"
        );
        assert!(
            last_seen_index(book) == want,
            "{context}: the migrated index"
        );
        let report = book.verify().unwrap();
        assert!(report.is_clean(), "{context}: {report:?}");
    };
    // clean
    let (backend, clock, want) = downgraded(N);
    let book = PeerBook::open(backend, options(&clock, key())).expect("clean migration");
    migrated(&book, &want, "clean migration");
    let newest = book
        .query_peers(&PeerQuery {
            limit: Some(3),
            ..PeerQuery::default()
        })
        .unwrap();
    assert_eq!(
        newest
            .iter()
            .map(|r| r.peer_id.as_str())
            .collect::<Vec<_>>(),
        ["peer-00", "peer-0", &format!("peer-{:05}", N - 1)],
        "newest first, ties by greater id"
    );
    // version 4 with a marker, the index intact: the migration runs again, from
    // the version the marker names or, for a damaged marker, from 0
    let mut book = book;
    for (marker, context) in [
        (3u32.to_be_bytes().to_vec(), "marked and intact"),
        (0u32.to_be_bytes().to_vec(), "marked from 0 and intact"),
        (
            4u32.to_be_bytes().to_vec(),
            "a marker naming the current version",
        ),
        (vec![7], "a marker of 1 byte"),
    ] {
        let backend = book.close().unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Space::Meta, keys::META_MIGRATING.to_vec(), marker);
        backend.write(batch, Durability::Sync).unwrap();
        book = PeerBook::open(f.reopen(backend), options(&clock, key())).expect(context);
        migrated(&book, &want, context);
    }
    drop(book);
    // writes: the marker (version 4, migrating = 3), 3 delete batches, 3 put
    // batches, the marker's removal; the state each failure leaves
    let marked = (4, Some(3));
    for (n, when, left) in [
        (1, FailWhen::Before, (3, None)),
        (1, FailWhen::After, marked),
        (2, FailWhen::Before, marked),
        (3, FailWhen::After, marked),
        (5, FailWhen::Before, marked),
        (7, FailWhen::Before, marked),
        (8, FailWhen::Before, marked),
        (8, FailWhen::After, (4, None)),
    ] {
        let context = format!("failed write {n} {when:?}");
        let (backend, clock, want) = downgraded(N);
        let failing = FailingBackend::new(backend);
        failing.fail_nth(FailOp::Write, n, when);
        let shared = Arc::new(failing);
        assert!(
            PeerBook::open(Arc::clone(&shared), options(&clock, key())).is_err(),
            "{context}: the open fails"
        );
        assert_eq!(shared.injected(), 1, "{context}");
        let backend = Arc::try_unwrap(shared)
            .unwrap_or_else(|_| panic!("one owner"))
            .into_inner();
        assert_eq!(migration_state(&backend), left, "{context}: the state left");
        let book =
            PeerBook::open(f.reopen(backend), options(&clock, key())).expect("migration re-run");
        migrated(&book, &want, &context);
    }
    // 2,046 + 2 peers: both loops end on a full batch (then an empty page); one
    // record is corrupt, its old-layout entry still in the index
    let (backend, clock, want) = downgraded(2 * 1024 - 2);
    let corrupt = "peer-00003";
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, corrupt.into(), vec![0xff, 0x00, 0x13]);
    backend.write(batch, Durability::Sync).unwrap();
    let want: Vec<_> = want
        .into_iter()
        .filter(|(k, _)| keys::split_last_seen_key(k).expect("new layout").1 != corrupt.as_bytes())
        .collect();
    assert_eq!(want.len(), 2 * 1024 - 1);
    let book = PeerBook::open(backend, options(&clock, key())).expect("migration at the edge");
    assert_eq!(
        migration_state(book.backend()),
        (crate::store::SCHEMA_VERSION, None),
        "at the edge"
    );
    assert!(
        last_seen_index(&book) == want,
        "at the edge: the entries of the decodable records only"
    );
    let report = book.verify().unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].key, corrupt);
    assert_eq!(report.missing_index_entries, 0, "{report:?}");
    assert_eq!(book.repair().unwrap().quarantined, 1);
    assert!(book.verify().unwrap().is_clean(), "after repair");
    assert!(
        last_seen_index(&book) == want,
        "repair keeps the migrated entries"
    );
}

/// Which migration an open runs. A current store without the `migrating` marker:
/// none (the open writes nothing). A marker naming a version: the steps from it
/// only (one naming 3 runs 3 -> 4, not the 0 -> 1 rebuild of every index, so a
/// by_quality entry missing before is still missing, for verify to report and
/// repair to put). A damaged marker (naming the current version, or not 4 bytes)
/// may have been left by a migration from any version: every step runs from 0, and
/// an index still in the old layout is migrated.
pub fn migration_marker_picks_the_steps<F: Factory>(f: &F) {
    use super::failing::{FailOp, FailWhen, FailingBackend};
    let key = || MasterKey::from_bytes([42; 32]);
    let (book, clock) = populated(f, 20);
    let backend = book.close().unwrap();
    let want = scan_all(&*backend.view().unwrap(), Space::ByLastSeen);
    // a clean reopen of a current store writes nothing
    let failing = Arc::new(FailingBackend::new(f.reopen(backend)));
    failing.fail_nth(FailOp::Write, 1, FailWhen::Before);
    let book =
        PeerBook::open(Arc::clone(&failing), options(&clock, key())).expect("a clean reopen");
    assert_eq!(failing.injected(), 0, "a clean reopen wrote");
    drop(book);
    let mut backend = Arc::try_unwrap(failing)
        .unwrap_or_else(|_| panic!("one owner"))
        .into_inner();
    // a marker naming 3 or 1, one by_quality entry missing each time
    for from in [3u32, 1] {
        let context = format!("resumed from {from}");
        let quality = scan_all(&*backend.view().unwrap(), Space::ByQuality);
        let mut batch = WriteBatch::new();
        batch.delete(Space::ByQuality, quality[0].0.clone());
        batch.put(
            Space::Meta,
            keys::META_MIGRATING.to_vec(),
            from.to_be_bytes().to_vec(),
        );
        backend.write(batch, Durability::Sync).unwrap();
        let resumed = PeerBook::open(f.reopen(backend), options(&clock, key())).expect(&context);
        assert_eq!(
            migration_state(resumed.backend()),
            (crate::store::SCHEMA_VERSION, None),
            "{context}"
        );
        assert!(last_seen_index(&resumed) == want, "{context}: the index");
        let report = resumed.verify().unwrap();
        assert_eq!(
            report.missing_index_entries, 1,
            "{context}: the 0 -> 1 step ran: {report:?}"
        );
        assert_eq!(
            resumed.repair().unwrap().index_entries_added,
            1,
            "{context}"
        );
        assert!(resumed.verify().unwrap().is_clean(), "{context}");
        backend = resumed.close().unwrap();
    }
    let mut book = PeerBook::open(f.reopen(backend), options(&clock, key())).unwrap();
    // damaged markers over an index still in the old layout
    for (marker, context) in [
        (
            4u32.to_be_bytes().to_vec(),
            "a marker naming the current version",
        ),
        (vec![7], "a marker of 1 byte"),
    ] {
        let backend = book.close().unwrap();
        let mut batch = WriteBatch::new();
        to_legacy_layout(&mut batch, want.iter().cloned());
        batch.put(Space::Meta, keys::META_MIGRATING.to_vec(), marker);
        backend.write(batch, Durability::Sync).unwrap();
        book = PeerBook::open(f.reopen(backend), options(&clock, key())).expect(context);
        assert_eq!(
            migration_state(book.backend()),
            (crate::store::SCHEMA_VERSION, None),
            "{context}"
        );
        assert!(
            last_seen_index(&book) == want,
            "{context}: the old-layout index is migrated"
        );
        assert!(book.verify().unwrap().is_clean(), "{context}");
    }
}
