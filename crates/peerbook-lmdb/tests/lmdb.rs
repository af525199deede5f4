//! Behaviour specific to the LMDB backend: map growth, the map cap, the directory
//! lock, concurrent readers while the map grows, and error mapping.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use peerbook::backend::{
    Backend, BackendError, Direction, Durability, KeyRange, Space, WriteBatch,
};
use peerbook_lmdb::{LmdbBackend, LmdbOptions, MIN_MAP_SIZE};

const MIB: usize = 1 << 20;

fn scan_all(b: &LmdbBackend, space: Space, dir: Direction) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    b.scan(space, KeyRange::all(), dir, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .expect("scan");
    out
}

/// A value that says which key it belongs to, so a misplaced value is caught.
/// `len` bytes that depend on `key` and do not compress (the backend compresses
/// values; tests that count pages need values that keep their size).
fn value_for(key: u32, len: usize) -> Vec<u8> {
    let mut x = u64::from(key) ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Whether `result` is the refusal of a write that applied nothing, for `what`.
fn refused_unapplied(
    result: &Result<(), BackendError>,
    what: impl Fn(&BackendError) -> bool,
) -> bool {
    matches!(result, Err(e) if e.is_not_applied() && what(e.inner()))
}

fn small_map() -> LmdbOptions {
    LmdbOptions::default().with_initial_map_size(MIB)
}

#[test]
fn open_creates_the_directory_and_reports_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a").join("b").join("book");
    let b = LmdbBackend::open(&path, LmdbOptions::default()).unwrap();
    assert!(path.is_dir());
    assert_eq!(b.path(), path.as_path());
    assert_eq!(b.engine_name(), "lmdb");
    assert_eq!(b.options(), &LmdbOptions::default());
    for file in ["data.mdb", "lock.mdb", "LOCK"] {
        assert!(path.join(file).exists(), "{file} exists");
    }
    let empty = b.disk_usage().unwrap();
    let mut batch = WriteBatch::new();
    for i in 0u32..256 {
        batch.put(Space::Peers, i.to_be_bytes().to_vec(), value_for(i, 4096));
    }
    b.write(batch, Durability::Sync).unwrap();
    let full = b.disk_usage().unwrap();
    assert!(
        full >= empty + 1024 * 1024,
        "disk usage grows with the data: {empty} -> {full}"
    );
    assert!(format!("{b:?}").contains("LmdbBackend"));
}

#[test]
fn map_grows_automatically_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let b = LmdbBackend::open(&path, small_map()).unwrap();
    let start = b.map_size().unwrap();
    assert!(start <= MIB, "opens with the small map ({start})");

    // ~8 MiB in 64 batches of 32 x 4 KiB values, spread over two spaces.
    let mut expected = BTreeMap::new();
    for round in 0u32..64 {
        let mut batch = WriteBatch::new();
        for i in 0..32 {
            let key = round * 32 + i;
            let value = value_for(key, 4096);
            batch.put(Space::Peers, key.to_be_bytes().to_vec(), value.clone());
            batch.put(Space::ByLastSeen, key.to_be_bytes().to_vec(), Vec::new());
            expected.insert(key.to_be_bytes().to_vec(), value);
        }
        let durability = if round % 2 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        b.write(batch, durability)
            .unwrap_or_else(|e| panic!("batch {round}: {e}"));
    }
    // One batch alone several times the initial map: grows more than once in one write.
    let mut big = WriteBatch::new();
    for key in 10_000u32..10_768 {
        let value = value_for(key, 4096);
        big.put(Space::Peers, key.to_be_bytes().to_vec(), value.clone());
        expected.insert(key.to_be_bytes().to_vec(), value);
    }
    b.write(big, Durability::Sync).unwrap();
    b.flush().unwrap();

    let grown = b.map_size().unwrap();
    assert!(
        grown >= 8 * MIB,
        "the map grew past the data ({start} -> {grown})"
    );
    let check = |b: &LmdbBackend| {
        let got: BTreeMap<_, _> = scan_all(b, Space::Peers, Direction::Forward)
            .into_iter()
            .collect();
        assert_eq!(got.len(), expected.len(), "every entry is there");
        assert!(got == expected, "every value is intact");
        assert_eq!(
            scan_all(b, Space::ByLastSeen, Direction::Reverse).len(),
            64 * 32
        );
    };
    check(&b);

    drop(b);
    let b = LmdbBackend::open(&path, small_map()).unwrap();
    check(&b);
    // Reopening a grown book starts with room to spare: the next write needs no growth.
    assert!(b.map_size().unwrap() >= grown, "reopened map fits the data");
    let mut batch = WriteBatch::new();
    batch.put(Space::Meta, b"after-reopen".to_vec(), b"ok".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    assert_eq!(
        b.get(Space::Meta, b"after-reopen").unwrap(),
        Some(b"ok".to_vec())
    );
}

