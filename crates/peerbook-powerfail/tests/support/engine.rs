//! The engines under test, each with the options that make its interesting file
//! operations (flushes, compactions, new files) happen within a few dozen steps.

use std::path::Path;

use peerbook::backend::{Backend, BackendError};

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

    pub fn open(self, dir: &Path) -> Result<Box<dyn Backend>, BackendError> {
        let dir = dir.join(self.name());
        Ok(match self {
            Engine::Lmdb => {
                let options = peerbook_lmdb::LmdbOptions::default().with_initial_map_size(1 << 20);
                Box::new(peerbook_lmdb::LmdbBackend::open(dir, options)?)
            }
            Engine::Rocks => {
                let mut options = peerbook_rocksdb::RocksOptions::default();
                options.peers_write_buffer_bytes = 64 << 10;
                options.index_write_buffer_bytes = 32 << 10;
                options.max_total_wal_size = 256 << 10;
                options.block_cache_bytes = 1 << 20;
                Box::new(peerbook_rocksdb::RocksBackend::open(dir, options)?)
            }
            Engine::File => {
                let options = peerbook_file::FileOptions::default()
                    .with_compact_min_log_bytes(4096)
                    .with_compact_ratio(1.0);
                Box::new(peerbook_file::FileBackend::open(dir, options)?)
            }
        })
    }
}
