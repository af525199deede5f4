//! Stores written by earlier versions of peerbook open, migrate and keep every peer.
//!
//! `tests/fixtures/v1/` holds books written by the first version (commit e30f44b,
//! schema version 1, file backend format version 1, export format version 1): one
//! directory per disk engine plus an export document. They were made by
//! [`write_v1_fixtures`] run on that commit, and are never regenerated: every later
//! version must open them, migrate them on open if its format is newer, and find the
//! same peers with the same secrets. Each format bump adds its own `vN` directory, made
//! the same way by the version that introduced it.
//!
//! The fixture key is a fixed test key (`[7; 32]`), not a secret.

mod common;

use std::time::Duration;

use common::{Engine, DISK_ENGINES};
use peerbook::conformance::fixtures::{copy_dir, fixtures_dir};
use peerbook::{
    CandidateQuery, Clock, ConnectionType, ExportDocument, ExportOptions, ImportMode, ManualClock,
    MasterKey, MemoryBackend, NewIceServer, NewPeer, Options, Order, PeerBook, PeerQuery,
    QualityUpdate, Secret, SortBy,
};

/// When the fixtures were written (ms since the epoch): 2025-11-24 16:00 UTC.
const WRITTEN_AT: u64 = 1_764_000_000_000;

fn fixture_key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

/// One peer of the fixture books, as the writer stored it and a reader must find it.
struct Expected {
    id: &'static str,
    name: &'static str,
    public_key: &'static str,
    secret: Option<&'static str>,
    turn_credential: Option<&'static str>,
    candidates: usize,
    ip: Option<&'static str>,
    /// (total, successful) connections after the quality update, if any.
    connections: Option<(u32, u32)>,
    failed_attempts: u32,
    /// Minutes before `WRITTEN_AT` when the peer was last seen.
    minutes_ago: u64,
}

const PEERS: [Expected; 6] = [
    Expected {
        id: "QmAlice",
        name: "Alice",
        public_key: r#"{"kty":"EC","crv":"P-256","x":"alice"}"#,
        secret: Some("alice-shared-secret"),
        turn_credential: Some("alice-turn-pass"),
        candidates: 2,
        ip: Some("192.0.2.10"),
        connections: Some((10, 9)),
        failed_attempts: 0,
        minutes_ago: 5,
    },
    Expected {
        id: "QmBob",
        name: "Bob",
        public_key: r#"{"kty":"EC","crv":"P-256","x":"bob"}"#,
        secret: Some("bob-shared-secret"),
        turn_credential: None,
        candidates: 1,
        ip: Some("2001:db8::2"),
        connections: Some((4, 2)),
        failed_attempts: 1,
        minutes_ago: 180,
    },
    Expected {
        id: "QmCarol",
        name: "Carol",
        public_key: r#"{"kty":"OKP","crv":"Ed25519","x":"carol"}"#,
        secret: None,
        turn_credential: None,
        candidates: 0,
        ip: None,
        connections: None,
        failed_attempts: 0,
        minutes_ago: 60 * 24 * 3,
    },
    Expected {
        id: "QmDave",
        name: "Dave",
        public_key: r#"{"kty":"EC","crv":"P-256","x":"dave"}"#,
        secret: Some("dave-shared-secret"),
        turn_credential: None,
        candidates: 0,
        ip: None,
        connections: Some((6, 0)),
        // Five failed attempts blacklist the peer (seed default).
        failed_attempts: 5,
        minutes_ago: 60 * 24 * 40,
    },
    Expected {
        id: "peer-unicode",
        name: "Zoë 🚀",
        public_key: "z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH",
        secret: Some("ünïcode-secret"),
        turn_credential: Some("turn-credential-2"),
        candidates: 3,
        ip: Some("198.51.100.7"),
        connections: Some((1, 1)),
        failed_attempts: 0,
        minutes_ago: 1,
    },
    Expected {
        id: "QmEve",
        name: "Eve",
        public_key: r#"{"kty":"EC","crv":"P-256","x":"eve"}"#,
        secret: None,
        turn_credential: Some("eve-turn"),
        candidates: 1,
        ip: Some("203.0.113.99"),
        connections: Some((3, 3)),
        failed_attempts: 0,
        minutes_ago: 20,
    },
];

