//! Power-loss simulation: random batches, flushes, clears and compactions over
//! `SimFs`, the power cut at random points (inside writes, syncs, compactions and
//! opens, or while idle), then a reopen on what survived, checked against a model.
//!
//! After every crash the reopened store must equal the model after some prefix of
//! the committed batches (no batch half-applied, nothing invented) that includes
//! every batch known durable (written with `Sync`, or followed by a successful
//! `flush` or `compact`). The batch in flight when the power failed may or may not
//! be there.
//!
//! `PEERBOOK_CRASH_POINTS=N` sets the number of crash points (default 400);
//! `PEERBOOK_CRASH_SEED=S` the seed (default fixed; random when only the number of
//! points is given). A failure prints the seed that reproduces it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use peerbook::backend::{Backend, BackendExt, Durability, Space, WriteBatch};
use peerbook::conformance::Rng;
use peerbook_file::testing::SimFs;
use peerbook_file::{FileBackend, FileOptions, Vfs};

const DIR: &str = "/sim/book";
const POINTS_PER_SCENARIO: usize = 50;
const DEFAULT_POINTS: usize = 2000;
const DEFAULT_SEED: u64 = 0x00c0_ffee_d15c_0001;

type State = peerbook::backend::Dump;

#[derive(Clone, Debug, PartialEq)]
enum MOp {
    Put(Space, Vec<u8>, Vec<u8>),
    Delete(Space, Vec<u8>),
    Clear,
}

fn apply(state: &mut State, batch: &[MOp]) {
    for op in batch {
        match op {
            MOp::Put(s, k, v) => {
                state[s.index()].insert(k.clone(), v.clone());
            }
            MOp::Delete(s, k) => {
                state[s.index()].remove(k);
            }
            MOp::Clear => state.iter_mut().for_each(BTreeMap::clear),
        }
    }
}

fn dump(b: &FileBackend) -> State {
    b.dump().expect("dump")
}

fn describe(state: &State) -> String {
    let sizes: Vec<usize> = state.iter().map(BTreeMap::len).collect();
    format!("entries per space {sizes:?}")
}

#[derive(Default, Debug)]
struct Totals {
    points: usize,
    in_open: usize,
    in_write: usize,
    in_flush: usize,
    in_compact: usize,
    /// Crashes inside a clear (a new empty generation: old book or empty book).
    in_clear: usize,
    idle: usize,
    torn_tails: usize,
    torn_with_valid_frames_after: usize,
    committed: usize,
    compactions: u64,
    lost_unsynced: usize,
}

struct Scenario {
    seed: u64,
    rng: Rng,
    fs: SimFs,
    options: FileOptions,
    /// State after the last verified reopen (durable).
    base: State,
    /// Batches committed since `base`, in order.
    since: Vec<Vec<MOp>>,
    /// `since[..durable]` are known durable.
    durable: usize,
    /// The batch whose write failed when the power went out.
    in_doubt: Option<Vec<MOp>>,
    /// Percent of writes made with `Durability::Sync`.
    sync_percent: u64,
    /// Percent of would-be flushes and compactions that happen (the rest write):
    /// low values leave long runs of unsynced frames for the power loss to tear.
    sync_op_percent: u64,
}

