//! [`RocksBackend`]: the [`Backend`] implementation.

use std::fmt;
use std::fs;
use std::io;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

#[cfg(unix)]
use peerbook::backend::{try_lock_file, FileLock};
use peerbook::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, NewDirs, Op, ReadView,
    Space, Visit, WriteBatch,
};
use rocksdb::{
    BottommostLevelCompaction, Cache, ColumnFamily, ColumnFamilyDescriptor, CompactOptions,
    FlushOptions, ReadOptions, Snapshot, WriteOptions, DB,
};

use crate::error::{map_err, map_open_err};
use crate::options::MEMTABLE_SCAN_FLUSH_TRIGGER;
use crate::{RocksOptions, ENGINE};

mod clear;
#[cfg(test)]
mod tombstone_tests;

/// A [`Backend`] over a RocksDB database: one column family per [`Space`].
///
/// Open it with [`RocksBackend::open`]; it holds RocksDB's `LOCK` file until it is
/// dropped, so a second open of the same directory fails with
/// [`BackendError::Locked`].
///
/// ```no_run
/// use peerbook::backend::{Backend, Durability, Space, WriteBatch};
/// use peerbook_rocksdb::{RocksBackend, RocksOptions};
///
/// let backend = RocksBackend::open("/var/lib/mynode/peers", RocksOptions::default())?;
/// let mut batch = WriteBatch::new();
/// batch.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
/// backend.write(batch, Durability::Sync)?;
/// assert_eq!(backend.get(Space::Meta, b"k")?, Some(b"v".to_vec()));
/// # Ok::<(), peerbook::backend::BackendError>(())
/// ```
pub struct RocksBackend {
    db: DB,
    path: PathBuf,
    /// Taken by `write` and `clear`, so a clear (which reads the keys it must delete
    /// one by one before writing its batch) never interleaves with a write.
    write_lock: Mutex<()>,
    /// `set_sync(true)`: every write, `Sync` or `Buffered`, syncs the write-ahead log.
    sync_write: WriteOptions,
    /// The block cache shared by every column family (kept for its statistics).
    cache: Cache,
    /// One live book per backend instance.
    claim: BookClaim,
    /// `LOCK` in peerbook's process-wide table (see `open`); after `db`, so it is
    /// let go once RocksDB has closed the database. Unix only: elsewhere the
    /// lock is `LockFileEx`, which would refuse RocksDB its own lock.
    #[cfg(unix)]
    _table_lock: FileLock,
}

impl fmt::Debug for RocksBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksBackend")
            .field("path", &self.path)
            .field("block_cache_usage", &self.cache.get_usage())
            .finish_non_exhaustive()
    }
}

