//! `Backend::clear` keeps its promise: once it returns `Ok`, no file of the store's
//! directory holds a byte of a former entry, even files an earlier failed removal
//! left behind, and even after a power loss right after it returns. When it cannot
//! keep it, it says so, and the handle still serves the cleared (empty) book.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use peerbook::backend::{Backend, BackendError, Durability, Space, WriteBatch};
use peerbook_file::testing::{FsHook, FsOp, HookedFs, SimFs};
use peerbook_file::{ClearError, FileBackend, FileOptions, Vfs};

const DIR: &str = "/clear/book";
/// The former peer: its id and its record, looked for in every file.
const PEER: &[u8] = b"peer-P-0a1b2c3d4e5f";
const RECORD: &[u8] = b"record-of-P-203.0.113.7";

/// Fails calls of one kind: the `nth` (0-based) from now on, and every later one
/// on the same path when `sticky`.
#[derive(Debug, Default)]
struct Plan {
    fail: Option<(FsOp, u32, io::ErrorKind)>,
    sticky: Option<(FsOp, PathBuf, io::ErrorKind)>,
    fired: u32,
}

#[derive(Debug, Default)]
struct Faults(Mutex<Plan>);

impl Faults {
    fn arm(&self, kind: FsOp, nth: u32, error: io::ErrorKind, sticky: bool) {
        let mut plan = self.0.lock().unwrap();
        plan.fail = Some((kind, nth, error));
        plan.fired = 0;
        plan.sticky = None;
        if sticky {
            // the path is learnt when the call fires
            plan.sticky = Some((kind, PathBuf::new(), error));
        }
    }

    fn disarm(&self) {
        *self.0.lock().unwrap() = Plan::default();
    }

    fn fired(&self) -> u32 {
        self.0.lock().unwrap().fired
    }
}

impl FsHook for Faults {
    fn before(&self, kind: FsOp, path: &Path) -> io::Result<()> {
        let mut plan = self.0.lock().unwrap();
        let injected = |e: io::ErrorKind| Err(io::Error::new(e, format!("injected {kind:?}")));
        if let Some((k, p, e)) = plan.sticky.clone() {
            if k == kind && p == path {
                plan.fired += 1;
                return injected(e);
            }
        }
        if let Some((k, nth, e)) = plan.fail {
            if k == kind {
                if nth > 0 {
                    plan.fail = Some((k, nth - 1, e));
                    return Ok(());
                }
                plan.fail = None;
                plan.fired += 1;
                if let Some(sticky) = &mut plan.sticky {
                    sticky.1 = path.to_path_buf();
                }
                return injected(e);
            }
        }
        Ok(())
    }
}

type FaultFs = HookedFs<SimFs, Faults>;

fn fault_fs(seed: u64) -> FaultFs {
    HookedFs::with_hook(SimFs::new(seed), Faults::default())
}

fn open(fs: &FaultFs) -> FileBackend {
    FileBackend::open_with_vfs(
        Arc::new(fs.clone()),
        DIR,
        FileOptions::default().with_auto_compact(false),
    )
    .expect("open")
}

fn write_peer(b: &FileBackend) {
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, PEER.to_vec(), RECORD.to_vec());
    batch.put(
        Space::ByQuality,
        [b"q/".as_slice(), PEER].concat(),
        Vec::new(),
    );
    b.write(batch, Durability::Sync).expect("write P");
}

/// The [`ClearError`] a failed clear carries as its source.
fn clear_error(err: &BackendError) -> &ClearError {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<ClearError>())
        .unwrap_or_else(|| panic!("a ClearError source: {err:?}"))
}

