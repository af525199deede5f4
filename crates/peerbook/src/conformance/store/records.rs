//! Records: store, get, update, remove; every bad input and far-future time refused with the field named and nothing changed.

use super::*;

/// store_peer then get_peer gives back every field; secrets are sealed and open;
/// the record's index entries exist.
pub fn store_and_get_round_trip<F: Factory, D: Driver>(f: &F) {
    let (book, _clock) = fresh::<F, D>(f);
    let stored = book.store_peer(sample_peer("ABC123")).expect("store");
    let got = book.get_peer("ABC123").expect("get").expect("present");
    assert_eq!(got, stored, "get returns what store returned");
    assert_eq!(got.display_name, "Peer ABC123");
    assert_eq!(
        (got.last_seen, got.last_connected),
        (T0, T0),
        "new peer is seen now"
    );
    assert_eq!(got.ice_servers.len(), 2);
    assert_eq!(got.cached_candidates.len(), 2);
    assert_eq!(got.last_known_ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(got.reconnection_attempts, 0);
    assert_eq!(got.blacklist_until, None);
    let secret = book
        .open_shared_secret(&got)
        .expect("open")
        .expect("has secret");
    assert_eq!(secret.expose(), b"shared-secret-of-ABC123");
    assert_eq!(
        book.open_ice_credential(&got, 0).expect("open"),
        None,
        "STUN server has no credential"
    );
    let cred = book
        .open_ice_credential(&got, 1)
        .expect("open")
        .expect("has credential");
    assert_eq!(cred.expose(), b"turn-credential-of-ABC123");
    assert!(matches!(
        book.open_ice_credential(&got, 2),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        book.get_peer("nobody").expect("get"),
        None,
        "unknown peer is None"
    );
    assert!(matches!(
        book.get_peer("bad id"),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        space_keys(book.backend(), Space::ByLastSeen).len(),
        1,
        "one last_seen index entry"
    );
    assert_eq!(
        quality_keys(book.backend()).len(),
        1,
        "one quality index entry"
    );
    assert_eq!(rank_keys(book.backend()).len(), 1, "one rank entry");
    let debug = format!("{got:?}");
    assert!(
        !debug.contains("shared-secret-of") && !debug.contains("turn-credential-of"),
        "no secret in Debug"
    );
    assert_clean(&book, "after a store");
}

/// Storing an updated record (the seed's IP change) replaces it and moves its
/// index entries; no stale entry is left behind.
pub fn update_existing_peer_rewrites_indexes<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    book.store_peer(sample_peer("a")).unwrap();
    book.store_peer(plain_peer("b")).unwrap();
    clock.advance(HOUR);
    let mut a = book.get_peer("a").unwrap().unwrap();
    a.cached_candidates = vec!["candidate:9 1 udp 1 198.51.100.1 1 typ host".into()];
    a.last_known_ip = Some("198.51.100.1".parse().unwrap());
    a.last_seen = crate::Clock::now_ms(&clock);
    a.display_name = "  Renamed\u{202E}  Peer ".into();
    let stored = book.store_peer(a.clone()).unwrap();
    assert_eq!(
        stored.display_name, "Renamed Peer",
        "display name sanitized on update"
    );
    let got = book.get_peer("a").unwrap().unwrap();
    assert_eq!(got.cached_candidates, a.cached_candidates);
    assert_eq!(got.last_known_ip, a.last_known_ip);
    assert_eq!(got.last_seen, T0 + 3_600_000);
    assert_eq!(
        book.open_shared_secret(&got).unwrap().unwrap().expose(),
        b"shared-secret-of-a",
        "secret kept"
    );
    assert_eq!(
        space_keys(book.backend(), Space::ByLastSeen).len(),
        2,
        "old index entry replaced, not added"
    );
    assert_eq!(
        rank_keys(book.backend()).len(),
        2,
        "old rank entry replaced, not added"
    );
    let recent = book.query_peers(&PeerQuery::default()).unwrap();
    assert_eq!(ids(&recent), ["a", "b"], "a is now the most recently seen");
    // a NewPeer with another public key is refused; replace_peer replaces the record
    assert!(matches!(
        book.store_peer(plain_peer("a")),
        Err(Error::PublicKeyChanged { .. })
    ));
    book.replace_peer(plain_peer("a")).unwrap();
    assert_eq!(book.get_peer("a").unwrap().unwrap().shared_secret, None);
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 2);
    assert_clean(&book, "after updates");
}

/// remove_peer deletes the record and its index entries; a second remove is false.
pub fn remove_peer<F: Factory, D: Driver>(f: &F) {
    let (book, _) = fresh::<F, D>(f);
    book.store_peer(sample_peer("a")).unwrap();
    book.store_peer(sample_peer("b")).unwrap();
    assert!(book.remove_peer("a").unwrap(), "removed");
    assert!(
        !book.remove_peer("a").unwrap(),
        "second remove finds nothing"
    );
    assert_eq!(book.get_peer("a").unwrap(), None);
    assert!(book.get_peer("b").unwrap().is_some(), "others stay");
    assert_eq!(space_keys(book.backend(), Space::ByLastSeen).len(), 1);
    assert_eq!(quality_keys(book.backend()).len(), 1);
    assert_eq!(rank_keys(book.backend()).len(), 1);
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 1);
    assert!(matches!(
        book.remove_peer(""),
        Err(Error::InvalidInput { .. })
    ));
    assert_clean(&book, "after remove");
}

