//! Scoring: the quality score, the reconnection score, and
//! [`update_quality_metrics`]. Exact numbers, pinned by tests.
//!
//! Quality score (0..=100) from [`ConnectionQuality`]:
//!
//! | part | rule |
//! |---|---|
//! | latency | none 0; < 50 ms 40; < 100 ms 35; < 200 ms 25; < 500 ms 15; otherwise 5 |
//! | success | round(success_rate x 30); 0 when total_connections is 0 |
//! | type | host 20, srflx 12, relay 5, unknown 0 |
//! | uptime | > 10 min 10; > 5 min 7; > 1 min 4; otherwise 0 |
//!
//! Reconnection score (0..=100) at time `now`:
//!
//! | part | rule |
//! |---|---|
//! | quality | round(quality score x 0.4) |
//! | recency | age < 1 day 30; < 3 days 20; < 7 days 10; otherwise 0 (age 0 if last_seen is in the future) |
//! | success | min(successful, 5) x 4 |
//! | reliability | round(10 x successful / total); 0 when total is 0 |
//! | penalty | 5 x reconnection_attempts |
//!
//! The sum is clamped to 0..=100. Candidates rank by score, then later last_seen,
//! then peer_id.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::schema::{ConnectionQuality, ConnectionType, PeerRecord};

/// One minute in ms.
pub const MINUTE_MS: u64 = 60_000;
/// One day in ms.
pub const DAY_MS: u64 = 24 * 60 * MINUTE_MS;

/// The quality score, 0..=100.
///
/// ```
/// use peerbook::{ConnectionQuality, ConnectionType};
/// use peerbook::scoring::quality_score;
/// let q = ConnectionQuality {
///     latency_ms: Some(30),            // 40
///     success_rate: 0.9,               // 27
///     connection_type: ConnectionType::Host, // 20
///     total_connections: 10,
///     successful_connections: 9,
///     avg_uptime_ms: 11 * 60_000,      // 10
/// };
/// assert_eq!(quality_score(&q), 97);
/// ```
pub fn quality_score(q: &ConnectionQuality) -> u8 {
    let latency = match q.latency_ms {
        None => 0,
        Some(ms) if ms < 50 => 40,
        Some(ms) if ms < 100 => 35,
        Some(ms) if ms < 200 => 25,
        Some(ms) if ms < 500 => 15,
        Some(_) => 5,
    };
    let success = if q.total_connections == 0 || !q.success_rate.is_finite() {
        0
    } else {
        (f64::from(q.success_rate.clamp(0.0, 1.0)) * 30.0).round() as u32
    };
    let kind = match q.connection_type {
        ConnectionType::Host => 20,
        ConnectionType::Srflx => 12,
        ConnectionType::Relay => 5,
        ConnectionType::Unknown => 0,
    };
    let uptime = match q.avg_uptime_ms {
        ms if ms > 10 * MINUTE_MS => 10,
        ms if ms > 5 * MINUTE_MS => 7,
        ms if ms > MINUTE_MS => 4,
        _ => 0,
    };
    (latency + success + kind + uptime).min(100) as u8
}

/// The reconnection score of a peer and its parts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReconnectionScore {
    /// round(quality score x 0.4), 0..=40.
    pub quality: u8,
    /// 30, 20, 10 or 0 by age.
    pub recency: u8,
    /// min(successful, 5) x 4, 0..=20.
    pub success: u8,
    /// round(10 x successful / total), 0..=10.
    pub reliability: u8,
    /// 5 x reconnection_attempts (saturating).
    pub penalty: u32,
    /// The clamped sum, 0..=100.
    pub total: u8,
}