impl RocksBackend {
    /// Open (creating it when `options.create_if_missing`) the database in the
    /// directory `path`, with its four column families.
    ///
    /// # Errors
    ///
    /// - [`BackendError::Locked`] when another handle, in this process or another,
    ///   has the database open; the message names `path`.
    /// - [`BackendError::Io`] when the directory cannot be created or read, or
    ///   (kind `NotFound`) holds no database while `create_if_missing` is off.
    /// - [`BackendError::Corrupted`] when RocksDB finds its files damaged.
    /// - [`BackendError::Engine`] for anything else RocksDB refuses (column
    ///   families this crate does not know, options it rejects, ...).
    ///
    /// A failed open removes the directories it created on the way to `path`,
    /// innermost first, each only if empty: those its own `create_dir` made
    /// (before RocksDB's open), never one that was there, that another process
    /// made meanwhile, or a symbolic link ([`NewDirs`]). That is all of them only when it
    /// fails before RocksDB writes into `path` (a name too long, no room in the
    /// path for any file name). Once RocksDB has written there (a path with room
    /// for its `LOCK` and `LOG` but not for its longer names such as
    /// `MANIFEST-000001`, or an open it refuses), what it wrote stays: `LOCK`,
    /// `LOG`, and `IDENTITY`, `CURRENT`, `MANIFEST-*`, a `*.log` when it got that
    /// far; so do `path` and every directory this open created above it. They
    /// are not removed: RocksDB lets go of its lock before it returns, and another
    /// process may by then have opened the same path and made its database there.
    pub fn open(path: impl AsRef<Path>, options: RocksOptions) -> Result<Self, BackendError> {
        let path = path.as_ref().to_path_buf();
        // What this open makes, it removes again if it fails: a refused open
        // leaves the user's file system as it found it. Only the directories it
        // made itself: not one there before, nor one another process made
        // meanwhile, nor a symbolic link. Made here, before RocksDB's open,
        // which then finds them (and makes only its files).
        let new_dirs = if options.create_if_missing {
            match NewDirs::create(&path) {
                Ok(made) => made,
                Err((made, e)) => {
                    made.undo_failed_open("peerbook-rocksdb");
                    return Err(BackendError::io(
                        format_args!("creating RocksDB directory {}", path.display()),
                        e,
                    ));
                }
            }
        } else if path.join("CURRENT").is_file() {
            NewDirs::default()
        } else {
            // RocksDB would create the directory and its LOG before refusing.
            return Err(BackendError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no RocksDB database in {} (create_if_missing is off)",
                    path.display()
                ),
            )));
        };
        new_dirs.sync_parents(&path, "peerbook-rocksdb");
        // RocksDB's `LOCK` is also taken through peerbook's process-wide table
        // (`peerbook::backend::FileLock`), so an LMDB or file book of this
        // process is refused this directory, and this open a directory one of
        // them holds: a POSIX lock is dropped when the process closes any
        // descriptor of the file, and RocksDB's lock would not exclude them
        // (both are this process's). Never removed on failure (RocksDB's file).
        // Unix only: off Unix `try_lock_file` is `LockFileEx`, which has no such
        // hazard and would refuse RocksDB's own lock on the same file.
        #[cfg(unix)]
        let lock_path = path.join("LOCK");
        #[cfg(unix)]
        let table_lock = match try_lock_file(&lock_path) {
            Ok(lock) => lock,
            Err(e) => {
                new_dirs.undo_failed_open("peerbook-rocksdb");
                return Err(BackendError::already_open(
                    format_args!("RocksDB database {}", path.display()),
                    &lock_path,
                    e,
                ));
            }
        };
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let db_options = options.db_options();
        let families = Space::ALL.map(|space| {
            ColumnFamilyDescriptor::new(space.name(), options.cf_options(space, &cache))
        });
        let db = match DB::open_cf_descriptors(&db_options, &path, families) {
            Ok(db) => db,
            Err(e) => {
                // RocksDB's own files (its LOCK, LOG, ...) stay, and so does the
                // directory holding them, even in a directory this open created.
                // Removing them (`naming::owns_file`) is not safe: RocksDB has let
                // go of its lock (an fcntl lock and its in-process set of locked
                // files) before `open_cf_descriptors` returns, so another process
                // (or thread) that opened the same new path in between may hold
                // that lock now, with its database in these very files. Taking
                // the lock again first would not close the window: fcntl locks are
                // per process, so it does not exclude a thread of this one, and
                // a database made and closed in between holds no lock at all.
                // Only empty directories go (none above a non-empty one).
                new_dirs.undo_failed_open("peerbook-rocksdb");
                return Err(map_open_err(e, &path));
            }
        };

        // Buffered writes sync the write-ahead log too: see `write`.
        let mut sync_write = WriteOptions::default();
        sync_write.set_sync(true);

        let backend = RocksBackend {
            db,
            path,
            write_lock: Mutex::new(()),
            sync_write,
            cache,
            claim: BookClaim::new(),
            #[cfg(unix)]
            _table_lock: table_lock,
        };
        if let Err(e) = backend.families() {
            drop(backend);
            new_dirs.undo_failed_open("peerbook-rocksdb");
            return Err(e);
        }
        backend.flush_memtables_dense_with_tombstones();
        Ok(backend)
    }

    /// Ask RocksDB to flush an index's memtable once an iterator steps over
    /// [`MEMTABLE_SCAN_FLUSH_TRIGGER`] deleted entries of it in one operation
    /// (RocksDB counts them on forward steps only: the candidate walks and
    /// newest-first queries; an oldest-first query never triggers it). Set here,
    /// after open, not in `RocksOptions::cf_options`: a RocksDB without the
    /// option (one linked from the system, older than 10.2) refuses it, and the
    /// book still works, paying the tombstones until its memtable fills.
    fn flush_memtables_dense_with_tombstones(&self) {
        for space in [Space::ByLastSeen, Space::ByQuality] {
            let Ok(cf) = self.cf(space) else { continue };
            if let Err(e) = self.db.set_options_cf(
                cf,
                &[(
                    "memtable_op_scan_flush_trigger",
                    MEMTABLE_SCAN_FLUSH_TRIGGER,
                )],
            ) {
                tracing::warn!(
                    space = space.name(),
                    error = %e,
                    "RocksDB refused memtable_op_scan_flush_trigger"
                );
            }
        }
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Compact every column family now, down to the last level, and wait for it.
    ///
    /// RocksDB compacts in the background by itself; this is for when disk space
    /// must come back at once, e.g. after a large cleanup, whose deleted entries
    /// otherwise stay on disk until a compaction reaches them ([`Backend::clear`]
    /// compacts by itself). It
    /// rewrites the whole database: seconds for a large book.
    ///
    /// The `rocksdb` crate reports no error from a manual compaction; a failed
    /// compaction puts RocksDB in a background-error state that the next write
    /// reports.
    pub fn compact(&self) -> Result<(), BackendError> {
        for space in Space::ALL {
            self.compact_cf(space)?;
        }
        Ok(())
    }

    /// Compact the column family of `space` down to the last level and wait for
    /// it: its memtable is flushed first, and with no older version below and no
    /// snapshot holding them, the tombstones of deleted keys are dropped.
    fn compact_cf(&self, space: Space) -> Result<(), BackendError> {
        self.compact_family(self.cf(space)?);
        Ok(())
    }

    /// Compact the column family `cf` down to the last level and wait for it (the
    /// `rocksdb` crate reports no error from it).
    fn compact_family(&self, cf: &ColumnFamily) {
        let mut options = CompactOptions::default();
        options.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        self.db
            .compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &options);
    }

    /// Flush the memtables of `families` to SST files and wait for it.
    fn flush_families(&self, families: &[&ColumnFamily]) -> Result<(), BackendError> {
        let mut flush = FlushOptions::default();
        flush.set_wait(true);
        self.db.flush_cfs_opt(families, &flush).map_err(map_err)
    }

    fn cf(&self, space: Space) -> Result<&ColumnFamily, BackendError> {
        self.db.cf_handle(space.name()).ok_or_else(|| {
            BackendError::engine(ENGINE, format!("column family {} is missing", space.name()))
        })
    }

    /// The handles of every column family, indexed by [`Space::index`].
    fn families(&self) -> Result<[&ColumnFamily; 4], BackendError> {
        Ok([
            self.cf(Space::Peers)?,
            self.cf(Space::ByLastSeen)?,
            self.cf(Space::ByQuality)?,
            self.cf(Space::Meta)?,
        ])
    }

    fn lock_writes(&self) -> MutexGuard<'_, ()> {
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        self.write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The inclusive lower bound equivalent to `bound`: the smallest key above `k` is
/// `k` followed by a zero byte.
fn inclusive_lower(bound: Bound<&[u8]>) -> Option<Vec<u8>> {
    match bound {
        Bound::Included(k) => Some(k.to_vec()),
        Bound::Excluded(k) => Some(successor(k)),
        Bound::Unbounded => None,
    }
}

