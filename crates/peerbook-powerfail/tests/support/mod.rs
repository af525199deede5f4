//! Shared by the power-loss tests: the engines, the child processes, the workload
//! and its model, and the checks of a reopened store against the model.
#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeMap;
use std::process::Command;

use peerbook::backend::{Backend, BackendError, BackendExt, Durability, Space, WriteBatch};
use peerbook::conformance::Rng;

pub mod book;
pub mod engine;

pub type State = peerbook::backend::Dump;

/// This test binary, re-run as a child process that runs the test `entry` alone
/// (the child's side of a test: it does nothing unless `env` is set) with `spec`,
/// what the child is to do, in the environment variable `env`.
pub fn child_command(entry: &str, env: &str, spec: String) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, spec);
    cmd
}

/// One step of the workload.
#[derive(Clone, Debug)]
pub enum Step {
    Write(Vec<(Space, Vec<u8>, Option<Vec<u8>>)>, Durability),
    Clear(Durability),
    Flush,
}

/// The workload: the same seed gives the same steps in the child and the parent.
pub struct Workload {
    rng: Rng,
    sync_percent: u64,
}

impl Workload {
    pub fn new(seed: u64, sync_percent: u64) -> Self {
        Workload {
            rng: Rng::new(seed),
            sync_percent,
        }
    }

    pub fn durability(&mut self) -> Durability {
        if self.rng.below(100) < self.sync_percent {
            Durability::Sync
        } else {
            Durability::Buffered
        }
    }

    pub fn next(&mut self) -> Step {
        let roll = self.rng.below(100);
        if roll < 3 {
            return Step::Clear(self.durability());
        }
        if roll < 10 {
            return Step::Flush;
        }
        let rng = &mut self.rng;
        let n = 1 + rng.below(8);
        let ops = (0..n)
            .map(|_| {
                let space = Space::ALL[rng.below(4) as usize];
                let key = rng.key(3);
                if rng.below(4) == 0 {
                    (space, key, None)
                } else {
                    // Mostly small values, some spanning pages (LMDB overflow pages,
                    // RocksDB records across WAL blocks).
                    let len = match rng.below(20) {
                        0 => 4000 + rng.below(9000),
                        1..=3 => 100 + rng.below(400),
                        _ => rng.below(24),
                    };
                    (space, key, Some(rng.bytes(len as usize)))
                }
            })
            .collect();
        let d = self.durability();
        Step::Write(ops, d)
    }
}

pub fn apply(state: &mut State, step: &Step) {
    match step {
        Step::Write(ops, _) => {
            for (space, key, value) in ops {
                match value {
                    Some(v) => state[space.index()].insert(key.clone(), v.clone()),
                    None => state[space.index()].remove(key),
                };
            }
        }
        Step::Clear(_) => state.iter_mut().for_each(BTreeMap::clear),
        Step::Flush => {}
    }
}

pub fn run_step(backend: &dyn Backend, step: &Step) -> Result<(), BackendError> {
    match step {
        Step::Write(ops, d) => {
            let mut batch = WriteBatch::new();
            for (space, key, value) in ops {
                match value {
                    Some(v) => batch.put(*space, key.clone(), v.clone()),
                    None => batch.delete(*space, key.clone()),
                }
            }
            backend.write(batch, *d)
        }
        Step::Clear(d) => backend.clear(*d),
        Step::Flush => backend.flush(),
    }
}

pub fn dump(b: &dyn Backend) -> Result<State, BackendError> {
    b.dump()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2 + 1);
    s.push('x'); // never empty
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s = s.strip_prefix('x').expect("hex starts with x");
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// For a failure report: the prefix of `steps` closest to `actual`, and how they
/// differ (keys by space and length only: values may be secret in real books).
pub fn closest(base: &State, steps: &[Step], actual: &State) -> String {
    let diff = |a: &State| -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..4 {
            for (k, v) in &a[i] {
                match actual[i].get(k) {
                    None => out.push(format!("space {i} key {k:02x?}: missing")),
                    Some(w) if w != v => out.push(format!(
                        "space {i} key {k:02x?}: value of {} bytes, expected {}",
                        w.len(),
                        v.len()
                    )),
                    _ => {}
                }
            }
            for k in actual[i].keys() {
                if !a[i].contains_key(k) {
                    out.push(format!("space {i} key {k:02x?}: unexpected"));
                }
            }
        }
        out
    };
    let mut state = base.clone();
    let mut best = (usize::MAX, 0, Vec::new());
    for p in 0..=steps.len() {
        let d = diff(&state);
        if d.len() < best.0 {
            best = (d.len(), p, d);
        }
        if p < steps.len() {
            apply(&mut state, &steps[p]);
        }
    }
    let kinds: Vec<String> = steps
        .iter()
        .map(|s| match s {
            Step::Write(ops, d) => format!(
                "w{}{}",
                ops.len(),
                if *d == Durability::Sync { "S" } else { "B" }
            ),
            Step::Clear(d) => format!("clear{}", if *d == Durability::Sync { "S" } else { "B" }),
            Step::Flush => "flush".into(),
        })
        .collect();
    format!(
        "closest prefix: {} steps, {} differences: {:?}\nsteps: {kinds:?}",
        best.1, best.0, best.2
    )
}
