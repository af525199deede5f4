//! Unit tests of the schema: ids, names, validation tables, record encoding.
use super::*;

fn record() -> PeerRecord {
    PeerRecord {
        peer_id: PeerId::new("peer-1").unwrap(),
        display_name: "Alice".into(),
        public_key: "pk".into(),
        shared_secret: None,
        last_seen: 5,
        last_connected: 4,
        last_known_ip: Some("10.0.0.1".parse().unwrap()),
        ice_servers: vec![IceServer {
            urls: vec!["stun:stun.example.org:3478".into()],
            username: None,
            credential: None,
        }],
        cached_candidates: vec!["candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host".into()],
        connection_quality: ConnectionQuality {
            latency_ms: Some(40),
            success_rate: 0.5,
            ..Default::default()
        },
        reconnection_attempts: 0,
        blacklist_until: None,
        addresses: vec![PeerAddress {
            addr: "/ip4/203.0.113.7/tcp/4001".into(),
            source: crate::address::AddressSource::Reported,
            last_success: Some(3),
            last_failure: None,
            expires_at: Some(99),
        }],
        metadata: [("agent".to_string(), "node/1.0".to_string())].into(),
    }
}

#[test]
fn peer_id_rules() {
    assert!(PeerId::new("a").is_ok());
    assert!(PeerId::new("x".repeat(128)).is_ok());
    for bad in ["", "a b", "tab\t", "new\nline", "caf\u{e9}", "\u{7f}"] {
        let err = PeerId::new(bad).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { field, .. } if field == "peer_id"),
            "{bad:?}: {err}"
        );
    }
    let long = PeerId::new("x".repeat(129)).unwrap_err();
    assert!(long.to_string().contains("at most 128 bytes"), "{long}");
    assert!(
        serde_json::from_str::<PeerId>("\"has space\"").is_err(),
        "deserializing validates"
    );
    // Every byte value at every position of ids around the scan's 32-byte blocks
    // (short ids padded, whole blocks, a last block overlapping the one before).
    for len in [1, 2, 31, 32, 33, 63, 64, 65, 100, 128] {
        for at in 0..len {
            for b in 0..=u8::MAX {
                let mut id = vec![b'x'; len];
                id[at] = b;
                let ok = (0x21..=0x7e).contains(&b);
                match PeerId::from_bytes(&id) {
                    Ok(_) => assert!(ok, "byte {b:#x} at {at} of {len} admitted"),
                    Err(e) => {
                        assert!(!ok, "byte {b:#x} at {at} of {len} refused: {e}");
                        assert!(e.to_string().contains(&format!("byte {at} is not")), "{e}");
                    }
                }
            }
        }
    }
}

proptest::proptest! {
    /// What `create_peer` keeps as a name passes the display name rule, which
    /// it no longer checks a second time: sanitizing yields a sanitized name.
    #[test]
    fn sanitizing_yields_a_sanitized_name(raw in "(?s).{0,80}|[ a-z\t\u{202E}\u{a0}]{0,80}") {
        proptest::prop_assert!(validate_display_name(&sanitize_display_name(&raw)).is_ok());
    }
}

