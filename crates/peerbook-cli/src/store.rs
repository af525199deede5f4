//! Naming and opening stores: `BACKEND:PATH` specs, key sources, and the error type
//! every command returns (one cause line, an optional hint, an exit code).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use peerbook::{Backend, Error, MasterKey, Options, PeerBook};
use zeroize::Zeroizing;

/// A book over whichever engine the spec named.
pub type Book = PeerBook<Arc<dyn Backend>>;

/// A failure of a command: printed as `error: <cause>` and `hint: <hint>`.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong (one line).
    pub cause: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The process exit code (1 operational, 2 usage).
    pub code: u8,
    /// A failed write to stdout (see [`out`]): only the report was lost.
    pub lost_report: bool,
}

impl CliError {
    /// An operational error (exit 1).
    pub fn new(cause: impl Into<String>) -> Self {
        CliError {
            cause: cause.into(),
            hint: None,
            code: 1,
            lost_report: false,
        }
    }

    /// A usage error (exit 2).
    pub fn usage(cause: impl Into<String>) -> Self {
        CliError {
            code: 2,
            ..CliError::new(cause)
        }
    }

    /// Add a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// For a report written after `change` was made: a report that could not be
    /// written says the change was made (still exit 1), and not to rerun the
    /// command (which would fail, the key being gone, or act again). Any other
    /// error is returned as it is.
    pub fn after_change(self, change: impl fmt::Display) -> Self {
        if !self.lost_report {
            return self;
        }
        CliError {
            cause: format!("{change}; only the report was lost: {}", self.cause),
            hint: Some(
                "the change is made: do NOT rerun the command; `peerbook stats STORE` or `peerbook verify STORE` shows the store".into(),
            ),
            ..self
        }
    }

