//! No reader sees a synced write before its log sync returned, and a failed sync
//! leaves the maps as they were: a file system whose log sync waits for the test
//! holds a write in its sync while readers (point reads, scans, views) look. A
//! guard for any change that moves work of the write path next to the sync.

use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use peerbook::backend::{
    Backend, BackendExt, Direction, Dump, Durability, KeyRange, ReadView, Space, WriteBatch,
};
use peerbook_file::testing::{FsHook, FsOp, HookedFs, SimFs};
use peerbook_file::{FileBackend, FileOptions};

const DIR: &str = "/visibility/book";

/// The state of a [`SyncGate`]: when armed, the next file sync waits until
/// released, then succeeds or fails as told.
#[derive(Debug, Default)]
struct Gate {
    armed: bool,
    waiting: bool,
    release: Option<bool>,
}

/// The hook of [`GateFs`]: holds a file sync at the [`Gate`].
#[derive(Debug, Default)]
struct SyncGate(Mutex<Gate>, Condvar);

type GateFs = HookedFs<SimFs, SyncGate>;

fn gate_fs() -> GateFs {
    HookedFs::with_hook(SimFs::new(7), SyncGate::default())
}

impl SyncGate {
    fn arm(&self) {
        *self.0.lock().unwrap() = Gate {
            armed: true,
            ..Gate::default()
        };
    }

    /// Wait until a sync is held at the gate.
    fn wait_held(&self) {
        let SyncGate(lock, cv) = self;
        let _held = cv.wait_while(lock.lock().unwrap(), |g| !g.waiting).unwrap();
    }

    /// Let the held sync go on: `ok` says whether it succeeds.
    fn release(&self, ok: bool) {
        let SyncGate(lock, cv) = self;
        lock.lock().unwrap().release = Some(ok);
        cv.notify_all();
    }

    fn pass(&self) -> io::Result<()> {
        let SyncGate(lock, cv) = self;
        let mut g = lock.lock().unwrap();
        if !g.armed {
            return Ok(());
        }
        g.armed = false;
        g.waiting = true;
        cv.notify_all();
        let mut g = cv.wait_while(g, |g| g.release.is_none()).unwrap();
        g.waiting = false;
        match g.release.take() {
            Some(true) => Ok(()),
            _ => Err(io::Error::other("injected sync failure")),
        }
    }
}

impl FsHook for SyncGate {
    fn before(&self, op: FsOp, _path: &Path) -> io::Result<()> {
        match op {
            FsOp::Sync => self.pass(),
            _ => Ok(()),
        }
    }
}

fn open(fs: &GateFs) -> FileBackend {
    FileBackend::open_with_vfs(
        Arc::new(fs.clone()),
        DIR,
        FileOptions::default().with_auto_compact(false),
    )
    .expect("open")
}

fn put(key: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (key.as_bytes().to_vec(), value.as_bytes().to_vec())
}

/// A book of peers `a` and `b`, and a batch that changes `a`, deletes `b`, adds `c`.
fn book_and_batch(b: &FileBackend) -> WriteBatch {
    let mut first = WriteBatch::new();
    for (k, v) in [put("a", "1"), put("b", "1")] {
        first.put(Space::Peers, k, v);
    }
    b.write(first, Durability::Sync).unwrap();
    let mut batch = WriteBatch::new();
    let ((a, a2), (c, c3)) = (put("a", "2"), put("c", "3"));
    batch.put(Space::Peers, a, a2);
    batch.delete(Space::Peers, b"b".to_vec());
    batch.put(Space::Peers, c, c3);
    batch.put(Space::Meta, b"m".to_vec(), b"1".to_vec());
    batch
}

/// What a reader sees: the dump (scans), point reads, a view's point reads.
type Seen = (Dump, Vec<Option<Vec<u8>>>, Vec<Option<Vec<u8>>>);

