//! The group floor of a backend: a synced write of the batches the store writes,
//! one batch per write and `k` joined per write, with nothing else around it.
//! [`floor_round`] (the bench's bound) takes it through the backend's own write
//! (the [`Backend::write`] the store's group commit calls, not the raw engine
//! under it); [`group_floor`] takes it through a raw engine ([`Raw`]), as the
//! `group_writers` example does.
//!
//! [`capture_update_last_seen`] records the batches the store writes for
//! `update_last_seen` of distinct peers, as the store builds them on a backend's
//! state, without applying them (the backend is only read); [`group_floor`]
//! replays them on a writer holding that state (the backend itself in
//! [`floor_round`]), single-threaded, alternating chunks of `k` batches written
//! one synced write each with chunks of `k` joined into one synced write, as a
//! group commit joins them. The joined rate bounds the rate of `k` concurrent
//! writers on this backend and machine (a group holds at most `k` batches, and
//! the store adds its own work to their write, never takes the backend's away),
//! so the joined rate over the store's own 1-writer rate bounds the store's
//! speed-up (the report's `bound`). The floor's own ratio (joined over single)
//! bounds nothing: the store's lone writer is slower than the single writes by
//! its CPU between syncs, which the `k` writers overlap.
//!
//! [`floor_round`] is one such measurement on a book's own backend (a copy of the
//! pristine book, opened once as a book by [`open_as_a_book`], then no book open
//! on it), and [`FloorRounds`] the rounds the peerbook
//! bench runs beside its interleaved writer rounds (the report's 8-writers target).

use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbook::backend::{
    Backend, BackendError, BookClaim, Direction, KeyRange, ReadView, Space, WriteBatch,
};
use peerbook::{Durability, PeerBook};
use serde_json::{json, Value};

use crate::raw::{Raw, Trait};
use crate::{median, options, Dyn, Rng};

/// A backend that reads `inner` and keeps every batch written to it instead of
/// applying it: a book opened on it computes its writes on `inner`'s state and
/// leaves `inner` as it was.
struct Unapplied<'a> {
    inner: &'a dyn Backend,
    claim: BookClaim,
    kept: Mutex<Vec<WriteBatch>>,
}

impl Unapplied<'_> {
    /// The batches kept since the last take.
    fn take(&self) -> Vec<WriteBatch> {
        std::mem::take(&mut *self.kept.lock().expect("kept batches"))
    }
}

impl Backend for Unapplied<'_> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<(), BackendError> {
        self.inner.scan(space, range, direction, visitor)
    }
    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        self.inner.view()
    }
    fn book_claim(&self) -> BookClaim {
        self.claim.clone()
    }
    fn write(&self, batch: WriteBatch, _: Durability) -> Result<(), BackendError> {
        self.kept.lock().expect("kept batches").push(batch);
        Ok(())
    }
    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn clear(&self, _: Durability) -> Result<(), BackendError> {
        Err(BackendError::engine(self.engine_name(), "a capture does not clear").not_applied())
    }
    fn disk_usage(&self) -> Result<u64, BackendError> {
        self.inner.disk_usage()
    }
    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }
    fn compact_space(&self, _: Space) -> Result<(), BackendError> {
        // A capture leaves `inner` as it was, and the store of this capture never
        // migrates: nothing to reclaim.
        Ok(())
    }
}

/// The batches of `count` `update_last_seen` calls on distinct peers of `ids`
/// (picked from `seed`), as the store builds them on `from`'s state, in order: a
/// Buffered book over `from` whose writes are kept, never applied (`from` is only
/// read, so no copy of the book is made; distinct peers write distinct records, so
/// each batch is the one the store would write after the ones before it).
/// `count` is capped at `ids.len()`.
pub fn capture_update_last_seen(
    from: &dyn Backend,
    ids: &[String],
    count: usize,
    seed: u64,
) -> Vec<WriteBatch> {
    let unapplied = Unapplied {
        inner: from,
        claim: BookClaim::new(),
        kept: Mutex::new(Vec::new()),
    };
    let book = PeerBook::open(unapplied, options(Durability::Buffered)).expect("open");
    book.backend().take();
    let mut rng = Rng::new(seed);
    let mut seen = HashSet::new();
    let mut batches = Vec::with_capacity(count);
    while batches.len() < count.min(ids.len()) {
        let id = &ids[rng.index(ids.len())];
        if !seen.insert(id.clone()) {
            continue;
        }
        book.update_last_seen(id).expect("update_last_seen");
        let mut written = book.backend().take();
        assert_eq!(written.len(), 1, "update_last_seen writes one batch");
        batches.extend(written.pop());
    }
    batches
}

