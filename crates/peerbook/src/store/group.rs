//! Group commit: concurrent [`Durability::Sync`](crate::Durability::Sync) writers
//! share one synced backend write.
//!
//! A writer builds its batch under the writer lock as before, then *applies* it
//! here: the batch joins the queue of pending batches and its operations go into an
//! [`Overlay`] that the next writers' read-modify-writes read on top of the backend
//! (see [`OverlayView`]). The writer then releases the writer lock and waits until
//! its batch is durable. The first waiter that finds no leader becomes the leader:
//! it takes every queued batch, joins them in order into ONE [`WriteBatch`] and
//! writes it with `Durability::Sync`; the writers that queued meanwhile wait on a
//! [`Condvar`] and the next leader takes their batches.
//!
//! A new leader first *lingers* for the writers the last group released: when
//! that group held `n` batches, the leader waits (without the writer lock) until `n`
//! batches were applied since it landed, or until half the last group write's time
//! (at most [`MAX_LINGER`]) passed *since it landed*, whichever comes first, and only
//! then takes the queue. Without it the
//! next leader takes the queue the moment a group lands, before the writers that
//! group released could queue again, so `t` busy writers split into two groups of
//! about `t / 2` that take turns; lingering lets them share one sync. A lone writer
//! never lingers (its group held one batch: its own next one is already applied),
//! a writer arriving after a burst has ended finds the budget spent, and a
//! [`drain`](GroupCommit::drain), under the writer lock, never lingers and ends a
//! linger in progress (no batch can be applied while it holds the lock). So:
//!
//! - a writer returns `Ok` only once a synced write that holds its batch returned;
//!   one that answers from the pending batches without a batch of its own ("not
//!   there", nothing to change) waits until they are durable (refused: it gets the
//!   refusal), so no answer rests on a batch that never lands;
//! - each group is one atomic backend batch, and groups land in queue order, so a
//!   crash or power cut keeps a prefix of the groups (every engine already promises
//!   that a batch lands whole or not at all): no backend needs a new contract, and
//!   an engine whose unsynced log can lose a middle record (RocksDB's WAL) or whose
//!   unsynced commits can corrupt (LMDB's `MDB_NOSYNC`) never holds an unsynced
//!   batch of ours;
//! - a failed group write poisons the book and fails every waiter still waiting
//!   (the leader gets the engine's error, the others [`Error::NeedsReopen`]);
//! - except a group write the backend refused before applying anything
//!   ([`BackendError::NotApplied`], e.g. LMDB's map full at its cap): the engine
//!   then holds exactly the durable batches, so every pending batch (that group and
//!   the ones queued after it, which were built on top of it) is *rejected* with a
//!   backend error, nothing is poisoned, and the next writer to take the writer
//!   lock [rolls back](GroupCommit::take_rollback) the overlay and the counters to
//!   the durable state. A batch built on the stale overlay by a writer that held the
//!   writer lock across the failure is refused at [`apply`](GroupCommit::apply);
//! - readers (`get_peer`, queries, views) read the backend only, so they see a write
//!   once it is durable, never a pending one.
//!
//! Every other backend mutation (flush, clear, repair, key rotation, open) first
//! [drains](GroupCommit::drain) the queue under the writer lock, so those never run
//! beside a group write and see every applied batch.
//!
//! # Reading ahead of the writer lock
//!
//! A read-modify-write of one record may read that record *before* it takes the
//! writer lock ([`read_ahead`](GroupCommit::read_ahead)), so the engine's point
//! read (tens of microseconds on RocksDB right after a thread woke up) runs beside
//! the other writers instead of inside the serial section. Under the lock the
//! writer keeps that read only if it [still holds](GroupCommit::still_current);
//! otherwise it reads again under the lock, as every writer did before. The read
//! ahead takes, in this order:
//!
//! 1. under the overlay lock (which [`apply`](GroupCommit::apply) holds while it
//!    numbers a batch and puts it into the overlay): the seq `s` of the last
//!    applied batch, the *generation* (see below), and the key's pending operation
//!    if the overlay holds one: then that is the value;
//! 2. else the backend's plain point read of the key (one key: any engine reads it
//!    whole, without a snapshot).
//!
//! The value a writer under the lock would read is the key's state after every
//! batch up to the last applied one. The read ahead returns the state after every
//! batch up to `s`, or a later one: the overlay holds the latest pending operation
//! of each key, and an entry is pruned only once its batch is durable (by the
//! leader whose group landed it, or by the next view that finds it durable), so a key
//! with no entry in step 1 was last written by a batch already in the backend when
//! step 2 reads it (a later group may land meanwhile: that only makes the value
//! newer than `s`, and that group's batches have seqs above `s`). So under the lock
//! the read still holds when no batch after `s` wrote the key: every applied batch
//! records the [`Space::Peers`] keys it writes with its seq in a bounded ring; a
//! read at a seq below that of a key the ring has already dropped is not trusted.
//!
//! Everything else that changes the backend or the overlay outside
//! [`apply`](GroupCommit::apply) bumps the generation before it releases the writer
//! lock: every direct backend write (under the writer lock, after a drain: the
//! store's `guarded`, *after* the write, so a read ahead that took the generation
//! after the bump reads the backend after the write) and a
//! [rollback](GroupCommit::take_rollback) of rejected batches (a read ahead may have
//! taken one of them from the overlay). A read taken under another generation is not
//! trusted. A batch rejected *after* a writer validated its read is refused at
//! [`apply`](GroupCommit::apply), exactly as for a read under the lock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use crate::backend::{BackendError, Op, ReadView, Space, WriteBatch};
use crate::error::{Error, Result};

