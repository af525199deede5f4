//! Conformance tests of every [`PeerBook`] operation and design rule, over any backend.
//!
//! Each function opens books on backends made by the [`Factory`], drives them with a
//! [`ManualClock`], and panics with a message naming the rule that broke.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use super::Factory;
use crate::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use crate::scoring::{quality_score, DAY_MS, MINUTE_MS};
use crate::{
    CandidateQuery, ConnectionQuality, ConnectionType, Error, ExportDocument, ExportOptions,
    ImportMode, ManualClock, MasterKey, NewIceServer, NewPeer, Options, Order, PeerBook, PeerQuery,
    PeerRecord, QualityUpdate, Quota, Secret, SortBy,
};

/// The time every test starts at (ms).
pub const T0: u64 = 1_700_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn key() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

fn other_key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

fn options(clock: &ManualClock) -> Options {
    Options::new(key()).with_clock(clock.clone())
}

/// A book on a fresh backend, with a manual clock at [`T0`].
fn fresh<F: Factory>(f: &F) -> (PeerBook<F::Backend>, ManualClock) {
    book_with(f, |_| {})
}

fn book_with<F: Factory>(
    f: &F,
    tweak: impl FnOnce(&mut Options),
) -> (PeerBook<F::Backend>, ManualClock) {
    let clock = ManualClock::new(T0);
    let mut opts = options(&clock);
    tweak(&mut opts);
    (
        PeerBook::open(f.create(), opts).expect("open a fresh book"),
        clock,
    )
}

fn reopen<F: Factory>(
    f: &F,
    book: PeerBook<F::Backend>,
    opts: Options,
) -> crate::Result<PeerBook<F::Backend>> {
    let backend = book.close().expect("close");
    PeerBook::open(f.reopen(backend), opts)
}

/// A realistic new peer with a shared secret, a TURN server with a credential,
/// and two candidates.
pub fn sample_peer(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        display_name: format!("Peer {id}"),
        public_key: format!("{{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"{id}\"}}"),
        shared_secret: Some(Secret::from(format!("shared-secret-of-{id}"))),
        ice_servers: vec![
            NewIceServer { urls: vec!["stun:stun.example.org:3478".into()], username: None, credential: None },
            NewIceServer {
                urls: vec!["turn:turn.example.org:3478?transport=udp".into(), "turns:turn.example.org:5349".into()],
                username: Some("user".into()),
                credential: Some(Secret::from(format!("turn-credential-of-{id}"))),
            },
        ],
        cached_candidates: vec![
            "candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host".into(),
            "candidate:2 1 udp 1686052607 203.0.113.7 54321 typ srflx raddr 192.168.1.20 rport 54321".into(),
        ],
        last_known_ip: Some("203.0.113.7".parse().expect("ip")),
    }
}

/// A peer without secrets.
fn plain_peer(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        display_name: id.into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    }
}

/// Every entry of every space, for "nothing changed" checks.
pub fn snapshot(backend: &impl Backend) -> Vec<(Space, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for space in Space::ALL {
        backend
            .scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
                out.push((space, k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            })
            .expect("scan");
    }
    out
}

fn space_keys(backend: &impl Backend, space: Space) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    backend
        .scan(space, KeyRange::all(), Direction::Forward, &mut |k, _| {
            out.push(k.to_vec());
            ControlFlow::Continue(())
        })
        .expect("scan");
    out
}

fn ids(records: &[PeerRecord]) -> Vec<&str> {
    records.iter().map(|r| r.peer_id.as_str()).collect()
}

fn quality(
    latency: Option<u32>,
    rate: f32,
    kind: ConnectionType,
    total: u32,
    ok: u32,
    uptime_ms: u64,
) -> ConnectionQuality {
    ConnectionQuality {
        latency_ms: latency,
        success_rate: rate,
        connection_type: kind,
        total_connections: total,
        successful_connections: ok,
        avg_uptime_ms: uptime_ms,
    }
}

fn assert_clean<B: Backend>(book: &PeerBook<B>, context: &str) {
    let report = book.verify().expect("verify");
    assert!(
        report.is_clean(),
        "{context}: verify should be clean: {report:?}"
    );
}

/// store_peer then get_peer gives back every field; secrets are sealed and open;
/// the record's index entries exist.
pub fn store_and_get_round_trip<F: Factory>(f: &F) {
    let (book, _clock) = fresh(f);
    let stored = book.store_peer(sample_peer("ABC123")).expect("store");
    let got = book.get_peer("ABC123").expect("get").expect("present");
    assert_eq!(got, stored, "get returns what store returned");
    assert_eq!(got.display_name, "Peer ABC123");
    assert_eq!(
        (got.last_seen, got.last_connected),
        (T0, T0),
        "new peer is seen now"
    );
    assert_eq!(got.ice_servers.len(), 2);
    assert_eq!(got.cached_candidates.len(), 2);
    assert_eq!(got.last_known_ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(got.reconnection_attempts, 0);
    assert_eq!(got.blacklist_until, None);
    let secret = book
        .open_shared_secret(&got)
        .expect("open")
        .expect("has secret");
    assert_eq!(secret.expose(), b"shared-secret-of-ABC123");
    assert_eq!(
        book.open_ice_credential(&got, 0).expect("open"),
        None,
        "STUN server has no credential"
    );
    let cred = book
        .open_ice_credential(&got, 1)
        .expect("open")
        .expect("has credential");
    assert_eq!(cred.expose(), b"turn-credential-of-ABC123");
    assert!(matches!(
        book.open_ice_credential(&got, 2),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        book.get_peer("nobody").expect("get"),
        None,
        "unknown peer is None"
    );
    assert!(matches!(
        book.get_peer("bad id"),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        space_keys(book.backend(), Space::ByLastSeen).len(),
        1,
        "one last_seen index entry"
    );
    assert_eq!(
        space_keys(book.backend(), Space::ByQuality).len(),
        1,
        "one quality index entry"
    );
    let debug = format!("{got:?}");
    assert!(
        !debug.contains("shared-secret-of") && !debug.contains("turn-credential-of"),
        "no secret in Debug"
    );
    assert_clean(&book, "after a store");
}

/// Storing an updated record (the seed's IP change) replaces it and moves its
/// index entries; no stale entry is left behind.
pub fn update_existing_peer_rewrites_indexes<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    book.store_peer(sample_peer("a")).unwrap();
    book.store_peer(plain_peer("b")).unwrap();
    clock.advance(HOUR);
    let mut a = book.get_peer("a").unwrap().unwrap();
    a.cached_candidates = vec!["candidate:9 1 udp 1 198.51.100.1 1 typ host".into()];
    a.last_known_ip = Some("198.51.100.1".parse().unwrap());
    a.last_seen = crate::Clock::now_ms(&clock);
    a.display_name = "  Renamed\u{202E}  Peer ".into();
    let stored = book.store_peer(a.clone()).unwrap();
    assert_eq!(
        stored.display_name, "Renamed Peer",
        "display name sanitized on update"
    );
    let got = book.get_peer("a").unwrap().unwrap();
    assert_eq!(got.cached_candidates, a.cached_candidates);
    assert_eq!(got.last_known_ip, a.last_known_ip);
    assert_eq!(got.last_seen, T0 + 3_600_000);
    assert_eq!(
        book.open_shared_secret(&got).unwrap().unwrap().expose(),
        b"shared-secret-of-a",
        "secret kept"
    );
    assert_eq!(
        space_keys(book.backend(), Space::ByLastSeen).len(),
        2,
        "old index entry replaced, not added"
    );
    let recent = book.query_peers(&PeerQuery::default()).unwrap();
    assert_eq!(ids(&recent), ["a", "b"], "a is now the most recently seen");
    // a NewPeer with another public key is refused; replace_peer replaces the record
    assert!(matches!(
        book.store_peer(plain_peer("a")),
        Err(Error::PublicKeyChanged { .. })
    ));
    book.replace_peer(plain_peer("a")).unwrap();
    assert_eq!(book.get_peer("a").unwrap().unwrap().shared_secret, None);
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 2);
    assert_clean(&book, "after updates");
}

/// remove_peer deletes the record and its index entries; a second remove is false.
pub fn remove_peer<F: Factory>(f: &F) {
    let (book, _) = fresh(f);
    book.store_peer(sample_peer("a")).unwrap();
    book.store_peer(sample_peer("b")).unwrap();
    assert!(book.remove_peer("a").unwrap(), "removed");
    assert!(
        !book.remove_peer("a").unwrap(),
        "second remove finds nothing"
    );
    assert_eq!(book.get_peer("a").unwrap(), None);
    assert!(book.get_peer("b").unwrap().is_some(), "others stay");
    assert_eq!(space_keys(book.backend(), Space::ByLastSeen).len(), 1);
    assert_eq!(space_keys(book.backend(), Space::ByQuality).len(), 1);
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 1);
    assert!(matches!(
        book.remove_peer(""),
        Err(Error::InvalidInput { .. })
    ));
    assert_clean(&book, "after remove");
}

