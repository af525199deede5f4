//! The directory lock: a second open in this process or in another is refused as
//! `Locked` and changes nothing; a process that crashes leaves no lock behind and
//! its buffered writes survive. The child processes are this test binary run again
//! ([`child_process_role`]).

use std::path::Path;
use std::process::Command;

use peerbook::backend::{Backend, BackendError, Direction, Durability, Space, WriteBatch};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

use crate::support::{scan_all, value_for};

#[test]
fn second_open_of_the_same_directory_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let first = LmdbBackend::open(&path, LmdbOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"alice".to_vec(), b"1".to_vec());
    first.write(batch, Durability::Sync).unwrap();

    for attempt in 0..3 {
        match LmdbBackend::open(&path, LmdbOptions::default()) {
            Err(BackendError::Locked { message, .. }) => assert!(
                message.contains(&path.display().to_string()),
                "the message names the path: {message}"
            ),
            other => panic!("attempt {attempt}: second open gave {other:?}"),
        }
    }
    // Through another spelling of the same directory, too.
    let other_spelling = tmp.path().join(".").join("book");
    assert!(matches!(
        LmdbBackend::open(&other_spelling, LmdbOptions::default()),
        Err(BackendError::Locked { .. })
    ));

    // The refused opens changed nothing: the first handle keeps working.
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"bob".to_vec(), b"2".to_vec());
    first.write(batch, Durability::Sync).unwrap();
    assert_eq!(
        first.get(Space::Peers, b"alice").unwrap(),
        Some(b"1".to_vec())
    );

    drop(first);
    let second = LmdbBackend::open(&path, LmdbOptions::default()).expect("open after close");
    assert_eq!(
        second.get(Space::Peers, b"alice").unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        second.get(Space::Peers, b"bob").unwrap(),
        Some(b"2".to_vec())
    );
}

/// Runs this test binary again as a child process doing `role` on `dir`; returns its
/// exit status success and its stdout.
fn run_child(role: &str, dir: &Path) -> (bool, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .args([
            "--exact",
            "lock::child_process_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PEERBOOK_LMDB_CHILD_ROLE", role)
        .env("PEERBOOK_LMDB_CHILD_DIR", dir)
        .output()
        .expect("run the child process");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Not a test of its own: the body of the child processes of the tests below. Does
/// nothing unless the parent set `PEERBOOK_LMDB_CHILD_ROLE`.
#[test]
fn child_process_role() {
    let (Ok(role), Ok(dir)) = (
        std::env::var("PEERBOOK_LMDB_CHILD_ROLE"),
        std::env::var("PEERBOOK_LMDB_CHILD_DIR"),
    ) else {
        return;
    };
    match role.as_str() {
        "probe-open" => match LmdbBackend::open(&dir, LmdbOptions::default()) {
            Err(BackendError::Locked { message, .. }) => println!("CHILD-LOCKED {message}"),
            Ok(b) => {
                println!("CHILD-OPENED {:?}", b.get(Space::Peers, b"alice"));
            }
            Err(e) => println!("CHILD-ERROR {e}"),
        },
        "buffered-then-abort" => {
            let b = LmdbBackend::open(&dir, LmdbOptions::default()).unwrap();
            for i in 0u32..100 {
                let mut batch = WriteBatch::new();
                batch.put(Space::Peers, i.to_be_bytes().to_vec(), value_for(i, 100));
                batch.put(
                    Space::Meta,
                    b"count".to_vec(),
                    (i + 1).to_be_bytes().to_vec(),
                );
                b.write(batch, Durability::Buffered).unwrap();
            }
            println!("CHILD-WROTE");
            // A process crash: no flush, no destructor.
            std::process::abort();
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn another_process_is_locked_out_too() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let first = LmdbBackend::open(&path, LmdbOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"alice".to_vec(), b"1".to_vec());
    first.write(batch, Durability::Sync).unwrap();

    let (ok, out) = run_child("probe-open", &path);
    assert!(ok, "child ran: {out}");
    assert!(
        out.contains("CHILD-LOCKED"),
        "the other process is locked out: {out}"
    );
    assert!(out.contains(&path.display().to_string()), "{out}");

    drop(first);
    let (ok, out) = run_child("probe-open", &path);
    assert!(ok, "child ran: {out}");
    assert!(
        out.contains("CHILD-OPENED Ok(Some([49]))"),
        "after close the other process opens and reads: {out}"
    );
}

#[test]
fn buffered_writes_survive_a_process_crash_and_the_lock_is_released() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let (ok, out) = run_child("buffered-then-abort", &path);
    assert!(!ok, "the child aborted");
    assert!(out.contains("CHILD-WROTE"), "the child wrote: {out}");

    let b = LmdbBackend::open(&path, LmdbOptions::default())
        .expect("a dead process leaves no lock behind");
    assert_eq!(
        b.get(Space::Meta, b"count").unwrap(),
        Some(100u32.to_be_bytes().to_vec())
    );
    let entries = scan_all(&b, Space::Peers, Direction::Forward);
    assert_eq!(
        entries.len(),
        100,
        "every buffered write survived the crash"
    );
    for (key, value) in entries {
        let i = u32::from_be_bytes(key.try_into().unwrap());
        assert_eq!(value, value_for(i, 100));
    }
}
