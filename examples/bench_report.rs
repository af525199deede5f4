//! Assembles the comparative benchmark report after `cargo xtask bench` ran the
//! benches: `<out>/report.md` and SVG charts in `<out>/charts/`, where `<out>` is
//! `$PEERBOOK_BENCH_OUT` (xtask sets it), else `<target dir>/peerbook-bench`.
//!
//! ```text
//! cargo run --release --example bench_report            # report from the last run
//! cargo run --release --example bench_report -- --no-probe
//! ```
//!
//! It reads criterion's estimates (`$CRITERION_HOME`, else `<out>/criterion`), the
//! fixture and run data the benches wrote to `<out>/data/`, and measures peak memory
//! itself: for each backend it starts itself again as a child (`probe BACKEND N`),
//! which opens the largest book of the run and serves a fixed workload, then reports
//! its RSS high-water mark (`VmHWM`).

#[path = "../benches/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::sql::Sql;
use common::{peer_id, size_label, Generator, Kind, Rng, DAY_MS, KINDS, SEED};
use peerbook::{CandidateQuery, Durability, Order, PeerBook, PeerQuery, SortBy};
use plotters::prelude::*;
use serde_json::{json, Value};

type Res<T> = Result<T, Box<dyn Error>>;

// ----- what is measured, in report order ----------------------------------------------

struct Workload {
    group: &'static str,
    what: &'static str,
    /// Compared with the raw engines (put / get of the encoded record).
    has_raw: bool,
}

const WORKLOADS: &[Workload] = &[
    Workload { group: "get_peer", what: "`get_peer` of a random stored peer (read + decode + validate)", has_raw: true },
    Workload { group: "store_peer_new.sync", what: "`store_peer` of a new `NewPeer` (seal 2 secrets, validate, encode, 1 batch), Durability::Sync", has_raw: true },
    Workload { group: "store_peer_new.buffered", what: "the same, Durability::Buffered", has_raw: true },
    Workload { group: "store_peer_update.sync", what: "`store_peer` of an updated record (an IP change: candidates, address, last_seen), Sync", has_raw: true },
    Workload { group: "store_peer_update.buffered", what: "the same, Buffered", has_raw: true },
    Workload { group: "update_connection_quality.sync", what: "`update_connection_quality` (latency + connection type) of a random peer, Sync", has_raw: false },
    Workload { group: "update_connection_quality.buffered", what: "the same, Buffered", has_raw: false },
    Workload { group: "increment_reconnection_attempts.sync", what: "`increment_reconnection_attempts` of a random peer, Sync", has_raw: false },
    Workload { group: "increment_reconnection_attempts.buffered", what: "the same, Buffered", has_raw: false },
    Workload { group: "update_last_seen.sync", what: "`update_last_seen` of a random peer, Sync", has_raw: false },
    Workload { group: "update_last_seen.buffered", what: "the same, Buffered", has_raw: false },
    Workload { group: "query_peers_last_seen", what: "`query_peers` by last_seen, newest first, limit 10", has_raw: false },
    Workload { group: "query_peers_quality", what: "`query_peers` by quality, min_quality 70, limit 5", has_raw: false },
    Workload { group: "get_reconnection_candidates", what: "`get_reconnection_candidates`, limit 5, max_age 24 h (about 1/60 of the book qualifies)", has_raw: false },
    Workload { group: "cleanup_stale_peers", what: "`cleanup_stale_peers` removing the 10 % stale peers (each run on a fresh copy; copy and open not timed)", has_raw: false },
    Workload { group: "export_data", what: "`export_data` of the whole book (the document in memory, no JSON text)", has_raw: false },
    Workload { group: "import_data", what: "`import_data` of the whole book into an empty book (one atomic batch, Sync)", has_raw: false },
    Workload { group: "open", what: "open: backend open + `PeerBook::open` of the whole book (warm page cache; memory: core only)", has_raw: false },
    Workload { group: "codec_encode", what: "`PeerRecord::encode` of one record (no storage)", has_raw: false },
    Workload { group: "codec_decode", what: "`PeerRecord::decode` of one record, validation included (no storage)", has_raw: false },
    Workload { group: "codec_postcard_only", what: "postcard deserialization alone of the same record (the first part of decode)", has_raw: false },
    Workload { group: "codec_validate", what: "`PeerRecord::validate` alone of the same record (the second part of decode)", has_raw: false },
];

const BOOKS: [&str; 4] = ["memory", "lmdb", "rocksdb", "file"];
const RAWS: [&str; 6] = [
    "memory-raw",
    "lmdb-raw",
    "lmdb-trait",
    "rocksdb-raw",
    "rocksdb-trait",
    "file-raw",
];

fn raw_of(backend: &str) -> &'static str {
    match backend {
        "memory" => "memory-raw",
        "lmdb" => "lmdb-raw",
        "rocksdb" => "rocksdb-raw",
        _ => "file-raw",
    }
}

// ----- reading results -------------------------------------------------------------

