//! Secrets: sealed in storage and bound to their peer, the wrong key refused at open, key rotation re-sealing every secret.

use super::*;

/// Secrets are never stored in plaintext, and a sealed secret copied onto another
/// peer is refused.
pub fn secrets_sealed_and_bound_to_peer<F: Factory, D: Driver>(f: &F) {
    let (book, _) = fresh::<F, D>(f);
    let a = book.store_peer(sample_peer("alice")).unwrap();
    let b = book.store_peer(sample_peer("bob")).unwrap();
    for (k, v) in snapshot(book.backend()).iter().flatten() {
        for needle in [&b"shared-secret-of"[..], b"turn-credential-of"] {
            assert!(
                !v.windows(needle.len()).any(|w| w == needle),
                "plaintext secret found in storage"
            );
            assert!(!k.windows(needle.len()).any(|w| w == needle));
        }
    }
    let before = snapshot(book.backend());
    let mut swapped = b.clone();
    swapped.shared_secret = a.shared_secret.clone();
    match book.store_peer(swapped) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "shared_secret"),
        other => panic!("a secret moved between peers must be refused, got {other:?}"),
    }
    let mut swapped = b.clone();
    swapped.ice_servers[1].credential = a.ice_servers[1].credential.clone();
    assert!(matches!(
        book.store_peer(swapped),
        Err(Error::InvalidInput { .. })
    ));
    let mut moved = b.clone();
    moved.ice_servers[0].credential = b.ice_servers[1].credential.clone();
    book.store_peer(moved)
        .expect("a credential may move between servers of the same peer");
    let mut forged = b.clone();
    forged.shared_secret = Some(crate::SealedSecret::from_bytes(vec![0; 40]).unwrap());
    assert!(matches!(
        book.store_peer(forged.clone()),
        Err(Error::InvalidInput { .. })
    ));
    assert!(
        matches!(
            book.open_shared_secret(&forged),
            Err(Error::Corrupted { .. })
        ),
        "a bad seal is corrupted, never garbage"
    );
    let alice = book.get_peer("alice").unwrap().unwrap();
    assert_eq!(
        book.open_shared_secret(&alice).unwrap().unwrap().expose(),
        b"shared-secret-of-alice",
        "refusals changed nothing"
    );
    assert_eq!(
        snapshot(book.backend()).map(|space| space.len()),
        before.map(|space| space.len()),
        "entries per space"
    );
}

/// Opening a book with the wrong key fails at once with WrongKey.
pub fn wrong_key_refused_at_open<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    book.store_peer(sample_peer("p")).unwrap();
    let backend = Arc::new(f.reopen(book.close().unwrap()));
    let wrong = Options::new(other_key()).with_clock(clock.clone());
    match open::<D, _>(Arc::clone(&backend), wrong) {
        Err(e @ Error::WrongKey) => assert!(e.to_string().contains("wrong key")),
        other => panic!("expected WrongKey, got {other:?}"),
    }
    let book = open::<D, _>(backend, options(&clock)).expect("the right key still opens");
    let p = book.get_peer("p").unwrap().unwrap();
    assert_eq!(
        book.open_shared_secret(&p).unwrap().unwrap().expose(),
        b"shared-secret-of-p"
    );
}

/// rotate_key re-seals every secret: afterwards only the new key opens the book
/// and every secret reads the same.
pub fn rotate_key_keeps_every_secret<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    for i in 0..5 {
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    book.store_peer(plain_peer("plain")).unwrap();
    let before = book.get_peer("p0").unwrap().unwrap();
    assert_eq!(
        book.rotate_key(&other_key()).unwrap(),
        5,
        "five records hold secrets"
    );
    let after = book.get_peer("p0").unwrap().unwrap();
    assert_ne!(after.shared_secret, before.shared_secret, "re-sealed");
    assert_eq!(
        book.open_shared_secret(&after).unwrap().unwrap().expose(),
        b"shared-secret-of-p0"
    );
    book.store_peer(sample_peer("new")).unwrap();
    let backend = Arc::new(f.reopen(book.close().unwrap()));
    assert!(
        matches!(
            open::<D, _>(Arc::clone(&backend), options(&clock)),
            Err(Error::WrongKey)
        ),
        "old key refused"
    );
    let book = open::<D, _>(backend, Options::new(other_key()).with_clock(clock.clone()))
        .expect("new key opens");
    for id in ["p0", "p1", "p2", "p3", "p4", "new"] {
        let r = book.get_peer(id).unwrap().unwrap();
        assert_eq!(
            book.open_shared_secret(&r).unwrap().unwrap().expose(),
            format!("shared-secret-of-{id}").as_bytes()
        );
        assert_eq!(
            book.open_ice_credential(&r, 1).unwrap().unwrap().expose(),
            format!("turn-credential-of-{id}").as_bytes()
        );
    }
    assert_clean(&book, "after rotation");
}
