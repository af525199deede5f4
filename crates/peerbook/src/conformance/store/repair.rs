//! Damage and versions: corrupt records reported, skipped and quarantined, index damage found and repaired, schema versions refused or migrated.

use super::*;
use crate::store::keys;

/// A record whose bytes are damaged is reported as corrupted by get, skipped by
/// queries, counted in stats, reported by verify and quarantined by repair.
pub fn corrupt_record_reported_skipped_and_repaired<F: Factory, D: Driver>(f: &F) {
    let (book, _) = fresh::<F, D>(f);
    for id in ["a", "b", "c"] {
        book.store_peer(sample_peer(id)).unwrap();
    }
    let mut damaged = book.backend().get(Space::Peers, b"b").unwrap().unwrap();
    let mid = damaged.len() / 2;
    damaged.truncate(mid);
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"b".to_vec(), damaged);
    book.backend().write(batch, Durability::Sync).unwrap();

    assert!(
        matches!(book.get_peer("b"), Err(Error::Corrupted { .. })),
        "get reports corruption"
    );
    assert_eq!(
        ids(&book.query_peers(&PeerQuery::default()).unwrap()).len(),
        2,
        "queries skip it"
    );
    let by_quality = PeerQuery {
        sort_by: SortBy::Quality,
        ..PeerQuery::default()
    };
    assert_eq!(book.query_peers(&by_quality).unwrap().len(), 2);
    assert_eq!(
        book.get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: None
        })
        .unwrap()
        .len(),
        2
    );
    assert!(
        matches!(book.update_last_seen("b"), Err(Error::Corrupted { .. })),
        "no update of a corrupt record"
    );
    let stats = book.get_storage_stats().unwrap();
    assert_eq!(
        (stats.peer_count, stats.corrupt_records),
        (3, 1),
        "stats count it"
    );
    let report = book.verify().unwrap();
    assert_eq!(report.corrupt.len(), 1, "verify reports it: {report:?}");
    assert_eq!(report.corrupt[0].key, "b");
    assert!(!report.is_clean());
    let export = book.export_data(ExportOptions::default()).unwrap();
    assert_eq!(export.peers.len(), 2, "export skips it");
    let repair = book.repair().unwrap();
    assert_eq!(repair.quarantined, 1);
    assert_clean(&book, "after repair");
    let stats = book.get_storage_stats().unwrap();
    assert_eq!(
        (
            stats.peer_count,
            stats.corrupt_records,
            stats.quarantined_records
        ),
        (2, 0, 1)
    );
    assert_eq!(
        book.get_peer("b").unwrap(),
        None,
        "quarantined, no longer a peer"
    );
    book.store_peer(sample_peer("b"))
        .expect("the id is usable again");

    // a corrupt record can also be removed directly, index entries included
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"c".to_vec(), vec![0xff, 0x00, 0x13]);
    book.backend().write(batch, Durability::Sync).unwrap();
    assert!(book.remove_peer("c").unwrap());
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 2);
    let report = book.verify().unwrap();
    assert_eq!(
        (report.missing_index_entries, report.orphan_index_entries),
        (0, 0),
        "its index entries went with it"
    );
    let mismatch = report
        .counters_mismatch
        .expect("the byte counter saw the damage written behind the store's back");
    assert_eq!((mismatch.stored_peers, mismatch.actual_peers), (2, 2));
    assert!(book.repair().unwrap().counters_fixed);
    assert_clean(&book, "after removing a corrupt record and repair");
}