/// The exclusive upper bound equivalent to `bound` (RocksDB's
/// `iterate_upper_bound` is exclusive).
fn exclusive_upper(bound: Bound<&[u8]>) -> Option<Vec<u8>> {
    match bound {
        Bound::Included(k) => Some(successor(k)),
        Bound::Excluded(k) => Some(k.to_vec()),
        Bound::Unbounded => None,
    }
}

/// The smallest key greater than `key` in byte order.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// A [`ReadView`] of a [`RocksBackend`]: one RocksDB snapshot, read through
/// `ReadOptions::set_snapshot`. While it lives, RocksDB keeps the versions it sees
/// from compaction, so views should be short.
struct RocksView<'a> {
    backend: &'a RocksBackend,
    snapshot: Snapshot<'a>,
}

impl ReadView for RocksView<'_> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.backend.get_at(Some(&self.snapshot), space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.backend
            .scan_at(Some(&self.snapshot), space, range, direction, visitor)
    }
}

impl RocksBackend {
    fn get_at(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        space: Space,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, BackendError> {
        let cf = self.cf(space)?;
        let mut read = ReadOptions::default();
        if let Some(snapshot) = snapshot {
            read.set_snapshot(snapshot);
        }
        let value = self.db.get_pinned_cf_opt(cf, key, &read).map_err(map_err)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn scan_at(
        &self,
        snapshot: Option<&Snapshot<'_>>,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        if range.is_empty() {
            return Ok(());
        }
        let cf = self.cf(space)?;
        // Every bound becomes RocksDB's [lower, upper) pair, so the iterator itself
        // never leaves the range, in either direction: seek_to_first starts at the
        // lower bound, seek_to_last just below the upper one.
        let mut read = ReadOptions::default();
        if let Some(snapshot) = snapshot {
            read.set_snapshot(snapshot);
        }
        match inclusive_lower(range.lower) {
            // "" is the smallest key: no bound at all.
            Some(lower) if !lower.is_empty() => read.set_iterate_lower_bound(lower),
            _ => {}
        }
        match exclusive_upper(range.upper) {
            // No key is below "".
            Some(upper) if upper.is_empty() => return Ok(()),
            Some(upper) => read.set_iterate_upper_bound(upper),
            None => {}
        }
        // The iterator reads one implicit snapshot: a scan never sees half a batch.
        let mut iter = self.db.raw_iterator_cf_opt(cf, read);
        match direction {
            Direction::Forward => iter.seek_to_first(),
            Direction::Reverse => iter.seek_to_last(),
        }
        while let Some((key, value)) = iter.item() {
            // Defensive: the bounds above already keep the iterator inside.
            if !range.contains(key) {
                break;
            }
            if let ControlFlow::Break(()) = visitor(key, value) {
                return Ok(());
            }
            match direction {
                Direction::Forward => iter.next(),
                Direction::Reverse => iter.prev(),
            }
        }
        // `item()` is None at the end of the range and after an error alike.
        iter.status().map_err(map_err)
    }
}

impl Backend for RocksBackend {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.get_at(None, space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.scan_at(None, space, range, direction, visitor)
    }

    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        Ok(Box::new(RocksView {
            backend: self,
            snapshot: self.db.snapshot(),
        }))
    }

