//! # peerbook-file
//!
//! [`FileBackend`]: a [`peerbook`] storage backend on plain files, with no engine and
//! no native dependency. Every batch is appended to a log as one checksummed frame;
//! an in-memory ordered map per [`Space`] serves reads and scans; when the log holds
//! mostly dead entries it is compacted into a snapshot.
//!
//! ```
//! use peerbook::backend::{Backend, Durability, Space, WriteBatch};
//! use peerbook_file::{FileBackend, FileOptions};
//!
//! # let tmp = tempfile::tempdir().unwrap();
//! let dir = tmp.path().join("book");
//! let backend = FileBackend::open(&dir, FileOptions::default())?;
//! let mut batch = WriteBatch::new();
//! batch.put(Space::Peers, b"alice".to_vec(), b"record".to_vec());
//! backend.write(batch, Durability::Sync)?;
//! drop(backend);
//!
//! let backend = FileBackend::open(&dir, FileOptions::default())?;
//! assert_eq!(backend.get(Space::Peers, b"alice")?, Some(b"record".to_vec()));
//! assert!(backend.recovery().torn_tail.is_none());
//! # Ok::<(), peerbook::backend::BackendError>(())
//! ```
//!
//! ## When to choose it
//!
//! - No native dependency, nothing to compile but Rust: cross-compiles anywhere
//!   `std::fs` works.
//! - Small books (thousands to a few hundred thousand entries): **the whole
//!   dataset lives in memory** (a `BTreeMap` per space) and a compaction rewrites it
//!   whole; opening replays the log.
//! - Human-auditable files: two files per generation, a documented byte layout
//!   (below), CRC-32C everywhere, nothing else.
//!
//! For large books, or when memory is tight, prefer an LMDB or RocksDB backend.
//!
//! ## Files
//!
//! The backend owns one directory:
//!
//! | name | what |
//! |---|---|
//! | `LOCK` | empty; held with an exclusive advisory lock while open |
//! | `snapshot.G` | the whole dataset as of the start of generation `G` |
//! | `log.G` | every batch committed since `snapshot.G` was written |
//! | `*.tmp` | a compaction in progress (removed at open) |
//!
//! `G` is a decimal `u64` generation, starting at 1. The live generation is the
//! highest `G` with a `snapshot.G`; `log.G` must exist with it. Files of lower
//! generations and temporary files are leftovers of a compaction and are removed at
//! open. The store = `snapshot.G` + the frames of `log.G`, replayed in order.
//!
//! ## Byte layout
//!
//! All integers are little-endian; `varint` is unsigned LEB128 (at most 10 bytes);
//! CRCs are CRC-32C (Castagnoli, as in iSCSI/ext4/RocksDB).
//!
//! **File header** (40 bytes in format version 2, both files):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic: `PBOOKLOG` (log) or `PBOOKSNP` (snapshot) |
//! | 8 | 4 | format version, `u32` = 2 |
//! | 12 | 8 | generation `G`, `u64` (must match the file name) |
//! | 20 | 16 | salt: random bytes drawn when the file is created |
//! | 36 | 4 | CRC of bytes 0..36 |
//!
//! **Frame** (after the header, repeated until the end of the file):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | `body_len`, `u32`, 1 ..= 2^30 |
//! | 4 | 8 | `synced_to`, `u64`: the log length known durable (fsynced) when this frame was appended (0 in snapshots) |
//! | 12 | 4 | `body_crc`: CRC of the body |
//! | 16 | 4 | `head_crc`: CRC of `G` as 8 LE bytes, the file's salt, then frame bytes 0..16 |
//! | 20 | `body_len` | body |
//!
//! Seeding `head_crc` with the generation means a frame never validates in a file of
//! another generation (stale blocks of an old log read back after a crash). Seeding
//! it with the file's random salt means a frame forged by whoever controls a
//! record's bytes (a peer's 4 KiB public key can hold a CRC-valid frame with a
//! chosen `synced_to`) validates with odds of 2^-32 only: it cannot pose as the
//! witness that turns a torn tail into [`BackendError::Corrupted`] (see the
//! torn-tail rule below).
//!
//! **Format version 1** (written by the first release, still read): the header is
//! 24 bytes (magic, version = 1, generation, CRC of bytes 0..20 at offset 20), with
//! no salt, and `head_crc` is seeded with the generation alone. Opening a version-1
//! store keeps appending to its version-1 log; every file written new (by a
//! compaction, a [`Backend::clear`], or the creation of a store) is version 2, so
//! after the first compaction or clear the store is all version 2.
//!
//! **Body** (one batch, applied whole or not at all): `varint op_count` (>= 1), then
//! `op_count` ops, and nothing after them:
//!
//! | op | bytes |
//! |---|---|
//! | put | `0x01`, space `u8`, `varint key_len`, key, `varint value_len`, value |
//! | delete | `0x02`, space `u8`, `varint key_len`, key |
//! | clear | `0x03` (empties every space) |
//! | end | `0x04`, `varint entry_count` (snapshots only) |
//!
//! Space tags are [`Space::index`]: 0 peers, 1 by_last_seen, 2 by_quality, 3 meta.
//! A log frame holds puts, deletes and clears (logs written by earlier versions hold
//! a clear op per [`Backend::clear`]; this version clears by a new generation, see
//! below). A snapshot holds puts only, in key order, cut into frames of
//! about [`FileOptions::snapshot_chunk_bytes`], and ends with a frame whose last op
//! is `end` with the number of puts; nothing may follow it. A snapshot without
//! that end frame is truncated, and refused.
//!
//! Decoding checks every length against the bytes that remain before using it and
//! never allocates from a length it read: garbage yields an error, never a panic
//! or a huge allocation.
//!
//! ## Open and the torn-tail rule
//!
//! Open takes the lock, loads `snapshot.G` (any damage there is an error: a
//! snapshot is complete and synced before it gets its name), then replays `log.G`
//! frame by frame. When the bytes at offset `X` are not a valid frame (short
//! header, bad header CRC, bad length, body past the end of the file, bad body CRC):
//!
//! - if some **later valid frame** (found by scanning every offset after `X`) has
//!   `synced_to > X`, then the writer had fsynced the log past `X` before appending
//!   that frame: the frame at `X` was acknowledged-durable data and is now damaged.
//!   Open fails with [`BackendError::Corrupted`]`("log frame at offset X: ...")`.
//!   Nothing is skipped silently.
//! - otherwise nothing proves `X` was ever synced: it is a **torn tail** (a crash
//!   while, or after, appending unsynced frames). The log is truncated at `X`,
//!   synced, and the loss is reported by a `tracing` warning and by
//!   [`FileBackend::recovery`] ([`TornTail`]: offset, bytes cut, reason, and how
//!   many whole but unsynced frames after it were dropped with it, since a log is
//!   replayed as a prefix).
//!
//! Why this is right: a frame appended after the last completed fsync carries
//! `synced_to` <= that fsync's length, which is <= the offset of every frame a
//! power loss can tear; so a torn tail, even one where the page cache wrote later
//! pages but not earlier ones, is never mistaken for corruption. Conversely,
//! damage at `X` is detected whenever anything was written after a later fsync. The
//! limit: damage inside the last synced group of frames with nothing appended after
//! the following sync is indistinguishable from a torn write; it is truncated and
//! reported, not silent. A frame whose checksums are valid but whose body does not
//! decode is always an error (it was written that way), never truncated.
//!
//! ## Durability
//!
//! - [`Durability::Sync`]: the frame is appended and the log `fdatasync`ed before
//!   [`Backend::write`] returns.
//! - [`Durability::Buffered`]: the frame is appended (the `write` syscall is done, it
//!   survives a crash of the process); [`Backend::flush`] syncs the log.
//!
//! The append and sync happen before the in-memory maps are touched, so readers
//! never wait behind an fsync; they only wait while a batch is applied to the maps.
//! A failed append is cut back off the log; a failed fsync makes the backend refuse
//! further writes until it is reopened (after a failed fsync the kernel may have
//! dropped the dirty pages, so retrying could lie).
//!
//! ## Compaction protocol
//!
//! After a write, when the log is at least [`FileOptions::compact_min_log_bytes`]
//! long and longer than [`FileOptions::compact_ratio`] x the live data, or on
//! [`FileBackend::compact`], generation `G` becomes `G+1`:
//!
//! 1. write `snapshot.G+1.tmp` (header, entries, end frame) and fsync it;
//! 2. write `log.G+1.tmp` (header only) and fsync it;
//! 3. rename `log.G+1.tmp` to `log.G+1`; fsync the directory;
//! 4. rename `snapshot.G+1.tmp` to `snapshot.G+1`; fsync the directory
//!    (**the commit point**);
//! 5. append new batches to `log.G+1`; remove `snapshot.G` and `log.G`.
//!
//! Every crash point is safe:
//! - before 4's rename is durable, there is no `snapshot.G+1`: open uses generation
//!   `G` (snapshot and log untouched) and removes the temporaries and the empty
//!   `log.G+1`. Nothing was written to `log.G+1` yet (step 5 follows step 4).
//! - once `snapshot.G+1` exists it is complete (fsynced before its rename) and
//!   `log.G+1` exists too (made durable by step 3's directory fsync, before the
//!   snapshot's rename): open uses `G+1` and removes the `G` files. `snapshot.G+1`
//!   holds everything of `log.G`, and batches of generation `G+1` only ever go to
//!   `log.G+1`, so an old log is never replayed onto a new snapshot.
//! - a crash during step 5's removals leaves old files that the next open removes.
//!
//! A missing `log.G` next to `snapshot.G`, or a `log.H` holding frames without a
//! `snapshot.H`, cannot come from a crash and is reported as corruption.
//! A fresh directory is created the same way as generation 1 from an empty dataset.
//! If the directory fsync of step 4 fails, the backend refuses further writes until
//! reopened (open then sees one generation or the other, both complete).
//!
//! ## Clear
//!
//! [`Backend::clear`] runs the compaction protocol above with an empty dataset:
//! generation `G+1` is an empty snapshot and an empty log, committed by the
//! snapshot's rename and the directory fsync; then `snapshot.G` and `log.G` are
//! removed. A crash before the commit point leaves the old book, after it the empty
//! one (never a half), and once `clear` returns `Ok` no file of the directory holds
//! a byte of a former entry. It is always durable. What it cannot reach: the
//! removed files' blocks stay on the device until the file system reuses them (on
//! copy-on-write file systems, SSDs and snapshots, maybe for long), and copies made
//! outside the directory (backups, exports) are untouched. Destroying the key file
//! ([`MasterKey::destroy_file`](peerbook::MasterKey::destroy_file)) makes the sealed
//! secrets of every such copy unreadable.
//!
//! ## Concurrency
//!
//! Writers serialize on a mutex. The dataset is a
//! [`VersionedSpaces`]: [`Backend::view`] pins the
//! state after the last batch at no cost, and a write while views are open keeps the
//! old versions of the keys it changes (never a copy of a space) until those views
//! close. A [`Backend::scan`] reads a pinned view in chunks, so its visitor may call
//! back into the backend; a compaction writes its snapshot from a view while readers
//! go on.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod codec;
mod crc;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vfs;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use peerbook::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, Op, ReadView, Space, Visit,
    WriteBatch,
};
use peerbook::mvcc::{Batch, VersionedSpaces};

