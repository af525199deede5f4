//! Per-peer addresses and metadata: add or refresh an address, record a success or
//! failure over it, set metadata. Each call is one atomic read-modify-write of the
//! record (see [`crate::address`] for the rules).

use super::PeerBook;
use crate::address::{validate_address, AddressSource, PeerAddress};
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::schema::PeerRecord;

impl<B: Backend> PeerBook<B> {
    /// Add `addr` to the peer's addresses, or refresh it when known (new source and
    /// expiry, history kept). A bad address, a 17th address or an expiry beyond
    /// 30 days from now is [`Error::InvalidInput`] naming the field; nothing
    /// changes. Returns the stored record.
    pub fn add_address(
        &self,
        peer_id: &str,
        addr: &str,
        source: AddressSource,
        expires_at: Option<u64>,
    ) -> Result<PeerRecord> {
        validate_address("addr", addr)?;
        self.modify(peer_id, |record, _| {
            match record.addresses.iter_mut().find(|a| a.addr == addr) {
                Some(known) => {
                    known.source = source;
                    known.expires_at = expires_at;
                }
                // a 17th address fails the record's validation (field `addresses`)
                None => record.addresses.push(PeerAddress {
                    addr: addr.to_string(),
                    source,
                    last_success: None,
                    last_failure: None,
                    expires_at,
                }),
            }
            Ok(())
        })
    }

    /// Remove `addr` from the peer's addresses. Returns the stored record (unchanged
    /// apart from the list when the address was there).
    pub fn remove_address(&self, peer_id: &str, addr: &str) -> Result<PeerRecord> {
        self.modify(peer_id, |record, _| {
            record.addresses.retain(|a| a.addr != addr);
            Ok(())
        })
    }

    /// A connection over `addr` worked (`ok`) or failed: its `last_success` or
    /// `last_failure` becomes now. An address the peer does not have is
    /// [`Error::InvalidInput`] (field `addr`). The peer's own counters are not
    /// touched (use [`record_session`](Self::record_session)).
    pub fn record_address_result(&self, peer_id: &str, addr: &str, ok: bool) -> Result<PeerRecord> {
        self.modify(peer_id, |record, now| {
            let known = record
                .addresses
                .iter_mut()
                .find(|a| a.addr == addr)
                .ok_or_else(|| Error::invalid("addr", "not an address of this peer"))?;
            if ok {
                known.last_success = Some(now);
            } else {
                known.last_failure = Some(now);
            }
            Ok(())
        })
    }

    /// Set (`Some`) or remove (`None`) one metadata entry of the peer. Limits in
    /// [`crate::address`]; a bad entry is [`Error::InvalidInput`], nothing changes.
    pub fn set_metadata(
        &self,
        peer_id: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<PeerRecord> {
        self.modify(peer_id, |record, _| {
            match value {
                Some(v) => {
                    record.metadata.insert(key.to_string(), v.to_string());
                }
                None => {
                    record.metadata.remove(key);
                }
            }
            Ok(())
        })
    }
}
