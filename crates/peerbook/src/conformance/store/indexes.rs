//! Indexes as queries and candidates see them: the quality index, reconnection scores and candidate ranking, query sorting and filters, attempts and blacklisting, quality updates.

use super::*;

/// The by_quality index holds each peer's [`quality_score`] (the score table's
/// rows are unit tests of [`scoring`](crate::scoring)), and quality queries sort,
/// cut and filter by it.
pub fn quality_index_follows_score<F: Factory, D: Driver>(f: &F) {
    use ConnectionType::{Host, Relay, Unknown};
    let (book, _) = fresh::<F, D>(f);
    let rows: [(&str, ConnectionQuality); 8] = [
        ("none", quality(None, 0.0, Unknown, 0, 0, 0)), // 0
        ("lat49", quality(Some(49), 0.0, Unknown, 0, 0, 0)), // 40
        ("lat50", quality(Some(50), 0.0, Unknown, 0, 0, 0)), // 35
        ("lat100", quality(Some(100), 0.0, Unknown, 0, 0, 0)), // 25
        ("rate09", quality(None, 0.9, Unknown, 10, 9, 0)), // 27
        ("relay", quality(None, 0.0, Relay, 0, 0, 0)),  // 5
        ("best", quality(Some(30), 0.9, Host, 10, 9, 11 * MINUTE_MS)), // 97
        ("max", quality(Some(1), 1.0, Host, 10, 10, 11 * MINUTE_MS)), // 100
    ];
    for (id, q) in &rows {
        book.store_peer(plain_peer(id)).unwrap();
        book.update_connection_quality(id, *q).unwrap();
    }
    let mut index: Vec<(u8, String)> = quality_keys(book.backend())
        .into_iter()
        .map(|k| (k[0], String::from_utf8_lossy(&k[1..]).into_owned()))
        .collect();
    index.sort();
    let mut expected: Vec<(u8, String)> = rows
        .iter()
        .map(|(id, q)| (quality_score(q), id.to_string()))
        .collect();
    expected.sort();
    assert_eq!(index, expected, "by_quality index holds each peer's score");
    assert_eq!(
        rank_keys(book.backend()).len(),
        rows.len(),
        "and, after the quality keys, a rank entry per peer"
    );
    let top = book
        .query_peers(&PeerQuery {
            sort_by: SortBy::Quality,
            order: Order::Desc,
            limit: Some(3),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&top), ["max", "best", "lat49"], "quality desc");
    let min = book
        .query_peers(&PeerQuery {
            sort_by: SortBy::Quality,
            order: Order::Asc,
            min_quality: Some(25),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        ids(&min),
        ["lat100", "rate09", "lat50", "lat49", "best", "max"],
        "min_quality 25, ascending, ties by id"
    );
}

/// Candidates report each peer's [`reconnection_score`] at the book's clock, as
/// the record's quality, attempts and age change (the score table's rows and
/// boundaries are unit tests of [`scoring`](crate::scoring)), clamps included.
pub fn candidate_scores_follow_reconnection_score<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = book_with::<F, D>(f, |o| o.max_peers = 1000);
    let check = |context: &str| {
        let now = crate::Clock::now_ms(&clock);
        let all = book
            .get_reconnection_candidates(&CandidateQuery {
                limit: 10,
                max_age: None,
            })
            .unwrap();
        assert_eq!(
            all.len() as u64,
            book.get_storage_stats().unwrap().peer_count
        );
        for c in &all {
            assert_eq!(
                c.score,
                reconnection_score(&c.peer, now),
                "{context}: candidate {}",
                c.peer.peer_id
            );
        }
        all
    };
    book.store_peer(plain_peer("p")).unwrap();
    book.update_connection_quality(
        "p",
        quality(Some(30), 0.9, ConnectionType::Host, 10, 9, 11 * MINUTE_MS),
    )
    .unwrap();
    assert_eq!(check("a good peer")[0].score.total, 98);
    for age in [DAY_MS - 1, DAY_MS, 3 * DAY_MS - 1, 3 * DAY_MS, 7 * DAY_MS] {
        clock.set(T0 + age);
        check(&format!("age {age} ms"));
    }
    clock.set(T0);
    for _ in 0..3 {
        book.increment_reconnection_attempts("p").unwrap();
    }
    assert_eq!(check("3 failed attempts")[0].score.penalty, 15);
    book.update_connection_quality(
        "p",
        QualityUpdate {
            total_connections: Some(4),
            successful_connections: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(check("3 of 4")[0].score.reliability, 8);
    book.store_peer(plain_peer("floor")).unwrap();
    clock.set(T0 + 8 * DAY_MS);
    let mut floor = book.get_peer("floor").unwrap().unwrap();
    floor.reconnection_attempts = 4;
    book.store_peer(floor).unwrap();
    book.store_peer(plain_peer("top")).unwrap();
    book.update_connection_quality(
        "top",
        quality(Some(1), 1.0, ConnectionType::Host, 10, 10, 11 * MINUTE_MS),
    )
    .unwrap();
    let all = check("clamps");
    let total_of = |id: &str| {
        all.iter()
            .find(|c| c.peer.peer_id.as_str() == id)
            .expect("a candidate")
            .score
            .total
    };
    assert_eq!(
        (total_of("top"), total_of("floor")),
        (100, 0),
        "clamped at 100 and 0"
    );
}

/// Candidates: blacklisted peers never appear, max_age filters, limit cuts, and ties
/// break by later last_seen, then smaller peer id.
pub fn reconnection_candidates_ranking_and_filters<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    for id in ["c", "a", "b"] {
        book.store_peer(plain_peer(id)).unwrap(); // all seen at T0, equal scores
    }
    clock.advance(Duration::from_secs(10));
    book.store_peer(plain_peer("later")).unwrap(); // same score band, later last_seen
    clock.advance(2 * DAY);
    book.store_peer(plain_peer("fresh")).unwrap();
    book.update_last_seen("fresh").unwrap();
    book.store_peer(plain_peer("banned")).unwrap();
    for _ in 0..5 {
        book.increment_reconnection_attempts("banned").unwrap();
    }
    let all = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: None,
        })
        .unwrap();
    let order: Vec<&str> = all.iter().map(|c| c.peer.peer_id.as_str()).collect();
    assert_eq!(
        order,
        ["fresh", "later", "a", "b", "c"],
        "score, then later last_seen, then peer id; no blacklisted"
    );
    assert!(
        all.windows(2).all(|w| w[0].score.total >= w[1].score.total),
        "sorted by score"
    );
    let limited = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 2,
            max_age: None,
        })
        .unwrap();
    assert_eq!(limited.len(), 2);
    let recent = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: Some(DAY),
        })
        .unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|c| c.peer.peer_id.as_str())
            .collect::<Vec<_>>(),
        ["fresh"],
        "max_age 24 h"
    );
    assert!(book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 0,
            max_age: None
        })
        .unwrap()
        .is_empty());
    clock.advance(DAY + Duration::from_millis(1));
    let after = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: None,
        })
        .unwrap();
    assert!(
        after.iter().any(|c| c.peer.peer_id.as_str() == "banned"),
        "blacklist over: a candidate again"
    );
}

