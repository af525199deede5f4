//! What a directory holds to one storage engine, judged before anything opens it:
//! the words every backend crate answers in.
//!
//! The core knows no engine. Each backend crate judges a directory by its own
//! rules (which names it makes, which mark a store, what a store's files must
//! hold) and says so as a [`DirVerdict`]: `FileBackend::probe_dir`,
//! `LmdbBackend::probe_dir`, `RocksBackend::probe_dir`. A registry of engines
//! (`peerbook-engines`' `Engine::probe`) lists the directory once
//! ([`DirEntries::read`]), asks the engine's backend for its verdict on that
//! listing, and adds what only a registry knows: which other engine's store the
//! entries mark.
//!
//! A probe creates and removes nothing, and writes one file only: LMDB's read-only
//! open writes the reader table and header of an existing `lock.mdb`, as any LMDB
//! reader does (a backend that must read a file's bytes, or open a database
//! read-only, says so on its `probe_dir`).
//!
//! ```
//! use peerbook::probe::{DirEntries, DirVerdict};
//!
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path();
//! // An engine whose files are `LOCK` and `data`, its store marked by `data`.
//! let judge = |dir: &std::path::Path| -> std::io::Result<DirVerdict> {
//!     let Some(entries) = DirEntries::read(dir)? else {
//!         return Ok(DirVerdict::Nothing);
//!     };
//!     let unexpected = entries.unowned(|name| Ok(name == "LOCK" || name == "data"))?;
//!     let marked = entries.utf8().any(|name| name == "data");
//!     DirVerdict::judge(&entries, unexpected, marked, || Ok(true))
//! };
//! assert_eq!(judge(dir)?, DirVerdict::Nothing);
//! std::fs::write(dir.join("LOCK"), b"")?;
//! assert_eq!(judge(dir)?, DirVerdict::Leftovers);
//! std::fs::write(dir.join("data"), b"")?;
//! assert_eq!(judge(dir)?, DirVerdict::Store);
//! std::fs::write(dir.join("notes.txt"), b"")?;
//! assert!(matches!(
//!     judge(dir)?,
//!     DirVerdict::Foreign { unexpected, marked: true } if unexpected == ["notes.txt"]
//! ));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::ffi::OsString;
use std::io;
use std::path::Path;

/// The directory fsck makes at the root of an ext2/3/4 file system: a store
/// directory that is a volume of its own has one. [`DirEntries::read`] skips it.
pub const LOST_AND_FOUND: &str = "lost+found";

/// One engine's verdict on a directory: see the [module docs](self).
///
/// `non_exhaustive`: a later kind is no breaking change. A `match` outside this
/// crate has a wildcard arm, which must treat the directory as no store to open
/// (refuse it, change nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirVerdict {
    /// No directory, or an empty one (but for a [`LOST_AND_FOUND`]).
    Nothing,
    /// Only entries this engine makes, none of which marks a store: what an
    /// interrupted creation leaves. Opening the engine there makes a new store.
    Leftovers,
    /// A store of this engine: its marker is there and every entry is one the
    /// engine makes, holding what the engine's files hold.
    Store,
    /// Not a directory to open this engine in.
    Foreign {
        /// The names of the entries this engine does not make, sorted (non-UTF-8
        /// names lossily). Empty when every entry is the engine's by name but what
        /// they hold is not its store (another program's database of the same
        /// engine).
        unexpected: Vec<String>,
        /// Whether this engine's store marker is among the entries, by the
        /// engine's own reading: its store, with the `unexpected` entries beside
        /// it. True too when `unexpected` is empty (the marker is there, what it
        /// marks is not the engine's store).
        marked: bool,
    },
}

impl DirVerdict {
    /// The verdict every engine gives, from what it made of `entries`: nothing
    /// when there are none; [`Foreign`](DirVerdict::Foreign) when `unexpected`
    /// names any (sorted here); [`Leftovers`](DirVerdict::Leftovers) when its
    /// store is not `marked`; else `is_store` (called only then: a backend that
    /// reads its store's files to tell, such as a database's list of tables)
    /// decides between [`Store`](DirVerdict::Store) and a
    /// [`Foreign`](DirVerdict::Foreign) with no unexpected entry.
    pub fn judge(
        entries: &DirEntries,
        mut unexpected: Vec<String>,
        marked: bool,
        is_store: impl FnOnce() -> io::Result<bool>,
    ) -> io::Result<DirVerdict> {
        unexpected.sort();
        Ok(if entries.is_empty() {
            DirVerdict::Nothing
        } else if !unexpected.is_empty() {
            DirVerdict::Foreign { unexpected, marked }
        } else if !marked {
            DirVerdict::Leftovers
        } else if !is_store()? {
            DirVerdict::Foreign { unexpected, marked }
        } else {
            DirVerdict::Store
        })
    }
}

/// The entries of a store directory, as a probe reads them: their names, in the
/// order the directory lists them, without a [`LOST_AND_FOUND`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirEntries {
    names: Vec<OsString>,
}

