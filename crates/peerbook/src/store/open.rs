//! Opening a book: option checks, the claim on the backend, first-time init,
//! the key check and the schema migrations of an older store.

use std::ops::{Bound, ControlFlow};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use tracing::{info, warn};

use crate::backend::{Backend, BackendError, Direction, KeyRange, Space, WriteBatch};
use crate::crypto::{Cipher, SealedSecret, SecretKind};
use crate::error::{Error, Result};
use crate::options::{duration_ms, Options};
use crate::schema::PeerRecord;

use super::{as_ref_bound, keys, Claim, PeerBook, Settings, WriterGuard, SCHEMA_VERSION};
use keys::{
    Counters, META_COUNTERS, META_KEY_CHECK, META_LAST_CLEANUP, META_MIGRATING, META_SCHEMA_VERSION,
};

/// Records or index keys per batch of a migration step.
const MIGRATION_CHUNK: usize = 1024;

/// Whether `backend` holds a peerbook book: meta `schema_version` (which
/// [`PeerBook::open`] writes into every book it creates or migrates), or any peer
/// record (a book from before schema versions, which `open` migrates). On a
/// backend holding neither, `open` starts a new book (after checking the key
/// against a key check left there, if any).
///
/// Read-only, and needs no key: for a program that needs an existing book, to
/// refuse a store peerbook never wrote before `PeerBook::open` would start a
/// book in it. Fails only when the backend does.
///
/// ```
/// use peerbook::{MasterKey, MemoryBackend, Options, PeerBook};
/// use peerbook::store::holds_book;
///
/// let backend = MemoryBackend::new();
/// assert!(!holds_book(&backend)?);
/// let book = PeerBook::open(backend, Options::new(MasterKey::generate()?))?;
/// assert!(holds_book(&book.close()?)?);
/// # Ok::<(), peerbook::Error>(())
/// ```
pub fn holds_book<B: Backend + ?Sized>(backend: &B) -> std::result::Result<bool, BackendError> {
    if backend.get(Space::Meta, META_SCHEMA_VERSION)?.is_some() {
        return Ok(true);
    }
    holds_peers(backend)
}

