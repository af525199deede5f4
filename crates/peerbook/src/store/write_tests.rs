//! Unit tests of the write path: which index entries an update writes, the
//! stored-record read against the new encoding, seals taken as checked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backend::Backend;
use crate::backend::{Op, Space};
use crate::conformance::hooked::HookedBackend;
use crate::options::Clock;
use crate::scoring::ScoreHint;
use crate::store::keys;
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

/// What an op writes: a space's name, or in by_quality "quality" (a quality
/// key) or "rank" (a key of the rank region).
fn written(op: &Op) -> &'static str {
    match op.space() {
        Space::ByQuality if keys::is_quality_key(op.key()) => "quality",
        Space::ByQuality => "rank",
        space => space.name(),
    }
}

/// `(put?, what)` of every op of the last batch written, in order.
fn last(batches: &Batches) -> Vec<(bool, &'static str)> {
    let batches = batches.lock().unwrap();
    let ops = batches.last().expect("a batch was written");
    ops.iter()
        .map(|op| (matches!(op, Op::Put { .. }), written(op)))
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
    assert_eq!(last(&batches), [(put, "peers")], "nothing moved");
    // the score changes: the quality key and the rank entry (its run) move,
    // by_last_seen keeps its key
    book.update_connection_quality("a", latency(120)).unwrap(); // same record length
    assert_eq!(
        last(&batches),
        [
            (put, "by_last_seen"),
            (delete, "rank"),
            (put, "rank"),
            (delete, "quality"),
            (put, "quality"),
            (put, "peers"),
        ]
    );
    // the time moves: by_last_seen and the rank entry move, the quality key stays
    clock.advance(Duration::from_secs(5));
    book.update_last_seen("a").unwrap();
    assert_eq!(
        last(&batches),
        [
            (delete, "by_last_seen"),
            (put, "by_last_seen"),
            (delete, "rank"),
            (put, "rank"),
            (put, "peers"),
        ]
    );
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        book.get_peer("a").unwrap().unwrap().last_seen,
        clock.now_ms()
    );
}

