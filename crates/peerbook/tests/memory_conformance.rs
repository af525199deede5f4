//! The whole conformance kit over the in-memory reference backend.
use peerbook::conformance::MemoryFactory;

peerbook::conformance_tests!(MemoryFactory);

/// Clones of a MemoryBackend share one book claim: a second live book on a clone is
/// refused; after the first book is closed, a clone opens and sees its data.
#[test]
fn memory_clone_serves_one_live_book() {
    use peerbook::{MasterKey, MemoryBackend, NewPeer, Options, PeerBook};
    let options = || Options::new(MasterKey::from_bytes([1; 32]));
    let backend = MemoryBackend::new();
    let book = PeerBook::open(backend.clone(), options()).unwrap();
    book.store_peer(NewPeer {
        peer_id: "a".into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    })
    .unwrap();
    match PeerBook::open(backend.clone(), options()) {
        Err(peerbook::Error::Locked { .. }) => {}
        other => panic!("a second live book on a clone must be refused: {other:?}"),
    }
    book.close().unwrap();
    let again = PeerBook::open(backend, options()).expect("reopen after close");
    assert!(again.get_peer("a").unwrap().is_some());
}