use codec::{
    check_file_header, decode_body, encode_file_header, encode_frame, entry_size, frame_seed,
    header_len, read_frame, scan_after, After, BodyEncoder, FileKind, LogOp, FILE_HEADER_LEN,
    MAX_FRAME_BODY, SALT_LEN,
};
pub use vfs::{StdFs, Vfs, VfsFile, VfsLock};

const ENGINE: &str = "file";
const LOCK_FILE: &str = "LOCK";
const HEADER: u64 = FILE_HEADER_LEN as u64;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
type Spaces = [Arc<Map>; 4];

/// Tuning of a [`FileBackend`]. Every field has a documented default
/// ([`FileOptions::default`]); the `with_*` methods set one field each.
///
/// ```
/// let options = peerbook_file::FileOptions::default()
///     .with_compact_min_log_bytes(4 << 20)
///     .with_compact_ratio(3.0);
/// assert!(options.auto_compact);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct FileOptions {
    /// Compact only once the log holds at least this many bytes (header
    /// excluded). Default: 1 MiB.
    pub compact_min_log_bytes: u64,
    /// ...and the log is longer than this many times the live data (the size the
    /// snapshot would have). Finite and >= 0. Default: 2.0.
    pub compact_ratio: f64,
    /// Check the two thresholds after every write and compact when both are
    /// crossed. When false, only [`FileBackend::compact`] compacts. Default: true.
    pub auto_compact: bool,
    /// A snapshot is written as frames of about this many bytes each (a frame holds
    /// at least one entry). 1 ..= 2^29. Default: 1 MiB.
    pub snapshot_chunk_bytes: usize,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            compact_min_log_bytes: 1 << 20,
            compact_ratio: 2.0,
            auto_compact: true,
            snapshot_chunk_bytes: 1 << 20,
        }
    }
}

