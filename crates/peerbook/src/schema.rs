//! The record schema: [`PeerRecord`] and its parts, [`NewPeer`] (the seed's
//! `createPeerData`), the validation rules of every field, display-name sanitizing,
//! and the stored encoding (a format byte + a postcard body, written by hand in
//! `encode.rs`).
//!
//! | field | rule |
//! |---|---|
//! | `peer_id` | 1..=128 bytes of printable ASCII, no whitespace |
//! | `display_name` | sanitized: control and bidi-override chars removed, whitespace collapsed, trimmed, at most 64 chars |
//! | `public_key` | at most 4 KiB |
//! | `ice_servers` | at most 8, each with 1..=4 urls of scheme `stun:`, `stuns:`, `turn:`, `turns:` |
//! | `cached_candidates` | at most 32, each at most 512 bytes, no control chars |
//! | `connection_quality` | `success_rate` finite in 0..=1, `successful_connections <= total_connections` |
//! | `addresses`, `metadata` | see [`address`](crate::address) |
//!
//! Stored encoding: a format byte, then the postcard body. [`RECORD_FORMAT_V2`]
//! (schema 3) adds `addresses` and `metadata` at the end of the record;
//! [`RECORD_FORMAT_V1`] records (schemas 1 and 2) are decoded lazily into the same
//! struct with no addresses and no metadata, and written back in the new format the
//! next time the peer is written. Records are never rewritten in bulk to upgrade.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::address::{validate_addresses, validate_metadata, PeerAddress};
use crate::crypto::{SealedSecret, Secret, MAX_SECRET_LEN};
use crate::error::{Error, Result};

/// Longest peer id, in bytes.
pub const MAX_PEER_ID_LEN: usize = 128;
/// Longest display name after sanitizing, in chars.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Longest public key, in bytes.
pub const MAX_PUBLIC_KEY_LEN: usize = 4096;
/// Most ICE servers per peer.
pub const MAX_ICE_SERVERS: usize = 8;
/// Most urls per ICE server.
pub const MAX_ICE_URLS: usize = 4;
/// Longest ICE url, in bytes.
pub const MAX_ICE_URL_LEN: usize = 512;
/// Longest TURN username, in bytes.
pub const MAX_USERNAME_LEN: usize = 256;
/// Most cached ICE candidates per peer.
pub const MAX_CANDIDATES: usize = 32;
/// Longest cached candidate, in bytes.
pub const MAX_CANDIDATE_LEN: usize = 512;

/// The format byte of records written by schemas 1 and 2 (no addresses, no metadata).
pub const RECORD_FORMAT_V1: u8 = 1;
/// The format byte of records written by schema 3: the v1 fields, then
/// `addresses` and `metadata`.
pub const RECORD_FORMAT_V2: u8 = 2;

/// A validated peer id: 1..=128 bytes of printable ASCII, no whitespace.
///
/// ```
/// use peerbook::PeerId;
/// assert!(PeerId::new("ABC123").is_ok());
/// assert!(PeerId::new("has space").is_err());
/// assert!(PeerId::new("").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerId(String);

impl PeerId {
    /// Validate `id` as a peer id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        match check_peer_id(id.as_bytes()) {
            Ok(()) => Ok(PeerId(id)),
            Err(rule) => Err(Error::invalid("peer_id", rule)),
        }
    }

    /// Parse stored key bytes as a peer id.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        check_peer_id(bytes).map_err(|rule| Error::invalid("peer_id", rule))?;
        // check_peer_id admits ASCII only, so this is valid UTF-8
        Ok(PeerId(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn check_peer_id(bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Err("must not be empty".into());
    }
    if bytes.len() > MAX_PEER_ID_LEN {
        return Err(format!(
            "at most {MAX_PEER_ID_LEN} bytes, got {}",
            bytes.len()
        ));
    }
    // Every id stored or read is checked: the block-wise scan of the text checks,
    // the byte-by-byte search only for the error (7 instructions a byte before).
    if !text::is_visible_ascii(bytes) {
        let pos = bytes.iter().position(|b| !(0x21..=0x7e).contains(b));
        return Err(format!(
            "printable ASCII without whitespace only (byte {} is not)",
            pos.unwrap_or_default()
        ));
    }
    Ok(())
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({:?})", self.0)
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PeerId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        PeerId::new(s)
    }
}

impl TryFrom<String> for PeerId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        PeerId::new(s)
    }
}

impl TryFrom<&str> for PeerId {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        PeerId::new(s)
    }
}

