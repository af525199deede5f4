//! Open of a store directory (FORMAT.md, "Open and the torn-tail rule"): find the
//! live generation (or create generation 1), load its snapshot, replay its log with
//! the torn-tail rule, remove the leftovers of interrupted compactions, and open the
//! log for appending.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use peerbook::backend::BackendError;
use peerbook::mvcc::VersionedSpaces;

use crate::codec::{
    check_file_header, decode_body, entry_size, header_len, read_frame, scan_after, After,
    FileKind, LogOp,
};
use crate::compaction::{write_generation, GenError};
use crate::error::{FormatError, RecoveryError, SnapshotRule};
use crate::naming::{classify, log_name, snapshot_name, Entry};
use crate::writer::Writer;
use crate::{FileOptions, Map, Recovery, Spaces, TornTail, Vfs, VfsFile};

/// Loads the store of one directory (the lock is already held).
pub(crate) struct Loader<'a> {
    pub(crate) vfs: &'a dyn Vfs,
    pub(crate) dir: &'a Path,
    pub(crate) options: &'a FileOptions,
}

/// What [`Loader::load`] hands to the backend.
pub(crate) struct Loaded {
    pub(crate) spaces: Spaces,
    pub(crate) writer: Writer,
    pub(crate) recovery: Recovery,
}

/// The dataset as loaded so far: the maps and their snapshot size.
struct Dataset {
    spaces: Spaces,
    live: u64,
}