#[test]
fn max_map_size_yields_full_and_the_failed_batch_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let options = LmdbOptions::default()
        .with_initial_map_size(MIB)
        .with_max_map_size(2 * MIB);
    let b = LmdbBackend::open(&path, options.clone()).unwrap();

    // A batch larger than the cap on its own.
    let mut huge = WriteBatch::new();
    for key in 0u32..1024 {
        huge.put(
            Space::Peers,
            key.to_be_bytes().to_vec(),
            value_for(key, 4096),
        );
    }
    match b
        .write(huge, Durability::Sync)
        .map_err(BackendError::into_inner)
    {
        Err(BackendError::Full { message, .. }) => {
            assert!(message.contains("max_map_size"), "clear message: {message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
        other => panic!("a 4 MiB batch in a 2 MiB map: {other:?}"),
    }
    assert!(
        scan_all(&b, Space::Peers, Direction::Forward).is_empty(),
        "nothing of the failed batch was written"
    );

    // Fill up in 64 KiB batches until the cap refuses one.
    let mut written = BTreeMap::new();
    let mut failed_round = None;
    for round in 0u32..200 {
        let mut batch = WriteBatch::new();
        let mut this = Vec::new();
        for i in 0..16 {
            let key = round * 16 + i;
            let value = value_for(key, 4096);
            batch.put(Space::Peers, key.to_be_bytes().to_vec(), value.clone());
            this.push((key.to_be_bytes().to_vec(), value));
        }
        batch.put(
            Space::Meta,
            b"last-round".to_vec(),
            round.to_be_bytes().to_vec(),
        );
        match b.write(batch, Durability::Buffered) {
            Ok(()) => written.extend(this),
            Err(e) if e.is_not_applied() && matches!(e.inner(), BackendError::Full { .. }) => {
                failed_round = Some((round, this));
                break;
            }
            Err(e) => panic!("round {round}: unexpected {e}"),
        }
    }
    let (round, lost) = failed_round.expect("the cap is reached within 200 rounds");
    assert!(round > 0, "some batches fit before the cap");
    assert!(
        b.map_size().unwrap() <= 2 * MIB,
        "the map never passed its cap"
    );
    for (key, _) in &lost {
        assert_eq!(
            b.get(Space::Peers, key).unwrap(),
            None,
            "no key of the refused batch is visible"
        );
    }
    assert_eq!(
        b.get(Space::Meta, b"last-round").unwrap(),
        Some((round - 1).to_be_bytes().to_vec()),
        "the meta update of the refused batch did not happen either"
    );
    let got: BTreeMap<_, _> = scan_all(&b, Space::Peers, Direction::Forward)
        .into_iter()
        .collect();
    assert!(got == written, "every accepted batch is intact");

    // Still usable: reads, deletes that free room, flush, and a reopen.
    let mut batch = WriteBatch::new();
    for key in written.keys().take(64) {
        batch.delete(Space::Peers, key.clone());
    }
    b.write(batch, Durability::Sync)
        .expect("deleting frees room in a full map");
    b.flush().unwrap();
    let remaining = written.len() - 64;
    drop(b);
    let b = LmdbBackend::open(&path, options).unwrap();
    assert_eq!(
        scan_all(&b, Space::Peers, Direction::Forward).len(),
        remaining
    );
}

#[test]
fn second_open_of_the_same_directory_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let first = LmdbBackend::open(&path, LmdbOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"alice".to_vec(), b"1".to_vec());
    first.write(batch, Durability::Sync).unwrap();

    for attempt in 0..3 {
        match LmdbBackend::open(&path, LmdbOptions::default()) {
            Err(BackendError::Locked { message, .. }) => assert!(
                message.contains(&path.display().to_string()),
                "the message names the path: {message}"
            ),
            other => panic!("attempt {attempt}: second open gave {other:?}"),
        }
    }
    // Through another spelling of the same directory, too.
    let other_spelling = tmp.path().join(".").join("book");
    assert!(matches!(
        LmdbBackend::open(&other_spelling, LmdbOptions::default()),
        Err(BackendError::Locked { .. })
    ));

    // The refused opens changed nothing: the first handle keeps working.
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"bob".to_vec(), b"2".to_vec());
    first.write(batch, Durability::Sync).unwrap();
    assert_eq!(
        first.get(Space::Peers, b"alice").unwrap(),
        Some(b"1".to_vec())
    );

    drop(first);
    let second = LmdbBackend::open(&path, LmdbOptions::default()).expect("open after close");
    assert_eq!(
        second.get(Space::Peers, b"alice").unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(
        second.get(Space::Peers, b"bob").unwrap(),
        Some(b"2".to_vec())
    );
}

