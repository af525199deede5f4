//! Conformance of a failed open of an on-disk backend: it returns an error (no
//! panic) and leaves the user's file system as it found it, without the
//! directories it created on the way to its store (see
//! [`NewDirs`](crate::backend::NewDirs)).
//!
//! Unlike the rest of the kit, these functions take the backend's `open` itself
//! (on a path), not a [`Factory`](super::Factory): the point is an open that
//! fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::backend::BackendError;

/// The user's own file, which every case puts in the temp dir first.
const USER_FILE: &str = "notes.txt";
/// Its bytes, which must be there, unchanged, after each failed open.
const USER_BYTES: &[u8] = b"the user's own notes\n";
/// The longest path Linux takes (`PATH_MAX` is 4096 with the terminating NUL):
/// a directory of 4094 bytes can be made, but no file inside it (`/` and one
/// byte are already 4096).
const LINUX_DIR_LEN: usize = 4094;
/// Linux's `PATH_MAX`, the terminating NUL included: a path takes at most 4095
/// bytes.
const LINUX_PATH_MAX: usize = 4096;

/// One entry of a [`tree`]: a directory, a file with its bytes, or a symbolic
/// link with its target (never followed).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
}

/// What a directory holds, recursively: each path (relative to it) with what
/// is there. Panics when it cannot be read.
fn tree(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let what = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            if what.is_symlink() {
                let target = std::fs::read_link(&path)
                    .unwrap_or_else(|e| panic!("read link {}: {e}", path.display()));
                out.insert(rel, Entry::Link(target));
            } else if what.is_dir() {
                out.insert(rel, Entry::Dir);
                todo.push(path);
            } else {
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                out.insert(rel, Entry::File(bytes));
            }
        }
    }
    out
}

/// A fresh temp dir holding only the user's file.
fn temp_with_user_file() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("a temp dir");
    std::fs::write(tmp.path().join(USER_FILE), USER_BYTES).expect("write the user's file");
    tmp
}

/// Open `store` (under `tmp`) with `open`, which must fail with an error
/// `expected_kind` accepts, and check that `tmp` then holds exactly `expected`.
/// Returns what the error says (its `Display`).
fn assert_fails_and_leaves<B>(
    case: &str,
    open: &impl Fn(&Path) -> Result<B, BackendError>,
    tmp: &Path,
    store: &Path,
    expected_kind: impl Fn(&BackendError) -> bool,
    expected: &BTreeMap<PathBuf, Entry>,
) -> String {
    let said = match open(store) {
        Ok(_) => panic!("{case}: an open of a store it cannot make must fail"),
        Err(e) => {
            assert!(
                expected_kind(&e),
                "{case}: not the expected kind of error: {e:?}"
            );
            e.to_string()
        }
    };
    let left = tree(tmp);
    // Paths shortened: those of the long-path case run to 4 KiB each.
    let short = |p: &PathBuf| -> String {
        let s = p.display().to_string();
        let tail: String = s
            .chars()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("{}...{tail}", s.chars().take(20).collect::<String>())
    };
    assert!(
        &left == expected,
        "{case}: a failed open must leave the user's directory as it found it \
         (without the directories it created); left {} entries: {:?}",
        left.len(),
        left.keys().map(short).collect::<Vec<_>>()
    );
    said
}

/// The last `n` characters of `s`: of an error naming a 4 KiB path, the part
/// worth printing.
fn tail(s: &str, n: usize) -> String {
    let skip = s.chars().count().saturating_sub(n);
    s.chars().skip(skip).collect()
}

/// An [`io::ErrorKind`](std::io::ErrorKind) of a [`BackendError::Io`], as the
/// backend reported it.
fn io_kind(e: &BackendError) -> Option<std::io::ErrorKind> {
    match e {
        BackendError::Io(e) => Some(e.kind()),
        _ => None,
    }
}

/// `tmp/a/b/...` exactly `len` bytes long: components of at most 200 bytes
/// (names take 255), the previous one shortened by one byte where the last
/// would otherwise have to be empty.
fn path_of_len(tmp: &Path, len: usize) -> PathBuf {
    let mut path = tmp.join("a").join("b");
    loop {
        let left = len.saturating_sub(path.as_os_str().len());
        if left < 2 {
            break;
        }
        // A name of `n` bytes takes `n + 1` with its `/`; never leave 1 byte.
        let mut name_len = (left - 1).min(200);
        if left - (name_len + 1) == 1 {
            name_len -= 1;
        }
        path.push("d".repeat(name_len));
    }
    path
}

