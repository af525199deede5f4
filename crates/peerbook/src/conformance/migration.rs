//! Conformance tests of the schema migrations an open runs: the score hints of
//! schema 1, the by_last_seen layout of schema 3, the rank index of schema 5,
//! migrations interrupted by a failed write, and the `migrating` marker that
//! picks the steps an open resumes.

use std::ops::{Bound, ControlFlow};
use std::sync::Arc;

use super::concurrency::{options, populated, scan_all};
use super::Factory;
use crate::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use crate::store::keys;
use crate::{
    Candidate, CandidateQuery, ConnectionType, ManualClock, MasterKey, NewPeer, Order, PeerBook,
    PeerQuery, PeerRecord, QualityUpdate, SortBy,
};

/// Index entries `(key, value)` in key order.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The by_last_seen entries of `book`, in key order.
fn last_seen_index<B: Backend>(book: &PeerBook<B>) -> Entries {
    scan_all(&*book.backend().view().unwrap(), Space::ByLastSeen)
}

/// The rank region of by_quality (schema 5), in key order; every key is a rank
/// key.
fn rank_region(backend: &impl Backend) -> Entries {
    let mut out = Vec::new();
    let range = KeyRange {
        lower: Bound::Included(&keys::QUALITY_END),
        upper: Bound::Unbounded,
    };
    backend
        .view()
        .unwrap()
        .scan(Space::ByQuality, range, Direction::Forward, &mut |k, v| {
            assert!(keys::split_rank_key_raw(k).is_some(), "a rank key: {k:?}");
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        })
        .expect("scan in a view");
    out
}

/// The by_last_seen index and the rank region of `backend`.
fn indexes(backend: &impl Backend) -> (Entries, Entries) {
    (
        scan_all(&*backend.view().unwrap(), Space::ByLastSeen),
        rank_region(backend),
    )
}

