//! Addresses of any transport and application metadata kept per peer (schema 3).
//!
//! An address is an opaque string to peerbook: a multiaddr (`/ip4/1.2.3.4/tcp/4001`),
//! a `host:port`, a relay URL. peerbook only checks its shape and keeps where it came
//! from, when it last worked or failed, and when it expires.
//!
//! | rule | limit |
//! |---|---|
//! | addresses per peer | at most [`MAX_ADDRESSES`] (16), no duplicates |
//! | address | 1..=[`MAX_ADDRESS_LEN`] (256) bytes, no whitespace, control or bidi characters |
//! | `expires_at` | at most now + [`MAX_ADDRESS_TTL_MS`] (30 days) when set or changed |
//! | `last_success` / `last_failure` | at most now + 1 day when changed (clock skew) |
//! | metadata entries | at most [`MAX_METADATA_ENTRIES`] (16) |
//! | metadata key | 1..=[`MAX_METADATA_KEY_LEN`] (64) bytes, no whitespace, control or bidi characters |
//! | metadata value | at most [`MAX_METADATA_VALUE_LEN`] (256) bytes, no control characters (bidi allowed: show it escaped) |
//!
//! An address whose `expires_at` is at or before now is dropped by
//! [`PeerBook::cleanup_stale_peers`](crate::PeerBook::cleanup_stale_peers). A bad
//! value is an [`Error::InvalidInput`] naming the field (`addresses[2].addr`,
//! `metadata.agent`, ...).

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::{has_control_or_space, has_plain_control};

/// Most addresses per peer.
pub const MAX_ADDRESSES: usize = 16;
/// Longest address, in bytes.
pub const MAX_ADDRESS_LEN: usize = 256;
/// Furthest expiry of an address from now, in ms (30 days).
pub const MAX_ADDRESS_TTL_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// Most metadata entries per peer.
pub const MAX_METADATA_ENTRIES: usize = 16;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY_LEN: usize = 64;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE_LEN: usize = 256;

/// Where an address came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressSource {
    /// Seen on a live connection (the remote end of a socket).
    Observed,
    /// Announced by the peer itself (identify, a signed record).
    Reported,
    /// Found by discovery (mDNS, DHT, a tracker) or heard from another peer.
    Discovery,
    /// Configured by the user.
    #[default]
    Manual,
}

impl FromStr for AddressSource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "observed" => Ok(AddressSource::Observed),
            "reported" => Ok(AddressSource::Reported),
            "discovery" => Ok(AddressSource::Discovery),
            "manual" => Ok(AddressSource::Manual),
            _ => Err(Error::invalid(
                "source",
                "one of observed, reported, discovery, manual",
            )),
        }
    }
}

/// One way to reach a peer, with its history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerAddress {
    /// The address, opaque to peerbook (multiaddr, `host:port`, relay URL).
    pub addr: String,
    /// Where it came from.
    pub source: AddressSource,
    /// The last time a connection over it worked (ms), if ever.
    pub last_success: Option<u64>,
    /// The last time a connection over it failed (ms), if ever.
    pub last_failure: Option<u64>,
    /// When it stops being worth trying (ms); `None` keeps it.
    pub expires_at: Option<u64>,
}

impl PeerAddress {
    /// True when it expired at `now` (ms).
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// True when its last attempt worked: a success later than any failure (a
    /// failure in the same ms wins).
    pub fn last_worked(&self) -> bool {
        self.last_success
            .is_some_and(|ok| self.last_failure.is_none_or(|failed| ok > failed))
    }
}

/// Check an address string (field `field`).
pub fn validate_address(field: &str, addr: &str) -> Result<()> {
    address_error(addr).map_or(Ok(()), |rule| Err(Error::invalid(field, rule)))
}

/// The rule `addr` breaks, if any (no allocation when it breaks none).
fn address_error(addr: &str) -> Option<String> {
    if addr.is_empty() || addr.len() > MAX_ADDRESS_LEN {
        return Some(format!("1..={MAX_ADDRESS_LEN} bytes, got {}", addr.len()));
    }
    if has_control_or_space(addr) {
        return Some("no whitespace or control characters".into());
    }
    None
}

/// Check a list of addresses: count, each address, no duplicates.
pub fn validate_addresses(addresses: &[PeerAddress]) -> Result<()> {
    if addresses.len() > MAX_ADDRESSES {
        return Err(Error::invalid(
            "addresses",
            format!("at most {MAX_ADDRESSES} addresses, got {}", addresses.len()),
        ));
    }
    for (i, a) in addresses.iter().enumerate() {
        if let Some(rule) = address_error(&a.addr) {
            return Err(Error::invalid(format!("addresses[{i}].addr"), rule));
        }
        if addresses[..i].iter().any(|b| b.addr == a.addr) {
            return Err(Error::invalid(
                format!("addresses[{i}].addr"),
                "listed twice",
            ));
        }
    }
    Ok(())
}

/// Check the metadata map: entry count, key and value shapes.
pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    if metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid(
            "metadata",
            format!(
                "at most {MAX_METADATA_ENTRIES} entries, got {}",
                metadata.len()
            ),
        ));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.len() > MAX_METADATA_KEY_LEN || has_control_or_space(key) {
            return Err(Error::invalid(
                "metadata",
                format!("keys of 1..={MAX_METADATA_KEY_LEN} bytes without whitespace, control or bidi characters"),
            ));
        }
        if value.len() > MAX_METADATA_VALUE_LEN || has_plain_control(value) {
            return Err(Error::invalid(
                format!("metadata.{key}"),
                format!("at most {MAX_METADATA_VALUE_LEN} bytes, no control characters"),
            ));
        }
    }
    Ok(())
}

/// Check the times of `new`'s addresses that differ from `old`'s entry for the same
/// address: expiry at most `now` + [`MAX_ADDRESS_TTL_MS`], success and failure times
/// at most `limit` (now + clock skew).
pub(crate) fn check_address_times(
    new: &[PeerAddress],
    old: Option<&[PeerAddress]>,
    now: u64,
    limit: u64,
) -> Result<()> {
    for (i, a) in new.iter().enumerate() {
        let before = old.and_then(|old| old.iter().find(|b| b.addr == a.addr));
        let changed = |f: fn(&PeerAddress) -> Option<u64>| {
            before.is_none_or(|b| f(b) != f(a)) && f(a).is_some()
        };
        if changed(|a| a.expires_at)
            && a.expires_at.unwrap_or(0) > now.saturating_add(MAX_ADDRESS_TTL_MS)
        {
            return Err(Error::invalid(
                format!("addresses[{i}].expires_at"),
                "at most now + 30 days",
            ));
        }
        for (name, f) in [
            (
                "last_success",
                (|a| a.last_success) as fn(&PeerAddress) -> Option<u64>,
            ),
            ("last_failure", |a| a.last_failure),
        ] {
            if changed(f) && f(a).unwrap_or(0) > limit {
                return Err(Error::invalid(
                    format!("addresses[{i}].{name}"),
                    "at most now + 1 day (a time in the future beyond clock skew)",
                ));
            }
        }
    }
    Ok(())
}
