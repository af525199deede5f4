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
/// turns it into [`BackendError::Locked`](super::BackendError::Locked). The lock is
/// checked to be on the file linked at `path` ([`try_lock_file_made`]).
pub fn try_lock_file(path: &Path) -> io::Result<File> {
    try_lock_file_made(path).map(|(file, _)| file)
}

/// [`try_lock_file`], also telling whether this call created the file (`true`)
/// or found it (`false`): a store's open that fails removes the lock file only
/// if it made it, while it still holds the lock.
///
/// Removing a lock file is safe only because the lock is checked: on Unix, once
/// locked, the file must still be the one linked at `path` (same device and
/// inode), else it is dropped and the lock taken again (at most 16 times, then
/// [`io::ErrorKind::WouldBlock`]). Without the check, an opener that opened the
/// file before its holder removed it would lock the unlinked file beside a third
/// opener's new one: two holders. Off Unix there is no such check (no portable
/// file identity in `std`), so this says `false` there: the file stays.
pub fn try_lock_file_made(path: &Path) -> io::Result<(File, bool)> {
    let (file, made) = lock_linked(path, || {})?;
    Ok((file, made && cfg!(unix)))
}

/// How many times [`lock_linked`] starts over when the file it locked was no
/// longer the one at the path.
const LOCK_ATTEMPTS: usize = 16;

/// Open (creating it if missing) and lock the file at `path`, and check that the
/// locked file is still the one linked there; if not, start over. `between` runs
/// after each open, before its lock (a test widens the race there).
fn lock_linked(path: &Path, mut between: impl FnMut()) -> io::Result<(File, bool)> {
    for _ in 0..LOCK_ATTEMPTS {
        let (file, made) = open_or_create(path)?;
        between();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "the lock is held by another open handle",
                ))
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
        if is_linked_at(&file, path)? {
            return Ok((file, made));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("the lock file was removed under this open {LOCK_ATTEMPTS} times in a row"),
    ))
}

/// Open the file at `path` for reading and writing, creating it if missing;
/// `true` if this call created it.
fn open_or_create(path: &Path) -> io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match options.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other.map(|f| (f, false)),
    }
    match options.clone().create_new(true).open(path) {
        // made in between by another opener (or a dangling symlink): open it,
        // or what the symlink names, as `create` does
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options
            .create(true)
            .truncate(false)
            .open(path)
            .map(|f| (f, false)),
        other => other.map(|f| (f, true)),
    }
}

/// Whether `file` is the file linked at `path` (same device and inode).
#[cfg(unix)]
fn is_linked_at(file: &File, path: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(linked) => Ok(held.dev() == linked.dev() && held.ino() == linked.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Not checked off Unix: the locked file is taken as the linked one (and
/// [`try_lock_file_made`] never says it made it).
#[cfg(not(unix))]
fn is_linked_at(_file: &File, _path: &Path) -> io::Result<bool> {
    Ok(true)
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

    /// The race a failed open's removal of its `LOCK` opens: B opens the lock file,
    /// then (before B locks it) its holder A removes it and lets go, and C creates
    /// a new one and locks that. B's lock on the unlinked file must not count:
    /// B sees C's lock (`WouldBlock`), never a second holder.
    #[cfg(unix)]
    #[test]
    fn a_lock_on_a_removed_lock_file_is_not_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("LOCK");
        let (a, made) = try_lock_file_made(&path).unwrap();
        assert!(made);
        let mut a = Some(a);
        let mut c = None;
        let b = lock_linked(&path, || {
            // B has opened A's file and not locked it yet
            if let Some(a) = a.take() {
                std::fs::remove_file(&path).unwrap(); // A's open failed: A removes
                drop(a); // and lets go
                c = Some(try_lock_file_made(&path));
            }
        });
        let (c, c_made) = c.unwrap().unwrap();
        assert!(c_made, "C made the new LOCK");
        let err = b.expect_err("B must not hold a lock beside C");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(c);
        let (_b, made) = try_lock_file_made(&path).unwrap();
        assert!(!made, "once C let go, B takes C's file");
    }
}
