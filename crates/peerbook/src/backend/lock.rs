//! The exclusive lock on a store's `LOCK` file, written once for the engines that
//! need their own (LMDB, the file backend; RocksDB locks its directory itself).
//!
//! On Unix the lock is a POSIX record lock (`fcntl(F_SETLK)`) on the whole file,
//! which belongs to the process: a child the process forks does not inherit it. A
//! `flock` lock (what [`File::try_lock`] takes) belongs to the open file instead, so
//! a child forked while a book is open holds it until the child calls `exec` or
//! exits; a node that spawns a process and reopens its book at that moment was
//! refused with `Locked` (a reopen racing a test's child process showed it). A
//! process-associated lock does not exclude a second open by the same process, so a
//! process-wide table of the files locked here does that; and since closing *any*
//! descriptor of a file drops the process's POSIX locks on it, a file found in the
//! table is never closed while its holder lives (its descriptor is kept with the
//! holder's entry). Off Unix, [`File::try_lock`] (`LockFileEx` on Windows, whose
//! handles a child does not inherit).
//!
//! The price, as with every POSIX record lock (SQLite's, LMDB's, RocksDB's): a
//! child that `fork`s without `exec` and goes on using the book holds no lock (its
//! parent's is not inherited; if the parent exits, another process may open the
//! book). The child also inherits a copy of the table: it is refused the books
//! open at the fork, and if another thread held the table at that instant, its
//! first lock attempt waits forever (as with any mutex across `fork`). Open a book
//! after forking, not before.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// An exclusive lock on a store's lock file, held for as long as this value
/// lives; dropping it releases the lock. Made by [`try_lock_file`].
///
/// On Unix, as with every POSIX record lock (SQLite's, LMDB's, RocksDB's), the
/// process must not open the lock file by other means while it holds the lock:
/// closing any descriptor of the file drops the process's lock on it. Copy a
/// store's directory from another process, or skip its `LOCK`
/// ([`is_locked_here`] tells whether a path is held). And a child forked without
/// `exec` does not hold it: open a book after a `fork`, not before.
#[derive(Debug)]
pub struct FileLock {
    /// The locked file's identity in this process's table of held locks, which
    /// keeps the file open: it must close under the table's lock.
    #[cfg(unix)]
    id: held::FileId,
    /// The locked file.
    #[cfg(not(unix))]
    _file: File,
}

#[cfg(unix)]
impl Drop for FileLock {
    fn drop(&mut self) {
        held::release(self.id);
    }
}

