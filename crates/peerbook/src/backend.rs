//! The storage trait every engine implements, and its error type.
//!
//! A [`Backend`] stores ordered byte keys and byte values in the four named
//! [`Space`]s of a book. It knows nothing of peers: the store above it encodes
//! records, builds index keys and decides what goes into each atomic
//! [`WriteBatch`]. A backend only has to translate these few operations onto its
//! engine (every method of the trait):
//!
//! | method | contract |
//! |---|---|
//! | [`Backend::get`] | point read of one key |
//! | [`Backend::scan`] | ordered scan of a key range, forward or reverse, stopping when the visitor says so |
//! | [`Backend::view`] | a [`ReadView`]: `get` and `scan` over one consistent snapshot of every space, taken when the view opens |
//! | [`Backend::write`] | apply a batch of puts and deletes across spaces atomically, with a [`Durability`] |
//! | [`Backend::flush`] | make every write that returned durable on power loss |
//! | [`Backend::clear`] | empty every space atomically |
//! | [`Backend::disk_usage`] | bytes the backend occupies on disk |
//! | [`Backend::book_claim`] | the one [`BookClaim`] of this backend instance (shared by its clones and `Arc`s) |
//! | [`Backend::engine_name`] | a short engine name for logs |
//! | [`Backend::compact_space`] | provided, a no-op by default: reclaim the space and tombstones of a space after bulk deletes |
//!
//! Backends are `Send + Sync`: reads may come from many threads at once. The store
//! serializes writers itself, so a backend never sees two concurrent `write` calls
//! from one [`PeerBook`](crate::PeerBook), but it must stay correct if it does.
//!
//! ## Group commit
//!
//! Concurrent [`Durability::Sync`] writers of a book share one synced `write`: the
//! store queues their batches, and one of them writes all the queued batches as ONE
//! batch (see the store's `group` module). So group commit asks nothing new of a
//! backend beyond this table: a `Sync` write may hold the batches of several store
//! calls, and may come from any writer thread while other threads hold views. The
//! crash promise stays the one of a single batch (all or nothing, in order), which
//! every engine here already proves; no engine ever holds an unsynced batch of a
//! `Sync` book, so an engine whose unsynced log can lose a middle record (RocksDB's
//! WAL) or whose unsynced commits can corrupt (LMDB `MDB_NOSYNC`) needs no special
//! mode.
//!
//! ## Views
//!
//! A [`ReadView`] sees the state of every space as of the moment
//! [`Backend::view`] returned: no write that lands later is visible in it, and
//! every `get` and `scan` on it agrees with every other one. The store runs each
//! operation that reads more than one key on one view, so paged index walks never
//! meet a peer twice or miss one. Rules for callers (the store keeps them):
//! - a view is dropped before the same thread calls `write`, `flush` or `clear`
//!   (LMDB refuses a write on a thread inside its own read transaction);
//! - a view's scan visitor does not call back into the backend or the view;
//! - views are short-lived: an engine keeps old versions alive for an open view
//!   (LMDB cannot grow its map while any view is open, so a writer needing room
//!   waits for it; RocksDB keeps the snapshot's versions from compaction; the
//!   memory and file backends keep the old versions of keys written meanwhile, see
//!   [`mvcc`](crate::mvcc)).
//!
//! ## Failures
//!
//! An error from `write`, `flush` or `clear` leaves the outcome unknown: the batch
//! may or may not have landed, or may surface on reopen. No error kind is known to
//! be clean on every engine (a full disk, [`BackendError::Full`], can strike after
//! a frame was partly written or during an fsync), so after any such error the
//! store refuses further writes of that book with
//! [`Error::NeedsReopen`](crate::Error::NeedsReopen) until it is reopened; the
//! reopened book reads the counters committed atomically with the data. A backend
//! whose durability step fails (fsync) must refuse later writes itself too.
//!
//! The one exception: an error marked [`BackendError::NotApplied`]
//! ([`BackendError::not_applied`]) says the call changed nothing, in this process
//! and on disk, and the backend stays usable. The store then keeps the book
//! writable (the error still reaches the caller, unmarked: what failed is
//! [`BackendError::inner`]). A backend returns it only when it knows: a check that
//! refused the batch before the engine saw it, an engine transaction aborted before
//! its commit (LMDB's map full at its cap, a key LMDB cannot hold, a write on a
//! thread inside a read of the same book). Anything that may have reached a file
//! (a failed commit, fsync or rename) stays unmarked.
//!
//! ## One book per backend
//!
//! A backend takes an exclusive lock on its files when it opens; a second open of the
//! same files fails with [`BackendError::Locked`]. Within one process, one backend
//! instance serves one live [`PeerBook`](crate::PeerBook): a second
//! `PeerBook::open` over the same instance (an `Arc` of it, or a
//! [`MemoryBackend`](crate::MemoryBackend) clone) fails with
//! [`Error::Locked`](crate::Error::Locked) until the first book is closed or dropped.
//! The claim is the backend's [`BookClaim`]; the sharing is refused, not made safe.