impl Scenario {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let buffered_heavy = rng.below(3) == 0;
        let (sync_percent, sync_op_percent, min_log) = if buffered_heavy {
            (5, 15, 2048 + rng.below(8192))
        } else {
            (50, 100, 64 + rng.below(2048))
        };
        let options = FileOptions::default()
            .with_compact_min_log_bytes(min_log)
            .with_compact_ratio([0.5, 1.0, 2.0, 3.0][rng.below(4) as usize])
            .with_snapshot_chunk_bytes(16 + rng.below(512) as usize);
        Scenario {
            seed,
            fs: SimFs::new(rng.next_u64()),
            rng,
            options,
            base: Default::default(),
            since: Vec::new(),
            durable: 0,
            in_doubt: None,
            sync_percent,
            sync_op_percent,
        }
    }

    fn open(&self) -> Result<FileBackend, peerbook::backend::BackendError> {
        FileBackend::open_with_vfs(Arc::new(self.fs.clone()), DIR, self.options.clone())
    }

    fn fail(&self, point: usize, what: String) -> ! {
        panic!(
            "crash simulation failed at crash point {point} of scenario seed {seed:#x}: {what}\n\
             reproduce: PEERBOOK_CRASH_SEED={seed} PEERBOOK_CRASH_POINTS={POINTS_PER_SCENARIO} \
             cargo test -p peerbook-file --test crash",
            seed = self.seed
        )
    }

    fn random_batch(&mut self) -> Vec<MOp> {
        let rng = &mut self.rng;
        let n = 1 + rng.below(6);
        (0..n)
            .map(|_| {
                let space = Space::ALL[rng.below(4) as usize];
                let key = rng.key(3);
                if rng.below(4) == 0 {
                    MOp::Delete(space, key)
                } else {
                    let len = if rng.below(10) == 0 {
                        100 + rng.below(400)
                    } else {
                        rng.below(24)
                    };
                    MOp::Put(space, key, rng.bytes(len as usize))
                }
            })
            .collect()
    }

    fn durability(&mut self) -> Durability {
        if self.rng.below(100) < self.sync_percent {
            Durability::Sync
        } else {
            Durability::Buffered
        }
    }

    fn current(&self) -> State {
        let mut s = self.base.clone();
        for b in &self.since {
            apply(&mut s, b);
        }
        s
    }

    /// One session: open (maybe with the power failing during open), run random
    /// operations until the power fails or the session ends, cut the power.
    fn session(&mut self, point: usize, totals: &mut Totals) {
        let budget = match self.rng.below(10) {
            0 => Some(self.rng.below(12)),
            1..=7 => Some(self.rng.below(70)),
            _ => None,
        };
        self.fs.set_budget(budget);
        let backend = match self.open() {
            Ok(b) => b,
            Err(e) => {
                if !self.fs.is_dead() {
                    self.fail(point, format!("open failed with the power on: {e}"));
                }
                totals.in_open += 1;
                return;
            }
        };
        if !self.fs.is_dead() && dump(&backend) != self.base {
            self.fail(point, "a reopen changed the store".into());
        }
        let steps = 1 + self.rng.below(40);
        let mut crashed_in = None;
        for _ in 0..steps {
            if self.fs.is_dead() {
                break;
            }
            let mut roll = self.rng.below(100);
            if (72..=91).contains(&roll) && self.rng.below(100) >= self.sync_op_percent {
                roll = 0;
            }
            let result = match roll {
                0..=71 => {
                    let (batch, result) = if roll <= 64 {
                        let batch = self.random_batch();
                        let mut wb = WriteBatch::new();
                        for op in &batch {
                            match op {
                                MOp::Put(s, k, v) => wb.put(*s, k.clone(), v.clone()),
                                MOp::Delete(s, k) => wb.delete(*s, k.clone()),
                                MOp::Clear => unreachable!(),
                            }
                        }
                        let d = self.durability();
                        let r = backend.write(wb, d);
                        (batch, r.map(|()| d))
                    } else {
                        let d = self.durability();
                        (vec![MOp::Clear], backend.clear(d).map(|()| d))
                    };
                    let is_clear = batch == [MOp::Clear];
                    match result {
                        Ok(d) => {
                            self.since.push(batch);
                            totals.committed += 1;
                            // a clear commits a new generation: durable whatever `d` says
                            if d == Durability::Sync || is_clear {
                                self.durable = self.since.len();
                            }
                            Ok(())
                        }
                        Err(e) => {
                            self.in_doubt = Some(batch);
                            crashed_in = Some(if is_clear { "clear" } else { "write" });
                            Err(e)
                        }
                    }
                }
                72..=84 => match backend.flush() {
                    Ok(()) => {
                        self.durable = self.since.len();
                        Ok(())
                    }
                    Err(e) => {
                        crashed_in = Some("flush");
                        Err(e)
                    }
                },
                85..=91 => match backend.compact() {
                    Ok(()) => {
                        self.durable = self.since.len();
                        Ok(())
                    }
                    Err(e) => {
                        crashed_in = Some("compact");
                        Err(e)
                    }
                },
                _ => {
                    if dump(&backend) != self.current() {
                        self.fail(point, "the live store differs from the model".into());
                    }
                    Ok(())
                }
            };
            if let Err(e) = result {
                if !self.fs.is_dead() {
                    self.fail(point, format!("an operation failed with the power on: {e}"));
                }
                break;
            }
        }
        match crashed_in {
            Some("write") => totals.in_write += 1,
            Some("flush") => totals.in_flush += 1,
            Some("compact") => totals.in_compact += 1,
            Some("clear") => totals.in_clear += 1,
            // the power may also have failed inside an automatic compaction, whose
            // error the committed write does not report
            _ if self.fs.is_dead() => totals.in_compact += 1,
            _ => totals.idle += 1,
        }
        totals.compactions += backend.stats().compactions;
        self.fs.kill();
        drop(backend);
    }

    /// After the power came back: reopen and check against the model.
    fn verify(&mut self, point: usize, report: &str, totals: &mut Totals) {
        let backend = match self.open() {
            Ok(b) => b,
            Err(e) => self.fail(
                point,
                format!("reopen after power loss failed: {e}\n{report}"),
            ),
        };
        if let Some(torn) = &backend.recovery().torn_tail {
            totals.torn_tails += 1;
            if torn.valid_frames_after > 0 {
                totals.torn_with_valid_frames_after += 1;
            }
        }
        let actual = dump(&backend);
        let mut candidates: Vec<&Vec<MOp>> = self.since.iter().collect();
        if let Some(b) = &self.in_doubt {
            candidates.push(b);
        }
        let mut state = self.base.clone();
        for b in &candidates[..self.durable] {
            apply(&mut state, b);
        }
        let mut found = None;
        for p in self.durable..=candidates.len() {
            if state == actual {
                found = Some(p);
                break;
            }
            if p < candidates.len() {
                apply(&mut state, candidates[p]);
            }
        }
        let Some(p) = found else {
            self.fail(
                point,
                format!(
                    "the reopened store ({}) matches no prefix of the committed batches \
                     between {} (durable) and {} ({} committed{}); recovery {:?}\n{report}",
                    describe(&actual),
                    self.durable,
                    candidates.len(),
                    self.since.len(),
                    if self.in_doubt.is_some() {
                        " + 1 in flight"
                    } else {
                        ""
                    },
                    backend.recovery()
                ),
            )
        };
        totals.lost_unsynced += self.since.len().saturating_sub(p);
        // No leftovers of interrupted compactions remain visible.
        let names = self.fs.list(Path::new(DIR)).expect("list");
        let g = backend.stats().generation;
        for name in &names {
            let expected =
                name == "LOCK" || *name == format!("snapshot.{g}") || *name == format!("log.{g}");
            if !expected {
                self.fail(point, format!("leftover file {name} after open: {names:?}"));
            }
        }
        drop(backend);
        self.base = actual;
        self.since.clear();
        self.durable = 0;
        self.in_doubt = None;
    }

    fn run(&mut self, points: usize, totals: &mut Totals) {
        for point in 0..points {
            self.session(point, totals);
            let report = self.fs.power_loss();
            self.verify(point, &report, totals);
            totals.points += 1;
        }
    }
}