/// The reconnection score of `peer` at `now` (ms).
///
/// ```
/// use peerbook::scoring::{reconnection_score, DAY_MS};
/// # use peerbook::{PeerRecord, PeerId, ConnectionQuality};
/// # let peer = PeerRecord { peer_id: PeerId::new("p").unwrap(), display_name: String::new(),
/// #   public_key: String::new(), shared_secret: None, last_seen: 0, last_connected: 0,
/// #   last_known_ip: None, ice_servers: vec![], cached_candidates: vec![],
/// #   connection_quality: ConnectionQuality::default(), reconnection_attempts: 0, blacklist_until: None,
/// #   addresses: vec![], metadata: Default::default() };
/// let score = reconnection_score(&peer, DAY_MS - 1);
/// assert_eq!(score.recency, 30);
/// assert_eq!(score.total, 30);
/// ```
pub fn reconnection_score(peer: &PeerRecord, now: u64) -> ReconnectionScore {
    ScoreHint::of(peer).score(peer.last_seen, now)
}

/// The time-independent inputs of the reconnection score, kept in the value of each
/// `by_last_seen` index entry so candidates are ranked without decoding records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScoreHint {
    /// The quality score, 0..=100.
    pub quality_score: u8,
    pub success: u8,
    pub reliability: u8,
    pub penalty: u32,
    pub blacklist_until: Option<u64>,
}

impl ScoreHint {
    /// Encoded length (schema 2): 3 bytes, penalty u32, blacklist tag u8, until u64.
    pub const LEN: usize = 16;

    pub fn of(peer: &PeerRecord) -> Self {
        let q = &peer.connection_quality;
        let reliability = if q.total_connections == 0 {
            0
        } else {
            // round(10 * s / t) in integers, half up: floor((20 s + t) / 2t)
            let s = u64::from(q.successful_connections.min(q.total_connections));
            let t = u64::from(q.total_connections);
            ((20 * s + t) / (2 * t)) as u8
        };
        ScoreHint {
            quality_score: quality_score(q),
            success: (q.successful_connections.min(5) * 4) as u8,
            reliability,
            penalty: peer.reconnection_attempts.saturating_mul(5),
            blacklist_until: peer.blacklist_until,
        }
    }

    /// The full score of a peer last seen at `last_seen`, at `now`.
    pub fn score(&self, last_seen: u64, now: u64) -> ReconnectionScore {
        let quality = ((u32::from(self.quality_score) * 4 + 5) / 10) as u8;
        let age = now.saturating_sub(last_seen);
        let recency = if age < DAY_MS {
            30
        } else if age < 3 * DAY_MS {
            20
        } else if age < 7 * DAY_MS {
            10
        } else {
            0
        };
        let sum = i64::from(quality)
            + i64::from(recency)
            + i64::from(self.success)
            + i64::from(self.reliability)
            - i64::from(self.penalty);
        ReconnectionScore {
            quality,
            recency,
            success: self.success,
            reliability: self.reliability,
            penalty: self.penalty,
            total: sum.clamp(0, 100) as u8,
        }
    }

    /// The best hint a record can have: every part at its maximum, no penalty.
    const BEST: ScoreHint = ScoreHint {
        quality_score: 100,
        success: 20,
        reliability: 10,
        penalty: 0,
        blacklist_until: None,
    };

    /// True when every part lies in the range [`ScoreHint::of`] gives it. A hint
    /// out of range matches no record (its index entry is damaged).
    pub fn in_range(&self) -> bool {
        self.quality_score <= Self::BEST.quality_score
            && self.success <= Self::BEST.success
            && self.reliability <= Self::BEST.reliability
    }

    /// The highest total any in-range hint scores when last seen at `last_seen`, at
    /// `now`. It never grows as `last_seen` goes back in time, so a walk from the
    /// newest entry down can stop once its kept results beat this bound.
    pub fn best_total(last_seen: u64, now: u64) -> u8 {
        Self::BEST.score(last_seen, now).total
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::LEN);
        v.extend_from_slice(&[self.quality_score, self.success, self.reliability]);
        v.extend_from_slice(&self.penalty.to_be_bytes());
        // A presence tag, so every Option<u64> (Some(0) included) round-trips.
        v.push(u8::from(self.blacklist_until.is_some()));
        v.extend_from_slice(&self.blacklist_until.unwrap_or(0).to_be_bytes());
        v
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let until = u64::from_be_bytes(bytes[8..16].try_into().ok()?);
        let blacklist_until = match (bytes[7], until) {
            (0, 0) => None,
            (1, until) => Some(until),
            _ => return None, // a value no encoder writes: damaged
        };
        Some(ScoreHint {
            quality_score: bytes[0],
            success: bytes[1],
            reliability: bytes[2],
            penalty: u32::from_be_bytes(bytes[3..7].try_into().ok()?),
            blacklist_until,
        })
    }

    pub fn is_blacklisted(&self, now: u64) -> bool {
        self.blacklist_until.is_some_and(|until| until > now)
    }
}

