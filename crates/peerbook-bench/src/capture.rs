//! The write floors: the batches the store writes for a `store_peer`, captured by a
//! recording [`Backend`] wrapper, to be replayed raw on every engine.
//!
//! [`capture_writes`] runs `store_peer` on a book over [`Recording`] and keeps, for
//! each call, the batch it wrote and the batch that undoes it (the `remove_peer` of a
//! new peer, the `store_peer` of the previous record after an update), so a replay
//! leaves the raw store as it found it and every timed batch meets the state the
//! store met.

#[allow(unused_imports)]
use crate::*;
use std::sync::Mutex;

use peerbook::backend::{Backend, WriteBatch};
use peerbook::conformance::failing::FailOp;
use peerbook::conformance::hooked::{Hook, HookedBackend};
use peerbook::{PeerBook, PeerRecord};

/// A backend that keeps a copy of every batch written while its [`Log`] (reached
/// through [`hook`](HookedBackend::hook)) records.
pub type Recording<B> = HookedBackend<B, Log>;

/// `inner` wrapped in a [`Recording`], not recording yet.
pub fn recording<B: Backend>(inner: B) -> Recording<B> {
    HookedBackend::with_hook(inner, Log::default())
}

/// The hook of a [`Recording`]: the batches written while recording is on.
#[derive(Debug, Default)]
pub struct Log {
    log: Mutex<Option<Vec<WriteBatch>>>,
}

impl Log {
    /// Start recording (dropping anything recorded before).
    pub fn start(&self) {
        *self.log.lock().expect("log") = Some(Vec::new());
    }

    /// The batches written since [`start`](Self::start), in order; recording goes on.
    pub fn take(&self) -> Vec<WriteBatch> {
        self.log
            .lock()
            .expect("log")
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Stop recording.
    pub fn stop(&self) {
        *self.log.lock().expect("log") = None;
    }
}

impl Hook for Log {
    fn before(&self, op: FailOp, batch: Option<&WriteBatch>) {
        let (FailOp::Write, Some(batch)) = (op, batch) else {
            return;
        };
        if let Some(log) = self.log.lock().expect("log").as_mut() {
            log.push(batch.clone());
        }
    }
}

/// A write the store made, and the write that undid it.
#[derive(Clone, Debug)]
pub struct Captured {
    /// What one `store_peer` wrote (one batch: record, index entries, counters).
    pub write: WriteBatch,
    /// What restored the book afterwards (not timed in a replay).
    pub undo: WriteBatch,
}

/// The batches of `count` `store_peer` calls of each kind on one book.
#[derive(Clone, Debug, Default)]
pub struct CapturedWrites {
    /// `store_peer` of a new peer; undone by its `remove_peer`.
    pub new: Vec<Captured>,
    /// `store_peer` of an updated record ([`ip_change`]); undone by storing the
    /// record it replaced.
    pub update: Vec<Captured>,
}

/// The update of the `store_peer_update` workloads: an IP change (the candidates
/// rotate, a new address, `last_seen` = now).
pub fn ip_change(record: &mut PeerRecord, rng: &mut Rng) {
    record.cached_candidates.rotate_left(1);
    record.last_known_ip = Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
        rng.next_u64() as u32,
    )));
    record.last_seen = NOW_MS;
}

/// The reference book of one size, built in memory through the store, and what the
/// write floors need from it: the batches that built it and the batches captured on it.
pub struct Reference {
    /// The store's writes while the book was loaded: the raw stores are built by
    /// them ([`crate::raw::replayed`]), so an engine whose layout follows its write
    /// order (LMDB) holds the layout of the store-built books the store benches write to.
    pub built: Vec<WriteBatch>,
    /// [`CAPTURED_WRITES`] `store_peer` calls of each kind on that book.
    pub writes: CapturedWrites,
}

/// Build the reference book of `n` peers of `gen` in memory (dropped after): record
/// the batches of its load, then capture [`CAPTURED_WRITES`] writes of each kind.
pub fn reference(gen: &Generator, n: usize) -> Reference {
    let backend = std::sync::Arc::new(recording(peerbook::MemoryBackend::new()));
    let book = PeerBook::open(
        std::sync::Arc::clone(&backend),
        options(peerbook::Durability::Buffered),
    )
    .expect("open the reference book");
    backend.hook().start();
    gen.load(&book, n);
    let built = backend.hook().take();
    backend.hook().stop();
    let writes = capture_writes(&book, &backend, n, CAPTURED_WRITES);
    drop(book.close().expect("close"));
    Reference { built, writes }
}

