//! # peerbook-engines
//!
//! One registry of peerbook's storage engines, for every program that picks an
//! engine by name: the `peerbook` CLI, the cross-backend tests, the benchmarks, the
//! power-loss tests. The core crate depends on no engine; this crate depends on each
//! behind its own cargo feature (`lmdb`, `rocksdb`, `file`, all on by default).
//!
//! - [`Engine`]: the engines, by name ([`FromStr`]: `memory`, `lmdb`, `rocksdb` or
//!   `rocks`, `file`), whether this build has them, and [`Engine::open`] /
//!   [`Engine::open_with`] -> `Arc<dyn Backend>`.
//! - [`StoreSpec`]: `BACKEND:PATH` (e.g. `lmdb:./peers`), a persistent store.
//! - [`EngineOptions`]: the options of each compiled-in engine.
//! - [`Engine::probe`]: whether a directory holds a store of an engine, from the
//!   names of its files (and, for RocksDB, the column families its manifest
//!   lists; for LMDB, the databases its environment names, read-only), so a
//!   program that needs an existing store opens nothing in a directory that holds
//!   none; and [`Engine::remove_store`]: remove a store's files and nothing else.
//!
//! ```
//! use peerbook::backend::{Backend, Durability, Space, WriteBatch};
//! use peerbook_engines::StoreSpec;
//!
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path().join("peers");
//! let spec: StoreSpec = format!("file:{}", dir.display()).parse()?;
//! let backend = spec.open()?;
//! let mut batch = WriteBatch::new();
//! batch.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
//! backend.write(batch, Durability::Sync)?;
//! assert_eq!(backend.engine_name(), "file");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use peerbook::backend::{Backend, BackendError};
use peerbook::MemoryBackend;

/// A storage engine peerbook can run on.
///
/// Not `non_exhaustive`: a new engine is meant to break every `match` over the
/// engines (benches, tests), so none forgets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// [`MemoryBackend`]: nothing persisted (always compiled in).
    Memory,
    /// `peerbook-lmdb` (feature `lmdb`).
    Lmdb,
    /// `peerbook-rocksdb` (feature `rocksdb`).
    Rocks,
    /// `peerbook-file` (feature `file`).
    File,
}

impl Engine {
    /// Every engine, the in-memory reference first.
    pub const ALL: [Engine; 4] = [Engine::Memory, Engine::Lmdb, Engine::Rocks, Engine::File];

    /// The engines that persist to a directory.
    pub const ON_DISK: [Engine; 3] = [Engine::Lmdb, Engine::Rocks, Engine::File];

    /// The engine's name: a spec prefix, and its backend's
    /// [`engine_name`](Backend::engine_name).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Memory => "memory",
            Engine::Lmdb => "lmdb",
            Engine::Rocks => "rocksdb",
            Engine::File => "file",
        }
    }

    /// Whether the engine stores to a directory (all but [`Engine::Memory`]).
    pub fn on_disk(self) -> bool {
        self != Engine::Memory
    }

    /// Whether this build has the engine (its cargo feature, named like it).
    pub fn compiled_in(self) -> bool {
        match self {
            Engine::Memory => true,
            Engine::Lmdb => cfg!(feature = "lmdb"),
            Engine::Rocks => cfg!(feature = "rocksdb"),
            Engine::File => cfg!(feature = "file"),
        }
    }

    /// The on-disk engines this build has.
    pub fn available() -> Vec<Engine> {
        Engine::ON_DISK
            .into_iter()
            .filter(|e| e.compiled_in())
            .collect()
    }

    /// Open (or create) this engine's store in `dir` with default options. A
    /// [`Engine::Memory`] store is new and empty every time (`dir` is unused).
    pub fn open(self, dir: &Path) -> Result<Arc<dyn Backend>, BackendError> {
        self.open_with(dir, &EngineOptions::default())
    }

    /// [`open`](Engine::open) with this engine's options from `options`.
    ///
    /// Fails with the engine's [`BackendError`], or with
    /// [`BackendError::Engine`] (engine `"peerbook-engines"`) when this build lacks
    /// the engine.
    pub fn open_with(
        self,
        dir: &Path,
        options: &EngineOptions,
    ) -> Result<Arc<dyn Backend>, BackendError> {
        let _ = (dir, options); // unused when every disk engine is left out
        Ok(match self {
            Engine::Memory => Arc::new(MemoryBackend::new()),
            #[cfg(feature = "lmdb")]
            Engine::Lmdb => Arc::new(peerbook_lmdb::LmdbBackend::open(dir, options.lmdb.clone())?),
            #[cfg(feature = "rocksdb")]
            Engine::Rocks => Arc::new(peerbook_rocksdb::RocksBackend::open(
                dir,
                options.rocksdb.clone(),
            )?),
            #[cfg(feature = "file")]
            Engine::File => Arc::new(peerbook_file::FileBackend::open(dir, options.file.clone())?),
            #[allow(unreachable_patterns)]
            other => {
                return Err(BackendError::engine(
                    "peerbook-engines",
                    format!("backend `{}` is not compiled in", other.name()),
                ))
            }
        })
    }
}

