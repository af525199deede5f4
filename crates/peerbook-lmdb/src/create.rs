//! Creating a new book so that a power cut can never leave a half-made `data.mdb`.
//!
//! LMDB writes the two meta pages of a new file without syncing them, and syncs only
//! at the first commit. A power cut in between can keep a later page and lose the
//! first one: `data.mdb` exists but is "not an LMDB file", and the book would fail to
//! open forever (found by the power-cut test of `crates/peerbook-powerfail`). So a new
//! book is built in a scratch directory (`creating/`), its first commit (the four
//! databases) synced, and only then renamed into place and the directory synced: the
//! book's `data.mdb` is either absent (the next open starts over) or complete.
//!
//! `creating/` is removed only as a creation leaves it (see [`scratch_is_ours`]),
//! file by file, never as a tree: a `creating` of the user's is left as it was.

use std::convert::Infallible;
use std::fs::{self, File};
use std::io;
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions};
use peerbook::backend::{BackendError, Space};

use crate::error::{from_heed, from_heed_at_open, from_io};

/// The scratch directory inside the book's directory.
pub(crate) const CREATING_DIR: &str = "creating";

/// What LMDB makes in the scratch directory: its data file and its lock file.
const SCRATCH_FILES: [&str; 2] = ["data.mdb", "lock.mdb"];

/// Whether `scratch` is what a creation leaves there: a directory (not a
/// symbolic link) holding nothing but LMDB's `data.mdb` and `lock.mdb`, each a
/// plain file (some or none of them: a cut before, during or after LMDB made
/// them). `None` when there is no such entry. Only looked at, nothing opened.
pub(crate) fn scratch_is_ours(scratch: &Path) -> io::Result<Option<bool>> {
    match fs::symlink_metadata(scratch) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(meta) if !meta.is_dir() => return Ok(Some(false)),
        Ok(_) => {}
    }
    for entry in fs::read_dir(scratch)? {
        let entry = entry?;
        let ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| SCRATCH_FILES.contains(&n))
            && entry.file_type()?.is_file();
        if !ours {
            return Ok(Some(false));
        }
    }
    Ok(Some(true))
}

/// Remove the scratch directory a creation left in `dir`: its LMDB files, then
/// the (then empty) directory; never recursively. A `creating` that is not what
/// a creation leaves ([`scratch_is_ours`]) is someone else's and stays: beside
/// a book that is all; without one the book cannot be created there, an
/// [`io::ErrorKind::AlreadyExists`] error.
fn remove_scratch(dir: &Path, book_exists: bool) -> Result<(), BackendError> {
    let scratch = dir.join(CREATING_DIR);
    match scratch_is_ours(&scratch).map_err(|e| from_io(e, dir))? {
        None => Ok(()),
        Some(true) => {
            for name in SCRATCH_FILES {
                match fs::remove_file(scratch.join(name)) {
                    // A path too long for the OS (`ENAMETOOLONG`): LMDB, which
                    // makes its files by that same path, could not make it
                    // either; if it is there anyway, `remove_dir` says so.
                    Err(e)
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::InvalidFilename
                        ) =>
                    {
                        return Err(from_io(e, dir))
                    }
                    _ => {}
                }
            }
            fs::remove_dir(&scratch).map_err(|e| from_io(e, dir))
        }
        Some(false) if book_exists => Ok(()),
        Some(false) => Err(from_io(
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} is not the scratch directory of a creation (a directory of \
                     LMDB's data.mdb and lock.mdb only): peerbook leaves it as it is \
                     and creates no book beside it; move it away or name another \
                     directory",
                    scratch.display()
                ),
            ),
            dir,
        )),
    }
}

/// Makes `dir/data_file` a valid, synced LMDB file holding the four (empty)
/// databases, unless it exists. The caller holds the directory lock.
pub(crate) fn ensure_created(
    dir: &Path,
    data_file: &str,
    map_size: usize,
) -> Result<(), BackendError> {
    let target = dir.join(data_file);
    let scratch = dir.join(CREATING_DIR);
    // Leftovers of a creation interrupted before (or just after) its rename.
    let book_exists = fs::symlink_metadata(&target).is_ok();
    remove_scratch(dir, book_exists)?;
    if book_exists {
        return Ok(());
    }
    fs::create_dir(&scratch).map_err(|e| from_io(e, dir))?;
    {
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder.map_size(map_size).max_dbs(Space::ALL.len() as u32);
        // SAFETY: the flag weakens durability only; we sync explicitly below.
        unsafe {
            builder.flags(EnvFlags::NO_META_SYNC);
        }
        // SAFETY: the scratch directory is ours alone: it was just made inside the
        // book's directory, whose exclusive lock the caller holds.
        let env = unsafe { builder.open(&scratch) }.map_err(|e| from_heed_at_open(e, dir))?;
        let wtxn = env.write_txn().map_err(|e| from_heed_at_open(e, dir))?;
        env.create_databases_and_commit(
            wtxn,
            |opener, wtxn| -> heed::Result<CommitOrAbort<(), Infallible>> {
                for space in Space::ALL {
                    opener.create_database::<Bytes, Bytes>(wtxn, Some(space.name()))?;
                }
                Ok(CommitOrAbort::Commit(()))
            },
        )
        .map_err(|e| from_heed_at_open(e, dir))?;
        // The open is done: a failed sync is not LMDB's open failing.
        env.force_sync().map_err(|e| from_heed(e, dir))?;
        env.prepare_for_closing().wait();
    }
    fs::rename(scratch.join(data_file), &target).map_err(|e| from_io(e, dir))?;
    sync_dir(dir)?;
    // LMDB's lock file is left: removed as leftovers are, never as a tree
    remove_scratch(dir, true)
}

