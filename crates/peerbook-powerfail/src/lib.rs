//! A power-loss file system for testing storage engines: a FUSE file system kept in
//! memory that remembers, for every file, what was synced and what was only
//! written, and on command "cuts the power": keeps a random part of the unsynced
//! writes (any pages, in any order; a prefix of the unsynced name changes) and
//! drops the rest, as a machine losing power would. The crash model is described in
//! [`state`].
//!
//! A test mounts it ([`PowerFailFs::mount`]), runs the engine in a child process
//! against the mount point, SIGKILLs the child (so it can neither sync nor serve
//! anything from its own memory), calls [`PowerFailFs::cut_power`], unmounts (the
//! kernel's page cache of the mount goes with it) and mounts again: the engine
//! reopened on the new mount sees only what survived.
//!
//! Modelled on LazyFS (which found durability bugs in PostgreSQL, etcd and Redis),
//! but the durable state lives in memory, not in a backing directory: the test
//! process owns the file system across mounts, and nothing on the host disk needs
//! cleaning after a failed run.
//!
//! [`PowerFailFs::fail_syncs`] makes the next syncs fail with `EIO` while the file
//! system keeps working ("fsyncgate"), to check that an engine reports the failure
//! and refuses to go on as if nothing happened.
//!
//! Mounting needs root (or `CAP_SYS_ADMIN`) and `/dev/fuse`; fuser's pure-Rust mount
//! is used, so neither libfuse nor `fusermount3` is needed. [`PowerFailFs::mount`]
//! returns the error when the kernel refuses.

pub mod state;

mod fuse;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption};

pub use state::CutReport;
use state::State;

/// The power-loss file system: its contents survive unmounts, and
/// [`cut_power`](Self::cut_power) decides what survives a power cut.
#[derive(Clone, Default)]
pub struct PowerFailFs {
    state: Arc<Mutex<State>>,
}

impl PowerFailFs {
    /// An empty file system (only the root directory).
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts the file system on `mountpoint` (an existing empty directory). The
    /// power is on until the next [`cut_power`](Self::cut_power).
    ///
    /// Errors: whatever the kernel answers to the mount (`EPERM` without root,
    /// `ENODEV` or `ENOENT` without FUSE).
    pub fn mount(&self, mountpoint: &Path) -> io::Result<Mounted> {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.dead = false;
            state.budget = None;
            state.failing_syncs = 0;
            state.passing_syncs = 0;
        }
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("peerbook-powerfail".into()),
            MountOption::Subtype("powerfail".into()),
        ];
        let fs = fuse::PowerFs {
            state: Arc::clone(&self.state),
        };
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(Mounted {
            session: Some(session),
            path: mountpoint.to_path_buf(),
        })
    }

    /// Lets the power fail by itself after `requests` more requests that change
    /// something (writes, size changes, syncs, name changes); the one that would
    /// exceed it, and every later request, fails with `EIO`, and nothing changes any
    /// more. That places a crash exactly inside an engine's sequence of writes and
    /// syncs (an open creating files, a commit). `None` removes the limit; a mount
    /// removes it too.
    pub fn fail_after(&self, requests: Option<u64>) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .budget = requests;
    }

    /// Fails the next `syncs` sync requests (`fsync`, `fdatasync`, `fsyncdir`)
    /// with `EIO` while every other request keeps working, dropping the unsynced
    /// data of each file whose sync fails, as Linux does when a write-back fails
    /// ("fsyncgate"; see [`state`] on a failing sync). Then syncs work again. `0`
    /// disarms; a mount disarms too.
    pub fn fail_syncs(&self, syncs: u64) {
        self.fail_syncs_after(0, syncs);
    }

    /// [`fail_syncs`](Self::fail_syncs) after letting `passing` more syncs succeed:
    /// places the failure on a later sync of one operation (say the second of a
    /// commit that syncs twice).
    pub fn fail_syncs_after(&self, passing: u64, syncs: u64) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.passing_syncs = passing;
        state.failing_syncs = syncs;
    }

    /// How many sync requests [`fail_syncs`](Self::fail_syncs) has failed so far.
    pub fn failed_syncs(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed_syncs
    }

    /// How many requests that change something were served so far (to size a
    /// [`fail_after`](Self::fail_after) sweep over an operation).
    pub fn mutations(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .mutations
    }

    /// Whether the power is off (cut, or failed by itself), until the next mount.
    pub fn is_dead(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dead
    }

    /// [`mount`](Self::mount) for a test: when the kernel refuses the mount, fails
    /// loudly under CI (the environment variable `CI` is `true`: the proof must run
    /// there) and otherwise prints a loud notice and returns `None` (the caller
    /// skips).
    pub fn mount_in_test(&self, mountpoint: &Path) -> Option<Mounted> {
        match self.mount(mountpoint) {
            Ok(m) => Some(m),
            Err(e) => {
                let msg = format!(
                    "!!! POWER-LOSS TEST NOT RUN: the FUSE mount on {} was refused: {e}. \
                     It needs root (or CAP_SYS_ADMIN) and /dev/fuse.",
                    mountpoint.display()
                );
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{msg} CI must run this proof.");
                }
                eprintln!("{msg} Skipped (outside CI).");
                None
            }
        }
    }

    /// Cuts the power: every file keeps its synced contents plus a random part of
    /// its unsynced writes, the names keep a random prefix of their unsynced
    /// changes; the choice is reproducible from `seed`. From now until the next
    /// [`mount`](Self::mount) every request fails with `EIO`: unmount, then mount
    /// again to "boot" on what survived.
    pub fn cut_power(&self, seed: u64) -> CutReport {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cut_power(seed)
    }
}

/// A mounted [`PowerFailFs`]; unmounted by [`unmount`](Self::unmount) or on drop.
pub struct Mounted {
    session: Option<BackgroundSession>,
    path: PathBuf,
}

impl Mounted {
    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts and waits for the file system's thread to end. Retries for a while
    /// when the kernel still finds the mount busy (a killed process's files being
    /// closed).
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let mut last = None;
        for _ in 0..100 {
            match umount(&self.path) {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // Not mounted any more.
                    last = None;
                    break;
                }
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = last {
            self.session = Some(session);
            return Err(e);
        }
        match session.join() {
            // After an unmount the kernel ends the connection; depending on timing
            // the session's last read sees it as ended or as aborted.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => Ok(()),
            other => other,
        }
    }
}

fn umount(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.unmount_inner().is_err() {
            // Last resort: detach, so a failed test leaves no mount behind.
            if let Some(session) = self.session.take() {
                use std::os::unix::ffi::OsStrExt;
                if let Ok(c) = std::ffi::CString::new(self.path.as_os_str().as_bytes()) {
                    // SAFETY: valid NUL-terminated path.
                    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
                }
                drop(session);
            }
        }
    }
}
