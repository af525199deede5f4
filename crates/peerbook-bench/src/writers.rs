//! Concurrent durable writers: several threads calling `update_last_seen` on one
//! shared book. The benchmark measures its throughput (group commit: 8 threads
//! should reach several times one thread's rate); a crash harness (SIGKILL, power
//! cut) can run the same workload and check afterwards that every write the
//! `on_ack` callback saw acknowledged survived.
//!
//! [`interleaved_writers`] measures 1 writer against 8 in alternating rounds on the
//! same book, seconds apart, so a swing of the disk's sync latency hits both sides
//! of each round's ratio.
//!
//! Uses the core's public API and this crate's small [`Rng`](crate::Rng) only, so it
//! can move next to a crash harness (or into the core's test kit) with that generator.

use std::time::{Duration, Instant};

use peerbook::backend::Backend;
use peerbook::PeerBook;
use serde_json::{json, Value};

/// What one run of [`concurrent_update_last_seen`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WritersRun {
    /// Writes acknowledged (returned `Ok`).
    pub ops: u64,
    /// Wall time from the first thread's start to the last thread's end.
    pub elapsed: Duration,
}

impl WritersRun {
    /// Acknowledged writes per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// `threads` threads call `book.update_last_seen` `ops` times in all (split as evenly
/// as possible), each on peers of `ids` picked by its own deterministic sequence
/// from `seed`. The book's durability is the book's own (open it with
/// `Durability::Sync` for durable writers). After each acknowledged write,
/// `on_ack(thread, peer_id)` runs on the writing thread.
///
/// Every thread stops at its first error; the first error (by thread) is returned
/// after all threads ended.
pub fn concurrent_update_last_seen<B: Backend>(
    book: &PeerBook<B>,
    ids: &[String],
    threads: usize,
    ops: u64,
    seed: u64,
    on_ack: &(dyn Fn(usize, &str) + Sync),
) -> Result<WritersRun, peerbook::Error> {
    assert!(threads > 0 && !ids.is_empty(), "threads and peers to write");
    let started = Instant::now();
    let results: Vec<Result<u64, peerbook::Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = ops / threads as u64 + u64::from((t as u64) < ops % threads as u64);
                s.spawn(move || {
                    let mut rng = crate::Rng::new(seed ^ crate::mix(t as u64));
                    for done in 0..share {
                        let id = &ids[rng.index(ids.len())];
                        if let Err(e) = book.update_last_seen(id) {
                            return Err((done, e));
                        }
                        on_ack(t, id);
                    }
                    Ok(share)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(Ok(done)) => Ok(done),
                Ok(Err((_, e))) => Err(e),
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut acked = 0;
    for r in results {
        acked += r?;
    }
    Ok(WritersRun {
        ops: acked,
        elapsed,
    })
}

/// Thread counts of an interleaved round: one writer, then this many.
pub const INTERLEAVED_THREADS: [usize; 2] = [1, 8];

/// What [`interleaved_writers`] measured: each round ran 1 writer and 8 writers
/// (which goes first alternates by round), `ops` writes each, on the same book.
#[derive(Clone, Debug, PartialEq)]
pub struct Interleaved {
    /// Writes per side of each round.
    pub ops: u64,
    /// ops/s of the 1-writer side, one per round.
    pub one: Vec<f64>,
    /// ops/s of the 8-writer side, one per round (same order).
    pub eight: Vec<f64>,
}

/// The median of `values` (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

impl Interleaved {
    /// Rounds measured.
    pub fn rounds(&self) -> usize {
        self.one.len().min(self.eight.len())
    }

    /// 8 writers' rate over 1 writer's, per round: two rates measured seconds apart
    /// (none when the two have different counts of rounds: nothing to judge).
    pub fn ratios(&self) -> Vec<f64> {
        crate::per_round(&self.eight, &self.one).unwrap_or_default()
    }

    /// The median of the per-round ratios (not the ratio of the medians).
    pub fn ratio_median(&self) -> f64 {
        median(&self.ratios())
    }

    /// The record written to the bench data (`at`: unix seconds of the measurement).
    pub fn to_json(&self, backend: &str, peers: usize, at: u64) -> Value {
        json!({
            "backend": backend,
            "peers": peers,
            "at": at,
            "threads": INTERLEAVED_THREADS,
            "rounds": self.rounds(),
            "ops": self.ops,
            "one_per_sec": self.one,
            "eight_per_sec": self.eight,
            "ratios": self.ratios(),
            "one_median": median(&self.one),
            "eight_median": median(&self.eight),
            "ratio_median": self.ratio_median(),
        })
    }

    /// Read back what [`Interleaved::to_json`] wrote; `None` when a field is
    /// missing, a rate is not a positive finite number, the two sides' round counts
    /// differ, or there is no round.
    pub fn from_json(v: &Value) -> Option<Interleaved> {
        let one = crate::positives(&v["one_per_sec"])?;
        let eight = crate::positives(&v["eight_per_sec"])?;
        (one.len() == eight.len() && !one.is_empty()).then_some(Interleaved {
            ops: v["ops"].as_u64()?,
            one,
            eight,
        })
    }
}

/// `rounds` rounds of [`concurrent_update_last_seen`] on `book`, each 1 writer and 8
/// writers of `ops` writes each, the 8 writers first in odd rounds (a drift of the
/// disk's speed during the run then does not favour one side in every round): the
/// 8-writer speed-up measured as pairs seconds apart, where a criterion group per
/// thread count measures them a minute apart.
pub fn interleaved_writers<B: Backend>(
    book: &PeerBook<B>,
    ids: &[String],
    rounds: usize,
    ops: u64,
    seed: u64,
) -> Result<Interleaved, peerbook::Error> {
    interleaved_writers_beside(book, ids, rounds, ops, seed, &mut |_| {})
}

/// [`interleaved_writers`], with `beside(round)` run in every round, after the
/// writers in even rounds and before them in odd ones: another measurement (the
/// backend's group floor) taken in the same window as the writers, its rounds
/// alternating with theirs.
pub fn interleaved_writers_beside<B: Backend>(
    book: &PeerBook<B>,
    ids: &[String],
    rounds: usize,
    ops: u64,
    seed: u64,
    beside: &mut dyn FnMut(usize),
) -> Result<Interleaved, peerbook::Error> {
    let mut out = Interleaved {
        ops,
        one: Vec::with_capacity(rounds),
        eight: Vec::with_capacity(rounds),
    };
    for round in 0..rounds {
        if round % 2 == 1 {
            beside(round);
        }
        let [one, eight] = INTERLEAVED_THREADS;
        let seed = crate::mix(seed ^ round as u64);
        let run_one = || concurrent_update_last_seen(book, ids, one, ops, seed, &|_, _| ());
        let run_eight = || concurrent_update_last_seen(book, ids, eight, ops, !seed, &|_, _| ());
        let (one, eight) = if round % 2 == 0 {
            let one = run_one()?;
            (one, run_eight()?)
        } else {
            let eight = run_eight()?;
            (run_one()?, eight)
        };
        out.one.push(one.ops_per_sec());
        out.eight.push(eight.ops_per_sec());
        if round % 2 == 0 {
            beside(round);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbook::conformance::failing::FailOp;
    use peerbook::conformance::hooked::HookedBackend;
    use peerbook::{Durability, MemoryBackend};
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// A Sync memory book holding the generator's first 20 peers, and their ids.
    fn sync_book_of_20() -> (PeerBook<MemoryBackend>, Vec<String>) {
        let book =
            PeerBook::open(MemoryBackend::new(), crate::options(Durability::Sync)).expect("open");
        crate::Generator::new().load(&book, 20);
        (book, (0..20).map(crate::peer_id).collect())
    }

    #[test]
    fn every_write_is_acknowledged_once_and_lands() {
        let (book, ids) = sync_book_of_20();
        let acked = AtomicU64::new(0);
        let touched = Mutex::new(HashSet::new());
        let run = concurrent_update_last_seen(&book, &ids, 4, 103, 7, &|_, id| {
            touched.lock().expect("set").insert(id.to_string());
            acked.fetch_add(1, Ordering::Relaxed);
        })
        .expect("writers");
        assert_eq!(run.ops, 103);
        assert_eq!(acked.load(Ordering::Relaxed), 103);
        let touched = touched.into_inner().expect("set");
        assert!(touched.len() > 1, "the threads wrote several peers");
        for id in &touched {
            let r = book.get_peer(id).expect("get").expect("stored");
            assert_eq!(r.last_seen, crate::NOW_MS, "{id} was written");
        }
    }

    #[test]
    fn an_unknown_peer_fails_the_run() {
        let book =
            PeerBook::open(MemoryBackend::new(), crate::options(Durability::Sync)).expect("open");
        let ids = vec![crate::peer_id(1)];
        let err = concurrent_update_last_seen(&book, &ids, 2, 4, 7, &|_, _| {
            panic!("nothing is acknowledged")
        })
        .expect_err("the peer is not stored");
        assert!(matches!(err, peerbook::Error::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn interleaved_rounds_pair_both_sides_and_take_the_median_ratio() {
        // The book's writes counted, so `beside` can tell whether a round's
        // writers ran before it.
        let writes = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&writes);
        let backend = HookedBackend::new(MemoryBackend::new(), move |op| {
            if op == FailOp::Write {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let book = PeerBook::open(backend, crate::options(Durability::Sync)).expect("open");
        crate::Generator::new().load(&book, 20);
        let ids: Vec<String> = (0..20).map(crate::peer_id).collect();
        let before = writes.load(Ordering::SeqCst);
        let mut beside = Vec::new();
        let run = interleaved_writers_beside(&book, &ids, 4, 40, 7, &mut |r| {
            beside.push((r, writes.load(Ordering::SeqCst)));
        })
        .expect("writers");
        assert_eq!((run.rounds(), run.ops), (4, 40));
        let rounds: Vec<usize> = beside.iter().map(|(r, _)| *r).collect();
        assert_eq!(rounds, [0, 1, 2, 3], "one measurement beside each round");
        // After the writers in even rounds, before them in odd ones: round 0's
        // writers before the first, none between the first two (after round 0,
        // before round 1), rounds 1 and 2 before the third, none before the
        // fourth, round 3's after it.
        let at: Vec<u64> = beside.iter().map(|(_, w)| *w).collect();
        assert!(at[0] > before, "after round 0's writers: {before} {at:?}");
        assert_eq!(at[1], at[0], "before round 1's writers: {at:?}");
        assert!(at[2] > at[1], "after round 2's writers: {at:?}");
        assert_eq!(at[3], at[2], "before round 3's writers: {at:?}");
        assert!(writes.load(Ordering::SeqCst) > at[3], "{at:?}");
        assert!(
            run.one.iter().chain(&run.eight).all(|r| *r > 0.0),
            "{run:?}"
        );
        let back = Interleaved::from_json(&run.to_json("memory", 20, 1)).expect("read back");
        assert_eq!(back, run);

        // The median of the per-round ratios, not the ratio of the medians.
        let fixed = Interleaved {
            ops: 10,
            one: vec![100.0, 1000.0, 400.0],
            eight: vec![500.0, 2000.0, 1600.0],
        };
        assert_eq!(fixed.ratios(), vec![5.0, 2.0, 4.0]);
        assert_eq!(fixed.ratio_median(), 4.0);
        assert_eq!(median(&[3.0, 1.0, 2.0, 10.0]), 2.5);
        assert!(median(&[]).is_nan());
        let v = fixed.to_json("file", 10, 1);
        assert_eq!(
            (v["one_median"].as_f64(), v["eight_median"].as_f64()),
            (Some(400.0), Some(1600.0))
        );
        let mut uneven = v.clone();
        uneven["eight_per_sec"] = json!([1.0]);
        assert_eq!(Interleaved::from_json(&uneven), None);
        assert_eq!(Interleaved::from_json(&json!({})), None);
    }
}
