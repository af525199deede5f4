//! Where a Buffered `store_peer`'s CPU goes on the memory and file backends: the
//! store's new-peer and update writes next to their floors (the captured batches of
//! the same calls, replayed on the raw engine), for wall-clock medians and for
//! instruction counts under callgrind.
//!
//! `cargo run --release -p peerbook-bench --example write_cost -- [PEERS] [OPS] [WHAT] [DIR]`
//!
//! - `WHAT` = `time` (default): the four workloads interleaved, one operation of
//!   each in turn, on memory and file; prints medians and the ratios to the floors.
//! - `WHAT` = `new`, `update`, `update_cold`, `floor_new` or `floor_update`: that
//!   memory workload alone (its median printed); `file_new`, `file_update`,
//!   `file_update_cold`, `file_floor_new` or `file_floor_update`: that file workload
//!   alone (its store in `DIR`); `new_block` / `file_new_block`: new peers whose
//!   removes wait for the end of a block of 25 stores (the store's code stays in
//!   the instruction cache from one store to the next, as the floor's does). `update` reads each record just before storing it
//!   (warm); `update_cold` stores them as the paired run does
//!   (`peerbook_bench::paired`): the records of a block of 25 distinct peers read
//!   first, then stored one by one, so the store's read of the stored record finds
//!   it no warmer than the floor's write does. Each timed operation runs inside a
//!   function `measure_<what>`, for
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='write_cost::measure_*' \
//!     target/release/examples/write_cost 10000 2000 new
//! ```
//!
//! whose total instructions divided by `OPS` is the cost of one call
//! (`callgrind_annotate --inclusive=yes` splits it by component).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use peerbook::backend::{Backend, WriteBatch};
use peerbook::{Durability, MemoryBackend, PeerBook, PeerRecord};
use peerbook_bench::raw::{fill_from, Raw, Trait};
use peerbook_bench::{
    capture_writes, copy_entries, ip_change, median, new_peer, options, peer_id, recording,
    Captured, Generator, Rng, SEED,
};
use peerbook_file::{FileBackend, FileOptions};

/// One Buffered `store_peer` of a new peer.
#[inline(never)]
fn measure_new<B: Backend>(book: &PeerBook<B>, peer: peerbook::NewPeer) -> PeerRecord {
    book.store_peer(peer).expect("store")
}

/// One Buffered `store_peer` of an updated record.
#[inline(never)]
fn measure_update<B: Backend>(book: &PeerBook<B>, record: PeerRecord) -> PeerRecord {
    book.store_peer(record).expect("store")
}

/// One raw commit of a captured batch.
#[inline(never)]
fn measure_floor(raw: &dyn Raw, batch: WriteBatch) {
    raw.write(batch, Durability::Buffered)
}

/// The four workloads on one book and its raw store; `us` gets one timing each.
struct Workloads<'a, B: Backend> {
    book: &'a PeerBook<B>,
    raw: &'a dyn Raw,
    captured: &'a peerbook_bench::CapturedWrites,
    n: usize,
    next_new: usize,
    rng: Rng,
    /// `update_cold`: the records read ahead, and the peers updated so far.
    ahead: std::collections::VecDeque<PeerRecord>,
    updated: std::collections::HashSet<usize>,
    /// `new_block`: the new peers stored and not yet removed.
    pending: Vec<String>,
}

/// `update_cold`'s block: as the paired run's.
const COLD_BLOCK: usize = 25;

impl<'a, B: Backend> Workloads<'a, B> {
    /// The workloads on `book`, with `raw` for the floors; both hold the same `n`
    /// peers, and every engine's run draws the same sequence of peers.
    fn new(
        book: &'a PeerBook<B>,
        raw: &'a dyn Raw,
        captured: &'a peerbook_bench::CapturedWrites,
        n: usize,
    ) -> Self {
        Workloads {
            book,
            raw,
            captured,
            n,
            next_new: n + 10_000_000,
            rng: Rng::new(SEED ^ 0x3C05),
            ahead: Default::default(),
            updated: Default::default(),
            pending: Vec::new(),
        }
    }

    /// `ops` calls of the workload `what` (`new`, `update`, `floor_new`,
    /// `floor_update`), their times in us; `None` for another name.
    fn alone(&mut self, what: &str, ops: usize) -> Option<Vec<f64>> {
        Some(match what {
            "new" => (0..ops).map(|_| self.new_peer()).collect(),
            "new_block" => (0..ops).map(|_| self.new_in_block()).collect(),
            "update" => (0..ops).map(|_| self.update()).collect(),
            "update_cold" => (0..ops).map(|_| self.update_cold()).collect(),
            "floor_new" => (0..ops).map(|i| self.floor_new(i)).collect(),
            "floor_update" => (0..ops).map(|i| self.floor_update(i)).collect(),
            _ => return None,
        })
    }

    fn new_peer(&mut self) -> f64 {
        self.next_new += 1;
        let peer = new_peer(self.next_new);
        let t = Instant::now();
        let stored = measure_new(self.book, peer);
        let us = t.elapsed().as_secs_f64() * 1e6;
        self.book
            .remove_peer(stored.peer_id.as_str())
            .expect("remove");
        us
    }

    /// A new peer as in `new`, but the removes wait for the end of a block of
    /// [`COLD_BLOCK`] stores: consecutive stores then find the code of the write
    /// path where the last one left it, not behind a remove's and a peer's
    /// generation (what `new` and the paired run do between two stores).
    fn new_in_block(&mut self) -> f64 {
        self.next_new += 1;
        let peer = new_peer(self.next_new);
        let t = Instant::now();
        let stored = measure_new(self.book, peer);
        let us = t.elapsed().as_secs_f64() * 1e6;
        self.pending.push(stored.peer_id.to_string());
        if self.pending.len() == COLD_BLOCK {
            for id in self.pending.drain(..) {
                self.book.remove_peer(&id).expect("remove");
            }
        }
        us
    }

