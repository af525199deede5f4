//! [`BackendError`], the one error type of every backend, with the constructors the
//! engines share: each keeps the engine's own error as the `source`, and an I/O
//! error is mapped once ([`BackendError::io`]: a full disk or quota is
//! [`BackendError::Full`], the rest [`BackendError::Io`] with what was being done).

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// The engine's own error kept inside a [`BackendError`], reachable through
/// [`std::error::Error::source`] (and downcastable to the engine's type).
pub type ErrorSource = Box<dyn StdError + Send + Sync + 'static>;

/// The one error type of every backend.
///
/// Each variant but [`Io`](BackendError::Io) carries a `message` saying what failed
/// (it already quotes the engine's error text, so printing the message alone loses
/// nothing) and, when there was one, the engine's error as `source`. Match on the
/// variant, never on the text:
///
/// ```
/// use peerbook::backend::BackendError;
/// let e = BackendError::io("append to log.1", std::io::ErrorKind::StorageFull.into());
/// assert!(matches!(e, BackendError::Full { source: Some(_), .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// An operating-system I/O error.
    #[error("backend I/O error: {0}")]
    Io(#[from] io::Error),
    /// The engine has no room left (map size limit, disk full, configured cap).
    #[error("backend is full: {message}")]
    Full {
        /// What could not be written, and why.
        message: String,
        /// The engine's error, if one caused it.
        #[source]
        source: Option<ErrorSource>,
    },
    /// The engine found its own files damaged.
    #[error("backend data corrupted: {message}")]
    Corrupted {
        /// Which file, where, and what is wrong.
        message: String,
        /// The engine's (or codec's) error, if one caused it.
        #[source]
        source: Option<ErrorSource>,
    },
    /// Another handle (this process or another) holds the lock on the files.
    #[error("backend is locked by another open handle: {message}")]
    Locked {
        /// Which files are held.
        message: String,
        /// The engine's error, if one reported the conflict.
        #[source]
        source: Option<ErrorSource>,
    },
    /// Any other engine error, with the engine's name.
    #[error("{engine} error: {message}")]
    Engine {
        /// Engine name, as [`Backend::engine_name`](super::Backend::engine_name).
        engine: &'static str,
        /// The engine's message.
        message: String,
        /// The engine's error, if there was one.
        #[source]
        source: Option<ErrorSource>,
    },
    /// A `write`, `flush` or `clear` refused with `source` before it changed
    /// anything: the backend KNOWS that nothing of the call was applied, now or on
    /// reopen (e.g. LMDB aborting a transaction that did not fit its map). The store
    /// does not poison the book on it (see the [`Backend`](super#failures)
    /// contract). Displays and chains as `source` itself; [`inner`](Self::inner)
    /// reaches it. Build it with [`not_applied`](Self::not_applied).
    #[error(transparent)]
    NotApplied {
        /// Why the call was refused (never itself `NotApplied`).
        source: Box<BackendError>,
    },
}

impl BackendError {
    /// [`BackendError::Full`] without a source.
    pub fn full(message: impl Into<String>) -> Self {
        BackendError::Full {
            message: message.into(),
            source: None,
        }
    }

    /// [`BackendError::Corrupted`] without a source.
    pub fn corrupted(message: impl Into<String>) -> Self {
        BackendError::Corrupted {
            message: message.into(),
            source: None,
        }
    }

    /// [`BackendError::Locked`] without a source.
    pub fn locked(message: impl Into<String>) -> Self {
        BackendError::Locked {
            message: message.into(),
            source: None,
        }
    }

    /// [`BackendError::Engine`] of `engine` without a source.
    pub fn engine(engine: &'static str, message: impl Into<String>) -> Self {
        BackendError::Engine {
            engine,
            message: message.into(),
            source: None,
        }
    }

    /// This error marked as having applied nothing ([`NotApplied`](Self::NotApplied)).
    /// Return it only when nothing of the call can have reached the engine's
    /// files; marking twice changes nothing.
    ///
    /// ```
    /// use peerbook::backend::BackendError;
    /// let e = BackendError::full("the map is full").not_applied();
    /// assert!(e.is_not_applied());
    /// assert!(matches!(e.inner(), BackendError::Full { .. }));
    /// assert_eq!(e.to_string(), "backend is full: the map is full");
    /// ```
    pub fn not_applied(self) -> Self {
        match self {
            marked @ BackendError::NotApplied { .. } => marked,
            other => BackendError::NotApplied {
                source: Box::new(other),
            },
        }
    }

    /// Whether this error is marked [`NotApplied`](Self::NotApplied).
    pub fn is_not_applied(&self) -> bool {
        matches!(self, BackendError::NotApplied { .. })
    }

    /// The error itself, seen through a [`NotApplied`](Self::NotApplied) mark: match
    /// on this to learn what failed whether or not the call applied anything.
    pub fn inner(&self) -> &BackendError {
        match self {
            BackendError::NotApplied { source } => source.inner(),
            other => other,
        }
    }

    /// The error without its [`NotApplied`](Self::NotApplied) mark, if any.
    pub fn into_inner(self) -> BackendError {
        match self {
            BackendError::NotApplied { source } => source.into_inner(),
            other => other,
        }
    }

    /// The same error with `source` as its cause. An [`Io`](BackendError::Io)
    /// error keeps its own (an `io::Error` is its own source); a
    /// [`NotApplied`](BackendError::NotApplied) one gives it to the error it marks.
    pub fn with_source(mut self, cause: impl Into<ErrorSource>) -> Self {
        match &mut self {
            BackendError::Io(_) => {}
            BackendError::Full { source, .. }
            | BackendError::Corrupted { source, .. }
            | BackendError::Locked { source, .. }
            | BackendError::Engine { source, .. } => *source = Some(cause.into()),
            BackendError::NotApplied { .. } => {
                return self.into_inner().with_source(cause).not_applied()
            }
        }
        self
    }

