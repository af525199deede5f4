//! [`PeerBook`]: the store, over any [`Backend`].
//!
//! Every write that touches a peer updates its record, its two index entries and
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

use std::fmt;
use std::ops::{Bound, ControlFlow};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tracing::{debug, info, warn};

use crate::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, ReadView, Space, Visit,
    WriteBatch,
};
use crate::crypto::{Cipher, SealedSecret, Secret, SecretKind};
use crate::error::{Error, Quota, Result};
use crate::options::{duration_ms, Clock, Options};
use crate::schema::{
    sanitize_display_name, validate_candidates, validate_ice_urls, validate_public_key,
    validate_secret, validate_server_count, IceServer, NewPeer, PeerId, PeerRecord,
};

mod addresses;
mod keys;
mod lifecycle;
mod maintenance;
mod query;
mod settings;
mod transfer;

pub use keys::SCHEMA_VERSION;

/// How far in the future a stored timestamp may lie (1 day, in ms): clock skew
/// between the application's clock and the book's, nothing more.
pub const MAX_CLOCK_SKEW_MS: u64 = 24 * 60 * 60 * 1000;
use keys::{Counters, META_COUNTERS, META_KEY_CHECK, META_LAST_CLEANUP, META_SCHEMA_VERSION};
pub use maintenance::{CorruptEntry, CounterMismatch, RepairReport, StorageStats, VerifyReport};
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
    writer: Mutex<Counters>,
    /// Set after a write with an unknown outcome: every later write is refused.
    poisoned: AtomicBool,
    /// This book's hold on the backend instance, released when the book goes.
    _claim: Claim,
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

/// A batch being built under the writer lock, with the counters it will leave.
pub(crate) struct Txn {
    pub batch: WriteBatch,
    pub counters: Counters,
}

impl<B: Backend> PeerBook<B> {
    /// Open a book on `backend`: a new backend is initialized; an existing one is
    /// checked (schema version, key check, counters) and migrated if older.
    ///
    /// Fails with [`Error::WrongKey`] when `options.key` is not the book's key,
    /// [`Error::SchemaTooNew`] when a newer peerbook wrote it, and
    /// [`Error::InvalidInput`] for unusable options.
    pub fn open(backend: B, options: Options) -> Result<Self> {
        if options.max_peers == 0 {
            return Err(Error::invalid("max_peers", "at least 1"));
        }
        if options.failed_attempts == 0 {
            return Err(Error::invalid("failed_attempts", "at least 1"));
        }
        if options.max_bytes == Some(0) {
            return Err(Error::invalid("max_bytes", "at least 1 when set"));
        }
        let settings = Settings {
            max_peers: options.max_peers,
            max_bytes: options.max_bytes,
            inactive_after_ms: duration_ms(options.inactive_after),
            failed_attempts: options.failed_attempts,
            blacklist_for_ms: duration_ms(options.blacklist_for),
            cleanup_interval_ms: duration_ms(options.cleanup_interval),
            evict_when_full: options.evict_when_full,
            durability: options.durability,
            clock: options.clock,
        };
        let claim = backend.book_claim();
        if !claim.try_acquire() {
            return Err(Error::Locked(format!(
                "this {} backend already serves a live book; close it first",
                backend.engine_name()
            )));
        }
        let claim = Claim(claim);
        let cipher = Cipher::new(&options.key);
        let book = PeerBook {
            backend,
            settings,
            cipher: RwLock::new(Arc::new(cipher)),
            writer: Mutex::new(Counters::default()),
            poisoned: AtomicBool::new(false),
            _claim: claim,
        };
        book.open_existing_or_init()?;
        book.store_retention()?;
        Ok(book)
    }

