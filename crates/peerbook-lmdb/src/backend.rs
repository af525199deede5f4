//! [`LmdbBackend`]: the [`Backend`] trait over one LMDB environment.
//!
//! This file holds the handle's state, `open` and the trait impl; the submodules
//! hold the map guard and map growth (`map`), transactions, scans and views
//! (`txn`), opening or swapping the environment's files (`env`), and telling a
//! book from another program's environment without writing to it (`probe`).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use heed::types::Bytes;
use heed::{Database, Env, WithoutTls};
use peerbook::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, NewDirs, Op, ReadView,
    Space, Visit, WriteBatch,
};

use crate::create;
use crate::error::{engine, from_heed, from_io, ENGINE};
use crate::lock::{DirLock, LOCK_FILE};
use crate::options::{LmdbOptions, MIN_MAP_SIZE};
use crate::value::Layout;

mod env;
mod map;
mod probe;
mod txn;

use env::open_env;
use map::{round_down, round_up, Shared};
use txn::LmdbView;

/// LMDB's data file inside the book's directory.
const DATA_FILE: &str = "data.mdb";
/// LMDB's reader table and writer mutex inside the book's directory.
const LMDB_LOCK_FILE: &str = "lock.mdb";
/// The compacted copy a [`Backend::clear`] writes before renaming it over `data.mdb`.
const CLEAR_FILE: &str = "data.mdb.clear";

/// One named database per [`Space`], raw bytes in and out.
type Db = Database<'static, Bytes, Bytes>;

/// Source of [`LmdbBackend::id`]s.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A [`Backend`] over an LMDB environment (through `heed`), in one directory.
///
/// See the [crate docs](crate) for when to choose it and how it maps the trait.
///
/// ```
/// use peerbook::backend::{Backend, Durability, Space, WriteBatch};
/// use peerbook_lmdb::{LmdbBackend, LmdbOptions};
///
/// # fn main() -> Result<(), peerbook::backend::BackendError> {
/// # let dir = tempfile::tempdir()?;
/// let book = LmdbBackend::open(dir.path().join("book"), LmdbOptions::default())?;
/// let mut batch = WriteBatch::new();
/// batch.put(Space::Peers, b"alice".to_vec(), b"record".to_vec());
/// book.write(batch, Durability::Sync)?;
/// assert_eq!(book.get(Space::Peers, b"alice")?, Some(b"record".to_vec()));
/// # Ok(()) }
/// ```
pub struct LmdbBackend {
    // Fields drop in declaration order: the environment closes before the directory
    // lock is released, so a new handle can never open files this one still maps.
    /// The environment and its databases; `None` only after a failed
    /// [`clear`](Backend::clear) swap (with `broken` set). Read-locked (briefly, or
    /// for a transaction's life) only under the map guard; write-locked only by the
    /// swap, which holds the map guard exclusively, so no reader ever waits on it.
    handle: RwLock<Option<Handle>>,
    /// Set when a commit (which syncs its data pages) or an fsync after a commit
    /// failed: the commit may or may not be durable, and the page cache state is
    /// unknown, so every later write is refused.
    sync_failed: AtomicBool,
    /// One live book per backend instance.
    claim: BookClaim,
    /// The map guard. Every LMDB call that may touch the memory map (every
    /// transaction, from begin to end, `mdb_env_sync`, `mdb_env_info`) holds it
    /// shared; only a resize holds it exclusively.
    map_lock: RwLock<()>,
    /// Serializes writers (write, clear, growth) within the process.
    writer: Mutex<()>,
    /// Set when a resize failed after LMDB had unmapped the old map: the environment
    /// must not be touched again (LMDB would read freed memory). Checked under the
    /// map guard.
    broken: AtomicBool,
    /// Identifies this handle in [`HELD`](map::HELD).
    id: u64,
    /// The OS page size; map sizes are multiples of it.
    page_size: usize,
    /// The effective cap of the map (page-aligned).
    max_map_size: usize,
    /// LMDB's largest key (511 bytes with the default build).
    max_key_size: usize,
    /// The directory, as given to [`LmdbBackend::open`].
    path: PathBuf,
    /// The options this handle was opened with.
    options: LmdbOptions,
    /// The exclusive directory lock; released last.
    _lock: DirLock,
}

