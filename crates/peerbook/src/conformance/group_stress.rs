//! A randomized stress of the group commit under repeated refusals.
//!
//! Sync writers (stores, updates, removes of their own peers and increments of one
//! shared peer) race readers, a flusher and — over a [`FailingBackend`] — an
//! injector that keeps re-arming a [`FailWhen::BeforeNotApplied`] write failure, so
//! group writes are refused again and again while other writers queue behind them.
//! An engine with a tiny cap (LMDB's `max_map_size`) refuses on its own too.
//!
//! Every writer keeps the model of its own peers: an `Ok` write changes it, a refused
//! one (a backend error that applied nothing) leaves it as it was, any other error
//! fails the run. After every round: the book is not poisoned, every peer is exactly
//! as its writer's model says, the shared peer counts exactly the acknowledged
//! increments (a refused batch that landed, or one built on refused state, shows
//! here), the stats count the model's peers and verify is clean.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use super::failing::{FailOp, FailWhen, FailingBackend};
use super::Rng;
use crate::backend::Backend;
use crate::{Durability, Error, ManualClock, MasterKey, NewPeer, Options, PeerBook};

/// What the writers were acknowledged for: the live peers (id -> display name) and
/// the increments of the shared peer.
#[derive(Debug, Default, Clone)]
pub struct StressModel {
    /// Every peer a writer stored and did not remove since, with its display name.
    pub alive: BTreeMap<String, String>,
    /// Acknowledged increments of [`SHARED`].
    pub increments: u64,
}

/// The peer every writer increments.
pub const SHARED: &str = "shared";

/// How the stress runs.
#[derive(Debug, Clone, Copy)]
pub struct StressPlan {
    /// Rounds; the book is checked after each.
    pub rounds: u32,
    /// Writer threads.
    pub writers: u64,
    /// Operations per writer per round.
    pub ops: u32,
    /// Peers per writer (ids are reused, so stores replace and removes find them).
    pub peers: u64,
    /// Bytes of the random public key of every stored peer (fills a small engine).
    pub key_bytes: usize,
    /// Writers arm a refusal once every this many operations on average (0: never).
    pub arm_every: u64,
    /// The seed of every thread's generator.
    pub seed: u64,
}

/// A peer with a random public key of `key_bytes` bytes, always the same for one
/// id (a store must not change a peer's key).
fn peer(id: &str, name: &str, key_bytes: usize) -> NewPeer {
    let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let key: String = Rng::new(seed)
        .bytes(key_bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    NewPeer {
        peer_id: id.into(),
        display_name: name.into(),
        public_key: key,
        ..NewPeer::default()
    }
}

/// A refusal: a backend error (the store drops the `NotApplied` mark of the
/// engine's own error; the stress checks the book is not poisoned instead).
fn refused(e: &Error) -> bool {
    matches!(e, Error::Backend(_))
}

/// The result of one write: `Some(value)` on `Ok`, `None` when it was refused;
/// panics on any other error (a refusal must never poison or fail otherwise).
fn acked<T>(what: &str, r: crate::Result<T>, refusals: &AtomicU64) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if refused(&e) => {
            refusals.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) => panic!("{what}: a write failed other than refused: {e:?}"),
    }
}

/// A barrier that only its first wait per thread blocks on.
struct Once {
    barrier: Barrier,
    passed: AtomicBool,
}

impl Once {
    fn new(n: usize) -> Self {
        Once {
            barrier: Barrier::new(n),
            passed: AtomicBool::new(false),
        }
    }

    /// Every writer calls this once, the holder at every hold (only its first call
    /// waits: the holder's own store of `passed` comes before its next call).
    fn wait_once(&self) {
        if !self.passed.load(Ordering::Acquire) {
            self.barrier.wait();
            self.passed.store(true, Ordering::Release);
        }
    }
}

/// The options the stress needs: Sync durability, a `failed_attempts` that never
/// blacklists (the writers' increments of [`SHARED`] would), time from `clock`.
pub fn stress_options(clock: &ManualClock) -> Options {
    let mut o = Options::new(MasterKey::from_bytes([9; 32])).with_clock(clock.clone());
    o.durability = Durability::Sync;
    o.failed_attempts = u32::MAX;
    o
}