/// Where an engine's own open fails, for the case that reaches it (Linux
/// only): a store path of [`store_path_len`](Self::store_path_len) bytes, short
/// enough for its directories and first files ([`fits`](Self::fits)), too long
/// for a longer file name of the engine ([`fails_on`](Self::fails_on));
/// `PATH_MAX` is 4096, so a path takes at most 4095 bytes. That the open got
/// that far, its error proves ([`error_says`](Self::error_says)).
#[derive(Clone, Copy, Debug)]
pub struct EngineFailure<'a> {
    /// The length of the store's path, in bytes, found by trying: the engine
    /// must make at least one file there before it fails.
    pub store_path_len: usize,
    /// The names (relative to the store directory) of what the open makes in
    /// it before the engine fails (its lock file first): each fits at
    /// `store_path_len` (checked: the path, a `/` and the name in 4095 bytes).
    pub fits: &'a [&'a str],
    /// The name (relative to the store directory) of the engine's file that
    /// does not fit at `store_path_len` (checked), where its open fails.
    pub fails_on: &'a str,
    /// What the open's error says (its `Display`) when it fails in the engine,
    /// and not when it fails before it (checked against the case with no room
    /// for any file): proof that the open reached the engine. Wording only an
    /// error of the engine's own open carries (a file only the engine makes,
    /// or a message of its own), never a prefix every I/O error of the
    /// backend's open has: the check against one earlier failure cannot
    /// catch that.
    pub error_says: &'a str,
    /// The files, by name, the engine is documented to leave in the store
    /// directory after such a failure (their bytes are not compared), among
    /// [`fits`](Self::fits); with any, the store directory stays, and so do
    /// the new ones above it. Empty for a backend whose failed open removes all
    /// it made.
    pub leaves: &'a [&'a str],
}

impl EngineFailure<'_> {
    /// Whether a file `name` (relative to the store directory) fits at
    /// `store_path_len`: the path, a `/` and the name in `PATH_MAX - 1` bytes.
    fn fits_at_len(&self, name: &str) -> bool {
        self.store_path_len + 1 + name.len() < LINUX_PATH_MAX
    }
}

