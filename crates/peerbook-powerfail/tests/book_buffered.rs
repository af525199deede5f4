//! The power-loss proof of `Durability::Buffered` on a whole `PeerBook` over LMDB
//! (`MDB_NOMETASYNC`: a buffered commit syncs its data pages, and so the meta page
//! of the commit before it; only its own meta page waits).
//!
//! Each round: a child process (this test binary, re-run) opens a Buffered book on
//! the FUSE mount and stores new peers `r{round}-{k}`, k = 1, 2, ..., one
//! `store_peer` (one commit) each, printing every acknowledged one, and calls
//! `flush` now and then, printing it once it returned. The parent SIGKILLs it after
//! a random number of acknowledgements, cuts the power (a random part of the
//! unsynced writes survives, in any order), unmounts, mounts again and reopens the
//! book in a second child, which lists the peers and runs `verify`. The book must
//! open and verify clean, and this round's peers must be exactly `1..=j`, a prefix
//! of the acknowledged stores (plus maybe the one in flight) holding everything up
//! to the last returned flush, and (LMDB's documented bound) at most the last
//! acknowledged store may be missing; a cut that dropped no unsynced write (a
//! process crash alone) must keep every acknowledged store. Earlier rounds' peers
//! stay as the previous check found them.
//!
//! `PEERBOOK_POWER_CUTS=N` sets the rounds (default 8). The mount needs root and
//! `/dev/fuse`: refused under CI (`CI=true`) the test fails, elsewhere it is
//! skipped with a loud message.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peerbook::conformance::Rng;
use peerbook::{Durability, MasterKey, NewPeer, Options, PeerBook};
use peerbook_powerfail::PowerFailFs;
use support::engine::Engine;

const CHILD_ENV: &str = "PEERBOOK_POWERFAIL_BUFFERED_CHILD";
const DEFAULT_ROUNDS: u64 = 8;
/// The writer flushes after every this many stores (on average).
const FLUSH_EVERY: u64 = 9;

fn options() -> Options {
    let mut o = Options::new(MasterKey::from_bytes([9; 32]));
    o.durability = Durability::Buffered;
    o.max_peers = 1_000_000;
    o
}

fn peer(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        display_name: "p".into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    }
}

fn child_command(engine: Engine, mount: &Path, mode: &str, round: u64) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "buffered_child_entry",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(
        CHILD_ENV,
        format!("{}:{mode}:{round}:{}", engine.name(), mount.display()),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    cmd
}

/// The child: `write` stores peers until killed; `check` reopens, prints every
/// peer id, then `verify`.
#[test]
fn buffered_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // not a child
    };
    let mut parts = spec.splitn(4, ':');
    let engine = Engine::from_name(parts.next().expect("engine"));
    let mode = parts.next().expect("mode").to_string();
    let round: u64 = parts.next().expect("round").parse().expect("round");
    let dir = parts.next().expect("dir");
    let mut out = std::io::stdout();
    let mut say = |line: String| {
        writeln!(out, "\n{line}").expect("pipe");
        out.flush().expect("pipe");
    };
    let book = match engine
        .open(Path::new(dir))
        .map_err(peerbook::Error::from)
        .and_then(|b| PeerBook::open(b, options()))
    {
        Ok(book) => book,
        Err(e) => {
            say(format!("error {e}"));
            return;
        }
    };
    if mode == "check" {
        let peers = book
            .query_peers(&peerbook::PeerQuery::default())
            .expect("query");
        for p in peers {
            say(format!("peer {}", p.peer_id));
        }
        let report = book.verify().expect("verify");
        say(format!("verify {}", report.is_clean()));
        say("end".into());
        return;
    }
    let mut rng = Rng::new(round);
    for k in 1u64.. {
        book.store_peer(peer(&format!("r{round}-{k}")))
            .expect("store");
        say(format!("ack {k}"));
        if rng.below(FLUSH_EVERY) == 0 {
            book.flush().expect("flush");
            say(format!("synced {k}"));
            // A pause, so a parent that kills right after a flush (see
            // `write_and_kill`) cuts with the flushed store the last one.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What the writer acknowledged: the last store, and the last store before a
/// returned flush.
#[derive(Default)]
struct Acked {
    stored: u64,
    synced: u64,
}

impl Acked {
    fn read(&mut self, line: &str) -> bool {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["ack", k] => {
                self.stored = k.parse().expect("k");
                true
            }
            ["synced", k] => {
                self.synced = k.parse().expect("k");
                false
            }
            _ => false,
        }
    }
}

/// Writer child: kill it after about `wanted` acknowledgements, and then, when
/// `after_flush`, at the next returned flush (so the flushed store is the last one
/// written: a flush that synced nothing would lose it).
fn write_and_kill(
    engine: Engine,
    mount: &Path,
    round: u64,
    wanted: u64,
    after_flush: bool,
) -> Acked {
    let mut acked = Acked::default();
    let mut child = child_command(engine, mount, "write", round)
        .spawn()
        .expect("spawn writer child");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut count = 0;
    while count < wanted && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("error ") => panic!("{}: {line}", engine.name()),
            Some(Ok(line)) => count += u64::from(acked.read(&line)),
            _ => break,
        }
    }
    while after_flush && acked.synced != acked.stored && Instant::now() < deadline {
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
    acked
}

