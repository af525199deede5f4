//! The paired floors (`peerbook_bench::paired`): run after the benches in a child
//! process (`paired N`), which writes `data/paired-<backend>.json` per backend; the
//! Targets rows of `get_peer` over its get floor and of the Buffered stores over
//! their batch floors read them.

#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use peerbook_bench as common;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::verdict::{middle_half, Verdict};
use common::paired::{pair_get_peer, pair_store_peer, Plan, PAIRED_GET};
use common::{load_average, progress, size_label, write_data, Dyn, Generator, Mode, KINDS};
use peerbook::backend::Backend;
use peerbook::{Durability, MemoryBackend, PeerBook};
use serde_json::{json, Value};

/// The child: pair every backend's `get_peer` and Buffered `store_peer` with their
/// floors on books of `n` peers (the cached fixture books of the peerbook bench;
/// memory: built from the reference book's batches, as its pristine book is loaded),
/// each backend's result written as `data/paired-<backend>.json` (an `error` field when it could not run:
/// an error or a panic of one backend leaves the others to run).
pub(crate) fn paired(out: &Path, n: usize) -> Res<()> {
    let started = Instant::now();
    let mode = Mode::from_env();
    progress(
        started,
        &format!("paired floors: reference book  [{}]", size_label(n)),
    );
    let reference = common::reference(&Generator::new(), n);
    // `PEERBOOK_PAIRED_ONLY=file,memory` pairs only those backends (to measure one
    // backend's change without the others' minutes); the report's run sets nothing.
    let only = std::env::var("PEERBOOK_PAIRED_ONLY").ok();
    if let Some(only) = &only {
        // a misspelt name would pair nothing and leave the old results in place
        let known: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        if let Some(unknown) = only.split(',').find(|w| !known.contains(w)) {
            return Err(format!(
                "PEERBOOK_PAIRED_ONLY names {unknown:?}, not a backend ({})",
                known.join(", ")
            )
            .into());
        }
    }
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|w| w == name))
    };
    for kind in KINDS {
        let name = kind.name();
        if !wanted(name) {
            continue;
        }
        common::remove(&out.join("data").join(format!("paired-{name}.json")));
        let dirs = work_dirs(out, name, n);
        dirs.iter().for_each(|d| common::remove(d));
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pair_backend(out, n, kind, &reference, mode, &dirs, started)
        }));
        let error = match run {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("the paired run panicked (its message is above)".to_string()),
        };
        dirs.iter().for_each(|d| common::remove(d));
        if let Some(error) = error {
            eprintln!("==> paired floors: {name}: {error}");
            // Best effort, never a panic: a full disk that failed the backend may
            // fail this write too, and the next backends must still run.
            let row = json!({ "backend": name, "peers": n, "error": error });
            let file = out.join("data").join(format!("paired-{name}.json"));
            let _ = std::fs::write(file, row.to_string());
        }
    }
    Ok(())
}

/// The copy of the fixture book and the raw floor store of `name` the paired child
/// works in (under `<out>/work`, removed after each backend and by the parent when
/// the child did not end well).
fn work_dirs(out: &Path, name: &str, n: usize) -> [std::path::PathBuf; 2] {
    [
        out.join("work").join(format!("paired-{name}-{n}")),
        out.join("work").join(format!("paired-raw-{name}-{n}")),
    ]
}

