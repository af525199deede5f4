//! The real `peerbook` binary on another program's LMDB environment: every
//! command refuses it and leaves it as it was (its databases, the bytes of its
//! `data.mdb`, its directory's files). Needs LMDB only.

use std::convert::Infallible;
use std::path::Path;
use std::process::Command;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvOpenOptions};
use peerbook::MasterKey;
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

/// The directory's files, its environment's databases and its `data.mdb`.
fn state(dir: &Path) -> (Vec<String>, Vec<String>, Vec<u8>) {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let data = std::fs::read(dir.join("data.mdb")).unwrap();
    (files, database_names(dir), data)
}

#[test]
fn another_programs_lmdb_environment_is_refused_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let app = d.join("app");
    make_foreign(&app);
    MasterKey::load_or_create(d.join("real.key")).unwrap();
    let before = state(&app);
    assert_eq!(before.0, ["data.mdb", "lock.mdb"]);
    assert_eq!(before.1, ["users"]);
    for args in [
        vec!["stats", "lmdb:./app"],
        vec!["list", "lmdb:./app"],
        vec!["init", "lmdb:./app"],
        vec!["clear", "lmdb:./app", "--destroy-key"],
    ] {
        let mut args = args;
        args.extend(["--key-file", "real.key"]);
        let out = Command::new(env!("CARGO_BIN_EXE_peerbook"))
            .current_dir(d)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(
                "error: ./app holds no lmdb store: it holds an LMDB environment that peerbook did not make"
            ),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("nothing was changed"), "{args:?}: {stderr}");
        assert_eq!(state(&app), before, "{args:?} changed the environment");
        assert!(d.join("real.key").exists(), "{args:?}");
    }
}

/// The directory's entries with their bytes (a directory's, one level down).
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            for inner in std::fs::read_dir(entry.path()).unwrap() {
                let inner = inner.unwrap();
                let bytes = std::fs::read(inner.path()).unwrap();
                out.push((
                    format!("{name}/{}", inner.file_name().to_str().unwrap()),
                    bytes,
                ));
            }
        } else if name != "data.mdb" && name != "lock.mdb" {
            out.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
    out.sort();
    out
}

/// A `creating` folder (or file) of the user's beside a book is not the scratch
/// directory LMDB's creation leaves: every command refuses the directory and
/// leaves it as it was (the folder's files, the key file).
#[test]
fn a_users_creating_folder_beside_a_store_is_refused_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for as_dir in [true, false] {
        let name = format!("peers-{as_dir}");
        let spec = format!("lmdb:./{name}");
        let init = Command::new(env!("CARGO_BIN_EXE_peerbook"))
            .current_dir(d)
            .args(["init", &spec])
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let creating = d.join(&name).join("creating");
        if as_dir {
            std::fs::create_dir(&creating).unwrap();
            std::fs::write(creating.join("notes.txt"), b"mine").unwrap();
        } else {
            std::fs::write(&creating, b"mine").unwrap();
        }
        let before = tree(&d.join(&name));
        for args in [
            vec!["stats", &spec],
            vec!["init", &spec],
            vec!["clear", &spec, "--destroy-key"],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_peerbook"))
                .current_dir(d)
                .args(&args)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.starts_with(&format!(
                    "error: ./{name} holds no lmdb store: it has files that a lmdb store does not: \"creating\""
                )),
                "{args:?}: {stderr}"
            );
            assert_eq!(
                tree(&d.join(&name)),
                before,
                "{args:?} changed the directory"
            );
            assert!(d.join(format!("{name}.key")).exists(), "{args:?}");
        }
    }
}
