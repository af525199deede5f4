//! Retention: stale cleanup, the cleanup schedule, LRU, quotas, eviction, storage stats and clear_all.

use super::*;

/// cleanup_stale_peers removes peers unseen for more than 30 days and peers that
/// failed 5 times with their blacklist over; nothing else.
pub fn cleanup_stale_peers_rules<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    book.store_peer(plain_peer("old")).unwrap();
    clock.advance(Duration::from_millis(1));
    book.store_peer(plain_peer("edge")).unwrap();
    clock.advance(5 * DAY);
    book.store_peer(plain_peer("failed")).unwrap();
    book.store_peer(plain_peer("banned")).unwrap();
    book.store_peer(plain_peer("fine")).unwrap();
    for _ in 0..5 {
        book.increment_reconnection_attempts("failed").unwrap();
    }
    // "old" is now 30 days + 1 ms old, "edge" exactly 30 days; failed's blacklist is long over
    clock.set(T0 + 30 * DAY_MS + 1);
    for _ in 0..5 {
        book.increment_reconnection_attempts("banned").unwrap(); // blacklisted until tomorrow
    }
    let removed = book.cleanup_stale_peers().unwrap();
    let left = ids(&book
        .query_peers(&PeerQuery {
            sort_by: SortBy::LastSeen,
            order: Order::Asc,
            ..Default::default()
        })
        .unwrap())
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    assert_eq!(
        removed, 2,
        "old (inactive) and failed (blacklist over) removed"
    );
    let mut sorted = left.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["banned", "edge", "fine"],
        "exactly 30 days old is not stale; an active blacklist is not stale"
    );
    assert_eq!(
        book.get_storage_stats().unwrap().last_cleanup,
        Some(T0 + 30 * DAY_MS + 1)
    );
    assert_eq!(
        book.cleanup_stale_peers().unwrap(),
        0,
        "nothing left to clean"
    );
    assert_clean(&book, "after cleanup");
}

/// needs_cleanup: after cleanup_interval, or at 90 % of max_peers.
pub fn needs_cleanup_rules<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book_with::<F, D>(f, |o| o.max_peers = 10);
    assert!(
        !book.needs_cleanup().unwrap(),
        "a new book needs no cleanup"
    );
    clock.advance(6 * HOUR);
    assert!(
        !book.needs_cleanup().unwrap(),
        "exactly 6 h is not older than 6 h"
    );
    clock.advance(Duration::from_millis(1));
    assert!(book.needs_cleanup().unwrap(), "6 h since the last cleanup");
    book.cleanup_stale_peers().unwrap();
    assert!(
        !book.needs_cleanup().unwrap(),
        "cleanup resets the interval"
    );
    for i in 0..8 {
        book.store_peer(plain_peer(&format!("p{i}"))).unwrap();
    }
    assert!(!book.needs_cleanup().unwrap(), "80 % full");
    book.store_peer(plain_peer("p8")).unwrap();
    assert!(book.needs_cleanup().unwrap(), "90 % full");
}

/// cleanup_lru(n) removes the n least recently seen peers.
pub fn cleanup_lru_removes_least_recently_seen<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    for i in 0..6 {
        clock.advance(Duration::from_secs(1));
        book.store_peer(plain_peer(&format!("p{i}"))).unwrap();
    }
    clock.advance(Duration::from_secs(1));
    book.update_last_seen("p0").unwrap(); // p0 becomes the most recent
    assert_eq!(book.cleanup_lru(0).unwrap(), 0);
    assert_eq!(book.cleanup_lru(2).unwrap(), 2);
    let left = book
        .query_peers(&PeerQuery {
            order: Order::Asc,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&left), ["p3", "p4", "p5", "p0"]);
    assert_eq!(book.cleanup_lru(10).unwrap(), 4, "no more than there are");
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
    assert_clean(&book, "after LRU cleanup");
}

