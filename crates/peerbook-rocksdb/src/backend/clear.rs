//! How [`Backend::clear`](peerbook::backend::Backend::clear) leaves no byte of the old book in the files: the
//! batch it commits (ranges per column family), the waits for older reads, and
//! the compactions, `MANIFEST` roll and purge after it (see `clear`'s doc on
//! [`RocksBackend`]'s `Backend` implementation).

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant};

use peerbook::backend::{BackendError, Space};
use rocksdb::{ReadOptions, DEFAULT_COLUMN_FAMILY_NAME};

use super::RocksBackend;
use crate::error::map_err;
use crate::{naming, ENGINE};

/// The byte no finite exclusive upper bound steps past (see [`Backend::clear`](peerbook::backend::Backend::clear)).
const HIGH_BYTE: u8 = 0xff;
/// [`Backend::clear`](peerbook::backend::Backend::clear) deletes by ranges every key with at most this many leading
/// `0xff` bytes; longer runs (a by_last_seen key has at most 8: `!last_seen` of
/// time 0) are deleted one by one.
const HIGH_RUNS: usize = 16;
/// The key [`RocksBackend::roll_manifest`] deletes in the (otherwise unused)
/// default column family: a tombstone to flush, which makes one `MANIFEST` write.
const MANIFEST_ROLL_KEY: &[u8] = b"peerbook-rocksdb/roll-manifest";
/// How long [`Backend::clear`](peerbook::backend::Backend::clear) waits, at each of its two waits, for reads to end:
/// for the snapshots older than its commit point (a view's snapshot keeps every
/// entry it sees through RocksDB's compaction), then for the reads that hold the
/// files the compaction replaced (RocksDB deletes a file once no read holds it).
/// Reads are short; a thread that calls `clear` while it holds a view itself
/// waits this long, then the old entries it sees stay on disk until it drops the
/// view and RocksDB compacts them.
const CLEAR_READ_WAIT: Duration = Duration::from_secs(5);
/// How often [`Backend::clear`](peerbook::backend::Backend::clear) asks RocksDB, while it waits, whether the reads
/// it waits for have ended (RocksDB tells whether a snapshot or a file is still
/// held, not when one is released): after 1 ms, then twice as long each time up
/// to this (each question takes RocksDB's mutex, which a new view needs too).
const CLEAR_POLL_MAX: Duration = Duration::from_millis(8);
/// RocksDB's property: the sequence number of the oldest snapshot (0 when there
/// is none; the `rocksdb` crate names no constant for it).
const OLDEST_SNAPSHOT_SEQUENCE: &str = "rocksdb.oldest-snapshot-sequence";

impl RocksBackend {
    /// [`Backend::clear`](peerbook::backend::Backend::clear): commit the clear batch (synced), then leave no old
    /// entry in the files (see its doc).
    pub(super) fn clear_all_entries(&self) -> Result<(), BackendError> {
        let _writer = self.lock_writes();
        let rocks_batch = self.clear_batch()?;
        self.db
            .write_opt(rocks_batch, &self.sync_write)
            .map_err(map_err)?;
        // The commit point: a snapshot at this sequence number or later sees the
        // empty book (writes wait on the lock held here).
        let committed = self.db.latest_sequence_number();
        let no_older_snapshot = wait_until(Instant::now() + CLEAR_READ_WAIT, || {
            self.no_snapshot_before(committed)
        })?;
        if !no_older_snapshot {
            tracing::warn!(
                path = %self.path.display(),
                "peerbook-rocksdb: clear went on while a view older than it was still open \
                 (what it sees stays on disk until it ends)"
            );
        }
        self.flush_families(&self.families()?)?;
        self.compact()?;
        if no_older_snapshot {
            self.check_cleared()?;
        }
        self.roll_manifest()?;
        // The reads in flight hold the files the compactions replaced.
        if !wait_until(Instant::now() + CLEAR_READ_WAIT, || self.purge_obsolete())? {
            tracing::warn!(
                path = %self.path.display(),
                "peerbook-rocksdb: clear returned while a read still held replaced files \
                 (they go when it ends)"
            );
        }
        Ok(())
    }

