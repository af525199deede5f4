//! The write path under the writer lock: read-modify-write, loading a stored
//! record, putting and deleting a record with its index entries, quotas and LRU
//! eviction, and committing a staged batch with its counters.

use std::cell::OnceCell;
use std::ops::{Bound, ControlFlow};
use std::sync::atomic::Ordering;

use tracing::warn;

use crate::backend::{
    Backend, BackendError, Direction, Durability, KeyRange, ReadView, Space, Visit, WriteBatch,
};
use crate::error::{Error, Quota, Result};
use crate::schema::{PeerId, PeerRecord, Replaced};
use crate::scoring::ScoreHint;

use super::{corrupted_record, keys, Existing, PeerBook, StagedWrite, WriterGuard};
use keys::{Counters, META_COUNTERS};

/// A record read ahead of the writer lock (see [`PeerBook::modify`]).
struct ReadAhead {
    mark: super::group::ReadMark,
    /// The record as read.
    record: PeerRecord,
    /// Its encoded length.
    len: u64,
    /// A copy of `record`, for the writer to modify.
    copy: PeerRecord,
}

/// A view opened on its first read: a writer whose read ahead holds reads nothing
/// more for an update without eviction, so it skips the engine's snapshot and the
/// group commit's overlay lock.
struct LazyView<'a, F> {
    open: F,
    view: OnceCell<Box<dyn ReadView + 'a>>,
}

impl<'a, F: Fn() -> std::result::Result<Box<dyn ReadView + 'a>, BackendError>> LazyView<'a, F> {
    fn new(open: F) -> Self {
        LazyView {
            open,
            view: OnceCell::new(),
        }
    }

    fn view(&self) -> std::result::Result<&(dyn ReadView + 'a), BackendError> {
        if let Some(view) = self.view.get() {
            return Ok(&**view);
        }
        let opened = (self.open)()?;
        Ok(&**self.view.get_or_init(|| opened))
    }
}

