//! I/O errors that are not a power loss: a full disk during an append, a failed
//! fsync, failures at each step of a compaction. The backend must report them,
//! never apply half a batch, and open cleanly afterwards.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use peerbook::backend::{Backend, BackendError, BackendExt, Dump, Durability, Space, WriteBatch};
use peerbook_file::testing::{FsHook, FsOp, HookedFs, SimFs};
use peerbook_file::{FileBackend, FileOptions, Vfs};

const DIR: &str = "/faults/book";

/// Fails the `nth` (0-based) call of `kind` from now on, once.
#[derive(Debug, Default)]
struct Plan {
    fail: Option<(FsOp, u32, io::ErrorKind)>,
    fired: bool,
}

/// The hook of [`FaultFs`]: the armed [`Plan`].
#[derive(Debug, Default)]
struct Faults(Mutex<Plan>);

type FaultFs = HookedFs<SimFs, Faults>;

fn fault_fs() -> FaultFs {
    HookedFs::with_hook(SimFs::new(99), Faults::default())
}

impl Faults {
    fn arm(&self, kind: FsOp, nth: u32, error: io::ErrorKind) {
        *self.0.lock().unwrap() = Plan {
            fail: Some((kind, nth, error)),
            fired: false,
        };
    }

    fn fired(&self) -> bool {
        self.0.lock().unwrap().fired
    }
}

impl FsHook for Faults {
    fn before(&self, kind: FsOp, _path: &Path) -> io::Result<()> {
        let mut plan = self.0.lock().unwrap();
        if let Some((k, nth, error)) = plan.fail {
            if k == kind {
                if nth == 0 {
                    plan.fail = None;
                    plan.fired = true;
                    return Err(io::Error::new(error, format!("injected {kind:?} failure")));
                }
                plan.fail = Some((k, nth - 1, error));
            }
        }
        Ok(())
    }

    /// A short write before the error, as a full disk does.
    fn short_write(&self, len: usize) -> usize {
        len / 2
    }
}

fn open(fs: &FaultFs) -> FileBackend {
    FileBackend::open_with_vfs(
        Arc::new(fs.clone()),
        DIR,
        FileOptions::default().with_auto_compact(false),
    )
    .expect("open")
}

fn put(b: &FileBackend, key: &str) -> Result<(), BackendError> {
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, key.as_bytes().to_vec(), b"v".to_vec());
    batch.put(Space::Meta, key.as_bytes().to_vec(), b"m".to_vec());
    b.write(batch, Durability::Sync)
}

fn dump(b: &FileBackend) -> Dump {
    b.dump().expect("dump")
}

fn peers(b: &FileBackend) -> Vec<String> {
    dump(b)[Space::Peers.index()]
        .keys()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

#[test]
fn full_disk_during_append_is_reported_and_undone() {
    let fs = fault_fs();
    let b = open(&fs);
    put(&b, "a").unwrap();
    fs.hook().arm(FsOp::Append, 0, io::ErrorKind::StorageFull);
    match put(&b, "b") {
        Err(BackendError::Full { message, source }) => {
            assert!(message.contains("log."), "{message}");
            let cause = source.expect("the io::Error is kept as the source");
            assert_eq!(
                cause.downcast_ref::<io::Error>().map(io::Error::kind),
                Some(io::ErrorKind::StorageFull)
            );
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert!(fs.hook().fired());
    assert_eq!(peers(&b), ["a"], "the failed batch is not visible");
    // The partial frame was cut off: the backend goes on.
    put(&b, "c").unwrap();
    assert_eq!(peers(&b), ["a", "c"]);
    drop(b);
    let b = open(&fs);
    assert!(b.recovery().torn_tail.is_none(), "{:?}", b.recovery());
    assert_eq!(peers(&b), ["a", "c"]);
}

#[test]
fn failed_fsync_stops_writes_until_reopen() {
    let fs = fault_fs();
    let b = open(&fs);
    put(&b, "a").unwrap();
    fs.hook().arm(FsOp::Sync, 0, io::ErrorKind::Other);
    assert!(matches!(put(&b, "b"), Err(BackendError::Io(_))));
    assert_eq!(peers(&b), ["a"], "not applied in memory");
    let refused = put(&b, "c").unwrap_err();
    assert!(refused.to_string().contains("reopen"), "{refused}");
    assert!(b.flush().is_err());
    assert!(b.compact().is_err());
    // reads go on
    assert_eq!(b.get(Space::Peers, b"a").unwrap(), Some(b"v".to_vec()));
    drop(b);
    // The frame reached the file (only its fsync failed): after a reopen the
    // write's outcome is decided by what is on disk, here present.
    let b = open(&fs);
    assert_eq!(peers(&b), ["a", "b"]);
    put(&b, "c").unwrap();
}

#[test]
fn compaction_failures_before_the_commit_point_change_nothing() {
    let steps = [
        (FsOp::Create, 0),  // snapshot temp file
        (FsOp::Append, 1),  // a snapshot frame
        (FsOp::Sync, 0),    // snapshot fsync
        (FsOp::Create, 1),  // log temp file
        (FsOp::Sync, 1),    // log header fsync
        (FsOp::Rename, 0),  // log rename
        (FsOp::SyncDir, 0), // directory fsync after the log rename
        (FsOp::Rename, 1),  // snapshot rename
    ];
    for (kind, nth) in steps {
        let fs = fault_fs();
        let b = open(&fs);
        for k in ["a", "b", "c"] {
            put(&b, k).unwrap();
        }
        let before = dump(&b);
        let generation = b.stats().generation;
        fs.hook().arm(kind, nth, io::ErrorKind::Other);
        let err = b.compact().expect_err("compaction fails");
        assert!(fs.hook().fired(), "{kind:?} #{nth} was reached");
        assert!(
            matches!(err, BackendError::Io(_)),
            "{kind:?} #{nth}: {err:?}"
        );
        assert_eq!(
            b.stats().generation,
            generation,
            "{kind:?} #{nth}: still the old generation"
        );
        // still usable, and a later compaction works
        put(&b, "d").unwrap();
        let mut after = before.clone();
        after[Space::Peers.index()].insert(b"d".to_vec(), b"v".to_vec());
        after[Space::Meta.index()].insert(b"d".to_vec(), b"m".to_vec());
        assert_eq!(dump(&b), after);
        drop(b);
        let b = open(&fs);
        assert_eq!(dump(&b), after, "{kind:?} #{nth}: reopen");
        b.compact().unwrap();
        drop(b);
        let b = open(&fs);
        assert_eq!(dump(&b), after, "{kind:?} #{nth}: after a good compaction");
        let names = fs.list(Path::new(DIR)).unwrap();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}

#[test]
fn failed_directory_sync_at_the_commit_point_stops_writes() {
    let fs = fault_fs();
    let b = open(&fs);
    put(&b, "a").unwrap();
    fs.hook().arm(FsOp::SyncDir, 1, io::ErrorKind::Other);
    assert!(b.compact().is_err());
    let refused = put(&b, "b").unwrap_err();
    assert!(refused.to_string().contains("reopen"), "{refused}");
    drop(b);
    let b = open(&fs);
    assert_eq!(peers(&b), ["a"]);
    put(&b, "b").unwrap();
}
