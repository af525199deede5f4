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
//!   names of its files (so a program that needs an existing store opens nothing
//!   in a directory that holds none), and [`Engine::remove_store`]: remove a
//!   store's files and nothing else.
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
/// (and, for RocksDB, the column families its manifest lists; no store is opened):
/// see [`Engine::probe`].
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// data and no family but `default`.
    Foreign {
        /// The on-disk engine whose marker file the directory holds, if any (this
        /// engine too, when other files sit beside its store).
        other: Option<Engine>,
        /// The names of the entries this engine does not make, sorted (non-UTF-8
        /// names lossily). Empty for a RocksDB database that is not peerbook's.
        unexpected: Vec<String>,
    },
}

/// The directory fsck makes at the root of a file system; the probe ignores it.
const LOST_AND_FOUND: &str = "lost+found";

/// `digits` is a non-empty run of ASCII digits.
fn all_digits(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `digits` is a generation as `peerbook-file` writes it (its `naming.rs`): ASCII
/// digits without a leading zero (`0` itself aside). `log.01` is not its file.
fn generation(digits: &str) -> bool {
    all_digits(digits) && (digits == "0" || !digits.starts_with('0'))
}

impl Engine {
    /// Whether an entry named `name` in a store directory marks a store of this
    /// engine: LMDB's `data.mdb`; RocksDB's `CURRENT` (what RocksDB itself takes for
    /// "a database exists"); the file backend's `snapshot.G` or `log.G`
    /// (`peerbook-file`'s FORMAT.md, "Files": a log without its snapshot is a
    /// damaged store, which opening reports).
    pub fn marks_store(self, name: &str) -> bool {
        match self {
            Engine::Memory => false,
            Engine::Lmdb => name == "data.mdb",
            Engine::Rocks => name == "CURRENT",
            Engine::File => ["snapshot.", "log."]
                .iter()
                .any(|p| name.strip_prefix(p).is_some_and(generation)),
        }
    }

    /// Whether this engine makes an entry named `name` in its store directory:
    /// - LMDB: `data.mdb`, `lock.mdb`, `LOCK`, `data.mdb.clear` (a clear's copy)
    ///   and the directory `creating` (a new store's scratch directory);
    /// - RocksDB: `CURRENT`, `IDENTITY`, `LOCK`, `LOG`, `LOG.old.*`, `MANIFEST-N`,
    ///   `OPTIONS-N`, `N.log`, `N.sst`, `N.ldb`, `N.blob`, their `.dbtmp`
    ///   temporaries and `N.dbtmp` (a new database's first manifest) (RocksDB's
    ///   file naming, with its default log directory);
    /// - file: `LOCK`, `snapshot.G`, `log.G` and their `.tmp` forms (FORMAT.md).
    pub fn owns_file(self, name: &str) -> bool {
        match self {
            Engine::Memory => false,
            Engine::Lmdb => matches!(
                name,
                "data.mdb" | "lock.mdb" | "LOCK" | "data.mdb.clear" | "creating"
            ),
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
            Engine::File => {
                let name = name.strip_suffix(".tmp").unwrap_or(name);
                name == "LOCK" || self.marks_store(name)
            }
        }
    }

    /// What `dir` holds to this engine: nothing, a store of this engine (its
    /// marker and nothing but the engine's own files), the leftovers of an
    /// interrupted creation, or something else (another engine's store, files no
    /// store of this engine holds, a RocksDB database with column families
    /// peerbook never makes, or data outside its families). Judged from the names
    /// of its entries; for RocksDB also from the column families its manifest
    /// lists (read-only: RocksDB's `list_cf`, no database is opened). A `lost+found` (the root of a volume) is ignored. A
    /// missing directory is [`DirContents::Nothing`]; one that cannot be listed is
    /// an error.
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
        let mut unexpected: Vec<String> = names
            .iter()
            .filter(|n| !n.to_str().is_some_and(|n| self.owns_file(n)))
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        unexpected.sort();
        Ok(if names.is_empty() {
            DirContents::Nothing
        } else if !unexpected.is_empty() {
            DirContents::Foreign {
                other: Engine::ON_DISK
                    .into_iter()
                    .find(|e| utf8.iter().any(|n| e.marks_store(n))),
                unexpected,
            }
        } else if !utf8.iter().any(|n| self.marks_store(n)) {
            DirContents::Leftovers
        } else if self == Engine::Rocks && !rocks_may_be_peerbook(dir, &names) {
            DirContents::Foreign {
                other: None,
                unexpected,
            }
        } else {
            DirContents::Store
        })
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
                Some((_, "sst" | "blob")) => true,
                Some((_, "log")) => std::fs::metadata(dir.join(n)).map_or(true, |m| m.len() > 0),
                _ => false,
            })
    }
    #[cfg(not(feature = "rocksdb"))]
    {
        let _ = (dir, names);
        true
    }
}

