//! The real `peerbook` binary on real stores in temp dirs: every backend, migration
//! across them, verify/repair, key rotation, secrets redaction, usage errors.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use peerbook::backend::{Space, WriteBatch};
use peerbook::{
    Backend, Durability, ManualClock, MasterKey, NewIceServer, NewPeer, Options, PeerBook,
    QualityUpdate, Secret,
};
use serde_json::Value;

const SECRET: &str = "s3cr3t-alice-shared";
const CREDENTIAL: &str = "turn-pass-xyz-789";
const DAY_MS: u64 = 86_400_000;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerbook"))
}

struct Run {
    /// The arguments, for the failure messages.
    args: Vec<String>,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// This run, after asserting it exited with `code`.
    #[track_caller]
    fn exits(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "{:?}: stdout:\n{}\nstderr:\n{}",
            self.args, self.stdout, self.stderr
        );
        self
    }

    /// Assert that `output` (this run's `name`) holds `part`, or begins with it.
    #[track_caller]
    fn holds(&self, name: &str, output: &str, part: &str, start: bool) -> &Run {
        let ok = if start {
            output.starts_with(part)
        } else {
            output.contains(part)
        };
        let how = if start {
            "does not begin with"
        } else {
            "lacks"
        };
        assert!(ok, "{:?}: {name} {how} {part:?}:\n{output}", self.args);
        self
    }

    /// Assert that the stdout holds `part`.
    #[track_caller]
    fn stdout_has(&self, part: &str) -> &Run {
        self.holds("stdout", &self.stdout, part, false)
    }

    /// Assert that the stderr holds `part`.
    #[track_caller]
    fn stderr_has(&self, part: &str) -> &Run {
        self.holds("stderr", &self.stderr, part, false)
    }

    /// Assert that the stderr begins with `start`.
    #[track_caller]
    fn stderr_starts(&self, start: &str) -> &Run {
        self.holds("stderr", &self.stderr, start, true)
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Run {
    run_cmd(bin().current_dir(dir).args(args))
}

/// Run, retrying briefly while the store reports itself locked: a store this test
/// process just closed can stay locked for a moment through a descriptor that a
/// concurrent test's fork inherited before its exec.
fn run_cmd(cmd: &mut Command) -> Run {
    for _ in 0..20 {
        let r = run_once(cmd);
        if !r.stderr.contains("store is locked") {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run_once(cmd)
}

fn run_once(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run peerbook");
    let r = Run {
        args: cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    assert!(
        !r.stderr.contains("panicked"),
        "peerbook panicked: {}",
        r.stderr
    );
    r
}

#[track_caller]
fn ok(r: Run) -> Run {
    r.exits(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn open_backend(engine: &str, path: &Path) -> Arc<dyn Backend> {
    // Retried while locked, for the same reason as `run_cmd`.
    for attempt in 0.. {
        let opened = engine
            .parse::<peerbook_engines::Engine>()
            .expect("known engine")
            .open(path);
        match opened {
            Err(peerbook::BackendError::Locked { .. }) if attempt < 40 => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => return other.unwrap(),
        }
    }
    unreachable!()
}

/// A store `<engine>:<dir>/peers` with key `<dir>/peers.key`: alice (a secret and a
/// TURN credential), bob (good quality), carol (2 failed attempts), all seen now,
/// plus `old` peers last seen 40 days ago.
fn seed(engine: &str, dir: &Path, old: usize) -> String {
    let path = dir.join("peers");
    let key = MasterKey::load_or_create(dir.join("peers.key")).unwrap();
    let clock = ManualClock::new(now_ms() - 40 * DAY_MS);
    let book = PeerBook::open(
        open_backend(engine, &path),
        Options::new(key).with_clock(clock.clone()),
    )
    .unwrap();
    for i in 0..old {
        book.store_peer(NewPeer {
            peer_id: format!("old-{i}"),
            display_name: format!("Old {i}"),
            public_key: "{\"kty\":\"EC\"}".into(),
            ..NewPeer::default()
        })
        .unwrap();
    }
    clock.set(now_ms());
    book.store_peer(NewPeer {
        peer_id: "alice".into(),
        display_name: "Alice".into(),
        public_key: "{\"kty\":\"EC\",\"crv\":\"P-256\"}".into(),
        shared_secret: Some(Secret::from(SECRET)),
        ice_servers: vec![NewIceServer {
            urls: vec!["turn:turn.example.org:3478".into()],
            username: Some("alice".into()),
            credential: Some(Secret::from(CREDENTIAL)),
        }],
        last_known_ip: Some("192.0.2.7".parse().unwrap()),
        ..NewPeer::default()
    })
    .unwrap();
    for id in ["bob", "carol"] {
        book.store_peer(NewPeer {
            peer_id: id.into(),
            display_name: id.to_uppercase(),
            public_key: "z6Mk".into(),
            ..NewPeer::default()
        })
        .unwrap();
    }
    book.update_connection_quality(
        "bob",
        QualityUpdate {
            latency_ms: Some(Some(30)),
            connection_type: Some(peerbook::ConnectionType::Host),
            ..QualityUpdate::default()
        },
    )
    .unwrap();
    book.increment_reconnection_attempts("carol").unwrap();
    book.increment_reconnection_attempts("carol").unwrap();
    drop(book.close().unwrap());
    format!("{engine}:{}", path.display())
}

fn export_peers(dir: &Path, spec: &str, key_file: &Path) -> Value {
    let r = ok(run_in(
        dir,
        &["export", spec, "--key-file", key_file.to_str().unwrap()],
    ));
    let doc: Value = serde_json::from_str(&r.stdout).expect("export is JSON");
    doc["peers"].clone()
}

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
fn init_creates_store_and_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(run_in(dir.path(), &["init", "file:./book"]));
    r.stdout_has("created store file:./book");
    let key = dir.path().join("book.key");
    assert!(key.is_file(), "key file beside the store");
    assert!(!dir.path().join("book").join("book.key").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let r = ok(run_in(dir.path(), &["init", "file:./book"]));
    r.stdout_has("already exists");
    let r = ok(run_in(dir.path(), &["stats", "file:./book"]));
    r.stdout_has("peers:         0 of max 100");
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
fn migrate_across_every_backend_keeps_the_book() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("lmdb", d, 3);
    let original = export_peers(d, &spec, &d.join("peers.key"));
    assert_eq!(original.as_array().unwrap().len(), 6);

    let chain = ["lmdb:./peers", "rocksdb:./b", "file:./c", "lmdb:./d"];
    for pair in chain.windows(2) {
        let r = ok(run_in(d, &["migrate", pair[0], pair[1]]));
        r.stdout_has("checked 6/6");
        r.stdout_has("ok: ");
    }
    for (spec, key) in [
        ("rocksdb:./b", "b.key"),
        ("file:./c", "c.key"),
        ("lmdb:./d", "d.key"),
    ] {
        assert_eq!(export_peers(d, spec, &d.join(key)), original, "{spec}");
    }
    // Secrets still open at the end of the chain.
    let r = ok(run_in(d, &["get", "lmdb:./d", "alice", "--reveal-secrets"]));
    assert!(r.stdout.contains(SECRET));

    // A non-empty TO is refused without --force, and left alone.
    run_in(d, &["migrate", "file:./c", "rocksdb:./b"])
        .exits(1)
        .stderr_has("is not empty")
        .stderr_has("--force");
    ok(run_in(
        d,
        &["migrate", "file:./c", "rocksdb:./b", "--force"],
    ));
    run_in(d, &["migrate", "file:./c", "file:./c/"]).exits(2);
}

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
fn rotate_key_then_only_the_new_key_opens() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    let r = ok(run_in(
        d,
        &["rotate-key", &spec, "--new-key-file", "new.key"],
    ));
    r.stdout_has("re-sealed the secrets of 1 peer under");
    r.stdout_has("mv new.key");
    let r = ok(run_in(
        d,
        &[
            "get",
            &spec,
            "alice",
            "--key-file",
            "new.key",
            "--reveal-secrets",
        ],
    ));
    assert!(r.stdout.contains(SECRET) && r.stdout.contains(CREDENTIAL));
    run_in(d, &["get", &spec, "alice"])
        .exits(1)
        .stderr_starts("error: wrong key")
        .stderr_has("hint: ");

    // An existing target key file is refused before anything changes.
    run_in(
        d,
        &[
            "rotate-key",
            &spec,
            "--key-file",
            "new.key",
            "--new-key-file",
            "peers.key",
        ],
    )
    .exits(1)
    .stderr_has("nothing was changed");
    ok(run_in(d, &["verify", &spec, "--key-file", "new.key"]));
}

#[test]
fn wrong_key_file_and_key_env() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 0);
    MasterKey::create(d.join("other.key")).unwrap();
    run_in(d, &["get", &spec, "alice", "--key-file", "other.key"])
        .exits(1)
        .stderr_starts(
            "error: wrong key: the master key does not open this book's sealed data\nhint: ",
        );

    let bytes = std::fs::read(d.join("peers.key")).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let r = ok(run_cmd(bin().current_dir(d).env("PB_TEST_KEY", &hex).args(
        [
            "get",
            &spec,
            "alice",
            "--key-env",
            "PB_TEST_KEY",
            "--reveal-secrets",
        ],
    )));
    assert!(r.stdout.contains(SECRET));
    for bad in ["abc", "zz", &"g".repeat(64)] {
        run_cmd(bin().current_dir(d).env("PB_TEST_KEY", bad).args([
            "stats",
            &spec,
            "--key-env",
            "PB_TEST_KEY",
        ]))
        .exits(1)
        .stderr_has("64 hex characters");
    }
    run_cmd(bin().current_dir(d).env_remove("PB_UNSET_KEY").args([
        "stats",
        &spec,
        "--key-env",
        "PB_UNSET_KEY",
    ]))
    .exits(1)
    .stderr_has("PB_UNSET_KEY is not set");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("other.key"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        run_in(d, &["stats", &spec, "--key-file", "other.key"])
            .exits(1)
            .stderr_has("hint: run `chmod 600 other.key`");
    }
}

#[test]
fn export_import_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    ok(run_cmd(bin().current_dir(d).args([
        "export",
        &spec,
        "--out",
        "book.json",
    ])))
    .stderr_has("exported 4 peers to book.json");
    let text = std::fs::read_to_string(d.join("book.json")).unwrap();
    assert!(!text.contains(SECRET));

    // Sealed secrets only import under the same key.
    run_in(d, &["import", "file:./other", "book.json"])
        .exits(1)
        .stderr_starts("error: wrong key")
        .stderr_has("--no-secrets");
    ok(run_in(
        d,
        &[
            "import",
            "file:./same",
            "book.json",
            "--key-file",
            "peers.key",
        ],
    ));
    assert_eq!(
        export_peers(d, "file:./same", &d.join("peers.key")),
        export_peers(d, &spec, &d.join("peers.key"))
    );

    // Without secrets, into a book with its own new key.
    ok(run_cmd(bin().current_dir(d).args([
        "export",
        &spec,
        "--no-secrets",
        "--out",
        "plain.json",
    ])));
    let r = ok(run_in(
        d,
        &["import", "rocksdb:./fresh", "plain.json", "--replace"],
    ));
    r.stdout_has("imported 4 peers");
    assert!(d.join("fresh.key").is_file());
    let r = ok(run_in(
        d,
        &["get", "rocksdb:./fresh", "alice", "--reveal-secrets"],
    ));
    r.stdout_has("shared_secret:      -");

    std::fs::write(d.join("junk.json"), "{\"format\": 7").unwrap();
    run_in(d, &["import", "file:./x", "junk.json"])
        .exits(1)
        .stderr_has("is not a peerbook export");
    assert!(!d.join("x").exists(), "a bad document created a store");
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
fn a_store_open_elsewhere_is_reported_locked() {
    for engine in ["file", "lmdb", "rocksdb"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let spec = seed(engine, d, 0);
        let held = open_backend(engine, &d.join("peers"));
        let r = run_once(bin().current_dir(d).args(["stats", &spec]));
        drop(held);
        r.exits(1)
            .stderr_starts("error: ")
            .stderr_has("hint: another process");
        ok(run_in(d, &["stats", &spec]));
    }
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
fn export_out_replaces_the_file_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    std::fs::write(d.join("book.json"), "previous export").unwrap();
    // A second name for the old file: a new file renamed into place leaves it as it
    // was, where rewriting book.json in place would change it too.
    std::fs::hard_link(d.join("book.json"), d.join("old-name.json")).unwrap();
    // A failing export (wrong key) leaves the old file and no temp file.
    std::fs::write(d.join("wrong.key"), [9u8; 32]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.join("wrong.key"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    run_in(
        d,
        &[
            "export",
            &spec,
            "--out",
            "book.json",
            "--key-file",
            "wrong.key",
        ],
    )
    .exits(1);
    assert_eq!(
        std::fs::read_to_string(d.join("book.json")).unwrap(),
        "previous export"
    );
    // A directory that does not exist: an error, nothing created.
    run_in(d, &["export", &spec, "--out", "missing/book.json"]).exits(1);
    assert!(!d.join("missing").exists());
    // Success replaces it whole, private, with no temp file left.
    ok(run_in(d, &["export", &spec, "--out", "book.json"]));
    let text = std::fs::read_to_string(d.join("book.json")).unwrap();
    assert!(ExportLike::peers(&text) == 4, "{text}");
    assert_eq!(
        std::fs::read_to_string(d.join("old-name.json")).unwrap(),
        "previous export",
        "book.json was rewritten in place, not replaced"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("book.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let leftovers: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Reading an export document in tests.
struct ExportLike;

impl ExportLike {
    fn peers(text: &str) -> usize {
        let v: Value = serde_json::from_str(text).expect("an export is JSON");
        v["peers"].as_array().map_or(0, Vec::len)
    }
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

#[test]
fn write_commands_never_create_a_key_for_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = seed("file", dir.path(), 0);
    let key = dir.path().join("peers.key");
    let doc = dir.path().join("doc.json");
    ok(run_in(
        dir.path(),
        &[
            "export",
            &spec,
            "--no-secrets",
            "--out",
            doc.to_str().unwrap(),
        ],
    ));
    std::fs::rename(&key, dir.path().join("moved.key")).unwrap();
    for args in [
        vec!["init", spec.as_str()],
        vec!["import", spec.as_str(), doc.to_str().unwrap()],
    ] {
        run_in(dir.path(), &args)
            .exits(1)
            .stderr_has("refusing to create a new key for an existing store")
            .stderr_has("peers.key"); // the expected key file
        assert!(!key.exists(), "{args:?} created a stray key file");
    }
    // a new store still gets its key from a write command
    ok(run_in(
        dir.path(),
        &["import", "lmdb:./fresh", doc.to_str().unwrap()],
    ));
    assert!(dir.path().join("fresh.key").is_file());
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

/// The names in `dir`, sorted (empty when it does not exist).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
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

/// Output that cannot be written (a full disk behind `> backup.json`) fails the
/// command with exit 1, so `export > backup.json && clear` stops; a reader that went
/// away (`| head`) is no error.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_to_stdout_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    for args in [
        vec!["export", spec.as_str()],
        vec!["stats", &spec],
        vec!["list", &spec, "--json"],
    ] {
        run_cmd(
            bin()
                .current_dir(d)
                .args(&args)
                .stdout(full.try_clone().unwrap()),
        )
        .exits(1)
        .stderr_starts("error: cannot write to stdout");
    }
    for _ in 0..5 {
        let mut child = bin()
            .current_dir(d)
            .args(["export", &spec])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A command that made its change but could not write its report (stdout on a full
/// disk) fails, saying the change was made, and does not invite a rerun (which
/// would fail, the key being gone, or act a second time).
#[cfg(target_os = "linux")]
#[test]
fn a_lost_report_after_a_change_says_the_change_was_made() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 2);
    ok(run_in(d, &["export", &spec, "--out", "book.json"]));
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let lost = |args: &[&str], change: &str| {
        let r = run_cmd(
            bin()
                .current_dir(d)
                .args(args)
                .stdout(full.try_clone().unwrap()),
        )
        .exits(1);
        r.stderr_starts(&format!("error: {change}"))
            .stderr_has("only the report was lost")
            .stderr_has("do NOT rerun");
        assert!(!r.stderr.contains("rerun the command once"), "{}", r.stderr);
    };
    // (with --json: nothing is written before the copy)
    lost(
        &["migrate", &spec, "lmdb:./copy", "--json"],
        "wrote the 5 peers of",
    );
    lost(
        &[
            "import",
            "rocksdb:./imported",
            "book.json",
            "--key-file",
            "peers.key",
        ],
        "imported 5 peers",
    );
    lost(&["cleanup", &spec, "--stale", "--json"], "removed 2 stale");
    lost(
        &["rotate-key", &spec, "--new-key-file", "new.key"],
        "re-sealed",
    );
    std::fs::rename(d.join("new.key"), d.join("peers.key")).unwrap();
    lost(&["clear", &spec, "--destroy-key"], "cleared");
    assert!(!d.join("peers.key").exists());
    // A report lost before anything changed still says to rerun.
    run_cmd(
        bin()
            .current_dir(d)
            .args(["stats", "lmdb:./copy"])
            .stdout(full.try_clone().unwrap()),
    )
    .exits(1)
    .stderr_has("rerun the command once");
}

/// The retention settings of `settings --json` on `spec`.
fn retention(dir: &Path, spec: &str) -> Value {
    let r = ok(run_in(dir, &["settings", spec, "--json"]));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v["retention"].clone()
}

/// `migrate` into a store that is not empty, without --force, changes nothing in it:
/// not its peers, not its retention settings.
#[test]
fn a_refused_migrate_leaves_the_target_settings_alone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("lmdb", d, 1);
    ok(run_in(d, &["migrate", &spec, "file:./b"]));
    ok(run_in(
        d,
        &[
            "settings",
            "file:./b",
            "--max-peers",
            "42",
            "--inactive-after",
            "3d",
        ],
    ));
    let before = retention(d, "file:./b");
    assert_eq!(before["max_peers"], 42);
    run_in(d, &["migrate", &spec, "file:./b"])
        .exits(1)
        .stderr_has("is not empty");
    assert_eq!(retention(d, "file:./b"), before);
    // With --force, TO takes FROM's settings.
    ok(run_in(d, &["migrate", &spec, "file:./b", "--force"]));
    assert_eq!(retention(d, "file:./b"), retention(d, &spec));
}

/// An import that would create a store and fails (secrets sealed under another
/// key) leaves no store directory and no key file behind; the retry with the right
/// key then works.
#[test]
fn a_failed_import_into_a_new_store_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    ok(run_in(d, &["export", &spec, "--out", "book.json"]));
    for engine in ["file", "lmdb", "rocksdb"] {
        let target = format!("{engine}:./new");
        run_in(d, &["import", &target, "book.json"])
            .exits(1)
            .stderr_starts("error: wrong key");
        assert!(!d.join("new").exists(), "{engine}: store left behind");
        assert!(
            !d.join("new.key").exists(),
            "{engine}: key file left behind"
        );
        // Nested, with a named key file: no parent directory left either.
        let target = format!("{engine}:./a/b/new");
        run_in(
            d,
            &["import", &target, "book.json", "--key-file", "new.key"],
        )
        .exits(1)
        .stderr_starts("error: wrong key");
        assert!(!d.join("a").exists(), "{engine}: directories left behind");
        assert!(
            !d.join("new.key").exists(),
            "{engine}: key file left behind"
        );
        // An empty directory given stays, empty.
        std::fs::create_dir(d.join("empty")).unwrap();
        let target = format!("{engine}:./empty");
        run_in(d, &["import", &target, "book.json"])
            .exits(1)
            .stderr_starts("error: wrong key");
        assert_eq!(listing(&d.join("empty")), Vec::<String>::new(), "{engine}");
        assert!(!d.join("empty.key").exists(), "{engine}");
        std::fs::remove_dir(d.join("empty")).unwrap();
    }
    let r = ok(run_in(
        d,
        &[
            "import",
            "file:./new",
            "book.json",
            "--key-file",
            "peers.key",
        ],
    ));
    r.stdout_has("imported 4 peers");
}

/// A document that would not import into a new store (its secrets sealed under
/// another key) is refused before anything is made on disk: here the new key file
/// could not even be written (its directory is missing), yet the error is the
/// document's.
#[test]
fn an_import_into_a_new_store_is_checked_before_anything_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    ok(run_in(d, &["export", &spec, "--out", "book.json"]));
    let before = listing(d);
    for engine in ["file", "lmdb", "rocksdb"] {
        let target = format!("{engine}:./a/new");
        run_in(
            d,
            &["import", &target, "book.json", "--key-file", "keys/new.key"],
        )
        .exits(1)
        .stderr_starts("error: wrong key");
        assert_eq!(listing(d), before, "{engine}");
    }
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
