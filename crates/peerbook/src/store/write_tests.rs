//! Unit tests of the write path: which index entries an update writes, the
//! stored-record read against the new encoding, seals taken as checked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::Backend;
use crate::backend::{Op, Space};
use crate::conformance::hooked::HookedBackend;
use crate::options::Clock;
use crate::{
    ConnectionType, Error, ManualClock, MasterKey, MemoryBackend, NewPeer, Options, PeerBook,
    PeerRecord, QualityUpdate, Secret,
};

/// The ops of every batch written, shared with the hook that records them.
type Batches = Arc<Mutex<Vec<Vec<Op>>>>;

/// A memory backend that keeps a copy of every batch written.
fn recording() -> (HookedBackend<MemoryBackend>, Batches) {
    let batches = Batches::default();
    let seen = Arc::clone(&batches);
    let backend = HookedBackend::with_batches(MemoryBackend::new(), move |_, batch| {
        if let Some(batch) = batch {
            seen.lock().unwrap().push(batch.ops().to_vec());
        }
    });
    (backend, batches)
}

/// `(put?, space)` of every op of the last batch written, in order.
fn last(batches: &Batches) -> Vec<(bool, Space)> {
    let batches = batches.lock().unwrap();
    let ops = batches.last().expect("a batch was written");
    ops.iter()
        .map(|op| (matches!(op, Op::Put { .. }), op.space()))
        .collect()
}

fn peer(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        public_key: "pk".into(),
        shared_secret: Some(Secret::from(format!("secret of {id}"))),
        ..NewPeer::default()
    }
}

/// An update writes only the index entries that moved or changed, and the book
/// stays exactly as consistent as a full rewrite would leave it.
#[test]
fn updates_write_only_the_index_entries_that_change() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (backend, batches) = recording();
    let book = PeerBook::open(
        backend,
        Options::new(MasterKey::from_bytes([1; 32])).with_clock(clock.clone()),
    )
    .unwrap();
    book.store_peer(peer("a")).unwrap();
    let (put, delete) = (true, false);
    let latency = |ms| QualityUpdate {
        latency_ms: Some(Some(ms)),
        connection_type: Some(ConnectionType::Host),
        ..QualityUpdate::default()
    };
    book.update_connection_quality("a", latency(10)).unwrap();
    // quality score and hint unchanged (latency 10 and 20 score alike), time too
    book.update_connection_quality("a", latency(20)).unwrap();
    assert_eq!(last(&batches), [(put, Space::Peers)], "nothing moved");
    // the score changes: by_quality moves, by_last_seen keeps its key
    book.update_connection_quality("a", latency(120)).unwrap(); // same record length
    assert_eq!(
        last(&batches),
        [
            (put, Space::ByLastSeen),
            (delete, Space::ByQuality),
            (put, Space::ByQuality),
            (put, Space::Peers),
        ]
    );
    // the time moves: by_last_seen moves, by_quality stays
    clock.advance(Duration::from_secs(5));
    book.update_last_seen("a").unwrap();
    assert_eq!(
        last(&batches),
        [
            (delete, Space::ByLastSeen),
            (put, Space::ByLastSeen),
            (put, Space::Peers),
        ]
    );
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        book.get_peer("a").unwrap().unwrap().last_seen,
        clock.now_ms()
    );
}

/// A record with candidates, for the updates below.
fn with_candidates(book: &PeerBook<HookedBackend<MemoryBackend>>, id: &str) -> PeerRecord {
    let mut new = peer(id);
    new.cached_candidates = (0..4).map(|i| format!("candidate-{i}")).collect();
    book.store_peer(new).unwrap()
}

