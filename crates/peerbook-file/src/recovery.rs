//! Open of a store directory (FORMAT.md, "Open and the torn-tail rule"): find the
//! live generation (or create generation 1), load its snapshot, replay its log with
//! the torn-tail rule, remove the leftovers of interrupted compactions, and open the
//! log for appending.

use std::io;
use std::path::{Path, PathBuf};

use peerbook::backend::BackendError;
use peerbook::mvcc::VersionedSpaces;

use crate::codec::{
    any_log_header_len, body_ops, read_full, scan_tail, After, FileKind, FrameOp, FrameStream,
    Next, FILE_HEADER_LEN,
};
use crate::compaction::{write_generation, GenError};
use crate::error::RecoveryError;
use crate::naming::{classify, log_name, snapshot_name, Entry};
use crate::writer::{apply_versioned, Writer};
use crate::FormatError;
use crate::{FileOptions, Recovery, TornTail, Vfs, VfsFile};

mod entries;
use entries::{SnapshotEntries, Stop};

/// Loads the store of one directory (the lock is already held).
pub(crate) struct Loader<'a> {
    pub(crate) vfs: &'a dyn Vfs,
    pub(crate) dir: &'a Path,
    pub(crate) options: &'a FileOptions,
}

/// What [`Loader::load`] hands to the backend.
pub(crate) struct Loaded {
    pub(crate) spaces: VersionedSpaces,
    pub(crate) writer: Writer,
    pub(crate) recovery: Recovery,
}

/// The dataset as loaded so far: the maps and their snapshot size.
struct Dataset {
    spaces: VersionedSpaces,
    live: u64,
}