/// What [`group_floor`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupFloor {
    /// Batches per second, one synced commit per batch.
    pub one_per_commit: f64,
    /// Batches per second, `k` batches joined into one synced commit.
    pub k_per_commit: f64,
    /// The `k` of [`k_per_commit`](Self::k_per_commit).
    pub k: usize,
    /// Batches replayed, both sides (whole chunks of `k`: fewer than asked for
    /// when a book had fewer peers, or their count was not a multiple of `k`).
    pub batches: usize,
}

impl GroupFloor {
    /// How many times the joined commits' rate is the single commits' rate (not
    /// a bound of `k` writers' speed-up: a store's lone writer is slower than the
    /// single commits by its CPU, which `k` writers overlap).
    pub fn ratio(&self) -> f64 {
        self.k_per_commit / self.one_per_commit
    }
}

/// Replay `batches` on `raw` (which holds the state they were captured on), in
/// pairs of chunks of `k`: one chunk one synced commit per batch, the other one
/// synced commit for the whole chunk (the batches joined in order, as a group
/// commit joins them), even pairs single side first, odd pairs joined side first
/// (`single_chunk`). Interleaved, so a busy spell of the disk hits both modes,
/// and neither side always writes right after the other. Only the
/// engine writes are timed (each chunk's batches are copied before its timer).
/// `None` when `batches` do not make two chunks of `k` (a book of fewer than `2k`
/// peers captures fewer batches) or `k` is 0.
pub fn group_floor(raw: &dyn Raw, batches: &[WriteBatch], k: usize) -> Option<GroupFloor> {
    if k == 0 || batches.len() < 2 * k {
        return None;
    }
    let (mut single, mut joined) = ((0usize, Duration::ZERO), (0usize, Duration::ZERO));
    for (c, chunk) in batches.chunks_exact(k).enumerate() {
        if single_chunk(c) {
            let owned = chunk.to_vec();
            let started = Instant::now();
            for batch in owned {
                raw.write(batch, Durability::Sync);
            }
            single.1 += started.elapsed();
            single.0 += chunk.len();
        } else {
            let mut group = WriteBatch::new();
            for batch in chunk {
                group.extend(batch.clone());
            }
            let started = Instant::now();
            raw.write(group, Durability::Sync);
            joined.1 += started.elapsed();
            joined.0 += chunk.len();
        }
    }
    Some(GroupFloor {
        one_per_commit: single.0 as f64 / single.1.as_secs_f64(),
        k_per_commit: joined.0 as f64 / joined.1.as_secs_f64(),
        k,
        batches: single.0 + joined.0,
    })
}

/// Whether chunk `c` of [`group_floor`] is on the single side: the first of each
/// even pair (0, 1), the second of each odd pair (2, 3).
fn single_chunk(c: usize) -> bool {
    (c + c / 2).is_multiple_of(2)
}

/// One round of the group floor on `backend`, a book's own backend with no book
/// open on it: `2 * pairs * k` batches of `update_last_seen` on distinct peers of
/// `ids` captured on its current state ([`capture_update_last_seen`], untimed),
/// then replayed by [`group_floor`] through `backend`'s own [`Backend::write`]
/// (the call the store's group commit makes with each joined group), so the
/// backend ends holding them, as a book that wrote them would. `None` when `ids`
/// has fewer than `2k` peers or `k` or `pairs` is 0.
pub fn floor_round(
    backend: &Dyn,
    ids: &[String],
    pairs: usize,
    k: usize,
    seed: u64,
) -> Option<GroupFloor> {
    let batches = capture_update_last_seen(&**backend, ids, 2 * pairs * k, seed);
    group_floor(&Trait::new(Arc::clone(backend), None), &batches, k)
}

