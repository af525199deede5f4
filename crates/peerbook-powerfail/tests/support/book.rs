//! Shared by the power-loss proofs on a whole `PeerBook` (`book_buffered`,
//! `book_group_commit`): each round a writer child (the test binary, re-run) writes
//! on the FUSE mount and prints what was acknowledged until the parent SIGKILLs it;
//! the parent cuts the power, mounts again and runs a checker child that prints the
//! peers it finds and whether `verify` is clean. What the writes are, and what the
//! found peers must be, is each test's own.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peerbook::backend::Backend;
use peerbook::{Durability, MasterKey, NewPeer, Options, PeerBook, PeerRecord};
use peerbook_powerfail::{CutReport, Mounted, PowerFailFs};

use super::engine::Engine;

/// The book of the children: the engine's store opened through the registry.
pub type Book = PeerBook<Arc<dyn Backend>>;

/// Options with the master key `[key; 32]`, `durability`, and room for every peer
/// the rounds store.
pub fn options(key: u8, durability: Durability) -> Options {
    let mut o = Options::new(MasterKey::from_bytes([key; 32]));
    o.durability = durability;
    o.max_peers = 1_000_000;
    o
}

/// A minimal new peer `id`.
pub fn peer(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        display_name: "p".into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    }
}

/// Print `line` on a line of its own (the test harness may have begun one) and
/// flush it: the parent reads it as it comes, and a SIGKILL may follow at once.
pub fn say(out: &mut impl Write, line: &str) {
    writeln!(out, "\n{line}").expect("pipe");
    out.flush().expect("pipe");
}

/// What the parent passes a child: `engine:mode:round:dir` in one environment
/// variable (the directory last: it may hold a `:`).
pub struct Spec {
    pub engine: Engine,
    /// `write` or `check`.
    pub mode: String,
    pub round: u64,
    pub dir: PathBuf,
}

impl Spec {
    /// This process's spec, from `env`; `None` when it is not a child.
    pub fn from_env(env: &str) -> Option<Spec> {
        let spec = std::env::var(env).ok()?;
        let mut parts = spec.splitn(4, ':');
        Some(Spec {
            engine: Engine::from_name(parts.next().expect("engine")),
            mode: parts.next().expect("mode").to_string(),
            round: parts.next().expect("round").parse().expect("round"),
            dir: PathBuf::from(parts.next().expect("dir")),
        })
    }

    /// The engine's book in the spec's directory, opened with `options`; on an
    /// error, `error <e>` printed for the parent and `None`.
    pub fn open(&self, options: Options, out: &mut impl Write) -> Option<Book> {
        let opened = self
            .engine
            .open(&self.dir)
            .map_err(peerbook::Error::from)
            .and_then(|b| PeerBook::open(b, options));
        match opened {
            Ok(book) => Some(book),
            Err(e) => {
                say(out, &format!("error {e}"));
                None
            }
        }
    }
}

/// The checker child's output: `peer <line(p)>` for every peer, `verify <clean>`,
/// `end`.
pub fn print_check(book: &Book, out: &mut impl Write, line: impl Fn(&PeerRecord) -> String) {
    let peers = book
        .query_peers(&peerbook::PeerQuery::default())
        .expect("query");
    for p in peers {
        say(out, &format!("peer {}", line(&p)));
    }
    let report = book.verify().expect("verify");
    say(out, &format!("verify {}", report.is_clean()));
    say(out, "end");
}

/// What the parent reads from the writer child's lines.
pub trait Acks {
    /// Take one line; `true` when it acknowledges a write (counted towards the
    /// writes wanted before the kill).
    fn read(&mut self, line: &str) -> bool;

    /// After the writes wanted: whether to read on before the kill (until this
    /// says no, the child ends or a minute has passed).
    fn read_on(&self) -> bool {
        false
    }
}

/// The children of one test: its child entry (a test of its own) and the
/// environment variable that makes the test binary a child.
pub struct Children {
    pub entry: &'static str,
    pub env: &'static str,
}

