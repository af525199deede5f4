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
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

/// A file system as the backend sees it. Paths are full paths (the backend joins
/// its directory with a file name).
///
/// Implementations must be `Send + Sync`; the backend calls them from whichever
/// thread writes, opens or compacts.
pub trait Vfs: Send + Sync + fmt::Debug {
    /// Create `dir` and its missing parents; succeed if it exists already. The
    /// backend itself makes directories with [`create_dir`](Vfs::create_dir).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Create the one directory `dir`, its parent existing: fail with
    /// [`io::ErrorKind::AlreadyExists`] when anything is there (a directory, a
    /// file, a symbolic link), with [`io::ErrorKind::NotFound`] when its parent is
    /// missing. An open makes its store's missing directories one at a time with
    /// it, outermost first, and takes as its own (to remove again if it fails)
    /// exactly those it made ([`NewDirs`](peerbook::backend::NewDirs)). The
    /// default makes `dir` with [`create_dir_all`](Vfs::create_dir_all) and says
    /// [`io::ErrorKind::AlreadyExists`]: on such a file system no directory is
    /// ever taken as made by an open, nor removed.
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.create_dir_all(dir)?;
        Err(io::ErrorKind::AlreadyExists.into())
    }

    /// Whether `path` is a directory, through symbolic links (a dangling link, or
    /// nothing there, is not: `Ok(false)`), or the error of telling it (a loop
    /// of links, a permission denied), which is then the open's: what an open
    /// walks through when [`create_dir`](Vfs::create_dir) finds it there. The
    /// default: whether [`list`](Vfs::list) lists it, `Ok(false)` when that
    /// fails with [`io::ErrorKind::NotFound`] or
    /// [`io::ErrorKind::NotADirectory`], its error otherwise.
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        match self.list(path) {
            Ok(_) => Ok(true),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

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
/// file system itself). The lock is
/// [`try_lock_file_made`](peerbook::backend::try_lock_file_made): a POSIX record
/// lock with a process-wide table on Unix (it also excludes a second open in the
/// same process, and a forked child never holds it), `LockFileEx` on Windows. On
/// Unix, once locked, the file is checked to be the one still linked at the path
/// (device and inode), else the lock is taken again.
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

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        peerbook::backend::NewDirs::is_dir(path)
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
        peerbook::backend::try_lock_file(path).map(VfsLock::new)
    }

    fn lock_created(&self, path: &Path) -> io::Result<(VfsLock, bool)> {
        // Made is said on Unix only, where the lock is checked to be on the
        // linked file (`try_lock_file_made`): elsewhere the file is never removed.
        peerbook::backend::try_lock_file_made(path).map(|(file, made)| (VfsLock::new(file), made))
    }
}