mod overlay;

use overlay::{prune, Overlay, OverlayView};

/// The longest a leader lingers for released writers, however long the last group
/// write took (one slow fsync must not delay the next writes by half of it).
pub(crate) const MAX_LINGER: Duration = Duration::from_millis(5);

/// How long after a group landed the next leader may linger: half that group's
/// write time, at most [`MAX_LINGER`].
fn linger_budget(last_write: Duration) -> Duration {
    (last_write / 2).min(MAX_LINGER)
}

/// How many [`Space::Peers`] keys of the latest applied batches the group commit
/// remembers for [`still_current`](GroupCommit::still_current): with eight writers
/// a read ahead is a few dozen batches old at most; an older one is read again.
pub(crate) const RECENT_KEYS: usize = 1024;

/// What a [read ahead](GroupCommit::read_ahead) saw: the seq of the last applied
/// batch and the generation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReadMark {
    seq: u64,
    generation: u64,
}

/// The queue and the leader election of the group commit.
#[derive(Default)]
struct GroupState {
    /// Batches applied but not yet taken by a leader, in apply order.
    queue: Vec<WriteBatch>,
    /// The seq of the last applied batch (batches are numbered from 1).
    applied: u64,
    /// Every batch with a seq up to this one is durable.
    durable: u64,
    /// A leader is writing a group now.
    leading: bool,
    /// A group write failed: every waiter not yet durable fails.
    failed: bool,
    /// Seq ranges `(after, upto]` of batches rejected by a group write that applied
    /// nothing; their waiters fail, the book stays usable.
    rejected: Vec<(u64, u64)>,
    /// What the rejected batches' waiters are told (the refused group's error).
    refusal: String,
    /// A group write applied nothing and the overlay and counters still hold the
    /// rejected batches: no batch may be applied before the rollback.
    rollback: bool,
    /// `applied` when the last group landed.
    applied_at_landing: u64,
    /// How many batches the last group held: the writers it released, whom the
    /// next leader lingers for.
    released: u64,
    /// How long the last group write took (the bound of a leader's lingering).
    last_write: Duration,
    /// When the last group landed: a leader lingers until a budget after it.
    landed: Option<Instant>,
    /// Replaces [`linger_budget`] (tests).
    budget_override: Option<Duration>,
    /// A leader lingers: the apply that fills its group wakes it.
    lingering: bool,
    /// A drain waits under the writer lock: no apply can come, a leader stops lingering.
    draining: bool,
    /// How many times a leader lingered (tests).
    lingered: u64,
    /// How many times an apply woke a lingering leader (tests).
    apply_wakes: u64,
    /// How many reads ahead [`still_current`](GroupCommit::still_current) kept (tests).
    reads_kept: u64,
    /// Bumped by every change to the backend or the overlay other than an apply
    /// (see the [module docs](self#reading-ahead-of-the-writer-lock)).
    generation: u64,
    /// The [`Space::Peers`] keys the latest applied batches wrote, with their seq,
    /// oldest first; at most [`RECENT_KEYS`].
    recent: VecDeque<(u64, Vec<u8>)>,
    /// The highest seq whose keys left `recent`: a read ahead at a seq below it
    /// cannot be checked.
    forgotten: u64,
}

