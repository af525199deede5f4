//! The targets measured in one window: a Buffered `store_peer` on a book and its
//! floor (one raw commit of the batch the store wrote), and `get_peer` and its floor
//! (the engine's cheapest read + `PeerRecord::decode`), timed by alternating blocks
//! of operations in one process.
//!
//! The criterion medians of the store (the `peerbook` bench) and of its floor (the
//! `baselines` bench) are taken minutes apart; on a shared disk whose sync latency
//! swings several times over within minutes, their ratio says little for the engines
//! whose Buffered commit syncs (LMDB, RocksDB). Here both sides run on the same
//! machine state: a block of [`Plan::block`] store calls, then a block of as many
//! floor replays (the next round starts with the other side), each operation timed
//! alone, each followed untimed by the undo each bench does (`remove_peer` of a new
//! peer; the floor's captured undo batch), so the book and the raw store keep their
//! size. The medians per operation of each side, and their ratio, are the targets'.
//!
//! The get target is paired too ([`pair_get_peer`]): its criterion store and floor
//! medians, minutes apart, read RocksDB at 4.57x and then 0.45x in two runs of the
//! same binary on a busy machine (1M peers).

#[allow(unused_imports)]
use crate::*;
use std::time::{Duration, Instant};

use crate::raw::Raw;
use peerbook::Durability;
use serde_json::{json, Value};

/// The paired workloads, as the criterion groups name them.
pub const PAIRED_WORKLOADS: [&str; 2] = ["store_peer_new", "store_peer_update"];

/// The paired read workload (its floor: the baselines' `get_floor`).
pub const PAIRED_GET: &str = "get_peer";

/// How many operations, in what blocks.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Operations per block of one side.
    pub block: usize,
    /// Rounds (one block of each side) at most.
    pub rounds: usize,
    /// Rounds at least, whatever the time.
    pub min_rounds: usize,
    /// Past `min_rounds`, no new round starts once a workload ran this long.
    pub budget: Duration,
}

impl Plan {
    /// The plan of a run mode: 100 rounds of 25 (quick and smoke: fewer), at most
    /// 12 s per workload once 20 rounds ran (a Buffered LMDB or RocksDB commit syncs:
    /// about 0.3-0.5 ms here, plus the undo's).
    pub fn for_mode(mode: Mode) -> Plan {
        let (rounds, min_rounds, budget) = match mode {
            Mode::Smoke => (3, 3, Duration::ZERO),
            Mode::Quick => (40, 10, Duration::from_secs(5)),
            Mode::Default | Mode::Full => (100, 20, Duration::from_secs(12)),
        };
        Plan {
            block: 25,
            rounds,
            min_rounds,
            budget,
        }
    }

    /// The book size to pair at: the largest of the run, at most 100k (at 1M the
    /// reference book and the replayed raw stores would cost minutes and gigabytes).
    pub fn size(sizes: &[usize]) -> Option<usize> {
        sizes.iter().copied().filter(|&n| n <= 100_000).max()
    }
}

/// The times of one paired workload, in ns per operation.
#[derive(Clone, Debug, Default)]
pub struct Pair {
    /// Every timed store call.
    pub store: Vec<f64>,
    /// Every timed floor replay.
    pub floor: Vec<f64>,
    /// Per round, the median store call and the median floor replay of that round.
    pub round_medians: Vec<(f64, f64)>,
    /// Operations per block.
    pub block: usize,
}

impl Pair {
    /// Rounds run.
    pub fn rounds(&self) -> usize {
        self.round_medians.len()
    }

    /// The report's data: medians, their ratio, rounds and ops.
    pub fn to_json(&self) -> Value {
        let (s, f) = (median(&self.store), median(&self.floor));
        let ratios: Vec<f64> = self.round_medians.iter().map(|(s, f)| s / f).collect();
        let round = |v: f64| (v * 10.0).round() / 10.0;
        json!({
            "store_ns": s,
            "floor_ns": f,
            "ratio": s / f,
            "round_ratio_median": median(&ratios),
            "round_medians_ns": self
                .round_medians
                .iter()
                .map(|&(s, f)| [round(s), round(f)])
                .collect::<Vec<_>>(),
            "rounds": self.rounds(),
            "block": self.block,
            "ops_per_side": self.store.len(),
        })
    }
}

