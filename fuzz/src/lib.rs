//! The bodies of peerbook's fuzz targets, one `fn(&[u8])` each (see [`TARGETS`]).
//!
//! Each body panics when it finds a bug (a panic inside peerbook, or a broken
//! property asserted here) and returns normally otherwise. The libFuzzer binaries in
//! `fuzz_targets/` only call these; `tests/replay.rs` calls them on every file of
//! `corpus/<target>/` and `artifacts/<target>/` as a plain test.
//!
//! Every target keeps its work bounded by the input's size (libFuzzer's default
//! `-max_len` is 4096) and by small caps of its own, so no input can hang it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use peerbook::backend::{Backend, Direction, KeyRange, Space};
use peerbook::{
    CandidateQuery, ConnectionType, Durability, Error, ExportDocument, ExportOptions, ImportMode,
    ManualClock, MasterKey, MemoryBackend, NewIceServer, NewPeer, Options, Order, PeerBook,
    PeerQuery, PeerRecord, QualityUpdate, SealedSecret, Secret, SortBy,
};
use peerbook_file::{FileBackend, FileOptions};

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the directory under `corpus/` and `artifacts/`) and body.
pub const TARGETS: &[(&str, Body)] = &[
    ("decode_record", decode_record),
    ("open_sealed", open_sealed),
    ("import_json", import_json),
    ("file_open", file_open),
    ("new_peer", new_peer),
    ("ops_memory_vs_file", ops_memory_vs_file),
];

/// The fixed master key of every book the targets build (the seed corpora's exports
/// and sealed values use it too).
pub const KEY: [u8; 32] = [7; 32];

/// The time every book starts at (ms).
pub const START_MS: u64 = 1_700_000_000_000;

/// Options of a target's book: the fixed key, a manual clock at [`START_MS`].
pub fn options(clock: &ManualClock) -> Options {
    let mut o = Options::new(MasterKey::from_bytes(KEY)).with_clock(clock.clone());
    o.durability = Durability::Buffered;
    o
}

/// A fresh in-memory book with [`options`].
pub fn memory_book(clock: &ManualClock) -> PeerBook<MemoryBackend> {
    PeerBook::open(MemoryBackend::new(), options(clock)).expect("open a memory book")
}

/// A temporary directory, on tmpfs when there is one (fsync is free there).
pub fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("peerbook-fuzz")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::Builder::new()
        .prefix("peerbook-fuzz")
        .tempdir()
        .expect("create a temporary directory")
}

// ----- decode_record -------------------------------------------------------------

/// `PeerRecord::decode` never panics; whatever it accepts encodes to bytes that
/// decode to the same record, and that encoding is stable.
pub fn decode_record(data: &[u8]) {
    let Ok(record) = PeerRecord::decode(data) else {
        return;
    };
    let encoded = record.encode();
    let again = PeerRecord::decode(&encoded)
        .unwrap_or_else(|e| panic!("re-decoding an encoded record failed: {e}"));
    assert_eq!(record, again, "decode(encode(r)) != r");
    assert_eq!(encoded, again.encode(), "encode is not stable");
}

// ----- open_sealed ---------------------------------------------------------------

/// A sealed secret made of fuzz bytes never opens (as a shared secret or an ICE
/// credential) and a record carrying it is refused by `store_peer` as invalid input.
///
/// Input: byte 0 picks where the sealed value goes (even: shared secret, odd: ICE
/// credential), the rest are the sealed bytes.
pub fn open_sealed(data: &[u8]) {
    let Some((&which, sealed)) = data.split_first() else {
        return;
    };
    let Ok(sealed) = SealedSecret::from_bytes(sealed.to_vec()) else {
        return;
    };
    let clock = ManualClock::new(START_MS);
    let book = memory_book(&clock);
    let mut record = book
        .create_peer(NewPeer {
            peer_id: "fuzz-peer".into(),
            display_name: "Fuzz".into(),
            public_key: "{\"kty\":\"EC\"}".into(),
            ice_servers: vec![NewIceServer {
                urls: vec!["turn:turn.example.org:3478".into()],
                username: Some("user".into()),
                credential: None,
            }],
            ..NewPeer::default()
        })
        .expect("a valid peer");
    if which % 2 == 0 {
        record.shared_secret = Some(sealed);
        let opened = book.open_shared_secret(&record);
        assert!(
            opened.is_err(),
            "fuzz bytes opened as a shared secret: {opened:?}"
        );
    } else {
        record.ice_servers[0].credential = Some(sealed);
        let opened = book.open_ice_credential(&record, 0);
        assert!(
            opened.is_err(),
            "fuzz bytes opened as an ICE credential: {opened:?}"
        );
    }
    match book.store_peer(record) {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("store_peer of a forged seal: expected InvalidInput, got {other:?}"),
    }
    assert_eq!(book.get_peer("fuzz-peer").expect("get_peer"), None);
}

