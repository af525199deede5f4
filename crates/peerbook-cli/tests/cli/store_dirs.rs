//! What is and is not a store directory: a store open elsewhere is reported
//! locked; an unreadable path is an error, not a missing store; a directory without
//! a store of the engine, with other files, with system litter or with only a
//! marker's name is refused and left alone; `clear --destroy-key` through a
//! symbolic link leaves the link.

use peerbook::MasterKey;
use serde_json::Value;

use crate::support::{bin, listing, ok, open_backend, run_cmd, run_in, seed};

#[test]
fn a_store_open_elsewhere_is_reported_locked() {
    for engine in ["file", "lmdb", "rocksdb"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let spec = seed(engine, d, 0);
        let held = open_backend(engine, &d.join("peers"));
        let r = run_cmd(bin().current_dir(d).args(["stats", &spec]));
        drop(held);
        r.exits(1)
            .stderr_starts("error: ")
            .stderr_has("hint: another process");
        ok(run_in(d, &["stats", &spec]));
    }
}

/// A store path that cannot be listed is an error naming it, never "no store": a
/// write command would otherwise treat an existing store as new (and make it a new
/// key). A path under a regular file fails for every user; a directory without
/// permissions fails unless the tests run as root.
#[cfg(unix)]
#[test]
fn an_unreadable_store_directory_is_an_error_not_a_missing_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plain"), b"not a directory").unwrap();
    for args in [
        &["stats", "file:./plain"][..],
        &["init", "file:./plain/book", "--key-file", "k.key"][..],
    ] {
        run_in(dir.path(), args)
            .exits(1)
            .stderr_starts("error: cannot read the store directory ./plain")
            .stderr_has("\nhint: ");
    }
    assert!(!dir.path().join("k.key").exists(), "no key was made");

    use std::os::unix::fs::PermissionsExt;
    let spec = seed("file", dir.path(), 1);
    let store = dir.path().join("peers");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o000)).unwrap();
    let listable = std::fs::read_dir(&store).is_ok(); // root reads anyway
    let r = run_in(dir.path(), &["init", &spec]);
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    if !listable {
        r.exits(1).stderr_has("cannot read the store directory");
    }
}

/// A command that needs a store refuses a directory holding no store of its engine
/// (the parent of a store, another engine's store) and changes nothing in it: not
/// even `clear --destroy-key` with the real book's key file.
#[test]
fn a_directory_without_a_store_of_the_engine_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let node = d.join("node");
    std::fs::create_dir(&node).unwrap();
    seed("file", &node, 2); // node/peers, node/peers.key
    let before = (listing(&node), listing(&node.join("peers")));
    let unchanged = |what: &str| {
        assert_eq!(
            (listing(&node), listing(&node.join("peers"))),
            before,
            "{what} changed the directory"
        );
    };
    run_in(
        d,
        &[
            "--key-file",
            "node/peers.key",
            "clear",
            "file:./node",
            "--destroy-key",
        ],
    )
    .exits(1)
    .stderr_starts("error: ./node holds no file store")
    .stderr_has("\nhint: ");
    unchanged("clear --destroy-key");
    for engine in ["lmdb", "rocksdb", "file"] {
        let spec = format!("{engine}:./node");
        for args in [
            vec!["stats", spec.as_str()],
            vec!["verify", &spec],
            vec!["repair", &spec],
            vec!["settings", &spec, "--max-peers", "3"],
            vec!["cleanup", &spec, "--stale"],
            vec!["init", &spec],
            vec!["migrate", "file:./node/peers", &spec],
        ] {
            let mut args = args;
            args.extend(["--key-file", "node/peers.key"]);
            run_in(d, &args)
                .exits(1)
                .stderr_starts(&format!("error: ./node holds no {engine} store"));
            unchanged(&format!("{args:?}"));
        }
    }
    // Another engine's store is named as such, and not opened.
    for args in [
        vec!["stats", "lmdb:./node/peers"],
        vec!["init", "rocksdb:./node/peers"],
    ] {
        let mut args = args;
        args.extend(["--key-file", "node/peers.key"]);
        run_in(d, &args)
            .exits(1)
            .stderr_has("./node/peers holds a file store")
            .stderr_has("file:./node/peers");
        unchanged(&format!("{args:?}"));
    }
    let r = ok(run_in(
        d,
        &["stats", "file:./node/peers", "--key-file", "node/peers.key"],
    ));
    r.stdout_has("peers:         5 of max 100");
}

