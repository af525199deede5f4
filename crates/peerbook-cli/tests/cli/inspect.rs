//! The reading commands (`stats`, `list`, `get`, `candidates`): what they show,
//! secrets sealed unless `--reveal-secrets`, addresses and metadata, control
//! characters escaped, and clear errors for a missing store or key file.

use peerbook::{MasterKey, NewPeer, Options, PeerBook};
use serde_json::Value;

use crate::support::{bin, ok, open_backend, run_cmd, run_in, seed, CREDENTIAL, SECRET};

#[test]
fn read_commands_on_missing_store_or_key_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    run_in(dir.path(), &["stats", "lmdb:./nothing"])
        .exits(1)
        .stderr_starts("error: no store at ./nothing")
        .stderr_has("\nhint: ");
    assert!(!dir.path().join("nothing").exists());
    assert!(!dir.path().join("nothing.key").exists());

    let spec = seed("file", dir.path(), 0);
    run_in(dir.path(), &["stats", &spec, "--key-file", "missing.key"])
        .exits(1)
        .stderr_has("key file missing.key not found");
}

#[test]
fn inspect_commands_and_secret_redaction() {
    let dir = tempfile::tempdir().unwrap();
    let spec = seed("lmdb", dir.path(), 2);
    let d = dir.path();

    let r = ok(run_in(d, &["stats", &spec]));
    for line in [
        "engine:        lmdb",
        "peers:         5 of max 100 (5.0 % full)",
        "blacklisted:   0",
        "corrupt:       0",
        "quarantined:   0",
        "oldest seen:   ",
        "(40d ago)",
    ] {
        assert!(
            r.stdout.contains(line),
            "stats lacks {line:?}:\n{}",
            r.stdout
        );
    }
    let stats: Value =
        serde_json::from_str(&ok(run_in(d, &["stats", &spec, "--json"])).stdout).unwrap();
    assert_eq!(stats["peer_count"], 5);

    let r = ok(run_in(d, &["list", &spec]));
    assert!(r.stdout.starts_with("ID "), "{}", r.stdout);
    r.stdout_has("2 failed");
    assert!(r.stdout.contains("(5 peers)"));
    let r = ok(run_in(
        d,
        &[
            "list",
            &spec,
            "--max-age",
            "7d",
            "--sort",
            "quality",
            "--limit",
            "2",
        ],
    ));
    r.stdout_has("(2 peers)");
    let first_row = r.stdout.lines().nth(1).unwrap();
    assert!(first_row.starts_with("bob "), "{}", r.stdout);
    let r = ok(run_in(d, &["list", &spec, "--min-quality", "50", "--json"]));
    let peers: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(peers.as_array().unwrap().len(), 1);
    assert_eq!(peers[0]["peer_id"], "bob");

    // Secrets: sealed everywhere unless --reveal-secrets.
    for args in [
        vec!["list", spec.as_str(), "--json"],
        vec!["list", spec.as_str()],
        vec!["get", spec.as_str(), "alice"],
        vec!["get", spec.as_str(), "alice", "--json"],
        vec!["export", spec.as_str()],
        vec!["candidates", spec.as_str(), "--json"],
        vec!["stats", spec.as_str()],
    ] {
        let r = ok(run_in(d, &args));
        assert!(
            !r.stdout.contains(SECRET) && !r.stdout.contains(CREDENTIAL),
            "{args:?} printed a secret"
        );
        assert!(!r.stderr.contains(SECRET));
    }
    let r = ok(run_in(d, &["get", &spec, "alice"]));
    r.stdout_has("shared_secret:      <sealed>");
    r.stdout_has("credential <sealed>");
    assert!(r.stdout.contains("192.0.2.7"));
    let r = ok(run_in(d, &["get", &spec, "alice", "--reveal-secrets"]));
    assert!(
        r.stdout.contains(SECRET) && r.stdout.contains(CREDENTIAL),
        "{}",
        r.stdout
    );
    let r = ok(run_in(d, &["list", &spec, "--json", "--reveal-secrets"]));
    let peers: Value = serde_json::from_str(&r.stdout).unwrap();
    let alice = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == "alice")
        .unwrap();
    assert_eq!(alice["shared_secret"], SECRET);
    assert_eq!(alice["ice_servers"][0]["credential"], CREDENTIAL);

    run_in(d, &["get", &spec, "nobody"])
        .exits(1)
        .stderr_starts("error: peer not found: nobody\nhint: ");
    run_in(d, &["get", &spec, "bad id with spaces"])
        .exits(1)
        .stderr_starts("error: invalid peer_id");

    // Candidates with every score part; the 40-day-old peers are out of a 24h window.
    let r = ok(run_in(
        d,
        &["candidates", &spec, "--limit", "5", "--max-age", "24h"],
    ));
    assert!(
        r.stdout
            .starts_with("ID     NAME   SCORE  QUALITY  RECENCY  SUCCESS  RELIAB  PENALTY"),
        "{}",
        r.stdout
    );
    r.stdout_has("(3 candidates)");
    assert!(r.stdout.contains("-10"), "carol's penalty: {}", r.stdout);
    let r = ok(run_in(d, &["candidates", &spec, "--json"]));
    let c: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(c[0]["peer_id"], "bob");
    assert_eq!(c[0]["score"]["recency"], 30);
}

