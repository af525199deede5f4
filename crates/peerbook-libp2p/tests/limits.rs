//! Identify messages beyond the book's limits (too many or too long addresses, too
//! many protocols, a long agent version with control characters) are stored cut to
//! the book's rules, never fail the write-behind writer or panic; RSA peer ids (a
//! hash of a long key) store and reload, their long public keys included.
//! `tests/data/rsa-*.spki.der`: throwaway RSA public keys (`openssl genpkey`, only
//! the public half kept).

use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::{Keypair, PublicKey};
use libp2p::swarm::{ConnectionId, NetworkBehaviour};
use libp2p::{identify, ping, Multiaddr, PeerId, StreamProtocol};
use peerbook::address::{MAX_ADDRESSES, MAX_ADDRESS_LEN, MAX_METADATA_VALUE_LEN};
use peerbook::{ManualClock, MasterKey, Options, PeerBook};
use peerbook_file::{FileBackend, FileOptions};
use peerbook_libp2p::{Behaviour, Config, AGENT_VERSION_KEY, PROTOCOLS_KEY};

fn open(dir: &std::path::Path) -> Behaviour<FileBackend> {
    let backend = FileBackend::open(dir, FileOptions::default()).unwrap();
    let book = PeerBook::open(backend, Options::new(MasterKey::from_bytes([3; 32]))).unwrap();
    Behaviour::new(Arc::new(book), Config::default()).unwrap()
}

fn identify_event(key: PublicKey, info: impl FnOnce(&mut identify::Info)) -> identify::Event {
    let mut i = identify::Info {
        public_key: key.clone(),
        protocol_version: "/ipfs/0.1.0".into(),
        agent_version: "test/1".into(),
        listen_addrs: vec!["/ip4/192.0.2.1/tcp/4001".parse().unwrap()],
        protocols: vec![StreamProtocol::new("/ipfs/ping/1.0.0")],
        observed_addr: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
        signed_peer_record: None,
    };
    info(&mut i);
    identify::Event::Received {
        connection_id: ConnectionId::new_unchecked(1),
        peer_id: key.to_peer_id(),
        info: i,
    }
}

fn ping_event(peer: PeerId, ms: u64) -> ping::Event {
    ping::Event {
        peer,
        connection: ConnectionId::new_unchecked(1),
        result: Ok(Duration::from_millis(ms)),
    }
}

#[test]
fn identify_beyond_the_limits_is_stored_cut_to_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let key = Keypair::generate_ed25519().public();
    let peer = key.to_peer_id();

    let long_host = format!("/dns4/{}.example.org/tcp/1", "a".repeat(MAX_ADDRESS_LEN));
    let mut addrs: Vec<Multiaddr> = vec![long_host.parse().unwrap()];
    addrs.extend((0..3 * MAX_ADDRESSES).map(|i| {
        // public ones: a private address heard over an unknown connection is not kept
        format!("/ip4/1.0.{}.{}/tcp/4001", i / 200, i % 200)
            .parse()
            .unwrap()
    }));
    let agent = format!("evil\u{0}agent\n\u{1b}[31m{}", "é".repeat(400));
    let mut protocols = vec![StreamProtocol::try_from_owned("/bad\nproto/1".into()).unwrap()];
    protocols.extend((0..200).map(|i| StreamProtocol::try_from_owned(format!("/p/{i}")).unwrap()));
    let event = identify_event(key, |i| {
        i.listen_addrs = addrs.clone();
        i.agent_version = agent.clone();
        i.protocols = protocols.clone();
    });
    store.observe(&event);
    // The writer is not poisoned: a later observation still lands.
    store.observe(&ping_event(peer, 25));
    store.flush();
    let stats = store.stats();
    assert_eq!((stats.dropped, stats.failed), (0, 0), "{stats:?}");

    let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
    assert_eq!(record.connection_quality.latency_ms, Some(25));
    // The first MAX_ADDRESSES valid addresses, the too-long one skipped.
    let kept: Vec<&str> = record.addresses.iter().map(|a| a.addr.as_str()).collect();
    let expected: Vec<String> = addrs[1..=MAX_ADDRESSES]
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(kept, expected);
    assert_eq!(
        store.addresses_of(&peer),
        &addrs[1..=MAX_ADDRESSES],
        "the swarm's mirror matches the book"
    );
    let agent_kept = &record.metadata[AGENT_VERSION_KEY];
    assert!(agent_kept.starts_with("evilagent[31m"), "{agent_kept:?}");
    assert!(agent_kept.len() <= MAX_METADATA_VALUE_LEN);
    assert!(!agent_kept.chars().any(char::is_control));
    let protocols_kept = &record.metadata[PROTOCOLS_KEY];
    assert!(
        protocols_kept.starts_with("/p/0,/p/1,"),
        "{protocols_kept:?}"
    );
    assert!(protocols_kept.len() <= MAX_METADATA_VALUE_LEN);
    assert!(!protocols_kept.contains("bad"));

    // The same again (a repeated identify) changes nothing and fails nothing.
    store.observe(&event);
    store.shutdown().unwrap();
    assert_eq!(store.stats().failed, 0);

    // Reload: the book and the mirror agree.
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.addresses_of(&peer), &addrs[1..=MAX_ADDRESSES]);
}