// ----- import_json ---------------------------------------------------------------

/// `ExportDocument::from_json` never panics on any UTF-8; a parsed document imports
/// (Merge) into an empty book without panicking, all or nothing.
pub fn import_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = ExportDocument::from_json(text) else {
        return;
    };
    let clock = ManualClock::new(START_MS);
    let book = memory_book(&clock);
    let peer_count = |book: &PeerBook<MemoryBackend>| {
        book.get_storage_stats()
            .expect("get_storage_stats")
            .peer_count
    };
    match book.import_data(&doc, ImportMode::Merge) {
        Ok(report) => {
            assert_eq!(report.imported, doc.peers.len());
            assert_eq!(report.replaced, 0, "nothing to replace in an empty book");
            assert_eq!(peer_count(&book), doc.peers.len() as u64);
            for p in &doc.peers {
                let stored = book
                    .get_peer(p.peer_id.as_str())
                    .expect("get_peer")
                    .expect("an imported peer is stored");
                assert_eq!(&stored, p, "an imported peer reads back changed");
                // Seals were checked at import: they must open now.
                book.open_shared_secret(&stored)
                    .expect("an imported shared secret opens");
                for i in 0..stored.ice_servers.len() {
                    book.open_ice_credential(&stored, i)
                        .expect("an imported ICE credential opens");
                }
            }
            let report = book.verify().expect("verify");
            assert!(report.is_clean(), "import left {report:?}");
            let export = book
                .export_data(ExportOptions::default())
                .expect("export_data");
            assert_eq!(export.peers.len(), doc.peers.len());
        }
        Err(_) => {
            assert_eq!(peer_count(&book), 0, "a failed import changed the book");
            assert!(book
                .query_peers(&PeerQuery::default())
                .expect("query_peers")
                .is_empty());
        }
    }
}

// ----- file_open -----------------------------------------------------------------

/// CRC-32C (Castagnoli), to fix up checksums of fuzzed files: the file backend's own.
pub use peerbook_file::testing::crc32c_append;

/// Recompute the header CRC and every frame's checksums of a file of `generation`
/// in place (the frames are walked by their own `body_len` fields), so mutations
/// reach the body decoder instead of dying at a checksum.
pub fn fix_checksums(file: &mut [u8], generation: u64) {
    // Format version 1: a 24-byte header, frames seeded by the generation; version
    // 2 (and anything else): a 40-byte header whose 16-byte salt seeds them too.
    let v1 = file.len() >= 12 && file[8..12] == 1u32.to_le_bytes();
    let (header, salt_end) = if v1 { (24, 20) } else { (40, 36) };
    if file.len() >= header {
        let crc = crc32c_append(0, &file[0..salt_end]);
        file[salt_end..header].copy_from_slice(&crc.to_le_bytes());
    }
    let mut seed = crc32c_append(0, &generation.to_le_bytes());
    if file.len() >= header {
        seed = crc32c_append(seed, &file[20..salt_end]);
    }
    let mut off = header;
    while off + 20 <= file.len() {
        let len = u32::from_le_bytes(file[off..off + 4].try_into().expect("4 bytes")) as usize;
        let body_start = off + 20;
        let body_end = body_start.saturating_add(len);
        if body_end <= file.len() {
            let crc = crc32c_append(0, &file[body_start..body_end]);
            file[off + 12..off + 16].copy_from_slice(&crc.to_le_bytes());
        }
        let head = crc32c_append(seed, &file[off..off + 16]);
        file[off + 16..off + 20].copy_from_slice(&head.to_le_bytes());
        if len == 0 || body_end > file.len() {
            break;
        }
        off = body_end;
    }
}

