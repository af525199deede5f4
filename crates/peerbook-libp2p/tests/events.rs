//! Swarm events fed straight to the store (no network): how each kind of event
//! lands in the book.

use std::sync::Arc;

use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::identity::{Keypair, PublicKey};
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, DialFailure};
use libp2p::swarm::{ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour};
use libp2p::{identify, PeerId, StreamProtocol};
use peerbook::address::MAX_ADDRESSES;
use peerbook::{AddressSource, MasterKey, MemoryBackend, Options, PeerBook};
use peerbook_libp2p::{Behaviour, Config};

fn open() -> Behaviour<MemoryBackend> {
    let book = PeerBook::open(
        MemoryBackend::new(),
        Options::new(MasterKey::from_bytes([5; 32])),
    );
    Behaviour::new(Arc::new(book.unwrap()), Config::default()).unwrap()
}

fn identify(key: &PublicKey, connection: ConnectionId, addrs: &[&str]) -> identify::Event {
    identify::Event::Received {
        connection_id: connection,
        peer_id: key.to_peer_id(),
        info: identify::Info {
            public_key: key.clone(),
            protocol_version: "/ipfs/0.1.0".into(),
            agent_version: "test/1".into(),
            listen_addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            protocols: vec![StreamProtocol::new("/ipfs/ping/1.0.0")],
            observed_addr: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            signed_peer_record: None,
        },
    }
}

fn dial_failed(store: &mut Behaviour<MemoryBackend>, peer: PeerId, error: &DialError) {
    store.on_swarm_event(FromSwarm::DialFailure(DialFailure {
        peer_id: Some(peer),
        error,
        connection_id: ConnectionId::new_unchecked(99),
    }));
}

/// Finding 11: a dial our own swarm denied (connection limits, a block list) is
/// not the peer's failure: five of them used to blacklist it for a day.
#[test]
fn a_denied_dial_is_not_the_peers_failure() {
    let mut store = open();
    let key = Keypair::generate_ed25519().public();
    let peer = key.to_peer_id();
    store.observe(&identify(
        &key,
        ConnectionId::new_unchecked(1),
        &["/ip4/1.2.3.4/tcp/1"],
    ));
    for _ in 0..5 {
        let denied = DialError::Denied {
            cause: ConnectionDenied::new("our own connection limit"),
        };
        dial_failed(&mut store, peer, &denied);
    }
    store.flush();
    let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
    assert_eq!(record.reconnection_attempts, 0);
    assert_eq!(record.blacklist_until, None);
    store.shutdown().unwrap();
}

fn stored_addrs(store: &Behaviour<MemoryBackend>, peer: PeerId) -> Vec<String> {
    let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
    record.addresses.into_iter().map(|a| a.addr).collect()
}

/// A connection to `peer` over `endpoint` is established.
fn established(
    store: &mut Behaviour<MemoryBackend>,
    peer: PeerId,
    id: usize,
    endpoint: &ConnectedPoint,
) {
    store.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
        peer_id: peer,
        connection_id: ConnectionId::new_unchecked(id),
        endpoint,
        failed_addresses: &[],
        other_established: 0,
    }));
}

fn inbound(store: &mut Behaviour<MemoryBackend>, peer: PeerId, id: usize, from: &str) {
    let endpoint = ConnectedPoint::Listener {
        local_addr: "/ip4/127.0.0.1/tcp/4001".parse().unwrap(),
        send_back_addr: from.parse().unwrap(),
    };
    established(store, peer, id, &endpoint);
}

const LOCAL_ONES: [&str; 7] = [
    "/ip4/127.0.0.1/tcp/6379",
    "/ip4/169.254.169.254/tcp/80",
    "/ip4/10.0.0.1/tcp/4001",
    "/ip4/0.0.0.0/tcp/4001",
    "/dns4/localhost/tcp/6379",
    "/ip6/::1/tcp/6379",
    "/ip6/fe80::1/tcp/4001",
];

/// Finding 6: a remote peer chose which addresses we persist and redial, local
/// services included. Over a public connection only public ones are kept now;
/// over a loopback connection (a local peer) its loopback addresses stay.
#[test]
fn local_addresses_reported_over_a_public_connection_are_not_kept() {
    let mut store = open();
    let key = Keypair::generate_ed25519().public();
    let peer = key.to_peer_id();
    inbound(&mut store, peer, 1, "/ip4/1.2.3.4/tcp/50000");
    let mut reported = LOCAL_ONES.to_vec();
    reported.push("/ip4/1.2.3.4/tcp/4001");
    store.observe(&identify(&key, ConnectionId::new_unchecked(1), &reported));
    store.flush();
    assert_eq!(stored_addrs(&store, peer), ["/ip4/1.2.3.4/tcp/4001"]);

    // A peer on this host: its loopback addresses are how to reach it.
    let key = Keypair::generate_ed25519().public();
    let peer = key.to_peer_id();
    inbound(&mut store, peer, 2, "/ip4/127.0.0.1/tcp/50001");
    store.observe(&identify(
        &key,
        ConnectionId::new_unchecked(2),
        &["/ip4/127.0.0.1/tcp/4002"],
    ));
    store.flush();
    assert_eq!(stored_addrs(&store, peer), ["/ip4/127.0.0.1/tcp/4002"]);
    store.shutdown().unwrap();
}

