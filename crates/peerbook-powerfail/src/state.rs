//! The file system's contents: every file and directory in memory, split into what
//! is durable (synced) and what is still volatile, and the power cut that keeps a
//! random part of the volatile rest.
//!
//! # The crash model (what survives a power cut)
//!
//! - **File data.** Each file keeps its durable bytes (as of its last `fsync` or
//!   `fdatasync`) and the ordered list of changes since then: writes and size
//!   changes (`truncate`, `ftruncate`, `fallocate` growing the file). At a cut, the
//!   writes are split into 4 KiB page pieces and a random subset of all pieces and
//!   size changes survives, applied over the durable bytes in their original order.
//!   That is every outcome a page cache can produce when it writes pages back in any
//!   order (ext4 and xfs do not keep write order): any page may reach the disk or not,
//!   a write spanning pages may be torn between them. Pages are not torn within.
//! - **Names (create, mkdir, unlink, rmdir, rename).** They form one ordered journal,
//!   as on ext4 (`data=ordered`) and xfs: a cut keeps a random prefix of it, and any
//!   `fsync`, `fdatasync` or `fsyncdir` commits the whole journal so far (it forces
//!   the file system's log). A rename is one journal entry: it happened or it did
//!   not, never half. A program that never syncs a directory is therefore not caught
//!   when it synced some file afterwards (ext4 and xfs forgive it too).
//! - Writes made with `O_SYNC` or `O_DSYNC` are synced when they return.
//!
//! # A failing sync ("fsyncgate")
//!
//! [`State::failing_syncs`] arms the next N syncs (`fsync`, `fdatasync` of a file,
//! `fsyncdir` of a directory) to fail with `EIO` while every other request keeps
//! working, as a disk that refuses a write-back and then recovers. It models what
//! Linux does when write-back fails: the dirty pages are marked clean and their
//! contents never reach the disk, and the error is reported once, so a later sync
//! of the same file succeeds without having saved anything. Here a failed sync of
//! a file drops all its unsynced changes: its contents return to what its last
//! successful sync made durable (the kernel's page cache of the mount may still
//! serve the lost bytes to a reader until the file is reopened or the mount is
//! remounted, as Linux keeps the clean pages cached). The unsynced name changes
//! stay unsynced (a failed sync commits no journal). `close` (FUSE `flush`) never
//! fails: it syncs nothing, as on a local file system. A program that keeps writing
//! after a failed sync and trusts a later successful one loses data; a program that
//! refuses to go on until reopened (and re-reads what is durable) does not.
//!
//! How much survives is drawn per cut: nothing, everything, or each piece with
//! probability one half, so runs see both the harshest loss and partial, reordered
//! write-back.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};

/// The root directory's inode number (FUSE's fixed root).
pub const ROOT: u64 = 1;
/// The unit of write-back at a power cut.
pub const PAGE: u64 = 4096;

/// What kind of node an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

/// One unsynced change of a file's contents.
#[derive(Clone, Debug)]
enum Change {
    /// `bytes` written at `offset`.
    Write { offset: u64, bytes: Vec<u8> },
    /// The file's size set to this value.
    SetLen(u64),
}

impl Change {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Change::Write { offset, bytes } => {
                let start = usize::try_from(*offset).unwrap_or(usize::MAX);
                let end = start.saturating_add(bytes.len());
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[start..end].copy_from_slice(bytes);
            }
            Change::SetLen(len) => data.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
        }
    }

    /// The change cut at page boundaries: the units a power cut keeps or drops.
    fn pieces(self) -> Vec<Change> {
        match self {
            Change::SetLen(_) => vec![self],
            Change::Write { offset, bytes } => {
                let mut out = Vec::new();
                let mut at = 0usize;
                while at < bytes.len() {
                    let pos = offset + at as u64;
                    let room = (PAGE - pos % PAGE) as usize;
                    let take = room.min(bytes.len() - at);
                    out.push(Change::Write {
                        offset: pos,
                        bytes: bytes[at..at + take].to_vec(),
                    });
                    at += take;
                }
                out
            }
        }
    }
}

/// One file or directory.
#[derive(Clone, Debug)]
pub struct Node {
    /// File or directory.
    pub kind: Kind,
    /// Permission bits.
    pub perm: u16,
    /// Current contents (files).
    data: Vec<u8>,
    /// Contents as of the last sync (files).
    durable: Vec<u8>,
    /// Changes since the last sync, in order (files).
    pending: Vec<Change>,
    /// Current entries (directories).
    entries: BTreeMap<OsString, u64>,
    /// Entries as of the last journal commit (directories).
    durable_entries: BTreeMap<OsString, u64>,
    /// Number of names the node has now.
    pub nlink: u32,
}

