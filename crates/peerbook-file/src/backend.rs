//! [`FileBackend`]: open, the write path (encode a batch, append and sync its frame,
//! apply it to the versioned maps), and the [`Backend`] implementation.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use peerbook::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, NewDirs, Op, ReadView,
    Space, Visit, WriteBatch,
};
use peerbook::mvcc::VersionedSpaces;

use crate::codec::{read_full, FrameBuilder, LogOp, FILE_HEADER_LEN, MAX_FRAME_BODY};
use crate::naming::{classify, Entry, LOCK_FILE};
use crate::recovery::{Loader, LoneLog};
use crate::writer::{apply_versioned, Writer};
use crate::{engine, FileOptions, FileStats, Recovery, StdFs, Vfs, VfsLock, ENGINE};

/// The largest frame buffer a backend keeps for its next write. A group of eight
/// Sync writers' batches is about 10 KiB; allocating it anew for every synced write
/// cost the group's writer 10-14 us on a 2-core machine with 8 writers (the
/// allocator growing and trimming its heap, page faults on the fresh pages), in
/// the serial stretch between the last writer's apply and the fsync. An import's
/// large batch is not kept.
const MAX_SPARE_FRAME: usize = 256 << 10;

/// A [`Backend`] on plain files: an append-only log of checksummed batch frames
/// plus a snapshot, with the whole dataset in memory. See the [crate docs](crate)
/// for the format and the guarantees.
pub struct FileBackend {
    pub(crate) dir: PathBuf,
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) options: FileOptions,
    pub(crate) spaces: VersionedSpaces,
    pub(crate) writer: Mutex<Writer>,
    /// The buffer of the last frame written, for the next one (see
    /// [`MAX_SPARE_FRAME`]).
    spare_frame: Mutex<Vec<u8>>,
    pub(crate) disk_bytes: AtomicU64,
    pub(crate) recovery: Recovery,
    pub(crate) claim: BookClaim,
    pub(crate) _lock: VfsLock,
}

