//! Conformance tests of the peer lifecycle: upserts that keep history, discovery,
//! public-key changes, atomic read-modify-writes (`update_peer`, `record_session`)
//! racing on one peer, and addresses and metadata (validation, per-address results,
//! expiry cleanup, export/import).

use std::sync::Arc;
use std::time::Duration;

use super::store::{sample_peer, snapshot, T0};
use super::{BookUnderTest, Driver, Factory};
use crate::address::{
    AddressSource, MAX_ADDRESSES, MAX_ADDRESS_LEN, MAX_ADDRESS_TTL_MS, MAX_METADATA_ENTRIES,
    MAX_METADATA_VALUE_LEN,
};
use crate::{
    Clock, Error, ManualClock, MasterKey, NewPeer, Options, PeerRecord, Secret, SessionObservation,
};

/// The book type driver `D` opens on the factory's backends.
type BookOf<F, D> = <D as Driver>::Book<<F as Factory>::Backend>;

fn book<F: Factory, D: Driver>(f: &F) -> (BookOf<F, D>, ManualClock) {
    let clock = ManualClock::new(T0);
    let mut options = Options::new(MasterKey::from_bytes([42; 32])).with_clock(clock.clone());
    options.failed_attempts = 3;
    (
        BookOf::<F, D>::open(f.create(), options).expect("open"),
        clock,
    )
}

fn session(success: bool, uptime_ms: u64, latency_ms: u32) -> SessionObservation {
    SessionObservation {
        success,
        uptime_ms,
        latency_ms: Some(latency_ms),
    }
}

/// Only the id: every optional field empty (a reconnection that gives nothing new).
fn bare(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        ..NewPeer::default()
    }
}

fn assert_clean(book: &impl BookUnderTest, context: &str) {
    let report = book.verify().expect("verify");
    assert!(report.is_clean(), "{context}: {report:?}");
}

/// The seed's lifecycle, twice for one peer: connect (`store_peer(NewPeer)`), a few
/// sessions folded in (`record_session`), failed reconnections, then a reconnect
/// with `store_peer(NewPeer)`. The second pass sees the first pass's history, and
/// the reconnect clears attempts and blacklist.
pub fn lifecycle_replayed_keeps_history<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book::<F, D>(f);
    let mut expected_total = 0;
    let mut last: Option<PeerRecord> = None;
    for pass in 0..2u32 {
        let stored = book.store_peer(sample_peer("life")).expect("connect");
        assert_eq!(
            stored.last_seen,
            clock.now_ms(),
            "pass {pass}: connect is now"
        );
        assert_eq!(stored.last_connected, clock.now_ms());
        assert_eq!(
            (stored.reconnection_attempts, stored.blacklist_until),
            (0, None)
        );
        assert_eq!(
            stored.connection_quality.total_connections, expected_total,
            "pass {pass}: a reconnect keeps the connection history"
        );
        if let Some(last) = &last {
            assert_eq!(stored.connection_quality, last.connection_quality);
        }
        for (i, ok) in [true, true, false].into_iter().enumerate() {
            clock.advance(Duration::from_secs(60));
            book.record_session("life", &session(ok, 120_000, 40 + i as u32))
                .expect("session");
            expected_total += 1;
        }
        for _ in 0..3 {
            book.increment_reconnection_attempts("life")
                .expect("attempt");
        }
        let after = book.get_peer("life").unwrap().expect("stored");
        assert!(after.blacklist_until.is_some(), "3 failures blacklist");
        assert_eq!(after.connection_quality.total_connections, expected_total);
        assert_eq!(
            after.connection_quality.successful_connections,
            2 * (pass + 1),
            "pass {pass}"
        );
        last = Some(after);
        clock.advance(Duration::from_secs(3600));
    }
    let again = book.store_peer(bare("life")).expect("reconnect");
    let last = last.expect("two passes ran");
    assert_eq!(again.connection_quality, last.connection_quality);
    assert_eq!(
        (again.reconnection_attempts, again.blacklist_until),
        (0, None)
    );
    let score = crate::scoring::reconnection_score(&again, clock.now_ms());
    assert_eq!(
        score.success, 16,
        "min(4 successes, 5) x 4: the history counts"
    );
    assert_eq!(score.reliability, 7, "round(10 x 4 / 6)");
    assert_clean(&book, "after the lifecycle");
}