/// One backend of [`paired()`]: its book copied into `dirs[0]`, the raw floor built in
/// `dirs[1]`, both workloads paired and written as `data/paired-<backend>.json`.
fn pair_backend(
    out: &Path,
    n: usize,
    kind: common::Kind,
    reference: &common::Reference,
    mode: Mode,
    dirs: &[std::path::PathBuf; 2],
    started: Instant,
) -> Res<()> {
    let name = kind.name();
    let [work, raw_dir] = dirs;
    let backend: Dyn = if kind.on_disk() {
        let (pristine, marker) = common::fixture_paths(out, name, n);
        // The marker is written last: a book cut short while being built has none
        // (its stamp is the peerbook bench binary's, so only `peers` is checked).
        let complete = std::fs::read_to_string(&marker)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|v| v["peers"].as_u64() == Some(n as u64));
        if !pristine.exists() || !complete {
            return Err(format!("no {name} book of {n} peers under {}", pristine.display()).into());
        }
        common::copy_dir(&pristine, work)?;
        common::open_backend(kind, work)
    } else {
        let memory = MemoryBackend::new();
        for batch in &reference.built {
            memory.write(batch.clone(), Durability::Buffered)?;
        }
        Arc::new(memory)
    };
    progress(
        started,
        &format!(
            "paired floors: {name} vs {}  [{}]",
            raw_of(name),
            size_label(n)
        ),
    );
    let raw = common::raw::replayed(raw_of(name), raw_dir, &reference.built);
    let book = PeerBook::open(backend, common::options(Durability::Buffered))?;
    let load_before = load_average();
    let t = Instant::now();
    let plan = Plan::for_mode(mode);
    // The get first: the write pairs' updates change the book's records, not the
    // raw store's, and the get floor should decode the bytes the store reads.
    let get = pair_get_peer(&book, n, &*raw, plan);
    let pairs = pair_store_peer(&book, n, &*raw, &reference.writes, plan);
    let mut workloads = serde_json::Map::new();
    workloads.insert(PAIRED_GET.to_string(), get.to_json());
    for (w, pair) in &pairs {
        workloads.insert(w.to_string(), pair.to_json());
    }
    write_data(
        out,
        &format!("paired-{name}"),
        &json!({
            "backend": name,
            "raw": raw_of(name),
            "peers": n,
            "mode": mode.name(),
            "secs": t.elapsed().as_secs_f64(),
            "load_before": load_before,
            "load_after": load_average(),
            "workloads": workloads,
        }),
    );
    Ok(())
}

/// How long the paired child may run before it is killed (a default run takes about
/// a minute; a disk whose syncs take milliseconds stretches it several times).
const PAIRED_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// Run the paired floors in a child process (its progress on stderr); a failure, or
/// a child still running at [`PAIRED_DEADLINE`] (killed), is reported and leaves the
/// rows it did not write `NOT RUN`.
/// `mode` is the run's (the child's plan follows it).
pub(crate) fn run_paired(out: &Path, n: usize, mode: &str) {
    eprintln!(
        "==> paired get and write floors with {} peers (child process)",
        size_label(n)
    );
    // No file of an earlier run may stand for a backend this child does not reach.
    for kind in KINDS {
        common::remove(
            &out.join("data")
                .join(format!("paired-{}.json", kind.name())),
        );
    }
    let child = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .args(["paired", &n.to_string()])
            .env("PEERBOOK_BENCH_OUT", out)
            .env("PEERBOOK_BENCH_MODE", mode)
            .spawn()
    });
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return eprintln!("==> paired get and write floors not started: {e}"),
    };
    let deadline = Instant::now() + PAIRED_DEADLINE;
    let failure = loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return,
            Ok(Some(s)) => break format!("failed: {s}"),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break format!(
                    "KILLED after {} s: the rows it did not write are NOT RUN",
                    PAIRED_DEADLINE.as_secs()
                );
            }
            Err(e) => {
                // Never leave it running beside the report's probes.
                let _ = child.kill();
                let _ = child.wait();
                break format!("cannot wait for the child ({e}), killed");
            }
        }
    };
    eprintln!("==> paired get and write floors {failure}");
    // A child that did not end well may have left its copies of the books.
    for kind in KINDS {
        work_dirs(out, kind.name(), n)
            .iter()
            .for_each(|d| common::remove(d));
    }
}

