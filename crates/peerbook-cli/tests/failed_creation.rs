//! The real `peerbook` binary on a command that was to create a store and failed:
//! `init` and `migrate` leave the file system as they found it (no store
//! directory, no directory made above it, no key file written), and leave
//! alone what was there before (a parent directory, the user's key file, an
//! existing TO). The failures are real and independent of permissions (tests may
//! run as root): a store name longer than the file system allows, made below
//! directories the open creates first; a FROM whose stored `max_bytes` its peers
//! already exceed, which TO takes before the import, so the import is refused.
//! An `init` whose report alone is lost (stdout `/dev/full`) keeps its store.
//! Needs LMDB and the file backend (no RocksDB).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use peerbook::{MasterKey, NewPeer, Options, PeerBook};
use peerbook_engines::StoreSpec;

/// Every entry under `dir`, sorted: its path relative to `dir`, and its bytes
/// (`None` for a directory).
fn tree(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                out.push((rel, None));
                walk(root, &path, out);
            } else {
                out.push((rel, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Run the binary in `dir`; its exit code and stderr.
fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let Output { status, stderr, .. } = Command::new(env!("CARGO_BIN_EXE_peerbook"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    (status.code(), stderr)
}

/// Run a command that must fail (exit 1) and leave `dir` exactly as it was.
#[track_caller]
fn fails_and_changes_nothing(dir: &Path, args: &[&str], cause: &str) -> String {
    let before = tree(dir);
    let (code, stderr) = run(dir, args);
    assert_eq!(code, Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(cause), "{args:?}: no {cause:?} in {stderr}");
    let after = tree(dir);
    let names = |t: &[(PathBuf, Option<Vec<u8>>)]| -> Vec<PathBuf> {
        t.iter().map(|(p, _)| p.clone()).collect()
    };
    assert_eq!(names(&after), names(&before), "{args:?} left: {stderr}");
    assert!(after == before, "{args:?} changed bytes: {stderr}");
    stderr
}

/// A name longer than any file system's 255 bytes: creating it fails (ENAMETOOLONG).
fn too_long() -> String {
    "x".repeat(300)
}

/// The user's own things, there before every command: a directory and a key file.
fn users_things(d: &Path) -> MasterKey {
    std::fs::create_dir_all(d.join("keep")).unwrap();
    std::fs::write(d.join("keep/notes.txt"), "mine").unwrap();
    MasterKey::load_or_create(d.join("user.key")).unwrap()
}

/// `init` of a new store whose open fails after it made the directories above
/// it: the key file it wrote and those directories go; a directory and a key
/// file that were there stay as they were.
#[test]
fn a_failed_init_leaves_no_key_file_and_no_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    users_things(d);
    let long = too_long();
    for engine in ["file", "lmdb"] {
        // A new key file, new directories a and a/b.
        let spec = format!("{engine}:./a/b/{long}");
        fails_and_changes_nothing(
            d,
            &["init", &spec, "--key-file", "new.key"],
            "File name too long",
        );
        // Below the user's directory, with the user's key file.
        let spec = format!("{engine}:./keep/x/{long}");
        fails_and_changes_nothing(
            d,
            &["init", &spec, "--key-file", "user.key"],
            "File name too long",
        );
        // The key from the environment: only the directories were made.
        let out = Command::new(env!("CARGO_BIN_EXE_peerbook"))
            .current_dir(d)
            .args(["init", &format!("{engine}:./c/d/{long}")])
            .args(["--key-env", "PEERBOOK_TEST_KEY"])
            .env("PEERBOOK_TEST_KEY", "ab".repeat(32))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("File name too long"), "{engine}: {stderr}");
        assert!(!d.join("c").exists(), "{engine}: directories left behind");
    }
    // The same command with a name that fits creates the store.
    let (code, stderr) = run(d, &["init", "file:./a/b/peers", "--key-file", "new.key"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(d.join("new.key").is_file() && d.join("a/b/peers").is_dir());
}

/// `init` of a new store that is made, whose report alone cannot be written
/// (stdout is `/dev/full`): the store and its key file stay (undoing them would
/// lose a store the user may already use), and the error says so.
#[cfg(target_os = "linux")]
#[test]
fn an_init_whose_report_is_lost_keeps_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for engine in ["file", "lmdb"] {
        let spec = format!("{engine}:./a/{engine}");
        let out = Command::new(env!("CARGO_BIN_EXE_peerbook"))
            .current_dir(d)
            .args(["init", &spec, "--key-file", &format!("{engine}.key")])
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("created store {spec}")),
            "{stderr}"
        );
        assert!(stderr.contains("only the report was lost"), "{stderr}");
        assert!(d.join(format!("{engine}.key")).is_file(), "{engine}");
        let (code, stderr) = run(d, &["stats", &spec, "--key-file", &format!("{engine}.key")]);
        assert_eq!(code, Some(0), "{engine}: {stderr}");
    }
}

/// A file store `./from` (key `./from.key`) holding three peers, whose stored
/// `max_bytes` (set after they were written) they already exceed.
fn from_over_its_max_bytes(d: &Path) -> String {
    let key = MasterKey::load_or_create(d.join("from.key")).unwrap();
    let spec: StoreSpec = "file:./from".parse().unwrap();
    let spec = StoreSpec {
        path: d.join(&spec.path),
        ..spec
    };
    let book = PeerBook::open(spec.open().unwrap(), Options::new(key)).unwrap();
    for id in ["alice", "bob", "carol"] {
        book.store_peer(NewPeer {
            peer_id: id.into(),
            display_name: id.to_uppercase(),
            public_key: "z6Mk".into(),
            ..NewPeer::default()
        })
        .unwrap();
    }
    drop(book.close().unwrap());
    let (code, stderr) = run(d, &["settings", "file:./from", "--max-bytes", "10"]);
    assert_eq!(code, Some(0), "{stderr}");
    "file:./from".into()
}

/// `migrate` into a TO that did not exist, failing on the import (TO takes
/// FROM's `max_bytes`, which FROM's peers exceed): the key file it copied, TO's
/// directory and the directories above it go; FROM, the user's directory and key
/// file stay as they were.
#[test]
fn a_failed_migrate_into_a_new_store_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    users_things(d);
    let from = from_over_its_max_bytes(d);
    for engine in ["file", "lmdb"] {
        // Default key files: FROM's is copied to ./to.key, then the import fails.
        let to = format!("{engine}:./to");
        fails_and_changes_nothing(d, &["migrate", &from, &to], "max_bytes");
        // An empty directory of the user's given as TO: it stays, empty.
        let to = format!("{engine}:./keep/empty");
        std::fs::create_dir(d.join("keep/empty")).unwrap();
        fails_and_changes_nothing(d, &["migrate", &from, &to], "max_bytes");
        // The same, named through a missing directory and `..`: refused before
        // anything is made.
        let to = format!("{engine}:./nope/../keep/empty");
        let before = tree(d);
        let (code, stderr) = run(d, &["migrate", &from, &to]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("has a `..` after a directory name"),
            "{stderr}"
        );
        assert!(tree(d) == before, "{to}: {stderr}");
        std::fs::remove_dir(d.join("keep/empty")).unwrap();
        // TO's own key file there before: it stays.
        std::fs::copy(d.join("from.key"), d.join("to.key")).unwrap();
        let to = format!("{engine}:./to");
        fails_and_changes_nothing(d, &["migrate", &from, &to], "max_bytes");
        std::fs::remove_file(d.join("to.key")).unwrap();
        // One key file for both, TO's open failing after making its parents.
        let to = format!("{engine}:./a/b/{}", too_long());
        fails_and_changes_nothing(
            d,
            &["migrate", &from, &to, "--key-file", "from.key"],
            "File name too long",
        );
    }
}