/// A book over `backend`, opened with `options`, that holds [`SHARED`] alone: where
/// [`stress_refused_groups`] starts, with an empty [`StressModel`].
pub fn open_stress_book<B: Backend>(backend: B, options: Options) -> PeerBook<B> {
    let book = PeerBook::open(backend, options).expect("open the stress book");
    book.store_peer(NewPeer {
        peer_id: SHARED.into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    })
    .expect("store the shared peer");
    book
}

/// Check `book` against `model`; `context` names the moment.
pub fn check_model<B: Backend>(book: &PeerBook<B>, model: &StressModel, context: &str) {
    assert!(
        !book.needs_reopen(),
        "{context}: refusals poisoned the book"
    );
    let shared = book.get_peer(SHARED).unwrap().expect("the shared peer");
    assert_eq!(
        shared.reconnection_attempts as u64, model.increments,
        "{context}: the shared peer does not count the acknowledged increments"
    );
    let stats = book.get_storage_stats().unwrap();
    assert_eq!(
        stats.peer_count as usize,
        model.alive.len() + 1,
        "{context}: peer count"
    );
    for (id, name) in &model.alive {
        let got = book.get_peer(id).unwrap();
        assert_eq!(
            got.map(|r| r.display_name),
            Some(name.clone()),
            "{context}: {id}"
        );
    }
    let report = book.verify().unwrap();
    assert!(report.is_clean(), "{context}: {report:?}");
}

/// What the stress does to the backend under the book.
pub struct StressHooks<'a, B> {
    /// Arm a refusal of the `n`-th write from now (`n` = 0: disarm); writers call it
    /// every [`StressPlan::arm_every`] operations on average.
    pub arm: &'a (dyn Fn(&B, u64) + Sync),
    /// Hold (`true`) or release the backend's writes, so writers queue behind a
    /// held group; a thread toggles it throughout each round and releases at its end.
    pub hold: &'a (dyn Fn(&B, bool) + Sync),
}

/// Hooks for a [`FailingBackend`] (arms [`FailWhen::BeforeNotApplied`] writes,
/// holds nothing).
pub fn failing_hooks<B: Backend>() -> StressHooks<'static, FailingBackend<B>> {
    StressHooks {
        arm: &arm_failing::<B>,
        hold: &|_, _| {},
    }
}

/// Arm the `n`-th write of a [`FailingBackend`] to be refused (0: disarm).
pub fn arm_failing<B: Backend>(backend: &FailingBackend<B>, n: u64) {
    if n == 0 {
        backend.disarm();
    } else {
        backend.fail_nth(FailOp::Write, n, FailWhen::BeforeNotApplied);
    }
}

