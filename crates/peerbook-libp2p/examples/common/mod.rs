//! A libp2p node with a persistent peer store: ping + identify + peerbook, on TCP
//! with noise and yamux. Shared by the `node` example and the loopback test.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Swarm, SwarmBuilder};
use peerbook::{MasterKey, Options, PeerBook};
use peerbook_file::{FileBackend, FileOptions};

/// The node's behaviours: yours (ping, identify) beside the peer store.
#[derive(NetworkBehaviour)]
pub struct Node {
    pub peerbook: peerbook_libp2p::Behaviour<FileBackend>,
    pub ping: ping::Behaviour,
    pub identify: identify::Behaviour,
}

/// Open the node's book in `dir` (in a real node the master key comes from a key
/// file: see peerbook's docs).
pub fn open_book(dir: &Path) -> Arc<PeerBook<FileBackend>> {
    let backend =
        FileBackend::open(dir, FileOptions::default()).expect("open the book's directory");
    let options = Options::new(MasterKey::from_bytes([7; 32]));
    Arc::new(PeerBook::open(backend, options).expect("open the book"))
}

/// A swarm for `key` recording into `book`.
pub fn swarm(key: Keypair, book: Arc<PeerBook<FileBackend>>) -> Swarm<Node> {
    let store = peerbook_libp2p::Behaviour::new(book, peerbook_libp2p::Config::default())
        .expect("load the peer store");
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|key| Node {
            peerbook: store,
            ping: ping::Behaviour::new(
                ping::Config::new().with_interval(Duration::from_millis(200)),
            ),
            identify: identify::Behaviour::new(identify::Config::new(
                "/peerbook-example/1".into(),
                key.public(),
            )),
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Handle one event: forward ping and identify events to the peer store (the one
/// call a node adds to its event loop). Returns the event for the caller to look at.
pub fn handle(swarm: &mut Swarm<Node>, event: SwarmEvent<NodeEvent>) -> SwarmEvent<NodeEvent> {
    if let SwarmEvent::Behaviour(e) = &event {
        let store = &mut swarm.behaviour_mut().peerbook;
        match e {
            NodeEvent::Ping(e) => store.observe(e),
            NodeEvent::Identify(e) => store.observe(e),
            NodeEvent::Peerbook(never) => match *never {},
        }
    }
    event
}
