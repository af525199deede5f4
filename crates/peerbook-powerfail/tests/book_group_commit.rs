//! The power-loss proof of the group commit: concurrent `Durability::Sync` writers
//! on one `PeerBook`, on each real engine, through the power-loss file system.
//!
//! Each round: a child process (this test binary, re-run) opens the book on the
//! FUSE mount and runs four writer threads on their own peers of this round
//! (store, then connection-quality updates whose latency grows by one per write)
//! and one shared peer (reconnection attempts), printing every acknowledged write.
//! The parent SIGKILLs it after a random number of acknowledgements, cuts the power
//! (a random part of the unsynced writes survives, in any order), unmounts, mounts
//! again and reopens the book in a second child, which prints what it finds. Every
//! acknowledged write must be there (a peer's latency at least its last
//! acknowledged one, the shared attempts at least the highest acknowledged count,
//! for this round and every earlier one) and `verify` must be clean: concurrent
//! writers whose batches were synced together lose nothing acknowledged and leave
//! no half group.
//!
//! `PEERBOOK_POWER_CUTS=N` sets the rounds per engine (default 6). The mount needs
//! root and `/dev/fuse`: refused under CI (`CI=true`) the test fails, elsewhere it
//! is skipped with a loud message.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbook::conformance::Rng;
use peerbook::{Durability, MasterKey, NewPeer, Options, PeerBook, QualityUpdate};
use peerbook_powerfail::PowerFailFs;
use support::engine::Engine;

const CHILD_ENV: &str = "PEERBOOK_POWERFAIL_BOOK_CHILD";
const THREADS: u64 = 4;
const PEERS_PER_THREAD: u64 = 3;
const DEFAULT_ROUNDS: u64 = 6;