fn holds(bytes: &[u8], needle: &[u8]) -> bool {
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// The files of the store directory (as the file system has them now) that hold a
/// byte string of P.
fn files_with_p(sim: &SimFs) -> Vec<String> {
    let names = sim.list(Path::new(DIR)).expect("list");
    names
        .into_iter()
        .filter(|name| {
            let bytes = sim.contents(Path::new(DIR).join(name)).unwrap_or_default();
            holds(&bytes, PEER) || holds(&bytes, RECORD)
        })
        .collect()
}

fn sorted_names(sim: &SimFs) -> Vec<String> {
    let mut names = sim.list(Path::new(DIR)).expect("list");
    names.sort();
    names
}

/// A compaction whose removal of the old snapshot failed (and only warned) left
/// `snapshot.2`, which holds P; the clear must remove it too.
#[test]
fn clear_removes_what_a_failed_compaction_removal_left() {
    let fs = fault_fs(7);
    let b = open(&fs);
    write_peer(&b);
    b.compact().unwrap(); // snapshot.2 holds P
    fs.hook()
        .arm(FsOp::Remove, 0, io::ErrorKind::PermissionDenied, false);
    b.compact().expect("a failed removal only warns");
    assert_eq!(fs.hook().fired(), 1);
    assert_eq!(
        files_with_p(fs.inner()),
        ["snapshot.2", "snapshot.3"],
        "the leftover holds P (else this test proves nothing)"
    );
    b.clear(Durability::Buffered).expect("clear");
    assert_eq!(b.get(Space::Peers, PEER).unwrap(), None);
    assert_eq!(files_with_p(fs.inner()), Vec::<String>::new());
    assert_eq!(sorted_names(fs.inner()), ["LOCK", "log.4", "snapshot.4"]);
    // the store goes on
    write_peer(&b);
    drop(b);
    let b = open(&fs);
    assert_eq!(b.get(Space::Peers, PEER).unwrap(), Some(RECORD.to_vec()));
}

/// A temporary a failed compaction could not remove (its snapshot frames hold P)
/// is removed by the clear; files that are not the backend's are left alone.
#[test]
fn clear_removes_our_temporaries_and_nothing_else() {
    let fs = fault_fs(8);
    let b = open(&fs);
    write_peer(&b);
    let sim = fs.inner();
    let dir = Path::new(DIR);
    // what a compaction to generation 9 whose cleanup failed leaves
    let leftover = sim.contents(dir.join("log.1")).unwrap();
    sim.set_contents(dir.join("snapshot.9.tmp"), &leftover);
    sim.set_contents(dir.join("notes.txt"), PEER);
    sim.set_contents(dir.join("log.01"), PEER);
    b.clear(Durability::Sync).expect("clear");
    assert_eq!(
        sorted_names(sim),
        ["LOCK", "log.01", "log.2", "notes.txt", "snapshot.2"],
        "only the backend's files are removed"
    );
    assert_eq!(files_with_p(sim), ["log.01", "notes.txt"]);
}

/// A file the clear cannot remove is an error (a [`ClearError`], its I/O error as
/// the source); the clear is committed all the same: the handle serves the empty
/// book and takes writes, and a later clear that can remove it returns `Ok`.
#[test]
fn a_former_file_left_is_an_error_and_the_book_is_still_cleared() {
    let fs = fault_fs(9);
    let b = open(&fs);
    write_peer(&b);
    b.compact().unwrap();
    // snapshot.2 (holding P) cannot be removed, by the compaction nor by the clear
    fs.hook()
        .arm(FsOp::Remove, 0, io::ErrorKind::PermissionDenied, true);
    b.compact().unwrap();
    let err = b
        .clear(Durability::Sync)
        .expect_err("snapshot.2 is still there");
    assert_eq!(
        fs.hook().fired(),
        2,
        "the compaction's and the clear's removal"
    );
    let clear = clear_error(&err);
    match clear {
        ClearError::Remove { file, source } => {
            assert_eq!(file, &Path::new(DIR).join("snapshot.2"));
            assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
        }
        other => panic!("expected Remove, got {other:?}"),
    }
    assert!(err.to_string().contains("snapshot.2"), "{err}");
    assert_eq!(
        b.get(Space::Peers, PEER).unwrap(),
        None,
        "cleared in memory"
    );
    assert_eq!(files_with_p(fs.inner()), ["snapshot.2"]);
    fs.hook().disarm();
    b.clear(Durability::Sync).expect("now it can remove it");
    assert_eq!(files_with_p(fs.inner()), Vec::<String>::new());
    write_peer(&b);
    assert_eq!(b.get(Space::Peers, PEER).unwrap(), Some(RECORD.to_vec()));
}

/// The directory sync after the removals failing is an error too: a power loss
/// could bring the removed files back.
#[test]
fn a_failed_directory_sync_after_the_removals_is_an_error() {
    let fs = fault_fs(10);
    let b = open(&fs);
    write_peer(&b);
    // the clear's two directory syncs of the compaction protocol, then its own
    fs.hook().arm(FsOp::SyncDir, 2, io::ErrorKind::Other, false);
    let err = b.clear(Durability::Sync).expect_err("the sync failed");
    assert_eq!(fs.hook().fired(), 1);
    let clear = clear_error(&err);
    assert!(
        matches!(clear, ClearError::SyncDir { dir, .. } if dir == Path::new(DIR)),
        "{clear:?}"
    );
    assert_eq!(b.get(Space::Peers, PEER).unwrap(), None);
    assert_eq!(files_with_p(fs.inner()), Vec::<String>::new());
}

/// `clear` returns `Ok`, then the power goes out: whatever survives, no file of the
/// directory holds P (looked at before any reopen, which would remove leftovers).
#[test]
fn no_former_byte_survives_a_power_loss_after_clear_returns() {
    for seed in 0..32 {
        let fs = fault_fs(seed);
        let b = open(&fs);
        write_peer(&b);
        if seed % 2 == 0 {
            b.compact().unwrap(); // P in a snapshot too, not only in a log
            write_peer(&b);
        }
        b.clear(Durability::Buffered).expect("clear");
        let sim = fs.inner();
        sim.kill();
        drop(b);
        let report = sim.power_loss();
        assert_eq!(
            files_with_p(sim),
            Vec::<String>::new(),
            "seed {seed}: {report}; files {:?}",
            sorted_names(sim)
        );
        let b = open(&fs);
        assert_eq!(b.get(Space::Peers, PEER).unwrap(), None, "seed {seed}");
    }
}

/// After the commit point of a clear, the new log failing to open is an error and
/// refuses writes until a reopen, but the handle has forgotten the former entries
/// and the former files are gone.
#[test]
fn a_log_that_fails_to_open_after_the_commit_point_still_clears() {
    let fs = fault_fs(11);
    let b = open(&fs);
    write_peer(&b);
    fs.hook()
        .arm(FsOp::OpenAppend, 0, io::ErrorKind::Other, false);
    let err = b.clear(Durability::Sync).expect_err("the log did not open");
    assert_eq!(fs.hook().fired(), 1);
    assert!(matches!(err, BackendError::Io(_)), "{err:?}");
    assert_eq!(
        b.get(Space::Peers, PEER).unwrap(),
        None,
        "cleared in memory"
    );
    let mut seen = 0;
    peerbook::backend::Backend::scan(
        &b,
        Space::ByQuality,
        peerbook::backend::KeyRange::all(),
        peerbook::backend::Direction::Forward,
        &mut |_, _| {
            seen += 1;
            std::ops::ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(seen, 0);
    assert_eq!(files_with_p(fs.inner()), Vec::<String>::new());
    let refused = b
        .write(
            {
                let mut batch = WriteBatch::new();
                batch.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
                batch
            },
            Durability::Sync,
        )
        .unwrap_err();
    assert!(refused.to_string().contains("reopen"), "{refused}");
    drop(b);
    let b = open(&fs);
    assert_eq!(b.get(Space::Peers, PEER).unwrap(), None);
    write_peer(&b);
}

/// The directory sync of a clear's commit point failing: the directory holds the
/// empty generation, but a power loss could bring back either, so the old files
/// stay; the handle has forgotten the former entries all the same.
#[test]
fn a_failed_sync_at_the_commit_point_forgets_and_keeps_the_old_files() {
    let fs = fault_fs(12);
    let b = open(&fs);
    write_peer(&b);
    fs.hook().arm(FsOp::SyncDir, 1, io::ErrorKind::Other, false);
    let err = b
        .clear(Durability::Sync)
        .expect_err("the commit point failed");
    assert_eq!(fs.hook().fired(), 1);
    assert!(matches!(err, BackendError::Io(_)), "{err:?}");
    assert_eq!(
        b.get(Space::Peers, PEER).unwrap(),
        None,
        "cleared in memory"
    );
    assert_eq!(
        sorted_names(fs.inner()),
        ["LOCK", "log.1", "log.2", "snapshot.1", "snapshot.2"]
    );
    drop(b);
    let b = open(&fs);
    assert_eq!(b.get(Space::Peers, PEER).unwrap(), None);
    assert_eq!(files_with_p(fs.inner()), Vec::<String>::new());
}