/// `store_peer(NewPeer)` on a known id: given fields replace, `None`/empty keep;
/// `store_peer(PeerRecord)` still stores exactly the record.
pub fn upsert_replaces_given_fields_only<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book::<F, D>(f);
    let first = book.store_peer(sample_peer("u")).expect("store");
    clock.advance(Duration::from_secs(10));
    let kept = book.store_peer(bare("u")).expect("bare reconnect");
    assert_eq!(kept.display_name, first.display_name);
    assert_eq!(kept.public_key, first.public_key);
    assert_eq!(kept.shared_secret, first.shared_secret);
    assert_eq!(kept.ice_servers, first.ice_servers);
    assert_eq!(kept.cached_candidates, first.cached_candidates);
    assert_eq!(kept.last_known_ip, first.last_known_ip);
    assert_eq!(kept.last_seen, T0 + 10_000);
    let replaced = book
        .store_peer(NewPeer {
            peer_id: "u".into(),
            display_name: "  New   name ".into(),
            shared_secret: Some(Secret::from("new-secret")),
            cached_candidates: vec!["candidate:9 1 udp 1 10.0.0.9 9 typ host".into()],
            last_known_ip: Some("10.0.0.9".parse().expect("ip")),
            ..NewPeer::default()
        })
        .expect("reconnect with news");
    assert_eq!(replaced.display_name, "New name");
    assert_eq!(
        book.open_shared_secret(&replaced)
            .unwrap()
            .unwrap()
            .expose(),
        b"new-secret"
    );
    assert_eq!(replaced.cached_candidates.len(), 1);
    assert_eq!(replaced.ice_servers, first.ice_servers, "empty list keeps");
    assert_eq!(
        book.open_ice_credential(&replaced, 1)
            .unwrap()
            .unwrap()
            .expose(),
        b"turn-credential-of-u"
    );
    let mut exact = replaced.clone();
    exact.connection_quality.total_connections = 0;
    exact.last_seen = T0;
    exact.last_connected = T0; // never after last_seen
    let stored = book.store_peer(exact.clone()).expect("store a record");
    assert_eq!(stored, exact, "a PeerRecord is stored exactly");
    assert_eq!(book.get_peer("u").unwrap().unwrap(), exact);
    assert_clean(&book, "after upserts");
}

/// `learn_peer` counts no success: a new peer was never connected; a known one keeps
/// its times, attempts, blacklist and history, while given fields replace.
pub fn learn_peer_counts_no_success<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book::<F, D>(f);
    let learned = book.learn_peer(sample_peer("heard")).expect("learn");
    assert_eq!((learned.last_seen, learned.last_connected), (T0, 0));
    book.store_peer(sample_peer("known")).expect("store");
    book.record_session("known", &session(true, 1_000, 10))
        .expect("session");
    for _ in 0..3 {
        book.increment_reconnection_attempts("known")
            .expect("attempt");
    }
    let before = book.get_peer("known").unwrap().unwrap();
    assert!(before.blacklist_until.is_some());
    clock.advance(Duration::from_secs(60));
    let after = book
        .learn_peer(NewPeer {
            peer_id: "known".into(),
            last_known_ip: Some("198.51.100.1".parse().expect("ip")),
            ..NewPeer::default()
        })
        .expect("learn a known peer");
    assert_eq!(after.last_known_ip, Some("198.51.100.1".parse().unwrap()));
    let mut same = after.clone();
    same.last_known_ip = before.last_known_ip;
    assert_eq!(same, before, "nothing but the given field changed");
    assert_clean(&book, "after learn_peer");
}