/// Runs this test binary again as a child process doing `role` on `dir`; returns its
/// exit status success and its stdout.
fn run_child(role: &str, dir: &Path) -> (bool, String) {
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .args([
            "--exact",
            "child_process_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PEERBOOK_LMDB_CHILD_ROLE", role)
        .env("PEERBOOK_LMDB_CHILD_DIR", dir)
        .output()
        .expect("run the child process");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Not a test of its own: the body of the child processes of the tests below. Does
/// nothing unless the parent set `PEERBOOK_LMDB_CHILD_ROLE`.
#[test]
fn child_process_role() {
    let (Ok(role), Ok(dir)) = (
        std::env::var("PEERBOOK_LMDB_CHILD_ROLE"),
        std::env::var("PEERBOOK_LMDB_CHILD_DIR"),
    ) else {
        return;
    };
    match role.as_str() {
        "probe-open" => match LmdbBackend::open(&dir, LmdbOptions::default()) {
            Err(BackendError::Locked { message, .. }) => println!("CHILD-LOCKED {message}"),
            Ok(b) => {
                println!("CHILD-OPENED {:?}", b.get(Space::Peers, b"alice"));
            }
            Err(e) => println!("CHILD-ERROR {e}"),
        },
        "buffered-then-abort" => {
            let b = LmdbBackend::open(&dir, LmdbOptions::default()).unwrap();
            for i in 0u32..100 {
                let mut batch = WriteBatch::new();
                batch.put(Space::Peers, i.to_be_bytes().to_vec(), value_for(i, 100));
                batch.put(
                    Space::Meta,
                    b"count".to_vec(),
                    (i + 1).to_be_bytes().to_vec(),
                );
                b.write(batch, Durability::Buffered).unwrap();
            }
            println!("CHILD-WROTE");
            // A process crash: no flush, no destructor.
            std::process::abort();
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn another_process_is_locked_out_too() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let first = LmdbBackend::open(&path, LmdbOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"alice".to_vec(), b"1".to_vec());
    first.write(batch, Durability::Sync).unwrap();

    let (ok, out) = run_child("probe-open", &path);
    assert!(ok, "child ran: {out}");
    assert!(
        out.contains("CHILD-LOCKED"),
        "the other process is locked out: {out}"
    );
    assert!(out.contains(&path.display().to_string()), "{out}");

    drop(first);
    let (ok, out) = run_child("probe-open", &path);
    assert!(ok, "child ran: {out}");
    assert!(
        out.contains("CHILD-OPENED Ok(Some([49]))"),
        "after close the other process opens and reads: {out}"
    );
}

#[test]
fn buffered_writes_survive_a_process_crash_and_the_lock_is_released() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    let (ok, out) = run_child("buffered-then-abort", &path);
    assert!(!ok, "the child aborted");
    assert!(out.contains("CHILD-WROTE"), "the child wrote: {out}");

    let b = LmdbBackend::open(&path, LmdbOptions::default())
        .expect("a dead process leaves no lock behind");
    assert_eq!(
        b.get(Space::Meta, b"count").unwrap(),
        Some(100u32.to_be_bytes().to_vec())
    );
    let entries = scan_all(&b, Space::Peers, Direction::Forward);
    assert_eq!(
        entries.len(),
        100,
        "every buffered write survived the crash"
    );
    for (key, value) in entries {
        let i = u32::from_be_bytes(key.try_into().unwrap());
        assert_eq!(value, value_for(i, 100));
    }
}

#[test]
fn concurrent_readers_while_writes_grow_the_map() {
    let tmp = tempfile::tempdir().unwrap();
    let b = Arc::new(
        LmdbBackend::open(
            tmp.path().join("book"),
            LmdbOptions::default().with_initial_map_size(MIN_MAP_SIZE),
        )
        .unwrap(),
    );
    let start = b.map_size().unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // Each generation g rewrites keys 0..64 of `by_quality` with value g, adds 64 new
    // 1 KiB peers, and sets meta "gen" = g: one batch, so a scan sees one generation.
    let readers: Vec<_> = (0..4)
        .map(|t| {
            let b = Arc::clone(&b);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut scans = 0u64;
                let mut last_gen = 0u32;
                while !stop.load(Ordering::Relaxed) || scans < 20 {
                    let dir = if t % 2 == 0 {
                        Direction::Forward
                    } else {
                        Direction::Reverse
                    };
                    let rows = scan_all(&b, Space::ByQuality, dir);
                    if !rows.is_empty() {
                        assert_eq!(rows.len(), 64, "a scan sees whole batches");
                        let first = &rows[0].1;
                        assert!(
                            rows.iter().all(|(_, v)| v == first),
                            "a scan sees one generation"
                        );
                    }
                    if let Some(gen) = b.get(Space::Meta, b"gen").unwrap() {
                        let gen = u32::from_be_bytes(gen.try_into().unwrap());
                        assert!(gen >= last_gen, "generations never go back");
                        last_gen = gen;
                        let probe = (gen * 64).saturating_sub(1);
                        if gen > 0 {
                            let v = b
                                .get(Space::Peers, &probe.to_be_bytes())
                                .unwrap()
                                .expect("a peer of a committed generation");
                            assert_eq!(v, value_for(probe, 1024));
                        }
                    }
                    scans += 1;
                }
                scans
            })
        })
        .collect();

    for gen in 1u32..=200 {
        let mut batch = WriteBatch::new();
        for i in 0u32..64 {
            batch.put(
                Space::ByQuality,
                i.to_be_bytes().to_vec(),
                gen.to_be_bytes().to_vec(),
            );
            let peer = (gen - 1) * 64 + i;
            batch.put(
                Space::Peers,
                peer.to_be_bytes().to_vec(),
                value_for(peer, 1024),
            );
        }
        batch.put(Space::Meta, b"gen".to_vec(), gen.to_be_bytes().to_vec());
        b.write(batch, Durability::Buffered).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("a reader panicked") >= 20);
    }
    assert!(
        b.map_size().unwrap() > start,
        "the map grew while readers were reading"
    );
    assert_eq!(
        scan_all(&b, Space::Peers, Direction::Forward).len(),
        200 * 64
    );
}