/// Every kind of bad input gets a typed InvalidInput (or NotFound) naming the
/// field, and the book is byte-for-byte unchanged afterwards.
pub fn invalid_input_changes_nothing<F: Factory>(f: &F) {
    let (book, _) = fresh(f);
    book.store_peer(sample_peer("existing")).unwrap();
    let before = snapshot(book.backend());
    let with = |mutate: &dyn Fn(&mut NewPeer)| {
        let mut p = sample_peer("fresh");
        mutate(&mut p);
        p
    };
    let cases: Vec<(&str, NewPeer)> = vec![
        ("peer_id", with(&|p| p.peer_id = String::new())),
        ("peer_id", with(&|p| p.peer_id = "x".repeat(129))),
        ("peer_id", with(&|p| p.peer_id = "has space".into())),
        ("peer_id", with(&|p| p.peer_id = "tab\tid".into())),
        ("peer_id", with(&|p| p.peer_id = "caf\u{e9}".into())),
        ("public_key", with(&|p| p.public_key = "k".repeat(4097))),
        (
            "shared_secret",
            with(&|p| p.shared_secret = Some(Secret::from(""))),
        ),
        (
            "shared_secret",
            with(&|p| p.shared_secret = Some(Secret::new(vec![1; 4097]))),
        ),
        (
            "ice_servers",
            with(&|p| {
                p.ice_servers = vec![
                    NewIceServer {
                        urls: vec!["stun:a".into()],
                        ..Default::default()
                    };
                    9
                ]
            }),
        ),
        (
            "ice_servers[0].urls",
            with(&|p| p.ice_servers[0].urls.clear()),
        ),
        (
            "ice_servers[0].urls",
            with(&|p| p.ice_servers[0].urls = vec!["stun:a".into(); 5]),
        ),
        (
            "ice_servers[0].urls[0]",
            with(&|p| p.ice_servers[0].urls = vec!["https://evil.example".into()]),
        ),
        (
            "ice_servers[0].urls[0]",
            with(&|p| p.ice_servers[0].urls = vec![format!("stun:{}", "a".repeat(600))]),
        ),
        (
            "ice_servers[1].username",
            with(&|p| p.ice_servers[1].username = Some("bad\u{0}name".into())),
        ),
        (
            "ice_servers[1].credential",
            with(&|p| p.ice_servers[1].credential = Some(Secret::from(""))),
        ),
        (
            "cached_candidates",
            with(&|p| p.cached_candidates = vec!["c".into(); 33]),
        ),
        (
            "cached_candidates[0]",
            with(&|p| p.cached_candidates = vec!["c".repeat(513)]),
        ),
        (
            "cached_candidates[1]",
            with(&|p| p.cached_candidates = vec!["ok".into(), "line\r\nbreak".into()]),
        ),
    ];
    for (field, peer) in cases {
        match book.store_peer(peer) {
            Err(Error::InvalidInput { field: got, rule }) => {
                assert_eq!(got, field, "store_peer names the field");
                assert!(!rule.is_empty(), "a rule is given");
            }
            other => panic!("{field}: expected InvalidInput, got {other:?}"),
        }
    }
    let nan = QualityUpdate {
        success_rate: Some(f32::NAN),
        ..Default::default()
    };
    let too_high = QualityUpdate {
        success_rate: Some(1.5),
        ..Default::default()
    };
    let negative = QualityUpdate {
        success_rate: Some(-0.01),
        ..Default::default()
    };
    let inconsistent = QualityUpdate {
        successful_connections: Some(3),
        total_connections: Some(2),
        ..Default::default()
    };
    for update in [nan, too_high, negative, inconsistent] {
        let err = book
            .update_connection_quality("existing", update)
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { field, .. } if field.starts_with("connection_quality.")),
            "{err}"
        );
    }
    let mut record = book.get_peer("existing").unwrap().unwrap();
    record.connection_quality.success_rate = f32::INFINITY;
    assert!(matches!(
        book.store_peer(record.clone()),
        Err(Error::InvalidInput { .. })
    ));
    record.connection_quality.success_rate = 0.5;
    record.cached_candidates = vec!["x".repeat(600)];
    assert!(matches!(
        book.store_peer(record),
        Err(Error::InvalidInput { .. })
    ));
    for id in ["", "a b", "\u{1F600}"] {
        assert!(
            matches!(book.update_last_seen(id), Err(Error::InvalidInput { .. })),
            "{id:?}"
        );
        assert!(matches!(
            book.increment_reconnection_attempts(id),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(book.get_peer(id), Err(Error::InvalidInput { .. })));
        assert!(matches!(
            book.remove_peer(id),
            Err(Error::InvalidInput { .. })
        ));
    }
    assert!(matches!(
        book.update_last_seen("unknown"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        book.increment_reconnection_attempts("unknown"),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        book.update_connection_quality("unknown", QualityUpdate::default()),
        Err(Error::NotFound { .. })
    ));
    let bad_query = PeerQuery {
        min_quality: Some(101),
        ..PeerQuery::default()
    };
    assert!(matches!(
        book.query_peers(&bad_query),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        snapshot(book.backend()),
        before,
        "no bad input changed anything"
    );
}

/// The quality score table, row by row, as the by_quality index and queries see it.
pub fn quality_score_rows<F: Factory>(f: &F) {
    let (book, _) = fresh(f);
    let rows: Vec<(&str, ConnectionQuality, u8)> = vec![
        (
            "none",
            quality(None, 0.0, ConnectionType::Unknown, 0, 0, 0),
            0,
        ),
        (
            "lat49",
            quality(Some(49), 0.0, ConnectionType::Unknown, 0, 0, 0),
            40,
        ),
        (
            "lat50",
            quality(Some(50), 0.0, ConnectionType::Unknown, 0, 0, 0),
            35,
        ),
        (
            "lat100",
            quality(Some(100), 0.0, ConnectionType::Unknown, 0, 0, 0),
            25,
        ),
        (
            "lat200",
            quality(Some(200), 0.0, ConnectionType::Unknown, 0, 0, 0),
            15,
        ),
        (
            "lat500",
            quality(Some(500), 0.0, ConnectionType::Unknown, 0, 0, 0),
            5,
        ),
        (
            "rate09",
            quality(None, 0.9, ConnectionType::Unknown, 10, 9, 0),
            27,
        ),
        (
            "rate08",
            quality(None, 0.8, ConnectionType::Unknown, 10, 8, 0),
            24,
        ),
        (
            "rate07",
            quality(None, 0.7, ConnectionType::Unknown, 10, 7, 0),
            21,
        ),
        (
            "rate-no-total",
            quality(None, 0.9, ConnectionType::Unknown, 0, 0, 0),
            0,
        ),
        (
            "host",
            quality(None, 0.0, ConnectionType::Host, 0, 0, 0),
            20,
        ),
        (
            "srflx",
            quality(None, 0.0, ConnectionType::Srflx, 0, 0, 0),
            12,
        ),
        (
            "relay",
            quality(None, 0.0, ConnectionType::Relay, 0, 0, 0),
            5,
        ),
        (
            "up10",
            quality(None, 0.0, ConnectionType::Unknown, 0, 0, 10 * MINUTE_MS + 1),
            10,
        ),
        (
            "up5",
            quality(None, 0.0, ConnectionType::Unknown, 0, 0, 5 * MINUTE_MS + 1),
            7,
        ),
        (
            "up1",
            quality(None, 0.0, ConnectionType::Unknown, 0, 0, MINUTE_MS + 1),
            4,
        ),
        (
            "up1exact",
            quality(None, 0.0, ConnectionType::Unknown, 0, 0, MINUTE_MS),
            0,
        ),
        (
            "best",
            quality(Some(30), 0.9, ConnectionType::Host, 10, 9, 11 * MINUTE_MS),
            97,
        ),
        (
            "max",
            quality(Some(1), 1.0, ConnectionType::Host, 10, 10, 11 * MINUTE_MS),
            100,
        ),
    ];
    for (id, q, expected) in &rows {
        book.store_peer(plain_peer(id)).unwrap();
        book.update_connection_quality(id, *q).unwrap();
        assert_eq!(quality_score(q), *expected, "quality score of {id}");
    }
    let mut index: Vec<(u8, String)> = space_keys(book.backend(), Space::ByQuality)
        .into_iter()
        .map(|k| (k[0], String::from_utf8_lossy(&k[1..]).into_owned()))
        .collect();
    index.sort();
    let mut expected: Vec<(u8, String)> =
        rows.iter().map(|(id, _, s)| (*s, id.to_string())).collect();
    expected.sort();
    assert_eq!(index, expected, "by_quality index holds each peer's score");
    let top = book
        .query_peers(&PeerQuery {
            sort_by: SortBy::Quality,
            order: Order::Desc,
            limit: Some(3),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&top), ["max", "best", "lat49"], "quality desc");
    let min = book
        .query_peers(&PeerQuery {
            sort_by: SortBy::Quality,
            order: Order::Asc,
            min_quality: Some(25),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        ids(&min),
        ["lat100", "rate09", "lat50", "lat49", "best", "max"],
        "min_quality 25, ascending, ties by id"
    );
}

/// The reconnection score table, part by part, as candidates report it.
pub fn reconnection_score_rows<F: Factory>(f: &F) {
    let (book, clock) = book_with(f, |o| o.max_peers = 1000);
    book.store_peer(plain_peer("p")).unwrap();
    // quality 97 -> 39; 9 of 10 successes -> success 20, reliability 9
    book.update_connection_quality(
        "p",
        quality(Some(30), 0.9, ConnectionType::Host, 10, 9, 11 * MINUTE_MS),
    )
    .unwrap();
    let score_at = |age_ms: u64| {
        clock.set(T0 + age_ms);
        let c = book
            .get_reconnection_candidates(&CandidateQuery {
                limit: 1,
                max_age: None,
            })
            .unwrap();
        c[0].score
    };
    let s = score_at(0);
    assert_eq!(
        (
            s.quality,
            s.recency,
            s.success,
            s.reliability,
            s.penalty,
            s.total
        ),
        (39, 30, 20, 9, 0, 98)
    );
    assert_eq!(score_at(DAY_MS - 1).recency, 30, "< 1 day");
    assert_eq!(score_at(DAY_MS).recency, 20, "exactly 1 day");
    assert_eq!(score_at(3 * DAY_MS - 1).recency, 20);
    assert_eq!(score_at(3 * DAY_MS).recency, 10);
    assert_eq!(score_at(7 * DAY_MS - 1).recency, 10);
    assert_eq!(score_at(7 * DAY_MS).recency, 0);
    clock.set(T0);
    for _ in 0..3 {
        book.increment_reconnection_attempts("p").unwrap();
    }
    let s = score_at(0);
    assert_eq!(
        (s.penalty, s.total),
        (15, 83),
        "5 points per failed attempt"
    );
    // reliability rounds half up: 3 of 4 = 7.5 -> 8
    book.update_connection_quality(
        "p",
        QualityUpdate {
            total_connections: Some(4),
            successful_connections: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    let s = score_at(0);
    assert_eq!((s.success, s.reliability), (12, 8));
    // clamped at 0 and 100
    book.store_peer(plain_peer("floor")).unwrap();
    clock.set(T0 + 8 * DAY_MS);
    let mut floor = book.get_peer("floor").unwrap().unwrap();
    floor.reconnection_attempts = 4;
    book.store_peer(floor).unwrap();
    let all = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: None,
        })
        .unwrap();
    let f_score = all
        .iter()
        .find(|c| c.peer.peer_id.as_str() == "floor")
        .unwrap()
        .score;
    assert_eq!((f_score.penalty, f_score.total), (20, 0), "clamped at 0");
    book.store_peer(plain_peer("top")).unwrap();
    book.update_connection_quality(
        "top",
        quality(Some(1), 1.0, ConnectionType::Host, 10, 10, 11 * MINUTE_MS),
    )
    .unwrap();
    let top = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 1,
            max_age: None,
        })
        .unwrap();
    assert_eq!(
        (top[0].peer.peer_id.as_str(), top[0].score.total),
        ("top", 100),
        "the maximum is 100"
    );
}

/// Candidates: blacklisted peers never appear, max_age filters, limit cuts, and ties
/// break by later last_seen, then smaller peer id.
pub fn reconnection_candidates_ranking_and_filters<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    for id in ["c", "a", "b"] {
        book.store_peer(plain_peer(id)).unwrap(); // all seen at T0, equal scores
    }
    clock.advance(Duration::from_secs(10));
    book.store_peer(plain_peer("later")).unwrap(); // same score band, later last_seen
    clock.advance(2 * DAY);
    book.store_peer(plain_peer("fresh")).unwrap();
    book.update_last_seen("fresh").unwrap();
    book.store_peer(plain_peer("banned")).unwrap();
    for _ in 0..5 {
        book.increment_reconnection_attempts("banned").unwrap();
    }
    let all = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: None,
        })
        .unwrap();
    let order: Vec<&str> = all.iter().map(|c| c.peer.peer_id.as_str()).collect();
    assert_eq!(
        order,
        ["fresh", "later", "a", "b", "c"],
        "score, then later last_seen, then peer id; no blacklisted"
    );
    assert!(
        all.windows(2).all(|w| w[0].score.total >= w[1].score.total),
        "sorted by score"
    );
    let limited = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 2,
            max_age: None,
        })
        .unwrap();
    assert_eq!(limited.len(), 2);
    let recent = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: Some(DAY),
        })
        .unwrap();
    assert_eq!(
        recent
            .iter()
            .map(|c| c.peer.peer_id.as_str())
            .collect::<Vec<_>>(),
        ["fresh"],
        "max_age 24 h"
    );
    assert!(book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 0,
            max_age: None
        })
        .unwrap()
        .is_empty());
    clock.advance(DAY + Duration::from_millis(1));
    let after = book
        .get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: None,
        })
        .unwrap();
    assert!(
        after.iter().any(|c| c.peer.peer_id.as_str() == "banned"),
        "blacklist over: a candidate again"
    );
}