/// An open environment and its four databases.
struct Handle {
    /// Read transactions are not tied to threads (`MDB_NOTLS`).
    env: Env<WithoutTls>,
    /// One database per space, in [`Space::ALL`] order.
    dbs: [Db; 4],
    /// How this environment lays out its values (see [`value`](crate::value)).
    layout: Layout,
}

impl LmdbBackend {
    /// Whether this backend makes a file named `name` in a store directory:
    /// LMDB's `data.mdb` and `lock.mdb`, the `LOCK` file and a clear's copy
    /// `data.mdb.clear`. Not `creating`, a new store's scratch directory, which is
    /// the backend's only as a creation leaves it: see
    /// [`owns_entry`](Self::owns_entry).
    pub fn owns_file(name: &str) -> bool {
        [DATA_FILE, LMDB_LOCK_FILE, LOCK_FILE, CLEAR_FILE].contains(&name)
    }

    /// Whether the entry `name` of directory `dir` is one this backend makes: a
    /// file [`owns_file`](Self::owns_file) names, or `creating` as an interrupted
    /// creation leaves it, a directory (not a symbolic link) holding nothing but
    /// LMDB's `data.mdb` and `lock.mdb`, as plain files. Such a `creating` is
    /// removed at [`open`](Self::open) (its files, then the directory); any other
    /// `creating` (a folder of other files, a plain file) is not the backend's and
    /// `open` leaves it as it is, refusing to create a book beside it. Reads the
    /// directory `creating`, if it is one; a missing entry is `false`.
    pub fn owns_entry(dir: impl AsRef<Path>, name: &str) -> io::Result<bool> {
        if name == crate::create::CREATING_DIR {
            let scratch = dir.as_ref().join(name);
            return Ok(crate::create::scratch_is_ours(&scratch)?.unwrap_or(false));
        }
        Ok(Self::owns_file(name))
    }

    /// Whether an entry named `name` marks a store of this backend: `data.mdb`.
    pub fn marks_store(name: &str) -> bool {
        name == DATA_FILE
    }

    /// Whether [`Durability::Buffered`] writes cost much less (a tenth) than `Sync`
    /// ones on this backend: `false`. A buffered commit still syncs its data pages
    /// and skips only the meta-page sync (one `fdatasync` instead of two, about
    /// three quarters of a Sync write's time), because LMDB has no cheaper mode that
    /// survives a power cut without corrupting the book (see the crate docs,
    /// "Buffered saves one sync"). Benchmarks that compare the two modes read it to
    /// leave LMDB out of that comparison.
    pub const CHEAP_BUFFERED: bool = false;

    /// Opens (creating it if missing) the book in directory `path`.
    ///
    /// The directory and its parents are created as needed. Its `LOCK` file is locked
    /// exclusively before LMDB touches anything: while this handle lives, any other
    /// open of the same directory, from this process or another, fails with
    /// [`BackendError::Locked`] (naming the path) and changes nothing.
    ///
    /// A scratch directory `creating` that an interrupted creation left is removed
    /// (LMDB's files in it, then the directory; see [`owns_entry`](Self::owns_entry)).
    /// Any other entry of that name stays as it is.
    ///
    /// Errors: [`BackendError::Locked`] as above; [`BackendError::Corrupted`] when
    /// `data.mdb` is not a valid LMDB file; [`BackendError::Io`] when the directory
    /// cannot be created or read, or (kind [`io::ErrorKind::AlreadyExists`]) when
    /// there is no book yet and a `creating` the backend did not make is in the way;
    /// [`BackendError::Engine`] for anything else LMDB refuses.
    ///
    /// An open that fails once it holds the lock (refused or not) removes what it
    /// made, still under the lock: LMDB's files of a new book (`lock.mdb` only
    /// with a `data.mdb` it made: beside an existing one, another LMDB program may
    /// be using it), the scratch directory, the `LOCK` file (on Unix only, where
    /// the lock is checked to be on the linked file), then the directories it
    /// created, innermost first, each only if empty: those its own
    /// `create_dir` made, never one that was there, that another process made
    /// meanwhile, or a symbolic link ([`NewDirs`]). What was there before stays;
    /// what cannot be removed is logged (`tracing::warn!`). An open whose lock
    /// itself fails (held: [`BackendError::Locked`]; or [`BackendError::Io`], such
    /// as `ENOLCK` on NFS) removes only the directories it created, each only if
    /// empty: a `LOCK` file it created just before stays, since without the lock
    /// another opener may already hold that file.
    pub fn open(path: impl AsRef<Path>, options: LmdbOptions) -> Result<Self, BackendError> {
        let path = path.as_ref().to_path_buf();
        // What this open makes, it removes again if it fails: a refused open
        // leaves the user's file system as it found it.
        // Only the directories it made itself: not one there before, nor one
        // another process made meanwhile, nor a symbolic link.
        let new_dirs = match NewDirs::create(&path) {
            Ok(made) => made,
            Err((made, e)) => {
                made.undo_failed_open("peerbook-lmdb");
                return Err(from_io(e, &path));
            }
        };
        new_dirs.sync_parents(&path, "peerbook-lmdb");
        let undo_dirs = || new_dirs.undo_failed_open("peerbook-lmdb");
        let (lock, made_lock) = DirLock::acquire(&path).inspect_err(|_| undo_dirs())?;
        let before = create::FilesBefore::note(&path);
        match Self::open_locked(path.clone(), options) {
            Ok(opened) => Ok(opened(lock)),
            Err(e) => {
                before.remove_made(&path);
                if made_lock {
                    // Removed while still held: an opener that opened this file
                    // before finds it unlinked once it has the lock, and starts
                    // over (`try_lock_file_made`).
                    let lock_path = path.join(LOCK_FILE);
                    if let Err(e) = fs::remove_file(&lock_path) {
                        tracing::warn!(file = %lock_path.display(), error = %e, "peerbook-lmdb: a failed open could not remove the LOCK it created");
                    }
                }
                drop(lock);
                undo_dirs();
                Err(e)
            }
        }
    }

