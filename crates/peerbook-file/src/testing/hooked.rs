//! [`HookedFs`]: a pass-through [`Vfs`] with a hook run before every call, its
//! [`FsHook`] and the [`FsOp`] that says which call the hook runs before.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::vfs::{Vfs, VfsFile, VfsLock};

/// Which call a [`HookedFs`] hook runs before: one per method of [`Vfs`] and of
/// [`VfsFile`] (a file's calls are those of the files the [`HookedFs`] opened).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FsOp {
    /// [`Vfs::create_dir_all`].
    CreateDirAll,
    /// [`Vfs::create_dir`].
    CreateDir,
    /// [`Vfs::is_dir`].
    IsDir,
    /// [`Vfs::list`].
    List,
    /// [`Vfs::read`].
    Read,
    /// [`Vfs::open_read`].
    OpenRead,
    /// [`Vfs::create`].
    Create,
    /// [`Vfs::open_append`].
    OpenAppend,
    /// [`Vfs::rename`].
    Rename,
    /// [`Vfs::remove`].
    Remove,
    /// [`Vfs::sync_dir`].
    SyncDir,
    /// [`Vfs::lock`] and [`Vfs::lock_created`].
    Lock,
    /// [`Vfs::remove_dir`].
    RemoveDir,
    /// [`VfsFile::append`]; see [`FsHook::short_write`].
    Append,
    /// [`VfsFile::sync`].
    Sync,
    /// [`VfsFile::truncate`].
    Truncate,
}

/// The hook of a [`HookedFs`] built from a closure ([`HookedFs::new`]).
pub type BoxedFsHook = Box<dyn Fn(FsOp, &Path) -> io::Result<()> + Send + Sync>;

/// What a [`HookedFs`] runs before passing a call to the file system it wraps.
/// Every `Fn(FsOp, &Path) -> io::Result<()>` closure is one; a test type
/// implements it to keep state its test reads back through [`HookedFs::hook`].
pub trait FsHook: Send + Sync {
    /// Called before each call, `op` saying which, `path` the path it names (for a
    /// [`rename`](Vfs::rename) its `from`; for a file's call, the path the file
    /// was created or opened at). `Ok` passes the call on; `Err` fails it with
    /// that error, the wrapped file system untouched (but see
    /// [`short_write`](Self::short_write)). The hook may block or sleep first.
    fn before(&self, op: FsOp, path: &Path) -> io::Result<()>;

    /// When [`before`](Self::before) failed an [`append`](VfsFile::append) of
    /// `len` bytes: how many of them (at most `len`) reach the file before the
    /// error, a short write as a full disk makes. None by default.
    fn short_write(&self, len: usize) -> usize {
        let _ = len;
        0
    }
}

impl<F: Fn(FsOp, &Path) -> io::Result<()> + Send + Sync> FsHook for F {
    fn before(&self, op: FsOp, path: &Path) -> io::Result<()> {
        self(op, path)
    }
}

/// A [`Vfs`] that passes every call to `inner` (and every call of the files it
/// opens to theirs) after running its hook's [`before`](FsHook::before), which may
/// fail the call, block or sleep: to fail a chosen call, hold a sync until the test
/// lets it go on, or give every sync a known latency. The same idea as the core's
/// `conformance::hooked::HookedBackend`, one layer down: [`HookedFs::new`] takes a
/// closure, [`HookedFs::with_hook`] a type implementing [`FsHook`] that keeps state
/// the test reads back or steers through [`HookedFs::hook`]. Clones share the hook
/// (and the inner file system, when its clones share state, as
/// [`SimFs`](super::SimFs)'s do).
///
/// ```
/// use std::io;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use peerbook::backend::{Backend, BackendError, Durability, Space, WriteBatch};
/// use peerbook_file::testing::{FsOp, HookedFs, SimFs};
/// use peerbook_file::{FileBackend, FileOptions};
///
/// let failing = Arc::new(AtomicBool::new(false));
/// let armed = Arc::clone(&failing);
/// let fs = HookedFs::new(SimFs::new(1), move |op, _path| match op {
///     FsOp::Sync if armed.load(Ordering::Relaxed) => Err(io::Error::other("injected")),
///     _ => Ok(()),
/// });
/// let backend = FileBackend::open_with_vfs(Arc::new(fs), "/book", FileOptions::default())?;
/// let mut batch = WriteBatch::new();
/// batch.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
/// failing.store(true, Ordering::Relaxed); // the log's next fsync fails
/// assert!(matches!(backend.write(batch, Durability::Sync), Err(BackendError::Io(_))));
/// # Ok::<(), BackendError>(())
/// ```
pub struct HookedFs<V, H = BoxedFsHook> {
    inner: V,
    hook: Arc<H>,
}

