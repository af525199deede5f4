//! The plumbing of the process-kill crash tests (`crash_kill`, `crash_kill_concurrent`):
//! the test binary re-runs one of its own tests as a child that writes and reports on
//! its stdout; the parent reads the reports, SIGKILLs the child at a chosen moment,
//! reopens the book and checks it. What a child writes and what the parent expects
//! stay in each test; the spawning, reading, killing and the checks after a reopen
//! that every kill test makes are here.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peerbook::conformance::Rng;
use peerbook::{Backend, Durability, ManualClock, NewPeer, PeerBook, PeerRecord};

use super::{Engine, DISK_ENGINES};

/// How long the parent waits for the reports it wants before it kills anyway.
const REPORT_DEADLINE: Duration = Duration::from_secs(60);

/// The book options of a kill test: every write synced before it is acknowledged,
/// and room for every peer the children write.
pub fn options(clock: &ManualClock) -> peerbook::Options {
    let mut o = super::options(clock);
    o.max_peers = 1_000_000;
    o.durability = Durability::Sync;
    o
}

/// The parent's loop. For every disk engine: a fresh directory, an [`Rng`] seeded
/// with `seed` and the engine, then as many kill rounds as `PEERBOOK_KILLS` says
/// (`cargo xtask long` sets 1,000; `default_kills` when unset), each a call of
/// `round(engine, dir, round number from 1, state, rng)` given the state the
/// previous round returned (`init` for the first). Does nothing in a child (its
/// variable `child_env` is set): a child runs only its entry test.
pub fn rounds_on_every_disk_engine<S: Copy>(
    child_env: &str,
    default_kills: u64,
    seed: u64,
    init: S,
    mut round: impl FnMut(Engine, &Path, u64, S, &mut Rng) -> S,
) {
    if std::env::var_os(child_env).is_some() {
        return;
    }
    let kills = std::env::var("PEERBOOK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_kills);
    for engine in DISK_ENGINES {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut rng = Rng::new(seed ^ engine.name().len() as u64);
        let mut state = init;
        for n in 1..=kills {
            state = round(engine, dir.path(), n, state, &mut rng);
        }
    }
}

/// Run the test `entry` of this binary as a child with the environment `envs`, and
/// hand every line it prints to `note(line, killed)`, which returns whether the line
/// reports an acknowledged write. Once `wanted` acknowledgements arrived (or the
/// child ended, or a minute passed) the child is SIGKILLed; the lines still in the
/// pipe were printed before the kill and go to `note` with `killed` set (a line cut
/// by the kill must be tolerated there). The child is reaped. Returns the
/// acknowledgements counted before the kill.
pub fn run_and_kill(
    entry: &str,
    envs: &[(&str, String)],
    wanted: u64,
    mut note: impl FnMut(&str, bool) -> bool,
) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut acks = 0;
    let deadline = Instant::now() + REPORT_DEADLINE;
    while acks < wanted && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => acks += u64::from(note(&line, false)),
            _ => break,
        }
    }
    child.kill().expect("SIGKILL the child");
    for line in lines.map_while(Result::ok) {
        note(&line, true);
    }
    child.wait().expect("reap child");
    acks
}

/// The shared secret of `record` opens to `expected`.
pub fn assert_secret<B: Backend>(book: &PeerBook<B>, record: &PeerRecord, expected: &str) {
    let secret = book
        .open_shared_secret(record)
        .expect("secret opens")
        .expect("present");
    assert_eq!(secret.expose(), expected.as_bytes());
}

/// What every kill test checks last on the reopened book: `verify` is clean (the
/// indexes agree with the records), and it accepts a new write (a peer named
/// `after{round}`). Closes the book.
pub fn check_and_close<B: Backend>(engine: Engine, book: PeerBook<B>, round: u64) {
    let report = book.verify().expect("verify");
    assert!(
        report.is_clean(),
        "{}: verify after SIGKILL: {report:?}",
        engine.name()
    );
    book.store_peer(NewPeer {
        peer_id: format!("after{round}"),
        ..NewPeer::default()
    })
    .expect("accepts new writes after the crash");
    drop(book.close().expect("close"));
}