/// verify finds missing and orphan index entries and bad counters; repair rebuilds
/// them so queries are right again.
pub fn verify_finds_index_damage_and_repair_fixes_it<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    for i in 0..5 {
        clock.advance(HOUR);
        book.store_peer(plain_peer(&format!("p{i}"))).unwrap();
    }
    // the by_last_seen keys of p0 and p1 (the two least recently seen)
    let ls: Vec<Vec<u8>> = ["p0", "p1"]
        .iter()
        .map(|id| {
            let seen = book.get_peer(id).unwrap().unwrap().last_seen;
            keys::last_seen_key(seen, id.as_bytes())
        })
        .collect();
    assert!(ls
        .iter()
        .all(|k| space_keys(book.backend(), Space::ByLastSeen).contains(k)));
    let mut batch = WriteBatch::new();
    batch.delete(Space::ByLastSeen, ls[0].clone());
    batch.put(Space::ByQuality, b"\x07ghost".to_vec(), Vec::new());
    batch.put(
        Space::ByLastSeen,
        crate::store::keys::last_seen_key(0, b"p4"),
        Vec::new(),
    );
    // a by_last_seen entry whose score hint lies (claims the top score)
    let best = [vec![100, 20, 10], vec![0; 13]].concat();
    batch.put(Space::ByLastSeen, ls[1].clone(), best.clone());
    // the same damage in the rank region: p0's entry missing, p1's lying, a stale
    // one of p4 (run 0, the best, at time 0), a key that is no rank key
    let rank = |id: &str| {
        let record = book.get_peer(id).unwrap().unwrap();
        let hint = crate::scoring::ScoreHint::of(&record);
        keys::rank_key(hint.rank_byte(), record.last_seen, id.as_bytes())
    };
    assert!(rank_keys(book.backend()).contains(&rank("p1")));
    batch.delete(Space::ByQuality, rank("p0"));
    batch.put(Space::ByQuality, rank("p1"), best.clone());
    batch.put(Space::ByQuality, keys::rank_key(0, 0, b"p4"), best);
    batch.put(Space::ByQuality, vec![keys::RANK_TAG, 0], Vec::new());
    book.backend().write(batch, Durability::Sync).unwrap();
    let report = book.verify().unwrap();
    assert_eq!(report.missing_index_entries, 4, "{report:?}");
    assert_eq!(report.orphan_index_entries, 6, "{report:?}");
    let all = CandidateQuery {
        limit: 10,
        max_age: None,
    };
    let names = |cs: Vec<crate::Candidate>| {
        cs.into_iter()
            .map(|c| c.peer.peer_id.to_string())
            .collect::<Vec<_>>()
    };
    let before = names(book.get_reconnection_candidates(&all).unwrap());
    assert!(
        !before.contains(&"p1".to_string()),
        "a lying hint is never trusted: {before:?}"
    );
    assert!(
        !before.contains(&"p0".to_string()),
        "a missing entry is not a candidate until repair"
    );
    assert!(report.corrupt.is_empty());
    let asc = book
        .query_peers(&PeerQuery {
            order: Order::Asc,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        ids(&asc),
        ["p1", "p2", "p3", "p4"],
        "a stale entry never yields a wrong or duplicate result"
    );
    let repair = book.repair().unwrap();
    assert_eq!(
        (repair.index_entries_added, repair.index_entries_removed),
        (4, 6)
    );
    assert_clean(&book, "after repair");
    assert_eq!(
        book.get_reconnection_candidates(&all).unwrap().len(),
        5,
        "repair restores every candidate"
    );
    let asc = book
        .query_peers(&PeerQuery {
            order: Order::Asc,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&asc), ["p0", "p1", "p2", "p3", "p4"]);
}

/// A store written by a newer schema is refused; a store of records written before
/// versioning (no meta) is migrated: indexes, counters and key check are built.
pub fn schema_version_too_new_refused<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    book.store_peer(plain_peer("p")).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(
        Space::Meta,
        b"schema_version".to_vec(),
        99u32.to_be_bytes().to_vec(),
    );
    book.backend().write(batch, Durability::Sync).unwrap();
    match reopen::<F, D>(f, book, options(&clock)) {
        Err(Error::SchemaTooNew {
            found: 99,
            supported,
        }) => assert_eq!(supported, crate::store::SCHEMA_VERSION),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }

    // version 0: records only
    let (source, _) = fresh::<F, D>(f);
    let records: Vec<PeerRecord> = (0..3)
        .map(|i| source.create_peer(plain_peer(&format!("old{i}"))).unwrap())
        .collect();
    let legacy = f.create();
    let mut batch = WriteBatch::new();
    for r in &records {
        batch.put(Space::Peers, r.peer_id.as_bytes().to_vec(), r.encode());
    }
    legacy.write(batch, Durability::Sync).unwrap();
    let book = open::<D, _>(legacy, options(&clock)).expect("a version 0 store is migrated");
    assert_eq!(
        book.query_peers(&PeerQuery::default()).unwrap().len(),
        3,
        "indexes built"
    );
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 3);
    assert_clean(&book, "after migration");
    let book = reopen::<F, D>(f, book, options(&clock)).expect("reopens as current");
    let wrong = reopen::<F, D>(f, book, Options::new(other_key()).with_clock(clock.clone()));
    assert!(
        matches!(wrong, Err(Error::WrongKey)),
        "migration wrote a key check"
    );
}