impl<V: Vfs> HookedFs<V> {
    /// Wrap `inner`, calling `hook(op, path)` before each call.
    pub fn new(
        inner: V,
        hook: impl Fn(FsOp, &Path) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        Self::with_hook(inner, Box::new(hook))
    }
}

impl<V: Vfs, H: FsHook + 'static> HookedFs<V, H> {
    /// Wrap `inner`, calling `hook.before(..)` before each call.
    pub fn with_hook(inner: V, hook: H) -> Self {
        HookedFs {
            inner,
            hook: Arc::new(hook),
        }
    }

    /// The hook, borrowed (to read what it kept or to steer it).
    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// The wrapped file system, borrowed (its calls run no hook).
    pub fn inner(&self) -> &V {
        &self.inner
    }

    /// The wrapped file system back, the hook dropped.
    pub fn into_inner(self) -> V {
        self.inner
    }

    /// Run the hook before `op` on `path`, then `call` on the wrapped file system.
    fn run<T>(
        &self,
        op: FsOp,
        path: &Path,
        call: impl FnOnce(&V) -> io::Result<T>,
    ) -> io::Result<T> {
        self.hook.before(op, path)?;
        call(&self.inner)
    }
}

impl<V: Clone, H> Clone for HookedFs<V, H> {
    fn clone(&self) -> Self {
        HookedFs {
            inner: self.inner.clone(),
            hook: Arc::clone(&self.hook),
        }
    }
}

impl<V: fmt::Debug, H> fmt::Debug for HookedFs<V, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookedFs")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<V: Vfs, H: FsHook + 'static> HookedFs<V, H> {
    fn file(&self, path: &Path, file: Box<dyn VfsFile>) -> Box<dyn VfsFile> {
        Box::new(HookedFile {
            inner: file,
            hook: Arc::clone(&self.hook),
            path: path.to_path_buf(),
        })
    }
}

