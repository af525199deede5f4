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

/// The highest base ([`ScoreHint::base`]) a hint can have: 40 + 20 + 10.
pub(crate) const RANK_BASE_MAX: i64 = 70;
/// The base at and below which every total is 0 (the best recency is 30).
pub(crate) const RANK_BASE_MIN: i64 = -30;

/// The recency part of the score of a peer last seen at `last_seen`, at `now`: 30
/// within a day, 20 within 3 days, 10 within 7, else 0. Never decreases as
/// `last_seen` grows (a `last_seen` after `now` is 30).
pub(crate) fn recency(last_seen: u64, now: u64) -> u8 {
    let age = now.saturating_sub(last_seen);
    if age < DAY_MS {
        30
    } else if age < 3 * DAY_MS {
        20
    } else if age < 7 * DAY_MS {
        10
    } else {
        0
    }
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
        Self::from_parts(
            &peer.connection_quality,
            peer.reconnection_attempts,
            peer.blacklist_until,
        )
    }

    /// The hint of the record `replaced` describes.
    pub fn of_replaced(replaced: &crate::schema::Replaced) -> Self {
        Self::from_parts(
            &replaced.connection_quality,
            replaced.reconnection_attempts,
            replaced.blacklist_until,
        )
    }

    /// The hint of a record with this quality, these failed attempts and this
    /// blacklist (all it reads of the record).
    fn from_parts(
        q: &ConnectionQuality,
        reconnection_attempts: u32,
        blacklist_until: Option<u64>,
    ) -> Self {
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
            penalty: reconnection_attempts.saturating_mul(5),
            blacklist_until,
        }
    }

    /// The quality part of the score: round(quality score x 0.4), 0..=40.
    fn quality_part(&self) -> u8 {
        ((u32::from(self.quality_score) * 4 + 5) / 10) as u8
    }

    /// The time-independent part of the score: quality + success + reliability -
    /// penalty (at most 70). The total is `clamp(base + recency, 0, 100)`.
    pub fn base(&self) -> i64 {
        i64::from(self.quality_part()) + i64::from(self.success) + i64::from(self.reliability)
            - i64::from(self.penalty)
    }

    /// The run of the rank index this hint sorts in (schema 5): `70 - clamp(base,
    /// -30, 70)`, 0..=100, the best base first. Every base at or below -30 scores 0
    /// whatever the recency, so they share the last run. The best total of a run
    /// `r` is `clamp(100 - r, 0, 100)`; of an entry in it, `clamp(70 - r +
    /// recency(last_seen, now), 0, 100)`.
    pub fn rank_byte(&self) -> u8 {
        (RANK_BASE_MAX - self.base().clamp(RANK_BASE_MIN, RANK_BASE_MAX)) as u8
    }

    /// The full score of a peer last seen at `last_seen`, at `now`.
    pub fn score(&self, last_seen: u64, now: u64) -> ReconnectionScore {
        let quality = self.quality_part();
        let recency = recency(last_seen, now);
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

    /// The highest total an in-range hint of rank run `run` ([`Self::rank_byte`];
    /// run 0 holds the best hint, so `best_total(0, ..)` bounds every hint) scores
    /// when last seen at `last_seen`, at `now`: `clamp(70 - run + recency)`. It
    /// never grows as `last_seen` goes back in time, so a walk from the newest entry
    /// down (of one run, or of every entry for run 0) can stop once its kept results
    /// beat this bound.
    pub fn best_total(run: u8, last_seen: u64, now: u64) -> u8 {
        (RANK_BASE_MAX - i64::from(run) + i64::from(recency(last_seen, now))).clamp(0, 100) as u8
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
#[path = "scoring/tests.rs"]
mod tests;
