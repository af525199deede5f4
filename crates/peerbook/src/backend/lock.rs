//! The exclusive lock on a store's `LOCK` file, written once for the engines that
//! need their own (LMDB, the file backend; RocksDB locks its directory itself).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// Open (creating it) the file at `path` and take an exclusive advisory lock on it,
/// without waiting: [`File::try_lock`], `flock` on Unix, `LockFileEx` on Windows.
///
/// The lock belongs to the open file, not to the process: a second open from the
/// same process conflicts exactly as one from another process does, and the OS drops
/// it when the returned file closes, including when the process dies, so a crash
/// never leaves a stale lock. Contention is an error of kind
/// [`io::ErrorKind::WouldBlock`]; [`BackendError::lock`](super::BackendError::lock)
/// turns it into [`BackendError::Locked`](super::BackendError::Locked).
pub fn try_lock_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "the lock is held by another open handle",
        )),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_would_block_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let first = try_lock_file(&path).unwrap();
        let err = try_lock_file(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(first);
        try_lock_file(&path).unwrap();
    }
}
