//! What the `candidates_walk` and `candidates_churn` examples share: a backend that
//! counts what a query reads (the real backend, with every read through a view
//! recorded while armed: its scans, the entries they visited, the first and last
//! keys reached, the records read), the benchmark's candidates query, where their
//! books live, and a median timer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbook::backend::{Space, WriteBatch};
use peerbook::conformance::failing::FailOp;
use peerbook::conformance::hooked::{Hook, HookedBackend, ReadOp};
use peerbook::CandidateQuery;

use crate::{median, Dyn, Kind};

/// The benchmark's candidates query: the best 5 seen within 24 h.
pub fn candidates_query() -> CandidateQuery {
    CandidateQuery {
        limit: 5,
        max_age: Some(Duration::from_secs(24 * 3600)),
    }
}

/// Where the examples build and reuse their books: `$CANDIDATES_BOOKS`, else
/// `$CARGO_TARGET_DIR-books`, else `./candidates-books` (not the bench's own output
/// directory: a book's marker names the binary that built it, so the bench and an
/// example would rebuild each other's books).
pub fn books() -> PathBuf {
    if let Some(dir) = std::env::var_os("CANDIDATES_BOOKS") {
        return PathBuf::from(dir);
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => PathBuf::from(format!("{}-books", t.to_string_lossy())),
        None => PathBuf::from("candidates-books"),
    }
}

/// The backends named on the command line, or every backend when none is.
pub fn backends(names: &[String]) -> Vec<Kind> {
    if names.is_empty() {
        return Kind::ALL.to_vec();
    }
    names
        .iter()
        .map(|a| a.parse().expect("a backend name"))
        .collect()
}

/// Median ns of `rounds` calls of `f`.
pub fn median_ns(rounds: usize, mut f: impl FnMut()) -> f64 {
    let mut ns = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        ns.push(t.elapsed().as_nanos() as f64);
    }
    median(&ns)
}

/// What one query read: its index scans, the entries they visited, the last
/// (oldest) key visited, and the records' keys.
#[derive(Default)]
pub struct Reads {
    /// While the counted query runs: reads through views are recorded, and a read
    /// outside a view (it would go uncounted) panics. Unarmed, views are the inner
    /// backend's own, so a query timed through the wrapper pays nothing for it.
    pub armed: bool,
    /// Scans started through views.
    pub scans: usize,
    /// Entries those scans handed to their visitors.
    pub visited: usize,
    /// The space of the last scan.
    pub space: Option<Space>,
    /// The first key the last scan visited.
    pub first: Vec<u8>,
    /// The last key the last scan visited.
    pub last: Vec<u8>,
    /// Every point read through a view: its space and key.
    pub gets: Vec<(Space, Vec<u8>)>,
}

/// The hook of [`Counting`]: while [`Reads::armed`], reads through views are
/// recorded and a read outside one panics.
pub struct Counter(pub Arc<Mutex<Reads>>);

impl Hook for Counter {
    fn before(&self, _: FailOp, _: Option<&WriteBatch>) {}

    fn watches_reads(&self) -> bool {
        self.0.lock().expect("reads").armed
    }

    fn read(&self, read: ReadOp<'_>) {
        let mut reads = self.0.lock().expect("reads");
        match read {
            ReadOp::Get {
                space,
                key,
                in_view,
            } => {
                assert!(
                    in_view,
                    "the candidates query read outside a view: uncounted"
                );
                reads.gets.push((space, key.to_vec()));
            }
            ReadOp::Scan {
                space,
                in_view,
                visited,
                first,
                last,
            } => {
                assert!(
                    in_view,
                    "the candidates query read outside a view: uncounted"
                );
                reads.scans += 1;
                reads.visited += visited;
                reads.space = Some(space);
                reads.first = first.to_vec();
                reads.last = last.to_vec();
            }
        }
    }
}

/// The real backend, with every read through a view counted while armed
/// ([`Reads::armed`]); the candidates query reads only through views, and a read
/// outside one would go uncounted, so while armed one panics. Unarmed, views are
/// the inner backend's own.
pub type Counting = HookedBackend<Dyn, Counter>;

/// `inner`, its reads counted into `reads` while armed.
pub fn counting(inner: Dyn, reads: Arc<Mutex<Reads>>) -> Counting {
    HookedBackend::with_hook(inner, Counter(reads))
}
