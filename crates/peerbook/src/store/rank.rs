//! The rank index walk (schema 5): the best `k` reconnection candidates in a few
//! index entries instead of every entry within `max_age`.
//!
//! The reconnection total is `clamp(base + recency, 0, 100)`, where the base
//! ([`ScoreHint::base`]) does not depend on time and the recency is 30, 20, 10 or 0
//! by age ([`recency`](crate::scoring::recency)). The rank region of `by_quality` ([`keys::rank_key`]) sorts
//! the entries by run `70 - clamp(base, -30, 70)` (best base first), then newest
//! first: within a run the total can only fall along the walk, so the walk leaves a
//! run as soon as its kept `k` beat what the rest of the run can score, and stops
//! once they beat the best total of every later run. It returns exactly the
//! entries the by_last_seen walk ([`PeerBook::ranked`](super::PeerBook)) returns,
//! in the same order:
//!
//! - the rest of a run after an entry seen before the cutoff is older still, so
//!   outside `max_age`;
//! - the rest of a run after entry `e`, once the worst kept entry beats `(bound,
//!   e.last_seen)` where `bound = clamp(70 - run + recency(e.last_seen))`: each of
//!   them totals at most `bound` and was seen no later than `e` (the recency never
//!   grows as `last_seen` falls), so it ranks after the worst kept one, also on a
//!   tie of totals (the worst kept one was seen later);
//! - every run from `r` on once the worst kept entry totals more than
//!   `clamp(100 - r, 0, 100)`, the best total in those runs whatever their age
//!   (strictly more: a later run can hold newer entries).
//!
//! A query whose results are spread over many runs (a narrow `max_age` with a large
//! limit) would seek into each of them; after [`RANK_SCAN_BUDGET`] scans the walk
//! gives up and the caller runs the by_last_seen walk instead, which is exact too,
//! so the budget is a cost choice that never changes a result.
//!
//! Entries whose key does not parse, whose hint is out of range or sorts in another
//! run than the key says are skipped (verify reports them); stale ones (the record
//! disagrees) are skipped when the records are read, as on the by_last_seen walk.

use std::ops::{Bound, ControlFlow};
use std::sync::atomic::Ordering;

use super::query::{Ranked, TopK};
use super::{keys, PeerBook};
use crate::backend::{Backend, Direction, KeyRange, ReadView, Space};
use crate::error::Result;
use crate::scoring::{ScoreHint, RANK_BASE_MAX};

/// Scans (one per run the walk seeks into) the rank walk starts before it leaves
/// the query to the by_last_seen walk. The benchmark's query (24 h, limit 5) needs
/// one; a query of the best 100 within an hour needs about 90.
pub(crate) const RANK_SCAN_BUDGET: usize = 16;

/// The highest total an entry of run `run` (or any later run) can have, at any age.
fn run_best(run: u16) -> u8 {
    (RANK_BASE_MAX + 30 - i64::from(run)).clamp(0, 100) as u8
}

/// Where one scan of the rank region ended.
enum ScanEnd {
    /// No later entry can rank among the kept ones (or the region ended).
    Done,
    /// The rest of the scan's current run cannot: go on at this run.
    Seek(u16),
}

impl<B: Backend> PeerBook<B> {
    fn rank_scan_budget(&self) -> usize {
        self.rank_scan_budget.load(Ordering::Relaxed)
    }

    /// Test knob: how many scans the rank walk of reconnection candidates (and of
    /// `query_peers` by score, best first) may start before it leaves the query to
    /// the by_last_seen walk: `0` always walks by_last_seen, `usize::MAX` never
    /// does. Both walks return the same results; tests prove it through this.
    #[doc(hidden)]
    #[cfg(any(test, feature = "conformance"))]
    pub fn set_rank_scan_budget(&self, scans: usize) {
        self.rank_scan_budget.store(scans, Ordering::Relaxed);
    }

    /// The best `best` (finite) of every peer seen at or after `cutoff` whose hint
    /// passes `keep`, ranked best first, from the rank index alone; `None` when the
    /// walk ran out of its scan budget (the caller walks by_last_seen instead).
    pub(super) fn ranked_by_rank(
        &self,
        view: &dyn ReadView,
        cutoff: Option<u64>,
        now: u64,
        keep: &dyn Fn(&ScoreHint) -> bool,
        best: usize,
    ) -> Result<Option<Vec<Ranked>>> {
        let mut kept = TopK::new(best);
        let budget = self.rank_scan_budget();
        let end = [keys::RANK_TAG, keys::QUALITY_END[0]];
        let mut run: u16 = 0;
        let mut scans = 0;
        while run <= 100 {
            if kept.worst().is_some_and(|w| w.score.total > run_best(run)) {
                break;
            }
            if scans >= budget {
                return Ok(None);
            }
            scans += 1;
            let start = [keys::RANK_TAG, run as u8];
            let range = KeyRange {
                lower: Bound::Included(&start[..]),
                upper: Bound::Excluded(&end[..]),
            };
            let mut stop = ScanEnd::Done;
            let mut current = run;
            view.scan(Space::ByQuality, range, Direction::Forward, &mut |k, v| {
                let Some((key_run, last_seen, suffix)) = keys::split_rank_key_raw(k) else {
                    return ControlFlow::Continue(()); // damaged key: verify reports it
                };
                if u16::from(key_run) > current {
                    // crossed into a later run without a seek
                    current = u16::from(key_run);
                    if kept
                        .worst()
                        .is_some_and(|w| w.score.total > run_best(current))
                    {
                        return ControlFlow::Break(());
                    }
                }
                let next = u16::from(key_run) + 1;
                if cutoff.is_some_and(|c| last_seen < c) {
                    // the rest of this run was seen earlier still
                    stop = ScanEnd::Seek(next);
                    return ControlFlow::Break(());
                }
                if let Some(worst) = kept.worst() {
                    let bound = ScoreHint::best_total(key_run, last_seen, now);
                    if worst.score.total > bound
                        || (worst.score.total == bound && worst.last_seen > last_seen)
                    {
                        stop = ScanEnd::Seek(next);
                        return ControlFlow::Break(());
                    }
                }
                let Some(hint) = ScoreHint::decode(v) else {
                    return ControlFlow::Continue(());
                };
                if !hint.in_range() || hint.rank_byte() != key_run || !keep(&hint) {
                    return ControlFlow::Continue(());
                }
                kept.offer(hint.score(last_seen, now), last_seen, suffix, hint);
                ControlFlow::Continue(())
            })?;
            match stop {
                ScanEnd::Done => break,
                ScanEnd::Seek(next) => run = next,
            }
        }
        Ok(Some(kept.into_sorted_vec()))
    }
}

#[cfg(test)]
#[path = "rank_tests.rs"]
mod tests;