#[test]
fn reads_inside_a_scan_work_and_writes_are_refused_not_deadlocked() {
    let tmp = tempfile::tempdir().unwrap();
    let b = LmdbBackend::open(tmp.path().join("book"), LmdbOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0u8..10 {
        batch.put(Space::Peers, vec![b'k', i], vec![i]);
    }
    b.write(batch, Durability::Sync).unwrap();

    let mut refused = 0;
    b.scan(
        Space::Peers,
        KeyRange::all(),
        Direction::Forward,
        &mut |k, v| {
            assert_eq!(b.get(Space::Peers, k).unwrap().as_deref(), Some(v));
            b.disk_usage().unwrap();
            b.flush().unwrap();
            let mut nested = WriteBatch::new();
            nested.put(Space::Meta, b"from-visitor".to_vec(), Vec::new());
            match b.write(nested, Durability::Sync).map_err(|e| {
                assert!(e.is_not_applied(), "{e:?}");
                e.into_inner()
            }) {
                Err(BackendError::Engine {
                    engine: "lmdb",
                    message,
                    ..
                }) => {
                    assert!(message.contains("scan"), "{message}");
                    refused += 1;
                }
                other => panic!("a write from a visitor: {other:?}"),
            }
            assert!(b.clear(Durability::Sync).is_err());
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(refused, 10);
    assert_eq!(b.get(Space::Meta, b"from-visitor").unwrap(), None);
    // Outside the scan, writes work again.
    let mut batch = WriteBatch::new();
    batch.put(Space::Meta, b"after".to_vec(), Vec::new());
    b.write(batch, Durability::Sync).unwrap();
    assert_eq!(scan_all(&b, Space::Peers, Direction::Forward).len(), 10);
}

#[test]
fn keys_lmdb_cannot_hold_are_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let b = LmdbBackend::open(tmp.path().join("book"), LmdbOptions::default()).unwrap();

    // An empty key in a put: the whole batch is refused.
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"fine".to_vec(), b"1".to_vec());
    batch.put(Space::Peers, Vec::new(), b"2".to_vec());
    assert!(refused_unapplied(&b.write(batch, Durability::Sync), |e| {
        matches!(e, BackendError::Engine { engine: "lmdb", .. })
    }));
    assert_eq!(
        b.get(Space::Peers, b"fine").unwrap(),
        None,
        "all or nothing"
    );

    // A key over LMDB's 511-byte limit.
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, vec![7; 512], b"x".to_vec());
    match b
        .write(batch, Durability::Sync)
        .map_err(BackendError::into_inner)
    {
        Err(BackendError::Engine { message, .. }) => assert!(message.contains("512"), "{message}"),
        other => panic!("a 512-byte key: {other:?}"),
    }
    // 511 bytes is fine.
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, vec![7; 511], b"x".to_vec());
    b.write(batch, Durability::Sync).unwrap();

    // Reads and deletes of such keys find nothing.
    assert_eq!(b.get(Space::Peers, b"").unwrap(), None);
    assert_eq!(b.get(Space::Peers, &[7; 512]).unwrap(), None);
    let mut batch = WriteBatch::new();
    batch.delete(Space::Peers, Vec::new());
    batch.delete(Space::Peers, vec![7; 4096]);
    b.write(batch, Durability::Sync).unwrap();

    // Bounds that are empty or longer than any key.
    let long = [7u8; 4096];
    let mut seen = 0;
    for (lower, upper) in [
        (Bound::Included(&b""[..]), Bound::Unbounded),
        (Bound::Excluded(&b""[..]), Bound::Included(&long[..])),
        (Bound::Unbounded, Bound::Excluded(&b""[..])),
        (Bound::Excluded(&long[..]), Bound::Unbounded),
    ] {
        for dir in [Direction::Forward, Direction::Reverse] {
            b.scan(Space::Peers, KeyRange { lower, upper }, dir, &mut |_, _| {
                seen += 1;
                ControlFlow::Continue(())
            })
            .unwrap();
        }
    }
    assert_eq!(
        seen, 4,
        "the 511-byte key, seen by the first two ranges both ways"
    );
}