/// A new peer into a full book fails with QuotaExceeded and changes nothing;
/// updates of existing peers still work.
pub fn quota_max_peers<F: Factory, D: Driver>(f: &F) {
    let (book, _) = book_with::<F, D>(f, |o| o.max_peers = 3);
    for id in ["a", "b", "c"] {
        book.store_peer(plain_peer(id)).unwrap();
    }
    let before = snapshot(book.backend());
    match book.store_peer(plain_peer("d")) {
        Err(Error::QuotaExceeded(Quota::Peers { limit: 3 })) => {}
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(
        snapshot(book.backend()),
        before,
        "a refused store changes nothing"
    );
    book.store_peer(plain_peer("a"))
        .expect("an update of a stored peer is not a new peer");
    book.update_last_seen("b").unwrap();
    book.cleanup_lru(1).unwrap();
    book.store_peer(plain_peer("d"))
        .expect("room again after cleanup_lru");
}

/// max_bytes caps the sum of encoded record sizes.
pub fn quota_max_bytes<F: Factory, D: Driver>(f: &F) {
    let (probe, _) = fresh::<F, D>(f);
    let one = probe.store_peer(plain_peer("a")).unwrap().encode().len() as u64;
    let (book, _) = book_with::<F, D>(f, |o| o.max_bytes = Some(2 * one + one / 2));
    book.store_peer(plain_peer("a")).unwrap();
    book.store_peer(plain_peer("b")).unwrap();
    let before = snapshot(book.backend());
    match book.store_peer(plain_peer("c")) {
        Err(Error::QuotaExceeded(Quota::Bytes { needed, .. })) => assert_eq!(needed, 3 * one),
        other => panic!("expected a bytes quota error, got {other:?}"),
    }
    assert_eq!(snapshot(book.backend()), before);
    let stats = book.get_storage_stats().unwrap();
    assert_eq!(stats.record_bytes, 2 * one);
    assert!(
        stats.utilization_percent >= 79.0,
        "utilization counts bytes: {}",
        stats.utilization_percent
    );
}

/// With evict_when_full, a new peer in a full book evicts the least recently seen.
pub fn eviction_when_asked<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book_with::<F, D>(f, |o| {
        o.max_peers = 3;
        o.evict_when_full = true;
    });
    for id in ["a", "b", "c"] {
        clock.advance(Duration::from_secs(1));
        book.store_peer(plain_peer(id)).unwrap();
    }
    book.update_last_seen("a").unwrap();
    clock.advance(Duration::from_secs(1));
    book.store_peer(plain_peer("d"))
        .expect("evicts instead of failing");
    assert_eq!(
        book.get_peer("b").unwrap(),
        None,
        "b was the least recently seen"
    );
    let mut left: Vec<String> = ids(&book.query_peers(&PeerQuery::default()).unwrap())
        .into_iter()
        .map(String::from)
        .collect();
    left.sort();
    assert_eq!(left, ["a", "c", "d"]);
    assert_clean(&book, "after eviction");
}

/// get_storage_stats counts peers, bytes, blacklisted, ages and utilization.
pub fn storage_stats<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    let empty = book.get_storage_stats().unwrap();
    assert_eq!(
        (empty.peer_count, empty.record_bytes, empty.oldest_seen),
        (0, 0, None)
    );
    assert_eq!(empty.max_peers, 100);
    for i in 0..4 {
        clock.advance(HOUR);
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    for _ in 0..5 {
        book.increment_reconnection_attempts("p3").unwrap();
    }
    let bytes: u64 = (0..4)
        .map(|i| {
            book.get_peer(&format!("p{i}"))
                .unwrap()
                .unwrap()
                .encode()
                .len() as u64
        })
        .sum();
    let s = book.get_storage_stats().unwrap();
    assert_eq!(s.peer_count, 4);
    assert_eq!(s.record_bytes, bytes, "record bytes are the encoded sizes");
    assert_eq!(s.blacklisted_count, 1);
    assert_eq!(s.corrupt_records, 0);
    assert_eq!(s.oldest_seen, Some(T0 + 3_600_000));
    assert_eq!(s.newest_seen, Some(T0 + 4 * 3_600_000));
    assert_eq!(s.utilization_percent, 4.0);
    assert_eq!(s.engine, book.backend().engine_name());
}

/// clear_all removes every peer; the book stays usable with the same key.
pub fn clear_all<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    for i in 0..5 {
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    book.clear_all().unwrap();
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
    assert!(book.query_peers(&PeerQuery::default()).unwrap().is_empty());
    assert!(space_keys(book.backend(), Space::ByLastSeen).is_empty());
    assert!(space_keys(book.backend(), Space::ByQuality).is_empty());
    book.store_peer(sample_peer("again")).unwrap();
    let book =
        reopen::<F, D>(f, book, options(&clock)).expect("reopens with the same key after clear");
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 1);
    assert_clean(&book, "after clear_all");
}