impl<V: Vfs, H: FsHook + 'static> Vfs for HookedFs<V, H> {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.run(FsOp::CreateDirAll, dir, |fs| fs.create_dir_all(dir))
    }

    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.run(FsOp::CreateDir, dir, |fs| fs.create_dir(dir))
    }

    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        self.run(FsOp::IsDir, path, |fs| fs.is_dir(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.run(FsOp::List, dir, |fs| fs.list(dir))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.run(FsOp::Read, path, |fs| fs.read(path))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
        self.run(FsOp::OpenRead, path, |fs| fs.open_read(path))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let file = self.run(FsOp::Create, path, |fs| fs.create(path))?;
        Ok(self.file(path, file))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let file = self.run(FsOp::OpenAppend, path, |fs| fs.open_append(path))?;
        Ok(self.file(path, file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.run(FsOp::Rename, from, |fs| fs.rename(from, to))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.run(FsOp::Remove, path, |fs| fs.remove(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.run(FsOp::SyncDir, dir, |fs| fs.sync_dir(dir))
    }

    fn lock(&self, path: &Path) -> io::Result<VfsLock> {
        self.run(FsOp::Lock, path, |fs| fs.lock(path))
    }

    fn lock_created(&self, path: &Path) -> io::Result<(VfsLock, bool)> {
        self.run(FsOp::Lock, path, |fs| fs.lock_created(path))
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        self.run(FsOp::RemoveDir, dir, |fs| fs.remove_dir(dir))
    }
}

/// A file opened through a [`HookedFs`]: its calls run the same hook.
struct HookedFile<H> {
    inner: Box<dyn VfsFile>,
    hook: Arc<H>,
    path: PathBuf,
}

impl<H> fmt::Debug for HookedFile<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookedFile")
            .field("inner", &self.inner)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<H: FsHook> VfsFile for HookedFile<H> {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.hook.before(FsOp::Append, &self.path) {
            let written = self.hook.short_write(data.len()).min(data.len());
            if written > 0 {
                self.inner.append(&data[..written])?;
            }
            return Err(e);
        }
        self.inner.append(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.hook.before(FsOp::Sync, &self.path)?;
        self.inner.sync()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.hook.before(FsOp::Truncate, &self.path)?;
        self.inner.truncate(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::SimFs;
    use std::sync::Mutex;

    /// Records every call and fails the ops it is told to.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<(FsOp, PathBuf)>>,
        fail: Mutex<Vec<FsOp>>,
    }

    impl FsHook for Recorder {
        fn before(&self, op: FsOp, path: &Path) -> io::Result<()> {
            self.seen.lock().unwrap().push((op, path.to_path_buf()));
            if self.fail.lock().unwrap().contains(&op) {
                return Err(io::Error::other(format!("injected {op:?}")));
            }
            Ok(())
        }

        fn short_write(&self, len: usize) -> usize {
            len / 2
        }
    }

    #[test]
    fn every_call_runs_the_hook_with_its_path_then_passes_through() {
        let sim = SimFs::new(3);
        let fs = HookedFs::with_hook(sim.clone(), Recorder::default());
        let (dir, a, b) = (Path::new("/d"), Path::new("/d/a"), Path::new("/d/b"));
        fs.create_dir_all(dir).unwrap();
        // SimFs has every directory (the default `create_dir`)
        let there = fs.create_dir(dir).unwrap_err();
        assert_eq!(there.kind(), io::ErrorKind::AlreadyExists);
        assert!(fs.is_dir(dir).unwrap());
        let mut file = fs.create(a).unwrap();
        file.append(b"hello").unwrap();
        file.sync().unwrap();
        file.truncate(4).unwrap();
        drop(fs.open_append(a).unwrap());
        fs.rename(a, b).unwrap();
        fs.sync_dir(dir).unwrap();
        assert_eq!(fs.list(dir).unwrap(), ["b"]);
        assert_eq!(fs.read(b).unwrap(), b"hell");
        let mut streamed = Vec::new();
        io::Read::read_to_end(&mut fs.open_read(b).unwrap(), &mut streamed).unwrap();
        assert_eq!(streamed, b"hell");
        let lock = fs.lock(Path::new("/d/LOCK")).unwrap();
        drop(lock);
        let (lock, created) = fs.lock_created(Path::new("/d/LOCK")).unwrap();
        assert!(!created, "the first lock made it");
        drop(lock);
        fs.remove(b).unwrap();
        assert_eq!(sim.contents(b), None, "passed to the inner file system");
        fs.remove(Path::new("/d/LOCK")).unwrap();
        fs.remove_dir(dir).unwrap();
        use FsOp::*;
        let expected = [
            (CreateDirAll, "/d"),
            (CreateDir, "/d"),
            (IsDir, "/d"),
            (Create, "/d/a"),
            (Append, "/d/a"),
            (Sync, "/d/a"),
            (Truncate, "/d/a"),
            (OpenAppend, "/d/a"),
            (Rename, "/d/a"),
            (SyncDir, "/d"),
            (List, "/d"),
            (Read, "/d/b"),
            (OpenRead, "/d/b"),
            (Lock, "/d/LOCK"),
            (Lock, "/d/LOCK"),
            (Remove, "/d/b"),
            (Remove, "/d/LOCK"),
            (RemoveDir, "/d"),
        ]
        .map(|(op, p)| (op, PathBuf::from(p)));
        assert_eq!(*fs.hook().seen.lock().unwrap(), expected);
    }

    #[test]
    fn a_failing_hook_fails_the_call_and_an_append_writes_its_short_prefix() {
        let sim = SimFs::new(5);
        let fs = HookedFs::with_hook(sim.clone(), Recorder::default());
        let path = Path::new("/f");
        let mut file = fs.create(path).unwrap();
        *fs.hook().fail.lock().unwrap() = vec![FsOp::Append, FsOp::Sync, FsOp::Rename];
        let err = file.append(b"abcdef").unwrap_err();
        assert_eq!(err.to_string(), "injected Append");
        assert_eq!(
            sim.contents(path).unwrap(),
            b"abc",
            "half the data, then the error"
        );
        assert!(file.sync().is_err());
        assert!(fs.rename(path, Path::new("/g")).is_err());
        assert!(
            sim.contents(path).is_some(),
            "the failed rename did not happen"
        );
        fs.hook().fail.lock().unwrap().clear();
        file.append(b"x").unwrap();
        assert_eq!(sim.contents(path).unwrap(), b"abcx");
    }

    #[test]
    fn a_closure_is_a_hook_and_a_clone_runs_it() {
        let fs = HookedFs::new(SimFs::new(7), |op, _| match op {
            FsOp::SyncDir => Err(io::Error::other("no")),
            _ => Ok(()),
        });
        let other = fs.clone();
        assert!(other.sync_dir(Path::new("/")).is_err());
        assert!(other.create_dir_all(Path::new("/x")).is_ok());
        assert!(format!("{fs:?}").starts_with("HookedFs"));
    }
}
