//! The vocabulary of the differential test: the ids, addresses and limits the
//! transitions use, the [`Step`]s themselves, what a step returns ([`Outcome`],
//! with peers compared as [`View`]s), and the strategies that generate quality
//! patches, addresses and sessions.

use peerbook::address::PeerAddress;
use peerbook::scoring::DAY_MS;
use peerbook::{ConnectionQuality, ConnectionType, PeerId, PeerRecord, QualityUpdate};
use proptest::prelude::*;

pub const T0: u64 = 1_700_000_000_000;
pub const MAX_PEERS: usize = 5;
pub const FAILED_ATTEMPTS: u32 = 5;
pub const INACTIVE_MS: u64 = 30 * DAY_MS;
pub const CLEANUP_MS: u64 = 6 * 3_600_000;
/// Ids the transitions pick from: more valid ids than max_peers, and one invalid.
pub const IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "bad id"];
/// Addresses the transitions pick from: three valid (multiaddr, host:port, relay
/// URL) and one invalid.
pub const ADDRS: [&str; 4] = [
    "/ip4/192.0.2.1/tcp/4001",
    "192.0.2.2:9000",
    "https://relay.example.org/r/a",
    "bad address",
];

/// The user-visible state of one peer, as compared between model and books.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub id: String,
    pub display_name: String,
    pub last_seen: u64,
    pub last_connected: u64,
    pub quality: ConnectionQuality,
    pub attempts: u32,
    pub blacklist_until: Option<u64>,
    pub has_secret: bool,
    pub addresses: Vec<PeerAddress>,
}

impl View {
    pub fn of(r: &PeerRecord) -> View {
        View {
            id: r.peer_id.to_string(),
            display_name: r.display_name.clone(),
            last_seen: r.last_seen,
            last_connected: r.last_connected,
            quality: r.connection_quality,
            attempts: r.reconnection_attempts,
            blacklist_until: r.blacklist_until,
            has_secret: r.shared_secret.is_some(),
            addresses: r.addresses.clone(),
        }
    }

    /// A record for the scoring functions (secrets are irrelevant to scores).
    pub fn record(&self) -> PeerRecord {
        PeerRecord {
            peer_id: PeerId::new(self.id.clone()).expect("model ids are valid"),
            display_name: self.display_name.clone(),
            public_key: String::new(),
            shared_secret: None,
            last_seen: self.last_seen,
            last_connected: self.last_connected,
            last_known_ip: None,
            ice_servers: vec![],
            cached_candidates: vec![],
            connection_quality: self.quality,
            reconnection_attempts: self.attempts,
            blacklist_until: self.blacklist_until,
            addresses: self.addresses.clone(),
            metadata: Default::default(),
        }
    }
}

/// What a step returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Unit,
    Err(&'static str),
    Peer(Option<View>),
    Bool(bool),
    Count(usize),
    Ids(Vec<String>),
    Scored(Vec<(String, u8)>),
    Stats { peers: u64, blacklisted: u64 },
}

/// A partial quality update that prints readably when shrunk.
#[derive(Clone, Copy, Debug)]
pub struct QualityPatch {
    pub latency: Option<Option<u32>>,
    pub rate: Option<f32>,
    pub kind: Option<ConnectionType>,
    pub total: Option<u32>,
    pub ok: Option<u32>,
    pub uptime: Option<u64>,
}