    fn open_existing_or_init(&self) -> Result<()> {
        let mut guard = self.lock();
        let version = match self.backend.get(Space::Meta, META_SCHEMA_VERSION)? {
            None => None,
            Some(bytes) => Some(keys::decode_u32(&bytes).ok_or_else(|| Error::Corrupted {
                what: "meta",
                location: "schema_version".into(),
                detail: format!("expected 4 bytes, found {}", bytes.len()),
            })?),
        };
        let empty = self.is_space_empty(&*self.backend.view()?, Space::Peers)?;
        match version {
            None if empty => {
                self.init_meta(&mut guard)?;
                info!(
                    engine = self.backend.engine_name(),
                    schema = SCHEMA_VERSION,
                    "peerbook created a new book"
                );
                return Ok(());
            }
            None => self.migrate_from(0, &mut guard)?,
            Some(found) if found > SCHEMA_VERSION => {
                return Err(Error::SchemaTooNew {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(found) if found < SCHEMA_VERSION => {
                // A versioned book has a key check: never rewrite it under a wrong key.
                self.check_key()?;
                self.migrate_from(found, &mut guard)?;
            }
            Some(_) => {}
        }
        self.check_key()?;
        let counters = match self
            .backend
            .get(Space::Meta, META_COUNTERS)?
            .as_deref()
            .map(Counters::decode)
        {
            Some(Some(c)) => c,
            _ => {
                warn!(
                    engine = self.backend.engine_name(),
                    "peerbook counters missing or damaged; recounting"
                );
                let counted = self.count_peers(&*self.backend.view()?)?;
                let mut batch = WriteBatch::new();
                batch.put(Space::Meta, META_COUNTERS.to_vec(), counted.encode());
                self.write_batch(batch)?;
                counted
            }
        };
        *guard = counters;
        info!(
            engine = self.backend.engine_name(),
            peers = counters.peers,
            schema = SCHEMA_VERSION,
            "peerbook opened"
        );
        Ok(())
    }

    fn check_key(&self) -> Result<()> {
        let stored = self
            .backend
            .get(Space::Meta, META_KEY_CHECK)?
            .ok_or_else(|| Error::Corrupted {
                what: "meta",
                location: "key_check".into(),
                detail: "missing; the book cannot tell whether this key is right".into(),
            })?;
        let sealed = SealedSecret::from_bytes(stored).map_err(|detail| Error::Corrupted {
            what: "meta",
            location: "key_check".into(),
            detail,
        })?;
        if !self.cipher().verify_key_check(&sealed) {
            warn!(
                engine = self.backend.engine_name(),
                "peerbook open refused: wrong key"
            );
            return Err(Error::WrongKey);
        }
        Ok(())
    }

    /// Bring a store written by an older schema up to [`SCHEMA_VERSION`], one step
    /// per version (0 -> 1 -> 2 ...). Each step is idempotent and writes its version
    /// last, so a crash part way leaves an older version that the next open migrates
    /// again.
    ///
    /// - 0 -> 1: a store holding records but no meta (written before versioning): its
    ///   records are checked, and indexes, counters and the key check are built.
    /// - 1 -> 2: the score hint of every by_last_seen entry is rewritten in the
    ///   unambiguous encoding (`blacklist_until` with a presence tag), in bounded
    ///   batches.
    /// - 2 -> 3: addresses and metadata (record format 2). Nothing is rewritten:
    ///   format-1 records decode lazily with none (see [`crate::schema`]).
    fn migrate_from(&self, found: u32, guard: &mut MutexGuard<'_, Counters>) -> Result<()> {
        info!(
            engine = self.backend.engine_name(),
            from = found,
            to = SCHEMA_VERSION,
            "peerbook migrating schema"
        );
        if found < 1 {
            // No key check yet: the key must open the store's seals before one is
            // written, or the right key would be refused for ever.
            self.check_key_on_a_seal()?;
            let report = self.rebuild(guard, false)?;
            let mut batch = WriteBatch::new();
            batch.put(
                Space::Meta,
                META_KEY_CHECK.to_vec(),
                self.cipher().key_check()?.as_bytes().to_vec(),
            );
            batch.put(
                Space::Meta,
                META_SCHEMA_VERSION.to_vec(),
                1u32.to_be_bytes().to_vec(),
            );
            self.write_batch(batch)?;
            info!(
                corrupt = report.quarantined,
                "peerbook migration 0 -> 1 done"
            );
        }
        if found < 2 {
            let rewritten = self.rewrite_score_hints(2)?;
            info!(rewritten, "peerbook migration 1 -> 2 done");
        }
        if found < 3 {
            // Records of format 1 decode lazily (no addresses, no metadata) and are
            // written in format 2 when next written: only the version moves, so an
            // older peerbook refuses the store instead of misreading new records.
            let mut batch = WriteBatch::new();
            batch.put(
                Space::Meta,
                META_SCHEMA_VERSION.to_vec(),
                3u32.to_be_bytes().to_vec(),
            );
            self.write_batch(batch)?;
            info!("peerbook migration 2 -> 3 done");
        }
        Ok(())
    }

    /// A version-0 store has no key check: before one is written, try the key on
    /// the first sealed secret found. [`Error::WrongKey`] when it does not open
    /// (nothing is written); a store without any seal binds the given key.
    fn check_key_on_a_seal(&self) -> Result<()> {
        let cipher = self.cipher();
        let mut verdict = None;
        self.backend.scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |_, value| {
                let Ok(record) = PeerRecord::decode(value) else {
                    return ControlFlow::Continue(());
                };
                let id = record.peer_id.as_str();
                let mut seals = record
                    .shared_secret
                    .iter()
                    .map(|s| (SecretKind::SharedSecret, s))
                    .chain(record.ice_servers.iter().filter_map(|server| {
                        server
                            .credential
                            .as_ref()
                            .map(|c| (SecretKind::IceCredential, c))
                    }));
                match seals.next() {
                    Some((kind, sealed)) => {
                        verdict = Some(cipher.open(kind, id, sealed).is_ok());
                        ControlFlow::Break(())
                    }
                    None => ControlFlow::Continue(()),
                }
            },
        )?;
        if verdict == Some(false) {
            warn!(
                engine = self.backend.engine_name(),
                "peerbook migration refused: the key does not open the store's secrets"
            );
            return Err(Error::WrongKey);
        }
        Ok(())
    }

    /// Migration step to schema 2: put the current-encoding score hint of every
    /// decodable record, `MIGRATION_CHUNK` records per batch; the last batch also
    /// sets the schema version to `version`. Returns how many hints were written.
    fn rewrite_score_hints(&self, version: u32) -> Result<u64> {
        const MIGRATION_CHUNK: usize = 1024;
        let mut cursor: Bound<Vec<u8>> = Bound::Unbounded;
        let mut written = 0u64;
        loop {
            let mut batch = WriteBatch::new();
            let mut last = None;
            let mut seen = 0usize;
            {
                let view = self.backend.view()?;
                let range = KeyRange {
                    lower: as_ref_bound(&cursor),
                    upper: Bound::Unbounded,
                };
                view.scan(Space::Peers, range, Direction::Forward, &mut |k, v| {
                    seen += 1;
                    last = Some(k.to_vec());
                    if let Ok(record) = PeerRecord::decode(v) {
                        if record.peer_id.as_bytes() == k {
                            let [(space, key, value), _] = keys::index_entries(&record);
                            batch.put(space, key, value);
                        }
                    }
                    if seen >= MIGRATION_CHUNK {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
            }
            written += batch.len() as u64;
            let done = seen < MIGRATION_CHUNK;
            if done {
                batch.put(
                    Space::Meta,
                    META_SCHEMA_VERSION.to_vec(),
                    version.to_be_bytes().to_vec(),
                );
            }
            self.write_batch(batch)?;
            match last {
                Some(key) if !done => cursor = Bound::Excluded(key),
                _ => return Ok(written),
            }
        }
    }

    fn init_meta(&self, guard: &mut MutexGuard<'_, Counters>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(
            Space::Meta,
            META_SCHEMA_VERSION.to_vec(),
            SCHEMA_VERSION.to_be_bytes().to_vec(),
        );
        batch.put(
            Space::Meta,
            META_KEY_CHECK.to_vec(),
            self.cipher().key_check()?.as_bytes().to_vec(),
        );
        batch.put(
            Space::Meta,
            META_COUNTERS.to_vec(),
            Counters::default().encode(),
        );
        batch.put(
            Space::Meta,
            META_LAST_CLEANUP.to_vec(),
            self.now().to_be_bytes().to_vec(),
        );
        self.write_batch(batch)?;
        **guard = Counters::default();
        Ok(())
    }

    /// The backend under this book.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Make every acknowledged write durable (matters with [`Durability::Buffered`]).
    pub fn flush(&self) -> Result<()> {
        let _guard = self.lock();
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

    /// Write `batch` with the book's durability (see [`guarded`](Self::guarded)).
    pub(crate) fn write_batch(&self, batch: WriteBatch) -> Result<()> {
        self.guarded(|| self.backend.write(batch, self.settings.durability))
    }

    /// Run a backend write, flush or clear: refused when the book is poisoned; any
    /// error poisons it, since no error kind is known to have applied nothing on
    /// every engine (see the [`Backend`](crate::backend#failures) contract).
    pub(crate) fn guarded(
        &self,
        op: impl FnOnce() -> std::result::Result<(), BackendError>,
    ) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::NeedsReopen);
        }
        op().map_err(|e| {
            self.poisoned.store(true, Ordering::Release);
            warn!(
                engine = self.backend.engine_name(),
                "peerbook write failed with an unknown outcome; the book needs a reopen"
            );
            Error::from(e)
        })
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, Counters> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer lock for an operation that writes: refused with
    /// [`Error::NeedsReopen`] once an earlier write failed with an unknown outcome.
    pub(crate) fn writer_lock(&self) -> Result<MutexGuard<'_, Counters>> {
        let guard = self.lock();
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::NeedsReopen);
        }
        Ok(guard)
    }

