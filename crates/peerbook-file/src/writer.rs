//! The writer state of a [`FileBackend`](crate::FileBackend): the open log of the
//! current generation, its length and synced length, the compaction yardsticks, and
//! the failure latch that refuses writes after an fsync failed. Also
//! [`apply_versioned`], one committed op onto the live dataset.

use peerbook::backend::BackendError;
use peerbook::mvcc::Batch;

use crate::codec::{entry_size, LogOp};
use crate::naming::log_name;
use crate::{engine, FileOptions, VfsFile, HEADER};

/// Taken by every write, flush, clear and compaction of a backend (one at a time).
pub(crate) struct Writer {
    pub(crate) generation: u64,
    pub(crate) seed: u32,
    pub(crate) log: Box<dyn VfsFile>,
    pub(crate) log_len: u64,
    pub(crate) synced_to: u64,
    pub(crate) snapshot_len: u64,
    pub(crate) live_bytes: u64,
    pub(crate) compactions: u64,
    /// After a failed automatic compaction, the next is tried only once the log
    /// reaches this length (so a full disk does not rewrite a snapshot per write).
    pub(crate) retry_compaction_at: u64,
    /// Set when a failure left the files in a state this handle can no longer
    /// reason about (failed fsync, failed directory sync at a commit point):
    /// every later write fails until the backend is reopened.
    pub(crate) failed: Option<String>,
}

impl Writer {
    pub(crate) fn usable(&self) -> Result<(), BackendError> {
        match &self.failed {
            None => Ok(()),
            Some(why) => Err(engine(format!(
                "the backend refuses writes after an earlier failure ({why}); reopen it"
            ))),
        }
    }

    /// Append `frame` to the log. The log's name is formatted only when an error
    /// needs it (not once per write).
    pub(crate) fn append(&mut self, frame: &[u8]) -> Result<(), BackendError> {
        match self.log.append(frame) {
            Ok(()) => {
                self.log_len += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                let log_name = log_name(self.generation);
                let err = BackendError::io(format!("append to {log_name}"), e);
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

    /// Sync the log; a failure latches [`Writer::failed`].
    pub(crate) fn sync(&mut self) -> Result<(), BackendError> {
        match self.log.sync() {
            Ok(()) => {
                self.synced_to = self.log_len;
                Ok(())
            }
            Err(e) => {
                let log_name = log_name(self.generation);
                let err = BackendError::io(format!("sync {log_name}"), e);
                self.failed = Some(format!("fsync of {log_name} failed ({err})"));
                Err(err)
            }
        }
    }

    pub(crate) fn wants_compaction(&self, options: &FileOptions) -> bool {
        let log_body = self.log_len.saturating_sub(HEADER);
        log_body >= options.compact_min_log_bytes
            && self.log_len >= self.retry_compaction_at
            && self.log_len as f64 > options.compact_ratio * self.live_bytes as f64
    }
}

/// [`apply`] onto the live dataset, one op of a committed batch.
pub(crate) fn apply_versioned(batch: &mut Batch<'_>, op: LogOp, live: &mut u64) {
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