    fn book_claim(&self) -> BookClaim {
        self.claim.clone()
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<(), BackendError> {
        if batch.is_empty() {
            return Ok(());
        }
        let families = self.families()?;
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.into_ops() {
            match op {
                Op::Put { space, key, value } => {
                    rocks_batch.put_cf(families[space.index()], key, value)
                }
                Op::Delete { space, key } => rocks_batch.delete_cf(families[space.index()], key),
            }
        }
        let _writer = self.lock_writes();
        // `Buffered` is written synced, exactly like `Sync`: with an unsynced
        // write-ahead log, a power cut can drop one batch and keep a later one
        // (recovery skips a zero-filled log block as preallocated space and replays
        // the records after it), which can leave index entries and counters out of
        // step with records. The power-loss harness (`peerbook-powerfail`) found
        // such gaps; no recovery mode avoids them. So RocksDB offers no weaker mode.
        self.db
            .write_opt(rocks_batch, &self.sync_write)
            .map_err(map_err)
    }

    fn flush(&self) -> Result<(), BackendError> {
        // Every write already synced the WAL (see `write`); syncing it again is cheap
        // and keeps `flush` a real barrier. Memtables need no flush: the synced WAL
        // replays at open.
        self.db.flush_wal(true).map_err(map_err)
    }

    /// One RocksDB write batch holding, per column family, the range deletions
    /// `[0xff^k, 0xff^(k+1))` for k = 0..=16 (`0xff^0` is the empty key): together
    /// every key with at most 16 leading `0xff` bytes, each range O(1) however many
    /// keys it holds. No finite exclusive upper bound covers every key, so keys
    /// with longer runs are point-deleted, found by a scan that is normally empty
    /// (peer ids are printable ASCII, meta names are text, index keys start with a
    /// score or `!last_seen`: a by_last_seen key starts with `0xff 0xff` for any
    /// time before the year 10,000, which a single range `["", "\xff")` left to
    /// the scan, one point deletion per peer). The batch is atomic across column
    /// families; the write lock keeps writes out between the scan and the write.
    ///
    /// The batch is written synced (whatever `durability` says): it is the commit
    /// point, so a crash leaves the old book or the empty one. Then every column
    /// family's memtable is flushed, which makes the write-ahead log holding the old
    /// data obsolete (RocksDB deletes it), a forced full compaction drops the old
    /// data from the SST files (the old files are deleted), and a new `MANIFEST`
    /// replaces the old one, whose edits name the smallest and largest key of every
    /// SST file the database had (`RocksBackend::roll_manifest`). Once this returns
    /// `Ok`, no file of the directory holds a byte of a former entry, key or value.
    /// A crash after the commit point but before the end leaves an empty book whose
    /// old bytes stay in the files until the next clear.
    ///
    /// Readers are not stopped: they read the database, open all along, before or
    /// after the commit point. What they hold is asked of RocksDB itself (polled,
    /// every few milliseconds): between the commit point and the flush, `clear` waits
    /// (up to 5 s) until no snapshot older than the commit point is left (a view's
    /// snapshot keeps every entry it sees through the compaction); at the end it
    /// waits (up to 5 s) until every SST file in the directory is live (a get or a
    /// scan in flight, a view's too, keeps the files it reads from deletion until
    /// it ends). Writes wait meanwhile. A read still running after a wait (a view
    /// held by the thread calling `clear`, an export slower than 5 s) keeps the old
    /// entries on disk until it ends and RocksDB compacts them away, and their keys
    /// in the `MANIFEST` until its next write. When no older snapshot is left and a
    /// space still has a live SST file after the compaction (the `rocksdb` crate's
    /// `compact_range` reports no error), `clear` fails with
    /// [`BackendError::Engine`]: the book is empty, but its old entries are still
    /// on disk, and a later clear removes them.
    fn clear(&self, _durability: Durability) -> Result<(), BackendError> {
        self.clear_all_entries()
    }

    /// The sizes of every file in the database directory added up: SST files, write-ahead
    /// logs, `MANIFEST`, `OPTIONS`, RocksDB's `LOG` files.
    fn disk_usage(&self) -> Result<u64, BackendError> {
        dir_size(&self.path).map_err(BackendError::Io)
    }

    fn engine_name(&self) -> &'static str {
        ENGINE
    }

