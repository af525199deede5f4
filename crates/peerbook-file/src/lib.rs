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
//!   whole; opening streams the snapshot frame by frame and replays the log, with a
//!   peak memory close to the loaded dataset's.
//! - Human-auditable files: two files per generation, a documented byte layout
//!   ([`format`](mod@format)), CRC-32C everywhere, nothing else.
//!
//! For large books, or when memory is tight, prefer an LMDB or RocksDB backend.
//!
//! ## The format
//!
//! The files of a store directory, their byte layout, how open treats a damaged
//! log (the torn-tail rule) and the compaction protocol are specified in
//! `FORMAT.md` beside this crate's manifest, rendered here as the [`format`](mod@format) module.
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
//! ## Clear
//!
//! [`Backend::clear`] runs the compaction protocol ([`format`](mod@format)) with an empty dataset:
//! generation `G+1` is an empty snapshot and an empty log, committed by the
//! snapshot's rename and the directory fsync; then every file of a generation
//! below `G+1` and every temporary of this backend is removed (also what an earlier
//! failed removal left; never a file that is not the backend's, nor the `LOCK`) and
//! the directory is fsynced again. A crash before the commit point leaves the old
//! book, after it the empty one (never a half), and once `clear` returns `Ok` no
//! file of the directory holds a byte of a former entry, even after a power loss.
//! When a removal or that last fsync fails, the clear is still committed (the
//! handle is empty and takes writes) and returns an error whose source is a
//! [`ClearError`] naming the file or the directory. It is always durable. What it cannot reach: the
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
//!
//! ## Code map
//!
//! [`options`](FileOptions) and [reports](Recovery) are plain data; `backend.rs` holds
//! [`FileBackend`] and its write path, `writer.rs` the writer state, `compaction.rs`
//! the generation switch, `clear.rs` the clear and its removal of former files, `recovery.rs` the loader of `open`, `naming.rs` the file
//! names, `probe.rs` the verdict on a directory before any open
//! ([`FileBackend::probe_dir`]), `codec/` the bytes, `error.rs` their typed errors ([`FormatError`],
//! [`RecoveryError`]), `crc.rs` the checksum, [`vfs`] the file system seam.
//!
//! [`Space`]: peerbook::backend::Space
//! [`Durability::Sync`]: peerbook::backend::Durability::Sync
//! [`Durability::Buffered`]: peerbook::backend::Durability::Buffered
//! [`Backend::write`]: peerbook::backend::Backend::write
//! [`Backend::flush`]: peerbook::backend::Backend::flush
//! [`Backend::clear`]: peerbook::backend::Backend::clear
//! [`Backend::view`]: peerbook::backend::Backend::view
//! [`Backend::scan`]: peerbook::backend::Backend::scan
//! [`VersionedSpaces`]: peerbook::mvcc::VersionedSpaces
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod backend;
mod clear;
mod codec;
mod compaction;
mod crc;
mod error;
mod naming;
mod options;
mod probe;
mod recovery;
mod report;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vfs;
mod writer;

/// The on-disk format and its crash protocols, from `FORMAT.md`.
#[doc = include_str!("../FORMAT.md")]
pub mod format {}

use peerbook::backend::BackendError;

pub use backend::FileBackend;
pub use error::{ClearError, FormatError, RecoveryError, SnapshotRule};
pub use options::FileOptions;
pub use recovery::LoneLog;
pub use report::{FileStats, Recovery, TornTail};
pub use vfs::{StdFs, Vfs, VfsFile, VfsLock};

const ENGINE: &str = "file";
const HEADER: u64 = codec::FILE_HEADER_LEN as u64;

/// A [`BackendError::Engine`] of this crate.
fn engine(message: String) -> BackendError {
    BackendError::engine(ENGINE, message)
}

/// The README's examples, compiled and run as doctests so they never go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
