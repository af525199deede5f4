//! The directories an open (or a command creating a store) has to make, and their
//! removal when it fails: written once for the engines and the CLI, so that a
//! refused or failed open leaves the user's file system as it found it.

use std::io;
use std::path::{Path, PathBuf};

use super::error::io_context as at_path;

/// How many walks of the path [`NewDirs::create_with`] makes in all (so 2
/// restarts) when a directory it was making, or had found, goes missing
/// before it made the next one down (another process's failed open of the
/// same new path removing it again), or what it found there is not a
/// directory by the time it asks (perhaps one removed in between).
const TRIES: usize = 3;

/// The directories an open (or a command creating a store) made on the way to
/// its store, innermost first: those whose creation, by this open, succeeded
/// ([`NewDirs::create`]). A directory that was there before, or that another
/// process made while this one was making the others, is never among them, and
/// neither is anything that is not a directory (a symbolic link to one, a
/// dangling one): a failure removes them again ([`NewDirs::remove`]), and only
/// them.
///
/// The limit: they are noted, and removed, by path (no device and inode
/// compared). Between this open making one and its failure removing them, a
/// program that can write in the parent of one can replace it with a symbolic
/// link to a directory elsewhere: the removal of one noted below it then goes
/// through the link, and removes the directory at that path there if it is
/// empty (never one holding anything, nor a file; on Unix never the link
/// itself, which `remove_dir` refuses). A program with that right can remove
/// such an empty directory of its own anyway; what it gains is the removal of
/// an empty directory in the link's target that it could not remove itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDirs {
    /// Innermost first.
    dirs: Vec<PathBuf>,
}

/// Why one walk of [`NewDirs::create_with`] stopped.
enum Stop {
    /// The error, final.
    Failed(io::Error),
    /// A directory went missing on the way down (`create_dir` said
    /// [`io::ErrorKind::NotFound`] after its parent was there): walk again.
    Gone(io::Error),
    /// What `create_dir` said was there (`AlreadyExists`) is not a directory
    /// by `is_dir`, the error: final unless walks are left, as what was there
    /// may have been a directory that went missing in between (`is_dir` says
    /// `Ok(false)` for nothing there as for a file): walk again.
    NotDir(io::Error),
}

/// Whether `create_dir` failed with `e` because the parent is not a directory
/// there: missing ([`io::ErrorKind::NotFound`]), or something else
/// ([`io::ErrorKind::NotADirectory`], a file): the walk goes up to name it.
fn is_missing_parent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

impl NewDirs {
    /// Make `dir` and its missing ancestors on the real file system, noting
    /// those this call made: [`create_with`](Self::create_with) over
    /// [`std::fs::create_dir`], a directory (through symbolic links) told by
    /// [`std::fs::metadata`] (nothing there, or a dangling link: not one).
    pub fn create(dir: &Path) -> Result<NewDirs, (NewDirs, io::Error)> {
        Self::create_with(dir, |d| std::fs::create_dir(d), Self::is_dir)
    }

