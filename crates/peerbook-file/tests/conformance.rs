//! The backend conformance kit over `FileBackend`, with default options and with
//! options that compact every few writes.

use peerbook::conformance::open_failure::EngineFailure;
use peerbook::conformance::TempDirFactory;
use peerbook_file::{FileBackend, FileOptions};

/// Each backend on a fresh temp dir; every open, a reopen after a clean close
/// included, must find no torn tail.
fn factory_with(options: FileOptions) -> TempDirFactory<FileBackend> {
    TempDirFactory::new(
        move |path| {
            let backend = FileBackend::open(path, options.clone()).expect("open a FileBackend");
            assert!(
                backend.recovery().torn_tail.is_none(),
                "a clean close leaves no torn tail: {:?}",
                backend.recovery()
            );
            backend
        },
        |backend| backend.path().to_path_buf(),
    )
}

fn factory() -> TempDirFactory<FileBackend> {
    factory_with(FileOptions::default())
}

peerbook::conformance_tests!(factory());

/// The same kit with compaction after (almost) every write, and snapshots cut into
/// many small frames.
mod compacting {
    use super::*;

    fn factory() -> TempDirFactory<FileBackend> {
        factory_with(
            FileOptions::default()
                .with_compact_min_log_bytes(256)
                .with_compact_ratio(1.0)
                .with_snapshot_chunk_bytes(64),
        )
    }

    peerbook::conformance_tests!(factory());
}

/// A failed open removes the directories it created and leaves the user's files,
/// also one failing in the engine (a 4085-byte store path: room for its `LOCK`,
/// not for `snapshot.1.tmp`, the first file a new store writes, which its error
/// names).
#[test]
fn failed_open_leaves_no_new_directories() {
    peerbook::conformance::open_failure::failed_open_leaves_no_new_directories(
        |path| FileBackend::open(path, FileOptions::default()),
        EngineFailure {
            store_path_len: 4085,
            fits: &["LOCK"],
            fails_on: "snapshot.1.tmp",
            error_says: "snapshot.1.tmp",
            leaves: &[],
        },
    );
}
