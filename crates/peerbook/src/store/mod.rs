//! [`PeerBook`]: the store, over any [`Backend`].
//!
//! Every write that touches a peer updates its record, its three index entries and
//! the counters in ONE atomic batch. Writers are serialized by one mutex, so
//! read-modify-write operations (`update_last_seen`, ...) are atomic. Queries take
//! no lock of the store and never wait for writers; `verify` and `export_data` take
//! the writer lock only for the instant they open their view (to pair it with the
//! counters or the cipher).
//!
//! Every operation that reads more than one key reads one [`ReadView`] of the
//! backend, so it sees one state. A writer decides on one state too: it takes the
//! writer lock, then seals with (and checks seals against) the cipher that is current
//! while it holds the lock, reads a view, drops the view and commits. Key rotation
//! swaps the cipher under the same lock. A write whose outcome is unknown poisons the
//! book ([`Error::NeedsReopen`]) until it is reopened.
//!
//! With [`Durability::Sync`] a writer releases the writer lock before its batch is
//! synced and waits for a group commit that syncs it together with the batches of
//! the writers that came meanwhile (see the `group` module): later writers read the pending
//! batches on top of the backend; readers see a write once it is durable; no write
//! returns before its batch is.

use std::fmt;
use std::ops::{Bound, ControlFlow};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, ReadView, Space, Visit,
    WriteBatch,
};
use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::options::Clock;
use crate::schema::{NewPeer, PeerId, PeerRecord};

mod addresses;
mod group;
pub(crate) mod keys;
mod lifecycle;
mod maintenance;
mod open;
mod query;
mod rank;
mod records;
mod settings;
mod transfer;
mod write;

pub use keys::SCHEMA_VERSION;
#[cfg(any(test, feature = "conformance"))]
pub(crate) use rank::RANK_SCAN_BUDGET;

/// How far in the future a stored timestamp may lie (1 day, in ms): clock skew
/// between the application's clock and the book's, nothing more.
pub const MAX_CLOCK_SKEW_MS: u64 = 24 * 60 * 60 * 1000;
use keys::Counters;
pub use maintenance::{CorruptEntry, CounterMismatch, RepairReport, StorageStats, VerifyReport};
pub use open::{holds_book, holds_peers};
pub use query::{Candidate, CandidateQuery, Order, PeerQuery, SortBy};
pub use settings::{read_retention, RetentionSettings};
pub use transfer::{
    ExportDocument, ExportOptions, ImportMode, ImportReport, EXPORT_FORMAT, EXPORT_VERSION,
};

/// What [`PeerBook::store_peer`] accepts: a [`NewPeer`] (plaintext secrets, sealed
/// on the way in) or a whole [`PeerRecord`] (e.g. one read back and updated).
#[derive(Debug, Clone)]
pub enum PeerInput {
    /// A peer described by the application, as the seed's `createPeerData`.
    New(NewPeer),
    /// A full record, stored as given (display name sanitized, seals checked).
    Record(PeerRecord),
}

impl From<NewPeer> for PeerInput {
    fn from(p: NewPeer) -> Self {
        PeerInput::New(p)
    }
}

impl From<PeerRecord> for PeerInput {
    fn from(r: PeerRecord) -> Self {
        PeerInput::Record(r)
    }
}

/// Retention settings in ms, copied from [`Options`] without the key.
#[derive(Clone)]
pub(crate) struct Settings {
    pub max_peers: u64,
    pub max_bytes: Option<u64>,
    pub inactive_after_ms: u64,
    pub failed_attempts: u32,
    pub blacklist_for_ms: u64,
    pub cleanup_interval_ms: u64,
    pub evict_when_full: bool,
    pub durability: Durability,
    pub clock: Arc<dyn Clock>,
}

/// A peer book over the backend `B`.
///
/// ```
/// use peerbook::{CandidateQuery, MasterKey, MemoryBackend, NewPeer, Options, PeerBook, Secret};
///
/// let book = PeerBook::open(MemoryBackend::new(), Options::new(MasterKey::generate()?))?;
/// book.store_peer(NewPeer {
///     peer_id: "ABC123".into(),
///     display_name: "Alice".into(),
///     public_key: "{\"kty\":\"EC\"}".into(),
///     shared_secret: Some(Secret::from("secret-key")),
///     ..NewPeer::default()
/// })?;
///
/// let candidates = book.get_reconnection_candidates(&CandidateQuery::default())?;
/// assert_eq!(candidates[0].peer.peer_id.as_str(), "ABC123");
/// let secret = book.open_shared_secret(&candidates[0].peer)?.expect("has a secret");
/// assert_eq!(secret.expose(), b"secret-key");
/// # Ok::<(), peerbook::Error>(())
/// ```
pub struct PeerBook<B: Backend> {
    backend: B,
    settings: Settings,
    cipher: RwLock<Arc<Cipher>>,
    /// The writer lock: held by every write for its whole read-modify-write, it
    /// guards the counters of the last committed state.
    writer_lock: Mutex<Counters>,
    /// Set after a write with an unknown outcome: every later write is refused.
    poisoned: AtomicBool,
    /// The queue of applied Sync batches that concurrent writers commit together.
    group: group::GroupCommit,
    /// This book's hold on the backend instance, released when the book goes.
    _claim: Claim,
    /// Whether this book's open started a new book (see [`PeerBook::created_book`]).
    created: bool,
    /// Scans the rank walk may start before it leaves a query to the by_last_seen
    /// walk ([`rank::RANK_SCAN_BUDGET`]; tests force either walk through it).
    rank_scan_budget: std::sync::atomic::AtomicUsize,
}