impl Loader<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn remove(&self, name: &str, removed: &mut Vec<String>) {
        match self.vfs.remove(&self.path(name)) {
            Ok(()) => removed.push(name.to_string()),
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "peerbook-file: could not remove a leftover file");
            }
        }
    }

    /// Open the directory's store: the live generation (or a new one), its
    /// snapshot, its log replayed, the leftovers removed, the log ready to append.
    pub(crate) fn load(&self) -> Result<Loaded, BackendError> {
        let mut entries = self.list()?;
        let mut recovery = Recovery::default();
        let generation = match live_generation(&entries) {
            Some(g) => g,
            None => {
                let g = self.create(&entries, &mut recovery)?;
                // The creation removed the leftover logs it found: what is left to
                // clean up is what the directory holds now.
                entries = self.list()?;
                g
            }
        };
        recovery.generation = generation;
        let (mut data, snapshot_entries, snapshot_len) = self.load_snapshot_file(generation)?;
        recovery.snapshot_entries = snapshot_entries;
        let replay = self.replay_log_file(generation, &mut data)?;
        recovery.log_frames = replay.frames;
        recovery.torn_tail = replay.torn_tail;
        self.remove_leftovers(&entries, generation, &mut recovery.removed_files)?;
        let log = self.open_log(generation, replay.valid_len, recovery.torn_tail.is_some())?;
        let writer = Writer {
            generation,
            seed: replay.seed,
            log,
            log_len: replay.valid_len,
            synced_to: replay.valid_len,
            snapshot_len,
            live_bytes: data.live,
            compactions: 0,
            retry_compaction_at: 0,
            failed: None,
        };
        Ok(Loaded {
            spaces: data.spaces,
            writer,
            recovery,
        })
    }

    /// Every directory entry with what it is to the backend.
    fn list(&self) -> Result<Vec<(String, Entry)>, BackendError> {
        let names = self
            .vfs
            .list(self.dir)
            .map_err(|e| BackendError::io(format!("list {}", self.dir.display()), e))?;
        Ok(names
            .into_iter()
            .map(|n| {
                let e = classify(&n);
                (n, e)
            })
            .collect())
    }

    /// The bytes after the header of log `name`, if it starts with a log header
    /// this backend writes ([`any_log_header_len`]); else why it is not such a log.
    /// Reads the header, and the rest (counted, not kept) only if there is one.
    fn past_log_header(&self, name: &str) -> Result<Result<u64, FormatError>, BackendError> {
        let path = self.path(name);
        let io = |e: io::Error| BackendError::io(format!("read {}", path.display()), e);
        let mut reader = self.vfs.open_read(&path).map_err(io)?;
        let mut head = [0u8; FILE_HEADER_LEN];
        let n = read_full(&mut reader, &mut head).map_err(io)?;
        let len = match any_log_header_len(&head[..n]) {
            Ok(len) => len,
            Err(e) => return Ok(Err(e)),
        };
        let rest = io::copy(&mut reader, &mut io::sink()).map_err(io)?;
        Ok(Ok((n - len) as u64 + rest))
    }

    /// Check every log whose generation has no snapshot ([`lone_logs`]) before
    /// any is removed: each must hold a log header this backend writes and nothing
    /// after it, which an interrupted creation or compaction leaves and whose
    /// removal loses nothing. A log holding frames is a lost snapshot; one whose
    /// bytes are no such header (an empty file too: a log is named only once its
    /// header is synced) is not this backend's file: both refuse the open, and
    /// nothing is removed. [`LoneLog::judge`] is the same rule, read-only.
    fn check_lone_logs(&self, entries: &[(String, Entry)]) -> Result<(), BackendError> {
        let live = live_generation(entries);
        for (name, g) in lone_logs(entries) {
            match self.past_log_header(name)? {
                Ok(0) => {}
                Ok(bytes) => {
                    return Err(RecoveryError::LostSnapshot {
                        file: self.path(name),
                        bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
                        snapshot: live.map(|_| snapshot_name(g)),
                    }
                    .into())
                }
                Err(error) => {
                    return Err(RecoveryError::Header {
                        file: self.path(name),
                        error,
                    }
                    .into())
                }
            }
        }
        Ok(())
    }

    /// No snapshot: a new store, or what an interrupted creation left. Refuse logs
    /// holding frames (a lost snapshot) or bytes this backend did not write
    /// ([`check_lone_logs`](Self::check_lone_logs)), remove the rest, commit
    /// generation 1.
    fn create(
        &self,
        entries: &[(String, Entry)],
        recovery: &mut Recovery,
    ) -> Result<u64, BackendError> {
        self.check_lone_logs(entries)?;
        for (name, e) in entries {
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
        Ok(1)
    }

    /// A stream over the frames of file `name`, its header checked.
    fn stream(
        &self,
        kind: FileKind,
        name: &str,
        generation: u64,
    ) -> Result<FrameStream, BackendError> {
        let path = self.path(name);
        let io = |e: io::Error| BackendError::io(format!("read {}", path.display()), e);
        let reader = match self.vfs.open_read(&path) {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound && kind == FileKind::Log => {
                return Err(RecoveryError::MissingLog {
                    file: path,
                    snapshot: snapshot_name(generation),
                }
                .into())
            }
            Err(e) => return Err(io(e)),
        };
        match FrameStream::open(kind, reader, generation).map_err(io)? {
            Ok((_, stream)) => Ok(stream),
            Err(error) => Err(RecoveryError::Header { file: path, error }.into()),
        }
    }

    /// The snapshot: complete by construction, so any damage is an error. Read
    /// frame by frame (one frame body in memory at a time), each frame's puts copied
    /// from the body straight into the maps (a key into its
    /// [`Key`](peerbook::mvcc::Key), in place when short). Returns its entry count
    /// and its length in bytes.
    fn load_snapshot_file(&self, generation: u64) -> Result<(Dataset, u64, u64), BackendError> {
        let name = snapshot_name(generation);
        let path = self.path(&name);
        let io = |e: io::Error| BackendError::io(format!("read {}", path.display()), e);
        let file = || path.clone();
        let mut stream = self.stream(FileKind::Snapshot, &name, generation)?;
        let mut entries = SnapshotEntries::default();
        loop {
            let off = stream.offset();
            let frame_error = |error| RecoveryError::SnapshotFrame {
                file: file(),
                offset: off,
                error,
            };
            match stream.next().map_err(io)? {
                Next::End => {
                    return Err(RecoveryError::SnapshotTruncated {
                        file: file(),
                        len: off,
                    }
                    .into())
                }
                Next::Bad { error, .. } => return Err(frame_error(error).into()),
                Next::Frame { .. } => {}
            }
            // Each op is checked and copied as it is decoded (no op list: see
            // `codec::body`).
            let mut ops = body_ops(stream.body()).map_err(frame_error)?;
            let taken = entries.frame(&mut ops);
            // A body that does not decode is reported as such, even past a broken rule.
            ops.check_rest().map_err(frame_error)?;
            let ended = taken.map_err(|stop| match stop {
                Stop::Decode(error) => frame_error(error),
                Stop::Rule(rule) => RecoveryError::SnapshotRule {
                    file: file(),
                    offset: off,
                    rule,
                },
            })?;
            if ended {
                break;
            }
        }
        let end = stream.offset();
        let bytes = stream.bytes_left().map_err(io)?;
        if bytes > 0 {
            return Err(RecoveryError::AfterEnd {
                file: file(),
                offset: end,
                bytes: bytes as usize,
            }
            .into());
        }
        let count = entries.count;
        Ok((entries.finish(), count, end as u64))
    }

    /// The log, replayed onto the snapshot frame by frame with the torn-tail rule;
    /// a torn tail is reported (warning and [`TornTail`]), cut later by
    /// [`Loader::open_log`].
    fn replay_log_file(
        &self,
        generation: u64,
        data: &mut Dataset,
    ) -> Result<LogReplay, BackendError> {
        let name = log_name(generation);
        let path = self.path(&name);
        let io = |e: io::Error| BackendError::io(format!("read {}", path.display()), e);
        let file = || path.clone();
        let mut stream = self.stream(FileKind::Log, &name, generation)?;
        let seed = stream.seed();
        let mut frames = 0u64;
        let (off, error) = loop {
            let off = stream.offset();
            let synced_to = match stream.next().map_err(io)? {
                Next::End => {
                    return Ok(LogReplay {
                        seed,
                        frames,
                        valid_len: off as u64,
                        torn_tail: None,
                    })
                }
                Next::Bad { error, .. } => break (off, error),
                Next::Frame { synced_to } => synced_to,
            };
            if synced_to > off as u64 {
                return Err(RecoveryError::SyncedBeyondOffset {
                    file: file(),
                    offset: off,
                    synced_to,
                }
                .into());
            }
            let undecodable = |error| RecoveryError::UndecodableBatch {
                file: file(),
                offset: off,
                error,
            };
            // Each op is applied as it is decoded (no op list: see `codec::body`).
            // A frame that fails half way leaves its first ops applied to maps that
            // only this open holds, and the open fails: no one sees them.
            let mut ops = body_ops(stream.body()).map_err(undecodable)?;
            let live = &mut data.live;
            let applied = data.spaces.apply(|batch| -> Result<bool, FormatError> {
                for op in ops.by_ref() {
                    match op? {
                        FrameOp::End { .. } => return Ok(false),
                        op => apply_versioned(batch, op.to_owned_op(), live),
                    }
                }
                Ok(true)
            });
            if !applied.map_err(undecodable)? {
                // A body that does not decode is reported as such, even past an end.
                ops.check_rest().map_err(undecodable)?;
                return Err(RecoveryError::EndInLog {
                    file: file(),
                    offset: off,
                }
                .into());
            }
            frames += 1;
        };
        // Rare: a bad frame. Only now is the rest of the log read whole, to look
        // for a witness that it had been synced.
        let tail = stream.into_rest().map_err(io)?;
        let valid_frames_after = match scan_tail(&tail, off, seed) {
            After::Witness(witness) => {
                return Err(RecoveryError::SyncedFrameDamaged {
                    file: file(),
                    offset: off,
                    error,
                    witness,
                }
                .into())
            }
            After::Torn { valid_frames_after } => valid_frames_after,
            After::OverBudget { at } => {
                return Err(RecoveryError::TailScanLimit {
                    file: file(),
                    offset: off,
                    error,
                    at,
                    tail: tail.len(),
                }
                .into())
            }
        };
        let torn = TornTail {
            file: name,
            offset: off as u64,
            bytes: tail.len() as u64,
            reason: error,
            valid_frames_after,
        };
        tracing::warn!(
            file = %path.display(),
            offset = torn.offset,
            bytes = torn.bytes,
            reason = %torn.reason,
            valid_frames_after = torn.valid_frames_after,
            "peerbook-file: truncated a torn tail off the log (writes that were not synced when the process or machine stopped)"
        );
        Ok(LogReplay {
            seed,
            frames,
            valid_len: off as u64,
            torn_tail: Some(torn),
        })
    }

    /// Leftovers: older generations, temporaries, logs of a compaction that never
    /// committed. Removed only once the current generation has loaded, and only
    /// once every log above it has been checked
    /// ([`check_lone_logs`](Self::check_lone_logs)).
    fn remove_leftovers(
        &self,
        entries: &[(String, Entry)],
        generation: u64,
        removed: &mut Vec<String>,
    ) -> Result<(), BackendError> {
        self.check_lone_logs(entries)?;
        for (name, e) in entries {
            match *e {
                Entry::Snapshot(g) | Entry::Log(g) if g < generation => self.remove(name, removed),
                Entry::Log(g) if g > generation => self.remove(name, removed),
                Entry::Temp => self.remove(name, removed),
                _ => {}
            }
        }
        Ok(())
    }

    /// Open the log for appending, cut a torn tail, and sync: what this handle read
    /// may have been in the page cache only (a process crash), and every frame it
    /// appends will claim `synced_to` = this length.
    fn open_log(
        &self,
        generation: u64,
        valid_len: u64,
        torn: bool,
    ) -> Result<Box<dyn VfsFile>, BackendError> {
        let path = self.path(&log_name(generation));
        let io = |e: io::Error| BackendError::io(format!("open {}", path.display()), e);
        let mut log = self.vfs.open_append(&path).map_err(io)?;
        if torn {
            log.truncate(valid_len).map_err(io)?;
        }
        log.sync().map_err(io)?;
        Ok(log)
    }
}