/// Every kind of bad input gets a typed InvalidInput (or NotFound) naming the
/// field, and the book is byte-for-byte unchanged afterwards.
pub fn invalid_input_changes_nothing<F: Factory, D: Driver>(f: &F) {
    let (book, _) = fresh::<F, D>(f);
    book.store_peer(sample_peer("existing")).unwrap();
    let before = snapshot(book.backend());
    let with = |mutate: &dyn Fn(&mut NewPeer)| {
        let mut p = sample_peer("fresh");
        mutate(&mut p);
        p
    };
    // one bad field of each kind (every validation row is a unit test of schema)
    let cases: Vec<(&str, NewPeer)> = vec![
        ("peer_id", with(&|p| p.peer_id = "has space".into())),
        (
            "shared_secret",
            with(&|p| p.shared_secret = Some(Secret::from(""))),
        ),
        (
            "ice_servers[1].credential",
            with(&|p| p.ice_servers[1].credential = Some(Secret::from(""))),
        ),
        (
            "cached_candidates[1]",
            with(&|p| p.cached_candidates = vec!["ok".into(), "line\r\nbreak".into()]),
        ),
    ];
    for (field, peer) in cases {
        match book.store_peer(peer) {
            Err(Error::InvalidInput { field: got, rule }) => {
                assert_eq!(got, field, "store_peer names the field");
                assert!(!rule.is_empty(), "a rule is given");
            }
            other => panic!("{field}: expected InvalidInput, got {other:?}"),
        }
    }
    let nan = QualityUpdate {
        success_rate: Some(f32::NAN),
        ..Default::default()
    };
    let too_high = QualityUpdate {
        success_rate: Some(1.5),
        ..Default::default()
    };
    let negative = QualityUpdate {
        success_rate: Some(-0.01),
        ..Default::default()
    };
    let inconsistent = QualityUpdate {
        successful_connections: Some(3),
        total_connections: Some(2),
        ..Default::default()
    };
    for update in [nan, too_high, negative, inconsistent] {
        let err = book
            .update_connection_quality("existing", update)
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { field, .. } if field.starts_with("connection_quality.")),
            "{err}"
        );
    }
    let mut record = book.get_peer("existing").unwrap().unwrap();
    record.connection_quality.success_rate = f32::INFINITY;
    assert!(matches!(
        book.store_peer(record.clone()),
        Err(Error::InvalidInput { .. })
    ));
    record.connection_quality.success_rate = 0.5;
    record.cached_candidates = vec!["x".repeat(600)];
    assert!(matches!(
        book.store_peer(record),
        Err(Error::InvalidInput { .. })
    ));
    for id in ["", "a b", "\u{1F600}"] {
        assert!(
            matches!(book.update_last_seen(id), Err(Error::InvalidInput { .. })),
            "{id:?}"
        );
        assert!(matches!(
            book.increment_reconnection_attempts(id),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(book.get_peer(id), Err(Error::InvalidInput { .. })));
        assert!(matches!(
            book.remove_peer(id),
            Err(Error::InvalidInput { .. })
        ));
    }
    assert!(matches!(
        book.update_last_seen("unknown"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        book.increment_reconnection_attempts("unknown"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        book.update_connection_quality("unknown", QualityUpdate::default()),
        Err(Error::NotFound { .. })
    ));
    let bad_query = PeerQuery {
        min_quality: Some(101),
        ..PeerQuery::default()
    };
    assert!(matches!(
        book.query_peers(&bad_query),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        snapshot(book.backend()),
        before,
        "no bad input changed anything"
    );
}

/// Far-future timestamps are refused at every entry point (a whole record,
/// import, setters), with the field named and nothing changed; the limits
/// themselves are accepted.
pub fn far_future_timestamps_refused<F: Factory, D: Driver>(f: &F) {
    let (book, _clock) = fresh::<F, D>(f);
    let now = T0;
    let day = crate::MAX_CLOCK_SKEW_MS;
    let blacklist_for = crate::duration_ms(Options::new(key()).blacklist_for);
    let base = book.store_peer(sample_peer("p")).unwrap();
    let before = snapshot(book.backend());
    // (field, how to push it past its limit given now + 1 day)
    type Tamper = fn(&mut PeerRecord, u64);
    let cases: [(&str, Tamper); 4] = [
        ("last_seen", |r, _| r.last_seen = u64::MAX),
        ("last_connected", |r, limit| r.last_connected = limit + 1),
        ("last_seen", |r, limit| r.last_seen = limit + 1),
        ("blacklist_until", |r, _| r.blacklist_until = Some(u64::MAX)),
    ];
    for (field, set) in cases {
        let mut record = base.clone();
        set(&mut record, now + day);
        match book.store_peer(record.clone()) {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("store_peer with a far-future {field}: {other:?}"),
        }
        assert!(
            snapshot(book.backend()) == before,
            "a refused record changed the store"
        );
        let mut doc = book.export_data(ExportOptions::default()).unwrap();
        doc.peers[0] = record;
        match book.import_data(&doc, ImportMode::Replace) {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, format!("peers[0].{field}")),
            other => panic!("import with a far-future {field}: {other:?}"),
        }
        assert!(
            snapshot(book.backend()) == before,
            "a refused import changed the store"
        );
    }
    let mut record = base.clone();
    record.blacklist_until = Some(now + blacklist_for + day + 1);
    match book.store_peer(record) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "blacklist_until"),
        other => panic!("blacklist past blacklist_for + 1 day: {other:?}"),
    }
    // the limits themselves are fine
    let mut record = base.clone();
    record.last_seen = now + day;
    record.last_connected = now + day;
    record.blacklist_until = Some(now + blacklist_for + day);
    book.store_peer(record)
        .expect("timestamps at the limits are accepted");
    // setters keep working on the record (their times are the clock's)
    book.increment_reconnection_attempts("p").unwrap();
    book.update_last_seen("p").unwrap();
}