    /// The batch [`Backend::clear`](peerbook::backend::Backend::clear) commits: per column family, the range
    /// deletions `[0xff^k, 0xff^(k+1))`, k = 0..=[`HIGH_RUNS`], and a point
    /// deletion of each key starting with `HIGH_RUNS + 1` `0xff` bytes.
    fn clear_batch(&self) -> Result<rocksdb::WriteBatch, BackendError> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        let high = [HIGH_BYTE; HIGH_RUNS + 1];
        for space in Space::ALL {
            let cf = self.cf(space)?;
            for run in 0..=HIGH_RUNS {
                rocks_batch.delete_range_cf(cf, &high[..run], &high[..=run]);
            }
            let mut read = ReadOptions::default();
            read.set_iterate_lower_bound(high.to_vec());
            let mut iter = self.db.raw_iterator_cf_opt(cf, read);
            iter.seek_to_first();
            while let Some(key) = iter.key() {
                rocks_batch.delete_cf(cf, key);
                iter.next();
            }
            iter.status().map_err(map_err)?;
        }
        Ok(rocks_batch)
    }

    /// Leave a `MANIFEST` holding only the current state, and no other: the old
    /// `MANIFEST`s name every SST file the database had, with the smallest and
    /// largest key of each (peer ids, in the `peers` and `by_quality` keys,
    /// negated in `by_last_seen` and rank keys).
    ///
    /// The database is opened to start a new `MANIFEST` at every `MANIFEST` write
    /// (`MANIFEST_OPTIONS` in `options.rs`), but the new file gets the state from
    /// before that write's edit, then the edit: after [`Backend::clear`](peerbook::backend::Backend::clear)'s last
    /// compaction it would still name that column family's former files. So two
    /// writes follow that leave the book as it is: the flush of a tombstone in the
    /// (otherwise unused) default column family (its new `MANIFEST` holds the
    /// current state, then the tombstone's SST file) and that column family's
    /// compaction (which drops the file). The old `MANIFEST`s are then obsolete:
    /// [`purge_obsolete`](Self::purge_obsolete) deletes them.
    ///
    /// Crash safety is RocksDB's: a new `MANIFEST` is synced before `CURRENT` names
    /// it (an atomic rename, as at every flush, compaction and open), and the
    /// tombstone is an ordinary write.
    fn roll_manifest(&self) -> Result<(), BackendError> {
        let default = self
            .db
            .cf_handle(DEFAULT_COLUMN_FAMILY_NAME)
            .ok_or_else(|| BackendError::engine(ENGINE, "the default column family is missing"))?;
        self.db
            .delete_cf_opt(default, MANIFEST_ROLL_KEY, &self.sync_write)
            .map_err(map_err)?;
        self.flush_families(&[default])?;
        self.compact_family(default);
        Ok(())
    }

    /// Whether no snapshot older than the sequence number `committed` is left
    /// (RocksDB's own count of the snapshots, and the oldest one's sequence
    /// number): a view's snapshot keeps every entry it sees through a compaction.
    fn no_snapshot_before(&self, committed: u64) -> Result<bool, BackendError> {
        let property = |name: &str| {
            self.db
                .property_int_value(name)
                .map_err(map_err)?
                .ok_or_else(|| BackendError::engine(ENGINE, format!("RocksDB lacks {name}")))
        };
        if property(rocksdb::properties::NUM_SNAPSHOTS.as_str())? == 0 {
            return Ok(true);
        }
        // 0 when the snapshots were released in between, and for a snapshot taken
        // before the first write: both are asked again
        Ok(property(OLDEST_SNAPSHOT_SEQUENCE)? >= committed)
    }

    /// Delete the obsolete files now, and tell whether none is left: disabling then
    /// enabling file deletions makes RocksDB scan the directory and delete, in
    /// this thread, every file no version and no read needs (old SST files, logs
    /// and `MANIFEST`s); otherwise background jobs delete them, maybe after
    /// `clear` has returned. A read in flight (a get, a scan, a view's read) keeps
    /// the SST files it reads until it ends, live or not: none is left once every
    /// SST file in the directory is live.
    fn purge_obsolete(&self) -> Result<bool, BackendError> {
        self.db.disable_file_deletions().map_err(map_err)?;
        self.db.enable_file_deletions().map_err(map_err)?;
        let live: HashSet<String> = self
            .db
            .live_files()
            .map_err(map_err)?
            .into_iter()
            .map(|file| file.name.trim_start_matches('/').to_string())
            .collect();
        let listing = fs::read_dir(&self.path)
            .map_err(|e| BackendError::io(format_args!("listing {}", self.path.display()), e))?;
        for entry in listing {
            let entry = entry.map_err(|e| {
                BackendError::io(format_args!("listing {}", self.path.display()), e)
            })?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // RocksDB's own table files only: it never deletes a file of another
            // name (a user's `backup.sst`), which would be waited for in vain.
            let numbered = name.strip_suffix(".sst").is_some_and(naming::all_digits);
            if numbered && !live.contains(name.as_ref()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// After `clear`'s compaction, with no snapshot older than its commit point left:
    /// no SST file of a space is live. Every entry of the spaces was under the
    /// clear's deletions and no snapshot from before them needs one, so the forced
    /// compaction to the last level writes no file; a live one means the compaction
    /// did not run through (the `rocksdb` crate's `compact_range` reports no error)
    /// and the old entries are still on disk.
    fn check_cleared(&self) -> Result<(), BackendError> {
        let left: Vec<String> = self
            .db
            .live_files()
            .map_err(map_err)?
            .into_iter()
            .filter(|file| {
                Space::ALL
                    .iter()
                    .any(|s| s.name() == file.column_family_name)
            })
            .map(|file| format!("{} ({})", file.name, file.column_family_name))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(BackendError::engine(
                ENGINE,
                format!(
                    "clear's compaction left {} file(s) of the old book: {}",
                    left.len(),
                    left.join(", ")
                ),
            ))
        }
    }
}

/// Ask `done` until it says yes (`Ok(true)`) or `deadline` has passed, after
/// 1 ms, then twice as long each time up to [`CLEAR_POLL_MAX`]; whether it said
/// yes.
fn wait_until(
    deadline: Instant,
    mut done: impl FnMut() -> Result<bool, BackendError>,
) -> Result<bool, BackendError> {
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(CLEAR_POLL_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbook::backend::{Backend, Durability, WriteBatch};

    /// A clear costs the same batch whatever the book's size: by_last_seen keys
    /// all start with `0xff 0xff` (`!last_seen`), and a single range below `0xff`
    /// left one point deletion per peer.
    #[test]
    fn clear_batch_is_ranges_only_for_index_keys() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksBackend::open(dir.path(), crate::RocksOptions::default()).unwrap();
        let mut batch = WriteBatch::new();
        for n in 0u64..1_000 {
            let now = 1_780_000_000_000 + n;
            let mut key = (!now).to_be_bytes().to_vec();
            key.extend_from_slice(b"\xb1\xb2\xff");
            batch.put(Space::ByLastSeen, key, vec![0; 20]);
            batch.put(Space::Peers, format!("peer-{n}").into_bytes(), vec![1; 40]);
        }
        rocks.write(batch, Durability::Sync).unwrap();
        let ranges = Space::ALL.len() * (HIGH_RUNS + 1);
        assert_eq!(rocks.clear_batch().unwrap().len(), ranges);
        let mut batch = WriteBatch::new();
        batch.put(Space::Meta, vec![HIGH_BYTE; HIGH_RUNS + 1], b"x".to_vec());
        rocks.write(batch, Durability::Sync).unwrap();
        assert_eq!(
            rocks.clear_batch().unwrap().len(),
            ranges + 1,
            "a key past the ranges is point-deleted"
        );
    }
}