    /// A full compaction of the space's column family (see [`RocksBackend::compact`],
    /// which does every one): a deleted key stays as a tombstone until a compaction
    /// reaches it, and an iterator steps over every tombstone in its way, so after a
    /// bulk delete (the schema 3 -> 4 migration deletes the whole by_last_seen index,
    /// whose old keys all sort before the new ones) a forward scan would step over
    /// them all until RocksDB got round to compacting them.
    fn compact_space(&self, space: Space) -> Result<(), BackendError> {
        self.compact_cf(space)
    }
}

/// Total size of the files under `dir`. Files that vanish during the walk (RocksDB
/// deletes obsolete SSTs and logs in the background) count as zero.
fn dir_size(dir: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    for entry in fs::read_dir(dir)? {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if metadata.is_dir() {
            total = total.saturating_add(dir_size(&entry.path())?);
        } else {
            total = total.saturating_add(metadata.len());
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_become_half_open_ranges() {
        assert_eq!(inclusive_lower(Bound::Included(b"a")), Some(b"a".to_vec()));
        assert_eq!(
            inclusive_lower(Bound::Excluded(b"a")),
            Some(b"a\x00".to_vec())
        );
        assert_eq!(inclusive_lower(Bound::Unbounded), None);
        assert_eq!(
            exclusive_upper(Bound::Included(b"\xff")),
            Some(b"\xff\x00".to_vec())
        );
        assert_eq!(exclusive_upper(Bound::Excluded(b"b")), Some(b"b".to_vec()));
        assert_eq!(exclusive_upper(Bound::Unbounded), None);
    }
}
