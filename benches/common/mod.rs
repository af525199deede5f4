//! What the two bench targets and the report example share: the run mode and book
//! sizes, the deterministic peer generator, the fixtures (pristine books built once
//! per backend and size, cached on disk), and where results go.
//!
//! Included with `#[path]` by `examples/bench_report.rs`, so each user sees only a
//! part of it.
#![allow(dead_code)]

pub mod sql;

use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::ControlFlow;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};
use peerbook::backend::{Backend, Direction, KeyRange, Space, WriteBatch};
use peerbook::{
    ConnectionType, Durability, ExportDocument, ExportOptions, ImportMode, ManualClock, MasterKey,
    MemoryBackend, NewIceServer, NewPeer, Options, PeerBook, PeerRecord, Secret,
};
use peerbook_file::{FileBackend, FileOptions};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};
use peerbook_rocksdb::{RocksBackend, RocksOptions};
use serde_json::{json, Value};

/// Seed of every generated peer: same seed, same book, on every backend and run.
pub const SEED: u64 = 0x5EED_B00C_2024_0007;
/// The (fixed) time of every book: a `ManualClock` standing here.
pub const NOW_MS: u64 = 1_750_000_000_000;
/// One day in ms.
pub const DAY_MS: u64 = 86_400_000;
/// `last_seen` is spread uniformly over this many days before `NOW_MS`.
pub const SPREAD_DAYS: u64 = 60;
/// `Options::inactive_after` of the bench books: with `last_seen` uniform over 60 days,
/// the peers unseen for more than 54 days are the 10 % that cleanup removes.
pub const INACTIVE_AFTER_DAYS: u64 = 54;
/// Bulk loads import this many records per atomic batch.
pub const LOAD_CHUNK: usize = 1000;
/// Bump when the generator or the fixture layout changes: cached books are rebuilt
/// (they are also rebuilt whenever the bench binary changes, see `fixture_stamp`).
pub const FIXTURE_VERSION: &str = "peerbook-bench fixtures v2";

/// What a cached fixture must match: the generator version and the bench binary
/// that built it (any change to the core, a backend or its default options rebuilds
/// the binary, so books are never reused across such changes).
pub fn fixture_stamp() -> String {
    let exe = std::env::current_exe()
        .and_then(fs::metadata)
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("{} bytes, modified {modified}", m.len())
        })
        .unwrap_or_else(|_| "unknown binary".into());
    format!("{FIXTURE_VERSION}; bench binary {exe}")
}

// ----- mode and sizes -----------------------------------------------------------------

/// How much to measure: `Smoke` under `cargo test --benches` (every benchmark once, on
/// tiny books), otherwise `PEERBOOK_BENCH_MODE` = quick | default | full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Smoke,
    Quick,
    Default,
    Full,
}

/// Criterion settings of the fast (single operation) benchmarks.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub sample_size: usize,
    pub warm_up: Duration,
    pub measurement: Duration,
    pub nresamples: usize,
}

impl Mode {
    /// `Smoke` unless cargo passed `--bench` without `--test` (criterion's own rule
    /// for its test mode, which runs every benchmark once).
    pub fn detect() -> Mode {
        let args: Vec<String> = std::env::args().collect();
        if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
            Mode::from_env()
        } else {
            Mode::Smoke
        }
    }

    /// The mode `PEERBOOK_BENCH_MODE` names (default: `Default`).
    pub fn from_env() -> Mode {
        match std::env::var("PEERBOOK_BENCH_MODE").as_deref() {
            Ok("quick") => Mode::Quick,
            Ok("full") => Mode::Full,
            Ok("smoke") => Mode::Smoke,
            _ => Mode::Default,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Default => "default",
            Mode::Full => "full",
        }
    }

    /// Book sizes, in peers.
    pub fn sizes(self) -> Vec<usize> {
        match self {
            Mode::Smoke => vec![40],
            Mode::Quick => vec![1_000, 10_000],
            Mode::Default => vec![1_000, 100_000],
            Mode::Full => vec![1_000, 100_000, 1_000_000],
        }
    }

    pub fn timing(self) -> Timing {
        let ms = Duration::from_millis;
        match self {
            Mode::Smoke | Mode::Quick => Timing {
                sample_size: 10,
                warm_up: ms(100),
                measurement: ms(400),
                nresamples: 5_000,
            },
            Mode::Default => Timing {
                sample_size: 15,
                warm_up: ms(400),
                measurement: ms(1_500),
                nresamples: 20_000,
            },
            Mode::Full => Timing {
                sample_size: 20,
                warm_up: ms(1_000),
                measurement: ms(3_000),
                nresamples: 50_000,
            },
        }
    }

    /// Whole-book workloads that rebuild their book for every run (cleanup, import)
    /// are measured up to this size; a million-peer book would take minutes per run.
    pub fn whole_book_max(self) -> usize {
        100_000
    }
}

