//! Process-kill crash test with concurrent writers and a moving clock, on every disk
//! backend: the child (this test binary, re-run) runs several threads that store,
//! update (`update_last_seen`, reconnection attempts, connection quality) and remove
//! peers with `Durability::Sync` while another thread advances the shared
//! `ManualClock`, so every write moves the peer's `last_seen` and quality index
//! entries. Each thread owns its own peers and reports on a pipe what it starts
//! (`begin`) and what returned (`ack`, with the resulting state). The parent
//! SIGKILLs the child at a random moment, reopens the book and checks that every
//! peer is exactly as its last acknowledged write left it (a peer with a write in
//! flight may also show that write), that `verify` is clean (the indexes agree with
//! the records) and that the book accepts writes.
//!
//! CI: 12 kills per backend (`PEERBOOK_KILLS` for more; `cargo xtask long` runs 1,000).

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::kill::{self, options};
use common::Engine;
use peerbook::conformance::Rng;
use peerbook::{ManualClock, NewPeer, PeerBook, PeerRecord, QualityUpdate, Secret};

const CHILD_ENV: &str = "PEERBOOK_KILL_CONCURRENT_CHILD";
const THREADS: u64 = 4;
const PEERS_PER_THREAD: u64 = 12;

/// What the parent can check of a peer: absent, or its fields that the operations
/// change (`last_seen`, attempts, quality).
fn describe(record: Option<&PeerRecord>) -> String {
    match record {
        None => "absent".into(),
        Some(r) => format!(
            "present {} {} {:?}",
            r.last_seen, r.reconnection_attempts, r.connection_quality
        ),
    }
}

/// The child: `THREADS` writers and a clock, until killed.
#[test]
fn concurrent_kill_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // not a child
    };
    let mut parts = spec.splitn(4, ':');
    let engine = Engine::named(parts.next().expect("engine"));
    let round: u64 = parts.next().expect("round").parse().expect("round");
    let now: u64 = parts.next().expect("clock").parse().expect("clock");
    let dir = parts.next().expect("dir");
    let clock = ManualClock::new(now);
    let book = Arc::new(
        PeerBook::open(engine.open(Path::new(dir)), options(&clock)).expect("child opens"),
    );
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = {
        let out = Arc::clone(&out);
        move |line: String| {
            let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
            writeln!(o, "\n{line}").expect("pipe");
            o.flush().expect("pipe");
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let clock = clock.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut rng = Rng::new(round);
            while !stop.load(Ordering::Relaxed) {
                clock.advance(Duration::from_millis(1 + rng.below(1_000)));
                std::thread::sleep(Duration::from_micros(200));
            }
        });
    }
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let book = Arc::clone(&book);
            let say = say.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(round * 1000 + t);
                // The peers this thread owns: ids from earlier rounds too, so updates
                // move index entries written before a crash.
                let ids: Vec<String> = (0..PEERS_PER_THREAD).map(|i| format!("t{t}-{i}")).collect();
                loop {
                    let id = &ids[rng.below(PEERS_PER_THREAD) as usize];
                    let exists = book.get_peer(id).expect("get").is_some();
                    let op = if exists { rng.below(5) } else { 0 };
                    let kind = ["store", "seen", "attempt", "quality", "remove"][op as usize];
                    say(format!("begin {id} {kind}"));
                    let after = match op {
                        0 => Some(
                            book.store_peer(NewPeer {
                                peer_id: id.clone(),
                                display_name: format!("peer {id}"),
                                public_key: "pk".into(),
                                shared_secret: Some(Secret::from(format!("secret {id}"))),
                                ..NewPeer::default()
                            })
                            .expect("store"),
                        ),
                        1 => Some(book.update_last_seen(id).expect("seen")),
                        2 => Some(book.increment_reconnection_attempts(id).expect("attempt")),
                        3 => Some(
                            book.update_connection_quality(
                                id,
                                QualityUpdate {
                                    latency_ms: Some(Some(rng.below(500) as u32)),
                                    total_connections: Some(rng.below(1000) as u32),
                                    ..QualityUpdate::default()
                                },
                            )
                            .expect("quality"),
                        ),
                        _ => {
                            assert!(book.remove_peer(id).expect("remove"));
                            None
                        }
                    };
                    say(format!("ack {id} {}", describe(after.as_ref())));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
}

/// Per peer: the state of its last acknowledged write, and the write in flight.
#[derive(Default, Debug)]
struct Expected {
    acked: Option<String>,
    in_flight: Option<String>,
}

fn kill_round(engine: Engine, dir: &Path, round: u64, clock_ms: u64, rng: &mut Rng) -> u64 {
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let wanted = 1 + rng.below(120);
    let acks = kill::run_and_kill(
        "concurrent_kill_child_entry",
        &[(
            CHILD_ENV,
            format!("{}:{round}:{clock_ms}:{}", engine.name(), dir.display()),
        )],
        wanted,
        |line, _| {
            if let Some(rest) = line.strip_prefix("begin ") {
                if let Some((id, kind)) = rest.split_once(' ') {
                    expected.entry(id.to_string()).or_default().in_flight = Some(kind.to_string());
                }
            } else if let Some(rest) = line.strip_prefix("ack ") {
                if let Some((id, state)) = rest.split_once(' ') {
                    let e = expected.entry(id.to_string()).or_default();
                    e.acked = Some(state.to_string());
                    e.in_flight = None;
                    return true;
                }
            }
            false
        },
    );
    assert!(
        acks > 0,
        "{}: the child acknowledged no write",
        engine.name()
    );

    let clock = ManualClock::new(clock_ms);
    let book = PeerBook::open(engine.open(dir), options(&clock)).expect("reopen after SIGKILL");
    let mut latest = clock_ms;
    for (id, e) in &expected {
        let record = book.get_peer(id).expect("readable");
        if let Some(r) = &record {
            latest = latest.max(r.last_seen);
            kill::assert_secret(&book, r, &format!("secret {id}"));
        }
        let actual = describe(record.as_ref());
        let Some(acked) = &e.acked else {
            continue; // only a write in flight: either outcome
        };
        let ok = actual == *acked
            || match e.in_flight.as_deref() {
                None => false,
                Some("remove") => actual == "absent",
                Some(_) => actual.starts_with("present"),
            };
        assert!(
            ok,
            "{}: peer {id} after SIGKILL is `{actual}`, its last acknowledged write left \
             `{acked}` (in flight: {:?})",
            engine.name(),
            e.in_flight
        );
    }
    kill::check_and_close(engine, book, round);
    // The next child's clock starts past everything written so far.
    latest + 1_000_000
}

#[test]
fn sigkill_with_concurrent_writers_and_a_moving_clock_loses_no_acknowledged_write() {
    kill::rounds_on_every_disk_engine(CHILD_ENV, 12, 0x5eed_0015, 1_700_000_000_000, kill_round);
}