/// query_peers: every sort, both orders, limit, max_age and min_quality.
pub fn query_peers_sorting_and_filters<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    let plan: [(&str, u64, ConnectionQuality); 5] = [
        (
            "p1",
            0,
            quality(Some(30), 1.0, ConnectionType::Host, 5, 5, 0),
        ), // 90
        (
            "p2",
            2,
            quality(Some(300), 0.5, ConnectionType::Relay, 2, 1, 0),
        ), // 35
        (
            "p3",
            5,
            quality(None, 0.0, ConnectionType::Unknown, 0, 0, 0),
        ), // 0
        (
            "p4",
            9,
            quality(Some(80), 0.8, ConnectionType::Srflx, 5, 4, 0),
        ), // 71
        (
            "p5",
            20,
            quality(Some(20), 1.0, ConnectionType::Relay, 1, 1, 0),
        ), // 75
    ];
    for (id, days_ago, q) in &plan {
        clock.set(T0 - days_ago * DAY_MS);
        book.store_peer(plain_peer(id)).unwrap();
        book.update_connection_quality(id, *q).unwrap();
    }
    clock.set(T0);
    let q = |sort_by, order, limit, max_age, min_quality| {
        let query = PeerQuery {
            sort_by,
            order,
            limit,
            max_age,
            min_quality,
        };
        ids(&book.query_peers(&query).unwrap())
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, None, None, None),
        ["p1", "p2", "p3", "p4", "p5"]
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Asc, None, None, None),
        ["p5", "p4", "p3", "p2", "p1"]
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, Some(2), None, None),
        ["p1", "p2"]
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, None, Some(7 * DAY), None),
        ["p1", "p2", "p3"],
        "max_age 7 days"
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, None, Some(5 * DAY), None),
        ["p1", "p2", "p3"],
        "exactly max_age old is kept"
    );
    assert_eq!(
        q(SortBy::LastSeen, Order::Desc, None, None, Some(70)),
        ["p1", "p4", "p5"],
        "min_quality 70"
    );
    assert_eq!(
        q(SortBy::Quality, Order::Desc, Some(5), None, Some(70)),
        ["p1", "p5", "p4"],
        "the seed's routing query"
    );
    assert_eq!(
        q(SortBy::Quality, Order::Asc, None, None, None),
        ["p3", "p2", "p4", "p5", "p1"]
    );
    assert_eq!(
        q(SortBy::Quality, Order::Desc, None, Some(7 * DAY), Some(1)),
        ["p1", "p2"]
    );
    // p1 96, p4 52 (28 + 0 + 16 + 8), p5 44, p2 43, p3 10
    assert_eq!(
        q(SortBy::ReconnectionScore, Order::Desc, None, None, None),
        ["p1", "p4", "p5", "p2", "p3"]
    );
    assert_eq!(
        q(
            SortBy::ReconnectionScore,
            Order::Desc,
            Some(2),
            Some(7 * DAY),
            None
        ),
        ["p1", "p2"]
    );
    assert_eq!(
        q(SortBy::ReconnectionScore, Order::Asc, Some(1), None, None),
        ["p3"]
    );
    assert!(
        q(SortBy::LastSeen, Order::Desc, Some(0), None, None).is_empty(),
        "limit 0"
    );
    assert!(
        q(SortBy::Quality, Order::Desc, None, None, Some(100)).is_empty(),
        "nobody at 100"
    );
}