    fn update(&mut self) -> f64 {
        let mut r = self
            .book
            .get_peer(&peer_id(self.rng.index(self.n)))
            .expect("get")
            .expect("stored");
        ip_change(&mut r, &mut self.rng);
        let t = Instant::now();
        let stored = measure_update(self.book, r);
        let us = t.elapsed().as_secs_f64() * 1e6;
        black_box(stored);
        us
    }

    /// An update as the paired run times it: a block of distinct peers' records
    /// read (and changed) first, each peer updated once while there are peers left.
    fn update_cold(&mut self) -> f64 {
        if self.ahead.is_empty() {
            for _ in 0..COLD_BLOCK {
                let mut i = self.rng.index(self.n);
                while self.updated.len() < self.n && !self.updated.insert(i) {
                    i = self.rng.index(self.n);
                }
                let mut r = self
                    .book
                    .get_peer(&peer_id(i))
                    .expect("get")
                    .expect("stored");
                ip_change(&mut r, &mut self.rng);
                self.ahead.push_back(r);
            }
        }
        let r = self.ahead.pop_front().expect("a record read ahead");
        let t = Instant::now();
        let stored = measure_update(self.book, r);
        let us = t.elapsed().as_secs_f64() * 1e6;
        black_box(stored);
        us
    }

    fn floor(&mut self, pool: &[Captured], i: usize) -> f64 {
        let c = &pool[i % pool.len()];
        let batch = c.write.clone();
        let t = Instant::now();
        measure_floor(self.raw, batch);
        let us = t.elapsed().as_secs_f64() * 1e6;
        self.raw.write(c.undo.clone(), Durability::Buffered);
        us
    }

    fn floor_new(&mut self, i: usize) -> f64 {
        let pool = &self.captured.new;
        self.floor(pool, i)
    }

    fn floor_update(&mut self, i: usize) -> f64 {
        let pool = &self.captured.update;
        self.floor(pool, i)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let ops: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let what = args.get(3).cloned().unwrap_or_else(|| "time".into());
    let dir = PathBuf::from(
        args.get(4)
            .cloned()
            .unwrap_or_else(|| "/tmp/write_cost".into()),
    );

    eprintln!("building the reference book of {n} peers");
    let reference = Arc::new(recording(MemoryBackend::new()));
    let book = PeerBook::open(Arc::clone(&reference), options(Durability::Buffered))
        .expect("open the reference book");
    Generator::new().load(&book, n);
    let captured = capture_writes(&book, &reference, n, 4096.min(ops.max(64)));
    drop(book.close().expect("close"));

    let memory = MemoryBackend::new();
    copy_entries(reference.inner(), &memory);
    let book = PeerBook::open(memory, options(Durability::Buffered)).expect("open");
    let raw = Trait::new(MemoryBackend::new(), None);
    fill_from(&raw, reference.inner());
    let mut w = Workloads::new(&book, &raw, &captured, n);
    let alone = |us: Vec<f64>| println!("{what} median {:.3} us", median(&us));
    if let Some(us) = w.alone(&what, ops) {
        return alone(us);
    }
    match what.as_str() {
        "time" | "file_new" | "file_new_block" | "file_update" | "file_update_cold"
        | "file_floor_new" | "file_floor_update" => {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("dir");
            let file_dir = dir.join("book");
            {
                let backend = FileBackend::open(&file_dir, FileOptions::default()).expect("open");
                copy_entries(reference.inner(), &backend);
                backend.flush().expect("flush");
            }
            let file_book = PeerBook::open(
                FileBackend::open(&file_dir, FileOptions::default()).expect("open"),
                options(Durability::Buffered),
            )
            .expect("open");
            let file_raw = Trait::new(
                FileBackend::open(dir.join("raw"), FileOptions::default()).expect("open"),
                None,
            );
            fill_from(&file_raw, reference.inner());
            let mut f = Workloads::new(&file_book, &file_raw, &captured, n);
            if let Some(us) = what.strip_prefix("file_").and_then(|w| f.alone(w, ops)) {
                return alone(us);
            }
            let mut us: [Vec<f64>; 8] = Default::default();
            for i in 0..ops {
                us[0].push(w.new_peer());
                us[1].push(w.update());
                us[2].push(w.floor_new(i));
                us[3].push(w.floor_update(i));
                us[4].push(f.new_peer());
                us[5].push(f.update());
                us[6].push(f.floor_new(i));
                us[7].push(f.floor_update(i));
            }
            let means = us.clone().map(|v| v.iter().sum::<f64>() / v.len() as f64);
            println!("means: {means:.2?}");
            println!("file book: {:?}", file_book.backend().stats());
            let m = us.map(|v| median(&v));
            for (k, backend) in ["memory", "file"].into_iter().enumerate() {
                let m = &m[k * 4..k * 4 + 4];
                println!(
                    "{backend:<7} new {:>6.2} us  floor {:>6.2} us  ratio {:.2} | update {:>6.2} us  floor {:>6.2} us  ratio {:.2}",
                    m[0],
                    m[2],
                    m[0] / m[2],
                    m[1],
                    m[3],
                    m[1] / m[3]
                );
            }
        }
        other => panic!("unknown workload {other}"),
    }
}
