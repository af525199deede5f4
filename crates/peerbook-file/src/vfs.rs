//! The file-system seam: every byte [`FileBackend`](crate::FileBackend) reads or
//! writes goes through a [`Vfs`].
//!
//! [`StdFs`] is the real implementation over `std::fs`. Tests substitute their own
//! (this crate's `testing::SimFs`, feature `testing`, simulates power loss;
//! `testing::HookedFs` wraps another to fail, hold or slow its calls) through
//! [`FileBackend::open_with_vfs`](crate::FileBackend::open_with_vfs).
//!
//! The backend needs very little from a file system, and says exactly what it needs
//! to be durable:
//! - files are only ever appended to, truncated (to drop a torn tail) and synced
//!   ([`VfsFile`]); files are read from their start, whole ([`Vfs::read`]) or
//!   streamed ([`Vfs::open_read`]);
//! - new files appear only by [`Vfs::rename`] of a synced temporary file, made
//!   durable by [`Vfs::sync_dir`];
//! - one advisory lock ([`Vfs::lock`]) guards the directory.

use std::any::Any;
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// A file system as the backend sees it. Paths are full paths (the backend joins
/// its directory with a file name).
///
/// Implementations must be `Send + Sync`; the backend calls them from whichever
/// thread writes, opens or compacts.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Create `dir` and its missing parents; succeed if it exists already.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Names (not paths) of the entries of `dir`, in any order.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// A reader of the file at `path` from its start: open reads the snapshot and
    /// the log through it, frame by frame, so a file is never held whole in
    /// memory. The default reads the whole file with [`read`](Vfs::read) (fine
    /// for an in-memory file system); [`StdFs`] streams from the file.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read(path)?)))
    }

    /// Create the file at `path` (truncating it if it exists) and return a handle
    /// that appends to it.
    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;

    /// Open the existing file at `path` for appending.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>>;

    /// Atomically rename `from` to `to` (both in the same directory), replacing `to`.
    /// Not durable until [`sync_dir`](Vfs::sync_dir) of the directory returns.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Remove the file at `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Make every creation, rename and removal of an entry of `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Take an exclusive advisory lock on the file at `path` (creating it), held
    /// until the returned guard drops. Fails with [`io::ErrorKind::WouldBlock`]
    /// when another holder (this process or another) has it.
    ///
    /// The lock must be on the file linked at `path` when this returns: an open
    /// that fails removes the `LOCK` it created, while it holds the lock, so a
    /// lock taken on the file just unlinked (opened before the removal, locked
    /// after the release) excludes no one. [`StdFs`] checks, after locking, that
    /// the file it locked is still the one at `path`, and starts over if not.
    fn lock(&self, path: &Path) -> io::Result<VfsLock>;

    /// [`lock`](Vfs::lock), also telling whether this call created the file
    /// (`true`) or found it (`false`): an open that then fails removes the lock
    /// file only if it created it. Say `true` only when [`lock`](Vfs::lock) makes
    /// sure the lock it takes is on the file linked at `path` (removing a lock
    /// file that another opener has open is safe only then). The default says
    /// `false`: the lock file stays.
    fn lock_created(&self, path: &Path) -> io::Result<(VfsLock, bool)> {
        Ok((self.lock(path)?, false))
    }

    /// Remove the empty directory `dir` (an open that created it and then failed
    /// removes it). Fails when `dir` is not empty. The default fails with
    /// [`io::ErrorKind::Unsupported`]: such a directory is left behind.
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let _ = dir;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// An open file that is appended to.
pub trait VfsFile: Send + fmt::Debug {
    /// Append all of `data` at the end of the file (one or more write syscalls: once
    /// this returns, the bytes survive a crash of the process).
    fn append(&mut self, data: &[u8]) -> io::Result<()>;

    /// Make the content and length of the file durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;

