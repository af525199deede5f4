//! The FUSE side: translates kernel requests onto [`State`].
//!
//! No writeback cache (fuser does not ask for it) and no `direct_io`: every
//! `write` reaches [`State`] before the system call returns, and reads (also the
//! page faults of a memory map, as LMDB's) are served from the page cache filled by
//! `read`. Attribute and entry timeouts are zero, so the kernel asks again rather
//! than trust what it saw. POSIX and BSD locks are left to the kernel (fuser does
//! not negotiate `FUSE_POSIX_LOCKS`): they work between the processes of one
//! machine, which is all a test needs.
//!
//! With `PEERBOOK_POWERFAIL_TRACE` set, every write and sync is printed on stderr.

use std::ffi::OsStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::state::{Kind, State};

const TTL: Duration = Duration::ZERO;

/// The kernel-facing file system over a shared [`State`].
pub(crate) struct PowerFs {
    pub(crate) state: Arc<Mutex<State>>,
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

impl PowerFs {
    fn lock(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.dead {
            Err(Errno::EIO)
        } else {
            Ok(s)
        }
    }

    /// [`lock`](Self::lock) for a request that changes something: counts it
    /// against the budget, and fails the power when the budget is spent.
    fn lock_mut(&self) -> Result<MutexGuard<'_, State>, Errno> {
        let mut s = self.lock()?;
        if let Some(left) = s.budget {
            if left == 0 {
                s.dead = true;
                return Err(Errno::EIO);
            }
            s.budget = Some(left - 1);
        }
        s.mutations += 1;
        Ok(s)
    }

    fn attr(state: &State, ino: u64) -> Result<FileAttr, Errno> {
        let node = state.node(ino).map_err(errno)?;
        let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let size = node.size();
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind: kind(node.kind),
            perm: node.perm,
            nlink: node.nlink.max(1),
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn entry(
        &self,
        reply: ReplyEntry,
        mutating: bool,
        f: impl FnOnce(&mut State) -> Result<u64, i32>,
    ) {
        let locked = if mutating {
            self.lock_mut()
        } else {
            self.lock()
        };
        match locked.and_then(|mut s| {
            let ino = f(&mut s).map_err(errno)?;
            Self::attr(&s, ino)
        }) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut State) -> Result<(), i32>) {
        match self.lock_mut().and_then(|mut s| f(&mut s).map_err(errno)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

fn trace() -> bool {
    std::env::var_os("PEERBOOK_POWERFAIL_TRACE").is_some()
}

fn kind(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, false, |s| s.lookup(parent.0, name));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.lock().and_then(|s| Self::attr(&s, ino.0)) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.lock_mut().and_then(|mut s| {
            if let Some(len) = size {
                s.set_len(ino.0, len).map_err(errno)?;
            }
            if let Some(mode) = mode {
                s.set_perm(ino.0, perm(mode, 0)).map_err(errno)?;
            }
            Self::attr(&s, ino.0)
        });
        match result {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, true, |s| {
            s.create(parent.0, name, Kind::Dir, perm(mode, umask))
        });
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(Errno::EPERM);
            return;
        }
        self.entry(reply, true, |s| {
            s.create(parent.0, name, Kind::File, perm(mode, umask))
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |s| s.remove(parent.0, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |s| s.remove(parent.0, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        self.empty(reply, |s| {
            s.rename(parent.0, name, newparent.0, newname, no_replace)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self
            .lock()
            .and_then(|s| s.node(ino.0).map_err(errno).map(|_| ()))
        {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let result = self.lock_mut().and_then(|mut s| {
            let ino = s
                .create(parent.0, name, Kind::File, perm(mode, umask))
                .map_err(errno)?;
            Self::attr(&s, ino)
        });
        match result {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.lock() {
            Ok(s) => match s.read(ino.0, offset, size) {
                Ok(bytes) => reply.data(bytes),
                Err(e) => reply.error(errno(e)),
            },
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let sync = flags.0 & (libc::O_SYNC | libc::O_DSYNC) != 0;
        if trace() {
            eprintln!(
                "TRACE write ino {} off {offset} len {} sync {sync}",
                ino.0,
                data.len()
            );
        }
        let result = self.lock_mut().and_then(|mut s| {
            s.write(ino.0, offset, data).map_err(errno)?;
            if sync {
                s.sync(ino.0).map_err(errno)?;
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) makes nothing durable.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if trace() {
            eprintln!("TRACE fsync ino {}", ino.0);
        }
        self.empty(reply, |s| s.sync(ino.0));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.lock().and_then(|s| s.list(ino.0).map_err(errno)) {
            Ok(e) => e,
            Err(e) => {
                reply.error(e);
                return;
            }
        };
        let dots = [
            (OsStr::new(".").to_os_string(), ino.0, Kind::Dir),
            (OsStr::new("..").to_os_string(), ino.0, Kind::Dir),
        ];
        for (i, (name, child, k)) in dots.into_iter().chain(entries).enumerate() {
            if (i as u64) < offset {
                continue;
            }
            if reply.add(INodeNo(child), i as u64 + 1, kind(k), &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |s| s.sync(ino.0));
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: engines that check free space must not refuse to write.
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |s| {
            let end = offset.checked_add(length).ok_or(libc::EFBIG)?;
            let size = s.node(ino.0)?.size();
            if mode == 0 {
                // Reserve and extend: the size change is volatile like a write.
                if end > size {
                    s.set_len(ino.0, end)?;
                }
                Ok(())
            } else if mode == libc::FALLOC_FL_KEEP_SIZE {
                // Reservation only: nothing a reader could see.
                Ok(())
            } else if mode == libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE {
                let end = end.min(size);
                if end > offset {
                    let zeros = vec![0u8; usize::try_from(end - offset).map_err(|_| libc::EFBIG)?];
                    s.write(ino.0, offset, &zeros)?;
                }
                Ok(())
            } else {
                Err(libc::EOPNOTSUPP)
            }
        });
    }
}
