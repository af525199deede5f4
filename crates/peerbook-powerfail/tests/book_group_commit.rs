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
use std::path::Path;
use std::sync::{Arc, Mutex};

use peerbook::conformance::Rng;
use peerbook::{Durability, Options, QualityUpdate};
use support::book::{peer, print_check, Acks, Children, PowerCuts, Spec};
use support::engine::Engine;

const CHILDREN: Children = Children {
    entry: "book_child_entry",
    env: "PEERBOOK_POWERFAIL_BOOK_CHILD",
};
const THREADS: u64 = 4;
const PEERS_PER_THREAD: u64 = 3;
const DEFAULT_ROUNDS: u64 = 6;

fn options() -> Options {
    let mut o = support::book::options(7, Durability::Sync);
    o.failed_attempts = u32::MAX;
    o
}

/// The child: `write` runs the writers until killed; `check` reopens and prints
/// every peer's latency and attempts, then `verify`.
#[test]
fn book_child_entry() {
    let Some(spec) = Spec::from_env(CHILDREN.env) else {
        return; // not a child
    };
    let mut stdout = std::io::stdout();
    let Some(book) = spec.open(options(), &mut stdout) else {
        return;
    };
    if spec.mode == "check" {
        return print_check(&book, &mut stdout, |p| {
            let latency = p.connection_quality.latency_ms.unwrap_or(0);
            format!("{} {latency} {}", p.peer_id, p.reconnection_attempts)
        });
    }
    // The writer threads print through one lock, a line at a time.
    let out = Arc::new(Mutex::new(stdout));
    let say = |out: &Mutex<std::io::Stdout>, line: String| {
        let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
        support::book::say(&mut *out, &line);
    };
    let round = spec.round;
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

impl Acks for Acked {
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

/// Checker child after the cut: every acknowledged write is there, verify clean.
fn check(engine: Engine, mount: &Path, round: u64, acked: &Acked) -> Result<(), String> {
    let mut found: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for line in CHILDREN.check(engine, mount, round)? {
        let f: Vec<&str> = line.split(' ').collect();
        let [id, latency, attempts] = f.as_slice() else {
            return Err(format!("peer line {line:?}"));
        };
        let parse = |s: &str| s.parse::<u32>().map_err(|e| format!("{line}: {e}"));
        found.insert(id.to_string(), (parse(latency)?, parse(attempts)?));
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
    let Some(mut cuts) = PowerCuts::mount(&CHILDREN, DEFAULT_ROUNDS) else {
        return;
    };
    let rounds = cuts.rounds;
    let mut rng = Rng::new(0x6709_0019 ^ engine.name().len() as u64);
    let mut acked = Acked::default();
    for round in 1..=rounds {
        let wanted = 20 + rng.below(100);
        CHILDREN.write_and_kill(engine, cuts.path(), round, wanted, &mut acked);
        cuts.cut(rng.next_u64());
        if let Err(e) = check(engine, cuts.path(), round, &acked) {
            panic!(
                "{} group-commit power-loss proof failed at round {round}: {e}",
                engine.name()
            );
        }
    }
    let acks = acked.latency.len() + acked.attempts.len();
    println!(
        "{}: {rounds} power cuts under {THREADS} concurrent Sync writers ({} of {} \
         unsynced pages dropped), {acks} peers with acknowledged writes, all kept, verify \
         clean",
        engine.name(),
        cuts.dropped,
        cuts.pending
    );
    cuts.unmount();
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
