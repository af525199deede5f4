//! The peerbook conformance kit, run over RocksBackend.

use std::path::PathBuf;
use std::sync::Mutex;

use peerbook::conformance::Factory;
use peerbook_rocksdb::{RocksBackend, RocksOptions};
use tempfile::TempDir;

/// Opens every backend on its own temporary directory, kept alive (and removed)
/// with the factory.
struct RocksFactory {
    options: RocksOptions,
    dirs: Mutex<Vec<TempDir>>,
}

impl RocksFactory {
    fn open(&self, path: &std::path::Path) -> RocksBackend {
        RocksBackend::open(path, self.options.clone()).expect("open RocksBackend")
    }
}

impl Factory for RocksFactory {
    type Backend = RocksBackend;

    fn create(&self) -> RocksBackend {
        let dir = tempfile::tempdir().expect("temp dir");
        let path: PathBuf = dir.path().join("db");
        let backend = self.open(&path);
        self.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(dir);
        backend
    }

    fn reopen(&self, backend: RocksBackend) -> RocksBackend {
        let path = backend.path().to_path_buf();
        drop(backend);
        self.open(&path)
    }
}

fn factory(options: RocksOptions) -> RocksFactory {
    RocksFactory {
        options,
        dirs: Mutex::new(Vec::new()),
    }
}

/// Tiny memtables: the kit's data reaches SST files and compactions too.
fn small_memtable_options() -> RocksOptions {
    let mut options = RocksOptions::default();
    options.peers_write_buffer_bytes = 64 * 1024;
    options.index_write_buffer_bytes = 64 * 1024;
    options.block_cache_bytes = 1 << 20;
    options
}

/// The kit over the default tuning.
mod default_options {
    use super::*;
    peerbook::conformance_tests!(factory(RocksOptions::default()));
}

/// The kit with data flushed to SST files early.
mod small_memtables {
    use super::*;
    peerbook::conformance_tests!(factory(small_memtable_options()));
}