/// The claim a live book holds on its backend instance (released on drop).
struct Claim(BookClaim);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Point reads straight on the backend, for single-key reads that need no view.
struct Direct<'a, B: Backend>(&'a B);

impl<B: Backend> ReadView for Direct<'_, B> {
    fn get(&self, space: Space, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, BackendError> {
        self.0.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> std::result::Result<(), BackendError> {
        self.0.scan(space, range, direction, visitor)
    }
}

impl<B: Backend> fmt::Debug for PeerBook<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerBook")
            .field("engine", &self.backend.engine_name())
            .field("max_peers", &self.settings.max_peers)
            .finish_non_exhaustive()
    }
}

/// A record as found in the peers space (short-lived, so its size does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Existing {
    Decoded { record: PeerRecord, len: u64 },
    Corrupt { len: u64, detail: String },
}

impl Existing {
    fn len(&self) -> u64 {
        match self {
            Existing::Decoded { len, .. } | Existing::Corrupt { len, .. } => *len,
        }
    }
}

/// The held writer lock and the counters it guards (those of the committed state).
pub(crate) type WriterGuard<'a> = MutexGuard<'a, Counters>;

/// A write being staged under the writer lock: the batch built so far and the
/// counters it will leave once committed (not a transaction: nothing is applied
/// until [`PeerBook::commit`] writes the batch).
pub(crate) struct StagedWrite {
    pub batch: WriteBatch,
    pub counters: Counters,
}

impl StagedWrite {
    /// The most ops the write of one record puts in its batch without eviction
    /// (a new record, or one replacing a decodable one): the record, each of its
    /// three index entries ([`keys::index_entries`]) deleted and put, the counters
    /// (a batch sized for them is never grown, where an empty one grew twice).
    /// Replacing a corrupt record deletes whatever index keys name it first, and
    /// may grow the batch.
    const ONE_RECORD_OPS: usize = 8;

    /// A staged write on top of `counters`, its batch empty and grown as it fills:
    /// for the writes that do not size theirs (a removal, the cleanups, an import,
    /// a key rotation).
    pub(crate) fn new(counters: Counters) -> Self {
        StagedWrite {
            batch: WriteBatch::new(),
            counters,
        }
    }

    /// A staged write of one record on top of `counters`, its batch sized for
    /// [`ONE_RECORD_OPS`](Self::ONE_RECORD_OPS).
    pub(crate) fn one_record(counters: Counters) -> Self {
        StagedWrite {
            batch: WriteBatch::with_capacity(Self::ONE_RECORD_OPS),
            counters,
        }
    }
}

impl<B: Backend> PeerBook<B> {
    /// The backend under this book: for reading it, and for the backend's own
    /// operations (statistics, compaction). Writing to it while the book is open
    /// bypasses the book's writer lock, counters and group commit: a write the book
    /// is building at the same time may not see it (read the records back through a
    /// reopened book).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Make every acknowledged write durable (matters with [`Durability::Buffered`]).
    pub fn flush(&self) -> Result<()> {
        let _guard = self.lock_writer();
        self.drain()?;
        self.guarded(|| self.backend.flush())
    }

    /// Close the book, flushing buffered writes, and hand back the backend (a new
    /// book may then open on it).
    pub fn close(self) -> Result<B> {
        if !self.poisoned.load(Ordering::Acquire) {
            self.flush()?;
        }
        let PeerBook { backend, .. } = self;
        Ok(backend)
    }

