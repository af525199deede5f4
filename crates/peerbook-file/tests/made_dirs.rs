//! The directories a failed open removes are those it made itself, and only
//! those: not one another process made meanwhile. Unix only (the `LOCK` a
//! failed open made goes only there).
#![cfg(unix)]

use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
        // Listing finds nothing there yet; the first step that makes a
        // directory runs after the other process made `a/b`.
        FsOp::List => Ok(()),
        FsOp::Lock => Err(io::ErrorKind::WouldBlock.into()),
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