/// A failed open of an on-disk backend returns an error of the expected kind,
/// without panicking, and removes the directories it created on the way to its
/// store: in a temp dir holding one user file (`notes.txt`), each case leaves
/// exactly that file, with its bytes (and what the case itself put there, or
/// what `engine` says the engine leaves).
///
/// `open` opens (creating it when missing) the store in the directory given, as
/// the backend's own `open` with options that create a missing store. First,
/// as a control, it must open a fresh `tmp/x/y/z` (then dropped, which closes
/// it). The failing cases:
/// - `tmp/a/b/<a 300-byte name>`: a name too long for the file system, refused
///   once `a` and `b` are made (`a` must go): [`BackendError::Io`] of kind
///   `InvalidFilename`;
/// - on Linux, `tmp/a/b/...` 4094 bytes long: the directories can all be made,
///   but no file inside the last one (the path would pass `PATH_MAX`): the open
///   fails after its store directory exists (all of them must go);
///   [`BackendError::Io`];
/// - on Linux, `tmp/a/b/...` [`engine.store_path_len`](EngineFailure) bytes long:
///   the open gets as far as the engine, which fails on a longer file name
///   after it made its first files: [`BackendError::Io`] saying
///   [`engine.error_says`](EngineFailure) (which the error of the case before
///   does not say), and only [`engine.leaves`](EngineFailure) stays (with the
///   directories holding it); the names the engine gives are checked to fit,
///   or not, at that length;
/// - empty directories there before stay: `tmp/keep/` above the store
///   `tmp/keep/<a 300-byte name>` (kind `InvalidFilename`) and, on Linux, an
///   empty store directory 4094 bytes long made before the open
///   ([`BackendError::Io`]), with those above it;
/// - `tmp/a/b/book` a regular file where the store directory should be:
///   [`BackendError::Io`], and the file stays with its bytes;
/// - on Unix, a dangling symbolic link `tmp/link` as the store directory, or
///   above it (`tmp/link/a/book`): [`BackendError::Io`], the link stays; and a
///   link `tmp/link` to an empty `tmp/real`, the store `tmp/link/a/<a 300-byte
///   name>`: kind `InvalidFilename`, the link stays, and `real`, empty.
pub fn failed_open_leaves_no_new_directories<B>(
    open: impl Fn(&Path) -> Result<B, BackendError>,
    engine: EngineFailure<'_>,
) {
    let user_only: BTreeMap<PathBuf, Entry> =
        BTreeMap::from([(PathBuf::from(USER_FILE), Entry::File(USER_BYTES.to_vec()))]);
    let is_io = |e: &BackendError| io_kind(e).is_some();

    // The control: the same `open` makes a store where it can.
    let tmp = temp_with_user_file();
    let fresh = tmp.path().join("x").join("y").join("z");
    match open(&fresh) {
        Ok(backend) => drop(backend),
        Err(e) => panic!("the control: open must make a fresh store tmp/x/y/z: {e:?}"),
    }
    assert!(fresh.is_dir(), "the control: the store directory is made");

    let tmp = temp_with_user_file();
    let store = tmp.path().join("a").join("b").join("n".repeat(300));
    assert_fails_and_leaves(
        "a name too long",
        &open,
        tmp.path(),
        &store,
        |e| io_kind(e) == Some(std::io::ErrorKind::InvalidFilename),
        &user_only,
    );

    if cfg!(target_os = "linux") {
        let tmp = temp_with_user_file();
        let store = path_of_len(tmp.path(), LINUX_DIR_LEN);
        assert_eq!(store.as_os_str().len(), LINUX_DIR_LEN);
        let before_engine = assert_fails_and_leaves(
            "a store directory with no room for a file name",
            &open,
            tmp.path(),
            &store,
            is_io,
            &user_only,
        );

        fails_in_the_engine(&open, engine, &user_only, &before_engine);
    }

    existing_empty_directories_stay(&open, &user_only);

    let tmp = temp_with_user_file();
    let parent = tmp.path().join("a").join("b");
    std::fs::create_dir_all(&parent).expect("make a/b");
    let store = parent.join("book");
    std::fs::write(&store, b"not a store directory").expect("write a/b/book");
    let mut expected = user_only.clone();
    expected.insert(PathBuf::from("a"), Entry::Dir);
    expected.insert(PathBuf::from("a/b"), Entry::Dir);
    expected.insert(
        PathBuf::from("a/b/book"),
        Entry::File(b"not a store directory".to_vec()),
    );
    assert_fails_and_leaves(
        "a regular file where the store directory should be",
        &open,
        tmp.path(),
        &store,
        is_io,
        &expected,
    );

    #[cfg(unix)]
    symbolic_links_stay(&open, &user_only);
}

