//! The peer lifecycle on a known id: upserts that keep the connection history
//! ([`PeerBook::store_peer`] with a [`NewPeer`], [`PeerBook::learn_peer`]), the
//! explicit [`PeerBook::replace_peer`], and atomic read-modify-writes under the
//! writer lock ([`PeerBook::update_peer`], [`PeerBook::record_session`]).
//!
//! | call | new peer | known peer |
//! |---|---|---|
//! | `store_peer(NewPeer)` (connected now) | created, `last_seen` = `last_connected` = now | given fields replace, history kept, `last_seen` = `last_connected` = now, attempts 0, blacklist cleared |
//! | `learn_peer(NewPeer)` (heard of it) | created, `last_seen` = now, `last_connected` = 0 | given fields replace, history, times, attempts and blacklist kept |
//! | `replace_peer(NewPeer)` | created | replaced by a new record (history reset), public key may change |
//!
//! "Given" fields: a non-empty display name (after sanitizing), a non-empty public
//! key, a `Some` shared secret, non-empty ICE servers, non-empty candidates, a
//! `Some` IP. An empty stored public key is unset: the first non-empty one given
//! sets it (a peer first met without its key, such as a libp2p peer whose id is a
//! hash of its key, learns it later). A given public key that differs from a set
//! one is refused with [`Error::PublicKeyChanged`] by the first two calls. A stored record that fails to
//! decode cannot be merged: every call replaces it with a new record.

use tracing::debug;

use super::{Existing, PeerBook, StagedWrite};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::schema::{NewPeer, PeerId, PeerRecord};
use crate::scoring::{update_quality_metrics, SessionObservation};

/// How an upsert treats a known peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// Connected now: a success (times moved, attempts and blacklist cleared).
    Connected,
    /// Heard of the peer: no success, nothing cleared.
    Learned,
    /// Replace the whole record, public key included.
    Replace,
}

impl<B: Backend> PeerBook<B> {
    /// Learn of a peer without connecting to it (discovery, an address heard from
    /// another peer): counts as no success. A new peer is created with `last_seen`
    /// = now and `last_connected` = 0 (never connected); for a known peer the given
    /// fields replace the stored ones (as in [`store_peer`](Self::store_peer)) and
    /// its times, attempts, blacklist and history stay. A public key sets an unset
    /// (empty) one; one that differs from a set key is refused with
    /// [`Error::PublicKeyChanged`]. Returns what was stored.
    pub fn learn_peer(&self, peer: NewPeer) -> Result<PeerRecord> {
        self.upsert(peer, Upsert::Learned)
    }

    /// Replace a peer with a new record built from `peer`, whatever is stored: the
    /// connection history, addresses and metadata are dropped, and the public key
    /// may change (the explicit way past [`Error::PublicKeyChanged`]). `last_seen` =
    /// `last_connected` = now. Returns what was stored.
    pub fn replace_peer(&self, peer: NewPeer) -> Result<PeerRecord> {
        self.upsert(peer, Upsert::Replace)
    }

    /// Apply `change` to the current record of a peer under the writer lock, then
    /// validate and write record, index entries and counters in one batch: an
    /// atomic read-modify-write. [`Error::NotFound`] for an unknown peer. The
    /// closure must not change `peer_id` (field `peer_id`) or a set (non-empty)
    /// `public_key` ([`Error::PublicKeyChanged`]; it may set an unset one);
    /// changed timestamps and seals are checked as
    /// in [`store_peer`](Self::store_peer). An error from the closure or a check
    /// leaves the book unchanged. Returns the stored record.
    ///
    /// The closure runs with the writer lock held: it must not call the book.
    pub fn update_peer(
        &self,
        peer_id: &str,
        change: impl FnOnce(&mut PeerRecord) -> Result<()>,
    ) -> Result<PeerRecord> {
        self.modify(peer_id, |record, _| {
            let id = record.peer_id.clone();
            let key = record.public_key.clone();
            let (secret, servers) = (record.shared_secret.clone(), record.ice_servers.clone());
            change(record)?;
            if record.peer_id != id {
                return Err(Error::invalid(
                    "peer_id",
                    "update_peer cannot rename a peer (remove it and store a new one)",
                ));
            }
            // an unset (empty) key may be set; a set one never changes here
            if record.public_key != key && !key.is_empty() {
                return Err(Error::PublicKeyChanged {
                    peer_id: id.to_string(),
                });
            }
            if record.shared_secret != secret || record.ice_servers != servers {
                self.check_seals(record, None)?;
            }
            Ok(())
        })
    }

    /// Fold one finished session into the peer's connection quality under the
    /// writer lock ([`update_quality_metrics`]): the seed's disconnect flow
    /// (`getPeer` -> `updateQualityMetrics` -> `updateConnectionQuality`) as one call
    /// that loses no session when events for one peer overlap. Returns the stored
    /// record.
    pub fn record_session(
        &self,
        peer_id: &str,
        observation: &SessionObservation,
    ) -> Result<PeerRecord> {
        self.modify(peer_id, |record, _| {
            record.connection_quality =
                update_quality_metrics(&record.connection_quality, observation);
            Ok(())
        })
    }

    /// Store a [`NewPeer`] by `mode` (see the module docs).
    pub(crate) fn upsert(&self, mut new: NewPeer, mode: Upsert) -> Result<PeerRecord> {
        let id = PeerId::new(std::mem::take(&mut new.peer_id))?;
        // Seal under the writer lock: key rotation takes it too, so the cipher used
        // here is the one current when the batch commits.
        let guard = self.lock_writer_to_write()?;
        let mut given = self.build_peer(id, new)?;
        if mode == Upsert::Learned {
            given.last_connected = 0;
        }
        let mut staged = StagedWrite::one_record(*guard);
        let record = {
            let view = self.writer_view()?;
            let existing = self.load_existing(&*view, &given.peer_id)?;
            let record = match &existing {
                Some(Existing::Decoded { record: old, .. }) if mode != Upsert::Replace => {
                    merge(old, given, mode)?
                }
                _ => given,
            };
            self.write_record(&*view, &mut staged, existing, &record)?;
            record
        };
        self.commit(guard, staged)?;
        debug!(peer = %record.peer_id, ?mode, "peer stored");
        Ok(record)
    }
}

/// The known record `old` updated with the fields given in `new` (a record built by
/// `create_peer`, so its times are now).
fn merge(old: &PeerRecord, new: PeerRecord, mode: Upsert) -> Result<PeerRecord> {
    // An empty stored key is unset: the first one given sets it; a set one never
    // changes (`replace_peer` is the explicit way).
    if !new.public_key.is_empty() && !old.public_key.is_empty() && new.public_key != old.public_key
    {
        return Err(Error::PublicKeyChanged {
            peer_id: old.peer_id.to_string(),
        });
    }
    let mut record = old.clone();
    if record.public_key.is_empty() {
        record.public_key = new.public_key;
    }
    if !new.display_name.is_empty() {
        record.display_name = new.display_name;
    }
    if new.shared_secret.is_some() {
        record.shared_secret = new.shared_secret;
    }
    if !new.ice_servers.is_empty() {
        record.ice_servers = new.ice_servers;
    }
    if !new.cached_candidates.is_empty() {
        record.cached_candidates = new.cached_candidates;
    }
    if new.last_known_ip.is_some() {
        record.last_known_ip = new.last_known_ip;
    }
    if mode == Upsert::Connected {
        record.last_seen = new.last_seen;
        record.last_connected = new.last_connected;
        record.reconnection_attempts = 0;
        record.blacklist_until = None;
    }
    Ok(record)
}
