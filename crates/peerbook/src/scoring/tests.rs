//! Unit tests of the scoring rules: every row and boundary of the quality and
//! reconnection score tables, candidate order, quality metrics and score hints.
use super::*;
use crate::schema::PeerId;

fn q(
    latency: Option<u32>,
    rate: f32,
    kind: ConnectionType,
    total: u32,
    ok: u32,
    uptime: u64,
) -> ConnectionQuality {
    ConnectionQuality {
        latency_ms: latency,
        success_rate: rate,
        connection_type: kind,
        total_connections: total,
        successful_connections: ok,
        avg_uptime_ms: uptime,
    }
}

fn latency_only(ms: Option<u32>) -> u8 {
    quality_score(&q(ms, 0.0, ConnectionType::Unknown, 0, 0, 0))
}

#[test]
fn latency_rows_and_boundaries() {
    assert_eq!(latency_only(None), 0);
    assert_eq!(latency_only(Some(0)), 40);
    assert_eq!(latency_only(Some(49)), 40);
    assert_eq!(latency_only(Some(50)), 35);
    assert_eq!(latency_only(Some(99)), 35);
    assert_eq!(latency_only(Some(100)), 25);
    assert_eq!(latency_only(Some(199)), 25);
    assert_eq!(latency_only(Some(200)), 15);
    assert_eq!(latency_only(Some(499)), 15);
    assert_eq!(latency_only(Some(500)), 5);
    assert_eq!(latency_only(Some(u32::MAX)), 5);
}

#[test]
fn success_rows() {
    let s =
        |rate: f32, total: u32| quality_score(&q(None, rate, ConnectionType::Unknown, total, 0, 0));
    assert_eq!(s(0.9, 10), 27);
    assert_eq!(s(0.8, 10), 24);
    assert_eq!(s(0.7, 10), 21);
    assert_eq!(s(1.0, 1), 30);
    assert_eq!(s(0.0, 1), 0);
    assert_eq!(s(0.5, 2), 15);
    assert_eq!(s(1.0 / 60.0, 60), 1, "0.5 rounds up");
    assert_eq!(s(0.9, 0), 0, "no connections, no success points");
}

#[test]
fn type_and_uptime_rows() {
    let t = |k| quality_score(&q(None, 0.0, k, 0, 0, 0));
    assert_eq!(t(ConnectionType::Host), 20);
    assert_eq!(t(ConnectionType::Srflx), 12);
    assert_eq!(t(ConnectionType::Relay), 5);
    assert_eq!(t(ConnectionType::Unknown), 0);
    let u = |ms| quality_score(&q(None, 0.0, ConnectionType::Unknown, 0, 0, ms));
    assert_eq!(u(0), 0);
    assert_eq!(u(MINUTE_MS), 0, "exactly 1 min is not > 1 min");
    assert_eq!(u(MINUTE_MS + 1), 4);
    assert_eq!(u(5 * MINUTE_MS), 4);
    assert_eq!(u(5 * MINUTE_MS + 1), 7);
    assert_eq!(u(10 * MINUTE_MS), 7);
    assert_eq!(u(10 * MINUTE_MS + 1), 10);
}

#[test]
fn quality_maximum_is_100() {
    assert_eq!(
        quality_score(&q(Some(1), 1.0, ConnectionType::Host, 9, 9, u64::MAX)),
        100
    );
}

fn peer(
    last_seen: u64,
    total: u32,
    ok: u32,
    attempts: u32,
    quality: ConnectionQuality,
) -> PeerRecord {
    PeerRecord {
        peer_id: PeerId::new("p").unwrap(),
        display_name: String::new(),
        public_key: String::new(),
        shared_secret: None,
        last_seen,
        last_connected: last_seen,
        last_known_ip: None,
        ice_servers: vec![],
        cached_candidates: vec![],
        connection_quality: ConnectionQuality {
            total_connections: total,
            successful_connections: ok,
            ..quality
        },
        reconnection_attempts: attempts,
        blacklist_until: None,
        addresses: vec![],
        metadata: Default::default(),
    }
}

#[test]
fn recency_rows_and_boundaries() {
    let now = 100 * DAY_MS;
    let r = |age: u64| {
        reconnection_score(&peer(now - age, 0, 0, 0, ConnectionQuality::default()), now).recency
    };
    assert_eq!(r(0), 30);
    assert_eq!(r(DAY_MS - 1), 30);
    assert_eq!(r(DAY_MS), 20, "exactly 1 day is not < 1 day");
    assert_eq!(r(3 * DAY_MS - 1), 20);
    assert_eq!(r(3 * DAY_MS), 10);
    assert_eq!(r(7 * DAY_MS - 1), 10);
    assert_eq!(r(7 * DAY_MS), 0);
    let future = reconnection_score(
        &peer(now + DAY_MS * 5, 0, 0, 0, ConnectionQuality::default()),
        now,
    );
    assert_eq!(future.recency, 30, "a last_seen in the future has age 0");
}