/// Median (and its 95 % interval) of one benchmark, in ns per operation.
#[derive(Clone, Debug)]
struct Estimate {
    median: f64,
    lo: f64,
    hi: f64,
}

/// (group, function, size label) -> estimate.
type Results = BTreeMap<(String, String, String), Estimate>;

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

/// Every `new/` result criterion wrote at or after `since` (unix seconds).
fn load_criterion(dir: &Path, since: u64, out: &mut Results) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let estimates = path.join("estimates.json");
            let fresh = fs::metadata(&estimates)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .is_some_and(|t| t.as_secs() + 1 >= since);
            let (Some(bench), Some(est)) = (
                read_json(&path.join("benchmark.json")),
                read_json(&estimates),
            ) else {
                continue;
            };
            if !fresh {
                continue;
            }
            let s = |v: &Value, k: &str| {
                v.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let m = &est["median"];
            let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
            out.insert(
                (
                    s(&bench, "group_id"),
                    s(&bench, "function_id"),
                    s(&bench, "value_str"),
                ),
                Estimate {
                    median: f(&m["point_estimate"]),
                    lo: f(&m["confidence_interval"]["lower_bound"]),
                    hi: f(&m["confidence_interval"]["upper_bound"]),
                },
            );
        } else {
            load_criterion(&path, since, out);
        }
    }
}

// ----- formatting --------------------------------------------------------------------

fn fmt_ns(ns: f64) -> String {
    if !ns.is_finite() {
        "-".into()
    } else if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e4 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e5 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn fmt_rate(ns: f64) -> String {
    let per_s = 1e9 / ns;
    if !per_s.is_finite() {
        "-".into()
    } else if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else if per_s >= 10.0 {
        format!("{per_s:.0} /s")
    } else {
        format!("{per_s:.2} /s")
    }
}

fn fmt_ratio(r: f64) -> String {
    if !r.is_finite() {
        "-".into()
    } else if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 10.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.2}x")
    }
}

fn fmt_bytes(b: f64) -> String {
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

/// "2025-01-31 12:34 UTC" from unix seconds.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**MISSED**"
    }
}

/// Median time of a 4 KiB append + `fdatasync` in `dir`: what one Sync write costs
/// this machine's disk at least.
fn fsync_latency(dir: &Path) -> Option<f64> {
    use std::io::Write as _;
    fs::create_dir_all(dir).ok()?;
    let path = dir.join("fsync-probe");
    let mut file = fs::File::create(&path).ok()?;
    let block = [0x5au8; 4096];
    let mut times = Vec::new();
    for _ in 0..60 {
        let t = Instant::now();
        file.write_all(&block).ok()?;
        file.sync_data().ok()?;
        times.push(t.elapsed().as_secs_f64() * 1e9);
    }
    drop(file);
    common::remove(&path);
    times.sort_by(f64::total_cmp);
    Some(times[times.len() / 2])
}

// ----- memory probe (child process) ---------------------------------------------------