/// Run `store` and `floor` (each one timed operation, returning its time) in
/// alternating blocks as `plan` says, after one untimed block of each (warm-up).
pub fn alternate(
    plan: Plan,
    mut store: impl FnMut() -> Duration,
    mut floor: impl FnMut() -> Duration,
) -> Pair {
    let ns = |d: Duration| d.as_secs_f64() * 1e9;
    for _ in 0..plan.block {
        store();
        floor();
    }
    let mut pair = Pair {
        block: plan.block,
        ..Pair::default()
    };
    let started = Instant::now();
    for round in 0..plan.rounds {
        if round >= plan.min_rounds && started.elapsed() >= plan.budget {
            break;
        }
        let (mut s, mut f) = (Vec::with_capacity(plan.block), Vec::new());
        // ABBA: the side that goes first changes every round.
        for side in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
            for _ in 0..plan.block {
                if side == 0 {
                    s.push(ns(store()));
                } else {
                    f.push(ns(floor()));
                }
            }
        }
        pair.round_medians.push((median(&s), median(&f)));
        pair.store.extend(s);
        pair.floor.extend(f);
    }
    pair
}

/// Pair both workloads of [`PAIRED_WORKLOADS`] on `book` (Buffered, holding peers
/// `0..n` of the generator) against `raw` (built by [`crate::raw::replayed`] from the
/// same book's batches) replaying `writes`, as the criterion benches do: a new
/// peer of a fresh id per call, removed untimed; an update of a stored peer (an
/// [`ip_change`], its read untimed), each peer updated at most once (an update of a
/// peer updated before would not move its index entry, which every floor batch
/// does), the records of a block read before the block (as criterion's batched
/// set-up does: the store's own read of the record then finds it no warmer than the
/// floor's write does); the floor cycles through the captured batches, each undone
/// untimed.
pub fn pair_store_peer(
    book: &Book,
    n: usize,
    raw: &dyn Raw,
    writes: &CapturedWrites,
    plan: Plan,
) -> [(&'static str, Pair); 2] {
    let mut next_new = n + 10_000_000;
    let mut rng = Rng::new(SEED ^ 0x0B5E);
    let new = alternate(
        plan,
        || {
            next_new += 1;
            let peer = new_peer(next_new);
            let t = Instant::now();
            let stored = book.store_peer(peer).expect("store");
            let took = t.elapsed();
            book.remove_peer(stored.peer_id.as_str()).expect("remove");
            took
        },
        replay(raw, &writes.new),
    );
    let mut updated = std::collections::HashSet::new();
    let mut ahead = std::collections::VecDeque::new();
    let update = alternate(
        plan,
        || {
            if ahead.is_empty() {
                for _ in 0..plan.block {
                    // Peers not updated yet, while there are (n > all ops of a run).
                    let mut i = rng.index(n);
                    while updated.len() < n && !updated.insert(i) {
                        i = rng.index(n);
                    }
                    let mut r = book.get_peer(&peer_id(i)).expect("get").expect("stored");
                    ip_change(&mut r, &mut rng);
                    ahead.push_back(r);
                }
            }
            let r = ahead.pop_front().expect("a record read ahead");
            let t = Instant::now();
            let stored = book.store_peer(r).expect("store");
            let took = t.elapsed();
            drop(std::hint::black_box(stored));
            took
        },
        replay(raw, &writes.update),
    );
    [(PAIRED_WORKLOADS[0], new), (PAIRED_WORKLOADS[1], update)]
}

/// Pair `get_peer` on `book` (holding peers `0..n` of the generator) with the get
/// floor on `raw` (holding the same records): the engine's cheapest read
/// ([`Raw::read`]) + `PeerRecord::decode` of the bytes, as the baselines'
/// `get_floor` does. Both sides read the same sequence of random stored peers (the
/// k-th call of each reads the same id). Run it before [`pair_store_peer`], whose
/// updates change the book's records (the raw store's stay as replayed): then both
/// sides decode the same records. The stored bytes are the same too, except on
/// LMDB, whose book keeps values LZ4-compressed and whose floor reads them verbatim
/// (as `get_floor` does): the decompression counts against the store.
pub fn pair_get_peer(book: &Book, n: usize, raw: &dyn Raw, plan: Plan) -> Pair {
    let ids: Vec<String> = (0..n).map(peer_id).collect();
    let (mut on_store, mut on_floor) = (Rng::new(SEED ^ 0x6E7), Rng::new(SEED ^ 0x6E7));
    alternate(
        plan,
        || {
            let id = &ids[on_store.index(n)];
            let t = Instant::now();
            let record = book.get_peer(id).expect("get");
            let took = t.elapsed();
            std::hint::black_box(record.expect("a stored peer"));
            took
        },
        || {
            let id = &ids[on_floor.index(n)];
            let mut record = None;
            let t = Instant::now();
            raw.read(id.as_bytes(), &mut |bytes| {
                record = Some(peerbook::PeerRecord::decode(bytes).expect("decode"));
            });
            let took = t.elapsed();
            std::hint::black_box(record.expect("a stored peer"));
            took
        },
    )
}

/// The floor's operation: the next captured batch of `pool` replayed on `raw`
/// (timed), then its undo (not timed).
fn replay<'a>(raw: &'a dyn Raw, pool: &'a [Captured]) -> impl FnMut() -> Duration + 'a {
    let mut next = 0;
    move || {
        let (write, undo) = (pool[next].write.clone(), pool[next].undo.clone());
        next = (next + 1) % pool.len();
        let t = Instant::now();
        raw.write(write, Durability::Buffered);
        let took = t.elapsed();
        raw.write(undo, Durability::Buffered);
        took
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn blocks_alternate_and_every_op_is_timed_once() {
        let order = std::cell::RefCell::new(String::new());
        let plan = Plan {
            block: 2,
            rounds: 3,
            min_rounds: 3,
            budget: Duration::ZERO,
        };
        let pair = alternate(
            plan,
            || {
                order.borrow_mut().push('s');
                Duration::from_nanos(300)
            },
            || {
                order.borrow_mut().push('f');
                Duration::from_nanos(100)
            },
        );
        // warm-up (interleaved, untimed), then ss ff | ff ss | ss ff
        assert_eq!(order.into_inner(), "sfsfssffffssssff");
        assert_eq!(
            (pair.store.len(), pair.floor.len(), pair.rounds()),
            (6, 6, 3)
        );
        let j = pair.to_json();
        assert_eq!(j["ratio"], 3.0);
        assert_eq!(j["round_ratio_median"], 3.0);
    }

    /// The paired run on a small memory book: the get and both write workloads, every
    /// op of both sides timed, and the book and the raw store end as they began.
    #[test]
    fn pairing_leaves_book_and_floor_as_they_were() {
        let n = 30;
        let gen = Generator::new();
        let reference = reference(&gen, n);
        let memory = peerbook::MemoryBackend::new();
        for batch in &reference.built {
            peerbook::backend::Backend::write(&memory, batch.clone(), Durability::Buffered)
                .expect("write");
        }
        let before = peerbook::backend::BackendExt::dump(&memory).expect("dump");
        let book: Book = peerbook::PeerBook::open(
            Arc::new(memory.clone()) as Dyn,
            options(Durability::Buffered),
        )
        .expect("open");
        let dir = tempfile::tempdir().expect("dir");
        let raw = crate::raw::replayed("memory-raw", dir.path(), &reference.built);
        let plan = Plan::for_mode(Mode::Smoke);
        let opened = peerbook::backend::BackendExt::dump(&memory).expect("dump");
        let get = pair_get_peer(&book, n, &*raw, plan);
        assert_eq!(
            (get.store.len(), get.floor.len(), get.rounds()),
            (
                plan.rounds * plan.block,
                plan.rounds * plan.block,
                plan.rounds
            )
        );
        assert!(get.to_json()["ratio"].as_f64().is_some_and(f64::is_finite));
        assert!(
            peerbook::backend::BackendExt::dump(&memory).expect("dump") == opened,
            "reads change nothing"
        );
        for (w, pair) in pair_store_peer(&book, n, &*raw, &reference.writes, plan) {
            assert_eq!(pair.store.len(), plan.rounds * plan.block, "{w}");
            assert_eq!(pair.floor.len(), plan.rounds * plan.block, "{w}");
            assert!(pair.to_json()["ratio"].as_f64().is_some_and(f64::is_finite));
        }
        let after = peerbook::backend::BackendExt::dump(&memory).expect("dump");
        // Updates change stored peers (as the criterion bench does); a new peer is gone again.
        assert_eq!(
            after[peerbook::backend::Space::Peers.index()].len(),
            before[peerbook::backend::Space::Peers.index()].len()
        );
        for i in 0..n {
            assert!(raw.get(peer_id(i).as_bytes()).is_some());
        }
        // The floor replayed captured new peers from the first on, and undid each.
        for k in 0..reference.writes.new.len() {
            let id = peer_id(n + 20_000_000 + k);
            assert_eq!(raw.get(id.as_bytes()), None, "{id} undone");
        }
    }
}