#[test]
fn a_damaged_data_file_is_reported_corrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("book");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("data.mdb"), vec![0x5a; 64 * 1024]).unwrap();
    match LmdbBackend::open(&path, LmdbOptions::default()) {
        Err(BackendError::Corrupted { message, .. }) => {
            assert!(message.contains(&path.display().to_string()), "{message}")
        }
        other => panic!("garbage data.mdb: {other:?}"),
    }
    // The failed open released the directory lock.
    std::fs::remove_file(path.join("data.mdb")).unwrap();
    LmdbBackend::open(&path, LmdbOptions::default()).expect("open after removing garbage");
}

#[test]
fn odd_options_are_clamped_not_fatal() {
    let tmp = tempfile::tempdir().unwrap();
    let options = LmdbOptions::default()
        .with_initial_map_size(0)
        .with_max_map_size(1)
        .with_max_readers(0);
    let b = LmdbBackend::open(tmp.path().join("book"), options).unwrap();
    assert!(b.map_size().unwrap() >= MIN_MAP_SIZE);
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"k".to_vec(), b"v".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    assert_eq!(b.get(Space::Peers, b"k").unwrap(), Some(b"v".to_vec()));
    // A batch over the (clamped) cap is Full, not a crash.
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"big".to_vec(), value_for(1, 1024 * 1024));
    assert!(refused_unapplied(&b.write(batch, Durability::Sync), |e| {
        matches!(e, BackendError::Full { .. })
    }));
}

