//! The engines under test, each with the options that make its interesting file
//! operations (flushes, compactions, new files) happen within a few dozen steps.

use std::path::Path;
use std::sync::Arc;

use peerbook::backend::{Backend, BackendError};
use peerbook_engines::EngineOptions;

/// The engines under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Lmdb,
    /// RocksDB with small memtables and logs, so flushes, new SST files, manifest
    /// updates and log switches happen within a few dozen steps.
    Rocks,
    /// Our own log + snapshot format, with small compaction thresholds so
    /// compactions (new snapshot, new log, renames, removals) happen often.
    File,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Lmdb => "lmdb",
            Engine::Rocks => "rocksdb",
            Engine::File => "file",
        }
    }

    /// Whether a power cut undoes at most the last acknowledged commit (LMDB with
    /// `MDB_NOMETASYNC`: each commit syncs its data pages, and so the meta page of
    /// the commit before it).
    pub fn buffered_loses_at_most_last_commit(self) -> bool {
        self == Engine::Lmdb
    }

    pub fn from_name(name: &str) -> Engine {
        [Engine::Lmdb, Engine::Rocks, Engine::File]
            .into_iter()
            .find(|e| e.name() == name)
            .expect("known engine")
    }

    /// The registry engine and the options that make its file operations
    /// happen within a few dozen steps.
    fn registry(self) -> (peerbook_engines::Engine, EngineOptions) {
        let options = EngineOptions::default();
        match self {
            Engine::Lmdb => (
                peerbook_engines::Engine::Lmdb,
                options.with_lmdb(
                    peerbook_lmdb::LmdbOptions::default().with_initial_map_size(1 << 20),
                ),
            ),
            Engine::Rocks => {
                let mut rocks = peerbook_rocksdb::RocksOptions::default();
                rocks.peers_write_buffer_bytes = 64 << 10;
                rocks.index_write_buffer_bytes = 32 << 10;
                rocks.max_total_wal_size = 256 << 10;
                rocks.block_cache_bytes = 1 << 20;
                (peerbook_engines::Engine::Rocks, options.with_rocksdb(rocks))
            }
            Engine::File => (
                peerbook_engines::Engine::File,
                options.with_file(
                    peerbook_file::FileOptions::default()
                        .with_compact_min_log_bytes(4096)
                        .with_compact_ratio(1.0),
                ),
            ),
        }
    }

    /// Open this engine's store in `dir` (in its subdirectory named after it),
    /// through the registry.
    pub fn open(self, dir: &Path) -> Result<Arc<dyn Backend>, BackendError> {
        let (engine, options) = self.registry();
        engine.open_with(&dir.join(self.name()), &options)
    }
}