impl GroupState {
    fn is_rejected(&self, seq: u64) -> bool {
        self.rejected
            .iter()
            .any(|&(after, upto)| seq > after && seq <= upto)
    }

    /// A lingering leader stops: as many batches as the last group held were
    /// applied since it landed, or a rollback is due, or a drain began.
    fn linger_done(&self) -> bool {
        self.applied - self.applied_at_landing >= self.released || self.rollback || self.draining
    }

    /// The error a rejected batch's writer gets.
    fn rejection(&self) -> Error {
        Error::Backend(
            BackendError::Engine {
                engine: "peerbook group commit",
                message: format!(
                    "the group write this batch joined was refused before it applied \
                     anything ({}); nothing of it was written",
                    self.refusal
                ),
                source: None,
            }
            .not_applied(),
        )
    }
}

/// The group commit of one book; see the [module docs](self).
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<GroupState>,
    done: Condvar,
    /// A lingering leader waits on this one for applies.
    joined: Condvar,
    /// Touched under the book's writer lock (apply, writers' views), and briefly by
    /// [reads ahead](Self::read_ahead) of it and by a leader pruning the entries of
    /// the group it landed.
    overlay: Mutex<Overlay>,
    /// Runs once between a writer's read ahead and its taking the writer lock (tests).
    #[cfg(test)]
    after_read_ahead: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    /// How many writer views were opened (tests).
    #[cfg(test)]
    views: std::sync::atomic::AtomicU64,
}

/// Resets the leader flag if a leader's write unwinds, so waiters do not hang.
struct Leading<'a>(&'a GroupCommit);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut st = self.0.lock_state();
            st.leading = false;
            st.failed = true;
            self.0.done.notify_all();
        }
    }
}

impl GroupCommit {
    fn lock_state(&self) -> MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_overlay(&self) -> MutexGuard<'_, Overlay> {
        self.overlay.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `batch` and make it visible to later writers' views. Call under the
    /// writer lock. Returns its seq, for [`wait`](Self::wait); refused while a
    /// rollback is due (the batch was built on rejected batches).
    pub(crate) fn apply(&self, batch: WriteBatch) -> Result<u64> {
        let mut overlay = self.lock_overlay();
        let mut st = self.lock_state();
        if st.rollback {
            return Err(st.rejection());
        }
        let seq = st.applied + 1;
        for op in batch.ops() {
            let entry = match op {
                Op::Put { value, .. } => Some(value.clone()),
                Op::Delete { .. } => None,
            };
            overlay[op.space().index()].insert(op.key().to_vec(), (seq, entry));
            if op.space() == Space::Peers {
                if st.recent.len() == RECENT_KEYS {
                    if let Some((old, _)) = st.recent.pop_front() {
                        st.forgotten = old;
                    }
                }
                st.recent.push_back((seq, op.key().to_vec()));
            }
        }
        st.queue.push(batch);
        st.applied = seq;
        // wake a lingering leader only once its group is full: a wake-up per apply
        // cost a context switch per write (the leader checked and slept again)
        let wake = st.lingering && st.linger_done();
        st.apply_wakes += u64::from(wake);
        // ... and after the locks are released, so it does not wake only to wait
        // for the state lock this thread still holds
        drop(st);
        drop(overlay);
        if wake {
            self.joined.notify_one();
        }
        Ok(seq)
    }

    /// Read `key` of `space` ahead of the writer lock: its pending operation if the
    /// overlay holds one (`Some(value)`, `Some(None)` for a delete), else `None`:
    /// then the caller reads the backend, *after* this returns. The mark is for
    /// [`still_current`](Self::still_current); see the
    /// [module docs](self#reading-ahead-of-the-writer-lock).
    pub(crate) fn read_ahead(
        &self,
        space: Space,
        key: &[u8],
    ) -> (ReadMark, Option<Option<Vec<u8>>>) {
        let overlay = self.lock_overlay();
        let mark = {
            let st = self.lock_state();
            ReadMark {
                seq: st.applied,
                generation: st.generation,
            }
        };
        let pending = overlay[space.index()].get(key).map(|(_, v)| v.clone());
        (mark, pending)
    }