/// "1k", "100k", "1M".
pub fn size_label(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Where results and fixtures go: `PEERBOOK_BENCH_OUT`, else `$CARGO_TARGET_DIR`
/// (or the target dir this binary was built in) + `/peerbook-bench`.
pub fn out_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PEERBOOK_BENCH_OUT") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
        };
        return dir.join("peerbook-bench");
    }
    // <target>/<profile>/{deps,examples}/<binary>
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("peerbook-bench")
}

/// Write `value` as `<out>/data/<name>.json`.
pub fn write_data(out: &Path, name: &str, value: &Value) {
    let dir = out.join("data");
    fs::create_dir_all(&dir).expect("create the bench data directory");
    let text = serde_json::to_string_pretty(value).expect("JSON");
    fs::write(dir.join(format!("{name}.json")), text).expect("write bench data");
}

/// One line of progress on stderr, next to criterion's own output.
pub fn progress(started: Instant, what: &str) {
    eprintln!("==> [{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg says.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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

// ----- backends and fixtures ------------------------------------------------------------

/// The four backends under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Memory,
    Lmdb,
    Rocks,
    File,
}

pub const KINDS: [Kind; 4] = [Kind::Memory, Kind::Lmdb, Kind::Rocks, Kind::File];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Lmdb => "lmdb",
            Kind::Rocks => "rocksdb",
            Kind::File => "file",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.name() == name)
    }

    pub fn on_disk(self) -> bool {
        self != Kind::Memory
    }
}

/// A backend behind the trait object every bench book uses.
pub type Dyn = Arc<dyn Backend>;
/// A bench book.
pub type Book = PeerBook<Dyn>;

/// LMDB with address space for a million-peer book (the map is not disk).
pub fn lmdb_options() -> LmdbOptions {
    LmdbOptions::default().with_max_map_size(64 << 30)
}

/// Open the disk backend `kind` in `dir` with its default options.
pub fn open_backend(kind: Kind, dir: &Path) -> Dyn {
    match kind {
        Kind::Memory => Arc::new(MemoryBackend::new()) as Dyn,
        Kind::Lmdb => Arc::new(LmdbBackend::open(dir, lmdb_options()).expect("open LMDB")),
        Kind::Rocks => {
            Arc::new(RocksBackend::open(dir, RocksOptions::default()).expect("open RocksDB"))
        }
        Kind::File => Arc::new(FileBackend::open(dir, FileOptions::default()).expect("open file")),
    }
}

/// Compact the closed book in `dir` (RocksDB, file) and return its disk usage as
/// the backend reports it.
fn compact_and_measure(kind: Kind, dir: &Path) -> u64 {
    match kind {
        Kind::Memory => 0,
        Kind::Lmdb => {
            let b = LmdbBackend::open(dir, lmdb_options()).expect("open LMDB");
            b.disk_usage().expect("disk usage")
        }
        Kind::Rocks => {
            let b = RocksBackend::open(dir, RocksOptions::default()).expect("open RocksDB");
            b.compact().expect("compact RocksDB");
            b.flush().expect("flush RocksDB");
            b.disk_usage().expect("disk usage")
        }
        Kind::File => {
            let b = FileBackend::open(dir, FileOptions::default()).expect("open file");
            b.compact().expect("compact file backend");
            b.disk_usage().expect("disk usage")
        }
    }
}

/// The size of a compacting copy of the closed LMDB book in `dir` (what
/// `mdb_env_copy2(MDB_CP_COMPACT)` leaves: live pages only, no free pages).
pub fn lmdb_compacted_bytes(dir: &Path) -> u64 {
    let data = fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.len() as usize);
    let mut options = heed::EnvOpenOptions::new();
    options.map_size((data * 2).max(1 << 20)).max_dbs(8);
    // SAFETY: the book is closed; nothing else maps or writes these files meanwhile.
    let env = unsafe { options.open(dir) }.expect("open the LMDB environment");
    let copy = dir.with_extension("compacted.mdb");
    remove(&copy);
    env.copy_to_path(&copy, heed::CompactionOption::Enabled)
        .expect("compacting copy");
    drop(env);
    let bytes = allocated_bytes(&copy);
    remove(&copy);
    bytes
}

