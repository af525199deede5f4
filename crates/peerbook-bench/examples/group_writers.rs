//! Concurrent durable writers, quickly: `update_last_seen` from 1, 2, 4 and 8
//! threads on one Sync book per disk backend, with the group sizes (acknowledged
//! writes per synced backend write). A measuring aid for the group commit, outside
//! criterion: every thread count runs in the same process, so the ratios compare
//! like with like on a busy machine.
//!
//! `cargo run --release -p peerbook-bench --example group_writers -- [PEERS] [OPS] [ENGINE...]`
//! (defaults: 10000 peers, 4000 writes per thread count, every disk engine built in;
//! `GROUP_WRITERS_ROUNDS=N` repeats the thread counts N times, interleaved, best kept;
//! `GROUP_WRITERS_THREADS=1,8` picks the thread counts, ratios against the first;
//! `GROUP_WRITERS_FLOOR=N` replays N captured batches for the raw group floor, 0
//! skips it; default 1600; `GROUP_WRITERS_SYNC_US=N` opens the file engine on a file
//! system whose every file sync also sleeps N microseconds, see below).
//!
//! # A disk of known latency
//!
//! On a shared machine the latency of `fdatasync` swings by 10x within a minute
//! (another job's writes), and it sets both the one-writer rate and the group
//! size, so A/B runs of a group-commit change disagree more than the change does.
//! With `TMPDIR=/dev/shm GROUP_WRITERS_SYNC_US=170` the file engine runs on tmpfs
//! (its own sync is nearly free) and every sync of the log waits 170 us, as a slow
//! disk's `fdatasync` does: the writers then measure the group commit's own serial
//! work and wake-ups against a sync cost that holds still. It is a measuring aid:
//! the real-disk rows stay the result (and the raw group floor, on an engine without
//! the delay, does not apply: pair it with `GROUP_WRITERS_FLOOR=0`).
//!
//! Each engine's rows end with its *raw group floor* (see
//! [`peerbook_bench::group_floor`]): the batches the store writes for
//! `update_last_seen`, replayed single-threaded on the raw engine filled with the
//! same book, one synced commit per batch against as many batches per synced commit
//! as the largest thread count: its joined rate bounds that many writers' rate on
//! this engine (its ratio is not a bound of their speed-up over one writer, whose
//! own CPU between syncs they overlap).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerbook::backend::WriteBatch;
use peerbook::conformance::failing::FailOp;
use peerbook::conformance::hooked::{Hook, HookedBackend};
use peerbook::{Durability, PeerBook};
use peerbook_bench::group_floor::{capture_update_last_seen, group_floor};
use peerbook_bench::raw::filled;
use peerbook_bench::{
    concurrent_update_last_seen, open_backend, options, peer_id, Dyn, Generator, Kind,
};
use peerbook_file::testing::{FsOp, HookedFs};
use peerbook_file::{FileBackend, FileOptions, StdFs};

/// The real file system, except that every file sync (and directory sync) also
/// sleeps `delay` first (see [the module docs](self#a-disk-of-known-latency)).
fn slow_sync(delay: Duration) -> HookedFs<StdFs> {
    HookedFs::new(StdFs, move |op, _| {
        if matches!(op, FsOp::Sync | FsOp::SyncDir) {
            std::thread::sleep(delay);
        }
        Ok(())
    })
}

/// The backend of `kind` in `dir`: the file engine on [`slow_sync`] when
/// `sync_delay` is set.
fn open(kind: Kind, dir: &Path, sync_delay: Option<Duration>) -> Dyn {
    match (kind, sync_delay) {
        (Kind::File, Some(delay)) => Arc::new(
            FileBackend::open_with_vfs(Arc::new(slow_sync(delay)), dir, FileOptions::default())
                .expect("open file on slow_sync"),
        ),
        _ => open_backend(kind, dir),
    }
}

/// The hook of the counting backend: the writes and the operations they carry.
/// Counted from each timed run's start, when every write is the Sync book's, so
/// each one is a synced write.
#[derive(Default)]
struct Counts {
    writes: AtomicU64,
    ops: AtomicU64,
}

