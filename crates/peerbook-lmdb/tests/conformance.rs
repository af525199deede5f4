//! The peerbook conformance kit, run over `LmdbBackend`.

use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use peerbook::conformance::Factory;
use peerbook_lmdb::{LmdbBackend, LmdbOptions};
use tempfile::TempDir;

/// Opens each backend on a fresh temp dir that lives as long as the factory.
struct LmdbFactory {
    options: LmdbOptions,
    dirs: Mutex<Vec<TempDir>>,
}

impl LmdbFactory {
    fn new(options: LmdbOptions) -> Self {
        LmdbFactory {
            options,
            dirs: Mutex::new(Vec::new()),
        }
    }

    fn open(&self, path: PathBuf) -> LmdbBackend {
        LmdbBackend::open(&path, self.options.clone())
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
    }
}

impl Factory for LmdbFactory {
    type Backend = LmdbBackend;

    fn create(&self) -> LmdbBackend {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = dir.path().join("book");
        self.dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(dir);
        self.open(path)
    }

    fn reopen(&self, backend: LmdbBackend) -> LmdbBackend {
        let path = backend.path().to_path_buf();
        drop(backend);
        self.open(path)
    }
}

/// The defaults a typical node uses.
fn factory() -> LmdbFactory {
    LmdbFactory::new(LmdbOptions::default())
}

peerbook::conformance_tests!(factory());

/// The same kit with the smallest map, so that growth happens in the middle of the
/// kit's own workloads (its 256 KiB value, its concurrent readers, its reopens).
mod small_map {
    use super::*;

    fn small_factory() -> LmdbFactory {
        LmdbFactory::new(LmdbOptions::default().with_initial_map_size(peerbook_lmdb::MIN_MAP_SIZE))
    }

    peerbook::conformance_tests!(small_factory());
}
