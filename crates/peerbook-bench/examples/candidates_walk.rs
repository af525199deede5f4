//! What `get_reconnection_candidates` (24 h, limit 5: the benchmark's query) costs
//! against its engine reading the same bytes, per backend (issue #19's 100 us
//! target at 100k).
//!
//! The store ranks candidates from index entries' score hints alone: since schema 5
//! it walks the rank index (in `by_quality`: best time-independent score first,
//! then newest first) and stops once no later entry can outrank the five it keeps,
//! then reads those five records. This example first counts what one query reads,
//! through a wrapper around the real backend (the one scan of the index: its space,
//! entries visited, the first and last keys reached; the records read), then
//! times, each in its own loop and without the wrapper:
//!
//! - `query`: the store's `get_reconnection_candidates`;
//! - `floor`: in one view, the backend's own forward scan over the same entries (from
//!   the first key the query reached to the last), plus reads of the same records:
//!   no decode, no ranking;
//! - `forward`/`reverse`: that scan alone, and the same entries read backward.
//!
//! Prints medians in ns over ROUNDS queries and `query/floor`.
//!
//! Books are built as the bench builds its pristine books (same generator, same
//! options, flushed and compacted; about 5 s each at 100k) under `$CANDIDATES_BOOKS`
//! (default `$CARGO_TARGET_DIR-books`, else `./candidates-books`), and reused by
//! later runs of the same binary (a book's marker names the binary that built it,
//! so do not point this at the bench's own output directory: its books would be
//! rebuilt, and rebuilt again by the next bench).
//!
//! `cargo run --release -p peerbook-bench --example candidates_walk -- [PEERS] [ROUNDS] [BACKEND...]`
//! (defaults 100000, 3000, every backend).
use std::hint::black_box;
use std::ops::{Bound, ControlFlow};
use std::sync::{Arc, Mutex};

use peerbook::backend::{Direction, KeyRange, ReadView, Space};
use peerbook::{Backend, Durability, PeerBook};
use peerbook_bench::counting::{backends, books, candidates_query, counting, median_ns, Reads};
use peerbook_bench::{options, pristine, Generator};

/// Which entries the query's scan visited: its space and first and last keys.
struct Visited<'a> {
    space: Space,
    first: &'a [u8],
    last: &'a [u8],
}

/// Visit the entries of `visited` (at most `count`) in `direction`, adding up their
/// lengths so no read is optimized away; returns how many were visited.
fn scan(view: &dyn ReadView, visited: &Visited<'_>, direction: Direction, count: usize) -> usize {
    let range = KeyRange {
        lower: Bound::Included(visited.first),
        upper: Bound::Included(visited.last),
    };
    let (mut seen, mut bytes) = (0, 0);
    view.scan(visited.space, range, direction, &mut |k, v| {
        seen += 1;
        bytes += k.len() + v.len();
        if seen >= count {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("scan");
    black_box(bytes);
    seen
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().map_or(100_000, |a| a.parse().expect("PEERS"));
    let rounds: usize = args.get(1).map_or(3000, |a| a.parse().expect("ROUNDS"));
    let kinds = backends(&args[args.len().min(2)..]);
    let out = books();
    let gen = Generator::new();
    let query = candidates_query();
    for kind in kinds {
        let book = pristine(&out, &gen, kind, n);
        let work = out.join(format!("work-candidates-{}-{n}", kind.name()));
        let inner = book.copy(&work);
        let reads = Arc::new(Mutex::new(Reads::default()));
        let counted = Arc::new(counting(inner.clone(), reads.clone()));
        let store = PeerBook::open(counted, options(Durability::Buffered)).expect("open");
        *reads.lock().expect("reads") = Reads {
            armed: true,
            ..Reads::default()
        };
        let found = store
            .get_reconnection_candidates(&query)
            .expect("candidates");
        drop(store);
        let Reads {
            armed: _,
            scans,
            visited,
            space,
            first,
            last,
            gets,
        } = std::mem::take(&mut *reads.lock().expect("reads"));
        let span = Visited {
            space: space.expect("the query scanned an index"),
            first: &first,
            last: &last,
        };
        assert_eq!(found.len(), 5, "a bench book has five candidates");
        assert_eq!(
            scans, 1,
            "one index scan: the floor below repeats exactly one"
        );

        // Timed without the wrapper: the book reopened on the backend itself.
        let store = PeerBook::open(inner.clone(), options(Durability::Buffered)).expect("open");
        let query_ns = median_ns(rounds, || {
            black_box(
                store
                    .get_reconnection_candidates(&query)
                    .expect("candidates"),
            );
        });
        let raw: &dyn Backend = &*inner;
        let floor_ns = median_ns(rounds, || {
            let view = raw.view().expect("view");
            assert_eq!(scan(&*view, &span, Direction::Forward, visited), visited);
            for (space, key) in &gets {
                black_box(view.get(*space, key).expect("get"));
            }
        });
        let reverse_ns = median_ns(rounds, || {
            black_box(scan(
                &*raw.view().expect("view"),
                &span,
                Direction::Reverse,
                visited,
            ));
        });
        let forward_ns = median_ns(rounds, || {
            black_box(scan(
                &*raw.view().expect("view"),
                &span,
                Direction::Forward,
                visited,
            ));
        });
        println!(
            "{:<8} n={n} visited {visited} entries of {}, {} records; median ns: query {query_ns:.0}, floor {floor_ns:.0} (query/floor {:.2}x), scan alone forward {forward_ns:.0} reverse {reverse_ns:.0} (reverse/forward {:.2}x)",
            kind.name(),
            span.space,
            gets.len(),
            query_ns / floor_ns,
            reverse_ns / forward_ns,
        );
        drop(store);
    }
}