/// Chunk pairs per round of the group floor beside a writers round of `writes`
/// (both sides): enough pairs of `2k` batches to replay at least as many, so the
/// floor's copy of the book takes as many writes per round as the writers' copy
/// and the two drift alike (4,000 a round at the default size: about 2.6 s at
/// LMDB's 1.1 ms synced commit at 1M, as long as a writers round).
pub fn pairs_beside(writes: usize, k: usize) -> usize {
    writes.div_ceil(2 * k.max(1))
}

/// Open `backend` once as a Sync book and close it, before its [`floor_round`]s:
/// a cached pristine book of an older schema is migrated, as the writers' copy is
/// when they open it (a capture's book keeps its migration writes, never applying
/// them, so without this the floor would measure the unmigrated layout).
pub fn open_as_a_book(backend: &Dyn) {
    let book = PeerBook::open(Arc::clone(backend), options(Durability::Sync))
        .expect("open the floor's copy as a book");
    drop(book.close().expect("close the floor's copy"));
}

/// The rounds of [`floor_round`] the peerbook bench runs beside its interleaved
/// writer rounds: per round, the rate of one synced commit per batch and of `k`
/// batches per synced commit.
#[derive(Clone, Debug, PartialEq)]
pub struct FloorRounds {
    /// Batches joined per synced commit on the joined side.
    pub k: usize,
    /// Batches replayed per round (about half of them each way): the fewest of
    /// any round, as [`GroupFloor::batches`] counted them, not as asked for.
    pub batches: usize,
    /// Batches per second, one synced commit each, one per round.
    pub one: Vec<f64>,
    /// Batches per second, `k` per synced commit, one per round (same order).
    pub joined: Vec<f64>,
}

impl FloorRounds {
    /// No round yet.
    pub fn new(k: usize) -> Self {
        FloorRounds {
            k,
            batches: 0,
            one: Vec::new(),
            joined: Vec::new(),
        }
    }

    /// Add one round's measurement.
    pub fn push(&mut self, round: GroupFloor) {
        self.batches = match self.rounds() {
            0 => round.batches,
            _ => self.batches.min(round.batches),
        };
        self.one.push(round.one_per_commit);
        self.joined.push(round.k_per_commit);
    }

    /// Rounds measured.
    pub fn rounds(&self) -> usize {
        self.one.len().min(self.joined.len())
    }

    /// Joined over single rate, per round (none when the two have different
    /// counts of rounds).
    pub fn ratios(&self) -> Vec<f64> {
        crate::per_round(&self.joined, &self.one).unwrap_or_default()
    }

    /// The median of the per-round ratios.
    pub fn ratio_median(&self) -> f64 {
        median(&self.ratios())
    }

    /// The record written next to the interleaved writers' (their file's
    /// `group_floor` field).
    pub fn to_json(&self) -> Value {
        json!({
            "k": self.k,
            "batches": self.batches,
            "rounds": self.rounds(),
            "one_per_commit": self.one,
            "joined_per_commit": self.joined,
            "ratios": self.ratios(),
            "ratio_median": self.ratio_median(),
        })
    }