#[test]
fn display_name_sanitizing() {
    assert_eq!(sanitize_display_name("Alice"), "Alice");
    assert_eq!(sanitize_display_name("  a   b  "), "a b");
    assert_eq!(sanitize_display_name("a\u{202E}b\u{2066}c\u{200F}"), "abc");
    assert_eq!(sanitize_display_name("a\u{0}\u{1b}[31mb"), "a[31mb");
    assert_eq!(sanitize_display_name("\t\n"), "");
    let long: String = "é".repeat(70);
    assert_eq!(sanitize_display_name(&long).chars().count(), 64);
    // no trailing space when the cut falls on a space
    let name = format!("{} {}", "a".repeat(63), "b");
    assert_eq!(sanitize_display_name(&name), "a".repeat(63));
    for s in ["  x  y ", "\u{202E}", &long, &name] {
        let once = sanitize_display_name(s);
        assert_eq!(sanitize_display_name(&once), once, "idempotent");
    }
    let samples = [
        "",
        " ",
        "a",
        "a b",
        "a  b",
        " a",
        "a ",
        "a\tb",
        "a\u{a0}b",
        "a\u{202E}",
        "\u{1b}",
        "é ü",
        &long,
        &name,
        &"x".repeat(64),
        &"x".repeat(65),
        "ab\u{2066}",
        "x\u{7f}",
    ];
    for s in samples {
        assert_eq!(
            is_sanitized_display_name(s),
            sanitize_display_name(s) == s,
            "{s:?}"
        );
    }
    // every ASCII string of up to three bytes from a set that takes each rule
    // (controls, DEL, the ASCII whitespace, a space at either end and doubled)
    let bytes = [
        b'\0', b'\t', b'\n', 0x0b, 0x0c, b'\r', 0x1f, b' ', b'a', b'~', 0x7f,
    ];
    let mut strings = vec![String::new()];
    for _ in 0..3 {
        let longer: Vec<String> = strings
            .iter()
            .flat_map(|s| bytes.iter().map(move |&b| format!("{s}{}", char::from(b))))
            .collect();
        strings.extend(longer);
    }
    for s in &strings {
        let padded = format!("{s}{}", "x".repeat(62));
        for s in [s, &padded] {
            assert_eq!(
                is_sanitized_display_name(s),
                sanitize_display_name(s) == *s,
                "{s:?}"
            );
        }
    }
}

#[test]
fn encode_decode_round_trip_and_garbage() {
    let r = record();
    let bytes = r.encode();
    assert_eq!(bytes[0], RECORD_FORMAT_V2);
    assert_eq!(PeerRecord::decode(&bytes).unwrap(), r);
    assert!(PeerRecord::decode(&[]).is_err());
    assert!(PeerRecord::decode(&[9]).is_err());
    assert!(PeerRecord::decode(&bytes[..bytes.len() - 1]).is_err());
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(PeerRecord::decode(&extra).is_err());
    for cut in 0..bytes.len() {
        let _ = PeerRecord::decode(&bytes[..cut]);
    }
    let mut rng = 0x1234_5678u64;
    for _ in 0..2000 {
        let mut b = bytes.clone();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = (rng as usize) % b.len();
        b[i] = (rng >> 32) as u8;
        let _ = PeerRecord::decode(&b); // never panics
    }
}

/// Each encoding is the plain postcard one, large and small records in turn and on
/// another thread, with no spare capacity (`encode_tests` has the arbitrary records).
#[test]
fn encode_is_the_plain_encoding() {
    let plain = |r: &PeerRecord| postcard::to_extend(r, vec![RECORD_FORMAT_V2]).unwrap();
    let small = record();
    let mut large = record();
    large.cached_candidates = vec!["candidate:2 1 udp 1 10.0.0.2 9 typ host".into(); 20];
    for r in [&large, &small, &large, &small] {
        let bytes = r.encode();
        assert_eq!(bytes, plain(r));
        assert_eq!(bytes.capacity(), bytes.len(), "exactly its length");
    }
    let from_another_thread = std::thread::scope(|s| s.spawn(|| small.encode()).join().unwrap());
    assert_eq!(from_another_thread, plain(&small));
}