impl Node {
    fn new(kind: Kind, perm: u16) -> Self {
        Node {
            kind,
            perm,
            data: Vec::new(),
            durable: Vec::new(),
            pending: Vec::new(),
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
            nlink: 0,
        }
    }

    /// Current size in bytes (files), 4096 for directories.
    pub fn size(&self) -> u64 {
        match self.kind {
            Kind::File => self.data.len() as u64,
            Kind::Dir => PAGE,
        }
    }
}

/// One journal entry: names set (`Some`) or removed (`None`) together.
type NsOp = Vec<(u64, OsString, Option<u64>)>;

/// Why an operation failed, as an errno value.
pub type Errno = i32;

/// What one power cut kept and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files that had unsynced changes.
    pub files_with_pending: usize,
    /// Unsynced pieces (pages written, size changes) at the cut.
    pub pieces_pending: usize,
    /// Of those, how many reached the disk.
    pub pieces_kept: usize,
    /// Unsynced name changes (journal entries) at the cut.
    pub names_pending: usize,
    /// Of those, how many reached the disk (a prefix).
    pub names_kept: usize,
}

/// Every node of the file system, and the journal of unsynced name changes.
#[derive(Debug)]
pub struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    journal: Vec<NsOp>,
    /// Set by a power cut until the next mount: every operation fails with `EIO`.
    pub dead: bool,
    /// Mutating requests left before the power fails by itself (`None`: no limit).
    pub budget: Option<u64>,
    /// Mutating requests served since the file system was made.
    pub mutations: u64,
    /// Syncs left to fail with `EIO` (see the module docs on a failing sync).
    pub failing_syncs: u64,
    /// Syncs that still succeed before the [`failing_syncs`](Self::failing_syncs)
    /// fail (only counted while some are armed).
    pub passing_syncs: u64,
    /// Syncs failed so far by [`failing_syncs`](Self::failing_syncs).
    pub failed_syncs: u64,
}

impl Default for State {
    fn default() -> Self {
        let mut root = Node::new(Kind::Dir, 0o755);
        root.nlink = 1;
        State {
            nodes: HashMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            journal: Vec::new(),
            dead: false,
            budget: None,
            mutations: 0,
            failing_syncs: 0,
            passing_syncs: 0,
            failed_syncs: 0,
        }
    }
}

/// A small deterministic generator (splitmix64) for the cut's choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

