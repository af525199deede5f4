//! A whole `PeerBook` over `LmdbBackend`: the stored value layout (old books keep
//! theirs, new and cleared books compress), and a book whose map is full at its cap
//! (refused writes that applied nothing leave it usable).

use std::path::Path;

use peerbook::backend::BackendError;
use peerbook::conformance::fixtures::{copy_dir, fixtures_dir};
use peerbook::{Error, ManualClock, MasterKey, NewPeer, Options, PeerBook, PeerQuery, Secret};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

/// When the v1 fixtures were written (see the workspace's `tests/fixtures.rs`).
const WRITTEN_AT: u64 = 1_764_000_000_000;
/// The peers of the v1 LMDB fixture.
const FIXTURE_PEERS: usize = 6;

fn fixture_options(clock: &ManualClock) -> Options {
    Options::new(MasterKey::from_bytes([7; 32])).with_clock(clock.clone())
}

/// A peer whose public key is a long run of one letter: stored verbatim, the run is
/// in `data.mdb`; compressed, it is not.
fn peer_with_run(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        display_name: "Run".into(),
        public_key: "k".repeat(2000),
        shared_secret: Some(Secret::from("s")),
        ..NewPeer::default()
    }
}

fn data_file_holds_run(dir: &Path) -> bool {
    let data = std::fs::read(dir.join("data.mdb")).unwrap();
    let run = [b'k'; 1000];
    data.windows(run.len()).any(|w| w == run)
}

fn check_v1_peers(book: &PeerBook<LmdbBackend>, context: &str) {
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{context}: {report:?}");
    let all = book.query_peers(&PeerQuery::default()).unwrap();
    assert_eq!(all.len(), FIXTURE_PEERS, "{context}");
    let alice = book.get_peer("QmAlice").unwrap().expect("QmAlice");
    assert_eq!(alice.display_name, "Alice", "{context}");
    let secret = book.open_shared_secret(&alice).unwrap().expect("a secret");
    assert_eq!(secret.expose(), b"alice-shared-secret", "{context}");
}

/// A v1 book (values stored verbatim, no layout marker) opens, reads, takes writes
/// in its own layout across reopens; once cleared, it takes the compressed layout.
#[test]
fn v1_book_keeps_its_layout_until_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("lmdb");
    copy_dir(&fixtures_dir().join("v1/lmdb"), &dir);
    let clock = ManualClock::new(WRITTEN_AT + 3_600_000);
    {
        let book = PeerBook::open(
            LmdbBackend::open(&dir, LmdbOptions::default()).unwrap(),
            fixture_options(&clock),
        )
        .unwrap();
        check_v1_peers(&book, "v1 opened");
        book.store_peer(peer_with_run("QmRun")).unwrap();
        book.update_last_seen("QmCarol").unwrap();
        book.close().unwrap();
    }
    assert!(
        data_file_holds_run(&dir),
        "an old book keeps storing values verbatim"
    );
    {
        let book = PeerBook::open(
            LmdbBackend::open(&dir, LmdbOptions::default()).unwrap(),
            fixture_options(&clock),
        )
        .unwrap();
        assert!(book.verify().unwrap().is_clean());
        assert_eq!(
            book.get_peer("QmRun").unwrap().unwrap().public_key.len(),
            2000
        );
        assert_eq!(
            book.query_peers(&PeerQuery::default()).unwrap().len(),
            FIXTURE_PEERS + 1
        );
        book.clear_all().unwrap();
        book.store_peer(peer_with_run("QmRun")).unwrap();
        book.close().unwrap();
    }
    assert!(
        !data_file_holds_run(&dir),
        "a cleared book compresses its values"
    );
    let book = PeerBook::open(
        LmdbBackend::open(&dir, LmdbOptions::default()).unwrap(),
        fixture_options(&clock),
    )
    .unwrap();
    assert!(book.verify().unwrap().is_clean());
    let run = book.get_peer("QmRun").unwrap().unwrap();
    assert_eq!(run.public_key, "k".repeat(2000));
}

/// A new book compresses its records, and reads them back whole.
#[test]
fn new_book_compresses_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let clock = ManualClock::new(WRITTEN_AT);
    let book = PeerBook::open(
        LmdbBackend::open(&dir, LmdbOptions::default()).unwrap(),
        fixture_options(&clock),
    )
    .unwrap();
    for i in 0..20 {
        book.store_peer(peer_with_run(&format!("QmRun{i}")))
            .unwrap();
    }
    let backend = book.close().unwrap();
    drop(backend);
    assert!(!data_file_holds_run(&dir));
    let book = PeerBook::open(
        LmdbBackend::open(&dir, LmdbOptions::default()).unwrap(),
        fixture_options(&clock),
    )
    .unwrap();
    assert!(book.verify().unwrap().is_clean());
    for i in 0..20 {
        let peer = book.get_peer(&format!("QmRun{i}")).unwrap().unwrap();
        assert_eq!(peer.public_key, "k".repeat(2000));
    }
}

/// A peer that does not compress well (a random-looking public key).
fn bulky_peer(i: usize) -> NewPeer {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ i as u64;
    let key: String = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    NewPeer {
        peer_id: format!("QmBulky{i:05}"),
        display_name: format!("Bulky {i}"),
        public_key: key,
        shared_secret: Some(Secret::from("s")),
        ..NewPeer::default()
    }
}

/// A book at its map cap: the write that does not fit is refused with `Full`,
/// applies nothing and does not poison the book: reads, deletes, `clear_all` and,
/// after them, new writes all work without a reopen.
#[test]
fn full_book_refuses_the_write_and_stays_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(WRITTEN_AT);
    let options = LmdbOptions::default()
        .with_initial_map_size(256 << 10)
        .with_max_map_size(1 << 20);
    let mut book_options = fixture_options(&clock);
    book_options.max_peers = 1_000_000;
    let book = PeerBook::open(
        LmdbBackend::open(tmp.path().join("book"), options).unwrap(),
        book_options,
    )
    .unwrap();
    let mut stored = 0;
    let refused = loop {
        assert!(stored < 10_000, "a 1 MiB map never filled up");
        match book.store_peer(bulky_peer(stored)) {
            Ok(_) => stored += 1,
            Err(e) => break (stored, e),
        }
    };
    let (count, error) = refused;
    assert!(count > 10, "some peers fit before the cap ({count})");
    assert!(
        matches!(error, Error::Backend(BackendError::Full { .. })),
        "a typed Full error: {error:?}"
    );
    assert!(
        !book.needs_reopen(),
        "a refusal that applied nothing poisons nothing"
    );
    // Nothing of the refused write is visible, everything before it is.
    assert_eq!(book.get_peer(&format!("QmBulky{count:05}")).unwrap(), None);
    assert_eq!(
        book.query_peers(&PeerQuery::default()).unwrap().len(),
        count
    );
    assert!(book.verify().unwrap().is_clean(), "counters match the data");
    // Deletes work on the full book, then writes fit again.
    assert!(book.remove_peer("QmBulky00000").unwrap());
    book.clear_all().unwrap();
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
    book.store_peer(bulky_peer(0)).unwrap();
    assert!(book.verify().unwrap().is_clean());
    assert!(!book.needs_reopen());
}