fn dialed(store: &mut Behaviour<MemoryBackend>, peer: PeerId, id: usize, to: &str) {
    let endpoint = ConnectedPoint::Dialer {
        address: to.parse().unwrap(),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    };
    established(store, peer, id, &endpoint);
}

fn public(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("/ip4/1.2.3.{i}/tcp/4001"))
        .collect()
}

/// Finding 5: once 16 reported addresses filled a peer's slots, the address we
/// dialed and that worked was refused (and the whole connection counted as a
/// failed write), and newer reported addresses never got in.
#[test]
fn full_address_slots_make_room_for_the_working_and_the_newer() {
    let mut store = open();
    let key = Keypair::generate_ed25519().public();
    let peer = key.to_peer_id();
    let first = public(0, MAX_ADDRESSES);
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    store.observe(&identify(&key, ConnectionId::new_unchecked(1), &refs));
    store.flush();
    assert_eq!(stored_addrs(&store, peer), first);

    let working = "/ip4/5.6.7.8/tcp/4001";
    dialed(&mut store, peer, 2, working);
    store.flush();
    assert_eq!(store.stats().failed, 0, "the connection is recorded whole");
    let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
    assert_eq!(record.addresses.len(), MAX_ADDRESSES);
    let kept = record
        .addresses
        .iter()
        .find(|a| a.addr == working)
        .expect("the dialed address is kept");
    assert_eq!(kept.source, AddressSource::Observed);
    assert!(kept.last_success.is_some());
    assert!(
        !stored_addrs(&store, peer).contains(&first[0]),
        "the oldest reported one made room"
    );

    // A newer identify (the peer moved): its addresses replace the old reported
    // ones, the working observed one stays.
    let newer = public(100, MAX_ADDRESSES);
    let refs: Vec<&str> = newer.iter().map(String::as_str).collect();
    store.observe(&identify(&key, ConnectionId::new_unchecked(2), &refs));
    store.flush();
    let now = stored_addrs(&store, peer);
    assert!(now.iter().any(|a| a == working), "{now:?}");
    assert_eq!(
        now.iter().filter(|a| newer.contains(a)).count(),
        MAX_ADDRESSES - 1,
        "{now:?}"
    );
    assert_eq!(store.stats().failed, 0);
    store.shutdown().unwrap();
}

fn closed(store: &mut Behaviour<MemoryBackend>, peer: PeerId, id: usize) {
    // the store looks the connection up by id: the endpoint here is not read
    let endpoint = ConnectedPoint::Listener {
        local_addr: "/ip4/127.0.0.1/tcp/4001".parse().unwrap(),
        send_back_addr: "/ip4/1.2.3.4/tcp/50000".parse().unwrap(),
    };
    store.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
        peer_id: peer,
        connection_id: ConnectionId::new_unchecked(id),
        endpoint: &endpoint,
        cause: None,
        remaining_established: 0,
    }));
}