impl DirEntries {
    /// List `dir` (its names only: nothing is opened or followed); `None` when
    /// there is no such directory. One that cannot be listed is an error.
    pub fn read(dir: &Path) -> io::Result<Option<DirEntries>> {
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in listing {
            let name = entry?.file_name();
            if name != LOST_AND_FOUND {
                names.push(name);
            }
        }
        Ok(Some(DirEntries { names }))
    }

    /// [`read`](Self::read) `dir` and give its entries to `judge`;
    /// [`DirVerdict::Nothing`] when there is no such directory. What every
    /// backend's `probe_dir` does with its own `probe_entries`.
    pub fn probe(
        dir: &Path,
        judge: impl FnOnce(&DirEntries) -> io::Result<DirVerdict>,
    ) -> io::Result<DirVerdict> {
        match Self::read(dir)? {
            Some(entries) => judge(&entries),
            None => Ok(DirVerdict::Nothing),
        }
    }

    /// The entries named `names` (a [`LOST_AND_FOUND`] among them is kept): for a
    /// caller that listed the directory itself, and for tests.
    pub fn from_names(names: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        DirEntries {
            names: names.into_iter().map(Into::into).collect(),
        }
    }

    /// Every name, as listed.
    pub fn names(&self) -> &[OsString] {
        &self.names
    }

    /// The names that are UTF-8 (no engine makes another), as listed.
    pub fn utf8(&self) -> impl Iterator<Item = &str> + '_ {
        self.names.iter().filter_map(|n| n.to_str())
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The names, lossily as UTF-8, of the entries `owns` does not claim (a
    /// non-UTF-8 name is never asked: no engine makes one), as listed. `owns` may
    /// read the entry (a backend whose entry of some name is its own only as it
    /// makes it); its error is returned.
    pub fn unowned(
        &self,
        mut owns: impl FnMut(&str) -> io::Result<bool>,
    ) -> io::Result<Vec<String>> {
        let mut unowned = Vec::new();
        for name in &self.names {
            let owned = match name.to_str() {
                Some(n) => owns(n)?,
                None => false,
            };
            if !owned {
                unowned.push(name.to_string_lossy().into_owned());
            }
        }
        Ok(unowned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign(unexpected: &[&str], marked: bool) -> DirVerdict {
        DirVerdict::Foreign {
            unexpected: unexpected.iter().map(|n| n.to_string()).collect(),
            marked,
        }
    }

    #[test]
    fn listing_skips_lost_and_found_and_a_missing_directory_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(DirEntries::read(&tmp.path().join("gone")).unwrap(), None);
        std::fs::create_dir(tmp.path().join(LOST_AND_FOUND)).unwrap();
        let entries = DirEntries::read(tmp.path()).unwrap().unwrap();
        assert!(entries.is_empty());
        std::fs::write(tmp.path().join("LOCK"), b"").unwrap();
        let entries = DirEntries::read(tmp.path()).unwrap().unwrap();
        assert_eq!(entries.names(), ["LOCK"]);
        let file = tmp.path().join("LOCK");
        assert!(DirEntries::read(&file).is_err(), "not a directory");
    }

    #[test]
    fn the_verdict_checks_in_order_and_asks_for_contents_last() {
        let none = DirEntries::default();
        let some = DirEntries::from_names(["data", "LOCK"]);
        let asked = |answer: bool| move || -> io::Result<bool> { Ok(answer) };
        let never = || -> io::Result<bool> { panic!("contents asked") };
        assert_eq!(
            DirVerdict::judge(&none, vec![], true, never).unwrap(),
            DirVerdict::Nothing
        );
        assert_eq!(
            DirVerdict::judge(&some, vec!["b".into(), "a".into()], true, never).unwrap(),
            foreign(&["a", "b"], true)
        );
        assert_eq!(
            DirVerdict::judge(&some, vec![], false, never).unwrap(),
            DirVerdict::Leftovers
        );
        assert_eq!(
            DirVerdict::judge(&some, vec![], true, asked(false)).unwrap(),
            foreign(&[], true)
        );
        assert_eq!(
            DirVerdict::judge(&some, vec![], true, asked(true)).unwrap(),
            DirVerdict::Store
        );
        let failing = || -> io::Result<bool> { Err(io::Error::other("unreadable")) };
        assert!(DirVerdict::judge(&some, vec![], true, failing).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn unowned_names_are_lossy_and_non_utf8_ones_never_asked() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'x', 0xff]);
        let entries = DirEntries::from_names([OsString::from("LOCK"), odd, "n".into()]);
        let unowned = entries
            .unowned(|n| {
                assert!(n == "LOCK" || n == "n");
                Ok(n == "LOCK")
            })
            .unwrap();
        assert_eq!(unowned, ["x\u{fffd}", "n"]);
        assert_eq!(entries.utf8().collect::<Vec<_>>(), ["LOCK", "n"]);
        let failing = entries.unowned(|_| Err(io::Error::other("unreadable")));
        assert!(failing.is_err());
    }
}