/// Makes the directory's entries durable (a no-op where directories cannot be
/// opened for syncing).
fn sync_dir(dir: &Path) -> Result<(), BackendError> {
    match File::open(dir) {
        Ok(f) => f.sync_all().map_err(|e| from_io(e, dir)),
        Err(_) => Ok(()),
    }
}

/// Which of the files an open may make were in the book's directory before it:
/// LMDB's `data.mdb` and `lock.mdb` and the scratch directory. Noted under the
/// directory lock, before anything is made, so that a failed open removes what it
/// made ([`remove_made`](Self::remove_made)) and nothing that was there.
pub(crate) struct FilesBefore {
    /// `data.mdb` was there (or could not be told apart from there).
    data: bool,
    /// `lock.mdb` was there.
    lock: bool,
    /// `creating` was there.
    scratch: bool,
}

impl FilesBefore {
    /// Look at `dir` (locked by the caller); an entry that cannot be looked at
    /// counts as there, and stays.
    pub(crate) fn note(dir: &Path) -> Self {
        let there = |name: &str| {
            !fs::symlink_metadata(dir.join(name))
                .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        };
        let [data, lock] = SCRATCH_FILES;
        FilesBefore {
            data: there(data),
            lock: there(lock),
            scratch: there(CREATING_DIR),
        }
    }

    /// After a failed open, still holding the directory lock (so no other
    /// peerbook handle has these files open, or can open them before they go):
    /// remove the LMDB files and the scratch directory the open made, never one
    /// that was there. `lock.mdb` goes only with a `data.mdb` this open made too:
    /// beside an existing `data.mdb` (a book restored with `mdb_copy`, which writes
    /// no `lock.mdb`) another LMDB program (`mdb_stat`, a reader of its own) may
    /// have the environment open through the new `lock.mdb`, and LMDB's reader
    /// table breaks if it is unlinked while in use. What cannot be removed stays,
    /// logged: the open's own error is what it returns.
    pub(crate) fn remove_made(&self, dir: &Path) {
        if !self.scratch {
            // only as a creation leaves it (LMDB's two files), never as a tree
            if let Err(e) = remove_scratch(dir, true) {
                tracing::warn!(dir = %dir.display(), error = %e, "peerbook-lmdb: a failed open could not remove the scratch directory it created");
            }
        }
        // `lock.mdb` only with a `data.mdb` this open made (see above)
        let [data, lock] = SCRATCH_FILES;
        let made: &[&str] = match (self.data, self.lock) {
            (false, false) => &[data, lock],
            (false, true) => &[data],
            (true, _) => &[],
        };
        for name in made {
            let file = dir.join(name);
            match fs::remove_file(&file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    tracing::warn!(file = %file.display(), error = %e, "peerbook-lmdb: a failed open could not remove a file it created");
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entries under `dir` (a directory's name ends in `/`), sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.push(format!("{name}/"));
                out.extend(names(&e.path()).into_iter().map(|n| format!("{name}/{n}")));
            } else {
                out.push(name);
            }
        }
        out.sort();
        out
    }

    /// A failed open that made the scratch directory (as a creation leaves it)
    /// and a new book's files removes them all; a `lock.mdb` that was there
    /// before (without a `data.mdb`) stays.
    #[test]
    fn a_failed_open_removes_the_scratch_directory_and_files_it_made() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let before = FilesBefore::note(dir);
        fs::create_dir(dir.join(CREATING_DIR)).unwrap();
        for name in SCRATCH_FILES {
            fs::write(dir.join(CREATING_DIR).join(name), b"lmdb").unwrap();
            fs::write(dir.join(name), b"lmdb").unwrap();
        }
        before.remove_made(dir);
        assert_eq!(names(dir), Vec::<String>::new());

        fs::write(dir.join("lock.mdb"), b"theirs").unwrap();
        let before = FilesBefore::note(dir);
        fs::write(dir.join("data.mdb"), b"lmdb").unwrap();
        before.remove_made(dir);
        assert_eq!(names(dir), ["lock.mdb"]);
    }

    /// What was there before a failed open stays: a scratch directory (left
    /// by an earlier creation), a `data.mdb`, and the `lock.mdb` made beside it.
    #[test]
    fn a_failed_open_keeps_what_was_there() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::create_dir(dir.join(CREATING_DIR)).unwrap();
        fs::write(dir.join(CREATING_DIR).join("data.mdb"), b"leftover").unwrap();
        fs::write(dir.join("data.mdb"), b"book").unwrap();
        let before = FilesBefore::note(dir);
        fs::write(dir.join("lock.mdb"), b"lmdb").unwrap();
        before.remove_made(dir);
        assert_eq!(
            names(dir),
            ["creating/", "creating/data.mdb", "data.mdb", "lock.mdb"]
        );
    }
}
