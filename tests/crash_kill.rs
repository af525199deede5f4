//! Process-kill crash test for every disk backend: this test binary re-runs itself
//! as a child that writes with `Durability::Sync` and reports each acknowledged
//! write on a pipe; the parent kills it with SIGKILL at a random moment, reopens,
//! and checks that every acknowledged write is there, `verify` is clean, and the
//! book accepts new writes.
//!
//! The same with `Durability::Buffered` on LMDB, whose Buffered commit leaves only
//! its meta page unsynced (`MDB_NOMETASYNC`): a process crash must lose nothing
//! acknowledged there either (the page cache outlives the process).
//!
//! CI: 20 kills per backend (`PEERBOOK_KILLS` for more; `cargo xtask long` runs 1,000).

mod common;

use std::io::Write;
use std::path::Path;

use common::kill;
use common::Engine;
use peerbook::conformance::Rng;
use peerbook::{Durability, ManualClock, NewPeer, PeerBook, Secret};

const CHILD_ENV: &str = "PEERBOOK_KILL_CHILD";
/// Set (to anything) in a child that writes `Durability::Buffered`.
const BUFFERED_ENV: &str = "PEERBOOK_KILL_BUFFERED";

fn options() -> peerbook::Options {
    kill::options(&ManualClock::new(1_700_000_000_000))
}

fn options_with(durability: Durability) -> peerbook::Options {
    let mut o = options();
    o.durability = durability;
    o
}

/// The child: write forever, printing `ack <id> <attempts>` after each write returned.
#[test]
fn kill_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    }; // not a child: nothing to do
    let (engine, dir) = spec.split_once(':').expect("engine:dir");
    let engine = Engine::named(engine);
    let durability = if std::env::var_os(BUFFERED_ENV).is_some() {
        Durability::Buffered
    } else {
        Durability::Sync
    };
    let book = PeerBook::open(engine.open(Path::new(dir)), options_with(durability))
        .expect("child opens the book");
    let start: u64 = std::env::var("PEERBOOK_KILL_START")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for i in start.. {
        let id = format!("p{i}");
        book.store_peer(NewPeer {
            peer_id: id.clone(),
            display_name: format!("peer {i}"),
            public_key: "pk".into(),
            shared_secret: Some(Secret::from(format!("secret {i}"))),
            ..NewPeer::default()
        })
        .expect("store");
        writeln!(out, "ack {id} 0").expect("pipe");
        if i % 3 == 0 {
            let r = book.increment_reconnection_attempts(&id).expect("update");
            writeln!(out, "ack {id} {}", r.reconnection_attempts).expect("pipe");
        }
        out.flush().expect("pipe");
    }
}

fn kill_round(
    engine: Engine,
    durability: Durability,
    dir: &Path,
    start: u64,
    rng: &mut Rng,
) -> u64 {
    let mut acked: Vec<(String, u32)> = Vec::new();
    let wanted = rng.below(30) + 1;
    // Kill after a random number of acknowledged writes (so mid-write, usually).
    // Acks already in the pipe were acknowledged before the kill: they count too.
    let mut envs = vec![
        (CHILD_ENV, format!("{}:{}", engine.name(), dir.display())),
        ("PEERBOOK_KILL_START", start.to_string()),
    ];
    if durability == Durability::Buffered {
        envs.push((BUFFERED_ENV, "1".into()));
    }
    kill::run_and_kill("kill_child_entry", &envs, wanted, |line, killed| {
        let Some(rest) = line.strip_prefix("ack ") else {
            return false;
        };
        if killed {
            if let Some((id, attempts)) = rest.split_once(' ') {
                acked.push((id.to_string(), attempts.parse().unwrap_or(0)));
            }
        } else {
            let (id, attempts) = rest.split_once(' ').expect("ack id attempts");
            acked.push((id.to_string(), attempts.parse().expect("number")));
        }
        true
    });
    assert!(
        !acked.is_empty(),
        "{}: the child acknowledged no write",
        engine.name()
    );

    let book = PeerBook::open(engine.open(dir), options()).expect("reopen after SIGKILL");
    for (id, attempts) in &acked {
        let record = book.get_peer(id).expect("readable").unwrap_or_else(|| {
            panic!(
                "{} ({durability:?}): acknowledged write of {id} lost",
                engine.name()
            )
        });
        assert!(
            record.reconnection_attempts >= *attempts,
            "{} ({durability:?}): acknowledged update of {id} lost",
            engine.name()
        );
        kill::assert_secret(&book, &record, &format!("secret {}", &id[1..]));
    }
    let next = acked
        .iter()
        .filter_map(|(id, _)| id[1..].parse::<u64>().ok())
        .max()
        .unwrap_or(start)
        + 1000;
    kill::check_and_close(engine, book, start);
    next
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    kill::rounds_on_every_disk_engine(
        CHILD_ENV,
        20,
        0xdead_beef,
        0,
        |engine, dir, _, start, rng| kill_round(engine, Durability::Sync, dir, start, rng),
    );
}

/// LMDB's Buffered writes (`MDB_NOMETASYNC`) survive a process crash: the commit's
/// pages and its unsynced meta page are in the page cache when `write` returns.
#[test]
fn sigkill_loses_no_acknowledged_buffered_write_on_lmdb() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let kills = std::env::var("PEERBOOK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20u64);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng::new(0xb0ff_e7ed);
    let mut start = 0;
    for _ in 0..kills {
        start = kill_round(
            Engine::Lmdb,
            Durability::Buffered,
            dir.path(),
            start,
            &mut rng,
        );
    }
}