/// What a directory holds, to one engine, judged from the names of its entries
/// (and, for RocksDB, the column families its manifest lists; for LMDB, the
/// databases its environment names and what its `creating` directory holds; for
/// the file backend, the first bytes of a log whose generation has no snapshot;
/// nothing is written): see [`Engine::probe`].
///
/// `non_exhaustive`: a later kind is no breaking change. A `match` outside this
/// crate has a wildcard arm, which must treat the directory as no store to open
/// (refuse it, change nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DirContents {
    /// No directory, or an empty one.
    Nothing,
    /// Only files this engine makes, none of which marks a store: what an
    /// interrupted creation leaves. Opening the engine there makes a new store.
    Leftovers,
    /// A store of this engine: its marker file is there (see
    /// [`Engine::marks_store`]) and every entry is one the engine makes
    /// ([`Engine::owns_file`]).
    Store,
    /// Not a directory to open this engine in: entries this engine does not make,
    /// or (RocksDB) a database with a column family peerbook never makes, or with
    /// data and no family but `default`, or (LMDB) an environment with a database
    /// peerbook never makes, or data in its main database.
    Foreign {
        /// The on-disk engine whose marker file the directory holds, if any (this
        /// engine too, when other files sit beside its store).
        other: Option<Engine>,
        /// The names of the entries this engine does not make, sorted (non-UTF-8
        /// names lossily): for LMDB, also a `creating` that is not the scratch
        /// directory its creation leaves; for the file backend, also a log whose
        /// generation has no snapshot and whose bytes it did not write (an empty
        /// `log.7` too). Empty for a RocksDB database or LMDB environment that is
        /// not peerbook's.
        unexpected: Vec<String>,
    },
}

/// The directory fsck makes at the root of a file system; the probe ignores it.
const LOST_AND_FOUND: &str = "lost+found";