impl FileOptions {
    /// Set [`compact_min_log_bytes`](FileOptions::compact_min_log_bytes).
    pub fn with_compact_min_log_bytes(mut self, bytes: u64) -> Self {
        self.compact_min_log_bytes = bytes;
        self
    }

    /// Set [`compact_ratio`](FileOptions::compact_ratio).
    pub fn with_compact_ratio(mut self, ratio: f64) -> Self {
        self.compact_ratio = ratio;
        self
    }

    /// Set [`auto_compact`](FileOptions::auto_compact).
    pub fn with_auto_compact(mut self, auto: bool) -> Self {
        self.auto_compact = auto;
        self
    }

    /// Set [`snapshot_chunk_bytes`](FileOptions::snapshot_chunk_bytes).
    pub fn with_snapshot_chunk_bytes(mut self, bytes: usize) -> Self {
        self.snapshot_chunk_bytes = bytes;
        self
    }

    fn validate(&self) -> Result<(), BackendError> {
        if !self.compact_ratio.is_finite() || self.compact_ratio < 0.0 {
            return Err(engine(format!(
                "invalid FileOptions: compact_ratio must be finite and >= 0, got {}",
                self.compact_ratio
            )));
        }
        if self.snapshot_chunk_bytes == 0 || self.snapshot_chunk_bytes > MAX_FRAME_BODY / 2 {
            return Err(engine(format!(
                "invalid FileOptions: snapshot_chunk_bytes must be in 1..={}, got {}",
                MAX_FRAME_BODY / 2,
                self.snapshot_chunk_bytes
            )));
        }
        Ok(())
    }
}

/// What [`FileBackend::open`] found and did, from [`FileBackend::recovery`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The generation opened.
    pub generation: u64,
    /// True when the directory held no store and a new, empty one was created.
    pub created: bool,
    /// Entries loaded from the snapshot.
    pub snapshot_entries: u64,
    /// Log frames (batches and clears) replayed on top of it.
    pub log_frames: u64,
    /// The torn tail cut off the log, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Leftover files of interrupted compactions removed at open.
    pub removed_files: Vec<String>,
}

/// A torn tail: bytes at the end of the log that were not a whole valid frame and
/// that no later frame proves were synced. They were truncated away.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// The log file's name (`log.G`).
    pub file: String,
    /// Offset of the first invalid byte: the log's length after truncation.
    pub offset: u64,
    /// Bytes cut off.
    pub bytes: u64,
    /// Why the bytes at `offset` were not a valid frame.
    pub reason: String,
    /// Whole valid frames found after `offset` and dropped with it: batches that
    /// were written but not yet synced when the power failed, whose bytes reached
    /// the disk while an earlier frame's did not. A log is a prefix: they cannot be
    /// applied without the frame before them.
    pub valid_frames_after: u64,
}

/// Sizes and counters of an open [`FileBackend`], from [`FileBackend::stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileStats {
    /// Current generation (the `G` of `snapshot.G` and `log.G`).
    pub generation: u64,
    /// Bytes of `snapshot.G`.
    pub snapshot_bytes: u64,
    /// Bytes of `log.G` (header included).
    pub log_bytes: u64,
    /// Bytes of `log.G` known durable (fsynced).
    pub synced_log_bytes: u64,
    /// Size the live data would take in a snapshot (the compaction yardstick).
    pub live_bytes: u64,
    /// Compactions completed since open.
    pub compactions: u64,
}

/// A [`Backend`] on plain files: an append-only log of checksummed batch frames
/// plus a snapshot, with the whole dataset in memory. See the [crate docs](crate)
/// for the format and the guarantees.
pub struct FileBackend {
    dir: PathBuf,
    vfs: Arc<dyn Vfs>,
    options: FileOptions,
    spaces: VersionedSpaces,
    writer: Mutex<Writer>,
    disk_bytes: AtomicU64,
    recovery: Recovery,
    claim: BookClaim,
    _lock: VfsLock,
}

