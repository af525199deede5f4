//! An LMDB storage backend for [`peerbook`], through the [`heed`] bindings.
//!
//! [`LmdbBackend`] implements [`peerbook::backend::Backend`] over one LMDB
//! environment in a directory of its own:
//!
//! ```
//! use peerbook::backend::{Backend, Durability, Space, WriteBatch};
//! use peerbook_lmdb::{LmdbBackend, LmdbOptions};
//!
//! # fn main() -> Result<(), peerbook::backend::BackendError> {
//! # let dir = tempfile::tempdir()?;
//! let backend = LmdbBackend::open(dir.path().join("peers"), LmdbOptions::default())?;
//! let mut batch = WriteBatch::new();
//! batch.put(Space::Peers, b"alice".to_vec(), b"record".to_vec());
//! batch.put(Space::Meta, b"count".to_vec(), b"1".to_vec());
//! backend.write(batch, Durability::Sync)?;
//! assert_eq!(backend.engine_name(), "lmdb");
//! # Ok(()) }
//! ```
//!
//! # When to choose LMDB
//!
//! - **Reads are the fast path.** The data file is memory-mapped: a `get` or `scan`
//!   reads straight from the OS page cache, with no copy into a user-space cache
//!   (records are LZ4-decompressed on the way out, a fraction of a microsecond each;
//!   see [Value layout](#value-layout)). Point reads and short ordered scans, which
//!   is what a peer book does most, are as cheap as they get on disk.
//! - **Many readers, lock-free.** Readers see a consistent snapshot (MVCC) and
//!   never wait for the writer's commit, nor the writer for them (only a map
//!   resize and a clear make new reads wait: see
//!   [Map size and growth](#map-size-and-growth)); a scan sees exactly one
//!   committed state, never half a batch.
//! - **Small and predictable.** No background compaction or write amplification to
//!   tune, a single data file, crash-safe by design (copy-on-write B+tree, no log to
//!   replay).
//!
//! Prefer another backend when:
//!
//! - **writes dominate.** LMDB has a single writer (this backend also serializes them)
//!   and copies every touched page on commit; an LSM engine such as RocksDB absorbs
//!   heavy write streams better.
//! - **the directory is on a network filesystem** (NFS, SMB): LMDB's locking and
//!   memory map need a local filesystem.
//! - **disk space must shrink after deletes**: `data.mdb` never shrinks (freed pages
//!   are reused, not returned to the filesystem).
//!
//! # How the trait maps onto LMDB
//!
//! | trait | LMDB |
//! |---|---|
//! | one [`Space`](peerbook::backend::Space) | one named database, called [`Space::name`](peerbook::backend::Space::name) |
//! | [`write`](peerbook::backend::Backend::write) | one write transaction per batch: all or nothing |
//! | [`get`](peerbook::backend::Backend::get), [`scan`](peerbook::backend::Backend::scan) | one read transaction (`MDB_NOTLS`: not tied to a thread, so any thread may read, many at once) |
//! | [`clear`](peerbook::backend::Backend::clear) | every database emptied in one synced write transaction, then `data.mdb` replaced by a compacted copy (no free pages keep old data) |
//! | [`disk_usage`](peerbook::backend::Backend::disk_usage) | allocated size of `data.mdb`, `lock.mdb` and `LOCK` |
//!
//! ## Value layout
//!
//! LMDB's page is the OS page (4 KiB here) and a leaf page holds whole entries, so
//! the size of a value decides how full the pages are. The store's peer records are
//! about 1.7 KB: stored verbatim, at most two fit a page, and B-tree splits left 1.5
//! per leaf page on average (`mdb_stat` of a 100,000-peer book: 66,699 leaf pages,
//! no overflow pages; 2,793 bytes of pages per record, 3,307 bytes of `data.mdb` per
//! peer, 1.48x the peers' compact JSON).
//!
//! So a book stores each value behind a one-byte tag: small values (index entries,
//! counters) verbatim, large ones compressed with LZ4 (`lz4_flex`, pure Rust,
//! bounds-checked decoding) against a dictionary made of a frozen WebRTC vocabulary
//! (JWK members, public STUN servers, the ICE candidate grammar) and the entry's key.
//! A benchmark record shrinks from 1,696 to about 850 bytes, four fit a page, and the
//! same 100,000-peer book has 2.92 records per leaf page and 1,936 bytes of
//! `data.mdb` per peer (0.87x JSON). Plain LZ4 (1,021 bytes) still fitted only two
//! per leaf page on average (1.17x JSON); zstd level 1 reached the same size as the
//! dictionary but cost ~10 us per record to decompress on this machine, against
//! ~1 us for LZ4 with the dictionary (~0.6 us without; decoding the record itself
//! takes ~4.5 us). A damaged stored value reads as
//! [`BackendError::Corrupted`](peerbook::backend::BackendError::Corrupted), never a
//! panic.
//!
//! Books written before this layout (no layout marker in the backend's own database
//! `peerbook_lmdb`) keep storing values verbatim: nothing tells a tagged value from
//! a verbatim one, so the layout is chosen per book, when the book holds no entry
//! (created, or reopened after a [`clear`](peerbook::backend::Backend::clear)).
//! A version of this crate from before the layout reads a tagged book's records as
//! corrupted (their first byte is a tag, not a record format): no downgrade.
//!
//! ## Durability
//!
//! The environment always runs with `MDB_NOMETASYNC`, and the backend adds the
//! syncs each write asks for:
//!
//! - [`Durability::Sync`](peerbook::backend::Durability::Sync): the commit syncs its data
//!   pages and writes the meta page, then the backend calls `mdb_env_sync(force)`, so the
//!   batch is on disk when `write` returns (two `fdatasync`, as plain LMDB does).
//! - [`Durability::Buffered`](peerbook::backend::Durability::Buffered): the commit syncs
//!   its data pages only; the meta page that makes it current reaches the disk with the
//!   next commit, [`flush`](peerbook::backend::Backend::flush) (which calls
//!   `mdb_env_sync(force)`) or when the backend is dropped. A process crash loses
//!   nothing; a power loss may undo the last buffered commit, never more, and never
//!   damages the file.
//!
//! What a crash may lose, per mode (proven by the tests named):
//!
//! | mode | process crash (SIGKILL) | power cut |
//! |---|---|---|
//! | `Sync` | nothing | nothing |
//! | `Buffered` | nothing | at most the last acknowledged commit; the file is intact |
//!
//! The process-crash column is `tests/crash_kill.rs` (Sync on every engine, and
//! Buffered on LMDB) and `tests/crash_kill_concurrent.rs` of the workspace; the
//! power-cut column is the FUSE power-loss file system of
//! `crates/peerbook-powerfail`, which keeps an arbitrary part of the unsynced
//! writes, in any order: `tests/engines.rs` (random Sync and Buffered batches on
//! the backend: a prefix survives, holding every Sync one, at most the last commit
//! undone), `tests/book_buffered.rs` (a Buffered `PeerBook` with flushes: reopens,
//! verifies clean, keeps a prefix of its stores holding everything flushed) and
//! `tests/book_group_commit.rs` (concurrent Sync writers lose nothing).
//!
//! Why the bound holds, in LMDB's `mdb_txn_commit` (`mdb.c`): it `pwrite`s the
//! transaction's pages, calls `fdatasync` on the same descriptor (unless
//! `MDB_NOSYNC`), and only then `pwrite`s its meta page, which `MDB_NOMETASYNC`
//! sends through that plain descriptor instead of the `O_DSYNC` one. So the meta
//! page of commit N becomes durable with the data sync of commit N+1 (an
//! `fdatasync` covers every dirty page of the file), and commit N+1 reuses only
//! pages freed by transactions before N (`mdb_page_alloc` takes free pages of
//! transactions older than `txnid - 1`), never a page of snapshot N or N-1. So a
//! cut leaves the last acknowledged commit or the one before it, both intact.
//!
//! A new book is built in a scratch directory (`creating/`), its first commit synced,
//! and `data.mdb` then renamed into place: LMDB writes a new file's meta pages without
//! a sync, so a power cut during the first open could otherwise leave a `data.mdb`
//! that never opens again. The next open removes what a cut creation left in
//! `creating/` (LMDB's `data.mdb` and `lock.mdb`, then the directory), never a
//! tree: a `creating` holding anything else, or a file of that name, is not the
//! backend's and stays; without a book beside it the open is refused.
//!
//! If the sync after a `Sync` commit fails, `write` returns the error; the batch is
//! then committed and visible, but whether it reached the disk is unknown (as after any
//! failed `fsync`).
//!
//! ### Buffered saves one sync, not nine tenths of the time
//!
//! `Buffered` saves the meta-page sync only: every commit still syncs its data
//! pages. Counted with `strace` (the `lmdb_write_cost` example of `peerbook-bench`,
//! 100,000 peers): a `Buffered` `store_peer` or `update_last_seen` makes one
//! `fdatasync` and about 12 page `pwrite`s, a `Sync` one two `fdatasync`s, exactly
//! what a raw heed commit of the same batch makes (which runs with the same flags).
//! In one interleaved run on a busy 2-core machine a Buffered write took 0.75-0.78x
//! the time of a Sync one (`store_peer` of a new peer 592 vs 792 us,
//! `update_last_seen` 483 vs 630 us; the second `fdatasync` flushes a single page).
//! A mode at a tenth of Sync's time would have to skip the per-commit data sync,
//! and LMDB offers no way to do that which keeps the Buffered promise (survives
//! SIGKILL; a power cut loses at most a suffix and never corrupts the book):
//! `MDB_NOSYNC` and `MDB_MAPASYNC` leave LMDB's page writes unordered against its
//! meta page (below), and a write-behind queue in the process dies with it. So
//! [`LmdbBackend::CHEAP_BUFFERED`] is `false` for tools that compare modes (the
//! benchmark report drops LMDB's "Buffered <= 0.1x Sync" row). Where cheap
//! buffered writes matter, use the file backend.
//!
//! Why not `MDB_NOSYNC`, which skips even the data sync? Because LMDB then keeps its
//! integrity across a power loss only on filesystems that preserve write order; on
//! others the meta page may reach the disk before the pages it points to, and the book
//! is corrupted, not merely behind. So it is not offered, not even opt-in: when this
//! crate had it as an option, the power-loss harness above saw reopens fail, or the
//! reopening process die with `SIGBUS` (the meta page pointing past the end of the
//! file), within a few cuts. A mode that cannot promise "a power cut loses at most a
//! suffix of the Buffered writes and never corrupts the book" is not offered.
//!
//! ## Map size and growth
//!
//! LMDB maps the data file into memory with a fixed-size map and fails a write that
//! does not fit with `MDB_MAP_FULL`. This backend starts with a small map
//! ([`LmdbOptions::initial_map_size`], 16 MiB by default; on reopen at least twice the
//! data file) and, on `MDB_MAP_FULL`, aborts the transaction, doubles the map and
//! retries the whole batch, until [`LmdbOptions::max_map_size`] (1 GiB by default).
//! A batch that does not fit even then fails with
//! [`BackendError::Full`](peerbook::backend::BackendError::Full) and changes nothing.
//!
//! Resizing is only sound while no transaction is open in the process. Every read and
//! write transaction holds a shared lock for its lifetime; the resize takes it
//! exclusively, so it waits for running reads to finish (new reads wait for it). A
//! consequence: a scan visitor must not write to the same backend (that write is
//! refused with an engine error rather than risking a deadlock); reads from a visitor
//! are fine.
//!
//! ## Locking
//!
//! [`LmdbBackend::open`] takes an exclusive OS lock on the `LOCK` file of the
//! directory before LMDB opens anything; a second open of the same directory, from
//! this process or another, fails at once with
//! [`BackendError::Locked`](peerbook::backend::BackendError::Locked) naming the path.
//! The lock is released when the backend is dropped, after the environment closed, and
//! by the OS if the process dies.
//!
//! ## Errors
//!
//! Nothing panics on bad input or engine failure. `MDB_MAP_FULL` at the cap, a full
//! disk or quota map to `Full`; `MDB_CORRUPTED`, `MDB_PAGE_NOTFOUND` and
//! `MDB_INVALID` (and a stored value that does not decode) to `Corrupted`; OS errors
//! to `Io`; everything else (too many readers, keys LMDB cannot store: empty, or
//! over 511 bytes) to `Engine { engine: "lmdb", .. }`.
//!
//! A write refused before its transaction committed is marked
//! [`BackendError::NotApplied`](peerbook::backend::BackendError::NotApplied): the
//! map full at its cap, a key LMDB cannot hold, a write from inside a read of the
//! same book, any error while filling the transaction (LMDB then aborts it; a
//! `MDB_MAP_FULL` raised by the commit comes from allocating a page, before anything
//! is written). A `PeerBook` stays writable after such an error: a full book still
//! takes deletes and `clear_all` without a reopen. A failed commit, sync or clear
//! swap is not marked (its outcome is unknown), so the book then needs a reopen.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod backend;
mod create;
mod error;
mod lock;
mod options;
mod value;

pub use backend::LmdbBackend;
pub use options::{
    LmdbOptions, DEFAULT_INITIAL_MAP_SIZE, DEFAULT_MAX_MAP_SIZE, DEFAULT_MAX_READERS, MIN_MAP_SIZE,
};

/// The README's examples, compiled and run as doctests so they never go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