/// Clear rewrites `data.mdb` from a compacted copy: the file shrinks back, the
/// backend keeps working on the new file (also after growing again), and a copy
/// left by a crash before its rename is removed at open with the book intact.
#[test]
fn clear_rewrites_the_data_file_and_a_stale_copy_is_removed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = LmdbBackend::open(&dir, small_map()).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..2000u32 {
        batch.put(Space::Peers, i.to_be_bytes().to_vec(), value_for(i, 500));
    }
    b.write(batch, Durability::Sync).unwrap();
    let full = std::fs::metadata(dir.join("data.mdb")).unwrap().len();
    #[cfg(unix)]
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    #[cfg(unix)]
    let mode_before = mode(&dir.join("data.mdb"));
    b.clear(Durability::Buffered).unwrap();
    let cleared = std::fs::metadata(dir.join("data.mdb")).unwrap().len();
    // The rewritten file is as private as the one it replaces.
    #[cfg(unix)]
    assert_eq!(
        mode(&dir.join("data.mdb")),
        mode_before,
        "data.mdb mode kept"
    );
    assert!(
        cleared < full / 10,
        "data.mdb rewritten ({full} -> {cleared} bytes)"
    );
    assert!(!dir.join("data.mdb.clear").exists());
    for space in Space::ALL {
        assert!(scan_all(&b, space, Direction::Forward).is_empty());
    }
    // the reopened environment takes writes, grows, and clears again
    let mut batch = WriteBatch::new();
    for i in 0..2000u32 {
        batch.put(Space::Meta, i.to_be_bytes().to_vec(), value_for(i, 500));
    }
    b.write(batch, Durability::Sync).unwrap();
    assert_eq!(scan_all(&b, Space::Meta, Direction::Forward).len(), 2000);
    b.clear(Durability::Sync).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"kept".to_vec(), b"value".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    drop(b);

    // a crash between writing the copy and renaming it
    std::fs::write(dir.join("data.mdb.clear"), b"half a copy").unwrap();
    let b = LmdbBackend::open(&dir, small_map()).unwrap();
    assert!(!dir.join("data.mdb.clear").exists(), "stale copy removed");
    assert_eq!(
        b.get(Space::Peers, b"kept").unwrap(),
        Some(b"value".to_vec())
    );
}