#[test]
fn success_reliability_penalty_rows() {
    let s = |total, ok, attempts| {
        reconnection_score(
            &peer(0, total, ok, attempts, ConnectionQuality::default()),
            10 * DAY_MS,
        )
    };
    assert_eq!(s(0, 0, 0).success, 0);
    assert_eq!(s(3, 3, 0).success, 12);
    assert_eq!(s(5, 5, 0).success, 20);
    assert_eq!(s(9, 9, 0).success, 20, "capped at 5 successes");
    assert_eq!(s(0, 0, 0).reliability, 0);
    assert_eq!(s(4, 3, 0).reliability, 8, "7.5 rounds up");
    assert_eq!(s(3, 1, 0).reliability, 3);
    assert_eq!(s(3, 2, 0).reliability, 7);
    assert_eq!(s(10, 10, 0).reliability, 10);
    assert_eq!(s(1, 0, 0).reliability, 0);
    assert_eq!(s(0, 0, 3).penalty, 15);
    assert_eq!(s(0, 0, u32::MAX).penalty, u32::MAX, "saturates");
}

#[test]
fn quality_part_and_clamping() {
    let best = q(Some(1), 1.0, ConnectionType::Host, 10, 10, u64::MAX);
    let top = reconnection_score(&peer(0, 10, 10, 0, best), 0);
    assert_eq!(
        (top.quality, top.recency, top.success, top.reliability),
        (40, 30, 20, 10)
    );
    assert_eq!(top.total, 100, "maximum is exactly 100");
    let q97 = q(Some(30), 0.9, ConnectionType::Host, 10, 9, 11 * MINUTE_MS);
    assert_eq!(
        reconnection_score(&peer(0, 10, 9, 0, q97), 0).quality,
        39,
        "round(97 x 0.4) = 39"
    );
    let q63 = q(Some(60), 0.9, ConnectionType::Unknown, 10, 9, 0);
    assert_eq!(quality_score(&q63), 62);
    assert_eq!(
        reconnection_score(&peer(0, 10, 9, 0, q63), 0).quality,
        25,
        "round(24.8) = 25"
    );
    let floor = reconnection_score(
        &peer(0, 0, 0, 50, ConnectionQuality::default()),
        30 * DAY_MS,
    );
    assert_eq!(floor.total, 0, "clamped at 0");
    let partial = reconnection_score(&peer(0, 2, 1, 2, ConnectionQuality::default()), DAY_MS);
    // recency 20 + success 4 + reliability 5 - penalty 10
    assert_eq!(partial.total, 19);
}

#[test]
fn score_hint_round_trips_and_scores_like_the_record() {
    let q = ConnectionQuality {
        latency_ms: Some(80),
        success_rate: 0.75,
        connection_type: ConnectionType::Srflx,
        ..Default::default()
    };
    let mut p = peer(DAY_MS, 4, 3, 2, q);
    p.blacklist_until = Some(123);
    let hint = ScoreHint::of(&p);
    assert_eq!(ScoreHint::decode(&hint.encode()), Some(hint));
    assert_eq!(hint.encode().len(), ScoreHint::LEN);
    assert_eq!(ScoreHint::decode(&[0; 14]), None);
    for until in [None, Some(0), Some(1), Some(u64::MAX)] {
        let h = ScoreHint {
            blacklist_until: until,
            ..hint
        };
        assert_eq!(
            ScoreHint::decode(&h.encode()),
            Some(h),
            "{until:?} round-trips"
        );
    }
    let mut bad = hint.encode();
    bad[7] = 2;
    assert_eq!(ScoreHint::decode(&bad), None, "unknown tag is damage");
    for now in [0, DAY_MS, 2 * DAY_MS, 5 * DAY_MS, 30 * DAY_MS] {
        assert_eq!(hint.score(p.last_seen, now), reconnection_score(&p, now));
    }
    assert!(hint.is_blacklisted(122) && !hint.is_blacklisted(123));
}

#[test]
fn candidate_order_ties() {
    let s = ReconnectionScore {
        total: 50,
        ..Default::default()
    };
    let mut a = peer(10, 0, 0, 0, ConnectionQuality::default());
    let mut b = a.clone();
    b.last_seen = 20;
    assert_eq!(
        candidate_order((&s, &b), (&s, &a)),
        Ordering::Less,
        "later last_seen first"
    );
    a.peer_id = PeerId::new("a").unwrap();
    b.peer_id = PeerId::new("b").unwrap();
    b.last_seen = 10;
    assert_eq!(
        candidate_order((&s, &a), (&s, &b)),
        Ordering::Less,
        "then smaller peer_id"
    );
    let high = ReconnectionScore {
        total: 51,
        ..Default::default()
    };
    assert_eq!(
        candidate_order((&high, &b), (&s, &a)),
        Ordering::Less,
        "score first"
    );
}

