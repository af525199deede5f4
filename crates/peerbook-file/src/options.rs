//! [`FileOptions`]: the tuning of a [`FileBackend`](crate::FileBackend)(crate::FileBackend) (compaction
//! thresholds, snapshot frame size) and its validation at open.

use peerbook::backend::BackendError;

use crate::codec::MAX_FRAME_BODY;
use crate::engine;

/// Tuning of a [`FileBackend`](crate::FileBackend). Every field has a documented default
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
    /// crossed. When false, only [`FileBackend::compact`](crate::FileBackend::compact) compacts. Default: true.
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

    pub(crate) fn validate(&self) -> Result<(), BackendError> {
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
