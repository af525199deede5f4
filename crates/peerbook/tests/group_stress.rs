//! The group commit's refusal path under a randomized concurrent stress, over the
//! memory backend with `BeforeNotApplied` write failures injected again and again
//! behind a gate that holds group writes so writers queue (see
//! `peerbook::conformance::group_stress`).

use peerbook::conformance::failing::{FailOp, FailWhen, FailingBackend};
use peerbook::conformance::group::GatedBackend;
use peerbook::conformance::group_stress::{
    arm_failing, check_model, open_stress_book, stress_options, stress_refused_groups, StressHooks,
    StressModel, StressPlan,
};
use peerbook::{Error, ManualClock, MemoryBackend, NewPeer, PeerBook};

type Stressed = GatedBackend<FailingBackend<MemoryBackend>>;

#[test]
fn memory_group_commit_survives_repeated_refusals() {
    let clock = ManualClock::new(1_700_000_000_000);
    let backend = GatedBackend::gated(FailingBackend::new(MemoryBackend::new()));
    let book = open_stress_book(backend, stress_options(&clock));
    let plan = StressPlan {
        rounds: 20,
        writers: 6,
        ops: 100,
        peers: 6,
        key_bytes: 16,
        arm_every: 6,
        seed: 0x5eed,
    };
    let hooks = StressHooks {
        arm: &|b: &Stressed, n| arm_failing(b.inner(), n),
        hold: &|b: &Stressed, closed| b.hook().set_closed(closed),
    };
    let (model, refusals) = stress_refused_groups(&book, StressModel::default(), plan, &hooks);
    let injected = book.backend().inner().injected();
    assert!(injected > 50, "too few refusals injected: {injected}");
    assert!(
        refusals > injected,
        "refused groups held queued batches ({refusals} refused, {injected} injected)"
    );
    let backend = book.close().expect("close").into_inner().into_inner();
    let book = PeerBook::open(backend, stress_options(&clock)).expect("reopen");
    check_model(&book, &model, "after reopen");
}

/// A writer that decides from a pending batch without writing one of its own (a
/// remove of a peer whose removal is queued, an update of it) must not answer
/// before that batch is durable: when the queued group is then refused, the peer
/// is still there, so "it was not there" (`Ok(false)`, `NotFound`) would be an
/// acknowledged outcome that is not the book's. It gets the refusal instead.
#[test]
fn a_writer_never_answers_from_a_refused_pending_batch() {
    use std::time::Duration;
    let clock = ManualClock::new(1_700_000_000_000);
    let backend = GatedBackend::gated(FailingBackend::new(MemoryBackend::new()));
    let book = PeerBook::open(backend, stress_options(&clock)).unwrap();
    book.store_peer(NewPeer {
        peer_id: "p".into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    })
    .unwrap();
    book.backend().hook().set_closed(true);
    std::thread::scope(|s| {
        let first = s.spawn(|| book.remove_peer("p"));
        assert!(
            book.backend().hook().wait_blocked(1),
            "the first remove is held"
        );
        book.backend()
            .inner()
            .fail_nth(FailOp::Write, 1, FailWhen::BeforeNotApplied);
        let again = s.spawn(|| book.remove_peer("p"));
        let update = s.spawn(|| book.update_last_seen("p"));
        // let both reach their answer (or their wait) before the refusal
        std::thread::sleep(Duration::from_millis(300));
        book.backend().hook().set_closed(false);
        let first = first.join().unwrap();
        assert!(
            matches!(first, Err(Error::Backend(_))),
            "refused: {first:?}"
        );
        let there = book.get_peer("p").unwrap().is_some();
        assert!(there, "the refused remove left the peer");
        match again.join().unwrap() {
            Ok(false) => panic!("told the peer was not there, yet it is"),
            Ok(true) | Err(Error::Backend(_)) => {}
            Err(e) => panic!("remove: {e:?}"),
        }
        match update.join().unwrap() {
            Err(Error::NotFound { .. }) => panic!("told the peer was not found, yet it is"),
            Ok(_) | Err(Error::Backend(_)) => {}
            Err(e) => panic!("update: {e:?}"),
        }
    });
    assert!(!book.needs_reopen());
    assert!(book.verify().unwrap().is_clean());
    assert!(book.remove_peer("p").unwrap(), "the peer is still there");
}

/// `clear_all` whose clear went through but whose write of the fresh meta was
/// refused (applied nothing) leaves the engine empty without meta or counters: the
/// counters in memory (the old peers) no longer describe it, and a later refused
/// Sync write could not roll back to stored counters. The book asks for a reopen
/// (it claims nothing wrong meanwhile), and the reopen starts an empty, clean book.
#[test]
fn clear_all_with_a_refused_meta_write_asks_for_a_reopen() {
    let peer = |id: &str| NewPeer {
        peer_id: id.into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    };
    let clock = ManualClock::new(1_700_000_000_000);
    let book = PeerBook::open(
        FailingBackend::new(MemoryBackend::new()),
        stress_options(&clock),
    )
    .unwrap();
    for id in ["a", "b", "c"] {
        book.store_peer(peer(id)).unwrap();
    }
    book.backend()
        .fail_nth(FailOp::Write, 1, FailWhen::BeforeNotApplied);
    assert!(book.clear_all().is_err(), "the meta write was refused");
    assert!(
        book.needs_reopen(),
        "counters in memory no longer describe the emptied engine"
    );
    assert!(matches!(
        book.store_peer(peer("d")),
        Err(Error::NeedsReopen)
    ));
    let backend = book.close().expect("close").into_inner();
    let book = PeerBook::open(backend, stress_options(&clock)).expect("reopen");
    assert_eq!(book.get_storage_stats().unwrap().peer_count, 0);
    book.store_peer(peer("e")).unwrap();
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{report:?}");
}

/// A group write that panics in the engine has an unknown outcome: the panic
/// reaches its writer, and the book says so (`needs_reopen`) exactly as it refuses
/// writes with `NeedsReopen` afterwards; before, every later Sync write failed with
/// `NeedsReopen` while `needs_reopen()` said `false`.
#[test]
fn a_panicking_group_write_poisons_the_book() {
    use peerbook::conformance::hooked::HookedBackend;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let peer = |id: &str| NewPeer {
        peer_id: id.into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    };
    let armed = Arc::new(AtomicBool::new(false));
    let trip = Arc::clone(&armed);
    let backend = HookedBackend::new(MemoryBackend::new(), move |op| {
        if op == FailOp::Write && trip.swap(false, Ordering::SeqCst) {
            panic!("the engine panicked");
        }
    });
    let clock = ManualClock::new(1_700_000_000_000);
    let book = PeerBook::open(backend, stress_options(&clock)).unwrap();
    book.store_peer(peer("a")).unwrap();
    armed.store(true, Ordering::SeqCst);
    let panicked = std::thread::scope(|s| s.spawn(|| book.store_peer(peer("b"))).join());
    assert!(panicked.is_err(), "the engine's panic reaches its writer");
    let next = book.store_peer(peer("c"));
    assert!(matches!(next, Err(Error::NeedsReopen)), "{next:?}");
    assert!(book.needs_reopen(), "the book says what its writes say");
}