/// A record read back and stored changed takes the path that reads the stored
/// record against the new encoding: the stored fields it reads where they
/// differ (the time, the quality) still give the index entries to move.
#[test]
fn a_changed_record_moves_the_index_entries_of_the_stored_one() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (backend, batches) = recording();
    let book = PeerBook::open(
        backend,
        Options::new(MasterKey::from_bytes([1; 32])).with_clock(clock.clone()),
    )
    .unwrap();
    let mut r = with_candidates(&book, "a");
    with_candidates(&book, "b");
    for step in 0..4u32 {
        clock.advance(Duration::from_secs(5));
        r.last_seen = clock.now_ms();
        r.cached_candidates.rotate_left(1);
        r.last_known_ip = Some(std::net::Ipv4Addr::new(10, 0, 0, step as u8).into());
        r.connection_quality.total_connections = step + 1;
        r.connection_quality.successful_connections = step + 1;
        r.connection_quality.success_rate = 1.0;
        r.reconnection_attempts = step;
        let stored = book.store_peer(r.clone()).unwrap();
        assert_eq!(stored, r);
        assert_eq!(book.get_peer("a").unwrap().unwrap(), r);
        let ops = last(&batches);
        assert!(
            !ops.contains(&(false, Space::Peers)),
            "a decodable record is not deleted: {ops:?}"
        );
        assert!(ops.contains(&(false, Space::ByLastSeen)), "{ops:?}");
        let report = book.verify().unwrap();
        assert!(report.is_clean(), "step {step}: {report:?}");
    }
    // The time stays and only the score hint's parts change: the by_last_seen
    // entry keeps its key and is rewritten only if the stored record's hint
    // was read right (a hint taken from the new record would compare equal,
    // leave the stale one in place, and verify would find it).
    type Change = fn(&mut PeerRecord);
    let changes: [(&str, Change); 2] = [
        ("blacklist_until", |r| {
            r.blacklist_until = Some(r.last_seen + 60_000)
        }),
        ("reconnection_attempts", |r| r.reconnection_attempts += 1),
    ];
    for (what, change) in changes {
        change(&mut r);
        book.store_peer(r.clone()).unwrap();
        assert!(
            last(&batches).contains(&(true, Space::ByLastSeen)),
            "{what}: the hint is rewritten"
        );
        let report = book.verify().unwrap();
        assert!(report.is_clean(), "{what}: {report:?}");
    }
}

/// A stored record whose field breaks its rule is corrupt (deleted, then
/// replaced) when the new record changes that field, as when it is decoded in
/// full: the field that differs is still checked.
#[test]
fn a_stored_field_that_breaks_its_rule_is_found_when_the_new_record_changes_it() {
    type Break = fn(&mut PeerRecord);
    let corruptions: [(&str, Break); 7] = [
        ("candidate", |r| {
            r.cached_candidates[1] = "candidat\u{7}-1".into()
        }),
        ("candidate count", |r| {
            r.cached_candidates = (0..33).map(|i| format!("candidate-{i}")).collect()
        }),
        ("public key", |r| r.public_key = "k".repeat(4097)),
        ("address", |r| {
            r.addresses.push(crate::PeerAddress {
                addr: "/ip4/\u{7}".into(),
                source: crate::AddressSource::Reported,
                last_success: None,
                last_failure: None,
                expires_at: None,
            })
        }),
        ("display name", |r| r.display_name = " name".into()),
        ("quality", |r| {
            r.connection_quality.total_connections = 1;
            r.connection_quality.successful_connections = 2;
        }),
        ("metadata", |r| {
            r.metadata.insert(String::new(), "v".into());
        }),
    ];
    for (what, corrupt) in corruptions {
        let (backend, batches) = recording();
        let book = PeerBook::open(backend, Options::new(MasterKey::from_bytes([1; 32]))).unwrap();
        let mut r = with_candidates(&book, "a");
        r.display_name = "name".into();
        let mut bad = r.clone();
        corrupt(&mut bad);
        assert!(
            bad.validate().is_err(),
            "{what}: the corruption breaks a rule"
        );
        let mut raw = crate::backend::WriteBatch::new();
        raw.put(Space::Peers, b"a".to_vec(), bad.encode());
        book.backend()
            .write(raw, crate::Durability::Buffered)
            .unwrap();
        assert!(
            book.get_peer("a").is_err(),
            "{what}: stored record is corrupt"
        );
        r.cached_candidates.rotate_left(1);
        book.store_peer(r.clone()).unwrap();
        assert!(
            last(&batches).contains(&(false, Space::Peers)),
            "{what}: the corrupt record is deleted first: {:?}",
            last(&batches)
        );
        assert_eq!(book.get_peer("a").unwrap().unwrap(), r, "{what}");
    }
}

/// Seals equal to the stored record's are taken as checked; any other seal is
/// still opened, so a seal moved from another peer is refused.
#[test]
fn stored_seals_pass_and_moved_seals_are_still_refused() {
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::from_bytes([1; 32])),
    )
    .unwrap();
    let a = book.store_peer(peer("a")).unwrap();
    let mut b = book.store_peer(peer("b")).unwrap();
    b.display_name = "Bee".into();
    book.store_peer(b.clone()).expect("its own stored seal");
    b.shared_secret = a.shared_secret.clone();
    match book.store_peer(b) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "shared_secret"),
        other => panic!("a seal moved from another peer must be refused: {other:?}"),
    }
    assert_eq!(book.get_peer("b").unwrap().unwrap().display_name, "Bee");
}
