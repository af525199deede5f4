//! Queries: [`PeerBook::query_peers`] and [`PeerBook::get_reconnection_candidates`].
//!
//! Sorting by `last_seen` or quality walks the matching index in order and stops at
//! the limit; `max_age` and `min_quality` become index bounds where the sort key
//! allows. Records that fail to decode, and index entries that disagree with their
//! record, are skipped (and reported by [`PeerBook::verify`]).
//!
//! Reconnection candidates are ranked from index entries' score hints alone, then
//! only the kept records are read. The walk is a bounded top-k selection over the
//! rank index (schema 5, [`super::rank`]), which sorts entries by the
//! time-independent part of their score, then newest first, and usually stops after
//! a handful; a query spread over too many of its runs falls back to the
//! by_last_seen walk: the entries within `max_age`, newest first (a forward walk:
//! the index sorts newest first), that stops as soon as no older entry can outrank
//! the kept ones (the score depends on time only through its recency steps).
//!
//! Each query reads one [`ReadView`]: pages of an index and the records they point
//! to come from one state, so a peer moved by a concurrent write is met exactly once.

use std::collections::BinaryHeap;
use std::ops::{Bound, ControlFlow};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{keys, Existing, PeerBook};
use crate::backend::{Backend, Direction, KeyRange, ReadView, Space};
use crate::error::{Error, Result};
use crate::options::duration_ms;
use crate::schema::{PeerId, PeerRecord};
use crate::scoring::{quality_score, ReconnectionScore, ScoreHint};

/// What to sort [`PeerBook::query_peers`] results by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// `last_seen`, ties by peer id.
    #[default]
    LastSeen,
    /// The quality score, ties by peer id.
    Quality,
    /// The reconnection score, ties by later last_seen then smaller peer id.
    ReconnectionScore,
}

/// Sort order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    #[default]
    Desc,
}

/// Options of [`PeerBook::query_peers`]; the default returns every peer, most
/// recently seen first.
///
/// ```
/// use peerbook::{Order, PeerQuery, SortBy};
/// // High-quality peers, for routing.
/// let q = PeerQuery { sort_by: SortBy::Quality, order: Order::Desc, limit: Some(5), min_quality: Some(70), ..PeerQuery::default() };
/// # let _ = q;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PeerQuery {
    /// Sort key.
    pub sort_by: SortBy,
    /// Sort order.
    pub order: Order,
    /// At most this many results.
    pub limit: Option<usize>,
    /// Only peers seen within this long of now.
    pub max_age: Option<Duration>,
    /// Only peers with at least this quality score (0..=100).
    pub min_quality: Option<u8>,
}

/// Options of [`PeerBook::get_reconnection_candidates`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CandidateQuery {
    /// At most this many candidates (default 5).
    pub limit: usize,
    /// Only peers seen within this long of now (default: any age).
    pub max_age: Option<Duration>,
}

impl Default for CandidateQuery {
    fn default() -> Self {
        CandidateQuery {
            limit: 5,
            max_age: None,
        }
    }
}

/// A reconnection candidate: the peer and its score with every part.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The peer.
    pub peer: PeerRecord,
    /// Its reconnection score at the time of the query.
    pub score: ReconnectionScore,
}

/// An index entry ranked by its score hint, before its record is read.
pub(super) struct Ranked {
    pub(super) score: ReconnectionScore,
    pub(super) last_seen: u64,
    /// The id as the by_last_seen key encodes it ([`keys::last_seen_suffix`]): decoded
    /// only for the entries whose record is read.
    pub(super) suffix: Vec<u8>,
    hint: ScoreHint,
}

/// The best `best` entries offered so far: a heap whose top is the worst kept one,
/// so an entry that ranks after all of them costs no allocation.
pub(super) struct TopK {
    heap: BinaryHeap<Ranked>,
    best: usize,
}

impl TopK {
    pub(super) fn new(best: usize) -> Self {
        TopK {
            heap: BinaryHeap::with_capacity(best.min(1024)),
            best,
        }
    }

    /// The worst kept entry once `best` are kept; `None` before.
    pub(super) fn worst(&self) -> Option<&Ranked> {
        if self.heap.len() >= self.best {
            self.heap.peek()
        } else {
            None
        }
    }

