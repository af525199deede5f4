//! A refused or failed open changes nothing in the user's file system: the
//! directories it made go (innermost first, only while empty), and so do the
//! files it made (a new book's `data.mdb` and `lock.mdb`, the `LOCK`); what was
//! there before stays, bytes and all. Unix only: elsewhere the lock is not checked
//! to be on the linked file, so a failed open leaves the `LOCK` it created.
#![cfg(unix)]

use std::fs;
use std::path::Path;

use peerbook::backend::{Backend, BackendError, Durability, Space, WriteBatch};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

/// Every entry under `dir`, with its path relative to `dir` and its bytes
/// (a directory's name ends in `/`, with no bytes), sorted.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().unwrap().is_dir() {
                out.push((format!("{name}/"), Vec::new()));
                walk(root, &e.path(), out);
            } else {
                out.push((name, fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Options LMDB refuses once the book's files are made: a map larger than the
/// address space (its `mmap` fails).
#[cfg(target_pointer_width = "64")]
fn unmappable() -> LmdbOptions {
    LmdbOptions::default()
        .with_initial_map_size(1 << 62)
        .with_max_map_size(1 << 62)
}

/// `after` is `before`: the names first (a short message), then the bytes.
fn assert_same(after: Vec<(String, Vec<u8>)>, before: Vec<(String, Vec<u8>)>) {
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before));
    assert!(after == before, "same names, other bytes");
}

fn expect_err(result: Result<LmdbBackend, BackendError>, what: &str) -> BackendError {
    match result {
        Err(e) => e,
        Ok(_) => panic!("{what}: the open succeeded"),
    }
}

/// A new book under `a/b/env` whose environment cannot be mapped: the open fails
/// after it made the directories, the `LOCK` and LMDB's files; all of it goes,
/// and what was there stays.
#[cfg(target_pointer_width = "64")]
#[test]
fn a_failed_open_of_a_new_book_leaves_only_what_was_there() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("theirs.txt"), b"theirs").unwrap();
    let before = tree(tmp.path());
    let env = tmp.path().join("a").join("b").join("env");
    expect_err(LmdbBackend::open(&env, unmappable()), "huge map");
    assert_same(tree(tmp.path()), before);
    // the same directory, opened with sane options, makes a book
    drop(LmdbBackend::open(&env, LmdbOptions::default()).unwrap());
    assert!(env.join("data.mdb").is_file());
}

/// A directory name too long to make: `create_dir_all` fails after it made
/// `a/b`, which go again.
#[test]
fn a_failed_directory_creation_removes_the_parents_it_made() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("theirs.txt"), b"theirs").unwrap();
    let before = tree(tmp.path());
    let env = tmp.path().join("a").join("b").join("x".repeat(300));
    expect_err(LmdbBackend::open(&env, LmdbOptions::default()), "long name");
    assert_same(tree(tmp.path()), before);
}

/// An existing book that fails to open keeps its files, bytes and all (but
/// LMDB's reader table, which LMDB itself may reset on any open).
#[cfg(target_pointer_width = "64")]
#[test]
fn a_failed_open_of_an_existing_book_keeps_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let env = tmp.path().join("a").join("env");
    let book = LmdbBackend::open(&env, LmdbOptions::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"alice".to_vec(), b"record".to_vec());
    book.write(batch, Durability::Sync).unwrap();
    drop(book);
    let without_reader_table = |t: Vec<(String, Vec<u8>)>| -> Vec<(String, Vec<u8>)> {
        t.into_iter()
            .map(|(n, b)| {
                if n.ends_with("lock.mdb") {
                    (n, Vec::new())
                } else {
                    (n, b)
                }
            })
            .collect()
    };
    let before = without_reader_table(tree(tmp.path()));
    expect_err(LmdbBackend::open(&env, unmappable()), "huge map");
    assert_same(without_reader_table(tree(tmp.path())), before);
    let book = LmdbBackend::open(&env, LmdbOptions::default()).unwrap();
    assert_eq!(
        book.get(Space::Peers, b"alice").unwrap(),
        Some(b"record".to_vec())
    );
}

/// An existing directory with no book and a `creating` that is not the
/// backend's: the open is refused, and leaves the directory as it was (no
/// `LOCK`); so does a failed new book in an existing, empty directory.
#[test]
fn a_refused_open_in_an_existing_directory_leaves_it_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let env = tmp.path().join("env");
    fs::create_dir(&env).unwrap();
    fs::write(env.join("creating"), b"a file of the user's").unwrap();
    let before = tree(tmp.path());
    let err = expect_err(LmdbBackend::open(&env, LmdbOptions::default()), "creating");
    assert!(matches!(err, BackendError::Io { .. }), "{err:?}");
    assert_same(tree(tmp.path()), before);

    #[cfg(target_pointer_width = "64")]
    {
        fs::remove_file(env.join("creating")).unwrap();
        let before = tree(tmp.path());
        expect_err(LmdbBackend::open(&env, unmappable()), "huge map");
        assert_same(tree(tmp.path()), before);
    }
}

/// A book restored with `mdb_copy` (a `data.mdb`, no `lock.mdb`) whose open is
/// refused (a value layout this version does not know): LMDB made `lock.mdb`
/// beside the existing `data.mdb`, and it stays, since another LMDB program may
/// have the environment open through it (unlinking it would break LMDB's reader
/// table); `data.mdb` stays as it was, and the `LOCK` this open made goes.
#[test]
fn a_refused_open_of_a_book_without_lock_mdb_keeps_the_lock_mdb_it_made() {
    use heed::types::Bytes;
    let tmp = tempfile::tempdir().unwrap();
    let env = tmp.path().join("env");
    drop(LmdbBackend::open(&env, LmdbOptions::default()).unwrap());
    {
        let mut options = heed::EnvOpenOptions::new();
        options.max_dbs(8);
        // SAFETY: no other handle has this environment open.
        let lmdb = unsafe { options.open(&env) }.unwrap();
        let wtxn = lmdb.write_txn().unwrap();
        lmdb.create_databases_and_commit(
            wtxn,
            |opener, wtxn| -> heed::Result<heed::CommitOrAbort<(), std::convert::Infallible>> {
                let settings =
                    opener.create_database::<Bytes, Bytes>(wtxn, Some("peerbook_lmdb"))?;
                settings.put(wtxn, b"value_layout", &[9])?;
                Ok(heed::CommitOrAbort::Commit(()))
            },
        )
        .unwrap();
        lmdb.prepare_for_closing().wait();
    }
    fs::remove_file(env.join("lock.mdb")).unwrap();
    fs::remove_file(env.join("LOCK")).unwrap();
    let data = fs::read(env.join("data.mdb")).unwrap();
    let err = expect_err(LmdbBackend::open(&env, LmdbOptions::default()), "layout 9");
    assert!(matches!(err, BackendError::Engine { .. }), "{err:?}");
    let names: Vec<String> = tree(tmp.path()).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["env/", "env/data.mdb", "env/lock.mdb"]);
    assert!(
        fs::read(env.join("data.mdb")).unwrap() == data,
        "data.mdb changed"
    );
}