/// update_last_seen: last_seen = last_connected = now, attempts 0, blacklist cleared.
pub fn update_last_seen_resets_attempts<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    book.store_peer(plain_peer("p")).unwrap();
    for _ in 0..5 {
        book.increment_reconnection_attempts("p").unwrap();
    }
    assert!(book
        .get_peer("p")
        .unwrap()
        .unwrap()
        .blacklist_until
        .is_some());
    clock.advance(HOUR);
    let r = book.update_last_seen("p").unwrap();
    assert_eq!(
        (r.last_seen, r.last_connected),
        (T0 + 3_600_000, T0 + 3_600_000)
    );
    assert_eq!(r.reconnection_attempts, 0);
    assert_eq!(r.blacklist_until, None);
    assert_eq!(book.get_peer("p").unwrap().unwrap(), r, "persisted");
    assert_clean(&book, "after update_last_seen");
}

/// increment_reconnection_attempts blacklists at failed_attempts for blacklist_for.
pub fn blacklist_after_failed_attempts<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    book.store_peer(plain_peer("p")).unwrap();
    for n in 1..=4 {
        let r = book.increment_reconnection_attempts("p").unwrap();
        assert_eq!(r.reconnection_attempts, n);
        assert_eq!(
            r.blacklist_until, None,
            "not blacklisted before {n} reaches 5"
        );
    }
    clock.advance(Duration::from_secs(60));
    let r = book.increment_reconnection_attempts("p").unwrap();
    assert_eq!(r.reconnection_attempts, 5);
    assert_eq!(
        r.blacklist_until,
        Some(T0 + 60_000 + DAY_MS),
        "blacklisted for 24 h from now"
    );
    assert!(r.is_blacklisted(T0 + 60_000));
    assert!(
        book.get_reconnection_candidates(&CandidateQuery::default())
            .unwrap()
            .is_empty(),
        "never a candidate"
    );
    assert_eq!(book.get_storage_stats().unwrap().blacklisted_count, 1);
    clock.advance(DAY - Duration::from_millis(1));
    assert_eq!(
        book.get_storage_stats().unwrap().blacklisted_count,
        1,
        "1 ms before the end: blacklisted"
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        book.get_storage_stats().unwrap().blacklisted_count,
        0,
        "at now + 24 h the blacklist is over"
    );
}

/// update_connection_quality changes only the fields given.
pub fn connection_quality_partial_update<F: Factory>(f: &F) {
    let (book, _) = fresh(f);
    book.store_peer(plain_peer("p")).unwrap();
    let full = quality(Some(120), 0.5, ConnectionType::Srflx, 4, 2, 90_000);
    book.update_connection_quality("p", full).unwrap();
    let partial = QualityUpdate {
        latency_ms: Some(Some(42)),
        connection_type: Some(ConnectionType::Host),
        ..Default::default()
    };
    let r = book.update_connection_quality("p", partial).unwrap();
    assert_eq!(
        r.connection_quality,
        ConnectionQuality {
            latency_ms: Some(42),
            connection_type: ConnectionType::Host,
            ..full
        }
    );
    let forget = QualityUpdate {
        latency_ms: Some(None),
        ..Default::default()
    };
    assert_eq!(
        book.update_connection_quality("p", forget)
            .unwrap()
            .connection_quality
            .latency_ms,
        None
    );
    let metrics = crate::update_quality_metrics(
        &book.get_peer("p").unwrap().unwrap().connection_quality,
        &crate::SessionObservation {
            success: true,
            uptime_ms: 120_000,
            latency_ms: Some(100),
        },
    );
    let r = book.update_connection_quality("p", metrics).unwrap();
    assert_eq!(
        (
            r.connection_quality.total_connections,
            r.connection_quality.successful_connections
        ),
        (5, 3)
    );
    assert_eq!(
        r.connection_quality.avg_uptime_ms, 100_000,
        "(90 000 x 2 + 120 000) / 3"
    );
    assert_eq!(r.connection_quality.latency_ms, Some(100));
    let key = space_keys(book.backend(), Space::ByQuality);
    assert_eq!(key.len(), 1);
    assert_eq!(
        key[0][0],
        quality_score(&r.connection_quality),
        "quality index follows the update"
    );
    assert_clean(&book, "after quality updates");
}

/// cleanup_stale_peers removes peers unseen for more than 30 days and peers that
/// failed 5 times with their blacklist over; nothing else.
pub fn cleanup_stale_peers_rules<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    book.store_peer(plain_peer("old")).unwrap();
    clock.advance(Duration::from_millis(1));
    book.store_peer(plain_peer("edge")).unwrap();
    clock.advance(5 * DAY);
    book.store_peer(plain_peer("failed")).unwrap();
    book.store_peer(plain_peer("banned")).unwrap();
    book.store_peer(plain_peer("fine")).unwrap();
    for _ in 0..5 {
        book.increment_reconnection_attempts("failed").unwrap();
    }
    // "old" is now 30 days + 1 ms old, "edge" exactly 30 days; failed's blacklist is long over
    clock.set(T0 + 30 * DAY_MS + 1);
    for _ in 0..5 {
        book.increment_reconnection_attempts("banned").unwrap(); // blacklisted until tomorrow
    }
    let removed = book.cleanup_stale_peers().unwrap();
    let left = ids(&book
        .query_peers(&PeerQuery {
            sort_by: SortBy::LastSeen,
            order: Order::Asc,
            ..Default::default()
        })
        .unwrap())
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    assert_eq!(
        removed, 2,
        "old (inactive) and failed (blacklist over) removed"
    );
    let mut sorted = left.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["banned", "edge", "fine"],
        "exactly 30 days old is not stale; an active blacklist is not stale"
    );
    assert_eq!(
        book.get_storage_stats().unwrap().last_cleanup,
        Some(T0 + 30 * DAY_MS + 1)
    );
    assert_eq!(
        book.cleanup_stale_peers().unwrap(),
        0,
        "nothing left to clean"
    );
    assert_clean(&book, "after cleanup");
}