/// The peer id of a rank key.
fn rank_entry_id(key: &[u8]) -> Vec<u8> {
    let (_, _, suffix) = keys::split_rank_key_raw(key).expect("a rank key");
    keys::peer_id_of_last_seen_suffix(suffix).expect("a well-formed suffix")
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

/// Into `batch`: the deletion of every rank entry of `backend` (no schema before 5
/// wrote the region) and `schema_version` = `version`.
fn downgrade_into(batch: &mut WriteBatch, backend: &impl Backend, version: u32) {
    for (key, _) in rank_region(backend) {
        batch.delete(Space::ByQuality, key);
    }
    batch.put(
        Space::Meta,
        b"schema_version".to_vec(),
        version.to_be_bytes().to_vec(),
    );
}

/// Writes `backend` back the way schema 3 stored it (by_last_seen in the old key
/// layout, no rank region, schema version 3) and returns its by_last_seen index
/// as it was: what the migration must yield.
pub(crate) fn to_schema_3(backend: &impl Backend) -> Entries {
    let index = scan_all(&*backend.view().unwrap(), Space::ByLastSeen);
    let mut batch = WriteBatch::new();
    to_legacy_layout(&mut batch, index.iter().cloned());
    downgrade_into(&mut batch, backend, 3);
    backend.write(batch, Durability::Sync).unwrap();
    index
}

/// Writes `backend` back the way schema 4 stored it (no rank region, schema
/// version 4, no marker) and returns its rank region as it was: what the
/// migration to 5 must yield.
pub(crate) fn to_schema_4(backend: &impl Backend) -> Entries {
    let region = rank_region(backend);
    let mut batch = WriteBatch::new();
    downgrade_into(&mut batch, backend, 4);
    backend.write(batch, Durability::Sync).unwrap();
    region
}

/// What candidates and the score order give on `book`: the best 5, the best 100,
/// the best 20 by score through `query_peers`.
fn rankings<B: Backend>(book: &PeerBook<B>) -> (Vec<Candidate>, Vec<Candidate>, Vec<PeerRecord>) {
    let candidates = |limit| {
        book.get_reconnection_candidates(&CandidateQuery {
            limit,
            max_age: None,
        })
        .unwrap()
    };
    let by_score = book
        .query_peers(&PeerQuery {
            sort_by: SortBy::ReconnectionScore,
            order: Order::Desc,
            limit: Some(20),
            ..PeerQuery::default()
        })
        .unwrap();
    (candidates(5), candidates(100), by_score)
}

/// The key of every book of these tests.
fn key() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

/// A book of `n` plain peers ([`populated`]) and two more seen at one time, one
/// id a prefix of the other (ties).
fn with_ties<F: Factory>(f: &F, n: usize) -> (PeerBook<F::Backend>, ManualClock) {
    let (book, clock) = populated(f, n);
    for id in ["peer-0", "peer-00"] {
        book.store_peer(NewPeer {
            peer_id: id.into(),
            display_name: "p".into(),
            public_key: "pk".into(),
            ..NewPeer::default()
        })
        .unwrap();
    }
    (book, clock)
}

/// The `migrating` markers a store with intact indexes may hold, each with what
/// it is: versions the migration to 5 starts from, and damaged ones (the current
/// version, or not 4 bytes: the migration runs again from 0).
fn markers() -> [(Vec<u8>, &'static str); 5] {
    [
        (4u32.to_be_bytes().to_vec(), "marked from 4 and intact"),
        (3u32.to_be_bytes().to_vec(), "marked from 3 and intact"),
        (0u32.to_be_bytes().to_vec(), "marked from 0 and intact"),
        (
            5u32.to_be_bytes().to_vec(),
            "a marker naming the current version",
        ),
        (vec![7], "a marker of 1 byte"),
    ]
}

/// Close `book`, put the `migrating` marker `marker` and open it again.
fn reopen_marked<F: Factory>(
    f: &F,
    book: PeerBook<F::Backend>,
    clock: &ManualClock,
    marker: Vec<u8>,
    context: &str,
) -> PeerBook<F::Backend> {
    let backend = book.close().unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Meta, keys::META_MIGRATING.to_vec(), marker);
    backend.write(batch, Durability::Sync).unwrap();
    PeerBook::open(f.reopen(backend), options(clock, key())).expect(context)
}

/// Open a book on `backend` whose `n`th write fails (`when`): the open fails, and
/// the backend comes back for the test to look at and reopen.
fn open_failing_at<B: Backend + 'static>(
    backend: B,
    clock: &ManualClock,
    n: u64,
    when: super::failing::FailWhen,
    context: &str,
) -> B {
    use super::failing::{FailOp, FailingBackend};
    let failing = FailingBackend::new(backend);
    failing.fail_nth(FailOp::Write, n, when);
    let shared = Arc::new(failing);
    assert!(
        PeerBook::open(Arc::clone(&shared), options(clock, key())).is_err(),
        "{context}: the open fails"
    );
    assert_eq!(shared.injected(), 1, "{context}");
    Arc::try_unwrap(shared)
        .unwrap_or_else(|_| panic!("one owner"))
        .into_inner()
}

/// After a migration over a store whose record of `corrupt` does not decode:
/// verify reports it, and `orphans` index entries (those its stored record had
/// that the migration left), and nothing missing; repair quarantines it, and
/// `kept` (the migrated entries) still holds after.
fn quarantined_after_migration<B: Backend>(
    book: &PeerBook<B>,
    corrupt: &str,
    orphans: u64,
    kept: impl Fn() -> bool,
) {
    let report = book.verify().unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].key, corrupt);
    assert_eq!(
        (report.missing_index_entries, report.orphan_index_entries),
        (0, orphans),
        "{report:?}"
    );
    assert_eq!(book.repair().unwrap().quarantined, 1);
    assert!(book.verify().unwrap().is_clean(), "after repair");
    assert!(kept(), "repair keeps the migrated entries");
}

/// Put a record of `id` that does not decode.
fn corrupt_record(backend: &impl Backend, id: &str) {
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, id.into(), vec![0xff, 0x00, 0x13]);
    backend.write(batch, Durability::Sync).unwrap();
}