    /// Make `dir` and its missing ancestors one level at a time with
    /// `create_dir` (which must make one directory, its parent existing, and
    /// fail with [`io::ErrorKind::AlreadyExists`] when anything is there, or
    /// [`io::ErrorKind::NotFound`] when its parent is missing, or
    /// [`io::ErrorKind::NotADirectory`] when its parent is not a directory,
    /// which the walk then goes up to name), outermost first,
    /// as `create_dir_all` does, and note exactly those whose `create_dir`
    /// succeeded. `is_dir` tells whether a path that is there is a directory
    /// (through symbolic links; `Ok(false)` for a dangling one), or fails:
    /// one that is, found there (before or made by another process meanwhile),
    /// is walked through and never noted; one that is not (a file, a dangling
    /// symbolic link) is the error, naming it (of kind
    /// [`io::ErrorKind::AlreadyExists`] when it is `dir` itself,
    /// [`io::ErrorKind::NotADirectory`] when it is above it), as is a failure
    /// of `is_dir` (its own kind, naming the path) and any other error of
    /// `create_dir`. The empty path (the current directory) is taken as
    /// there. Through a backend's own file system layer, for fault injection.
    ///
    /// A directory that goes missing on the way down (`create_dir` of the
    /// next one says [`io::ErrorKind::NotFound`]: another process removed it,
    /// such as the undo of its own failed open of the same new path) starts the
    /// walk again from `dir`, up to 3 walks in all; then that
    /// [`io::ErrorKind::NotFound`] is the error. So does what `create_dir`
    /// found there and `is_dir` then says is not a directory (it may have been
    /// one, removed in between: `is_dir` says `Ok(false)` for nothing there),
    /// the error only when it still is not on the last walk. A directory
    /// noted as made by an earlier walk that went missing since is no longer
    /// noted, even if made again (by another process) meanwhile.
    ///
    /// `Ok`: `dir` is a directory, with the ones made noted. `Err`: the error,
    /// with those made before it, which the caller removes again
    /// ([`undo_failed_open`](Self::undo_failed_open)).
    pub fn create_with(
        dir: &Path,
        mut create_dir: impl FnMut(&Path) -> io::Result<()>,
        mut is_dir: impl FnMut(&Path) -> io::Result<bool>,
    ) -> Result<NewDirs, (NewDirs, io::Error)> {
        // Outermost first, while made.
        let mut made: Vec<PathBuf> = Vec::new();
        let mut walks = 0;
        let result = loop {
            walks += 1;
            match Self::walk(dir, &mut made, &mut create_dir, &mut is_dir) {
                Ok(()) => break Ok(()),
                Err(Stop::Gone(_) | Stop::NotDir(_)) if walks < TRIES => {}
                Err(Stop::NotDir(e)) => break Err(e),
                Err(Stop::Gone(e)) => {
                    break Err(at_path(
                        io::ErrorKind::NotFound,
                        format!(
                            "a directory on the way to {} went missing while it was made \
                             ({TRIES} tries)",
                            dir.display()
                        ),
                        e,
                    ))
                }
                Err(Stop::Failed(e)) => break Err(e),
            }
        };
        made.reverse();
        let made = NewDirs { dirs: made };
        match result {
            Ok(()) => Ok(made),
            Err(e) => Err((made, e)),
        }
    }