impl fmt::Debug for FileBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.spaces.lens();
        f.debug_struct("FileBackend")
            .field("dir", &self.dir)
            .field("entries_per_space", &entries)
            .field("disk_bytes", &self.disk_bytes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl FileBackend {
    /// Whether this backend makes an entry named `name` in a store directory: its
    /// `LOCK`, `snapshot.G`, `log.G` and their `.tmp` forms (FORMAT.md, "Files"),
    /// exactly the names it reads, removes or keeps at open.
    ///
    /// ```
    /// use peerbook_file::FileBackend;
    /// assert!(FileBackend::owns_file("log.7") && FileBackend::owns_file("snapshot.7.tmp"));
    /// assert!(!FileBackend::owns_file("log.01") && !FileBackend::owns_file("LOCK.tmp"));
    /// ```
    pub fn owns_file(name: &str) -> bool {
        name == LOCK_FILE || classify(name) != Entry::Other
    }

    /// Whether an entry named `name` may mark a store of this backend: a snapshot or
    /// a log of some generation. The name alone does not tell a log whose
    /// generation has no snapshot: [`lone_logs`](Self::lone_logs) reads those, and
    /// only one holding frames after this backend's header marks a (damaged) store.
    pub fn marks_store(name: &str) -> bool {
        matches!(classify(name), Entry::Snapshot(_) | Entry::Log(_))
    }

    /// The logs in directory `dir` whose generation has no snapshot (every log when
    /// there is no snapshot, else those above the newest snapshot's generation),
    /// sorted by name, each with what its bytes make it to [`open`](Self::open)
    /// ([`LoneLog`]): a header this backend writes and nothing after it (removed at
    /// open), with frames after it (a lost snapshot, refused), or not this
    /// backend's file at all (an empty file, another program's bytes: refused, never
    /// removed). Names alone do not tell a user's empty `log.7` from a log of this
    /// backend; a program that must tell a store from a directory of other files
    /// before opening one (the engines' probe) asks this.
    ///
    /// Read-only: reads the first bytes (a header's worth) of each such log and its
    /// length. An entry that is not a file (a directory, a FIFO) is
    /// [`LoneLog::NotOurs`], and not opened. A missing directory has none.
    pub fn lone_logs(dir: impl AsRef<Path>) -> std::io::Result<Vec<(String, LoneLog)>> {
        use std::io::ErrorKind::NotFound;
        let dir = dir.as_ref();
        let names = match StdFs.list(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Self::lone_logs_among(dir, names.iter().map(String::as_str))
    }

    /// [`lone_logs`](Self::lone_logs) among `names`, a listing of `dir` already
    /// read: the probe judges the lone logs of the listing it judges the other
    /// entries by, not of a second one taken later.
    pub(crate) fn lone_logs_among<'a>(
        dir: &Path,
        names: impl IntoIterator<Item = &'a str>,
    ) -> std::io::Result<Vec<(String, LoneLog)>> {
        use std::io::ErrorKind::NotFound;
        let entries: Vec<(String, Entry)> = names
            .into_iter()
            .map(|n| (n.to_string(), classify(n)))
            .collect();
        let mut out = Vec::new();
        for (name, _) in crate::recovery::lone_logs(&entries) {
            let path = dir.join(name);
            let judged = match std::fs::metadata(&path) {
                Err(e) if e.kind() == NotFound => continue,
                Err(e) => return Err(e),
                Ok(meta) if !meta.is_file() => LoneLog::NotOurs,
                Ok(meta) => {
                    let mut file = match std::fs::File::open(&path) {
                        Err(e) if e.kind() == NotFound => continue,
                        other => other?,
                    };
                    let mut head = [0u8; FILE_HEADER_LEN];
                    let n = read_full(&mut file, &mut head)?;
                    LoneLog::judge(&head[..n], meta.len())
                }
            };
            out.push((name.to_string(), judged));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Open (or create) the store in directory `dir`, creating the directory if
    /// needed, on the real file system.
    ///
    /// Fails with [`BackendError::Locked`] when another handle has the directory
    /// open, with [`BackendError::Corrupted`] when its files are damaged (see the
    /// [crate docs](crate) for what is repaired and what is refused), and with
    /// [`BackendError::Io`] on I/O errors. An open that fails removes the `LOCK`
    /// it created (not one that was there; on Unix only, where the lock is
    /// checked to be on the linked file) and the directories it created, if they
    /// are empty: those its own [`Vfs::create_dir`] made, never one that was
    /// there, that another process made meanwhile, or a symbolic link
    /// ([`NewDirs`]). A refused directory is left as it was. An open that fails
    /// after it wrote (a new store's first files, a torn log tail truncated)
    /// leaves what it wrote.
    pub fn open(dir: impl AsRef<Path>, options: FileOptions) -> Result<Self, BackendError> {
        Self::open_with_vfs(Arc::new(StdFs), dir, options)
    }

    /// [`open`](FileBackend::open) over another file system: for tests that inject
    /// faults or simulate power loss (see the `testing` feature).
    pub fn open_with_vfs(
        vfs: Arc<dyn Vfs>,
        dir: impl AsRef<Path>,
        options: FileOptions,
    ) -> Result<Self, BackendError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        // What this open makes, it removes again if it fails: a refused open
        // leaves the user's directory as it found it. Only the directories it
        // made itself: not one there before, nor one another process made
        // meanwhile, nor a symbolic link.
        let made_dirs = match NewDirs::create_with(&dir, |d| vfs.create_dir(d), |d| vfs.is_dir(d)) {
            Ok(made) => made,
            Err((made, e)) => {
                made.undo_failed_open_with("peerbook-file", |d| vfs.remove_dir(d));
                return Err(BackendError::io(
                    format!("create directory {}", dir.display()),
                    e,
                ));
            }
        };
        // The store's directory and those this open made, durable (their
        // entries synced).
        made_dirs.sync_parents_with(&dir, "peerbook-file", |d| vfs.sync_dir(d));
        let lock_path = dir.join(LOCK_FILE);
        let (lock, made_lock) = match vfs.lock_created(&lock_path) {
            Ok(taken) => taken,
            Err(e) => {
                made_dirs.undo_failed_open_with("peerbook-file", |d| vfs.remove_dir(d));
                return Err(BackendError::lock(
                    format!(
                        "{}: the store is open in another FileBackend (this process or another)",
                        lock_path.display()
                    ),
                    &lock_path,
                    e,
                ));
            }
        };
        let loader = Loader {
            vfs: &*vfs,
            dir: &dir,
            options: &options,
        };
        let loaded = match loader.load() {
            Ok(loaded) => loaded,
            Err(e) => {
                if made_lock {
                    // Removed while still held: another opener that opened this
                    // file before the removal finds it unlinked once it has the
                    // lock, and starts over (`Vfs::lock`).
                    if let Err(e) = vfs.remove(&lock_path) {
                        tracing::warn!(file = %lock_path.display(), error = %e, "peerbook-file: a failed open could not remove the LOCK it created");
                    }
                }
                drop(lock);
                made_dirs.undo_failed_open_with("peerbook-file", |d| vfs.remove_dir(d));
                return Err(e);
            }
        };
        let disk = loaded.writer.snapshot_len + loaded.writer.log_len;
        Ok(FileBackend {
            dir,
            vfs,
            options,
            spaces: loaded.spaces,
            writer: Mutex::new(loaded.writer),
            spare_frame: Mutex::new(Vec::new()),
            disk_bytes: AtomicU64::new(disk),
            recovery: loaded.recovery,
            claim: BookClaim::new(),
            _lock: lock,
        })
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The options this backend was opened with.
    pub fn options(&self) -> &FileOptions {
        &self.options
    }

    /// What open found: generation, entries loaded, frames replayed, the torn tail
    /// truncated (if any) and the leftover files removed.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Current sizes and counters.
    pub fn stats(&self) -> FileStats {
        match self.lock_writer() {
            Ok(w) => FileStats {
                generation: w.generation,
                snapshot_bytes: w.snapshot_len,
                log_bytes: w.log_len,
                synced_log_bytes: w.synced_to,
                live_bytes: w.live_bytes,
                compactions: w.compactions,
            },
            Err(_) => FileStats::default(),
        }
    }

    /// Compact now, whatever the thresholds: write the live data as a new snapshot
    /// and start an empty log (see the crate docs for the protocol). Everything
    /// written before is durable when this returns `Ok`.
    pub fn compact(&self) -> Result<(), BackendError> {
        let mut w = self.lock_writer()?;
        w.usable()?;
        self.compact_locked(&mut w)
    }

    pub(crate) fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>, BackendError> {
        self.writer
            .lock()
            .map_err(|_| engine("a thread panicked while writing; reopen the backend".to_string()))
    }

    /// The kept frame buffer. Only its capacity is reused (the next frame is
    /// written over it), so a lock poisoned by a panic is taken as it is.
    pub(crate) fn spare(&self) -> MutexGuard<'_, Vec<u8>> {
        self.spare_frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Append one frame (synced if asked), then apply `ops` to the maps.
    fn commit(
        &self,
        frame: FrameBuilder,
        ops: Vec<LogOp>,
        durability: Durability,
    ) -> Result<(), BackendError> {
        let mut w = self.lock_writer()?;
        w.usable()?;
        let frame = frame.seal(w.seed, w.synced_to);
        w.append(&frame)?;
        if frame.capacity() <= MAX_SPARE_FRAME {
            *self.spare() = frame;
        }
        if durability == Durability::Sync {
            w.sync()?;
        }
        let live = &mut w.live_bytes;
        self.spaces.apply(|batch| {
            for op in ops {
                apply_versioned(batch, op, live);
            }
        });
        self.publish_usage(&w);
        if self.options.auto_compact && w.wants_compaction(&self.options) {
            // The batch is committed whatever happens here; a failed compaction is
            // retried after the next write.
            if let Err(e) = self.compact_locked(&mut w) {
                w.retry_compaction_at = w.log_len + self.options.compact_min_log_bytes.max(4096);
                tracing::warn!(dir = %self.dir.display(), error = %e, "peerbook-file: compaction failed");
            }
        }
        Ok(())
    }

    pub(crate) fn publish_usage(&self, w: &Writer) {
        self.disk_bytes
            .store(w.snapshot_len + w.log_len, Ordering::Relaxed);
    }
}

impl Drop for FileBackend {
    fn drop(&mut self) {
        // A clean close makes Buffered writes durable too (best effort).
        let w = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if w.failed.is_none() && w.synced_to < w.log_len && w.log.sync().is_ok() {
            w.synced_to = w.log_len;
        }
    }
}

impl Backend for FileBackend {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.spaces.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        // One consistent snapshot, read in chunks without holding a lock in `visitor`.
        self.spaces.scan(space, range, direction, visitor)
    }

    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        Ok(Box::new(self.spaces.view()))
    }

    fn book_claim(&self) -> BookClaim {
        self.claim.clone()
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        if batch.is_empty() {
            return Ok(());
        }
        // The frame's exact size is known from the ops: one buffer, no regrowth.
        let spare = std::mem::take(&mut *self.spare());
        let frame = FrameBuilder::for_batch_in(spare, &batch);
        frame.check_size().map_err(|size| {
            engine(format!(
                "a batch of {size} encoded bytes exceeds the {MAX_FRAME_BODY}-byte frame limit"
            ))
        })?;
        let ops = batch
            .into_ops()
            .into_iter()
            .map(|op| match op {
                Op::Put { space, key, value } => LogOp::Put { space, key, value },
                Op::Delete { space, key } => LogOp::Delete { space, key },
            })
            .collect();
        self.commit(frame, ops, durability)
    }

    fn flush(&self) -> Result<(), BackendError> {
        let mut w = self.lock_writer()?;
        w.usable()?;
        if w.synced_to < w.log_len {
            w.sync()?;
        }
        Ok(())
    }

    /// Empties the store by committing a new, empty generation (the compaction
    /// protocol with no entries), then removing every file of an older generation
    /// and every temporary of this backend (also those an earlier failed removal
    /// left) and syncing the directory, so that once it returns `Ok` no byte of a
    /// former entry is in the directory, even after a power loss. Always durable,
    /// whatever `durability` says. A crash leaves the old book or the empty one.
    ///
    /// An error before the commit point changes nothing. From the commit point
    /// on, this handle has forgotten every former entry whatever fails after:
    /// - a former file that cannot be removed, or the directory sync after the
    ///   removals failing, is a [`BackendError::Engine`] whose source is a
    ///   [`ClearError`](crate::ClearError) naming it; the clear is committed and
    ///   the handle takes writes (a later clear, or the next open, removes what is
    ///   left);
    /// - the new log failing to open is that I/O error; the former files are
    ///   removed all the same, and writes are refused until a reopen (which opens
    ///   the empty generation);
    /// - the directory sync of the commit point failing is that I/O error; the
    ///   former files stay (after a power loss a reopen may find either
    ///   generation, and then needs them), and writes are refused until a reopen.
    fn clear(&self, _durability: Durability) -> Result<(), BackendError> {
        let mut w = self.lock_writer()?;
        w.usable()?;
        self.clear_locked(&mut w)
    }

    fn disk_usage(&self) -> Result<u64, BackendError> {
        Ok(self.disk_bytes.load(Ordering::Relaxed))
    }

    fn engine_name(&self) -> &'static str {
        ENGINE
    }
}
