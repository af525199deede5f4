//! Unit tests of the rank walk's cost: on a book shaped like the benchmark's (few
//! peers with the best base, `last_seen` spread over 60 days), the best five within
//! a day come from one scan of a handful of rank entries where the by_last_seen
//! walk visits hundreds; a query spread over many runs gives up after its budget.
//! (That both walks return the same results is the ranking conformance kit's job.)

use std::ops::Range;
use std::sync::Mutex;

use super::*;
use crate::backend::{BackendError, Visit};
use crate::conformance::Rng;
use crate::scoring::DAY_MS;
use crate::{
    ConnectionQuality, ConnectionType, ExportOptions, ImportMode, ManualClock, MasterKey,
    MemoryBackend, NewPeer, Options,
};

const NOW: u64 = 1_000 * DAY_MS;

/// A view that counts the scans started and the entries they visited.
struct Counting<'a> {
    inner: Box<dyn ReadView + 'a>,
    /// (scans, entries visited)
    reads: Mutex<(usize, usize)>,
}

impl ReadView for Counting<'_> {
    fn get(&self, space: Space, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> std::result::Result<(), BackendError> {
        let mut visited = 0;
        let result = self.inner.scan(space, range, direction, &mut |k, v| {
            visited += 1;
            visitor(k, v)
        });
        let mut reads = self.reads.lock().unwrap();
        reads.0 += 1;
        reads.1 += visited;
        result
    }
}

/// `n` peers seen uniformly over 60 days before `NOW`: one in ten with the
/// best possible hint (base 70), the others of middling quality, some with failed
/// attempts.
fn spread_book(n: usize) -> PeerBook<MemoryBackend> {
    let mut options =
        Options::new(MasterKey::from_bytes([3; 32])).with_clock(ManualClock::new(NOW));
    options.max_peers = n as u64;
    let book = PeerBook::open(MemoryBackend::new(), options).unwrap();
    let mut rng = Rng::new(19);
    let mut peers = Vec::new();
    for i in 0..n {
        let mut r = book
            .create_peer(NewPeer {
                peer_id: format!("peer-{i}"),
                public_key: "pk".into(),
                ..NewPeer::default()
            })
            .unwrap();
        r.last_seen = NOW - rng.below(60 * DAY_MS);
        r.last_connected = r.last_seen;
        let best = rng.below(10) == 0;
        let total = if best { 9 } else { rng.below(8) as u32 };
        let ok = if best {
            total
        } else {
            rng.below(u64::from(total) + 1) as u32
        };
        r.connection_quality = ConnectionQuality {
            latency_ms: Some(if best { 10 } else { 60 + rng.below(500) as u32 }),
            success_rate: if total == 0 {
                0.0
            } else {
                ok as f32 / total as f32
            },
            connection_type: if best {
                ConnectionType::Host
            } else {
                ConnectionType::Srflx
            },
            total_connections: total,
            successful_connections: ok,
            avg_uptime_ms: if best {
                11 * 60_000
            } else {
                rng.below(20 * 60_000)
            },
        };
        if !best && rng.below(3) == 0 {
            r.reconnection_attempts = 1 + rng.below(5) as u32;
        }
        peers.push(r);
    }
    let mut doc = book.export_data(ExportOptions::default()).unwrap();
    doc.peers = peers;
    book.import_data(&doc, ImportMode::Merge).unwrap();
    book
}

/// The ids of `ranked`, best first.
fn ids(ranked: &[Ranked]) -> Vec<Vec<u8>> {
    ranked
        .iter()
        .map(|r| keys::peer_id_of_last_seen_suffix(&r.suffix).unwrap())
        .collect()
}

/// (result, scans, entries visited) of one walk.
type Walked = (Option<Vec<Ranked>>, usize, usize);

fn walk(book: &PeerBook<MemoryBackend>, by_rank: bool, cutoff: Option<u64>, best: usize) -> Walked {
    let view = Counting {
        inner: book.backend().view().unwrap(),
        reads: Mutex::new((0, 0)),
    };
    let keep = |h: &ScoreHint| !h.is_blacklisted(NOW);
    let ranked = if by_rank {
        book.ranked_by_rank(&view, cutoff, NOW, &keep, best)
            .unwrap()
    } else {
        Some(book.ranked(&view, cutoff, NOW, &keep, best).unwrap())
    };
    let (scans, visited) = *view.reads.lock().unwrap();
    (ranked, scans, visited)
}

fn assert_within(what: &str, value: usize, range: Range<usize>) {
    assert!(
        range.contains(&value),
        "{what}: {value}, expected {range:?}"
    );
}

#[test]
fn the_best_five_of_a_day_come_from_one_short_scan() {
    let book = spread_book(6_000);
    for cutoff in [Some(NOW - DAY_MS), None] {
        let (by_rank, scans, visited) = walk(&book, true, cutoff, 5);
        let (by_time, _, time_visited) = walk(&book, false, cutoff, 5);
        let by_rank = by_rank.expect("within the scan budget");
        assert_eq!(ids(&by_rank), ids(&by_time.unwrap()), "{cutoff:?}");
        assert_eq!(by_rank.len(), 5);
        assert_eq!(scans, 1, "{cutoff:?}: one scan");
        assert_within("rank entries visited", visited, 5..30);
        // what the rank index saves: the by_last_seen walk reads every entry until
        // the recency step a day back at least
        assert!(
            time_visited > 5 * visited,
            "by_last_seen visited {time_visited}"
        );
    }
}

#[test]
fn a_walk_spread_over_many_runs_gives_up_after_its_budget() {
    let book = spread_book(3_000);
    let cutoff = Some(NOW - DAY_MS);
    // the best 200 within a day span dozens of runs: one scan each
    book.set_rank_scan_budget(usize::MAX);
    let (all, scans, _) = walk(&book, true, cutoff, 200);
    let (by_time, _, _) = walk(&book, false, cutoff, 200);
    assert_eq!(ids(&all.expect("unbounded budget")), ids(&by_time.unwrap()));
    assert!(scans > RANK_SCAN_BUDGET, "{scans} scans");
    // with the default budget the walk stops at it and says so
    book.set_rank_scan_budget(RANK_SCAN_BUDGET);
    let (none, scans, _) = walk(&book, true, cutoff, 200);
    assert!(none.is_none());
    assert_eq!(scans, RANK_SCAN_BUDGET);
    // no budget: no scan at all
    book.set_rank_scan_budget(0);
    let (none, scans, _) = walk(&book, true, cutoff, 5);
    assert!(none.is_none() && scans == 0);
}

#[test]
fn run_bounds_are_the_best_totals_of_their_runs() {
    assert_eq!(run_best(0), 100);
    assert_eq!(run_best(30), 70);
    assert_eq!(run_best(100), 0);
    assert_eq!(run_best(101), 0);
    assert_eq!(ScoreHint::best_total(0, NOW, NOW), 100);
    assert_eq!(ScoreHint::best_total(0, NOW - DAY_MS, NOW), 90);
    assert_eq!(ScoreHint::best_total(70, NOW - 7 * DAY_MS, NOW), 0);
    assert_eq!(ScoreHint::best_total(100, NOW, NOW), 0);
}
