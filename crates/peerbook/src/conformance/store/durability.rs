//! Durability: everything acknowledged survives a reopen; concurrent writers lose no update.

use super::*;

/// Everything acknowledged survives close and reopen, with Sync and with Buffered
/// plus flush.
pub fn book_persists_across_reopen<F: Factory, D: Driver>(f: &F) {
    for durability in [Durability::Sync, Durability::Buffered] {
        let (book, clock) = book_with::<F, D>(f, |o| o.durability = durability);
        for i in 0..20 {
            clock.advance(Duration::from_secs(30));
            book.store_peer(sample_peer(&format!("p{i:02}"))).unwrap();
        }
        book.update_connection_quality(
            "p03",
            quality(Some(10), 1.0, ConnectionType::Host, 1, 1, 0),
        )
        .unwrap();
        book.increment_reconnection_attempts("p04").unwrap();
        book.remove_peer("p05").unwrap();
        book.cleanup_lru(2).unwrap();
        book.flush().unwrap();
        let before = book.query_peers(&PeerQuery::default()).unwrap();
        let stats_before = book.get_storage_stats().unwrap();
        let mut opts = options(&clock);
        opts.durability = durability;
        let book = reopen::<F, D>(f, book, opts).expect("reopen");
        assert_eq!(
            book.query_peers(&PeerQuery::default()).unwrap(),
            before,
            "{durability:?}: same records after reopen"
        );
        let stats = book.get_storage_stats().unwrap();
        assert_eq!(
            (stats.peer_count, stats.record_bytes),
            (stats_before.peer_count, stats_before.record_bytes)
        );
        assert_eq!(stats.peer_count, 17);
        let r = book.get_peer("p07").unwrap().unwrap();
        assert_eq!(
            book.open_shared_secret(&r).unwrap().unwrap().expose(),
            b"shared-secret-of-p07"
        );
        assert_clean(&book, "after reopen");
    }
}

/// Eight threads doing read-modify-write updates and reads lose no update.
pub fn concurrent_updates_lose_nothing<F: Factory, D: Driver>(f: &F) {
    let (book, _) = book_with::<F, D>(f, |o| o.failed_attempts = u32::MAX);
    for id in ["shared", "t0", "t1", "t2", "t3"] {
        book.store_peer(sample_peer(id)).unwrap();
    }
    let book = Arc::new(book);
    let per_thread = 40u32;
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let book = Arc::clone(&book);
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    if t < 4 {
                        book.increment_reconnection_attempts("shared").unwrap();
                        book.increment_reconnection_attempts(&format!("t{t}"))
                            .unwrap();
                    } else {
                        let r = book.get_peer("shared").unwrap().expect("always readable");
                        assert!(r.reconnection_attempts <= 4 * per_thread);
                        let q = book
                            .query_peers(&PeerQuery {
                                limit: Some(3),
                                ..Default::default()
                            })
                            .unwrap();
                        assert_eq!(q.len(), 3);
                        if i % 10 == 0 {
                            assert!(book.verify().unwrap().corrupt.is_empty());
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no thread panicked");
    }
    assert_eq!(
        book.get_peer("shared")
            .unwrap()
            .unwrap()
            .reconnection_attempts,
        4 * per_thread,
        "no lost update"
    );
    for t in 0..4 {
        assert_eq!(
            book.get_peer(&format!("t{t}"))
                .unwrap()
                .unwrap()
                .reconnection_attempts,
            per_thread
        );
    }
    assert_clean(&*book, "after concurrent updates");
}