impl Hook for Counts {
    fn before(&self, op: FailOp, batch: Option<&WriteBatch>) {
        if let (FailOp::Write, Some(batch)) = (op, batch) {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.ops
                .fetch_add(batch.ops().len() as u64, Ordering::Relaxed);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let peers: usize = args.first().map_or(10_000, |a| a.parse().expect("PEERS"));
    let ops: u64 = args.get(1).map_or(4_000, |a| a.parse().expect("OPS"));
    let rounds: usize = std::env::var("GROUP_WRITERS_ROUNDS").map_or(1, |r| r.parse().expect("N"));
    let mut kinds: Vec<Kind> = args
        .iter()
        .skip(2)
        .map(|a| a.parse().expect("ENGINE"))
        .collect();
    if kinds.is_empty() {
        kinds = Kind::available()
            .into_iter()
            .filter(|k| k.on_disk())
            .collect();
    }
    let thread_counts: Vec<usize> = std::env::var("GROUP_WRITERS_THREADS")
        .unwrap_or_else(|_| "1,2,4,8".into())
        .split(',')
        .map(|t| {
            t.parse()
                .expect("GROUP_WRITERS_THREADS: counts, comma-separated")
        })
        .collect();
    let floor_batches: usize =
        std::env::var("GROUP_WRITERS_FLOOR").map_or(1600, |n| n.parse().expect("N"));
    let sync_delay = std::env::var("GROUP_WRITERS_SYNC_US")
        .ok()
        .map(|us| Duration::from_micros(us.parse().expect("GROUP_WRITERS_SYNC_US")));
    let gen = Generator::new();
    let ids: Vec<String> = (0..peers).map(peer_id).collect();
    for kind in kinds {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = Arc::new(HookedBackend::with_hook(
            open(kind, dir.path(), sync_delay),
            Counts::default(),
        ));
        {
            let book =
                PeerBook::open(Arc::clone(&backend), options(Durability::Buffered)).expect("open");
            gen.load(&book, peers);
            book.flush().expect("flush");
        }
        let book = PeerBook::open(Arc::clone(&backend), options(Durability::Sync)).expect("open");
        // rounds interleave the thread counts, so a busy spell of the disk hits all
        let mut best: Vec<Option<(f64, u64, u64)>> = vec![None; thread_counts.len()];
        for round in 0..rounds {
            for (i, &threads) in thread_counts.iter().enumerate() {
                backend.hook().writes.store(0, Ordering::Relaxed);
                backend.hook().ops.store(0, Ordering::Relaxed);
                let seed = 0x3417 ^ (threads as u64) << 8 ^ round as u64;
                let run = concurrent_update_last_seen(&book, &ids, threads, ops, seed, &|_, _| ())
                    .expect("writers");
                let rate = run.ops_per_sec();
                if best[i].is_none_or(|b| rate > b.0) {
                    best[i] = Some((
                        rate,
                        backend.hook().writes.load(Ordering::Relaxed),
                        backend.hook().ops.load(Ordering::Relaxed),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let one = best[0].map_or(1.0, |b| b.0);
        for (&threads, best) in thread_counts.iter().zip(best) {
            let (rate, writes, batch_ops) = best.expect("one round");
            println!(
                "{:<8} t={threads}  {rate:>9.0} ops/s  {:>5.2}x  writes {writes:>6}  \
                 writers/write {:>5.2}  ops/write {:>6.1}",
                kind.name(),
                rate / one,
                ops as f64 / writes.max(1) as f64,
                batch_ops as f64 / writes.max(1) as f64,
            );
        }
        let k = thread_counts.iter().copied().max().unwrap_or(1);
        if floor_batches >= 2 * k && k > 1 {
            let batches = capture_update_last_seen(&*backend, &ids, floor_batches, 0xF100);
            let raw_name = format!("{}-raw", kind.name());
            let raw_dir = tempfile::tempdir().expect("temp dir");
            let raw = filled(&raw_name, raw_dir.path(), &*backend);
            let Some(floor) = group_floor(&*raw, &batches, k) else {
                println!(
                    "{:<8} raw group floor: {} peers make fewer than two chunks of {k}",
                    kind.name(),
                    batches.len()
                );
                continue;
            };
            println!(
                "{:<8} raw group floor ({raw_name}, {} batches): 1/commit {:>9.0} ops/s, \
                 {k}/commit {:>9.0} ops/s  {:>5.2}x",
                kind.name(),
                batches.len(),
                floor.one_per_commit,
                floor.k_per_commit,
                floor.ratio(),
            );
        }
    }
}
