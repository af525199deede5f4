//! Translation of heed and LMDB errors into [`BackendError`].

use std::io;
use std::path::Path;

use heed::MdbError;
use peerbook::backend::BackendError;

/// The engine name used in every [`BackendError::Engine`] of this crate.
pub(crate) const ENGINE: &str = "lmdb";

/// An [`BackendError::Engine`] with `message`.
pub(crate) fn engine(message: impl Into<String>) -> BackendError {
    BackendError::engine(ENGINE, message)
}

/// Maps any heed error met while working on the environment at `dir`; the heed
/// error is kept as the source.
///
/// `MDB_MAP_FULL` becomes [`BackendError::Full`] here; the write path intercepts it
/// before, to grow the map, and only lets it through once the map is at its cap.
pub(crate) fn from_heed(err: heed::Error, dir: &Path) -> BackendError {
    match err {
        heed::Error::Io(e) => from_io(e, dir),
        heed::Error::Mdb(e) => from_mdb(e, dir),
        heed::Error::Encoding(e) => engine(format!("encoding a key or value: {e}")).with_source(e),
        heed::Error::Decoding(e) => engine(format!("decoding a key or value: {e}")).with_source(e),
        heed::Error::EnvAlreadyOpened => BackendError::locked(format!(
            "the LMDB environment at {} is already open in this process",
            dir.display()
        ))
        .with_source(heed::Error::EnvAlreadyOpened),
    }
}

fn from_mdb(err: MdbError, dir: &Path) -> BackendError {
    let at = dir.display();
    let mapped = match err {
        MdbError::MapFull => BackendError::full(format!("the LMDB map at {at} is full ({err})")),
        MdbError::Corrupted | MdbError::PageNotFound | MdbError::Invalid => {
            BackendError::corrupted(format!("LMDB environment at {at}: {err}"))
        }
        MdbError::VersionMismatch => engine(format!(
            "{err}: {at} was written by an incompatible LMDB version"
        )),
        MdbError::Panic => engine(format!(
            "{err}: the environment at {at} had a fatal error; close and reopen it"
        )),
        MdbError::ReadersFull => engine(format!(
            "{err}: too many reads at once; raise LmdbOptions::max_readers"
        )),
        MdbError::TxnFull => engine(format!(
            "{err}: the batch is too large for one LMDB transaction; split it"
        )),
        MdbError::BadValSize => engine(format!(
            "{err}: LMDB refuses empty keys, keys over its maximum key size, and values over 4 GiB"
        )),
        MdbError::Other(code) => return from_io(io::Error::from_raw_os_error(code), dir),
        other => engine(format!("{other} (at {at})")),
    };
    mapped.with_source(heed::Error::Mdb(err))
}

/// Maps an I/O error ([`BackendError::io`]): a full disk or quota is
/// [`BackendError::Full`], the rest stays [`BackendError::Io`].
pub(crate) fn from_io(err: io::Error, dir: &Path) -> BackendError {
    BackendError::io(
        format_args!("the LMDB environment at {}", dir.display()),
        err,
    )
}

/// What the error of an I/O failure of the open of an environment itself
/// starts with, before the directory: heed's open (its own checks of the path
/// and the options, such as canonicalizing the path, then LMDB's
/// `mdb_env_open`), the first write transaction and the creation of the
/// databases in it, and the probe's read-only open. Never said by
/// [`from_io`] or [`from_heed`], which the steps before it (making the
/// directories, the scratch directory) and after it (the sync of a new
/// environment, the rename, the probe's read) map their errors with: an error
/// saying it comes from the environment's open, not from those steps.
pub(crate) const LMDB_OPEN_FAILED: &str = "LMDB could not open the environment at";

