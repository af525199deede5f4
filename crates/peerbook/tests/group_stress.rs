//! The group commit's refusal path under a randomized concurrent stress, over the
//! memory backend with `BeforeNotApplied` write failures injected again and again
//! behind a gate that holds group writes so writers queue (see
//! `peerbook::conformance::group_stress`).

use peerbook::conformance::failing::FailingBackend;
use peerbook::conformance::group::GatedBackend;
use peerbook::conformance::group_stress::{
    arm_failing, check_model, stress_refused_groups, StressHooks, StressModel, StressPlan, SHARED,
};
use peerbook::{Durability, ManualClock, MasterKey, MemoryBackend, NewPeer, Options, PeerBook};

type Stressed = GatedBackend<FailingBackend<MemoryBackend>>;

fn options(clock: &ManualClock) -> Options {
    let mut o = Options::new(MasterKey::from_bytes([9; 32])).with_clock(clock.clone());
    o.durability = Durability::Sync;
    o.failed_attempts = u32::MAX;
    o
}

#[test]
fn memory_group_commit_survives_repeated_refusals() {
    let clock = ManualClock::new(1_700_000_000_000);
    let backend = GatedBackend::new(FailingBackend::new(MemoryBackend::new()));
    let book = PeerBook::open(backend, options(&clock)).unwrap();
    book.store_peer(NewPeer {
        peer_id: SHARED.into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    })
    .unwrap();
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
        hold: &|b: &Stressed, closed| b.set_closed(closed),
    };
    let (model, refusals) = stress_refused_groups(&book, StressModel::default(), plan, &hooks);
    let injected = book.backend().inner().injected();
    assert!(injected > 50, "too few refusals injected: {injected}");
    assert!(
        refusals > injected,
        "refused groups held queued batches ({refusals} refused, {injected} injected)"
    );
    let backend = book.close().expect("close").into_inner().into_inner();
    let book = PeerBook::open(backend, options(&clock)).expect("reopen");
    check_model(&book, &model, "after reopen");
}