/// The only batch recorded since the last take.
fn one_batch(rec: &Recording<impl Backend>, what: &str) -> WriteBatch {
    let mut batches = rec.hook().take();
    assert_eq!(batches.len(), 1, "{what} writes one batch");
    batches.pop().expect("one batch")
}

/// Run `count` `store_peer` calls of each kind on `book` (over `rec`, holding peers
/// `0..n` of the generator) and keep their batches. The book ends as it began.
pub fn capture_writes<B: Backend>(
    book: &PeerBook<B>,
    rec: &Recording<impl Backend>,
    n: usize,
    count: usize,
) -> CapturedWrites {
    let mut rng = Rng::new(SEED ^ 0xCA97);
    let mut out = CapturedWrites::default();
    rec.hook().start();
    for k in 0..count {
        let peer = new_peer(n + 20_000_000 + k);
        let id = peer.peer_id.clone();
        book.store_peer(peer).expect("store a new peer");
        let write = one_batch(rec, "store_peer");
        assert!(
            book.remove_peer(&id).expect("remove"),
            "the new peer was stored"
        );
        let undo = one_batch(rec, "remove_peer");
        out.new.push(Captured { write, undo });

        let id = peer_id(rng.index(n));
        let before = book.get_peer(&id).expect("get").expect("stored");
        let mut after = before.clone();
        ip_change(&mut after, &mut rng);
        book.store_peer(after).expect("store an update");
        let write = one_batch(rec, "store_peer");
        book.store_peer(before).expect("restore");
        let undo = one_batch(rec, "store_peer");
        out.update.push(Captured { write, undo });
    }
    rec.hook().stop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbook::backend::{BackendExt, Space};
    use peerbook::Durability;
    use peerbook::MemoryBackend;
    use std::sync::Arc;

    /// A deep copy of `from` in a new memory backend.
    fn copy_of(from: &dyn Backend) -> MemoryBackend {
        let copy = MemoryBackend::new();
        copy_entries(from, &copy);
        copy
    }

    #[test]
    fn a_replayed_batch_does_what_the_store_did_and_its_undo_restores() {
        let n = 30;
        let rec = Arc::new(recording(MemoryBackend::new()));
        let book = PeerBook::open(Arc::clone(&rec), options(Durability::Buffered)).expect("open");
        Generator::new().load(&book, n);
        let before = rec.dump().expect("dump");
        let captured = capture_writes(&book, &rec, n, 3);
        assert_eq!(
            rec.dump().expect("dump"),
            before,
            "the book ends as it began"
        );
        assert_eq!((captured.new.len(), captured.update.len()), (3, 3));
        assert!(rec.hook().take().is_empty(), "recording stopped");

        for (k, c) in captured.new.iter().enumerate() {
            let raw = copy_of(rec.inner());
            raw.write(c.write.clone(), Durability::Buffered)
                .expect("write");
            let id = peer_id(n + 20_000_000 + k);
            let stored = raw.get(Space::Peers, id.as_bytes()).expect("get");
            let record = PeerRecord::decode(&stored.expect("the new record")).expect("decode");
            assert_eq!(record.peer_id.as_str(), id);
            let after = raw.dump().expect("dump");
            assert_eq!(after[Space::Peers.index()].len(), n + 1);
            assert_eq!(after[Space::ByLastSeen.index()].len(), n + 1, "indexed");
            assert_ne!(
                after[Space::Meta.index()],
                before[Space::Meta.index()],
                "counters"
            );
            raw.write(c.undo.clone(), Durability::Buffered)
                .expect("undo");
            assert_eq!(raw.dump().expect("dump"), before);
        }
        for c in &captured.update {
            let raw = copy_of(rec.inner());
            raw.write(c.write.clone(), Durability::Buffered)
                .expect("write");
            let changed: Vec<_> = c
                .write
                .ops()
                .iter()
                .filter(|op| op.space() == Space::Peers)
                .map(|op| op.key())
                .collect();
            assert!(!changed.is_empty(), "a record written");
            assert!(
                changed.iter().all(|k| *k == changed[0]),
                "one record written"
            );
            let stored = raw.get(Space::Peers, changed[0]).expect("get");
            let record = PeerRecord::decode(&stored.expect("stored")).expect("decode");
            assert_eq!(record.last_seen, NOW_MS, "the update landed");
            assert_ne!(raw.dump().expect("dump"), before);
            raw.write(c.undo.clone(), Durability::Buffered)
                .expect("undo");
            assert_eq!(raw.dump().expect("dump"), before);
        }
    }
}