/// The case that reaches the engine (Linux; see [`EngineFailure`]): `before`
/// is what the error of an open failing before the engine said (no room for
/// any file in the store directory).
fn fails_in_the_engine<B>(
    open: &impl Fn(&Path) -> Result<B, BackendError>,
    engine: EngineFailure<'_>,
    user_only: &BTreeMap<PathBuf, Entry>,
    before: &str,
) {
    let is_io = |e: &BackendError| io_kind(e).is_some();
    let len = engine.store_path_len;
    assert!(!engine.fits.is_empty(), "EngineFailure: name what fits");
    for name in engine.fits {
        assert!(
            engine.fits_at_len(name),
            "EngineFailure: {name} does not fit at {len} bytes"
        );
    }
    assert!(
        !engine.fits_at_len(engine.fails_on),
        "EngineFailure: {} fits at {len} bytes: the engine would not fail on it",
        engine.fails_on
    );
    for name in engine.leaves {
        assert!(
            engine.fits.contains(name),
            "EngineFailure: {name} left, but not among `fits`"
        );
    }
    assert!(
        !engine.error_says.is_empty() && !before.contains(engine.error_says),
        "EngineFailure: an open failing before the engine must not say {:?} (its \
         error: ...{})",
        engine.error_says,
        tail(before, 200)
    );
    let tmp = temp_with_user_file();
    let store = path_of_len(tmp.path(), engine.store_path_len);
    assert_eq!(store.as_os_str().len(), engine.store_path_len);
    let mut expected = user_only.clone();
    if !engine.leaves.is_empty() {
        // The store directory holds what the engine left: it stays, and so
        // do the new directories above it.
        for dir in store.ancestors().take_while(|d| *d != tmp.path()) {
            let rel = dir.strip_prefix(tmp.path()).expect("under tmp");
            expected.insert(rel.to_path_buf(), Entry::Dir);
        }
    }
    let rel_store = store
        .strip_prefix(tmp.path())
        .expect("under tmp")
        .to_path_buf();
    // The engine's files, of bytes not compared: taken as found.
    let engine_files = |left: &BTreeMap<PathBuf, Entry>| {
        let mut expected = expected.clone();
        for name in engine.leaves {
            let rel = rel_store.join(name);
            let found = left.get(&rel).cloned();
            assert!(
                matches!(found, Some(Entry::File(_))),
                "an engine failure must leave {name} (a file) in the store directory"
            );
            expected.extend(found.map(|found| (rel, found)));
        }
        expected
    };
    let result = open(&store);
    match &result {
        Ok(_) => panic!(
            "a store path of {} bytes: the engine's open must fail",
            engine.store_path_len
        ),
        Err(e) => {
            assert!(is_io(e), "the engine's failure: not an Io error: {e:?}");
            let said = e.to_string();
            assert!(
                said.contains(engine.error_says),
                "a store path of {len} bytes: the open must fail in the engine, its error \
                 saying {:?}: ...{}",
                engine.error_says,
                tail(&said, 200)
            );
        }
    }
    drop(result);
    let left = tree(tmp.path());
    let expected = engine_files(&left);
    assert!(
        left == expected,
        "a store path of {} bytes, failing in the engine: must leave exactly \
         the user's file and {:?} (with the directories holding them); left {:?}",
        engine.store_path_len,
        engine.leaves,
        left.keys()
            .map(|p| p.file_name().map(|n| n
                .to_string_lossy()
                .chars()
                .take(20)
                .collect::<String>()))
            .collect::<Vec<_>>()
    );
}

/// Empty directories there before the open stay after it fails: `tmp/keep/`
/// above the store `tmp/keep/<a 300-byte name>` (kind `InvalidFilename`), and,
/// on Linux, an empty store directory made before the open, 4094 bytes long
/// (no room for a file in it: [`BackendError::Io`]), and those above it.
fn existing_empty_directories_stay<B>(
    open: &impl Fn(&Path) -> Result<B, BackendError>,
    user_only: &BTreeMap<PathBuf, Entry>,
) {
    let tmp = temp_with_user_file();
    let keep = tmp.path().join("keep");
    std::fs::create_dir(&keep).expect("make keep");
    let mut expected = user_only.clone();
    expected.insert(PathBuf::from("keep"), Entry::Dir);
    assert_fails_and_leaves(
        "an empty directory of the user's above a name too long",
        open,
        tmp.path(),
        &keep.join("n".repeat(300)),
        |e| io_kind(e) == Some(std::io::ErrorKind::InvalidFilename),
        &expected,
    );

    if cfg!(target_os = "linux") {
        let tmp = temp_with_user_file();
        let store = path_of_len(tmp.path(), LINUX_DIR_LEN);
        std::fs::create_dir_all(&store).expect("make the store directory");
        let expected = tree(tmp.path());
        assert_fails_and_leaves(
            "an empty store directory there before, with no room for a file name",
            open,
            tmp.path(),
            &store,
            |e| io_kind(e).is_some(),
            &expected,
        );
    }
}