/// Checker child after the cut: the peers it finds (verify must be clean).
fn check(engine: Engine, mount: &Path, round: u64) -> Result<BTreeSet<String>, String> {
    let output = child_command(engine, mount, "check", round)
        .output()
        .expect("run the check child");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut found = BTreeSet::new();
    let mut clean = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["peer", id] => {
                found.insert(id.to_string());
            }
            ["verify", ok] => clean = Some(*ok == "true"),
            ["error", ..] => return Err(format!("reopen failed: {line}")),
            _ => {}
        }
    }
    if clean != Some(true) {
        return Err(format!("verify not clean ({clean:?}); output:\n{text}"));
    }
    Ok(found)
}

/// This round's peers in `found` as `1..=j`: `Ok(j)`, or `Err` when they are not a
/// prefix.
fn prefix_of(found: &BTreeSet<String>, round: u64) -> Result<u64, String> {
    let tag = format!("r{round}-");
    let mut ks: Vec<u64> = found
        .iter()
        .filter_map(|id| id.strip_prefix(&tag)?.parse().ok())
        .collect();
    ks.sort_unstable();
    let j = ks.len() as u64;
    if ks.iter().copied().ne(1..=j) {
        return Err(format!("round {round}'s peers are not a prefix: {ks:?}"));
    }
    Ok(j)
}

fn prove(engine: Engine) {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let rounds = std::env::var("PEERBOOK_POWER_CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let fs = PowerFailFs::new();
    let dir = tempfile::tempdir().expect("mount point");
    let Some(mut mounted) = fs.mount_in_test(dir.path()) else {
        return;
    };
    let mut rng = Rng::new(0xB0FF_E7ED ^ engine.name().len() as u64);
    let mut before = BTreeSet::new();
    let (mut pending, mut dropped, mut lost, mut acks) = (0, 0, 0, 0);
    for round in 1..=rounds {
        let wanted = 10 + rng.below(60);
        let acked = write_and_kill(engine, dir.path(), round, wanted, rng.below(2) == 0);
        let report = fs.cut_power(rng.next_u64());
        pending += report.pieces_pending;
        dropped += report.pieces_pending - report.pieces_kept;
        mounted.unmount().expect("unmount");
        mounted = fs.mount(dir.path()).expect("mount again");
        let fail = |e: String| -> ! {
            panic!(
                "{} Buffered power-loss proof failed at round {round} (acknowledged {}, \
                 flushed up to {}; cut {report:?}): {e}",
                engine.name(),
                acked.stored,
                acked.synced
            )
        };
        let found = check(engine, dir.path(), round).unwrap_or_else(|e| fail(e));
        let j = prefix_of(&found, round).unwrap_or_else(|e| fail(e));
        let earlier: BTreeSet<String> = found
            .iter()
            .filter(|id| !id.starts_with(&format!("r{round}-")))
            .cloned()
            .collect();
        if earlier != before {
            fail(format!(
                "earlier rounds' peers changed: {} before, {} now",
                before.len(),
                earlier.len()
            ));
        }
        if j < acked.synced {
            fail(format!(
                "stores up to {} were flushed, only {j} kept",
                acked.synced
            ));
        }
        if j > acked.stored + 1 {
            fail(format!(
                "{j} stores found, more than acknowledged + 1 in flight"
            ));
        }
        if j + 1 < acked.stored {
            fail(format!(
                "{j} stores kept: the cut undid more than the last acknowledged commit"
            ));
        }
        let sigkill_only = report.pieces_kept == report.pieces_pending
            && report.names_kept == report.names_pending;
        if sigkill_only && j < acked.stored {
            fail(format!("a crash that dropped no write lost stores {j}.."));
        }
        lost += acked.stored.saturating_sub(j);
        acks += acked.stored;
        before = found;
    }
    println!(
        "{}: {rounds} power cuts under Buffered stores ({dropped} of {pending} unsynced \
         pages dropped), {acks} stores acknowledged, {lost} undone by a cut (each the \
         last of its round), verify clean",
        engine.name()
    );
    mounted.unmount().expect("unmount");
}

#[test]
fn lmdb_buffered_book_survives_power_cuts() {
    prove(Engine::Lmdb);
}