/// This run's paired files, by backend: `data/paired-<backend>.json` of every
/// backend at the paired size of `sizes` (see [`run_data`]); none without one.
pub(crate) fn load(out: &Path, sizes: &[usize]) -> BTreeMap<String, Value> {
    let Some(n) = Plan::size(sizes) else {
        return BTreeMap::new();
    };
    KINDS
        .iter()
        .filter_map(|kind| {
            let name = kind.name();
            let v = run_data(out, &format!("paired-{name}"), name, n, Written::ByReport)?;
            Some((name.to_string(), v))
        })
        .collect()
}

/// One paired workload of one backend, as the Targets row shows it.
pub(crate) struct PairedRow {
    pub(crate) peers: usize,
    /// Median ns per op of the store and of the floor, all rounds pooled.
    pub(crate) store: f64,
    pub(crate) floor: f64,
    /// The median over rounds of each round's store median / floor median.
    pub(crate) round_ratio: f64,
    /// Each round's store median / floor median, in round order.
    pub(crate) ratios: Vec<f64>,
    pub(crate) rounds: u64,
    pub(crate) block: u64,
    pub(crate) ops: u64,
}

impl Report {
    /// The paired run of `workload` on `backend`; `None` when the paired data is
    /// missing or incomplete (an `error` instead of the workloads, say).
    pub(crate) fn paired_row(&self, backend: &str, workload: &str) -> Option<PairedRow> {
        let p: &Value = self.paired.get(backend)?;
        let w = &p["workloads"][workload];
        let store = w["store_ns"].as_f64().filter(|x| x.is_finite())?;
        let floor = common::positive(&w["floor_ns"])?;
        let round_ratio = common::positive(&w["round_ratio_median"])?;
        let ratios = w["round_medians_ns"]
            .as_array()?
            .iter()
            .map(|r| Some(common::positive(&r[0])? / common::positive(&r[1])?))
            .collect::<Option<Vec<f64>>>()?;
        Some(PairedRow {
            peers: p["peers"].as_u64()? as usize,
            store,
            floor,
            round_ratio,
            ratios,
            rounds: w["rounds"].as_u64()?,
            block: w["block"].as_u64()?,
            ops: w["ops_per_side"].as_u64()?,
        })
    }
}

impl PairedRow {
    /// The measured cell of the row: both medians, the judged ratio and the run.
    pub(crate) fn measured(&self) -> String {
        format!(
            "{} vs floor {} (medians), median of the rounds' ratios {} at {} (same window, alternating blocks of {}, {} rounds, {} ops a side)",
            fmt_ns(self.store),
            fmt_ns(self.floor),
            fmt_ratio(self.round_ratio),
            size_label(self.peers),
            self.block,
            self.rounds,
            self.ops,
        )
    }

