//! Export and import: round trips, all or nothing, refused documents.

use super::*;

/// Export then import into a fresh book gives identical records (JSON included);
/// an export without secrets imports under any key.
pub fn export_import_round_trip<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    for i in 0..5 {
        clock.advance(HOUR);
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    book.update_connection_quality(
        "p2",
        quality(Some(40), 0.75, ConnectionType::Relay, 4, 3, 70_000),
    )
    .unwrap();
    let doc = book.export_data(ExportOptions::default()).unwrap();
    assert_eq!(doc.peers.len(), 5);
    let json = doc.to_json();
    assert!(
        !json.contains("shared-secret-of"),
        "exports keep secrets sealed"
    );
    let parsed = ExportDocument::from_json(&json).unwrap();
    assert_eq!(parsed, doc, "JSON round trip");
    let (target, _) = fresh::<F, D>(f);
    let report = target.import_data(&parsed, ImportMode::Merge).unwrap();
    assert_eq!(report.imported, 5);
    let original = book.query_peers(&PeerQuery::default()).unwrap();
    let copied = target.query_peers(&PeerQuery::default()).unwrap();
    assert_eq!(copied, original, "identical records");
    let r = target.get_peer("p3").unwrap().unwrap();
    assert_eq!(
        target.open_shared_secret(&r).unwrap().unwrap().expose(),
        b"shared-secret-of-p3"
    );
    assert_clean(&target, "after import");
    // merge replaces by id, replace makes the book equal to the document
    target.store_peer(plain_peer("extra")).unwrap();
    let merged = target.import_data(&parsed, ImportMode::Merge).unwrap();
    assert_eq!((merged.imported, merged.replaced), (5, 5));
    assert!(
        target.get_peer("extra").unwrap().is_some(),
        "merge keeps other peers"
    );
    let replaced = target.import_data(&parsed, ImportMode::Replace).unwrap();
    assert_eq!(replaced.removed, 6);
    assert_eq!(
        target.get_peer("extra").unwrap(),
        None,
        "replace drops other peers"
    );
    assert_eq!(target.get_storage_stats().unwrap().peer_count, 5);
    assert_clean(&target, "after replace");
    // without secrets, any key
    let bare = book
        .export_data(ExportOptions {
            include_secrets: false,
        })
        .unwrap();
    assert!(bare.key_check.is_none());
    let (foreign, _) = book_with::<F, D>(f, |o| o.key = other_key());
    foreign.import_data(&bare, ImportMode::Merge).unwrap();
    assert_eq!(foreign.get_peer("p1").unwrap().unwrap().shared_secret, None);
}

/// An import that fails anywhere (a bad record in the middle, a quota) leaves the
/// book unchanged.
pub fn import_is_all_or_nothing<F: Factory, D: Driver>(f: &F) {
    let (source, _) = fresh::<F, D>(f);
    for i in 0..6 {
        source.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    let doc = source.export_data(ExportOptions::default()).unwrap();
    let (target, _) = book_with::<F, D>(f, |o| o.max_peers = 6);
    target.store_peer(plain_peer("mine")).unwrap();
    let before = snapshot(target.backend());
    let mut bad = doc.clone();
    bad.peers[3].cached_candidates = vec!["x".repeat(513)];
    match target.import_data(&bad, ImportMode::Merge) {
        Err(Error::InvalidInput { field, .. }) => {
            assert_eq!(field, "peers[3].cached_candidates[0]")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(
        snapshot(target.backend()),
        before,
        "bad record in the middle: nothing imported"
    );
    let mut json: serde_json::Value = serde_json::from_str(&doc.to_json()).unwrap();
    json["peers"][4]["connection_quality"]["success_rate"] = serde_json::json!(7.5);
    let bad = ExportDocument::from_json(&json.to_string()).unwrap();
    assert!(matches!(
        target.import_data(&bad, ImportMode::Replace),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(snapshot(target.backend()), before);
    match target.import_data(&doc, ImportMode::Merge) {
        Err(Error::QuotaExceeded(_)) => {}
        other => panic!("7 peers into max 6: expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(
        snapshot(target.backend()),
        before,
        "quota refusal imports nothing"
    );
    target
        .import_data(&doc, ImportMode::Replace)
        .expect("replace fits exactly 6");
}

/// Import refuses documents of another key, tampered or swapped secrets, newer
/// versions and duplicates, changing nothing (the JSON parser's table of bad
/// documents is a unit test of [`schema`](crate::schema)).
pub fn import_refuses_other_key_and_bad_documents<F: Factory, D: Driver>(f: &F) {
    let (source, _) = fresh::<F, D>(f);
    source.store_peer(sample_peer("a")).unwrap();
    source.store_peer(sample_peer("b")).unwrap();
    let doc = source.export_data(ExportOptions::default()).unwrap();
    let (foreign, _) = book_with::<F, D>(f, |o| o.key = other_key());
    let before = snapshot(foreign.backend());
    assert!(
        matches!(
            foreign.import_data(&doc, ImportMode::Merge),
            Err(Error::WrongKey)
        ),
        "another key's secrets"
    );
    let mut no_check = doc.clone();
    no_check.key_check = None;
    assert!(matches!(
        foreign.import_data(&no_check, ImportMode::Merge),
        Err(Error::WrongKey)
    ));
    assert_eq!(snapshot(foreign.backend()), before);

    let (target, _) = fresh::<F, D>(f);
    let before = snapshot(target.backend());
    let mut swapped = doc.clone();
    swapped.peers[1].shared_secret = swapped.peers[0].shared_secret.clone();
    match target.import_data(&swapped, ImportMode::Merge) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "peers[1].shared_secret"),
        other => panic!("swapped secret: expected InvalidInput, got {other:?}"),
    }
    let mut tampered = doc.clone();
    let mut bytes = tampered.peers[0].ice_servers[1]
        .credential
        .as_ref()
        .unwrap()
        .as_bytes()
        .to_vec();
    bytes[20] ^= 1;
    tampered.peers[0].ice_servers[1].credential =
        Some(crate::SealedSecret::from_bytes(bytes).unwrap());
    assert!(matches!(
        target.import_data(&tampered, ImportMode::Merge),
        Err(Error::InvalidInput { .. })
    ));
    let mut dup = doc.clone();
    dup.peers.push(dup.peers[0].clone());
    assert!(matches!(
        target.import_data(&dup, ImportMode::Merge),
        Err(Error::InvalidInput { .. })
    ));
    let mut future = doc.clone();
    future.version = 99;
    assert!(matches!(
        target.import_data(&future, ImportMode::Merge),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        snapshot(target.backend()),
        before,
        "refused imports change nothing"
    );
}