/// Everything a reader sees of the book.
fn seen(b: &FileBackend) -> Seen {
    let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
    let gets = keys
        .iter()
        .map(|k| b.get(Space::Peers, k).unwrap())
        .collect();
    let view = b.view().unwrap();
    let view_gets = keys
        .iter()
        .map(|k| view.get(Space::Peers, k).unwrap())
        .collect();
    (b.dump().unwrap(), gets, view_gets)
}

/// Holds the batch's write in its log sync and checks, for a while (time enough
/// for any work beside the sync to have run), that readers see the book as before;
/// then releases the sync with `ok`. A view opened during the sync still reads the
/// book as before afterwards. Returns the backend and the book before.
fn write_held_in_sync(fs: &GateFs, ok: bool) -> (FileBackend, Dump) {
    let b = open(fs);
    let batch = book_and_batch(&b);
    let before = seen(&b);
    fs.hook().arm();
    let written = thread::scope(|s| {
        let writer = s.spawn(|| b.write(batch, Durability::Sync));
        // A failed check must not leave the writer held (the scope joins it).
        let _unblock = Unblock(fs);
        fs.hook().wait_held();
        let start = Instant::now();
        let mut looks = 0u32;
        while start.elapsed() < Duration::from_millis(300) {
            assert_eq!(
                seen(&b),
                before,
                "a reader saw the write before its sync returned"
            );
            looks += 1;
            thread::sleep(Duration::from_millis(2));
        }
        assert!(looks > 1);
        let view = b.view().unwrap();
        fs.hook().release(ok);
        let written = writer.join().unwrap();
        assert_eq!(view_dump(&*view), before.0, "a view opened during the sync");
        written
    });
    assert_eq!(written.is_ok(), ok, "{written:?}");
    (b, before.0)
}

/// Releases a held sync (failing it) when a check panicked.
struct Unblock<'a>(&'a GateFs);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.hook().release(false);
        }
    }
}

fn view_dump(view: &dyn ReadView) -> Dump {
    let mut dump = Dump::default();
    for space in Space::ALL {
        view.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
            dump[space.index()].insert(k.to_vec(), v.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
    }
    dump
}

#[test]
fn a_reader_does_not_see_a_write_until_its_sync_returned() {
    let fs = gate_fs();
    let (b, before) = write_held_in_sync(&fs, true);
    let mut expected = before;
    expected[Space::Peers.index()] = [put("a", "2"), put("c", "3")].into_iter().collect();
    expected[Space::Meta.index()].insert(b"m".to_vec(), b"1".to_vec());
    assert_eq!(
        b.dump().unwrap(),
        expected,
        "the write is seen once durable"
    );
    // later writes go on, through the same path
    let mut next = WriteBatch::new();
    next.delete(Space::Peers, b"a".to_vec());
    b.write(next, Durability::Sync).unwrap();
    expected[Space::Peers.index()].remove(&b"a"[..]);
    assert_eq!(b.dump().unwrap(), expected);
    drop(b);
    assert_eq!(open(&fs).dump().unwrap(), expected, "reopened");
}

#[test]
fn a_failed_sync_leaves_the_maps_as_before() {
    let fs = gate_fs();
    let (b, before) = write_held_in_sync(&fs, false);
    assert_eq!(b.dump().unwrap(), before, "the failed write is not applied");
    assert_eq!(b.get(Space::Peers, b"c").unwrap(), None);
    assert_eq!(b.get(Space::Peers, b"b").unwrap(), Some(b"1".to_vec()));
    let mut next = WriteBatch::new();
    next.put(Space::Meta, b"x".to_vec(), b"1".to_vec());
    let refused = b.write(next, Durability::Sync).unwrap_err();
    assert!(refused.to_string().contains("reopen"), "{refused}");
    assert_eq!(b.dump().unwrap(), before);
    drop(b);
    // Only the fsync failed, the frame is in the file: a reopen decides by the disk.
    let reopened = open(&fs).dump().unwrap();
    assert_eq!(reopened[Space::Peers.index()].len(), 2, "{reopened:?}");
}
