//! The group commit's refusal path on LMDB under a randomized concurrent stress
//! (see `peerbook::conformance::group_stress`): a map capped so small that group
//! writes are refused as `Full` on their own, plus injected `BeforeNotApplied`
//! refusals. Every acknowledged write is in the book, no refused one is, the
//! counters match and nothing is poisoned, before and after a reopen.

use peerbook::conformance::failing::FailingBackend;
use peerbook::conformance::group_stress::{
    check_model, failing_hooks, open_stress_book, stress_options, stress_refused_groups,
    StressModel, StressPlan,
};
use peerbook::{ManualClock, Options, PeerBook};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

fn options(clock: &ManualClock) -> Options {
    let mut o = stress_options(clock);
    o.max_peers = 1_000_000;
    o
}

fn lmdb_options() -> LmdbOptions {
    LmdbOptions::default()
        .with_initial_map_size(64 << 10)
        .with_max_map_size(192 << 10)
}

fn stress(arm_every: u64, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let clock = ManualClock::new(1_700_000_000_000);
    let backend = FailingBackend::new(LmdbBackend::open(&dir, lmdb_options()).unwrap());
    let book = open_stress_book(backend, options(&clock));
    let plan = StressPlan {
        rounds: 6,
        writers: 6,
        ops: 40,
        peers: 12,
        key_bytes: 1200,
        arm_every,
        seed,
    };
    let (model, refusals) =
        stress_refused_groups(&book, StressModel::default(), plan, &failing_hooks());
    let injected = book.backend().injected();
    eprintln!(
        "LMDB stress: {refusals} refused writes ({injected} injected), {} peers live",
        model.alive.len()
    );
    assert!(
        refusals > injected,
        "the capped map refused writes on its own ({refusals} refused, {injected} injected)"
    );
    if arm_every > 0 {
        assert!(injected > 5, "refusals were injected: {injected}");
    }
    drop(book.close().expect("close"));
    let book = PeerBook::open(
        LmdbBackend::open(&dir, lmdb_options()).unwrap(),
        options(&clock),
    )
    .expect("reopen");
    check_model(&book, &model, "after reopen");
}

/// Only the engine refuses: the capped map is full again and again.
#[test]
fn lmdb_group_commit_survives_a_full_map() {
    stress(0, 0xf011);
}

/// The full map and injected refusals together.
#[test]
fn lmdb_group_commit_survives_injected_and_full_refusals() {
    stress(10, 0x1a7e);
}