struct Writer {
    generation: u64,
    seed: u32,
    log: Box<dyn VfsFile>,
    log_len: u64,
    synced_to: u64,
    snapshot_len: u64,
    live_bytes: u64,
    compactions: u64,
    /// After a failed automatic compaction, the next is tried only once the log
    /// reaches this length (so a full disk does not rewrite a snapshot per write).
    retry_compaction_at: u64,
    /// Set when a failure left the files in a state this handle can no longer
    /// reason about (failed fsync, failed directory sync at a commit point):
    /// every later write fails until the backend is reopened.
    failed: Option<String>,
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
    /// Open (or create) the store in directory `dir`, creating the directory if
    /// needed, on the real file system.
    ///
    /// Fails with [`BackendError::Locked`] when another handle has the directory
    /// open, with [`BackendError::Corrupted`] when its files are damaged (see the
    /// [crate docs](crate) for what is repaired and what is refused), and with
    /// [`BackendError::Io`] on I/O errors.
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
        vfs.create_dir_all(&dir)
            .map_err(|e| io_error(format!("create directory {}", dir.display()), e))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Make the directory entry itself durable; some file systems refuse to
            // sync directories, which costs durability of a brand-new store only.
            if let Err(e) = vfs.sync_dir(parent) {
                tracing::warn!(dir = %parent.display(), error = %e, "peerbook-file: could not sync the parent directory");
            }
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = vfs.lock(&lock_path).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                BackendError::Locked(format!(
                    "{}: the store is open in another FileBackend (this process or another)",
                    lock_path.display()
                ))
            } else {
                io_error(format!("lock {}", lock_path.display()), e)
            }
        })?;
        let loaded = Loader {
            vfs: &*vfs,
            dir: &dir,
            options: &options,
        }
        .load()?;
        let disk = loaded.writer.snapshot_len + loaded.writer.log_len;
        Ok(FileBackend {
            dir,
            vfs,
            options,
            spaces: VersionedSpaces::new(
                loaded
                    .spaces
                    .map(|map| Arc::try_unwrap(map).unwrap_or_else(|shared| (*shared).clone())),
            ),
            writer: Mutex::new(loaded.writer),
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

    fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>, BackendError> {
        self.writer
            .lock()
            .map_err(|_| engine("a thread panicked while writing; reopen the backend".to_string()))
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Append one frame (synced if asked), then apply `ops` to the maps.
    fn commit(
        &self,
        body: Vec<u8>,
        ops: Vec<LogOp>,
        durability: Durability,
    ) -> Result<(), BackendError> {
        let mut w = self.lock_writer()?;
        w.usable()?;
        let frame = encode_frame(w.seed, w.synced_to, &body);
        drop(body);
        let log_name = log_name(w.generation);
        w.append(&frame, &log_name)?;
        drop(frame);
        if durability == Durability::Sync {
            w.sync(&log_name)?;
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

    fn publish_usage(&self, w: &Writer) {
        self.disk_bytes
            .store(w.snapshot_len + w.log_len, Ordering::Relaxed);
    }

    fn compact_locked(&self, w: &mut Writer) -> Result<(), BackendError> {
        // Writers are excluded (we hold the writer mutex), so this view holds every
        // committed batch; readers go on while the snapshot is written.
        let spaces = self.spaces.view();
        let old_files = self.switch_generation(w, &spaces)?;
        drop(spaces);
        for (name, e) in old_files {
            tracing::warn!(file = %name, error = %e, "peerbook-file: could not remove an old generation's file; the next open will");
        }
        Ok(())
    }

    /// Commit generation `G+1` holding `spaces` (steps 1-4 of the compaction
    /// protocol), switch the writer to it and remove the files of `G`. Returns the
    /// old files that could not be removed, with why.
    fn switch_generation(
        &self,
        w: &mut Writer,
        spaces: &dyn ReadView,
    ) -> Result<Vec<(String, io::Error)>, BackendError> {
        let old = w.generation;
        let new = old
            .checked_add(1)
            .ok_or_else(|| engine("generation counter exhausted".to_string()))?;
        let (snapshot_len, log_seed) = match write_generation(
            &*self.vfs,
            &self.dir,
            new,
            spaces,
            self.options.snapshot_chunk_bytes,
        ) {
            Ok(written) => written,
            Err(GenError::Clean(e)) => return Err(e),
            Err(GenError::Uncertain(e)) => {
                w.failed = Some(format!(
                    "compaction to generation {new} failed at its commit point ({e})"
                ));
                return Err(e);
            }
        };
        let log_path = self.file(&log_name(new));
        let log = match self.vfs.open_append(&log_path) {
            Ok(log) => log,
            Err(e) => {
                let e = io_error(format!("open {}", log_path.display()), e);
                w.failed = Some(format!(
                    "generation {new} committed but its log failed to open ({e})"
                ));
                return Err(e);
            }
        };
        w.generation = new;
        w.seed = log_seed;
        w.log = log;
        w.log_len = HEADER;
        w.synced_to = HEADER;
        w.snapshot_len = snapshot_len;
        w.compactions += 1;
        w.retry_compaction_at = 0;
        self.publish_usage(w);
        let mut left = Vec::new();
        for name in [snapshot_name(old), log_name(old)] {
            if let Err(e) = self.vfs.remove(&self.file(&name)) {
                if e.kind() != io::ErrorKind::NotFound {
                    left.push((name, e));
                }
            }
        }
        Ok(left)
    }
}

impl Writer {
    fn usable(&self) -> Result<(), BackendError> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(engine(format!(
                "the backend refuses writes after an earlier failure ({why}); reopen it"
            ))),
        }
    }

    fn append(&mut self, frame: &[u8], log_name: &str) -> Result<(), BackendError> {
        match self.log.append(frame) {
            Ok(()) => {
                self.log_len += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                let err = io_error(format!("append to {log_name}"), e);
                // Cut a partial frame back off so the next one starts on a boundary.
                if let Err(e2) = self.log.truncate(self.log_len) {
                    self.failed = Some(format!(
                        "a failed append to {log_name} could not be cut back ({e2})"
                    ));
                }
                Err(err)
            }
        }
    }

    fn sync(&mut self, log_name: &str) -> Result<(), BackendError> {
        match self.log.sync() {
            Ok(()) => {
                self.synced_to = self.log_len;
                Ok(())
            }
            Err(e) => {
                let err = io_error(format!("sync {log_name}"), e);
                self.failed = Some(format!("fsync of {log_name} failed ({err})"));
                Err(err)
            }
        }
    }

    fn wants_compaction(&self, options: &FileOptions) -> bool {
        let log_body = self.log_len.saturating_sub(HEADER);
        log_body >= options.compact_min_log_bytes
            && self.log_len >= self.retry_compaction_at
            && self.log_len as f64 > options.compact_ratio * self.live_bytes as f64
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
        Ok(self.spaces.get(space, key))
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        if range_is_empty(&range) {
            return Ok(());
        }
        // One consistent snapshot, read in chunks without holding a lock in `visitor`.
        self.spaces.scan(space, range, direction, visitor);
        Ok(())
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
        let mut enc = BodyEncoder::new();
        for op in batch.ops() {
            match op {
                Op::Put { space, key, value } => enc.put(*space, key, value),
                Op::Delete { space, key } => enc.delete(*space, key),
            }
        }
        let body = enc.finish().map_err(|size| {
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
        self.commit(body, ops, durability)
    }

    fn flush(&self) -> Result<(), BackendError> {
        let mut w = self.lock_writer()?;
        w.usable()?;
        if w.synced_to < w.log_len {
            let name = log_name(w.generation);
            w.sync(&name)?;
        }
        Ok(())
    }

    /// Empties the store by committing a new, empty generation (the compaction
    /// protocol with no entries) and removing the old snapshot and log, so no byte
    /// of a former entry stays in the directory. Always durable, whatever
    /// `durability` says. A crash leaves the old book or the empty one. When an old
    /// file cannot be removed the clear is still committed, and the error says which
    /// file still holds old data (the next open removes it).
    fn clear(&self, _durability: Durability) -> Result<(), BackendError> {
        let mut w = self.lock_writer()?;
        w.usable()?;
        let empty = VersionedSpaces::default();
        let left = self.switch_generation(&mut w, &empty.view())?;
        let live = &mut w.live_bytes;
        self.spaces
            .apply(|batch| apply_versioned(batch, LogOp::Clear, live));
        self.publish_usage(&w);
        match left.into_iter().next() {
            None => Ok(()),
            Some((name, e)) => Err(io_error(
                format!("cleared, but could not remove the old file {name}"),
                e,
            )),
        }
    }

    fn disk_usage(&self) -> Result<u64, BackendError> {
        Ok(self.disk_bytes.load(Ordering::Relaxed))
    }

    fn engine_name(&self) -> &'static str {
        ENGINE
    }
}

/// Apply one op to the maps, keeping `live` (the snapshot size of the data) current.
fn apply(spaces: &mut Spaces, op: LogOp, live: &mut u64) {
    match op {
        LogOp::Put { space, key, value } => {
            let add = entry_size(key.len(), value.len());
            let klen = key.len();
            let map = Arc::make_mut(&mut spaces[space.index()]);
            if let Some(old) = map.insert(key, value) {
                *live = live.saturating_sub(entry_size(klen, old.len()));
            }
            *live += add;
        }
        LogOp::Delete { space, key } => {
            // Avoid copying a shared map for a delete of a missing key.
            if spaces[space.index()].contains_key(&key) {
                let map = Arc::make_mut(&mut spaces[space.index()]);
                if let Some(old) = map.remove(&key) {
                    *live = live.saturating_sub(entry_size(key.len(), old.len()));
                }
            }
        }
        LogOp::Clear => {
            for map in spaces.iter_mut() {
                *map = Arc::new(Map::new());
            }
            *live = 0;
        }
        LogOp::End { .. } => {}
    }
}

/// [`apply`] onto the live dataset, one op of a committed batch.
fn apply_versioned(batch: &mut Batch<'_>, op: LogOp, live: &mut u64) {
    match op {
        LogOp::Put { space, key, value } => {
            let (klen, add) = (key.len(), entry_size(key.len(), value.len()));
            if let Some(old) = batch.put(space, key, value) {
                *live = live.saturating_sub(entry_size(klen, old));
            }
            *live += add;
        }
        LogOp::Delete { space, key } => {
            let klen = key.len();
            if let Some(old) = batch.delete(space, key) {
                *live = live.saturating_sub(entry_size(klen, old));
            }
        }
        LogOp::Clear => {
            batch.clear();
            *live = 0;
        }
        LogOp::End { .. } => {}
    }
}

/// Whether no key can lie in `range` (so `BTreeMap::range` would panic or be empty).
fn range_is_empty(range: &KeyRange<'_>) -> bool {
    match (range.lower, range.upper) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u))
        | (Bound::Excluded(l), Bound::Excluded(u)) => l >= u,
    }
}