fn rsa_key(der: &[u8]) -> PublicKey {
    libp2p::identity::rsa::PublicKey::try_decode_x509(der)
        .unwrap()
        .into()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn rsa_peer_ids_store_and_reload_with_their_long_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        rsa_key(include_bytes!("data/rsa-2048.spki.der")),
        rsa_key(include_bytes!("data/rsa-4096.spki.der")),
    ];
    let mut store = open(dir.path());
    for key in &keys {
        store.observe(&identify_event(key.clone(), |_| {}));
        store.observe(&ping_event(key.to_peer_id(), 7));
    }
    store.shutdown().unwrap();
    let stats = store.stats();
    assert_eq!((stats.dropped, stats.failed), (0, 0), "{stats:?}");
    drop(store);

    let store = open(dir.path());
    for key in &keys {
        let peer = key.to_peer_id();
        // An RSA peer id is a hash of the key, not the key itself.
        assert!(peer.to_string().starts_with("Qm"), "{peer}");
        let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
        let stored = PublicKey::try_decode_protobuf(&unhex(&record.public_key)).unwrap();
        assert_eq!(&stored, key);
        assert_eq!(stored.to_peer_id(), peer);
        assert_eq!(record.connection_quality.latency_ms, Some(7));
        assert_eq!(
            store.addresses_of(&peer),
            ["/ip4/192.0.2.1/tcp/4001".parse::<Multiaddr>().unwrap()]
        );
    }
}

/// Review 5, finding 2: the swarm reports a connection before identify runs
/// on it. An RSA peer id is a hash of the key, so the connection stored the
/// peer with no key; the key identify then told was blanked (the book refused
/// any key change, from none too), and the peer never got one. An unset key is
/// now set once by identify, and never replaced.
#[test]
fn an_rsa_peer_gets_its_key_from_identify_after_the_connection() {
    use libp2p::core::transport::PortUse;
    use libp2p::core::{ConnectedPoint, Endpoint};
    use libp2p::swarm::behaviour::ConnectionEstablished;
    use libp2p::swarm::FromSwarm;

    let dir = tempfile::tempdir().unwrap();
    let key = rsa_key(include_bytes!("data/rsa-2048.spki.der"));
    let peer = key.to_peer_id();
    let mut store = open(dir.path());
    let endpoint = ConnectedPoint::Dialer {
        address: "/ip4/192.0.2.1/tcp/4001".parse().unwrap(),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    };
    store.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
        peer_id: peer,
        connection_id: ConnectionId::new_unchecked(1),
        endpoint: &endpoint,
        failed_addresses: &[],
        other_established: 0,
    }));
    store.flush();
    let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
    assert_eq!(record.public_key, "", "the peer id does not hold the key");
    store.observe(&identify_event(key.clone(), |_| {}));
    store.flush();
    let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
    assert!(!record.public_key.is_empty(), "identify set the key");
    let stored = PublicKey::try_decode_protobuf(&unhex(&record.public_key)).unwrap();
    assert_eq!(stored, key);

    // once set, another key for the same id is refused (counted as failed)
    let other = rsa_key(include_bytes!("data/rsa-4096.spki.der"));
    let mut event = identify_event(other, |_| {});
    if let identify::Event::Received { peer_id, .. } = &mut event {
        *peer_id = peer;
    }
    store.observe(&event);
    store.flush();
    let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
    let stored = PublicKey::try_decode_protobuf(&unhex(&record.public_key)).unwrap();
    assert_eq!(stored, key, "a set key is never replaced");
    assert_eq!(store.stats().failed, 1, "{:?}", store.stats());
    store.shutdown().unwrap();
}