#[test]
fn update_quality_metrics_rules() {
    let start = ConnectionQuality::default();
    let ok = |uptime, latency| SessionObservation {
        success: true,
        uptime_ms: uptime,
        latency_ms: latency,
    };
    let q1 = update_quality_metrics(&start, &ok(1000, Some(100)));
    assert_eq!(q1.latency_ms, Some(100), "unknown latency is replaced");
    assert_eq!(q1.avg_uptime_ms, 1000);
    let q2 = update_quality_metrics(&q1, &ok(2001, Some(51)));
    assert_eq!(q2.latency_ms, Some(85), "0.7 x 100 + 0.3 x 51 = 85.3 -> 85");
    assert_eq!(
        q2.avg_uptime_ms, 1501,
        "mean of 1000 and 2001 = 1500.5 -> 1501"
    );
    assert_eq!(
        (
            q2.total_connections,
            q2.successful_connections,
            q2.success_rate
        ),
        (2, 2, 1.0)
    );
    let q3 = update_quality_metrics(
        &q2,
        &SessionObservation {
            success: false,
            uptime_ms: 99_999,
            latency_ms: None,
        },
    );
    assert_eq!(
        q3.avg_uptime_ms, 1501,
        "failed sessions do not count toward uptime"
    );
    assert_eq!(q3.latency_ms, Some(85), "no observation keeps the latency");
    assert_eq!((q3.total_connections, q3.successful_connections), (3, 2));
    assert!((q3.success_rate - 2.0 / 3.0).abs() < 1e-6);
    let q4 = update_quality_metrics(&q3, &ok(0, Some(86)));
    assert_eq!(q4.latency_ms, Some(85), "85.3 -> 85");
    let q5 = update_quality_metrics(
        &ConnectionQuality {
            latency_ms: Some(1),
            ..start
        },
        &ok(0, Some(2)),
    );
    assert_eq!(q5.latency_ms, Some(1), "0.7 + 0.6 = 1.3 -> 1");
    let q6 = update_quality_metrics(
        &ConnectionQuality {
            latency_ms: Some(1),
            ..start
        },
        &ok(0, Some(3)),
    );
    assert_eq!(q6.latency_ms, Some(2), "0.7 + 0.9 = 1.6 -> 2");
    let sat = ConnectionQuality {
        total_connections: u32::MAX,
        successful_connections: u32::MAX,
        success_rate: 1.0,
        ..start
    };
    let q7 = update_quality_metrics(&sat, &ok(5, None));
    assert_eq!(q7.total_connections, u32::MAX);
    q7.validate().unwrap();
}

/// The quality table as the conformance kit used to run it per backend: one row
/// per part and boundary, the best and the maximum.
#[test]
fn quality_table_rows() {
    use ConnectionType::{Host, Relay, Srflx, Unknown};
    let rows: [(&str, ConnectionQuality, u8); 19] = [
        ("none", q(None, 0.0, Unknown, 0, 0, 0), 0),
        ("lat49", q(Some(49), 0.0, Unknown, 0, 0, 0), 40),
        ("lat50", q(Some(50), 0.0, Unknown, 0, 0, 0), 35),
        ("lat100", q(Some(100), 0.0, Unknown, 0, 0, 0), 25),
        ("lat200", q(Some(200), 0.0, Unknown, 0, 0, 0), 15),
        ("lat500", q(Some(500), 0.0, Unknown, 0, 0, 0), 5),
        ("rate09", q(None, 0.9, Unknown, 10, 9, 0), 27),
        ("rate08", q(None, 0.8, Unknown, 10, 8, 0), 24),
        ("rate07", q(None, 0.7, Unknown, 10, 7, 0), 21),
        ("rate-no-total", q(None, 0.9, Unknown, 0, 0, 0), 0),
        ("host", q(None, 0.0, Host, 0, 0, 0), 20),
        ("srflx", q(None, 0.0, Srflx, 0, 0, 0), 12),
        ("relay", q(None, 0.0, Relay, 0, 0, 0), 5),
        ("up10", q(None, 0.0, Unknown, 0, 0, 10 * MINUTE_MS + 1), 10),
        ("up5", q(None, 0.0, Unknown, 0, 0, 5 * MINUTE_MS + 1), 7),
        ("up1", q(None, 0.0, Unknown, 0, 0, MINUTE_MS + 1), 4),
        ("up1exact", q(None, 0.0, Unknown, 0, 0, MINUTE_MS), 0),
        ("best", q(Some(30), 0.9, Host, 10, 9, 11 * MINUTE_MS), 97),
        ("max", q(Some(1), 1.0, Host, 10, 10, 11 * MINUTE_MS), 100),
    ];
    for (id, quality, expected) in &rows {
        assert_eq!(quality_score(quality), *expected, "quality score of {id}");
    }
}

