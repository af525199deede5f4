//! What the `candidates_walk` and `candidates_churn` examples share: a backend that
//! counts what a query reads (the real backend, with every read through a view
//! recorded while armed: its scans, the entries they visited, the first and last
//! keys reached, the records read), the benchmark's candidates query, where their
//! books live, and a median timer.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peerbook::backend::{BookClaim, Direction, KeyRange, ReadView, Space, Visit, WriteBatch};
use peerbook::{Backend, BackendError, CandidateQuery, Durability};

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

/// The real backend, with every read through a view counted while armed
/// ([`Reads::armed`]); the candidates query reads only through views, and a read
/// outside one would go uncounted, so while armed one panics.
pub struct Counting {
    /// The backend read.
    pub inner: Dyn,
    /// What the reads through views have read so far.
    pub reads: Arc<Mutex<Reads>>,
}

struct CountingView<'a> {
    inner: Box<dyn ReadView + 'a>,
    reads: &'a Mutex<Reads>,
}

impl ReadView for CountingView<'_> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.reads
            .lock()
            .expect("reads")
            .gets
            .push((space, key.to_vec()));
        self.inner.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        let (mut visited, mut first, mut last) = (0, Vec::new(), Vec::new());
        let result = self.inner.scan(space, range, direction, &mut |k, v| {
            visited += 1;
            if first.is_empty() {
                first.extend_from_slice(k);
            }
            last.clear();
            last.extend_from_slice(k);
            visitor(k, v)
        });
        let mut reads = self.reads.lock().expect("reads");
        reads.scans += 1;
        reads.visited += visited;
        reads.space = Some(space);
        reads.first = first;
        reads.last = last;
        result
    }
}

impl Counting {
    fn unarmed(&self) {
        let armed = self.reads.lock().expect("reads").armed;
        assert!(
            !armed,
            "the candidates query read outside a view: uncounted"
        );
    }
}

impl Backend for Counting {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.unarmed();
        self.inner.get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.unarmed();
        self.inner.scan(space, range, direction, visitor)
    }
    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        if !self.reads.lock().expect("reads").armed {
            return self.inner.view();
        }
        Ok(Box::new(CountingView {
            inner: self.inner.view()?,
            reads: &self.reads,
        }))
    }
    fn book_claim(&self) -> BookClaim {
        self.inner.book_claim()
    }
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        self.inner.write(batch, durability)
    }
    fn flush(&self) -> Result<(), BackendError> {
        self.inner.flush()
    }
    fn clear(&self, durability: Durability) -> Result<(), BackendError> {
        self.inner.clear(durability)
    }
    fn disk_usage(&self) -> Result<u64, BackendError> {
        self.inner.disk_usage()
    }
    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }
    fn compact_space(&self, space: Space) -> Result<(), BackendError> {
        self.inner.compact_space(space)
    }
}