/// The input of `file_open`, parsed from raw bytes (a layout simple enough to write
/// seeds by hand):
///
/// - byte 0: flags; bit 0: fix up checksums ([`fix_checksums`]); bit 1: also write
///   `snapshot.G+1` / `log.G+1` copies of the two files (a second generation);
///   bit 2: write no `log.G`; bit 3: open a `PeerBook` on the backend too;
/// - byte 1: the generation `G` = 1 + byte % 3;
/// - bytes 2..6: `u32` LE length `n` of the snapshot (cut to what remains);
/// - `n` bytes: `snapshot.G`; the rest: `log.G`.
pub struct FileInput {
    /// Byte 0.
    pub flags: u8,
    /// `G`.
    pub generation: u64,
    /// The bytes of `snapshot.G`.
    pub snapshot: Vec<u8>,
    /// The bytes of `log.G`.
    pub log: Vec<u8>,
}

impl FileInput {
    /// Parse (`None` when shorter than 6 bytes).
    pub fn parse(data: &[u8]) -> Option<Self> {
        if data.len() < 6 {
            return None;
        }
        let n = u32::from_le_bytes(data[2..6].try_into().ok()?) as usize;
        let rest = &data[6..];
        let n = n.min(rest.len());
        Some(FileInput {
            flags: data[0],
            generation: 1 + u64::from(data[1] % 3),
            snapshot: rest[..n].to_vec(),
            log: rest[n..].to_vec(),
        })
    }

    /// The inverse of [`parse`](Self::parse) (for writing seeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags, (self.generation.saturating_sub(1) % 3) as u8];
        out.extend_from_slice(&(self.snapshot.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.snapshot);
        out.extend_from_slice(&self.log);
        out
    }
}

/// Arbitrary `snapshot.G` / `log.G` files: `FileBackend::open` never panics; when it
/// opens, every space scans the same both ways, point reads agree with scans, and
/// (flag bit 3) a `PeerBook` on it opens or fails cleanly, and its reads work.
pub fn file_open(data: &[u8]) {
    let Some(input) = FileInput::parse(data) else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path().join("book");
    std::fs::create_dir_all(&dir).expect("create the book directory");
    let g = input.generation;
    let mut files = vec![(g, input.snapshot.clone(), input.log.clone())];
    if input.flags & 2 != 0 {
        files.push((g + 1, input.snapshot.clone(), input.log.clone()));
    }
    for (gen, mut snapshot, mut log) in files {
        if input.flags & 1 != 0 {
            fix_checksums(&mut snapshot, gen);
            fix_checksums(&mut log, gen);
        }
        std::fs::write(dir.join(format!("snapshot.{gen}")), &snapshot).expect("write snapshot");
        if input.flags & 4 == 0 {
            std::fs::write(dir.join(format!("log.{gen}")), &log).expect("write log");
        }
    }
    let Ok(backend) = FileBackend::open(&dir, FileOptions::default()) else {
        return;
    };
    check_backend_reads(&backend);
    if input.flags & 8 != 0 {
        let clock = ManualClock::new(START_MS);
        if let Ok(book) = PeerBook::open(backend, options(&clock)) {
            let _ = book.verify();
            let _ = book.get_storage_stats();
            let _ = book.query_peers(&PeerQuery::default());
            let _ = book.get_reconnection_candidates(&CandidateQuery::default());
            let _ = book.export_data(ExportOptions::default());
            if book.repair().is_ok() {
                let report = book.verify().expect("verify after repair");
                assert!(report.is_clean(), "repair left {report:?}");
            }
        }
    }
}

/// Every space scans to the same entries forward and backward, in strictly
/// ascending / descending key order, and `get` agrees with the scan.
pub fn check_backend_reads(backend: &impl Backend) {
    for space in Space::ALL {
        let mut forward = Vec::new();
        backend
            .scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
                forward.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            })
            .expect("forward scan of an opened store");
        let mut backward = Vec::new();
        backend
            .scan(space, KeyRange::all(), Direction::Reverse, &mut |k, v| {
                backward.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            })
            .expect("backward scan of an opened store");
        assert!(forward.windows(2).all(|w| w[0].0 < w[1].0), "scan order");
        backward.reverse();
        assert_eq!(forward, backward, "forward and backward scans differ");
        for (k, v) in forward.iter().take(16) {
            assert_eq!(
                backend.get(space, k).expect("get").as_ref(),
                Some(v),
                "get disagrees with scan"
            );
        }
    }
}