fn new_peer(e: &Expected) -> NewPeer {
    NewPeer {
        peer_id: e.id.into(),
        display_name: e.name.into(),
        public_key: e.public_key.into(),
        shared_secret: e.secret.map(Secret::from),
        ice_servers: e
            .turn_credential
            .map(|c| {
                vec![
                    NewIceServer {
                        urls: vec!["stun:stun.example.org:3478".into()],
                        username: None,
                        credential: None,
                    },
                    NewIceServer {
                        urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
                        username: Some(format!("{}-user", e.id)),
                        credential: Some(Secret::from(c)),
                    },
                ]
            })
            .unwrap_or_default(),
        cached_candidates: (0..e.candidates)
            .map(|i| format!("candidate:{i} 1 udp 2122260223 192.0.2.{i} 5400{i} typ host"))
            .collect(),
        last_known_ip: e.ip.map(|ip| ip.parse().expect("fixture ip")),
    }
}

/// Fill `book` with the fixture peers, as the first version did.
fn write_peers<B: peerbook::Backend>(book: &PeerBook<B>, clock: &ManualClock) {
    let mut order: Vec<&Expected> = PEERS.iter().collect();
    order.sort_by_key(|e| std::cmp::Reverse(e.minutes_ago));
    for e in order {
        clock.set(WRITTEN_AT - e.minutes_ago * 60_000);
        book.store_peer(new_peer(e)).expect("store fixture peer");
        if let Some((total, successful)) = e.connections {
            book.update_connection_quality(
                e.id,
                QualityUpdate {
                    latency_ms: Some(Some(20 + total * 7)),
                    success_rate: Some(successful as f32 / total as f32),
                    connection_type: Some(ConnectionType::Srflx),
                    total_connections: Some(total),
                    successful_connections: Some(successful),
                    avg_uptime_ms: Some(u64::from(successful) * 60_000),
                },
            )
            .expect("quality");
        }
        if e.failed_attempts > 0 {
            // Recent failures, so the blacklist they earn is still running.
            clock.set(WRITTEN_AT - 30 * 60_000);
            for _ in 0..e.failed_attempts {
                book.increment_reconnection_attempts(e.id).expect("attempt");
            }
        }
    }
    clock.set(WRITTEN_AT);
}

/// Check that `book` holds exactly the fixture peers, secrets opening.
fn check_peers<B: peerbook::Backend>(book: &PeerBook<B>, context: &str) {
    let report = book.verify().expect("verify");
    assert!(report.is_clean(), "{context}: verify clean: {report:?}");
    let all = book.query_peers(&PeerQuery::default()).expect("query");
    assert_eq!(all.len(), PEERS.len(), "{context}: peer count");
    for e in &PEERS {
        let record = book
            .get_peer(e.id)
            .expect("get")
            .unwrap_or_else(|| panic!("{context}: {} present", e.id));
        assert_eq!(record.display_name, e.name, "{context}: {} name", e.id);
        assert_eq!(record.public_key, e.public_key, "{context}: {} key", e.id);
        assert_eq!(
            record.last_seen,
            WRITTEN_AT - e.minutes_ago * 60_000,
            "{context}: {} last_seen",
            e.id
        );
        let secret = book.open_shared_secret(&record).expect("open secret");
        assert_eq!(
            secret.as_ref().map(|s| s.expose().to_vec()),
            e.secret.map(|s| s.as_bytes().to_vec()),
            "{context}: {} shared secret",
            e.id
        );
        let turn_index = record
            .ice_servers
            .iter()
            .position(|s| s.credential.is_some());
        let turn = turn_index.and_then(|i| {
            book.open_ice_credential(&record, i)
                .expect("open credential")
        });
        assert_eq!(
            turn.as_ref().map(|s| s.expose().to_vec()),
            e.turn_credential.map(|s| s.as_bytes().to_vec()),
            "{context}: {} TURN credential",
            e.id
        );
        assert_eq!(
            record.cached_candidates.len(),
            e.candidates,
            "{context}: {}",
            e.id
        );
        assert_eq!(
            record.last_known_ip.map(|ip| ip.to_string()),
            e.ip.map(|ip| ip.parse::<std::net::IpAddr>().unwrap().to_string()),
            "{context}: {} ip",
            e.id
        );
        let q = record.connection_quality;
        match e.connections {
            Some((total, successful)) => {
                assert_eq!(
                    (q.total_connections, q.successful_connections),
                    (total, successful),
                    "{context}: {} connections",
                    e.id
                );
                assert_eq!(q.latency_ms, Some(20 + total * 7), "{context}: {}", e.id);
            }
            None => assert_eq!(q.total_connections, 0, "{context}: {}", e.id),
        }
        assert_eq!(
            record.reconnection_attempts, e.failed_attempts,
            "{context}: {} attempts",
            e.id
        );
        assert_eq!(
            record.blacklist_until.is_some(),
            e.failed_attempts >= 5,
            "{context}: {} blacklist",
            e.id
        );
    }
    let stats = book.get_storage_stats().expect("stats");
    assert_eq!(
        stats.peer_count,
        PEERS.len() as u64,
        "{context}: counted peers"
    );
    assert_eq!(stats.blacklisted_count, 1, "{context}: counted blacklisted");
}