#[test]
fn format_1_records_decode_lazily() {
    let mut r = record();
    r.addresses.clear();
    r.metadata.clear();
    // A format-1 body is the format-2 body without the two trailing empty
    // collections (one zero length byte each).
    let v2 = r.encode();
    assert_eq!(&v2[v2.len() - 2..], &[0, 0]);
    let mut v1 = v2[..v2.len() - 2].to_vec();
    v1[0] = RECORD_FORMAT_V1;
    assert_eq!(
        PeerRecord::decode(&v1).unwrap(),
        r,
        "old records read as empty"
    );
    let mut wrong = record().encode();
    wrong[0] = RECORD_FORMAT_V1;
    assert!(
        PeerRecord::decode(&wrong).is_err(),
        "a format-2 body is not format 1"
    );
    assert!(PeerRecord::decode(&[3]).is_err(), "unknown format byte");
    let mut bad = record();
    bad.addresses[0].addr = "two words".into();
    assert!(
        PeerRecord::decode(&bad.encode()).is_err(),
        "decode validates addresses"
    );
}

#[test]
fn record_validation_names_the_field() {
    type Mutation = Box<dyn Fn(&mut PeerRecord)>;
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "display_name",
            Box::new(|r| r.display_name = " padded".into()),
        ),
        ("public_key", Box::new(|r| r.public_key = "k".repeat(4097))),
        (
            "ice_servers",
            Box::new(|r| r.ice_servers = vec![r.ice_servers[0].clone(); 9]),
        ),
        (
            "ice_servers[0].urls",
            Box::new(|r| r.ice_servers[0].urls = vec![]),
        ),
        (
            "ice_servers[0].urls",
            Box::new(|r| r.ice_servers[0].urls = vec!["stun:a".into(); 5]),
        ),
        (
            "ice_servers[0].urls[0]",
            Box::new(|r| r.ice_servers[0].urls = vec!["http://x".into()]),
        ),
        (
            "ice_servers[0].urls[0]",
            Box::new(|r| r.ice_servers[0].urls = vec!["turn:".into()]),
        ),
        (
            "ice_servers[0].urls[0]",
            Box::new(|r| r.ice_servers[0].urls = vec!["turn:a b".into()]),
        ),
        (
            "ice_servers[0].username",
            Box::new(|r| r.ice_servers[0].username = Some("u\n".into())),
        ),
        (
            "cached_candidates",
            Box::new(|r| r.cached_candidates = vec![String::new(); 33]),
        ),
        (
            "cached_candidates[0]",
            Box::new(|r| r.cached_candidates = vec!["c".repeat(513)]),
        ),
        (
            "connection_quality.success_rate",
            Box::new(|r| r.connection_quality.success_rate = f32::NAN),
        ),
        (
            "connection_quality.success_rate",
            Box::new(|r| r.connection_quality.success_rate = 1.01),
        ),
        (
            "connection_quality.success_rate",
            Box::new(|r| r.connection_quality.success_rate = -0.1),
        ),
        (
            "connection_quality.successful_connections",
            Box::new(|r| r.connection_quality.successful_connections = 1),
        ),
    ];
    for (field, mutate) in cases {
        let mut r = record();
        mutate(&mut r);
        match r.validate() {
            Err(Error::InvalidInput { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected invalid {field}, got {other:?}"),
        }
    }
    let mut ok = record();
    ok.ice_servers[0].urls = vec![
        "stun:a".into(),
        "stuns:b".into(),
        "turn:c".into(),
        "turns:d".into(),
    ];
    ok.cached_candidates = vec!["c".repeat(512); 32];
    ok.public_key = "k".repeat(4096);
    ok.validate().unwrap();
}

/// `validate_changed` against a valid record refuses exactly what `validate`
/// refuses, with the same error: a changed field is checked, and so is every rule
/// on a whole list (counts, an address listed twice) even when each of its
/// elements equals one the old record had.
#[test]
fn validate_changed_refuses_what_validate_refuses() {
    type Mutation = Box<dyn Fn(&mut PeerRecord)>;
    let base = record();
    base.validate().unwrap();
    let bad_server = || IceServer {
        urls: vec!["turn:a b".into()],
        username: None,
        credential: None,
    };
    let cases: Vec<Mutation> = vec![
        Box::new(|r| r.display_name = " padded".into()),
        Box::new(|r| r.public_key = "k".repeat(4097)),
        Box::new(|r| r.ice_servers = vec![r.ice_servers[0].clone(); 9]),
        Box::new(move |r| r.ice_servers.push(bad_server())),
        Box::new(move |r| r.ice_servers.insert(0, bad_server())),
        Box::new(|r| r.ice_servers[0].username = Some("u\n".into())),
        Box::new(|r| r.ice_servers[0].urls.push("http://x".into())),
        Box::new(|r| r.cached_candidates = vec![r.cached_candidates[0].clone(); 33]),
        Box::new(|r| r.cached_candidates.push("bad\n".into())),
        Box::new(|r| r.cached_candidates.insert(0, "c".repeat(513))),
        Box::new(|r| r.connection_quality.success_rate = f32::NAN),
        Box::new(|r| {
            let again = r.addresses[0].clone();
            r.addresses.push(again);
        }),
        Box::new(|r| r.addresses[0].addr = "not an address".into()),
        Box::new(|r| {
            r.metadata.insert("bad key".into(), "v".into());
        }),
        Box::new(|r| {
            r.metadata.insert("agent".into(), "v\u{7}".into());
        }),
    ];
    for (i, mutate) in cases.iter().enumerate() {
        let mut r = base.clone();
        mutate(&mut r);
        let full = format!("{:?}", r.validate());
        assert!(full.starts_with("Err"), "case {i} is valid: {full}");
        let changed = format!("{:?}", r.validate_changed(Some(&base)));
        assert_eq!(changed, full, "case {i}");
    }
    base.validate_changed(Some(&base)).unwrap();
    let mut moved = base.clone();
    moved
        .cached_candidates
        .insert(0, "candidate:2 1 udp 1 10.0.0.2 9 typ host".into());
    moved.cached_candidates.rotate_left(1);
    moved.display_name = "Bob".into();
    moved.validate_changed(Some(&base)).unwrap();
}

#[test]
fn quality_update_is_partial() {
    let q = ConnectionQuality {
        latency_ms: Some(10),
        success_rate: 0.5,
        total_connections: 2,
        successful_connections: 1,
        ..Default::default()
    };
    let u = QualityUpdate {
        latency_ms: Some(Some(99)),
        connection_type: Some(ConnectionType::Relay),
        ..Default::default()
    };
    let out = u.apply(&q);
    assert_eq!(out.latency_ms, Some(99));
    assert_eq!(out.connection_type, ConnectionType::Relay);
    assert_eq!(out.success_rate, 0.5);
    assert_eq!(out.total_connections, 2);
    assert_eq!(
        QualityUpdate::from(q).apply(&ConnectionQuality::default()),
        q
    );
}

/// `ExportDocument::from_json` refuses every malformed document with the field
/// named (moved from the conformance kit: parsing touches no backend).
#[test]
fn export_json_bad_documents() {
    use crate::{
        ExportDocument, ExportOptions, MasterKey, MemoryBackend, NewPeer, Options, PeerBook,
    };
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::from_bytes([42; 32])),
    )
    .unwrap();
    for id in ["a", "b"] {
        book.store_peer(NewPeer {
            peer_id: id.into(),
            public_key: "pk".into(),
            shared_secret: Some(crate::Secret::from("s")),
            ..NewPeer::default()
        })
        .unwrap();
    }
    let doc = book.export_data(ExportOptions::default()).unwrap();
    assert_eq!(ExportDocument::from_json(&doc.to_json()).unwrap(), doc);
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