/// A different public key for a known id is refused with a typed error (nothing
/// changes) by `store_peer`, `learn_peer` and `update_peer`; `replace_peer`
/// replaces the peer and resets its history.
pub fn public_key_change_refused_unless_replaced<F: Factory, D: Driver>(f: &F) {
    let (book, _clock) = book::<F, D>(f);
    book.store_peer(sample_peer("k")).expect("store");
    book.record_session("k", &session(true, 1_000, 10))
        .expect("session");
    let before = snapshot(book.backend());
    let mut other = sample_peer("k");
    other.public_key = "another key".into();
    for result in [
        book.store_peer(other.clone()),
        book.learn_peer(other.clone()),
        book.update_peer("k", |r| {
            r.public_key = "another key".into();
            Ok(())
        }),
    ] {
        match result {
            Err(Error::PublicKeyChanged { peer_id }) => assert_eq!(peer_id, "k"),
            other => panic!("expected PublicKeyChanged, got {other:?}"),
        }
        assert!(
            snapshot(book.backend()) == before,
            "a refused change changes nothing"
        );
    }
    let replaced = book.replace_peer(other).expect("explicit replace");
    assert_eq!(replaced.public_key, "another key");
    assert_eq!(replaced.connection_quality.total_connections, 0);
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 1);
    assert_clean(&book, "after replace_peer");
}

/// An empty public key is unset: the first non-empty one given sets it (by
/// `store_peer`, `learn_peer` or `update_peer`; a libp2p peer whose id is a hash
/// of its key is stored on connection and learns its key from identify later),
/// history kept. Once set it never changes but through `replace_peer`; an empty
/// key given later keeps it.
pub fn an_unset_public_key_is_set_once<F: Factory, D: Driver>(f: &F) {
    for name in ["store_peer", "learn_peer", "update_peer"] {
        let set = |book: &BookOf<F, D>, peer: NewPeer| match name {
            "store_peer" => book.store_peer(peer),
            "learn_peer" => book.learn_peer(peer),
            _ => book.update_peer(&peer.peer_id.clone(), move |r| {
                r.public_key = peer.public_key;
                Ok(())
            }),
        };
        let (book, _clock) = book::<F, D>(f);
        let id = "unset";
        let keyless = NewPeer {
            peer_id: id.into(),
            ..NewPeer::default()
        };
        book.store_peer(keyless.clone())
            .expect("store without a key");
        book.record_session(id, &session(true, 1_000, 10))
            .expect("session");
        let with_key = |key: &str| NewPeer {
            public_key: key.into(),
            ..keyless.clone()
        };
        let set_now = set(&book, with_key("the key")).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(set_now.public_key, "the key", "{name}");
        assert_eq!(
            set_now.connection_quality.total_connections, 1,
            "{name}: history kept"
        );
        let before = snapshot(book.backend());
        match set(&book, with_key("another key")) {
            Err(Error::PublicKeyChanged { peer_id }) => assert_eq!(peer_id, id),
            other => panic!("{name}: expected PublicKeyChanged, got {other:?}"),
        }
        assert!(
            snapshot(book.backend()) == before,
            "{name}: a refused change changes nothing"
        );
        if name != "update_peer" {
            // an empty key keeps the stored one (update_peer would blank it: refused)
            let kept = set(&book, keyless.clone()).expect("no key given");
            assert_eq!(kept.public_key, "the key", "{name}");
        }
        let stored = book.get_peer(id).expect("get").expect("stored");
        assert_eq!(stored.public_key, "the key", "{name}");
        assert_clean(&book, name);
    }
}

/// A change for `update_peer`.
type Change = Box<dyn FnOnce(&mut PeerRecord) -> crate::Result<()> + Send>;