/// Whether `backend` holds a peerbook book: meta `schema_version` (which
/// [`PeerBook::open`](peerbook::PeerBook::open) writes into every book it creates
/// or migrates), or peer records (a book from before schema versions). Read-only:
/// for a program that needs an existing book, to refuse an engine store peerbook
/// did not make before `PeerBook::open` would start a new book in it.
pub fn holds_book(backend: &dyn Backend) -> Result<bool, BackendError> {
    use peerbook::backend::Space;
    /// The core's `META_SCHEMA_VERSION` (crate-private there; the test
    /// `holds_book_tells_books_from_bare_stores` ties the two).
    const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";
    Ok(backend.get(Space::Meta, SCHEMA_VERSION_KEY)?.is_some() || holds_peers(backend)?)
}

/// Whether `backend` holds any peer record (read-only; no key needed).
pub fn holds_peers(backend: &dyn Backend) -> Result<bool, BackendError> {
    use peerbook::backend::{Direction, KeyRange, Space};
    let mut peers = false;
    backend.view()?.scan(
        Space::Peers,
        KeyRange::all(),
        Direction::Forward,
        &mut |_, _| {
            peers = true;
            std::ops::ControlFlow::Break(())
        },
    )?;
    Ok(peers)
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
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        #[cfg(feature = "rocksdb")]
        {
            let spec: StoreSpec = "rocks:./peers/".parse().unwrap();
            assert_eq!(spec.engine, Engine::Rocks);
            assert_eq!(spec.path, PathBuf::from("./peers"));
            assert_eq!(spec.to_string(), "rocksdb:./peers");
        }
        assert!(matches!(
            "peers".parse::<StoreSpec>(),
            Err(SpecError::NotASpec(_))
        ));
        assert!(matches!(
            "sqlite:./p".parse::<StoreSpec>(),
            Err(SpecError::UnknownEngine(e)) if e == "sqlite"
        ));
        assert!(matches!(
            "memory:./p".parse::<StoreSpec>(),
            Err(SpecError::UnknownEngine(_))
        ));
        for bad in ["file:", "file:.", "file:..", "file:/"] {
            assert!(
                matches!(bad.parse::<StoreSpec>(), Err(SpecError::BadPath { .. })),
                "{bad}"
            );
        }
        for engine in Engine::ALL {
            assert_eq!(engine.name().parse::<Engine>().unwrap(), engine);
        }
    }

    /// `.` components, repeated and trailing slashes are dropped, so the path's last
    /// component names the store directory (the CLI puts its key file beside it as
    /// `<last component>.key`); a path whose last component is `..` (or the root)
    /// names no directory of its own and is refused.
    #[test]
    fn spec_paths_are_normalized_to_end_in_the_directory_name() {
        for (spec, path) in [
            ("file:./peers/.", "./peers"),
            ("file:./peers/./", "./peers"),
            ("file:peers//x/./", "peers/x"),
            ("file:/srv/./peers//", "/srv/peers"),
            ("file:../peers", "../peers"),
            ("file:../../peers", "../../peers"),
            ("file:/../peers", "/../peers"),
        ] {
            let parsed: StoreSpec = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(parsed.path, PathBuf::from(path), "{spec}");
            assert_eq!(parsed.to_string(), format!("file:{path}"), "{spec}");
        }
        for bad in [
            "file:./peers/..",
            "file:peers/../",
            "file:./.",
            "file://",
            "file:./",
        ] {
            assert!(
                matches!(bad.parse::<StoreSpec>(), Err(SpecError::BadPath { .. })),
                "{bad}"
            );
        }
        // A `..` after a name: `x/../peers` is not `./peers` when x is a link, and
        // creating a missing x would make a directory the store is not in.
        for bad in ["file:./a/../peers", "file:a/../peers", "file:../a/../b/c"] {
            assert!(
                matches!(bad.parse::<StoreSpec>(), Err(SpecError::ParentDir { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_compiled_engine_opens_and_reopens() {
        let tmp = tempfile::tempdir().unwrap();
        for engine in Engine::available() {
            let dir = tmp.path().join(engine.name());
            let b = engine.open(&dir).unwrap();
            assert_eq!(b.engine_name(), engine.name());
            let mut batch = peerbook::backend::WriteBatch::new();
            batch.put(peerbook::backend::Space::Meta, b"k".to_vec(), b"v".to_vec());
            b.write(batch, peerbook::backend::Durability::Sync).unwrap();
            drop(b);
            let b = engine.open(&dir).unwrap();
            assert_eq!(
                b.get(peerbook::backend::Space::Meta, b"k").unwrap(),
                Some(b"v".to_vec()),
                "{engine}"
            );
        }
        assert_eq!(
            Engine::Memory.open(tmp.path()).unwrap().engine_name(),
            "memory"
        );
    }

    /// A store each engine made is [`DirContents::Store`] to it, every file in it
    /// one the engine owns, and to the other engines a foreign directory naming it.
    #[test]
    fn probe_tells_stores_leftovers_and_foreign_directories_apart() {
        let tmp = tempfile::tempdir().unwrap();
        for engine in Engine::available() {
            let dir = tmp.path().join(engine.name());
            assert_eq!(engine.probe(&dir).unwrap(), DirContents::Nothing);
            std::fs::create_dir(&dir).unwrap();
            assert_eq!(engine.probe(&dir).unwrap(), DirContents::Nothing);
            std::fs::write(dir.join("LOCK"), b"").unwrap();
            assert_eq!(engine.probe(&dir).unwrap(), DirContents::Leftovers);
            let b = engine.open(&dir).unwrap();
            let mut batch = peerbook::backend::WriteBatch::new();
            batch.put(peerbook::backend::Space::Meta, b"k".to_vec(), b"v".to_vec());
            b.write(batch, peerbook::backend::Durability::Sync).unwrap();
            drop(b);
            assert_eq!(engine.probe(&dir).unwrap(), DirContents::Store, "{engine}");
            for entry in std::fs::read_dir(&dir).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                assert!(engine.owns_file(&name), "{engine} makes {name}");
            }
            for other in Engine::ON_DISK.into_iter().filter(|e| *e != engine) {
                assert!(
                    matches!(
                        other.probe(&dir).unwrap(),
                        DirContents::Foreign { other: Some(e), unexpected } if e == engine && !unexpected.is_empty()
                    ),
                    "{engine} store probed as {other}"
                );
            }
            std::fs::write(tmp.path().join("notes.txt"), b"").unwrap();
            assert!(matches!(
                engine.probe(tmp.path()).unwrap(),
                DirContents::Foreign { other: None, .. }
            ));
        }
        // Removing a store leaves what the engine did not make, and the directory
        // only then.
        for engine in Engine::available() {
            let dir = tmp.path().join(engine.name());
            std::fs::create_dir(dir.join("sub")).unwrap();
            std::fs::write(dir.join("sub").join("LOCK"), b"").unwrap();
            std::fs::write(dir.join("notes.txt"), b"").unwrap();
            let left = engine.remove_store(&dir).unwrap();
            assert_eq!(left, ["notes.txt", "sub"], "{engine}");
            assert_eq!(
                engine.probe(&dir).unwrap(),
                DirContents::Foreign {
                    other: None,
                    unexpected: vec!["notes.txt".into(), "sub".into()]
                }
            );
            assert!(dir.join("sub").join("LOCK").exists());
            std::fs::remove_dir_all(dir.join("sub")).unwrap();
            std::fs::remove_file(dir.join("notes.txt")).unwrap();
            std::fs::write(dir.join("LOCK"), b"").unwrap();
            assert!(engine.remove_store(&dir).unwrap().is_empty());
            assert!(!dir.exists(), "{engine}");
            assert!(engine.remove_store(&dir).unwrap().is_empty());
        }
        assert!(Engine::File.marks_store("log.7") && !Engine::File.marks_store("log.7.tmp"));
        assert!(Engine::Rocks.owns_file("000012.sst") && !Engine::Rocks.owns_file("x.sst"));
        assert!(Engine::Rocks.owns_file("OPTIONS-000007.dbtmp"));
        assert!(!Engine::Lmdb.owns_file("snapshot.1"));
        let plain = tmp.path().join("notes.txt");
        assert!(
            Engine::File.probe(&plain.join("x")).is_err(),
            "not a directory"
        );
    }

    /// A marker file alone does not make a store: every entry must be one the
    /// engine makes, and a generation name must be one `peerbook-file` writes.
    /// Anything else is foreign, named.
    #[test]
    fn a_marker_among_other_files_is_no_store() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // An application directory with a rotated (empty) log of its own.
        std::fs::write(dir.join("notes.txt"), b"").unwrap();
        std::fs::write(dir.join("log.7"), b"").unwrap();
        assert_eq!(
            Engine::File.probe(dir).unwrap(),
            DirContents::Foreign {
                other: Some(Engine::File),
                unexpected: vec!["notes.txt".into()]
            }
        );
        std::fs::remove_file(dir.join("notes.txt")).unwrap();
        assert_eq!(Engine::File.probe(dir).unwrap(), DirContents::Store);
        std::fs::remove_file(dir.join("log.7")).unwrap();
        std::fs::write(dir.join("log.01"), b"").unwrap();
        assert!(!Engine::File.marks_store("log.01") && !Engine::File.owns_file("log.01"));
        assert_eq!(
            Engine::File.probe(dir).unwrap(),
            DirContents::Foreign {
                other: None,
                unexpected: vec!["log.01".into()]
            }
        );
        assert!(Engine::File.marks_store("log.0") && Engine::File.marks_store("snapshot.10"));
    }

    /// Another program's RocksDB database (no peerbook column family) is foreign
    /// to the probe, which leaves it as it was; a peerbook store is a store.
    #[cfg(feature = "rocksdb")]
    #[test]
    fn a_rocksdb_database_without_peerbook_families_is_foreign() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        {
            let mut o = rocksdb::Options::default();
            o.create_if_missing(true);
            let db = rocksdb::DB::open(&o, &dir).unwrap();
            db.put(b"theirs", b"v").unwrap();
        }
        let listing = |dir: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let before = listing(&dir);
        assert_eq!(
            Engine::Rocks.probe(&dir).unwrap(),
            DirContents::Foreign {
                other: None,
                unexpected: vec![]
            }
        );
        assert_eq!(listing(&dir), before, "the probe changed the database");
        let ours = tmp.path().join("ours");
        drop(Engine::Rocks.open(&ours).unwrap());
        assert_eq!(Engine::Rocks.probe(&ours).unwrap(), DirContents::Store);
    }

    /// A RocksDB database is peerbook's unless its manifest names a family
    /// peerbook never makes, or only `default` while it holds data: a crash after
    /// RocksDB wrote its first manifest (default family only, no data) and before
    /// the backend made its families, or a store missing a family a later
    /// peerbook adds (the backend makes missing ones), is a store to open.
    #[cfg(feature = "rocksdb")]
    #[test]
    fn a_rocksdb_store_may_lack_peerbook_families() {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        // The crash: CURRENT and a manifest with `default` only, no data.
        let bare = tmp.path().join("bare");
        drop(rocksdb::DB::open(&o, &bare).unwrap());
        assert_eq!(Engine::Rocks.probe(&bare).unwrap(), DirContents::Store);
        drop(Engine::Rocks.open(&bare).unwrap());
        assert_eq!(Engine::Rocks.probe(&bare).unwrap(), DirContents::Store);
        // Some of peerbook's families (an older peerbook's store).
        let older = tmp.path().join("older");
        let some = [peerbook::backend::Space::ALL[0].name()];
        drop(rocksdb::DB::open_cf(&o, &older, some).unwrap());
        assert_eq!(Engine::Rocks.probe(&older).unwrap(), DirContents::Store);
        // A family of another program's, beside peerbook's.
        let theirs = tmp.path().join("theirs");
        let families = [peerbook::backend::Space::ALL[0].name(), "theirs"];
        drop(rocksdb::DB::open_cf(&o, &theirs, families).unwrap());
        assert!(matches!(
            Engine::Rocks.probe(&theirs).unwrap(),
            DirContents::Foreign { other: None, .. }
        ));
    }

    /// [`holds_book`] tells a book (new, or with peers) from an engine store that
    /// holds no book, whatever key the core uses for its schema version.
    #[test]
    fn holds_book_tells_books_from_bare_stores() {
        let bare = Engine::Memory.open(Path::new("")).unwrap();
        assert!(!holds_book(&*bare).unwrap());
        let mut batch = peerbook::backend::WriteBatch::new();
        batch.put(peerbook::backend::Space::Meta, b"x".to_vec(), b"y".to_vec());
        bare.write(batch, peerbook::backend::Durability::Sync)
            .unwrap();
        assert!(!holds_book(&*bare).unwrap());
        let backend = Engine::Memory.open(Path::new("")).unwrap();
        let key = peerbook::MasterKey::from_slice(&[7; 32]).unwrap();
        drop(peerbook::PeerBook::open(backend.clone(), peerbook::Options::new(key)).unwrap());
        assert!(holds_book(&*backend).unwrap());
        // A book from before schema versions: peer records, no version.
        let old = Engine::Memory.open(Path::new("")).unwrap();
        let mut batch = peerbook::backend::WriteBatch::new();
        batch.put(
            peerbook::backend::Space::Peers,
            b"p".to_vec(),
            b"r".to_vec(),
        );
        old.write(batch, peerbook::backend::Durability::Sync)
            .unwrap();
        assert!(holds_book(&*old).unwrap());
    }

    /// What a crash while RocksDB creates its database leaves (`000001.dbtmp`, the
    /// manifest before its rename) is RocksDB's own, and a volume's `lost+found`
    /// counts for nothing: both directories are for the engine to open.
    #[test]
    fn creation_leftovers_and_lost_and_found_are_no_foreign_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rocks");
        std::fs::create_dir(&dir).unwrap();
        for name in ["000001.dbtmp", "MANIFEST-000001", "LOCK", "LOG"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert!(Engine::Rocks.owns_file("000001.dbtmp") && !Engine::Rocks.owns_file("x.dbtmp"));
        assert_eq!(Engine::Rocks.probe(&dir).unwrap(), DirContents::Leftovers);
        #[cfg(feature = "rocksdb")]
        {
            drop(Engine::Rocks.open(&dir).unwrap());
            assert_eq!(Engine::Rocks.probe(&dir).unwrap(), DirContents::Store);
        }
        for engine in Engine::available() {
            let volume = tmp.path().join(format!("volume-{engine}"));
            std::fs::create_dir_all(volume.join("lost+found")).unwrap();
            assert_eq!(
                engine.probe(&volume).unwrap(),
                DirContents::Nothing,
                "{engine}"
            );
            drop(engine.open(&volume).unwrap());
            assert_eq!(
                engine.probe(&volume).unwrap(),
                DirContents::Store,
                "{engine}"
            );
        }
    }
}