/// Whether `backend` holds any peer record, on one snapshot. Read-only, and
/// needs no key. Fails only when the backend does.
pub fn holds_peers<B: Backend + ?Sized>(backend: &B) -> std::result::Result<bool, BackendError> {
    let mut peers = false;
    backend.view()?.scan(
        Space::Peers,
        KeyRange::all(),
        Direction::Forward,
        &mut |_, _| {
            peers = true;
            ControlFlow::Break(())
        },
    )?;
    Ok(peers)
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
            return Err(Error::Locked {
                message: format!(
                    "this {} backend already serves a live book; close it first",
                    backend.engine_name()
                ),
                source: None,
            });
        }
        let claim = Claim(claim);
        let cipher = Cipher::new(&options.key);
        let mut book = PeerBook {
            backend,
            settings,
            cipher: RwLock::new(Arc::new(cipher)),
            writer_lock: Mutex::new(Counters::default()),
            poisoned: AtomicBool::new(false),
            group: Default::default(),
            _claim: claim,
            created: false,
            rank_scan_budget: super::rank::RANK_SCAN_BUDGET.into(),
        };
        book.created = book.open_existing_or_init()?;
        book.store_retention()?;
        Ok(book)
    }

    /// Check, migrate or start the book; `Ok(true)` when it started a new one.
    fn open_existing_or_init(&self) -> Result<bool> {
        let mut guard = self.lock_writer();
        let version = match self.backend.get(Space::Meta, META_SCHEMA_VERSION)? {
            None => None,
            Some(bytes) => Some(keys::decode_u32(&bytes).ok_or_else(|| Error::Corrupted {
                what: "meta",
                location: "schema_version".into(),
                detail: format!("expected 4 bytes, found {}", bytes.len()),
            })?),
        };
        let empty = !holds_peers(&self.backend)?;
        match version {
            None if empty => {
                // a key check left by a book whose version was lost binds its
                // key: a wrong one must not start a new book over it
                self.check_key_if_stored()?;
                self.init_meta(&mut guard)?;
                info!(
                    engine = self.backend.engine_name(),
                    schema = SCHEMA_VERSION,
                    "peerbook created a new book"
                );
                return Ok(true);
            }
            None => {
                // Records but no version: a version-0 store, whose migration tries
                // the key on a seal and writes the key check. A store that has one
                // all the same (its version lost) is checked like any other first:
                // a wrong key must not migrate it before being refused.
                let key_checked = self.check_key_if_stored()?;
                self.migrate_from(0, key_checked, &mut guard)?;
            }
            Some(found) if found > SCHEMA_VERSION => {
                return Err(Error::SchemaTooNew {
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(found) if found < SCHEMA_VERSION => {
                // A versioned book has a key check: never rewrite it under a wrong key.
                self.check_key()?;
                // An older build may have left its own migration unfinished (version
                // `found`, a marker naming where it started): start from there, or the
                // steps below `found` would never finish.
                let from = self.migration_in_progress(found)?.unwrap_or(found);
                self.migrate_from(from, true, &mut guard)?;
            }
            Some(_) => {
                let resume = self.migration_in_progress(SCHEMA_VERSION)?;
                // a migration writes the key check before the marker
                self.check_key()?;
                if let Some(from) = resume {
                    info!(
                        engine = self.backend.engine_name(),
                        from, "peerbook resuming an interrupted migration"
                    );
                    self.migrate_from(from, true, &mut guard)?;
                }
            }
        }
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
        Ok(false)
    }

    /// The version a migration left part way started from (meta `migrating`, see
    /// [`META_MIGRATING`]), if one was, in a book whose `schema_version` is
    /// `version`: the migrating build wrote its own version with the marker, so this
    /// build's ([`SCHEMA_VERSION`]) or, for a book an older build left mid-way, that
    /// build's. A marker that is not a version below `version` is damage: every step
    /// is idempotent, so the migration then runs again from the start (0) rather
    /// than lock the store shut.
    fn migration_in_progress(&self, version: u32) -> Result<Option<u32>> {
        let Some(bytes) = self.backend.get(Space::Meta, META_MIGRATING)? else {
            return Ok(None);
        };
        match keys::decode_u32(&bytes) {
            Some(from) if from < version => Ok(Some(from)),
            decoded => {
                warn!(
                    engine = self.backend.engine_name(),
                    marker = ?decoded,
                    len = bytes.len(),
                    "peerbook found a damaged migration marker; migrating again from the start"
                );
                Ok(Some(0))
            }
        }
    }

    /// Check the key against the stored key check, which a versioned store must
    /// have: [`Error::WrongKey`] when it does not match, [`Error::Corrupted`] when
    /// it is missing or damaged.
    fn check_key(&self) -> Result<()> {
        if self.check_key_if_stored()? {
            return Ok(());
        }
        Err(Error::Corrupted {
            what: "meta",
            location: "key_check".into(),
            detail: "missing; the book cannot tell whether this key is right".into(),
        })
    }

    /// Check the key against the stored key check if there is one: `Ok(true)` when
    /// it matches, `Ok(false)` when the store has none, [`Error::WrongKey`] when it
    /// does not match, [`Error::Corrupted`] when it is damaged. Reads it once.
    fn check_key_if_stored(&self) -> Result<bool> {
        let Some(stored) = self.backend.get(Space::Meta, META_KEY_CHECK)? else {
            return Ok(false);
        };
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
        Ok(true)
    }

    /// Bring a store written by an older schema up to [`SCHEMA_VERSION`], one step
    /// per version (0 -> 1 -> 2 ...). Each step is idempotent. `key_checked`: open
    /// has checked the key against the store's key check, before any write; every
    /// store but a version-0 one has one (so always true from 1 or later). The
    /// first write of a migration puts `schema_version` = [`SCHEMA_VERSION`] and
    /// meta `migrating` = the version it starts from ([`META_MIGRATING`]; without a
    /// key check also one, once the key has opened a seal); the last write, after
    /// every step and the compaction below, deletes the marker. So from the first
    /// change on, an older peerbook refuses the store (its version is too new)
    /// instead of reading an index in a layout it does not know or partly deleted,
    /// and a crash anywhere leaves either the old version untouched or the marker,
    /// from which the next open runs the migration again.
    ///
    /// - 0 -> 1: a store holding records but no meta (written before versioning): its
    ///   records are checked, and indexes, counters and the key check are built.
    /// - 1 -> 2: the score hint of every by_last_seen entry in the unambiguous
    ///   encoding (`blacklist_until` with a presence tag): done by the step to 4,
    ///   which puts every entry anew.
    /// - 2 -> 3: addresses and metadata (record format 2). Nothing is rewritten:
    ///   format-1 records decode lazily with none (see [`crate::schema`]).
    /// - 3 -> 4: by_last_seen sorts newest first (see [`keys`]). An old-layout key
    ///   cannot be told apart from a new one for sure, so every by_last_seen entry
    ///   is deleted ([`MIGRATION_CHUNK`] keys per batch, each batch scanning on from
    ///   the last key deleted), then every decodable record's entry is put in
    ///   bounded batches. Only records that decode (and whose id is their key) get
    ///   an entry: a corrupt record loses its old one, and
    ///   [`verify`](PeerBook::verify) reports it until [`repair`](PeerBook::repair)
    ///   quarantines it. Skipped from 0: the 0 -> 1 rebuild has already deleted
    ///   every key that is not such an entry (old layout included) and put the
    ///   entries. Then, from any version below 4, before the marker goes, the
    ///   backend is asked to compact by_last_seen
    ///   ([`Backend::compact_space`]): the deleted keys all sort before the new
    ///   ones, and an engine that keeps them as tombstones (RocksDB) would make
    ///   forward walks step over every one of them. The put pass also puts each
    ///   record's rank entry (the step to 5, below, in the same batches).
    /// - 4 -> 5: the rank index (see [`keys`]): the rank entry of every decodable
    ///   record (whose id is its key) is put, [`MIGRATION_CHUNK`] records per
    ///   batch. From 0 the rebuild has put them, from 1 to 3 the put pass of the
    ///   step to 4. Nothing is deleted: the region sorts after every quality key
    ///   and no schema before 5 wrote in it, so a rerun puts the same entries
    ///   again. Then, from any version below 5, before the marker goes, the
    ///   backend is asked to compact by_quality (failure only warns), which the
    ///   puts grew by a key per record.
    fn migrate_from(
        &self,
        found: u32,
        key_checked: bool,
        guard: &mut WriterGuard<'_>,
    ) -> Result<()> {
        debug_assert!(
            found == 0 || key_checked,
            "a versioned store has a key check"
        );
        info!(
            engine = self.backend.engine_name(),
            from = found,
            to = SCHEMA_VERSION,
            "peerbook migrating schema"
        );
        let mut marker = WriteBatch::new();
        if !key_checked {
            // No key check yet (a version-0 store): the key must open the store's
            // seals before one is written, or the right key would be refused for
            // ever. A store that has one (a resumed migration from 0, a store
            // whose version was lost, any migration from 1 or later) had it
            // checked by open before this: no probe, which a damaged seal could
            // fail.
            self.check_key_on_a_seal()?;
            marker.put(
                Space::Meta,
                META_KEY_CHECK.to_vec(),
                self.cipher().key_check()?.as_bytes().to_vec(),
            );
        }
        marker.put(
            Space::Meta,
            META_SCHEMA_VERSION.to_vec(),
            SCHEMA_VERSION.to_be_bytes().to_vec(),
        );
        marker.put(
            Space::Meta,
            META_MIGRATING.to_vec(),
            found.to_be_bytes().to_vec(),
        );
        self.write_batch(marker)?;
        if found < 1 {
            let report = self.rebuild(guard, false)?;
            info!(
                corrupt = report.quarantined,
                "peerbook migration 0 -> 1 done"
            );
        }
        // 1 -> 2 (score hints) is done by the step to 4, which puts every entry anew;
        // 2 -> 3 (record format 2) rewrites nothing: format-1 records decode lazily
        // (no addresses, no metadata) and are written in format 2 when next written.
        if found < 4 {
            // From 0, the rebuild above already deleted every by_last_seen key that
            // is not a record's entry (old layout included) and put the entries:
            // deleting and putting them all again would only double the writes.
            if found >= 1 {
                let deleted = self.delete_last_seen_entries()?;
                let written = self.put_entries(Self::last_seen_or_rank)?;
                // `written`: entries, a by_last_seen and a rank entry per record
                info!(deleted, written, "peerbook migration 3 -> 5 done");
            }
            // Every old key was deleted, and they all sort before the new ones
            // (`last_seen` < 2^63 <= `!last_seen`): on an engine that keeps them as
            // tombstones until a compaction, each forward walk of the index would
            // step over all of them first.
            if let Err(e) = self.backend.compact_space(Space::ByLastSeen) {
                warn!(
                    engine = self.backend.engine_name(),
                    error = %e,
                    "peerbook could not compact by_last_seen after migration 3 -> 4"
                );
            }
        }
        if found == 4 {
            let written = self.put_entries(Self::rank)?;
            info!(written, "peerbook migration 4 -> 5 done");
        }
        // the rank entries just put: a key per record in by_quality
        if let Err(e) = self.backend.compact_space(Space::ByQuality) {
            warn!(
                engine = self.backend.engine_name(),
                error = %e,
                "peerbook could not compact by_quality after migration to 5"
            );
        }
        let mut done = WriteBatch::new();
        done.delete(Space::Meta, META_MIGRATING.to_vec());
        self.write_batch(done)
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

    /// The entries the put pass of the step to 4 puts: by_last_seen's, and the
    /// rank entry (the step to 5 in the same pass); not the quality key.
    fn last_seen_or_rank(space: Space, key: &[u8]) -> bool {
        space == Space::ByLastSeen || Self::rank(space, key)
    }

    /// The entry the step to 5 puts: the rank entry (by_quality, after the quality keys).
    fn rank(space: Space, key: &[u8]) -> bool {
        space == Space::ByQuality && !keys::is_quality_key(key)
    }

    /// Put the index entries of [`keys::index_entries`] that `pick` picks (current
    /// key layout and score hint encoding) of every decodable record whose id is
    /// its key, [`MIGRATION_CHUNK`] records per batch. Returns how many entries
    /// were written.
    fn put_entries(&self, pick: fn(Space, &[u8]) -> bool) -> Result<u64> {
        self.rewrite_in_pages(Space::Peers, |k, v, batch| {
            if let Ok(record) = super::decode_stored(k, v) {
                for (space, key, value) in keys::index_entries(&record) {
                    if pick(space, &key) {
                        batch.put(space, key, value);
                    }
                }
            }
        })
    }

    /// Migration step to schema 4, first half: delete every by_last_seen entry,
    /// [`MIGRATION_CHUNK`] keys per batch. Returns how many were deleted.
    fn delete_last_seen_entries(&self) -> Result<u64> {
        self.rewrite_in_pages(Space::ByLastSeen, |k, _, batch| {
            batch.delete(Space::ByLastSeen, k.to_vec())
        })
    }

    /// One pass of a migration step over `space`, in pages of [`MIGRATION_CHUNK`]
    /// keys: `visit` fills the batch of a page's entries, written before the next
    /// page is read. Each page's scan starts after the last key of the page before:
    /// nothing else writes meanwhile (the writer lock and the claim are held), so
    /// every key left to visit lies above it, and a scan from the start of a space
    /// the pass deletes from would step over the tombstones of the batches before
    /// (on RocksDB; quadratic) or loop for ever on a backend that lost a delete. A
    /// rerun starts over from the first key. Returns how many ops were written.
    fn rewrite_in_pages(
        &self,
        space: Space,
        mut visit: impl FnMut(&[u8], &[u8], &mut WriteBatch),
    ) -> Result<u64> {
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
                view.scan(space, range, Direction::Forward, &mut |k, v| {
                    seen += 1;
                    last = Some(k.to_vec());
                    visit(k, v, &mut batch);
                    if seen >= MIGRATION_CHUNK {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })?;
            } // a view ends before its thread writes (LMDB)
            written += batch.len() as u64;
            let done = seen < MIGRATION_CHUNK;
            if !batch.is_empty() {
                self.write_batch(batch)?;
            }
            match last {
                Some(key) if !done => cursor = Bound::Excluded(key),
                _ => return Ok(written),
            }
        }
    }

    pub(super) fn init_meta(&self, guard: &mut WriterGuard<'_>) -> Result<()> {
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
        // A marker left beside no version and no peers names no work: the new
        // book must not resume it on every later open.
        batch.delete(Space::Meta, META_MIGRATING.to_vec());
        self.write_batch(batch)?;
        **guard = Counters::default();
        Ok(())
    }
}

#[cfg(test)]
#[path = "open_tests.rs"]
mod tests;