/// The peer ids of every ordered query, as `book` answers them now.
fn orders<B: peerbook::Backend>(book: &PeerBook<B>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let candidates = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: PEERS.len(),
            max_age: None,
        })
        .expect("candidates");
    out.push(
        candidates
            .iter()
            .map(|c| c.peer.peer_id.to_string())
            .collect(),
    );
    for sort_by in [SortBy::LastSeen, SortBy::Quality, SortBy::ReconnectionScore] {
        for order in [Order::Desc, Order::Asc] {
            for max_age in [None, Some(Duration::from_secs(60 * 60 * 24 * 7))] {
                let found = book
                    .query_peers(&PeerQuery {
                        sort_by,
                        order,
                        limit: None,
                        max_age,
                        min_quality: None,
                    })
                    .expect("query");
                out.push(found.iter().map(|r| r.peer_id.to_string()).collect());
            }
        }
    }
    out
}

/// `book` ranks and sorts the fixture peers as a book written now at the same time
/// does (so a migrated index gives the order the current code gives).
fn check_order<B: peerbook::Backend>(book: &PeerBook<B>, clock: &ManualClock, context: &str) {
    let fresh_clock = ManualClock::new(WRITTEN_AT);
    let fresh = PeerBook::open(
        MemoryBackend::new(),
        Options::new(fixture_key()).with_clock(fresh_clock.clone()),
    )
    .expect("open");
    write_peers(&fresh, &fresh_clock);
    fresh_clock.set(clock.now_ms());
    let want = orders(&fresh);
    assert_eq!(
        want[0].len(),
        PEERS.len() - 1,
        "the blacklisted peer is no candidate"
    );
    assert_eq!(orders(book), want, "{context}: candidates and query order");
}

#[test]
fn v1_stores_open_upgrade_and_keep_every_peer() {
    stores_open_upgrade_and_keep_every_peer("v1");
}

#[test]
fn v3_stores_open_upgrade_and_keep_every_peer() {
    stores_open_upgrade_and_keep_every_peer("v3");
}

#[test]
fn v4_stores_open_upgrade_and_keep_every_peer() {
    stores_open_upgrade_and_keep_every_peer("v4");
}

/// The fixture books of `version` open (migrating), hold every peer, rank and sort
/// them as a book written now does, take writes and keep them across a reopen.
fn stores_open_upgrade_and_keep_every_peer(version: &str) {
    for engine in DISK_ENGINES {
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(
            &fixtures_dir().join(version).join(engine.name()),
            &dir.path().join(engine.name()),
        );
        let clock = ManualClock::new(WRITTEN_AT + 3_600_000);
        let options = || Options::new(fixture_key()).with_clock(clock.clone());
        let context = format!("{version} {}", engine.name());
        {
            let book = PeerBook::open(engine.open(dir.path()), options()).expect("open old store");
            check_peers(&book, &context);
            check_order(&book, &clock, &context);
            // The upgraded book takes writes and keeps them.
            clock.advance(Duration::from_secs(60));
            book.update_last_seen("QmCarol")
                .expect("write after upgrade");
            assert_eq!(
                book.backend()
                    .get(peerbook::backend::Space::Meta, b"schema_version")
                    .unwrap(),
                Some(peerbook::store::SCHEMA_VERSION.to_be_bytes().to_vec()),
                "{context}: migrated to the current schema"
            );
            assert_eq!(
                book.backend()
                    .get(peerbook::backend::Space::Meta, b"migrating")
                    .unwrap(),
                None,
                "{context}: no migration left in progress"
            );
            // A record of an older format (format 1 in v1): a reconnect keeps the
            // old history, and the record takes addresses.
            let with_history = PEERS
                .iter()
                .find(|e| e.connections.is_some())
                .expect("a fixture peer with history");
            let before = book.get_peer(with_history.id).unwrap().unwrap();
            assert!(before.addresses.is_empty() && before.metadata.is_empty());
            let after = book
                .store_peer(peerbook::NewPeer {
                    peer_id: with_history.id.into(),
                    ..Default::default()
                })
                .expect("reconnect an upgraded peer");
            assert_eq!(after.connection_quality, before.connection_quality);
            book.add_address(
                with_history.id,
                "/ip4/198.51.100.4/tcp/4001",
                peerbook::AddressSource::Observed,
                None,
            )
            .expect("address on an upgraded peer");
            book.close().expect("close");
        }
        let book = PeerBook::open(engine.open(dir.path()), options()).expect("reopen");
        assert_eq!(
            book.get_peer("QmCarol").unwrap().unwrap().last_seen,
            WRITTEN_AT + 3_660_000,
            "{context}: write after upgrade survives reopen"
        );
        assert_eq!(
            book.get_peer(PEERS.iter().find(|e| e.connections.is_some()).unwrap().id)
                .unwrap()
                .unwrap()
                .addresses
                .len(),
            1,
            "{context}: the address survives reopen"
        );
        assert!(
            book.verify().unwrap().is_clean(),
            "{context}: clean after reopen"
        );

        // A wrong key is refused on the old store too.
        drop(book);
        let wrong = PeerBook::open(
            engine.open(dir.path()),
            Options::new(MasterKey::from_bytes([8; 32])).with_clock(clock.clone()),
        );
        assert!(
            matches!(wrong, Err(peerbook::Error::WrongKey)),
            "{context}: wrong key refused"
        );
    }
}

