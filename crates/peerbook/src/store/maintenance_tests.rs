//! Unit tests of verify and repair on the rank region of by_quality (schema 5):
//! its entries are index entries like by_last_seen's.

use std::ops::{Bound, ControlFlow};

use crate::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use crate::scoring::ScoreHint;
use crate::store::keys;
use crate::{ManualClock, MasterKey, MemoryBackend, NewPeer, Options, PeerBook, QualityUpdate};

/// The rank region of `book`, in key order.
fn region(book: &PeerBook<MemoryBackend>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let range = KeyRange {
        lower: Bound::Included(&keys::QUALITY_END),
        upper: Bound::Unbounded,
    };
    book.backend()
        .scan(Space::ByQuality, range, Direction::Forward, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        })
        .unwrap();
    out
}

/// A book of three peers whose hints sort in three runs.
fn book() -> PeerBook<MemoryBackend> {
    let clock = ManualClock::new(1_700_000_000_000);
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::from_bytes([3; 32])).with_clock(clock.clone()),
    )
    .unwrap();
    for id in ["a", "b", "c"] {
        book.store_peer(NewPeer {
            peer_id: id.into(),
            public_key: "pk".into(),
            ..NewPeer::default()
        })
        .unwrap();
        clock.advance(std::time::Duration::from_secs(1));
    }
    book.increment_reconnection_attempts("b").unwrap();
    book.update_connection_quality(
        "c",
        QualityUpdate {
            latency_ms: Some(Some(10)),
            ..QualityUpdate::default()
        },
    )
    .unwrap();
    book
}

/// The rank key and value of `id` as its record says.
fn entry(book: &PeerBook<MemoryBackend>, id: &str) -> (Vec<u8>, Vec<u8>) {
    let record = book.get_peer(id).unwrap().unwrap();
    let hint = ScoreHint::of(&record);
    let key = keys::rank_key(hint.rank_byte(), record.last_seen, id.as_bytes());
    (key, hint.encode())
}

/// Verify reports a missing, stale (a wrong value, or a key of a wrong run or
/// time) or orphan rank entry as missing and orphan index entries, and repair
/// puts back exactly the region a book written afresh has; the quality keys are
/// not confused with rank entries.
#[test]
fn verify_reports_and_repair_fixes_rank_damage() {
    type Damage = fn(&PeerBook<MemoryBackend>, &mut WriteBatch);
    let cases: [(&str, Damage, (u64, u64)); 7] = [
        (
            "missing",
            |book, batch| {
                batch.delete(Space::ByQuality, entry(book, "a").0);
            },
            (1, 0),
        ),
        (
            "a stale value",
            |book, batch| {
                let (key, _) = entry(book, "b");
                batch.put(Space::ByQuality, key, entry(book, "c").1);
            },
            (1, 1),
        ),
        (
            "a wrong run",
            |book, batch| {
                let (key, value) = entry(book, "b");
                batch.delete(Space::ByQuality, key.clone());
                let mut moved = key;
                moved[1] -= 1;
                batch.put(Space::ByQuality, moved, value);
            },
            (1, 1),
        ),
        (
            "a wrong time",
            |book, batch| {
                let record = book.get_peer("c").unwrap().unwrap();
                let (key, value) = entry(book, "c");
                let run = ScoreHint::of(&record).rank_byte();
                batch.delete(Space::ByQuality, key);
                batch.put(
                    Space::ByQuality,
                    keys::rank_key(run, record.last_seen + 1, b"c"),
                    value,
                );
            },
            (1, 1),
        ),
        (
            "an orphan of no peer",
            |book, batch| {
                let (_, value) = entry(book, "a");
                batch.put(Space::ByQuality, keys::rank_key(0, 5, b"ghost"), value);
            },
            (0, 1),
        ),
        (
            "a second entry of a peer",
            |book, batch| {
                let (_, value) = entry(book, "a");
                batch.put(Space::ByQuality, keys::rank_key(0, 5, b"a"), value);
            },
            (0, 1),
        ),
        (
            "a key that is no rank key",
            |_, batch| {
                batch.put(Space::ByQuality, vec![keys::RANK_TAG], Vec::new());
            },
            (0, 1),
        ),
    ];
    for (what, damage, (missing, orphans)) in cases {
        let book = book();
        let want = region(&book);
        assert_eq!(want.len(), 3, "{what}");
        let mut runs: Vec<u8> = want.iter().map(|(k, _)| k[1]).collect();
        runs.dedup();
        assert_eq!(runs.len(), 3, "{what}: three runs");
        let mut batch = WriteBatch::new();
        damage(&book, &mut batch);
        book.backend().write(batch, Durability::Sync).unwrap();
        assert_ne!(region(&book), want, "{what}: damaged");
        let report = book.verify().unwrap();
        assert_eq!(
            (report.missing_index_entries, report.orphan_index_entries),
            (missing, orphans),
            "{what}: {report:?}"
        );
        let repair = book.repair().unwrap();
        assert_eq!(
            (repair.index_entries_added, repair.index_entries_removed),
            (missing, orphans),
            "{what}: {repair:?}"
        );
        assert!(book.verify().unwrap().is_clean(), "{what}: after repair");
        assert_eq!(region(&book), want, "{what}: the region repaired");
    }
}

