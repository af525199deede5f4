//! Assembles the comparative benchmark report after `cargo xtask bench` ran the
//! benches: `<out>/report.md` and SVG charts in `<out>/charts/`, where `<out>` is
//! `$PEERBOOK_BENCH_OUT` (xtask sets it), else `<target dir>/peerbook-bench`.
//!
//! ```text
//! cargo run --release -p peerbook-bench --bin bench_report            # report from the last run
//! cargo run --release -p peerbook-bench --bin bench_report -- --no-probe --no-paired
//! ```
//!
//! It reads criterion's estimates (`$CRITERION_HOME`, else `<out>/criterion`), the
//! fixture and run data the benches wrote to `<out>/data/`, and measures peak memory
//! itself: for each backend it starts itself again as a child (`probe BACKEND N`),
//! which opens the largest book of the run and serves a fixed workload, then reports
//! its RSS high-water mark (`VmHWM`). Before that, another child (`paired N`) times
//! each backend's Buffered `store_peer` and its batch floor in the same window
//! (alternating blocks, see `peerbook_bench::paired`) for the write targets.

use peerbook_bench as common;

mod charts;
mod collect;
mod format;
mod interleaved;
mod markdown;
mod million;
mod paired;
mod targets;
mod verdict;

use std::collections::BTreeMap;
use std::error::Error;
use std::fs;
use std::path::PathBuf;

use common::KINDS;

#[allow(unused_imports)]
pub(crate) use charts::*;
pub(crate) use collect::*;
pub(crate) use format::*;
pub(crate) use markdown::*;

pub(crate) type Res<T> = Result<T, Box<dyn Error>>;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = common::out_dir();
    if args.first().map(String::as_str) == Some("probe") {
        let what = args.get(1).ok_or("probe needs a backend")?;
        let n: usize = args.get(2).ok_or("probe needs a size")?.parse()?;
        return probe(&out, what, n);
    }
    if args.first().map(String::as_str) == Some("paired") {
        let n: usize = args.get(1).ok_or("paired needs a size")?.parse()?;
        return paired::paired(&out, n);
    }
    let no_probe = args.iter().any(|a| a == "--no-probe");
    let no_paired = args.iter().any(|a| a == "--no-paired");

    let data = out.join("data");
    let mut runs = Vec::new();
    for name in ["run-peerbook", "run-baselines"] {
        if let Some(v) = read_json(&data.join(format!("{name}.json"))) {
            runs.push((name.trim_start_matches("run-").to_string(), v));
        }
    }
    if runs.is_empty() {
        return Err(format!(
            "no benchmark run found under {} (run `cargo xtask bench` first)",
            data.display()
        )
        .into());
    }
    let mode = runs[0].1["mode"].as_str().unwrap_or("?").to_string();
    let mut sizes: Vec<usize> = runs
        .iter()
        .flat_map(|(_, v)| v["sizes"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s.as_u64().map(|s| s as usize))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let since = runs
        .iter()
        .filter_map(|(_, v)| v["started"].as_u64())
        .min()
        .unwrap_or(0);

    let criterion_dir = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| out.join("criterion"));
    let mut results = Results::new();
    load_criterion(&criterion_dir, since, &mut results);

    // The write targets' floors, paired with their stores in one window (before the
    // data directory is read: they write there).
    if let Some(n) = common::paired::Plan::size(&sizes).filter(|_| !no_paired) {
        paired::run_paired(&out, n, &mode);
    }

    let mut fixtures = BTreeMap::new();
    let mut cleanup = BTreeMap::new();
    for entry in fs::read_dir(&data)?.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(v) = read_json(&entry.path()) else {
            continue;
        };
        let n = v["peers"].as_u64().unwrap_or(0) as usize;
        let backend = v["backend"].as_str().unwrap_or("?").to_string();
        if name.starts_with("fixture-") && sizes.contains(&n) {
            fixtures.insert((backend, n), v);
        } else if name.starts_with("cleanup-") && sizes.contains(&n) {
            cleanup.insert((backend, n), v["removed"].as_u64().unwrap_or(0));
        }
    }
    let paired = paired::load(&out, &sizes);

    let nmax = sizes.iter().copied().max().unwrap_or(0);
    let mut probes = Vec::new();
    if !no_probe && nmax > 0 {
        probes.push(run_probe(&out, "idle", 0));
        for what in KINDS.iter().map(|k| k.name()).chain(["sqlite"]) {
            probes.push(run_probe(&out, what, nmax));
        }
    }

    fs::create_dir_all(out.join("charts"))?;
    let report = Report {
        out: out.clone(),
        results,
        sizes,
        mode,
        fixtures,
        cleanup,
        probes,
        paired,
        runs,
    };
    let md = report.render();
    let path = out.join("report.md");
    fs::write(&path, md)?;
    fs::write(
        out.join("data").join("probes.json"),
        serde_json::to_string_pretty(&report.probes)?,
    )?;
    println!("peerbook bench report: {}", path.display());
    println!("charts:                {}", out.join("charts").display());
    Ok(())
}