    /// The rest of [`open`](Self::open), under the directory lock: the backend,
    /// once given the lock.
    fn open_locked(
        path: PathBuf,
        options: LmdbOptions,
    ) -> Result<impl FnOnce(DirLock) -> Self, BackendError> {
        let page_size = page_size::get().max(1);
        let min_map = round_up(MIN_MAP_SIZE, page_size);
        let max_map_size = round_down(options.max_map_size, page_size).max(min_map);
        create::ensure_created(&path, DATA_FILE, min_map)?;
        // Reopening a grown book: start with room to spare rather than growing (and
        // retrying) on the first write.
        let existing = match fs::metadata(path.join(DATA_FILE)) {
            Ok(meta) => usize::try_from(meta.len()).unwrap_or(usize::MAX),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(from_io(e, &path)),
        };
        let initial = round_up(
            options
                .initial_map_size
                .max(existing.saturating_mul(2))
                .max(min_map),
            page_size,
        )
        .min(max_map_size);

        // A compacted copy left by a clear that crashed before its rename: the
        // data file it was to replace is the current book.
        match fs::remove_file(path.join(CLEAR_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(from_io(e, &path)),
            _ => {}
        }
        let handle = open_env(&path, &options, initial)?;
        let max_key_size = handle.env.max_key_size();

        Ok(move |lock| LmdbBackend {
            handle: RwLock::new(Some(handle)),
            sync_failed: AtomicBool::new(false),
            claim: BookClaim::new(),
            map_lock: RwLock::new(()),
            writer: Mutex::new(()),
            broken: AtomicBool::new(false),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            page_size,
            max_map_size,
            max_key_size,
            path,
            options,
            _lock: lock,
        })
    }

    /// The book's directory, as given to [`open`](Self::open).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options this handle was opened with.
    pub fn options(&self) -> &LmdbOptions {
        &self.options
    }

    /// The current size of the memory map in bytes: the most data the book can hold
    /// before it grows the map again (up to [`LmdbOptions::max_map_size`]).
    pub fn map_size(&self) -> Result<usize, BackendError> {
        let _shared = self.shared()?;
        Ok(self.handle()?.env.info().map_size)
    }

    fn unusable(&self) -> BackendError {
        engine(format!(
            "the LMDB environment at {} could not be reopened after an earlier failure; \
             close and reopen the book",
            self.path.display()
        ))
    }

    fn err(&self, e: heed::Error) -> BackendError {
        from_heed(e, &self.path)
    }

    /// Whether LMDB could hold `key` at all (non-empty, at most the maximum key size).
    fn storable_key(&self, key: &[u8]) -> bool {
        !key.is_empty() && key.len() <= self.max_key_size
    }
}

impl Handle {
    fn db(&self, space: Space) -> &Db {
        &self.dbs[space.index()]
    }
}

impl Backend for LmdbBackend {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.read(|h, txn| self.get_in(&h.dbs, h.layout, txn, space, key))
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.read(|h, txn| self.scan_in(&h.dbs, h.layout, txn, space, range, direction, visitor))
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.check_batch(&batch)?;
        self.commit(durability, |h, txn| {
            for op in batch.ops() {
                match op {
                    Op::Put { space, key, value } => {
                        h.db(*space).put(txn, key, &h.layout.encode(key, value))?
                    }
                    // A key LMDB cannot hold is never present: deleting it is a no-op
                    // (and LMDB would refuse to look it up).
                    Op::Delete { space, key } => {
                        if self.storable_key(key) {
                            h.db(*space).delete(txn, key)?;
                        }
                    }
                }
            }
            Ok(())
        })
    }