    /// Cut (or zero-extend) the file to `len` bytes; later appends go after it.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// A held lock from [`Vfs::lock`]; dropping it releases the lock.
pub struct VfsLock {
    _guard: Box<dyn Any + Send + Sync>,
}

impl VfsLock {
    /// Wrap whatever keeps the lock held (an open file, a registration...).
    pub fn new(guard: impl Any + Send + Sync) -> Self {
        VfsLock {
            _guard: Box::new(guard),
        }
    }
}

impl fmt::Debug for VfsLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VfsLock")
    }
}

/// The real file system, through `std::fs`.
///
/// Durability calls map to `fdatasync` ([`File::sync_data`]) for files and to
/// `fsync` of the directory ([`File::sync_all`] on the opened directory) on Unix;
/// on other platforms directory sync is a no-op (their renames are journaled by the
/// file system itself). The lock is [`File::try_lock`] (`flock` on Unix,
/// `LockFileEx` on Windows): per open file, so it also excludes a second open in
/// the same process. On Unix, once locked, the file is checked to be the one
/// still linked at the path (device and inode), else the lock is taken again.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

#[derive(Debug)]
struct StdFile {
    file: File,
}

impl VfsFile for StdFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::Start(len))?;
        Ok(())
    }
}

impl Vfs for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        Ok(Box::new(File::open(path)?))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile { file }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let mut file = OpenOptions::new().write(true).open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Box::new(StdFile { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        #[cfg(unix)]
        {
            File::open(dir)?.sync_all()
        }
        #[cfg(not(unix))]
        {
            let _ = dir;
            Ok(())
        }
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn lock(&self, path: &Path) -> io::Result<VfsLock> {
        self.lock_created(path).map(|(lock, _)| lock)
    }

    fn lock_created(&self, path: &Path) -> io::Result<(VfsLock, bool)> {
        let (file, created) = lock_linked(path, || {})?;
        // Off Unix the lock is not checked to be on the linked file
        // (`is_linked_at`): say the file was found, so it is never removed.
        Ok((VfsLock::new(file), created && cfg!(unix)))
    }
}

/// How many times [`lock_linked`] starts over when the file it locked was no
/// longer the one at the path (each time, an open that created the lock file
/// failed and removed it meanwhile).
const LOCK_ATTEMPTS: usize = 16;

/// Open (creating it if missing) and lock the file at `path`, and check that the
/// locked file is still the one linked there; if it is not (it was removed, and
/// maybe created anew, after this opened it: its holder's open failed), drop it
/// and start over, up to [`LOCK_ATTEMPTS`] times. Returns the file and whether
/// this call created it. `between` runs after each open, before its lock (a test
/// widens the race there).
fn lock_linked(path: &Path, mut between: impl FnMut()) -> io::Result<(File, bool)> {
    for _ in 0..LOCK_ATTEMPTS {
        let (file, created) = open_or_create(path)?;
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
            return Ok((file, created));
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

/// Not checked off Unix (no portable file identity in `std`): the locked file is
/// taken as the linked one.
#[cfg(not(unix))]
fn is_linked_at(_file: &File, _path: &Path) -> io::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The race a failed open's removal of its `LOCK` opens: B opens the lock file,
    /// then (before B locks it) its holder A removes it and lets go, and C creates
    /// a new one and locks that. B's lock on the unlinked file must not count:
    /// B sees C's lock (`WouldBlock`), never a second holder.
    #[cfg(unix)]
    #[test]
    fn a_lock_on_a_removed_lock_file_is_not_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("LOCK");
        let (a, created) = lock_linked(&path, || {}).unwrap();
        assert!(created);
        let mut a = Some(a);
        let mut c = None;
        let b = lock_linked(&path, || {
            // B has opened A's file and not locked it yet
            if let Some(a) = a.take() {
                std::fs::remove_file(&path).unwrap(); // A's open failed: A removes
                drop(a); // and lets go
                c = Some(lock_linked(&path, || {}));
            }
        });
        let (c, c_created) = c.unwrap().unwrap();
        assert!(c_created, "C made the new LOCK");
        let err = b.expect_err("B must not hold a lock beside C");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(c);
        let (_b, created) = lock_linked(&path, || {}).unwrap();
        assert!(!created, "once C let go, B takes C's file");
    }
}
