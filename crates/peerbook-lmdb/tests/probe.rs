//! `LmdbBackend::may_be_peerbook`: another program's LMDB environment is told
//! from a peerbook book by the names in its main database, read without writing.

use std::convert::Infallible;
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvOpenOptions};
use peerbook::backend::{Backend, Durability, Space, WriteBatch};
use peerbook::conformance::fixtures::{copy_dir, fixtures_dir};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

/// Make an LMDB environment in `dir` as another program would, with heed alone:
/// `named` databases holding one key each, `main` keys written as data into the
/// unnamed database.
fn make_env(dir: &Path, named: &[&str], main: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    // SAFETY: a fresh directory of this test's; nothing else maps these files.
    let env = unsafe {
        EnvOpenOptions::new()
            .map_size(1 << 20)
            .max_dbs(8)
            .open(dir)
            .unwrap()
    };
    let wtxn = env.write_txn().unwrap();
    env.create_databases_and_commit(
        wtxn,
        |opener, wtxn| -> heed::Result<CommitOrAbort<(), Infallible>> {
            for name in named {
                let db = opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?;
                db.put(wtxn, b"their key", b"their value")?;
            }
            if !main.is_empty() {
                let db = opener.create_database::<Bytes, Bytes>(wtxn, None)?;
                for key in main {
                    db.put(wtxn, key.as_bytes(), b"their value")?;
                }
            }
            Ok(CommitOrAbort::Commit(()))
        },
    )
    .unwrap();
    env.prepare_for_closing().wait();
}

/// The directory's entries, and the bytes of `data.mdb`.
fn snapshot(dir: &Path) -> (Vec<String>, Vec<u8>) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    (names, std::fs::read(dir.join("data.mdb")).unwrap())
}

#[test]
fn another_programs_environment_is_foreign_and_stays_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, named, main) in [
        ("users", &["users"][..], &[][..]),
        // one of peerbook's names beside one of theirs
        ("mixed", &["peers", "users"][..], &[][..]),
        // data in the main database, no named database
        ("plain", &[][..], &["hello"][..]),
        // data in the main database under a name peerbook gives a database
        ("meta-as-data", &["peers"][..], &["meta"][..]),
        // Some of peerbook's databases only, never all four: peerbook makes the
        // four in one transaction, so this is another program's environment
        // (which `open` would fill with the missing ones).
        ("some", &["meta"][..], &[][..]),
        ("peers-only", &["peers"][..], &[][..]),
        ("layout-only", &["peerbook_lmdb"][..], &[][..]),
        (
            "three",
            &["peers", "by_last_seen", "by_quality", "peerbook_lmdb"][..],
            &[][..],
        ),
    ] {
        let dir = tmp.path().join(name);
        make_env(&dir, named, main);
        let before = snapshot(&dir);
        assert!(!LmdbBackend::may_be_peerbook(&dir).unwrap(), "{name}");
        assert_eq!(snapshot(&dir), before, "{name}: the probe changed it");
        // Without `lock.mdb` (which a read-only open would create), none is made.
        std::fs::remove_file(dir.join("lock.mdb")).unwrap();
        let before = snapshot(&dir);
        assert!(!LmdbBackend::may_be_peerbook(&dir).unwrap(), "{name}");
        assert_eq!(snapshot(&dir), before, "{name}: the probe made a file");
    }
}

#[test]
fn a_peerbook_book_or_part_of_one_may_be_peerbook() {
    let tmp = tempfile::tempdir().unwrap();
    // What `open` makes, with data in every database.
    let book = tmp.path().join("book");
    let backend = LmdbBackend::open(&book, LmdbOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    for space in Space::ALL {
        batch.put(space, b"k".to_vec(), b"v".to_vec());
    }
    backend.write(batch, Durability::Sync).unwrap();
    // Open in this process: heed refuses a second environment on the same files.
    assert!(LmdbBackend::may_be_peerbook(&book).is_err());
    drop(backend);
    assert!(LmdbBackend::may_be_peerbook(&book).unwrap());
    // The four spaces without `peerbook_lmdb` (a book from before it), or no
    // database (an environment whose first commit never came): opening makes the
    // missing ones.
    for (name, named) in [
        (
            "older",
            &["peers", "by_last_seen", "by_quality", "meta"][..],
        ),
        ("empty", &[][..]),
    ] {
        let dir = tmp.path().join(name);
        make_env(&dir, named, &[]);
        assert!(LmdbBackend::may_be_peerbook(&dir).unwrap(), "{name}");
        std::fs::remove_file(dir.join("lock.mdb")).unwrap();
        assert!(LmdbBackend::may_be_peerbook(&dir).unwrap(), "{name}");
        assert!(!dir.join("lock.mdb").exists(), "{name}");
    }
    // The books of earlier versions (v1: the four spaces only).
    for version in ["v1", "v3"] {
        let dir = tmp.path().join(version);
        copy_dir(&fixtures_dir().join(version).join("lmdb"), &dir);
        assert!(LmdbBackend::may_be_peerbook(&dir).unwrap(), "{version}");
    }
    // A `data.mdb` LMDB takes for no environment: `open` fails on it before
    // writing it (or, empty, makes a new book of it).
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    std::fs::write(damaged.join("data.mdb"), vec![0x5a; 16384]).unwrap();
    assert!(LmdbBackend::may_be_peerbook(&damaged).unwrap());
    std::fs::write(damaged.join("data.mdb"), b"").unwrap();
    assert!(LmdbBackend::may_be_peerbook(&damaged).unwrap());
    assert_eq!(std::fs::read(damaged.join("data.mdb")).unwrap(), b"");
}