impl Children {
    /// The test binary, re-run as the child in `mode` for `round` on `mount`.
    pub fn command(&self, engine: Engine, mount: &Path, mode: &str, round: u64) -> Command {
        let spec = format!("{}:{mode}:{round}:{}", engine.name(), mount.display());
        let mut cmd = super::child_command(self.entry, self.env, spec);
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        cmd
    }

    /// Writer child: SIGKILL it after about `wanted` acknowledgements (and what
    /// `acked` reads on for); every line it printed before the kill counts.
    pub fn write_and_kill(
        &self,
        engine: Engine,
        mount: &Path,
        round: u64,
        wanted: u64,
        acked: &mut impl Acks,
    ) {
        let mut child = self
            .command(engine, mount, "write", round)
            .spawn()
            .expect("spawn writer child");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut count = 0;
        while count < wanted && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("error ") => {
                    panic!("{}: {line}", engine.name())
                }
                Some(Ok(line)) => count += u64::from(acked.read(&line)),
                _ => break,
            }
        }
        while acked.read_on() && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => {
                    acked.read(&line);
                }
                _ => break,
            }
        }
        child.kill().expect("SIGKILL the writer");
        for line in lines.map_while(Result::ok) {
            acked.read(&line);
        }
        child.wait().expect("reap");
    }

    /// Checker child after the cut: what follows `peer ` on each of its peer lines,
    /// once it reopened the book and found `verify` clean.
    pub fn check(&self, engine: Engine, mount: &Path, round: u64) -> Result<Vec<String>, String> {
        let output = self
            .command(engine, mount, "check", round)
            .output()
            .expect("run the check child");
        let text = String::from_utf8_lossy(&output.stdout);
        let mut peers = Vec::new();
        let mut clean = None;
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("peer ") {
                peers.push(p.to_string());
            } else if let Some(ok) = line.strip_prefix("verify ") {
                clean = Some(ok == "true");
            } else if line.starts_with("error ") || line == "error" {
                return Err(format!("reopen failed: {line}"));
            }
        }
        if clean != Some(true) {
            return Err(format!("verify not clean ({clean:?}); output:\n{text}"));
        }
        Ok(peers)
    }
}

/// The power-loss file system mounted in a temp dir, cut and mounted again round
/// after round, counting the unsynced pieces the cuts found and dropped.
pub struct PowerCuts {
    // In this order: dropped (a failed proof) the mount goes first, then its dir.
    mounted: Option<Mounted>,
    dir: tempfile::TempDir,
    fs: PowerFailFs,
    /// Unsynced pieces the cuts found.
    pub pending: usize,
    /// Those the cuts dropped.
    pub dropped: usize,
    /// The rounds to run: `PEERBOOK_POWER_CUTS`, else the proof's default.
    pub rounds: u64,
}

impl PowerCuts {
    /// Mounted for a proof of `default_rounds` rounds; `None` in a child of
    /// `children` (its proof runs in the parent) and when the mount was refused (the
    /// test is skipped, or fails under CI: see [`PowerFailFs::mount_in_test`]).
    pub fn mount(children: &Children, default_rounds: u64) -> Option<PowerCuts> {
        if std::env::var_os(children.env).is_some() {
            return None;
        }
        let rounds = std::env::var("PEERBOOK_POWER_CUTS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_rounds);
        let fs = PowerFailFs::new();
        let dir = tempfile::tempdir().expect("mount point");
        let mounted = fs.mount_in_test(dir.path())?;
        Some(PowerCuts {
            mounted: Some(mounted),
            dir,
            fs,
            pending: 0,
            dropped: 0,
            rounds,
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Cut the power (`seed` picks what unsynced survives), unmount and mount again
    /// (the kernel's page cache of the mount is gone).
    pub fn cut(&mut self, seed: u64) -> CutReport {
        let report = self.fs.cut_power(seed);
        self.pending += report.pieces_pending;
        self.dropped += report.pieces_pending - report.pieces_kept;
        let mounted = self.mounted.take().expect("mounted");
        mounted.unmount().expect("unmount");
        self.mounted = Some(self.fs.mount(self.dir.path()).expect("mount again"));
        report
    }

    /// Unmount at the end of the proof.
    pub fn unmount(mut self) {
        let mounted = self.mounted.take().expect("mounted");
        mounted.unmount().expect("unmount");
    }
}
