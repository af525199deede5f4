//! Portability: export from each backend and import into each other (4 x 4), with
//! secrets still opening under the same key; an import that fails half-way (a bad
//! record in the middle) leaves the target unchanged.

mod common;

use common::ENGINES;
use peerbook::conformance::store::{sample_peer, snapshot};
use peerbook::{ExportDocument, ExportOptions, ImportMode, ManualClock, PeerBook, PeerQuery};

#[test]
fn every_backend_imports_every_backends_export() {
    let clock = ManualClock::new(1_700_000_000_000);
    for source_engine in ENGINES {
        let source_dir = tempfile::tempdir().expect("temp dir");
        let source = PeerBook::open(
            source_engine.open(source_dir.path()),
            common::options(&clock),
        )
        .expect("open");
        for i in 0..12 {
            clock.advance(std::time::Duration::from_secs(60));
            source
                .store_peer(sample_peer(&format!("peer-{i:02}")))
                .expect("store");
        }
        source
            .increment_reconnection_attempts("peer-03")
            .expect("update");
        let json = source
            .export_data(ExportOptions::default())
            .expect("export")
            .to_json();
        let expected = source.query_peers(&PeerQuery::default()).expect("query");

        for target_engine in ENGINES {
            let context = format!("{} -> {}", source_engine.name(), target_engine.name());
            let target_dir = tempfile::tempdir().expect("temp dir");
            let target = PeerBook::open(
                target_engine.open(target_dir.path()),
                common::options(&clock),
            )
            .expect("open");
            target
                .store_peer(sample_peer("already-here"))
                .expect("store");
            let doc = ExportDocument::from_json(&json).expect("parse export");

            let mut broken = doc.clone();
            broken.peers[6].ice_servers[0].urls = vec!["http://not-ice".into()];
            let before = snapshot(target.backend());
            assert!(
                target.import_data(&broken, ImportMode::Merge).is_err(),
                "{context}: bad record refused"
            );
            assert_eq!(
                snapshot(target.backend()),
                before,
                "{context}: a failed import changes nothing"
            );

            target
                .import_data(&doc, ImportMode::Replace)
                .expect("import");
            let got = target.query_peers(&PeerQuery::default()).expect("query");
            assert_eq!(got, expected, "{context}: identical records");
            for record in &got {
                let secret = target
                    .open_shared_secret(record)
                    .expect("opens")
                    .expect("present");
                assert_eq!(
                    secret.expose(),
                    format!("shared-secret-of-{}", record.peer_id).as_bytes(),
                    "{context}"
                );
                let credential = target
                    .open_ice_credential(record, 1)
                    .expect("opens")
                    .expect("present");
                assert_eq!(
                    credential.expose(),
                    format!("turn-credential-of-{}", record.peer_id).as_bytes()
                );
            }
            assert!(
                target.verify().expect("verify").is_clean(),
                "{context}: verify clean"
            );
        }
    }
}
