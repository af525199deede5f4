//! What a Buffered `store_peer` of a new peer on memory costs besides its floor (one
//! raw commit of the batch it writes), in wall-clock time, at the size of the paired
//! run (issue #19's 1.5x target for memory's new peer).
//!
//! Each round times, one after the other: the `store` itself, its `floor` (the raw
//! write of a captured new-peer batch, then its undo untimed), and the parts no store
//! can skip: `create_peer` (input checks, the two AES-GCM seals, their nonces'
//! `getrandom`), the `encode` of the records it built, and the `lookup` of a missing
//! id shaped like a real one (`peer_id(i)` for `i` beyond the book's ids, so it sorts
//! among the stored keys). Two more rows, `getrandom32` (`MasterKey::generate`) and
//! `new_peer_drop`, are already inside `create_peer` and are printed only to show
//! its make-up; they are not added.
//!
//! Timer overhead: the median of an empty timed region (printed as `timer`, ~30 ns)
//! is subtracted from every row, so each part pays its `Instant` pair no more than
//! the floor does. Each part is timed over [`K`] repetitions per sample (divided by
//! `K`); `K` is 1 because repeating the parts leaves the caches colder for the next
//! store and floor: at 32 the timed floor more than doubled (4.1-4.8 us against
//! 1.7-1.9 us), which would understate the parts against it.
//!
//! Prints one median per row in ns, then the disjoint total (`create_peer + encode +
//! lookup`) and `total/floor`: a total above `floor/2` means even a store with no
//! other cost exceeds 1.5x the floor. The lookup is not fully disjoint from the floor:
//! the floor's insert walks the tree to the same place, which a store's lookup has
//! just warmed (or could share), so the sum without it is printed too, and the
//! store's own excess over its floor (`store - floor`) to show the overlap.
//!
//! `cargo run --release -p peerbook-bench --example new_parts -- [PEERS] [ROUNDS]`
//! (defaults 100000 and 3000).
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use peerbook::backend::{Backend, Space};
use peerbook::{Durability, MasterKey, MemoryBackend, PeerBook};
use peerbook_bench::raw::replayed;
use peerbook_bench::{capture_writes, median, new_peer, options, peer_id, recording, Generator};

/// Repetitions per sample of each part (see the module doc for why 1).
const K: usize = 1;

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
        "timer",
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let ns = |t: Instant| t.elapsed().as_secs_f64() * 1e9;
    let per = |t: Instant| ns(t) / K as f64;
    let mut next = n + 10_000_000;
    let mut missing = n + 77;
    for i in 0..ops {
        next += 1;
        let p = new_peer(next);
        let t = Instant::now();
        let stored = book.store_peer(p).unwrap();
        samples[0].push(ns(t));
        book.remove_peer(stored.peer_id.as_str()).unwrap();
        let c = &captured.new[i % captured.new.len()];
        let (w, u) = (c.write.clone(), c.undo.clone());
        let t = Instant::now();
        raw.write(w, Durability::Buffered);
        samples[1].push(ns(t));
        raw.write(u, Durability::Buffered);

        let inputs: Vec<_> = (0..K)
            .map(|_| {
                next += 1;
                new_peer(next)
            })
            .collect();
        let mut records = Vec::with_capacity(K);
        let t = Instant::now();
        for p in inputs {
            records.push(book.create_peer(p).unwrap());
        }
        samples[2].push(per(t));
        let mut encoded = Vec::with_capacity(K);
        let t = Instant::now();
        for r in &records {
            encoded.push(r.encode());
        }
        samples[3].push(per(t));
        black_box((records, encoded));

        let ids: Vec<String> = (0..K)
            .map(|_| {
                missing += 1;
                peer_id(missing)
            })
            .collect();
        let mut found = Vec::with_capacity(K);
        let t = Instant::now();
        for id in &ids {
            found.push(memory.get(Space::Peers, id.as_bytes()).unwrap());
        }
        samples[4].push(per(t));
        assert!(
            found.iter().all(Option::is_none),
            "a lookup id is in the book"
        );

        let mut keys = Vec::with_capacity(K);
        let t = Instant::now();
        for _ in 0..K {
            keys.push(MasterKey::generate().unwrap());
        }
        samples[5].push(per(t));
        black_box(keys);
        let inputs: Vec<_> = (1..=K).map(|j| new_peer(next + j)).collect();
        let t = Instant::now();
        drop(black_box(inputs));
        samples[6].push(per(t));

        let t = Instant::now();
        samples[7].push(ns(black_box(t)));
    }
    let m: Vec<f64> = samples.iter().map(|v| median(v)).collect();
    let timer = m[7];
    let (store, floor) = (m[0] - timer, m[1] - timer);
    let part = |j: usize| m[j] - timer / K as f64;
    let (create, encode, lookup) = (part(2), part(3), part(4));
    println!("{n} peers, {ops} rounds, parts over {K} repetition(s); median ns per operation");
    println!(
        "{:<14} {timer:>8.0} ns  (empty timed region, subtracted from every row)",
        names[7]
    );
    println!(
        "{:<14} {store:>8.0} ns  ({:.2}x floor)",
        names[0],
        store / floor
    );
    println!("{:<14} {floor:>8.0} ns", names[1]);
    for (j, name) in names.iter().enumerate().take(5).skip(2) {
        println!("{name:<14} {:>8.0} ns", part(j));
    }
    for (j, name) in names.iter().enumerate().take(7).skip(5) {
        println!(
            "{name:<14} {:>8.0} ns  (inside create_peer, not added)",
            part(j)
        );
    }
    let verdict = |sum: f64| {
        if sum > floor / 2.0 {
            "above floor/2: no store meets 1.5x the floor"
        } else {
            "not above floor/2"
        }
    };
    let total = create + encode + lookup;
    println!(
        "total          {total:>8.0} ns  (create_peer + encode + lookup) = {:.2}x floor, {}",
        total / floor,
        verdict(total)
    );
    let unshared = create + encode;
    println!(
        "no lookup      {unshared:>8.0} ns  (create_peer + encode) = {:.2}x floor, {}",
        unshared / floor,
        verdict(unshared)
    );
    println!(
        "store - floor  {:>8.0} ns  ({} total{})",
        store - floor,
        if store - floor < total {
            "below"
        } else {
            "not below"
        },
        if store - floor < total {
            ": a part timed alone overlaps the floor"
        } else {
            ""
        }
    );
}
