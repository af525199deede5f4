//! Swarm events fed straight to the store (no network): how each kind of event
//! lands in the book.

use std::sync::Arc;

use libp2p::identity::{Keypair, PublicKey};
use libp2p::swarm::behaviour::DialFailure;
use libp2p::swarm::{ConnectionDenied, ConnectionId, DialError, FromSwarm, NetworkBehaviour};
use libp2p::{identify, PeerId, StreamProtocol};
use peerbook::{MasterKey, MemoryBackend, Options, PeerBook};
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
    store.shutdown();
}
