//! The `webrtc` feature: ICE servers to and from webrtc-rs through a real store (the
//! credential sealed on the way in, opened with the book's key on the way out), typed
//! errors for every bad input, and ICE stats reports folded into the peer's quality.
#![cfg(feature = "webrtc")]

use std::sync::Arc;
use std::time::Duration;

use peerbook::crypto::MAX_SECRET_LEN;
use peerbook::webrtc::{
    IceServerError, IceSessionStats, RTCIceCandidateType, RTCIceServer, RTCStatsReportEntry,
};
use peerbook::{
    ConnectionType, Error, MasterKey, MemoryBackend, NewIceServer, NewPeer, Options, PeerBook,
    Secret,
};
use serde_json::{json, Value};

fn turn() -> RTCIceServer {
    RTCIceServer {
        urls: vec![
            "turn:turn.example.org:3478?transport=udp".into(),
            "turns:turn.example.org:5349".into(),
        ],
        username: "alice".into(),
        credential: "correct horse battery".into(),
    }
}

fn stun() -> RTCIceServer {
    RTCIceServer {
        urls: vec!["stun:stun.example.org:3478".into()],
        ..RTCIceServer::default()
    }
}

fn store(book: &PeerBook<MemoryBackend>, servers: Vec<NewIceServer>) {
    book.store_peer(NewPeer {
        peer_id: "alice".into(),
        public_key: "pk".into(),
        ice_servers: servers,
        ..NewPeer::default()
    })
    .unwrap();
}

#[test]
fn ice_servers_round_trip_sealed_through_the_store() {
    let key_bytes = [7u8; 32];
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::from_bytes(key_bytes)),
    )
    .unwrap();
    let given = vec![turn(), stun()];
    let servers = given
        .iter()
        .cloned()
        .map(NewIceServer::try_from)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(servers[0].username.as_deref(), Some("alice"));
    assert_eq!(servers[1].username, None);
    assert_eq!(servers[1].credential, None);
    store(&book, servers);

    // Stored sealed: neither the record nor its Debug holds the credential.
    let record = book.get_peer("alice").unwrap().unwrap();
    assert!(record.ice_servers[0].credential.is_some());
    assert!(!format!("{record:?}").contains("correct horse"));

    // Reopen the same bytes with the same key: the servers come back as given.
    let backend = book.close().unwrap();
    let book = PeerBook::open(backend, Options::new(MasterKey::from_bytes(key_bytes))).unwrap();
    assert_eq!(book.rtc_ice_servers("alice").unwrap(), given);
    let record = book.get_peer("alice").unwrap().unwrap();
    assert_eq!(book.rtc_ice_servers_of(&record).unwrap(), given);

    assert!(matches!(
        book.rtc_ice_servers("bob"),
        Err(Error::NotFound { peer_id }) if peer_id == "bob"
    ));
    assert!(matches!(
        book.rtc_ice_servers("not an id"),
        Err(Error::InvalidInput { field, .. }) if field == "peer_id"
    ));
}

#[test]
fn a_credential_that_is_not_text_is_a_typed_error() {
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::generate().unwrap()),
    )
    .unwrap();
    store(
        &book,
        vec![NewIceServer {
            urls: vec!["turn:t.example.org".into()],
            username: Some("u".into()),
            credential: Some(Secret::new(vec![0xff, 0xfe])),
        }],
    );
    assert!(matches!(
        book.rtc_ice_servers("alice"),
        Err(Error::InvalidInput { field, .. }) if field == "ice_servers[0].credential"
    ));
}

/// A change that breaks one rule of an ICE server.
type Change = fn(&mut RTCIceServer);

