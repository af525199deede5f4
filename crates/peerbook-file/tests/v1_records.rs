//! The records the first version of peerbook wrote (the workspace's
//! `tests/fixtures/v1/file` book, never regenerated) encode again to the bytes it
//! stored: the record encoder, written by hand since, is the postcard encoding of
//! then. The file engine needs no key to read them back raw.

use peerbook::backend::{Backend, Direction, KeyRange, Space};
use peerbook::conformance::fixtures::{copy_dir, fixtures_dir};
use peerbook::schema::{RECORD_FORMAT_V1, RECORD_FORMAT_V2};
use peerbook::PeerRecord;
use peerbook_file::{FileBackend, FileOptions};
use std::ops::ControlFlow;

/// Format-1 records have no addresses and no metadata: their body is the format-2
/// body without its two trailing empty collections (a zero length byte each).
#[test]
fn v1_records_encode_to_the_bytes_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    // a copy: opening may repair or compact, never in place
    copy_dir(&fixtures_dir().join("v1/file"), dir.path());
    let backend = FileBackend::open(dir.path(), FileOptions::default()).expect("open the v1 book");
    let mut stored = Vec::new();
    backend
        .scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |_, v| {
                stored.push(v.to_vec());
                ControlFlow::Continue(())
            },
        )
        .expect("scan the v1 records");
    assert_eq!(stored.len(), 6, "the six fixture peers");
    for bytes in stored {
        assert_eq!(bytes[0], RECORD_FORMAT_V1);
        let record = PeerRecord::decode(&bytes).expect("decode a v1 record");
        let mut expected = vec![RECORD_FORMAT_V2];
        expected.extend_from_slice(&bytes[1..]);
        expected.extend_from_slice(&[0, 0]);
        assert_eq!(record.encode(), expected, "{}", record.peer_id);
    }
}
