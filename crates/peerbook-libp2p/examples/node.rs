//! A node that remembers its peers: `cargo run -p peerbook-libp2p --example node --
//! DIR [ADDR]` listens on 127.0.0.1, dials ADDR if given, and at every start dials
//! the best peers of the book in DIR. Stop it with Ctrl-C (the book is flushed).
//! The identity is new on each start in this example; keep the key in a real node.

mod common;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: node DIR [ADDR]")?;
    let mut swarm = common::swarm(Keypair::generate_ed25519(), common::open_book(dir.as_ref()));
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    if let Some(addr) = args.next() {
        swarm.dial(addr.parse::<libp2p::Multiaddr>()?)?;
    }
    let dialed = peerbook_libp2p::bootstrap(&mut swarm, |n| &mut n.peerbook, 8)?;
    println!("dialing {} peers from the book", dialed.len());
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match common::handle(&mut swarm, event) {
                SwarmEvent::NewListenAddr { address, .. } => println!("listening on {address}"),
                SwarmEvent::ConnectionEstablished { peer_id, .. } => println!("connected to {peer_id}"),
                _ => {}
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    swarm.behaviour_mut().peerbook.shutdown_async().await?;
    Ok(())
}
