//! The stores' `LOCK` file lock seen from other processes: a child the holder
//! forks does not hold it (a reopen while a child is between its fork and its
//! `exec` is not refused), and another process is refused for as long as it is
//! held, also after a refused open in the holder's own process.

#![cfg(unix)]

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use peerbook::backend::try_lock_file;

/// Set in a child run of this binary: the lock file the child tries to lock.
const CHILD_LOCK: &str = "PEERBOOK_FILE_LOCK_CHILD";
/// The child's exit codes (0 would be a child that ran no test).
const LOCKED: i32 = 4;
const REFUSED: i32 = 3;

/// The child's role: try the lock named by [`CHILD_LOCK`] once, and say how it
/// went by the exit code. A plain run of the tests does nothing here.
#[test]
fn child_role() {
    let Some(path) = std::env::var_os(CHILD_LOCK) else {
        return;
    };
    match try_lock_file(Path::new(&path)) {
        Ok(_) => std::process::exit(LOCKED),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::process::exit(REFUSED),
        Err(e) => panic!("child: {e}"),
    }
}

/// What another process gets when it tries the lock at `path`.
fn other_process_tries(path: &Path) -> i32 {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(CHILD_LOCK, path)
        .status()
        .unwrap();
    status.code().expect("the child exits with a code")
}

#[test]
fn another_process_is_refused_while_held_also_after_a_refused_open_here() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("LOCK");
    let held = try_lock_file(&path).unwrap();
    assert_eq!(other_process_tries(&path), REFUSED);
    // a second open in this process is refused, and its failure does not
    // release the first handle's lock
    let refused = try_lock_file(&path).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
    assert_eq!(other_process_tries(&path), REFUSED, "still held");
    drop(held);
    assert_eq!(other_process_tries(&path), LOCKED, "released on drop");
}

/// A child forked while the lock is held keeps a copy of every descriptor until it
/// calls `exec`. With a lock that belongs to the open file (`flock`), that copy
/// kept the lock after the holder dropped it, and a reopen at that moment was
/// refused (a lock test's child process made an LMDB reopen fail in CI). The child
/// here stays between its fork and its `exec` for two seconds.
#[test]
fn a_child_between_fork_and_exec_does_not_hold_a_dropped_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("LOCK");
    let held = try_lock_file(&path).unwrap();
    let (mut forked, mut tell) = io::pipe().unwrap();
    let spawner = std::thread::spawn(move || {
        let mut child = Command::new("true");
        // SAFETY: the closure runs in the forked child before `exec` and calls only
        // `write` and `nanosleep`, both async-signal-safe; it allocates nothing.
        unsafe {
            child.pre_exec(move || {
                tell.write_all(b"f")?;
                std::thread::sleep(Duration::from_secs(2));
                Ok(())
            });
        }
        child.status()
    });
    let mut byte = [0u8; 1];
    forked.read_exact(&mut byte).unwrap();
    // the child now holds a copy of `held`'s descriptor
    drop(held);
    let again = try_lock_file(&path);
    let status = spawner.join().unwrap();
    assert!(status.is_ok(), "the child ran: {status:?}");
    again.expect("a forked child must not keep the lock its parent dropped");
}