    /// Under the writer lock: whether a [read ahead](Self::read_ahead) of the
    /// [`Space::Peers`] key `key` marked `mark` still reads what a read now would:
    /// no batch applied after it wrote the key and nothing else changed the backend
    /// or the overlay since.
    pub(crate) fn still_current(&self, mark: ReadMark, key: &[u8]) -> bool {
        let mut st = self.lock_state();
        if st.generation != mark.generation || st.forgotten > mark.seq {
            return false;
        }
        let current = !st
            .recent
            .iter()
            .rev()
            .take_while(|(seq, _)| *seq > mark.seq)
            .any(|(_, k)| k == key);
        st.reads_kept += u64::from(current);
        current
    }

    /// Run `hook` once, in the next writer between its read ahead and its taking
    /// the writer lock (tests).
    #[cfg(test)]
    pub(crate) fn set_after_read_ahead(&self, hook: impl FnOnce() + Send + 'static) {
        *self.after_read_ahead.lock().unwrap() = Some(Box::new(hook));
    }

    /// Run the hook [`set_after_read_ahead`](Self::set_after_read_ahead) set, if any.
    #[cfg(test)]
    pub(crate) fn after_read_ahead(&self) {
        let hook = self.after_read_ahead.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Record a change to the backend outside the group commit (a direct write, a
    /// clear), once it is done and before the writer lock is released: reads ahead
    /// taken before it are no longer trusted.
    pub(crate) fn bump_generation(&self) {
        self.lock_state().generation += 1;
    }

    /// The seq of the last applied batch while it is not settled (`None` once every
    /// applied batch is durable or rolled back): what a writer that read the pending
    /// batches and answers without a batch of its own waits for.
    pub(crate) fn pending(&self) -> Option<u64> {
        let st = self.lock_state();
        (st.applied > st.durable).then_some(st.applied)
    }

    /// After a group write that applied nothing: forget the rejected batches (the
    /// overlay empties, every seq so far counts as settled) and return `true`, so the
    /// caller, holding the writer lock, reloads the counters from the backend.
    /// `false` when no rollback is due.
    pub(crate) fn take_rollback(&self) -> bool {
        let mut overlay = self.lock_overlay();
        let mut st = self.lock_state();
        if !st.rollback || st.leading {
            return false;
        }
        st.rollback = false;
        st.queue.clear();
        st.durable = st.applied;
        // a read ahead may hold a rejected batch's value from the overlay
        st.generation += 1;
        overlay.iter_mut().for_each(BTreeMap::clear);
        true
    }

    /// Wait until the batch `seq` is durable, leading group writes when no one else
    /// does; `write` is the synced backend write of a group: on error it says whether
    /// the backend applied nothing (`true`; else it poisoned the book). Call WITHOUT
    /// the writer lock, except from [`drain`](Self::drain).
    pub(crate) fn wait(
        &self,
        seq: u64,
        write: impl Fn(WriteBatch) -> std::result::Result<(), (Error, bool)>,
    ) -> Result<()> {
        self.wait_lingering(seq, true, write)
    }

    /// [`wait`](Self::wait); a leader lingers for the writers the last group
    /// released only when `linger` (never under the writer lock: no one could apply).
    fn wait_lingering(
        &self,
        seq: u64,
        linger: bool,
        write: impl Fn(WriteBatch) -> std::result::Result<(), (Error, bool)>,
    ) -> Result<()> {
        let mut st = self.lock_state();
        loop {
            if st.is_rejected(seq) {
                return Err(st.rejection());
            }
            if st.durable >= seq {
                return Ok(());
            }
            if st.failed {
                return Err(Error::NeedsReopen);
            }
            if st.leading {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leading = true;
            if linger {
                st = self.linger(st);
            }
            let batches = std::mem::take(&mut st.queue);
            let upto = st.applied;
            drop(st);
            let held = batches.len() as u64;
            let started = Instant::now();
            let outcome = {
                let _leading = Leading(self);
                let mut group = WriteBatch::new();
                for batch in batches {
                    group.extend(batch);
                }
                write(group)
            };
            st = self.lock_state();
            st.leading = false;
            st.last_write = started.elapsed();
            let outcome = match outcome {
                Ok(()) => {
                    st.durable = upto;
                    st.applied_at_landing = st.applied;
                    st.released = held;
                    st.landed = Some(Instant::now());
                    Ok(())
                }
                Err((e, true)) => {
                    // nothing applied: reject this group and every batch after it
                    let (after, upto) = (st.durable, st.applied);
                    st.rejected.push((after, upto));
                    st.refusal = e.to_string();
                    st.queue.clear();
                    st.rollback = true;
                    Err(e)
                }
                Err((e, false)) => {
                    st.failed = true;
                    Err(e)
                }
            };
            // Wake the waiters once the state lock is free: woken under it, each
            // would wait again for the lock, and get it one after another (every
            // unlock wakes one). The leader's own batch is settled either way.
            drop(st);
            self.done.notify_all();
            if outcome.is_ok() {
                // the landed entries, now in the backend (writers that open no view
                // never prune; see `writer_view`). Skipped while a view holds the
                // overlay (a long scan under the writer lock: an import, a cleanup):
                // this leader's data is durable and must not wait for it, and the
                // entries left are durable ones, equal to the backend's, which the
                // next leader's prune or `writer_view` removes.
                let overlay = match self.overlay.try_lock() {
                    Ok(overlay) => Some(overlay),
                    Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
                    Err(TryLockError::WouldBlock) => None,
                };
                if let Some(mut overlay) = overlay {
                    prune(&mut overlay, upto);
                }
            }
            return outcome;
        }
    }

    /// A new leader's wait for the writers the last group released to queue again:
    /// until as many batches as that group held were applied since it landed, or
    /// the linger budget after its landing passed, or a drain began (see the
    /// [module docs](self)).
    fn linger<'a>(&'a self, mut st: MutexGuard<'a, GroupState>) -> MutexGuard<'a, GroupState> {
        let Some(landed) = st.landed else {
            return st;
        };
        if st.released <= 1 || st.draining {
            return st;
        }
        let budget = st
            .budget_override
            .unwrap_or_else(|| linger_budget(st.last_write));
        let deadline = landed + budget;
        if Instant::now() >= deadline {
            return st;
        }
        st.lingering = true;
        st.lingered += 1;
        while !st.linger_done() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .joined
                .wait_timeout(st, deadline - now)
                .map_or_else(|e| e.into_inner().0, |(st, _)| st);
        }
        st.lingering = false;
        st
    }

    /// Make every applied batch durable (call under the writer lock, so no batch is
    /// applied meanwhile): afterwards the queue is empty, no leader writes, and the
    /// backend holds every applied batch.
    pub(crate) fn drain(
        &self,
        write: impl Fn(WriteBatch) -> std::result::Result<(), (Error, bool)>,
    ) -> Result<()> {
        let (applied, durable) = {
            let st = self.lock_state();
            (st.applied, st.durable)
        };
        if applied > durable {
            {
                let mut st = self.lock_state();
                st.draining = true;
                if st.lingering {
                    self.joined.notify_one();
                }
            }
            let drained = self.wait_lingering(applied, false, write);
            self.lock_state().draining = false;
            drained?;
        }
        // Only the spaces that hold entries: clearing an empty map still takes it
        // apart (about 30 instructions each, on every Buffered write).
        self.lock_overlay()
            .iter_mut()
            .filter(|space| !space.is_empty())
            .for_each(BTreeMap::clear);
        Ok(())
    }

    /// A view for a writer under the writer lock: `base` (taken by `open_base` after
    /// the overlay is pruned) with the pending batches on top.
    ///
    /// Entries of durable batches are pruned first; the durable mark is read before
    /// the backend view is taken, so every pruned entry is in it. Entries kept may
    /// be in the view too (a group may land meanwhile): putting the latest pending
    /// operation of a key over a state that already holds it changes nothing.
    pub(crate) fn writer_view<'a>(
        &'a self,
        open_base: impl FnOnce() -> std::result::Result<Box<dyn ReadView + 'a>, BackendError>,
    ) -> std::result::Result<Box<dyn ReadView + 'a>, BackendError> {
        #[cfg(test)]
        self.views
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut overlay = self.lock_overlay();
        if overlay.iter().any(|s| !s.is_empty()) {
            let durable = self.lock_state().durable;
            prune(&mut overlay, durable);
        }
        let base = open_base()?;
        if overlay.iter().all(BTreeMap::is_empty) {
            return Ok(base);
        }
        Ok(Box::new(OverlayView { base, overlay }))
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