// ----- new_peer ------------------------------------------------------------------

/// A string: mostly arbitrary, sometimes a likely-valid value.
#[derive(Debug, Arbitrary)]
enum Text {
    Raw(String),
    Prefixed(u8, String),
    Long(u16, char),
}

impl Text {
    fn make(self, prefixes: &[&str]) -> String {
        match self {
            Text::Raw(s) => s,
            Text::Prefixed(p, s) => {
                let prefix = prefixes.get(usize::from(p) % prefixes.len().max(1));
                format!("{}{s}", prefix.copied().unwrap_or(""))
            }
            Text::Long(n, c) => std::iter::repeat_n(c, usize::from(n % 5000)).collect(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum SecretInput {
    Bytes(Vec<u8>),
    Long(u16),
}

impl SecretInput {
    fn make(self) -> Secret {
        match self {
            SecretInput::Bytes(b) => Secret::new(b),
            SecretInput::Long(n) => Secret::new(vec![0xA5; usize::from(n % 5000)]),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct IceInput {
    urls: Vec<Text>,
    username: Option<Text>,
    credential: Option<SecretInput>,
}

#[derive(Debug, Arbitrary)]
struct NewPeerInput {
    peer_id: Text,
    display_name: Text,
    public_key: Text,
    shared_secret: Option<SecretInput>,
    ice_servers: Vec<IceInput>,
    cached_candidates: Vec<Text>,
    last_known_ip: Option<IpAddr>,
}

const URL_PREFIXES: &[&str] = &["stun:", "stuns:", "turn:", "turns:", "stun:host", "http://"];

impl NewPeerInput {
    fn make(self) -> NewPeer {
        NewPeer {
            peer_id: self.peer_id.make(&["peer-", "", "A"]),
            display_name: self.display_name.make(&["", " ", "Alice "]),
            public_key: self.public_key.make(&["{\"kty\":\"EC\"}", ""]),
            shared_secret: self.shared_secret.map(SecretInput::make),
            ice_servers: self
                .ice_servers
                .into_iter()
                .take(12)
                .map(|s| NewIceServer {
                    urls: s
                        .urls
                        .into_iter()
                        .take(6)
                        .map(|u| u.make(URL_PREFIXES))
                        .collect(),
                    username: s.username.map(|u| u.make(&["user", ""])),
                    credential: s.credential.map(SecretInput::make),
                })
                .collect(),
            cached_candidates: self
                .cached_candidates
                .into_iter()
                .take(40)
                .map(|c| c.make(&["candidate:1 1 udp 2122260223 192.0.2.1 ", ""]))
                .collect(),
            last_known_ip: self.last_known_ip,
        }
    }
}

/// Arbitrary `NewPeer` field values: `store_peer` stores them or refuses them as
/// invalid input, never anything else; what it stores reads back the same, and its
/// secrets open to what was given.
pub fn new_peer(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = NewPeerInput::arbitrary(&mut u) else {
        return;
    };
    let new = input.make();
    let copy = new.clone();
    let clock = ManualClock::new(START_MS);
    let book = memory_book(&clock);
    let shared = new.shared_secret.clone();
    let credentials: Vec<Option<Secret>> = new
        .ice_servers
        .iter()
        .map(|s| s.credential.clone())
        .collect();
    match book.store_peer(new) {
        Ok(record) => {
            let stored = book
                .get_peer(record.peer_id.as_str())
                .expect("get_peer of a stored peer")
                .expect("a stored peer is found");
            assert_eq!(
                stored, record,
                "get_peer differs from what store_peer returned"
            );
            let opened = book
                .open_shared_secret(&stored)
                .expect("open_shared_secret");
            assert_eq!(
                opened.as_ref().map(Secret::expose),
                shared.as_ref().map(Secret::expose),
                "the shared secret opens to something else"
            );
            for (i, c) in credentials.iter().enumerate() {
                let opened = book
                    .open_ice_credential(&stored, i)
                    .expect("open_ice_credential");
                assert_eq!(
                    opened.as_ref().map(Secret::expose),
                    c.as_ref().map(Secret::expose),
                    "ICE credential {i} opens to something else"
                );
            }
            // What was stored must also survive the stored encoding.
            assert_eq!(PeerRecord::decode(&stored.encode()).as_ref(), Ok(&stored));
            // Storing it again is an upsert that keeps every given field.
            let again = book
                .store_peer(copy)
                .expect("an accepted NewPeer stores again");
            assert_eq!(
                (
                    &again.public_key,
                    &again.cached_candidates,
                    again.last_known_ip
                ),
                (
                    &stored.public_key,
                    &stored.cached_candidates,
                    stored.last_known_ip
                ),
                "a repeated store_peer changed a given field"
            );
        }
        Err(Error::InvalidInput { .. }) => {
            assert_eq!(book.get_storage_stats().expect("stats").peer_count, 0);
        }
        Err(other) => panic!("store_peer of a NewPeer: expected Ok or InvalidInput, got {other:?}"),
    }
}

// ----- ops_memory_vs_file --------------------------------------------------------

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
fn address(variant: u8) -> String {
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

fn pool(i: u8) -> &'static str {
    IDS[usize::from(i) % IDS.len()]
}

/// A record with its seals replaced by whether they were there (sealing uses a
/// random nonce, so two books never hold the same sealed bytes).
fn unsealed(r: &PeerRecord) -> (PeerRecord, bool, Vec<bool>) {
    let mut r = r.clone();
    let shared = r.shared_secret.take().is_some();
    let creds = r
        .ice_servers
        .iter_mut()
        .map(|s| s.credential.take().is_some())
        .collect();
    (r, shared, creds)
}

/// The result of one op, comparable across backends: errors by kind, records
/// without their sealed bytes.
#[derive(Debug, PartialEq)]
enum Outcome {
    Err(&'static str),
    Unit,
    Bool(bool),
    Count(usize),
    Record(Box<(PeerRecord, bool, Vec<bool>)>),
    MaybeRecord(Option<Box<(PeerRecord, bool, Vec<bool>)>>),
    Records(Vec<(PeerRecord, bool, Vec<bool>)>),
    Candidates(Vec<(String, String)>),
    Stats(Vec<Option<u64>>),
}

fn outcome<T>(r: Result<T, Error>, f: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => f(v),
        Err(e) => Outcome::Err(e.kind()),
    }
}

struct Books {
    clock_m: ManualClock,
    clock_f: ManualClock,
    memory: PeerBook<MemoryBackend>,
    file: Option<PeerBook<FileBackend>>,
    dir: std::path::PathBuf,
    max_peers: u64,
    evict: bool,
}

impl Books {
    fn opts(&self, clock: &ManualClock) -> Options {
        let mut o = options(clock);
        o.max_peers = self.max_peers;
        o.evict_when_full = self.evict;
        o
    }

    fn open_file(&mut self) {
        let backend = FileBackend::open(
            &self.dir,
            FileOptions::default()
                .with_compact_min_log_bytes(4096)
                .with_snapshot_chunk_bytes(512),
        )
        .expect("open the file backend");
        self.file =
            Some(PeerBook::open(backend, self.opts(&self.clock_f)).expect("open the file book"));
    }

    fn file(&self) -> &PeerBook<FileBackend> {
        self.file.as_ref().expect("the file book is open")
    }
}

fn run_op<B: Backend>(
    book: &PeerBook<B>,
    op: &Op,
    memory: &PeerBook<MemoryBackend>,
    now: u64,
) -> Outcome {
    let rec = |r: PeerRecord| Outcome::Record(Box::new(unsealed(&r)));
    match op {
        Op::Store {
            id,
            name,
            secret,
            ice,
        } => {
            let new = NewPeer {
                peer_id: pool(*id).into(),
                display_name: ["Alice", "  Bob\u{202e}  x", "", "Carol the   third"]
                    [usize::from(*name) % 4]
                    .into(),
                public_key: "{\"kty\":\"EC\"}".into(),
                shared_secret: secret.then(|| Secret::from("s3cret")),
                ice_servers: if *ice {
                    vec![NewIceServer {
                        urls: vec!["turn:turn.example.org:3478".into()],
                        username: Some("u".into()),
                        credential: Some(Secret::from("pw")),
                    }]
                } else {
                    Vec::new()
                },
                cached_candidates: vec!["candidate:1 1 udp 1 192.0.2.1 9 typ host".into()],
                last_known_ip: Some(IpAddr::from([192, 0, 2, *name])),
            };
            outcome(book.store_peer(new), rec)
        }
        Op::StoreRecord { id, attempts } => {
            // The record is read from the memory book and re-sealed for this book: a
            // record's seals only open in the book that made them, so the file book
            // gets its own copy's seals.
            let Ok(Some(mut r)) = memory.get_peer(pool(*id)) else {
                return Outcome::Unit;
            };
            let mine = book.get_peer(pool(*id));
            let Ok(Some(own)) = mine else {
                return Outcome::Unit;
            };
            r.shared_secret = own.shared_secret;
            for (s, o) in r.ice_servers.iter_mut().zip(own.ice_servers) {
                s.credential = o.credential;
            }
            r.reconnection_attempts = u32::from(*attempts);
            outcome(book.store_peer(r), rec)
        }
        Op::Get(id) => outcome(book.get_peer(pool(*id)), |r| {
            Outcome::MaybeRecord(r.map(|r| Box::new(unsealed(&r))))
        }),
        Op::Remove(id) => outcome(book.remove_peer(pool(*id)), Outcome::Bool),
        Op::UpdateLastSeen(id) => outcome(book.update_last_seen(pool(*id)), rec),
        Op::Increment(id) => outcome(book.increment_reconnection_attempts(pool(*id)), rec),
        Op::Quality {
            id,
            latency,
            success,
            kind,
            total,
            successful,
            uptime,
        } => {
            let update = QualityUpdate {
                latency_ms: *latency,
                success_rate: success.map(|s| f32::from(s) / 200.0),
                connection_type: kind.map(|k| {
                    [
                        ConnectionType::Host,
                        ConnectionType::Srflx,
                        ConnectionType::Relay,
                        ConnectionType::Unknown,
                    ][usize::from(k) % 4]
                }),
                total_connections: total.map(u32::from),
                successful_connections: successful.map(u32::from),
                avg_uptime_ms: uptime.map(u64::from),
            };
            outcome(book.update_connection_quality(pool(*id), update), rec)
        }
        Op::Query {
            sort,
            desc,
            limit,
            max_age_min,
            min_quality,
        } => {
            let query = PeerQuery {
                sort_by: [SortBy::LastSeen, SortBy::Quality, SortBy::ReconnectionScore]
                    [usize::from(*sort) % 3],
                order: if *desc { Order::Desc } else { Order::Asc },
                limit: limit.map(usize::from),
                max_age: max_age_min.map(|m| Duration::from_secs(u64::from(m) * 60)),
                min_quality: *min_quality,
            };
            outcome(book.query_peers(&query), |v| {
                Outcome::Records(v.iter().map(unsealed).collect())
            })
        }
        Op::Candidates { limit, max_age_min } => {
            let query = CandidateQuery {
                limit: usize::from(*limit),
                max_age: max_age_min.map(|m| Duration::from_secs(u64::from(m) * 60)),
            };
            outcome(book.get_reconnection_candidates(&query), |v| {
                Outcome::Candidates(
                    v.iter()
                        .map(|c| (c.peer.peer_id.to_string(), format!("{:?}", c.score)))
                        .collect(),
                )
            })
        }
        Op::CleanupStale => outcome(book.cleanup_stale_peers(), Outcome::Count),
        Op::CleanupLru(n) => outcome(book.cleanup_lru(usize::from(*n % 8)), Outcome::Count),
        Op::Clear => outcome(book.clear_all(), |()| Outcome::Unit),
        Op::Stats => outcome(book.get_storage_stats(), |s| {
            Outcome::Stats(vec![
                Some(s.peer_count),
                Some(s.blacklisted_count),
                Some(s.corrupt_records),
                Some(s.quarantined_records),
                Some(s.record_bytes),
                Some(s.max_peers),
                s.oldest_seen,
                s.newest_seen,
                s.last_cleanup,
            ])
        }),
        Op::Export => outcome(
            book.export_data(ExportOptions {
                include_secrets: false,
            }),
            |d| Outcome::Records(d.peers.iter().map(unsealed).collect()),
        ),
        Op::Learn { id, secret } => outcome(
            book.learn_peer(NewPeer {
                peer_id: pool(*id).into(),
                public_key: "{\"kty\":\"EC\"}".into(),
                shared_secret: secret.then(|| Secret::from("s3cret")),
                ..NewPeer::default()
            }),
            rec,
        ),
        Op::Session {
            id,
            success,
            uptime_s,
            latency,
        } => outcome(
            book.record_session(
                pool(*id),
                &peerbook::SessionObservation {
                    success: *success,
                    uptime_ms: u64::from(*uptime_s) * 1000,
                    latency_ms: latency.map(u32::from),
                },
            ),
            rec,
        ),
        Op::AddAddress {
            id,
            addr,
            source,
            expires_min,
        } => {
            let source = [
                peerbook::AddressSource::Observed,
                peerbook::AddressSource::Reported,
                peerbook::AddressSource::Discovery,
                peerbook::AddressSource::Manual,
            ][usize::from(*source % 4)];
            let expires = expires_min.map(|m| now.saturating_add(u64::from(m) * 60_000));
            outcome(
                book.add_address(pool(*id), &address(*addr), source, expires),
                rec,
            )
        }
        Op::AddressResult { id, addr, ok } => outcome(
            book.record_address_result(pool(*id), &address(*addr), *ok),
            rec,
        ),
        Op::Metadata { id, key, value } => {
            let key = ["agent", "protocols", "bad key", ""][usize::from(*key % 4)];
            let value = value.map(|v| "v".repeat(usize::from(v) + 1));
            outcome(book.set_metadata(pool(*id), key, value.as_deref()), rec)
        }
        Op::Advance(_) | Op::Reopen => Outcome::Unit,
    }
}

/// An arbitrary sequence of book operations on a small id pool, applied to a
/// `MemoryBackend` book and a `FileBackend` book (temporary directory, reopened now
/// and then): every result must be the same (errors compared by `Error::kind`), and
/// both books end clean under `verify` with the same peers.
pub fn ops_memory_vs_file(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = OpsInput::arbitrary(&mut u) else {
        return;
    };
    let tmp = temp_dir();
    let clock_m = ManualClock::new(START_MS);
    let clock_f = ManualClock::new(START_MS);
    let max_peers = 1 + u64::from(input.max_peers % 8);
    let mut memory_options = options(&clock_m);
    memory_options.max_peers = max_peers;
    memory_options.evict_when_full = input.evict;
    let mut books = Books {
        memory: PeerBook::open(MemoryBackend::new(), memory_options).expect("open memory book"),
        clock_m,
        clock_f,
        file: None,
        dir: tmp.path().join("book"),
        max_peers,
        evict: input.evict,
    };
    books.open_file();
    let mut history = Vec::new();
    for op in input.ops.iter().take(MAX_OPS) {
        history.push(op);
        match op {
            Op::Advance(minutes) => {
                let by = Duration::from_secs(u64::from(*minutes) * 60);
                books.clock_m.advance(by);
                books.clock_f.advance(by);
                continue;
            }
            Op::Reopen => {
                books
                    .file
                    .take()
                    .expect("open")
                    .close()
                    .expect("close the file book");
                books.open_file();
                continue;
            }
            _ => {}
        }
        let now = peerbook::Clock::now_ms(&books.clock_m);
        let m = run_op(&books.memory, op, &books.memory, now);
        let f = run_op(books.file(), op, &books.memory, now);
        assert_eq!(m, f, "memory and file books differ after {history:#?}");
    }
    let all = |records: Vec<PeerRecord>| -> BTreeMap<String, (PeerRecord, bool, Vec<bool>)> {
        records
            .iter()
            .map(|r| (r.peer_id.to_string(), unsealed(r)))
            .collect()
    };
    let m = all(books
        .memory
        .query_peers(&PeerQuery::default())
        .expect("query memory"));
    let f = all(books
        .file()
        .query_peers(&PeerQuery::default())
        .expect("query file"));
    assert_eq!(m, f, "final books differ after {history:#?}");
    for report in [books.memory.verify(), books.file().verify()] {
        let report = report.expect("verify");
        assert!(report.is_clean(), "verify: {report:?} after {history:#?}");
    }
    // The file book holds the same after a reopen.
    books
        .file
        .take()
        .expect("open")
        .close()
        .expect("close the file book");
    books.open_file();
    let again = all(books
        .file()
        .query_peers(&PeerQuery::default())
        .expect("query file"));
    assert_eq!(
        m, again,
        "the reopened file book differs after {history:#?}"
    );
}