    /// Keep this entry if it ranks among the best `best` offered so far.
    pub(super) fn offer(
        &mut self,
        score: ReconnectionScore,
        last_seen: u64,
        suffix: &[u8],
        hint: ScoreHint,
    ) {
        if self.best == 0 {
            return;
        }
        if let Some(worst) = self.worst() {
            if rank_order((score.total, last_seen, suffix), worst.key()).is_ge() {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Ranked {
            score,
            last_seen,
            suffix: suffix.to_vec(),
            hint,
        });
    }

    /// The kept entries, best first.
    pub(super) fn into_sorted_vec(self) -> Vec<Ranked> {
        self.heap.into_sorted_vec()
    }
}

/// The candidate order on `(total, last_seen, key suffix)`: higher total, then later
/// last_seen, then smaller id, which is the greater suffix (suffixes sort in the
/// reverse order of their ids). `Less` means `a` ranks first.
fn rank_order(a: (u8, u64, &[u8]), b: (u8, u64, &[u8])) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then_with(|| b.2.cmp(a.2))
}

impl Ranked {
    fn key(&self) -> (u8, u64, &[u8]) {
        (self.score.total, self.last_seen, &self.suffix)
    }
}

// Ordered by rank: the greatest entry ranks last (the top of a heap of the best).
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        rank_order(self.key(), other.key())
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

const FIRST_PAGE: usize = 16;
const MAX_PAGE: usize = 1024;

