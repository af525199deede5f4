//! [`HookedBackend`]: a real backend with a hook run before every write, flush
//! and clear, for tests that watch where writes run, record what was written or
//! hold a writer mid-write. The hook is any closure, or a type implementing
//! [`WriteHook`] (as the group kit's [`Gate`](super::group::Gate)) that the test
//! reaches through [`HookedBackend::hook`].

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
/// engine. Every `Fn(FailOp, Option<&WriteBatch>)` closure is one; a test type
/// implements it to keep state its test reads back through [`HookedBackend::hook`].
pub trait WriteHook: Send + Sync {
    /// Called before each [`write`](Backend::write) (`op` is [`FailOp::Write`],
    /// `batch` the batch to write), [`flush`](Backend::flush) and
    /// [`clear`](Backend::clear) (`batch` is `None`); the call goes on when this
    /// returns.
    fn before(&self, op: FailOp, batch: Option<&WriteBatch>);
}

impl<F: Fn(FailOp, Option<&WriteBatch>) + Send + Sync> WriteHook for F {
    fn before(&self, op: FailOp, batch: Option<&WriteBatch>) {
        self(op, batch)
    }
}

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

impl<B: Backend, H: WriteHook> HookedBackend<B, H> {
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

impl<B: Backend, H: WriteHook> Backend for HookedBackend<B, H> {
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
