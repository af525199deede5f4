//! File headers: a cut header, a wrong magic and a newer format version are
//! refused; a version-1 store opens and its compaction writes version 2.

use std::fs;

use peerbook::backend::Durability;
use peerbook::conformance::fixtures::{copy_dir, fixtures_dir};
use peerbook_file::{FormatError, RecoveryError};

use crate::support::{corrupted, dump, keys, open, put, set_version, snapshot_of, store_with_log};

#[test]
fn truncated_log_header_is_refused() {
    let (_tmp, dir, log) = store_with_log(3);
    let data = fs::read(&log).unwrap();
    for cut in [0, 5, 8, 12, 23] {
        fs::write(&log, &data[..cut]).unwrap();
        match corrupted(open(&dir)) {
            RecoveryError::Header {
                file,
                error: FormatError::TruncatedHeader { len, .. },
            } => {
                assert_eq!(file, log, "names the file");
                assert_eq!(len, cut);
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn wrong_magic_is_refused() {
    let (_tmp, dir, log) = store_with_log(3);
    let mut data = fs::read(&log).unwrap();
    data[..8].copy_from_slice(b"SQLite f");
    fs::write(&log, &data).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(
            &e,
            RecoveryError::Header {
                error: FormatError::BadMagic { kind: "log", .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("not a peerbook-file log"), "{e}");
}

#[test]
fn newer_format_version_is_refused() {
    let (_tmp, dir, log) = store_with_log(3);
    let mut data = fs::read(&log).unwrap();
    set_version(&mut data, 3);
    fs::write(&log, &data).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(
            &e,
            RecoveryError::Header {
                error: FormatError::NewerVersion {
                    version: 3,
                    header_checksum_ok: true,
                    ..
                },
                ..
            }
        ),
        "the header checksum is valid: {e:?}"
    );

    // The same for the snapshot.
    let (_tmp, dir, log) = store_with_log(1);
    let snap = snapshot_of(&log);
    let mut data = fs::read(&snap).unwrap();
    set_version(&mut data, 7);
    fs::write(&snap, &data).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(&e, RecoveryError::Header { file, error: FormatError::NewerVersion { version: 7, .. } } if *file == snap),
        "{e:?}"
    );
}

/// A version-1 store (the committed fixture) opens, takes writes in its version-1
/// log, and after a compaction every file is version 2, with a salt.
#[test]
fn version_1_files_open_and_compaction_writes_version_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    copy_dir(&fixtures_dir().join("v1/file"), &dir);
    let version = |name: &str| {
        let data = fs::read(dir.join(name)).unwrap();
        u32::from_le_bytes(data[8..12].try_into().unwrap())
    };
    assert_eq!((version("snapshot.1"), version("log.1")), (1, 1));
    let b = open(&dir).unwrap();
    let before = dump(&b);
    assert!(!before.is_empty(), "the fixture holds entries");
    put(&b, "after", "upgrade", Durability::Sync);
    drop(b);
    assert_eq!(version("log.1"), 1, "a version-1 log is appended as it is");
    let b = open(&dir).unwrap();
    assert!(b.recovery().torn_tail.is_none());
    assert_eq!(keys(&b).iter().filter(|k| *k == "after").count(), 1);
    b.compact().unwrap();
    let expected = dump(&b);
    drop(b);
    assert_eq!((version("snapshot.2"), version("log.2")), (2, 2));
    let b = open(&dir).unwrap();
    assert_eq!(
        dump(&b),
        expected,
        "the version-2 generation holds everything"
    );
    assert!(!dir.join("log.1").exists() && !dir.join("snapshot.1").exists());
}
