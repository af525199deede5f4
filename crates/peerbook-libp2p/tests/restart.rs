//! Loopback only: node A meets node B over 127.0.0.1 TCP and pings it, stops,
//! restarts from its peerbook directory with no bootstrap address, and reconnects
//! to B from the book alone; A's book shows B's sessions, latency and addresses.

#[path = "../examples/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{handle, open_book, swarm, Node, NodeEvent};
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use peerbook::AddressSource;
use peerbook_libp2p::{bootstrap, AGENT_VERSION_KEY};

const LIMIT: Duration = Duration::from_secs(20);

/// Drive both swarms until A has pinged B and heard B's identify.
async fn until_pinged_and_identified(a: &mut Swarm<Node>, b: &mut Swarm<Node>, peer_b: PeerId) {
    let (mut pinged, mut identified) = (false, false);
    while !(pinged && identified) {
        tokio::select! {
            e = a.select_next_some() => match handle(a, e) {
                SwarmEvent::Behaviour(NodeEvent::Ping(p)) if p.peer == peer_b && p.result.is_ok() => pinged = true,
                SwarmEvent::Behaviour(NodeEvent::Identify(libp2p::identify::Event::Received { peer_id, .. }))
                    if peer_id == peer_b => identified = true,
                _ => {}
            },
            e = b.select_next_some() => { handle(b, e); }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reconnects_from_the_book_alone() {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let (key_a, key_b) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let peer_b = key_b.public().to_peer_id();

    let mut b = swarm(key_b, open_book(dir_b.path()));
    b.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr_b: Multiaddr = tokio::time::timeout(LIMIT, async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = b.select_next_some().await {
                break address;
            }
        }
    })
    .await
    .expect("B listens");

    // First run: A dials B's address, pings it, stops.
    let mut a = swarm(key_a.clone(), open_book(dir_a.path()));
    assert!(
        bootstrap(&mut a, |n| &mut n.peerbook, 8)
            .unwrap()
            .is_empty(),
        "empty book: nobody to dial"
    );
    a.dial(addr_b.clone()).unwrap();
    tokio::time::timeout(LIMIT, until_pinged_and_identified(&mut a, &mut b, peer_b))
        .await
        .expect("A pings B and hears its identify");
    a.behaviour_mut().peerbook.shutdown().unwrap();
    assert_eq!(a.behaviour().peerbook.stats().dropped, 0);
    drop(a); // the swarm and the book close: the process "stops"

    // Restart: same key and book directory, no address given.
    let mut a = swarm(key_a.clone(), open_book(dir_a.path()));
    assert_eq!(
        a.behaviour().peerbook.addresses_of(&peer_b),
        std::slice::from_ref(&addr_b),
        "B's address loaded from the book"
    );
    let dialed = bootstrap(&mut a, |n| &mut n.peerbook, 8).unwrap();
    assert_eq!(dialed, [peer_b], "the book's top candidate is B");
    tokio::time::timeout(LIMIT, until_pinged_and_identified(&mut a, &mut b, peer_b))
        .await
        .expect("A reconnects to B from the book alone");
    a.behaviour_mut().peerbook.shutdown().unwrap();
    let stats = a.behaviour().peerbook.stats();
    assert_eq!((stats.dropped, stats.failed), (0, 0), "{stats:?}");

    let record = a
        .behaviour()
        .peerbook
        .book()
        .get_peer(&peer_b.to_string())
        .unwrap()
        .expect("B is in A's book");
    let q = record.connection_quality;
    assert_eq!(q.total_connections, 2, "two sessions: one per run");
    assert_eq!(q.successful_connections, 2);
    assert!(
        q.latency_ms.is_some_and(|ms| ms > 0),
        "ping RTT stored: {q:?}"
    );
    let kept = record
        .addresses
        .iter()
        .find(|x| x.addr == addr_b.to_string())
        .expect("B's address kept");
    assert!(kept.last_success.is_some(), "the address worked");
    assert!(matches!(
        kept.source,
        AddressSource::Observed | AddressSource::Reported
    ));
    assert!(
        record.addresses.iter().all(|x| !x.addr.contains("/p2p/")),
        "addresses stored without the peer id: {:?}",
        record.addresses
    );
    assert!(!record.public_key.is_empty(), "public key from identify");
    assert!(record
        .metadata
        .get(AGENT_VERSION_KEY)
        .is_some_and(|v| !v.is_empty()));
    assert_eq!(record.reconnection_attempts, 0);

    drop(a);

    // B stops; A restarts again: the dial from the book fails and is counted.
    drop(b);
    let mut a = swarm(key_a, open_book(dir_a.path()));
    assert_eq!(bootstrap(&mut a, |n| &mut n.peerbook, 8).unwrap(), [peer_b]);
    tokio::time::timeout(LIMIT, async {
        loop {
            let event = a.select_next_some().await;
            if let SwarmEvent::OutgoingConnectionError {
                peer_id: Some(p), ..
            } = handle(&mut a, event)
            {
                assert_eq!(p, peer_b);
                break;
            }
        }
    })
    .await
    .expect("the dial to the stopped B fails");
    a.behaviour_mut().peerbook.shutdown().unwrap();
    let record = a
        .behaviour()
        .peerbook
        .book()
        .get_peer(&peer_b.to_string())
        .unwrap()
        .unwrap();
    assert_eq!(
        record.reconnection_attempts, 1,
        "the failed dial is counted"
    );
    let addr = record
        .addresses
        .iter()
        .find(|x| x.addr == addr_b.to_string())
        .unwrap();
    assert!(addr.last_failure.is_some(), "the failed address is marked");
    assert_eq!(
        record.connection_quality.total_connections, 2,
        "no session for a failed dial"
    );
}

/// Finding 10: the store stopped from inside a single-threaded runtime with
/// `shutdown_async` applies what is queued and releases the book (it reopens).
#[tokio::test(flavor = "current_thread")]
async fn shutdown_async_applies_the_queue_and_releases_the_book() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate_ed25519();
    let peer = Keypair::generate_ed25519().public().to_peer_id();
    let mut a = swarm(key.clone(), open_book(dir.path()));
    a.behaviour_mut().peerbook.observe(&libp2p::ping::Event {
        peer,
        connection: libp2p::swarm::ConnectionId::new_unchecked(1),
        result: Ok(Duration::from_millis(9)),
    });
    let done = a.behaviour_mut().peerbook.shutdown_async();
    drop(a); // the swarm may go first: the writer finishes alone
    tokio::time::timeout(LIMIT, done)
        .await
        .expect("the writer ends")
        .expect("the book flushed");
    let a = swarm(key, open_book(dir.path()));
    let record = a
        .behaviour()
        .peerbook
        .book()
        .get_peer(&peer.to_string())
        .unwrap();
    assert_eq!(record.unwrap().connection_quality.latency_ms, Some(9));
}

