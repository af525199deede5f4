//! `clear_all` leaves no byte of a former record in the store's directory, on every
//! disk engine: after storing peers whose ids, names, public keys and secrets hold
//! high-entropy random markers, `clear_all`, a byte scan of every file under the
//! store's directory finds none of the markers, nor the sealed bytes of any secret:
//! once `clear_all` returns, again after `flush` + close, and after a reopen. (Random
//! hex markers: RocksDB compresses with LZ4, so repetitive text would prove nothing.)
//!
//! Peer ids are looked for in every form a backend writes them: as they are (record
//! keys, `by_quality` quality keys after the score byte), each byte negated
//! (`by_last_seen` keys and `by_quality`'s rank keys, docs/format.md), and both in
//! hex (RocksDB's `LOG` prints keys in hex). Half of the peers are stored before a
//! close and reopen (RocksDB then holds them in SST files, whose smallest and
//! largest keys its `MANIFEST` names), half after.

mod common;

use std::path::Path;

use common::Engine;
use peerbook::conformance::needles::{files_holding, id_forms};
use peerbook::{ManualClock, NewIceServer, NewPeer, PeerBook, Secret};

/// `n` random bytes as lowercase hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).expect("os random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The forms peer `i`'s id can take on disk ([`id_forms`]), labelled with `i`.
fn id_needles(i: usize, id: &str) -> Vec<(String, Vec<u8>)> {
    id_forms(id.as_bytes())
        .into_iter()
        .map(|(form, bytes)| (format!("{form} of peer {i}"), bytes))
        .collect()
}

/// Panics naming the files under `dir` that hold one of `needles`.
fn assert_no_needle(engine: Engine, dir: &Path, needles: &[(String, Vec<u8>)], when: &str) {
    let found = files_holding(dir, needles);
    assert!(
        found.is_empty(),
        "{}: still in the files {when} (file, what): {found:?}",
        engine.name()
    );
}

/// Store 20 marked peers (10 of them before a close and reopen), clear, check the
/// files once `clear_all` returned, close; return the markers and sealed bytes to
/// look for.
fn fill_and_clear(engine: Engine, dir: &Path) -> Vec<(String, Vec<u8>)> {
    let clock = ManualClock::new(1_764_000_000_000);
    let mut book = PeerBook::open(engine.open(dir), common::options(&clock)).unwrap();
    let mut needles = Vec::new();
    let mut ids = Vec::new();
    for i in 0..20 {
        if i == 10 {
            drop(book.close().unwrap());
            book = PeerBook::open(engine.open(dir), common::options(&clock)).unwrap();
        }
        let id = format!("peer-{}", random_hex(20));
        let name = random_hex(24);
        let key = random_hex(32);
        let secret = random_hex(24);
        let turn = random_hex(24);
        let stored = book
            .store_peer(NewPeer {
                peer_id: id.clone(),
                display_name: name.clone(),
                public_key: format!("{{\"kty\":\"EC\",\"x\":\"{key}\"}}"),
                shared_secret: Some(Secret::from(secret.clone())),
                ice_servers: vec![NewIceServer {
                    urls: vec!["turn:turn.example.org:3478".into()],
                    username: Some("user".into()),
                    credential: Some(Secret::from(turn.clone())),
                }],
                ..NewPeer::default()
            })
            .unwrap();
        needles.extend(id_needles(i, &id));
        ids.push(id);
        for m in [name, key, secret, turn] {
            needles.push((format!("marker of peer {i}"), m.into_bytes()));
        }
        let sealed = stored.shared_secret.as_ref().expect("sealed secret");
        needles.push((
            format!("sealed secret of peer {i}"),
            sealed.as_bytes().to_vec(),
        ));
        let cred = stored.ice_servers[0].credential.as_ref().expect("sealed");
        needles.push((
            format!("sealed credential of peer {i}"),
            cred.as_bytes().to_vec(),
        ));
    }
    book.flush().unwrap();
    // the markers and the ids are on disk before the clear, or the scan below
    // proves nothing
    let before = files_holding(dir, &needles);
    for kind in ["marker of peer", "id of peer"] {
        assert!(
            before.iter().any(|(_, what)| what.starts_with(kind)),
            "{}: no {kind} reached the disk before the clear",
            engine.name()
        );
    }
    // readers on other threads keep reading through the clear (LMDB swaps its
    // environment under them): every read succeeds, none crashes
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|t| {
                let (book, stop, ids) = (&book, &stop, &ids);
                scope.spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                        book.get_peer(&ids[(reads as usize + t) % ids.len()])
                            .unwrap();
                        book.get_storage_stats().unwrap();
                        reads += 1;
                    }
                })
            })
            .collect();
        book.clear_all().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.join().expect("a reader failed during clear_all");
        }
    });
    assert_no_needle(engine, dir, &needles, "once clear_all returned");
    book.flush().unwrap();
    drop(book.close().unwrap());
    needles
}

fn assert_wiped(engine: Engine) {
    let tmp = tempfile::tempdir().unwrap();
    let needles = fill_and_clear(engine, tmp.path());
    assert_no_needle(engine, tmp.path(), &needles, "after clear_all and close");
    // the cleared book still opens, empty, with the same key, and reopening
    // brings nothing back
    let clock = ManualClock::new(1_764_000_000_000);
    let book = PeerBook::open(engine.open(tmp.path()), common::options(&clock)).unwrap();
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
    assert_no_needle(engine, tmp.path(), &needles, "after clear_all and reopen");
}
#[test]
fn clear_all_wipes_every_byte_lmdb() {
    assert_wiped(Engine::Lmdb);
}

#[test]
fn clear_all_wipes_every_byte_rocksdb() {
    assert_wiped(Engine::Rocks);
}

#[test]
fn clear_all_wipes_every_byte_file() {
    assert_wiped(Engine::File);
}
