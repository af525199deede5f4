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

/// What a directory holds, recursively: each path (relative to it) with its
/// bytes, or `None` for a directory. Panics when it cannot be read.
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let entries =
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            if path.is_dir() {
                out.insert(rel, None);
                todo.push(path);
            } else {
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
                out.insert(rel, Some(bytes));
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

/// Open `store` (under `tmp`) with `open`, which must fail, and check that `tmp`
/// then holds exactly `expected`.
fn assert_fails_and_leaves<B>(
    case: &str,
    open: &impl Fn(&Path) -> Result<B, BackendError>,
    tmp: &Path,
    store: &Path,
    expected: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) {
    let result = open(store);
    assert!(
        result.is_err(),
        "{case}: an open of a store it cannot make must fail"
    );
    drop(result);
    let left = tree(tmp);
    // Paths shortened: those of the long-path case run to 4 KiB each.
    let short = |p: &PathBuf| -> String { p.display().to_string().chars().take(40).collect() };
    assert!(
        &left == expected,
        "{case}: a failed open must leave the user's directory as it found it \
         (without the directories it created); left {} entries: {:?}",
        left.len(),
        left.keys().map(short).collect::<Vec<_>>()
    );
}

/// A failed open of an on-disk backend returns an error, without panicking, and
/// removes the directories it created on the way to its store: in a temp dir
/// holding one user file (`notes.txt`), each case leaves exactly that file, with
/// its bytes (and what the case itself put there).
///
/// `open` opens (creating it when missing) the store in the directory given, as
/// the backend's own `open` with options that create a missing store. The cases:
/// - `tmp/a/b/<a 300-byte name>`: a name too long for the file system, refused
///   once `a` and `b` are made (`a` must go);
/// - on Linux, `tmp/a/b/...` 4094 bytes long: the directories can all be made,
///   but no file inside the last one (the path would pass `PATH_MAX`): the open
///   fails after its store directory exists (all of them must go);
/// - `tmp/a/b/book` a regular file where the store directory should be: refused,
///   and the file stays with its bytes.
pub fn failed_open_leaves_no_new_directories<B>(open: impl Fn(&Path) -> Result<B, BackendError>) {
    let user_only: BTreeMap<PathBuf, Option<Vec<u8>>> =
        BTreeMap::from([(PathBuf::from(USER_FILE), Some(USER_BYTES.to_vec()))]);

    let tmp = temp_with_user_file();
    let store = tmp.path().join("a").join("b").join("n".repeat(300));
    assert_fails_and_leaves("a name too long", &open, tmp.path(), &store, &user_only);

    if cfg!(target_os = "linux") {
        let tmp = temp_with_user_file();
        let mut store = tmp.path().join("a").join("b");
        let mut len = store.as_os_str().len();
        // Components of at most 200 bytes (names take 255), the last one making
        // the whole path exactly LINUX_DIR_LEN bytes long.
        while len < LINUX_DIR_LEN {
            let name_len = (LINUX_DIR_LEN - len - 1).min(200);
            if name_len == 0 {
                break;
            }
            store.push("d".repeat(name_len));
            len = store.as_os_str().len();
        }
        if len == LINUX_DIR_LEN {
            assert_fails_and_leaves(
                "a store directory with no room for a file name",
                &open,
                tmp.path(),
                &store,
                &user_only,
            );
        }
    }

    let tmp = temp_with_user_file();
    let parent = tmp.path().join("a").join("b");
    std::fs::create_dir_all(&parent).expect("make a/b");
    let store = parent.join("book");
    std::fs::write(&store, b"not a store directory").expect("write a/b/book");
    let mut expected = user_only;
    expected.insert(PathBuf::from("a"), None);
    expected.insert(PathBuf::from("a/b"), None);
    expected.insert(
        PathBuf::from("a/b/book"),
        Some(b"not a store directory".to_vec()),
    );
    assert_fails_and_leaves(
        "a regular file where the store directory should be",
        &open,
        tmp.path(),
        &store,
        &expected,
    );
}