#[test]
fn get_list_and_import_show_addresses_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 0);
    {
        let key = MasterKey::load_or_create(d.join("peers.key")).unwrap();
        let book =
            PeerBook::open(open_backend("file", &d.join("peers")), Options::new(key)).unwrap();
        let addr = "/ip4/192.0.2.7/tcp/4001";
        book.add_address("alice", addr, peerbook::AddressSource::Observed, None)
            .unwrap();
        book.record_address_result("alice", addr, true).unwrap();
        book.set_metadata("alice", "agent", Some("node/\u{202E}1.0"))
            .unwrap();
        book.close().unwrap();
    }
    let r = ok(run_in(d, &["get", &spec, "alice"]));
    assert!(
        r.stdout
            .contains("addresses[0]:       /ip4/192.0.2.7/tcp/4001 (observed, last ok "),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("metadata.agent: node/\\u{202e}1.0"),
        "metadata shown escaped: {}",
        r.stdout
    );
    let r = ok(run_in(d, &["list", &spec]));
    r.stdout_has("ADDRS");
    ok(run_cmd(bin().current_dir(d).args([
        "export",
        &spec,
        "--no-secrets",
        "--out",
        "plain.json",
    ])));
    ok(run_in(
        d,
        &["import", "file:./copy", "plain.json", "--replace"],
    ));
    let r = ok(run_in(d, &["get", "file:./copy", "alice", "--json"]));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["addresses"][0]["addr"], "/ip4/192.0.2.7/tcp/4001");
    assert_eq!(v["addresses"][0]["source"], "observed");
    assert_eq!(v["metadata"]["agent"], "node/\u{202E}1.0");
}

/// A public key is shown escaped, as metadata is: the core only bounds its length,
/// and terminal control sequences (e.g. from an imported document) stay inert.
#[test]
fn get_escapes_control_characters_of_a_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 0);
    {
        let key = MasterKey::load(d.join("peers.key")).unwrap();
        let book =
            PeerBook::open(open_backend("file", &d.join("peers")), Options::new(key)).unwrap();
        book.store_peer(NewPeer {
            peer_id: "mallory".into(),
            display_name: "Mallory".into(),
            public_key: "\u{1b}]0;owned\u{7}\u{1b}[2J\u{202E}".into(),
            ..NewPeer::default()
        })
        .unwrap();
        drop(book.close().unwrap());
    }
    let r = ok(run_in(d, &["get", &spec, "mallory"]));
    assert!(
        !r.stdout.contains('\u{1b}') && !r.stdout.contains('\u{202E}'),
        "raw controls in {:?}",
        r.stdout
    );
    r.stdout_has("public_key:         \\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{202e}");
    // A JSON Web Key reads as it is.
    let r = ok(run_in(d, &["get", &spec, "alice"]));
    r.stdout_has("public_key:         {\"kty\":\"EC\",\"crv\":\"P-256\"}");
}