impl State {
    /// The node `ino`, or `ENOENT`.
    pub fn node(&self, ino: u64) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(libc::ENOENT)
    }

    fn dir(&self, ino: u64) -> Result<&Node, Errno> {
        let n = self.node(ino)?;
        if n.kind == Kind::Dir {
            Ok(n)
        } else {
            Err(libc::ENOTDIR)
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut Node, Errno> {
        let n = self.node_mut(ino)?;
        match n.kind {
            Kind::File => Ok(n),
            Kind::Dir => Err(libc::EISDIR),
        }
    }

    /// The inode named `name` in directory `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(libc::ENOENT)
    }

    /// The entries of directory `ino`, in name order.
    pub fn list(&self, ino: u64) -> Result<Vec<(OsString, u64, Kind)>, Errno> {
        let dir = self.dir(ino)?;
        Ok(dir
            .entries
            .iter()
            .map(|(name, &child)| {
                let kind = self.nodes.get(&child).map_or(Kind::File, |n| n.kind);
                (name.clone(), child, kind)
            })
            .collect())
    }

    /// Applies a journal entry to the current names and records it.
    fn journal(&mut self, op: NsOp) {
        for (dir, name, target) in &op {
            let old = match self.nodes.get_mut(dir) {
                Some(d) => match target {
                    Some(t) => d.entries.insert(name.clone(), *t),
                    None => d.entries.remove(name),
                },
                None => None,
            };
            if let Some(n) = old.and_then(|o| self.nodes.get_mut(&o)) {
                n.nlink = n.nlink.saturating_sub(1);
            }
            if let Some(n) = target.and_then(|t| self.nodes.get_mut(&t)) {
                n.nlink += 1;
            }
        }
        self.journal.push(op);
    }

    /// Creates a file or directory `name` in `parent`; `EEXIST` if the name is taken.
    pub fn create(
        &mut self,
        parent: u64,
        name: &OsStr,
        kind: Kind,
        perm: u16,
    ) -> Result<u64, Errno> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node::new(kind, perm));
        self.journal(vec![(parent, name.to_os_string(), Some(ino))]);
        Ok(ino)
    }

    /// Removes the name `name` from `parent` (`rmdir` when `dir`).
    pub fn remove(&mut self, parent: u64, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        let node = self.node(ino)?;
        match (node.kind, dir) {
            (Kind::Dir, false) => return Err(libc::EISDIR),
            (Kind::File, true) => return Err(libc::ENOTDIR),
            (Kind::Dir, true) if !node.entries.is_empty() => return Err(libc::ENOTEMPTY),
            _ => {}
        }
        self.journal(vec![(parent, name.to_os_string(), None)]);
        Ok(())
    }

    /// Renames `from/name` to `to/new_name`, replacing a file there (or an empty
    /// directory by a directory). `no_replace` fails with `EEXIST` instead.
    pub fn rename(
        &mut self,
        from: u64,
        name: &OsStr,
        to: u64,
        new_name: &OsStr,
        no_replace: bool,
    ) -> Result<(), Errno> {
        let ino = self.lookup(from, name)?;
        let kind = self.node(ino)?.kind;
        if let Ok(existing) = self.lookup(to, new_name) {
            if existing == ino {
                return Ok(());
            }
            if no_replace {
                return Err(libc::EEXIST);
            }
            let target = self.node(existing)?;
            match (kind, target.kind) {
                (Kind::File, Kind::Dir) => return Err(libc::EISDIR),
                (Kind::Dir, Kind::File) => return Err(libc::ENOTDIR),
                (Kind::Dir, Kind::Dir) if !target.entries.is_empty() => {
                    return Err(libc::ENOTEMPTY)
                }
                _ => {}
            }
        }
        self.dir(to)?;
        self.journal(vec![
            (from, name.to_os_string(), None),
            (to, new_name.to_os_string(), Some(ino)),
        ]);
        Ok(())
    }

    /// Sets the permission bits of `ino`.
    pub fn set_perm(&mut self, ino: u64, perm: u16) -> Result<(), Errno> {
        self.node_mut(ino)?.perm = perm;
        Ok(())
    }

    /// Reads up to `size` bytes of file `ino` at `offset`.
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<&[u8], Errno> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(libc::EISDIR);
        }
        let len = node.data.len();
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(len);
        let end = start.saturating_add(size as usize).min(len);
        Ok(&node.data[start..end])
    }

    /// Writes `bytes` at `offset` of file `ino` (volatile until synced).
    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> Result<(), Errno> {
        if offset
            .checked_add(bytes.len() as u64)
            .is_none_or(|end| end > 1 << 40)
        {
            return Err(libc::EFBIG);
        }
        let node = self.file_mut(ino)?;
        let change = Change::Write {
            offset,
            bytes: bytes.to_vec(),
        };
        change.apply(&mut node.data);
        node.pending.push(change);
        Ok(())
    }

    /// Sets the size of file `ino` (volatile until synced).
    pub fn set_len(&mut self, ino: u64, len: u64) -> Result<(), Errno> {
        if len > 1 << 40 {
            return Err(libc::EFBIG);
        }
        let node = self.file_mut(ino)?;
        if node.data.len() as u64 == len {
            return Ok(());
        }
        let change = Change::SetLen(len);
        change.apply(&mut node.data);
        node.pending.push(change);
        Ok(())
    }

    /// `fsync`/`fdatasync` of `ino` (a file or a directory): its data becomes
    /// durable, and the whole name journal is committed. While
    /// [`failing_syncs`](Self::failing_syncs) is positive it fails instead with
    /// `EIO` and a file's unsynced changes are dropped (see the module docs).
    pub fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        let failing = self.failing_syncs > 0 && self.passing_syncs == 0;
        if self.failing_syncs > 0 && self.passing_syncs > 0 {
            self.passing_syncs -= 1;
        }
        let node = self.node_mut(ino)?;
        if failing {
            if node.kind == Kind::File {
                node.data.clone_from(&node.durable);
                node.pending.clear();
            }
            self.failing_syncs -= 1;
            self.failed_syncs += 1;
            return Err(libc::EIO);
        }
        if node.kind == Kind::File {
            node.durable.clone_from(&node.data);
            node.pending.clear();
        }
        for op in std::mem::take(&mut self.journal) {
            self.apply_durable(&op);
        }
        Ok(())
    }

    fn apply_durable(&mut self, op: &NsOp) {
        for (dir, name, target) in op {
            if let Some(d) = self.nodes.get_mut(dir) {
                match target {
                    Some(t) => d.durable_entries.insert(name.clone(), *t),
                    None => d.durable_entries.remove(name),
                };
            }
        }
    }

    /// Cuts the power: keeps a random part of everything unsynced (see the module
    /// docs), drops the rest, and makes the survivors the new current and durable
    /// state. Nodes no longer reachable from the root are forgotten.
    pub fn cut_power(&mut self, seed: u64) -> CutReport {
        let mut rng = Rng(seed);
        // 0: lose everything unsynced; 1: keep everything; else each piece 50%.
        let mode = rng.below(4);
        let keep = |rng: &mut Rng| match mode {
            0 => false,
            1 => true,
            _ => rng.below(2) == 0,
        };
        let mut report = CutReport::default();

        let journal = std::mem::take(&mut self.journal);
        report.names_pending = journal.len();
        let kept = match mode {
            0 => 0,
            1 => journal.len(),
            _ => rng.below(journal.len() as u64 + 1) as usize,
        };
        report.names_kept = kept;
        for op in &journal[..kept] {
            self.apply_durable(op);
        }

        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let Some(node) = self.nodes.get_mut(&ino) else {
                continue;
            };
            if !node.pending.is_empty() {
                report.files_with_pending += 1;
            }
            let mut data = std::mem::take(&mut node.durable);
            for change in std::mem::take(&mut node.pending) {
                for piece in change.pieces() {
                    report.pieces_pending += 1;
                    if keep(&mut rng) {
                        report.pieces_kept += 1;
                        piece.apply(&mut data);
                    }
                }
            }
            node.data.clone_from(&data);
            node.durable = data;
            node.entries.clone_from(&node.durable_entries);
        }

        // Forget what no name reaches any more, recount the names of the rest.
        let mut links: HashMap<u64, u32> = HashMap::from([(ROOT, 1)]);
        let mut stack = vec![ROOT];
        while let Some(dir) = stack.pop() {
            let children: Vec<u64> = self
                .nodes
                .get(&dir)
                .map(|d| d.entries.values().copied().collect())
                .unwrap_or_default();
            for child in children {
                let count = links.entry(child).or_insert(0);
                *count += 1;
                if *count == 1 && self.nodes.get(&child).is_some_and(|n| n.kind == Kind::Dir) {
                    stack.push(child);
                }
            }
        }
        self.nodes.retain(|ino, _| links.contains_key(ino));
        for (ino, node) in &mut self.nodes {
            node.nlink = links.get(ino).copied().unwrap_or(0);
        }
        self.dead = true;
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(state: &mut State, name: &str) -> u64 {
        state
            .create(ROOT, OsStr::new(name), Kind::File, 0o644)
            .expect("create")
    }

    #[test]
    fn synced_data_survives_and_unsynced_may_not() {
        let mut lost_some = false;
        let mut kept_some = false;
        for seed in 0..64 {
            let mut s = State::default();
            let f = file(&mut s, "a");
            s.write(f, 0, b"durable").expect("write");
            s.sync(f).expect("sync");
            s.write(f, 0, b"VOLATILE-AND-LONGER").expect("write");
            s.cut_power(seed);
            let f = s.lookup(ROOT, OsStr::new("a")).expect("synced name kept");
            let got = s.read(f, 0, 100).expect("read").to_vec();
            assert!(
                got == b"durable" || got == b"VOLATILE-AND-LONGER",
                "{got:?}"
            );
            lost_some |= got == b"durable";
            kept_some |= got != b"durable";
        }
        assert!(lost_some && kept_some);
    }

    #[test]
    fn pages_of_one_write_survive_independently() {
        let mut torn = false;
        for seed in 0..64 {
            let mut s = State::default();
            let f = file(&mut s, "a");
            s.sync(f).expect("sync");
            s.write(f, 0, &vec![7u8; 3 * PAGE as usize]).expect("write");
            s.cut_power(seed);
            let f = s.lookup(ROOT, OsStr::new("a")).expect("name");
            let got = s.read(f, 0, u32::MAX).expect("read");
            let sevens = got.iter().filter(|&&b| b == 7).count();
            torn |= sevens > 0 && sevens < 3 * PAGE as usize;
        }
        assert!(torn, "no write was ever torn between pages");
    }

    #[test]
    fn names_are_a_journal_prefix_and_renames_are_atomic() {
        for seed in 0..64 {
            let mut s = State::default();
            let a = file(&mut s, "a");
            s.write(a, 0, b"old").expect("write");
            s.sync(a).expect("sync");
            let tmp = file(&mut s, "tmp");
            s.write(tmp, 0, b"new").expect("write");
            s.sync(tmp).expect("sync");
            s.rename(ROOT, OsStr::new("tmp"), ROOT, OsStr::new("a"), false)
                .expect("rename");
            s.cut_power(seed);
            let a = s.lookup(ROOT, OsStr::new("a")).expect("a is always there");
            let tmp = s.lookup(ROOT, OsStr::new("tmp"));
            let got = s.read(a, 0, 10).expect("read");
            match tmp {
                Ok(_) => assert_eq!(got, b"old"),
                Err(_) => assert_eq!(got, b"new"),
            }
        }
    }

    #[test]
    fn unsynced_create_may_vanish_and_unlinked_open_files_are_forgotten() {
        let mut vanished = false;
        for seed in 0..32 {
            let mut s = State::default();
            let f = file(&mut s, "x");
            s.write(f, 0, b"data").expect("write");
            s.remove(ROOT, OsStr::new("x"), false).expect("unlink");
            let g = file(&mut s, "y");
            s.cut_power(seed);
            assert!(s.lookup(ROOT, OsStr::new("x")).is_err() || s.node(f).is_ok());
            vanished |= s.lookup(ROOT, OsStr::new("y")).is_err() && s.node(g).is_err();
        }
        assert!(vanished);
    }

    #[test]
    fn a_failed_sync_drops_the_unsynced_data_and_a_later_sync_saves_nothing_of_it() {
        let mut s = State::default();
        let f = file(&mut s, "a");
        let g = file(&mut s, "b");
        s.write(f, 0, b"durable").expect("write");
        s.sync(f).expect("sync");
        s.write(f, 0, b"LOST-BY-THE-DISK").expect("write");
        s.write(g, 0, b"other file").expect("write");
        s.failing_syncs = 1;
        assert_eq!(s.sync(f), Err(libc::EIO));
        assert_eq!((s.failing_syncs, s.failed_syncs), (0, 1));
        // The file system keeps working: the data is back to the synced state, and
        // the next sync succeeds with nothing of the failed write in it.
        assert_eq!(s.read(f, 0, 100).expect("read"), b"durable");
        s.sync(f).expect("a later sync succeeds");
        s.write(f, 7, b"+more").expect("write after the failure");
        assert_eq!(s.read(f, 0, 100).expect("read"), b"durable+more");
        // Another file's unsynced data was not touched by the failure.
        assert_eq!(s.read(g, 0, 100).expect("read"), b"other file");
        s.sync(f).expect("sync");
        for seed in 0..16 {
            let mut c = State {
                nodes: s.nodes.clone(),
                next_ino: s.next_ino,
                journal: s.journal.clone(),
                ..State::default()
            };
            c.cut_power(seed);
            let f = c.lookup(ROOT, OsStr::new("a")).expect("name synced");
            assert_eq!(c.read(f, 0, 100).expect("read"), b"durable+more");
        }
    }

    #[test]
    fn a_failed_directory_sync_commits_no_name_and_only_n_syncs_fail() {
        let mut s = State {
            failing_syncs: 2,
            passing_syncs: 1,
            ..State::default()
        };
        let f = file(&mut s, "new");
        s.sync(ROOT).expect("the first sync passes");
        let g = file(&mut s, "newer");
        assert_eq!(s.sync(ROOT), Err(libc::EIO));
        assert_eq!(s.sync(f), Err(libc::EIO));
        let mut c = State {
            nodes: s.nodes.clone(),
            next_ino: s.next_ino,
            journal: s.journal.clone(),
            ..State::default()
        };
        c.cut_power(0); // mode 0 of seed 0 keeps nothing unsynced
        assert!(c.lookup(ROOT, OsStr::new("new")).is_ok());
        assert_eq!(c.lookup(ROOT, OsStr::new("newer")), Err(libc::ENOENT));
        s.sync(g).expect("the fourth sync works");
        assert_eq!(s.failed_syncs, 2);
        s.cut_power(0);
        assert!(s.lookup(ROOT, OsStr::new("new")).is_ok());
    }

    #[test]
    fn shrinking_and_growing_sizes_are_changes_too() {
        let mut s = State::default();
        let f = file(&mut s, "a");
        s.write(f, 0, b"0123456789").expect("write");
        s.sync(f).expect("sync");
        s.set_len(f, 4).expect("truncate");
        assert_eq!(s.read(f, 0, 100).expect("read"), b"0123");
        s.set_len(f, 6).expect("grow");
        assert_eq!(s.read(f, 0, 100).expect("read"), b"0123\0\0");
        s.cut_power(4); // mode from seed: any; the result is one of the prefixes
        let got = s.read(f, 0, 100).expect("read").to_vec();
        assert!([&b"0123456789"[..], b"0123", b"0123\0\0", b"012345"].contains(&&got[..]));
    }
}