/// Bytes allocated on disk by the files under `path` (st_blocks x 512).
pub fn allocated_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| allocated_bytes(&e.path()))
                    .sum()
            })
            .unwrap_or(0)
    } else {
        meta.blocks() * 512
    }
}

/// Copy a directory tree (a closed book).
pub fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Remove a file or directory tree, if present.
pub fn remove(path: &Path) {
    if path.is_dir() {
        let _ = fs::remove_dir_all(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

/// Copy every entry of `from` into `to` (a deep copy of an in-memory book).
pub fn copy_entries(from: &dyn Backend, to: &dyn Backend) {
    for space in Space::ALL {
        let mut batch = WriteBatch::new();
        from.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
            batch.put(space, k.to_vec(), v.to_vec());
            ControlFlow::Continue(())
        })
        .expect("scan");
        to.write(batch, Durability::Buffered).expect("copy");
    }
}

/// What building a pristine book found (cached next to it as JSON).
#[derive(Clone, Debug, Default)]
pub struct FixtureStats {
    pub peers: usize,
    /// Sum of the records' stored encodings (format byte + postcard).
    pub record_bytes: u64,
    /// Sum of the records' compact JSON.
    pub json_bytes: u64,
    /// Allocated bytes of the book's directory after flush and compaction.
    pub dir_bytes: u64,
    /// `Backend::disk_usage` after flush and compaction.
    pub disk_usage: u64,
    /// LMDB only: allocated bytes of a compacting copy (0 elsewhere).
    pub compacted_bytes: u64,
    pub build_secs: f64,
    /// True when an earlier run's book was reused.
    pub cached: bool,
}

impl FixtureStats {
    pub fn to_json(&self, backend: &str) -> Value {
        json!({
            "backend": backend,
            "peers": self.peers,
            "record_bytes": self.record_bytes,
            "json_bytes": self.json_bytes,
            "dir_bytes": self.dir_bytes,
            "disk_usage": self.disk_usage,
            "compacted_bytes": self.compacted_bytes,
            "build_secs": self.build_secs,
            "cached": self.cached,
            "version": fixture_stamp(),
        })
    }

    pub fn from_json(v: &Value) -> Option<Self> {
        if v.get("version")?.as_str()? != fixture_stamp() {
            return None;
        }
        Some(FixtureStats {
            peers: v.get("peers")?.as_u64()? as usize,
            record_bytes: v.get("record_bytes")?.as_u64()?,
            json_bytes: v.get("json_bytes")?.as_u64()?,
            dir_bytes: v.get("dir_bytes")?.as_u64()?,
            disk_usage: v.get("disk_usage")?.as_u64()?,
            compacted_bytes: v.get("compacted_bytes")?.as_u64()?,
            build_secs: v.get("build_secs")?.as_f64()?,
            cached: true,
        })
    }
}

/// A book of `n` generated peers as built, never written to by a benchmark: the
/// benchmarks work on copies.
pub struct Pristine {
    pub kind: Kind,
    pub n: usize,
    /// The book's directory (disk backends).
    pub dir: Option<PathBuf>,
    /// The book itself (memory backend).
    pub memory: Option<MemoryBackend>,
    pub stats: FixtureStats,
}

/// The pristine directory of a disk fixture, and its marker file.
pub fn fixture_paths(out: &Path, name: &str, n: usize) -> (PathBuf, PathBuf) {
    let books = out.join("books");
    (
        books.join(format!("{name}-{n}")),
        books.join(format!("{name}-{n}.json")),
    )
}

/// Read a cached fixture's stats if its marker matches this version and its files exist.
pub fn cached_fixture(out: &Path, name: &str, n: usize) -> Option<FixtureStats> {
    let (dir, marker) = fixture_paths(out, name, n);
    if !dir.exists() {
        return None;
    }
    let v: Value = serde_json::from_str(&fs::read_to_string(marker).ok()?).ok()?;
    FixtureStats::from_json(&v).filter(|s| s.peers == n)
}

/// Record a built fixture (the marker is written last: a half-built book is rebuilt).
pub fn mark_fixture(out: &Path, name: &str, stats: &FixtureStats) {
    let (_, marker) = fixture_paths(out, name, stats.peers);
    let text = serde_json::to_string_pretty(&stats.to_json(name)).expect("JSON");
    fs::write(marker, text).expect("write the fixture marker");
}

/// The pristine book of `kind` with `n` peers: cached under `<out>/books/` for disk
/// backends (built with Buffered writes, flushed and compacted), built in memory
/// otherwise.
pub fn pristine(out: &Path, gen: &Generator, kind: Kind, n: usize) -> Pristine {
    let started = Instant::now();
    if kind == Kind::Memory {
        let backend = MemoryBackend::new();
        let book = PeerBook::open(backend.clone(), options(Durability::Buffered)).expect("open");
        let (record_bytes, json_bytes) = gen.load(&book, n);
        return Pristine {
            kind,
            n,
            dir: None,
            memory: Some(backend),
            stats: FixtureStats {
                peers: n,
                record_bytes,
                json_bytes,
                build_secs: started.elapsed().as_secs_f64(),
                ..FixtureStats::default()
            },
        };
    }
    let (dir, marker) = fixture_paths(out, kind.name(), n);
    if let Some(stats) = cached_fixture(out, kind.name(), n) {
        return Pristine {
            kind,
            n,
            dir: Some(dir),
            memory: None,
            stats,
        };
    }
    remove(&dir);
    remove(&marker);
    fs::create_dir_all(dir.parent().expect("books dir")).expect("create books dir");
    let book = PeerBook::open(open_backend(kind, &dir), options(Durability::Buffered))
        .expect("open a new book");
    let (record_bytes, json_bytes) = gen.load(&book, n);
    drop(book.close().expect("close"));
    let disk_usage = compact_and_measure(kind, &dir);
    let stats = FixtureStats {
        peers: n,
        record_bytes,
        json_bytes,
        dir_bytes: allocated_bytes(&dir),
        disk_usage,
        compacted_bytes: if kind == Kind::Lmdb {
            lmdb_compacted_bytes(&dir)
        } else {
            0
        },
        build_secs: started.elapsed().as_secs_f64(),
        cached: false,
    };
    mark_fixture(out, kind.name(), &stats);
    Pristine {
        kind,
        n,
        dir: Some(dir),
        memory: None,
        stats,
    }
}

impl Pristine {
    /// A fresh copy of the book (a new directory `work`, or a deep copy in memory),
    /// opened as a backend.
    pub fn copy(&self, work: &Path) -> Dyn {
        match (&self.memory, &self.dir) {
            (Some(memory), _) => {
                let copy = MemoryBackend::new();
                copy_entries(memory, &copy);
                Arc::new(copy) as Dyn
            }
            (None, Some(dir)) => {
                remove(work);
                copy_dir(dir, work).expect("copy the pristine book");
                open_backend(self.kind, work)
            }
            (None, None) => unreachable!("a pristine book is in memory or on disk"),
        }
    }
}

/// What every benchmark group needs: the mode, where results go, the record generator.
pub struct Ctx {
    pub mode: Mode,
    pub out: PathBuf,
    pub gen: Generator,
    pub started: Instant,
    /// Holds the smoke run's scratch directory.
    pub _scratch: Option<tempfile::TempDir>,
}

impl Ctx {
    /// The context of one bench binary: the mode from the command line and
    /// environment, and a scratch output directory in smoke (test) mode.
    pub fn new() -> Ctx {
        let mode = Mode::detect();
        let scratch = (mode == Mode::Smoke).then(|| tempfile::tempdir().expect("a scratch dir"));
        let out = match &scratch {
            Some(dir) => dir.path().to_path_buf(),
            None => out_dir(),
        };
        Ctx {
            mode,
            out,
            gen: Generator::new(),
            started: Instant::now(),
            _scratch: scratch,
        }
    }

    /// A group of single-operation benchmarks.
    pub fn fast<'a>(&self, c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
        let t = self.mode.timing();
        let mut g = c.benchmark_group(name);
        g.sample_size(t.sample_size)
            .warm_up_time(t.warm_up)
            .measurement_time(t.measurement)
            .nresamples(t.nresamples);
        g
    }

    /// A group of whole-book benchmarks: ten runs of one iteration each (flat
    /// sampling, a token warm-up), whatever one run costs.
    pub fn slow<'a>(&self, c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
        let mut g = c.benchmark_group(name);
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_millis(1))
            .nresamples(self.mode.timing().nresamples);
        g
    }

    /// A scratch directory for one benchmark.
    pub fn work(&self, name: &str) -> PathBuf {
        self.out.join("work").join(name)
    }
}

/// `sync` or `buffered`, for benchmark ids.
pub fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Sync => "sync",
        Durability::Buffered => "buffered",
    }
}