/// A schema-1 book (score hints without the blacklist tag, so `Some(0)` was stored
/// like `None`) of more peers than one migration batch: opening migrates it (to
/// schema 2 and on), after which it verifies clean, holds the rank entries a fresh
/// book does and ranks the `Some(0)` peer.
pub fn schema_1_score_hints_migrate<F: Factory>(f: &F) {
    const N: usize = 1_500;
    let (book, clock) = populated(f, N);
    let mut record = book.get_peer("peer-00007").unwrap().unwrap();
    record.blacklist_until = Some(0);
    book.store_peer(record).unwrap();
    let backend = book.close().unwrap();
    let rank = rank_region(&backend);
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
    // and in the key layout of schema 1, without the rank region
    to_legacy_layout(&mut batch, old);
    downgrade_into(&mut batch, &backend, 1);
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
    assert!(
        rank_region(book.backend()) == rank,
        "the rank entries of a fresh book"
    );
    let candidates = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: N,
            max_age: None,
        })
        .unwrap();
    assert_eq!(candidates.len(), N, "every peer ranks after migration");
}

/// A schema-3 book (by_last_seen keys `last_seen` + id, oldest first; no rank
/// index) of more peers than one migration batch: a migration to schema 5
/// interrupted by a failed write leaves version 3 untouched when its first write
/// (the marker) failed, and otherwise (the marker landed but was not acknowledged;
/// after some delete batches; after some put batches; before the marker's removal)
/// version 5 with the `migrating` marker naming version 3, which an older peerbook
/// refuses; only a last write that landed leaves no marker. The next open yields
/// exactly the indexes a clean migration does: the by_last_seen entries the book
/// had before it was written back in the old layout, and its rank entries (put in
/// the same batches). A version-5 store with the marker and intact indexes opens
/// the same, and so does one whose marker is damaged (a version not below 5, or not
/// 4 bytes: the migration runs again from 0). At the edge of the batch loops
/// (records and entries an exact multiple of a batch) with a corrupt record, the
/// migration puts the entries of the decodable records only; verify reports the
/// corrupt one and repair quarantines it.
pub fn schema_3_index_migrates_after_interruption<F: Factory>(f: &F) {
    use super::failing::FailWhen;
    const N: usize = 2_100; // with the two ties below: three batches of 1024
                            // the schema-3 book of a clean current one of n + 2 peers, and the indexes it
                            // must migrate to
    let downgraded = |n: usize| {
        let (book, clock) = with_ties(f, n);
        let backend = book.close().unwrap();
        let rank = rank_region(&backend);
        let want = (to_schema_3(&backend), rank);
        assert_eq!((want.0.len(), want.1.len()), (n + 2, n + 2));
        (f.reopen(backend), clock, want)
    };
    let migrated = |book: &PeerBook<F::Backend>, want: &(Entries, Entries), context: &str| {
        assert_eq!(
            migration_state(book.backend()),
            (crate::store::SCHEMA_VERSION, None),
            "{context}"
        );
        assert!(
            indexes(book.backend()) == *want,
            "{context}: the migrated indexes"
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
    // version 5 with a marker, the indexes intact: the migration runs again, from
    // the version the marker names or, for a damaged marker, from 0
    let mut book = book;
    for (marker, context) in markers() {
        book = reopen_marked(f, book, &clock, marker, context);
        migrated(&book, &want, context);
    }
    drop(book);
    // writes: the marker (version 5, migrating = 3), 3 delete batches, 3 put
    // batches (by_last_seen and rank entries), the marker's removal; the state
    // each failure leaves
    let marked = (5, Some(3));
    for (n, when, left) in [
        (1, FailWhen::Before, (3, None)),
        (1, FailWhen::After, marked),
        (2, FailWhen::Before, marked),
        (3, FailWhen::After, marked),
        (5, FailWhen::Before, marked),
        (7, FailWhen::Before, marked),
        (8, FailWhen::Before, marked),
        (8, FailWhen::After, (5, None)),
    ] {
        let context = format!("failed write {n} {when:?}");
        let (backend, clock, want) = downgraded(N);
        let backend = open_failing_at(backend, &clock, n, when, &context);
        assert_eq!(migration_state(&backend), left, "{context}: the state left");
        let book =
            PeerBook::open(f.reopen(backend), options(&clock, key())).expect("migration re-run");
        migrated(&book, &want, &context);
    }
    // 2,046 + 2 peers: both loops end on a full batch (then an empty page); one
    // record is corrupt, its old-layout entry still in the index
    let (backend, clock, want) = downgraded(2 * 1024 - 2);
    let corrupt = "peer-00003";
    corrupt_record(&backend, corrupt);
    let last_seen: Entries = want
        .0
        .into_iter()
        .filter(|(k, _)| keys::split_last_seen_key(k).expect("new layout").1 != corrupt.as_bytes())
        .collect();
    let rank: Entries = want
        .1
        .into_iter()
        .filter(|(k, _)| rank_entry_id(k) != corrupt.as_bytes())
        .collect();
    let want = (last_seen, rank);
    assert_eq!((want.0.len(), want.1.len()), (2 * 1024 - 1, 2 * 1024 - 1));
    let book = PeerBook::open(backend, options(&clock, key())).expect("migration at the edge");
    assert_eq!(
        migration_state(book.backend()),
        (crate::store::SCHEMA_VERSION, None),
        "at the edge"
    );
    assert!(
        indexes(book.backend()) == want,
        "at the edge: the entries of the decodable records only"
    );
    // its quality key stays (its old-layout by_last_seen entry went)
    quarantined_after_migration(&book, corrupt, 1, || indexes(book.backend()) == want);
}

/// A schema-4 book (no rank index) of more peers than one migration batch, its
/// hints in several runs: a migration to schema 5 interrupted by a failed write
/// leaves version 4 untouched when its first write (the marker) failed, and
/// otherwise (the marker landed but was not acknowledged; after some put batches;
/// before the marker's removal) version 5 with the `migrating` marker naming 4,
/// which a schema-4 peerbook refuses as too new; only a last write that landed
/// leaves no marker. Each put batch holds the entries of 1,024 records. The next
/// open yields exactly the rank region of the book before it was written back,
/// by_last_seen untouched; it verifies clean, and candidates and the score order
/// are that book's. A version-5 store with the marker (naming 4, 3 or 0, or
/// damaged: the migration runs again from 0) and intact indexes opens the same.
/// At the edge of the batch loop (records an exact multiple of a batch) with a
/// corrupt record, the migration puts the entries of the decodable records only;
/// verify reports the corrupt record and its schema-4 entries, and repair
/// quarantines it.
pub fn schema_4_rank_index_migrates_after_interruption<F: Factory>(f: &F) {
    use super::failing::FailWhen;
    const N: usize = 2_100; // with the two ties below: three batches of 1024
                            // the schema-4 book of a clean current one of n + 2 peers, what it must
                            // migrate to, and its rankings
    let downgraded = |n: usize| {
        let (book, clock) = with_ties(f, n);
        // hints in several runs: failed attempts, a better quality, a blacklist
        for i in 0..40u32 {
            let id = format!("peer-{i:05}");
            for _ in 0..i % 8 {
                book.increment_reconnection_attempts(&id).unwrap();
            }
            if i % 3 == 0 {
                let update = QualityUpdate {
                    latency_ms: Some(Some(10 + i)),
                    connection_type: Some(ConnectionType::Host),
                    ..QualityUpdate::default()
                };
                book.update_connection_quality(&id, update).unwrap();
            }
        }
        let mut listed = book.get_peer("peer-00009").unwrap().unwrap();
        listed.blacklist_until = Some(listed.last_seen + 3_600_000);
        book.store_peer(listed).unwrap();
        let fresh = rankings(&book);
        let backend = book.close().unwrap();
        let last_seen = scan_all(&*backend.view().unwrap(), Space::ByLastSeen);
        let want = to_schema_4(&backend);
        assert_eq!(want.len(), n + 2);
        let mut runs: Vec<u8> = want
            .iter()
            .map(|(k, _)| keys::split_rank_key_raw(k).expect("a rank key").0)
            .collect();
        runs.dedup();
        assert!(runs.len() >= 5, "hints in several runs: {runs:?}");
        (f.reopen(backend), clock, (last_seen, want), fresh)
    };
    type Rankings = (Vec<Candidate>, Vec<Candidate>, Vec<PeerRecord>);
    let migrated = |book: &PeerBook<F::Backend>,
                    want: &(Entries, Entries),
                    fresh: &Rankings,
                    context: &str| {
        assert_eq!(
            migration_state(book.backend()),
            (crate::store::SCHEMA_VERSION, None),
            "{context}"
        );
        assert!(
            rank_region(book.backend()) == want.1,
            "{context}: the migrated rank region"
        );
        assert!(
            last_seen_index(book) == want.0,
            "{context}: by_last_seen untouched"
        );
        let report = book.verify().unwrap();
        assert!(report.is_clean(), "{context}: {report:?}");
        assert!(
            rankings(book) == *fresh,
            "{context}: candidates and the score order of the book written fresh"
        );
    };
    // clean
    let (backend, clock, want, fresh) = downgraded(N);
    assert_eq!(migration_state(&backend), (4, None));
    let book = PeerBook::open(backend, options(&clock, key())).expect("clean migration");
    migrated(&book, &want, &fresh, "clean migration");
    // version 5 with a marker, the indexes intact: the migration runs again, from
    // the version the marker names or, for a damaged marker, from 0
    let mut book = book;
    for (marker, context) in markers() {
        book = reopen_marked(f, book, &clock, marker, context);
        migrated(&book, &want, &fresh, context);
    }
    drop(book);
    // writes: the marker (version 5, migrating = 4), 3 put batches (1024, 1024
    // and 54 records), the marker's removal; the state each failure leaves, and
    // the rank entries it leaves
    let marked = (5, Some(4));
    let all = N + 2;
    for (n, when, left, entries) in [
        (1, FailWhen::Before, (4, None), 0),
        (1, FailWhen::After, marked, 0),
        (2, FailWhen::Before, marked, 0),
        (2, FailWhen::After, marked, 1024),
        (3, FailWhen::Before, marked, 1024),
        (4, FailWhen::After, marked, all),
        (5, FailWhen::Before, marked, all),
        (5, FailWhen::After, (5, None), all),
    ] {
        let context = format!("failed write {n} {when:?}");
        let (backend, clock, want, fresh) = downgraded(N);
        let backend = open_failing_at(backend, &clock, n, when, &context);
        assert_eq!(migration_state(&backend), left, "{context}: the state left");
        assert_eq!(
            rank_region(&backend).len(),
            entries,
            "{context}: the rank entries left"
        );
        let book =
            PeerBook::open(f.reopen(backend), options(&clock, key())).expect("migration re-run");
        migrated(&book, &want, &fresh, &context);
    }
    // 2,046 + 2 peers: the loop ends on a full batch (then an empty page); one
    // record is corrupt, its schema-4 entries still in the indexes
    let (backend, clock, (last_seen, rank), _) = downgraded(2 * 1024 - 2);
    let corrupt = "peer-00003";
    corrupt_record(&backend, corrupt);
    let rank: Entries = rank
        .into_iter()
        .filter(|(k, _)| rank_entry_id(k) != corrupt.as_bytes())
        .collect();
    assert_eq!(rank.len(), 2 * 1024 - 1);
    let book = PeerBook::open(backend, options(&clock, key())).expect("migration at the edge");
    assert_eq!(
        migration_state(book.backend()),
        (crate::store::SCHEMA_VERSION, None),
        "at the edge"
    );
    assert!(
        rank_region(book.backend()) == rank,
        "at the edge: the rank entries of the decodable records only"
    );
    assert!(
        last_seen_index(&book) == last_seen,
        "at the edge: untouched"
    );
    // its by_last_seen entry and quality key of schema 4 stay
    quarantined_after_migration(&book, corrupt, 2, || rank_region(book.backend()) == rank);
}

/// Which migration an open runs. A current store without the `migrating` marker:
/// none (the open writes nothing). A marker naming a version: the steps from it
/// only (one naming 4 runs 4 -> 5, one naming 3 or 1 the steps to 4 and 5, none
/// the 0 -> 1 rebuild of every index: a rank entry missing before is put again,
/// a quality key missing before is still missing, for verify to report and
/// repair to put). A damaged marker (naming the current version, or not 4 bytes)
/// may have been left by a migration from any version: every step runs from 0,
/// and an index still in the old layout, without the rank region, is migrated.
pub fn migration_marker_picks_the_steps<F: Factory>(f: &F) {
    use super::failing::{FailOp, FailWhen, FailingBackend};
    let (book, clock) = populated(f, 20);
    let backend = book.close().unwrap();
    let want = indexes(&backend);
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
    // a marker naming 4, 3 or 1, one quality key and one rank entry missing each
    // time
    for from in [4u32, 3, 1] {
        let context = format!("resumed from {from}");
        let quality = scan_all(&*backend.view().unwrap(), Space::ByQuality);
        assert!(keys::is_quality_key(&quality[0].0));
        let mut batch = WriteBatch::new();
        batch.delete(Space::ByQuality, quality[0].0.clone());
        batch.delete(Space::ByQuality, want.1[7].0.clone());
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
        assert!(
            indexes(resumed.backend()) == want,
            "{context}: the indexes, the rank entry put again"
        );
        let report = resumed.verify().unwrap();
        assert_eq!(
            report.missing_index_entries, 1,
            "{context}: the quality key is still missing, else the 0 -> 1 step ran: {report:?}"
        );
        assert_eq!(
            resumed.repair().unwrap().index_entries_added,
            1,
            "{context}"
        );
        assert!(resumed.verify().unwrap().is_clean(), "{context}");
        backend = resumed.close().unwrap();
    }
    // A book a schema-4 build left mid-migration: version 4 and a marker naming
    // where it started. From 3 the index may still be in the old layout; from 0 the
    // rebuild of every index had not finished (a quality key missing). The
    // migration starts where that build started, not at 4.
    // A marker at or above the version (an unreleased build that migrated to 4
    // wrote marker 4 beside version 4) is damage: from 0.
    for (from, context) in [
        (3u32, "version 4, marker 3"),
        (0, "version 4, marker 0"),
        (4, "version 4, marker 4"),
    ] {
        let mut batch = WriteBatch::new();
        to_legacy_layout(&mut batch, want.0.iter().cloned());
        downgrade_into(&mut batch, &backend, 4);
        let quality = scan_all(&*backend.view().unwrap(), Space::ByQuality);
        batch.delete(Space::ByQuality, quality[0].0.clone());
        batch.put(
            Space::Meta,
            keys::META_MIGRATING.to_vec(),
            from.to_be_bytes().to_vec(),
        );
        backend.write(batch, Durability::Sync).unwrap();
        let resumed = PeerBook::open(f.reopen(backend), options(&clock, key())).expect(context);
        assert_eq!(
            migration_state(resumed.backend()),
            (crate::store::SCHEMA_VERSION, None),
            "{context}"
        );
        assert!(
            indexes(resumed.backend()) == want,
            "{context}: by_last_seen migrated out of the old layout, the rank region put"
        );
        let missing = resumed.verify().unwrap().missing_index_entries;
        assert_eq!(
            missing,
            u64::from(from == 3),
            "{context}: the quality key is put back only by the 0 -> 1 rebuild"
        );
        resumed.repair().unwrap();
        backend = resumed.close().unwrap();
    }
    let mut book = PeerBook::open(f.reopen(backend), options(&clock, key())).unwrap();
    // damaged markers over an index still in the old layout, no rank region
    for (marker, context) in [
        (
            5u32.to_be_bytes().to_vec(),
            "a marker naming the current version",
        ),
        (vec![7], "a marker of 1 byte"),
    ] {
        let backend = book.close().unwrap();
        let mut batch = WriteBatch::new();
        to_legacy_layout(&mut batch, want.0.iter().cloned());
        downgrade_into(&mut batch, &backend, 5);
        batch.put(Space::Meta, keys::META_MIGRATING.to_vec(), marker);
        backend.write(batch, Durability::Sync).unwrap();
        book = PeerBook::open(f.reopen(backend), options(&clock, key())).expect(context);
        assert_eq!(
            migration_state(book.backend()),
            (crate::store::SCHEMA_VERSION, None),
            "{context}"
        );
        assert!(
            indexes(book.backend()) == want,
            "{context}: the old-layout index is migrated, the rank region put"
        );
        assert!(book.verify().unwrap().is_clean(), "{context}");
    }
}
