//! A refused or failed open changes nothing in the directory: the `LOCK` it
//! created is removed (a `LOCK` that was there stays, bytes and all), and so are
//! the directories it created. And removing a `LOCK` never lets two handles hold
//! one directory. Unix only: elsewhere the lock is not checked to be on the
//! linked file, so a failed open leaves the `LOCK` it created.
#![cfg(unix)]

use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use peerbook::backend::{Backend, BackendError, Durability, Space, WriteBatch};
use peerbook_file::testing::{FsOp, HookedFs};
use peerbook_file::{FileBackend, FileOptions, StdFs};

/// The directory's entries with their bytes, sorted; a directory's name ends in
/// `/`, with no bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            if e.file_type().unwrap().is_dir() {
                (format!("{name}/"), Vec::new())
            } else {
                (name, fs::read(e.path()).unwrap())
            }
        })
        .collect();
    out.sort();
    out
}

fn expect_corrupted(result: Result<FileBackend, BackendError>, what: &str) {
    match result {
        Err(BackendError::Corrupted { .. }) => {}
        Err(other) => panic!("{what}: expected Corrupted, got {other:?}"),
        Ok(_) => panic!("{what}: the open succeeded"),
    }
}

/// A store with a few entries, closed; its `LOCK` removed when `lock` is `None`,
/// else replaced by those bytes.
fn store(dir: &Path, lock: Option<&[u8]>) {
    let b = FileBackend::open(dir, FileOptions::default()).unwrap();
    for i in 0..5u8 {
        let mut batch = WriteBatch::new();
        batch.put(Space::Peers, vec![i], vec![i; 30]);
        b.write(batch, Durability::Sync).unwrap();
    }
    b.compact().unwrap();
    drop(b);
    set_lock(dir, lock);
}

fn set_lock(dir: &Path, lock: Option<&[u8]>) {
    match lock {
        None => fs::remove_file(dir.join("LOCK")).unwrap(),
        Some(bytes) => fs::write(dir.join("LOCK"), bytes).unwrap(),
    }
}

#[test]
fn a_refused_open_leaves_the_directory_as_it_was() {
    for lock in [None, Some(&b""[..]), Some(&b"the user's own LOCK"[..])] {
        // a lone log of foreign bytes: not the backend's file
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("app");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("log.7"), b"rotated at midnight\n").unwrap();
        if let Some(bytes) = lock {
            fs::write(dir.join("LOCK"), bytes).unwrap();
        }
        let before = files(&dir);
        expect_corrupted(
            FileBackend::open(&dir, FileOptions::default()),
            "foreign log",
        );
        assert_eq!(files(&dir), before, "foreign log, LOCK before: {lock:?}");

        // a store whose snapshot is damaged
        let dir = tmp.path().join("book");
        store(&dir, lock);
        let snapshot = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("snapshot.")
            })
            .unwrap();
        let mut bytes = fs::read(&snapshot).unwrap();
        let at = bytes.len() - 3;
        bytes[at] ^= 0x10;
        fs::write(&snapshot, &bytes).unwrap();
        let before = files(&dir);
        expect_corrupted(
            FileBackend::open(&dir, FileOptions::default()),
            "damaged snapshot",
        );
        assert_eq!(
            files(&dir),
            before,
            "damaged snapshot, LOCK before: {lock:?}"
        );
    }
}

/// An open over a file system whose every file creation fails: a new store
/// cannot be made.
fn open_failing_creates(dir: &Path) -> Result<FileBackend, BackendError> {
    let fs = HookedFs::new(StdFs, |op, _path: &Path| match op {
        FsOp::Create => Err(io::Error::other("injected")),
        _ => Ok(()),
    });
    FileBackend::open_with_vfs(Arc::new(fs), dir, FileOptions::default())
}

#[test]
fn a_failed_open_removes_the_directories_it_made_and_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
    let before = files(tmp.path());
    let dir = tmp.path().join("a").join("b").join("book");
    let e = open_failing_creates(&dir).unwrap_err();
    assert!(matches!(e, BackendError::Io(_)), "{e:?}");
    assert_eq!(files(tmp.path()), before, "a/b/book and its LOCK are gone");

    // an empty directory that was there stays, empty
    let dir = tmp.path().join("empty");
    fs::create_dir(&dir).unwrap();
    open_failing_creates(&dir).unwrap_err();
    assert!(files(&dir).is_empty());

    // and then the store opens and is made there
    drop(FileBackend::open(&dir, FileOptions::default()).unwrap());
    assert!(files(&dir).iter().any(|(n, _)| n == "LOCK"));
}

/// A store name too long for the file system: `create_dir_all` fails after it
/// made `a/b` (the name itself never existed), which go again.
#[test]
fn a_name_too_long_leaves_no_directory_above_it() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
    let before = files(tmp.path());
    let dir = tmp.path().join("a").join("b").join("x".repeat(300));
    let e = FileBackend::open(&dir, FileOptions::default()).unwrap_err();
    assert!(matches!(e, BackendError::Io(_)), "{e:?}");
    assert_eq!(files(tmp.path()), before, "a/b are gone");
}

/// Openers of one directory at once: failing ones (an injected read error; each
/// removes the `LOCK` it created) and succeeding ones (which remove `LOCK` too
/// before they let go, so that every open has one to create). However their
/// calls interleave, no two hold the directory at once.
#[test]
fn removing_a_lock_never_lets_two_handles_hold_one_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    store(&dir, None);
    let failing = HookedFs::new(StdFs, |op, _path: &Path| match op {
        FsOp::OpenRead | FsOp::Read => Err(io::Error::other("injected")),
        _ => Ok(()),
    });
    let failing: Arc<dyn peerbook_file::Vfs> = Arc::new(failing);
    let live = AtomicUsize::new(0);
    let twice = AtomicBool::new(false);
    let opened = AtomicUsize::new(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while std::time::Instant::now() < deadline {
                    let e =
                        FileBackend::open_with_vfs(failing.clone(), &dir, FileOptions::default())
                            .unwrap_err();
                    assert!(
                        matches!(e, BackendError::Io(_) | BackendError::Locked { .. }),
                        "{e:?}"
                    );
                }
            });
        }
        for _ in 0..2 {
            s.spawn(|| {
                while std::time::Instant::now() < deadline {
                    match FileBackend::open(&dir, FileOptions::default()) {
                        Ok(b) => {
                            if live.fetch_add(1, Ordering::SeqCst) != 0 {
                                twice.store(true, Ordering::SeqCst);
                            }
                            opened.fetch_add(1, Ordering::Relaxed);
                            std::thread::yield_now();
                            live.fetch_sub(1, Ordering::SeqCst);
                            // as a failed open does: removed while held, so the
                            // next opener creates it again
                            let _ = fs::remove_file(dir.join("LOCK"));
                            drop(b);
                        }
                        Err(BackendError::Locked { .. }) => {}
                        Err(e) => panic!("{e:?}"),
                    }
                }
            });
        }
    });
    assert!(
        !twice.load(Ordering::SeqCst),
        "two handles held the directory"
    );
    assert!(opened.load(Ordering::Relaxed) > 0);
    eprintln!("opened {} times", opened.load(Ordering::Relaxed));
}
