//! The stores' `LOCK` file lock and a forked child: a child the holder forks does
//! not hold it (a reopen while a child is between its fork and its `exec` is not
//! refused). Here, not in the core's unit tests, because it needs `pre_exec`
//! (`unsafe`, which the core crate forbids); the other cross-process cases are
//! unit tests in `src/backend/lock.rs`.

#![cfg(unix)]

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use peerbook::backend::try_lock_file;

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