/// A realistic new peer: a shared secret, a STUN and a TURN server (with a
/// credential), two candidates.
fn sample_new_peer() -> crate::NewPeer {
    crate::NewPeer {
        peer_id: "fresh".into(),
        display_name: "Fresh".into(),
        public_key: "pk".into(),
        shared_secret: Some(Secret::from("shared")),
        ice_servers: vec![
            NewIceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                username: None,
                credential: None,
            },
            NewIceServer {
                urls: vec!["turn:turn.example.org:3478?transport=udp".into()],
                username: Some("user".into()),
                credential: Some(Secret::from("turn-credential")),
            },
        ],
        cached_candidates: vec![
            "candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host".into(),
            "candidate:2 1 udp 1686052607 203.0.113.7 54321 typ srflx".into(),
        ],
        last_known_ip: None,
    }
}

/// Every field rule of a new peer, as the store applies it: InvalidInput naming
/// the field, with a rule (moved from the conformance kit, which keeps one case
/// of each kind to check that a refusal changes nothing on every backend).
#[test]
fn new_peer_validation_table() {
    use crate::{MasterKey, MemoryBackend, NewPeer, Options, PeerBook};
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::from_bytes([42; 32])),
    )
    .unwrap();
    book.create_peer(sample_new_peer())
        .expect("the sample is valid");
    let with = |mutate: &dyn Fn(&mut NewPeer)| {
        let mut p = sample_new_peer();
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
                assert_eq!(got, field, "the field is named");
                assert!(!rule.is_empty(), "a rule is given");
            }
            other => panic!("{field}: expected InvalidInput, got {other:?}"),
        }
    }
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
}

