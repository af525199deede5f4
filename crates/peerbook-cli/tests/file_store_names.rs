//! The real `peerbook` binary on directories holding a file store's names but not
//! a file store: a user's log named `log.7` is refused and left as it was, and a
//! log the backend left with no snapshot (an interrupted creation's) is no store
//! to read. Needs the file backend only.

use std::path::Path;
use std::process::{Command, Output};

use peerbook::MasterKey;

/// The directory's files with their bytes, sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_peerbook"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

/// An application's own `log.7` (an empty rotated log, a short text one) alone in
/// its directory: every command refuses the directory, names the file, and
/// neither removes it nor writes a store or key there.
#[test]
fn a_users_log_named_like_a_file_stores_is_refused_and_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    MasterKey::load_or_create(d.join("real.key")).unwrap();
    for bytes in [&b""[..], b"rotated at midnight\n", &[b'x'; 40]] {
        let app = d.join("app");
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("log.7"), bytes).unwrap();
        let before = files(&app);
        for args in [
            vec!["stats", "file:./app"],
            vec!["list", "file:./app"],
            vec!["init", "file:./app"],
            vec!["clear", "file:./app", "--destroy-key"],
        ] {
            let mut args = args;
            args.extend(["--key-file", "real.key"]);
            let out = run(d, &args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.starts_with(
                    "error: ./app holds no file store: it has files that a file store does not: \"log.7\""
                ),
                "{args:?}: {stderr}"
            );
            assert!(stderr.contains("nothing was changed"), "{args:?}: {stderr}");
            assert_eq!(files(&app), before, "{args:?} changed {bytes:?}");
            assert!(d.join("real.key").exists(), "{args:?}");
        }
        std::fs::remove_dir_all(&app).unwrap();
    }
}

/// What an interrupted creation leaves (a `log.1` holding the backend's header,
/// no snapshot) is no store to read: `stats` refuses it without writing (it was
/// taken for a store, and the open wrote a new one before refusing); `init`
/// creates the store there.
#[test]
fn an_interrupted_creation_is_no_store_to_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let dir = d.join("peers");
    drop(peerbook_engines::Engine::File.open(&dir).unwrap());
    std::fs::remove_file(dir.join("snapshot.1")).unwrap();
    MasterKey::load_or_create(d.join("real.key")).unwrap();
    let before = files(&dir);
    let out = run(d, &["stats", "file:./peers", "--key-file", "real.key"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: no store at ./peers"), "{stderr}");
    assert_eq!(files(&dir), before, "stats changed the directory");
    let out = run(d, &["init", "file:./peers", "--key-file", "real.key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(d, &["stats", "file:./peers", "--key-file", "real.key"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