    /// An I/O error met while doing `context` (e.g. `"append to log.3"`): a full
    /// disk or an exceeded quota is [`Full`](BackendError::Full), anything else
    /// [`Io`](BackendError::Io) of the same kind. Either way the message reads
    /// `"{context}: {error}"` and `error` is kept as the source.
    pub fn io(context: impl fmt::Display, error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                BackendError::full(format!("{context}: {error}")).with_source(error)
            }
            kind => BackendError::Io(io_context(kind, context.to_string(), error)),
        }
    }

    /// The error of taking an exclusive lock on `path` (see
    /// [`try_lock_file`](super::try_lock_file)): contention
    /// ([`io::ErrorKind::WouldBlock`]) is [`Locked`](BackendError::Locked) with
    /// `held` as its message; any other failure is [`BackendError::io`].
    pub fn lock(held: impl Into<String>, path: &std::path::Path, error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::WouldBlock {
            BackendError::locked(held).with_source(error)
        } else {
            BackendError::io(format_args!("lock {}", path.display()), error)
        }
    }

    /// The error of taking the lock file `lock` of a store another handle may hold
    /// open: [`lock`](Self::lock), with the message every backend gives for that,
    /// `store` naming the store.
    ///
    /// ```
    /// use std::io;
    /// use std::path::Path;
    /// use peerbook::BackendError;
    /// let held = io::Error::from(io::ErrorKind::WouldBlock);
    /// let e = BackendError::already_open("the book at /b", Path::new("/b/LOCK"), held);
    /// assert!(matches!(e, BackendError::Locked { .. }));
    /// assert!(e.to_string().contains("the book at /b is already open (its lock file /b/LOCK"));
    /// ```
    pub fn already_open(
        store: impl std::fmt::Display,
        lock: &std::path::Path,
        error: io::Error,
    ) -> Self {
        Self::lock(
            format!(
                "{store} is already open (its lock file {} is held by another handle, in \
                 this process or another)",
                lock.display()
            ),
            lock,
            error,
        )
    }
}

/// An `io::Error` of kind `kind` reading `"{context}: {source}"`, `source` kept
/// as its source.
pub(super) fn io_context(kind: io::ErrorKind, context: String, source: io::Error) -> io::Error {
    io::Error::new(kind, IoContext { context, source })
}

/// An `io::Error` with what was being done; the original error is its source.
#[derive(Debug)]
struct IoContext {
    context: String,
    source: io::Error,
}

impl fmt::Display for IoContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl StdError for IoContext {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_maps_full_disks_and_keeps_the_cause() {
        for kind in [io::ErrorKind::StorageFull, io::ErrorKind::QuotaExceeded] {
            let e = BackendError::io("append to log.1", kind.into());
            let BackendError::Full { message, source } = &e else {
                panic!("{kind:?} mapped to {e:?}");
            };
            assert!(message.starts_with("append to log.1: "), "{message}");
            let cause = source.as_ref().expect("the io::Error is the source");
            assert_eq!(
                cause.downcast_ref::<io::Error>().map(io::Error::kind),
                Some(kind)
            );
        }
        let e = BackendError::io("sync log.2", io::ErrorKind::PermissionDenied.into());
        let BackendError::Io(inner) = &e else {
            panic!("PermissionDenied mapped to {e:?}");
        };
        assert_eq!(inner.kind(), io::ErrorKind::PermissionDenied);
        assert!(inner.to_string().starts_with("sync log.2: "), "{inner}");
        let cause = inner.get_ref().and_then(|c| c.source()).expect("a source");
        assert_eq!(
            cause.downcast_ref::<io::Error>().map(io::Error::kind),
            Some(io::ErrorKind::PermissionDenied)
        );
    }

    #[test]
    fn not_applied_marks_once_and_shows_its_cause() {
        let e = BackendError::engine("test", "refused")
            .with_source(io::Error::other("why"))
            .not_applied()
            .not_applied();
        let BackendError::NotApplied { source } = &e else {
            panic!("{e:?}");
        };
        assert!(!source.is_not_applied(), "marked once: {e:?}");
        assert_eq!(e.to_string(), "test error: refused");
        assert_eq!(
            StdError::source(&e).map(|s| s.to_string()).as_deref(),
            Some("why")
        );
        assert!(matches!(e.inner(), BackendError::Engine { .. }));
        let e = e.with_source(io::Error::other("later"));
        assert_eq!(
            StdError::source(&e).map(|s| s.to_string()).as_deref(),
            Some("later")
        );
        assert!(matches!(e.into_inner(), BackendError::Engine { .. }));
        assert!(!BackendError::full("x").is_not_applied());
    }

    #[test]
    fn with_source_reaches_error_source() {
        let e = BackendError::engine("test", "refused").with_source(io::Error::other("why"));
        assert_eq!(e.to_string(), "test error: refused");
        assert_eq!(
            StdError::source(&e).map(|s| s.to_string()).as_deref(),
            Some("why")
        );
        let e = BackendError::lock(
            "held",
            std::path::Path::new("/x/LOCK"),
            io::ErrorKind::WouldBlock.into(),
        );
        assert!(matches!(
            e,
            BackendError::Locked {
                source: Some(_),
                ..
            }
        ));
        let e = BackendError::lock(
            "held",
            std::path::Path::new("/x/LOCK"),
            io::ErrorKind::NotFound.into(),
        );
        assert!(matches!(&e, BackendError::Io(i) if i.kind() == io::ErrorKind::NotFound));
    }
}