impl<B: Backend> PeerBook<B> {
    /// Peers matching `query`, sorted and limited as it says.
    pub fn query_peers(&self, query: &PeerQuery) -> Result<Vec<PeerRecord>> {
        if let Some(q) = query.min_quality {
            if q > 100 {
                return Err(Error::invalid("min_quality", "0..=100"));
            }
        }
        let now = self.now();
        let cutoff = query
            .max_age
            .map(|age| now.saturating_sub(duration_ms(age)));
        let limit = query.limit.unwrap_or(usize::MAX);
        if limit == 0 {
            return Ok(Vec::new());
        }
        // by_quality sorts ascending, by_last_seen newest first
        let (ascending, descending) = match query.order {
            Order::Asc => (Direction::Forward, Direction::Reverse),
            Order::Desc => (Direction::Reverse, Direction::Forward),
        };
        let min_quality = query.min_quality.unwrap_or(0);
        let view = self.backend.view()?;
        let view = &*view;
        let mut out = Vec::new();
        match query.sort_by {
            SortBy::LastSeen => {
                let range = keys::last_seen_since(cutoff);
                self.walk_index(view, Space::ByLastSeen, range, descending, |record| {
                    if quality_score(&record.connection_quality) >= min_quality {
                        out.push(record);
                    }
                    if out.len() >= limit {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
            }
            SortBy::Quality => {
                let lower = query
                    .min_quality
                    .map_or(Bound::Unbounded, |q| Bound::Included(vec![q]));
                // the quality keys, not the rank region after them
                let range = (lower, Bound::Excluded(keys::QUALITY_END.to_vec()));
                self.walk_index(view, Space::ByQuality, range, ascending, |record| {
                    if cutoff.is_none_or(|c| record.last_seen >= c) {
                        out.push(record);
                    }
                    if out.len() >= limit {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
            }
            SortBy::ReconnectionScore => {
                let keep = |h: &ScoreHint| h.quality_score >= min_quality;
                let found = match query.order {
                    Order::Desc => self.best_ranked(view, cutoff, now, &keep, limit)?,
                    Order::Asc => {
                        let ranked = self.ranked(view, cutoff, now, &keep, usize::MAX)?;
                        self.load_ranked(view, ranked.into_iter().rev(), limit)?
                    }
                };
                out = found.into_iter().map(|c| c.peer).collect();
            }
        }
        Ok(out)
    }

    /// The best peers to reconnect to: not blacklisted, seen within `max_age`,
    /// ranked by reconnection score (ties: later last_seen, then smaller peer id).
    pub fn get_reconnection_candidates(&self, query: &CandidateQuery) -> Result<Vec<Candidate>> {
        let now = self.now();
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let cutoff = query
            .max_age
            .map(|age| now.saturating_sub(duration_ms(age)));
        let view = self.backend.view()?;
        let keep = |h: &ScoreHint| !h.is_blacklisted(now);
        self.best_ranked(&*view, cutoff, now, &keep, query.limit)
    }

    /// [`get_reconnection_candidates`](Self::get_reconnection_candidates) that
    /// prefers peers with a recently working address: a peer with an unexpired
    /// address whose last attempt worked and whose `last_success` lies within
    /// `recent` of now ranks before every peer without one; within each group the
    /// order is the usual one (score, later last_seen, smaller id). Scores are not
    /// changed (the scoring table stays exact). Reads every candidate's record (one
    /// decode per peer passing the filters), so it costs more than the index-only
    /// ranking.
    pub fn get_reconnection_candidates_by_address(
        &self,
        query: &CandidateQuery,
        recent: Duration,
    ) -> Result<Vec<Candidate>> {
        let now = self.now();
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let cutoff = query
            .max_age
            .map(|age| now.saturating_sub(duration_ms(age)));
        let since = now.saturating_sub(duration_ms(recent));
        let view = self.backend.view()?;
        let keep = |h: &ScoreHint| !h.is_blacklisted(now);
        let ranked = self.ranked(&*view, cutoff, now, &keep, usize::MAX)?;
        let mut all = self.load_ranked(&*view, ranked.into_iter(), usize::MAX)?;
        let works = |c: &Candidate| {
            c.peer.addresses.iter().any(|a| {
                !a.is_expired(now) && a.last_worked() && a.last_success.is_some_and(|t| t >= since)
            })
        };
        // stable: each group keeps the score order
        all.sort_by_key(|c| !works(c));
        all.truncate(query.limit);
        Ok(all)
    }

    /// The first `limit` of every peer seen at or after `cutoff` whose score hint
    /// passes `keep`, ranked best first, records read. Ranks the best `limit` index
    /// entries; when stale or corrupt ones among them leave fewer than `limit`
    /// records, ranks four times as many and reads again, until the index has no
    /// more. The result is the one ranking every entry would give.
    fn best_ranked(
        &self,
        view: &dyn ReadView,
        cutoff: Option<u64>,
        now: u64,
        keep: &dyn Fn(&ScoreHint) -> bool,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let mut best = limit;
        loop {
            let by_rank = match best {
                usize::MAX => None, // every entry: one walk of by_last_seen
                _ => self.ranked_by_rank(view, cutoff, now, keep, best)?,
            };
            let ranked = match by_rank {
                Some(ranked) => ranked,
                None => self.ranked(view, cutoff, now, keep, best)?,
            };
            let every_entry = ranked.len() < best;
            let found = self.load_ranked(view, ranked.into_iter(), limit)?;
            if found.len() >= limit || every_entry {
                return Ok(found);
            }
            best = best.saturating_mul(4);
        }
    }

    /// The best `best` of every peer seen at or after `cutoff` whose score hint
    /// passes `keep` (all of them when fewer), ranked best first from the
    /// by_last_seen index alone: no record is decoded here.
    ///
    /// A bounded selection, not a sort of every entry: a heap keeps the best `best`
    /// seen so far, so an entry that ranks after all of them costs no allocation
    /// (`usize::MAX` keeps every entry: they are collected and sorted once).
    /// The walk goes from the newest entry down (forward: the index sorts newest
    /// first) and stops once no older entry can
    /// rank before the kept ones ([`ScoreHint::best_total`]: the score depends on
    /// time only through the recency steps). Entries with a damaged key or an
    /// out-of-range hint match no record, so they are skipped here (verify reports
    /// them).
    pub(super) fn ranked(
        &self,
        view: &dyn ReadView,
        cutoff: Option<u64>,
        now: u64,
        keep: &dyn Fn(&ScoreHint) -> bool,
        best: usize,
    ) -> Result<Vec<Ranked>> {
        let (lower, upper) = keys::last_seen_since(cutoff);
        if best == 0 {
            return Ok(Vec::new());
        }
        let mut kept = TopK::new(best);
        let mut every = Vec::new();
        let range = KeyRange {
            lower: super::as_ref_bound(&lower),
            upper: super::as_ref_bound(&upper),
        };
        // by_last_seen sorts newest first: a forward walk
        view.scan(Space::ByLastSeen, range, Direction::Forward, &mut |k, v| {
            let (Some((last_seen, suffix)), Some(hint)) =
                (keys::split_last_seen_key_raw(k), ScoreHint::decode(v))
            else {
                return ControlFlow::Continue(()); // damaged entry: verify reports it
            };
            if let Some(worst) = kept.worst() {
                // Every entry from here on totals at most `bound` and is seen no
                // later than this one: none ranks before `worst`.
                let bound = ScoreHint::best_total(0, last_seen, now);
                if worst.score.total > bound
                    || (worst.score.total == bound && worst.last_seen > last_seen)
                {
                    return ControlFlow::Break(());
                }
            }
            if !hint.in_range() || !keep(&hint) {
                return ControlFlow::Continue(());
            }
            let score = hint.score(last_seen, now);
            if best == usize::MAX {
                // every entry is kept: collect them and sort once below
                every.push(Ranked {
                    score,
                    last_seen,
                    suffix: suffix.to_vec(),
                    hint,
                });
                return ControlFlow::Continue(());
            }
            kept.offer(score, last_seen, suffix, hint);
            ControlFlow::Continue(())
        })?;
        if best == usize::MAX {
            every.sort_unstable(); // keys are unique: no two entries compare equal
            return Ok(every);
        }
        Ok(kept.into_sorted_vec())
    }

    /// Read the records of `ranked` in order until `limit` are found that agree with
    /// their index entry (stale or corrupt ones are skipped, as every query does).
    fn load_ranked(
        &self,
        view: &dyn ReadView,
        ranked: impl Iterator<Item = Ranked>,
        limit: usize,
    ) -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        for entry in ranked {
            if out.len() >= limit {
                break;
            }
            let Some(raw_id) = keys::peer_id_of_last_seen_suffix(&entry.suffix) else {
                continue; // a damaged key: verify reports it
            };
            let Ok(id) = PeerId::from_bytes(&raw_id) else {
                continue;
            };
            let Some(Existing::Decoded { record, .. }) = self.load_existing(view, &id)? else {
                continue;
            };
            if record.last_seen != entry.last_seen || ScoreHint::of(&record) != entry.hint {
                debug!(peer = %id, "stale index entry skipped (by_last_seen or rank)");
                continue;
            }
            out.push(Candidate {
                peer: record,
                score: entry.score,
            });
        }
        Ok(out)
    }

    /// Visit the records an index points to, in key order within `range` (lower,
    /// upper) in `direction`, page by page. Entries whose record is missing,
    /// corrupt, or disagrees with the index are skipped.
    fn walk_index(
        &self,
        view: &dyn ReadView,
        space: Space,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        direction: Direction,
        mut visit: impl FnMut(PeerRecord) -> ControlFlow<()>,
    ) -> Result<()> {
        let (mut lower, mut upper) = range;
        let mut page_size = FIRST_PAGE;
        loop {
            let page = self.index_page(
                view,
                space,
                lower.clone(),
                upper.clone(),
                direction,
                page_size,
            )?;
            let full = page.len() == page_size;
            for key in &page {
                let Some(record) = self.indexed_record(view, space, key)? else {
                    continue;
                };
                if visit(record).is_break() {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
            let last = page.last().cloned().unwrap_or_default();
            match direction {
                Direction::Forward => lower = Bound::Excluded(last),
                Direction::Reverse => upper = Bound::Excluded(last),
            }
            page_size = (page_size * 4).min(MAX_PAGE);
        }
    }

    /// The record an index key points to, if it exists, decodes, and agrees.
    fn indexed_record(
        &self,
        view: &dyn ReadView,
        space: Space,
        key: &[u8],
    ) -> Result<Option<PeerRecord>> {
        let (value, raw_id) = match space {
            Space::ByLastSeen => match keys::split_last_seen_key(key) {
                Some((ts, id)) => (ts, id),
                None => return Ok(None),
            },
            _ => match keys::split_quality_key(key) {
                Some((q, id)) => (u64::from(q), id.to_vec()),
                None => return Ok(None),
            },
        };
        let Ok(id) = PeerId::from_bytes(&raw_id) else {
            return Ok(None);
        };
        let Some(Existing::Decoded { record, .. }) = self.load_existing(view, &id)? else {
            debug!(peer = %id, index = %space, "index entry without a readable record skipped");
            return Ok(None);
        };
        let actual = match space {
            Space::ByLastSeen => record.last_seen,
            _ => u64::from(quality_score(&record.connection_quality)),
        };
        if actual != value {
            debug!(peer = %id, index = %space, "stale index entry skipped");
            return Ok(None);
        }
        Ok(Some(record))
    }
}
