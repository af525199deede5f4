//! The deterministic peer generator: the same seed gives the same book on every
//! engine and run.

#[allow(unused_imports)]
use crate::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use peerbook::backend::Backend;
use peerbook::{
    ConnectionType, Durability, ExportDocument, ExportOptions, ImportMode, ManualClock, MasterKey,
    MemoryBackend, NewIceServer, NewPeer, Options, PeerBook, PeerRecord, Secret,
};

// ----- the generator ------------------------------------------------------------------

/// SplitMix64's output function: a bijection on u64.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in 0..n as usize.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

const BASE58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &[u8] = b"0123456789abcdef";
const NAMES: [&str; 16] = [
    "Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory",
    "Niaj", "Olivia", "Peggy", "Rupert", "Sybil",
];
const DEVICES: [&str; 6] = ["laptop", "phone", "desktop", "tablet", "node", "relay box"];
const REGIONS: [&str; 6] = [
    "eu-west",
    "eu-central",
    "us-east",
    "us-west",
    "ap-south",
    "sa-east",
];

fn salted(i: usize, salt: u64) -> Rng {
    Rng::new(mix(SEED ^ salt ^ mix(i as u64)))
}

/// The id of generated peer `i`: a libp2p-like "12D3KooW" + 44 base58 characters,
/// unique per `i` (the first 11 characters encode a bijection of `i`).
pub fn peer_id(i: usize) -> String {
    let mut unique = mix(SEED ^ mix(i as u64 ^ 0x1D));
    let mut id = String::with_capacity(52);
    id.push_str("12D3KooW");
    for _ in 0..11 {
        id.push(char::from(BASE58[(unique % 58) as usize]));
        unique /= 58;
    }
    id.push_str(&salted(i, 0x1D).chars(BASE58, 33));
    id
}

fn ipv4(r: &mut Rng, a: u8, b: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, r.below(256) as u8, 1 + r.below(254) as u8)
}

/// Eight ICE candidates as a browser gathers them: host (IPv4, IPv6, TCP),
/// server-reflexive and relayed, with their related addresses.
fn candidates(r: &mut Rng) -> Vec<String> {
    let ufrag = r.chars(BASE64URL, 4);
    let lan = ipv4(r, 192, 168);
    let wan = ipv4(r, 203, 0);
    let relay = ipv4(r, 198, 51);
    let v6 = Ipv6Addr::new(
        0x2001,
        0xdb8,
        r.below(0x10000) as u16,
        r.below(0x10000) as u16,
        r.below(0x10000) as u16,
        r.below(0x10000) as u16,
        r.below(0x10000) as u16,
        r.below(0x10000) as u16,
    );
    let mut port = || 10_000 + r.below(50_000);
    let (p1, p2, p3, p4, p5, p6, p7, p8) = (
        port(),
        port(),
        port(),
        port(),
        port(),
        port(),
        port(),
        port(),
    );
    let foundation = |r: &mut Rng| 1_000_000_000 + r.below(3_000_000_000);
    let tail = |nid: u32, cost: u32| {
        format!("generation 0 ufrag {ufrag} network-id {nid} network-cost {cost}")
    };
    vec![
        format!(
            "candidate:{} 1 udp 2122260223 {lan} {p1} typ host {}",
            foundation(r),
            tail(1, 10)
        ),
        format!(
            "candidate:{} 1 udp 2122197247 {v6} {p2} typ host {}",
            foundation(r),
            tail(2, 10)
        ),
        format!(
            "candidate:{} 1 tcp 1518280447 {lan} 9 typ host tcptype active {}",
            foundation(r),
            tail(1, 10)
        ),
        format!(
            "candidate:{} 1 tcp 1518217471 {v6} 9 typ host tcptype active {}",
            foundation(r),
            tail(2, 10)
        ),
        format!(
            "candidate:{} 1 udp 1686052607 {wan} {p3} typ srflx raddr {lan} rport {p1} {}",
            foundation(r),
            tail(1, 10)
        ),
        format!(
            "candidate:{} 1 udp 1685987071 {wan} {p4} typ srflx raddr {lan} rport {p5} {}",
            foundation(r),
            tail(1, 50)
        ),
        format!(
            "candidate:{} 1 udp 41885439 {relay} {p6} typ relay raddr {wan} rport {p3} {}",
            foundation(r),
            tail(1, 10)
        ),
        format!(
            "candidate:{} 1 tcp 25108223 {relay} {p7} typ relay raddr {wan} rport {p8} {}",
            foundation(r),
            tail(1, 10)
        ),
    ]
}

/// Generated peer `i` as the application hands it over: a name, a P-256 JWK, a
/// 32-byte shared secret, a STUN server and a TURN server with a credential, eight
/// ICE candidates and an address.
pub fn new_peer(i: usize) -> NewPeer {
    let mut r = salted(i, 0x2E);
    let display_name = format!("{}'s {}", r.pick(&NAMES), r.pick(&DEVICES));
    let public_key = format!(
        r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
        r.chars(BASE64URL, 43),
        r.chars(BASE64URL, 43)
    );
    let region = *r.pick(&REGIONS);
    let ice_servers = vec![
        NewIceServer {
            urls: vec![
                "stun:stun.l.google.com:19302".into(),
                "stun:stun1.l.google.com:19302".into(),
            ],
            username: None,
            credential: None,
        },
        NewIceServer {
            urls: vec![
                format!("turn:turn-{region}.example.net:3478?transport=udp"),
                format!("turns:turn-{region}.example.net:5349?transport=tcp"),
            ],
            username: Some(format!("u{}", r.chars(HEX, 12))),
            credential: Some(Secret::from(r.chars(BASE64URL, 24))),
        },
    ];
    let cached_candidates = candidates(&mut r);
    let last_known_ip = Some(if r.chance(0.8) {
        IpAddr::V4(ipv4(&mut r, 203, 0))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            0,
            1 + r.below(0xffff) as u16,
        ))
    });
    NewPeer {
        peer_id: peer_id(i),
        display_name,
        public_key,
        shared_secret: Some(Secret::from(r.bytes(32))),
        ice_servers,
        cached_candidates,
        last_known_ip,
    }
}

