//! The backend conformance kit over `FileBackend`, with default options and with
//! options that compact every few writes.

use std::sync::Mutex;

use peerbook::conformance::Factory;
use peerbook_file::{FileBackend, FileOptions};
use tempfile::TempDir;

/// A fresh temp dir per `create`, kept alive by the factory; `reopen` drops the
/// backend and opens the same directory again.
struct FileFactory {
    options: FileOptions,
    dirs: Mutex<Vec<TempDir>>,
}

impl Factory for FileFactory {
    type Backend = FileBackend;

    fn create(&self) -> FileBackend {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = FileBackend::open(dir.path().join("book"), self.options.clone())
            .expect("open a fresh FileBackend");
        self.dirs.lock().unwrap().push(dir);
        backend
    }

    fn reopen(&self, backend: FileBackend) -> FileBackend {
        let path = backend.path().to_path_buf();
        drop(backend);
        let backend = FileBackend::open(&path, self.options.clone()).expect("reopen FileBackend");
        assert!(
            backend.recovery().torn_tail.is_none(),
            "a clean close leaves no torn tail: {:?}",
            backend.recovery()
        );
        backend
    }
}

fn factory() -> FileFactory {
    FileFactory {
        options: FileOptions::default(),
        dirs: Mutex::new(Vec::new()),
    }
}

peerbook::conformance_tests!(factory());

/// The same kit with compaction after (almost) every write, and snapshots cut into
/// many small frames.
mod compacting {
    use super::*;

    fn factory() -> FileFactory {
        FileFactory {
            options: FileOptions::default()
                .with_compact_min_log_bytes(256)
                .with_compact_ratio(1.0)
                .with_snapshot_chunk_bytes(64),
            dirs: Mutex::new(Vec::new()),
        }
    }

    peerbook::conformance_tests!(factory());
}
