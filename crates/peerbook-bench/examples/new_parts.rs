//! What a Buffered `store_peer` of a new peer on memory costs besides its floor (one
//! raw commit of the batch it writes), in wall-clock time, at the size of the paired
//! run: the floor, the store, and the parts no store can skip, each timed alone and
//! interleaved with the others, one of each in turn: `create_peer` (input checks,
//! the two AES-GCM seals, their nonces' `getrandom`), the record's encode, the
//! existence lookup of a missing id, and one `getrandom` alone (`MasterKey::generate`).
//! When those parts add up to more than half the floor, no store meets 1.5x it.
//!
//! `cargo run --release -p peerbook-bench --example new_parts -- [PEERS] [OPS]`
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use peerbook::backend::{Backend, Space};
use peerbook::{Durability, MasterKey, MemoryBackend, PeerBook};
use peerbook_bench::raw::replayed;
use peerbook_bench::{capture_writes, median, new_peer, options, recording, Generator};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let ops: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3000);
    let reference = Arc::new(recording(MemoryBackend::new()));
    reference.hook().start();
    let book = PeerBook::open(Arc::clone(&reference), options(Durability::Buffered)).expect("open");
    Generator::new().load(&book, n);
    let built = reference.hook().take();
    reference.hook().stop();
    let captured = capture_writes(&book, &reference, n, 4096.min(ops));
    drop(book.close().expect("close"));
    let memory = MemoryBackend::new();
    for b in &built {
        memory.write(b.clone(), Durability::Buffered).unwrap();
    }
    let book = PeerBook::open(memory.clone(), options(Durability::Buffered)).expect("open");
    let dir = tempfile::tempdir().unwrap();
    let raw = replayed("memory-raw", dir.path(), &built);
    let names = [
        "store",
        "floor",
        "create_peer",
        "encode",
        "lookup",
        "getrandom32",
        "new_peer_drop",
    ];
    let mut us: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let ns = |t: Instant| t.elapsed().as_secs_f64() * 1e9;
    let mut next = n + 10_000_000;
    let rec = book.create_peer(new_peer(n + 5_000_000)).unwrap();
    for i in 0..ops {
        next += 1;
        let p = new_peer(next);
        let t = Instant::now();
        let stored = book.store_peer(p).unwrap();
        us[0].push(ns(t));
        book.remove_peer(stored.peer_id.as_str()).unwrap();
        let c = &captured.new[i % captured.new.len()];
        let (w, u) = (c.write.clone(), c.undo.clone());
        let t = Instant::now();
        raw.write(w, Durability::Buffered);
        us[1].push(ns(t));
        raw.write(u, Durability::Buffered);
        next += 1;
        let p = new_peer(next);
        let t = Instant::now();
        let r = book.create_peer(p).unwrap();
        us[2].push(ns(t));
        black_box(r);
        let t = Instant::now();
        let e = rec.encode();
        us[3].push(ns(t));
        black_box(e);
        let id = format!("{}", next + 77);
        let t = Instant::now();
        let g = memory.get(Space::Peers, id.as_bytes()).unwrap();
        us[4].push(ns(t));
        black_box(g);
        let t = Instant::now();
        let k = MasterKey::generate().unwrap();
        us[5].push(ns(t));
        black_box(k);
        let p = new_peer(next + 1);
        let t = Instant::now();
        drop(black_box(p));
        us[6].push(ns(t));
    }
    for (name, v) in names.iter().zip(us) {
        println!("{name:<14} median {:>8.0} ns", median(&v));
    }
}