/// Open (creating it) the file at `path` and take an exclusive advisory lock on it,
/// without waiting.
///
/// On Unix that is a POSIX record lock (`fcntl(F_SETLK)`), plus a table of the
/// files this process holds, so a second open from the same process conflicts
/// exactly as one from another process does, and a child process the holder
/// forks never holds it; off Unix it is [`File::try_lock`] (`LockFileEx`). The OS
/// drops the lock when the process dies, so a crash never leaves a stale lock.
/// Contention is an error of kind [`io::ErrorKind::WouldBlock`];
/// [`BackendError::lock`](super::BackendError::lock) turns it into
/// [`BackendError::Locked`](super::BackendError::Locked). The lock is checked to be
/// on the file linked at `path` ([`try_lock_file_made`]).
///
/// ```
/// use peerbook::backend::try_lock_file;
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("LOCK");
/// let held = try_lock_file(&path).unwrap();
/// let refused = try_lock_file(&path).unwrap_err();
/// assert_eq!(refused.kind(), std::io::ErrorKind::WouldBlock);
/// drop(held);
/// try_lock_file(&path).unwrap();
/// ```
pub fn try_lock_file(path: &Path) -> io::Result<FileLock> {
    try_lock_file_made(path).map(|(lock, _)| lock)
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
pub fn try_lock_file_made(path: &Path) -> io::Result<(FileLock, bool)> {
    let (lock, made) = lock_linked(path, || {})?;
    Ok((lock, made && cfg!(unix)))
}

/// Whether this process holds the lock on the file linked at `path` through a
/// [`FileLock`] (a book of this process has it open: LMDB, the file backend, or
/// RocksDB, which takes its own `LOCK` through [`try_lock_file`] too). Opening
/// that file some other way would drop the lock on close (see [`FileLock`]).
/// Always `false` off Unix, where nothing is dropped that way.
///
/// ```
/// use peerbook::backend::{is_locked_here, try_lock_file};
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("LOCK");
/// assert!(!is_locked_here(&path).unwrap());
/// let held = try_lock_file(&path).unwrap();
/// assert_eq!(is_locked_here(&path).unwrap(), cfg!(unix));
/// drop(held);
/// assert!(!is_locked_here(&path).unwrap());
/// ```
pub fn is_locked_here(path: &Path) -> io::Result<bool> {
    #[cfg(unix)]
    return held::is_held_at(path);
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}

/// How many times [`lock_linked`] starts over when the file it locked was no
/// longer the one at the path.
const LOCK_ATTEMPTS: usize = 16;

/// The error of a lock another holder has.
fn held_elsewhere() -> io::Error {
    io::Error::new(
        io::ErrorKind::WouldBlock,
        "the lock is held by another open handle",
    )
}

/// Open (creating it if missing) and lock the file at `path`, and check that the
/// locked file is still the one linked there; if not, start over. `between` runs
/// after each open, before its lock (a test widens the race there).
fn lock_linked(path: &Path, mut between: impl FnMut()) -> io::Result<(FileLock, bool)> {
    for _ in 0..LOCK_ATTEMPTS {
        // A file this process holds is refused before it is opened: its
        // descriptor, once opened, could not be closed while the holder lives.
        #[cfg(unix)]
        if held::is_held_at(path)? {
            return Err(held_elsewhere());
        }
        let (file, made) = open_or_create(path)?;
        between();
        #[cfg(unix)]
        let locked = held::lock(file, path)?;
        #[cfg(not(unix))]
        let locked = lock_not_unix(file)?;
        if let Some(lock) = locked {
            return Ok((lock, made));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("the lock file was removed under this open {LOCK_ATTEMPTS} times in a row"),
    ))
}

/// [`File::try_lock`]: the lock, or [`held_elsewhere`]; never `None` (there is no
/// check that the file is still linked off Unix).
#[cfg(not(unix))]
fn lock_not_unix(file: File) -> io::Result<Option<FileLock>> {
    match file.try_lock() {
        Ok(()) => Ok(Some(FileLock { _file: file })),
        Err(std::fs::TryLockError::WouldBlock) => Err(held_elsewhere()),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
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

/// The process-wide table of the lock files this process holds (Unix).
#[cfg(unix)]
mod held {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;
    use std::sync::{Mutex, MutexGuard, PoisonError};

    use rustix::fs::{fcntl_lock, FlockOperation};

    use super::{held_elsewhere, FileLock};

    /// A file's identity: device and inode.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(super) struct FileId {
        dev: u64,
        ino: u64,
    }

    impl FileId {
        fn of(meta: &std::fs::Metadata) -> FileId {
            FileId {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
    }

    /// One held lock file: the holder's descriptor first, then those of it other
    /// openers in this process opened meanwhile (closing one would drop the
    /// holder's lock, so they close with the holder's).
    struct Held {
        id: FileId,
        files: Vec<File>,
    }

    /// Every lock file held through [`FileLock`] in this process.
    static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

    /// The table; a panic elsewhere while it was locked leaves it consistent
    /// (each change is one push or one removal), so a poisoned lock is used.
    fn table() -> MutexGuard<'static, Vec<Held>> {
        HELD.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the file linked at `path` is one this process holds.
    pub(super) fn is_held_at(path: &Path) -> io::Result<bool> {
        let id = match std::fs::metadata(path) {
            Ok(meta) => FileId::of(&meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(table().iter().any(|h| h.id == id))
    }

    /// Lock `file` (opened from `path`): the lock; `None` if the file is no longer
    /// the one linked at `path` (the caller starts over); [`held_elsewhere`] if
    /// this process or another holds it. The lock is taken, and `file` closed if
    /// it is not kept, under the table's lock, so no other handle of this process
    /// takes the file meanwhile (a close after it took the file would drop its
    /// lock); the check that it is still the linked file runs after.
    pub(super) fn lock(file: File, path: &Path) -> io::Result<Option<FileLock>> {
        let mut table = table();
        let id = match file.metadata() {
            Ok(meta) => FileId::of(&meta),
            Err(e) => {
                // Which file this is cannot be told, so it may be one this
                // process holds, whose lock a close would drop: leak the
                // descriptor instead (`fstat` of an open descriptor does not
                // fail in practice).
                std::mem::forget(file);
                return Err(e);
            }
        };
        if let Some(holder) = table.iter_mut().find(|h| h.id == id) {
            // the path now links a file this process holds (it was another
            // file when checked): keep the descriptor with its holder
            holder.files.push(file);
            return Err(held_elsewhere());
        }
        if let Err(e) = fcntl_lock(&file, FlockOperation::NonBlockingLockExclusive) {
            // Closed here, before the table's lock is let go: a parameter would
            // be dropped after the guard, when another thread of this process
            // may already hold the file (once the other process let go).
            drop(file);
            return Err(
                if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::ACCESS {
                    held_elsewhere()
                } else {
                    e.into()
                },
            );
        }
        // Held from here on (no other handle of this process held it: it was
        // not in the table). The check that it is still the linked file needs
        // no table lock (one `stat` fewer under it); if it is not, `FileLock`'s
        // drop releases it and the caller starts over.
        table.push(Held {
            id,
            files: vec![file],
        });
        drop(table);
        let lock = FileLock { id };
        match std::fs::metadata(path) {
            Ok(linked) if FileId::of(&linked) == id => Ok(Some(lock)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// How many descriptors of the held file `id` are open (0: not held).
    #[cfg(test)]
    pub(super) fn descriptors(id: FileId) -> usize {
        table()
            .iter()
            .find(|h| h.id == id)
            .map_or(0, |h| h.files.len())
    }

    /// Release the held file `id`: its descriptors close (which drops the lock)
    /// under the table's lock, so no opener of this process is between its check
    /// and its lock meanwhile: one that locked the file before the holder's
    /// descriptor closed would see its own lock dropped by that close.
    pub(super) fn release(id: FileId) {
        let mut table = table();
        if let Some(at) = table.iter().position(|h| h.id == id) {
            drop(table.swap_remove(at));
        }
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

    /// The race a failed open's removal of its `LOCK` opens: B opens the lock file,
    /// then (before B locks it) A locks it, A's open fails so A removes it and lets
    /// go, and C creates a new one and locks that. B's lock on the unlinked file
    /// must not count: B sees C's lock (`WouldBlock`), never a second holder. (B
    /// is another process in the field; in this one B opened the file before A
    /// held it, so the table did not refuse B first.)
    #[cfg(unix)]
    #[test]
    fn a_lock_on_a_removed_lock_file_is_not_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("LOCK");
        let mut c = None;
        let b = lock_linked(&path, || {
            // B has opened (made) the file and not locked it yet
            if c.is_none() {
                let (a, made) = try_lock_file_made(&path).unwrap();
                assert!(!made, "B made it");
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

    /// Set in a child run of this test binary: the lock file the child tries.
    #[cfg(unix)]
    const CHILD_LOCK: &str = "PEERBOOK_LOCK_UNIT_CHILD";

    /// The child's role: try the lock named by [`CHILD_LOCK`]; exit 3 if refused,
    /// 4 if taken, panic on any other error (0 means the child ran no test). A
    /// plain run of the tests does nothing here.
    #[cfg(unix)]
    #[test]
    fn child_role() {
        if let Some(path) = std::env::var_os(CHILD_LOCK) {
            match try_lock_file(Path::new(&path)) {
                Ok(_) => std::process::exit(4),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::process::exit(3),
                Err(e) => panic!("child: {e}"),
            }
        }
    }

    /// Whether another process is refused the lock at `path` (it runs this
    /// binary's [`child_role`]).
    #[cfg(unix)]
    fn another_process_is_refused(path: &Path) -> bool {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "backend::lock::tests::child_role",
                "--test-threads=1",
            ])
            .env(CHILD_LOCK, path)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        match status.code() {
            Some(3) => true,
            Some(4) => false,
            other => panic!("the child did not run or failed: {other:?}"),
        }
    }

    /// Another process is refused for as long as the lock is held, also after a
    /// refused open in the holder's own process, and admitted once it drops.
    #[cfg(unix)]
    #[test]
    fn another_process_is_refused_while_held_also_after_a_refused_open_here() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("LOCK");
        let held = try_lock_file(&path).unwrap();
        assert!(another_process_is_refused(&path));
        let refused = try_lock_file(&path).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        assert!(another_process_is_refused(&path), "still held");
        drop(held);
        assert!(!another_process_is_refused(&path), "released on drop");
    }

    /// B finds no lock file held at the path and opens it; before B locks it, A
    /// (same process) locks that very file. B must refuse without closing its
    /// descriptor (the close would drop A's POSIX lock): it is kept with A's entry
    /// and closes when A lets go.
    #[cfg(unix)]
    #[test]
    fn a_descriptor_of_a_file_held_here_is_kept_until_its_holder_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("LOCK");
        let mut a = None;
        let b = lock_linked(&path, || {
            if a.is_none() {
                a = Some(try_lock_file(&path).unwrap());
            }
        });
        let a = a.unwrap();
        assert_eq!(b.unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(
            another_process_is_refused(&path),
            "A's lock survives B's refused attempt"
        );
        assert_eq!(
            held::descriptors(a.id),
            2,
            "B's descriptor is kept with A's"
        );
        assert_eq!(
            try_lock_file(&path).unwrap_err().kind(),
            io::ErrorKind::WouldBlock,
            "refused at the table, before an open"
        );
        assert_eq!(held::descriptors(a.id), 2, "no third descriptor was opened");
        let id = a.id;
        drop(a);
        assert_eq!(held::descriptors(id), 0, "both closed with A");
        let again = try_lock_file(&path).unwrap();
        assert_eq!(held::descriptors(again.id), 1);
    }
}
