//! The input of the `ops_memory_vs_file` fuzz target: book settings and a list of
//! [`Op`]s, with the small pools of ids and address shapes they draw from.

use arbitrary::Arbitrary;

/// One operation of `ops_memory_vs_file`; ids are drawn from a pool of 6.
#[derive(Debug, Arbitrary)]
pub enum Op {
    /// Store a new peer.
    Store {
        /// Pool index.
        id: u8,
        /// Display name variant.
        name: u8,
        /// With a shared secret.
        secret: bool,
        /// With an ICE server (with a credential).
        ice: bool,
    },
    /// Store back the record read from the memory book, changed a little.
    StoreRecord {
        /// Pool index.
        id: u8,
        /// New `reconnection_attempts`.
        attempts: u8,
    },
    /// `get_peer`.
    Get(u8),
    /// `remove_peer`.
    Remove(u8),
    /// `update_last_seen`.
    UpdateLastSeen(u8),
    /// `increment_reconnection_attempts`.
    Increment(u8),
    /// `update_connection_quality`.
    Quality {
        /// Pool index.
        id: u8,
        /// `latency_ms`.
        latency: Option<Option<u32>>,
        /// `success_rate` (from a byte, may be out of range).
        success: Option<u8>,
        /// `connection_type`.
        kind: Option<u8>,
        /// `total_connections`.
        total: Option<u8>,
        /// `successful_connections`.
        successful: Option<u8>,
        /// `avg_uptime_ms`.
        uptime: Option<u32>,
    },
    /// `query_peers`.
    Query {
        /// Sort key.
        sort: u8,
        /// Descending.
        desc: bool,
        /// Limit.
        limit: Option<u8>,
        /// Max age, in minutes.
        max_age_min: Option<u16>,
        /// Minimum quality.
        min_quality: Option<u8>,
    },
    /// `get_reconnection_candidates`.
    Candidates {
        /// Limit.
        limit: u8,
        /// Max age, in minutes.
        max_age_min: Option<u16>,
    },
    /// `cleanup_stale_peers`.
    CleanupStale,
    /// `cleanup_lru`.
    CleanupLru(u8),
    /// `clear_all`.
    Clear,
    /// Move both clocks forward, in minutes (up to ~45 days).
    Advance(u16),
    /// Close and reopen the file book.
    Reopen,
    /// `get_storage_stats`, compared on the engine-independent fields.
    Stats,
    /// Export both (without secrets) and compare.
    Export,
    /// `learn_peer` (discovery: no success).
    Learn {
        /// Pool index.
        id: u8,
        /// With a shared secret.
        secret: bool,
    },
    /// `record_session`.
    Session {
        /// Pool index.
        id: u8,
        /// The session succeeded.
        success: bool,
        /// Uptime, in seconds.
        uptime_s: u16,
        /// Latency, if measured.
        latency: Option<u16>,
    },
    /// `add_address` (address from a small pool of shapes, some invalid).
    AddAddress {
        /// Pool index.
        id: u8,
        /// Address variant.
        addr: u8,
        /// Source variant.
        source: u8,
        /// Expiry, in minutes from now (may be past the 30-day limit).
        expires_min: Option<u16>,
    },
    /// `record_address_result`.
    AddressResult {
        /// Pool index.
        id: u8,
        /// Address variant.
        addr: u8,
        /// Worked.
        ok: bool,
    },
    /// `set_metadata`.
    Metadata {
        /// Pool index.
        id: u8,
        /// Key variant (some invalid).
        key: u8,
        /// Value variant, `None` removes.
        value: Option<u8>,
    },
}

/// Address shapes the ops target picks from: multiaddrs, host:port, a relay URL,
/// and invalid ones (empty, whitespace, too long).
pub(crate) fn address(variant: u8) -> String {
    match variant % 8 {
        0 => "/ip4/192.0.2.1/tcp/4001".into(),
        1 => "/ip6/2001:db8::1/udp/4001/quic-v1".into(),
        2 => "192.0.2.9:9000".into(),
        3 => "https://relay.example.org/r/x".into(),
        4 => String::new(),
        5 => "has space".into(),
        6 => "x".repeat(peerbook::address::MAX_ADDRESS_LEN + 1),
        _ => format!("/dns/node{variant}.example.org/tcp/1"),
    }
}

/// The arbitrary part of `ops_memory_vs_file`: book settings and the operations.
#[derive(Debug, Arbitrary)]
pub struct OpsInput {
    /// `max_peers` = 1 + this % 8.
    pub max_peers: u8,
    /// `evict_when_full`.
    pub evict: bool,
    /// The operations (at most [`MAX_OPS`] are run).
    pub ops: Vec<Op>,
}

/// The most operations one input runs.
pub const MAX_OPS: usize = 64;

const IDS: [&str; 6] = ["peer-a", "peer-b", "peer-c", "peer-d", "peer-e", "peer-f"];

pub(crate) fn pool(i: u8) -> &'static str {
    IDS[usize::from(i) % IDS.len()]
}
