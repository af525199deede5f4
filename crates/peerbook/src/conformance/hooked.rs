//! [`HookedBackend`]: a real backend with a hook run before every write, flush
//! and clear, for tests that watch where writes run, record what was written or
//! hold a writer mid-write, and, when the hook asks, told of every read (what a
//! query read, for a benchmark's counts). The hook is any closure, or a type
//! implementing [`Hook`] (as the group kit's [`Gate`](super::group::Gate)) that
//! the test reaches through [`HookedBackend::hook`].

use std::fmt;

use super::failing::FailOp;
use crate::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, ReadView, Space, Visit,
    WriteBatch,
};

/// The hook of a [`HookedBackend`] built from a closure ([`HookedBackend::new`],
/// [`HookedBackend::with_batches`]).
pub type BoxedHook = Box<dyn Fn(FailOp, Option<&WriteBatch>) + Send + Sync>;

/// What a [`HookedBackend`] runs before passing a write, flush or clear to its
/// engine, and (when [`watches_reads`](Hook::watches_reads)) after each read.
/// Every `Fn(FailOp, Option<&WriteBatch>)` closure is one, watching no read; a test
/// type implements it to keep state its test reads back through
/// [`HookedBackend::hook`].
pub trait Hook: Send + Sync {
    /// Called before each [`write`](Backend::write) (`op` is [`FailOp::Write`],
    /// `batch` the batch to write), [`flush`](Backend::flush) and
    /// [`clear`](Backend::clear) (`batch` is `None`); the call goes on when this
    /// returns.
    fn before(&self, op: FailOp, batch: Option<&WriteBatch>);

    /// Whether reads go to [`read`](Hook::read) now: asked at each read of the
    /// backend and at each [`view`](Backend::view) (a view opened while this is
    /// false is the engine's own, and costs nothing more). False unless overridden.
    fn watches_reads(&self) -> bool {
        false
    }

    /// Called after each read while [`watches_reads`](Hook::watches_reads) is (or
    /// was, when the view was opened) true, with what it read.
    fn read(&self, read: ReadOp<'_>) {
        let _ = read;
    }
}

/// A read a [`HookedBackend`] passed to its engine, as [`Hook::read`] is told of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOp<'a> {
    /// A point read of `key`.
    Get {
        /// The space read.
        space: Space,
        /// The key read.
        key: &'a [u8],
        /// True when read through a [`view`](Backend::view).
        in_view: bool,
    },
    /// A scan.
    Scan {
        /// The space scanned.
        space: Space,
        /// True when scanned through a [`view`](Backend::view).
        in_view: bool,
        /// How many entries the scan handed to its visitor.
        visited: usize,
        /// The first key handed to the visitor (empty when none was).
        first: &'a [u8],
        /// The last key handed to the visitor (empty when none was).
        last: &'a [u8],
    },
}

impl<F: Fn(FailOp, Option<&WriteBatch>) + Send + Sync> Hook for F {
    fn before(&self, op: FailOp, batch: Option<&WriteBatch>) {
        self(op, batch)
    }
}

/// A [`Backend`] wrapper that calls `hook(op)` before passing each
/// [`write`](Backend::write), [`flush`](Backend::flush) and
/// [`clear`](Backend::clear) to the engine (`op` says which); reads pass straight
/// through, reported to the hook when it [watches them](Hook::watches_reads). The
/// hook may count, record the thread, or block until a test lets the call go on.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use peerbook::conformance::hooked::HookedBackend;
/// use peerbook::{MasterKey, MemoryBackend, NewPeer, Options, PeerBook};
/// let writes = Arc::new(AtomicUsize::new(0));
/// let seen = Arc::clone(&writes);
/// let backend = HookedBackend::new(MemoryBackend::new(), move |_| {
///     seen.fetch_add(1, Ordering::Relaxed);
/// });
/// let book = PeerBook::open(backend, Options::new(MasterKey::from_bytes([1; 32])))?;
/// let before = writes.load(Ordering::Relaxed);
/// book.store_peer(NewPeer { peer_id: "a".into(), ..NewPeer::default() })?;
/// assert!(writes.load(Ordering::Relaxed) > before);
/// # Ok::<(), peerbook::Error>(())
/// ```
pub struct HookedBackend<B, H = BoxedHook> {
    inner: B,
    hook: H,
}

impl<B: Backend> HookedBackend<B> {
    /// Wrap `inner`, calling `hook` before each write, flush and clear.
    pub fn new(inner: B, hook: impl Fn(FailOp) + Send + Sync + 'static) -> Self {
        Self::with_batches(inner, move |op, _| hook(op))
    }

    /// Wrap `inner`, calling `hook` before each write (with its batch), flush and
    /// clear (with `None`): for tests that record what the store wrote.
    pub fn with_batches(
        inner: B,
        hook: impl Fn(FailOp, Option<&WriteBatch>) + Send + Sync + 'static,
    ) -> Self {
        Self::with_hook(inner, Box::new(hook))
    }
}

impl<B: Backend, H: Hook> HookedBackend<B, H> {
    /// Wrap `inner`, calling `hook.before(..)` before each write, flush and clear.
    pub fn with_hook(inner: B, hook: H) -> Self {
        HookedBackend { inner, hook }
    }

    /// The hook, borrowed (to read what it kept or to steer it).
    pub fn hook(&self) -> &H {
        &self.hook
    }