/// The byte-pass text checks agree with their plain char-by-char definitions on
/// every ASCII char and on non-ASCII controls, spaces and bidi overrides.
#[test]
fn text_checks_match_their_char_definitions() {
    let mut samples: Vec<String> = (0u8..0x80).map(|b| format!("ab{}cd", b as char)).collect();
    for c in [
        '\u{85}',
        '\u{9f}',
        '\u{a0}',
        '\u{2003}',
        '\u{202E}',
        '\u{2066}',
        '\u{61C}',
        'é',
        '\u{1F600}',
    ] {
        samples.push(format!("x{c}y"));
        samples.push(format!("{c}"));
    }
    samples.push(String::new());
    samples.push("candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host".into());
    for s in &samples {
        let control = s.chars().any(|c| c.is_control() || is_bidi_control(c));
        let space = s.chars().any(|c| c.is_whitespace());
        assert_eq!(has_control(s), control, "{s:?}");
        assert_eq!(has_control_or_space(s), control || space, "{s:?}");
        assert_eq!(
            has_plain_control(s),
            s.chars().any(char::is_control),
            "{s:?}"
        );
    }
}

/// The text checks scan in 32-byte blocks plus an overlapping last block, or a
/// padded copy of a short string: a refused byte or a non-ASCII char is found at
/// every position of every length around those block sizes.
#[test]
fn text_checks_find_a_char_at_every_position() {
    type TextCheck = fn(&str) -> bool;
    let checks: [(TextCheck, &str); 3] = [
        (has_control, "control"),
        (has_control_or_space, "control or space"),
        (has_plain_control, "plain control"),
    ];
    for len in 0..=100 {
        let clean = "a".repeat(len);
        for (check, name) in checks {
            assert!(!check(&clean), "{name}, clean, len {len}");
        }
        for at in 0..len {
            for bad in ['\0', '\u{1f}', '\u{7f}', '\u{85}', '\u{202E}'] {
                let mut s = clean.clone();
                s.replace_range(at..=at, bad.encode_utf8(&mut [0; 4]));
                let bidi = is_bidi_control(bad);
                assert!(has_control(&s), "{bad:?} at {at} of {len}");
                assert!(has_control_or_space(&s), "{bad:?} at {at} of {len}");
                assert_eq!(has_plain_control(&s), !bidi, "{bad:?} at {at} of {len}");
            }
            let mut s = clean.clone();
            s.replace_range(at..=at, " ");
            assert!(has_control_or_space(&s), "space at {at} of {len}");
            assert!(!has_control(&s) && !has_plain_control(&s), "space at {at}");
            s.replace_range(at..=at, "é");
            for (check, name) in checks {
                assert!(!check(&s), "{name}: é at {at} of {len}");
            }
        }
    }
}