fn options() -> Options {
    let mut o = Options::new(MasterKey::from_bytes([7; 32]));
    o.durability = Durability::Sync;
    o.failed_attempts = u32::MAX;
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
        "book_child_entry",
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

/// The child: `write` runs the writers until killed; `check` reopens and prints
/// every peer's latency and attempts, then `verify`.
#[test]
fn book_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // not a child
    };
    let mut parts = spec.splitn(4, ':');
    let engine = Engine::from_name(parts.next().expect("engine"));
    let mode = parts.next().expect("mode").to_string();
    let round: u64 = parts.next().expect("round").parse().expect("round");
    let dir = parts.next().expect("dir");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = |out: &Mutex<std::io::Stdout>, line: String| {
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
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
            say(&out, format!("error {e}"));
            return;
        }
    };
    if mode == "check" {
        let peers = book
            .query_peers(&peerbook::PeerQuery::default())
            .expect("query");
        for p in peers {
            let latency = p.connection_quality.latency_ms.unwrap_or(0);
            say(
                &out,
                format!("peer {} {latency} {}", p.peer_id, p.reconnection_attempts),
            );
        }
        let report = book.verify().expect("verify");
        say(&out, format!("verify {}", report.is_clean()));
        say(&out, "end".into());
        return;
    }
    let book = Arc::new(book);
    let shared = format!("r{round}-shared");
    book.store_peer(peer(&shared)).expect("shared peer");
    say(&out, "open".into());
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (book, out, shared) = (Arc::clone(&book), Arc::clone(&out), shared.clone());
            std::thread::spawn(move || {
                for j in 0..PEERS_PER_THREAD {
                    let id = format!("r{round}-t{t}-{j}");
                    book.store_peer(peer(&id)).expect("store");
                    say(&out, format!("ack {id} 0"));
                }
                for n in 1u32.. {
                    let id = format!("r{round}-t{t}-{}", u64::from(n) % PEERS_PER_THREAD);
                    let update = QualityUpdate {
                        latency_ms: Some(Some(n)),
                        ..Default::default()
                    };
                    book.update_connection_quality(&id, update).expect("update");
                    say(&out, format!("ack {id} {n}"));
                    let r = book.increment_reconnection_attempts(&shared).expect("inc");
                    say(&out, format!("inc {shared} {}", r.reconnection_attempts));
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// What the parent knows was acknowledged: per peer, the highest latency and the
/// highest attempt count acknowledged.
#[derive(Default)]
struct Acked {
    latency: BTreeMap<String, u32>,
    attempts: BTreeMap<String, u32>,
}

impl Acked {
    fn read(&mut self, line: &str) -> bool {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["ack", id, n] => {
                let n: u32 = n.parse().expect("latency");
                let e = self.latency.entry(id.to_string()).or_default();
                *e = (*e).max(n);
                true
            }
            ["inc", id, n] => {
                let n: u32 = n.parse().expect("attempts");
                let e = self.attempts.entry(id.to_string()).or_default();
                *e = (*e).max(n);
                true
            }
            _ => false,
        }
    }
}

/// Writer child: kill it after about `wanted` acknowledgements; every line it
/// printed before the kill counts.
fn write_and_kill(engine: Engine, mount: &Path, round: u64, wanted: u64, acked: &mut Acked) {
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
    child.kill().expect("SIGKILL the writer");
    for line in lines.map_while(Result::ok) {
        acked.read(&line);
    }
    child.wait().expect("reap");
}

/// Checker child after the cut: every acknowledged write is there, verify clean.
fn check(engine: Engine, mount: &Path, round: u64, acked: &Acked) -> Result<(), String> {
    let output = child_command(engine, mount, "check", round)
        .output()
        .expect("run the check child");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut found: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    let mut clean = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["peer", id, latency, attempts] => {
                let parse = |s: &str| s.parse::<u32>().map_err(|e| format!("{line}: {e}"));
                found.insert(id.to_string(), (parse(latency)?, parse(attempts)?));
            }
            ["verify", ok] => clean = Some(*ok == "true"),
            ["error", ..] => return Err(format!("reopen failed: {line}")),
            _ => {}
        }
    }
    if clean != Some(true) {
        return Err(format!("verify not clean ({clean:?}); output:\n{text}"));
    }
    for (id, want) in &acked.latency {
        match found.get(id) {
            None => return Err(format!("acknowledged peer {id} lost")),
            Some((latency, _)) if latency < want => {
                return Err(format!("{id}: latency {latency} < acknowledged {want}"))
            }
            _ => {}
        }
    }
    for (id, want) in &acked.attempts {
        let got = found.get(id).map_or(0, |(_, a)| *a);
        if got < *want {
            return Err(format!("{id}: attempts {got} < acknowledged {want}"));
        }
    }
    Ok(())
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
    let mut rng = Rng::new(0x6709_0019 ^ engine.name().len() as u64);
    let mut acked = Acked::default();
    let (mut pending, mut dropped) = (0, 0);
    for round in 1..=rounds {
        let wanted = 20 + rng.below(100);
        write_and_kill(engine, dir.path(), round, wanted, &mut acked);
        let report = fs.cut_power(rng.next_u64());
        pending += report.pieces_pending;
        dropped += report.pieces_pending - report.pieces_kept;
        mounted.unmount().expect("unmount");
        mounted = fs.mount(dir.path()).expect("mount again");
        if let Err(e) = check(engine, dir.path(), round, &acked) {
            panic!(
                "{} group-commit power-loss proof failed at round {round}: {e}",
                engine.name()
            );
        }
    }
    let acks = acked.latency.len() + acked.attempts.len();
    println!(
        "{}: {rounds} power cuts under {THREADS} concurrent Sync writers ({dropped} of \
         {pending} unsynced pages dropped), {acks} peers with acknowledged writes, all \
         kept, verify clean",
        engine.name()
    );
    mounted.unmount().expect("unmount");
}

#[test]
fn lmdb_group_commit_survives_power_cuts() {
    prove(Engine::Lmdb);
}

#[test]
fn rocksdb_group_commit_survives_power_cuts() {
    prove(Engine::Rocks);
}

#[test]
fn file_group_commit_survives_power_cuts() {
    prove(Engine::File);
}