    /// One walk of [`create_with`](Self::create_with): up from `dir` while the
    /// parent is missing, then down again, noting in `made` (outermost first)
    /// each directory `create_dir` made, once.
    fn walk(
        dir: &Path,
        made: &mut Vec<PathBuf>,
        create_dir: &mut impl FnMut(&Path) -> io::Result<()>,
        is_dir: &mut impl FnMut(&Path) -> io::Result<bool>,
    ) -> Result<(), Stop> {
        let note = |made: &mut Vec<PathBuf>, at: &Path| {
            if !made.iter().any(|d| d == at) {
                made.push(at.to_path_buf());
            }
        };
        // What is there at `at` (`create_dir` said so with `e`): walked through
        // when a directory, else the error.
        let mut found = |at: &Path, e: io::Error| -> Result<(), Stop> {
            match is_dir(at) {
                Ok(true) => Ok(()),
                Ok(false) => Err(Stop::NotDir(at_path(
                    if at == dir {
                        io::ErrorKind::AlreadyExists
                    } else {
                        io::ErrorKind::NotADirectory
                    },
                    format!(
                        "{} is there and is not a directory (a file, or a symbolic link to none)",
                        at.display()
                    ),
                    e,
                ))),
                Err(e) => Err(Stop::Failed(at_path(
                    e.kind(),
                    format!("cannot tell whether {} is a directory", at.display()),
                    e,
                ))),
            }
        };
        // Up from `dir` while its parent is missing: those to make, innermost first.
        let mut todo: Vec<&Path> = Vec::new();
        let mut at = dir;
        loop {
            if at.as_os_str().is_empty() {
                break;
            }
            match create_dir(at) {
                Ok(()) => {
                    note(made, at);
                    break;
                }
                Err(e) if is_missing_parent(&e) => {
                    // Not there (its parent is missing, or is not a directory):
                    // one made by an earlier walk is gone, no longer to remove.
                    made.retain(|d| d != at);
                    match at.parent() {
                        Some(parent) => {
                            todo.push(at);
                            at = parent;
                        }
                        None => return Err(Stop::Failed(e)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if !todo.is_empty() {
                        // Missing when its child was asked for, there now:
                        // another process made it, even if an earlier walk
                        // of this one had made it too (gone since). Never
                        // this one's to remove, nor anything under it.
                        made.retain(|d| !d.starts_with(at));
                    }
                    found(at, e)?;
                    break;
                }
                Err(e) => return Err(Stop::Failed(e)),
            }
        }
        // Then down again, outermost first. A parent this walk made or found
        // there, missing now, went missing meanwhile; the current directory
        // (the empty path, never asked for) missing is the error.
        let mut parent_seen = !at.as_os_str().is_empty();
        while let Some(at) = todo.pop() {
            match create_dir(at) {
                Ok(()) => note(made, at),
                Err(e) if is_missing_parent(&e) && parent_seen => {
                    // Its parent went missing (or is no longer a directory):
                    // if this one made it, what is there now, if anything, is
                    // another's.
                    if let Some(parent) = at.parent() {
                        made.retain(|d| !d.starts_with(parent));
                    }
                    return Err(Stop::Gone(e));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => found(at, e)?,
                Err(e) => return Err(Stop::Failed(e)),
            }
            parent_seen = true;
        }
        Ok(())
    }

    /// Whether `path` is a directory on the real file system, through symbolic
    /// links: a dangling link, or nothing there, is not (`Ok(false)`); any
    /// other failure to tell is the error (a loop of links, a permission
    /// denied). What [`create`](Self::create) walks through.
    pub fn is_dir(path: &Path) -> io::Result<bool> {
        match std::fs::metadata(path) {
            Ok(meta) => Ok(meta.is_dir()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The directories, innermost first.
    pub fn paths(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether `dir` is one of them (compared as given, not canonicalized).
    pub fn contains(&self, dir: &Path) -> bool {
        self.dirs.iter().any(|d| d == dir)
    }

    /// Remove them with [`std::fs::remove_dir`]: innermost first, each only if
    /// empty, never recursively. See [`remove_with`](Self::remove_with).
    pub fn remove(&self) -> Result<(), (PathBuf, io::Error)> {
        self.remove_with(|d| std::fs::remove_dir(d))
    }

    /// Remove them with `remove_dir` (which must remove an empty directory only),
    /// innermost first: only directories this open made itself
    /// ([`create_with`](Self::create_with)), never one that was there, nor a
    /// symbolic link. One already gone ([`io::ErrorKind::NotFound`]) or on a
    /// file system that cannot remove directories ([`io::ErrorKind::Unsupported`])
    /// is skipped. The first that cannot be removed ends the walk, and is
    /// returned with its error: one not empty ([`io::ErrorKind::DirectoryNotEmpty`])
    /// holds what the failed open wrote, or what another program put there
    /// meanwhile (a directory of its own too), and stays with those above it.
    /// The caller reports it (or not); its own error is what it returns.
    pub fn remove_with(
        &self,
        mut remove_dir: impl FnMut(&Path) -> io::Result<()>,
    ) -> Result<(), (PathBuf, io::Error)> {
        for d in &self.dirs {
            match remove_dir(d) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::Unsupported
                    ) => {}
                Err(e) => return Err((d.clone(), e)),
            }
        }
        Ok(())
    }

    /// The directories to sync for the entries of a store at `dir` to be
    /// durable: `dir`'s parent (where its entry sits: made by this open, by the
    /// caller, or by an earlier open whose sync a crash or a failure cut short),
    /// then the parent of each directory made above it, innermost first, each
    /// once; a relative path's top level sits in `.`.
    ///
    /// ```
    /// use std::path::Path;
    /// use peerbook::backend::NewDirs;
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = tmp.path().join("a").join("book");
    /// let made = NewDirs::create(&dir).unwrap();
    /// assert_eq!(made.parents_to_sync(&dir), [tmp.path().join("a").as_path(), tmp.path()]);
    /// let again = NewDirs::create(&dir).unwrap();
    /// assert_eq!(again.parents_to_sync(&dir), [tmp.path().join("a").as_path()]);
    /// assert_eq!(NewDirs::default().parents_to_sync(Path::new("book")), [Path::new(".")]);
    /// ```
    pub fn parents_to_sync<'a>(&'a self, dir: &'a Path) -> Vec<&'a Path> {
        let mut parents: Vec<&Path> = Vec::new();
        for made in std::iter::once(dir).chain(self.dirs.iter().map(PathBuf::as_path)) {
            let parent = match made.parent() {
                Some(p) if p.as_os_str().is_empty() => Path::new("."),
                Some(p) => p,
                None => continue, // a root
            };
            if !parents.contains(&parent) {
                parents.push(parent);
            }
        }
        parents
    }

    /// Sync [`parents_to_sync`](Self::parents_to_sync) with `sync_dir` (a
    /// backend's file system layer, for fault injection), so that a store's
    /// directories survive a power cut (a directory with no change to sync
    /// costs little). One that fails is logged (paths only) and the rest still
    /// synced: some file systems refuse to sync directories, which costs the
    /// durability of a brand-new store only. `engine` names the backend in the
    /// log line.
    pub fn sync_parents_with(
        &self,
        dir: &Path,
        engine: &str,
        mut sync_dir: impl FnMut(&Path) -> io::Result<()>,
    ) {
        for parent in self.parents_to_sync(dir) {
            if let Err(e) = sync_dir(parent) {
                tracing::warn!(
                    engine,
                    dir = %parent.display(),
                    error = %e,
                    "could not sync the directory holding a store's directory"
                );
            }
        }
    }

    /// [`sync_parents_with`](Self::sync_parents_with) on the real file system:
    /// each directory opened and synced (`fsync`). Off Unix, where a directory
    /// cannot be opened as a file, there is nothing to do.
    pub fn sync_parents(&self, dir: &Path, engine: &str) {
        self.sync_parents_with(dir, engine, |d| {
            if cfg!(unix) {
                std::fs::File::open(d)?.sync_all()
            } else {
                Ok(())
            }
        });
    }

    /// After a failed open: [`remove`](Self::remove) them, and log (paths only)
    /// one that could not be removed for another reason than holding something
    /// (one not empty keeps what the open wrote, or what another program put
    /// there meanwhile). `engine` names the backend in the log line. The open's
    /// own error is what the caller returns. See
    /// [`undo_failed_open_with`](Self::undo_failed_open_with).
    pub fn undo_failed_open(&self, engine: &str) {
        self.undo_failed_open_with(engine, |d| std::fs::remove_dir(d));
    }

    /// [`undo_failed_open`](Self::undo_failed_open) through a backend's own
    /// `remove_dir` (its file system layer, for fault injection).
    pub fn undo_failed_open_with(
        &self,
        engine: &str,
        remove_dir: impl FnMut(&Path) -> io::Result<()>,
    ) {
        if let Err((d, e)) = self.remove_with(remove_dir) {
            if e.kind() != io::ErrorKind::DirectoryNotEmpty {
                tracing::warn!(
                    engine,
                    dir = %d.display(),
                    error = %e,
                    "a failed open could not remove the directory it created"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