/// A book holding peer "a" and, under the key "x", a copy of "a"'s record as it
/// was `age` ago (with an address that expired meanwhile), a's record changed
/// since (its display name).
fn misplaced_copy(age_days: u64) -> (PeerBook<MemoryBackend>, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::from_bytes([3; 32])).with_clock(clock.clone()),
    )
    .unwrap();
    book.store_peer(NewPeer {
        peer_id: "a".into(),
        public_key: "pk".into(),
        shared_secret: Some(crate::Secret::new(b"s3cret".to_vec())),
        ..NewPeer::default()
    })
    .unwrap();
    book.add_address(
        "a",
        "/ip4/192.0.2.1/tcp/1",
        crate::AddressSource::Observed,
        Some(1_700_000_060_000),
    )
    .unwrap();
    let old = book.backend().get(Space::Peers, b"a").unwrap().unwrap();
    clock.advance(std::time::Duration::from_secs(age_days * 24 * 3600 + 120));
    book.store_peer(NewPeer {
        peer_id: "a".into(),
        display_name: "renamed".into(),
        ..NewPeer::default()
    })
    .unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"x".to_vec(), old);
    book.backend().write(batch, Durability::Sync).unwrap();
    (book, clock)
}

/// A copy of a peer's record under another key (damage verify reports) is not that
/// peer: cleanup, whether the copy is stale or only holds an expired address,
/// leaves the healthy record alone; stats count it as corrupt; export skips it (its
/// document imports); rotate_key refuses the book, changing nothing.
#[test]
fn a_record_under_another_peers_key_is_not_that_peer() {
    for age_days in [40, 0] {
        let context = format!("a copy {age_days} days old");
        let (book, _clock) = misplaced_copy(age_days);
        let before = book.verify().unwrap();
        assert_eq!(before.corrupt.len(), 1, "{context}: verify reports it");
        assert_eq!(book.cleanup_stale_peers().unwrap(), 0, "{context}");
        let a = book
            .get_peer("a")
            .unwrap()
            .expect("the healthy record stays");
        assert_eq!(a.display_name, "renamed", "{context}: not rolled back");
        // (a's own expired address is dropped: its record shrinks, so the bytes move)
        let after = book.verify().unwrap();
        assert_eq!(after.corrupt, before.corrupt, "{context}: the copy stays");
        assert_eq!(
            (after.missing_index_entries, after.orphan_index_entries),
            (0, 0),
            "{context}: a's index entries still match its record"
        );
        assert!(
            a.addresses.is_empty(),
            "{context}: a's expired address dropped"
        );
        assert_eq!(
            book.get_storage_stats().unwrap().corrupt_records,
            1,
            "{context}"
        );
        let doc = book.export_data(crate::ExportOptions::default()).unwrap();
        assert_eq!(doc.peers.len(), 1, "{context}: exported once");
        let stored = book.backend().get(Space::Peers, b"a").unwrap();
        let rotated = book.rotate_key(&MasterKey::from_bytes([4; 32]));
        assert!(
            matches!(rotated, Err(crate::Error::Corrupted { .. })),
            "{context}: {rotated:?}"
        );
        assert_eq!(
            book.backend().get(Space::Peers, b"a").unwrap(),
            stored,
            "{context}"
        );
    }
}