/// `backend` opened with [`other_key`]: refused with `WrongKey`, and the store
/// (every space) left as it was.
fn wrong_key_refused_unchanged<D: Driver, B: Backend + 'static>(
    backend: &Arc<B>,
    clock: &ManualClock,
    context: &str,
) {
    let before = snapshot(backend);
    let wrong = open::<D, _>(
        Arc::clone(backend),
        Options::new(other_key()).with_clock(clock.clone()),
    );
    assert!(
        matches!(wrong, Err(Error::WrongKey)),
        "{context}: a wrong key is refused: {:?}",
        wrong.map(|_| ())
    );
    assert!(
        snapshot(backend) == before,
        "{context}: a refused open changed the store"
    );
}

/// A version-0 store (records, no meta) opened with the wrong key is refused with
/// `WrongKey` before the migration writes anything: the key is tried on an existing
/// seal first, so a wrong key is never bound as the book's key check.
pub fn version_0_wrong_key_refused_unchanged<F: Factory, D: Driver>(f: &F) {
    let (source, clock) = fresh::<F, D>(f);
    let legacy = f.create();
    let mut batch = WriteBatch::new();
    // a plain record first: the check must look past records without seals
    for new in [plain_peer("old0"), sample_peer("old1"), plain_peer("old2")] {
        let r = source.create_peer(new).unwrap();
        batch.put(Space::Peers, r.peer_id.as_bytes().to_vec(), r.encode());
    }
    legacy.write(batch, Durability::Sync).unwrap();
    let legacy = Arc::new(legacy);
    wrong_key_refused_unchanged::<D, _>(&legacy, &clock, "a version-0 store");
    let book = open::<D, _>(Arc::clone(&legacy), options(&clock))
        .expect("the right key still migrates it");
    let record = book.get_peer("old1").unwrap().expect("migrated");
    assert!(book.open_shared_secret(&record).unwrap().is_some());
}

/// `book`'s store with its `schema_version` deleted, reopened: its key check stays.
fn without_version<F: Factory, D: Driver>(f: &F, book: BookOf<F, D>) -> Arc<F::Backend> {
    let mut batch = WriteBatch::new();
    batch.delete(
        Space::Meta,
        crate::store::keys::META_SCHEMA_VERSION.to_vec(),
    );
    book.backend().write(batch, Durability::Sync).unwrap();
    let shared = Arc::new(f.reopen(book.close().unwrap()));
    assert!(
        shared
            .get(Space::Meta, crate::store::keys::META_KEY_CHECK)
            .unwrap()
            .is_some(),
        "the key check stays"
    );
    shared
}

/// The store, reopened (its only owner), still refuses another key.
fn key_still_binds<F: Factory, D: Driver>(f: &F, shared: Arc<F::Backend>, clock: &ManualClock) {
    let backend = Arc::try_unwrap(shared).unwrap_or_else(|_| panic!("one owner"));
    let wrong = open::<D, _>(
        f.reopen(backend),
        Options::new(other_key()).with_clock(clock.clone()),
    );
    assert!(
        matches!(wrong, Err(Error::WrongKey)),
        "the key check still binds the key"
    );
}

/// A store with a key check but no schema version (its version key lost, a damaged
/// meta) is migrated as a version-0 store, but its key check is checked first: a
/// wrong key is refused with `WrongKey` before the migration writes anything (no
/// version, no marker, no index rebuilt), and the right key opens and migrates it.
pub fn key_check_without_version_wrong_key_refused_unchanged<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    for new in [plain_peer("a"), sample_peer("b"), plain_peer("c")] {
        book.store_peer(new).unwrap();
    }
    let shared = without_version::<F, D>(f, book);
    wrong_key_refused_unchanged::<D, _>(&shared, &clock, "a store with a key check, no version");
    let book = open::<D, _>(Arc::clone(&shared), options(&clock))
        .expect("the right key opens and migrates it");
    assert_eq!(
        book.backend()
            .get(Space::Meta, crate::store::keys::META_SCHEMA_VERSION)
            .unwrap(),
        Some(crate::store::SCHEMA_VERSION.to_be_bytes().to_vec()),
        "migrated to the current version"
    );
    assert_eq!(
        book.backend()
            .get(Space::Meta, crate::store::keys::META_MIGRATING)
            .unwrap(),
        None,
        "the migration finished"
    );
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 3);
    assert_clean(&book, "after migration");
    let record = book.get_peer("b").unwrap().expect("kept");
    assert!(book.open_shared_secret(&record).unwrap().is_some());
    drop(book.close().unwrap());
    key_still_binds::<F, D>(f, shared, &clock);
}

