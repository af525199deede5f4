//! Where an LMDB write's time goes: Buffered and Sync `store_peer` (new, update) and
//! `update_last_seen` on an LMDB book, next to the raw floor batches (the captured
//! batches of the same `store_peer` calls, replayed on heed), all in one run so
//! their ratios are comparable on a busy machine.
//!
//! `cargo run --release -p peerbook-bench --example lmdb_write_cost -- [PEERS] [OPS] [DIR]`
//!
//! With `MARK=1` every timed operation is bracketed by two writes to stderr
//! (`<op` / `>op`), so `strace -f -e trace=fdatasync,fsync,pwrite64,msync,write`
//! can attribute each sync and page write to the operation that made it:
//!
//! ```text
//! MARK=1 strace -f -e trace=fdatasync,fsync,pwrite64,msync,write -o t.trace \
//!     target/release/examples/lmdb_write_cost 100000 50 2>/dev/null
//! awk '/write\(2, "</ { match($0, /"<[^\\"]*/); cur = substr($0, RSTART + 2, RLENGTH - 2); ops[cur]++; next }
//!      /write\(2, ">/ { cur = ""; next }
//!      cur != "" && /fdatasync\(/ { fds[cur]++ }
//!      cur != "" && /pwrite64\(/ { pw[cur]++ }
//!      END { for (p in ops) printf "%-30s fdatasync %.2f pwrite64 %.2f per op\n", p, fds[p] / ops[p], pw[p] / ops[p] }' t.trace
//! ```
//!
//! Measured on 2026-12-01 (100,000 peers, a busy 2-core machine): every Buffered
//! write, of the book and of the floor alike, made 1 `fdatasync` and 11-13 page
//! `pwrite`s, every Sync write 2 `fdatasync`s; medians of one interleaved run:
//! `store_peer` new 592 us Buffered / 792 us Sync, floor 534 / 686 us.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use peerbook::{Durability, MemoryBackend, PeerBook};
use peerbook_bench::raw::{fill_from, Heed, Raw};
use peerbook_bench::{
    capture_writes, copy_entries, ip_change, lmdb_options, median, new_peer, options, peer_id,
    recording, Generator, Rng, SEED,
};
use peerbook_lmdb::LmdbBackend;

/// Timings of one phase, in microseconds.
struct Phase {
    name: String,
    us: Vec<f64>,
}

impl Phase {
    fn report(&self) -> f64 {
        let m = median(&self.us);
        let mean = self.us.iter().sum::<f64>() / self.us.len() as f64;
        println!(
            "{:<34} median {:>8.1} us  mean {:>8.1} us  ({} ops)",
            self.name,
            m,
            mean,
            self.us.len()
        );
        m
    }
}

