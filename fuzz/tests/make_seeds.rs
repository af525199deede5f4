//! Writes the seed corpora under `corpus/<target>/` (committed). Run by hand after a
//! format change:
//!
//! ```text
//! cargo test --manifest-path fuzz/Cargo.toml --test make_seeds -- --ignored
//! ```
//!
//! Seeds are real data (encoded records, export documents, a file backend's files)
//! plus a few pseudo-random byte strings for the structured targets.

use std::net::IpAddr;

use peerbook::{
    ExportOptions, ManualClock, MasterKey, MemoryBackend, NewIceServer, NewPeer, PeerBook,
    QualityUpdate, Secret,
};
use peerbook_file::{FileBackend, FileOptions};
use peerbook_fuzz::{options, FileInput, START_MS};

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("corpus")
    .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn peers() -> Vec<NewPeer> {
    vec![
        NewPeer {
            peer_id: "ABC123".into(),
            display_name: "Alice".into(),
            public_key: "{\"kty\":\"EC\",\"crv\":\"P-256\"}".into(),
            shared_secret: Some(Secret::from("secret-key")),
            ..NewPeer::default()
        },
        NewPeer {
            peer_id: "peer-with-everything".into(),
            display_name: "  Bob \u{202e} the\tbuilder ".into(),
            public_key: "{}".into(),
            shared_secret: Some(Secret::new(vec![0, 1, 2, 255])),
            ice_servers: vec![
                NewIceServer {
                    urls: vec!["stun:stun.example.org".into()],
                    username: None,
                    credential: None,
                },
                NewIceServer {
                    urls: vec![
                        "turn:turn.example.org:3478".into(),
                        "turns:turn.example.org:5349?transport=tcp".into(),
                    ],
                    username: Some("user".into()),
                    credential: Some(Secret::from("pw")),
                },
            ],
            cached_candidates: vec![
                "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host".into(),
                "candidate:2 1 udp 1686052607 198.51.100.7 54400 typ srflx".into(),
            ],
            last_known_ip: Some("2001:db8::1".parse::<IpAddr>().unwrap()),
        },
        NewPeer {
            peer_id: "z".into(),
            last_known_ip: Some(IpAddr::from([192, 0, 2, 9])),
            ..NewPeer::default()
        },
    ]
}

/// A book with the fixed key holding [`peers`], one with a quality and a failure.
fn fill<B: peerbook::Backend>(book: &PeerBook<B>) {
    for p in peers() {
        book.store_peer(p).unwrap();
    }
    book.update_connection_quality(
        "ABC123",
        QualityUpdate {
            latency_ms: Some(Some(42)),
            success_rate: Some(0.75),
            total_connections: Some(4),
            successful_connections: Some(3),
            avg_uptime_ms: Some(60_000),
            ..QualityUpdate::default()
        },
    )
    .unwrap();
    book.increment_reconnection_attempts("z").unwrap();
    // schema 3: addresses of several transports and metadata
    let everything = "peer-with-everything";
    for (addr, source) in [
        (
            "/ip4/192.0.2.1/udp/4001/quic-v1",
            peerbook::AddressSource::Observed,
        ),
        ("192.0.2.1:9000", peerbook::AddressSource::Reported),
        (
            "https://relay.example.org/r/x",
            peerbook::AddressSource::Discovery,
        ),
    ] {
        book.add_address(everything, addr, source, Some(START_MS + 3_600_000))
            .unwrap();
    }
    book.record_address_result(everything, "192.0.2.1:9000", true)
        .unwrap();
    book.set_metadata(everything, "agent", Some("node/1.0"))
        .unwrap();
}

