//! Candidate ranking against a model: [`PeerBook::get_reconnection_candidates`] and
//! `query_peers` by reconnection score give exactly the order a full sort of every
//! record by [`candidate_order`] gives, whatever the limit and `max_age`, with ties
//! on every key, peers at the recency steps, and stale, damaged or corrupt entries
//! ranked among the best.
//!
//! The ranking keeps only the best `limit` index entries and stops its walk once no
//! later entry can rank before them, on the rank index (schema 5) or, past its scan
//! budget, on by_last_seen; these checks pin both shortcuts to the model, each walk
//! forced in turn ([`PeerBook::set_rank_scan_budget`]).

use std::time::Duration;

use super::store::T0;
use super::{Factory, Rng};
use crate::backend::{Backend, Durability, Space, WriteBatch};
use crate::scoring::ScoreHint;
use crate::scoring::{candidate_order, quality_score, reconnection_score, DAY_MS};
use crate::store::keys;
use crate::store::RANK_SCAN_BUDGET;
use crate::{
    CandidateQuery, ConnectionQuality, ConnectionType, ExportOptions, ImportMode, ManualClock,
    MasterKey, NewPeer, Options, Order, PeerBook, PeerQuery, PeerRecord, SortBy,
};

const HOUR_MS: u64 = 3_600_000;

/// A book of `n` peers spread over 10 days, many of them at the recency steps and
/// the queries' cutoffs (exactly 1 h, 1, 3, 7 and 8 days old, and 1 ms either
/// side), a third with the best possible score hint, many sharing a `last_seen`,
/// some blacklisted (with and without attempts), some with enough attempts to clamp
/// their score at 0 (a base of -30 and below, the rank index's last run).
fn ranked_book<F: Factory>(f: &F, n: usize) -> PeerBook<F::Backend> {
    let clock = ManualClock::new(T0);
    let mut opts = Options::new(MasterKey::from_bytes([42; 32])).with_clock(clock);
    opts.max_peers = n as u64;
    let book = PeerBook::open(f.create(), opts).expect("open a fresh book");
    let mut rng = Rng::new(0x5eed_0019);
    let steps = [
        0,
        1,
        HOUR_MS - 1,
        HOUR_MS,
        HOUR_MS + 1,
        DAY_MS - 1,
        DAY_MS,
        DAY_MS + 1,
        3 * DAY_MS - 1,
        3 * DAY_MS,
        3 * DAY_MS + 1,
        7 * DAY_MS - 1,
        7 * DAY_MS,
        8 * DAY_MS - 1,
        8 * DAY_MS,
        8 * DAY_MS + 1,
    ];
    let mut peers = Vec::new();
    for i in 0..n {
        let mut r = book
            .create_peer(NewPeer {
                peer_id: format!("p{:03}", rng.below(1000)) + &format!("-{i}"),
                public_key: "pk".into(),
                ..NewPeer::default()
            })
            .expect("a valid peer");
        r.last_seen = match rng.below(4) {
            0 => T0 - rng.below(10 * DAY_MS),
            1 => T0 + HOUR_MS, // seen "in the future" (clock skew): age 0
            _ => T0 - steps[rng.below(steps.len() as u64) as usize],
        };
        r.last_connected = r.last_seen.min(T0);
        r.connection_quality = if rng.below(3) == 0 {
            // the best hint: quality 100, 5+ successes, reliability 10
            ConnectionQuality {
                latency_ms: Some(10),
                success_rate: 1.0,
                connection_type: ConnectionType::Host,
                total_connections: 5 + rng.below(5) as u32,
                successful_connections: 0,
                avg_uptime_ms: 11 * 60_000,
            }
        } else {
            let total = rng.below(8) as u32;
            ConnectionQuality {
                latency_ms: [None, Some(30), Some(150), Some(900)][rng.below(4) as usize],
                success_rate: 0.0,
                connection_type: ConnectionType::Srflx,
                total_connections: total,
                successful_connections: rng.below(u64::from(total) + 1) as u32,
                avg_uptime_ms: rng.below(20 * 60_000),
            }
        };
        let q = &mut r.connection_quality;
        if q.success_rate == 1.0 {
            q.successful_connections = q.total_connections;
        } else if q.total_connections > 0 {
            q.success_rate = q.successful_connections as f32 / q.total_connections as f32;
        }
        match rng.below(14) {
            0 => {
                r.reconnection_attempts = 5;
                r.blacklist_until = Some(T0 + HOUR_MS);
            }
            1 => r.reconnection_attempts = 20, // a score clamped at 0
            2 => r.blacklist_until = Some(T0 - 1), // a blacklist that is over
            3..=5 => r.reconnection_attempts = rng.below(3) as u32,
            // bases around the rank index's clamp at -30
            6 => r.reconnection_attempts = 6 + rng.below(3) as u32,
            7 => r.reconnection_attempts = 14,
            8 => r.blacklist_until = Some(T0 + 1), // blacklisted, no attempts
            _ => {}
        }
        peers.push(r);
    }
    let mut doc = book.export_data(ExportOptions::default()).expect("export");
    doc.peers = peers;
    book.import_data(&doc, ImportMode::Merge).expect("import");
    book
}