/// The rank entry (schema 5) follows its record: a new peer puts it; a write that
/// moves the time or the hint's run deletes the old key and puts the new one; a
/// hint that changes within the same time and run is put over at its key; an
/// unchanged time and hint write nothing there; a removal deletes it. After each
/// write the rank region holds exactly the record's entry, and verify is clean.
#[test]
fn the_rank_entry_follows_its_record() {
    let clock = ManualClock::new(1_700_000_000_000);
    let (backend, batches) = recording();
    let mut options = Options::new(MasterKey::from_bytes([1; 32])).with_clock(clock.clone());
    options.failed_attempts = u32::MAX; // blacklists are set below, by hand
    let book = PeerBook::open(backend, options).unwrap();
    let (put, delete) = (true, false);
    // `(put?, key, value)` of the rank ops of the last batch
    let rank_ops = || -> Vec<(bool, Vec<u8>, Option<Vec<u8>>)> {
        let batches = batches.lock().unwrap();
        let ops = batches.last().expect("a batch was written");
        ops.iter()
            .filter(|op| written(op) == "rank")
            .map(|op| match op {
                Op::Put { key, value, .. } => (put, key.clone(), Some(value.clone())),
                Op::Delete { key, .. } => (delete, key.clone(), None),
            })
            .collect()
    };
    let entry = |r: &PeerRecord| {
        let hint = ScoreHint::of(r);
        let key = keys::rank_key(hint.rank_byte(), r.last_seen, b"a");
        (key, hint.encode())
    };
    let run = |r: &PeerRecord| ScoreHint::of(r).rank_byte();
    let check = |r: &PeerRecord, context: &str| {
        let mut region = Vec::new();
        book.backend()
            .scan(
                Space::ByQuality,
                crate::backend::KeyRange {
                    lower: std::ops::Bound::Included(&keys::QUALITY_END),
                    upper: std::ops::Bound::Unbounded,
                },
                crate::backend::Direction::Forward,
                &mut |k, v| {
                    region.push((k.to_vec(), v.to_vec()));
                    std::ops::ControlFlow::Continue(())
                },
            )
            .unwrap();
        assert_eq!(region, [entry(r)], "{context}: the rank region");
        let report = book.verify().unwrap();
        assert!(report.is_clean(), "{context}: {report:?}");
    };
    let moved = |old: &PeerRecord, new: &PeerRecord| {
        let ((old_key, _), (key, value)) = (entry(old), entry(new));
        vec![(delete, old_key, None), (put, key, Some(value))]
    };
    let put_over = |r: &PeerRecord| {
        let (key, value) = entry(r);
        vec![(put, key, Some(value))]
    };
    let latency = |ms| QualityUpdate {
        latency_ms: Some(Some(ms)),
        connection_type: Some(ConnectionType::Host),
        ..QualityUpdate::default()
    };

    let new = book.store_peer(peer("a")).unwrap();
    assert_eq!(rank_ops(), put_over(&new), "a new peer");
    check(&new, "a new peer");
    // the time moves, the run stays
    clock.advance(Duration::from_secs(5));
    let seen = book.update_last_seen("a").unwrap();
    assert_eq!(run(&seen), run(&new));
    assert_eq!(rank_ops(), moved(&new, &seen), "update_last_seen");
    check(&seen, "update_last_seen");
    // a failed attempt moves the run (5 points), the time stays
    let failed = book.increment_reconnection_attempts("a").unwrap();
    assert_eq!(failed.last_seen, seen.last_seen);
    assert_eq!(run(&failed), run(&seen) + 5);
    assert_eq!(rank_ops(), moved(&seen, &failed), "an attempt");
    check(&failed, "an attempt");
    // a quality update that moves the run
    let better = book.update_connection_quality("a", latency(10)).unwrap();
    assert!(run(&better) < run(&failed));
    assert_eq!(rank_ops(), moved(&failed, &better), "a better quality");
    check(&better, "a better quality");
    // a blacklist alone: the hint changes, its run and the time do not
    let mut listed = better.clone();
    listed.blacklist_until = Some(clock.now_ms() + 60_000);
    let listed = book.store_peer(listed).unwrap();
    assert_eq!(run(&listed), run(&better));
    assert_eq!(rank_ops(), put_over(&listed), "a blacklist");
    check(&listed, "a blacklist");
    // attempts down to the last run, where every base at or below -30 sorts
    let mut last_run = listed;
    while run(&last_run) < 100 {
        last_run = book.increment_reconnection_attempts("a").unwrap();
    }
    check(&last_run, "the last run");
    let more = book.increment_reconnection_attempts("a").unwrap();
    assert_ne!(ScoreHint::of(&more), ScoreHint::of(&last_run));
    assert_eq!(
        rank_ops(),
        put_over(&more),
        "an attempt within the last run"
    );
    check(&more, "an attempt within the last run");
    // a quality update within the run: the quality key moves, the rank entry stays
    let worse = book.update_connection_quality("a", latency(400)).unwrap();
    assert_ne!(
        ScoreHint::of(&worse).quality_score,
        ScoreHint::of(&more).quality_score
    );
    assert_eq!(run(&worse), 100);
    assert_eq!(
        rank_ops(),
        put_over(&worse),
        "a quality update within the run"
    );
    assert!(last(&batches).contains(&(delete, "quality")));
    check(&worse, "a quality update within the run");
    // neither the time nor the hint: nothing
    let same = book.set_metadata("a", "agent", Some("x")).unwrap();
    assert_eq!(ScoreHint::of(&same), ScoreHint::of(&worse));
    assert_eq!(rank_ops(), [], "an unchanged hint");
    check(&same, "an unchanged hint");
    // removed: deleted
    assert!(book.remove_peer("a").unwrap());
    assert_eq!(rank_ops(), [(delete, entry(&same).0, None)], "a removal");
    assert!(book.verify().unwrap().is_clean());
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
            !ops.contains(&(false, "peers")),
            "a decodable record is not deleted: {ops:?}"
        );
        assert!(ops.contains(&(false, "by_last_seen")), "{ops:?}");
        assert!(ops.contains(&(false, "rank")), "{ops:?}");
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
            last(&batches).contains(&(true, "by_last_seen"))
                && last(&batches).contains(&(true, "rank")),
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
            last(&batches).contains(&(false, "peers")),
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
