//! The directories a failed open removes are those it made itself, and only
//! those: not one another process made meanwhile, nor a symbolic link of the
//! user's (dangling or to a directory) at the store's path or above it. Unix
//! only (symbolic links; the `LOCK` a failed open made goes only there).
#![cfg(unix)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use peerbook::backend::BackendError;
use peerbook_file::testing::{FsOp, HookedFs};
use peerbook_file::{FileBackend, FileOptions, StdFs};

/// Directories another process makes between two steps of an open (`mkdir -p
/// a/b` while this open makes `a/b/book`), the open then failing (its lock held,
/// injected): they stay, only the store directory this open made goes.
#[test]
fn a_directory_made_meanwhile_by_another_process_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let theirs = tmp.path().join("a").join("b");
    let dir = theirs.join("book");
    let made = AtomicBool::new(false);
    let a_b = theirs.clone();
    let fs = HookedFs::new(StdFs, move |op, _path: &Path| match op {
        FsOp::Lock => Err(io::ErrorKind::WouldBlock.into()),
        // The open's first call, its `create_dir` of `a/b/book`, runs after
        // the other process made `a/b`.
        _ => {
            if !made.swap(true, Ordering::SeqCst) {
                fs::create_dir_all(&a_b).unwrap();
            }
            Ok(())
        }
    });
    let e = FileBackend::open_with_vfs(Arc::new(fs), &dir, FileOptions::default()).unwrap_err();
    assert!(matches!(e, BackendError::Locked { .. }), "{e:?}");
    assert!(theirs.is_dir(), "a/b, made by another process, must stay");
    assert!(!dir.exists(), "the store directory this open made goes");
}

/// The paths a failed open asked its file system to remove as directories.
fn removed_dirs(dir: &Path, fail_lock: bool) -> (BackendError, Vec<PathBuf>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&asked);
    let fs = HookedFs::new(StdFs, move |op, path: &Path| match op {
        FsOp::RemoveDir => {
            log.lock().unwrap().push(path.to_path_buf());
            Ok(())
        }
        FsOp::Lock if fail_lock => Err(io::ErrorKind::WouldBlock.into()),
        _ => Ok(()),
    });
    let e = FileBackend::open_with_vfs(Arc::new(fs), dir, FileOptions::default()).unwrap_err();
    let asked = asked.lock().unwrap().clone();
    (e, asked)
}

/// A dangling symbolic link at the store's path, or above it: the open fails
/// (nothing can be made there), the link stays, and no removal is ever asked
/// of it (on Windows `remove_dir` deletes a directory link).
#[test]
fn a_dangling_symbolic_link_is_never_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(tmp.path().join("gone"), &link).unwrap();
    for dir in [link.clone(), link.join("book"), link.join("a").join("book")] {
        let (e, asked) = removed_dirs(&dir, false);
        assert!(matches!(e, BackendError::Io(_)), "{}: {e:?}", dir.display());
        assert!(
            !asked.iter().any(|d| d == &link),
            "{}: asked to remove the user's link: {asked:?}",
            dir.display()
        );
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(!tmp.path().join("gone").exists());
    }
}

/// A symbolic link to a directory at the store's path, or above it: the open
/// goes through it (failing later, on its lock), the link and the directory
/// stay, and no removal is ever asked of either.
#[test]
fn a_symbolic_link_to_a_directory_is_never_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    for dir in [link.clone(), link.join("book")] {
        let (e, asked) = removed_dirs(&dir, true);
        assert!(matches!(e, BackendError::Locked { .. }), "{e:?}");
        assert!(
            !asked.iter().any(|d| d == &link || d == &real),
            "{}: asked to remove the user's link or directory: {asked:?}",
            dir.display()
        );
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(real.is_dir());
        assert_eq!(fs::read_dir(&real).unwrap().count(), 0, "{}", dir.display());
    }
}

/// A failure to tell whether what is at the store's path is a directory (an
/// injected `is_dir` failure, as a loop of links or a denied permission would
/// give) is the open's error, of its kind: never taken for a file there
/// (`AlreadyExists`). The directory stays.
#[test]
fn a_failure_of_is_dir_is_the_open_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    fs::create_dir(&dir).unwrap();
    let fs = HookedFs::new(StdFs, |op, _path: &Path| match op {
        FsOp::IsDir => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "injected is_dir",
        )),
        _ => Ok(()),
    });
    let e = FileBackend::open_with_vfs(Arc::new(fs), &dir, FileOptions::default()).unwrap_err();
    match &e {
        BackendError::Io(io) => {
            assert_eq!(io.kind(), io::ErrorKind::PermissionDenied, "{e}");
            assert!(e.to_string().contains("injected is_dir"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(dir.is_dir());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

/// Review 6 (session 26), finding 6: an open that made `a/b/book` synced only
/// `a/b`, so the entries of `a` and `b` were not durable. Every directory it made
/// now has its entry synced, innermost first; a directory that was there is not
/// made, and its parent is left alone; the store's own entry is synced at every
/// open (an earlier open's sync may have been cut short).
#[test]
fn every_directory_an_open_makes_has_its_entry_synced() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("there")).unwrap();
    let synced = Arc::new(Mutex::new(Vec::new()));
    let log_again = Arc::new(Mutex::new(Vec::<PathBuf>::new()));
    let log = Arc::clone(&synced);
    let fs = HookedFs::new(StdFs, move |op, path: &Path| {
        if op == FsOp::SyncDir {
            log.lock().unwrap().push(path.to_path_buf());
        }
        Ok(())
    });
    let dir = tmp.path().join("there").join("a").join("b").join("book");
    let backend = FileBackend::open_with_vfs(Arc::new(fs), &dir, FileOptions::default()).unwrap();
    let there = tmp.path().join("there");
    let wanted = [there.join("a").join("b"), there.join("a"), there.clone()];
    let synced = std::mem::take(&mut *synced.lock().unwrap());
    let first: Vec<_> = synced.iter().take(3).cloned().collect();
    assert_eq!(
        first, wanted,
        "the made directories' parents, innermost first"
    );
    assert!(
        !synced.contains(&tmp.path().to_path_buf()),
        "`there` was not made: its parent is not synced for it"
    );
    drop(backend);
    // reopened, nothing made: no parent synced
    let fs = HookedFs::new(StdFs, {
        let log = Arc::clone(&log_again);
        move |op, path: &Path| {
            if op == FsOp::SyncDir {
                log.lock().unwrap().push(path.to_path_buf());
            }
            Ok(())
        }
    });
    let backend = FileBackend::open_with_vfs(Arc::new(fs), &dir, FileOptions::default()).unwrap();
    let again = log_again.lock().unwrap().clone();
    assert_eq!(
        again.first(),
        Some(&wanted[0]),
        "a reopen syncs the store's own entry still (an earlier open's sync may have been cut short)"
    );
    assert!(
        !again.iter().any(|p| wanted[1..].contains(p)),
        "a reopen made nothing above the store: {again:?}"
    );
    drop(backend);
}
