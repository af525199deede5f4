//! The compaction protocol (FORMAT.md, "Compaction protocol"): write generation
//! `G+1` from a read view ([`write_generation`], [`write_snapshot`]), commit it by the
//! snapshot's rename, switch the writer to it and remove generation `G`. A clear is
//! the same protocol with an empty dataset.

use std::io;
use std::ops::{Bound, ControlFlow};
use std::path::Path;

use peerbook::backend::{BackendError, Direction, KeyRange, ReadView, Space};

use crate::codec::{
    encode_file_header, encode_frame, entry_size, frame_seed, BodyEncoder, FileKind,
    MAX_FRAME_BODY, SALT_LEN,
};
use crate::naming::{log_name, snapshot_name, temp_name};
use crate::writer::Writer;
use crate::{engine, FileBackend, Vfs, VfsFile, HEADER};

impl FileBackend {
    pub(crate) fn compact_locked(&self, w: &mut Writer) -> Result<(), BackendError> {
        // Writers are excluded (we hold the writer mutex), so this view holds every
        // committed batch; readers go on while the snapshot is written.
        let spaces = self.spaces.view();
        let switched = self.switch_generation(w, &spaces);
        drop(spaces);
        let old = switched.map_err(SwitchError::into_inner)?;
        for name in [snapshot_name(old), log_name(old)] {
            if let Err(e) = self.vfs.remove(&self.file(&name)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(file = %name, error = %e, "peerbook-file: could not remove an old generation's file; the next open or clear will");
                }
            }
        }
        Ok(())
    }

    /// Commit generation `G+1` holding `spaces` (steps 1-4 of the compaction
    /// protocol) and switch the writer to it. Returns `G`, whose files the caller
    /// removes.
    pub(crate) fn switch_generation(
        &self,
        w: &mut Writer,
        spaces: &dyn ReadView,
    ) -> Result<u64, SwitchError> {
        let old = w.generation;
        let new = old.checked_add(1).ok_or_else(|| {
            SwitchError::NotCommitted(engine("generation counter exhausted".to_string()))
        })?;
        let (snapshot_len, log_seed) = match write_generation(
            &*self.vfs,
            &self.dir,
            new,
            spaces,
            self.options.snapshot_chunk_bytes,
        ) {
            Ok(written) => written,
            Err(GenError::Clean(e)) => return Err(SwitchError::NotCommitted(e)),
            Err(GenError::Uncertain(e)) => {
                w.failed = Some(format!(
                    "compaction to generation {new} failed at its commit point ({e})"
                ));
                return Err(SwitchError::Uncertain(e));
            }
        };
        let log_path = self.file(&log_name(new));
        let log = match self.vfs.open_append(&log_path) {
            Ok(log) => log,
            Err(e) => {
                let e = BackendError::io(format!("open {}", log_path.display()), e);
                w.failed = Some(format!(
                    "generation {new} committed but its log failed to open ({e})"
                ));
                return Err(SwitchError::NoLog {
                    generation: new,
                    error: e,
                });
            }
        };
        w.generation = new;
        w.seed = log_seed;
        w.log = log;
        w.log_len = HEADER;
        w.synced_to = HEADER;
        w.snapshot_len = snapshot_len;
        w.compactions += 1;
        w.retry_compaction_at = 0;
        self.publish_usage(w);
        Ok(old)
    }
}

/// How [`FileBackend::switch_generation`] failed.
pub(crate) enum SwitchError {
    /// Before the commit point: generation `G` is intact and current, nothing
    /// changed.
    NotCommitted(BackendError),
    /// The snapshot of `G+1` was renamed into place but the directory sync of the
    /// commit point failed: the directory holds `G+1`, yet after a power loss a
    /// reopen may see either generation, so the files of `G` must stay. Writes are
    /// refused until a reopen.
    Uncertain(BackendError),
    /// `G+1` is committed (durably), but its log failed to open. Writes are
    /// refused until a reopen (which opens `G+1`).
    NoLog {
        /// The committed generation, `G+1`.
        generation: u64,
        /// Why its log did not open.
        error: BackendError,
    },
}