/// The same with no peer either (a book whose records were all removed, its
/// version lost): open would start a new book on it, which rewrites the key
/// check; a wrong key must be refused first, changing nothing, or the right key
/// is locked out for good.
pub fn key_check_without_version_or_peers_wrong_key_refused_unchanged<F: Factory, D: Driver>(
    f: &F,
) {
    let (book, clock) = fresh::<F, D>(f);
    let shared = without_version::<F, D>(f, book);
    wrong_key_refused_unchanged::<D, _>(
        &shared,
        &clock,
        "a store with a key check, no version, no peer",
    );
    let book = open::<D, _>(Arc::clone(&shared), options(&clock)).expect("the right key opens it");
    assert_eq!(
        book.backend()
            .get(Space::Meta, crate::store::keys::META_SCHEMA_VERSION)
            .unwrap(),
        Some(crate::store::SCHEMA_VERSION.to_be_bytes().to_vec()),
        "a book again"
    );
    drop(book.close().unwrap());
    key_still_binds::<F, D>(f, shared, &clock);
}

/// A store with a key check whose migration marker says "from 0" or is damaged
/// (the migration runs again from 0) and whose first sealed secret is damaged: the
/// right key opens it on every open, since open already checked the key check and
/// the resumed migration does not try the key on a seal again (which the damaged
/// one would fail: the right key locked out for good). A wrong key is still
/// refused, changing nothing.
pub fn resumed_migration_from_0_ignores_a_damaged_first_seal<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    for id in ["a", "b"] {
        book.store_peer(sample_peer(id)).unwrap();
    }
    // "a" is the first record, its shared secret the first seal: one bit flipped,
    // the record still decodes but the seal no longer opens
    let stored = book.backend().get(Space::Peers, b"a").unwrap().unwrap();
    let mut record = PeerRecord::decode(&stored).unwrap();
    let mut bytes = record.shared_secret.as_ref().unwrap().as_bytes().to_vec();
    bytes[20] ^= 1;
    record.shared_secret = Some(crate::SealedSecret::from_bytes(bytes).unwrap());
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"a".to_vec(), record.encode());
    book.backend().write(batch, Durability::Sync).unwrap();
    let damaged = book.get_peer("a").unwrap().unwrap();
    assert!(
        book.open_shared_secret(&damaged).is_err(),
        "the seal is damaged"
    );
    let mut backend = book.close().unwrap();
    for (marker, context) in [
        (0u32.to_be_bytes().to_vec(), "a marker naming 0"),
        (vec![7], "a marker of 1 byte"),
        (
            4u32.to_be_bytes().to_vec(),
            "a marker naming the current version",
        ),
        (vec![7], "a damaged marker again"),
    ] {
        let mut batch = WriteBatch::new();
        batch.put(
            Space::Meta,
            crate::store::keys::META_MIGRATING.to_vec(),
            marker,
        );
        backend.write(batch, Durability::Sync).unwrap();
        let shared = Arc::new(f.reopen(backend));
        wrong_key_refused_unchanged::<D, _>(&shared, &clock, context);
        let book = open::<D, _>(Arc::clone(&shared), options(&clock))
            .unwrap_or_else(|e| panic!("{context}: the right key opens the store: {e:?}"));
        assert_eq!(
            book.backend()
                .get(Space::Meta, crate::store::keys::META_MIGRATING)
                .unwrap(),
            None,
            "{context}: the migration finished"
        );
        let intact = book.get_peer("b").unwrap().expect("kept");
        assert!(
            book.open_shared_secret(&intact).unwrap().is_some(),
            "{context}"
        );
        assert_eq!(
            book.get_peer("a").unwrap().as_ref(),
            Some(&damaged),
            "{context}"
        );
        drop(book.close().unwrap());
        backend = Arc::try_unwrap(shared).unwrap_or_else(|_| panic!("{context}: one owner"));
    }
    let book = open::<D, _>(f.reopen(backend), options(&clock)).expect("and with no marker");
    assert!(book.open_shared_secret(&damaged).is_err());
}