    pub(crate) fn is_space_empty(&self, view: &dyn ReadView, space: Space) -> Result<bool> {
        let mut empty = true;
        view.scan(space, KeyRange::all(), Direction::Forward, &mut |_, _| {
            empty = false;
            ControlFlow::Break(())
        })?;
        Ok(empty)
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

    // ----- single-peer operations -------------------------------------------------

    /// Store a peer. A [`PeerInput::Record`] is stored exactly as given (display
    /// name sanitized, seals checked), replacing any record with the same id.
    ///
    /// A [`NewPeer`] means "connected to this peer now" and is an upsert: a new peer
    /// is created (secrets sealed, `last_seen` = `last_connected` = now); for a known
    /// peer the fields the caller gives replace the stored ones (a non-empty display
    /// name, a `Some` secret, non-empty ICE servers, non-empty candidates, a `Some`
    /// IP), a `None` or empty field keeps what is stored, `last_seen` and
    /// `last_connected` become now, attempts and blacklist are cleared, and the
    /// connection history, addresses and metadata are kept. An empty public key
    /// keeps the stored one; a different non-empty one is refused with
    /// [`Error::PublicKeyChanged`] (use [`replace_peer`](Self::replace_peer)). A
    /// stored record that fails to decode is replaced by the new one. Learning of a
    /// peer without connecting is [`learn_peer`](Self::learn_peer). Returns what was
    /// stored.
    ///
    /// A new peer in a full book fails with [`Error::QuotaExceeded`] unless
    /// [`Options::evict_when_full`] is set, in which case the least recently seen
    /// peers make room in the same atomic batch.
    pub fn store_peer(&self, peer: impl Into<PeerInput>) -> Result<PeerRecord> {
        match peer.into() {
            PeerInput::New(new) => self.upsert(new, lifecycle::Upsert::Connected),
            PeerInput::Record(record) => self.store_record(record),
        }
    }

    /// Store `record` exactly (name sanitized, rules, times and seals checked).
    fn store_record(&self, mut record: PeerRecord) -> Result<PeerRecord> {
        // Check seals under the writer lock: key rotation takes it too, so the
        // cipher used here is the one current when the batch commits.
        let mut guard = self.writer_lock()?;
        record.display_name = sanitize_display_name(&record.display_name);
        record.validate()?;
        self.check_times(&record, self.now(), None)?;
        self.check_seals(&record)?;
        let mut txn = Txn {
            batch: WriteBatch::new(),
            counters: *guard,
        };
        {
            let view = self.backend.view()?;
            let existing = self.load_existing(&*view, &record.peer_id)?;
            self.write_record(&*view, &mut txn, existing, &record)?;
        }
        self.commit(&mut guard, txn)?;
        debug!(peer = %record.peer_id, "peer stored");
        Ok(record)
    }

    /// Build the record for a [`NewPeer`] without storing it: validate every field,
    /// sanitize the name, seal the secrets. `last_seen` and `last_connected` are now.
    ///
    /// The secrets are sealed under the key current now: a record built before a
    /// [`rotate_key`](Self::rotate_key) is refused by [`store_peer`](Self::store_peer)
    /// afterwards (pass the [`NewPeer`] to `store_peer` instead).
    pub fn create_peer(&self, new: NewPeer) -> Result<PeerRecord> {
        let peer_id = PeerId::new(new.peer_id)?;
        validate_public_key(&new.public_key)?;
        validate_server_count(new.ice_servers.len())?;
        for (i, server) in new.ice_servers.iter().enumerate() {
            validate_ice_urls(i, &server.urls, server.username.as_deref())?;
            if let Some(c) = &server.credential {
                validate_secret(&format!("ice_servers[{i}].credential"), c)?;
            }
        }
        validate_candidates(&new.cached_candidates)?;
        if let Some(s) = &new.shared_secret {
            validate_secret("shared_secret", s)?;
        }
        let cipher = self.cipher();
        let id = peer_id.as_str();
        let shared_secret = new
            .shared_secret
            .as_ref()
            .map(|s| cipher.seal(SecretKind::SharedSecret, id, s.expose()))
            .transpose()?;
        let ice_servers = new
            .ice_servers
            .into_iter()
            .map(|s| {
                let credential = s
                    .credential
                    .as_ref()
                    .map(|c| cipher.seal(SecretKind::IceCredential, id, c.expose()))
                    .transpose()?;
                Ok(IceServer {
                    urls: s.urls,
                    username: s.username,
                    credential,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let now = self.now();
        let record = PeerRecord {
            peer_id,
            display_name: sanitize_display_name(&new.display_name),
            public_key: new.public_key,
            shared_secret,
            last_seen: now,
            last_connected: now,
            last_known_ip: new.last_known_ip,
            ice_servers,
            cached_candidates: new.cached_candidates,
            connection_quality: Default::default(),
            reconnection_attempts: 0,
            blacklist_until: None,
            addresses: Vec::new(),
            metadata: Default::default(),
        };
        record.validate()?;
        Ok(record)
    }

    /// Timestamps must not lie in the future beyond clock skew: `last_seen` and
    /// `last_connected` at most `now` + [`MAX_CLOCK_SKEW_MS`], `blacklist_until` at
    /// most `now` + `blacklist_for` + [`MAX_CLOCK_SKEW_MS`]. A far-future time would
    /// make a peer never stale, never evicted, or blacklisted for ever.
    /// [`Error::InvalidInput`] names the field. Fields equal to `unchanged`'s (a
    /// record being modified) are not checked, so a record stored by an older
    /// version stays updatable.
    pub(crate) fn check_times(
        &self,
        record: &PeerRecord,
        now: u64,
        unchanged: Option<&PeerRecord>,
    ) -> Result<()> {
        let limit = now.saturating_add(MAX_CLOCK_SKEW_MS);
        let rule = "at most now + 1 day (a time in the future beyond clock skew)";
        if unchanged.is_none_or(|old| old.last_seen != record.last_seen) && record.last_seen > limit
        {
            return Err(Error::invalid("last_seen", rule));
        }
        if unchanged.is_none_or(|old| old.last_connected != record.last_connected)
            && record.last_connected > limit
        {
            return Err(Error::invalid("last_connected", rule));
        }
        crate::address::check_address_times(
            &record.addresses,
            unchanged.map(|old| old.addresses.as_slice()),
            now,
            limit,
        )?;
        let blacklist_limit = limit.saturating_add(self.settings.blacklist_for_ms);
        if let Some(until) = record.blacklist_until {
            if unchanged.is_none_or(|old| old.blacklist_until != record.blacklist_until)
                && until > blacklist_limit
            {
                return Err(Error::invalid(
                    "blacklist_until",
                    "at most now + blacklist_for + 1 day",
                ));
            }
        }
        Ok(())
    }

    /// Every sealed value of `record` must open under this book's key for this peer.
    pub(crate) fn check_seals(&self, record: &PeerRecord) -> Result<()> {
        let cipher = self.cipher();
        let id = record.peer_id.as_str();
        let rule = "must be sealed by this book's key for this peer (a sealed secret never moves between peers)";
        if let Some(s) = &record.shared_secret {
            cipher
                .open(SecretKind::SharedSecret, id, s)
                .map_err(|_| Error::invalid("shared_secret", rule))?;
        }
        for (i, server) in record.ice_servers.iter().enumerate() {
            if let Some(c) = &server.credential {
                cipher
                    .open(SecretKind::IceCredential, id, c)
                    .map_err(|_| Error::invalid(format!("ice_servers[{i}].credential"), rule))?;
            }
        }
        Ok(())
    }

    /// The peer with this id, if stored. A record that fails to decode is
    /// [`Error::Corrupted`] (remove it with [`remove_peer`](Self::remove_peer) or
    /// [`repair`](Self::repair)).
    pub fn get_peer(&self, peer_id: &str) -> Result<Option<PeerRecord>> {
        let id = PeerId::new(peer_id)?;
        match self.load_existing(&Direct(&self.backend), &id)? {
            None => Ok(None),
            Some(Existing::Decoded { record, .. }) => Ok(Some(record)),
            Some(Existing::Corrupt { detail, .. }) => Err(corrupted_record(&id, detail)),
        }
    }

    /// Remove a peer (corrupt or not). Returns whether it was there.
    pub fn remove_peer(&self, peer_id: &str) -> Result<bool> {
        let id = PeerId::new(peer_id)?;
        let mut guard = self.writer_lock()?;
        let mut txn = Txn {
            batch: WriteBatch::new(),
            counters: *guard,
        };
        {
            let view = self.backend.view()?;
            let Some(existing) = self.load_existing(&*view, &id)? else {
                return Ok(false);
            };
            self.delete_record(&*view, &mut txn, &id, &existing)?;
        }
        self.commit(&mut guard, txn)?;
        debug!(peer = %id, "peer removed");
        Ok(true)
    }

    /// A successful contact: `last_seen` = `last_connected` = now, attempts reset,
    /// blacklist cleared. Returns the updated record.
    pub fn update_last_seen(&self, peer_id: &str) -> Result<PeerRecord> {
        self.modify(peer_id, |record, now| {
            record.last_seen = now;
            record.last_connected = now;
            record.reconnection_attempts = 0;
            record.blacklist_until = None;
            Ok(())
        })
    }

    /// A failed reconnection: attempts += 1; at `failed_attempts` or more the peer is
    /// blacklisted until now + `blacklist_for`. Returns the updated record.
    pub fn increment_reconnection_attempts(&self, peer_id: &str) -> Result<PeerRecord> {
        let (limit, quarantine) = (
            self.settings.failed_attempts,
            self.settings.blacklist_for_ms,
        );
        self.modify(peer_id, |record, now| {
            record.reconnection_attempts = record.reconnection_attempts.saturating_add(1);
            if record.reconnection_attempts >= limit {
                record.blacklist_until = Some(now.saturating_add(quarantine));
                info!(peer = %record.peer_id, attempts = record.reconnection_attempts, "peer blacklisted");
            }
            Ok(())
        })
    }

    /// Change only the given fields of the peer's connection quality.
    pub fn update_connection_quality(
        &self,
        peer_id: &str,
        update: impl Into<crate::QualityUpdate>,
    ) -> Result<PeerRecord> {
        let update = update.into();
        self.modify(peer_id, |record, _| {
            let quality = update.apply(&record.connection_quality);
            quality.validate()?;
            record.connection_quality = quality;
            Ok(())
        })
    }

    /// Open the peer's shared secret, if it has one.
    pub fn open_shared_secret(&self, record: &PeerRecord) -> Result<Option<Secret>> {
        let Some(sealed) = &record.shared_secret else {
            return Ok(None);
        };
        self.cipher()
            .open(SecretKind::SharedSecret, record.peer_id.as_str(), sealed)
            .map(Some)
            .map_err(|_| sealed_corrupt(&record.peer_id, "shared_secret"))
    }

    /// Open the TURN credential of the peer's ICE server at `index`, if it has one.
    pub fn open_ice_credential(&self, record: &PeerRecord, index: usize) -> Result<Option<Secret>> {
        let server = record.ice_servers.get(index).ok_or_else(|| {
            Error::invalid(
                "index",
                format!("the peer has {} ice servers", record.ice_servers.len()),
            )
        })?;
        let Some(sealed) = &server.credential else {
            return Ok(None);
        };
        self.cipher()
            .open(SecretKind::IceCredential, record.peer_id.as_str(), sealed)
            .map(Some)
            .map_err(|_| sealed_corrupt(&record.peer_id, "ice credential"))
    }

    // ----- write plumbing ---------------------------------------------------------

    /// Read-modify-write of one decodable record under the writer lock.
    pub(crate) fn modify(
        &self,
        peer_id: &str,
        f: impl FnOnce(&mut PeerRecord, u64) -> Result<()>,
    ) -> Result<PeerRecord> {
        let id = PeerId::new(peer_id)?;
        let mut guard = self.writer_lock()?;
        let now = self.now();
        let view = self.backend.view()?;
        let (old, len) = match self.load_existing(&*view, &id)? {
            None => {
                return Err(Error::NotFound {
                    peer_id: id.to_string(),
                })
            }
            Some(Existing::Corrupt { detail, .. }) => return Err(corrupted_record(&id, detail)),
            Some(Existing::Decoded { record, len }) => (record, len),
        };
        let mut record = old.clone();
        f(&mut record, now)?;
        record.validate()?;
        self.check_times(&record, now, Some(&old))?;
        let existing = Existing::Decoded { record: old, len };
        let mut txn = Txn {
            batch: WriteBatch::new(),
            counters: *guard,
        };
        self.write_record(&*view, &mut txn, Some(existing), &record)?;
        drop(view); // a view ends before its thread writes (LMDB)
        self.commit(&mut guard, txn)?;
        Ok(record)
    }

    pub(crate) fn load_existing(
        &self,
        view: &dyn ReadView,
        id: &PeerId,
    ) -> Result<Option<Existing>> {
        let Some(bytes) = view.get(Space::Peers, id.as_bytes())? else {
            return Ok(None);
        };
        let len = bytes.len() as u64;
        Ok(Some(match PeerRecord::decode(&bytes) {
            Ok(record) if record.peer_id == *id => Existing::Decoded { record, len },
            Ok(record) => {
                let detail = format!("record names another peer ({})", record.peer_id);
                warn!(peer = %id, "corrupt peer record found: {detail}");
                Existing::Corrupt { len, detail }
            }
            Err(e) => {
                warn!(peer = %id, "corrupt peer record found: {e}");
                Existing::Corrupt { len, detail: e.0 }
            }
        }))
    }

    /// Put `record` (replacing `existing`), with quota checks and eviction.
    pub(crate) fn write_record(
        &self,
        view: &dyn ReadView,
        txn: &mut Txn,
        existing: Option<Existing>,
        record: &PeerRecord,
    ) -> Result<()> {
        let id = &record.peer_id;
        let encoded = record.encode();
        let new_len = encoded.len() as u64;
        let is_new = existing.is_none();
        if let Some(old) = &existing {
            self.delete_record(view, txn, id, old)?;
        }
        let fits = |c: &Counters| {
            let peers_ok = !is_new || c.peers < self.settings.max_peers;
            let bytes_ok = self
                .settings
                .max_bytes
                .is_none_or(|max| c.bytes.saturating_add(new_len) <= max);
            peers_ok && bytes_ok
        };
        if !fits(&txn.counters) {
            if !self.settings.evict_when_full {
                return Err(Error::QuotaExceeded(self.quota_hit(
                    &txn.counters,
                    is_new,
                    new_len,
                )));
            }
            let evicted = self.delete_least_recent(view, txn, Some(id), |c, _| fits(c))?;
            if !fits(&txn.counters) {
                return Err(Error::QuotaExceeded(self.quota_hit(
                    &txn.counters,
                    is_new,
                    new_len,
                )));
            }
            warn!(evicted, for_peer = %id, "peerbook full: evicted least recently seen peers");
        }
        Self::put_record_into(txn, record, encoded);
        Ok(())
    }

    fn quota_hit(&self, c: &Counters, is_new: bool, new_len: u64) -> Quota {
        match self.settings.max_bytes {
            Some(limit) if !(is_new && c.peers >= self.settings.max_peers) => Quota::Bytes {
                limit,
                needed: c.bytes.saturating_add(new_len),
            },
            _ => Quota::Peers {
                limit: self.settings.max_peers,
            },
        }
    }

    /// Put `record` (already encoded as `encoded`), its index entries and the
    /// counters into `txn`. No checks: callers validate and enforce quotas.
    pub(crate) fn put_record_into(txn: &mut Txn, record: &PeerRecord, encoded: Vec<u8>) {
        for (space, key, value) in keys::index_entries(record) {
            txn.batch.put(space, key, value);
        }
        txn.counters.peers = txn.counters.peers.saturating_add(1);
        txn.counters.bytes = txn.counters.bytes.saturating_add(encoded.len() as u64);
        txn.batch
            .put(Space::Peers, record.peer_id.as_bytes().to_vec(), encoded);
    }

    /// Delete the least recently seen peers (never `keep`) into `txn`, oldest first,
    /// until `enough(counters, deleted so far)`. Returns how many were deleted. The
    /// one LRU walk behind both eviction and [`cleanup_lru`](Self::cleanup_lru).
    pub(crate) fn delete_least_recent(
        &self,
        view: &dyn ReadView,
        txn: &mut Txn,
        keep: Option<&PeerId>,
        enough: impl Fn(&Counters, usize) -> bool,
    ) -> Result<usize> {
        let mut deleted = 0;
        let mut cursor: Bound<Vec<u8>> = Bound::Unbounded;
        while !enough(&txn.counters, deleted) {
            let page = self.index_page(
                view,
                Space::ByLastSeen,
                cursor,
                Bound::Unbounded,
                Direction::Forward,
                64,
            )?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            for key in &page {
                if enough(&txn.counters, deleted) {
                    break;
                }
                let Some((_, raw_id)) = keys::split_last_seen_key(key) else {
                    continue;
                };
                let Ok(id) = PeerId::from_bytes(raw_id) else {
                    continue;
                };
                // skip the kept peer, and stale duplicate entries of a peer already deleted
                let queued = txn
                    .batch
                    .ops()
                    .iter()
                    .any(|op| op.space() == Space::Peers && op.key() == id.as_bytes());
                if Some(&id) == keep || queued {
                    continue;
                }
                if let Some(existing) = self.load_existing(view, &id)? {
                    self.delete_record(view, txn, &id, &existing)?;
                    deleted += 1;
                }
            }
            cursor = Bound::Excluded(last);
        }
        Ok(deleted)
    }

    /// Delete a stored record and its index entries into `txn`.
    pub(crate) fn delete_record(
        &self,
        view: &dyn ReadView,
        txn: &mut Txn,
        id: &PeerId,
        existing: &Existing,
    ) -> Result<()> {
        match existing {
            Existing::Decoded { record, .. } => {
                for (space, key, _) in keys::index_entries(record) {
                    txn.batch.delete(space, key);
                }
            }
            Existing::Corrupt { .. } => {
                // The record cannot tell its index keys: find them by their id suffix.
                for space in [Space::ByLastSeen, Space::ByQuality] {
                    let width = keys::prefix_width(space);
                    let mut found = Vec::new();
                    view.scan(space, KeyRange::all(), Direction::Forward, &mut |k, _| {
                        if k.len() == width + id.as_bytes().len() && &k[width..] == id.as_bytes() {
                            found.push(k.to_vec());
                        }
                        ControlFlow::Continue(())
                    })?;
                    for key in found {
                        txn.batch.delete(space, key);
                    }
                }
            }
        }
        txn.batch.delete(Space::Peers, id.as_bytes().to_vec());
        txn.counters.peers = txn.counters.peers.saturating_sub(1);
        txn.counters.bytes = txn.counters.bytes.saturating_sub(existing.len());
        Ok(())
    }

    /// Write `txn` (with its counters) atomically; on success the in-memory counters follow.
    pub(crate) fn commit(&self, guard: &mut MutexGuard<'_, Counters>, mut txn: Txn) -> Result<()> {
        if txn.counters != **guard {
            txn.batch
                .put(Space::Meta, META_COUNTERS.to_vec(), txn.counters.encode());
        }
        if txn.batch.is_empty() {
            return Ok(());
        }
        self.write_batch(txn.batch)?;
        **guard = txn.counters;
        Ok(())
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

pub(crate) fn corrupted_record(id: &PeerId, detail: String) -> Error {
    Error::Corrupted {
        what: "peer record",
        location: format!("peers/{id}"),
        detail,
    }
}

fn sealed_corrupt(id: &PeerId, what: &str) -> Error {
    Error::Corrupted {
        what: "sealed secret",
        location: format!("peers/{id}"),
        detail: format!(
            "the {what} does not open under this book's key (tampered, or moved from another peer)"
        ),
    }
}