fn snapshot_name(generation: u64) -> String {
    format!("snapshot.{generation}")
}

fn log_name(generation: u64) -> String {
    format!("log.{generation}")
}

/// What a directory entry is to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    Snapshot(u64),
    Log(u64),
    Temp,
    Other,
}

fn classify(name: &str) -> Entry {
    fn generation(digits: &str) -> Option<u64> {
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if canonical {
            digits.parse().ok()
        } else {
            None
        }
    }
    if let Some(stem) = name.strip_suffix(".tmp") {
        return match classify(stem) {
            Entry::Snapshot(_) | Entry::Log(_) => Entry::Temp,
            _ => Entry::Other,
        };
    }
    if let Some(g) = name.strip_prefix("snapshot.").and_then(generation) {
        return Entry::Snapshot(g);
    }
    if let Some(g) = name.strip_prefix("log.").and_then(generation) {
        return Entry::Log(g);
    }
    Entry::Other
}

enum GenError {
    /// Failed before the commit point: the old generation is intact and current.
    Clean(BackendError),
    /// Failed after the snapshot's rename: which generation a reopen sees is unknown.
    Uncertain(BackendError),
}

/// A fresh random salt for a new file's header (format version 2).
fn new_salt() -> Result<[u8; SALT_LEN], BackendError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::getrandom(&mut salt).map_err(|e| {
        io_error(
            "draw a file salt".to_string(),
            io::Error::other(e.to_string()),
        )
    })?;
    Ok(salt)
}

