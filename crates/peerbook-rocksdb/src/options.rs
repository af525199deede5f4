//! [`RocksOptions`]: the tuning knobs of a [`RocksBackend`](crate::RocksBackend), with
//! defaults chosen for a book of peers.
//!
//! The workload these defaults target: values of about 1 KiB (one encoded peer
//! record), keys under 150 bytes, point reads of one peer far more often than
//! writes, whole-space range scans of the two index spaces, and books of up to about
//! a million peers (about 1 GiB of records) inside a process that also holds many
//! network sockets. Every default below says why it was picked.

use peerbook::backend::Space;
use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, DataBlockIndexType, LogLevel, Options};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Block compression of the SST files.
///
/// The crate is built with RocksDB's LZ4 codec only (no Snappy, Zstd, Zlib or
/// Bzip2); the crate documentation gives the measurements behind the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// No compression: for books whose records are almost all random bytes, or to
    /// spare the CPU cycles of compressing flushed and compacted blocks.
    None,
    /// LZ4 on every level (the default). Records repeat a lot of text from one
    /// peer to the next (JSON field names of public keys, ICE server URLs, ICE
    /// candidate lines), which LZ4 removes at a few microseconds per 4 KiB block;
    /// a block that LZ4 cannot shrink by 1/8 is stored uncompressed, so random
    /// bytes cost nothing to read.
    #[default]
    Lz4,
}

impl Compression {
    fn to_rocks(self) -> DBCompressionType {
        match self {
            Compression::None => DBCompressionType::None,
            Compression::Lz4 => DBCompressionType::Lz4,
        }
    }
}

/// Options of [`RocksBackend::open`](crate::RocksBackend::open).
///
/// Start from [`RocksOptions::default`] and change the fields you need:
///
/// ```
/// let mut options = peerbook_rocksdb::RocksOptions::default();
/// options.block_cache_bytes = 64 << 20;
/// assert!(options.create_if_missing);
/// ```
///
/// Every column family shares one LRU block cache; the `peers` column family gets a
/// whole-key Bloom filter and a hash index inside its data blocks (point reads), the
/// index and meta column families get neither (they are read by range scans).
/// No column family has a prefix extractor: index scans walk whole column families
/// in key order, which a prefix extractor cannot speed up, and it would make
/// unbounded scans need `total_order_seek`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RocksOptions {
    /// Create the directory and the database when missing. Default `true`.
    ///
    /// The four column families are always created when missing (RocksDB's
    /// `create_missing_column_families`), since the backend needs every one of them.
    pub create_if_missing: bool,

    /// Capacity of the LRU block cache shared by every column family, in bytes.
    /// Default 16 MiB.
    ///
    /// Holds uncompressed data blocks: 16 MiB keeps roughly 15 000 records hot, the
    /// working set of a node that reconnects to its best few thousand peers, at a
    /// memory cost that suits an embedded store. Index and filter blocks are held by
    /// the open table files instead (about 10 MiB for a million peers), so they never
    /// compete with data blocks. Raise it for large books read at random.
    pub block_cache_bytes: usize,

    /// Size of an SST data block before compression, in bytes. Default 4 KiB.
    ///
    /// A point read loads one block: 4 KiB holds about four records, so little is
    /// read for nothing, and the block index stays small (about 8 bytes of index per
    /// KiB of data).
    pub block_size: usize,

    /// Bits per key of the whole-key Bloom filter of the `peers` column family.
    /// Default 10 (about 1 % false positives); `0.0` disables the filter.
    ///
    /// Lookups of unknown peers (a new peer connecting, a removed one) then skip the
    /// disk read in 99 % of the SST files they would otherwise probe, for 1.25 bytes
    /// of memory per peer. The index spaces have no filter: they are scanned, and
    /// filters only serve point reads.
    pub bloom_bits_per_key: f64,

    /// Memtable size of the `peers` column family, in bytes. Default 8 MiB.
    ///
    /// About 8 000 records per memtable: small enough that a million-peer book keeps
    /// at most 16 MiB of memtables for its records (two memtables), large enough
    /// that flushes stay rare. SST files of this column family target the same size
    /// and its first level holds four times as much (the L0 compaction trigger), so
    /// a million peers spread over about 130 files.
    pub peers_write_buffer_bytes: usize,

    /// Memtable size of the `by_last_seen`, `by_quality` and `meta` column families,
    /// in bytes. Default 2 MiB.
    ///
    /// Their entries are short keys (a score or timestamp and a peer id) with short
    /// values (a 16-byte score hint in `by_last_seen` and in the rank region of
    /// `by_quality`, empty for its quality keys): 2 MiB
    /// holds tens of thousands of index entries, and a whole million-entry index is
    /// only some tens of MiB on disk.
    pub index_write_buffer_bytes: usize,

    /// Most files RocksDB keeps open at once (`max_open_files`). Default 256.
    ///
    /// With the file sizes above a million-peer book is about 150 files, so every
    /// table stays open (no re-opening on reads) while a P2P process keeps its file
    /// descriptors for sockets. `-1` means no limit.
    pub max_open_files: i32,

    /// Total size of the write-ahead logs before RocksDB flushes the column
    /// families that keep the oldest log alive (`max_total_wal_size`). Default
    /// 64 MiB.
    ///
    /// The four column families share one log; a rarely written one (meta) could
    /// otherwise pin old logs on disk, and every log is replayed at open.
    pub max_total_wal_size: u64,

    /// Background flush and compaction threads (`max_background_jobs`). Default 2.
    ///
    /// A peer book is a light writer; two jobs let a flush run beside a compaction
    /// without taking cores from the node's networking.
    pub max_background_jobs: i32,

    /// Block compression of every level. Default [`Compression::Lz4`].
    pub compression: Compression,

    /// Number of RocksDB's own `LOG` files kept (`keep_log_file_num`), each rotated
    /// at 1 MiB. Default 4.
    ///
    /// RocksDB otherwise keeps up to 1000 of them; a few recent ones are enough to
    /// diagnose a problem.
    pub keep_log_file_num: usize,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions {
            create_if_missing: true,
            block_cache_bytes: 16 * MIB,
            block_size: 4 * KIB,
            bloom_bits_per_key: 10.0,
            peers_write_buffer_bytes: 8 * MIB,
            index_write_buffer_bytes: 2 * MIB,
            max_open_files: 256,
            max_total_wal_size: 64 * MIB as u64,
            max_background_jobs: 2,
            compression: Compression::Lz4,
            keep_log_file_num: 4,
        }
    }
}