/// The model: every decodable record passing the filters, fully sorted.
fn model(
    all: &[PeerRecord],
    cutoff: Option<u64>,
    keep: impl Fn(&PeerRecord) -> bool,
) -> Vec<String> {
    let mut scored: Vec<_> = all
        .iter()
        .filter(|r| cutoff.is_none_or(|c| r.last_seen >= c) && keep(r))
        .map(|r| (reconnection_score(r, T0), r))
        .collect();
    scored.sort_by(|a, b| candidate_order((&a.0, a.1), (&b.0, b.1)));
    scored.iter().map(|(_, r)| r.peer_id.to_string()).collect()
}

/// Every limit and age: candidates and both score orders of `query_peers` (with and
/// without a minimum quality) equal the model's prefix, whichever walk ranks them:
/// the rank index alone, the by_last_seen walk alone, and the rank walk giving up
/// after one or two scans.
fn assert_matches_model<B: Backend>(book: &PeerBook<B>, context: &str) {
    for budget in [usize::MAX, 0, 1, 2, RANK_SCAN_BUDGET] {
        book.set_rank_scan_budget(budget);
        assert_matches_model_once(book, &format!("{context}, scan budget {budget}"));
    }
    book.set_rank_scan_budget(RANK_SCAN_BUDGET);
}

fn assert_matches_model_once<B: Backend>(book: &PeerBook<B>, context: &str) {
    let all = book.query_peers(&PeerQuery::default()).expect("query");
    let ages = [
        None,
        Some(0),
        Some(HOUR_MS),
        Some(DAY_MS),
        Some(3 * DAY_MS),
        Some(8 * DAY_MS),
    ];
    for age in ages {
        let cutoff = age.map(|a| T0 - a);
        let candidates = model(&all, cutoff, |r| !r.is_blacklisted(T0));
        for min_quality in [None, Some(40), Some(90)] {
            let by_score = model(&all, cutoff, |r| {
                quality_score(&r.connection_quality) >= min_quality.unwrap_or(0)
            });
            for limit in [1, 5, 40] {
                let query = |order| PeerQuery {
                    sort_by: SortBy::ReconnectionScore,
                    order,
                    limit: Some(limit),
                    max_age: age.map(Duration::from_millis),
                    min_quality,
                };
                let ids = |order| -> Vec<String> {
                    book.query_peers(&query(order))
                        .expect("query by score")
                        .iter()
                        .map(|r| r.peer_id.to_string())
                        .collect()
                };
                let want: Vec<String> = by_score.iter().take(limit).cloned().collect();
                assert_eq!(
                    ids(Order::Desc),
                    want,
                    "{context}: query_peers by score, limit {limit}, age {age:?}, {min_quality:?}"
                );
                let want: Vec<String> = by_score.iter().rev().take(limit).cloned().collect();
                assert_eq!(
                    ids(Order::Asc),
                    want,
                    "{context}: ascending {min_quality:?}"
                );
            }
        }
        let by_score = model(&all, cutoff, |_| true);
        for limit in [1, 2, 3, 5, 8, 13, 40, 1000] {
            let max_age = age.map(Duration::from_millis);
            let got: Vec<String> = book
                .get_reconnection_candidates(&CandidateQuery { limit, max_age })
                .expect("candidates")
                .into_iter()
                .map(|c| {
                    assert_eq!(c.score, reconnection_score(&c.peer, T0), "{context}: score");
                    c.peer.peer_id.to_string()
                })
                .collect();
            let want = &candidates[..limit.min(candidates.len())];
            assert_eq!(
                got, want,
                "{context}: candidates, limit {limit}, age {age:?}"
            );
            for order in [Order::Desc, Order::Asc] {
                let query = PeerQuery {
                    sort_by: SortBy::ReconnectionScore,
                    order,
                    limit: Some(limit),
                    max_age,
                    min_quality: None,
                };
                let got: Vec<String> = book
                    .query_peers(&query)
                    .expect("query by score")
                    .iter()
                    .map(|r| r.peer_id.to_string())
                    .collect();
                let want: Vec<String> = match order {
                    Order::Desc => by_score.iter().take(limit).cloned().collect(),
                    Order::Asc => by_score.iter().rev().take(limit).cloned().collect(),
                };
                assert_eq!(
                    got, want,
                    "{context}: query_peers {order:?}, limit {limit}, age {age:?}"
                );
            }
        }
    }
}