/// Finding 2: the address mirror held every identity heard of, accepted by the
/// book or not, forever. It now holds the peers the book took, at most
/// `max_peers` of them.
#[test]
fn the_address_mirror_holds_only_what_the_book_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(dir.path(), FileOptions::default()).unwrap();
    let mut options = Options::new(MasterKey::from_bytes([3; 32]));
    options.max_peers = 3;
    let book = Arc::new(PeerBook::open(backend, options).unwrap());
    let mut store = Behaviour::new(Arc::clone(&book), Config::default()).unwrap();
    let peers: Vec<PeerId> = (0..10)
        .map(|i| {
            let key = Keypair::generate_ed25519().public();
            let peer = key.to_peer_id();
            store.observe(&identify_event(key, |info| {
                info.listen_addrs = vec![format!("/ip4/1.2.3.{i}/tcp/4001").parse().unwrap()];
            }));
            peer
        })
        .collect();
    store.flush();
    assert_eq!(store.stats().failed, 7, "a full book refuses 7 of them");
    for peer in &peers {
        let in_book = book.get_peer(&peer.to_string()).unwrap().is_some();
        assert_eq!(
            !store.addresses_of(peer).is_empty(),
            in_book,
            "the mirror holds a peer exactly when the book does"
        );
    }

    // A peer the book drops leaves the mirror once the store hears of it.
    let gone = peers[0];
    assert!(book.remove_peer(&gone.to_string()).unwrap());
    let error = libp2p::swarm::DialError::Transport(Vec::new());
    store.on_swarm_event(libp2p::swarm::FromSwarm::DialFailure(
        libp2p::swarm::behaviour::DialFailure {
            peer_id: Some(gone),
            error: &error,
            connection_id: ConnectionId::new_unchecked(9),
        },
    ));
    store.flush();
    assert!(store.addresses_of(&gone).is_empty());
    store.shutdown().unwrap();
}

/// With eviction on, the book keeps the newest peers: so does the mirror, never
/// more than `max_peers` plus the queue's capacity (the book's evictions do not
/// reach it: the evicted peers leave it least recently used first).
#[test]
fn the_address_mirror_follows_an_evicting_book() {
    let dir = tempfile::tempdir().unwrap();
    let backend = FileBackend::open(dir.path(), FileOptions::default()).unwrap();
    // a clock that moves between peers: two peers seen in the same millisecond
    // tie on last_seen, and the book may then evict either (a flaky CI run)
    let clock = ManualClock::new(1_780_000_000_000);
    let mut options = Options::new(MasterKey::from_bytes([3; 32])).with_clock(clock.clone());
    options.max_peers = 3;
    options.evict_when_full = true;
    let book = Arc::new(PeerBook::open(backend, options).unwrap());
    let config = Config { queue_capacity: 2 };
    let mut store = Behaviour::new(Arc::clone(&book), config).unwrap();
    let mut peers = Vec::new();
    for i in 0..10 {
        clock.advance(Duration::from_secs(1));
        let key = Keypair::generate_ed25519().public();
        peers.push(key.to_peer_id());
        store.observe(&identify_event(key, |info| {
            info.listen_addrs = vec![format!("/ip4/1.2.3.{i}/tcp/4001").parse().unwrap()];
        }));
        store.flush();
    }
    let mirrored: Vec<&PeerId> = peers
        .iter()
        .filter(|p| !store.addresses_of(p).is_empty())
        .collect();
    assert_eq!(mirrored, peers[5..].iter().collect::<Vec<_>>());
    for peer in &peers[7..] {
        assert!(book.get_peer(&peer.to_string()).unwrap().is_some());
    }
    store.shutdown().unwrap();
}