impl QualityPatch {
    pub fn update(&self) -> QualityUpdate {
        QualityUpdate {
            latency_ms: self.latency,
            success_rate: self.rate,
            connection_type: self.kind,
            total_connections: self.total,
            successful_connections: self.ok,
            avg_uptime_ms: self.uptime,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Step {
    /// `store_peer(NewPeer)`: connected now (an upsert that keeps history).
    Store {
        id: usize,
        secret: bool,
    },
    /// `learn_peer(NewPeer)`: heard of the peer, no success.
    Learn {
        id: usize,
        secret: bool,
    },
    /// `add_address` of `ADDRS[addr]`, expiring `expires_ms` from now.
    AddAddress {
        id: usize,
        addr: usize,
        expires_ms: Option<u64>,
    },
    /// `record_address_result` of `ADDRS[addr]`.
    AddressResult {
        id: usize,
        addr: usize,
        ok: bool,
    },
    /// `record_session`: one finished session folded in.
    Session {
        id: usize,
        success: bool,
        uptime_ms: u64,
        latency_ms: Option<u32>,
    },
    /// get, change last_seen (and last_connected, which is never later), store the
    /// record back (the seed's IP change).
    Touch {
        id: usize,
        back_ms: u64,
    },
    Get {
        id: usize,
    },
    Remove {
        id: usize,
    },
    Seen {
        id: usize,
    },
    /// `times` failed reconnections in a row (the outcome is the last one's).
    Fail {
        id: usize,
        times: u32,
    },
    Quality {
        id: usize,
        patch: QualityPatch,
    },
    Query {
        sort: u8,
        desc: bool,
        limit: Option<usize>,
        max_age_ms: Option<u64>,
        min_quality: Option<u8>,
    },
    Candidates {
        limit: usize,
        max_age_ms: Option<u64>,
    },
    CleanupStale,
    CleanupLru(usize),
    Stats,
    NeedsCleanup,
    /// export, clear_all, import the export with Replace.
    ExportClearImport,
    ClearAll,
    Advance(u64),
    Reopen,
    /// `step` (one that writes at most one batch) with its write failing before
    /// (`after` false) or after (`after` true) the engine applies it.
    Faulty {
        step: Box<Step>,
        after: bool,
    },
    /// `step` with its `nth` engine read of kind `op` (0 get, 1 scan, 2 view) failing
    /// before (`after` false) or after the engine call: the step errs, changes
    /// nothing and poisons nothing; then it runs again and must match the model.
    FaultyRead {
        step: Box<Step>,
        op: u8,
        nth: u64,
        after: bool,
    },
}

pub fn patch_strategy() -> impl Strategy<Value = QualityPatch> {
    (
        prop::option::of(prop::option::of(prop_oneof![
            Just(10u32),
            Just(49),
            Just(50),
            Just(150),
            Just(700)
        ])),
        prop::option::of(prop_oneof![
            Just(0.0f32),
            Just(0.5),
            Just(0.9),
            Just(1.0),
            Just(f32::NAN),
            Just(1.5)
        ]),
        prop::option::of(prop_oneof![
            Just(ConnectionType::Host),
            Just(ConnectionType::Srflx),
            Just(ConnectionType::Relay),
            Just(ConnectionType::Unknown)
        ]),
        prop::option::of(0u32..6),
        prop::option::of(0u32..6),
        prop::option::of(prop_oneof![
            Just(0u64),
            Just(90_000),
            Just(400_000),
            Just(700_000)
        ]),
    )
        .prop_map(|(latency, rate, kind, total, ok, uptime)| QualityPatch {
            latency,
            rate,
            kind,
            total,
            ok,
            uptime,
        })
}

pub fn address_strategy(id: impl Strategy<Value = usize>) -> impl Strategy<Value = Step> {
    (
        id,
        0usize..4,
        prop::option::of(prop_oneof![Just(3_600_000u64), Just(40 * DAY_MS)]),
    )
        .prop_map(|(id, addr, expires_ms)| Step::AddAddress {
            id,
            addr,
            expires_ms,
        })
}

pub fn session_strategy(id: impl Strategy<Value = usize>) -> impl Strategy<Value = Step> {
    (
        id,
        any::<bool>(),
        prop_oneof![Just(0u64), Just(90_000), Just(700_000)],
        prop::option::of(prop_oneof![Just(10u32), Just(120), Just(900)]),
    )
        .prop_map(|(id, success, uptime_ms, latency_ms)| Step::Session {
            id,
            success,
            uptime_ms,
            latency_ms,
        })
}