/// Review 3, finding 2: a stranger that connected to us (inbound, only learned
/// of) reported an address it controls over identify; at the next start the
/// book's ranking (which ranks every non-blacklisted peer) let bootstrap dial
/// it, and that dialed connection made it a success. Only peers we connected
/// to ourselves are reconnection candidates, filtered before the limit applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_dials_only_peers_we_connected_to() {
    let (dir_a, dir_b, dir_x) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let key_a = Keypair::generate_ed25519();
    let (key_b, key_x) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
    let (peer_a, peer_b, peer_x) = (
        key_a.public().to_peer_id(),
        key_b.public().to_peer_id(),
        key_x.public().to_peer_id(),
    );
    let mut a = swarm(key_a.clone(), open_book(dir_a.path()));
    let mut b = swarm(key_b, open_book(dir_b.path()));
    let mut x = swarm(key_x, open_book(dir_x.path()));
    let mut addrs = Vec::new();
    for s in [&mut a, &mut b, &mut x] {
        s.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let addr = tokio::time::timeout(LIMIT, async {
            loop {
                if let SwarmEvent::NewListenAddr { address, .. } = s.select_next_some().await {
                    break address;
                }
            }
        })
        .await
        .expect("listens");
        addrs.push(addr);
    }
    // A dials B; the stranger X dials A.
    a.dial(addrs[1].clone()).unwrap();
    x.dial(
        addrs[0]
            .clone()
            .with(libp2p::multiaddr::Protocol::P2p(peer_a)),
    )
    .unwrap();
    let (mut heard_b, mut heard_x) = (false, false);
    tokio::time::timeout(LIMIT, async {
        while !(heard_b && heard_x) {
            tokio::select! {
                e = a.select_next_some() => {
                    if let SwarmEvent::Behaviour(NodeEvent::Identify(
                        libp2p::identify::Event::Received { peer_id, .. },
                    )) = handle(&mut a, e)
                    {
                        heard_b |= peer_id == peer_b;
                        heard_x |= peer_id == peer_x;
                    }
                }
                e = b.select_next_some() => { handle(&mut b, e); }
                e = x.select_next_some() => { handle(&mut x, e); }
            }
        }
    })
    .await
    .expect("A hears both identifies");
    a.behaviour_mut().peerbook.shutdown().unwrap();
    let book = a.behaviour().peerbook.book().clone();
    let x_record = book
        .get_peer(&peer_x.to_string())
        .unwrap()
        .expect("X learned");
    assert_eq!(
        x_record.last_connected, 0,
        "X connected to us, not we to it"
    );
    assert!(!x_record.addresses.is_empty(), "X's loopback address kept");
    drop((a, book));

    let mut a = swarm(key_a, open_book(dir_a.path()));
    assert!(!a.behaviour().peerbook.addresses_of(&peer_x).is_empty());
    assert_eq!(
        a.behaviour().peerbook.reconnection_candidates(1).unwrap(),
        [peer_b],
        "the stranger is not a candidate, whatever its rank"
    );
    assert_eq!(bootstrap(&mut a, |n| &mut n.peerbook, 8).unwrap(), [peer_b]);
    a.behaviour_mut().peerbook.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_passes_over_a_refused_dial() {
    let dir = tempfile::tempdir().unwrap();
    {
        let book = open_book(dir.path());
        for _ in 0..2 {
            let id = Keypair::generate_ed25519()
                .public()
                .to_peer_id()
                .to_string();
            book.store_peer(peerbook::NewPeer {
                peer_id: id.clone(),
                ..Default::default()
            })
            .unwrap();
            // a closed loopback port: the dials below stay pending (never polled)
            book.add_address(&id, "/ip4/127.0.0.1/tcp/9", AddressSource::Manual, None)
                .unwrap();
            book.update_last_seen(&id).unwrap();
        }
    }
    let mut a = swarm(Keypair::generate_ed25519(), open_book(dir.path()));
    let ranked = a.behaviour().peerbook.reconnection_candidates(2).unwrap();
    assert_eq!(ranked.len(), 2, "both peers are candidates");
    // the top candidate is already being dialed: the swarm refuses a second dial
    a.dial(libp2p::swarm::dial_opts::DialOpts::peer_id(ranked[0]).build())
        .unwrap();
    assert_eq!(
        bootstrap(&mut a, |n| &mut n.peerbook, 1).unwrap(),
        [ranked[1]],
        "the refused top candidate leaves its place to the next"
    );
    a.behaviour_mut().peerbook.shutdown().unwrap();
}
