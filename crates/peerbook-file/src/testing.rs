//! Test support (feature `testing`): [`SimFs`], an in-memory [`Vfs`] that simulates
//! power loss, for crash tests of [`FileBackend`](crate::FileBackend) and of stores
//! built on it; [`HookedFs`], a pass-through [`Vfs`] around any other (`SimFs`,
//! [`StdFs`](crate::StdFs)) whose hook runs before every call, to fail one, hold a
//! sync or slow every sync down.
//!
//! ```
//! use std::sync::Arc;
//! use peerbook::backend::{Backend, Durability, Space, WriteBatch};
//! use peerbook_file::{testing::SimFs, FileBackend, FileOptions};
//!
//! let fs = SimFs::new(42);
//! let backend = FileBackend::open_with_vfs(Arc::new(fs.clone()), "/book", FileOptions::default())?;
//! let mut batch = WriteBatch::new();
//! batch.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
//! backend.write(batch, Durability::Sync)?;
//!
//! fs.kill();            // the power goes out: every later operation fails
//! drop(backend);
//! fs.power_loss();      // the machine restarts with what reached the disk
//! let backend = FileBackend::open_with_vfs(Arc::new(fs.clone()), "/book", FileOptions::default())?;
//! assert_eq!(backend.get(Space::Meta, b"k")?, Some(b"v".to_vec()));
//! # Ok::<(), peerbook::backend::BackendError>(())
//! ```
//!
//! ## The model
//!
//! - **File contents.** Each file has its current bytes and its *durable* bytes (as
//!   of its last [`VfsFile::sync`]). At a power loss the bytes both agree on (their
//!   common prefix) survive; past it, the file becomes one of: the durable bytes, the
//!   current bytes, a torn prefix of the current bytes, a torn prefix followed by
//!   garbage, or a page-by-page mix of current bytes, durable bytes, zeros and
//!   garbage (write-back in any order, torn sectors), chosen at random.
//! - **Directory entries.** Creations, renames and removals are pending until a
//!   [`Vfs::sync_dir`] of their directory. At a power loss a random prefix (often
//!   none, sometimes all) of the pending ones survives, in order, as a journaling
//!   file system would keep them, or now and then an arbitrary subset (a rename
//!   itself stays atomic). A file whose creation did not survive is gone; a file
//!   whose removal did not survive is back.
//! - **Crash points.** [`SimFs::set_budget`] lets that many operations succeed;
//!   the next one fails with an I/O error (an append writes a random prefix of its
//!   data first) and so does every later one, until [`SimFs::power_loss`].
//!   [`SimFs::kill`] fails every operation from now on.
//! - **Locks** are released at a power loss (a new boot).

/// The CRC-32C (Castagnoli) of the file format, for tests and fuzzers that forge
/// or repair headers and frames: the very function the backend checks with.
pub use crate::crc::{crc32c, crc32c_append};
pub use hooked::{BoxedFsHook, FsHook, FsOp, HookedFs};

mod hooked;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::vfs::{Vfs, VfsFile, VfsLock};

/// An in-memory file system that simulates power loss. Clones share the same
/// state. See the [module docs](self) for the model.
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

/// One pending directory change: entries set (`Some(inode)`) or removed (`None`),
/// applied together (a rename is atomic).
struct Pending {
    dir: PathBuf,
    changes: Vec<(PathBuf, Option<u64>)>,
}

struct State {
    rng: u64,
    epoch: u64,
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    live: BTreeMap<PathBuf, u64>,
    durable: BTreeMap<PathBuf, u64>,
    pending: Vec<Pending>,
    locks: HashSet<PathBuf>,
    budget: Option<u64>,
    dead: bool,
    ops: u64,
    power_losses: u64,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("SimFs")
            .field("files", &s.live.keys().collect::<Vec<_>>())
            .field("pending_dir_changes", &s.pending.len())
            .field("ops", &s.ops)
            .field("dead", &s.dead)
            .finish()
    }
}

fn power_failure() -> io::Error {
    io::Error::other("simulated power failure: the machine is off")
}