/// The reconnection table as the conformance kit used to run it per backend:
/// every part of a good peer, recency steps, the penalty, reliability rounding
/// half up, and the clamps at 0 and 100.
#[test]
fn reconnection_table_rows() {
    let t0 = 100 * DAY_MS;
    // quality 97 -> 39; 9 of 10 successes -> success 20, reliability 9
    let good = q(Some(30), 0.9, ConnectionType::Host, 10, 9, 11 * MINUTE_MS);
    let score = |attempts: u32, total: u32, ok: u32, age: u64| {
        reconnection_score(&peer(t0, total, ok, attempts, good), t0 + age)
    };
    let s = score(0, 10, 9, 0);
    assert_eq!(
        (
            s.quality,
            s.recency,
            s.success,
            s.reliability,
            s.penalty,
            s.total
        ),
        (39, 30, 20, 9, 0, 98)
    );
    for (age, recency) in [
        (DAY_MS - 1, 30),
        (DAY_MS, 20),
        (3 * DAY_MS - 1, 20),
        (3 * DAY_MS, 10),
        (7 * DAY_MS - 1, 10),
        (7 * DAY_MS, 0),
    ] {
        assert_eq!(score(0, 10, 9, age).recency, recency, "age {age} ms");
    }
    let s = score(3, 10, 9, 0);
    assert_eq!(
        (s.penalty, s.total),
        (15, 83),
        "5 points per failed attempt"
    );
    let s = score(3, 4, 3, 0);
    assert_eq!((s.success, s.reliability), (12, 8), "3 of 4 = 7.5 -> 8");
    let floor = reconnection_score(
        &peer(t0, 0, 0, 4, ConnectionQuality::default()),
        t0 + 8 * DAY_MS,
    );
    assert_eq!((floor.penalty, floor.total), (20, 0), "clamped at 0");
    let max = q(Some(1), 1.0, ConnectionType::Host, 10, 10, 11 * MINUTE_MS);
    assert_eq!(
        reconnection_score(&peer(t0, 10, 10, 0, max), t0).total,
        100,
        "the maximum is 100"
    );
}

/// The rank index's split of the score (schema 5): over every quality score,
/// success count, reliability, attempt count and recency step, the total is
/// `clamp(70 - rank_byte + recency, 0, 100)`, and a higher base never sorts in a
/// later run. The rank walk's stop rules are proven on this identity.
#[test]
fn rank_byte_splits_the_total_exactly() {
    let attempts: Vec<u32> = (0..=20).chain([u32::MAX / 5, u32::MAX]).collect();
    let ages = [
        0,
        DAY_MS - 1,
        DAY_MS,
        3 * DAY_MS - 1,
        3 * DAY_MS,
        7 * DAY_MS,
    ];
    let now = 100 * DAY_MS;
    for quality_score in 0..=100u8 {
        for successful in 0..=6u8 {
            for reliability in 0..=10u8 {
                let mut last: Option<(i64, u8)> = None;
                for &a in attempts.iter().rev() {
                    let hint = ScoreHint {
                        quality_score,
                        success: successful.min(5) * 4,
                        reliability,
                        penalty: a.saturating_mul(5),
                        blacklist_until: None,
                    };
                    let run = hint.rank_byte();
                    assert!(run <= 100, "{hint:?}: run {run}");
                    if let Some((base, prev)) = last {
                        assert!(hint.base() >= base && run <= prev, "{hint:?}");
                    }
                    last = Some((hint.base(), run));
                    for age in ages {
                        let r = recency(now - age, now);
                        let want = (70 - i64::from(run) + i64::from(r)).clamp(0, 100) as u8;
                        assert_eq!(hint.score(now - age, now).total, want, "{hint:?} age {age}");
                        // the walks' bound of a run is that total: exact, so tight
                        let bound = ScoreHint::best_total(run, now - age, now);
                        assert_eq!(bound, want, "{hint:?} age {age}");
                        let best = ScoreHint::BEST.score(now - age, now).total;
                        assert_eq!(ScoreHint::best_total(0, now - age, now), best);
                    }
                    // clock skew: seen after now
                    assert_eq!(recency(now + 1, now), 30);
                }
            }
        }
    }
}
