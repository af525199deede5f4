//! The exclusive directory lock taken before the environment opens.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use peerbook::backend::BackendError;

/// Name of the lock file inside the book's directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// An exclusive lock on a book directory, held for as long as this value lives.
///
/// It is an OS file lock (`flock` on Unix, `LockFileEx` on Windows) on the `LOCK`
/// file, taken with [`File::try_lock`]. Such a lock belongs to the open file, not to
/// the process, so a second open from the same process conflicts exactly as one from
/// another process does; the OS drops it when the file closes, including when the
/// process dies, so a crash never leaves a stale lock behind.
///
/// LMDB's own `lock.mdb` is not enough: it lets several processes share an
/// environment (which this backend must refuse), and heed only refuses a second open
/// from the same process.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist), or fails with
    /// [`BackendError::Locked`] at once if another handle holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DirLock, BackendError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(BackendError::Locked(format!(
                "the LMDB book at {} is already open (its lock file {} is held by another \
                 handle, in this process or another)",
                dir.display(),
                path.display()
            ))),
            Err(TryLockError::Error(e)) => Err(BackendError::Io(e)),
        }
    }
}
