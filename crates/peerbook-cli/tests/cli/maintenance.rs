//! Looking after a book: `verify` finds a corrupt record until `repair`
//! quarantines it, `cleanup` (dry run, then for real), `settings` stored in the
//! book (a node's own options win), and `clear` (with `--destroy-key`).

use peerbook::backend::{Space, WriteBatch};
use peerbook::{Durability, MasterKey, Options, PeerBook};
use serde_json::Value;

use crate::support::{ok, open_backend, run_in, seed, SECRET};

#[test]
fn verify_fails_on_corruption_until_repair() {
    for engine in ["file", "rocksdb"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let spec = seed(engine, d, 0);
        ok(run_in(d, &["verify", &spec]));
        {
            let backend = open_backend(engine, &d.join("peers"));
            let mut batch = WriteBatch::new();
            batch.put(
                Space::Peers,
                b"mallory".to_vec(),
                b"\xff\x00garbage".to_vec(),
            );
            backend.write(batch, Durability::Sync).unwrap();
            backend.flush().unwrap();
        }
        // problems found: 3, not the 1 of an operational failure
        run_in(d, &["verify", &spec])
            .exits(3)
            .stdout_has("corrupt records:      1")
            .stdout_has("mallory")
            .stderr_has("hint: `peerbook repair");
        let r = run_in(d, &["verify", &spec, "--json"]).exits(3);
        let report: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(report["corrupt"].as_array().unwrap().len(), 1);
        let r = ok(run_in(d, &["stats", &spec]));
        r.stdout_has("corrupt:       1");
        // Queries skip the bad record; get names it.
        ok(run_in(d, &["list", &spec]));
        run_in(d, &["get", &spec, "mallory"])
            .exits(1)
            .stderr_has("corrupted")
            .stderr_has("peerbook repair");

        let r = ok(run_in(d, &["repair", &spec]));
        r.stdout_has("quarantined records:   1");
        ok(run_in(d, &["verify", &spec]));
        let r = ok(run_in(d, &["stats", &spec]));
        r.stdout_has("quarantined:   1");
        r.stdout_has("corrupt:       0");
    }
}

#[test]
fn cleanup_dry_run_then_for_real() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 2);
    let r = ok(run_in(
        d,
        &["cleanup", &spec, "--stale", "--lru", "1", "--dry-run"],
    ));
    assert!(
        r.stdout.contains("would remove old-0 (stale"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("would remove old-1 (stale"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("dry run: 2 stale and 1 least recently seen"),
        "{}",
        r.stdout
    );
    let r = ok(run_in(d, &["stats", &spec]));
    assert!(
        r.stdout.contains("peers:         5 "),
        "dry run wrote: {}",
        r.stdout
    );

    let r = ok(run_in(d, &["cleanup", &spec, "--stale"]));
    r.stdout_has("removed 2 stale and 0");
    let r = ok(run_in(d, &["cleanup", &spec, "--lru", "1"]));
    r.stdout_has("removed 0 stale and 1 least");
    let r = ok(run_in(d, &["stats", &spec]));
    r.stdout_has("peers:         2 ");
    ok(run_in(d, &["verify", &spec]));
}

#[test]
fn settings_live_in_the_book_and_the_node_wins() {
    for engine in ["lmdb", "rocksdb", "file"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let spec = seed(engine, d, 0);
        let key = MasterKey::load(d.join("peers.key")).unwrap();
        // The node opened with the defaults: the command shows them.
        let r = ok(run_in(d, &["settings", &spec, "--json"]));
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["retention"]["max_peers"], 100, "{engine}");
        assert_eq!(v["changed"], false);

        // The command changes them in the book...
        let r = ok(run_in(
            d,
            &[
                "settings",
                &spec,
                "--max-peers",
                "7",
                "--inactive-after",
                "1h30m",
                "--evict-when-full",
                "true",
            ],
        ));
        r.stdout_has("max peers:         7");
        r.stdout_has("changed");
        let backend = open_backend(engine, &d.join("peers"));
        let stored = peerbook::store::read_retention(&backend).unwrap().unwrap();
        assert_eq!(stored.max_peers, 7);
        assert_eq!(stored.inactive_after_ms, 90 * 60 * 1000);
        assert!(stored.evict_when_full);
        drop(backend);
        // ...and every command follows them.
        let r = ok(run_in(d, &["stats", &spec]));
        r.stdout_has("of max 7");

        // A node opening with its own Options wins; the command then agrees with it.
        let mut node = Options::new(key.clone());
        node.max_peers = 42;
        let book = PeerBook::open(open_backend(engine, &d.join("peers")), node).unwrap();
        drop(book.close().unwrap());
        let r = ok(run_in(d, &["settings", &spec, "--json"]));
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["retention"]["max_peers"], 42, "{engine}");
        assert_eq!(v["retention"]["evict_when_full"], false);

        // Bad values change nothing.
        run_in(d, &["settings", &spec, "--max-peers", "0"]).exits(2);
        run_in(d, &["settings", &spec, "--inactive-after", "soon"]).exits(2);
        let backend = open_backend(engine, &d.join("peers"));
        let stored = peerbook::store::read_retention(&backend).unwrap().unwrap();
        assert_eq!(stored.max_peers, 42);
    }
}

#[test]
fn clear_erases_the_book_and_destroy_key_removes_key_and_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = seed("lmdb", dir.path(), 3);
    let r = ok(run_in(dir.path(), &["clear", &spec]));
    r.stdout_has("6 peers erased");
    let r = ok(run_in(dir.path(), &["stats", &spec]));
    r.stdout_has("peers:         0 of max 100");
    let data = std::fs::read(dir.path().join("peers").join("data.mdb")).unwrap();
    assert!(
        !data.windows(SECRET.len()).any(|w| w == SECRET.as_bytes())
            && !data.windows(5).any(|w| w == b"alice"),
        "cleared peer data still in data.mdb"
    );

    let r = ok(run_in(dir.path(), &["clear", &spec, "--destroy-key"]));
    r.stdout_has("destroyed key file");
    assert!(!dir.path().join("peers.key").exists());
    assert!(!dir.path().join("peers").exists());
    run_in(dir.path(), &["stats", &spec]).exits(1);
    ok(run_in(dir.path(), &["init", &spec]));
    assert!(
        dir.path().join("peers.key").is_file(),
        "a new store gets a new key"
    );
}