/// `update_peer` applies a closure atomically; an error (from the closure, a rule,
/// a rename, a far-future time) leaves the book unchanged.
pub fn update_peer_validates_and_changes_nothing_on_error<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book::<F, D>(f);
    book.store_peer(sample_peer("w")).expect("store");
    let r = book
        .update_peer("w", |r| {
            r.display_name = "Renamed".into();
            r.reconnection_attempts = 2;
            Ok(())
        })
        .expect("update");
    assert_eq!(
        (r.display_name.as_str(), r.reconnection_attempts),
        ("Renamed", 2)
    );
    assert_eq!(book.get_peer("w").unwrap().unwrap(), r);
    let before = snapshot(book.backend());
    let far = clock.now_ms() + 10 * crate::scoring::DAY_MS;
    let cases: Vec<(&str, Change)> = vec![
        (
            "closure",
            Box::new(|_| Err(Error::invalid("closure", "said no"))),
        ),
        (
            "display_name",
            Box::new(|r| {
                r.display_name = " padded".into();
                Ok(())
            }),
        ),
        (
            "peer_id",
            Box::new(|r| {
                r.peer_id = crate::PeerId::new("other").expect("id");
                Ok(())
            }),
        ),
        (
            "last_seen",
            Box::new(move |r| {
                r.last_seen = far;
                Ok(())
            }),
        ),
        (
            // within clock skew, but a connection is a contact: never after last_seen
            "last_connected",
            Box::new(|r| {
                r.last_connected = r.last_seen + 1_000;
                Ok(())
            }),
        ),
        (
            "last_connected",
            Box::new(|r| {
                r.last_seen -= 1;
                Ok(())
            }),
        ),
        (
            "shared_secret",
            Box::new(|r| {
                r.shared_secret = None;
                r.ice_servers.clear();
                r.shared_secret =
                    Some(crate::SealedSecret::from_bytes(vec![0; 60]).expect("bytes"));
                Ok(())
            }),
        ),
    ];
    for (field, change) in cases {
        match book.update_peer("w", change) {
            Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: expected InvalidInput, got {other:?}"),
        }
        assert!(
            snapshot(book.backend()) == before,
            "{field}: nothing changed"
        );
    }
    assert!(matches!(
        book.update_peer("absent", |_| Ok(())),
        Err(Error::NotFound { .. })
    ));
    assert_clean(&book, "after update_peer");
}

/// 8 threads record sessions on one peer at once: none is lost, totals are exact.
pub fn concurrent_record_session_exact<F: Factory, D: Driver>(f: &F) {
    let (book, _clock) = book::<F, D>(f);
    book.store_peer(sample_peer("hot")).expect("store");
    let book = Arc::new(book);
    let per_thread = 100u32;
    let start = Arc::new(std::sync::Barrier::new(8));
    std::thread::scope(|s| {
        for t in 0..8u32 {
            let book = Arc::clone(&book);
            let start = Arc::clone(&start);
            s.spawn(move || {
                start.wait();
                for i in 0..per_thread {
                    let ok = (t + i) % 2 == 0;
                    book.record_session("hot", &session(ok, 60_000, 50))
                        .expect("record_session");
                }
            });
        }
    });
    let q = book.get_peer("hot").unwrap().unwrap().connection_quality;
    assert_eq!(q.total_connections, 8 * per_thread, "no session lost");
    assert_eq!(q.successful_connections, 4 * per_thread);
    assert_eq!(q.success_rate, 0.5);
    assert_eq!(q.avg_uptime_ms, 60_000);
    assert_eq!(q.latency_ms, Some(50));
    assert_clean(&*book, "after concurrent sessions");
}

/// A call on a book, for "refused and nothing changed" tables.
type Call<'a, K> = Box<dyn Fn(&K) -> crate::Result<PeerRecord> + 'a>;