impl Loader<'_> {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, BackendError> {
        let path = self.path(name);
        self.vfs
            .read(&path)
            .map_err(|e| BackendError::io(format!("read {}", path.display()), e))
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
        let entries = self.list()?;
        let mut recovery = Recovery::default();
        let generation = match live_generation(&entries) {
            Some(g) => g,
            None => self.create(&entries, &mut recovery)?,
        };
        recovery.generation = generation;
        let mut data = Dataset {
            spaces: Default::default(),
            live: 0,
        };
        let (snapshot_entries, snapshot_len) = self.load_snapshot_file(generation, &mut data)?;
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

    /// No snapshot: a new store, or what an interrupted creation left. Refuse logs
    /// holding frames (a lost snapshot), remove the rest, commit generation 1.
    fn create(
        &self,
        entries: &[(String, Entry)],
        recovery: &mut Recovery,
    ) -> Result<u64, BackendError> {
        for (name, e) in entries {
            if let Entry::Log(_) = e {
                let data = self.read(name)?;
                if data.len() > header_len(&data) {
                    return Err(RecoveryError::LostSnapshot {
                        file: self.path(name),
                        bytes: data.len() - header_len(&data),
                        snapshot: None,
                    }
                    .into());
                }
            }
        }
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

    /// The snapshot: complete by construction, so any damage is an error. Returns
    /// its entry count and its length in bytes.
    fn load_snapshot_file(
        &self,
        generation: u64,
        data: &mut Dataset,
    ) -> Result<(u64, u64), BackendError> {
        let name = snapshot_name(generation);
        let bytes = self.read(&name)?;
        let entries = load_snapshot(
            &bytes,
            generation,
            &self.path(&name),
            &mut data.spaces,
            &mut data.live,
        )?;
        Ok((entries, bytes.len() as u64))
    }

    /// The log, replayed onto the snapshot with the torn-tail rule; a torn tail is
    /// reported (warning and [`TornTail`]), cut later by [`Loader::open_log`].
    fn replay_log_file(
        &self,
        generation: u64,
        data: &mut Dataset,
    ) -> Result<LogReplay, BackendError> {
        let name = log_name(generation);
        let path = self.path(&name);
        let bytes = match self.vfs.read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RecoveryError::MissingLog {
                    file: path,
                    snapshot: snapshot_name(generation),
                }
                .into())
            }
            Err(e) => return Err(BackendError::io(format!("read {}", path.display()), e)),
        };
        let replay = replay_log(&bytes, generation, &path, &mut data.spaces, &mut data.live)?;
        let valid_len = replay.valid_len as u64;
        let torn_tail = replay.torn.map(|(reason, valid_frames_after)| {
            let torn = TornTail {
                file: name,
                offset: valid_len,
                bytes: (bytes.len() - replay.valid_len) as u64,
                reason,
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
            torn
        });
        Ok(LogReplay {
            seed: replay.seed,
            frames: replay.frames,
            valid_len,
            torn_tail,
        })
    }

    /// Leftovers: older generations, temporaries, logs of a compaction that never
    /// committed. Removed only once the current generation has loaded.
    fn remove_leftovers(
        &self,
        entries: &[(String, Entry)],
        generation: u64,
        removed: &mut Vec<String>,
    ) -> Result<(), BackendError> {
        for (name, e) in entries {
            match *e {
                Entry::Snapshot(g) | Entry::Log(g) if g < generation => self.remove(name, removed),
                Entry::Log(g) if g > generation => {
                    let data = self.read(name)?;
                    if data.len() > header_len(&data) {
                        return Err(RecoveryError::LostSnapshot {
                            file: self.path(name),
                            bytes: data.len() - header_len(&data),
                            snapshot: Some(snapshot_name(g)),
                        }
                        .into());
                    }
                    self.remove(name, removed);
                }
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

/// What replaying the live log found.
struct LogReplay {
    seed: u32,
    frames: u64,
    valid_len: u64,
    torn_tail: Option<TornTail>,
}

/// Load a whole snapshot into `spaces`; returns the number of entries.
fn load_snapshot(
    data: &[u8],
    generation: u64,
    path: &Path,
    spaces: &mut Spaces,
    live: &mut u64,
) -> Result<u64, RecoveryError> {
    let file = || path.to_path_buf();
    let header = check_file_header(FileKind::Snapshot, data, generation).map_err(|error| {
        RecoveryError::Header {
            file: file(),
            error,
        }
    })?;
    let seed = header.seed;
    let mut off = header.len;
    let mut entries = 0u64;
    let mut ended = false;
    let rule = |offset: usize, rule: SnapshotRule| RecoveryError::SnapshotRule {
        file: file(),
        offset,
        rule,
    };
    while off < data.len() {
        if ended {
            return Err(RecoveryError::AfterEnd {
                file: file(),
                offset: off,
                bytes: data.len() - off,
            });
        }
        let frame_error = |error| RecoveryError::SnapshotFrame {
            file: file(),
            offset: off,
            error,
        };
        let frame = read_frame(data, off, seed).map_err(frame_error)?;
        let ops = decode_body(frame.body).map_err(frame_error)?;
        let n = ops.len();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                LogOp::Put { space, key, value } => {
                    *live += entry_size(key.len(), value.len());
                    let map = Arc::make_mut(&mut spaces[space.index()]);
                    if map.insert(key, value).is_some() {
                        return Err(rule(off, SnapshotRule::DuplicateKey(space)));
                    }
                    entries += 1;
                }
                LogOp::End { entries: declared } => {
                    if i + 1 != n {
                        return Err(rule(off, SnapshotRule::OpsAfterEnd));
                    }
                    if declared != entries {
                        return Err(rule(
                            off,
                            SnapshotRule::EndCount {
                                declared,
                                found: entries,
                            },
                        ));
                    }
                    ended = true;
                }
                LogOp::Delete { .. } | LogOp::Clear => {
                    return Err(rule(off, SnapshotRule::NotAPut));
                }
            }
        }
        off = frame.end;
    }
    if !ended {
        return Err(RecoveryError::SnapshotTruncated {
            file: file(),
            len: data.len(),
        });
    }
    Ok(entries)
}

struct Replay {
    /// The frame seed of the log (from its header).
    seed: u32,
    frames: u64,
    /// Length of the valid prefix of the log.
    valid_len: usize,
    /// Why the bytes at `valid_len` were not a frame, and how many valid frames
    /// followed, when they are a torn tail.
    torn: Option<(FormatError, u64)>,
}

/// Replay the frames of a log onto `spaces`, applying the torn-tail rule.
fn replay_log(
    data: &[u8],
    generation: u64,
    path: &Path,
    spaces: &mut Spaces,
    live: &mut u64,
) -> Result<Replay, RecoveryError> {
    let file = || path.to_path_buf();
    let header = check_file_header(FileKind::Log, data, generation).map_err(|error| {
        RecoveryError::Header {
            file: file(),
            error,
        }
    })?;
    let seed = header.seed;
    let mut off = header.len;
    let mut frames = 0u64;
    while off < data.len() {
        let frame = match read_frame(data, off, seed) {
            Ok(frame) => frame,
            Err(error) => {
                return match scan_after(data, off, seed) {
                    After::Witness(witness) => Err(RecoveryError::SyncedFrameDamaged {
                        file: file(),
                        offset: off,
                        error,
                        witness,
                    }),
                    After::Torn { valid_frames_after } => Ok(Replay {
                        seed,
                        frames,
                        valid_len: off,
                        torn: Some((error, valid_frames_after)),
                    }),
                };
            }
        };
        if frame.synced_to > off as u64 {
            return Err(RecoveryError::SyncedBeyondOffset {
                file: file(),
                offset: off,
                synced_to: frame.synced_to,
            });
        }
        let ops = decode_body(frame.body).map_err(|error| RecoveryError::UndecodableBatch {
            file: file(),
            offset: off,
            error,
        })?;
        if ops.iter().any(|op| matches!(op, LogOp::End { .. })) {
            return Err(RecoveryError::EndInLog {
                file: file(),
                offset: off,
            });
        }
        for op in ops {
            apply(spaces, op, live);
        }
        frames += 1;
        off = frame.end;
    }
    Ok(Replay {
        seed,
        frames,
        valid_len: off,
        torn: None,
    })
}

/// Apply one op to the maps, keeping `live` (the snapshot size of the data) current.
fn apply(spaces: &mut Spaces, op: LogOp, live: &mut u64) {
    match op {
        LogOp::Put { space, key, value } => {
            let add = entry_size(key.len(), value.len());
            let klen = key.len();
            let map = Arc::make_mut(&mut spaces[space.index()]);
            if let Some(old) = map.insert(key, value) {
                *live = live.saturating_sub(entry_size(klen, old.len()));
            }
            *live += add;
        }
        LogOp::Delete { space, key } => {
            // Avoid copying a shared map for a delete of a missing key.
            if spaces[space.index()].contains_key(&key) {
                let map = Arc::make_mut(&mut spaces[space.index()]);
                if let Some(old) = map.remove(&key) {
                    *live = live.saturating_sub(entry_size(key.len(), old.len()));
                }
            }
        }
        LogOp::Clear => {
            for map in spaces.iter_mut() {
                *map = Arc::new(Map::new());
            }
            *live = 0;
        }
        LogOp::End { .. } => {}
    }
}
