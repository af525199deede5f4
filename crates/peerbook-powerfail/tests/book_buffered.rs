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
use std::time::Duration;

use peerbook::conformance::Rng;
use peerbook::Durability;
use support::book::{options, peer, print_check, say, Acks, Children, PowerCuts, Spec};
use support::engine::Engine;

const CHILDREN: Children = Children {
    entry: "buffered_child_entry",
    env: "PEERBOOK_POWERFAIL_BUFFERED_CHILD",
};
const DEFAULT_ROUNDS: u64 = 8;
/// The writer flushes after every this many stores (on average).
const FLUSH_EVERY: u64 = 9;
/// The book's master key (its bytes).
const KEY: u8 = 9;

/// The child: `write` stores peers until killed; `check` reopens, prints every
/// peer id, then `verify`.
#[test]
fn buffered_child_entry() {
    let Some(spec) = Spec::from_env(CHILDREN.env) else {
        return; // not a child
    };
    let mut out = std::io::stdout();
    let Some(book) = spec.open(options(KEY, Durability::Buffered), &mut out) else {
        return;
    };
    if spec.mode == "check" {
        return print_check(&book, &mut out, |p| p.peer_id.to_string());
    }
    let round = spec.round;
    let mut rng = Rng::new(round);
    for k in 1u64.. {
        book.store_peer(peer(&format!("r{round}-{k}")))
            .expect("store");
        say(&mut out, &format!("ack {k}"));
        if rng.below(FLUSH_EVERY) == 0 {
            book.flush().expect("flush");
            say(&mut out, &format!("synced {k}"));
            // A pause, so a parent that kills right after a flush (see
            // `Acked::read_on`) cuts with the flushed store the last one.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What the writer acknowledged: the last store, and the last store before a
/// returned flush; `after_flush`: the kill waits for the next returned flush (so the
/// flushed store is the last one written: a flush that synced nothing would lose it).
#[derive(Default)]
struct Acked {
    stored: u64,
    synced: u64,
    after_flush: bool,
}

impl Acks for Acked {
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

    fn read_on(&self) -> bool {
        self.after_flush && self.synced != self.stored
    }
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
    let Some(mut cuts) = PowerCuts::mount(&CHILDREN, DEFAULT_ROUNDS) else {
        return;
    };
    let rounds = cuts.rounds;
    let mut rng = Rng::new(0xB0FF_E7ED ^ engine.name().len() as u64);
    let mut before = BTreeSet::new();
    let (mut lost, mut acks) = (0, 0);
    for round in 1..=rounds {
        let wanted = 10 + rng.below(60);
        let mut acked = Acked {
            after_flush: rng.below(2) == 0,
            ..Acked::default()
        };
        CHILDREN.write_and_kill(engine, cuts.path(), round, wanted, &mut acked);
        let report = cuts.cut(rng.next_u64());
        let fail = |e: String| -> ! {
            panic!(
                "{} Buffered power-loss proof failed at round {round} (acknowledged {}, \
                 flushed up to {}; cut {report:?}): {e}",
                engine.name(),
                acked.stored,
                acked.synced
            )
        };
        let found: BTreeSet<String> = CHILDREN
            .check(engine, cuts.path(), round)
            .unwrap_or_else(|e| fail(e))
            .into_iter()
            .collect();
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
        "{}: {rounds} power cuts under Buffered stores ({} of {} unsynced pages dropped), \
         {acks} stores acknowledged, {lost} undone by a cut (each the last of its round), \
         verify clean",
        engine.name(),
        cuts.dropped,
        cuts.pending
    );
    cuts.unmount();
}

#[test]
fn lmdb_buffered_book_survives_power_cuts() {
    prove(Engine::Lmdb);
}
