//! A book over RocksDB in a temp dir: store a peer with a secret, rank the
//! reconnection candidates, close, reopen and find the peer again.
//!
//! `cargo run -p peerbook-rocksdb --example rocksdb_basic`

use peerbook::{CandidateQuery, MasterKey, NewPeer, Options, PeerBook, Secret};
use peerbook_rocksdb::{RocksBackend, RocksOptions};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("peers");
    // The master key lives outside the data directory (created 0600 on first use).
    let key = MasterKey::load_or_create(tmp.path().join("peerbook.key"))?;

    let book = PeerBook::open(
        RocksBackend::open(&dir, RocksOptions::default())?,
        Options::new(key.clone()),
    )?;
    book.store_peer(NewPeer {
        peer_id: "QmAlice".into(),
        display_name: "Alice".into(),
        public_key: r#"{"kty":"EC","crv":"P-256"}"#.into(),
        shared_secret: Some(Secret::from("alice's shared secret")),
        ..NewPeer::default()
    })?;
    let candidates = book.get_reconnection_candidates(&CandidateQuery {
        limit: 5,
        max_age: Some(Duration::from_secs(24 * 3600)),
    })?;
    for candidate in &candidates {
        println!(
            "candidate {} ({})",
            candidate.peer.peer_id.as_str(),
            candidate.peer.display_name
        );
    }
    book.close()?;

    let book = PeerBook::open(
        RocksBackend::open(&dir, RocksOptions::default())?,
        Options::new(key),
    )?;
    let alice = book
        .get_peer("QmAlice")?
        .ok_or("QmAlice is gone after reopening")?;
    let secret = book
        .open_shared_secret(&alice)?
        .ok_or("the secret is gone")?;
    assert_eq!(secret.expose_str(), Some("alice's shared secret"));
    println!(
        "reopened {}: {} peer(s), secret opens",
        dir.display(),
        book.get_storage_stats()?.peer_count
    );
    book.close()?;
    Ok(())
}