/// Times `op` alone (bracketed by the strace markers when `mark`).
fn timed<R>(mark: bool, name: &str, us: &mut Vec<f64>, op: impl FnOnce() -> R) -> R {
    if mark {
        let _ = std::io::stderr().write_all(format!("<{name}\n").as_bytes());
    }
    let t = Instant::now();
    let r = op();
    us.push(t.elapsed().as_secs_f64() * 1e6);
    if mark {
        let _ = std::io::stderr().write_all(format!(">{name}\n").as_bytes());
    }
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let ops: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(300);
    let dir = PathBuf::from(
        args.get(3)
            .cloned()
            .unwrap_or_else(|| "/tmp/lmdb_write_cost".into()),
    );
    let mark = std::env::var_os("MARK").is_some();
    let _ = std::fs::create_dir_all(&dir);

    // The reference book (memory) and the batches its store_peer calls write.
    eprintln!("building the reference book of {n} peers");
    let reference = Arc::new(recording(MemoryBackend::new()));
    let book = PeerBook::open(Arc::clone(&reference), options(Durability::Buffered))
        .expect("open the reference book");
    Generator::new().load(&book, n);
    let captured = capture_writes(&book, &reference, n, 64);
    drop(book.close().expect("close"));

    let lmdb_dir = dir.join(format!("lmdb-{n}"));
    let raw_dir = dir.join(format!("raw-{n}"));
    let _ = std::fs::remove_dir_all(&lmdb_dir);
    let _ = std::fs::remove_dir_all(&raw_dir);
    eprintln!("filling the LMDB book and the raw store");
    {
        let backend = LmdbBackend::open(&lmdb_dir, lmdb_options()).expect("open LMDB");
        copy_entries(reference.inner(), &backend);
        peerbook::backend::Backend::flush(&backend).expect("flush");
    }
    let raw = Heed::open(&raw_dir);
    fill_from(&raw, reference.inner());

    // The workloads run interleaved, one operation of each in turn, so that they
    // all meet the same disk (the machine may be busy).
    let mut rng = Rng::new(SEED ^ 0x1D8);
    let mut next_new = n + 10_000_000;
    let names = [
        "store_peer_new",
        "store_peer_update",
        "update_last_seen",
        "floor_new",
        "floor_update",
    ];
    // Buffered and Sync alternate in chunks (the book reopened between them, untimed).
    const CHUNK: usize = 20;
    let mut all: Vec<(String, Vec<f64>)> = Vec::new();
    for chunk in 0..ops.div_ceil(CHUNK) {
        for d in [Durability::Buffered, Durability::Sync] {
            let dn = if d == Durability::Sync {
                "sync"
            } else {
                "buffered"
            };
            let backend = Arc::new(LmdbBackend::open(&lmdb_dir, lmdb_options()).expect("open"));
            let book = PeerBook::open(Arc::clone(&backend), options(d)).expect("open the book");
            let label = names.map(|w| format!("{w}.{dn}"));
            let mut us: [Vec<f64>; 5] = Default::default();
            for i in chunk * CHUNK..((chunk + 1) * CHUNK).min(ops) {
                next_new += 1;
                let peer = new_peer(next_new);
                let stored =
                    timed(mark, &label[0], &mut us[0], || book.store_peer(peer)).expect("store");
                book.remove_peer(stored.peer_id.as_str()).expect("remove");

                let mut r = book
                    .get_peer(&peer_id(rng.index(n)))
                    .expect("get")
                    .expect("stored");
                ip_change(&mut r, &mut rng);
                timed(mark, &label[1], &mut us[1], || book.store_peer(r)).expect("store");

                let id = peer_id(rng.index(n));
                timed(mark, &label[2], &mut us[2], || book.update_last_seen(&id)).expect("update");

                for (k, pool) in [(3, &captured.new), (4, &captured.update)] {
                    let c = &pool[i % pool.len()];
                    let batch = c.write.clone();
                    timed(mark, &label[k], &mut us[k], || raw.write(batch, d));
                    raw.write(c.undo.clone(), d);
                }
            }
            drop(book.close().expect("close"));
            for (name, us) in label.into_iter().zip(us) {
                match all.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, v)) => v.extend(us),
                    None => all.push((name, us)),
                }
            }
        }
    }
    let phases: Vec<Phase> = all
        .into_iter()
        .map(|(name, us)| Phase { name, us })
        .collect();
    let medians: Vec<(String, f64)> = phases
        .iter()
        .map(|p| (p.name.clone(), p.report()))
        .collect();
    let median = |name: &str| {
        medians
            .iter()
            .find(|(n, _)| n == name)
            .map_or(f64::NAN, |(_, m)| *m)
    };
    println!("ratios of medians:");
    for w in names {
        println!(
            "  {w:<20} buffered / sync = {:.2}",
            median(&format!("{w}.buffered")) / median(&format!("{w}.sync"))
        );
    }
    for dn in ["buffered", "sync"] {
        for (book, floor) in [
            ("store_peer_new", "floor_new"),
            ("store_peer_update", "floor_update"),
        ] {
            println!(
                "  {book}.{dn} / {floor}.{dn} = {:.2}",
                median(&format!("{book}.{dn}")) / median(&format!("{floor}.{dn}"))
            );
        }
    }
}