impl SwitchError {
    pub(crate) fn into_inner(self) -> BackendError {
        match self {
            SwitchError::NotCommitted(e) | SwitchError::Uncertain(e) => e,
            SwitchError::NoLog { error, .. } => error,
        }
    }
}

pub(crate) enum GenError {
    /// Failed before the commit point: the old generation is intact and current.
    Clean(BackendError),
    /// Failed after the snapshot's rename: which generation a reopen sees is unknown.
    Uncertain(BackendError),
}

/// A fresh random salt for a new file's header (format version 2).
pub(crate) fn new_salt() -> Result<[u8; SALT_LEN], BackendError> {
    let mut salt = [0u8; SALT_LEN];
    getrandom::getrandom(&mut salt).map_err(|e| {
        BackendError::io(
            "draw a file salt".to_string(),
            io::Error::other(e.to_string()),
        )
    })?;
    Ok(salt)
}

/// Steps 1-4 of the compaction protocol (crate docs): write and commit generation
/// `generation` holding `spaces`. Returns the new snapshot's length and the frame
/// seed of the new log.
pub(crate) fn write_generation(
    vfs: &dyn Vfs,
    dir: &Path,
    generation: u64,
    spaces: &dyn ReadView,
    chunk: usize,
) -> Result<(u64, u32), GenError> {
    let snap_tmp = dir.join(temp_name(&snapshot_name(generation)));
    let log_tmp = dir.join(temp_name(&log_name(generation)));
    let log_final = dir.join(log_name(generation));
    let snap_final = dir.join(snapshot_name(generation));
    let cleanup = |also_log: bool| {
        let _ = vfs.remove(&snap_tmp);
        let _ = vfs.remove(&log_tmp);
        if also_log {
            let _ = vfs.remove(&log_final);
        }
    };
    let io = |what: &str, path: &Path, e: io::Error| {
        BackendError::io(format!("{what} {}", path.display()), e)
    };

    let snapshot_len = match write_snapshot(vfs, &snap_tmp, generation, spaces, chunk) {
        Ok(len) => len,
        Err(e) => {
            cleanup(false);
            return Err(GenError::Clean(e));
        }
    };
    let log_salt = match new_salt() {
        Ok(salt) => salt,
        Err(e) => {
            cleanup(false);
            return Err(GenError::Clean(e));
        }
    };
    let log_result = vfs.create(&log_tmp).and_then(|mut f| {
        f.append(&encode_file_header(FileKind::Log, generation, &log_salt))?;
        f.sync()
    });
    if let Err(e) = log_result {
        cleanup(false);
        return Err(GenError::Clean(io("write", &log_tmp, e)));
    }
    if let Err(e) = vfs.rename(&log_tmp, &log_final) {
        cleanup(false);
        return Err(GenError::Clean(io("rename", &log_tmp, e)));
    }
    if let Err(e) = vfs.sync_dir(dir) {
        cleanup(true);
        return Err(GenError::Clean(io("sync directory", dir, e)));
    }
    if let Err(e) = vfs.rename(&snap_tmp, &snap_final) {
        cleanup(true);
        return Err(GenError::Clean(io("rename", &snap_tmp, e)));
    }
    // The commit point: from here on a reopen may see either generation.
    if let Err(e) = vfs.sync_dir(dir) {
        return Err(GenError::Uncertain(io("sync directory", dir, e)));
    }
    Ok((snapshot_len, frame_seed(generation, &log_salt)))
}