    /// A store error, with a hint fitting its kind.
    pub fn store(e: Error, key: &KeySource, spec: &StoreSpec) -> Self {
        let hint = match &e {
            Error::WrongKey => Some(format!(
                "this book was sealed with another key (after rotate-key: the new key file); pass it with --key-file PATH or --key-env VAR (now using {key})"
            )),
            Error::Locked { .. } => Some(
                "another process (a node or another peerbook command) has this store open; stop it and retry".into(),
            ),
            Error::InsecureKeyFile { path, .. } => {
                Some(format!("run `chmod 600 {}`", path.display()))
            }
            Error::Corrupted { .. } => Some(format!(
                "run `peerbook verify {spec}` for a report and `peerbook repair {spec}` to quarantine bad records"
            )),
            Error::NotFound { .. } => Some(format!("`peerbook list {spec}` shows the stored peers")),
            Error::QuotaExceeded(_) => Some(format!(
                "free room with `peerbook cleanup {spec} --stale` or `--lru N`"
            )),
            Error::SchemaTooNew { .. } => Some("install a newer peerbook".into()),
            _ => None,
        };
        CliError {
            hint,
            ..CliError::new(e.to_string())
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.cause)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

use peerbook_engines::DirContents;
#[cfg(test)]
use peerbook_engines::Engine;
/// The engine registry: every engine a spec can name, and `BACKEND:PATH` specs
/// (`lmdb:./peers`). This CLI's features `lmdb`, `rocksdb`, `file` forward to it.
pub use peerbook_engines::StoreSpec;

/// The CLI's conventions for a store: where its key file lives, whether it exists.
pub trait StoreSpecExt {
    /// The default key file: `<PATH>.key`, a sibling of the store directory.
    fn default_key_file(&self) -> PathBuf;
    /// Whether the directory holds a store of the spec's engine (its marker file
    /// and nothing the engine does not make,
    /// [`Engine::probe`](peerbook_engines::Engine::probe)). A missing or empty
    /// directory, or one holding only what an interrupted creation left, is
    /// `false`. A directory holding anything else (another engine's store, a parent
    /// of the store, unrelated files, even beside a store; another program's
    /// RocksDB database or LMDB environment) is an error, naming what it found: no
    /// command opens an engine there, which would create its files in it (LMDB:
    /// its databases in the environment; and `clear --destroy-key` would then
    /// remove them). One that cannot be listed (permission denied, not a
    /// directory), or an LMDB environment that cannot be read, is an error too,
    /// never taken for "no store" (a write command would then make a new key for
    /// an existing store).
    fn exists(&self) -> Result<bool, CliError>;
}

impl StoreSpecExt for StoreSpec {
    fn default_key_file(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".key");
        PathBuf::from(name)
    }

    fn exists(&self) -> Result<bool, CliError> {
        let unreadable = |e: std::io::Error| {
            CliError::new(format!(
                "cannot read the store directory {}: {e}",
                self.path.display()
            ))
            .hint("check the path and its permissions: the store is a directory this user can list")
        };
        let path = self.path.display();
        match self.engine.probe(&self.path).map_err(unreadable)? {
            DirContents::Store => Ok(true),
            DirContents::Nothing | DirContents::Leftovers => Ok(false),
            DirContents::Foreign {
                other: Some(other),
                ..
            } if other != self.engine => Err(CliError::new(format!(
                "{path} holds a {other} store, not a {} store",
                self.engine
            ))
            .hint(format!("name it {other}:{path}; nothing was changed"))),
            DirContents::Foreign { unexpected, .. } if unexpected.is_empty() => {
                let (what, why) = match self.engine {
                    peerbook_engines::Engine::Lmdb => (
                        "an LMDB environment".to_string(),
                        "named databases peerbook never makes, or data in its main database",
                    ),
                    engine => (
                        format!("a {engine} database"),
                        "column families peerbook never makes, or data outside peerbook's",
                    ),
                };
                Err(CliError::new(format!(
                    "{path} holds no {} store: it holds {what} that peerbook did not make ({why})",
                    self.engine
                ))
                .hint(
                    "check the path: name the store's own directory (peerbook opens no other program's database); nothing was changed",
                ))
            }
            DirContents::Foreign { unexpected, .. } => Err(CliError::new(format!(
                "{path} holds no {} store: it has files that a {} store does not: {}",
                self.engine,
                self.engine,
                name_list(&unexpected)
            ))
            .hint(if unexpected.iter().any(|n| system_litter(n)) {
                "if this is your store, move these files out of it (the system makes \
                 them; peerbook opens no store beside files it did not make); otherwise \
                 check the path; nothing was changed"
            } else {
                "check the path: name the store's own directory (peerbook opens no store in a directory of other files); nothing was changed"
            })),
            // A kind of contents added to the engines after this match was written
            // (`DirContents` is non_exhaustive): not a store to open.
            _ => Err(CliError::new(format!(
                "{path} holds no {} store this peerbook knows how to open",
                self.engine
            ))
            .hint("check the path; nothing was changed")),
        }
    }
}

/// `names` for an error line: the first few, escaped, then how many more.
fn name_list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut list: Vec<String> = names.iter().take(SHOWN).map(|n| format!("{n:?}")).collect();
    if names.len() > SHOWN {
        list.push(format!("and {} more", names.len() - SHOWN));
    }
    list.join(", ")
}

/// Where the master key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A key file (32 raw bytes, mode 0600).
    File(PathBuf),
    /// An environment variable holding 64 hex characters.
    Env(String),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::File(p) => write!(f, "key file {}", p.display()),
            KeySource::Env(v) => write!(f, "key from ${v}"),
        }
    }
}

impl KeySource {
    /// From the flags, defaulting to the spec's sibling key file.
    pub fn resolve(key_file: Option<&Path>, key_env: Option<&str>, spec: &StoreSpec) -> Self {
        match (key_file, key_env) {
            (_, Some(var)) => KeySource::Env(var.to_owned()),
            (Some(p), None) => KeySource::File(p.to_path_buf()),
            (None, None) => KeySource::File(spec.default_key_file()),
        }
    }