/// The symbolic-link cases of [`failed_open_leaves_no_new_directories`]: a
/// dangling link at the store's path or above it (nothing can be made there:
/// the open fails), and a link to a directory above it (walked through, the
/// open failing on a name too long below it): each link stays, and so does
/// the directory, without what the open made in it.
#[cfg(unix)]
fn symbolic_links_stay<B>(
    open: &impl Fn(&Path) -> Result<B, BackendError>,
    user_only: &BTreeMap<PathBuf, Entry>,
) {
    let is_io = |e: &BackendError| io_kind(e).is_some();
    let tmp = temp_with_user_file();
    let link = tmp.path().join("link");
    let gone = tmp.path().join("gone");
    std::os::unix::fs::symlink(&gone, &link).expect("make a dangling link");
    let mut expected = user_only.clone();
    expected.insert(PathBuf::from("link"), Entry::Link(gone));
    for (case, store) in [
        (
            "a dangling symbolic link as the store directory",
            link.clone(),
        ),
        (
            "a dangling symbolic link above the store directory",
            link.join("a").join("book"),
        ),
    ] {
        assert_fails_and_leaves(case, open, tmp.path(), &store, is_io, &expected);
    }

    let tmp = temp_with_user_file();
    let real = tmp.path().join("real");
    std::fs::create_dir(&real).expect("make real");
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("make a link to real");
    let mut expected = user_only.clone();
    expected.insert(PathBuf::from("link"), Entry::Link(real));
    expected.insert(PathBuf::from("real"), Entry::Dir);
    assert_fails_and_leaves(
        "a symbolic link to a directory above the store directory",
        open,
        tmp.path(),
        &link.join("a").join("n".repeat(300)),
        |e| io_kind(e) == Some(std::io::ErrorKind::InvalidFilename),
        &expected,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the temp dir's length, the long paths are exactly as long as
    /// asked: none is skipped (a remainder of one byte after the 201-byte steps
    /// once left the 4094-byte case out, e.g. under a 58-byte `TMPDIR`).
    #[test]
    fn paths_of_len_are_exact_under_any_temp_dir() {
        for tmp_len in 1..=250 {
            let tmp = PathBuf::from(format!("/{}", "t".repeat(tmp_len - 1)));
            for len in [LINUX_DIR_LEN, 4093, 4086, 4082, 4085, 4000] {
                let path = path_of_len(&tmp, len);
                assert_eq!(path.as_os_str().len(), len, "a {tmp_len}-byte temp dir");
                assert!(path.components().all(|c| c.as_os_str().len() <= 255));
            }
        }
    }

    /// The control: an open that refuses before touching the disk does not
    /// pass the kit (a failed open proves nothing when no open can succeed).
    #[test]
    #[should_panic(expected = "the control")]
    fn an_open_that_always_refuses_fails_the_control() {
        failed_open_leaves_no_new_directories(
            |_| Err::<(), _>(BackendError::Io(std::io::Error::other("refused"))),
            EngineFailure {
                store_path_len: 4085,
                fits: &["LOCK"],
                fails_on: "snapshot.1.tmp",
                error_says: "snapshot.1.tmp",
                leaves: &[],
            },
        );
    }

    /// An open that makes its directories and its `LOCK` but never reaches an
    /// engine (it refuses any long path then) passes every case the kit had
    /// before it checked the engine's error, and fails the case that reaches
    /// the engine: nothing there proved the open got that far.
    #[cfg(target_os = "linux")]
    #[test]
    #[should_panic(expected = "the open must fail in the engine")]
    fn an_open_that_never_reaches_the_engine_fails_the_engine_case() {
        use crate::backend::NewDirs;
        let open = |path: &Path| -> Result<(), BackendError> {
            let made = NewDirs::create(path).map_err(|(made, e)| {
                made.undo_failed_open("test");
                BackendError::Io(e)
            })?;
            let lock = path.join("LOCK");
            let refused = match std::fs::write(&lock, b"") {
                Ok(()) if path.as_os_str().len() < 1000 => return Ok(()),
                Ok(()) => {
                    std::fs::remove_file(&lock).expect("remove LOCK");
                    std::io::Error::other("refused before any engine")
                }
                Err(e) => e,
            };
            made.undo_failed_open("test");
            Err(BackendError::Io(refused))
        };
        failed_open_leaves_no_new_directories(
            open,
            EngineFailure {
                store_path_len: 4085,
                fits: &["LOCK"],
                fails_on: "snapshot.1.tmp",
                error_says: "snapshot.1.tmp",
                leaves: &[],
            },
        );
    }
}
