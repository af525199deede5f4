//! What a [`FileBackend`](crate::FileBackend)(crate::FileBackend) reports about itself: [`Recovery`] (what
//! open found and repaired), [`TornTail`] (a log tail cut at open) and [`FileStats`]
//! (sizes and counters of an open backend).

use crate::FormatError;

/// What [`FileBackend::open`](crate::FileBackend::open) found and did, from [`FileBackend::recovery`](crate::FileBackend::recovery).
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
    pub reason: FormatError,
    /// Whole valid frames found after `offset` and dropped with it: batches that
    /// were written but not yet synced when the power failed, whose bytes reached
    /// the disk while an earlier frame's did not. A log is a prefix: they cannot be
    /// applied without the frame before them.
    pub valid_frames_after: u64,
}

/// Sizes and counters of an open [`FileBackend`](crate::FileBackend), from [`FileBackend::stats`](crate::FileBackend::stats).
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