/// needs_cleanup: after cleanup_interval, or at 90 % of max_peers.
pub fn needs_cleanup_rules<F: Factory>(f: &F) {
    let (book, clock) = book_with(f, |o| o.max_peers = 10);
    assert!(
        !book.needs_cleanup().unwrap(),
        "a new book needs no cleanup"
    );
    clock.advance(6 * HOUR);
    assert!(
        !book.needs_cleanup().unwrap(),
        "exactly 6 h is not older than 6 h"
    );
    clock.advance(Duration::from_millis(1));
    assert!(book.needs_cleanup().unwrap(), "6 h since the last cleanup");
    book.cleanup_stale_peers().unwrap();
    assert!(
        !book.needs_cleanup().unwrap(),
        "cleanup resets the interval"
    );
    for i in 0..8 {
        book.store_peer(plain_peer(&format!("p{i}"))).unwrap();
    }
    assert!(!book.needs_cleanup().unwrap(), "80 % full");
    book.store_peer(plain_peer("p8")).unwrap();
    assert!(book.needs_cleanup().unwrap(), "90 % full");
}

/// cleanup_lru(n) removes the n least recently seen peers.
pub fn cleanup_lru_removes_least_recently_seen<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    for i in 0..6 {
        clock.advance(Duration::from_secs(1));
        book.store_peer(plain_peer(&format!("p{i}"))).unwrap();
    }
    clock.advance(Duration::from_secs(1));
    book.update_last_seen("p0").unwrap(); // p0 becomes the most recent
    assert_eq!(book.cleanup_lru(0).unwrap(), 0);
    assert_eq!(book.cleanup_lru(2).unwrap(), 2);
    let left = book
        .query_peers(&PeerQuery {
            order: Order::Asc,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&left), ["p3", "p4", "p5", "p0"]);
    assert_eq!(book.cleanup_lru(10).unwrap(), 4, "no more than there are");
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
    assert_clean(&book, "after LRU cleanup");
}

/// A new peer into a full book fails with QuotaExceeded and changes nothing;
/// updates of existing peers still work.
pub fn quota_max_peers<F: Factory>(f: &F) {
    let (book, _) = book_with(f, |o| o.max_peers = 3);
    for id in ["a", "b", "c"] {
        book.store_peer(plain_peer(id)).unwrap();
    }
    let before = snapshot(book.backend());
    match book.store_peer(plain_peer("d")) {
        Err(Error::QuotaExceeded(Quota::Peers { limit: 3 })) => {}
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(
        snapshot(book.backend()),
        before,
        "a refused store changes nothing"
    );
    book.store_peer(plain_peer("a"))
        .expect("an update of a stored peer is not a new peer");
    book.update_last_seen("b").unwrap();
    book.cleanup_lru(1).unwrap();
    book.store_peer(plain_peer("d"))
        .expect("room again after cleanup_lru");
}

/// max_bytes caps the sum of encoded record sizes.
pub fn quota_max_bytes<F: Factory>(f: &F) {
    let (probe, _) = fresh(f);
    let one = probe.store_peer(plain_peer("a")).unwrap().encode().len() as u64;
    let (book, _) = book_with(f, |o| o.max_bytes = Some(2 * one + one / 2));
    book.store_peer(plain_peer("a")).unwrap();
    book.store_peer(plain_peer("b")).unwrap();
    let before = snapshot(book.backend());
    match book.store_peer(plain_peer("c")) {
        Err(Error::QuotaExceeded(Quota::Bytes { needed, .. })) => assert_eq!(needed, 3 * one),
        other => panic!("expected a bytes quota error, got {other:?}"),
    }
    assert_eq!(snapshot(book.backend()), before);
    let stats = book.get_storage_stats().unwrap();
    assert_eq!(stats.record_bytes, 2 * one);
    assert!(
        stats.utilization_percent >= 79.0,
        "utilization counts bytes: {}",
        stats.utilization_percent
    );
}

/// With evict_when_full, a new peer in a full book evicts the least recently seen.
pub fn eviction_when_asked<F: Factory>(f: &F) {
    let (book, clock) = book_with(f, |o| {
        o.max_peers = 3;
        o.evict_when_full = true;
    });
    for id in ["a", "b", "c"] {
        clock.advance(Duration::from_secs(1));
        book.store_peer(plain_peer(id)).unwrap();
    }
    book.update_last_seen("a").unwrap();
    clock.advance(Duration::from_secs(1));
    book.store_peer(plain_peer("d"))
        .expect("evicts instead of failing");
    assert_eq!(
        book.get_peer("b").unwrap(),
        None,
        "b was the least recently seen"
    );
    let mut left: Vec<String> = ids(&book.query_peers(&PeerQuery::default()).unwrap())
        .into_iter()
        .map(String::from)
        .collect();
    left.sort();
    assert_eq!(left, ["a", "c", "d"]);
    assert_clean(&book, "after eviction");
}

/// get_storage_stats counts peers, bytes, blacklisted, ages and utilization.
pub fn storage_stats<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    let empty = book.get_storage_stats().unwrap();
    assert_eq!(
        (empty.peer_count, empty.record_bytes, empty.oldest_seen),
        (0, 0, None)
    );
    assert_eq!(empty.max_peers, 100);
    for i in 0..4 {
        clock.advance(HOUR);
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    for _ in 0..5 {
        book.increment_reconnection_attempts("p3").unwrap();
    }
    let bytes: u64 = (0..4)
        .map(|i| {
            book.get_peer(&format!("p{i}"))
                .unwrap()
                .unwrap()
                .encode()
                .len() as u64
        })
        .sum();
    let s = book.get_storage_stats().unwrap();
    assert_eq!(s.peer_count, 4);
    assert_eq!(s.record_bytes, bytes, "record bytes are the encoded sizes");
    assert_eq!(s.blacklisted_count, 1);
    assert_eq!(s.corrupt_records, 0);
    assert_eq!(s.oldest_seen, Some(T0 + 3_600_000));
    assert_eq!(s.newest_seen, Some(T0 + 4 * 3_600_000));
    assert_eq!(s.utilization_percent, 4.0);
    assert_eq!(s.engine, book.backend().engine_name());
}

/// Secrets are never stored in plaintext, and a sealed secret copied onto another
/// peer is refused.
pub fn secrets_sealed_and_bound_to_peer<F: Factory>(f: &F) {
    let (book, _) = fresh(f);
    let a = book.store_peer(sample_peer("alice")).unwrap();
    let b = book.store_peer(sample_peer("bob")).unwrap();
    for (_, k, v) in snapshot(book.backend()) {
        for needle in [&b"shared-secret-of"[..], b"turn-credential-of"] {
            assert!(
                !v.windows(needle.len()).any(|w| w == needle),
                "plaintext secret found in storage"
            );
            assert!(!k.windows(needle.len()).any(|w| w == needle));
        }
    }
    let before = snapshot(book.backend());
    let mut swapped = b.clone();
    swapped.shared_secret = a.shared_secret.clone();
    match book.store_peer(swapped) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "shared_secret"),
        other => panic!("a secret moved between peers must be refused, got {other:?}"),
    }
    let mut swapped = b.clone();
    swapped.ice_servers[1].credential = a.ice_servers[1].credential.clone();
    assert!(matches!(
        book.store_peer(swapped),
        Err(Error::InvalidInput { .. })
    ));
    let mut moved = b.clone();
    moved.ice_servers[0].credential = b.ice_servers[1].credential.clone();
    book.store_peer(moved)
        .expect("a credential may move between servers of the same peer");
    let mut forged = b.clone();
    forged.shared_secret = Some(crate::SealedSecret::from_bytes(vec![0; 40]).unwrap());
    assert!(matches!(
        book.store_peer(forged.clone()),
        Err(Error::InvalidInput { .. })
    ));
    assert!(
        matches!(
            book.open_shared_secret(&forged),
            Err(Error::Corrupted { .. })
        ),
        "a bad seal is corrupted, never garbage"
    );
    let alice = book.get_peer("alice").unwrap().unwrap();
    assert_eq!(
        book.open_shared_secret(&alice).unwrap().unwrap().expose(),
        b"shared-secret-of-alice",
        "refusals changed nothing"
    );
    assert_eq!(snapshot(book.backend()).len(), before.len());
}