fn field_of(result: Result<NewIceServer, IceServerError>) -> String {
    match result {
        Err(IceServerError::Invalid(Error::InvalidInput { field, .. })) => field,
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn bad_ice_servers_give_typed_errors() {
    let convert = |change: Change| {
        let mut server = turn();
        change(&mut server);
        NewIceServer::try_from(server)
    };
    assert!(matches!(
        convert(|s| s.urls.clear()),
        Err(IceServerError::NoUrls)
    ));
    assert!(matches!(
        convert(|s| s.username.clear()),
        Err(IceServerError::CredentialWithoutUsername)
    ));
    // A username without a credential is allowed (the book does not demand one).
    assert!(convert(|s| s.credential.clear()).is_ok());
    let cases: [(&str, Change); 7] = [
        ("ice_servers[0].urls", |s| {
            s.urls = vec!["stun:a.example.org".into(); 5]
        }),
        ("ice_servers[0].urls[1]", |s| {
            s.urls[1] = "https://example.org".into()
        }),
        ("ice_servers[0].urls[0]", |s| s.urls[0] = "stun:".into()),
        ("ice_servers[0].urls[0]", |s| {
            s.urls[0] = "stun:a b.example.org".into()
        }),
        ("ice_servers[0].urls[0]", |s| {
            s.urls[0] = format!("stun:{}", "a".repeat(600))
        }),
        ("ice_servers[0].username", |s| s.username = "x".repeat(257)),
        ("ice_servers[0].credential", |s| {
            s.credential = "x".repeat(MAX_SECRET_LEN + 1)
        }),
    ];
    for (field, change) in cases {
        assert_eq!(field_of(convert(change)), field);
    }
    // No error text carries the credential.
    let err = convert(|s| s.credential = "x".repeat(MAX_SECRET_LEN + 1)).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("xxxx"));
}

// ----- ICE stats ------------------------------------------------------------------

fn stats(typ: &str, id: &str, fields: Value) -> Value {
    let mut v = json!({ "timestamp": 1.0, "type": typ, "id": id });
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    v
}

fn pair(id: &str, local: &str, remote: &str, rtt: f64, nominated: bool) -> RTCStatsReportEntry {
    RTCStatsReportEntry::IceCandidatePair(
        serde_json::from_value(stats(
            "candidate-pair",
            id,
            json!({
                "transportId": "T1", "localCandidateId": local, "remoteCandidateId": remote,
                "packetsSent": 10, "packetsReceived": 10, "bytesSent": 1000, "bytesReceived": 1000,
                "lastPacketSentTimestamp": 1.0, "lastPacketReceivedTimestamp": 1.0,
                "totalRoundTripTime": rtt * 4.0, "currentRoundTripTime": rtt,
                "requestsSent": 4, "requestsReceived": 4, "responsesSent": 4, "responsesReceived": 4,
                "consentRequestsSent": 0, "packetsDiscardedOnSend": 0, "bytesDiscardedOnSend": 0,
                "availableOutgoingBitrate": 0.0, "availableIncomingBitrate": 0.0,
                "state": "succeeded", "nominated": nominated,
            }),
        ))
        .unwrap(),
    )
}

fn candidate(id: &str, local: bool, typ: &str) -> RTCStatsReportEntry {
    let value = stats(
        if local {
            "local-candidate"
        } else {
            "remote-candidate"
        },
        id,
        json!({
            "transportId": "T1", "address": "192.0.2.1", "port": 4000, "protocol": "udp",
            "candidateType": typ, "priority": 1, "url": "", "relayProtocol": "Unspecified",
            "foundation": "f", "relatedAddress": "", "relatedPort": 0,
            "usernameFragment": "u", "tcpType": "Unspecified",
        }),
    );
    let stats = serde_json::from_value(value).unwrap();
    if local {
        RTCStatsReportEntry::LocalCandidate(stats)
    } else {
        RTCStatsReportEntry::RemoteCandidate(stats)
    }
}

fn transport(selected: &str) -> RTCStatsReportEntry {
    RTCStatsReportEntry::Transport(
        serde_json::from_value(stats(
            "transport",
            "T1",
            json!({
                "packetsSent": 0, "packetsReceived": 0, "bytesSent": 0, "bytesReceived": 0,
                "iceRole": "Unspecified", "iceLocalUsernameFragment": "u",
                "iceState": "Unspecified", "dtlsState": "Unspecified", "dtlsRole": "Unspecified",
                "tlsVersion": "", "dtlsCipher": "", "srtpCipher": "",
                "selectedCandidatePairId": selected, "selectedCandidatePairChanges": 1,
                "localCertificateId": "", "remoteCertificateId": "",
                "ccfbMessagesSent": 0, "ccfbMessagesReceived": 0,
            }),
        ))
        .unwrap(),
    )
}

/// Two pairs: CP-relay (relay <-> host, 42 ms) and CP-host (host <-> host, 1.4 ms).
fn report(selected: &str, host_nominated: bool) -> Vec<RTCStatsReportEntry> {
    vec![
        pair("CP-host", "L-host", "R-host", 0.0014, host_nominated),
        candidate("L-host", true, "host"),
        candidate("L-relay", true, "relay"),
        candidate("R-host", false, "host"),
        pair("CP-relay", "L-relay", "R-host", 0.042, false),
        transport(selected),
    ]
}

#[test]
fn the_selected_pair_of_a_stats_report_makes_the_observation() {
    let selected = IceSessionStats::from_entries(&report("CP-relay", true));
    assert_eq!(
        selected,
        IceSessionStats {
            connected: true,
            rtt_ms: Some(42),
            local_candidate_type: Some(RTCIceCandidateType::Relay),
            remote_candidate_type: Some(RTCIceCandidateType::Host),
            connection_type: ConnectionType::Relay,
        }
    );
    let observation = selected.observation(Duration::from_secs(90));
    assert!(observation.success);
    assert_eq!(
        (observation.uptime_ms, observation.latency_ms),
        (90_000, Some(42))
    );

    // No transport names a pair: the nominated pair that succeeded.
    let mut entries = report("", true);
    entries.pop();
    let fallback = IceSessionStats::from_entries(&entries);
    assert_eq!(fallback.connection_type, ConnectionType::Host);
    assert_eq!(fallback.rtt_ms, Some(1));

    // No pair selected nor nominated: the session failed, uptime not counted.
    let failed = IceSessionStats::from_entries(&report("", false));
    assert!(!failed.connected);
    let observation = failed.observation(Duration::from_secs(90));
    assert!(!observation.success);
    assert_eq!((observation.uptime_ms, observation.latency_ms), (0, None));
    assert_eq!(
        IceSessionStats::from_report(&Default::default()),
        IceSessionStats::default()
    );
}

#[test]
fn record_ice_session_folds_stats_into_the_stored_quality() {
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::generate().unwrap()),
    )
    .unwrap();
    store(&book, vec![]);
    let relayed = IceSessionStats::from_entries(&report("CP-relay", true));
    let record = book
        .record_ice_session("alice", &relayed, Duration::from_secs(60))
        .unwrap();
    let q = record.connection_quality;
    assert_eq!((q.total_connections, q.successful_connections), (1, 1));
    assert_eq!((q.latency_ms, q.avg_uptime_ms), (Some(42), 60_000));
    assert_eq!(q.connection_type, ConnectionType::Relay);

    // A failed session knows no path: the last known type stays.
    let failed = IceSessionStats::from_entries(&report("", false));
    let q = book
        .record_ice_session("alice", &failed, Duration::from_secs(60))
        .unwrap()
        .connection_quality;
    assert_eq!((q.total_connections, q.successful_connections), (2, 1));
    assert_eq!(q.connection_type, ConnectionType::Relay);
    assert_eq!(
        book.get_peer("alice").unwrap().unwrap().connection_quality,
        q
    );
    assert!(matches!(
        book.record_ice_session("bob", &relayed, Duration::ZERO),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn concurrent_ice_sessions_all_land() {
    let book = Arc::new(
        PeerBook::open(
            MemoryBackend::new(),
            Options::new(MasterKey::generate().unwrap()),
        )
        .unwrap(),
    );
    store(&book, vec![]);
    let relayed = IceSessionStats::from_entries(&report("CP-relay", true));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let book = Arc::clone(&book);
            std::thread::spawn(move || {
                for _ in 0..25 {
                    book.record_ice_session("alice", &relayed, Duration::from_millis(t))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let q = book.get_peer("alice").unwrap().unwrap().connection_quality;
    assert_eq!((q.total_connections, q.successful_connections), (200, 200));
}
