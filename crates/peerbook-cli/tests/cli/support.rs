//! What the CLI tests share: running the binary and checking its exit code and
//! output ([`Run`]), opening an engine directly, seeding a store with known peers
//! and secrets, exporting its peers, listing a directory.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use peerbook::{
    Backend, ManualClock, MasterKey, NewIceServer, NewPeer, Options, PeerBook, QualityUpdate,
    Secret,
};
use serde_json::Value;

pub const SECRET: &str = "s3cr3t-alice-shared";
pub const CREDENTIAL: &str = "turn-pass-xyz-789";
const DAY_MS: u64 = 86_400_000;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_peerbook"))
}

pub struct Run {
    /// The arguments, for the failure messages.
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// This run, after asserting it exited with `code`.
    #[track_caller]
    pub fn exits(self, code: i32) -> Run {
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
    pub fn stdout_has(&self, part: &str) -> &Run {
        self.holds("stdout", &self.stdout, part, false)
    }

    /// Assert that the stderr holds `part`.
    #[track_caller]
    pub fn stderr_has(&self, part: &str) -> &Run {
        self.holds("stderr", &self.stderr, part, false)
    }

    /// Assert that the stderr begins with `start`.
    #[track_caller]
    pub fn stderr_starts(&self, start: &str) -> &Run {
        self.holds("stderr", &self.stderr, start, true)
    }
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    run_cmd(bin().current_dir(dir).args(args))
}

/// Run the binary to its exit, checking it did not panic.
pub fn run_cmd(cmd: &mut Command) -> Run {
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
pub fn ok(r: Run) -> Run {
    r.exits(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn open_backend(engine: &str, path: &Path) -> Arc<dyn Backend> {
    engine
        .parse::<peerbook_engines::Engine>()
        .expect("known engine")
        .open(path)
        .unwrap()
}

/// A store `<engine>:<dir>/peers` with key `<dir>/peers.key`: alice (a secret and a
/// TURN credential), bob (good quality), carol (2 failed attempts), all seen now,
/// plus `old` peers last seen 40 days ago.
pub fn seed(engine: &str, dir: &Path, old: usize) -> String {
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

pub fn export_peers(dir: &Path, spec: &str, key_file: &Path) -> Value {
    let r = ok(run_in(
        dir,
        &["export", spec, "--key-file", key_file.to_str().unwrap()],
    ));
    let doc: Value = serde_json::from_str(&r.stdout).expect("export is JSON");
    doc["peers"].clone()
}

/// The names in `dir`, sorted (empty when it does not exist).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}