/// Finding 4: any remote peer that connected to us was recorded as a success:
/// a new peer ranked as a reconnection candidate with a successful session, a
/// blacklisted one cleared. Until we dialed it successfully, an inbound peer is
/// now only learned of: no success, no session, its attempts and blacklist kept.
#[test]
fn an_inbound_peer_is_not_a_success_until_we_dial_it() {
    let mut store = open();
    let key = Keypair::generate_ed25519().public();
    let peer = key.to_peer_id();
    let get = |store: &Behaviour<MemoryBackend>| {
        store.book().get_peer(&peer.to_string()).unwrap().unwrap()
    };

    // A peer never met connects to us, stays, leaves.
    inbound(&mut store, peer, 1, "/ip4/1.2.3.4/tcp/50000");
    closed(&mut store, peer, 1);
    store.flush();
    let record = get(&store);
    assert_eq!(record.last_connected, 0, "never connected by us");
    assert_eq!(
        record.connection_quality.total_connections, 0,
        "no session counted"
    );

    // Our dials to it fail until it is blacklisted; it connects to us again.
    let error = DialError::Transport(Vec::new());
    for _ in 0..5 {
        dial_failed(&mut store, peer, &error);
    }
    store.flush();
    let blacklisted = get(&store).blacklist_until;
    assert!(blacklisted.is_some());
    inbound(&mut store, peer, 2, "/ip4/1.2.3.4/tcp/50001");
    closed(&mut store, peer, 2);
    store.flush();
    let record = get(&store);
    assert_eq!(record.reconnection_attempts, 5, "attempts kept");
    assert_eq!(record.blacklist_until, blacklisted, "blacklist kept");
    assert_eq!(record.connection_quality.total_connections, 0);

    // We dial it and it works: now a success, and its sessions count, inbound too.
    dialed(&mut store, peer, 3, "/ip4/1.2.3.4/tcp/4001");
    closed(&mut store, peer, 3);
    inbound(&mut store, peer, 4, "/ip4/1.2.3.4/tcp/50002");
    closed(&mut store, peer, 4);
    store.flush();
    let record = get(&store);
    assert!(record.last_connected > 0);
    assert_eq!(
        (record.reconnection_attempts, record.blacklist_until),
        (0, None)
    );
    assert_eq!(record.connection_quality.total_connections, 2);
    assert_eq!(store.stats().failed, 0);
    store.shutdown().unwrap();
}

/// Review 3, finding 3: the user's manual address, once dialed, became
/// `observed` and could then be evicted by another working address at full
/// slots, though a manual address never leaves. Its source now stays manual.
#[test]
fn a_manual_address_stays_manual_once_dialed() {
    let mut store = open();
    let key = Keypair::generate_ed25519().public();
    let peer = key.to_peer_id();
    store.observe(&identify(&key, ConnectionId::new_unchecked(1), &[]));
    store.flush();
    let manual = "/ip4/9.9.9.9/tcp/4001";
    store
        .book()
        .add_address(&peer.to_string(), manual, AddressSource::Manual, None)
        .unwrap();
    dialed(&mut store, peer, 2, manual);
    store.flush();
    let source = |store: &Behaviour<MemoryBackend>| {
        let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
        record
            .addresses
            .iter()
            .find(|a| a.addr == manual)
            .map(|a| (a.source, a.last_success.is_some()))
    };
    assert_eq!(source(&store), Some((AddressSource::Manual, true)));
    // Full slots, then more working addresses: the manual one is never evicted.
    for (i, addr) in public(0, MAX_ADDRESSES + 4).iter().enumerate() {
        dialed(&mut store, peer, 10 + i, addr);
    }
    store.flush();
    assert_eq!(source(&store), Some((AddressSource::Manual, true)));
    assert_eq!(store.stats().failed, 0);
    store.shutdown().unwrap();
}

/// A book of `max_peers` 3 holding three peers seen one second apart (oldest
/// first), and a store over it with a queue of 1.
fn three_peers() -> (Behaviour<MemoryBackend>, Vec<PeerId>) {
    let clock = peerbook::ManualClock::new(1_000_000);
    let mut options = Options::new(MasterKey::from_bytes([5; 32])).with_clock(clock.clone());
    options.max_peers = 3;
    let book = PeerBook::open(MemoryBackend::new(), options).unwrap();
    let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    for (i, peer) in peers.iter().enumerate() {
        let id = peer.to_string();
        book.learn_peer(peerbook::NewPeer {
            peer_id: id.clone(),
            ..Default::default()
        })
        .unwrap();
        let addr = format!("/ip4/1.2.3.{i}/tcp/1");
        book.add_address(&id, &addr, AddressSource::Reported, None)
            .unwrap();
        clock.advance(std::time::Duration::from_secs(1));
    }
    let store = Behaviour::new(Arc::new(book), Config { queue_capacity: 1 }).unwrap();
    (store, peers)
}

/// A new peer with a public address, through identify (applied before return).
fn newcomer(store: &mut Behaviour<MemoryBackend>, id: usize) -> PeerId {
    let key = Keypair::generate_ed25519().public();
    let addr = format!("/ip4/5.6.7.{id}/tcp/1");
    store.observe(&identify(&key, ConnectionId::new_unchecked(id), &[&addr]));
    store.flush();
    key.to_peer_id()
}

