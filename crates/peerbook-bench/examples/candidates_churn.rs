//! `get_reconnection_candidates` on a book whose best peers keep changing: what a
//! node's reconnection loop does to the indexes the query walks (issue #19's
//! candidates target, measured on a static book by `cargo xtask bench`).
//!
//! Each *cycle* is one turn of a node's reconnection loop: the clock moves one
//! second, the node asks for its five candidates (24 h, limit 5: the benchmark's
//! query) and dials each; a dial succeeds or fails with even odds
//! (`update_last_seen` or `increment_reconnection_attempts`, `Buffered`). Either
//! moves the peer's index entries: its rank entry leaves the head of its run (a
//! failure lowers its time-independent score; a success moves it to a newer time),
//! and its `by_last_seen` entry moves on a success. Engines that delete by writing a
//! tombstone (RocksDB) keep the old entries until a compaction drops them, at the
//! head of the walk.
//!
//! After every STEP cycles one query's reads are counted (scans and index entries
//! visited, through `peerbook_bench::counting`) and the query is timed (median of
//! ROUNDS, the counting off, without writes between); at the end `by_quality` and
//! `by_last_seen` are compacted ([`Backend::compact_space`]) and the query timed
//! once more.
//!
//! Books are the bench's pristine books, built under `$CANDIDATES_BOOKS` as
//! `candidates_walk` builds them, and churned on a copy.
//!
//! `cargo run --release -p peerbook-bench --example candidates_churn -- [PEERS] [CYCLES] [STEP] [ROUNDS] [BACKEND...]`
//! (defaults 100000, 20000, 2000, 1000, every backend).
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbook::backend::Space;
use peerbook::{Backend, Durability, ManualClock, PeerBook};
use peerbook_bench::counting::{backends, books, candidates_query, counting, median_ns, Reads};
use peerbook_bench::{options, pristine, Generator, Rng, NOW_MS, SEED};

fn arg(args: &[String], i: usize, default: usize, name: &str) -> usize {
    args.get(i)
        .map_or(default, |a| a.parse().unwrap_or_else(|_| panic!("{name}")))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = arg(&args, 0, 100_000, "PEERS");
    let cycles = arg(&args, 1, 20_000, "CYCLES");
    let step = arg(&args, 2, 2_000, "STEP").max(1);
    let rounds = arg(&args, 3, 1_000, "ROUNDS");
    let kinds = backends(&args[args.len().min(4)..]);
    let out = books();
    let gen = Generator::new();
    let query = candidates_query();
    for kind in kinds {
        let book = pristine(&out, &gen, kind, n);
        let work = out.join(format!("work-churn-{}-{n}", kind.name()));
        let backend = book.copy(&work);
        let reads = Arc::new(Mutex::new(Reads::default()));
        let counted = Arc::new(counting(backend.clone(), reads.clone()));
        let clock = ManualClock::new(NOW_MS);
        let store = PeerBook::open(
            counted,
            options(Durability::Buffered).with_clock(clock.clone()),
        )
        .expect("open");
        if let Some(budget) = std::env::var("RANK_SCAN_BUDGET")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            store.set_rank_scan_budget(budget);
        }
        let mut rng = Rng::new(SEED ^ 0xC4_0C);
        // Median us of the query, and what one query read: (scans, entries visited).
        let measure = |store: &PeerBook<_>| {
            *reads.lock().expect("reads") = Reads {
                armed: true,
                ..Reads::default()
            };
            store
                .get_reconnection_candidates(&query)
                .expect("candidates");
            let walked = {
                let mut r = reads.lock().expect("reads");
                r.armed = false;
                format!("{}s/{}e", r.scans, r.visited)
            };
            let us = median_ns(rounds, || {
                black_box(
                    store
                        .get_reconnection_candidates(&query)
                        .expect("candidates"),
                );
            }) / 1e3;
            format!("{us:.1}us({walked})")
        };
        let mut line = format!("{:<8} n={n} query after cycles:", kind.name());
        line += &format!(" 0:{}", measure(&store));
        let (mut ok, mut failed) = (0u64, 0u64);
        let started = Instant::now();
        for cycle in 1..=cycles {
            clock.advance(Duration::from_secs(1));
            let found = store
                .get_reconnection_candidates(&query)
                .expect("candidates");
            for c in &found {
                if rng.index(2) == 0 {
                    store
                        .update_last_seen(c.peer.peer_id.as_str())
                        .expect("success");
                    ok += 1;
                } else {
                    store
                        .increment_reconnection_attempts(c.peer.peer_id.as_str())
                        .expect("failure");
                    failed += 1;
                }
            }
            if cycle % step == 0 {
                line += &format!(" {cycle}:{}", measure(&store));
            }
        }
        let churn_s = started.elapsed().as_secs_f64();
        let found = store
            .get_reconnection_candidates(&query)
            .expect("candidates");
        let scores: Vec<String> = found
            .iter()
            .map(|c| {
                format!(
                    "{:?}/{}a/{}s",
                    c.score,
                    c.peer.reconnection_attempts,
                    (NOW_MS + cycles as u64 * 1000).saturating_sub(c.peer.last_seen) / 1000
                )
            })
            .collect();
        println!("{:<8} final candidates: {}", kind.name(), scores.join(" "));
        let raw: &dyn Backend = &*backend;
        raw.compact_space(Space::ByQuality).expect("compact");
        raw.compact_space(Space::ByLastSeen).expect("compact");
        line += &format!(" compacted:{}", measure(&store));
        println!("{line}");
        println!(
            "{:<8} {ok} successes, {failed} failures in {churn_s:.1} s of churn",
            kind.name()
        );
        drop(store);
        peerbook_bench::remove(&work);
    }
}