/// `digits` is a non-empty run of ASCII digits.
fn all_digits(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

impl Engine {
    /// Whether an entry named `name` in a store directory marks a store of this
    /// engine: LMDB's `data.mdb`; RocksDB's `CURRENT` (what RocksDB itself takes for
    /// "a database exists"); the file backend's `snapshot.G` or `log.G`
    /// (`peerbook-file`'s FORMAT.md, "Files"). By name only: [`probe`](Engine::probe)
    /// also reads a file-store log whose generation has no snapshot, which marks a
    /// (damaged) store only when it holds frames after the backend's header.
    pub fn marks_store(self, name: &str) -> bool {
        match self {
            Engine::Memory => false,
            #[cfg(feature = "lmdb")]
            Engine::Lmdb => peerbook_lmdb::LmdbBackend::marks_store(name),
            Engine::Rocks => name == "CURRENT",
            #[cfg(feature = "file")]
            Engine::File => peerbook_file::FileBackend::marks_store(name),
            // an engine left out of this build: its files are not told apart
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Whether this engine makes an entry named `name` in its store directory:
    /// - LMDB: `data.mdb`, `lock.mdb`, `LOCK` and `data.mdb.clear` (a clear's
    ///   copy), as `peerbook-lmdb` says (`LmdbBackend::owns_file`); its scratch
    ///   directory `creating` is its own only as a creation leaves it, which
    ///   [`probe`](Engine::probe) looks inside to tell (`LmdbBackend::owns_entry`),
    ///   so no name alone claims it;
    /// - RocksDB: `CURRENT`, `IDENTITY`, `LOCK`, `LOG`, `LOG.old.*`, `MANIFEST-N`,
    ///   `OPTIONS-N`, `N.log`, `N.sst`, `N.ldb`, `N.blob`, their `.dbtmp`
    ///   temporaries and `N.dbtmp` (a new database's first manifest) (RocksDB's
    ///   file naming, with its default log directory);
    /// - file: `LOCK`, `snapshot.G`, `log.G` and their `.tmp` forms (FORMAT.md), as
    ///   `peerbook-file` says (`FileBackend::owns_file`).
    ///
    /// An engine left out of this build owns nothing and marks nothing.
    pub fn owns_file(self, name: &str) -> bool {
        match self {
            Engine::Memory => false,
            #[cfg(feature = "lmdb")]
            Engine::Lmdb => peerbook_lmdb::LmdbBackend::owns_file(name),
            Engine::Rocks => {
                if name.strip_suffix(".dbtmp").is_some_and(all_digits) {
                    // `NNNNNN.dbtmp`: a new database's manifest before its rename
                    return true;
                }
                let name = name.strip_suffix(".dbtmp").unwrap_or(name);
                matches!(name, "CURRENT" | "IDENTITY" | "LOCK" | "LOG")
                    || name.starts_with("LOG.old.")
                    || ["MANIFEST-", "OPTIONS-"]
                        .iter()
                        .any(|p| name.strip_prefix(p).is_some_and(all_digits))
                    || name.rsplit_once('.').is_some_and(|(n, ext)| {
                        all_digits(n) && matches!(ext, "log" | "sst" | "ldb" | "blob")
                    })
            }
            #[cfg(feature = "file")]
            Engine::File => peerbook_file::FileBackend::owns_file(name),
            // an engine left out of this build: its files are not told apart
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// What `dir` holds to this engine: nothing, a store of this engine (its
    /// marker and nothing but the engine's own files), the leftovers of an
    /// interrupted creation, or something else (another engine's store, files no
    /// store of this engine holds, a RocksDB database with column families
    /// peerbook never makes, or data outside its families, an LMDB environment
    /// with databases peerbook never makes, only some of its four, or data in its
    /// main database). Judged
    /// from the names of its entries (for LMDB, a `creating` directory by its
    /// entries too: see [`owns_file`](Engine::owns_file); for the file backend, a
    /// log whose generation has no snapshot by its first bytes too:
    /// `FileBackend::lone_logs`, so a user's empty `log.7` is foreign and a log
    /// holding only the backend's header, what an interrupted creation leaves, is
    /// leftovers); for RocksDB also from the column families
    /// its manifest lists (read-only: RocksDB's `list_cf`, no database is opened);
    /// for LMDB also from the names in the environment's main database (opened
    /// read-only: `LmdbBackend::may_be_peerbook`; `data.mdb` is never written, an
    /// existing `lock.mdb` is, as by any LMDB reader: its reader table, and its
    /// header when no other process has the environment open). A `lost+found` (the root of a
    /// volume) is ignored. A missing directory is [`DirContents::Nothing`]; one
    /// that cannot be listed, or an LMDB environment that cannot be read, is an
    /// error.
    pub fn probe(self, dir: &Path) -> io::Result<DirContents> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(DirContents::Nothing),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            let name = entry?.file_name();
            // What fsck keeps at the root of every ext2/3/4 file system: a store
            // directory that is a volume of its own has one.
            if name != LOST_AND_FOUND {
                names.push(name);
            }
        }
        let utf8: Vec<&str> = names.iter().filter_map(|n| n.to_str()).collect();
        // The file backend's logs whose generation has no snapshot, read: their
        // names alone do not tell a user's empty `log.7` from a store's log.
        let lone = file_lone_logs(dir, &utf8)?;
        // Whether entry `n` marks a store of engine `e`: its name, and for the file
        // backend's lone logs their bytes (frames after its header).
        let marks = |e: Engine, n: &str| {
            e.marks_store(n)
                && !(e == Engine::File
                    && (lone.not_ours.iter().chain(&lone.no_frames)).any(|l| l == n))
        };
        let mut unexpected = Vec::new();
        for name in &names {
            let owned = match name.to_str() {
                Some(n) => self.owns_entry(dir, n)?,
                None => false,
            };
            if !owned {
                unexpected.push(name.to_string_lossy().into_owned());
            }
        }
        if self == Engine::File {
            unexpected.extend(lone.not_ours.iter().cloned());
        }
        unexpected.sort();
        Ok(if names.is_empty() {
            DirContents::Nothing
        } else if !unexpected.is_empty() {
            DirContents::Foreign {
                other: Engine::ON_DISK
                    .into_iter()
                    .find(|e| utf8.iter().any(|n| marks(*e, n))),
                unexpected,
            }
        } else if !utf8.iter().any(|n| marks(self, n)) {
            DirContents::Leftovers
        } else if (self == Engine::Rocks && !rocks_may_be_peerbook(dir, &names))
            || (self == Engine::Lmdb && !lmdb_may_be_peerbook(dir)?)
        {
            DirContents::Foreign {
                other: None,
                unexpected,
            }
        } else {
            DirContents::Store
        })
    }

    /// [`owns_file`](Engine::owns_file), and for LMDB its scratch directory
    /// `creating` when it is what a creation leaves (`LmdbBackend::owns_entry`,
    /// which lists it).
    fn owns_entry(self, dir: &Path, name: &str) -> io::Result<bool> {
        match self {
            #[cfg(feature = "lmdb")]
            Engine::Lmdb => peerbook_lmdb::LmdbBackend::owns_entry(dir, name),
            _ => {
                let _ = dir;
                Ok(self.owns_file(name))
            }
        }
    }

    /// Remove the store of this engine in `dir` (closed):
    /// [`remove_store_files`](Engine::remove_store_files), then `dir` itself if
    /// nothing is left in it. Never recursive: anything else stays, and its names
    /// are returned (empty when `dir` is gone, or is a symbolic link: the link
    /// stays, and the emptied directory it points to). A missing `dir` is no error.
    pub fn remove_store(self, dir: &Path) -> io::Result<Vec<OsString>> {
        let left = self.remove_store_files(dir)?;
        let link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
        if left.is_empty() && !link {
            match std::fs::remove_dir(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(left)
    }

    /// Remove every entry of `dir` that this engine owns
    /// ([`owns_file`](Engine::owns_file)) and that is not a directory; returns the
    /// names of the entries left, sorted. A missing `dir` is no error.
    pub fn remove_store_files(self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.remove_files(dir, false)
    }

    /// [`remove_store_files`](Engine::remove_store_files) but the engine's lock
    /// file `LOCK` (every on-disk engine's): for a program holding the store open,
    /// which keeps others out only while that file stays (a new one, made by the
    /// next opener, would be unlocked).
    pub fn remove_store_files_but_lock(self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.remove_files(dir, true)
    }

    fn remove_files(self, dir: &Path, keep_lock: bool) -> io::Result<Vec<OsString>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut left = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let owned = name
                .to_str()
                .is_some_and(|n| self.owns_file(n) && !(keep_lock && n == "LOCK"));
            if !owned || entry.file_type()?.is_dir() {
                left.push(name);
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        left.sort();
        Ok(left)
    }
}

/// The file backend's logs in `dir` whose generation has no snapshot, by what
/// their bytes make them (`FileBackend::lone_logs`): empty unless some entry is
/// named like a file store's marker.
#[derive(Default)]
struct LoneLogs {
    /// Logs the file backend did not write (an empty file, another program's
    /// bytes): not its files.
    not_ours: Vec<String>,
    /// Its header and nothing after it (an interrupted creation's): its files,
    /// marking no store.
    no_frames: Vec<String>,
}

fn file_lone_logs(dir: &Path, names: &[&str]) -> io::Result<LoneLogs> {
    #[cfg(feature = "file")]
    {
        let mut lone = LoneLogs::default();
        if names.iter().any(|n| Engine::File.marks_store(n)) {
            use peerbook_file::LoneLog;
            for (name, log) in peerbook_file::FileBackend::lone_logs(dir)? {
                match log {
                    LoneLog::HeaderOnly => lone.no_frames.push(name),
                    LoneLog::Frames => {}
                    // `NotOurs`, and any kind a later version tells: not a store's file
                    _ => lone.not_ours.push(name),
                }
            }
        }
        Ok(lone)
    }
    #[cfg(not(feature = "file"))]
    {
        let _ = (dir, names);
        Ok(LoneLogs::default())
    }
}

/// Whether the RocksDB database in `dir` (its `CURRENT` is there) may be
/// peerbook's, from the column families its manifest lists (read without opening
/// it): no family but `default` and peerbook's ([`Space`](peerbook::backend::Space)
/// names), and not `default` alone beside data (a `*.sst`, `*.blob` or non-empty
/// `*.log`). Some of peerbook's families missing is fine: a crash after RocksDB
/// wrote its first manifest and before the backend made its families leaves
/// `default` alone, and an older peerbook's store lacks a family a later one
/// adds (the backend makes missing families). A manifest RocksDB cannot read
/// counts as ours: opening then fails on it too, changing nothing, and reports the
/// damage.
fn rocks_may_be_peerbook(dir: &Path, names: &[OsString]) -> bool {
    #[cfg(feature = "rocksdb")]
    {
        let families = match rocksdb::DB::list_cf(&rocksdb::Options::default(), dir) {
            Ok(families) => families,
            Err(_) => return true,
        };
        let known = |f: &String| {
            f == "default" || peerbook::backend::Space::ALL.iter().any(|s| f == s.name())
        };
        if !families.iter().all(known) {
            return false;
        }
        if families.iter().any(|f| f != "default") {
            return true;
        }
        !names
            .iter()
            .filter_map(|n| n.to_str())
            .any(|n| match n.rsplit_once('.') {
                // RocksDB reads a table file named `.ldb` as it reads a `.sst`
                Some((_, "sst" | "ldb" | "blob")) => true,
                // a log removed since the listing (RocksDB deleting an old WAL) holds
                // nothing; one that cannot be read is taken as data
                Some((_, "log")) => std::fs::metadata(dir.join(n)).map_or_else(
                    |e| e.kind() != std::io::ErrorKind::NotFound,
                    |m| m.len() > 0,
                ),
                _ => false,
            })
    }
    #[cfg(not(feature = "rocksdb"))]
    {
        let _ = (dir, names);
        true
    }
}

/// Whether the LMDB environment in `dir` (its `data.mdb` is there) may be
/// peerbook's: `LmdbBackend::may_be_peerbook`, which opens it read-only and
/// never writes `data.mdb`; LMDB writes an existing `lock.mdb` as for any reader
/// (its reader table, and its header when it is the only opener). Its
/// main database is empty, or names all four of peerbook's space databases (and
/// optionally its `peerbook_lmdb`) and nothing else, and holds no data: unlike
/// RocksDB's families above, peerbook makes the four in one transaction, so some
/// of them only is another program's environment. So is a `data.mdb` peerbook
/// never leaves: empty, not a regular file, or not an LMDB environment whose
/// pages lie within the file (checked with plain reads before LMDB maps it).
/// An environment it cannot read is an error.
fn lmdb_may_be_peerbook(dir: &Path) -> io::Result<bool> {
    #[cfg(feature = "lmdb")]
    {
        peerbook_lmdb::LmdbBackend::may_be_peerbook(dir).map_err(io::Error::other)
    }
    #[cfg(not(feature = "lmdb"))]
    {
        let _ = dir;
        Ok(true)
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Engine {
    type Err = SpecError;

    /// `memory`, `lmdb`, `rocksdb` (or `rocks`), `file`; whether compiled in or not.
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "memory" => Ok(Engine::Memory),
            "lmdb" => Ok(Engine::Lmdb),
            "rocksdb" | "rocks" => Ok(Engine::Rocks),
            "file" => Ok(Engine::File),
            other => Err(SpecError::UnknownEngine(other.to_string())),
        }
    }
}

/// The options of every compiled-in engine; [`Engine::open_with`] takes its own.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct EngineOptions {
    /// For [`Engine::Lmdb`].
    #[cfg(feature = "lmdb")]
    pub lmdb: peerbook_lmdb::LmdbOptions,
    /// For [`Engine::Rocks`].
    #[cfg(feature = "rocksdb")]
    pub rocksdb: peerbook_rocksdb::RocksOptions,
    /// For [`Engine::File`].
    #[cfg(feature = "file")]
    pub file: peerbook_file::FileOptions,
}

impl EngineOptions {
    /// Set the LMDB options.
    #[cfg(feature = "lmdb")]
    pub fn with_lmdb(mut self, options: peerbook_lmdb::LmdbOptions) -> Self {
        self.lmdb = options;
        self
    }

    /// Set the RocksDB options.
    #[cfg(feature = "rocksdb")]
    pub fn with_rocksdb(mut self, options: peerbook_rocksdb::RocksOptions) -> Self {
        self.rocksdb = options;
        self
    }

    /// Set the file backend's options.
    #[cfg(feature = "file")]
    pub fn with_file(mut self, options: peerbook_file::FileOptions) -> Self {
        self.file = options;
        self
    }
}

/// Why a string is not a [`StoreSpec`] (or an [`Engine`] name).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// No `:` between engine and path.
    #[error("`{0}` is not BACKEND:PATH (e.g. lmdb:./peers, rocksdb:./peers, file:./peers)")]
    NotASpec(String),
    /// An engine name this registry does not know (or `memory` in a spec: it has
    /// no directory).
    #[error("unknown backend `{0}`; use lmdb, rocksdb or file")]
    UnknownEngine(String),
    /// An engine this build was compiled without.
    #[error(
        "backend `{engine}` is not compiled into this peerbook (built without feature \
         `{engine}`); this build has: {}; rebuild with `--features {engine}` to use it",
        available.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")
    )]
    NotCompiledIn {
        /// The engine asked for.
        engine: Engine,
        /// The on-disk engines this build has.
        available: Vec<Engine>,
    },
    /// A path that names no directory of its own: empty, or ending in `.`, `..`
    /// or the root (`./peers/..` is refused rather than resolved: through a
    /// symbolic link `peers`, `..` is not `.`).
    #[error("`{path}` is not a usable store directory; name one, e.g. {engine}:./peers")]
    BadPath {
        /// The path given.
        path: String,
        /// The engine prefix as given.
        engine: String,
    },
    /// A path with a `..` after a directory name (`x/../peers`): refused rather
    /// than resolved, since through a missing `x` (which creating the store would
    /// make) or a symbolic link it names another directory than it reads as.
    /// Leading `..` components (`../peers`) are fine.
    #[error(
        "`{path}` has a `..` after a directory name; name the store directory without it \
         (e.g. {engine}:../peers or an absolute path)"
    )]
    ParentDir {
        /// The path given.
        path: String,
        /// The engine prefix as given.
        engine: String,
    },
}