    /// True when an earlier write failed with an unknown outcome: every write is
    /// refused with [`Error::NeedsReopen`] until the book is reopened.
    pub fn needs_reopen(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// True when the [`open`](PeerBook::open) of this book started a new book on
    /// its backend (one holding no book: no schema version, no peer record);
    /// false when it opened (or migrated) a book already there. A store holding no
    /// peer record and no schema version but a key check (a book whose version
    /// was lost, a `clear_all` whose meta write failed) counts as started anew:
    /// true, once the key was checked. A program that
    /// created a store can tell its own new book from one another process
    /// started there first, with the same key: only its own is its to remove.
    ///
    /// ```
    /// use peerbook::{MasterKey, MemoryBackend, Options, PeerBook};
    ///
    /// let key = MasterKey::generate()?;
    /// let book = PeerBook::open(MemoryBackend::new(), Options::new(key.clone()))?;
    /// assert!(book.created_book());
    /// let book = PeerBook::open(book.close()?, Options::new(key))?;
    /// assert!(!book.created_book());
    /// # Ok::<(), peerbook::Error>(())
    /// ```
    pub fn created_book(&self) -> bool {
        self.created
    }

    pub(crate) fn now(&self) -> u64 {
        self.settings.clock.now_ms()
    }

    pub(crate) fn cipher(&self) -> Arc<Cipher> {
        Arc::clone(&self.cipher.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The writer lock. A panic while holding it cannot leave half a write behind
    /// (batches are atomic, counters change only after a commit), so a poisoned
    /// lock is safe to take over.
    ///
    /// After a group write that applied nothing (see the `group` module), the first
    /// taker rolls the in-memory counters back to the backend's durable ones; if
    /// they cannot be read, the book is poisoned (they would be wrong).
    pub(crate) fn lock_writer(&self) -> WriterGuard<'_> {
        let mut guard = self.writer_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.group.take_rollback() {
            let durable = self
                .backend
                .get(Space::Meta, keys::META_COUNTERS)
                .ok()
                .flatten()
                .as_deref()
                .and_then(Counters::decode);
            match durable {
                Some(counters) => *guard = counters,
                None => self.poisoned.store(true, Ordering::Release),
            }
        }
        guard
    }

    /// The writer lock for an operation that writes: refused with
    /// [`Error::NeedsReopen`] once an earlier write failed with an unknown outcome.
    pub(crate) fn lock_writer_to_write(&self) -> Result<WriterGuard<'_>> {
        let guard = self.lock_writer();
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::NeedsReopen);
        }
        Ok(guard)
    }

    /// The view a writer reads under the writer lock: the backend with the batches
    /// applied but not yet durable on top (see the `group` module). It fails with
    /// the backend's error, which `?` turns into the crate's, so that a view opened
    /// on its first read (a `ReadView` itself, see `write.rs`) can open it too.
    pub(crate) fn writer_view(&self) -> std::result::Result<Box<dyn ReadView + '_>, BackendError> {
        self.group.writer_view(|| self.backend.view())
    }

    /// Make every applied batch durable; call under the writer lock before a
    /// backend mutation outside the group commit, or a read that must see them.
    pub(crate) fn drain(&self) -> Result<()> {
        self.group.drain(|batch| self.write_group(batch))
    }

    /// The synced write of one group of batches: any error poisons the book but one
    /// the backend marked as having applied nothing (then `(error, true)`).
    fn write_group(&self, batch: WriteBatch) -> std::result::Result<(), (Error, bool)> {
        self.guarded_group_write(|| self.backend.write(batch, Durability::Sync))
            .map_err(|e| {
                let nothing_applied =
                    !matches!(e, Error::NeedsReopen) && !self.poisoned.load(Ordering::Acquire);
                (e, nothing_applied)
            })
    }

    pub(crate) fn count_peers(&self, view: &dyn ReadView) -> Result<Counters> {
        let mut c = Counters::default();
        view.scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |_, v| {
                c.peers += 1;
                c.bytes += v.len() as u64;
                ControlFlow::Continue(())
            },
        )?;
        Ok(c)
    }

    /// Up to `limit` keys of an index space from `lower`..`upper` in `direction`.
    ///
    /// Index walks go page by page and read records between pages, never from inside
    /// a scan callback: a backend's read lock is never taken twice by one thread.
    pub(crate) fn index_page(
        &self,
        view: &dyn ReadView,
        space: Space,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let range = KeyRange {
            lower: as_ref_bound(&lower),
            upper: as_ref_bound(&upper),
        };
        let mut out = Vec::new();
        view.scan(space, range, direction, &mut |k, _| {
            out.push(k.to_vec());
            if out.len() >= limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })?;
        Ok(out)
    }
}

pub(crate) fn as_ref_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The record stored at `key` in the peers space, if its value decodes and names
/// the peer of its key; otherwise why not (a record under another peer's key is
/// damage: acting on it by its own id would hit the healthy peer). Every scan of
/// the peers space that acts on records by id reads them through this.
pub(crate) fn decode_stored(key: &[u8], value: &[u8]) -> std::result::Result<PeerRecord, String> {
    let record = PeerRecord::decode(value).map_err(|e| e.0)?;
    if record.peer_id.as_bytes() == key {
        Ok(record)
    } else {
        Err(format!("record names another peer ({})", record.peer_id))
    }
}

pub(crate) fn corrupted_record(id: &PeerId, detail: String) -> Error {
    Error::Corrupted {
        what: "peer record",
        location: format!("peers/{id}"),
        detail,
    }
}