/// Give record `i` its history: `last_seen` uniform over 60 days, varied connection
/// quality, a few failed attempts, 4 % blacklisted right now (none of them stale).
pub fn shape(record: &mut PeerRecord, i: usize) {
    let mut r = salted(i, 0x3F);
    let age = r.below(SPREAD_DAYS * DAY_MS);
    record.last_seen = NOW_MS - age;
    record.last_connected = record.last_seen.saturating_sub(r.below(6 * 3_600_000));
    let q = &mut record.connection_quality;
    q.connection_type = match r.below(100) {
        0..=29 => ConnectionType::Host,
        30..=74 => ConnectionType::Srflx,
        75..=94 => ConnectionType::Relay,
        _ => ConnectionType::Unknown,
    };
    q.latency_ms = match r.below(100) {
        0..=4 => None,
        5..=29 => Some(10 + r.below(40) as u32),
        30..=59 => Some(50 + r.below(50) as u32),
        60..=84 => Some(100 + r.below(100) as u32),
        85..=96 => Some(200 + r.below(300) as u32),
        _ => Some(500 + r.below(1000) as u32),
    };
    let reliability = *r.pick(&[0.97, 0.9, 0.75, 0.5, 0.2]);
    q.total_connections = r.below(60) as u32;
    q.successful_connections = (0..q.total_connections)
        .filter(|_| r.chance(reliability))
        .count() as u32;
    q.success_rate = if q.total_connections == 0 {
        0.0
    } else {
        q.successful_connections as f32 / q.total_connections as f32
    };
    q.avg_uptime_ms = if q.successful_connections == 0 {
        0
    } else {
        r.below(30 * 60_000)
    };
    match r.below(100) {
        0..=69 => {}
        70..=95 => record.reconnection_attempts = 1 + r.below(3) as u32,
        _ => {
            record.reconnection_attempts = 5;
            record.blacklist_until = Some(NOW_MS + 3_600_000 + r.below(22 * 3_600_000));
        }
    }
}

/// The master key of every bench book (never a real key).
pub fn key() -> MasterKey {
    MasterKey::from_bytes([0x5a; 32])
}

/// The bench books' options: fixed clock, room for the largest book, 10 % stale.
pub fn options(durability: Durability) -> Options {
    let mut o = Options::new(key()).with_clock(ManualClock::new(NOW_MS));
    o.max_peers = 100_000_000;
    o.inactive_after = Duration::from_secs(INACTIVE_AFTER_DAYS * 24 * 3600);
    o.durability = durability;
    o
}

/// Seals secrets for generated records: a book with the bench key (records it creates
/// open in every bench book, since seals depend only on the key and the peer id).
pub struct Generator {
    sealer: PeerBook<MemoryBackend>,
    template: ExportDocument,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl Generator {
    pub fn new() -> Self {
        let sealer = PeerBook::open(MemoryBackend::new(), options(Durability::Buffered))
            .expect("open the sealing book");
        let template = sealer
            .export_data(ExportOptions::default())
            .expect("an empty export with the key check");
        Generator { sealer, template }
    }

    /// The stored record of generated peer `i`, secrets sealed, history shaped.
    pub fn record(&self, i: usize) -> PeerRecord {
        let mut record = self
            .sealer
            .create_peer(new_peer(i))
            .expect("generated peers are valid");
        shape(&mut record, i);
        record
    }

    /// Seal a new peer into a record (what `store_peer` does before it writes).
    pub fn seal(&self, peer: NewPeer) -> PeerRecord {
        self.sealer
            .create_peer(peer)
            .expect("generated peers are valid")
    }

    /// An import document holding `peers` (with this key's key check).
    pub fn document(&self, peers: Vec<PeerRecord>) -> ExportDocument {
        ExportDocument {
            peers,
            ..self.template.clone()
        }
    }

    /// Import peers `0..n` into `book`, `LOAD_CHUNK` per batch. Returns the sums of
    /// the records' stored (postcard) and compact JSON sizes.
    pub fn load<B: Backend>(&self, book: &PeerBook<B>, n: usize) -> (u64, u64) {
        let (mut stored, mut json) = (0u64, 0u64);
        let mut start = 0;
        while start < n {
            let end = (start + LOAD_CHUNK).min(n);
            let peers: Vec<PeerRecord> = (start..end).map(|i| self.record(i)).collect();
            for p in &peers {
                stored += p.encode().len() as u64;
                json += serde_json::to_vec(p).expect("JSON").len() as u64;
            }
            book.import_data(&self.document(peers), ImportMode::Merge)
                .expect("bulk load");
            start = end;
        }
        (stored, json)
    }
}