#[test]
fn v1_export_document_imports() {
    export_document_imports("v1");
}

#[test]
fn v3_export_document_imports() {
    export_document_imports("v3");
}

#[test]
fn v4_export_document_imports() {
    export_document_imports("v4");
}

fn export_document_imports(version: &str) {
    let json = std::fs::read_to_string(fixtures_dir().join(version).join("export.json"))
        .expect("read the export fixture");
    let doc = ExportDocument::from_json(&json).expect("parse the export fixture");
    let clock = ManualClock::new(WRITTEN_AT + 3_600_000);
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(fixture_key()).with_clock(clock.clone()),
    )
    .expect("open");
    let report = book
        .import_data(&doc, ImportMode::Replace)
        .expect("import the export fixture");
    assert_eq!(report.imported, PEERS.len());
    let context = format!("{version} export");
    check_peers(&book, &context);
    check_order(&book, &clock, &context);
}

/// Writes `tests/fixtures/v1` (refusing to overwrite). Only meaningful on the commit
/// whose formats it records (e30f44b): run there with
/// `cargo test --test fixtures -- --ignored write_v1_fixtures`.
#[test]
#[ignore = "writes the committed v1 fixtures; run by hand on the first version only"]
fn write_v1_fixtures() {
    write_fixtures("v1");
}

/// Writes `tests/fixtures/v3` (refusing to overwrite): schema 3, file backend format
/// 1, export format 1. Only meaningful on a schema-3 commit (the one that added
/// them): `cargo test --test fixtures -- --ignored write_v3_fixtures`.
#[test]
#[ignore = "writes the committed v3 fixtures; run by hand on a schema-3 version only"]
fn write_v3_fixtures() {
    write_fixtures("v3");
}

/// Writes `tests/fixtures/v4` (refusing to overwrite): schema 4 (the `by_last_seen`
/// index), file backend format 1, export format 1. Only meaningful on a schema-4
/// commit (the one that added them, before the rank index of schema 5):
/// `cargo test --test fixtures -- --ignored write_v4_fixtures`.
#[test]
#[ignore = "writes the committed v4 fixtures; run by hand on a schema-4 version only"]
fn write_v4_fixtures() {
    write_fixtures("v4");
}

fn write_fixtures(version: &str) {
    assert_eq!(
        format!("v{}", peerbook::store::SCHEMA_VERSION),
        version,
        "the {version} fixtures record what a build of that schema wrote: not this build"
    );
    let out = fixtures_dir().join(version);
    assert!(
        !out.exists(),
        "{} exists: fixtures are never rewritten",
        out.display()
    );
    for engine in DISK_ENGINES {
        let clock = ManualClock::new(WRITTEN_AT);
        let book = PeerBook::open(
            engine.open(&out),
            Options::new(fixture_key()).with_clock(clock.clone()),
        )
        .expect("open");
        write_peers(&book, &clock);
        check_peers(&book, engine.name());
        if engine == Engine::File {
            let json = book
                .export_data(ExportOptions::default())
                .expect("export")
                .to_json();
            std::fs::write(out.join("export.json"), json).expect("write export");
        }
        book.flush().expect("flush");
        book.close().expect("close");
    }
    // Engine chatter that is not part of the store.
    for entry in std::fs::read_dir(out.join("rocksdb")).expect("rocksdb dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("LOG") {
            std::fs::remove_file(&path).expect("remove rocksdb log");
        }
    }
}