impl State {
    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_rand() % n.max(1)
    }

    /// Count one operation; `Ok(false)` = go on, `Ok(true)` = this operation is the
    /// one the power fails in (it must fail, possibly after a partial effect).
    fn tick(&mut self) -> io::Result<bool> {
        if self.dead {
            return Err(power_failure());
        }
        self.ops += 1;
        match self.budget {
            Some(0) => {
                self.dead = true;
                Ok(true)
            }
            Some(n) => {
                self.budget = Some(n - 1);
                Ok(false)
            }
            None => Ok(false),
        }
    }

    /// `tick` for operations with no partial effect.
    fn step(&mut self) -> io::Result<()> {
        if self.tick()? {
            Err(power_failure())
        } else {
            Ok(())
        }
    }

    fn new_inode(&mut self) -> u64 {
        let ino = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(
            ino,
            Inode {
                data: Vec::new(),
                durable: Vec::new(),
            },
        );
        ino
    }

    fn change(&mut self, dir: PathBuf, changes: Vec<(PathBuf, Option<u64>)>) {
        for (path, ino) in &changes {
            match ino {
                Some(ino) => {
                    self.live.insert(path.clone(), *ino);
                }
                None => {
                    self.live.remove(path);
                }
            }
        }
        self.pending.push(Pending { dir, changes });
    }

    fn persist(&mut self, p: Pending) {
        for (path, ino) in p.changes {
            match ino {
                Some(ino) => {
                    self.durable.insert(path, ino);
                }
                None => {
                    self.durable.remove(&path);
                }
            }
        }
    }

    /// What a file whose current bytes are `data` and durable bytes `durable`
    /// holds after a power loss.
    fn survive(&mut self, data: &[u8], durable: &[u8]) -> Vec<u8> {
        let common = data.iter().zip(durable).take_while(|(a, b)| a == b).count();
        if common == data.len() && common == durable.len() {
            return data.to_vec();
        }
        let mut out = data[..common].to_vec();
        match self.below(5) {
            0 => out = durable.to_vec(),
            1 => out = data.to_vec(),
            2 => {
                let extra = self.below((data.len() - common) as u64 + 1) as usize;
                out.extend_from_slice(&data[common..common + extra]);
            }
            3 => {
                let extra = self.below((data.len() - common) as u64 + 1) as usize;
                out.extend_from_slice(&data[common..common + extra]);
                let garbage = 1 + self.below(64) as usize;
                let zeros = self.below(2) == 0;
                for _ in 0..garbage {
                    out.push(if zeros { 0 } else { self.next_rand() as u8 });
                }
            }
            _ => {
                // Write-back in any order: each page of the unsynced region comes
                // from the new bytes, the old bytes, zeros or garbage.
                let max = data.len().max(durable.len());
                let end = common + self.below((max - common) as u64 + 1) as usize;
                let end = end + self.below(2) as usize * self.below(32) as usize;
                let page = 1usize << (2 + self.below(8));
                let mut at = common;
                while at < end {
                    let stop = (at + page).min(end);
                    let source = self.below(20);
                    for i in at..stop {
                        let source = if source == 19 { self.below(19) } else { source };
                        let byte = match source {
                            0..=9 if i < data.len() => data[i],
                            10..=12 if i < durable.len() => durable[i],
                            13..=15 => 0,
                            _ => self.next_rand() as u8,
                        };
                        out.push(byte);
                    }
                    at = stop;
                }
            }
        }
        out
    }
}

