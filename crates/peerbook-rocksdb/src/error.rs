//! Translation of RocksDB's errors into [`BackendError`].

use std::io;
use std::path::Path;

use peerbook::backend::BackendError;
use rocksdb::ErrorKind;

use crate::ENGINE;

/// Map an error of any RocksDB call.
///
/// - `Corruption` -> [`BackendError::Corrupted`]
/// - an I/O error meaning "no space left" -> [`BackendError::Full`]
/// - any other `IO error` -> [`BackendError::Io`] (kind `Other`, RocksDB's message)
/// - everything else -> [`BackendError::Engine`] with engine `"rocksdb"`
pub(crate) fn map_err(err: rocksdb::Error) -> BackendError {
    match classify(err.kind(), err.to_string()) {
        BackendError::Io(e) => BackendError::Io(io::Error::new(e.kind(), err)),
        other => other.with_source(err),
    }
}

/// Map an error of `DB::open`: as [`map_err`], except that a failure to take the
/// `LOCK` file (another handle has the database open, in this process or another)
/// becomes [`BackendError::Locked`] naming the database directory.
pub(crate) fn map_open_err(err: rocksdb::Error, path: &Path) -> BackendError {
    let kind = err.kind();
    let message = err.to_string();
    if is_lock_error(&kind, &message) {
        return BackendError::locked(format!(
            "RocksDB database {} is already open ({message})",
            path.display()
        ))
        .with_source(err);
    }
    match classify(kind, message) {
        BackendError::Io(e) => BackendError::io(
            format_args!("opening RocksDB database {}", path.display()),
            io::Error::new(e.kind(), err),
        ),
        other => other.with_source(err),
    }
}

fn classify(kind: ErrorKind, message: String) -> BackendError {
    if is_no_space(&message) {
        return BackendError::full(message);
    }
    match kind {
        ErrorKind::Corruption => BackendError::corrupted(message),
        ErrorKind::IOError => BackendError::Io(io::Error::other(message)),
        _ => BackendError::engine(ENGINE, message),
    }
}

/// RocksDB reports a held lock from `PosixFileSystem::LockFile` as an `IO error`:
/// "While lock file: <dir>/LOCK: Resource temporarily unavailable" when another
/// process holds it, "lock hold by current process ... <dir>/LOCK: ..." when this
/// process does.
fn is_lock_error(kind: &ErrorKind, message: &str) -> bool {
    *kind == ErrorKind::IOError
        && (message.contains("While lock file") || message.contains("lock hold by current process"))
}

/// RocksDB's `NoSpace` status and the OS's `ENOSPC` both read "No space left on
/// device"; RocksDB also says "no space" in some background-error messages.
fn is_no_space(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    lower.contains("no space left") || lower.contains("nospace")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(kind: ErrorKind, message: &str) -> BackendError {
        classify(kind, message.to_string())
    }

    #[test]
    fn corruption_io_space_and_other_kinds() {
        assert!(matches!(
            err_of(ErrorKind::Corruption, "Corruption: bad block"),
            BackendError::Corrupted { .. }
        ));
        assert!(matches!(
            err_of(ErrorKind::IOError, "IO error: No space left on device"),
            BackendError::Full { .. }
        ));
        assert!(matches!(
            err_of(ErrorKind::IOError, "IO error: Permission denied"),
            BackendError::Io(_)
        ));
        assert!(matches!(
            err_of(ErrorKind::Busy, "Resource busy: "),
            BackendError::Engine {
                engine: "rocksdb",
                ..
            }
        ));
    }

    #[test]
    fn lock_messages_are_recognised() {
        assert!(is_lock_error(
            &ErrorKind::IOError,
            "IO error: While lock file: /tmp/x/LOCK: Resource temporarily unavailable"
        ));
        assert!(is_lock_error(
            &ErrorKind::IOError,
            "IO error: lock hold by current process, acquire time 1 acquiring thread 2: /tmp/x/LOCK: No locks available"
        ));
        assert!(!is_lock_error(
            &ErrorKind::IOError,
            "IO error: Permission denied"
        ));
    }
}
