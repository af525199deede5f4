//! Damaged snapshots (empty, garbage, cut, trailing bytes, a flipped bit) are
//! refused with the `RecoveryError` of the damage, naming the file.

use std::fs;

use peerbook::backend::Durability;
use peerbook::conformance::Rng;
use peerbook_file::{FileBackend, FormatError, RecoveryError};

use crate::support::{corrupted, frame_offsets, keys, open, options, put, FRAME_HEADER, HEADER};

#[test]
fn damaged_snapshot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = FileBackend::open(&dir, options().with_snapshot_chunk_bytes(64)).unwrap();
    for i in 0..40 {
        put(&b, &format!("k{i:02}"), "some value", Durability::Buffered);
    }
    b.compact().unwrap();
    let g = b.stats().generation;
    drop(b);
    let snap = dir.join(format!("snapshot.{g}"));
    let good = fs::read(&snap).unwrap();
    let offsets = frame_offsets(&good);
    assert!(offsets.len() > 3, "the snapshot has several frames");
    let mut rng = Rng::new(5);

    let second_frame = offsets[1];
    let mut flipped = good.clone();
    flipped[offsets[1] + FRAME_HEADER + 2] ^= 4;
    let garbage = rng.bytes(good.len());
    let garbage_body = [&good[..HEADER], &rng.bytes(500)[..]].concat();
    type Expect = Box<dyn Fn(&RecoveryError) -> bool>;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "empty",
            Vec::new(),
            Box::new(|e| {
                matches!(
                    e,
                    RecoveryError::Header {
                        error: FormatError::TruncatedHeader { .. },
                        ..
                    }
                )
            }),
        ),
        (
            "garbage",
            garbage,
            Box::new(|e| {
                matches!(
                    e,
                    RecoveryError::Header {
                        error: FormatError::BadMagic { .. },
                        ..
                    }
                )
            }),
        ),
        (
            "garbage after the header",
            garbage_body,
            Box::new(|e| matches!(e, RecoveryError::SnapshotFrame { offset: HEADER, .. })),
        ),
        (
            "no end frame",
            good[..*offsets.last().unwrap()].to_vec(),
            Box::new(|e| matches!(e, RecoveryError::SnapshotTruncated { .. })),
        ),
        (
            "cut mid-frame",
            good[..offsets[2] + 9].to_vec(),
            Box::new(|e| matches!(e, RecoveryError::SnapshotFrame { .. })),
        ),
        (
            "trailing bytes",
            [&good[..], b"xyz"].concat(),
            Box::new(|e| matches!(e, RecoveryError::AfterEnd { bytes: 3, .. })),
        ),
        (
            "flipped bit",
            flipped,
            Box::new(
                move |e| matches!(e, RecoveryError::SnapshotFrame { offset, .. } if *offset == second_frame),
            ),
        ),
    ];
    for (what, bytes, expect) in cases {
        fs::write(&snap, &bytes).unwrap();
        let e = corrupted(open(&dir));
        assert!(expect(&e), "{what}: {e:?}");
        assert!(
            e.to_string().contains(&format!("snapshot.{g}")),
            "{what}: names the file: {e}"
        );
    }
    fs::write(&snap, &good).unwrap();
    assert_eq!(keys(&open(&dir).unwrap()).len(), 40);
}
