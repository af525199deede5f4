//! Concurrent durable writers: several threads calling `update_last_seen` on one
//! shared book. The benchmark measures its throughput (group commit: 8 threads
//! should reach several times one thread's rate); a crash harness (SIGKILL, power
//! cut) can run the same workload and check afterwards that every write the
//! `on_ack` callback saw acknowledged survived.
//!
//! Uses the core's public API and this crate's small [`Rng`](crate::Rng) only, so it
//! can move next to a crash harness (or into the core's test kit) with that generator.

use std::time::{Duration, Instant};

use peerbook::backend::Backend;
use peerbook::PeerBook;

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

#[cfg(test)]
mod tests {
    use super::*;
    use peerbook::{Durability, MemoryBackend};
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    #[test]
    fn every_write_is_acknowledged_once_and_lands() {
        let gen = crate::Generator::new();
        let book =
            PeerBook::open(MemoryBackend::new(), crate::options(Durability::Sync)).expect("open");
        gen.load(&book, 20);
        let ids: Vec<String> = (0..20).map(crate::peer_id).collect();
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
}
