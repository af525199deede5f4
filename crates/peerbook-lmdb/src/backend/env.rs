//! The environment's files: opening the environment with its four databases, and
//! the compacted-copy swap of `data.mdb` that ends a clear.

use std::convert::Infallible;
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{PoisonError, RwLockWriteGuard};

use heed::types::Bytes;
use heed::{CommitOrAbort, CompactionOption, Database, EnvFlags, EnvOpenOptions};
use peerbook::backend::{BackendError, Space};

use crate::error::{engine, from_heed_at_open, from_io};
use crate::options::LmdbOptions;

use crate::value::{Layout, LAYOUT_DB, LAYOUT_KEY, LAYOUT_TAGGED};

use super::{Handle, LmdbBackend, CLEAR_FILE, DATA_FILE};

/// Opens the environment in `path` with a map of `map_size` bytes and creates (or
/// opens) the four databases. The caller holds the directory lock.
pub(super) fn open_env(
    path: &Path,
    options: &LmdbOptions,
    map_size: usize,
) -> Result<Handle, BackendError> {
    let mut builder = EnvOpenOptions::new().read_txn_without_tls();
    builder
        .map_size(map_size)
        // The four spaces and the backend's own settings (`value::LAYOUT_DB`).
        .max_dbs(Space::ALL.len() as u32 + 1)
        .max_readers(options.max_readers.max(1));
    // SAFETY: heed marks this flag unsafe because it weakens LMDB's durability
    // (not memory safety). We restore the durability the trait promises ourselves:
    // `Durability::Sync` writes and `flush` call `mdb_env_sync(force)` before they
    // return. NO_META_SYNC keeps the file intact across a power loss (a commit syncs
    // its data pages; only the meta page waits). `MDB_NOSYNC` is deliberately not
    // offered: it corrupts books on power loss (see the crate docs).
    unsafe {
        builder.flags(EnvFlags::NO_META_SYNC);
    }
    // SAFETY: mapping a file is unsound if the file changes under the map other than
    // through this environment. We hold the directory's exclusive lock (taken
    // above, released only after the environment closes), so no other peerbook
    // handle, in this process or another, opens these files meanwhile; LMDB's own
    // `lock.mdb` coordinates with any other LMDB program. We never write to the
    // files ourselves. We do not use NO_LOCK, and the directory is expected to be
    // on a local filesystem (documented in the crate docs).
    let env = unsafe { builder.open(path) }.map_err(|e| from_heed_at_open(e, path))?;

    let wtxn = env.write_txn().map_err(|e| from_heed_at_open(e, path))?;
    // The layout marker, as found (`None`: absent; written below if the book is empty).
    let mut marker: Option<Vec<u8>> = None;
    let created = env
        .create_databases_and_commit(
            wtxn,
            |opener, wtxn| -> heed::Result<CommitOrAbort<[Database<'_, Bytes, Bytes>; 4], Infallible>> {
                let [peers, by_last_seen, by_quality, meta] = Space::ALL.map(Space::name);
                let dbs = [
                    opener.create_database(wtxn, Some(peers))?,
                    opener.create_database(wtxn, Some(by_last_seen))?,
                    opener.create_database(wtxn, Some(by_quality))?,
                    opener.create_database(wtxn, Some(meta))?,
                ];
                let settings = opener.create_database::<Bytes, Bytes>(wtxn, Some(LAYOUT_DB))?;
                marker = settings.get(wtxn, LAYOUT_KEY)?.map(<[u8]>::to_vec);
                if marker.is_none() {
                    let mut empty = true;
                    for db in &dbs {
                        empty &= db.is_empty(wtxn)?;
                    }
                    // A book without data takes the tagged layout (see `value`).
                    if empty {
                        settings.put(wtxn, LAYOUT_KEY, LAYOUT_TAGGED)?;
                        marker = Some(LAYOUT_TAGGED.to_vec());
                    }
                }
                Ok(CommitOrAbort::Commit(dbs))
            },
        )
        .map_err(|e| from_heed_at_open(e, path))?;
    let dbs = match created {
        CommitOrAbort::Commit(dbs) => dbs,
        CommitOrAbort::Abort(never) => match never {},
    };
    let layout = match marker.as_deref() {
        None => Layout::Plain,
        Some(LAYOUT_TAGGED) => Layout::Tagged,
        Some(other) => {
            return Err(engine(format!(
                "the LMDB book at {} has value layout {other:?}, which this version of \
                 peerbook-lmdb does not know (written by a newer version?)",
                path.display()
            )))
        }
    };
    Ok(Handle { env, dbs, layout })
}

impl LmdbBackend {
    /// The second half of [`Backend::clear`](peerbook::backend::Backend::clear): swap `data.mdb` for a compacted copy.
    pub(super) fn rewrite_data_file(&self) -> Result<(), BackendError> {
        if self.held_by_this_thread() {
            return Err(engine(
                "a clear of an LMDB book cannot run inside a scan visitor of the same book",
            ));
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let _exclusive = self
            .map_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.broken.load(Ordering::Acquire) {
            return Err(self.unusable());
        }
        let mut slot: RwLockWriteGuard<'_, Option<Handle>> =
            self.handle.write().unwrap_or_else(PoisonError::into_inner);
        let Some(handle) = slot.as_ref() else {
            return Err(self.unusable());
        };
        let copy = self.path.join(CLEAR_FILE);
        let map_size = handle.env.info().map_size;
        let written = handle
            .env
            .copy_to_path(&copy, CompactionOption::Enabled)
            .map_err(|e| self.err(e))
            .and_then(|file| {
                // The copy is created with the default mode; it replaces data.mdb,
                // which must stay as private as it was.
                let private = fs::metadata(self.path.join(DATA_FILE))
                    .map(|m| m.permissions())
                    .and_then(|perms| file.set_permissions(perms));
                private
                    .and_then(|()| file.sync_all())
                    .map_err(|e| from_io(e, &copy))
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&copy);
            return Err(e);
        }
        // From here the handle is closed: on failure it stays closed (`handle`
        // refuses every later call).
        if let Some(old) = slot.take() {
            old.env.prepare_for_closing().wait();
        }
        fs::rename(&copy, self.path.join(DATA_FILE)).map_err(|e| from_io(e, &copy))?;
        fs::File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| from_io(e, &self.path))?;
        *slot = Some(open_env(&self.path, &self.options, map_size)?);
        Ok(())
    }
}
