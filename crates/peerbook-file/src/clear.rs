//! [`Backend::clear`](peerbook::backend::Backend::clear) of a [`FileBackend`]: commit
//! an empty generation (the compaction protocol with no entries), forget every
//! entry in memory, then remove every file that may hold a former entry and sync
//! the directory, so that no byte of one stays in the directory, even after a power
//! loss.

use std::io;

use peerbook::backend::BackendError;
use peerbook::mvcc::VersionedSpaces;

use crate::codec::LogOp;
use crate::compaction::SwitchError;
use crate::naming::{classify, log_name, snapshot_name, Entry};
use crate::writer::{apply_versioned, Writer};
use crate::{engine, ClearError, FileBackend};

impl FileBackend {
    /// The clear, the writer held and usable. Fails before its commit point with
    /// nothing changed; from the commit point on the maps are cleared whatever
    /// fails after (see [`Backend::clear`](peerbook::backend::Backend::clear) on
    /// [`FileBackend`] for the states an error leaves).
    pub(crate) fn clear_locked(&self, w: &mut Writer) -> Result<(), BackendError> {
        let empty = VersionedSpaces::default();
        let switched = self.switch_generation(w, &empty.view());
        if let Err(SwitchError::NotCommitted(e)) = switched {
            return Err(e);
        }
        // The empty generation is in the directory: this handle forgets too.
        self.forget_all(w);
        let generation = match switched {
            Ok(_) => w.generation,
            Err(SwitchError::NoLog { generation, error }) => {
                // Committed durably: the former files go, though writes stop.
                if let Err(e) = self.remove_former_files(generation) {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "peerbook-file: a clear whose log failed to open could not remove every former file; the next open will");
                }
                return Err(error);
            }
            // Not known durable: a reopen after a power loss may need the old
            // generation's files, which stay (writes stop until a reopen).
            Err(e) => return Err(e.into_inner()),
        };
        self.remove_former_files(generation)
            .map_err(|e| engine(e.to_string()).with_source(e))
    }

    /// Apply a clear to the maps, and drop the last frame's buffer (its bytes are
    /// former entries too).
    fn forget_all(&self, w: &mut Writer) {
        *self.spare() = Vec::new();
        let live = &mut w.live_bytes;
        self.spaces
            .apply(|batch| apply_versioned(batch, LogOp::Clear, live));
        self.publish_usage(w);
    }

    /// Remove every file of a generation below `generation` and every temporary of
    /// this backend (what earlier failed removals or compactions may have left:
    /// never a file that is not this backend's, nor the `LOCK`), then sync the
    /// directory so that no removal is undone by a power loss. Every removal is
    /// tried; the first failure is returned (the others are logged).
    fn remove_former_files(&self, generation: u64) -> Result<(), ClearError> {
        let mut first: Option<ClearError> = None;
        let mut fail = |e: ClearError| {
            tracing::warn!(dir = %self.dir.display(), error = %e, "peerbook-file: clear");
            first.get_or_insert(e);
        };
        let former = |name: &str| match classify(name) {
            Entry::Snapshot(g) | Entry::Log(g) => g < generation,
            Entry::Temp => true,
            Entry::Other => false,
        };
        let names = match self.vfs.list(&self.dir) {
            Ok(names) => names.into_iter().filter(|n| former(n)).collect(),
            Err(source) => {
                fail(ClearError::List {
                    dir: self.dir.clone(),
                    source,
                });
                // at least the generation the clear replaced
                let replaced = generation.saturating_sub(1);
                vec![snapshot_name(replaced), log_name(replaced)]
            }
        };
        for name in names {
            let file = self.file(&name);
            match self.vfs.remove(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => fail(ClearError::Remove { file, source }),
            }
        }
        if let Err(source) = self.vfs.sync_dir(&self.dir) {
            fail(ClearError::SyncDir {
                dir: self.dir.clone(),
                source,
            });
        }
        match first {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
