//! Collecting the results: what is measured (the workloads, in report order),
//! criterion's estimates, the fsync latency of the disk, and the peak-memory probe
//! (this binary started again as a child).

#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use peerbook_bench as common;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::sql::Sql;
use common::{peer_id, size_label, status_kib, Generator, Kind, Rng, DAY_MS, SEED};
use peerbook::{CandidateQuery, Durability, Order, PeerBook, PeerQuery, SortBy};
use serde_json::{json, Value};

pub(crate) struct Workload {
    pub(crate) group: &'static str,
    pub(crate) what: &'static str,
    /// Compared with the raw engines (put / get of the encoded record).
    pub(crate) has_raw: bool,
}

pub(crate) const WORKLOADS: &[Workload] = &[
    Workload { group: "get_peer", what: "`get_peer` of a random stored peer (read + decode + validate)", has_raw: true },
    Workload { group: "get_floor", what: "the floor under `get_peer`: the engine's cheapest read of a stored record (no copy where the engine allows it) + `PeerRecord::decode` of its bytes (what `get_peer` does after the engine read)", has_raw: false },
    Workload { group: "store_peer_new.sync", what: "`store_peer` of a new `NewPeer` (seal 2 secrets, validate, encode, 1 batch), Durability::Sync", has_raw: true },
    Workload { group: "store_peer_new.buffered", what: "the same, Durability::Buffered", has_raw: true },
    Workload { group: "store_peer_update.sync", what: "`store_peer` of an updated record (an IP change: candidates, address, last_seen), Sync", has_raw: true },
    Workload { group: "store_peer_update.buffered", what: "the same, Buffered", has_raw: true },
    Workload { group: "store_peer_new.floor.buffered", what: "the floor under a Buffered `store_peer` of a new peer: one raw commit of exactly the batch the store wrote for it (record, index entries, counters; captured by a recording backend, undone untimed)", has_raw: false },
    Workload { group: "store_peer_update.floor.buffered", what: "the same for an update (an IP change)", has_raw: false },
    Workload { group: "update_connection_quality.sync", what: "`update_connection_quality` (latency + connection type) of a random peer, Sync", has_raw: false },
    Workload { group: "update_connection_quality.buffered", what: "the same, Buffered", has_raw: false },
    Workload { group: "increment_reconnection_attempts.sync", what: "`increment_reconnection_attempts` of a random peer, Sync", has_raw: false },
    Workload { group: "increment_reconnection_attempts.buffered", what: "the same, Buffered", has_raw: false },
    Workload { group: "update_last_seen.sync", what: "`update_last_seen` of a random peer, Sync", has_raw: false },
    Workload { group: "update_last_seen.buffered", what: "the same, Buffered", has_raw: false },
    Workload { group: "concurrent_update_last_seen.sync.t1", what: "concurrent durable writers: 1 thread of Sync `update_last_seen` on a shared book (time per acknowledged write)", has_raw: false },
    Workload { group: "concurrent_update_last_seen.sync.t2", what: "the same, 2 threads (wall time per write: ops/s is the throughput of all threads)", has_raw: false },
    Workload { group: "concurrent_update_last_seen.sync.t4", what: "the same, 4 threads", has_raw: false },
    Workload { group: "concurrent_update_last_seen.sync.t8", what: "the same, 8 threads", has_raw: false },
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

pub(crate) const BOOKS: [&str; 4] = ["memory", "lmdb", "rocksdb", "file"];
pub(crate) use common::raw::RAW_KINDS as RAWS;

pub(crate) fn raw_of(backend: &str) -> &'static str {
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
pub(crate) struct Estimate {
    pub(crate) median: f64,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
}

/// (group, function, size label) -> estimate.
pub(crate) type Results = BTreeMap<(String, String, String), Estimate>;

pub(crate) fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

/// How a data file of the benches or of the report is known to be this run's.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Written {
    /// Its `at` (unix seconds) is not before this start, the peerbook bench's
    /// (to the second: the start is rounded down, `at` too).
    Since(u64),
    /// By the report's own child, which stamps nothing: the report removes every
    /// earlier file of the kind before it starts the child, so a file there is the
    /// child's (with `--no-paired`, the last report's, as the option says).
    ByReport,
}

/// `<out>/data/<stem>.json` when it is this run's data of `backend` at `peers`
/// peers: it parses, its `backend` and `peers` fields say so (a file holding
/// another backend or size than its name is refused), and it was `written` in this
/// run. `None` otherwise, which the report shows as not run; the values inside are
/// its readers' to check ([`common::positive`] for rates and times).
pub(crate) fn run_data(
    out: &Path,
    stem: &str,
    backend: &str,
    peers: usize,
    written: Written,
) -> Option<Value> {
    let v = read_json(&out.join("data").join(format!("{stem}.json")))?;
    let ours = v["backend"].as_str() == Some(backend) && v["peers"].as_u64() == Some(peers as u64);
    let now = match written {
        Written::Since(start) => v["at"].as_u64()?.saturating_add(1) >= start,
        Written::ByReport => true,
    };
    (ours && now).then_some(v)
}

/// Every `new/` result criterion wrote at or after `since` (unix seconds).
pub(crate) fn load_criterion(dir: &Path, since: u64, out: &mut Results) {
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

/// Median time of a 4 KiB append + `fdatasync` in `dir`: what one Sync write costs
/// this machine's disk at least.
pub(crate) fn fsync_latency(dir: &Path) -> Option<f64> {
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
    Some(common::median(&times))
}

// ----- memory probe (child process) ---------------------------------------------------

pub(crate) const PROBE_GETS: usize = 2000;
pub(crate) const PROBE_QUERIES: usize = 100;
pub(crate) const PROBE_CANDIDATES: usize = 20;
pub(crate) const PROBE_UPDATES: usize = 1000;

/// The probe workload on a book: a node restarting and serving its peers.
pub(crate) fn probe_book<B: peerbook::backend::Backend>(book: &PeerBook<B>, n: usize) {
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

pub(crate) fn probe(out: &Path, what: &str, n: usize) -> Res<()> {
    let start_hwm = status_kib("VmHWM:");
    let started = Instant::now();
    // RSS with the book open, after the workload (before it is closed).
    let mut steady_kib = 0;
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
            steady_kib = status_kib("VmRSS:");
            note = "open a copy of the table, then the probe workload".into();
        }
        _ => {
            let kind: Kind = what
                .parse()
                .map_err(|_| format!("unknown backend {what}"))?;
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
            steady_kib = status_kib("VmRSS:");
        }
    }
    let result = json!({
        "what": what,
        "peers": n,
        "hwm_kib": status_kib("VmHWM:"),
        "rss_kib": status_kib("VmRSS:"),
        "steady_kib": steady_kib,
        "start_hwm_kib": start_hwm,
        "secs": started.elapsed().as_secs_f64(),
        "note": note,
    });
    common::remove(&work);
    println!("{result}");
    Ok(())
}

/// Run the probe for `what` in a child process; its JSON result.
pub(crate) fn run_probe(out: &Path, what: &str, n: usize) -> Value {
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