    /// The wrapped backend, borrowed.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The wrapped backend.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug, H> fmt::Debug for HookedBackend<B, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookedBackend")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Backend, H: Hook> Backend for HookedBackend<B, H> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let value = self.inner.get(space, key);
        if self.hook.watches_reads() {
            self.hook.read(ReadOp::Get {
                space,
                key,
                in_view: false,
            });
        }
        value
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        if !self.hook.watches_reads() {
            return self.inner.scan(space, range, direction, visitor);
        }
        watched_scan(&self.hook, false, space, visitor, |visitor| {
            self.inner.scan(space, range, direction, visitor)
        })
    }

    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        let inner = self.inner.view()?;
        if !self.hook.watches_reads() {
            return Ok(inner);
        }
        Ok(Box::new(WatchedView {
            inner,
            hook: &self.hook,
        }))
    }

    fn book_claim(&self) -> BookClaim {
        self.inner.book_claim()
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        self.hook.before(FailOp::Write, Some(&batch));
        self.inner.write(batch, durability)
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.hook.before(FailOp::Flush, None);
        self.inner.flush()
    }

    fn clear(&self, durability: Durability) -> Result<(), BackendError> {
        self.hook.before(FailOp::Clear, None);
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

/// A view whose reads go to the hook (opened while it watched reads).
struct WatchedView<'a, H> {
    inner: Box<dyn ReadView + 'a>,
    hook: &'a H,
}

impl<H: Hook> ReadView for WatchedView<'_, H> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let value = self.inner.get(space, key);
        self.hook.read(ReadOp::Get {
            space,
            key,
            in_view: true,
        });
        value
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        watched_scan(self.hook, true, space, visitor, |visitor| {
            self.inner.scan(space, range, direction, visitor)
        })
    }
}

/// Run `scan` with `visitor` wrapped to note what it was handed, then tell the hook.
fn watched_scan<H: Hook>(
    hook: &H,
    in_view: bool,
    space: Space,
    visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    scan: impl FnOnce(&mut dyn FnMut(&[u8], &[u8]) -> Visit) -> Result<(), BackendError>,
) -> Result<(), BackendError> {
    let (mut visited, mut first, mut last) = (0, Vec::new(), Vec::new());
    let result = scan(&mut |k, v| {
        if visited == 0 {
            first.extend_from_slice(k);
        }
        visited += 1;
        last.clear();
        last.extend_from_slice(k);
        visitor(k, v)
    });
    hook.read(ReadOp::Scan {
        space,
        in_view,
        visited,
        first: &first,
        last: &last,
    });
    result
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use super::*;
    use crate::MemoryBackend;

    /// Records every read it is told of, while `watching`.
    #[derive(Default)]
    struct Reads {
        watching: AtomicBool,
        seen: Mutex<Vec<String>>,
    }

    impl Hook for Reads {
        fn before(&self, _: FailOp, _: Option<&WriteBatch>) {}

        fn watches_reads(&self) -> bool {
            self.watching.load(Ordering::SeqCst)
        }

        fn read(&self, read: ReadOp<'_>) {
            let text = match read {
                ReadOp::Get {
                    space,
                    key,
                    in_view,
                } => {
                    format!(
                        "get {} {} {in_view}",
                        space.name(),
                        String::from_utf8_lossy(key)
                    )
                }
                ReadOp::Scan {
                    space,
                    in_view,
                    visited,
                    first,
                    last,
                } => format!(
                    "scan {} {in_view} {visited} {}..{}",
                    space.name(),
                    String::from_utf8_lossy(first),
                    String::from_utf8_lossy(last)
                ),
            };
            self.seen.lock().unwrap().push(text);
        }
    }

    fn read_all(b: &dyn Backend, view: &dyn ReadView) -> Vec<u8> {
        let mut keys = Vec::new();
        let _ = b.get(Space::Meta, b"b").unwrap();
        let _ = view.get(Space::Meta, b"zz").unwrap();
        for (direction, budget) in [(Direction::Forward, 3), (Direction::Reverse, 2)] {
            let mut left = budget;
            view.scan(Space::Meta, KeyRange::all(), direction, &mut |k, _| {
                keys.extend_from_slice(k);
                left -= 1;
                if left == 0 {
                    Visit::Break(())
                } else {
                    Visit::Continue(())
                }
            })
            .unwrap();
        }
        b.scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |_, _| Visit::Continue(()),
        )
        .unwrap();
        keys
    }

    #[test]
    fn reads_reach_the_hook_only_while_it_watches() {
        let hooked = HookedBackend::with_hook(MemoryBackend::new(), Reads::default());
        let mut batch = WriteBatch::new();
        for k in ["a", "b", "c", "d"] {
            batch.put(Space::Meta, k.into(), b"v".to_vec());
        }
        hooked.write(batch, Durability::Sync).unwrap();

        let unwatched = hooked.view().unwrap();
        hooked.hook().watching.store(true, Ordering::SeqCst);
        // the visitors see the same entries, watched or not
        let keys = read_all(&hooked, &*hooked.view().unwrap());
        assert_eq!(keys, b"abcdc".to_vec());
        assert_eq!(
            *hooked.hook().seen.lock().unwrap(),
            [
                "get meta b false",
                "get meta zz true",
                "scan meta true 3 a..c",
                "scan meta true 2 d..c",
                "scan peers false 0 ..",
            ]
        );
        // a view opened while the hook did not watch stays the engine's own
        hooked.hook().seen.lock().unwrap().clear();
        let keys = read_all(&hooked, &*unwatched);
        assert_eq!(keys, b"abcdc".to_vec());
        assert_eq!(
            *hooked.hook().seen.lock().unwrap(),
            ["get meta b false", "scan peers false 0 .."]
        );
        hooked.hook().watching.store(false, Ordering::SeqCst);
        read_all(&hooked, &*hooked.view().unwrap());
        assert_eq!(hooked.hook().seen.lock().unwrap().len(), 2);
    }
}
