//! Conformance tests of the schema migrations an open runs: the score hints of
//! schema 1, the by_last_seen layout of schema 3, migrations interrupted by a
//! failed write, and the `migrating` marker that picks the steps an open resumes.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::concurrency::{options, populated, scan_all};
use super::Factory;
use crate::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use crate::store::keys;
use crate::{CandidateQuery, MasterKey, NewPeer, PeerBook, PeerQuery};

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