    /// Read back what [`FloorRounds::to_json`] wrote; `None` when a field is
    /// missing, `k` is 0, a rate is not a positive finite number, the two sides'
    /// round counts differ, or there is no round.
    pub fn from_json(v: &Value) -> Option<FloorRounds> {
        let one = crate::positives(&v["one_per_commit"])?;
        let joined = crate::positives(&v["joined_per_commit"])?;
        let k = usize::try_from(v["k"].as_u64()?).ok().filter(|k| *k > 0)?;
        (one.len() == joined.len() && !one.is_empty()).then_some(FloorRounds {
            k,
            batches: usize::try_from(v["batches"].as_u64()?).ok()?,
            one,
            joined,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::open_raw;
    use crate::{peer_id, Generator};
    use peerbook::backend::BackendExt;
    use peerbook::MemoryBackend;

    #[test]
    fn captured_batches_replay_to_the_store_s_result() {
        let n = 40;
        let book =
            PeerBook::open(MemoryBackend::new(), options(Durability::Buffered)).expect("open");
        Generator::new().load(&book, n);
        let ids: Vec<String> = (0..n).map(peer_id).collect();
        let before = book.backend().dump().expect("dump");
        let batches = capture_update_last_seen(book.backend(), &ids, 16, 3);
        assert_eq!(batches.len(), 16);
        assert_eq!(
            book.backend().dump().expect("dump"),
            before,
            "book untouched"
        );
        let keys: HashSet<Vec<u8>> = batches
            .iter()
            .flat_map(|b| b.ops().iter())
            .filter(|op| op.space() == Space::Peers)
            .map(|op| op.key().to_vec())
            .collect();
        assert_eq!(keys.len(), 16, "one distinct record per batch");

        let raw = open_raw("memory-raw", std::path::Path::new("unused"));
        crate::raw::fill_from(&*raw, book.backend());
        assert_eq!(
            group_floor(&*raw, &batches, 9),
            None,
            "16 batches: one chunk of 9"
        );
        assert_eq!(group_floor(&*raw, &batches, 0), None);
        let floor = group_floor(&*raw, &batches, 4).expect("four chunks");
        assert_eq!(floor.k, 4);
        assert!(floor.one_per_commit > 0.0 && floor.k_per_commit > 0.0);
        // every batch was replayed: each touched record now reads as updated
        for id in ids.iter().filter(|id| keys.contains(id.as_bytes())) {
            let stored = raw.get(id.as_bytes()).expect("stored");
            let record = peerbook::PeerRecord::decode(&stored).expect("decode");
            assert_eq!(record.last_seen, crate::NOW_MS, "{id}");
        }
    }

    /// The floor replays at least as many batches a round as the writers write,
    /// fewer than one pair more.
    #[test]
    fn the_floor_replays_as_many_batches_as_the_writers_write() {
        for (writes, k, pairs) in [(4000, 8, 250), (1000, 8, 63), (32, 8, 2), (5, 8, 1)] {
            assert_eq!(pairs_beside(writes, k), pairs, "{writes} writes, k {k}");
            assert!(2 * pairs * k >= writes && 2 * (pairs - 1) * k < writes);
        }
        assert_eq!(pairs_beside(0, 8), 0);
    }

    /// A book of an older schema is migrated by [`open_as_a_book`] (as the
    /// writers' copy is when they open it), where a capture never applies it.
    #[test]
    fn the_floor_s_copy_is_opened_as_a_book_first() {
        let schema = |m: &MemoryBackend| m.get(Space::Meta, b"schema_version").expect("get");
        let current = MemoryBackend::new();
        drop(PeerBook::open(current.clone(), options(Durability::Sync)).expect("open"));
        let memory = MemoryBackend::new();
        let book = PeerBook::open(memory.clone(), options(Durability::Sync)).expect("open");
        Generator::new().load(&book, 20);
        drop(book.close().expect("close"));
        let mut older = WriteBatch::new();
        older.put(
            Space::Meta,
            b"schema_version".to_vec(),
            2u32.to_be_bytes().to_vec(),
        );
        memory
            .write(older, Durability::Sync)
            .expect("an older schema");
        let backend: Dyn = Arc::new(memory.clone());
        let ids: Vec<String> = (0..20).map(peer_id).collect();
        capture_update_last_seen(&*backend, &ids, 4, 1);
        assert_eq!(
            schema(&memory),
            Some(2u32.to_be_bytes().to_vec()),
            "a capture"
        );
        open_as_a_book(&backend);
        assert!(schema(&current).is_some());
        assert_eq!(schema(&memory), schema(&current), "migrated");
    }

    /// The two sides alternate which goes first, pair by pair: the single side
    /// first in even pairs, the joined side first in odd ones.
    #[test]
    fn the_floor_s_pairs_alternate_which_side_writes_first() {
        struct Sizes(Mutex<Vec<usize>>);
        impl Raw for Sizes {
            fn put(&self, _: &[u8], _: &[u8], _: Durability) {}
            fn delete(&self, _: &[u8], _: Durability) {}
            fn get(&self, _: &[u8]) -> Option<Vec<u8>> {
                None
            }
            fn read(&self, _: &[u8], _: &mut dyn FnMut(&[u8])) {}
            fn write(&self, batch: WriteBatch, _: Durability) {
                self.0.lock().expect("sizes").push(batch.len());
            }
            fn settle(&self) {}
        }
        let batches: Vec<WriteBatch> = (0..13u8)
            .map(|i| {
                let mut b = WriteBatch::new();
                b.put(Space::Peers, vec![i], vec![i]);
                b
            })
            .collect();
        let raw = Sizes(Mutex::new(Vec::new()));
        let floor = group_floor(&raw, &batches, 2).expect("three pairs");
        assert_eq!(floor.batches, 12, "the 13th makes no chunk");
        assert_eq!(
            *raw.0.lock().expect("sizes"),
            [1, 1, 2, 2, 1, 1, 1, 1, 2],
            "single, joined; joined, single; single, joined"
        );
    }

    /// A round on a book's own backend: captured on its state, replayed through
    /// it, and the next round captures on the state the first left (peers updated
    /// before are updated again, as the writers do).
    #[test]
    fn floor_rounds_replay_on_the_book_s_own_backend() {
        let n = 40;
        let memory = MemoryBackend::new();
        let book = PeerBook::open(memory.clone(), options(Durability::Buffered)).expect("open");
        Generator::new().load(&book, n);
        drop(book.close().expect("close"));
        let backend: Dyn = Arc::new(memory.clone());
        let ids: Vec<String> = (0..n).map(peer_id).collect();
        let mut rounds = FloorRounds::new(4);
        for round in 0..3 {
            let floor = floor_round(&backend, &ids, 2, 4, round).expect("a round");
            assert_eq!((floor.k, floor.batches), (4, 16));
            rounds.push(floor);
        }
        assert_eq!(floor_round(&backend, &ids[..7], 1, 4, 1), None, "7 peers");
        assert_eq!((rounds.rounds(), rounds.batches), (3, 16));
        // A round asked for more batches than the peers give (3 pairs of 4 = 24,
        // 14 peers: 14 captured, 3 whole chunks of 4 replayed) records what it
        // replayed, and the rounds their fewest.
        let short = floor_round(&backend, &ids[..14], 3, 4, 9).expect("a short round");
        assert_eq!(short.batches, 12, "{short:?}");
        rounds.push(short);
        assert_eq!((rounds.rounds(), rounds.batches), (4, 12));
        let updated = (0..n)
            .filter(|&i| {
                let bytes = memory
                    .get(Space::Peers, peer_id(i).as_bytes())
                    .expect("get")
                    .expect("stored");
                peerbook::PeerRecord::decode(&bytes)
                    .expect("decode")
                    .last_seen
                    == crate::NOW_MS
            })
            .count();
        assert!(updated >= 16, "every round's batches landed: {updated}");
        // The book the rounds wrote to opens and reads as a book.
        let book = PeerBook::open(memory, options(Durability::Buffered)).expect("reopen");
        assert!(book.get_peer(&ids[0]).expect("get").is_some());

        let back = FloorRounds::from_json(&rounds.to_json()).expect("read back");
        assert_eq!(back, rounds);
        let fixed = FloorRounds {
            k: 8,
            batches: 640,
            one: vec![100.0, 200.0, 400.0],
            joined: vec![300.0, 500.0, 1200.0],
        };
        assert_eq!(fixed.ratios(), vec![3.0, 2.5, 3.0]);
        assert_eq!(fixed.ratio_median(), 3.0);
        let good = fixed.to_json();
        assert_eq!(FloorRounds::from_json(&good), Some(fixed));
        for (key, bad) in [
            ("k", json!(0)),
            ("batches", json!("x")),
            ("one_per_commit", json!([0.0, 1.0, 1.0])),
            ("joined_per_commit", json!([1.0])),
            ("joined_per_commit", json!([])),
        ] {
            let mut v = good.clone();
            v[key] = bad;
            assert_eq!(FloorRounds::from_json(&v), None, "{key}");
        }
    }
}
