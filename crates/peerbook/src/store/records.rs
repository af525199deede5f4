//! Single-peer operations: store, create, get, remove, the attempt and quality
//! updates, opening sealed secrets, and the time and seal checks on a record.

use tracing::{debug, info};

use crate::backend::{Backend, Space};
use crate::crypto::{Nonces, SealedSecret, Secret, SecretKind};
use crate::error::{Error, Result};
use crate::schema::{
    is_sanitized_display_name, sanitize_display_name, validate_candidates, validate_ice_urls,
    validate_public_key, validate_secret, validate_server_count, IceServer, NewPeer, PeerId,
    PeerRecord,
};

use super::{
    corrupted_record, lifecycle, Direct, Existing, PeerBook, PeerInput, StagedWrite,
    MAX_CLOCK_SKEW_MS,
};

impl<B: Backend> PeerBook<B> {
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
    /// keeps the stored one; a non-empty one sets an unset (empty) stored key, and
    /// one that differs from a set key is refused with [`Error::PublicKeyChanged`]
    /// (use [`replace_peer`](Self::replace_peer)). A
    /// stored record that fails to decode is replaced by the new one. Learning of a
    /// peer without connecting is [`learn_peer`](Self::learn_peer). Returns what was
    /// stored.
    ///
    /// A new peer in a full book fails with [`Error::QuotaExceeded`] unless
    /// [`Options::evict_when_full`](crate::Options::evict_when_full) is set, in
    /// which case the least recently seen peers make room in the same atomic batch.
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
        let guard = self.lock_writer_to_write()?;
        record.display_name = sanitized(std::mem::take(&mut record.display_name));
        let now = self.now();
        let mut staged = StagedWrite::one_record(*guard);
        {
            // The stored record is read before the checks so that fields equal to
            // its (decoded, so validated) ones are not checked again; a read that
            // fails leaves the checks to run first, as they did before it.
            let loaded = self.writer_view().map_err(Error::from).and_then(|view| {
                let stored = view.get(Space::Peers, record.peer_id.as_bytes())?;
                Ok((view, stored))
            });
            let (view, stored) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    record.validate()?;
                    self.check_times(&record, now, None)?;
                    return Err(e);
                }
            };
            // The common update (a record read back, changed, stored): a valid new
            // record whose seals are the stored ones. The stored record is then
            // read against the new encoding, field by field, and only the fields
            // that differ are decoded and checked (`check_replaced`). Whenever it
            // says no, the stored record is decoded in full below, so every error
            // and every corrupt record is found as before.
            let fast = match &stored {
                Some(bytes) if record.validate_sanitized().is_ok() => {
                    let (encoded, ends) = record.encode_with_ends();
                    record
                        .check_replaced(&encoded, &ends, bytes)
                        .map(|replaced| (encoded, (replaced, bytes.len() as u64)))
                }
                _ => None,
            };
            if let Some((encoded, replaced)) = fast {
                self.check_times(&record, now, None)?;
                // the seals are byte for byte the stored ones: nothing to open
                self.write_encoded(&*view, &mut staged, false, Some(replaced), &record, encoded)?;
            } else {
                let existing = stored.map(|bytes| Self::existing_of(&record.peer_id, &bytes));
                let stored = match &existing {
                    Some(Existing::Decoded { record, .. }) => Some(record),
                    _ => None,
                };
                record.validate_changed(stored)?;
                self.check_times(&record, now, None)?;
                self.check_seals(&record, stored)?;
                self.write_record(&*view, &mut staged, existing, &record)?;
            }
        }
        self.commit(guard, staged)?;
        debug!(peer = %record.peer_id, "peer stored");
        Ok(record)
    }

    /// Build the record for a [`NewPeer`] without storing it: validate every field,
    /// sanitize the name, seal the secrets. `last_seen` and `last_connected` are now.
    ///
    /// The secrets are sealed under the key current now: a record built before a
    /// [`rotate_key`](Self::rotate_key) is refused by [`store_peer`](Self::store_peer)
    /// afterwards (pass the [`NewPeer`] to `store_peer` instead).
    pub fn create_peer(&self, mut new: NewPeer) -> Result<PeerRecord> {
        let peer_id = PeerId::new(std::mem::take(&mut new.peer_id))?;
        self.build_peer(peer_id, new)
    }

    /// [`create_peer`](Self::create_peer) for an id already checked (`new.peer_id`
    /// is not read).
    pub(crate) fn build_peer(&self, peer_id: PeerId, new: NewPeer) -> Result<PeerRecord> {
        validate_public_key(&new.public_key)?;
        validate_server_count(new.ice_servers.len())?;
        for (i, server) in new.ice_servers.iter().enumerate() {
            validate_ice_urls(i, &server.urls, server.username.as_deref())?;
            if let Some(c) = &server.credential {
                validate_secret(format_args!("ice_servers[{i}].credential"), c)?;
            }
        }
        validate_candidates(&new.cached_candidates)?;
        if let Some(s) = &new.shared_secret {
            validate_secret("shared_secret", s)?;
        }
        let cipher = self.cipher();
        let id = peer_id.as_str();
        let seals = usize::from(new.shared_secret.is_some())
            + new
                .ice_servers
                .iter()
                .filter(|s| s.credential.is_some())
                .count();
        let mut nonces = Nonces::new(seals)?;
        let shared_secret = new
            .shared_secret
            .as_ref()
            .map(|s| cipher.seal_with(&mut nonces, SecretKind::SharedSecret, id, s.expose()))
            .transpose()?;
        let ice_servers = new
            .ice_servers
            .into_iter()
            .map(|s| {
                let credential = s
                    .credential
                    .as_ref()
                    .map(|c| {
                        cipher.seal_with(&mut nonces, SecretKind::IceCredential, id, c.expose())
                    })
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
            display_name: sanitized(new.display_name),
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
        // The fields of `new` were checked above, before sealing, and the name was
        // sanitized just now (`sanitized` keeps only a name that passes the rule);
        // what is left of `validate` is the parts this function sets (default
        // quality, no addresses, no metadata), all valid by construction: checking
        // every candidate and url a second time cost about a tenth of a Buffered
        // store_peer on memory. Tests hold the two equal.
        record.validate_built()?;
        debug_assert!(
            record.validate().is_ok(),
            "create_peer built an invalid record"
        );
        Ok(record)
    }

    /// Timestamps must not lie in the future beyond clock skew: `last_seen` and
    /// `last_connected` at most `now` + [`MAX_CLOCK_SKEW_MS`], `blacklist_until` at
    /// most `now` + `blacklist_for` + [`MAX_CLOCK_SKEW_MS`]. A far-future time would
    /// make a peer never stale, never evicted, or blacklisted for ever. And
    /// `last_connected` at most `last_seen`: every connection is a contact, so a
    /// peer is never connected after it was last seen.
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
        let either_changed = unchanged.is_none_or(|old| {
            (old.last_seen, old.last_connected) != (record.last_seen, record.last_connected)
        });
        if either_changed && record.last_connected > record.last_seen {
            return Err(Error::invalid(
                "last_connected",
                "at most last_seen (a connection is a contact)",
            ));
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
    ///
    /// A seal byte for byte equal to the same seal of `stored` (this peer's record as
    /// read under the writer lock) is not opened again: it was checked when it was
    /// stored, and key rotation reseals every stored record under the same lock.
    pub(crate) fn check_seals(
        &self,
        record: &PeerRecord,
        stored: Option<&PeerRecord>,
    ) -> Result<()> {
        let cipher = self.cipher();
        let id = record.peer_id.as_str();
        let rule = "must be sealed by this book's key for this peer (a sealed secret never moves between peers)";
        let stored_secret = stored.and_then(|r| r.shared_secret.as_ref());
        if let Some(s) = record
            .shared_secret
            .as_ref()
            .filter(|&s| Some(s) != stored_secret)
        {
            cipher
                .open(SecretKind::SharedSecret, id, s)
                .map_err(|_| Error::invalid("shared_secret", rule))?;
        }
        let stored_credential = |c: &SealedSecret| {
            stored.is_some_and(|r| {
                r.ice_servers
                    .iter()
                    .any(|s| s.credential.as_ref() == Some(c))
            })
        };
        for (i, server) in record.ice_servers.iter().enumerate() {
            if let Some(c) = server
                .credential
                .as_ref()
                .filter(|&c| !stored_credential(c))
            {
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
        let guard = self.lock_writer_to_write()?;
        let mut staged = StagedWrite::new(*guard);
        {
            let view = self.writer_view()?;
            let Some(existing) = self.load_existing(&*view, &id)? else {
                drop(view);
                self.settle(guard)?;
                return Ok(false);
            };
            self.delete_record(&*view, &mut staged, &id, &existing)?;
        }
        self.commit(guard, staged)?;
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
}

/// `name` sanitized, kept as it is (no allocation) when it is sanitized already,
/// as a record read back always is.
fn sanitized(name: String) -> String {
    if is_sanitized_display_name(&name) {
        name
    } else {
        sanitize_display_name(&name)
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
