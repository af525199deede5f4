//! The directory lock: a second open, from this process or another, fails with
//! `Locked` naming the path, and changes nothing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use peerbook::backend::{Backend, BackendError, Durability, Space, WriteBatch};
use peerbook_file::{FileBackend, FileOptions};

const CHILD_ENV: &str = "PEERBOOK_FILE_LOCK_CHILD_DIR";

fn expect_locked(result: Result<FileBackend, BackendError>, dir: &std::path::Path) {
    match result {
        Err(BackendError::Locked { message: msg, .. }) => {
            let lock = dir.join("LOCK");
            assert!(
                msg.contains(&lock.display().to_string()),
                "the error names the lock file: {msg}"
            );
        }
        Err(other) => panic!("expected Locked, got {other:?}"),
        Ok(_) => panic!("a second open succeeded"),
    }
}

#[test]
fn second_open_in_this_process_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let first = FileBackend::open(&dir, FileOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"k".to_vec(), b"v".to_vec());
    first.write(batch, Durability::Sync).unwrap();

    expect_locked(FileBackend::open(&dir, FileOptions::default()), &dir);
    // The failed open changed nothing, and the first handle goes on.
    assert_eq!(first.get(Space::Peers, b"k").unwrap(), Some(b"v".to_vec()));
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"k2".to_vec(), b"v2".to_vec());
    first.write(batch, Durability::Sync).unwrap();

    drop(first);
    let again =
        FileBackend::open(&dir, FileOptions::default()).expect("the lock is released on drop");
    assert_eq!(
        again.get(Space::Peers, b"k2").unwrap(),
        Some(b"v2".to_vec())
    );
}

/// Not a test on its own: run by `second_open_in_another_process_is_locked` in a
/// child process, where it holds the store open until its stdin closes.
#[test]
fn lock_holder_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let _backend = FileBackend::open(&dir, FileOptions::default()).expect("child opens");
    println!("LOCKED");
    let mut line = String::new();
    // Wait until the parent closes our stdin.
    while std::io::stdin()
        .read_line(&mut line)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
}

#[test]
fn second_open_in_another_process_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut locked = false;
    for line in &mut lines {
        if line.unwrap().contains("LOCKED") {
            locked = true;
            break;
        }
    }
    assert!(locked, "the child opened the store");

    expect_locked(FileBackend::open(&dir, FileOptions::default()), &dir);

    drop(child.stdin.take()); // let the child exit
    for _ in lines {} // and read what it prints until it does
    let status = child.wait().unwrap();
    assert!(status.success(), "child exit: {status}");
    FileBackend::open(&dir, FileOptions::default()).expect("open after the other process exited");
}