/// Opening a book with the wrong key fails at once with WrongKey.
pub fn wrong_key_refused_at_open<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    book.store_peer(sample_peer("p")).unwrap();
    let backend = Arc::new(f.reopen(book.close().unwrap()));
    let wrong = Options::new(other_key()).with_clock(clock.clone());
    match PeerBook::open(Arc::clone(&backend), wrong) {
        Err(e @ Error::WrongKey) => assert!(e.to_string().contains("wrong key")),
        other => panic!("expected WrongKey, got {other:?}"),
    }
    let book = PeerBook::open(backend, options(&clock)).expect("the right key still opens");
    let p = book.get_peer("p").unwrap().unwrap();
    assert_eq!(
        book.open_shared_secret(&p).unwrap().unwrap().expose(),
        b"shared-secret-of-p"
    );
}

/// rotate_key re-seals every secret: afterwards only the new key opens the book
/// and every secret reads the same.
pub fn rotate_key_keeps_every_secret<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    for i in 0..5 {
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    book.store_peer(plain_peer("plain")).unwrap();
    let before = book.get_peer("p0").unwrap().unwrap();
    assert_eq!(
        book.rotate_key(&other_key()).unwrap(),
        5,
        "five records hold secrets"
    );
    let after = book.get_peer("p0").unwrap().unwrap();
    assert_ne!(after.shared_secret, before.shared_secret, "re-sealed");
    assert_eq!(
        book.open_shared_secret(&after).unwrap().unwrap().expose(),
        b"shared-secret-of-p0"
    );
    book.store_peer(sample_peer("new")).unwrap();
    let backend = Arc::new(f.reopen(book.close().unwrap()));
    assert!(
        matches!(
            PeerBook::open(Arc::clone(&backend), options(&clock)),
            Err(Error::WrongKey)
        ),
        "old key refused"
    );
    let book = PeerBook::open(backend, Options::new(other_key()).with_clock(clock.clone()))
        .expect("new key opens");
    for id in ["p0", "p1", "p2", "p3", "p4", "new"] {
        let r = book.get_peer(id).unwrap().unwrap();
        assert_eq!(
            book.open_shared_secret(&r).unwrap().unwrap().expose(),
            format!("shared-secret-of-{id}").as_bytes()
        );
        assert_eq!(
            book.open_ice_credential(&r, 1).unwrap().unwrap().expose(),
            format!("turn-credential-of-{id}").as_bytes()
        );
    }
    assert_clean(&book, "after rotation");
}

/// Export then import into a fresh book gives identical records (JSON included);
/// an export without secrets imports under any key.
pub fn export_import_round_trip<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    for i in 0..5 {
        clock.advance(HOUR);
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    book.update_connection_quality(
        "p2",
        quality(Some(40), 0.75, ConnectionType::Relay, 4, 3, 70_000),
    )
    .unwrap();
    let doc = book.export_data(ExportOptions::default()).unwrap();
    assert_eq!(doc.peers.len(), 5);
    let json = doc.to_json();
    assert!(
        !json.contains("shared-secret-of"),
        "exports keep secrets sealed"
    );
    let parsed = ExportDocument::from_json(&json).unwrap();
    assert_eq!(parsed, doc, "JSON round trip");
    let (target, _) = fresh(f);
    let report = target.import_data(&parsed, ImportMode::Merge).unwrap();
    assert_eq!(report.imported, 5);
    let original = book.query_peers(&PeerQuery::default()).unwrap();
    let copied = target.query_peers(&PeerQuery::default()).unwrap();
    assert_eq!(copied, original, "identical records");
    let r = target.get_peer("p3").unwrap().unwrap();
    assert_eq!(
        target.open_shared_secret(&r).unwrap().unwrap().expose(),
        b"shared-secret-of-p3"
    );
    assert_clean(&target, "after import");
    // merge replaces by id, replace makes the book equal to the document
    target.store_peer(plain_peer("extra")).unwrap();
    let merged = target.import_data(&parsed, ImportMode::Merge).unwrap();
    assert_eq!((merged.imported, merged.replaced), (5, 5));
    assert!(
        target.get_peer("extra").unwrap().is_some(),
        "merge keeps other peers"
    );
    let replaced = target.import_data(&parsed, ImportMode::Replace).unwrap();
    assert_eq!(replaced.removed, 6);
    assert_eq!(
        target.get_peer("extra").unwrap(),
        None,
        "replace drops other peers"
    );
    assert_eq!(target.get_storage_stats().unwrap().peer_count, 5);
    assert_clean(&target, "after replace");
    // without secrets, any key
    let bare = book
        .export_data(ExportOptions {
            include_secrets: false,
        })
        .unwrap();
    assert!(bare.key_check.is_none());
    let (foreign, _) = book_with(f, |o| o.key = other_key());
    foreign.import_data(&bare, ImportMode::Merge).unwrap();
    assert_eq!(foreign.get_peer("p1").unwrap().unwrap().shared_secret, None);
}