/// Steps 1-4 of the compaction protocol (crate docs): write and commit generation
/// `generation` holding `spaces`. Returns the new snapshot's length and the frame
/// seed of the new log.
fn write_generation(
    vfs: &dyn Vfs,
    dir: &Path,
    generation: u64,
    spaces: &dyn ReadView,
    chunk: usize,
) -> Result<(u64, u32), GenError> {
    let snap_tmp = dir.join(format!("{}.tmp", snapshot_name(generation)));
    let log_tmp = dir.join(format!("{}.tmp", log_name(generation)));
    let log_final = dir.join(log_name(generation));
    let snap_final = dir.join(snapshot_name(generation));
    let cleanup = |also_log: bool| {
        let _ = vfs.remove(&snap_tmp);
        let _ = vfs.remove(&log_tmp);
        if also_log {
            let _ = vfs.remove(&log_final);
        }
    };
    let io =
        |what: &str, path: &Path, e: io::Error| io_error(format!("{what} {}", path.display()), e);

    let snapshot_len = match write_snapshot(vfs, &snap_tmp, generation, spaces, chunk) {
        Ok(len) => len,
        Err(e) => {
            cleanup(false);
            return Err(GenError::Clean(e));
        }
    };
    let log_salt = match new_salt() {
        Ok(salt) => salt,
        Err(e) => {
            cleanup(false);
            return Err(GenError::Clean(e));
        }
    };
    let log_result = vfs.create(&log_tmp).and_then(|mut f| {
        f.append(&encode_file_header(FileKind::Log, generation, &log_salt))?;
        f.sync()
    });
    if let Err(e) = log_result {
        cleanup(false);
        return Err(GenError::Clean(io("write", &log_tmp, e)));
    }
    if let Err(e) = vfs.rename(&log_tmp, &log_final) {
        cleanup(false);
        return Err(GenError::Clean(io("rename", &log_tmp, e)));
    }
    if let Err(e) = vfs.sync_dir(dir) {
        cleanup(true);
        return Err(GenError::Clean(io("sync directory", dir, e)));
    }
    if let Err(e) = vfs.rename(&snap_tmp, &snap_final) {
        cleanup(true);
        return Err(GenError::Clean(io("rename", &snap_tmp, e)));
    }
    // The commit point: from here on a reopen may see either generation.
    if let Err(e) = vfs.sync_dir(dir) {
        return Err(GenError::Uncertain(io("sync directory", dir, e)));
    }
    Ok((snapshot_len, frame_seed(generation, &log_salt)))
}

