//! The store's one error type.
//!
//! Every failure of a [`PeerBook`](crate::PeerBook) operation is an [`Error`]: typed,
//! with a message that names what went wrong and where, and never a secret. An
//! operation that returns an error has changed nothing.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::backend::{BackendError, ErrorSource};

/// A shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which limit a store would have exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    /// `max_peers`: the number of peers in the book.
    Peers {
        /// The configured limit.
        limit: u64,
    },
    /// `max_bytes`: the sum of encoded record sizes.
    Bytes {
        /// The configured limit.
        limit: u64,
        /// The size the write would have reached.
        needed: u64,
    },
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quota::Peers { limit } => write!(f, "the book already holds max_peers = {limit} peers"),
            Quota::Bytes { limit, needed } => {
                write!(
                    f,
                    "records would take {needed} bytes, over max_bytes = {limit}"
                )
            }
        }
    }
}

/// Everything that can go wrong in peerbook.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An input broke a rule; `field` names the input, `rule` says what is allowed.
    #[error("invalid {field}: {rule}")]
    InvalidInput {
        /// The field (or argument) at fault, e.g. `"peer_id"` or `"ice_servers[1].urls[0]"`.
        field: String,
        /// The rule it broke, e.g. `"at most 128 bytes"`.
        rule: String,
    },
    /// No peer with this id is in the book.
    #[error("peer not found: {peer_id}")]
    NotFound {
        /// The id asked for (validated, printable ASCII).
        peer_id: String,
    },
    /// A store or update would change the public key of a known peer: a security
    /// event, refused unless asked for explicitly with
    /// [`PeerBook::replace_peer`](crate::PeerBook::replace_peer). Nothing changed.
    #[error("peer {peer_id} is known with another public key; use replace_peer to replace it")]
    PublicKeyChanged {
        /// The peer whose stored key differs (validated, printable ASCII).
        peer_id: String,
    },
    /// Storing would exceed a limit of the book and eviction is off.
    #[error("quota exceeded: {0}; remove peers (cleanup_lru) or enable eviction")]
    QuotaExceeded(Quota),
    /// Stored data failed to decode or check; `what` failed at `location`.
    #[error("corrupted {what} at {location}: {detail}")]
    Corrupted {
        /// What kind of data (e.g. `"peer record"`, `"meta counters"`).
        what: &'static str,
        /// Where (a peer id, a key, a space).
        location: String,
        /// Why it was rejected.
        detail: String,
    },
    /// The master key does not open this book's data.
    #[error("wrong key: the master key does not open this book's sealed data")]
    WrongKey,
    /// The key file can be read by group or others, or is not a regular file.
    #[error("insecure key file {path}: {reason}")]
    InsecureKeyFile {
        /// The key file's path.
        path: PathBuf,
        /// What is wrong, with a hint (e.g. "mode 0644 is group/other readable; chmod 600").
        reason: String,
    },
    /// The store was written by a newer peerbook.
    #[error("schema version {found} is newer than this peerbook supports ({supported}); upgrade peerbook")]
    SchemaTooNew {
        /// The version found in the store.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// Another handle holds the store: another open of the same files (this
    /// process or another), or a live book on the same backend instance.
    #[error("store is locked: {message}")]
    Locked {
        /// Who holds the store (which files, or which backend instance).
        message: String,
        /// The engine's error that reported the conflict (e.g. the `io::Error` of a
        /// refused file lock, or RocksDB's own), kept from the backend's
        /// [`BackendError::Locked`]; `None` when the book itself refused (a live book
        /// already holds this backend instance).
        #[source]
        source: Option<ErrorSource>,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Backend(BackendError),
    /// An earlier write of this book failed with an unknown outcome (it may or may
    /// not have landed): the book refuses every write until it is closed and
    /// reopened, which reads the state the storage really holds.
    #[error("an earlier write failed and may or may not have landed; close and reopen the book")]
    NeedsReopen,
    /// An I/O error outside the backend (key files).
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        match e {
            // The message (which files are held) is the whole story; the engine's
            // error stays reachable as the source.
            BackendError::Locked { message, source } => Error::Locked { message, source },
            // The mark matters to the store (it does not poison the book, see
            // `PeerBook::needs_reopen`); callers match what failed, as before.
            BackendError::NotApplied { source } => Error::from(*source),
            other => Error::Backend(other),
        }
    }
}

impl Error {
    pub(crate) fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// A short, stable name of the variant (`"invalid_input"`, `"not_found"`, ...),
    /// handy to compare errors across backends and in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "invalid_input",
            Error::NotFound { .. } => "not_found",
            Error::PublicKeyChanged { .. } => "public_key_changed",
            Error::QuotaExceeded(_) => "quota_exceeded",
            Error::Corrupted { .. } => "corrupted",
            Error::WrongKey => "wrong_key",
            Error::InsecureKeyFile { .. } => "insecure_key_file",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::Locked { .. } => "locked",
            Error::Backend(_) => "backend",
            Error::NeedsReopen => "needs_reopen",
            Error::Io { .. } => "io",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::backend::try_lock_file;

    /// A real refused file lock, through the backend's constructor, keeps the OS
    /// error as the source of `Error::Locked`.
    #[test]
    fn locked_keeps_the_engines_error_as_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let _held = try_lock_file(&path).unwrap();
        let refused = try_lock_file(&path).unwrap_err();
        let e = Error::from(BackendError::lock("LOCK is held", &path, refused));
        let Error::Locked {
            message,
            source: Some(source),
        } = &e
        else {
            panic!("a refused lock must be Locked with a source: {e:?}");
        };
        assert_eq!(message, "LOCK is held");
        assert_eq!(
            source.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::WouldBlock)
        );
        let chained = e.source().expect("the source is reachable");
        assert_eq!(
            chained.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::WouldBlock)
        );
        assert_eq!(e.kind(), "locked");
    }

    /// Other backend errors stay `Backend`, with their own source.
    #[test]
    fn other_backend_errors_stay_backend() {
        let e = Error::from(BackendError::full("no room"));
        assert!(
            matches!(e, Error::Backend(BackendError::Full { .. })),
            "{e:?}"
        );
    }
}