/// The retention settings stored in the store `spec` (relative to `d`) names.
fn stored_retention(d: &Path, spec: &str) -> Option<peerbook::store::RetentionSettings> {
    let spec: StoreSpec = spec.parse().unwrap();
    let spec = StoreSpec {
        path: d.join(&spec.path),
        ..spec
    };
    peerbook::store::read_retention(&*spec.open().unwrap()).unwrap()
}

/// `migrate` into a TO that existed (an empty store with its key file) and
/// failing: TO and its key file are not removed, and TO keeps its own retention
/// settings (the migrate stored FROM's before its import was refused).
#[test]
fn a_failed_migrate_into_an_existing_store_leaves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let from = from_over_its_max_bytes(d);
    for engine in ["file", "lmdb"] {
        let to = format!("{engine}:./to-{engine}");
        let (code, stderr) = run(d, &["init", &to]);
        assert_eq!(code, Some(0), "{stderr}");
        let key = std::fs::read(d.join(format!("to-{engine}.key"))).unwrap();
        let settings = stored_retention(d, &to);
        assert!(settings.is_some(), "{engine}: init stores TO's settings");
        let (code, stderr) = run(d, &["migrate", &from, &to]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains("max_bytes"), "{stderr}");
        assert!(stderr.contains("TO was not changed"), "{stderr}");
        assert_eq!(stored_retention(d, &to), settings, "{engine}: {stderr}");
        assert_eq!(
            std::fs::read(d.join(format!("to-{engine}.key"))).unwrap(),
            key
        );
        let (code, stderr) = run(d, &["stats", &to]);
        assert_eq!(code, Some(0), "{engine}: {stderr}");
    }
}