/// The highest generation with a snapshot, if any.
fn live_generation(entries: &[(String, Entry)]) -> Option<u64> {
    entries
        .iter()
        .filter_map(|(_, e)| match e {
            Entry::Snapshot(g) => Some(*g),
            _ => None,
        })
        .max()
}

/// What a log whose generation has no snapshot is to [`FileBackend::open`], judged
/// from its bytes as open judges it (see [`FileBackend::lone_logs`]).
///
/// [`FileBackend::open`]: crate::FileBackend::open
/// [`FileBackend::lone_logs`]: crate::FileBackend::lone_logs
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoneLog {
    /// A log header this backend writes and nothing after it: what an interrupted
    /// creation (or compaction) leaves. Open removes it; it marks no store.
    HeaderOnly,
    /// A log header this backend writes and frames after it: a store whose
    /// snapshot was lost. Open refuses the directory
    /// ([`RecoveryError::LostSnapshot`]) and removes nothing.
    Frames,
    /// No log header this backend writes: an empty file, one too short for a
    /// header, another program's bytes, a newer format or a damaged header. Not
    /// this backend's file (a log gets its name only once its header is synced):
    /// open refuses the directory ([`RecoveryError::Header`]) and removes nothing.
    NotOurs,
}

impl LoneLog {
    /// The log of `len` bytes whose first bytes (up to a header's worth) are
    /// `head`.
    pub(crate) fn judge(head: &[u8], len: u64) -> LoneLog {
        match any_log_header_len(head) {
            Ok(header) if len > header as u64 => LoneLog::Frames,
            Ok(_) => LoneLog::HeaderOnly,
            Err(_) => LoneLog::NotOurs,
        }
    }
}

/// The logs of `entries` whose generation has no snapshot, with their generation:
/// every log when there is no snapshot, else those above the live (highest)
/// snapshot's generation.
pub(crate) fn lone_logs(entries: &[(String, Entry)]) -> impl Iterator<Item = (&str, u64)> {
    let live = live_generation(entries);
    entries.iter().filter_map(move |(name, e)| match *e {
        Entry::Log(g) if live.is_none_or(|live| g > live) => Some((name.as_str(), g)),
        _ => None,
    })
}

/// What replaying the live log found.
struct LogReplay {
    seed: u32,
    frames: u64,
    valid_len: u64,
    torn_tail: Option<TornTail>,
}
