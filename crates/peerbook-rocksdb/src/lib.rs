//! # peerbook-rocksdb
//!
//! A [`peerbook`] storage backend over [RocksDB](https://rocksdb.org), through the
//! `rocksdb` crate: [`RocksBackend`] implements
//! [`peerbook::backend::Backend`], tuned by [`RocksOptions`].
//!
//! ```no_run
//! # #[cfg(feature = "engine")] // the backend (the default feature)
//! # fn main() -> Result<(), peerbook::backend::BackendError> {
//! use peerbook_rocksdb::{RocksBackend, RocksOptions};
//!
//! let backend = RocksBackend::open("/var/lib/mynode/peers", RocksOptions::default())?;
//! # Ok(()) }
//! # #[cfg(not(feature = "engine"))]
//! # fn main() {}
//! ```
//!
//! ## When to choose RocksDB
//!
//! RocksDB is a log-structured merge tree: writes append to a log and a memtable,
//! and background compaction merges sorted files. Choose it when:
//! - the book is **write-heavy**: every connection outcome rewrites a peer record
//!   and two index entries, and RocksDB turns these into sequential appends rather
//!   than in-place page updates;
//! - the book is **large** (hundreds of thousands to millions of peers), larger
//!   than you want mapped in memory, with a bounded cache in front;
//! - you want space reclaimed by **compaction** as peers come and go, without a
//!   fixed-size map to size up front.
//!
//! Prefer `peerbook-lmdb` for small, read-mostly books (faster point reads, no
//! background threads, tiny build), and `peerbook-file` when you want no C or C++
//! dependency at all.
//!
//! The price is the **build**: RocksDB's C++ takes about 9 minutes to compile from
//! scratch on 2 cores (13 minutes measured on a 2-core machine shared with other
//! builds), once per target directory and profile; later builds reuse it. It needs
//! a C++ compiler and libclang (for `bindgen`) at build time, and adds about 7 MB
//! of machine code to a stripped binary (measured at `opt-level = 2`; LZ4's share
//! is 0.15 MB), plus a dynamic dependency on `libstdc++`.
//!
//! ## Storage layout
//!
//! One column family per [`Space`](peerbook::backend::Space), named
//! [`Space::name`](peerbook::backend::Space::name) (`peers`, `by_last_seen`,
//! `by_quality`, `meta`); the default column family stays empty (`clear` flushes one
//! tombstone there and compacts it away, see [Clear](#clear)). Keys and values
//! are stored as given, in RocksDB's default byte-wise order, which is exactly the
//! order [`Backend::scan`](peerbook::backend::Backend::scan) requires.
//!
//! ## Durability
//!
//! Each `peerbook` [`WriteBatch`](peerbook::backend::WriteBatch) becomes one RocksDB
//! write batch: atomic across column families, and after a crash either all of it
//! or none of it is replayed from the write-ahead log (WAL). The WAL is never
//! disabled.
//! - [`Durability::Sync`](peerbook::backend::Durability::Sync) and
//!   [`Durability::Buffered`](peerbook::backend::Durability::Buffered) are the
//!   same on RocksDB: the write uses `WriteOptions::set_sync(true)`, so the WAL is
//!   fsynced before it returns. RocksDB offers no cheaper buffered mode (see below);
//!   for cheap buffered writes choose `peerbook-file` (or `peerbook-lmdb`, whose
//!   `Buffered` skips the meta-page sync).
//! - [`Backend::flush`](peerbook::backend::Backend::flush) fsyncs the WAL
//!   (`flush_wal(true)`); every write that returned is already durable.
//!
//! Why `Buffered` syncs: with an unsynced WAL (`set_sync(false)`), the power-loss
//! harness of `crates/peerbook-powerfail` saw a power cut drop Buffered batch 48 and
//! keep batch 50. When the disk keeps a later page of the unsynced WAL tail but not
//! an earlier one, the lost page reads back as zeros, and RocksDB's log reader skips
//! a zero-filled block as preallocated space and replays the records after it (no
//! WAL recovery mode changes this). Such a gap can leave index entries and counters
//! out of step with records, which breaks the promise every engine keeps: a power
//! cut loses at most a suffix of the Buffered writes and never corrupts the book.
//!
//! RocksDB syncs its SST files and `MANIFEST` itself when it flushes memtables and
//! compacts. On open it recovers to the last consistent point of the WAL
//! (`kPointInTimeRecovery`), dropping a torn tail left by a power loss.
//!
//! Write-ahead logs are not recycled (`recycle_log_file_num` stays 0), although
//! recycling would make each synced write cheaper: overwriting an old log in place
//! spares every `fdatasync` the inode update that an appended log needs. Measured
//! with 100 000 peers and one Sync writer, it took the process CPU per write from
//! 177-182 µs down to 150-152 µs (interleaved runs, load average 2.3-2.9; 8 writers:
//! within noise). But a recycled log keeps the bytes of the records it held until
//! new records overwrite them, so the log that
//! [`Backend::clear`](peerbook::backend::Backend::clear) makes obsolete would keep
//! former entries on disk: `tests/clear_wipes.rs` then finds a peer's marker in a
//! `.log` file after `clear_all`. RocksDB offers no way to wipe the logs it keeps
//! for recycling.
//!
//! What a crash may lose, per mode (proven by the tests named):
//!
//! | mode | process crash (SIGKILL) | power cut |
//! |---|---|---|
//! | `Sync` | nothing | nothing |
//! | `Buffered` (synced like `Sync`) | nothing | nothing |
//!
//! The process-crash column is `tests/crash_kill.rs` and
//! `tests/crash_kill_concurrent.rs` of the workspace; the power-cut column is the
//! FUSE power-loss file system of `crates/peerbook-powerfail` (`tests/engines.rs`),
//! which keeps an arbitrary part of the unsynced writes, in any order, and checks
//! that the reopened store is the model after a prefix of the acknowledged steps
//! holding every durable one: the same strict rule as for the other engines.
//!
//! ## Clear
//!
//! [`Backend::clear`](peerbook::backend::Backend::clear) writes one atomic batch
//! with range deletions over every column family (each key with up to 16 leading
//! `0xff` bytes, in 17 ranges, whatever the book's size) plus point deletions of
//! the (normally absent) keys with longer runs, which no finite range end covers.
//! Column families are not dropped and recreated: that takes one call per column
//! family and would not be atomic. The batch is synced (the commit point); then every
//! memtable is flushed (the write-ahead log holding the old data becomes obsolete and
//! is deleted), everything is compacted to the last level (the old SST files are
//! deleted), and a new `MANIFEST` replaces the old one, which named every former SST
//! file's smallest and largest key (peer ids): the database starts a new `MANIFEST` at
//! every flush and compaction, and `clear` ends with one more that leaves the book as
//! it is. So once `clear` returns no file of the directory holds a former entry, key or
//! value. A view older than the clear's commit point keeps what its snapshot sees
//! through a compaction, and a get or scan in flight keeps the files it reads, so
//! `clear` waits (up to 5 s each, asking RocksDB every few milliseconds) for no older
//! snapshot to be left before it compacts, and for no obsolete SST file to be left
//! before it returns; a read still running then (a view held by the thread calling
//! `clear`) keeps what it sees in SST files until it ends, and RocksDB then compacts
//! it away in the background. RocksDB's own `LOG` gets warnings and errors only: its informational
//! messages can print a key.
//!
//! ## Compression
//!
//! The crate is built with `default-features = false` and only RocksDB's `lz4`
//! feature: no Snappy, Zstd, Zlib or Bzip2, whose C libraries would add build time
//! for codecs a book does not need. LZ4 compiles in seconds and adds about 0.15 MB.
//!
//! [`Compression::Lz4`] is the default. A record is about 1 KiB and much of it is
//! random (peer id, key coordinates, sealed secrets), but consecutive records in a
//! 4 KiB block repeat a lot of text: JSON field names of the public key, ICE server
//! URLs, the fixed words of ICE candidate lines. Measured on 20 000 synthetic
//! records of that shape (the ignored test `measure_compression_of_record_like_values`):
//!
//! | records | SST bytes, none | SST bytes, LZ4 | saved |
//! |---|---|---|---|
//! | 1.1 KiB, with ICE servers and 4-8 cached candidates | 22.5 MB | 13.8 MB | 39 % |
//! | 0.35 KiB, key and secret only | 7.2 MB | 5.4 MB | 25 % |
//!
//! Full scans took the same time either way and cached point reads are unaffected
//! (the block cache holds uncompressed blocks). RocksDB stores a block uncompressed
//! when LZ4 cannot shrink it by at least 1/8, so incompressible data costs only
//! the attempt, when a block is written. Zstd would save a little more on cold
//! levels at several times the CPU and another C library to build; use
//! [`Compression::None`] to skip compression entirely.
//!
//! ## Locking
//!
//! RocksDB locks the `LOCK` file of the directory while a database is open. A
//! second [`RocksBackend::open`] of the same directory, from this process or
//! another, fails with [`BackendError::Locked`](peerbook::backend::BackendError::Locked)
//! naming the directory, and works again once the first backend is dropped.
//!
//! ## Telling a store from other files
//!
//! [`RocksBackend::probe_dir`] says what a directory holds before anything opens
//! it, in the core's words ([`DirVerdict`](peerbook::probe::DirVerdict)): RocksDB's
//! file naming ([`RocksBackend::owns_file`]), its `CURRENT`
//! ([`RocksBackend::marks_store`]), and the column families its manifest lists,
//! read without opening the database (another program's database is foreign).
//!
//! The naming alone is [`naming`], compiled with or without the default feature
//! `engine` (the backend, RocksDB's C++): a build of `peerbook-engines` without
//! RocksDB still tells a RocksDB store's files apart.
//!
//! ## Errors
//!
//! RocksDB's `Corruption` becomes
//! [`BackendError::Corrupted`](peerbook::backend::BackendError::Corrupted), a full
//! disk [`BackendError::Full`](peerbook::backend::BackendError::Full), other I/O
//! errors [`BackendError::Io`](peerbook::backend::BackendError::Io), and anything
//! else [`BackendError::Engine`](peerbook::backend::BackendError::Engine) with
//! engine `"rocksdb"`. Nothing in this crate panics on an engine error.
#![deny(missing_docs)]
// Without `engine` the crate is its file naming alone: the docs still name the
// backend (`RocksBackend`), which is then not built, so those links cannot resolve.
#![cfg_attr(not(feature = "engine"), allow(rustdoc::broken_intra_doc_links))]
#![forbid(unsafe_code)]

#[cfg(feature = "engine")]
mod backend;
#[cfg(feature = "engine")]
mod error;
pub mod naming;
#[cfg(feature = "engine")]
mod options;
#[cfg(feature = "engine")]
mod probe;

#[cfg(feature = "engine")]
pub use backend::RocksBackend;
#[cfg(feature = "engine")]
pub use options::{Compression, RocksOptions};

/// The engine name reported by [`RocksBackend`] (`"rocksdb"`), as
/// [`Backend::engine_name`](peerbook::backend::Backend::engine_name) and in
/// [`BackendError::Engine`](peerbook::backend::BackendError::Engine).
pub const ENGINE: &str = "rocksdb";

/// The README's examples, compiled and run as doctests so they never go stale.
#[cfg(all(doctest, feature = "engine"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