/// The ranking equals a full sort for every limit and age, ties and recency steps
/// included.
pub fn candidates_match_full_ranking<F: Factory>(f: &F) {
    let book = ranked_book(f, 240);
    assert_matches_model(&book, "clean book");
}

/// Stale, damaged and corrupt entries among the best are skipped and the ranking
/// reaches past them to the same result as a full sort of the readable records.
pub fn candidates_skip_damage_among_the_best<F: Factory>(f: &F) {
    let book = ranked_book(f, 120);
    let all = book.query_peers(&PeerQuery::default()).expect("query");
    let best = model(&all, None, |r| !r.is_blacklisted(T0));
    let mut batch = WriteBatch::new();
    // The records of the 6 best peers no longer decode.
    for id in &best[..6] {
        let mut bytes = book
            .backend()
            .get(Space::Peers, id.as_bytes())
            .expect("get")
            .expect("stored");
        bytes.truncate(bytes.len() / 2);
        batch.put(Space::Peers, id.as_bytes().to_vec(), bytes);
    }
    // Newest entries with the best hint that disagree with their records (stale),
    // and entries whose hint no record can have (damaged).
    let best_hint = [100, 20, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let out_of_range = [255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for (i, id) in best[6..12].iter().enumerate() {
        let key = crate::store::keys::last_seen_key(T0 + HOUR_MS + i as u64, id.as_bytes());
        let hint = if i % 2 == 0 { best_hint } else { out_of_range };
        batch.put(Space::ByLastSeen, key, hint.to_vec());
    }
    // The same in the rank index (schema 5): stale entries with the best hint and
    // entries whose hint is out of range, in the best run and newest; an entry of a
    // real peer, its hint and last_seen true, in a run its hint does not sort in (it
    // would rank the peer twice); keys that do not parse; and an entry of the best
    // run older than every cutoff (the rest of its run is older still).
    for (i, id) in best[12..18].iter().enumerate() {
        let key = keys::rank_key(0, T0 + HOUR_MS + i as u64, id.as_bytes());
        let hint = if i % 2 == 0 { best_hint } else { out_of_range };
        batch.put(Space::ByQuality, key, hint.to_vec());
    }
    for record in all
        .iter()
        .filter(|r| !best[..6].contains(&r.peer_id.to_string()))
    {
        let hint = ScoreHint::of(record);
        if hint.rank_byte() > 0 {
            let key = keys::rank_key(0, record.last_seen, record.peer_id.as_bytes());
            batch.put(Space::ByQuality, key, hint.encode());
        }
    }
    for garbage in [
        &[keys::RANK_TAG][..],
        &[keys::RANK_TAG, 0],
        &[keys::RANK_TAG, 0, 1, 2],
    ] {
        batch.put(Space::ByQuality, garbage.to_vec(), best_hint.to_vec());
    }
    let old = keys::rank_key(0, T0 - 30 * DAY_MS, b"zz-older-than-every-cutoff");
    batch.put(Space::ByQuality, old, best_hint.to_vec());
    book.backend()
        .write(batch, Durability::Sync)
        .expect("damage the book");
    assert_matches_model(&book, "damaged book");
}
