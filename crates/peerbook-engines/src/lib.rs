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
//! - [`Engine::probe`]: whether a directory holds a store of an engine, as the
//!   engine's backend judges it (`probe_entries` of each backend crate, in the
//!   core's words: [`DirVerdict`]), so a program that needs an existing store
//!   opens nothing in a directory that holds none; and [`Engine::remove_store`]:
//!   remove a store's files and nothing else.
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
use peerbook::probe::{DirEntries, DirVerdict};
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

/// What a directory holds, to one engine: its backend's verdict
/// ([`DirVerdict`]: each backend crate judges its own store directories), and on a
/// foreign directory which engine's store it holds; see [`Engine::probe`].
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

impl Engine {
    /// Whether an entry named `name` in a store directory marks a store of this
    /// engine, as its backend says (`marks_store` of `LmdbBackend`: `data.mdb`;
    /// `RocksBackend`: `CURRENT`; `FileBackend`: `snapshot.G` or `log.G`). By
    /// name only: [`probe`](Engine::probe) also reads a file-store log whose
    /// generation has no snapshot, which marks a (damaged) store only when it
    /// holds frames after the backend's header.
    pub fn marks_store(self, name: &str) -> bool {
        match self {
            Engine::Memory => false,
            #[cfg(feature = "lmdb")]
            Engine::Lmdb => peerbook_lmdb::LmdbBackend::marks_store(name),
            // RocksDB's naming, known without RocksDB (`peerbook_rocksdb::naming`)
            Engine::Rocks => peerbook_rocksdb::naming::marks_store(name),
            #[cfg(feature = "file")]
            Engine::File => peerbook_file::FileBackend::marks_store(name),
            // an engine left out of this build: its files are not told apart
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Whether this engine makes an entry named `name` in its store directory, as
    /// its backend says (`owns_file` of each):
    /// - LMDB: `data.mdb`, `lock.mdb`, `LOCK` and `data.mdb.clear` (a clear's
    ///   copy); its scratch directory `creating` is its own only as a creation
    ///   leaves it, which [`probe`](Engine::probe) looks inside to tell
    ///   (`LmdbBackend::owns_entry`), so no name alone claims it;
    /// - RocksDB: RocksDB's file naming (`CURRENT`, `MANIFEST-N`, `N.sst`, ...);
    /// - file: `LOCK`, `snapshot.G`, `log.G` and their `.tmp` forms (FORMAT.md).
    ///
    /// An engine left out of this build owns nothing and marks nothing, but
    /// RocksDB, whose naming `peerbook-rocksdb` tells without RocksDB's C++
    /// (`peerbook_rocksdb::naming`).
    pub fn owns_file(self, name: &str) -> bool {
        match self {
            Engine::Memory => false,
            #[cfg(feature = "lmdb")]
            Engine::Lmdb => peerbook_lmdb::LmdbBackend::owns_file(name),
            Engine::Rocks => peerbook_rocksdb::naming::owns_file(name),
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
    /// store of this engine holds, another program's database of this engine).
    ///
    /// The directory is listed once ([`DirEntries::read`]: a `lost+found`, the
    /// root of a volume, is ignored) and judged by the engine's backend, which
    /// owns its rules (`probe_entries` of each): `FileBackend` reads the first
    /// bytes of a log whose generation has no snapshot (a user's empty `log.7`
    /// is foreign, a log holding only the backend's header, what an interrupted
    /// creation leaves, is leftovers); `LmdbBackend` looks inside a `creating`
    /// directory and reads the names in the environment's main database
    /// (read-only: `data.mdb` is never written, an existing `lock.mdb` is, as by
    /// any LMDB reader); `RocksBackend` reads the column families its manifest
    /// lists (RocksDB's `list_cf`, no database is opened). On a foreign
    /// directory with unexpected entries, `other` is the first on-disk engine
    /// whose store they mark: by their names, and for the file backend the bytes
    /// of its lone logs too (`FileBackend::marks_store_among`). Memory, and an
    /// engine left out of this build, own no entry and mark no store; RocksDB
    /// left out is judged by its names alone (`peerbook_rocksdb::naming`).
    ///
    /// A missing directory is [`DirContents::Nothing`]; one that cannot be
    /// listed, or an LMDB environment that cannot be read, is an error.
    pub fn probe(self, dir: &Path) -> io::Result<DirContents> {
        let Some(entries) = DirEntries::read(dir)? else {
            return Ok(DirContents::Nothing);
        };
        Ok(match self.probe_entries(dir, &entries)? {
            DirVerdict::Nothing => DirContents::Nothing,
            DirVerdict::Leftovers => DirContents::Leftovers,
            DirVerdict::Store => DirContents::Store,
            // Every entry the engine's, what they hold not its store: no engine's.
            DirVerdict::Foreign { unexpected, .. } if unexpected.is_empty() => {
                DirContents::Foreign {
                    other: None,
                    unexpected,
                }
            }
            DirVerdict::Foreign { unexpected, marked } => DirContents::Foreign {
                other: self.store_among(dir, &entries, marked)?,
                unexpected,
            },
            // a kind a later core tells: no store to open
            _ => DirContents::Foreign {
                other: None,
                unexpected: Vec::new(),
            },
        })
    }

    /// The verdict of this engine's backend on `entries`, the listing of `dir`
    /// (`probe_entries` of `peerbook-file`, `peerbook-lmdb`, `peerbook-rocksdb`).
    /// An engine without one (memory, or left out of this build) owns no entry
    /// and marks no store; RocksDB left out is judged by its names alone.
    fn probe_entries(self, dir: &Path, entries: &DirEntries) -> io::Result<DirVerdict> {
        match self {
            #[cfg(feature = "lmdb")]
            Engine::Lmdb => peerbook_lmdb::LmdbBackend::probe_entries(dir, entries),
            #[cfg(feature = "rocksdb")]
            Engine::Rocks => peerbook_rocksdb::RocksBackend::probe_entries(dir, entries),
            // without RocksDB: its names alone, no manifest read
            #[cfg(not(feature = "rocksdb"))]
            Engine::Rocks => peerbook_rocksdb::naming::judge(entries, || Ok(true)),
            #[cfg(feature = "file")]
            Engine::File => peerbook_file::FileBackend::probe_entries(dir, entries),
            #[allow(unreachable_patterns)]
            _ => {
                let _ = dir;
                DirVerdict::judge(entries, entries.unowned(|_| Ok(false))?, false, || Ok(true))
            }
        }
    }

    /// The first on-disk engine whose store `entries` (the listing of `dir`)
    /// mark: for this engine, `marked` (its backend's reading); for the others
    /// their marker's name ([`marks_store`](Engine::marks_store)), and for the
    /// file backend the bytes of a log whose generation has no snapshot too
    /// (`FileBackend::marks_store_among`), which are read whenever some entry is
    /// named like a file store's marker.
    fn store_among(
        self,
        dir: &Path,
        entries: &DirEntries,
        marked: bool,
    ) -> io::Result<Option<Engine>> {
        for engine in Engine::ON_DISK {
            let marks = if engine == self {
                marked
            } else {
                match engine {
                    #[cfg(feature = "file")]
                    Engine::File => peerbook_file::FileBackend::marks_store_among(dir, entries)?,
                    _ => {
                        // without the file backend, `dir` has no other use
                        let _ = dir;
                        entries.utf8().any(|n| engine.marks_store(n))
                    }
                }
            };
            // The first is the answer: the others' files are not read, so one
            // that cannot be read fails nothing.
            if marks {
                return Ok(Some(engine));
            }
        }
        Ok(None)
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
