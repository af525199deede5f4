//! Creating a new book so that a power cut can never leave a half-made `data.mdb`.
//!
//! LMDB writes the two meta pages of a new file without syncing them, and syncs only
//! at the first commit. A power cut in between can keep a later page and lose the
//! first one: `data.mdb` exists but is "not an LMDB file", and the book would fail to
//! open forever (found by the power-cut test of `crates/peerbook-powerfail`). So a new
//! book is built in a scratch directory (`creating/`), its first commit (the four
//! databases) synced, and only then renamed into place and the directory synced: the
//! book's `data.mdb` is either absent (the next open starts over) or complete.

use std::convert::Infallible;
use std::fs::{self, File};
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions};
use peerbook::backend::{BackendError, Space};

use crate::error::{from_heed_at_open, from_io};

/// The scratch directory inside the book's directory.
pub(crate) const CREATING_DIR: &str = "creating";

/// Makes `dir/data_file` a valid, synced LMDB file holding the four (empty)
/// databases, unless it exists. The caller holds the directory lock.
pub(crate) fn ensure_created(
    dir: &Path,
    data_file: &str,
    map_size: usize,
) -> Result<(), BackendError> {
    let target = dir.join(data_file);
    let scratch = dir.join(CREATING_DIR);
    // Leftovers of a creation interrupted before (or just after) its rename.
    match fs::remove_dir_all(&scratch) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(from_io(e, dir)),
    }
    if fs::symlink_metadata(&target).is_ok() {
        return Ok(());
    }
    fs::create_dir(&scratch).map_err(|e| from_io(e, dir))?;
    {
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder.map_size(map_size).max_dbs(Space::ALL.len() as u32);
        // SAFETY: the flag weakens durability only; we sync explicitly below.
        unsafe {
            builder.flags(EnvFlags::NO_META_SYNC);
        }
        // SAFETY: the scratch directory is ours alone: it was just made inside the
        // book's directory, whose exclusive lock the caller holds.
        let env = unsafe { builder.open(&scratch) }.map_err(|e| from_heed_at_open(e, dir))?;
        let wtxn = env.write_txn().map_err(|e| from_heed_at_open(e, dir))?;
        env.create_databases_and_commit(
            wtxn,
            |opener, wtxn| -> heed::Result<CommitOrAbort<(), Infallible>> {
                for space in Space::ALL {
                    opener.create_database::<Bytes, Bytes>(wtxn, Some(space.name()))?;
                }
                Ok(CommitOrAbort::Commit(()))
            },
        )
        .map_err(|e| from_heed_at_open(e, dir))?;
        env.force_sync().map_err(|e| from_heed_at_open(e, dir))?;
        env.prepare_for_closing().wait();
    }
    fs::rename(scratch.join(data_file), &target).map_err(|e| from_io(e, dir))?;
    sync_dir(dir)?;
    fs::remove_dir_all(&scratch).map_err(|e| from_io(e, dir))
}

/// Makes the directory's entries durable (a no-op where directories cannot be
/// opened for syncing).
fn sync_dir(dir: &Path) -> Result<(), BackendError> {
    match File::open(dir) {
        Ok(f) => f.sync_all().map_err(|e| from_io(e, dir)),
        Err(_) => Ok(()),
    }
}