/// Addresses and metadata: every bad input is a typed error naming the field and
/// changes nothing.
pub fn addresses_validated_nothing_changed<F: Factory, D: Driver>(f: &F) {
    let (book, _clock) = book::<F, D>(f);
    book.store_peer(sample_peer("n")).expect("store");
    for i in 0..MAX_ADDRESSES {
        book.add_address(
            "n",
            &format!("/ip4/10.0.0.{i}/tcp/4001"),
            AddressSource::Discovery,
            None,
        )
        .expect("within the limit");
    }
    book.set_metadata("n", "agent", Some("node/1.0"))
        .expect("metadata");
    let before = snapshot(book.backend());
    let far = T0 + MAX_ADDRESS_TTL_MS + 1;
    let long = "a".repeat(MAX_ADDRESS_LEN + 1);
    let long_value = "v".repeat(MAX_METADATA_VALUE_LEN + 1);
    let m = AddressSource::Manual;
    let calls: Vec<(&str, Call<'_, BookOf<F, D>>)> = vec![
        (
            "addr",
            Box::new(|b| b.add_address("n", "has space:1", m, None)),
        ),
        ("addr", Box::new(|b| b.add_address("n", "", m, None))),
        (
            "addr",
            Box::new(|b| b.add_address("n", "host\u{202E}:1", m, None)),
        ),
        ("addr", Box::new(|b| b.add_address("n", &long, m, None))),
        (
            "addresses",
            Box::new(|b| b.add_address("n", "relay.example.org:443", m, None)),
        ),
        (
            "addresses[0].expires_at",
            Box::new(|b| b.add_address("n", "/ip4/10.0.0.0/tcp/4001", m, Some(far))),
        ),
        (
            "addr",
            Box::new(|b| b.record_address_result("n", "unknown:1", true)),
        ),
        (
            "metadata",
            Box::new(|b| b.set_metadata("n", "bad key", Some("v"))),
        ),
        (
            "metadata.agent",
            Box::new(|b| b.set_metadata("n", "agent", Some("a\u{7}"))),
        ),
        (
            "metadata.agent",
            Box::new(|b| b.set_metadata("n", "agent", Some(&long_value))),
        ),
        (
            "addresses[1].addr",
            Box::new(|b| {
                b.update_peer("n", |r| {
                    r.addresses[1].addr = r.addresses[0].addr.clone();
                    Ok(())
                })
            }),
        ),
    ];
    for (field, call) in calls {
        match call(&book) {
            Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{field}: expected InvalidInput, got {other:?}"),
        }
        assert!(
            snapshot(book.backend()) == before,
            "{field}: nothing changed"
        );
    }
    for i in 1..MAX_METADATA_ENTRIES {
        book.set_metadata("n", &format!("k{i}"), Some("v"))
            .expect("within the limit");
    }
    let full = snapshot(book.backend());
    match book.set_metadata("n", "one-more", Some("v")) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "metadata"),
        other => panic!("expected InvalidInput metadata, got {other:?}"),
    }
    assert!(
        snapshot(book.backend()) == full,
        "too many entries: nothing changed"
    );
    assert_clean(&book, "after refused address changes");
}

