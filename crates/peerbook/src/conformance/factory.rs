//! [`TempDirFactory`]: the [`Factory`] of every on-disk backend, each backend on a
//! fresh temporary directory that lives as long as the factory.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use tempfile::TempDir;

use super::Factory;
use crate::backend::Backend;

type Open<B> = Box<dyn Fn(&Path) -> B + Send + Sync>;
type PathOf<B> = Box<dyn Fn(&B) -> PathBuf + Send + Sync>;

/// A [`Factory`] over any backend that opens on a directory: `create` opens one in
/// `<fresh temp dir>/book`, `reopen` drops the backend and opens its directory again.
/// The temp dirs are removed when the factory drops.
///
/// ```
/// use peerbook::conformance::{Factory, TempDirFactory};
/// # struct MyBackend(std::path::PathBuf);
/// # fn open_my_backend(p: &std::path::Path) -> MyBackend { MyBackend(p.to_path_buf()) }
/// let factory = TempDirFactory::new(open_my_backend, |b: &MyBackend| b.0.clone());
/// # let _ = factory;
/// ```
pub struct TempDirFactory<B> {
    open: Open<B>,
    path_of: PathOf<B>,
    dirs: Mutex<Vec<TempDir>>,
}

impl<B> TempDirFactory<B> {
    /// `open` opens (or creates) a backend on a directory and panics on failure
    /// (it may also assert what a clean open must report); `path_of` gives the
    /// directory a backend was opened on.
    pub fn new(
        open: impl Fn(&Path) -> B + Send + Sync + 'static,
        path_of: impl Fn(&B) -> PathBuf + Send + Sync + 'static,
    ) -> Self {
        TempDirFactory {
            open: Box::new(open),
            path_of: Box::new(path_of),
            dirs: Mutex::new(Vec::new()),
        }
    }
}

impl<B> std::fmt::Debug for TempDirFactory<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempDirFactory").finish_non_exhaustive()
    }
}

impl<B: Backend + 'static> Factory for TempDirFactory<B> {
    type Backend = B;

    fn create(&self) -> B {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let backend = (self.open)(&dir.path().join("book"));
        self.dirs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(dir);
        backend
    }

    fn reopen(&self, backend: B) -> B {
        let path = (self.path_of)(&backend);
        drop(backend);
        (self.open)(&path)
    }
}