    /// `peerbook SUB STORE` and the flag that passes this key, as a command
    /// line a message suggests that runs as shown in a POSIX shell: the store
    /// and the flag's value quoted when they need it ([`shell_word`]), the flag
    /// as `--key-env=VAR` or `--key-file=PATH` (a value starting with `-` is
    /// still its value), none for `spec`'s default key file (what
    /// [`resolve`](Self::resolve) takes without flags):
    /// `peerbook stats 'lmdb:/my peers' --key-file='/my keys/k.key'`. `None`
    /// when the store's path or the key file's is not UTF-8: no command line
    /// shown as text would name it.
    pub fn command_for(&self, sub: &str, spec: &StoreSpec) -> Option<String> {
        spec.path.to_str()?;
        let store = shell_word(&spec.to_string());
        let flag = match self {
            KeySource::Env(var) => format!(" --key-env={}", shell_word(var)),
            KeySource::File(path) if *path == spec.default_key_file() => String::new(),
            KeySource::File(path) => format!(" --key-file={}", shell_word(path.to_str()?)),
        };
        Some(format!("peerbook {sub} {store}{flag}"))
    }

    /// Load the key; `create` makes a missing key file (0600, create-new).
    pub fn load(&self, create: bool) -> Result<MasterKey, CliError> {
        match self {
            KeySource::Env(var) => {
                let value = Zeroizing::new(std::env::var(var).map_err(|_| {
                    CliError::new(format!(
                        "environment variable {var} is not set (or not UTF-8)"
                    ))
                    .hint(format!(
                        "export {var}=<64 hex characters of the master key>"
                    ))
                })?);
                let bytes = Zeroizing::new(decode_hex(value.trim()).ok_or_else(|| {
                    CliError::new(format!(
                        "{var} must hold exactly 64 hex characters (a 256-bit key)"
                    ))
                })?);
                MasterKey::from_slice(&bytes).map_err(|e| CliError::new(e.to_string()))
            }
            KeySource::File(path) => {
                let key_error = |e: Error| {
                    let hint = match &e {
                        Error::InsecureKeyFile { path, .. } => {
                            format!("run `chmod 600 {}`", path.display())
                        }
                        _ => "pass the book's key with --key-file PATH or --key-env VAR".into(),
                    };
                    CliError::new(e.to_string()).hint(hint)
                };
                if create {
                    MasterKey::load_or_create(path).map_err(key_error)
                } else if std::fs::symlink_metadata(path).is_err() {
                    Err(CliError::new(format!("key file {} not found", path.display())).hint(
                        "pass the book's key with --key-file PATH or --key-env VAR (the default is <PATH>.key beside the store)",
                    ))
                } else {
                    MasterKey::load(path).map_err(key_error)
                }
            }
        }
    }
}

/// 64 hex characters to 32 bytes.
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // One allocation of the final size (no reallocation leaves key bytes behind);
    // a partial result is wiped on the error path.
    let mut out = Zeroizing::new(Vec::with_capacity(32));
    for i in (0..text.len()).step_by(2) {
        out.push(u8::from_str_radix(text.get(i..i + 2)?, 16).ok()?);
    }
    Some(std::mem::take(&mut *out))
}

/// Whether a command only reads or may write (create the store and its key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The store and key must exist.
    Read,
    /// A missing store and key file are created.
    Write,
}