/// Review 3, finding 4: the address mirror was loaded newest-first, so the
/// newest peers got the oldest ticks and left the mirror first while the book
/// still had them; and with no slack, entries the book dropped behind the
/// mirror's back (cleanup, eviction) pushed live peers out.
#[test]
fn the_mirror_keeps_the_peers_the_book_keeps() {
    // Order: the two oldest leave the book directly; two newcomers come in.
    let (mut store, peers) = three_peers();
    for p in &peers[..2] {
        assert!(store.book().remove_peer(&p.to_string()).unwrap());
    }
    let (n1, n2) = (newcomer(&mut store, 11), newcomer(&mut store, 12));
    for p in [peers[2], n1, n2] {
        assert!(!store.addresses_of(&p).is_empty(), "{p} is in the book");
    }
    store.shutdown().unwrap();

    // Slack: the newest leaves the book directly (its entry goes stale); a
    // newcomer must not push a live peer out of the mirror.
    let (mut store, peers) = three_peers();
    assert!(store.book().remove_peer(&peers[2].to_string()).unwrap());
    let n1 = newcomer(&mut store, 11);
    for p in [peers[0], peers[1], n1] {
        assert!(!store.addresses_of(&p).is_empty(), "{p} is in the book");
    }
    store.shutdown().unwrap();
}

/// An identify event from `key` on `connection` reporting `addrs` as they are
/// (built component by component: text could not hold them).
fn identify_addrs(
    key: &PublicKey,
    connection: ConnectionId,
    addrs: Vec<libp2p::Multiaddr>,
) -> identify::Event {
    let mut event = identify(key, connection, &[]);
    if let identify::Event::Received { info, .. } = &mut event {
        info.listen_addrs = addrs;
    }
    event
}

/// Review 5, finding 1: the filter judged the parsed address while the book
/// stores its text, parsed again before a dial. `Sni` and `Ip6zone` print their
/// value as is, so a `/` in it became new components: a public peer's
/// `/ip4/1.2.3.4/tcp/1/tls/sni/<x/ip4/127.0.0.1/tcp/6379>` was judged public,
/// stored, and came back ending in `/ip4/127.0.0.1/tcp/6379` (what libp2p-tcp
/// dials). An address whose text does not parse back to it is not kept.
#[test]
fn an_address_whose_text_reads_back_as_another_is_not_kept() {
    use libp2p::multiaddr::Protocol;
    use libp2p::Multiaddr;
    let smuggled = "x/ip4/127.0.0.1/tcp/6379";
    let sni = Multiaddr::empty()
        .with(Protocol::Ip4([1, 2, 3, 4].into()))
        .with(Protocol::Tcp(1))
        .with(Protocol::Tls)
        .with(Protocol::Sni(smuggled.into()));
    let zone = Multiaddr::empty()
        .with(Protocol::Ip4([1, 2, 3, 4].into()))
        .with(Protocol::Tcp(1))
        .with(Protocol::Ip6zone("eth0/ip4/127.0.0.1/tcp/6379".into()));
    let fine: Multiaddr = "/ip4/1.2.3.4/tcp/4001".parse().unwrap();
    // the text of each reads back as another address, a loopback one
    for addr in [&sni, &zone] {
        let back: Multiaddr = addr.to_string().parse().unwrap();
        assert_ne!(&back, addr);
        assert!(
            back.to_string().ends_with("/ip4/127.0.0.1/tcp/6379"),
            "{back}"
        );
    }

    let mut store = open();
    // over a public connection (the Sni one is judged public) and over a LAN one
    // (the Ip6zone one is judged local)
    for (id, from) in [
        (1, "/ip4/8.8.8.8/tcp/50000"),
        (2, "/ip4/10.0.0.7/tcp/50000"),
    ] {
        let key = Keypair::generate_ed25519().public();
        let peer = key.to_peer_id();
        inbound(&mut store, peer, id, from);
        let reported = vec![sni.clone(), zone.clone(), fine.clone()];
        store.observe(&identify_addrs(
            &key,
            ConnectionId::new_unchecked(id),
            reported,
        ));
        store.flush();
        assert_eq!(
            stored_addrs(&store, peer),
            [fine.to_string()],
            "over {from}"
        );
        assert_eq!(
            store.addresses_of(&peer),
            std::slice::from_ref(&fine),
            "over {from}"
        );
    }
    // nor the address of a connection we dialed (another behaviour may have
    // given it to the swarm): the connection is recorded, the address is not
    let key = Keypair::generate_ed25519().public();
    let peer = key.to_peer_id();
    let endpoint = ConnectedPoint::Dialer {
        address: sni.clone(),
        role_override: Endpoint::Dialer,
        port_use: PortUse::Reuse,
    };
    established(&mut store, peer, 3, &endpoint);
    store.flush();
    let record = store.book().get_peer(&peer.to_string()).unwrap().unwrap();
    assert!(record.last_connected > 0, "the connection is recorded");
    assert!(record.addresses.is_empty(), "{:?}", record.addresses);
    assert!(store.addresses_of(&peer).is_empty());
    assert_eq!(store.stats().failed, 0);
    store.shutdown().unwrap();
}
