//! What the LMDB backend refuses or reports as an error rather than panicking or
//! deadlocking: writes from inside a scan, keys LMDB cannot hold, a damaged data
//! file.

use std::ops::{Bound, ControlFlow};

use peerbook::backend::{
    Backend, BackendError, Direction, Durability, KeyRange, Space, WriteBatch,
};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

use crate::support::{refused_unapplied, scan_all};

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
