//! Fuzz targets on bytes from outside a book: an encoded record
//! (`decode_record`), a sealed secret (`open_sealed`) and an export document
//! (`import_json`).

use peerbook::{
    Error, ExportDocument, ExportOptions, ImportMode, ManualClock, MemoryBackend, NewIceServer,
    NewPeer, PeerBook, PeerQuery, PeerRecord, SealedSecret,
};

use crate::{memory_book, START_MS};

// ----- decode_record -------------------------------------------------------------

/// `PeerRecord::decode` never panics; whatever it accepts encodes to bytes that
/// decode to the same record, and that encoding is stable.
pub fn decode_record(data: &[u8]) {
    let Ok(record) = PeerRecord::decode(data) else {
        return;
    };
    let encoded = record.encode();
    let again = PeerRecord::decode(&encoded)
        .unwrap_or_else(|e| panic!("re-decoding an encoded record failed: {e}"));
    assert_eq!(record, again, "decode(encode(r)) != r");
    assert_eq!(encoded, again.encode(), "encode is not stable");
}

// ----- open_sealed ---------------------------------------------------------------

/// A sealed secret made of fuzz bytes never opens (as a shared secret or an ICE
/// credential) and a record carrying it is refused by `store_peer` as invalid input.
///
/// Input: byte 0 picks where the sealed value goes (even: shared secret, odd: ICE
/// credential), the rest are the sealed bytes.
pub fn open_sealed(data: &[u8]) {
    let Some((&which, sealed)) = data.split_first() else {
        return;
    };
    let Ok(sealed) = SealedSecret::from_bytes(sealed.to_vec()) else {
        return;
    };
    let clock = ManualClock::new(START_MS);
    let book = memory_book(&clock);
    let mut record = book
        .create_peer(NewPeer {
            peer_id: "fuzz-peer".into(),
            display_name: "Fuzz".into(),
            public_key: "{\"kty\":\"EC\"}".into(),
            ice_servers: vec![NewIceServer {
                urls: vec!["turn:turn.example.org:3478".into()],
                username: Some("user".into()),
                credential: None,
            }],
            ..NewPeer::default()
        })
        .expect("a valid peer");
    if which % 2 == 0 {
        record.shared_secret = Some(sealed);
        let opened = book.open_shared_secret(&record);
        assert!(
            opened.is_err(),
            "fuzz bytes opened as a shared secret: {opened:?}"
        );
    } else {
        record.ice_servers[0].credential = Some(sealed);
        let opened = book.open_ice_credential(&record, 0);
        assert!(
            opened.is_err(),
            "fuzz bytes opened as an ICE credential: {opened:?}"
        );
    }
    match book.store_peer(record) {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("store_peer of a forged seal: expected InvalidInput, got {other:?}"),
    }
    assert_eq!(book.get_peer("fuzz-peer").expect("get_peer"), None);
}

// ----- import_json ---------------------------------------------------------------

/// `ExportDocument::from_json` never panics on any UTF-8; a parsed document imports
/// (Merge) into an empty book without panicking, all or nothing.
pub fn import_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = ExportDocument::from_json(text) else {
        return;
    };
    let clock = ManualClock::new(START_MS);
    let book = memory_book(&clock);
    let peer_count = |book: &PeerBook<MemoryBackend>| {
        book.get_storage_stats()
            .expect("get_storage_stats")
            .peer_count
    };
    match book.import_data(&doc, ImportMode::Merge) {
        Ok(report) => {
            assert_eq!(report.imported, doc.peers.len());
            assert_eq!(report.replaced, 0, "nothing to replace in an empty book");
            assert_eq!(peer_count(&book), doc.peers.len() as u64);
            for p in &doc.peers {
                let stored = book
                    .get_peer(p.peer_id.as_str())
                    .expect("get_peer")
                    .expect("an imported peer is stored");
                assert_eq!(&stored, p, "an imported peer reads back changed");
                // Seals were checked at import: they must open now.
                book.open_shared_secret(&stored)
                    .expect("an imported shared secret opens");
                for i in 0..stored.ice_servers.len() {
                    book.open_ice_credential(&stored, i)
                        .expect("an imported ICE credential opens");
                }
            }
            let report = book.verify().expect("verify");
            assert!(report.is_clean(), "import left {report:?}");
            let export = book
                .export_data(ExportOptions::default())
                .expect("export_data");
            assert_eq!(export.peers.len(), doc.peers.len());
        }
        Err(_) => {
            assert_eq!(peer_count(&book), 0, "a failed import changed the book");
            assert!(book
                .query_peers(&PeerQuery::default())
                .expect("query_peers")
                .is_empty());
        }
    }
}