/// Bytes written between background `fsync`s of SST files being built, so a flush
/// or compaction does not dump its whole output onto the disk at once.
const BYTES_PER_SYNC: u64 = MIB as u64;

/// Size at which RocksDB's own `LOG` file is rotated.
const MAX_INFO_LOG_BYTES: usize = MIB;

/// RocksDB's `MANIFEST` options, in its options-string syntax (the rust-rocksdb
/// crate has no setter for `max_manifest_space_amp_pct`): start a new `MANIFEST`,
/// holding only the current state, at every `MANIFEST` write (each flush and each
/// compaction) and delete the old one. RocksDB's defaults (1 GiB, 500 %) keep
/// appending to one file whose edits name every SST file the database ever had,
/// with its smallest and largest key (peer ids, in the `peers` and `by_quality`
/// keys, negated in `by_last_seen` and rank keys), so the ids of a cleared book would stay on disk
/// until the next open; [`Backend::clear`](peerbook::backend::Backend::clear)
/// relies on this. The cost: each flush or compaction writes the whole state (about
/// 100 bytes per SST file) to a new file, syncs it and renames `CURRENT`.
const MANIFEST_OPTIONS: &str = "max_manifest_file_size=0;max_manifest_space_amp_pct=0";

/// Index SST files are compacted once any `TOMBSTONE_WINDOW` consecutive entries
/// hold `TOMBSTONE_TRIGGER` deletions (RocksDB's `CompactOnDeletionCollector`).
/// Every write that moves a peer's index entries (a new `last_seen`, a changed
/// score) deletes the old keys, which sit where the candidate walks read: at the
/// newest end of `by_last_seen` and at the head of the rank runs. A deleted key
/// stays as a tombstone until a compaction drops it, and an iterator steps over
/// each one, so a node's reconnection loop would otherwise slow its own queries
/// down by orders of magnitude (`candidates_churn` example; docs/performance.md).
pub(crate) const TOMBSTONE_WINDOW: usize = 1000;
/// See [`TOMBSTONE_WINDOW`].
pub(crate) const TOMBSTONE_TRIGGER: usize = 250;

/// When one iterator operation steps over this many deleted (or overwritten)
/// entries of an index's active memtable, RocksDB flushes that memtable
/// (`memtable_op_scan_flush_trigger`), so the tombstones reach an SST file, where
/// [`TOMBSTONE_WINDOW`] compacts them away.
pub(crate) const MEMTABLE_SCAN_FLUSH_TRIGGER: &str = "256";

