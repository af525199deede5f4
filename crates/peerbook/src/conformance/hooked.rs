//! [`HookedBackend`]: a real backend with a hook run before every write, flush
//! and clear, for tests that watch where writes run or hold a writer mid-write.

use std::fmt;

use super::failing::FailOp;
use crate::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, ReadView, Space, Visit,
    WriteBatch,
};

type Hook = Box<dyn Fn(FailOp, Option<&WriteBatch>) + Send + Sync>;

/// A [`Backend`] wrapper that calls `hook(op)` before passing each
/// [`write`](Backend::write), [`flush`](Backend::flush) and
/// [`clear`](Backend::clear) to the engine (`op` says which); reads pass straight
/// through. The hook may count, record the thread, or block until a test lets
/// the call go on.
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
pub struct HookedBackend<B> {
    inner: B,
    hook: Hook,
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
        HookedBackend {
            inner,
            hook: Box::new(hook),
        }
    }

    /// The wrapped backend.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for HookedBackend<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookedBackend")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Backend for HookedBackend<B> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.inner.scan(space, range, direction, visitor)
    }

    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        self.inner.view()
    }

    fn book_claim(&self) -> BookClaim {
        self.inner.book_claim()
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        (self.hook)(FailOp::Write, Some(&batch));
        self.inner.write(batch, durability)
    }

    fn flush(&self) -> Result<(), BackendError> {
        (self.hook)(FailOp::Flush, None);
        self.inner.flush()
    }

    fn clear(&self, durability: Durability) -> Result<(), BackendError> {
        (self.hook)(FailOp::Clear, None);
        self.inner.clear(durability)
    }

    fn disk_usage(&self) -> Result<u64, BackendError> {
        self.inner.disk_usage()
    }

    fn engine_name(&self) -> &'static str {
        self.inner.engine_name()
    }
}