/// The directory's entries, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// What a creation cut short leaves in `creating/` is removed at open, beside a
/// book (after the rename: LMDB's `lock.mdb` alone) or without one (before it:
/// `data.mdb` and `lock.mdb`, or nothing yet), and the book opens.
#[test]
fn an_interrupted_creations_scratch_directory_is_removed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    // before the rename: a whole environment in `creating/`, no book
    let dir = tmp.path().join("before");
    let scratch = dir.join("creating");
    std::fs::create_dir_all(&scratch).unwrap();
    // SAFETY: a fresh directory of this test's; nothing else maps its files.
    let env = unsafe { heed::EnvOpenOptions::new().open(&scratch).unwrap() };
    env.prepare_for_closing().wait();
    assert_eq!(listing(&scratch), ["data.mdb", "lock.mdb"]);
    assert!(LmdbBackend::owns_entry(&dir, "creating").unwrap());
    drop(LmdbBackend::open(&dir, small_map()).unwrap());
    assert!(!LmdbBackend::owns_entry(&dir, "creating").unwrap(), "gone");
    assert_eq!(listing(&dir), ["LOCK", "data.mdb", "lock.mdb"]);
    // after the rename: the book, and LMDB's lock file left in `creating/`
    std::fs::create_dir(&scratch).unwrap();
    std::fs::write(scratch.join("lock.mdb"), b"").unwrap();
    let b = LmdbBackend::open(&dir, small_map()).unwrap();
    assert_eq!(listing(&dir), ["LOCK", "data.mdb", "lock.mdb"]);
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"k".to_vec(), b"v".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    drop(b);
    // an empty scratch directory (a cut right after making it)
    std::fs::create_dir(&scratch).unwrap();
    let b = LmdbBackend::open(&dir, small_map()).unwrap();
    assert_eq!(listing(&dir), ["LOCK", "data.mdb", "lock.mdb"]);
    assert_eq!(b.get(Space::Peers, b"k").unwrap(), Some(b"v".to_vec()));
}

/// A `creating` that is not what a creation leaves (a directory holding other
/// files, a plain file) is never removed: beside a book the book opens and it
/// stays; without one the open is refused (`Io`, `AlreadyExists`) and nothing
/// of it goes.
#[test]
fn a_creating_entry_peerbook_did_not_make_is_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let theirs = |dir: &Path, as_dir: bool| {
        let creating = dir.join("creating");
        if as_dir {
            std::fs::create_dir_all(&creating).unwrap();
            std::fs::write(creating.join("notes.txt"), b"mine").unwrap();
            // a name LMDB uses, among the user's files: not removed either
            std::fs::write(creating.join("lock.mdb"), b"mine too").unwrap();
        } else {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&creating, b"mine").unwrap();
        }
    };
    let intact = |dir: &Path, as_dir: bool| {
        let creating = dir.join("creating");
        if as_dir {
            assert_eq!(listing(&creating), ["lock.mdb", "notes.txt"]);
            assert_eq!(std::fs::read(creating.join("notes.txt")).unwrap(), b"mine");
            assert_eq!(
                std::fs::read(creating.join("lock.mdb")).unwrap(),
                b"mine too"
            );
        } else {
            assert_eq!(std::fs::read(&creating).unwrap(), b"mine");
        }
    };
    for as_dir in [true, false] {
        // beside a book
        let dir = tmp.path().join(format!("book-{as_dir}"));
        let b = LmdbBackend::open(&dir, small_map()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Space::Peers, b"k".to_vec(), b"v".to_vec());
        b.write(batch, Durability::Sync).unwrap();
        drop(b);
        theirs(&dir, as_dir);
        assert!(!LmdbBackend::owns_entry(&dir, "creating").unwrap());
        assert!(!LmdbBackend::owns_file("creating"));
        let b = LmdbBackend::open(&dir, small_map())
            .unwrap_or_else(|e| panic!("a book beside a foreign `creating` (dir: {as_dir}): {e}"));
        assert_eq!(b.get(Space::Peers, b"k").unwrap(), Some(b"v".to_vec()));
        drop(b);
        intact(&dir, as_dir);
        // alone: no book is made over it
        let dir = tmp.path().join(format!("alone-{as_dir}"));
        theirs(&dir, as_dir);
        match LmdbBackend::open(&dir, small_map()) {
            Err(BackendError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                assert!(e.to_string().contains("creating"), "{e}")
            }
            other => panic!("a foreign `creating` alone (dir: {as_dir}): {other:?}"),
        }
        intact(&dir, as_dir);
        assert!(!dir.join("data.mdb").exists());
    }
}