fn write_snapshot(
    vfs: &dyn Vfs,
    path: &Path,
    generation: u64,
    spaces: &dyn ReadView,
    chunk: usize,
) -> Result<u64, BackendError> {
    let io = |e: io::Error| io_error(format!("write {}", path.display()), e);
    let salt = new_salt()?;
    let mut file = vfs.create(path).map_err(io)?;
    let seed = frame_seed(generation, &salt);
    let header = encode_file_header(FileKind::Snapshot, generation, &salt);
    file.append(&header).map_err(io)?;
    let mut len = header.len() as u64;
    let mut entries = 0u64;
    let mut enc = BodyEncoder::new();
    let emit = |enc: BodyEncoder, file: &mut Box<dyn VfsFile>| -> Result<u64, BackendError> {
        let body = enc.finish().map_err(|size| {
            engine(format!(
                "snapshot frame of {size} bytes exceeds the frame limit"
            ))
        })?;
        let frame = encode_frame(seed, 0, &body);
        file.append(&frame).map_err(io)?;
        Ok(frame.len() as u64)
    };
    for space in Space::ALL {
        let mut failed = None;
        spaces.scan(
            space,
            KeyRange::all(),
            Direction::Forward,
            &mut |key, value| {
                // A frame holds at least one entry; cut before one that would overflow.
                let size = entry_size(key.len(), value.len()) as usize;
                if enc.count() > 0
                    && (enc.len() + size > chunk || enc.len() + size > MAX_FRAME_BODY / 2)
                {
                    match emit(std::mem::take(&mut enc), &mut file) {
                        Ok(n) => len += n,
                        Err(e) => {
                            failed = Some(e);
                            return ControlFlow::Break(());
                        }
                    }
                }
                enc.put(space, key, value);
                entries += 1;
                ControlFlow::Continue(())
            },
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    if enc.count() > 0 {
        len += emit(std::mem::take(&mut enc), &mut file)?;
    }
    enc.end(entries);
    len += emit(enc, &mut file)?;
    file.sync().map_err(io)?;
    Ok(len)
}

struct Loader<'a> {
    vfs: &'a dyn Vfs,
    dir: &'a Path,
    options: &'a FileOptions,
}

struct Loaded {
    spaces: Spaces,
    writer: Writer,
    recovery: Recovery,
}

impl Loader<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        let path = self.path(name);
        self.vfs
            .read(&path)
            .map_err(|e| io_error(format!("read {}", path.display()), e))
    }

    fn remove(&self, name: &str, removed: &mut Vec<String>) {
        match self.vfs.remove(&self.path(name)) {
            Ok(()) => removed.push(name.to_string()),
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "peerbook-file: could not remove a leftover file");
            }
        }
    }

    fn load(&self) -> Result<Loaded, BackendError> {
        let names = self
            .vfs
            .list(self.dir)
            .map_err(|e| io_error(format!("list {}", self.dir.display()), e))?;
        let entries: Vec<(String, Entry)> = names
            .into_iter()
            .map(|n| {
                let e = classify(&n);
                (n, e)
            })
            .collect();
        let current = entries
            .iter()
            .filter_map(|(_, e)| match e {
                Entry::Snapshot(g) => Some(*g),
                _ => None,
            })
            .max();
        let mut recovery = Recovery::default();
        let generation = match current {
            Some(g) => g,
            None => {
                // No snapshot: a new store, or what an interrupted creation left.
                for (name, e) in &entries {
                    if let Entry::Log(_) = e {
                        let data = self.read(name)?;
                        if data.len() > header_len(&data) {
                            return Err(BackendError::Corrupted(format!(
                                "{} holds {} bytes of frames but the directory has no snapshot \
                                 (a snapshot file was lost)",
                                self.path(name).display(),
                                data.len() - header_len(&data)
                            )));
                        }
                    }
                }
                for (name, e) in &entries {
                    if matches!(e, Entry::Log(_) | Entry::Temp) {
                        self.remove(name, &mut recovery.removed_files);
                    }
                }
                let empty = VersionedSpaces::default();
                write_generation(
                    self.vfs,
                    self.dir,
                    1,
                    &empty.view(),
                    self.options.snapshot_chunk_bytes,
                )
                .map_err(|e| match e {
                    GenError::Clean(e) | GenError::Uncertain(e) => e,
                })?;
                recovery.created = true;
                1
            }
        };
        recovery.generation = generation;

        // The snapshot: complete by construction, so any damage is an error.
        let snap_name = snapshot_name(generation);
        let snap_data = self.read(&snap_name)?;
        let mut spaces: Spaces = Default::default();
        let mut live = 0u64;
        recovery.snapshot_entries = load_snapshot(
            &snap_data,
            generation,
            &self.path(&snap_name),
            &mut spaces,
            &mut live,
        )?;
        let snapshot_len = snap_data.len() as u64;
        drop(snap_data);

        // The log.
        let log_name = log_name(generation);
        let log_path = self.path(&log_name);
        let log_data = match self.vfs.read(&log_path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BackendError::Corrupted(format!(
                    "{} is missing although {} exists (it is created before the snapshot \
                     is committed, so it was lost or removed)",
                    log_path.display(),
                    snap_name
                )))
            }
            Err(e) => return Err(io_error(format!("read {}", log_path.display()), e)),
        };
        let replay = replay_log(&log_data, generation, &log_path, &mut spaces, &mut live)?;
        let log_seed = replay.seed;
        recovery.log_frames = replay.frames;
        let log_len = replay.valid_len as u64;
        if let Some((reason, valid_frames_after)) = replay.torn {
            let torn = TornTail {
                file: log_name.clone(),
                offset: log_len,
                bytes: (log_data.len() - replay.valid_len) as u64,
                reason,
                valid_frames_after,
            };
            tracing::warn!(
                file = %log_path.display(),
                offset = torn.offset,
                bytes = torn.bytes,
                reason = %torn.reason,
                valid_frames_after = torn.valid_frames_after,
                "peerbook-file: truncated a torn tail off the log (writes that were not synced when the process or machine stopped)"
            );
            recovery.torn_tail = Some(torn);
        }
        drop(log_data);

        // Leftovers: older generations, temporaries, logs of a compaction that
        // never committed. Removed only now that the current generation loaded.
        for (name, e) in &entries {
            match *e {
                Entry::Snapshot(g) | Entry::Log(g) if g < generation => {
                    self.remove(name, &mut recovery.removed_files)
                }
                Entry::Log(g) if g > generation => {
                    let data = self.read(name)?;
                    if data.len() > header_len(&data) {
                        return Err(BackendError::Corrupted(format!(
                            "{} holds frames but {} does not exist (a snapshot file was lost)",
                            self.path(name).display(),
                            snapshot_name(g)
                        )));
                    }
                    self.remove(name, &mut recovery.removed_files);
                }
                Entry::Temp => self.remove(name, &mut recovery.removed_files),
                _ => {}
            }
        }

        // Open the log for appending, cut a torn tail, and sync: what this handle
        // read may have been in the page cache only (a process crash), and every
        // frame it appends will claim `synced_to` = this length.
        let io = |e: io::Error| io_error(format!("open {}", log_path.display()), e);
        let mut log = self.vfs.open_append(&log_path).map_err(io)?;
        if recovery.torn_tail.is_some() {
            log.truncate(log_len).map_err(io)?;
        }
        log.sync().map_err(io)?;

        let writer = Writer {
            generation,
            seed: log_seed,
            log,
            log_len,
            synced_to: log_len,
            snapshot_len,
            live_bytes: live,
            compactions: 0,
            retry_compaction_at: 0,
            failed: None,
        };
        Ok(Loaded {
            spaces,
            writer,
            recovery,
        })
    }
}