/// A store directory holding anything its engine does not make is no store: even
/// `clear --destroy-key` refuses it, names what it found, and removes nothing (the
/// key file stays). Alone, the store's files and directory go with the key.
#[test]
fn destroy_key_refuses_a_store_directory_with_other_files() {
    for engine in ["lmdb", "rocksdb", "file"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let spec = seed(engine, d, 1);
        std::fs::write(d.join("peers").join("NOTES.txt"), "mine").unwrap();
        std::fs::create_dir(d.join("peers").join("backup")).unwrap();
        std::fs::write(d.join("peers").join("backup").join("data.mdb"), "mine").unwrap();
        let before = listing(&d.join("peers"));
        run_in(d, &["clear", &spec, "--destroy-key"])
            .exits(1)
            .stderr_starts("error: ")
            .stderr_has(&format!("peers holds no {engine} store"))
            .stderr_has("\"NOTES.txt\", \"backup\"");
        assert!(d.join("peers.key").exists(), "{engine}");
        assert_eq!(listing(&d.join("peers")), before, "{engine}");
        assert_eq!(listing(&d.join("peers").join("backup")), ["data.mdb"]);

        // Alone, the store's directory goes too.
        std::fs::remove_file(d.join("peers").join("NOTES.txt")).unwrap();
        std::fs::remove_dir_all(d.join("peers").join("backup")).unwrap();
        let r = ok(run_in(d, &["clear", &spec, "--destroy-key", "--json"]));
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["store_removed"], true, "{engine}");
        assert!(!d.join("peers").exists(), "{engine}");
        assert!(!d.join("peers.key").exists(), "{engine}");
    }
}

/// `clear --destroy-key` on a store reached through a symbolic link removes the
/// store's files and the key, leaves the link (and the directory it points to),
/// says so, and succeeds.
#[cfg(unix)]
#[test]
fn destroy_key_through_a_symbolic_link_leaves_the_link() {
    for engine in ["lmdb", "rocksdb", "file"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let spec = seed(engine, d, 1);
        std::fs::rename(d.join("peers"), d.join("real")).unwrap();
        std::os::unix::fs::symlink("real", d.join("peers")).unwrap();
        let r = ok(run_in(d, &["clear", &spec, "--destroy-key"]));
        r.stdout_has("left the symbolic link");
        assert!(!d.join("peers.key").exists(), "{engine}");
        assert!(std::fs::symlink_metadata(d.join("peers"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(listing(&d.join("real")).is_empty(), "{engine}");
        // With --json: one document, saying the directory was not removed.
        let spec = seed(engine, d, 1);
        let r = ok(run_in(d, &["clear", &spec, "--destroy-key", "--json"]));
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["store_removed"], false, "{engine}");
        assert_eq!(v["key_destroyed"], true, "{engine}");
        assert!(listing(&d.join("real")).is_empty(), "{engine}");
    }
}

/// A real store with files the system drops in folders (Finder's `.DS_Store`,
/// Windows' `Thumbs.db`) is refused, as any store beside other files, but the hint
/// says to move the files out rather than only to check the path.
#[test]
fn system_litter_in_a_store_is_refused_with_a_hint_to_move_it_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 0);
    std::fs::write(d.join("peers").join(".DS_Store"), "").unwrap();
    std::fs::write(d.join("peers").join("Thumbs.db"), "").unwrap();
    run_in(d, &["stats", &spec])
        .exits(1)
        .stderr_has("\".DS_Store\", \"Thumbs.db\"")
        .stderr_has("if this is your store, move these files out");
}

/// A directory of another program's files that happen to include a name an engine
/// uses for its marker (an empty rotated `log.7`, named too: its bytes are no
/// file-store log) is no store: no command opens the engine there or changes
/// anything. A directory of only the engine's own
/// files but no peerbook book is refused by the commands that need a book.
#[test]
fn a_marker_name_among_other_files_is_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = d.join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("notes.txt"), "mine").unwrap();
    std::fs::write(app.join("log.7"), "").unwrap();
    std::fs::write(app.join("log.01"), "").unwrap();
    MasterKey::load_or_create(d.join("real.key")).unwrap();
    let before = listing(&app);
    for args in [
        vec!["stats", "file:./app"],
        vec!["init", "file:./app"],
        vec!["clear", "file:./app", "--destroy-key"],
    ] {
        let mut args = args;
        args.extend(["--key-file", "real.key"]);
        run_in(d, &args)
            .exits(1)
            .stderr_starts("error: ./app holds no file store")
            .stderr_has("\"log.01\", \"log.7\", \"notes.txt\"");
        assert_eq!(listing(&app), before, "{args:?}");
        assert!(d.join("real.key").exists());
    }
    // A store of the engine's own, but no book in it: a command needing one
    // refuses rather than start a book.
    let bare = d.join("bare");
    drop(open_backend("file", &bare));
    for args in [
        vec!["stats", "file:./bare"],
        vec!["clear", "file:./bare", "--destroy-key"],
    ] {
        let mut args = args;
        args.extend(["--key-file", "real.key"]);
        run_in(d, &args)
            .exits(1)
            .stderr_starts("error: no peerbook book at ./bare");
        assert!(d.join("real.key").exists());
    }
}
