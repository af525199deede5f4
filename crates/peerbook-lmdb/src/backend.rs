//! [`LmdbBackend`]: the [`Backend`] trait over one LMDB environment.

use std::cell::RefCell;
use std::convert::Infallible;
use std::fmt;
use std::fs;
use std::io;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use heed::types::Bytes;
use heed::{
    CommitOrAbort, CompactionOption, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn,
    RwTxn, WithoutTls,
};
use peerbook::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, Op, ReadView, Space, Visit,
    WriteBatch,
};

use crate::create;
use crate::error::{engine, from_heed, from_heed_at_open, from_io, ENGINE};
use crate::lock::{DirLock, LOCK_FILE};
use crate::options::{LmdbOptions, MIN_MAP_SIZE};

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

thread_local! {
    /// Ids of the backends whose map guard this thread holds, once per open read.
    ///
    /// It lets a read nested in a scan visitor (a `get` from inside `scan`) skip
    /// taking the guard again, which could deadlock behind a waiting resize, and lets
    /// writes refuse to start where they could deadlock (see [`LmdbBackend::commit`]).
    static HELD: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

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
    /// Set when an fsync after a commit failed: the commit may or may not be durable,
    /// and the page cache state is unknown, so every later write is refused.
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
    /// Identifies this handle in [`HELD`].
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
}