impl<'a, F: Fn() -> std::result::Result<Box<dyn ReadView + 'a>, BackendError>> ReadView
    for LazyView<'a, F>
{
    fn get(&self, space: Space, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, BackendError> {
        self.view()?.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> std::result::Result<(), BackendError> {
        self.view()?.scan(space, range, direction, visitor)
    }
}

impl<B: Backend> PeerBook<B> {
    /// Write `batch` with the book's durability (see [`guarded`](Self::guarded)).
    pub(crate) fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        self.drain()?;
        self.guarded(|| self.backend.write(batch, self.settings.durability))
    }

    /// Run a backend write, flush or clear: refused when the book is poisoned; any
    /// error or panic poisons it, since no error kind is known to have applied nothing on
    /// every engine (see the [`Backend`](crate::backend#failures) contract), except
    /// one the backend marked [`BackendError::NotApplied`]: the state is then the
    /// one before the call, which the counters still describe.
    ///
    /// Reads ahead of the writer lock taken before it are no longer trusted (see the
    /// `group` module), whatever the outcome. An engine that panics skips the bump,
    /// but the book is poisoned first, and every writer checks that under the lock
    /// before it could keep a read ahead.
    pub(crate) fn guarded(
        &self,
        op: impl FnOnce() -> std::result::Result<(), BackendError>,
    ) -> Result<()> {
        let outcome = self.guarded_group_write(op);
        self.group.bump_generation();
        outcome
    }

    /// [`guarded`](Self::guarded) for the synced write of a group of applied
    /// batches, which does not change what a writer reads (the overlay held them).
    pub(crate) fn guarded_group_write(
        &self,
        op: impl FnOnce() -> std::result::Result<(), BackendError>,
    ) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::NeedsReopen);
        }
        // A panic in the engine is an unknown outcome too: poison, then let it go on
        // (the group commit fails its waiters; the book must say so as well).
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(op)).unwrap_or_else(|panic| {
                self.poisoned.store(true, Ordering::Release);
                std::panic::resume_unwind(panic)
            });
        outcome.map_err(|e| {
            if e.is_not_applied() {
                warn!(
                    engine = self.backend.engine_name(),
                    "peerbook write refused before it applied anything; the book stays usable"
                );
                return Error::from(e);
            }
            self.poisoned.store(true, Ordering::Release);
            warn!(
                engine = self.backend.engine_name(),
                "peerbook write failed with an unknown outcome; the book needs a reopen"
            );
            Error::from(e)
        })
    }

    /// Read-modify-write of one decodable record under the writer lock.
    ///
    /// A read ahead of the lock that still holds under it (see the `group` module)
    /// comes with its copy to modify, made before the lock too, and the backend view
    /// is opened only if something reads it (a read under the lock, an eviction):
    /// the serial section then neither copies the record nor takes a snapshot or
    /// the overlay lock, which other writers' reads ahead wait for.
    pub(crate) fn modify(
        &self,
        peer_id: &str,
        f: impl FnOnce(&mut PeerRecord, u64) -> Result<()>,
    ) -> Result<PeerRecord> {
        let id = PeerId::new(peer_id)?;
        let ahead = self.read_ahead(&id);
        #[cfg(test)]
        self.group.after_read_ahead();
        let guard = self.lock_writer_to_write()?;
        let now = self.now();
        let view = LazyView::new(|| self.writer_view());
        let ahead = ahead.filter(|a| self.group.still_current(a.mark, id.as_bytes()));
        let (old, len, mut record) = match ahead {
            Some(a) => (a.record, a.len, a.copy),
            None => match self.load_existing(&view, &id)? {
                None => {
                    drop(view);
                    self.settle(guard)?;
                    return Err(Error::NotFound {
                        peer_id: id.to_string(),
                    });
                }
                Some(Existing::Corrupt { detail, .. }) => {
                    return Err(corrupted_record(&id, detail))
                }
                Some(Existing::Decoded { record, len }) => {
                    let copy = record.clone();
                    (record, len, copy)
                }
            },
        };
        f(&mut record, now)?;
        record.validate_changed(Some(&old))?;
        self.check_times(&record, now, Some(&old))?;
        let existing = Existing::Decoded { record: old, len };
        let mut staged = StagedWrite::one_record(*guard);
        self.write_record(&view, &mut staged, Some(existing), &record)?;
        drop(view); // a view ends before its thread writes (LMDB)
        self.commit(guard, staged)?;
        Ok(record)
    }

    /// The decodable record `id` read (and decoded) ahead of the writer lock, with
    /// its mark and a copy to modify, for a writer that checks it under the lock
    /// (see the `group` module); `None` (read under the lock) unless the book is
    /// [`Durability::Sync`] and the read gave a decodable record of `id`: every
    /// other outcome, errors included, is left to the read under the lock.
    fn read_ahead(&self, id: &PeerId) -> Option<ReadAhead> {
        if self.settings.durability != Durability::Sync {
            return None;
        }
        let (mark, pending) = self.group.read_ahead(Space::Peers, id.as_bytes());
        let bytes = match pending {
            Some(pending) => pending?,
            None => self.backend.get(Space::Peers, id.as_bytes()).ok()??,
        };
        let record = PeerRecord::decode(&bytes).ok()?;
        (record.peer_id == *id).then(|| ReadAhead {
            mark,
            copy: record.clone(),
            record,
            len: bytes.len() as u64,
        })
    }

    pub(crate) fn load_existing(
        &self,
        view: &dyn ReadView,
        id: &PeerId,
    ) -> Result<Option<Existing>> {
        let Some(bytes) = view.get(Space::Peers, id.as_bytes())? else {
            return Ok(None);
        };
        Ok(Some(Self::existing_of(id, &bytes)))
    }

    /// The stored bytes `bytes` of peer `id`, decoded (a corrupt record is logged).
    pub(crate) fn existing_of(id: &PeerId, bytes: &[u8]) -> Existing {
        let len = bytes.len() as u64;
        match PeerRecord::decode(bytes) {
            Ok(record) if record.peer_id == *id => Existing::Decoded { record, len },
            Ok(record) => {
                let detail = format!("record names another peer ({})", record.peer_id);
                warn!(peer = %id, "corrupt peer record found: {detail}");
                Existing::Corrupt { len, detail }
            }
            Err(e) => {
                warn!(peer = %id, "corrupt peer record found: {e}");
                Existing::Corrupt { len, detail: e.0 }
            }
        }
    }

    /// Put `record` (replacing `existing`), with quota checks and eviction.
    pub(crate) fn write_record(
        &self,
        view: &dyn ReadView,
        staged: &mut StagedWrite,
        existing: Option<Existing>,
        record: &PeerRecord,
    ) -> Result<()> {
        // A decodable record being replaced keeps the index entries that do not move
        // (put_record_into compares them); only a corrupt one is deleted up front.
        let replaced = match &existing {
            Some(Existing::Decoded { record: old, len }) => Some((Replaced::of(old), *len)),
            Some(corrupt) => {
                self.delete_record(view, staged, &record.peer_id, corrupt)?;
                None
            }
            None => None,
        };
        let is_new = existing.is_none();
        self.write_encoded(view, staged, is_new, replaced, record, record.encode())
    }

    /// [`write_record`](Self::write_record) with `record` already encoded as
    /// `encoded`, replacing the decodable stored record `replaced` (what it needs of
    /// it, and its encoded length) when there is one; `is_new` when no record of
    /// this peer is stored (a corrupt one was already deleted into `staged`).
    pub(crate) fn write_encoded(
        &self,
        view: &dyn ReadView,
        staged: &mut StagedWrite,
        is_new: bool,
        replaced: Option<(Replaced, u64)>,
        record: &PeerRecord,
        encoded: Vec<u8>,
    ) -> Result<()> {
        let id = &record.peer_id;
        let new_len = encoded.len() as u64;
        let replaced = replaced.map(|(old, len)| {
            Self::uncount(staged, len);
            old
        });
        let fits = |c: &Counters| {
            let peers_ok = !is_new || c.peers < self.settings.max_peers;
            let bytes_ok = self
                .settings
                .max_bytes
                .is_none_or(|max| c.bytes.saturating_add(new_len) <= max);
            peers_ok && bytes_ok
        };
        if !fits(&staged.counters) {
            if !self.settings.evict_when_full {
                return Err(Error::QuotaExceeded(self.quota_hit(
                    &staged.counters,
                    is_new,
                    new_len,
                )));
            }
            let evicted = self.delete_least_recent(view, staged, Some(id), |c, _| fits(c))?;
            if !fits(&staged.counters) {
                return Err(Error::QuotaExceeded(self.quota_hit(
                    &staged.counters,
                    is_new,
                    new_len,
                )));
            }
            warn!(evicted, for_peer = %id, "peerbook full: evicted least recently seen peers");
        }
        Self::put_record_into(staged, record, encoded, replaced.as_ref());
        Ok(())
    }

    /// Take one record of `len` bytes out of the staged counters.
    fn uncount(staged: &mut StagedWrite, len: u64) {
        staged.counters.peers = staged.counters.peers.saturating_sub(1);
        staged.counters.bytes = staged.counters.bytes.saturating_sub(len);
    }

    fn quota_hit(&self, c: &Counters, is_new: bool, new_len: u64) -> Quota {
        match self.settings.max_bytes {
            Some(limit) if !(is_new && c.peers >= self.settings.max_peers) => Quota::Bytes {
                limit,
                needed: c.bytes.saturating_add(new_len),
            },
            _ => Quota::Peers {
                limit: self.settings.max_peers,
            },
        }
    }

    /// Put `record` (already encoded as `encoded`), its index entries and the
    /// counters into `staged`. No checks: callers validate and enforce quotas.
    ///
    /// `replaced` is the stored record this one replaces, already taken out of the
    /// counters but with its index entries still in place: an entry that moved is
    /// deleted, one whose key and value did not change is neither deleted nor put
    /// again, one whose key stays but whose value changed (a by_last_seen or rank
    /// entry whose hint changed within its time and run) is put over, and the
    /// record itself is overwritten by the put.
    pub(crate) fn put_record_into(
        staged: &mut StagedWrite,
        record: &PeerRecord,
        encoded: Vec<u8>,
        replaced: Option<&Replaced>,
    ) {
        // The entries of `keys::index_entries`, compared by what they are made of
        // (the time and the score hint, whose encoding is one-to-one) so that an
        // entry that stays is never built, for the old record nor the new one.
        let id = record.peer_id.as_bytes();
        let hint = ScoreHint::of(record);
        let old = replaced.map(|r| (r.last_seen, ScoreHint::of_replaced(r)));
        if old != Some((record.last_seen, hint)) {
            // by_last_seen and the rank entry hold the hint at a key of the time
            // (and, for the rank entry, of the hint's run): a key that moved is
            // deleted; a key that stays takes the new hint
            let encoded = hint.encode();
            if let Some((last_seen, _)) = old.filter(|&(t, _)| t != record.last_seen) {
                let key = keys::last_seen_key(last_seen, id);
                staged.batch.delete(Space::ByLastSeen, key);
            }
            let key = keys::last_seen_key(record.last_seen, id);
            staged.batch.put(Space::ByLastSeen, key, encoded.clone());
            let run = hint.rank_byte();
            if let Some((last_seen, old_hint)) = old {
                let old_run = old_hint.rank_byte();
                if (last_seen, old_run) != (record.last_seen, run) {
                    let key = keys::rank_key(old_run, last_seen, id);
                    staged.batch.delete(Space::ByQuality, key);
                }
            }
            let key = keys::rank_key(run, record.last_seen, id);
            staged.batch.put(Space::ByQuality, key, encoded);
        }
        let old_score = old.map(|(_, h)| h.quality_score);
        if old_score != Some(hint.quality_score) {
            if let Some(score) = old_score {
                staged
                    .batch
                    .delete(Space::ByQuality, keys::quality_key(score, id));
            }
            let key = keys::quality_key(hint.quality_score, id);
            staged.batch.put(Space::ByQuality, key, Vec::new());
        }
        staged.counters.peers = staged.counters.peers.saturating_add(1);
        staged.counters.bytes = staged.counters.bytes.saturating_add(encoded.len() as u64);
        staged
            .batch
            .put(Space::Peers, record.peer_id.as_bytes().to_vec(), encoded);
    }

    /// Delete the least recently seen peers (never `keep`) into `staged`, oldest first,
    /// until `enough(counters, deleted so far)`. Returns how many were deleted. The
    /// one LRU walk behind both eviction and [`cleanup_lru`](Self::cleanup_lru).
    pub(crate) fn delete_least_recent(
        &self,
        view: &dyn ReadView,
        staged: &mut StagedWrite,
        keep: Option<&PeerId>,
        enough: impl Fn(&Counters, usize) -> bool,
    ) -> Result<usize> {
        let mut deleted = 0;
        // by_last_seen sorts newest first: the oldest are at the end, walked backward
        let mut cursor: Bound<Vec<u8>> = Bound::Unbounded;
        while !enough(&staged.counters, deleted) {
            let page = self.index_page(
                view,
                Space::ByLastSeen,
                Bound::Unbounded,
                cursor,
                Direction::Reverse,
                64,
            )?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for key in &page {
                if enough(&staged.counters, deleted) {
                    break;
                }
                let Some((_, raw_id)) = keys::split_last_seen_key(key) else {
                    continue;
                };
                let Ok(id) = PeerId::from_bytes(&raw_id) else {
                    continue;
                };
                // skip the kept peer, and stale duplicate entries of a peer already deleted
                let queued = staged
                    .batch
                    .ops()
                    .iter()
                    .any(|op| op.space() == Space::Peers && op.key() == id.as_bytes());
                if Some(&id) == keep || queued {
                    continue;
                }
                if let Some(existing) = self.load_existing(view, &id)? {
                    self.delete_record(view, staged, &id, &existing)?;
                    deleted += 1;
                }
            }
            cursor = Bound::Excluded(last);
        }
        Ok(deleted)
    }

    /// Delete a stored record and its index entries into `staged`.
    pub(crate) fn delete_record(
        &self,
        view: &dyn ReadView,
        staged: &mut StagedWrite,
        id: &PeerId,
        existing: &Existing,
    ) -> Result<()> {
        match existing {
            Existing::Decoded { record, .. } => {
                for (space, key, _) in keys::index_entries(record) {
                    staged.batch.delete(space, key);
                }
            }
            Existing::Corrupt { .. } => {
                // The record cannot tell its index keys: find them by their id
                // suffix (by_quality: its quality keys and its rank keys).
                let of = keys::KeysOf::new(id.as_bytes());
                for space in keys::INDEX_SPACES {
                    let mut found = Vec::new();
                    view.scan(space, KeyRange::all(), Direction::Forward, &mut |k, _| {
                        if of.holds(space, k) {
                            found.push(k.to_vec());
                        }
                        ControlFlow::Continue(())
                    })?;
                    for key in found {
                        staged.batch.delete(space, key);
                    }
                }
            }
        }
        staged.batch.delete(Space::Peers, id.as_bytes().to_vec());
        Self::uncount(staged, existing.len());
        Ok(())
    }

    /// Write `staged` (with its counters) atomically, releasing the writer lock;
    /// returns once the batch is as durable as the book's durability says.
    ///
    /// With [`Durability::Sync`] the batch goes through the group commit: applied
    /// (later writers see it and the in-memory counters follow) under the lock,
    /// then synced together with the batches of concurrent writers after it.
    pub(crate) fn commit(&self, mut guard: WriterGuard<'_>, staged: StagedWrite) -> Result<()> {
        if self.settings.durability != Durability::Sync {
            return self.commit_locked(&mut guard, staged);
        }
        let Some(batch) = Self::with_counters(&guard, staged.batch, &staged.counters) else {
            return self.settle(guard);
        };
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::NeedsReopen);
        }
        let seq = self.group.apply(batch)?;
        *guard = staged.counters;
        drop(guard);
        self.group.wait(seq, |group| self.write_group(group))
    }

    /// Release the writer lock of a writer that decided from its view without a
    /// batch of its own ("not there", nothing to change), once every pending batch
    /// that view held is durable: its answer then never rests on a batch that is
    /// refused (it gets the refusal instead) or not yet synced. Drop the view first.
    pub(crate) fn settle(&self, guard: WriterGuard<'_>) -> Result<()> {
        let pending = self.group.pending();
        drop(guard);
        match pending {
            Some(seq) => self.group.wait(seq, |group| self.write_group(group)),
            None => Ok(()),
        }
    }

    /// Write `staged` (with its counters) atomically while holding the writer lock;
    /// on success the in-memory counters follow.
    pub(crate) fn commit_locked(
        &self,
        guard: &mut WriterGuard<'_>,
        staged: StagedWrite,
    ) -> Result<()> {
        let Some(batch) = Self::with_counters(guard, staged.batch, &staged.counters) else {
            return Ok(());
        };
        self.write_batch(batch)?;
        **guard = staged.counters;
        Ok(())
    }

    /// `batch` plus the counters when they changed; `None` when nothing is to write.
    fn with_counters(
        committed: &Counters,
        mut batch: WriteBatch,
        counters: &Counters,
    ) -> Option<WriteBatch> {
        if counters != committed {
            batch.put(Space::Meta, META_COUNTERS.to_vec(), counters.encode());
        }
        (!batch.is_empty()).then_some(batch)
    }
}

#[cfg(test)]
#[path = "write_tests.rs"]
mod tests;
