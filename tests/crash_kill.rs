//! Process-kill crash test for every disk backend: this test binary re-runs itself
//! as a child that writes with `Durability::Sync` and reports each acknowledged
//! write on a pipe; the parent kills it with SIGKILL at a random moment, reopens,
//! and checks that every acknowledged write is there, `verify` is clean, and the
//! book accepts new writes.
//!
//! CI: 20 kills per backend (`PEERBOOK_KILLS` for more; `cargo xtask long` runs 1,000).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Engine, DISK_ENGINES};
use peerbook::conformance::Rng;
use peerbook::{Durability, ManualClock, NewPeer, PeerBook, Secret};

const CHILD_ENV: &str = "PEERBOOK_KILL_CHILD";

fn options() -> peerbook::Options {
    let mut o = common::options(&ManualClock::new(1_700_000_000_000));
    o.max_peers = 1_000_000;
    o.durability = Durability::Sync;
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
    let book =
        PeerBook::open(engine.open(Path::new(dir)), options()).expect("child opens the book");
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

fn kill_round(engine: Engine, dir: &Path, start: u64, rng: &mut Rng) -> u64 {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "kill_child_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}:{}", engine.name(), dir.display()))
        .env("PEERBOOK_KILL_START", start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let wanted = rng.below(30) + 1;
    let mut acked: Vec<(String, u32)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill after a random number of acknowledged writes (so mid-write, usually).
    while (acked.len() as u64) < wanted && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(rest) = line.strip_prefix("ack ") {
                    let (id, attempts) = rest.split_once(' ').expect("ack id attempts");
                    acked.push((id.to_string(), attempts.parse().expect("number")));
                }
            }
            _ => break,
        }
    }
    child.kill().expect("SIGKILL the child");
    // Acks already in the pipe were acknowledged before the kill: they count too.
    for line in lines.map_while(Result::ok) {
        if let Some(rest) = line.strip_prefix("ack ") {
            if let Some((id, attempts)) = rest.split_once(' ') {
                acked.push((id.to_string(), attempts.parse().unwrap_or(0)));
            }
        }
    }
    child.wait().expect("reap child");
    assert!(
        !acked.is_empty(),
        "{}: the child acknowledged no write",
        engine.name()
    );

    let book = PeerBook::open(engine.open(dir), options()).expect("reopen after SIGKILL");
    for (id, attempts) in &acked {
        let record = book
            .get_peer(id)
            .expect("readable")
            .unwrap_or_else(|| panic!("{}: acknowledged write of {id} lost", engine.name()));
        assert!(
            record.reconnection_attempts >= *attempts,
            "{}: acknowledged update of {id} lost",
            engine.name()
        );
        assert_eq!(
            book.open_shared_secret(&record)
                .expect("secret opens")
                .expect("present")
                .expose(),
            format!("secret {}", &id[1..]).as_bytes()
        );
    }
    let report = book.verify().expect("verify");
    assert!(
        report.is_clean(),
        "{}: verify after SIGKILL: {report:?}",
        engine.name()
    );
    book.store_peer(NewPeer {
        peer_id: format!("after{start}"),
        ..NewPeer::default()
    })
    .expect("accepts new writes after the crash");
    let next = acked
        .iter()
        .filter_map(|(id, _)| id[1..].parse::<u64>().ok())
        .max()
        .unwrap_or(start)
        + 1000;
    drop(book.close().expect("close"));
    next
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let kills: usize = std::env::var("PEERBOOK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for engine in DISK_ENGINES {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut rng = Rng::new(0xdead_beef ^ engine.name().len() as u64);
        let mut start = 0;
        for _ in 0..kills {
            start = kill_round(engine, dir.path(), start, &mut rng);
        }
    }
}