mod dirs;
mod error;
mod ext;
mod lock;

pub use dirs::NewDirs;
pub use error::{BackendError, ErrorSource};
pub use ext::{BackendExt, Dump, SpaceDump};
pub use lock::{is_locked_here, try_lock_file, try_lock_file_made, FileLock};

use std::fmt;
use std::ops::{Bound, ControlFlow};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One of the four keyspaces of a book.
///
/// The numeric order (`Space::ALL`) is stable: backends may use [`Space::name`] or
/// [`Space::index`] to name their tables, column families or file sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// `peer_id` -> format byte + postcard-encoded record.
    Peers,
    /// big-endian `u64` `!last_seen` + the negated `peer_id` + `0xFF` (newest
    /// first since schema 4) -> the record's score hint (what
    /// ranking needs besides the time: quality score, success, reliability,
    /// penalty, blacklist; layout in `store::keys`), so a scan of recent peers
    /// ranks them without decoding records.
    ByLastSeen,
    /// `u8` quality score (0..=100) + `peer_id` -> empty; and, after every one of
    /// those (schema 5), the rank region: `0xFF`, the run of the score hint, then
    /// the by_last_seen key -> the score hint (layout in `store::keys`).
    ByQuality,
    /// name -> value: schema version, key check, counters, last cleanup time.
    Meta,
}

impl Space {
    /// Every space, in index order.
    pub const ALL: [Space; 4] = [
        Space::Peers,
        Space::ByLastSeen,
        Space::ByQuality,
        Space::Meta,
    ];

    /// A short, stable name for the space (`"peers"`, `"by_last_seen"`, `"by_quality"`, `"meta"`).
    pub const fn name(self) -> &'static str {
        match self {
            Space::Peers => "peers",
            Space::ByLastSeen => "by_last_seen",
            Space::ByQuality => "by_quality",
            Space::Meta => "meta",
        }
    }

    /// The position of the space in [`Space::ALL`] (0..4).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The space at `index` in [`Space::ALL`], if any. Useful to decode stored space tags.
    pub const fn from_index(index: usize) -> Option<Space> {
        match index {
            0 => Some(Space::Peers),
            1 => Some(Space::ByLastSeen),
            2 => Some(Space::ByQuality),
            3 => Some(Space::Meta),
            _ => None,
        }
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How durable a write must be when [`Backend::write`] returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// The write survives power loss once the call returns (fsync or equivalent).
    #[default]
    Sync,
    /// The write survives a crash of the process; the newest writes may be lost on
    /// power loss until [`Backend::flush`] returns.
    Buffered,
}

/// Scan direction for [`Backend::scan`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ascending key order.
    #[default]
    Forward,
    /// Descending key order.
    Reverse,
}

/// One operation inside a [`WriteBatch`].
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or replace `key` in `space` with `value`.
    Put {
        /// Target space.
        space: Space,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove `key` from `space` (no error if absent).
    Delete {
        /// Target space.
        space: Space,
        /// Key bytes.
        key: Vec<u8>,
    },
}

impl Op {
    /// The space this operation touches.
    pub fn space(&self) -> Space {
        match self {
            Op::Put { space, .. } | Op::Delete { space, .. } => *space,
        }
    }

    /// The key this operation touches.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

// Values may hold sealed secrets; Debug shows sizes only.
impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put { space, key, value } => write!(
                f,
                "Put({space}, key {} bytes, value {} bytes)",
                key.len(),
                value.len()
            ),
            Op::Delete { space, key } => write!(f, "Delete({space}, key {} bytes)", key.len()),
        }
    }
}

