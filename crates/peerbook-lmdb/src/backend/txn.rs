//! Transactions: reads under the map guard, batch checks, the write commit loop
//! (growing the map on `MDB_MAP_FULL`), syncs, scans and the [`LmdbView`].

use std::ops::{Bound, ControlFlow};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use heed::{MdbError, RoTxn, RwTxn, WithoutTls};
use peerbook::backend::{
    BackendError, Direction, Durability, KeyRange, Op, ReadView, Space, Visit, WriteBatch,
};

use crate::error::engine;
use crate::value::Layout;

use super::{Db, Handle, LmdbBackend, Shared};

/// How an attempt to commit a write transaction failed.
pub(super) enum Failed {
    /// Before the commit: the transaction was aborted, nothing reached the file.
    Aborted(heed::Error),
    /// Anything else (beginning the transaction, the commit itself): treated as of
    /// unknown outcome (`MDB_MAP_FULL` excepted, see `commit`).
    Other(heed::Error),
}

impl LmdbBackend {
    /// Runs `f` in a read transaction, under the shared map guard.
    pub(super) fn read<R>(
        &self,
        f: impl FnOnce(&Handle, &RoTxn<'_, WithoutTls>) -> Result<R, BackendError>,
    ) -> Result<R, BackendError> {
        let _shared = self.shared()?;
        let handle = self.handle()?;
        let txn = handle.env.read_txn().map_err(|e| self.err(e))?;
        let out = f(&handle, &txn);
        // The transaction ends before the guard is released (locals drop in reverse
        // order; explicit here for the reader).
        drop(txn);
        out
    }

    /// Refuses, before any transaction starts, what LMDB would refuse in a batch.
    pub(super) fn check_batch(&self, batch: &WriteBatch) -> Result<(), BackendError> {
        for op in batch.ops() {
            if let Op::Put { space, key, .. } = op {
                if key.is_empty() {
                    return Err(engine(format!(
                        "LMDB cannot store an empty key (put in {space}); nothing was written"
                    ))
                    .not_applied());
                }
                if key.len() > self.max_key_size {
                    return Err(engine(format!(
                        "a key of {} bytes (put in {space}) exceeds LMDB's maximum key size of \
                         {} bytes; nothing was written",
                        key.len(),
                        self.max_key_size
                    ))
                    .not_applied());
                }
            }
        }
        Ok(())
    }

    /// Runs `fill` in one write transaction and commits it, growing the map and
    /// retrying from scratch while LMDB reports `MDB_MAP_FULL` and the cap allows;
    /// then syncs if `durability` is `Sync`.
    ///
    /// A write from inside a scan visitor of this same backend is refused: the visitor
    /// holds the map guard shared, and waiting there for the writer mutex could
    /// deadlock against a writer that waits for the guard to grow the map.
    ///
    /// Errors met before the commit (the refusal above, `fill` failing, the map full
    /// at its cap) are [`BackendError::NotApplied`]: the transaction was aborted
    /// before anything reached the file. A failed commit or sync is not marked.
    pub(super) fn commit(
        &self,
        durability: Durability,
        mut fill: impl FnMut(&Handle, &mut RwTxn<'_>) -> heed::Result<()>,
    ) -> Result<(), BackendError> {
        if self.held_by_this_thread() {
            return Err(engine(
                "a write to an LMDB book cannot start inside a scan visitor of the same book; \
                 collect what the scan finds and write after it returns",
            )
            .not_applied());
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.check_synced()?;
        loop {
            let shared = self.shared()?;
            // No resize can happen while we hold the writer mutex and the guard.
            let observed = self.handle()?.env.info().map_size;
            match self.try_commit(&mut fill) {
                Ok(()) => {
                    if durability == Durability::Sync {
                        self.sync()?;
                    }
                    return Ok(());
                }
                // `MDB_MAP_FULL` comes from allocating a page, in `fill` or in the
                // commit before it writes anything (LMDB then aborts the transaction):
                // nothing of the batch remains.
                Err(Failed::Aborted(heed::Error::Mdb(MdbError::MapFull)))
                | Err(Failed::Other(heed::Error::Mdb(MdbError::MapFull))) => {
                    drop(shared);
                    self.grow(observed).map_err(|e| match e {
                        full @ BackendError::Full { .. } => full.not_applied(),
                        other => other,
                    })?;
                }
                Err(Failed::Aborted(e)) => return Err(self.err(e).not_applied()),
                Err(Failed::Other(e)) => return Err(self.err(e)),
            }
        }
    }

    /// One attempt of [`commit`](Self::commit): a write transaction, filled and
    /// committed.
    pub(super) fn try_commit(
        &self,
        fill: &mut impl FnMut(&Handle, &mut RwTxn<'_>) -> heed::Result<()>,
    ) -> Result<(), Failed> {
        let Ok(handle) = self.handle() else {
            return Err(Failed::Other(heed::Error::Mdb(MdbError::Panic)));
        };
        let mut txn = handle.env.write_txn().map_err(Failed::Other)?;
        match fill(&handle, &mut txn) {
            Ok(()) => txn
                .commit()
                .inspect_err(|e| {
                    // `mdb_txn_commit` writes the pages and syncs them (the meta page
                    // after). Failing there (bar a full map, which fails before any
                    // write), it may have had an fsync fail, and after a failed fsync
                    // the kernel may have dropped dirty pages and will not report it
                    // again: refuse every later write, as after a failed `force_sync`.
                    if !matches!(e, heed::Error::Mdb(MdbError::MapFull)) {
                        self.sync_failed.store(true, Ordering::Release);
                    }
                })
                .map_err(Failed::Other),
            Err(e) => {
                txn.abort();
                Err(Failed::Aborted(e))
            }
        }
    }

    /// `mdb_env_sync(force)`; a failure refuses every later write (as the file
    /// backend does): after a failed fsync the kernel may have dropped dirty pages.
    pub(super) fn sync(&self) -> Result<(), BackendError> {
        self.handle()?.env.force_sync().map_err(|e| {
            self.sync_failed.store(true, Ordering::Release);
            self.err(e)
        })
    }

    pub(super) fn check_synced(&self) -> Result<(), BackendError> {
        if self.sync_failed.load(Ordering::Acquire) {
            return Err(engine(format!(
                "a commit or fsync of the LMDB book at {} failed; writes are refused until \
                 it is reopened",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// One stored value of `space` at `key` in `txn`, decoded from `layout`.
    pub(super) fn get_in(
        &self,
        dbs: &[Db; 4],
        layout: Layout,
        txn: &RoTxn<'_, WithoutTls>,
        space: Space,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, BackendError> {
        if !self.storable_key(key) {
            return Ok(None);
        }
        match dbs[space.index()].get(txn, key) {
            Ok(Some(stored)) => Ok(Some(layout.decode(key, stored)?.into_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    /// The body of every scan: visit `range` of `space` in `txn`, each value decoded
    /// from `layout`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn scan_in(
        &self,
        dbs: &[Db; 4],
        layout: Layout,
        txn: &RoTxn<'_, WithoutTls>,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        let Some(bounds) = lmdb_bounds(range) else {
            return Ok(());
        };
        let db = &dbs[space.index()];
        let mut visit = |entry: heed::Result<(&[u8], &[u8])>| {
            let (key, stored) = entry.map_err(|e| self.err(e))?;
            let value = layout.decode(key, stored)?;
            Ok::<_, BackendError>(visitor(key, &value))
        };
        match direction {
            Direction::Forward => {
                for entry in db.range(txn, &bounds).map_err(|e| self.err(e))? {
                    if let ControlFlow::Break(()) = visit(entry)? {
                        break;
                    }
                }
            }
            Direction::Reverse => {
                for entry in db.rev_range(txn, &bounds).map_err(|e| self.err(e))? {
                    if let ControlFlow::Break(()) = visit(entry)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A [`ReadView`] of an [`LmdbBackend`]: one read transaction, begun and ended
/// inside a shared hold of the map lock (fields drop in order: the transaction
/// first). While a view lives, the map cannot grow (a writer that needs more room
/// waits for it), a clear waits for it, and its thread cannot write (refused, as
/// inside a scan visitor).
pub(super) struct LmdbView<'a> {
    pub(super) txn: RoTxn<'static, WithoutTls>,
    pub(super) dbs: [Db; 4],
    pub(super) layout: Layout,
    pub(super) _shared: Shared<'a>,
    pub(super) backend: &'a LmdbBackend,
}

impl ReadView for LmdbView<'_> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.backend
            .get_in(&self.dbs, self.layout, &self.txn, space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.backend.scan_in(
            &self.dbs,
            self.layout,
            &self.txn,
            space,
            range,
            direction,
            visitor,
        )
    }
}

/// A lower and an upper bound, as heed's range iterators take them.
pub(super) type LmdbBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The bounds to hand LMDB for `range`, or `None` when no stored key can match.
///
/// LMDB holds no empty key and refuses to seek to one: an empty lower bound is no
/// bound at all, an empty upper bound leaves nothing.
pub(super) fn lmdb_bounds(range: KeyRange<'_>) -> Option<LmdbBounds<'_>> {
    if range.is_empty() {
        return None;
    }
    let lower = match range.lower {
        Bound::Included([]) | Bound::Excluded([]) => Bound::Unbounded,
        other => other,
    };
    if let Bound::Included([]) | Bound::Excluded([]) = range.upper {
        return None;
    }
    Some((lower, range.upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_bounds() {
        let all = KeyRange::all();
        assert_eq!(lmdb_bounds(all), Some((Bound::Unbounded, Bound::Unbounded)));
        let from_empty = KeyRange {
            lower: Bound::Excluded(b""),
            upper: Bound::Included(b"z"),
        };
        assert_eq!(
            lmdb_bounds(from_empty),
            Some((Bound::Unbounded, Bound::Included(&b"z"[..])))
        );
        let to_empty = KeyRange {
            lower: Bound::Unbounded,
            upper: Bound::Included(b""),
        };
        assert_eq!(lmdb_bounds(to_empty), None);
        let inverted = KeyRange {
            lower: Bound::Included(b"b"),
            upper: Bound::Included(b"a"),
        };
        assert_eq!(lmdb_bounds(inverted), None);
    }
}