/// Open the book `spec` names with the key from `key`, under the retention settings
/// stored in the book (the defaults when it has none yet); `options` adjusts them
/// (and what it changes is stored at open).
pub fn open_with(
    spec: &StoreSpec,
    key: &KeySource,
    access: Access,
    options: impl FnOnce(Options) -> Options,
) -> Result<Book, CliError> {
    if access == Access::Read && !spec.exists()? {
        return Err(
            CliError::new(format!("no store at {}", spec.path.display())).hint(format!(
                "check the path; a new store is created by `peerbook init {spec}` or `peerbook import {spec} FILE`"
            )),
        );
    }
    // A key is created only with a new store: a fresh key cannot open an existing
    // store's secrets, and would leave a stray key file and a WrongKey error.
    let existing = spec.exists()?;
    if let (Access::Write, true, KeySource::File(path)) = (access, existing, key) {
        if std::fs::symlink_metadata(path).is_err() {
            return Err(CliError::new(format!(
                "the store {spec} already holds data, but its key file {} does not exist; \
                 refusing to create a new key for an existing store",
                path.display()
            ))
            .hint(format!(
                "pass the book's key with --key-file PATH or --key-env VAR (expected {})",
                path.display()
            )));
        }
    }
    let master = key.load(access == Access::Write && !existing)?;
    let backend = spec
        .open()
        .map_err(|e| CliError::store(e.into(), key, spec))?;
    // The engine's files are there, but a command that needs a book must not
    // start one (PeerBook::open would) in a store peerbook never wrote.
    if access == Access::Read
        && !peerbook::store::holds_book(&*backend)
            .map_err(|e| CliError::store(e.into(), key, spec))?
    {
        return Err(CliError::new(format!(
            "no peerbook book at {}: the {} store there holds no peerbook schema version",
            spec.path.display(),
            spec.engine
        ))
        .hint(format!(
            "check the path; a new book is created by `peerbook init {spec}` or `peerbook import {spec} FILE`"
        )));
    }
    let defaults = Options::new(master);
    let base = match peerbook::store::read_retention(&backend) {
        Ok(Some(stored)) => stored.apply(defaults),
        Ok(None) => defaults,
        // Opening replaces a damaged value with the options it opens with.
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "warning: {e}; using the default retention settings (`peerbook settings {spec}` shows and changes them)"
            );
            defaults
        }
    };
    PeerBook::open(backend, options(base)).map_err(|e| CliError::store(e, key, spec))
}

/// Whether `name` is a file an operating system or file server drops into any
/// folder: Finder's `.DS_Store`, Windows' `Thumbs.db` and `desktop.ini`, NFS's
/// `.nfsXXXX` (a file deleted while open). Not ignored in a store (they may
/// be another program's files too): the refusal's hint says to move them out.
fn system_litter(name: &str) -> bool {
    name == ".DS_Store"
        || name.eq_ignore_ascii_case("Thumbs.db")
        || name.eq_ignore_ascii_case("desktop.ini")
        || name.starts_with(".nfs")
}

/// Close `book` (of the store `spec` names) and open it again on the same backend,
/// with its retention settings adjusted by `options` (what it changes is stored
/// at open). The backend stays open in between, so the engine's lock keeps other
/// processes out: what the caller checked on `book` still holds.
pub fn reopen_with(
    book: Book,
    spec: &StoreSpec,
    key: &KeySource,
    options: impl FnOnce(Options) -> Options,
) -> Result<Book, CliError> {
    let master = key.load(false)?;
    let base = book.retention().apply(Options::new(master));
    let backend = book.close().map_err(|e| CliError::store(e, key, spec))?;
    PeerBook::open(backend, options(base)).map_err(|e| CliError::store(e, key, spec))
}

/// Write a line to stdout and flush it. A closed pipe (`peerbook list | head`) is
/// no error; any other failure (a full disk behind `> backup.json`) is, so the
/// command exits 1 rather than report success over output cut short.
pub fn out(line: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(line.as_bytes())
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError {
            lost_report: true,
            ..CliError::new(format!("cannot write to stdout: {e}")).hint(
                "the output is incomplete: do not use it; rerun the command once it can be written",
            )
        }),
        _ => Ok(()),
    }
}

/// `println!` that never panics on a closed stdout, and returns the `CliError` of
/// any other failed write from the enclosing function.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::store::out(&format!($($arg)*))? };
}

