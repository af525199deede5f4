//! The exclusive directory lock taken before the environment opens.

use std::path::Path;

use peerbook::backend::{try_lock_file_made, BackendError, FileLock};

/// Name of the lock file inside the book's directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// An exclusive lock on a book directory, held for as long as this value lives.
///
/// It is an OS file lock on the `LOCK` file, taken with [`try_lock_file_made`]
/// (a POSIX record lock and a process-wide table on Unix, `LockFileEx` on
/// Windows): a second open from the same process conflicts exactly as one from
/// another process does, a child process never inherits it, and the OS drops it
/// when the process dies, so a crash never leaves a stale lock behind.
///
/// LMDB's own `lock.mdb` is not enough: it lets several processes share an
/// environment (which this backend must refuse), and heed only refuses a second open
/// from the same process.
#[derive(Debug)]
pub(crate) struct DirLock {
    _lock: FileLock,
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist), or fails with
    /// [`BackendError::Locked`] at once if another handle holds it; `true` if
    /// this call created the `LOCK` file (a failed open removes it, still held).
    pub(crate) fn acquire(dir: &Path) -> Result<(DirLock, bool), BackendError> {
        let path = dir.join(LOCK_FILE);
        let (lock, made) = try_lock_file_made(&path).map_err(|e| {
            BackendError::already_open(format_args!("the LMDB book at {}", dir.display()), &path, e)
        })?;
        Ok((DirLock { _lock: lock }, made))
    }
}
