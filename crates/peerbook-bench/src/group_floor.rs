//! The raw group floor: the best any group commit can reach on an engine.
//!
//! [`capture_update_last_seen`] records the batches the store writes for
//! `update_last_seen` of distinct peers (on an in-memory copy of a book, so the book
//! itself is untouched); [`group_floor`] replays them on a raw engine filled with
//! the same book (see [`filled`](crate::raw::filled)), single-threaded, alternating
//! chunks of `k` batches committed one synced commit each with chunks of `k` joined
//! into one synced commit, as a group commit joins them. The ratio of the two rates
//! bounds what `k` concurrent writers can gain over one on this engine and machine:
//! the store adds its own work on top, never takes the engine's away.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use peerbook::backend::{Backend, WriteBatch};
use peerbook::{Durability, MemoryBackend, PeerBook};

use crate::capture::recording;
use crate::raw::Raw;
use crate::{copy_entries, options, Rng};

/// The batches of `count` `update_last_seen` calls on distinct peers of `ids`
/// (picked from `seed`), as the store builds them on `from`'s state (a deep copy in
/// memory is written, never `from`). `count` is capped at `ids.len()`.
pub fn capture_update_last_seen(
    from: &dyn Backend,
    ids: &[String],
    count: usize,
    seed: u64,
) -> Vec<WriteBatch> {
    let copy = MemoryBackend::new();
    copy_entries(from, &copy);
    let rec = std::sync::Arc::new(recording(copy));
    let book =
        PeerBook::open(std::sync::Arc::clone(&rec), options(Durability::Buffered)).expect("open");
    let mut rng = Rng::new(seed);
    let mut seen = HashSet::new();
    let mut batches = Vec::with_capacity(count);
    rec.hook().start();
    while batches.len() < count.min(ids.len()) {
        let id = &ids[rng.index(ids.len())];
        if !seen.insert(id.clone()) {
            continue;
        }
        book.update_last_seen(id).expect("update_last_seen");
        let mut written = rec.hook().take();
        assert_eq!(written.len(), 1, "update_last_seen writes one batch");
        batches.extend(written.pop());
    }
    rec.hook().stop();
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
}

impl GroupFloor {
    /// How many times the joined commits' rate is the single commits' rate: the
    /// bound of `k` writers' speed-up on this engine.
    pub fn ratio(&self) -> f64 {
        self.k_per_commit / self.one_per_commit
    }
}

/// Replay `batches` on `raw` (which holds the state they were captured on), in
/// chunks of `k`: even chunks one synced commit per batch, odd chunks one synced
/// commit for the whole chunk (the batches joined in order, as a group commit
/// joins them). Interleaved, so a busy spell of the disk hits both modes. Only the
/// engine writes are timed (each chunk's batches are copied before its timer).
/// `None` when `batches` do not make two chunks of `k` (a book of fewer than `2k`
/// peers captures fewer batches) or `k` is 0.
pub fn group_floor(raw: &dyn Raw, batches: &[WriteBatch], k: usize) -> Option<GroupFloor> {
    if k == 0 || batches.len() < 2 * k {
        return None;
    }
    let (mut single, mut joined) = ((0usize, Duration::ZERO), (0usize, Duration::ZERO));
    for (c, chunk) in batches.chunks_exact(k).enumerate() {
        if c % 2 == 0 {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::open_raw;
    use crate::{peer_id, Generator};
    use peerbook::backend::{BackendExt, Space};

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
}