impl From<PeerId> for String {
    fn from(id: PeerId) -> String {
        id.0
    }
}

impl AsRef<str> for PeerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// How a connection to the peer was made (the ICE candidate type that won).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionType {
    /// Direct host candidate.
    Host,
    /// Server-reflexive (through NAT, via STUN).
    Srflx,
    /// Relayed through TURN.
    Relay,
    /// Not known yet.
    #[default]
    Unknown,
}

impl FromStr for ConnectionType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "host" => Ok(ConnectionType::Host),
            "srflx" => Ok(ConnectionType::Srflx),
            "relay" => Ok(ConnectionType::Relay),
            "unknown" => Ok(ConnectionType::Unknown),
            _ => Err(Error::invalid(
                "connection_type",
                "one of host, srflx, relay, unknown",
            )),
        }
    }
}

/// How good the connections to a peer have been.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectionQuality {
    /// Smoothed round-trip latency in ms, if measured.
    pub latency_ms: Option<u32>,
    /// successful / total connections, 0..=1.
    pub success_rate: f32,
    /// The candidate type of the last connection.
    pub connection_type: ConnectionType,
    /// Connections attempted.
    pub total_connections: u32,
    /// Connections that succeeded.
    pub successful_connections: u32,
    /// Mean session length over successful sessions, in ms.
    pub avg_uptime_ms: u64,
}

impl ConnectionQuality {
    /// Check the rules: `success_rate` finite in 0..=1, `successful <= total`.
    pub fn validate(&self) -> Result<()> {
        if !self.success_rate.is_finite() || !(0.0..=1.0).contains(&self.success_rate) {
            return Err(Error::invalid(
                "connection_quality.success_rate",
                "a finite number in 0..=1",
            ));
        }
        if self.successful_connections > self.total_connections {
            return Err(Error::invalid(
                "connection_quality.successful_connections",
                "at most total_connections",
            ));
        }
        Ok(())
    }
}

/// A STUN/TURN server to reach the peer through, as stored (credential sealed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// 1..=4 urls of scheme `stun:`, `stuns:`, `turn:` or `turns:`.
    pub urls: Vec<String>,
    /// TURN username, if any.
    pub username: Option<String>,
    /// TURN credential, sealed like a shared secret.
    pub credential: Option<SealedSecret>,
}

/// An ICE server as the application hands it over, with a plaintext credential.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewIceServer {
    /// 1..=4 urls of scheme `stun:`, `stuns:`, `turn:` or `turns:`.
    pub urls: Vec<String>,
    /// TURN username, if any.
    pub username: Option<String>,
    /// TURN credential in plaintext; sealed when the peer is created.
    pub credential: Option<Secret>,
}

/// Everything the book knows about one peer.
///
/// Secrets are sealed: read them with
/// [`PeerBook::open_shared_secret`](crate::PeerBook::open_shared_secret) and
/// [`PeerBook::open_ice_credential`](crate::PeerBook::open_ice_credential).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// The peer's id.
    pub peer_id: PeerId,
    /// Sanitized display name.
    pub display_name: String,
    /// The peer's public key (a JWK or multibase key, opaque to peerbook).
    pub public_key: String,
    /// The sealed shared secret, if any.
    pub shared_secret: Option<SealedSecret>,
    /// Last contact, ms since the Unix epoch.
    pub last_seen: u64,
    /// Last successful connection, ms since the Unix epoch.
    pub last_connected: u64,
    /// Last known IP address.
    pub last_known_ip: Option<IpAddr>,
    /// STUN/TURN servers to reach the peer.
    pub ice_servers: Vec<IceServer>,
    /// ICE candidates from the last connection.
    pub cached_candidates: Vec<String>,
    /// Connection statistics.
    pub connection_quality: ConnectionQuality,
    /// Failed reconnection attempts since the last success.
    pub reconnection_attempts: u32,
    /// Blacklisted until this time (ms), if blacklisted.
    pub blacklist_until: Option<u64>,
    /// Addresses of any transport (schema 3; empty in older records and exports).
    #[serde(default)]
    pub addresses: Vec<PeerAddress>,
    /// Application metadata (agent version, protocols...; schema 3).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A record as [`RECORD_FORMAT_V1`] stored it: [`PeerRecord`] without the schema 3