/// A field of /proc/self/status in KiB (VmHWM, VmRSS).
fn status_kib(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

const PROBE_GETS: usize = 2000;
const PROBE_QUERIES: usize = 100;
const PROBE_CANDIDATES: usize = 20;
const PROBE_UPDATES: usize = 1000;

/// The probe workload on a book: a node restarting and serving its peers.
fn probe_book<B: peerbook::backend::Backend>(book: &PeerBook<B>, n: usize) {
    let mut rng = Rng::new(SEED ^ 0x9B0B);
    let quality = PeerQuery {
        sort_by: SortBy::Quality,
        order: Order::Desc,
        limit: Some(5),
        min_quality: Some(70),
        ..PeerQuery::default()
    };
    let candidates = CandidateQuery {
        limit: 5,
        max_age: Some(Duration::from_secs(24 * 3600)),
    };
    for _ in 0..PROBE_CANDIDATES {
        book.get_reconnection_candidates(&candidates)
            .expect("candidates");
    }
    for _ in 0..PROBE_GETS {
        book.get_peer(&peer_id(rng.index(n))).expect("get");
    }
    for _ in 0..PROBE_QUERIES {
        book.query_peers(&quality).expect("query");
    }
    for _ in 0..PROBE_UPDATES {
        book.update_last_seen(&peer_id(rng.index(n)))
            .expect("update");
    }
    book.flush().expect("flush");
}

fn probe(out: &Path, what: &str, n: usize) -> Res<()> {
    let start_hwm = status_kib("VmHWM:");
    let started = Instant::now();
    let work = out.join("work").join(format!("probe-{what}-{n}"));
    common::remove(&work);
    let note;
    match what {
        "idle" => note = "process start only".to_string(),
        "sqlite" => {
            let (pristine, _) = common::fixture_paths(out, "sqlite", n);
            if !pristine.exists() {
                return Err(
                    format!("no SQLite book of {n} peers under {}", pristine.display()).into(),
                );
            }
            common::copy_dir(&pristine, &work)?;
            let sql = Sql::open(&work.join("peers.db"), Durability::Buffered);
            let mut rng = Rng::new(SEED ^ 0x9B0B);
            for _ in 0..PROBE_CANDIDATES {
                sql.candidates(5, DAY_MS);
            }
            for _ in 0..PROBE_GETS {
                sql.get(&peer_id(rng.index(n)));
            }
            for _ in 0..PROBE_QUERIES {
                sql.query_quality(70, 5);
            }
            for _ in 0..PROBE_UPDATES {
                sql.update_last_seen(&peer_id(rng.index(n)));
            }
            note = "open a copy of the table, then the probe workload".into();
        }
        _ => {
            let kind = Kind::from_name(what).ok_or_else(|| format!("unknown backend {what}"))?;
            let backend = if kind.on_disk() {
                let (pristine, _) = common::fixture_paths(out, kind.name(), n);
                if !pristine.exists() {
                    return Err(format!(
                        "no {what} book of {n} peers under {}",
                        pristine.display()
                    )
                    .into());
                }
                common::copy_dir(&pristine, &work)?;
                note = "open a copy of the book, then the probe workload".into();
                common::open_backend(kind, &work)
            } else {
                note = "build the book in memory (bulk import), then the probe workload".into();
                let backend = peerbook::MemoryBackend::new();
                let book = PeerBook::open(backend.clone(), common::options(Durability::Buffered))?;
                Generator::new().load(&book, n);
                std::sync::Arc::new(backend) as common::Dyn
            };
            let book = PeerBook::open(backend, common::options(Durability::Buffered))?;
            probe_book(&book, n);
        }
    }
    let result = json!({
        "what": what,
        "peers": n,
        "hwm_kib": status_kib("VmHWM:"),
        "rss_kib": status_kib("VmRSS:"),
        "start_hwm_kib": start_hwm,
        "secs": started.elapsed().as_secs_f64(),
        "note": note,
    });
    common::remove(&work);
    println!("{result}");
    Ok(())
}

/// Run the probe for `what` in a child process; its JSON result.
fn run_probe(out: &Path, what: &str, n: usize) -> Value {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return json!({ "what": what, "error": e.to_string() }),
    };
    eprintln!(
        "==> peak memory: {what} with {} peers (child process)",
        size_label(n)
    );
    let output = Command::new(exe)
        .args(["probe", what, &n.to_string()])
        .env("PEERBOOK_BENCH_OUT", out)
        .output();
    match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| json!({ "what": what, "error": "no result line" })),
        Ok(o) => json!({
            "what": what,
            "error": format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or_default()),
        }),
        Err(e) => json!({ "what": what, "error": e.to_string() }),
    }
}

// ----- charts ----------------------------------------------------------------------

fn color(name: &str) -> RGBColor {
    match name {
        "memory" => RGBColor(120, 120, 120),
        "lmdb" => RGBColor(31, 119, 180),
        "rocksdb" => RGBColor(214, 39, 40),
        "file" => RGBColor(44, 160, 44),
        "sqlite" => RGBColor(148, 103, 189),
        "compact JSON" => RGBColor(255, 127, 14),
        "postcard record" => RGBColor(188, 189, 34),
        n if n.starts_with("lmdb") => RGBColor(158, 202, 225),
        n if n.starts_with("rocksdb") => RGBColor(252, 146, 114),
        n if n.starts_with("file") => RGBColor(161, 217, 155),
        _ => RGBColor(200, 200, 200),
    }
}

/// A bar chart, one bar per (label, value); log scale for times.
fn bar_chart(
    path: &Path,
    title: &str,
    axis: &str,
    bars: &[(String, f64)],
    log: bool,
    fmt: &dyn Fn(f64) -> String,
) -> Res<()> {
    let bars: Vec<&(String, f64)> = bars
        .iter()
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .collect();
    if bars.is_empty() {
        return Ok(());
    }
    let max = bars.iter().map(|b| b.1).fold(f64::MIN, f64::max);
    let min = bars.iter().map(|b| b.1).fold(f64::MAX, f64::min);
    let width = (160 + 95 * bars.len() as u32).max(560);
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bars.len();
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => bars.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
        _ => String::new(),
    };
    if log {
        let lo = min / 3.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d((0..n).into_segmented(), (lo..max * 3.0).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(axis)
            .y_label_formatter(&|v| fmt(*v))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), lo),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                color(name).filled(),
            );
            r.set_margin(0, 0, 8, 8);
            r
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            Text::new(
                fmt(*v),
                (SegmentValue::CenterOf(i), *v * 1.25),
                ("sans-serif", 12),
            )
        }))?;
    } else {
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d((0..n).into_segmented(), 0.0..max * 1.15)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(axis)
            .y_label_formatter(&|v| fmt(*v))
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
            let mut r = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                color(name).filled(),
            );
            r.set_margin(0, 0, 8, 8);
            r
        }))?;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            Text::new(
                fmt(*v),
                (SegmentValue::CenterOf(i), *v + max * 0.03),
                ("sans-serif", 12),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}

// ----- the report -----------------------------------------------------------------