impl LmdbBackend {
    /// Opens (creating it if missing) the book in directory `path`.
    ///
    /// The directory and its parents are created as needed. Its `LOCK` file is locked
    /// exclusively before LMDB touches anything: while this handle lives, any other
    /// open of the same directory, from this process or another, fails with
    /// [`BackendError::Locked`] (naming the path) and changes nothing.
    ///
    /// Errors: [`BackendError::Locked`] as above; [`BackendError::Corrupted`] when
    /// `data.mdb` is not a valid LMDB file; [`BackendError::Io`] when the directory
    /// cannot be created or read; [`BackendError::Engine`] for anything else LMDB
    /// refuses.
    pub fn open(path: impl AsRef<Path>, options: LmdbOptions) -> Result<Self, BackendError> {
        let path = path.as_ref().to_path_buf();
        fs::create_dir_all(&path).map_err(|e| from_io(e, &path))?;
        let lock = DirLock::acquire(&path)?;

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

        Ok(LmdbBackend {
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

    /// The environment and databases, read-locked. Call only under the map guard.
    fn handle(&self) -> Result<HandleRef<'_>, BackendError> {
        let guard = self.handle.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(self.unusable());
        }
        Ok(HandleRef(guard))
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

    /// Whether this thread is inside a read (a scan visitor) of this backend.
    fn held_by_this_thread(&self) -> bool {
        HELD.try_with(|held| held.try_borrow().is_ok_and(|ids| ids.contains(&self.id)))
            .unwrap_or(false)
    }

    /// Takes the map guard shared (or notes a nested use if this thread holds it).
    fn shared(&self) -> Result<Shared<'_>, BackendError> {
        let guard = if self.held_by_this_thread() {
            None
        } else {
            // The lock guards `()`: a poisoned lock protects nothing broken.
            Some(self.map_lock.read().unwrap_or_else(PoisonError::into_inner))
        };
        if self.broken.load(Ordering::Acquire) {
            return Err(engine(format!(
                "the LMDB map at {} could not be remapped after growing; close and reopen \
                 the book",
                self.path.display()
            )));
        }
        let registered = HELD
            .try_with(|held| {
                held.try_borrow_mut()
                    .map(|mut ids| ids.push(self.id))
                    .is_ok()
            })
            .unwrap_or(false);
        Ok(Shared {
            _guard: guard,
            id: self.id,
            registered,
        })
    }

    /// Runs `f` in a read transaction, under the shared map guard.
    fn read<R>(
        &self,
        f: impl FnOnce(&Handle, &RoTxn<'_, WithoutTls>) -> heed::Result<R>,
    ) -> Result<R, BackendError> {
        let _shared = self.shared()?;
        let handle = self.handle()?;
        let txn = handle.env.read_txn().map_err(|e| self.err(e))?;
        let out = f(&handle, &txn).map_err(|e| self.err(e));
        // The transaction ends before the guard is released (locals drop in reverse
        // order; explicit here for the reader).
        drop(txn);
        out
    }

    /// Refuses, before any transaction starts, what LMDB would refuse in a batch.
    fn check_batch(&self, batch: &WriteBatch) -> Result<(), BackendError> {
        for op in batch.ops() {
            if let Op::Put { space, key, .. } = op {
                if key.is_empty() {
                    return Err(engine(format!(
                        "LMDB cannot store an empty key (put in {space}); nothing was written"
                    )));
                }
                if key.len() > self.max_key_size {
                    return Err(engine(format!(
                        "a key of {} bytes (put in {space}) exceeds LMDB's maximum key size of \
                         {} bytes; nothing was written",
                        key.len(),
                        self.max_key_size
                    )));
                }
            }
        }
        Ok(())
    }

    /// Runs `fill` in one write transaction and commits it, growing the map and
    /// retrying from scratch while LMDB reports `MDB_MAP_FULL` and the cap allows;
    /// then syncs if `durability` is `Sync`.
    ///
    /// A write from inside a scan visitor of this same backend is refused: the visitor
    /// holds the map guard shared, and waiting there for the writer mutex could
    /// deadlock against a writer that waits for the guard to grow the map.
    fn commit(
        &self,
        durability: Durability,
        mut fill: impl FnMut(&Handle, &mut RwTxn<'_>) -> heed::Result<()>,
    ) -> Result<(), BackendError> {
        if self.held_by_this_thread() {
            return Err(engine(
                "a write to an LMDB book cannot start inside a scan visitor of the same book; \
                 collect what the scan finds and write after it returns",
            ));
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.check_synced()?;
        loop {
            let shared = self.shared()?;
            // No resize can happen while we hold the writer mutex and the guard.
            let observed = self.handle()?.env.info().map_size;
            match self.try_commit(&mut fill) {
                Ok(()) => {
                    if durability == Durability::Sync {
                        self.sync()?;
                    }
                    return Ok(());
                }
                Err(heed::Error::Mdb(MdbError::MapFull)) => {
                    // The transaction is gone (aborted); nothing of the batch remains.
                    drop(shared);
                    self.grow(observed)?;
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    fn try_commit(
        &self,
        fill: &mut impl FnMut(&Handle, &mut RwTxn<'_>) -> heed::Result<()>,
    ) -> Result<(), heed::Error> {
        let Ok(handle) = self.handle() else {
            return Err(heed::Error::Mdb(MdbError::Panic));
        };
        let mut txn = handle.env.write_txn()?;
        match fill(&handle, &mut txn) {
            Ok(()) => txn.commit(),
            Err(e) => {
                txn.abort();
                Err(e)
            }
        }
    }

    /// Grows the map from `observed` bytes: doubles it, up to the cap. Called with the
    /// writer mutex held and no transaction open by this thread.
    fn grow(&self, observed: usize) -> Result<(), BackendError> {
        if observed >= self.max_map_size {
            return Err(BackendError::full(format!(
                "the LMDB book at {} needs more than its max_map_size of {} bytes; the batch \
                 was not written (raise LmdbOptions::max_map_size)",
                self.path.display(),
                self.max_map_size
            )));
        }
        let target = round_up(
            observed
                .saturating_mul(2)
                .max(observed.saturating_add(self.page_size)),
            self.page_size,
        )
        .min(self.max_map_size);
        let _exclusive = self
            .map_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.broken.load(Ordering::Acquire) {
            return Err(engine("the LMDB map is unusable after a failed resize"));
        }
        let handle = self.handle()?;
        // SAFETY: LMDB allows `mdb_env_set_mapsize` on an open environment only while
        // no transaction is active in the process (it unmaps and remaps the file), and
        // nothing may read the map meanwhile. Here:
        // - every transaction this backend begins after `open` returned lives inside a
        //   shared hold of `map_lock`: read transactions in `read` and `view` (a view
        //   owns its guard and drops its transaction first), write transactions in
        //   `commit` (the only three places that begin one; each ends the transaction
        //   before releasing the guard), and the transaction of `open` ended before the
        //   backend existed. We hold `map_lock` exclusively, so no transaction is open;
        // - `mdb_env_sync` and `mdb_env_info`, which read the meta pages through the
        //   map, also only run under the shared guard (`flush`, `commit`, `map_size`,
        //   `drop`), so they cannot race the remap;
        // - the only transactions that outlive a borrow of the `Env` are the views'
        //   static read transactions (over a clone of the `Env`); each view owns a
        //   shared hold of `map_lock` and drops its transaction before that hold, so
        //   none is open while we hold `map_lock` exclusively;
        // - no other process has the environment open: the directory lock, taken
        //   before the environment opened, excludes every other handle;
        // - `target` is a multiple of the OS page size, as heed requires.
        let resized = unsafe { handle.env.resize(target) };
        resized.map_err(|e| {
            // LMDB unmaps the old map before mapping the new one: after a failure the
            // environment has no valid map and must not be used again.
            self.broken.store(true, Ordering::Release);
            engine(format!(
                "growing the LMDB map at {} to {target} bytes failed ({}); close and reopen \
                 the book",
                self.path.display(),
                self.err(e)
            ))
        })
    }
}

impl LmdbBackend {
    /// `mdb_env_sync(force)`; a failure refuses every later write (as the file
    /// backend does): after a failed fsync the kernel may have dropped dirty pages.
    fn sync(&self) -> Result<(), BackendError> {
        self.handle()?.env.force_sync().map_err(|e| {
            self.sync_failed.store(true, Ordering::Release);
            self.err(e)
        })
    }

    fn check_synced(&self) -> Result<(), BackendError> {
        if self.sync_failed.load(Ordering::Acquire) {
            return Err(engine(format!(
                "an fsync of the LMDB book at {} failed; writes are refused until it is \
                 reopened",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// The body of every scan: visit `range` of `space` in `txn`.
    fn scan_in(
        dbs: &[Db; 4],
        txn: &RoTxn<'_, WithoutTls>,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> heed::Result<()> {
        let Some(bounds) = lmdb_bounds(range) else {
            return Ok(());
        };
        let db = &dbs[space.index()];
        match direction {
            Direction::Forward => {
                for entry in db.range(txn, &bounds)? {
                    let (key, value) = entry?;
                    if let ControlFlow::Break(()) = visitor(key, value) {
                        break;
                    }
                }
            }
            Direction::Reverse => {
                for entry in db.rev_range(txn, &bounds)? {
                    let (key, value) = entry?;
                    if let ControlFlow::Break(()) = visitor(key, value) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The second half of [`Backend::clear`]: swap `data.mdb` for a compacted copy.
    fn rewrite_data_file(&self) -> Result<(), BackendError> {
        if self.held_by_this_thread() {
            return Err(engine(
                "a clear of an LMDB book cannot run inside a scan visitor of the same book",
            ));
        }
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let _exclusive = self
            .map_lock
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if self.broken.load(Ordering::Acquire) {
            return Err(self.unusable());
        }
        let mut slot: RwLockWriteGuard<'_, Option<Handle>> =
            self.handle.write().unwrap_or_else(PoisonError::into_inner);
        let Some(handle) = slot.as_ref() else {
            return Err(self.unusable());
        };
        let copy = self.path.join(CLEAR_FILE);
        let map_size = handle.env.info().map_size;
        let written = handle
            .env
            .copy_to_path(&copy, CompactionOption::Enabled)
            .map_err(|e| self.err(e))
            .and_then(|file| {
                // The copy is created with the default mode; it replaces data.mdb,
                // which must stay as private as it was.
                let private = fs::metadata(self.path.join(DATA_FILE))
                    .map(|m| m.permissions())
                    .and_then(|perms| file.set_permissions(perms));
                private
                    .and_then(|()| file.sync_all())
                    .map_err(|e| from_io(e, &copy))
            });
        if let Err(e) = written {
            let _ = fs::remove_file(&copy);
            return Err(e);
        }
        // From here the handle is closed: on failure it stays closed (`handle`
        // refuses every later call).
        if let Some(old) = slot.take() {
            old.env.prepare_for_closing().wait();
        }
        fs::rename(&copy, self.path.join(DATA_FILE)).map_err(|e| from_io(e, &copy))?;
        fs::File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| from_io(e, &self.path))?;
        *slot = Some(open_env(&self.path, &self.options, map_size)?);
        Ok(())
    }
}

/// A [`ReadView`] of an [`LmdbBackend`]: one read transaction, begun and ended
/// inside a shared hold of the map lock (fields drop in order: the transaction
/// first). While a view lives, the map cannot grow (a writer that needs more room
/// waits for it), a clear waits for it, and its thread cannot write (refused, as
/// inside a scan visitor).
struct LmdbView<'a> {
    txn: RoTxn<'static, WithoutTls>,
    dbs: [Db; 4],
    _shared: Shared<'a>,
    backend: &'a LmdbBackend,
}

impl ReadView for LmdbView<'_> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if !self.backend.storable_key(key) {
            return Ok(None);
        }
        let value = self.dbs[space.index()].get(&self.txn, key);
        value
            .map(|v| v.map(<[u8]>::to_vec))
            .map_err(|e| self.backend.err(e))
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        LmdbBackend::scan_in(&self.dbs, &self.txn, space, range, direction, visitor)
            .map_err(|e| self.backend.err(e))
    }
}

/// A read lock of [`LmdbBackend::handle`], known to hold an open environment.
struct HandleRef<'a>(RwLockReadGuard<'a, Option<Handle>>);

impl std::ops::Deref for HandleRef<'_> {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        match &*self.0 {
            Some(handle) => handle,
            // `LmdbBackend::handle` builds a HandleRef only over `Some`.
            None => unreachable!("HandleRef over a closed environment"),
        }
    }
}

impl Handle {
    fn db(&self, space: Space) -> &Db {
        &self.dbs[space.index()]
    }
}

/// A shared hold of a backend's map guard, registered in [`HELD`] for its lifetime.
struct Shared<'a> {
    /// `None` when the thread already held the guard (a nested read).
    _guard: Option<RwLockReadGuard<'a, ()>>,
    id: u64,
    registered: bool,
}

impl Drop for Shared<'_> {
    fn drop(&mut self) {
        if self.registered {
            let id = self.id;
            let _ = HELD.try_with(|held| {
                if let Ok(mut ids) = held.try_borrow_mut() {
                    if let Some(pos) = ids.iter().rposition(|held_id| *held_id == id) {
                        ids.swap_remove(pos);
                    }
                }
            });
        }
    }
}

impl Backend for LmdbBackend {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        if !self.storable_key(key) {
            return Ok(None);
        }
        self.read(|h, txn| Ok(h.db(space).get(txn, key)?.map(<[u8]>::to_vec)))
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.read(|h, txn| Self::scan_in(&h.dbs, txn, space, range, direction, visitor))
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.check_batch(&batch)?;
        self.commit(durability, |h, txn| {
            for op in batch.ops() {
                match op {
                    Op::Put { space, key, value } => h.db(*space).put(txn, key, value)?,
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

/// A lower and an upper bound, as heed's range iterators take them.
type LmdbBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// The bounds to hand LMDB for `range`, or `None` when no stored key can match.
///
/// LMDB holds no empty key and refuses to seek to one: an empty lower bound is no
/// bound at all, an empty upper bound leaves nothing.
fn lmdb_bounds(range: KeyRange<'_>) -> Option<LmdbBounds<'_>> {
    if range.is_empty() {
        return None;
    }
    let lower = match range.lower {
        Bound::Included([]) | Bound::Excluded([]) => Bound::Unbounded,
        other => other,
    };
    if let Bound::Included([]) | Bound::Excluded([]) = range.upper {
        return None;
    }
    Some((lower, range.upper))
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

/// Opens the environment in `path` with a map of `map_size` bytes and creates (or
/// opens) the four databases. The caller holds the directory lock.
fn open_env(path: &Path, options: &LmdbOptions, map_size: usize) -> Result<Handle, BackendError> {
    let mut builder = EnvOpenOptions::new().read_txn_without_tls();
    builder
        .map_size(map_size)
        .max_dbs(Space::ALL.len() as u32)
        .max_readers(options.max_readers.max(1));
    // SAFETY: heed marks this flag unsafe because it weakens LMDB's durability
    // (not memory safety). We restore the durability the trait promises ourselves:
    // `Durability::Sync` writes and `flush` call `mdb_env_sync(force)` before they
    // return. NO_META_SYNC keeps the file intact across a power loss (a commit syncs
    // its data pages; only the meta page waits). `MDB_NOSYNC` is deliberately not
    // offered: it corrupts books on power loss (see the crate docs).
    unsafe {
        builder.flags(EnvFlags::NO_META_SYNC);
    }
    // SAFETY: mapping a file is unsound if the file changes under the map other than
    // through this environment. We hold the directory's exclusive lock (taken
    // above, released only after the environment closes), so no other peerbook
    // handle, in this process or another, opens these files meanwhile; LMDB's own
    // `lock.mdb` coordinates with any other LMDB program. We never write to the
    // files ourselves. We do not use NO_LOCK, and the directory is expected to be
    // on a local filesystem (documented in the crate docs).
    let env = unsafe { builder.open(path) }.map_err(|e| from_heed_at_open(e, path))?;

    let wtxn = env.write_txn().map_err(|e| from_heed_at_open(e, path))?;
    let created =
            env
                .create_databases_and_commit(
                    wtxn,
                    |opener,
                     wtxn|
                     -> heed::Result<
                        CommitOrAbort<[Database<'_, Bytes, Bytes>; 4], Infallible>,
                    > {
                        let [peers, by_last_seen, by_quality, meta] = Space::ALL.map(Space::name);
                        Ok(CommitOrAbort::Commit([
                            opener.create_database(wtxn, Some(peers))?,
                            opener.create_database(wtxn, Some(by_last_seen))?,
                            opener.create_database(wtxn, Some(by_quality))?,
                            opener.create_database(wtxn, Some(meta))?,
                        ]))
                    },
                )
                .map_err(|e| from_heed_at_open(e, path))?;
    let dbs = match created {
        CommitOrAbort::Commit(dbs) => dbs,
        CommitOrAbort::Abort(never) => match never {},
    };
    Ok(Handle { env, dbs })
}

/// `n` rounded up to a multiple of `page` (or the largest multiple if that overflows).
fn round_up(n: usize, page: usize) -> usize {
    n.div_ceil(page)
        .checked_mul(page)
        .unwrap_or_else(|| round_down(usize::MAX, page))
}

/// `n` rounded down to a multiple of `page`.
fn round_down(n: usize, page: usize) -> usize {
    n - n % page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(round_up(1, 4096), 4096);
        assert_eq!(round_up(4096, 4096), 4096);
        assert_eq!(round_up(0, 4096), 0);
        assert_eq!(round_up(usize::MAX, 4096) % 4096, 0);
        assert_eq!(round_down(8191, 4096), 4096);
    }

    #[test]
    fn empty_bounds() {
        let all = KeyRange::all();
        assert_eq!(lmdb_bounds(all), Some((Bound::Unbounded, Bound::Unbounded)));
        let from_empty = KeyRange {
            lower: Bound::Excluded(b""),
            upper: Bound::Included(b"z"),
        };
        assert_eq!(
            lmdb_bounds(from_empty),
            Some((Bound::Unbounded, Bound::Included(&b"z"[..])))
        );
        let to_empty = KeyRange {
            lower: Bound::Unbounded,
            upper: Bound::Included(b""),
        };
        assert_eq!(lmdb_bounds(to_empty), None);
        let inverted = KeyRange {
            lower: Bound::Included(b"b"),
            upper: Bound::Included(b"a"),
        };
        assert_eq!(lmdb_bounds(inverted), None);
    }
}