/// Run `plan` on `book` (Sync durability, a `failed_attempts` that never
/// blacklists), which must already hold [`SHARED`] and exactly the peers of `model`;
/// returns the model of every acknowledged write and how many writes were refused.
pub fn stress_refused_groups<B: Backend>(
    book: &PeerBook<B>,
    mut model: StressModel,
    plan: StressPlan,
    hooks: &StressHooks<'_, B>,
) -> (StressModel, u64) {
    let refusals = AtomicU64::new(0);
    for round in 0..plan.rounds {
        let running = AtomicBool::new(true);
        let shared_model = Mutex::new(std::mem::take(&mut model));
        let increments = AtomicU64::new(0);
        // the writers start once the holder held the writes a first time
        let started = Once::new(plan.writers as usize + 1);
        std::thread::scope(|s| {
            let holder = {
                let (running, started) = (&running, &started);
                s.spawn(move || {
                    let mut rng = Rng::new(plan.seed.rotate_left(17) ^ u64::from(round));
                    while running.load(Ordering::Acquire) {
                        // held up to 0.3 ms (writers queue), then released up to 0.1 ms
                        (hooks.hold)(book.backend(), true);
                        started.wait_once();
                        std::thread::sleep(Duration::from_micros(rng.below(300)));
                        (hooks.hold)(book.backend(), false);
                        std::thread::sleep(Duration::from_micros(rng.below(100)));
                    }
                    (hooks.hold)(book.backend(), false);
                })
            };
            let mut writers = Vec::new();
            for t in 0..plan.writers {
                let (refusals, shared_model, increments, started) =
                    (&refusals, &shared_model, &increments, &started);
                writers.push(s.spawn(move || {
                    let mut rng = Rng::new(plan.seed ^ (u64::from(round) << 32) ^ (t + 1));
                    // this writer's own peers, taken out of the shared model
                    let mut own: BTreeMap<String, String> = {
                        let mut m = shared_model.lock().unwrap();
                        let mine: Vec<String> = m
                            .alive
                            .keys()
                            .filter(|k| k.starts_with(&format!("w{t}-")))
                            .cloned()
                            .collect();
                        mine.into_iter()
                            .map(|k| {
                                let v = m.alive.remove(&k).unwrap();
                                (k, v)
                            })
                            .collect()
                    };
                    started.wait_once();
                    for i in 0..plan.ops {
                        if plan.arm_every > 0 && rng.below(plan.arm_every) == 0 {
                            (hooks.arm)(book.backend(), 1 + rng.below(3));
                        }
                        let id = format!("w{t}-{}", rng.below(plan.peers));
                        match rng.below(4) {
                            0 => {
                                let r = book.increment_reconnection_attempts(SHARED);
                                if let Some(r) = acked("increment", r, refusals) {
                                    increments.fetch_add(1, Ordering::SeqCst);
                                    let seen = book.get_peer(SHARED).unwrap().unwrap();
                                    assert!(
                                        seen.reconnection_attempts >= r.reconnection_attempts,
                                        "an acknowledged increment is not visible"
                                    );
                                }
                            }
                            1 if own.contains_key(&id) => {
                                let r = book.update_last_seen(&id);
                                if let Some(r) = acked("update", r, refusals) {
                                    assert_eq!(&r.display_name, &own[&id], "{id} updated");
                                }
                            }
                            2 => {
                                let r = book.remove_peer(&id);
                                if let Some(was) = acked("remove", r, refusals) {
                                    assert_eq!(was, own.remove(&id).is_some(), "remove {id}");
                                }
                            }
                            _ => {
                                let name = format!("r{round}t{t}i{i}");
                                let r = book.store_peer(peer(&id, &name, plan.key_bytes));
                                if acked("store", r, refusals).is_some() {
                                    own.insert(id.clone(), name);
                                }
                            }
                        }
                        // every acknowledged write is visible; a refused one never
                        let seen = book.get_peer(&id).unwrap().map(|r| r.display_name);
                        assert_eq!(seen.as_ref(), own.get(&id), "{id} after op {i}");
                    }
                    shared_model.lock().unwrap().alive.extend(own);
                }));
            }
            let readers: Vec<_> = (0..2)
                .map(|r| {
                    let running = &running;
                    s.spawn(move || {
                        let mut last = 0;
                        let mut n = 0u64;
                        while running.load(Ordering::Acquire) {
                            let seen = book.get_peer(SHARED).unwrap().expect("shared");
                            assert!(seen.reconnection_attempts >= last, "a value went back");
                            last = seen.reconnection_attempts;
                            n += 1;
                            if r == 0 && n.is_multiple_of(64) {
                                // verify and flush drain the queue beside the writers
                                match book.verify() {
                                    Ok(report) => assert!(report.is_clean(), "{report:?}"),
                                    Err(e) => assert!(refused(&e), "verify: {e:?}"),
                                }
                                if let Err(e) = book.flush() {
                                    assert!(refused(&e), "flush: {e:?}");
                                }
                            }
                            std::thread::yield_now();
                        }
                    })
                })
                .collect();
            for w in writers {
                if let Err(p) = w.join() {
                    running.store(false, Ordering::Release);
                    std::panic::resume_unwind(p);
                }
            }
            running.store(false, Ordering::Release);
            for r in readers {
                r.join().expect("reader");
            }
            holder.join().expect("holder");
            (hooks.arm)(book.backend(), 0);
        });
        model = shared_model.into_inner().unwrap();
        model.increments += increments.load(Ordering::SeqCst);
        check_model(book, &model, &format!("after round {round}"));
    }
    (model, refusals.load(Ordering::Relaxed))
}