/// The ranking of reconnection candidates: higher score first, then later
/// `last_seen`, then smaller `peer_id`. `Ordering::Less` means `a` ranks first.
pub fn candidate_order(
    a: (&ReconnectionScore, &PeerRecord),
    b: (&ReconnectionScore, &PeerRecord),
) -> Ordering {
    b.0.total
        .cmp(&a.0.total)
        .then_with(|| b.1.last_seen.cmp(&a.1.last_seen))
        .then_with(|| a.1.peer_id.cmp(&b.1.peer_id))
}

/// What happened in one connection session, for [`update_quality_metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionObservation {
    /// Did the connection succeed?
    pub success: bool,
    /// How long the session lasted, in ms (counted only when `success`).
    pub uptime_ms: u64,
    /// A latency measured during the session, if any.
    pub latency_ms: Option<u32>,
}

/// Fold one session into the quality metrics (pure).
///
/// total += 1; successful += success; success_rate = successful / total; the average
/// uptime is the running mean over successful sessions (rounded); the latency is
/// replaced when unknown and otherwise smoothed as 0.7 x old + 0.3 x new, rounded.
///
/// ```
/// use peerbook::{update_quality_metrics, ConnectionQuality, SessionObservation};
/// let q = update_quality_metrics(&ConnectionQuality::default(),
///     &SessionObservation { success: true, uptime_ms: 1_000, latency_ms: Some(100) });
/// assert_eq!((q.total_connections, q.successful_connections, q.success_rate), (1, 1, 1.0));
/// let q = update_quality_metrics(&q, &SessionObservation { success: false, uptime_ms: 0, latency_ms: Some(200) });
/// assert_eq!(q.success_rate, 0.5);
/// assert_eq!(q.latency_ms, Some(130));
/// assert_eq!(q.avg_uptime_ms, 1_000);
/// ```
pub fn update_quality_metrics(
    quality: &ConnectionQuality,
    observation: &SessionObservation,
) -> ConnectionQuality {
    let mut q = *quality;
    let previous_successes = q.successful_connections.min(q.total_connections);
    q.total_connections = q.total_connections.saturating_add(1);
    q.successful_connections = previous_successes
        .saturating_add(u32::from(observation.success))
        .min(q.total_connections);
    q.success_rate = (f64::from(q.successful_connections) / f64::from(q.total_connections)) as f32;
    if observation.success && q.successful_connections > previous_successes {
        let n = u128::from(q.successful_connections);
        let sum = u128::from(q.avg_uptime_ms) * u128::from(previous_successes)
            + u128::from(observation.uptime_ms);
        q.avg_uptime_ms = u64::try_from((2 * sum + n) / (2 * n)).unwrap_or(u64::MAX);
    }
    if let Some(new) = observation.latency_ms {
        q.latency_ms = Some(match q.latency_ms {
            None => new,
            Some(old) => {
                // 0.7 old + 0.3 new, rounded half up, in integers: (7 old + 3 new + 5) / 10
                let v = (7 * u64::from(old) + 3 * u64::from(new) + 5) / 10;
                u32::try_from(v).unwrap_or(u32::MAX)
            }
        });
    }
    q
}

#[cfg(test)]
mod tests {
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
        let s = |rate: f32, total: u32| {
            quality_score(&q(None, rate, ConnectionType::Unknown, total, 0, 0))
        };
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
}