/// Load a whole snapshot into `spaces`; returns the number of entries.
fn load_snapshot(
    data: &[u8],
    generation: u64,
    path: &Path,
    spaces: &mut Spaces,
    live: &mut u64,
) -> Result<u64, BackendError> {
    let bad = |what: String| BackendError::Corrupted(format!("{}: {what}", path.display()));
    let header = check_file_header(FileKind::Snapshot, data, generation).map_err(bad)?;
    let seed = header.seed;
    let mut off = header.len;
    let mut entries = 0u64;
    let mut ended = false;
    while off < data.len() {
        if ended {
            return Err(bad(format!(
                "{} bytes after the end frame, at offset {off}",
                data.len() - off
            )));
        }
        let frame = read_frame(data, off, seed)
            .map_err(|r| bad(format!("snapshot frame at offset {off}: {r}")))?;
        let ops = decode_body(frame.body)
            .map_err(|r| bad(format!("snapshot frame at offset {off}: {r}")))?;
        let n = ops.len();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                LogOp::Put { space, key, value } => {
                    *live += entry_size(key.len(), value.len());
                    let map = Arc::make_mut(&mut spaces[space.index()]);
                    if map.insert(key, value).is_some() {
                        return Err(bad(format!(
                            "snapshot frame at offset {off}: duplicate key in {space}"
                        )));
                    }
                    entries += 1;
                }
                LogOp::End { entries: declared } => {
                    if i + 1 != n {
                        return Err(bad(format!(
                            "snapshot frame at offset {off}: ops after the end marker"
                        )));
                    }
                    if declared != entries {
                        return Err(bad(format!(
                            "snapshot frame at offset {off}: the end marker counts {declared} \
                             entries, the snapshot holds {entries}"
                        )));
                    }
                    ended = true;
                }
                LogOp::Delete { .. } | LogOp::Clear => {
                    return Err(bad(format!(
                        "snapshot frame at offset {off}: a snapshot holds only puts"
                    )))
                }
            }
        }
        off = frame.end;
    }
    if !ended {
        return Err(bad(format!(
            "the snapshot ends at {} bytes without its end frame: it is truncated",
            data.len()
        )));
    }
    Ok(entries)
}

struct Replay {
    /// The frame seed of the log (from its header).
    seed: u32,
    frames: u64,
    /// Length of the valid prefix of the log.
    valid_len: usize,
    /// Why the bytes at `valid_len` were not a frame, and how many valid frames
    /// followed, when they are a torn tail.
    torn: Option<(String, u64)>,
}

/// Replay the frames of a log onto `spaces`, applying the torn-tail rule.
fn replay_log(
    data: &[u8],
    generation: u64,
    path: &Path,
    spaces: &mut Spaces,
    live: &mut u64,
) -> Result<Replay, BackendError> {
    let header = check_file_header(FileKind::Log, data, generation)
        .map_err(|r| BackendError::Corrupted(format!("{}: {r}", path.display())))?;
    let seed = header.seed;
    let mut off = header.len;
    let mut frames = 0u64;
    while off < data.len() {
        let frame = match read_frame(data, off, seed) {
            Ok(frame) => frame,
            Err(reason) => {
                return match scan_after(data, off, seed) {
                    After::Witness(witness) => Err(BackendError::Corrupted(format!(
                        "log frame at offset {off}: {reason}; the valid frame at offset \
                         {witness} was appended after the log had been synced past {off}, \
                         so this is damage to acknowledged data, not a torn write ({})",
                        path.display()
                    ))),
                    After::Torn { valid_frames_after } => Ok(Replay {
                        seed,
                        frames,
                        valid_len: off,
                        torn: Some((reason, valid_frames_after)),
                    }),
                };
            }
        };
        if frame.synced_to > off as u64 {
            return Err(BackendError::Corrupted(format!(
                "log frame at offset {off}: claims {} bytes synced, beyond its own offset ({})",
                frame.synced_to,
                path.display()
            )));
        }
        let ops = decode_body(frame.body).map_err(|r| {
            BackendError::Corrupted(format!(
                "log frame at offset {off}: its checksums are valid but its batch does not \
                 decode: {r} ({})",
                path.display()
            ))
        })?;
        if ops.iter().any(|op| matches!(op, LogOp::End { .. })) {
            return Err(BackendError::Corrupted(format!(
                "log frame at offset {off}: an end marker belongs in snapshots only ({})",
                path.display()
            )));
        }
        for op in ops {
            apply(spaces, op, live);
        }
        frames += 1;
        off = frame.end;
    }
    Ok(Replay {
        seed,
        frames,
        valid_len: off,
        torn: None,
    })
}

fn engine(message: String) -> BackendError {
    BackendError::Engine {
        engine: ENGINE,
        message,
    }
}

/// An I/O error with what was being done; a full disk becomes [`BackendError::Full`].
fn io_error(context: String, e: io::Error) -> BackendError {
    if e.kind() == io::ErrorKind::StorageFull {
        BackendError::Full(format!("{context}: {e}"))
    } else {
        BackendError::Io(io::Error::new(e.kind(), format!("{context}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify("snapshot.1"), Entry::Snapshot(1));
        assert_eq!(classify("log.18446744073709551615"), Entry::Log(u64::MAX));
        assert_eq!(classify("log.18446744073709551616"), Entry::Other);
        assert_eq!(classify("log.01"), Entry::Other);
        assert_eq!(classify("log.0"), Entry::Log(0));
        assert_eq!(classify("log."), Entry::Other);
        assert_eq!(classify("log.+1"), Entry::Other);
        assert_eq!(classify("snapshot.7.tmp"), Entry::Temp);
        assert_eq!(classify("notes.tmp"), Entry::Other);
        assert_eq!(classify("LOCK"), Entry::Other);
    }

    #[test]
    fn empty_ranges_never_reach_btreemap() {
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        assert!(range_is_empty(&KeyRange {
            lower: Bound::Excluded(a),
            upper: Bound::Excluded(a)
        }));
        assert!(range_is_empty(&KeyRange {
            lower: Bound::Included(b),
            upper: Bound::Included(a)
        }));
        assert!(!range_is_empty(&KeyRange {
            lower: Bound::Included(a),
            upper: Bound::Included(a)
        }));
    }
}

/// The README's examples, compiled and run as doctests so they never go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
