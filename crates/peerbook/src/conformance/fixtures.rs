//! The workspace's committed fixture books (`tests/fixtures`), for the tests of the
//! root package and of every backend crate: where they are, and a copy to open
//! (opening may repair, migrate or compact a book: never open one in place).

use std::path::{Path, PathBuf};

/// The workspace's `tests/fixtures` folder, found from the package whose test is
/// running: the first `tests/fixtures` folder in the package's directory, its
/// parent or its grandparent (the workspace root, for a crate in `crates/`).
///
/// The package's directory is `CARGO_MANIFEST_DIR` read when the test runs (cargo
/// sets it for the test process), never the path compiled in: a target dir kept
/// between clones may hold a test binary built in another checkout. A binary started
/// by hand, without that variable, starts from the current directory.
///
/// # Panics
///
/// When no such folder is found (the message names where it looked).
pub fn fixtures_dir() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .expect("neither CARGO_MANIFEST_DIR nor a current directory");
    // ".." joined, not a lexical parent: the OS resolves it, as in `<crate>/../..`
    let mut dir = package.clone();
    for _ in 0..3 {
        let fixtures = dir.join("tests/fixtures");
        if fixtures.is_dir() {
            return fixtures;
        }
        dir = dir.join("..");
    }
    panic!(
        "no tests/fixtures folder in {} or the two folders above it",
        package.display()
    );
}

/// Copy the folder `from`, with its subfolders, into `to` (created if missing).
///
/// # Panics
///
/// On any I/O error (the message names the file).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read dir {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("read dir {}: {e}", from.display()));
        let target = to.join(entry.file_name());
        let is_dir = entry
            .file_type()
            .unwrap_or_else(|e| panic!("type of {}: {e}", entry.path().display()))
            .is_dir();
        if is_dir {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}