/// fields (postcard bodies have no field names, so the layout must match exactly).
#[derive(Deserialize)]
struct RecordV1 {
    peer_id: PeerId,
    display_name: String,
    public_key: String,
    shared_secret: Option<SealedSecret>,
    last_seen: u64,
    last_connected: u64,
    last_known_ip: Option<IpAddr>,
    ice_servers: Vec<IceServer>,
    cached_candidates: Vec<String>,
    connection_quality: ConnectionQuality,
    reconnection_attempts: u32,
    blacklist_until: Option<u64>,
}

impl From<RecordV1> for PeerRecord {
    fn from(r: RecordV1) -> Self {
        PeerRecord {
            peer_id: r.peer_id,
            display_name: r.display_name,
            public_key: r.public_key,
            shared_secret: r.shared_secret,
            last_seen: r.last_seen,
            last_connected: r.last_connected,
            last_known_ip: r.last_known_ip,
            ice_servers: r.ice_servers,
            cached_candidates: r.cached_candidates,
            connection_quality: r.connection_quality,
            reconnection_attempts: r.reconnection_attempts,
            blacklist_until: r.blacklist_until,
            addresses: Vec::new(),
            metadata: BTreeMap::new(),
        }
    }
}

fn take_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    let (value, rest): (T, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| DecodeError(format!("postcard: {e}")))?;
    if !rest.is_empty() {
        return Err(DecodeError(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

/// A peer as the application describes it when it first connects (the seed's
/// `createPeerData`), with plaintext secrets that the book seals.
///
/// ```
/// use peerbook::{NewPeer, Secret};
/// let peer = NewPeer {
///     peer_id: "ABC123".into(),
///     display_name: "Alice".into(),
///     public_key: "{\"kty\":\"EC\"}".into(),
///     shared_secret: Some(Secret::from("secret-key")),
///     ..NewPeer::default()
/// };
/// assert!(format!("{peer:?}").contains("[redacted]"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewPeer {
    /// The peer's id (validated).
    pub peer_id: String,
    /// Display name (sanitized).
    pub display_name: String,
    /// Public key, at most 4 KiB.
    pub public_key: String,
    /// Plaintext shared secret, sealed on store.
    pub shared_secret: Option<Secret>,
    /// STUN/TURN servers with plaintext credentials.
    pub ice_servers: Vec<NewIceServer>,
    /// ICE candidates.
    pub cached_candidates: Vec<String>,
    /// Last known IP address.
    pub last_known_ip: Option<IpAddr>,
}

pub(crate) fn validate_public_key(key: &str) -> Result<()> {
    if key.len() > MAX_PUBLIC_KEY_LEN {
        return Err(Error::invalid(
            "public_key",
            format!("at most {MAX_PUBLIC_KEY_LEN} bytes, got {}", key.len()),
        ));
    }
    Ok(())
}

/// `field` is formatted only for an error (a valid secret costs no allocation).
pub(crate) fn validate_secret(field: impl std::fmt::Display, secret: &Secret) -> Result<()> {
    if secret.is_empty() {
        return Err(Error::invalid(
            field.to_string(),
            "must not be empty (use None for no secret)",
        ));
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(Error::invalid(
            field.to_string(),
            format!("at most {MAX_SECRET_LEN} bytes"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_ice_urls(
    index: usize,
    urls: &[String],
    username: Option<&str>,
) -> Result<()> {
    if urls.is_empty() || urls.len() > MAX_ICE_URLS {
        return Err(Error::invalid(
            format!("ice_servers[{index}].urls"),
            format!("1..={MAX_ICE_URLS} urls"),
        ));
    }
    for (u, url) in urls.iter().enumerate() {
        let field = || format!("ice_servers[{index}].urls[{u}]");
        if url.len() > MAX_ICE_URL_LEN {
            return Err(Error::invalid(
                field(),
                format!("at most {MAX_ICE_URL_LEN} bytes"),
            ));
        }
        let scheme_ok = ["stun:", "stuns:", "turn:", "turns:"]
            .iter()
            .any(|s| url.starts_with(s) && url.len() > s.len());
        if !scheme_ok {
            return Err(Error::invalid(
                field(),
                "must start with stun:, stuns:, turn: or turns: and name a host",
            ));
        }
        if has_control_or_space(url) {
            return Err(Error::invalid(
                field(),
                "no whitespace or control characters",
            ));
        }
    }
    if let Some(name) = username {
        if name.len() > MAX_USERNAME_LEN || has_control(name) {
            return Err(Error::invalid(
                format!("ice_servers[{index}].username"),
                format!("at most {MAX_USERNAME_LEN} bytes, no control characters"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn validate_server_count(count: usize) -> Result<()> {
    if count > MAX_ICE_SERVERS {
        return Err(Error::invalid(
            "ice_servers",
            format!("at most {MAX_ICE_SERVERS} servers, got {count}"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_candidates(candidates: &[String]) -> Result<()> {
    if candidates.len() > MAX_CANDIDATES {
        return Err(Error::invalid(
            "cached_candidates",
            format!(
                "at most {MAX_CANDIDATES} candidates, got {}",
                candidates.len()
            ),
        ));
    }
    for (i, c) in candidates.iter().enumerate() {
        validate_candidate(i, c)?;
    }
    Ok(())
}

/// The rule of one cached candidate, the one at `index`.
fn validate_candidate(index: usize, c: &str) -> Result<()> {
    if c.len() > MAX_CANDIDATE_LEN || has_control(c) {
        return Err(Error::invalid(
            format!("cached_candidates[{index}]"),
            format!("at most {MAX_CANDIDATE_LEN} bytes, no control characters"),
        ));
    }
    Ok(())
}

/// The display name rule: sanitized ([`is_sanitized_display_name`]).
fn validate_display_name(name: &str) -> Result<()> {
    if is_sanitized_display_name(name) {
        return Ok(());
    }
    Err(Error::invalid(
        "display_name",
        format!("sanitized: no control or bidi characters, single spaces, trimmed, at most {MAX_DISPLAY_NAME_CHARS} chars"),
    ))
}

impl PeerRecord {
    /// Check every field rule except the secrets' seals (which need the book's key).
    ///
    /// The display name must already be sanitized ([`sanitize_display_name`] leaves it
    /// unchanged).
    pub fn validate(&self) -> Result<()> {
        self.validate_changed(None)
    }

    /// [`validate`](Self::validate), with the fields equal to `checked`'s not
    /// checked again, for a record that replaces `checked` (a stored record read
    /// back by [`decode`](Self::decode), which validated it): every rule holds for
    /// a value exactly when it holds for an equal one, so the outcome and the error
    /// (the first broken rule, in this order) are the same; comparing is a few
    /// length checks and memcmps where the checks scan every byte, which was half
    /// the CPU of a Buffered update of a record read back. The one list of the
    /// rules: without `checked` every rule runs.
    pub(crate) fn validate_changed(&self, checked: Option<&PeerRecord>) -> Result<()> {
        self.validate_rules(checked, false)
    }

    /// [`validate`](Self::validate) of a record whose display name has just been
    /// sanitized (`store_peer` keeps a name only after
    /// [`is_sanitized_display_name`] said yes, else takes [`sanitize_display_name`]'s
    /// output, which passes the rule): the name's rule is not run a second time.
    pub(crate) fn validate_sanitized(&self) -> Result<()> {
        debug_assert!(
            is_sanitized_display_name(&self.display_name),
            "validate_sanitized on a name sanitizing would change"
        );
        self.validate_rules(None, true)
    }

    /// The rules, in order (see [`validate_changed`](Self::validate_changed)); the
    /// display name's only unless `name_sanitized`.
    fn validate_rules(&self, checked: Option<&PeerRecord>, name_sanitized: bool) -> Result<()> {
        // Whether a rule must run: always without `checked`, else when the field
        // it checks is not `same` as (or not found in) `checked`'s.
        let differs = |same: &dyn Fn(&PeerRecord) -> bool| checked.is_none_or(|old| !same(old));
        if !name_sanitized && differs(&|old| old.display_name == self.display_name) {
            validate_display_name(&self.display_name)?;
        }
        if differs(&|old| old.public_key == self.public_key) {
            validate_public_key(&self.public_key)?;
        }
        validate_server_count(self.ice_servers.len())?;
        for (i, server) in self.ice_servers.iter().enumerate() {
            let same = |o: &IceServer| o.urls == server.urls && o.username == server.username;
            if differs(&|old| old.ice_servers.iter().any(same)) {
                validate_ice_urls(i, &server.urls, server.username.as_deref())?;
            }
        }
        if self.cached_candidates.len() > MAX_CANDIDATES {
            return validate_candidates(&self.cached_candidates);
        }
        for (i, c) in self.cached_candidates.iter().enumerate() {
            if differs(&|old| old.cached_candidates.contains(c)) {
                validate_candidate(i, c)?;
            }
        }
        self.connection_quality.validate()?;
        if differs(&|old| old.addresses == self.addresses) {
            validate_addresses(&self.addresses)?;
        }
        if differs(&|old| old.metadata == self.metadata) {
            validate_metadata(&self.metadata)?;
        }
        Ok(())
    }

    /// The rules of [`validate`](Self::validate) left to check on a record built
    /// from fields already checked one by one (`create_peer`): the quality, the
    /// addresses and the metadata. Not the display name: `create_peer` keeps a
    /// name only after [`is_sanitized_display_name`] said yes, else it takes
    /// [`sanitize_display_name`]'s output, which passes the rule (a test holds it
    /// on arbitrary text); checking it again was a second scan of the name.
    pub(crate) fn validate_built(&self) -> Result<()> {
        self.connection_quality.validate()?;
        validate_addresses(&self.addresses)?;
        validate_metadata(&self.metadata)
    }

    /// Decode stored bytes. Every failure is an error value naming the cause; nothing
    /// here panics, whatever the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (&format, body) = bytes
            .split_first()
            .ok_or(DecodeError("empty value".into()))?;
        let record: PeerRecord = match format {
            RECORD_FORMAT_V1 => take_body::<RecordV1>(body)?.into(),
            RECORD_FORMAT_V2 => take_body(body)?,
            _ => return Err(DecodeError(format!("unknown record format byte {format}"))),
        };
        record.validate().map_err(|e| DecodeError(e.to_string()))?;
        Ok(record)
    }

    /// True when the peer is blacklisted at `now` (ms).
    pub fn is_blacklisted(&self, now: u64) -> bool {
        self.blacklist_until.is_some_and(|until| until > now)
    }
}

/// Why stored bytes failed to decode into a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// A partial update of [`ConnectionQuality`]: only the fields that are `Some` change.
///
/// The seed passes `{latency, connectionType}` alone while a connection is up:
///
/// ```
/// use peerbook::{ConnectionType, QualityUpdate};
/// let update = QualityUpdate {
///     latency_ms: Some(Some(42)),
///     connection_type: Some(ConnectionType::Host),
///     ..QualityUpdate::default()
/// };
/// # let _ = update;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QualityUpdate {
    /// New latency (`Some(None)` forgets it).
    pub latency_ms: Option<Option<u32>>,
    /// New success rate.
    pub success_rate: Option<f32>,
    /// New connection type.
    pub connection_type: Option<ConnectionType>,
    /// New total connection count.
    pub total_connections: Option<u32>,
    /// New successful connection count.
    pub successful_connections: Option<u32>,
    /// New average uptime.
    pub avg_uptime_ms: Option<u64>,
}

impl QualityUpdate {
    /// Apply to `quality`, giving the updated value (not yet validated).
    pub fn apply(&self, quality: &ConnectionQuality) -> ConnectionQuality {
        ConnectionQuality {
            latency_ms: self.latency_ms.unwrap_or(quality.latency_ms),
            success_rate: self.success_rate.unwrap_or(quality.success_rate),
            connection_type: self.connection_type.unwrap_or(quality.connection_type),
            total_connections: self.total_connections.unwrap_or(quality.total_connections),
            successful_connections: self
                .successful_connections
                .unwrap_or(quality.successful_connections),
            avg_uptime_ms: self.avg_uptime_ms.unwrap_or(quality.avg_uptime_ms),
        }
    }
}

impl From<ConnectionQuality> for QualityUpdate {
    /// Replace every field.
    fn from(q: ConnectionQuality) -> Self {
        QualityUpdate {
            latency_ms: Some(q.latency_ms),
            success_rate: Some(q.success_rate),
            connection_type: Some(q.connection_type),
            total_connections: Some(q.total_connections),
            successful_connections: Some(q.successful_connections),
            avg_uptime_ms: Some(q.avg_uptime_ms),
        }
    }
}

#[path = "schema/encode.rs"]
mod encode;
#[path = "schema/replaced.rs"]
mod replaced;
#[path = "schema/text.rs"]
mod text;

pub(crate) use replaced::Replaced;

#[cfg(test)]
use text::is_bidi_control;
pub(crate) use text::{has_control, has_control_or_space, has_plain_control};
pub use text::{is_sanitized_display_name, sanitize_display_name};

#[cfg(test)]
#[path = "schema/encode_tests.rs"]
mod encode_tests;
#[cfg(test)]
#[path = "schema/replaced_tests.rs"]
mod replaced_tests;
#[cfg(test)]
#[path = "schema/tests.rs"]
mod tests;