/// `s` as one word of a POSIX shell's command line: as it is when it holds only
/// characters no shell treats specially (letters, digits, `_ @ % + = : , . / -`),
/// else in single quotes, each `'` in it written `'\''` (and `''` for the empty
/// string).
pub(crate) fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command a message suggests is quoted for a POSIX shell: a path with
    /// a space or a quote is quoted, a plain one is not; the key flag's value
    /// follows `=`.
    #[test]
    fn the_suggested_command_is_quoted_for_a_shell() {
        let spec = StoreSpec {
            engine: Engine::Lmdb,
            path: "/tmp/peers".into(),
        };
        let file = |p: &str| {
            KeySource::File(PathBuf::from(p))
                .command_for("stats", &spec)
                .unwrap()
        };
        let stats = "peerbook stats lmdb:/tmp/peers";
        assert_eq!(
            file("/keys/k.key"),
            format!("{stats} --key-file=/keys/k.key")
        );
        assert_eq!(
            file("/my keys/k.key"),
            format!("{stats} --key-file='/my keys/k.key'")
        );
        assert_eq!(
            file("/it's/k.key"),
            format!(r"{stats} --key-file='/it'\''s/k.key'")
        );
        assert_eq!(
            file("/a $HOME`x`"),
            format!("{stats} --key-file='/a $HOME`x`'")
        );
        assert_eq!(file("-k"), format!("{stats} --key-file=-k"));
        assert_eq!(file("/tmp/peers.key"), stats);
        assert_eq!(
            KeySource::Env("PEERBOOK_KEY".into()).command_for("stats", &spec),
            Some(format!("{stats} --key-env=PEERBOOK_KEY"))
        );
        let spaced = StoreSpec {
            engine: Engine::Lmdb,
            path: "/my peers".into(),
        };
        assert_eq!(
            KeySource::File(spaced.default_key_file()).command_for("stats", &spaced),
            Some("peerbook stats 'lmdb:/my peers'".into())
        );
        assert_eq!(shell_word(""), "''");
        assert_eq!(shell_word("~/k"), "'~/k'");
        assert_eq!(shell_word("*"), "'*'");
    }

    /// A path that is not UTF-8 (the store's or the key file's) gives no
    /// command line: none shown as text would name it.
    #[cfg(unix)]
    #[test]
    fn no_command_is_suggested_for_a_path_that_is_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"/tmp/p\xffeers"));
        let spec = StoreSpec {
            engine: Engine::Lmdb,
            path: odd.clone(),
        };
        let default = KeySource::File(spec.default_key_file());
        assert_eq!(default.command_for("stats", &spec), None);
        let plain = StoreSpec {
            engine: Engine::Lmdb,
            path: "/tmp/peers".into(),
        };
        assert_eq!(KeySource::File(odd).command_for("stats", &plain), None);
    }

    #[cfg(all(feature = "lmdb", feature = "file"))]
    #[test]
    fn specs() {
        let s: StoreSpec = "lmdb:./peers/".parse().unwrap();
        assert_eq!(s.engine, Engine::Lmdb);
        assert!(Engine::available().contains(&Engine::File));
        assert_eq!(s.default_key_file(), PathBuf::from("./peers.key"));
        // The key lands beside the store directory, never inside it.
        for spec in ["lmdb:./peers/.", "lmdb:./peers/./", "lmdb:./peers//."] {
            let s: StoreSpec = spec.parse().unwrap();
            assert_eq!(s.default_key_file(), PathBuf::from("./peers.key"), "{spec}");
        }
        assert!("lmdb:./peers/..".parse::<StoreSpec>().is_err());
        match "rocksdb:/a/b".parse::<StoreSpec>() {
            Ok(spec) => assert_eq!(spec.engine, Engine::Rocks),
            Err(e) => {
                assert!(!Engine::Rocks.compiled_in());
                assert!(
                    matches!(e, peerbook_engines::SpecError::NotCompiledIn { .. }),
                    "{e}"
                );
            }
        }
        assert_eq!(
            "file:c:d".parse::<StoreSpec>().unwrap().path,
            PathBuf::from("c:d")
        );
        for bad in ["peers", "sqlite:./x", "lmdb:", "file:/", ":x", "lmdb:."] {
            assert!(bad.parse::<StoreSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hex() {
        assert_eq!(decode_hex(&"ab".repeat(32)), Some(vec![0xab; 32]));
        assert_eq!(decode_hex(&"ab".repeat(31)), None);
        assert_eq!(decode_hex(&"zz".repeat(32)), None);
        assert_eq!(decode_hex(&format!("{}é", "a".repeat(62))), None);
        assert_eq!(decode_hex(&format!("+1{}", "a".repeat(62))), None);
    }
}