#[test]
fn power_loss_at_random_points_keeps_every_acknowledged_batch() {
    let points: usize = std::env::var("PEERBOOK_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_POINTS);
    let seed: u64 = match std::env::var("PEERBOOK_CRASH_SEED") {
        Ok(v) => v.parse().expect("PEERBOOK_CRASH_SEED is a u64"),
        Err(_) if std::env::var("PEERBOOK_CRASH_POINTS").is_ok() => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(DEFAULT_SEED),
        Err(_) => DEFAULT_SEED,
    };
    println!("crash simulation: seed {seed} ({seed:#x}), {points} crash points");
    let start = Instant::now();
    let mut totals = Totals::default();
    let scenarios = points.div_ceil(POINTS_PER_SCENARIO);
    for i in 0..scenarios {
        let n = POINTS_PER_SCENARIO.min(points - i * POINTS_PER_SCENARIO);
        Scenario::new(seed.wrapping_add(i as u64)).run(n, &mut totals);
    }
    println!("{totals:?} in {:?}", start.elapsed());
    assert_eq!(totals.points, points);
    if points >= DEFAULT_POINTS {
        // The run must keep reaching every kind of crash point.
        assert!(totals.in_open > 0, "no crash during open: {totals:?}");
        assert!(totals.in_write > 0, "no crash during a write: {totals:?}");
        assert!(totals.in_flush > 0, "no crash during a flush: {totals:?}");
        assert!(
            totals.in_compact > 0,
            "no crash during a compaction: {totals:?}"
        );
        assert!(totals.in_clear > 0, "no crash during a clear: {totals:?}");
        assert!(totals.idle > 0, "no crash while idle: {totals:?}");
        assert!(
            totals.torn_tails > 0,
            "no torn tail was ever recovered: {totals:?}"
        );
        assert!(totals.compactions > 0, "no compaction ran: {totals:?}");
        assert!(
            totals.torn_with_valid_frames_after > 0,
            "no torn frame was ever followed by intact unsynced frames: {totals:?}"
        );
    }
}