/// Write `spaces` as snapshot `path`. The entries are copied out of the view a
/// [`Chunk`] at a time and written after the view's read lock is released: a view's
/// scan holds the spaces' read lock while it runs, and a writer waiting for that
/// lock (the drop of the oldest view, which prunes) makes every later reader wait
/// too, so no file write may happen under it. A view is a stable state, so going
/// on from the last key copied is the same as one scan.
fn write_snapshot(
    vfs: &dyn Vfs,
    path: &Path,
    generation: u64,
    spaces: &dyn ReadView,
    chunk_bytes: usize,
) -> Result<u64, BackendError> {
    let io = |e: io::Error| BackendError::io(format!("write {}", path.display()), e);
    let salt = new_salt()?;
    let mut file = vfs.create(path).map_err(io)?;
    let seed = frame_seed(generation, &salt);
    let header = encode_file_header(FileKind::Snapshot, generation, &salt);
    file.append(&header).map_err(io)?;
    let mut len = header.len() as u64;
    let mut entries = 0u64;
    let mut enc = BodyEncoder::new();
    let emit = |enc: BodyEncoder, file: &mut Box<dyn VfsFile>| -> Result<u64, BackendError> {
        let body = enc.finish().map_err(|size| {
            engine(format!(
                "snapshot frame of {size} bytes exceeds the frame limit"
            ))
        })?;
        let frame = encode_frame(seed, 0, &body);
        file.append(&frame).map_err(io)?;
        Ok(frame.len() as u64)
    };
    let mut chunk = Chunk::default();
    for space in Space::ALL {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let lower = after.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let full = chunk.copy(spaces, space, lower)?;
            for (key, value) in chunk.entries() {
                // A frame holds at least one entry; cut before one that would overflow.
                let size = entry_size(key.len(), value.len()) as usize;
                if enc.count() > 0
                    && (enc.len() + size > chunk_bytes || enc.len() + size > MAX_FRAME_BODY / 2)
                {
                    len += emit(std::mem::take(&mut enc), &mut file)?;
                }
                enc.put(space, key, value);
                entries += 1;
            }
            match chunk.last_key() {
                Some(last) if full => after = Some(last.to_vec()),
                _ => break,
            }
        }
    }
    if enc.count() > 0 {
        len += emit(std::mem::take(&mut enc), &mut file)?;
    }
    enc.end(entries);
    len += emit(enc, &mut file)?;
    file.sync().map_err(io)?;
    Ok(len)
}

/// Entries copied out of a view under its read lock at a time, at most
/// [`Chunk::ENTRIES`] or about [`Chunk::BYTES`] (at least one entry): in one flat
/// buffer reused from chunk to chunk, no allocation per entry.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    /// `(key length, value length)` of each entry, in `bytes` one after the other.
    lens: Vec<(usize, usize)>,
}

impl Chunk {
    const ENTRIES: usize = 256;
    const BYTES: usize = 64 << 10;

    /// Copy the next entries of `space` in `spaces` with keys in `(lower, ..)`,
    /// replacing the last chunk. Returns whether the chunk is full (there may be
    /// more entries after it).
    fn copy(
        &mut self,
        spaces: &dyn ReadView,
        space: Space,
        lower: Bound<&[u8]>,
    ) -> Result<bool, BackendError> {
        self.bytes.clear();
        self.lens.clear();
        let mut full = false;
        let range = KeyRange {
            lower,
            upper: Bound::Unbounded,
        };
        spaces.scan(space, range, Direction::Forward, &mut |key, value| {
            self.bytes.extend_from_slice(key);
            self.bytes.extend_from_slice(value);
            self.lens.push((key.len(), value.len()));
            full = self.lens.len() >= Self::ENTRIES || self.bytes.len() >= Self::BYTES;
            if full {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(full)
    }

    /// The entries copied, in key order.
    fn entries(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut at = 0;
        self.lens.iter().map(move |&(klen, vlen)| {
            let key = &self.bytes[at..at + klen];
            let value = &self.bytes[at + klen..at + klen + vlen];
            at += klen + vlen;
            (key, value)
        })
    }

    /// The key of the last entry copied.
    fn last_key(&self) -> Option<&[u8]> {
        let (klen, vlen) = *self.lens.last()?;
        let start = self.bytes.len() - vlen - klen;
        self.bytes.get(start..start + klen)
    }
}