/// Memtables per column family: one being written and one being flushed.
const MAX_WRITE_BUFFERS: i32 = 2;

/// How many L0 files trigger a compaction into the next level (RocksDB's default).
const L0_COMPACTION_TRIGGER: u64 = 4;

impl RocksOptions {
    /// The RocksDB options [`RocksBackend::open`](crate::RocksBackend::open) opens a
    /// database with: the database's own, then each space's column family (named by
    /// [`Space::name`], in [`Space::ALL`] order), every family sharing one new block
    /// cache of [`block_cache_bytes`](Self::block_cache_bytes). For tools that open
    /// the same engine directly (the benchmarks' raw floors), so they measure RocksDB
    /// as this backend configures it.
    pub fn rocksdb_options(&self) -> (Options, [(&'static str, Options); 4]) {
        let cache = Cache::new_lru_cache(self.block_cache_bytes);
        let families = Space::ALL.map(|space| (space.name(), self.cf_options(space, &cache)));
        (self.db_options(), families)
    }

    /// Options of the database as a whole (and of the unused default column family).
    pub(crate) fn db_options(&self) -> Options {
        let mut o = Options::default();
        o.create_if_missing(self.create_if_missing);
        o.create_missing_column_families(true);
        o.set_max_open_files(self.max_open_files);
        o.set_max_total_wal_size(self.max_total_wal_size);
        // No `recycle_log_file_num`: a recycled log keeps former entries on disk
        // after `clear` (the crate documentation, Durability, has the measurements).
        o.set_max_background_jobs(self.max_background_jobs);
        o.set_bytes_per_sync(BYTES_PER_SYNC);
        o.set_keep_log_file_num(self.keep_log_file_num);
        o.set_max_log_file_size(MAX_INFO_LOG_BYTES);
        // The default column family only ever gets `clear`'s one tombstone; keep its
        // memtable tiny.
        o.set_write_buffer_size(64 * KIB);
        o.set_compression_type(self.compression.to_rocks());
        // RocksDB's informational messages can print keys (a manual compaction
        // split at a key: "will stop at '<hex key>'"), which would outlive a clear in
        // `LOG`: warnings and errors only.
        o.set_log_level(LogLevel::Warn);
        // `max_manifest_space_amp_pct` is RocksDB 10.9's: a RocksDB linked from the
        // system (`ROCKSDB_LIB_DIR`) may not know it and refuse the string; before
        // 10.9, `max_manifest_file_size` = 0 alone starts a new MANIFEST at every write.
        match o.get_options_from_string(MANIFEST_OPTIONS) {
            Ok(with_manifest) => with_manifest,
            Err(_) => {
                o.set_max_manifest_file_size(0);
                o
            }
        }
    }

    /// Options of the column family of `space`, sharing `cache`.
    pub(crate) fn cf_options(&self, space: Space, cache: &Cache) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(cache);
        table.set_block_size(self.block_size);
        let write_buffer = match space {
            Space::Peers => {
                if self.bloom_bits_per_key > 0.0 {
                    // Full (not block-based) filter over whole keys.
                    table.set_bloom_filter(self.bloom_bits_per_key, false);
                    table.set_whole_key_filtering(true);
                }
                // A small hash table at the end of each data block finds a key in
                // the block without a binary search: cheaper point reads.
                table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
                table.set_data_block_hash_ratio(0.75);
                self.peers_write_buffer_bytes
            }
            Space::ByLastSeen | Space::ByQuality | Space::Meta => self.index_write_buffer_bytes,
        };

        let mut o = Options::default();
        if matches!(space, Space::ByLastSeen | Space::ByQuality) {
            // Every moved index entry leaves a tombstone where the walks read
            // (see `TOMBSTONE_WINDOW`): an SST file dense with them is compacted.
            o.add_compact_on_deletion_collector_factory(TOMBSTONE_WINDOW, TOMBSTONE_TRIGGER, 0.0);
        }
        o.set_block_based_table_factory(&table);
        o.set_compression_type(self.compression.to_rocks());
        o.set_write_buffer_size(write_buffer);
        o.set_max_write_buffer_number(MAX_WRITE_BUFFERS);
        // Size the levels after the memtable: an SST file is about one memtable, and
        // the first level holds what L0 holds when it is compacted.
        o.set_target_file_size_base(write_buffer as u64);
        o.set_max_bytes_for_level_base(write_buffer as u64 * L0_COMPACTION_TRIGGER);
        o
    }
}
