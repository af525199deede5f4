//! The peerbook conformance kit, run over `LmdbBackend`.

use peerbook::conformance::open_failure::EngineFailure;
use peerbook::conformance::TempDirFactory;
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

type LmdbFactory = TempDirFactory<LmdbBackend>;

/// Each backend on a fresh temp dir that lives as long as the factory.
fn factory_with(options: LmdbOptions) -> LmdbFactory {
    TempDirFactory::new(
        move |path| {
            LmdbBackend::open(path, options.clone())
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
        },
        |backend| backend.path().to_path_buf(),
    )
}

/// The defaults a typical node uses.
fn factory() -> LmdbFactory {
    factory_with(LmdbOptions::default())
}

peerbook::conformance_tests!(factory());

/// The same kit with the smallest map, so that growth happens in the middle of the
/// kit's own workloads (its 256 KiB value, its concurrent readers, its reopens).
mod small_map {
    use super::*;

    fn small_factory() -> LmdbFactory {
        factory_with(LmdbOptions::default().with_initial_map_size(peerbook_lmdb::MIN_MAP_SIZE))
    }

    peerbook::conformance_tests!(small_factory());
}

/// A failed open removes the directories it created and leaves the user's files,
/// also one failing in the engine (a 4082-byte store path: the backend makes
/// `LOCK` and `creating/`, LMDB not `creating/data.mdb`). The error says "LMDB
/// could not open the environment at", which only an I/O failure of LMDB's own
/// open says (`from_heed_at_open`): every step before it (the directories,
/// `LOCK`, `creating/`) maps its error otherwise (`from_io`: "the LMDB
/// environment at"), which the crate's `error` tests check.
#[test]
fn failed_open_leaves_no_new_directories() {
    peerbook::conformance::open_failure::failed_open_leaves_no_new_directories(
        |path| LmdbBackend::open(path, LmdbOptions::default()),
        EngineFailure {
            store_path_len: 4082,
            fits: &["LOCK", "creating"],
            fails_on: "creating/data.mdb",
            error_says: "LMDB could not open the environment at",
            leaves: &[],
        },
    );
}