/// Per-address success and failure, expiry dropped by `cleanup_stale_peers`, and
/// addresses and metadata kept by upserts, reopen, and export/import.
pub fn address_results_expiry_and_transfer<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book::<F, D>(f);
    book.store_peer(sample_peer("m")).expect("store");
    let hour = 3_600_000;
    book.add_address(
        "m",
        "/ip4/203.0.113.7/udp/4001/quic-v1",
        AddressSource::Observed,
        None,
    )
    .expect("add");
    book.add_address(
        "m",
        "https://relay.example.org/r/m",
        AddressSource::Reported,
        Some(T0 + hour),
    )
    .expect("add expiring");
    book.set_metadata("m", "protocols", Some("/ipfs/id/1.0.0 /ipfs/ping/1.0.0"))
        .expect("metadata");
    clock.advance(Duration::from_secs(60));
    let r = book
        .record_address_result("m", "/ip4/203.0.113.7/udp/4001/quic-v1", true)
        .expect("success");
    assert_eq!(r.addresses[0].last_success, Some(T0 + 60_000));
    assert!(r.addresses[0].last_worked());
    let r = book
        .record_address_result("m", "https://relay.example.org/r/m", false)
        .expect("failure");
    assert_eq!(r.addresses[1].last_failure, Some(T0 + 60_000));
    assert!(!r.addresses[1].last_worked());
    let kept = book.store_peer(bare("m")).expect("reconnect");
    assert_eq!(
        (kept.addresses.len(), kept.metadata.len()),
        (2, 1),
        "upsert keeps them"
    );
    clock.advance(Duration::from_millis(hour));
    assert_eq!(
        book.cleanup_stale_peers().expect("cleanup"),
        0,
        "no peer is stale"
    );
    let r = book.get_peer("m").unwrap().expect("kept");
    assert_eq!(r.addresses.len(), 1, "the expired address is dropped");
    assert_eq!(r.addresses[0].addr, "/ip4/203.0.113.7/udp/4001/quic-v1");
    assert_eq!(r.metadata["protocols"], "/ipfs/id/1.0.0 /ipfs/ping/1.0.0");
    assert_clean(&book, "after address cleanup");
    let doc = book
        .export_data(crate::ExportOptions::default())
        .expect("export");
    assert_eq!(doc.version, crate::store::EXPORT_VERSION);
    let parsed = crate::ExportDocument::from_json(&doc.to_json()).expect("parse");
    let (other, _) = self::book::<F, D>(f);
    other
        .import_data(&parsed, crate::ImportMode::Replace)
        .expect("import");
    assert_eq!(
        other.get_peer("m").unwrap().expect("imported"),
        r,
        "export carries addresses"
    );
    assert_clean(&other, "after import");
    let removed = book
        .remove_address("m", "/ip4/203.0.113.7/udp/4001/quic-v1")
        .expect("remove an address");
    assert!(removed.addresses.is_empty());
    let cleared = book
        .set_metadata("m", "protocols", None)
        .expect("remove metadata");
    assert!(cleared.metadata.is_empty());
    assert_eq!(book.get_peer("m").unwrap().unwrap(), cleared);
}

/// `get_reconnection_candidates_by_address` ranks peers with a recently working,
/// unexpired address first (score order within each group) without changing
/// scores; the plain ranking ignores addresses.
pub fn candidates_prefer_recently_working_address<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book::<F, D>(f);
    for id in ["best", "working", "failed", "old"] {
        book.store_peer(sample_peer(id)).expect("store");
    }
    for _ in 0..5 {
        book.record_session("best", &session(true, 700_000, 10))
            .expect("session");
    }
    let addr = "/ip4/192.0.2.1/tcp/4001";
    for id in ["working", "failed", "old"] {
        book.add_address(id, addr, AddressSource::Observed, None)
            .expect("address");
    }
    book.record_address_result("old", addr, true)
        .expect("old success");
    clock.advance(Duration::from_secs(2 * 3600));
    book.record_address_result("working", addr, true)
        .expect("success");
    book.record_address_result("failed", addr, true)
        .expect("success");
    book.record_address_result("failed", addr, false)
        .expect("then failure");
    let ids = |c: &[crate::Candidate]| -> Vec<String> {
        c.iter().map(|c| c.peer.peer_id.to_string()).collect()
    };
    let plain = book
        .get_reconnection_candidates(&crate::CandidateQuery::default())
        .expect("candidates");
    assert_eq!(
        ids(&plain)[0],
        "best",
        "the plain ranking ignores addresses"
    );
    let hour = Duration::from_secs(3600);
    let preferred = book
        .get_reconnection_candidates_by_address(&crate::CandidateQuery::default(), hour)
        .expect("candidates by address");
    assert_eq!(
        ids(&preferred)[0],
        "working",
        "a recently working address first"
    );
    let mut rest = ids(&plain);
    rest.retain(|id| id != "working");
    assert_eq!(
        ids(&preferred)[1..],
        rest[..],
        "the others keep the score order"
    );
    for (a, b) in preferred.iter().zip(&plain) {
        if a.peer.peer_id == b.peer.peer_id {
            assert_eq!(a.score, b.score, "scores unchanged");
        }
    }
    let one = book
        .get_reconnection_candidates_by_address(
            &crate::CandidateQuery {
                limit: 1,
                max_age: None,
            },
            hour,
        )
        .expect("limit");
    assert_eq!(ids(&one), ["working"]);
}
