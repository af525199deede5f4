//! The map guard and the memory map: which thread holds the guard ([`HELD`]),
//! shared holds ([`Shared`]), the handle behind it, and growing the map.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{PoisonError, RwLockReadGuard};

use peerbook::backend::BackendError;

use crate::error::engine;

use super::{Handle, LmdbBackend};

thread_local! {
    /// Ids of the backends whose map guard this thread holds, once per open read.
    ///
    /// It lets a read nested in a scan visitor (a `get` from inside `scan`) skip
    /// taking the guard again, which could deadlock behind a waiting resize, and lets
    /// writes refuse to start where they could deadlock (see [`LmdbBackend::commit`]).
    pub(super) static HELD: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

impl LmdbBackend {
    /// The environment and databases, read-locked. Call only under the map guard.
    pub(super) fn handle(&self) -> Result<HandleRef<'_>, BackendError> {
        let guard = self.handle.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(self.unusable());
        }
        Ok(HandleRef(guard))
    }

    /// Whether this thread is inside a read (a scan visitor) of this backend.
    pub(super) fn held_by_this_thread(&self) -> bool {
        HELD.try_with(|held| held.try_borrow().is_ok_and(|ids| ids.contains(&self.id)))
            .unwrap_or(false)
    }

    /// Takes the map guard shared (or notes a nested use if this thread holds it).
    pub(super) fn shared(&self) -> Result<Shared<'_>, BackendError> {
        let guard = if self.held_by_this_thread() {
            None
        } else {
            // The lock guards `()`: a poisoned lock protects nothing broken.
            Some(self.map_lock.read().unwrap_or_else(PoisonError::into_inner))
        };
        if self.broken.load(Ordering::Acquire) {
            return Err(engine(format!(
                "the LMDB map at {} could not be remapped after growing; close and reopen \
                 the book",
                self.path.display()
            )));
        }
        let registered = HELD
            .try_with(|held| {
                held.try_borrow_mut()
                    .map(|mut ids| ids.push(self.id))
                    .is_ok()
            })
            .unwrap_or(false);
        Ok(Shared {
            _guard: guard,
            id: self.id,
            registered,
        })
    }

    /// Grows the map from `observed` bytes: doubles it, up to the cap. Called with the
    /// writer mutex held and no transaction open by this thread.
    pub(super) fn grow(&self, observed: usize) -> Result<(), BackendError> {
        if observed >= self.max_map_size {
            return Err(BackendError::full(format!(
                "the LMDB book at {} needs more than its max_map_size of {} bytes; the batch \
                 was not written (raise LmdbOptions::max_map_size)",
                self.path.display(),
                self.max_map_size
            )));
        }
        let target = round_up(
            observed
                .saturating_mul(2)
                .max(observed.saturating_add(self.page_size)),
            self.page_size,
        )
        .min(self.max_map_size);
        let _exclusive = self
            .map_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.broken.load(Ordering::Acquire) {
            return Err(engine("the LMDB map is unusable after a failed resize"));
        }
        let handle = self.handle()?;
        // SAFETY: LMDB allows `mdb_env_set_mapsize` on an open environment only while
        // no transaction is active in the process (it unmaps and remaps the file), and
        // nothing may read the map meanwhile. Here:
        // - every transaction this backend begins after `open` returned lives inside a
        //   shared hold of `map_lock`: read transactions in `read` and `view` (a view
        //   owns its guard and drops its transaction first), write transactions in
        //   `commit` (the only three places that begin one; each ends the transaction
        //   before releasing the guard), and the transaction of `open` ended before the
        //   backend existed. We hold `map_lock` exclusively, so no transaction is open;
        // - `mdb_env_sync` and `mdb_env_info`, which read the meta pages through the
        //   map, also only run under the shared guard (`flush`, `commit`, `map_size`,
        //   `drop`), so they cannot race the remap;
        // - the only transactions that outlive a borrow of the `Env` are the views'
        //   static read transactions (over a clone of the `Env`); each view owns a
        //   shared hold of `map_lock` and drops its transaction before that hold, so
        //   none is open while we hold `map_lock` exclusively;
        // - no other process has the environment open: the directory lock, taken
        //   before the environment opened, excludes every other handle;
        // - `target` is a multiple of the OS page size, as heed requires.
        let resized = unsafe { handle.env.resize(target) };
        resized.map_err(|e| {
            // LMDB unmaps the old map before mapping the new one: after a failure the
            // environment has no valid map and must not be used again.
            self.broken.store(true, Ordering::Release);
            engine(format!(
                "growing the LMDB map at {} to {target} bytes failed ({}); close and reopen \
                 the book",
                self.path.display(),
                self.err(e)
            ))
        })
    }
}

/// A read lock of [`LmdbBackend::handle`], known to hold an open environment.
pub(super) struct HandleRef<'a>(RwLockReadGuard<'a, Option<Handle>>);

impl std::ops::Deref for HandleRef<'_> {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        match &*self.0 {
            Some(handle) => handle,
            // `LmdbBackend::handle` builds a HandleRef only over `Some`.
            None => unreachable!("HandleRef over a closed environment"),
        }
    }
}

/// A shared hold of a backend's map guard, registered in [`HELD`] for its lifetime.
pub(super) struct Shared<'a> {
    /// `None` when the thread already held the guard (a nested read).
    _guard: Option<RwLockReadGuard<'a, ()>>,
    id: u64,
    registered: bool,
}

impl Drop for Shared<'_> {
    fn drop(&mut self) {
        if self.registered {
            let id = self.id;
            let _ = HELD.try_with(|held| {
                if let Ok(mut ids) = held.try_borrow_mut() {
                    if let Some(pos) = ids.iter().rposition(|held_id| *held_id == id) {
                        ids.swap_remove(pos);
                    }
                }
            });
        }
    }
}

/// `n` rounded up to a multiple of `page` (or the largest multiple if that overflows).
pub(super) fn round_up(n: usize, page: usize) -> usize {
    n.div_ceil(page)
        .checked_mul(page)
        .unwrap_or_else(|| round_down(usize::MAX, page))
}

/// `n` rounded down to a multiple of `page`.
pub(super) fn round_down(n: usize, page: usize) -> usize {
    n - n % page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(round_up(1, 4096), 4096);
        assert_eq!(round_up(4096, 4096), 4096);
        assert_eq!(round_up(0, 4096), 0);
        assert_eq!(round_up(usize::MAX, 4096) % 4096, 0);
        assert_eq!(round_down(8191, 4096), 4096);
    }
}
