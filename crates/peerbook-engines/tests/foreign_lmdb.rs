//! The probe on another program's LMDB environment, made with heed alone (an
//! integration test: the crate itself forbids `unsafe`, which heed's open needs).
#![cfg(feature = "lmdb")]

use std::convert::Infallible;
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvOpenOptions};
use peerbook_engines::{DirContents, Engine};
use peerbook_lmdb::LmdbBackend;

/// Make another program's LMDB environment in `dir`: a database `users`, with a
/// key.
fn make_foreign(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    // SAFETY: a fresh directory of the test's; nothing else maps its files.
    let env = unsafe { EnvOpenOptions::new().max_dbs(4).open(dir).unwrap() };
    let wtxn = env.write_txn().unwrap();
    env.create_databases_and_commit(
        wtxn,
        |opener, wtxn| -> heed::Result<CommitOrAbort<(), Infallible>> {
            let users = opener.create_database::<Bytes, Bytes>(wtxn, Some("users"))?;
            users.put(wtxn, b"alice", b"their record")?;
            Ok(CommitOrAbort::Commit(()))
        },
    )
    .unwrap();
    env.prepare_for_closing().wait();
}

/// The keys of the main database of the environment in `dir` (its databases'
/// names), read-only: `LmdbBackend::database_names`, as the probe reads them.
fn database_names(dir: &Path) -> Vec<String> {
    LmdbBackend::database_names(dir)
        .unwrap()
        .expect("an LMDB environment")
        .iter()
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Another program's LMDB environment (`data.mdb` and `lock.mdb` only: every
/// file one LMDB makes) is foreign to the probe, which changes nothing in it:
/// opening LMDB there would create peerbook's databases in it.
#[test]
fn an_lmdb_environment_with_other_databases_is_foreign_and_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("theirs");
    make_foreign(&dir);
    let (files, names, data) = (
        listing(&dir),
        database_names(&dir),
        std::fs::read(dir.join("data.mdb")).unwrap(),
    );
    assert_eq!(names, ["users"]);
    assert_eq!(files, ["data.mdb", "lock.mdb"]);
    assert_eq!(
        Engine::Lmdb.probe(&dir).unwrap(),
        DirContents::Foreign {
            other: None,
            unexpected: vec![]
        }
    );
    assert_eq!(listing(&dir), files, "the probe made or removed a file");
    assert_eq!(database_names(&dir), names);
    assert_eq!(std::fs::read(dir.join("data.mdb")).unwrap(), data);
    // peerbook's own store is one
    let ours = tmp.path().join("ours");
    drop(Engine::Lmdb.open(&ours).unwrap());
    assert_eq!(Engine::Lmdb.probe(&ours).unwrap(), DirContents::Store);
}