/// An ordered list of puts and deletes applied all together or not at all.
///
/// Operations apply in order: a later operation on the same key wins.
///
/// ```
/// use peerbook::backend::{Space, WriteBatch};
/// let mut batch = WriteBatch::new();
/// batch.put(Space::Peers, b"alice".to_vec(), b"record".to_vec());
/// batch.delete(Space::ByLastSeen, b"old-entry".to_vec());
/// assert_eq!(batch.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `ops` operations.
    pub fn with_capacity(ops: usize) -> Self {
        WriteBatch {
            ops: Vec::with_capacity(ops),
        }
    }

    /// Append a put of `key` = `value` in `space`.
    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op::Put { space, key, value });
    }

    /// Append a delete of `key` in `space`.
    pub fn delete(&mut self, space: Space, key: Vec<u8>) {
        self.ops.push(Op::Delete { space, key });
    }

    /// Append every operation of `other`.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Consume the batch, yielding its operations in order.
    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl From<Vec<Op>> for WriteBatch {
    fn from(ops: Vec<Op>) -> Self {
        WriteBatch { ops }
    }
}

/// A key range for [`Backend::scan`]: `lower` and `upper` bounds over raw key bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyRange<'a> {
    /// Smallest key of the range.
    pub lower: Bound<&'a [u8]>,
    /// Largest key of the range.
    pub upper: Bound<&'a [u8]>,
}

impl<'a> KeyRange<'a> {
    /// Every key of the space.
    pub const fn all() -> Self {
        KeyRange {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        }
    }