/// An import that fails anywhere (a bad record in the middle, a quota) leaves the
/// book unchanged.
pub fn import_is_all_or_nothing<F: Factory>(f: &F) {
    let (source, _) = fresh(f);
    for i in 0..6 {
        source.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    let doc = source.export_data(ExportOptions::default()).unwrap();
    let (target, _) = book_with(f, |o| o.max_peers = 6);
    target.store_peer(plain_peer("mine")).unwrap();
    let before = snapshot(target.backend());
    let mut bad = doc.clone();
    bad.peers[3].cached_candidates = vec!["x".repeat(513)];
    match target.import_data(&bad, ImportMode::Merge) {
        Err(Error::InvalidInput { field, .. }) => {
            assert_eq!(field, "peers[3].cached_candidates[0]")
        }
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(
        snapshot(target.backend()),
        before,
        "bad record in the middle: nothing imported"
    );
    let mut json: serde_json::Value = serde_json::from_str(&doc.to_json()).unwrap();
    json["peers"][4]["connection_quality"]["success_rate"] = serde_json::json!(7.5);
    let bad = ExportDocument::from_json(&json.to_string()).unwrap();
    assert!(matches!(
        target.import_data(&bad, ImportMode::Replace),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(snapshot(target.backend()), before);
    match target.import_data(&doc, ImportMode::Merge) {
        Err(Error::QuotaExceeded(_)) => {}
        other => panic!("7 peers into max 6: expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(
        snapshot(target.backend()),
        before,
        "quota refusal imports nothing"
    );
    target
        .import_data(&doc, ImportMode::Replace)
        .expect("replace fits exactly 6");
}

/// Import refuses documents of another key, tampered or swapped secrets, wrong
/// format or newer versions, and duplicates, changing nothing.
pub fn import_refuses_other_key_and_bad_documents<F: Factory>(f: &F) {
    let (source, _) = fresh(f);
    source.store_peer(sample_peer("a")).unwrap();
    source.store_peer(sample_peer("b")).unwrap();
    let doc = source.export_data(ExportOptions::default()).unwrap();
    let (foreign, _) = book_with(f, |o| o.key = other_key());
    let before = snapshot(foreign.backend());
    assert!(
        matches!(
            foreign.import_data(&doc, ImportMode::Merge),
            Err(Error::WrongKey)
        ),
        "another key's secrets"
    );
    let mut no_check = doc.clone();
    no_check.key_check = None;
    assert!(matches!(
        foreign.import_data(&no_check, ImportMode::Merge),
        Err(Error::WrongKey)
    ));
    assert_eq!(snapshot(foreign.backend()), before);

    let (target, _) = fresh(f);
    let before = snapshot(target.backend());
    let mut swapped = doc.clone();
    swapped.peers[1].shared_secret = swapped.peers[0].shared_secret.clone();
    match target.import_data(&swapped, ImportMode::Merge) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "peers[1].shared_secret"),
        other => panic!("swapped secret: expected InvalidInput, got {other:?}"),
    }
    let mut tampered = doc.clone();
    let mut bytes = tampered.peers[0].ice_servers[1]
        .credential
        .as_ref()
        .unwrap()
        .as_bytes()
        .to_vec();
    bytes[20] ^= 1;
    tampered.peers[0].ice_servers[1].credential =
        Some(crate::SealedSecret::from_bytes(bytes).unwrap());
    assert!(matches!(
        target.import_data(&tampered, ImportMode::Merge),
        Err(Error::InvalidInput { .. })
    ));
    let mut dup = doc.clone();
    dup.peers.push(dup.peers[0].clone());
    assert!(matches!(
        target.import_data(&dup, ImportMode::Merge),
        Err(Error::InvalidInput { .. })
    ));
    let mut future = doc.clone();
    future.version = 99;
    assert!(matches!(
        target.import_data(&future, ImportMode::Merge),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(
        snapshot(target.backend()),
        before,
        "refused imports change nothing"
    );

    let json = doc.to_json();
    let bad_docs = [
        ("not json".to_string(), "document"),
        ("[]".to_string(), "document"),
        (json.replace("peerbook-export", "something-else"), "format"),
        (
            json.replacen("\"version\": 2", "\"version\": 3", 1),
            "version",
        ),
        (
            json.replacen("\"version\": 2", "\"version\": \"2\"", 1),
            "version",
        ),
        (
            json.replacen("\"peer_id\": \"a\"", "\"peer_id\": \"a b\"", 1),
            "document",
        ),
        (
            json.replacen("\"exported_at\"", "\"exported\"", 1),
            "document",
        ),
    ];
    for (text, field) in bad_docs {
        match ExportDocument::from_json(&text) {
            Err(Error::InvalidInput { field: got, rule }) => {
                assert_eq!(got, field, "{rule}");
                if field == "version" && text.contains("\"version\": 3") {
                    assert!(rule.contains("newer"), "a future version says so: {rule}");
                }
            }
            other => panic!("expected InvalidInput on {field}, got {other:?}"),
        }
    }
}

/// clear_all removes every peer; the book stays usable with the same key.
pub fn clear_all<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    for i in 0..5 {
        book.store_peer(sample_peer(&format!("p{i}"))).unwrap();
    }
    book.clear_all().unwrap();
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
    assert!(book.query_peers(&PeerQuery::default()).unwrap().is_empty());
    assert!(space_keys(book.backend(), Space::ByLastSeen).is_empty());
    assert!(space_keys(book.backend(), Space::ByQuality).is_empty());
    book.store_peer(sample_peer("again")).unwrap();
    let book = reopen(f, book, options(&clock)).expect("reopens with the same key after clear");
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 1);
    assert_clean(&book, "after clear_all");
}

/// A record whose bytes are damaged is reported as corrupted by get, skipped by
/// queries, counted in stats, reported by verify and quarantined by repair.
pub fn corrupt_record_reported_skipped_and_repaired<F: Factory>(f: &F) {
    let (book, _) = fresh(f);
    for id in ["a", "b", "c"] {
        book.store_peer(sample_peer(id)).unwrap();
    }
    let mut damaged = book.backend().get(Space::Peers, b"b").unwrap().unwrap();
    let mid = damaged.len() / 2;
    damaged.truncate(mid);
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"b".to_vec(), damaged);
    book.backend().write(batch, Durability::Sync).unwrap();

    assert!(
        matches!(book.get_peer("b"), Err(Error::Corrupted { .. })),
        "get reports corruption"
    );
    assert_eq!(
        ids(&book.query_peers(&PeerQuery::default()).unwrap()).len(),
        2,
        "queries skip it"
    );
    let by_quality = PeerQuery {
        sort_by: SortBy::Quality,
        ..PeerQuery::default()
    };
    assert_eq!(book.query_peers(&by_quality).unwrap().len(), 2);
    assert_eq!(
        book.get_reconnection_candidates(&CandidateQuery {
            limit: 10,
            max_age: None
        })
        .unwrap()
        .len(),
        2
    );
    assert!(
        matches!(book.update_last_seen("b"), Err(Error::Corrupted { .. })),
        "no update of a corrupt record"
    );
    let stats = book.get_storage_stats().unwrap();
    assert_eq!(
        (stats.peer_count, stats.corrupt_records),
        (3, 1),
        "stats count it"
    );
    let report = book.verify().unwrap();
    assert_eq!(report.corrupt.len(), 1, "verify reports it: {report:?}");
    assert_eq!(report.corrupt[0].key, "b");
    assert!(!report.is_clean());
    let export = book.export_data(ExportOptions::default()).unwrap();
    assert_eq!(export.peers.len(), 2, "export skips it");
    let repair = book.repair().unwrap();
    assert_eq!(repair.quarantined, 1);
    assert_clean(&book, "after repair");
    let stats = book.get_storage_stats().unwrap();
    assert_eq!(
        (
            stats.peer_count,
            stats.corrupt_records,
            stats.quarantined_records
        ),
        (2, 0, 1)
    );
    assert_eq!(
        book.get_peer("b").unwrap(),
        None,
        "quarantined, no longer a peer"
    );
    book.store_peer(sample_peer("b"))
        .expect("the id is usable again");

    // a corrupt record can also be removed directly, index entries included
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"c".to_vec(), vec![0xff, 0x00, 0x13]);
    book.backend().write(batch, Durability::Sync).unwrap();
    assert!(book.remove_peer("c").unwrap());
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 2);
    let report = book.verify().unwrap();
    assert_eq!(
        (report.missing_index_entries, report.orphan_index_entries),
        (0, 0),
        "its index entries went with it"
    );
    let mismatch = report
        .counters_mismatch
        .expect("the byte counter saw the damage written behind the store's back");
    assert_eq!((mismatch.stored_peers, mismatch.actual_peers), (2, 2));
    assert!(book.repair().unwrap().counters_fixed);
    assert_clean(&book, "after removing a corrupt record and repair");
}

/// verify finds missing and orphan index entries and bad counters; repair rebuilds
/// them so queries are right again.
pub fn verify_finds_index_damage_and_repair_fixes_it<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    for i in 0..5 {
        clock.advance(HOUR);
        book.store_peer(plain_peer(&format!("p{i}"))).unwrap();
    }
    let ls = space_keys(book.backend(), Space::ByLastSeen);
    let mut batch = WriteBatch::new();
    batch.delete(Space::ByLastSeen, ls[0].clone());
    batch.put(Space::ByQuality, b"\x07ghost".to_vec(), Vec::new());
    batch.put(
        Space::ByLastSeen,
        [&0u64.to_be_bytes()[..], b"p4"].concat(),
        Vec::new(),
    );
    // a by_last_seen entry whose score hint lies (claims the top score)
    batch.put(
        Space::ByLastSeen,
        ls[1].clone(),
        [vec![100, 20, 10], vec![0; 12]].concat(),
    );
    book.backend().write(batch, Durability::Sync).unwrap();
    let report = book.verify().unwrap();
    assert_eq!(report.missing_index_entries, 2, "{report:?}");
    assert_eq!(report.orphan_index_entries, 3, "{report:?}");
    let all = CandidateQuery {
        limit: 10,
        max_age: None,
    };
    let names = |cs: Vec<crate::Candidate>| {
        cs.into_iter()
            .map(|c| c.peer.peer_id.to_string())
            .collect::<Vec<_>>()
    };
    let before = names(book.get_reconnection_candidates(&all).unwrap());
    assert!(
        !before.contains(&"p1".to_string()),
        "a lying hint is never trusted: {before:?}"
    );
    assert!(
        !before.contains(&"p0".to_string()),
        "a missing entry is not a candidate until repair"
    );
    assert!(report.corrupt.is_empty());
    let asc = book
        .query_peers(&PeerQuery {
            order: Order::Asc,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        ids(&asc),
        ["p1", "p2", "p3", "p4"],
        "a stale entry never yields a wrong or duplicate result"
    );
    let repair = book.repair().unwrap();
    assert_eq!(
        (repair.index_entries_added, repair.index_entries_removed),
        (2, 3)
    );
    assert_clean(&book, "after repair");
    assert_eq!(
        book.get_reconnection_candidates(&all).unwrap().len(),
        5,
        "repair restores every candidate"
    );
    let asc = book
        .query_peers(&PeerQuery {
            order: Order::Asc,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&asc), ["p0", "p1", "p2", "p3", "p4"]);
}