/// query_peers: every sort, both orders, limit, max_age and min_quality.
pub fn query_peers_sorting_and_filters<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    let plan: [(&str, u64, ConnectionQuality); 5] = [
        (
            "p1",
            0,
            quality(Some(30), 1.0, ConnectionType::Host, 5, 5, 0),
        ), // 90
        (
            "p2",
            2,
            quality(Some(300), 0.5, ConnectionType::Relay, 2, 1, 0),
        ), // 35
        (
            "p3",
            5,
            quality(None, 0.0, ConnectionType::Unknown, 0, 0, 0),
        ), // 0
        (
            "p4",
            9,
            quality(Some(80), 0.8, ConnectionType::Srflx, 5, 4, 0),
        ), // 71
        (
            "p5",
            20,
            quality(Some(20), 1.0, ConnectionType::Relay, 1, 1, 0),
        ), // 75
    ];
    for (id, days_ago, q) in &plan {
        clock.set(T0 - days_ago * DAY_MS);
        book.store_peer(plain_peer(id)).unwrap();
        book.update_connection_quality(id, *q).unwrap();
    }
    clock.set(T0);
    let q = |sort_by, order, limit, max_age, min_quality| {
        let query = PeerQuery {
            sort_by,
            order,
            limit,
            max_age,
            min_quality,
        };
        ids(&book.query_peers(&query).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, None, None, None),
        ["p1", "p2", "p3", "p4", "p5"]
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Asc, None, None, None),
        ["p5", "p4", "p3", "p2", "p1"]
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, Some(2), None, None),
        ["p1", "p2"]
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, None, Some(7 * DAY), None),
        ["p1", "p2", "p3"],
        "max_age 7 days"
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, None, Some(5 * DAY), None),
        ["p1", "p2", "p3"],
        "exactly max_age old is kept"
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, None, None, Some(70)),
        ["p1", "p4", "p5"],
        "min_quality 70"
    );
    assert_eq!(
        q(SortBy::Quality, Order::Desc, Some(5), None, Some(70)),
        ["p1", "p5", "p4"],
        "the seed's routing query"
    );
    assert_eq!(
        q(SortBy::Quality, Order::Asc, None, None, None),
        ["p3", "p2", "p4", "p5", "p1"]
    );
    assert_eq!(
        q(SortBy::Quality, Order::Desc, None, Some(7 * DAY), Some(1)),
        ["p1", "p2"]
    );
    // p1 96, p4 52 (28 + 0 + 16 + 8), p5 44, p2 43, p3 10
    assert_eq!(
        q(SortBy::ReconnectionScore, Order::Desc, None, None, None),
        ["p1", "p4", "p5", "p2", "p3"]
    );
    assert_eq!(
        q(
            SortBy::ReconnectionScore,
            Order::Desc,
            Some(2),
            Some(7 * DAY),
            None
        ),
        ["p1", "p2"]
    );
    assert_eq!(
        q(SortBy::ReconnectionScore, Order::Asc, Some(1), None, None),
        ["p3"]
    );
    assert!(
        q(SortBy::LastSeen, Order::Desc, Some(0), None, None).is_empty(),
        "limit 0"
    );
    assert!(
        q(SortBy::Quality, Order::Desc, None, None, Some(100)).is_empty(),
        "nobody at 100"
    );
}