impl SimFs {
    /// An empty file system; `seed` drives every random choice of power losses and
    /// partial writes, so a run reproduces exactly.
    pub fn new(seed: u64) -> Self {
        SimFs {
            state: Arc::new(Mutex::new(State {
                rng: seed | 1,
                epoch: 0,
                next_inode: 1,
                inodes: HashMap::new(),
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
                pending: Vec::new(),
                locks: HashSet::new(),
                budget: None,
                dead: false,
                ops: 0,
                power_losses: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Let `ops` more operations succeed, then fail the power (in the next one).
    /// `None` removes the limit.
    pub fn set_budget(&self, ops: Option<u64>) {
        self.lock().budget = ops;
    }

    /// Cut the power now: every later operation fails until [`power_loss`](SimFs::power_loss).
    pub fn kill(&self) {
        self.lock().dead = true;
    }

    /// True once the power has failed (budget spent or [`kill`](SimFs::kill)).
    pub fn is_dead(&self) -> bool {
        self.lock().dead
    }

    /// Operations performed so far (every [`Vfs`] and [`VfsFile`] call counts one).
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Power losses simulated so far.
    pub fn power_losses(&self) -> u64 {
        self.lock().power_losses
    }

    /// Simulate the power going out now and the machine booting again: keep what
    /// reached the disk (see the module docs), drop the rest, release locks, and
    /// turn the power back on. Handles opened before stop working. Returns a short
    /// description of what survived, for failure messages.
    pub fn power_loss(&self) -> String {
        let mut s = self.lock();
        s.dead = true;
        let pending = std::mem::take(&mut s.pending);
        let total = pending.len();
        let roll = s.below(8);
        let mut kept = 0;
        let prefix = match roll {
            0..=2 => 0,
            3 | 4 => total,
            _ => s.below(total as u64 + 1) as usize,
        };
        for (i, p) in pending.into_iter().enumerate() {
            // roll 7: an arbitrary subset (file systems that do not order metadata)
            let keep = if roll == 7 {
                s.below(2) == 0
            } else {
                i < prefix
            };
            if keep {
                kept += 1;
                s.persist(p);
            }
        }
        let mut report = format!(
            "power loss #{}: {kept} of {total} pending directory changes survived{};",
            s.power_losses + 1,
            if roll == 7 { " (a subset)" } else { "" }
        );
        s.live = s.durable.clone();
        let referenced: HashSet<u64> = s.durable.values().copied().collect();
        s.inodes.retain(|ino, _| referenced.contains(ino));
        let mut inos: Vec<u64> = s.inodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let (data, durable) = match s.inodes.get_mut(&ino) {
                Some(inode) => (
                    std::mem::take(&mut inode.data),
                    std::mem::take(&mut inode.durable),
                ),
                None => continue,
            };
            let survived = s.survive(&data, &durable);
            let name = s
                .durable
                .iter()
                .find(|(_, i)| **i == ino)
                .map(|(p, _)| p.display().to_string())
                .unwrap_or_default();
            report.push_str(&format!(
                " {name}: {} bytes ({} written, {} synced);",
                survived.len(),
                data.len(),
                durable.len()
            ));
            if let Some(inode) = s.inodes.get_mut(&ino) {
                inode.durable = survived.clone();
                inode.data = survived;
            }
        }
        s.locks.clear();
        s.budget = None;
        s.epoch += 1;
        s.power_losses += 1;
        s.dead = false;
        report
    }

    /// The current content of the file at `path`, if it exists (no operation counted).
    pub fn contents(&self, path: impl AsRef<Path>) -> Option<Vec<u8>> {
        let s = self.lock();
        let ino = s.live.get(path.as_ref())?;
        s.inodes.get(ino).map(|i| i.data.clone())
    }

    /// Replace the content of the file at `path` (creating it), durably, with its
    /// directory entry durable too (no operation counted): to plant damaged files.
    pub fn set_contents(&self, path: impl AsRef<Path>, bytes: &[u8]) {
        let mut s = self.lock();
        let path = path.as_ref().to_path_buf();
        let ino = match s.live.get(&path) {
            Some(ino) => *ino,
            None => s.new_inode(),
        };
        s.live.insert(path.clone(), ino);
        s.durable.insert(path, ino);
        if let Some(inode) = s.inodes.get_mut(&ino) {
            inode.data = bytes.to_vec();
            inode.durable = bytes.to_vec();
        }
    }
}

fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl Vfs for SimFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        self.lock().step()
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.lock();
        s.step()?;
        Ok(s.live
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut s = self.lock();
        s.step()?;
        let ino = s.live.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(s.inodes
            .get(ino)
            .map(|i| i.data.clone())
            .unwrap_or_default())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let mut s = self.lock();
        s.step()?;
        let ino = match s.live.get(path) {
            Some(ino) => {
                let ino = *ino;
                if let Some(inode) = s.inodes.get_mut(&ino) {
                    inode.data.clear();
                }
                ino
            }
            None => {
                let ino = s.new_inode();
                s.change(parent(path), vec![(path.to_path_buf(), Some(ino))]);
                ino
            }
        };
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            epoch: s.epoch,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn VfsFile>> {
        let mut s = self.lock();
        s.step()?;
        let ino = *s.live.get(path).ok_or(io::ErrorKind::NotFound)?;
        Ok(Box::new(SimFile {
            fs: self.clone(),
            ino,
            epoch: s.epoch,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.step()?;
        if parent(from) != parent(to) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "SimFs renames within one directory only",
            ));
        }
        let ino = *s.live.get(from).ok_or(io::ErrorKind::NotFound)?;
        s.change(
            parent(from),
            vec![(from.to_path_buf(), None), (to.to_path_buf(), Some(ino))],
        );
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.step()?;
        if !s.live.contains_key(path) {
            return Err(io::ErrorKind::NotFound.into());
        }
        s.change(parent(path), vec![(path.to_path_buf(), None)]);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.step()?;
        let pending = std::mem::take(&mut s.pending);
        let (mine, others): (Vec<Pending>, Vec<Pending>) =
            pending.into_iter().partition(|p| p.dir == dir);
        s.pending = others;
        for p in mine {
            s.persist(p);
        }
        Ok(())
    }

    fn lock(&self, path: &Path) -> io::Result<VfsLock> {
        self.lock_created(path).map(|(lock, _)| lock)
    }

    fn lock_created(&self, path: &Path) -> io::Result<(VfsLock, bool)> {
        let mut s = self.lock();
        s.step()?;
        if !s.locks.insert(path.to_path_buf()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the lock is held by another open handle",
            ));
        }
        let created = !s.live.contains_key(path);
        if created {
            let ino = s.new_inode();
            s.change(parent(path), vec![(path.to_path_buf(), Some(ino))]);
        }
        let guard = SimLockGuard {
            fs: self.clone(),
            path: path.to_path_buf(),
            epoch: s.epoch,
        };
        Ok((VfsLock::new(guard), created))
    }

    /// Directories are not modelled (paths name files): succeeds when no file is
    /// directly in `dir`.
    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.step()?;
        if s.live.keys().any(|p| p.parent() == Some(dir)) {
            return Err(io::ErrorKind::DirectoryNotEmpty.into());
        }
        Ok(())
    }
}

struct SimLockGuard {
    fs: SimFs,
    path: PathBuf,
    epoch: u64,
}

impl Drop for SimLockGuard {
    fn drop(&mut self) {
        let mut s = self.fs.lock();
        if s.epoch == self.epoch {
            s.locks.remove(&self.path);
        }
    }
}

struct SimFile {
    fs: SimFs,
    ino: u64,
    epoch: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile").field("inode", &self.ino).finish()
    }
}

impl SimFile {
    fn state(&self) -> io::Result<MutexGuard<'_, State>> {
        let s = self.fs.lock();
        if s.epoch != self.epoch {
            return Err(io::Error::other(
                "stale handle: opened before a simulated power loss",
            ));
        }
        Ok(s)
    }
}

impl VfsFile for SimFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.state()?;
        let crash = s.tick()?;
        let n = if crash {
            s.below(data.len() as u64 + 1) as usize
        } else {
            data.len()
        };
        let ino = self.ino;
        if let Some(inode) = s.inodes.get_mut(&ino) {
            inode.data.extend_from_slice(&data[..n]);
        }
        if crash {
            Err(power_failure())
        } else {
            Ok(())
        }
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.state()?;
        s.step()?;
        let ino = self.ino;
        if let Some(inode) = s.inodes.get_mut(&ino) {
            inode.durable = inode.data.clone();
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.state()?;
        s.step()?;
        let ino = self.ino;
        let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
        if let Some(inode) = s.inodes.get_mut(&ino) {
            inode.data.resize(len, 0);
        }
        Ok(())
    }
}