/// A store written by a newer schema is refused; a store of records written before
/// versioning (no meta) is migrated: indexes, counters and key check are built.
pub fn schema_version_too_new_refused<F: Factory>(f: &F) {
    let (book, clock) = fresh(f);
    book.store_peer(plain_peer("p")).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(
        Space::Meta,
        b"schema_version".to_vec(),
        99u32.to_be_bytes().to_vec(),
    );
    book.backend().write(batch, Durability::Sync).unwrap();
    match reopen(f, book, options(&clock)) {
        Err(Error::SchemaTooNew {
            found: 99,
            supported,
        }) => assert_eq!(supported, crate::store::SCHEMA_VERSION),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }

    // version 0: records only
    let (source, _) = fresh(f);
    let records: Vec<PeerRecord> = (0..3)
        .map(|i| source.create_peer(plain_peer(&format!("old{i}"))).unwrap())
        .collect();
    let legacy = f.create();
    let mut batch = WriteBatch::new();
    for r in &records {
        batch.put(Space::Peers, r.peer_id.as_bytes().to_vec(), r.encode());
    }
    legacy.write(batch, Durability::Sync).unwrap();
    let book = PeerBook::open(legacy, options(&clock)).expect("a version 0 store is migrated");
    assert_eq!(
        book.query_peers(&PeerQuery::default()).unwrap().len(),
        3,
        "indexes built"
    );
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 3);
    assert_clean(&book, "after migration");
    let book = reopen(f, book, options(&clock)).expect("reopens as current");
    let wrong = reopen(f, book, Options::new(other_key()).with_clock(clock.clone()));
    assert!(
        matches!(wrong, Err(Error::WrongKey)),
        "migration wrote a key check"
    );
}

/// A version-0 store (records, no meta) opened with the wrong key is refused with
/// `WrongKey` before the migration writes anything: the key is tried on an existing
/// seal first, so a wrong key is never bound as the book's key check.
pub fn version_0_wrong_key_refused_unchanged<F: Factory>(f: &F) {
    let (source, clock) = fresh(f);
    let legacy = f.create();
    let mut batch = WriteBatch::new();
    // a plain record first: the check must look past records without seals
    for new in [plain_peer("old0"), sample_peer("old1"), plain_peer("old2")] {
        let r = source.create_peer(new).unwrap();
        batch.put(Space::Peers, r.peer_id.as_bytes().to_vec(), r.encode());
    }
    legacy.write(batch, Durability::Sync).unwrap();
    let before = snapshot(&legacy);
    let legacy = Arc::new(legacy);
    let wrong = PeerBook::open(
        Arc::clone(&legacy),
        Options::new(other_key()).with_clock(clock.clone()),
    );
    assert!(
        matches!(wrong, Err(Error::WrongKey)),
        "a wrong key on a version-0 store: {:?}",
        wrong.map(|_| ())
    );
    assert!(
        snapshot(&legacy) == before,
        "a refused migration changed the store"
    );
    let book = PeerBook::open(Arc::clone(&legacy), options(&clock))
        .expect("the right key still migrates it");
    let record = book.get_peer("old1").unwrap().expect("migrated");
    assert!(book.open_shared_secret(&record).unwrap().is_some());
}

/// Far-future timestamps are refused at every entry point (a whole record,
/// import, setters), with the field named and nothing changed; the limits
/// themselves are accepted.
pub fn far_future_timestamps_refused<F: Factory>(f: &F) {
    let (book, _clock) = fresh(f);
    let now = T0;
    let day = crate::MAX_CLOCK_SKEW_MS;
    let blacklist_for = crate::duration_ms(Options::new(key()).blacklist_for);
    let base = book.store_peer(sample_peer("p")).unwrap();
    let before = snapshot(book.backend());
    // (field, how to push it past its limit given now + 1 day)
    type Tamper = fn(&mut PeerRecord, u64);
    let cases: [(&str, Tamper); 4] = [
        ("last_seen", |r, _| r.last_seen = u64::MAX),
        ("last_connected", |r, limit| r.last_connected = limit + 1),
        ("last_seen", |r, limit| r.last_seen = limit + 1),
        ("blacklist_until", |r, _| r.blacklist_until = Some(u64::MAX)),
    ];
    for (field, set) in cases {
        let mut record = base.clone();
        set(&mut record, now + day);
        match book.store_peer(record.clone()) {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("store_peer with a far-future {field}: {other:?}"),
        }
        assert!(
            snapshot(book.backend()) == before,
            "a refused record changed the store"
        );
        let mut doc = book.export_data(ExportOptions::default()).unwrap();
        doc.peers[0] = record;
        match book.import_data(&doc, ImportMode::Replace) {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, format!("peers[0].{field}")),
            other => panic!("import with a far-future {field}: {other:?}"),
        }
        assert!(
            snapshot(book.backend()) == before,
            "a refused import changed the store"
        );
    }
    let mut record = base.clone();
    record.blacklist_until = Some(now + blacklist_for + day + 1);
    match book.store_peer(record) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "blacklist_until"),
        other => panic!("blacklist past blacklist_for + 1 day: {other:?}"),
    }
    // the limits themselves are fine
    let mut record = base.clone();
    record.last_seen = now + day;
    record.last_connected = now + day;
    record.blacklist_until = Some(now + blacklist_for + day);
    book.store_peer(record)
        .expect("timestamps at the limits are accepted");
    // setters keep working on the record (their times are the clock's)
    book.increment_reconnection_attempts("p").unwrap();
    book.update_last_seen("p").unwrap();
}

/// Everything acknowledged survives close and reopen, with Sync and with Buffered
/// plus flush.
pub fn book_persists_across_reopen<F: Factory>(f: &F) {
    for durability in [Durability::Sync, Durability::Buffered] {
        let (book, clock) = book_with(f, |o| o.durability = durability);
        for i in 0..20 {
            clock.advance(Duration::from_secs(30));
            book.store_peer(sample_peer(&format!("p{i:02}"))).unwrap();
        }
        book.update_connection_quality(
            "p03",
            quality(Some(10), 1.0, ConnectionType::Host, 1, 1, 0),
        )
        .unwrap();
        book.increment_reconnection_attempts("p04").unwrap();
        book.remove_peer("p05").unwrap();
        book.cleanup_lru(2).unwrap();
        book.flush().unwrap();
        let before = book.query_peers(&PeerQuery::default()).unwrap();
        let stats_before = book.get_storage_stats().unwrap();
        let mut opts = options(&clock);
        opts.durability = durability;
        let book = reopen(f, book, opts).expect("reopen");
        assert_eq!(
            book.query_peers(&PeerQuery::default()).unwrap(),
            before,
            "{durability:?}: same records after reopen"
        );
        let stats = book.get_storage_stats().unwrap();
        assert_eq!(
            (stats.peer_count, stats.record_bytes),
            (stats_before.peer_count, stats_before.record_bytes)
        );
        assert_eq!(stats.peer_count, 17);
        let r = book.get_peer("p07").unwrap().unwrap();
        assert_eq!(
            book.open_shared_secret(&r).unwrap().unwrap().expose(),
            b"shared-secret-of-p07"
        );
        assert_clean(&book, "after reopen");
    }
}

/// Eight threads doing read-modify-write updates and reads lose no update.
pub fn concurrent_updates_lose_nothing<F: Factory>(f: &F) {
    let (book, _) = book_with(f, |o| o.failed_attempts = u32::MAX);
    for id in ["shared", "t0", "t1", "t2", "t3"] {
        book.store_peer(sample_peer(id)).unwrap();
    }
    let book = Arc::new(book);
    let per_thread = 40u32;
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let book = Arc::clone(&book);
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    if t < 4 {
                        book.increment_reconnection_attempts("shared").unwrap();
                        book.increment_reconnection_attempts(&format!("t{t}"))
                            .unwrap();
                    } else {
                        let r = book.get_peer("shared").unwrap().expect("always readable");
                        assert!(r.reconnection_attempts <= 4 * per_thread);
                        let q = book
                            .query_peers(&PeerQuery {
                                limit: Some(3),
                                ..Default::default()
                            })
                            .unwrap();
                        assert_eq!(q.len(), 3);
                        if i % 10 == 0 {
                            assert!(book.verify().unwrap().corrupt.is_empty());
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("no thread panicked");
    }
    assert_eq!(
        book.get_peer("shared")
            .unwrap()
            .unwrap()
            .reconnection_attempts,
        4 * per_thread,
        "no lost update"
    );
    for t in 0..4 {
        assert_eq!(
            book.get_peer(&format!("t{t}"))
                .unwrap()
                .unwrap()
                .reconnection_attempts,
            per_thread
        );
    }
    assert_clean(&book, "after concurrent updates");
}