/// Maps an error met while opening the environment (heed's open, or the first
/// write transaction; never a step before or after): a lock conflict reported by LMDB
/// itself (another program holding `lock.mdb`) is [`BackendError::Locked`]; an I/O
/// failure (heed's, or LMDB's error number) says [`LMDB_OPEN_FAILED`]; the rest as
/// [`from_heed`].
pub(crate) fn from_heed_at_open(err: heed::Error, dir: &Path) -> BackendError {
    match err {
        heed::Error::Io(e) if e.kind() == io::ErrorKind::WouldBlock => BackendError::locked(
            format!("LMDB's lock file in {} is held: {e}", dir.display()),
        )
        .with_source(e),
        heed::Error::Io(e) => open_failed(e, dir),
        heed::Error::Mdb(MdbError::Other(code)) => {
            open_failed(io::Error::from_raw_os_error(code), dir)
        }
        other => from_heed(other, dir),
    }
}

/// An I/O failure of LMDB's own open ([`LMDB_OPEN_FAILED`]), as
/// [`BackendError::io`].
fn open_failed(err: io::Error, dir: &Path) -> BackendError {
    BackendError::io(format_args!("{LMDB_OPEN_FAILED} {}", dir.display()), err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_of_each_kind() {
        let dir = Path::new("/some/book");
        assert!(matches!(
            from_heed(heed::Error::Mdb(MdbError::MapFull), dir),
            BackendError::Full { .. }
        ));
        for e in [
            MdbError::Corrupted,
            MdbError::PageNotFound,
            MdbError::Invalid,
        ] {
            match from_heed(heed::Error::Mdb(e), dir) {
                BackendError::Corrupted {
                    message,
                    source: Some(source),
                } => {
                    assert!(message.contains("/some/book"), "{message}");
                    assert!(
                        matches!(source.downcast_ref::<heed::Error>(), Some(heed::Error::Mdb(m)) if *m == e),
                        "the heed error is the source: {source:?}"
                    );
                }
                other => panic!("{e:?} mapped to {other:?}"),
            }
        }
        assert!(matches!(
            from_heed(heed::Error::EnvAlreadyOpened, dir),
            BackendError::Locked { message, .. } if message.contains("/some/book")
        ));
        assert!(matches!(
            from_heed(heed::Error::Mdb(MdbError::ReadersFull), dir),
            BackendError::Engine { engine: "lmdb", .. }
        ));
        assert!(matches!(
            from_heed(heed::Error::Io(io::ErrorKind::StorageFull.into()), dir),
            BackendError::Full { .. }
        ));
        assert!(matches!(
            from_heed(heed::Error::Io(io::ErrorKind::PermissionDenied.into()), dir),
            BackendError::Io(_)
        ));
        assert!(matches!(
            from_heed_at_open(heed::Error::Io(io::ErrorKind::WouldBlock.into()), dir),
            BackendError::Locked { .. }
        ));
    }

    /// LMDB's own open failing on I/O says [`LMDB_OPEN_FAILED`]; no step
    /// before it does (they map with `from_io`, or `from_heed` elsewhere), so
    /// the conformance kit's engine case can tell an open that reached LMDB.
    #[test]
    fn only_lmdb_own_open_says_it_could_not_open_the_environment() {
        let dir = Path::new("/some/book");
        let too_long = || io::Error::from_raw_os_error(36);
        for e in [
            from_heed_at_open(heed::Error::Io(too_long()), dir),
            from_heed_at_open(heed::Error::Mdb(MdbError::Other(36)), dir),
        ] {
            assert!(matches!(e, BackendError::Io(_)), "{e:?}");
            let said = e.to_string();
            assert!(
                said.contains(&format!("{LMDB_OPEN_FAILED} /some/book: ")),
                "{said}"
            );
        }
        // The conformance test matches this text.
        assert_eq!(LMDB_OPEN_FAILED, "LMDB could not open the environment at");
        for kind in [
            io::ErrorKind::NotFound,
            io::ErrorKind::InvalidFilename,
            io::ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::StorageFull,
        ] {
            let said = from_io(kind.into(), dir).to_string();
            assert!(!said.contains(LMDB_OPEN_FAILED), "{kind:?}: {said}");
            let said = from_heed(heed::Error::Io(kind.into()), dir).to_string();
            assert!(!said.contains(LMDB_OPEN_FAILED), "{kind:?}: {said}");
        }
        let said = from_heed(heed::Error::Mdb(MdbError::Other(36)), dir).to_string();
        assert!(!said.contains(LMDB_OPEN_FAILED), "{said}");
    }
}