/// xorshift bytes: seeds for the targets whose input goes through `arbitrary`.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
#[ignore = "writes the committed seed corpora; run by hand"]
fn make_seeds() {
    let clock = ManualClock::new(START_MS);
    let book = PeerBook::open(MemoryBackend::new(), options(&clock)).unwrap();
    fill(&book);

    // decode_record: every stored record, and a bare one.
    for (i, id) in ["ABC123", "peer-with-everything", "z"].iter().enumerate() {
        let r = book.get_peer(id).unwrap().unwrap();
        write("decode_record", &format!("record-{i}"), &r.encode());
    }
    write("decode_record", "format-byte-only", &[1]);

    // open_sealed: real seals that must still not open for `fuzz-peer` under the
    // fixed key (another peer's, another key's), and zeros.
    let r = book.get_peer("ABC123").unwrap().unwrap();
    let other_peer = r.shared_secret.unwrap();
    let mut input = vec![0];
    input.extend_from_slice(other_peer.as_bytes());
    write("open_sealed", "shared-secret-of-another-peer", &input);
    let r = book.get_peer("peer-with-everything").unwrap().unwrap();
    let mut input = vec![1];
    input.extend_from_slice(r.ice_servers[1].credential.as_ref().unwrap().as_bytes());
    write("open_sealed", "ice-credential-of-another-peer", &input);
    let other_key = {
        let mut o = options(&clock);
        o.key = MasterKey::from_bytes([8; 32]);
        PeerBook::open(MemoryBackend::new(), o).unwrap()
    };
    let r = other_key
        .store_peer(NewPeer {
            peer_id: "fuzz-peer".into(),
            shared_secret: Some(Secret::from("s")),
            ..NewPeer::default()
        })
        .unwrap();
    let mut input = vec![0];
    input.extend_from_slice(r.shared_secret.unwrap().as_bytes());
    write("open_sealed", "same-peer-other-key", &input);
    write("open_sealed", "zeros", &[0; 29]);

    // import_json: real exports (with and without secrets), an empty one, a newer one.
    let with = book.export_data(ExportOptions::default()).unwrap();
    write(
        "import_json",
        "export-with-secrets.json",
        with.to_json().as_bytes(),
    );
    let without = book
        .export_data(ExportOptions {
            include_secrets: false,
        })
        .unwrap();
    write(
        "import_json",
        "export-without-secrets.json",
        without.to_json().as_bytes(),
    );
    write(
        "import_json",
        "empty.json",
        br#"{"format":"peerbook-export","version":1,"exported_at":0,"key_check":null,"peers":[]}"#,
    );
    write(
        "import_json",
        "newer-version.json",
        br#"{"format":"peerbook-export","version":3,"exported_at":0,"peers":[]}"#,
    );

    // file_open: a real file book's directory, generation 1 (snapshot + log) and
    // generation 2 (after a compaction: everything in the snapshot).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let files = |g: u64| {
        (
            std::fs::read(dir.join(format!("snapshot.{g}"))).unwrap(),
            std::fs::read(dir.join(format!("log.{g}"))).unwrap(),
        )
    };
    {
        let backend = FileBackend::open(&dir, FileOptions::default()).unwrap();
        let book = PeerBook::open(backend, options(&clock)).unwrap();
        fill(&book);
        book.remove_peer("z").unwrap();
        book.close().unwrap();
    }
    let (snapshot, log) = files(1);
    for (name, flags) in [("gen1-book", 8), ("gen1-fixup", 9), ("gen1-raw", 0)] {
        let input = FileInput {
            flags,
            generation: 1,
            snapshot: snapshot.clone(),
            log: log.clone(),
        };
        write("file_open", name, &input.to_bytes());
    }
    {
        let backend = FileBackend::open(&dir, FileOptions::default()).unwrap();
        backend.compact().unwrap();
    }
    let (snapshot, log) = files(2);
    let input = FileInput {
        flags: 8,
        generation: 2,
        snapshot,
        log,
    };
    write("file_open", "gen2-compacted", &input.to_bytes());

    // The structured targets: pseudo-random bytes of a few sizes.
    for (i, len) in [64, 256, 1024, 4000].into_iter().enumerate() {
        write(
            "new_peer",
            &format!("noise-{len}"),
            &noise(11 + i as u64, len),
        );
        write(
            "ops_memory_vs_file",
            &format!("noise-{len}"),
            &noise(101 + i as u64, len),
        );
    }
}