/// `BACKEND:PATH`, e.g. `lmdb:./peers`: a persistent store of a compiled-in engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreSpec {
    /// The engine (never [`Engine::Memory`]).
    pub engine: Engine,
    /// The store's directory, normalized: no `.` component, no repeated or trailing
    /// `/`, no `..` after a name (leading `..` only), and its last component a
    /// directory name (never `.`, `..` or the root).
    pub path: PathBuf,
}

impl FromStr for StoreSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let (backend, path) = s
            .split_once(':')
            .ok_or_else(|| SpecError::NotASpec(s.to_string()))?;
        let engine: Engine = backend.parse()?;
        if !engine.on_disk() {
            return Err(SpecError::UnknownEngine(backend.to_string()));
        }
        if !engine.compiled_in() {
            return Err(SpecError::NotCompiledIn {
                engine,
                available: Engine::available(),
            });
        }
        // Drops `.` components and repeated or trailing slashes, so the last
        // component is the directory's own name: `./peers/.` is `./peers` (and the
        // CLI's key file `./peers.key`, beside it, not inside).
        let normalized: PathBuf = Path::new(path).components().collect();
        if !matches!(
            normalized.components().next_back(),
            Some(Component::Normal(_))
        ) {
            return Err(SpecError::BadPath {
                path: path.to_string(),
                engine: backend.to_string(),
            });
        }
        let mut named = false;
        for component in normalized.components() {
            match component {
                Component::Normal(_) => named = true,
                Component::ParentDir if named => {
                    return Err(SpecError::ParentDir {
                        path: path.to_string(),
                        engine: backend.to_string(),
                    })
                }
                _ => {}
            }
        }
        Ok(StoreSpec {
            engine,
            path: normalized,
        })
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.engine.name(), self.path.display())
    }
}

impl StoreSpec {
    /// Open (or create) the store with default options.
    pub fn open(&self) -> Result<Arc<dyn Backend>, BackendError> {
        self.engine.open(&self.path)
    }

    /// Open (or create) the store with `options`.
    pub fn open_with(&self, options: &EngineOptions) -> Result<Arc<dyn Backend>, BackendError> {
        self.engine.open_with(&self.path, options)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