    /// Met when the median of the rounds' ratios is at most `goal`: each round pairs
    /// store and floor measured seconds apart, so a machine that changes speed
    /// mid-run moves both sides of a round. Not judged when the middle half of the
    /// rounds spread more than 2x ([`Verdict::by_rounds`] on [`middle_half`], its
    /// reason naming them: one disturbed round of 100 is expected and the median
    /// ignores it; a run whose quartiles are 2x apart measured two machines).
    pub(crate) fn verdict(&self, goal: f64) -> Verdict {
        match Verdict::by_rounds(&middle_half(&self.ratios), None, self.round_ratio <= goal) {
            Verdict::NotJudged(why) => {
                Verdict::NotJudged(format!("middle half of the rounds: {why}"))
            }
            judged => judged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::tests::{paired_run, paired_workload, report, verdict};

    /// Paired rows judge on the median of the rounds' ratios, unless the middle half
    /// of the rounds spreads more than 2x: then NOT JUDGED, with the spread, for the
    /// get row as for the write rows.
    #[test]
    fn paired_rows_whose_rounds_disagree_are_not_judged() {
        let mut r = report(&[], true);
        let spread = |rounds: serde_json::Value| {
            let mut w = paired_workload((1_000.0, 1_000.0));
            w["round_medians_ns"] = rounds;
            w
        };
        let mut lmdb = paired_run("lmdb", (1_000.0, 1_000.0), (1_000.0, 1_000.0));
        // Three rounds from 1.0x to 2.5x.
        lmdb["workloads"]["get_peer"] = spread(json!([[1000, 1000], [2500, 1000], [1100, 1000]]));
        // Eight rounds: the extremes (0.3x, 9x) are a quarter each, the middle half
        // within 1.0x-1.2x: judged (1.0x: met).
        lmdb["workloads"]["store_peer_new"] = spread(json!([
            [300, 1000],
            [9000, 1000],
            [1000, 1000],
            [1100, 1000],
            [1000, 1000],
            [1200, 1000],
            [200, 1000],
            [5000, 1000]
        ]));
        // Eight rounds, the middle half 1.0x-2.2x apart.
        lmdb["workloads"]["store_peer_update"] = spread(json!([
            [1000, 1000],
            [1000, 1000],
            [1000, 1000],
            [1000, 1000],
            [2200, 1000],
            [2200, 1000],
            [2200, 1000],
            [2200, 1000]
        ]));
        r.paired.insert("lmdb".into(), lmdb);
        r.paired.insert(
            "file".into(),
            paired_run("file", (1_000.0, 1_000.0), (1_000.0, 1_000.0)),
        );
        let mut md = String::new();
        r.targets(&mut md);
        assert_eq!(
            verdict(&md, "`get_peer`", "lmdb"),
            "**NOT JUDGED (rounds disagree: middle half of the rounds: rounds from 1.00x to 2.50x, more than 2x apart)**"
        );
        assert_eq!(verdict(&md, "`store_peer_new` Buffered", "lmdb"), "MET");
        assert!(verdict(&md, "`store_peer_update` Buffered", "lmdb")
            .starts_with("**NOT JUDGED (rounds disagree: middle half of the rounds: rounds from 1.00x to 2.20x"));
        for w in [
            "`get_peer`",
            "`store_peer_new` Buffered",
            "`store_peer_update` Buffered",
        ] {
            assert_eq!(verdict(&md, w, "file"), "MET", "{w}");
        }
        // Rounds missing from the data: no paired row.
        let mut file = paired_run("file", (1_000.0, 1_000.0), (1_000.0, 1_000.0));
        file["workloads"]["get_peer"]["round_medians_ns"] = json!([[1000, 0]]);
        r.paired.insert("file".into(), file);
        let mut md = String::new();
        r.targets(&mut md);
        assert_eq!(
            verdict(&md, "`get_peer`", "file"),
            "NOT RUN (no paired run)"
        );
    }

    /// A paired file counts for the backend its name says, at the paired size of
    /// the run (the largest up to 100k), holding that backend and size.
    #[test]
    fn only_this_runs_paired_files_are_loaded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path();
        let sizes = [1_000, 100_000, 1_000_000];
        assert!(load(out, &sizes).is_empty(), "no data directory");
        let row = |backend: &str, peers: usize| json!({"backend": backend, "peers": peers});
        write_data(out, "paired-file", &row("file", 100_000));
        // Another backend than its name, another size than the run pairs at.
        write_data(out, "paired-lmdb", &row("rocksdb", 100_000));
        write_data(out, "paired-rocksdb", &row("rocksdb", 1_000));
        // A backend's error row counts (its Targets rows then say why not run).
        write_data(out, "paired-memory", &{
            let mut v = row("memory", 100_000);
            v["error"] = json!("no book");
            v
        });
        let loaded = load(out, &sizes);
        assert_eq!(
            loaded.keys().collect::<Vec<_>>(),
            ["file", "memory"],
            "{loaded:?}"
        );
        // Paired at 1k, only the 1k file counts.
        let loaded = load(out, &[1_000]);
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["rocksdb"], "{loaded:?}");
    }
}