/// update_last_seen: last_seen = last_connected = now, attempts 0, blacklist cleared.
pub fn update_last_seen_resets_attempts<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    book.store_peer(plain_peer("p")).unwrap();
    for _ in 0..5 {
        book.increment_reconnection_attempts("p").unwrap();
    }
    assert!(book
        .get_peer("p")
        .unwrap()
        .unwrap()
        .blacklist_until
        .is_some());
    clock.advance(HOUR);
    let r = book.update_last_seen("p").unwrap();
    assert_eq!(
        (r.last_seen, r.last_connected),
        (T0 + 3_600_000, T0 + 3_600_000)
    );
    assert_eq!(r.reconnection_attempts, 0);
    assert_eq!(r.blacklist_until, None);
    assert_eq!(book.get_peer("p").unwrap().unwrap(), r, "persisted");
    assert_clean(&book, "after update_last_seen");
}

/// increment_reconnection_attempts blacklists at failed_attempts for blacklist_for.
pub fn blacklist_after_failed_attempts<F: Factory, D: Driver>(f: &F) {
    let (book, clock) = fresh::<F, D>(f);
    book.store_peer(plain_peer("p")).unwrap();
    for n in 1..=4 {
        let r = book.increment_reconnection_attempts("p").unwrap();
        assert_eq!(r.reconnection_attempts, n);
        assert_eq!(
            r.blacklist_until, None,
            "not blacklisted before {n} reaches 5"
        );
    }
    clock.advance(Duration::from_secs(60));
    let r = book.increment_reconnection_attempts("p").unwrap();
    assert_eq!(r.reconnection_attempts, 5);
    assert_eq!(
        r.blacklist_until,
        Some(T0 + 60_000 + DAY_MS),
        "blacklisted for 24 h from now"
    );
    assert!(r.is_blacklisted(T0 + 60_000));
    assert!(
        book.get_reconnection_candidates(&CandidateQuery::default())
            .unwrap()
            .is_empty(),
        "never a candidate"
    );
    assert_eq!(book.get_storage_stats().unwrap().blacklisted_count, 1);
    clock.advance(DAY - Duration::from_millis(1));
    assert_eq!(
        book.get_storage_stats().unwrap().blacklisted_count,
        1,
        "1 ms before the end: blacklisted"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        book.get_storage_stats().unwrap().blacklisted_count,
        0,
        "at now + 24 h the blacklist is over"
    );
}

/// update_connection_quality changes only the fields given.
pub fn connection_quality_partial_update<F: Factory, D: Driver>(f: &F) {
    let (book, _) = fresh::<F, D>(f);
    book.store_peer(plain_peer("p")).unwrap();
    let full = quality(Some(120), 0.5, ConnectionType::Srflx, 4, 2, 90_000);
    book.update_connection_quality("p", full).unwrap();
    let partial = QualityUpdate {
        latency_ms: Some(Some(42)),
        connection_type: Some(ConnectionType::Host),
        ..Default::default()
    };
    let r = book.update_connection_quality("p", partial).unwrap();
    assert_eq!(
        r.connection_quality,
        ConnectionQuality {
            latency_ms: Some(42),
            connection_type: ConnectionType::Host,
            ..full
        }
    );
    let forget = QualityUpdate {
        latency_ms: Some(None),
        ..Default::default()
    };
    assert_eq!(
        book.update_connection_quality("p", forget)
            .unwrap()
            .connection_quality
            .latency_ms,
        None
    );
    let metrics = crate::update_quality_metrics(
        &book.get_peer("p").unwrap().unwrap().connection_quality,
        &crate::SessionObservation {
            success: true,
            uptime_ms: 120_000,
            latency_ms: Some(100),
        },
    );
    let r = book.update_connection_quality("p", metrics).unwrap();
    assert_eq!(
        (
            r.connection_quality.total_connections,
            r.connection_quality.successful_connections
        ),
        (5, 3)
    );
    assert_eq!(
        r.connection_quality.avg_uptime_ms, 100_000,
        "(90 000 x 2 + 120 000) / 3"
    );
    assert_eq!(r.connection_quality.latency_ms, Some(100));
    let key = quality_keys(book.backend());
    assert_eq!(key.len(), 1);
    assert_eq!(
        key[0][0],
        quality_score(&r.connection_quality),
        "quality index follows the update"
    );
    assert_clean(&book, "after quality updates");
}
