//! The peerbook conformance kit, run over RocksBackend.

use peerbook::conformance::open_failure::EngineFailure;
use peerbook::conformance::TempDirFactory;
use peerbook_rocksdb::{RocksBackend, RocksOptions};

/// Each backend on its own temp dir, kept alive (and removed) with the factory.
fn factory(options: RocksOptions) -> TempDirFactory<RocksBackend> {
    TempDirFactory::new(
        move |path| RocksBackend::open(path, options.clone()).expect("open RocksBackend"),
        |backend| backend.path().to_path_buf(),
    )
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

/// A failed open removes the directories it created and leaves the user's files;
/// once RocksDB has written its `LOCK` and `LOG` into the new store directory (a
/// 4086-byte store path has room for those, not for the `000000.dbtmp` it
/// writes next, which its error names), those stay, with the directories
/// holding them (see `RocksBackend::open`).
#[test]
fn failed_open_leaves_no_new_directories() {
    peerbook::conformance::open_failure::failed_open_leaves_no_new_directories(
        |path| RocksBackend::open(path, RocksOptions::default()),
        EngineFailure {
            store_path_len: 4086,
            fits: &["LOCK", "LOG"],
            fails_on: "000000.dbtmp",
            error_says: "000000.dbtmp",
            leaves: &["LOCK", "LOG"],
        },
    );
}