    fn flush(&self) -> Result<(), BackendError> {
        let _shared = self.shared()?;
        self.check_synced()?;
        self.sync()
    }

    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        let shared = self.shared()?;
        let handle = self.handle()?;
        // The transaction owns a clone of the environment, so the view does not
        // borrow the handle lock; the shared map guard it keeps makes a clear's swap
        // (which takes that guard exclusively) wait until the view is dropped.
        let txn = handle
            .env
            .clone()
            .static_read_txn()
            .map_err(|e| self.err(e))?;
        Ok(Box::new(LmdbView {
            txn,
            dbs: handle.dbs,
            layout: handle.layout,
            _shared: shared,
            backend: self,
        }))
    }

    fn book_claim(&self) -> BookClaim {
        self.claim.clone()
    }

    /// Empties every database in one synced transaction (the commit point: a crash
    /// leaves the old book or the empty one), then replaces `data.mdb` by a
    /// compacted copy, which holds no free page, so no byte of a former entry stays
    /// in the directory: the copy is written to `data.mdb.clear` and synced, the
    /// environment is closed, the copy renamed over `data.mdb`, the directory
    /// synced, and the environment reopened. Readers and writers of this handle
    /// wait meanwhile (the swap holds the map guard exclusively). A crash before the
    /// rename leaves the cleared book with the old bytes in its free pages until the
    /// next clear; open removes the stale copy. If the environment cannot be
    /// reopened, the handle refuses everything until the book is reopened.
    fn clear(&self, _durability: Durability) -> Result<(), BackendError> {
        self.commit(Durability::Sync, |h, txn| {
            for db in &h.dbs {
                db.clear(txn)?;
            }
            Ok(())
        })?;
        self.rewrite_data_file()
    }

    /// Bytes allocated on disk to the book's files: `data.mdb`, LMDB's `lock.mdb`
    /// and our `LOCK`.
    ///
    /// On Unix this counts allocated blocks (`st_blocks` × 512, what `du` reports),
    /// elsewhere the files' lengths. LMDB reuses freed pages but never shrinks
    /// `data.mdb`, so the figure does not drop after deletes or [`clear`](Backend::clear).
    fn disk_usage(&self) -> Result<u64, BackendError> {
        let mut total = 0u64;
        for name in [DATA_FILE, LMDB_LOCK_FILE, LOCK_FILE] {
            match fs::metadata(self.path.join(name)) {
                Ok(meta) => total = total.saturating_add(allocated_bytes(&meta)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(from_io(e, &self.path)),
            }
        }
        Ok(total)
    }

    fn engine_name(&self) -> &'static str {
        ENGINE
    }
}

impl Drop for LmdbBackend {
    /// Closing syncs, best effort: buffered writes then survive a power loss after the
    /// book is closed. Errors cannot be reported here; call
    /// [`flush`](Backend::flush) first to see them.
    fn drop(&mut self) {
        if let Ok(_shared) = self.shared() {
            if let Ok(handle) = self.handle() {
                let _ = handle.env.force_sync();
            }
        }
    }
}

impl fmt::Debug for LmdbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbBackend")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
fn allocated_bytes(meta: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks().saturating_mul(512)
}

#[cfg(not(unix))]
fn allocated_bytes(meta: &fs::Metadata) -> u64 {
    meta.len()
}