    /// True when `key` lies inside the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let above_lower = match self.lower {
            Bound::Included(l) => key >= l,
            Bound::Excluded(l) => key > l,
            Bound::Unbounded => true,
        };
        let below_upper = match self.upper {
            Bound::Included(u) => key <= u,
            Bound::Excluded(u) => key < u,
            Bound::Unbounded => true,
        };
        above_lower && below_upper
    }

    /// True when no key can lie inside the range (lower above upper, or an empty
    /// half-open interval). Engines whose iterators misbehave on inverted bounds can
    /// return early on this.
    pub fn is_empty(&self) -> bool {
        match (self.lower, self.upper) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(l), Bound::Included(u)) => l > u,
            (Bound::Included(l), Bound::Excluded(u))
            | (Bound::Excluded(l), Bound::Included(u))
            | (Bound::Excluded(l), Bound::Excluded(u)) => l >= u,
        }
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` when
/// no such key exists (empty prefix or all `0xff`).
///
/// ```
/// assert_eq!(peerbook::backend::prefix_successor(b"ab"), Some(b"ac".to_vec()));
/// assert_eq!(peerbook::backend::prefix_successor(b"a\xff"), Some(b"b".to_vec()));
/// assert_eq!(peerbook::backend::prefix_successor(b"\xff"), None);
/// ```
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < 0xff {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

/// What a scan visitor returns: `Continue` for the next entry, `Break` to stop.
pub type Visit = ControlFlow<()>;

/// A consistent read-only snapshot of every space of a backend; see the
/// [module docs](self#views).
pub trait ReadView {
    /// Read the value stored under `key` in `space`, as of the view.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Visit the entries of `space` in `range`, in `direction` order, as of the view,
    /// until the visitor returns [`ControlFlow::Break`] or the range ends. The visitor
    /// must not call back into the backend or the view (an engine may hold a lock
    /// while it runs): collect, then read.
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError>;
}

/// The marker that lets one live [`PeerBook`](crate::PeerBook) own a backend
/// instance. A backend creates one when it is constructed and hands out clones of it
/// (clones of the backend share it); see the [module docs](self#one-book-per-backend).
#[derive(Clone, Debug, Default)]
pub struct BookClaim(Arc<AtomicBool>);

impl BookClaim {
    /// A new, unclaimed marker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Claim the backend; `false` when a live book already holds it.
    pub fn try_acquire(&self) -> bool {
        self.0
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Give the claim back (the book was closed or dropped).
    pub fn release(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The storage engine under a book. See the [module docs](self) for the contract.
///
/// Implementations must be `Send + Sync`, must apply each [`WriteBatch`] atomically
/// (after a crash, either every operation of a batch is visible or none), and must
/// return keys of a scan in byte-wise lexicographic order (reversed for
/// [`Direction::Reverse`]).
///
/// The conformance kit (`peerbook::conformance`, feature `conformance`) checks all
/// of this for any implementation.
pub trait Backend: Send + Sync {
    /// Read the value stored under `key` in `space`.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;

    /// Visit the entries of `space` whose keys lie in `range`, in `direction` order,
    /// until the visitor returns [`ControlFlow::Break`] or the range ends.
    ///
    /// The visitor sees one consistent snapshot only where the engine gives one; use a
    /// [`view`](Self::view) to read several keys or pages consistently.
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError>;

    /// A consistent snapshot of every space as of now (see [module docs](self#views)).
    ///
    /// Keep views short and never wait on another thread while holding one: on LMDB
    /// a view holds the map lock shared, so a pending map growth or clear waits for
    /// it, and readers queued behind that pending writer wait too; the view's own
    /// thread cannot write while it holds the view.
    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError>;

    /// The claim marker of this backend instance, shared by its clones.
    fn book_claim(&self) -> BookClaim;

    /// Apply every operation of `batch` atomically, durable as `durability` says.
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError>;

    /// Make every write that has returned durable against power loss.
    fn flush(&self) -> Result<(), BackendError>;

    /// Remove every entry of every space, atomically, durable as `durability` says.
    ///
    /// A disk backend should also leave no byte of a removed entry in its files
    /// once this returns (rewrite or replace them, crash-safely: a crash leaves all
    /// the old entries or none); [`PeerBook::clear_all`](crate::PeerBook::clear_all)
    /// promises users that the cleared book is gone from the store's directory.
    fn clear(&self, durability: Durability) -> Result<(), BackendError>;

    /// Bytes this backend occupies on disk (0 for in-memory backends).
    fn disk_usage(&self) -> Result<u64, BackendError>;

    /// A short name of the engine, for logs and reports (`"memory"`, `"lmdb"`, ...).
    fn engine_name(&self) -> &'static str;

    /// Reclaim the space and the tombstones of `space` after bulk deletes, and
    /// return once done. Engines that need it override it; the default does
    /// nothing (right for engines whose deletes leave nothing for a scan to step
    /// over: B-trees, in-memory maps).
    ///
    /// The store calls it after a migration step that deleted a whole index: an
    /// engine that keeps deleted keys as tombstones until a compaction (RocksDB)
    /// would otherwise make every scan of that range step over them. It changes no
    /// entry, so an error leaves the data as it was; the store logs it and goes on.
    /// Wrappers forward it to the backend they wrap.
    fn compact_space(&self, space: Space) -> Result<(), BackendError> {
        let _ = space;
        Ok(())
    }
}

impl<B: Backend + ?Sized> Backend for std::sync::Arc<B> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        (**self).get(space, key)
    }
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        (**self).scan(space, range, direction, visitor)
    }
    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        (**self).view()
    }
    fn book_claim(&self) -> BookClaim {
        (**self).book_claim()
    }
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), BackendError> {
        (**self).write(batch, durability)
    }
    fn flush(&self) -> Result<(), BackendError> {
        (**self).flush()
    }
    fn clear(&self, durability: Durability) -> Result<(), BackendError> {
        (**self).clear(durability)
    }
    fn disk_usage(&self) -> Result<u64, BackendError> {
        (**self).disk_usage()
    }
    fn engine_name(&self) -> &'static str {
        (**self).engine_name()
    }
    fn compact_space(&self, space: Space) -> Result<(), BackendError> {
        (**self).compact_space(space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ranges_never_reach_a_sorted_map() {
        let a: &[u8] = b"a";
        let b: &[u8] = b"b";
        assert!(KeyRange {
            lower: Bound::Excluded(a),
            upper: Bound::Excluded(a)
        }
        .is_empty());
        assert!(KeyRange {
            lower: Bound::Included(b),
            upper: Bound::Included(a)
        }
        .is_empty());
        assert!(!KeyRange {
            lower: Bound::Included(a),
            upper: Bound::Included(a)
        }
        .is_empty());
    }
}
