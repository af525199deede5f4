//! The command line itself: `--help`, usage errors (exit 2, nothing created),
//! durations as people write them, a JSON document from every reporting command,
//! no progress drawn into pipes, and `--destroy-key` refused with an environment key.

use peerbook::{Durability, MasterKey, NewPeer, Options, PeerBook};
use serde_json::Value;

use crate::support::{bin, listing, ok, open_backend, run_cmd, run_in, seed};

#[test]
fn help_reads_well() {
    let r = ok(run_cmd(bin().arg("--help")));
    for needle in [
        "BACKEND:PATH",
        "--key-file",
        "--key-env",
        "stats",
        "migrate",
        "rotate-key",
        "cleanup",
        "settings",
        "--json",
        "Exit codes",
        "3 verify found problems",
    ] {
        assert!(
            r.stdout.contains(needle),
            "--help lacks {needle}:\n{}",
            r.stdout
        );
    }
    let r = ok(run_cmd(bin().args(["cleanup", "--help"])));
    assert!(r.stdout.contains("--dry-run"));
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["stats"],
        vec!["stats", "peers"],
        vec!["stats", "sqlite:./peers"],
        vec!["stats", "lmdb:"],
        vec!["list", "lmdb:./p", "--max-age", "5 fortnights"],
        vec!["list", "lmdb:./p", "--min-quality", "101"],
        vec!["list", "lmdb:./p", "--sort", "nonsense"],
        vec!["cleanup", "lmdb:./p"],
        vec!["import", "lmdb:./p", "f.json", "--merge", "--replace"],
        vec!["get", "lmdb:./p", "x", "--key-file", "k", "--key-env", "K"],
        vec!["frobnicate"],
    ] {
        run_in(dir.path(), &args).exits(2).stderr_starts("error:");
    }
    assert!(
        !dir.path().join("p").exists(),
        "a usage error created a store"
    );
}

/// A store path with `..` after a name is a usage error: `x/../b` with `x` missing
/// would make `x` and open the engine in an existing `./b`, whatever it holds.
#[test]
fn a_parent_dir_after_a_name_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("b")).unwrap();
    for args in [
        vec!["init", "file:x/../b", "--key-file", "k"],
        vec!["import", "lmdb:./x/../b", "f.json"],
        vec!["migrate", "file:./a", "rocksdb:x/../b"],
    ] {
        run_in(d, &args)
            .exits(2)
            .stderr_starts("error:")
            .stderr_has("has a `..` after a directory name");
    }
    assert_eq!(listing(d), ["b"]);
    assert!(listing(&d.join("b")).is_empty());
}

#[test]
fn every_reporting_command_speaks_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 2);
    let commands: Vec<Vec<&str>> = vec![
        vec!["init", "file:./fresh"],
        vec!["stats", &spec],
        vec!["list", &spec],
        vec!["get", &spec, "alice"],
        vec!["candidates", &spec],
        vec!["verify", &spec],
        vec!["repair", &spec],
        vec!["settings", &spec],
        vec!["export", &spec],
        vec!["export", &spec, "--out", "book.json"],
        vec![
            "import",
            "file:./copy",
            "book.json",
            "--key-file",
            "peers.key",
        ],
        vec!["migrate", &spec, "lmdb:./moved"],
        vec!["cleanup", &spec, "--stale", "--dry-run"],
        vec!["cleanup", &spec, "--stale"],
        vec!["rotate-key", &spec, "--new-key-file", "new.key"],
        vec!["clear", "file:./copy", "--key-file", "peers.key"],
    ];
    for args in commands {
        let mut args = args.clone();
        args.push("--json");
        let r = ok(run_in(d, &args));
        let v: Result<Value, _> = serde_json::from_str(&r.stdout);
        assert!(
            v.is_ok(),
            "{args:?} printed no JSON document:\n{}",
            r.stdout
        );
    }
    let r = ok(run_in(
        d,
        &["cleanup", "lmdb:./moved", "--stale", "--dry-run", "--json"],
    ));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["would_remove"]["stale"].as_array().unwrap().len(), 2);
}

#[test]
fn durations_read_like_people_write_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 2);
    for (age, expected) in [("1h30m", 3), ("2w", 3), ("41d", 5), ("90s", 3)] {
        let r = ok(run_in(
            d,
            &[
                "candidates",
                &spec,
                "--max-age",
                age,
                "--limit",
                "10",
                "--json",
            ],
        ));
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v.as_array().unwrap().len(), expected, "--max-age {age}");
    }
    for bad in ["1h30", "soon", "-1d", ""] {
        run_in(d, &["candidates", &spec, "--max-age", bad]).exits(2);
    }
}

#[test]
fn long_commands_stay_quiet_in_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Large enough for progress (1,000 peers) were stderr a terminal.
    let key = MasterKey::load_or_create(d.join("peers.key")).unwrap();
    let mut options = Options::new(key);
    options.max_peers = 2_000;
    options.durability = Durability::Buffered;
    let book = PeerBook::open(open_backend("file", &d.join("peers")), options).unwrap();
    for i in 0..1_200 {
        book.store_peer(NewPeer {
            peer_id: format!("peer-{i:04}"),
            display_name: format!("Peer {i}"),
            public_key: "{\"kty\":\"EC\"}".into(),
            ..NewPeer::default()
        })
        .unwrap();
    }
    drop(book.close().unwrap());
    for args in [
        vec!["verify", "file:./peers"],
        vec!["export", "file:./peers", "--out", "all.json"],
        vec![
            "import",
            "file:./copy",
            "all.json",
            "--key-file",
            "peers.key",
        ],
        vec!["migrate", "file:./peers", "lmdb:./moved"],
    ] {
        let r = ok(run_in(d, &args));
        let progress_on_stderr = r.stderr.contains('\r') || r.stderr.contains("[=");
        assert!(
            !progress_on_stderr,
            "{args:?} drew progress into a pipe: {:?}",
            r.stderr
        );
        assert!(!r.stdout.contains('\r'), "{args:?}: {:?}", r.stdout);
    }
    let r = ok(run_in(d, &["migrate", "file:./peers", "file:./again"]));
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("checked"))
            .count(),
        1,
        "one summary line, no running count: {}",
        r.stdout
    );
}

/// `--destroy-key` with a key from the environment is a usage error, refused before
/// the book is cleared.
#[test]
fn destroy_key_with_a_key_from_the_environment_is_refused_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    let bytes = std::fs::read(d.join("peers.key")).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    run_cmd(bin().current_dir(d).env("PB_TEST_KEY", &hex).args([
        "--key-env",
        "PB_TEST_KEY",
        "clear",
        &spec,
        "--destroy-key",
    ]))
    .exits(2)
    .stderr_starts("error: ")
    .stderr_has("--destroy-key");
    ok(run_in(d, &["stats", &spec])).stdout_has("peers:         4 of max 100");
}