struct Report {
    out: PathBuf,
    results: Results,
    sizes: Vec<usize>,
    mode: String,
    fixtures: BTreeMap<(String, usize), Value>,
    cleanup: BTreeMap<(String, usize), u64>,
    probes: Vec<Value>,
    runs: Vec<(String, Value)>,
}

impl Report {
    fn get(&self, group: &str, function: &str, n: usize) -> Option<&Estimate> {
        self.results
            .get(&(group.to_string(), function.to_string(), size_label(n)))
    }

    fn median(&self, group: &str, function: &str, n: usize) -> f64 {
        self.get(group, function, n).map_or(f64::NAN, |e| e.median)
    }

    fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }

    /// Largest size with a result of `group` for `function`.
    fn largest_with(&self, group: &str, function: &str) -> Option<usize> {
        self.sizes
            .iter()
            .rev()
            .copied()
            .find(|&n| self.get(group, function, n).is_some())
    }

    fn functions(&self, group: &str) -> Vec<String> {
        let present: BTreeSet<&str> = self
            .results
            .keys()
            .filter(|k| k.0 == group)
            .map(|k| k.1.as_str())
            .collect();
        let order = BOOKS
            .iter()
            .chain(["sqlite"].iter())
            .chain(RAWS.iter())
            .chain(["core"].iter());
        order
            .filter(|f| present.contains(**f))
            .map(|f| f.to_string())
            .collect()
    }

    fn workload_table(&self, w: &Workload, md: &mut String) {
        let functions = self.functions(w.group);
        if functions.is_empty() {
            let _ = writeln!(
                md,
                "_No results (not run in this mode, or the bench failed)._\n"
            );
            return;
        }
        let sizes: Vec<usize> = if w.group.starts_with("codec") {
            vec![0]
        } else {
            self.sizes.clone()
        };
        let mut head = String::from("| backend |");
        let mut rule = String::from("|---|");
        for &n in &sizes {
            let s = if n == 0 {
                "record".to_string()
            } else {
                size_label(n)
            };
            let _ = write!(head, " {s} median | {s} ops/s |");
            rule.push_str("---:|---:|");
            if w.has_raw {
                let _ = write!(head, " {s} / raw |");
                rule.push_str("---:|");
            }
            if !w.group.starts_with("codec") {
                let _ = write!(head, " {s} / SQLite |");
                rule.push_str("---:|");
            }
        }
        let _ = writeln!(md, "{head}\n{rule}");
        for f in &functions {
            let mut row = format!("| {f} |");
            for &n in &sizes {
                let est = if n == 0 {
                    self.results
                        .get(&(w.group.into(), f.clone(), "record".into()))
                } else {
                    self.get(w.group, f, n)
                };
                match est {
                    Some(e) => {
                        // Mark medians whose 95 % interval is wider than +-10 %.
                        let noisy = if (e.hi - e.lo) / e.median > 0.2 {
                            " ~"
                        } else {
                            ""
                        };
                        let _ = write!(
                            row,
                            " {}{noisy} | {} |",
                            fmt_ns(e.median),
                            fmt_rate(e.median)
                        );
                    }
                    None => row.push_str(" - | - |"),
                }
                let m = est.map_or(f64::NAN, |e| e.median);
                if w.has_raw {
                    let r = if BOOKS.contains(&f.as_str()) {
                        m / self.median(w.group, raw_of(f), n)
                    } else {
                        f64::NAN
                    };
                    let _ = write!(row, " {} |", fmt_ratio(r));
                }
                if !w.group.starts_with("codec") {
                    let r = if BOOKS.contains(&f.as_str()) {
                        m / self.median(w.group, "sqlite", n)
                    } else {
                        f64::NAN
                    };
                    let _ = write!(row, " {} |", fmt_ratio(r));
                }
            }
            let _ = writeln!(md, "{row}");
        }
        md.push('\n');
    }

    fn chart_for(&self, w: &Workload) -> Option<String> {
        if w.group.starts_with("codec") {
            return None;
        }
        let n = self.sizes.iter().rev().copied().find(|&n| {
            self.functions(w.group)
                .iter()
                .any(|f| self.get(w.group, f, n).is_some())
        })?;
        let bars: Vec<(String, f64)> = self
            .functions(w.group)
            .into_iter()
            .filter_map(|f| self.get(w.group, &f, n).map(|e| (f, e.median)))
            .collect();
        let file = format!("{}.svg", w.group.replace('.', "_"));
        let path = self.out.join("charts").join(&file);
        let title = format!(
            "{} - {} peers - median per operation (log scale)",
            w.group,
            size_label(n)
        );
        match bar_chart(&path, &title, "time per operation", &bars, true, &fmt_ns) {
            Ok(()) => Some(format!("charts/{file}")),
            Err(e) => {
                eprintln!("chart {file}: {e}");
                None
            }
        }
    }

    fn fixture(&self, name: &str, n: usize) -> Option<&Value> {
        self.fixtures.get(&(name.to_string(), n))
    }

    /// (dir bytes per peer, compact JSON bytes per peer, postcard bytes per peer).
    fn bytes_per_peer(&self, name: &str, n: usize) -> Option<(f64, f64, f64)> {
        let f = self.fixture(name, n)?;
        let peers = f["peers"].as_f64()?;
        Some((
            f["dir_bytes"].as_f64()? / peers,
            f["json_bytes"].as_f64()? / peers,
            f["record_bytes"].as_f64()? / peers,
        ))
    }

    fn probe(&self, what: &str) -> Option<&Value> {
        self.probes
            .iter()
            .find(|p| p["what"] == what && p.get("hwm_kib").is_some())
    }

    /// Geometric mean of backend / SQLite over every workload both ran at `n`.
    fn vs_sqlite(&self, backend: &str, n: usize) -> (f64, usize, Vec<String>) {
        let mut logs = Vec::new();
        let mut slower = Vec::new();
        for w in WORKLOADS {
            let (b, s) = (
                self.median(w.group, backend, n),
                self.median(w.group, "sqlite", n),
            );
            if b.is_finite() && s.is_finite() && s > 0.0 {
                logs.push((b / s).ln());
                if b > s {
                    slower.push(format!("{} ({})", w.group, fmt_ratio(b / s)));
                }
            }
        }
        let geo = if logs.is_empty() {
            f64::NAN
        } else {
            (logs.iter().sum::<f64>() / logs.len() as f64).exp()
        };
        (geo, logs.len(), slower)
    }

    fn render(&self) -> String {
        let mut md = String::new();
        let nmax = self.largest();
        let started = self
            .runs
            .iter()
            .filter_map(|(_, v)| v["started"].as_u64())
            .min()
            .unwrap_or(0);
        let finished = self
            .runs
            .iter()
            .filter_map(|(_, v)| v["finished"].as_u64())
            .max()
            .unwrap_or(0);
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu_model = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "?".into());
        let mem = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .map_or("?".into(), |kib| fmt_bytes(kib * 1024.0));
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into());

        let _ = writeln!(md, "# peerbook benchmark report\n");
        let _ = writeln!(
            md,
            "- **Run**: {} (mode `{}`, book sizes {}), {:.1} min of benchmarks",
            utc(started),
            self.mode,
            self.sizes
                .iter()
                .map(|&n| size_label(n))
                .collect::<Vec<_>>()
                .join(", "),
            finished.saturating_sub(started) as f64 / 60.0
        );
        let _ = writeln!(
            md,
            "- **Machine**: {cpus} cores ({cpu_model}), {mem} RAM, Linux {kernel}; a 4 KiB \
             append + fdatasync in the target dir takes {} (median of 60, measured by the report)",
            fsync_latency(&self.out.join("work")).map_or("?".into(), fmt_ns)
        );
        let mut busy = false;
        for (name, run) in &self.runs {
            let load = |k: &str| run[k].as_str().unwrap_or("?").to_string();
            let first = |s: &str| {
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            busy |= first(&load("load_before")) > cpus as f64 * 0.75
                || first(&load("load_after")) > cpus as f64 * 0.75;
            let _ = writeln!(
                md,
                "- **Load average** (1, 5, 15 min) around `{name}`: {} before, {} after",
                load("load_before"),
                load("load_after")
            );
        }
        if busy {
            let _ = writeln!(
                md,
                "- **Warning: the machine was busy** (load average above 75 % of the cores): other \
                 jobs competed for CPU and disk, so times are pessimistic and noisier than on an idle machine."
            );
        }
        let _ = writeln!(
            md,
            "- Reproduce: `cargo xtask bench{}` (report: `{}`)\n",
            match self.mode.as_str() {
                "quick" => " --quick",
                "full" => " --full",
                _ => "",
            },
            self.out.join("report.md").display()
        );

        md.push_str(
            "How to read: every number is criterion's median time per operation. `/ raw` is the \
             peerbook operation divided by the raw engine's put (or get) of the same encoded \
             record bytes (heed, the rocksdb crate, and for the memory and file backends their \
             `Backend` trait); `/ SQLite` is the backend divided by SQLite doing the same \
             workload on the same records: below 1 means faster than SQLite. A `~` after a median \
             marks a noisy one (its 95 % confidence interval is wider than +-10 %).\n\n",
        );

        // ----- targets -----
        let _ = writeln!(md, "## Targets\n");
        let _ = writeln!(md, "| target | measured | verdict |\n|---|---|---|");
        let point = [
            "get_peer",
            "store_peer_new.sync",
            "store_peer_new.buffered",
            "store_peer_update.sync",
            "store_peer_update.buffered",
        ];
        for backend in BOOKS {
            for group in point {
                let Some(n) = self.largest_with(group, backend) else {
                    continue;
                };
                let (m, r) = (
                    self.median(group, backend, n),
                    self.median(group, raw_of(backend), n),
                );
                if !r.is_finite() {
                    continue;
                }
                let ratio = m / r;
                let _ = writeln!(
                    md,
                    "| peerbook overhead <= 1.5x raw engine: {group}, {backend} | {} vs {} ({}) = {} at {} | {} |",
                    fmt_ns(m),
                    fmt_ns(r),
                    raw_of(backend),
                    fmt_ratio(ratio),
                    size_label(n),
                    verdict(ratio <= 1.5)
                );
            }
        }
        let target_n = 100_000;
        for group in [
            "query_peers_last_seen",
            "query_peers_quality",
            "get_reconnection_candidates",
        ] {
            for backend in BOOKS {
                let Some(n) = self.largest_with(group, backend) else {
                    continue;
                };
                let m = self.median(group, backend, n);
                let at = if n >= target_n {
                    format!("{} at {}", fmt_ns(m), size_label(n))
                } else {
                    format!(
                        "{} at {} (100k not run in this mode)",
                        fmt_ns(m),
                        size_label(n)
                    )
                };
                let ok = m < 1e6;
                let v = if n >= target_n || !ok {
                    verdict(ok)
                } else {
                    "met at the sizes run"
                };
                let _ = writeln!(
                    md,
                    "| {group} (limit) < 1 ms median at 100k: {backend} | {at} | {v} |"
                );
            }
        }
        for backend in ["lmdb", "rocksdb", "file"] {
            let Some(n) = self.largest_with("open", backend) else {
                continue;
            };
            let m = self.median("open", backend, n);
            let ok = m < 1e9;
            let (at, v) = if n >= target_n {
                (format!("{} at {}", fmt_ns(m), size_label(n)), verdict(ok))
            } else {
                (
                    format!(
                        "{} at {} (100k not run in this mode)",
                        fmt_ns(m),
                        size_label(n)
                    ),
                    if ok {
                        "met at the sizes run"
                    } else {
                        verdict(false)
                    },
                )
            };
            let _ = writeln!(md, "| open of a 100k book < 1 s: {backend} | {at} | {v} |");
        }
        let mut best: Option<(String, f64)> = None;
        for backend in ["lmdb", "rocksdb", "file", "sqlite"] {
            if let Some((disk, json, _)) = self.bytes_per_peer(backend, nmax) {
                let ratio = disk / json;
                if backend != "sqlite" && best.as_ref().is_none_or(|b| ratio < b.1) {
                    best = Some((backend.to_string(), ratio));
                }
                if backend != "sqlite" {
                    let _ = writeln!(
                        md,
                        "| bytes on disk per peer <= compact JSON: {backend} | {:.0} B vs {:.0} B = {} at {} | {} |",
                        disk,
                        json,
                        fmt_ratio(ratio),
                        size_label(nmax),
                        verdict(ratio <= 1.0)
                    );
                }
            }
        }
        if let Some((backend, ratio)) = &best {
            let _ = writeln!(
                md,
                "| bytes on disk per peer <= 0.6x compact JSON on the best backend | best: {backend}, {} | {} |",
                fmt_ratio(*ratio),
                verdict(*ratio <= 0.6)
            );
        }
        for backend in BOOKS {
            let (geo, count, _) = self.vs_sqlite(backend, nmax);
            if count > 0 {
                let _ = writeln!(
                    md,
                    "| each backend vs SQLite (geometric mean of {count} workloads at {}) | {backend}: {} of SQLite's time | {} |",
                    size_label(nmax),
                    fmt_ratio(geo),
                    if geo <= 1.0 { "faster than SQLite" } else { "**slower than SQLite**" }
                );
            }
        }
        md.push('\n');

        // ----- choosing a backend -----
        let _ = writeln!(
            md,
            "## Choosing a backend (at {} peers)\n",
            size_label(nmax)
        );
        let _ = writeln!(
            md,
            "| backend | get_peer | store_peer (Sync) | store_peer (Buffered) | update_last_seen (Sync) | candidates (24 h, 5) | open | disk per peer | peak RSS | vs SQLite |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for name in BOOKS.iter().chain(["sqlite"].iter()) {
            let cell = |group: &str| {
                let m = self.median(group, name, nmax);
                if m.is_finite() {
                    fmt_ns(m)
                } else {
                    "n/a".into()
                }
            };
            let disk = match self.bytes_per_peer(name, nmax) {
                Some((d, _, _)) if *name != "memory" => format!("{d:.0} B"),
                _ => "n/a (RAM)".to_string(),
            };
            let rss = self
                .probe(name)
                .and_then(|p| p["hwm_kib"].as_f64())
                .map_or("-".into(), |k| fmt_bytes(k * 1024.0));
            let vs = if *name == "sqlite" {
                "1x".to_string()
            } else {
                fmt_ratio(self.vs_sqlite(name, nmax).0)
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {} | {disk} | {rss} | {vs} |",
                cell("get_peer"),
                cell("store_peer_new.sync"),
                cell("store_peer_new.buffered"),
                cell("update_last_seen.sync"),
                cell("get_reconnection_candidates"),
                cell("open"),
            );
        }
        md.push_str(
            "\nMedians per operation; `vs SQLite` is the geometric mean of backend / SQLite time \
             over every workload both ran (below 1x: faster). Memory has no durability: its \
             Sync column is empty.\n\n",
        );

        // ----- workloads -----
        let _ = writeln!(md, "## Workloads\n");
        for w in WORKLOADS {
            let _ = writeln!(md, "### {}\n\n{}.\n", w.group, w.what);
            self.workload_table(w, &mut md);
            if let Some(chart) = self.chart_for(w) {
                let _ = writeln!(md, "![{}]({chart})\n", w.group);
            }
        }

        // ----- bytes on disk -----
        let _ = writeln!(md, "## Bytes on disk per peer\n");
        md.push_str(
            "After the bulk load, a flush and a compaction (RocksDB `compact`, file backend \
             `compact`, SQLite `VACUUM` after a WAL checkpoint): allocated bytes of the book's \
             files (records, both indexes, meta, engine overhead) divided by the peers; next to \
             the mean size of the same records as compact JSON (`serde_json::to_vec`, sealed \
             secrets in base64) and as stored (format byte + postcard).\n\n",
        );
        let _ = writeln!(
            md,
            "| backend | peers | on disk / peer | backend's disk_usage / peer | record (postcard) | compact JSON | disk / JSON | LMDB compacting copy / peer |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        let mut disk_bars = Vec::new();
        for &n in &self.sizes {
            for name in ["lmdb", "rocksdb", "file", "sqlite"] {
                let Some(f) = self.fixture(name, n) else {
                    continue;
                };
                let Some((disk, json, rec)) = self.bytes_per_peer(name, n) else {
                    continue;
                };
                let usage = f["disk_usage"].as_f64().unwrap_or(f64::NAN) / n as f64;
                let compacted = match f["compacted_bytes"].as_f64() {
                    Some(c) if c > 0.0 => {
                        format!("{:.0} B ({})", c / n as f64, fmt_ratio(c / n as f64 / json))
                    }
                    _ => "-".into(),
                };
                let _ = writeln!(
                    md,
                    "| {name} | {} | {disk:.0} B | {usage:.0} B | {rec:.0} B | {json:.0} B | {} | {compacted} |",
                    size_label(n),
                    fmt_ratio(disk / json)
                );
                if n == nmax {
                    disk_bars.push((name.to_string(), disk));
                    if name == "sqlite" {
                        disk_bars.push(("postcard record".into(), rec));
                        disk_bars.push(("compact JSON".into(), json));
                    }
                }
            }
        }
        md.push('\n');
        let path = self.out.join("charts").join("bytes_per_peer.svg");
        if bar_chart(
            &path,
            &format!("bytes on disk per peer - {} peers", size_label(nmax)),
            "bytes per peer",
            &disk_bars,
            false,
            &|v| format!("{v:.0} B"),
        )
        .is_ok()
            && path.exists()
        {
            let _ = writeln!(md, "![bytes per peer](charts/bytes_per_peer.svg)\n");
        }

        // ----- memory -----
        let _ = writeln!(md, "## Peak memory\n");
        let _ = writeln!(
            md,
            "Each backend in its own child process (`bench_report probe BACKEND N`): open a copy of \
             the {}-peer book (memory: build it by bulk import), then {PROBE_CANDIDATES} \
             reconnection-candidate queries, {PROBE_GETS} random `get_peer`, {PROBE_QUERIES} \
             quality queries and {PROBE_UPDATES} `update_last_seen` (Buffered). Peak RSS is \
             the process's `VmHWM` (it counts the pages of memory-mapped files the process \
             touched, so LMDB's map shows up).\n",
            size_label(nmax)
        );
        let _ = writeln!(md, "| process | peers | peak RSS (VmHWM) | RSS at exit | peak at start | per peer | took |\n|---|---:|---:|---:|---:|---:|---:|");
        let mut mem_bars = Vec::new();
        let idle = self
            .probe("idle")
            .and_then(|p| p["hwm_kib"].as_f64())
            .unwrap_or(0.0);
        for p in &self.probes {
            let what = p["what"].as_str().unwrap_or("?");
            if let Some(err) = p.get("error") {
                let _ = writeln!(
                    md,
                    "| {what} | - | failed: {} | | | | |",
                    err.as_str().unwrap_or("?")
                );
                continue;
            }
            let hwm = p["hwm_kib"].as_f64().unwrap_or(0.0);
            let peers = p["peers"].as_f64().unwrap_or(0.0);
            let per = if peers > 0.0 {
                fmt_bytes((hwm - idle).max(0.0) * 1024.0 / peers)
            } else {
                "-".into()
            };
            let _ = writeln!(
                md,
                "| {what} | {} | {} | {} | {} | {per} | {:.1} s |",
                if peers > 0.0 {
                    size_label(peers as usize)
                } else {
                    "-".into()
                },
                fmt_bytes(hwm * 1024.0),
                fmt_bytes(p["rss_kib"].as_f64().unwrap_or(0.0) * 1024.0),
                fmt_bytes(p["start_hwm_kib"].as_f64().unwrap_or(0.0) * 1024.0),
                p["secs"].as_f64().unwrap_or(0.0)
            );
            if what != "idle" {
                mem_bars.push((what.to_string(), hwm * 1024.0));
            }
        }
        md.push_str("\n`per peer` is (peak - the idle process's peak) / peers. `RSS at exit` is read after the \
             book is closed: for LMDB the difference to the peak is pages of the memory-mapped data \
             file (page cache, reclaimable), not heap; the file backend's peak above its steady \
             RSS most likely comes from open, which reads the whole snapshot file into one buffer before building its maps.\n\n");
        let path = self.out.join("charts").join("peak_memory.svg");
        if bar_chart(
            &path,
            &format!("peak RSS - {} peers", size_label(nmax)),
            "VmHWM",
            &mem_bars,
            false,
            &|v| fmt_bytes(v),
        )
        .is_ok()
            && path.exists()
        {
            let _ = writeln!(md, "![peak memory](charts/peak_memory.svg)\n");
        }

        // ----- method -----
        let _ = writeln!(md, "## Method and caveats\n");
        let mut stale = Vec::new();
        for ((name, n), removed) in &self.cleanup {
            stale.push(format!("{name} {}: {removed}", size_label(*n)));
        }
        let _ = writeln!(
            md,
            "- Records are generated from a fixed seed: a libp2p-like id, a name, a P-256 JWK, a \
             32-byte shared secret, a STUN and a TURN server (credential sealed), 8 ICE candidates, \
             an address; `last_seen` uniform over 60 days; varied quality (30 % host, 45 % srflx, \
             20 % relay); 26 % with 1-3 failed attempts, 4 % blacklisted now. Mean record: {} \
             stored, {} as compact JSON.",
            self.bytes_per_peer("lmdb", nmax).or(self.bytes_per_peer("sqlite", nmax)).map_or("?".into(), |b| format!("{:.0} B", b.2)),
            self.bytes_per_peer("lmdb", nmax).or(self.bytes_per_peer("sqlite", nmax)).map_or("?".into(), |b| format!("{:.0} B", b.1)),
        );
        md.push_str(
            "- Books are built once per backend and size by bulk import (1000 records per atomic \
             batch, Buffered, then flush and compaction) and cached under `books/` between runs \
             (rebuilt whenever the bench binary changes, i.e. after any change to the core, a backend or the generator); every benchmark works on a copy. The clock is \
             a fixed `ManualClock`; `inactive_after` is 54 days so that exactly the 10 % oldest \
             peers are stale.\n",
        );
        let _ =
            writeln!(
            md,
            "- `cleanup_stale_peers`, `import_data` and `open` run 10 times (+1 warm-up), each \
             on a fresh copy or a fresh empty book; copying, opening and closing are not timed \
             (open times only the open). They are measured up to 100k peers. Peers removed per \
             cleanup: {}.",
            if stale.is_empty() { "-".into() } else { stale.join(", ") }
        );
        md.push_str(
            "- Writes of a new peer (`store_peer_new`) delete it again after the timed call, so the \
             book keeps its size; the delete is not timed. Other writes change random existing \
             peers (their `last_seen`, attempts and quality drift during the run, as in a live \
             node).\n\
             - `open` is a warm start: the files are in the OS page cache (dropping it needs root \
             and would disturb other users of the machine); a cold start from disk adds the read \
             of the files. The memory backend's `open` is the core's own work only.\n\
             - SQLite runs the same record logic (seal, validate, encode/decode, score) around \
             its table; its cleanup deletes by the `last_seen` index (the table has no attempts \
             column; in these books only inactivity makes a peer stale, so the same peers go), \
             and its `store_peer` of a record does not re-open the sealed secrets as peerbook \
             does.\n\
             - Raw engines: heed with the LMDB backend's flags (NO_META_SYNC, `force_sync` for \
             Sync); the rocksdb crate with default options and a synced WAL write for Sync and \
             Buffered alike; \
             `lmdb-trait` / `rocksdb-trait` are the backends' `Backend::write`/`get` with one put, \
             to separate the adapter's cost from the store's.\n\
             - Memory ignores durability: it appears in the Buffered groups only.\n\
             - RocksDB's Buffered rows measure synced writes: `peerbook-rocksdb` writes Buffered \
             exactly like Sync (an unsynced write-ahead log can lose a batch and keep a later \
             one on power loss), so they cost what its Sync rows cost. For cheap buffered \
             writes, see the file rows (LMDB's Buffered skips only the meta-page sync).\n",
        );
        md
    }
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = common::out_dir();
    if args.first().map(String::as_str) == Some("probe") {
        let what = args.get(1).ok_or("probe needs a backend")?;
        let n: usize = args.get(2).ok_or("probe needs a size")?.parse()?;
        return probe(&out, what, n);
    }
    let no_probe = args.iter().any(|a| a == "--no-probe");

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
