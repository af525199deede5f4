//! The markdown of the report: [`Report`] holds everything collected and
//! `render` writes `report.md` (tables per workload, fixtures, memory, verdicts).

#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use peerbook_bench as common;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

use common::size_label;
use serde_json::Value;

// ----- the report -----------------------------------------------------------------

pub(crate) struct Report {
    pub(crate) out: PathBuf,
    pub(crate) results: Results,
    pub(crate) sizes: Vec<usize>,
    pub(crate) mode: String,
    pub(crate) fixtures: BTreeMap<(String, usize), Value>,
    pub(crate) cleanup: BTreeMap<(String, usize), u64>,
    pub(crate) probes: Vec<Value>,
    /// The paired get and write floors (`data/paired-<backend>.json`), by backend.
    pub(crate) paired: BTreeMap<String, Value>,
    pub(crate) runs: Vec<(String, Value)>,
}

impl Report {
    pub(crate) fn get(&self, group: &str, function: &str, n: usize) -> Option<&Estimate> {
        self.results
            .get(&(group.to_string(), function.to_string(), size_label(n)))
    }

    pub(crate) fn median(&self, group: &str, function: &str, n: usize) -> f64 {
        self.get(group, function, n).map_or(f64::NAN, |e| e.median)
    }

    /// The median of `group` for `function` at `n`, formatted; `-` when not run.
    pub(crate) fn median_cell(&self, group: &str, function: &str, n: usize) -> String {
        let m = self.median(group, function, n);
        if m.is_finite() {
            fmt_ns(m)
        } else {
            "-".into()
        }
    }

    pub(crate) fn largest(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }

    pub(crate) fn functions(&self, group: &str) -> Vec<String> {
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

    pub(crate) fn workload_table(&self, w: &Workload, md: &mut String) {
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
    pub(crate) fn fixture(&self, name: &str, n: usize) -> Option<&Value> {
        self.fixtures.get(&(name.to_string(), n))
    }

    /// (dir bytes per peer, compact JSON bytes per peer, postcard bytes per peer).
    pub(crate) fn bytes_per_peer(&self, name: &str, n: usize) -> Option<(f64, f64, f64)> {
        let f = self.fixture(name, n)?;
        let peers = f["peers"].as_f64()?;
        Some((
            f["dir_bytes"].as_f64()? / peers,
            f["json_bytes"].as_f64()? / peers,
            f["record_bytes"].as_f64()? / peers,
        ))
    }

    pub(crate) fn probe(&self, what: &str) -> Option<&Value> {
        self.probes
            .iter()
            .find(|p| p["what"] == what && p.get("hwm_kib").is_some())
    }

    /// Geometric mean of backend / SQLite over every workload both ran at `n`.
    pub(crate) fn vs_sqlite(&self, backend: &str, n: usize) -> (f64, usize, Vec<String>) {
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

    pub(crate) fn render(&self) -> String {
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
             marks a noisy one (its 95 % confidence interval is wider than +-10 %). The floors \
             the targets use are their own groups: `get_floor` (cheapest engine read + `PeerRecord::decode`) \
             and `store_peer_*.floor.buffered` (one raw commit of the batch the store wrote); the \
             get and Buffered write targets are judged on the paired run instead (see Method), \
             which times each store and its floor in the same window.\n\n",
        );

        self.targets(&mut md);

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
            let cell = |group: &str| self.median_cell(group, name, nmax);
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

        self.writers_table(&mut md);
        self.interleaved_table(&mut md);
        self.million(&mut md);

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
        let _ = writeln!(md, "| process | peers | peak RSS (VmHWM) | steady RSS (book open, after the workload) | peak / steady | RSS at exit | peak at start | per peer | took |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|");
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
                    "| {what} | - | failed: {} | | | | | | |",
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
            let steady = p["steady_kib"].as_f64().unwrap_or(0.0);
            let (steady_cell, ratio) = if steady > 0.0 {
                (fmt_bytes(steady * 1024.0), fmt_ratio(hwm / steady))
            } else {
                ("-".into(), "-".into())
            };
            let _ = writeln!(
                md,
                "| {what} | {} | {} | {steady_cell} | {ratio} | {} | {} | {per} | {:.1} s |",
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
             file (page cache, reclaimable), not heap. The file backend's open streams its \
             snapshot frame by frame into its maps, so its peak stays near its steady RSS.\n\n");
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
             Sync); the rocksdb crate configured as `peerbook-rocksdb` configures it (one column \
             family per space, its block cache, Bloom filter, hash index and LZ4: \
             `RocksOptions::rocksdb_options`) and a synced WAL write for Sync and Buffered alike; \
             `lmdb-trait` / `rocksdb-trait` are the backends' `Backend::write`/`get` with one put, \
             to separate the adapter's cost from the store's.\n\
             - Memory ignores durability: it appears in the Buffered groups only.\n\
             - Floors (baselines bench): for each size a memory book of the generated peers is \
             built through the store; every raw engine is built by the batches the store wrote \
             for that load (all four spaces: records, both indexes, meta), one Buffered commit \
             each in the same order, then the disk engines are settled, closed and opened \
             again, as a book is. LMDB lays its pages out by the order of its writes: filled \
             in key order instead, its floor dirtied 12.2 pages per new-peer commit where the \
             store-built book dirtied 15.2 for the same batch (strace, 100k), a floor unlike \
             the book. `get_floor` is the engine's cheapest read of a random stored record \
             (no copy out of heed or RocksDB; the memory and file engines' get) plus \
             `PeerRecord::decode` of its bytes. The write floors replay, one raw commit \
             each, 4096 batches (each its own random key, as the store benches write a fresh \
             one per call; 64 kept their keys' paths in cache) a recording backend captured \
             from `store_peer` on that book (a \
             new peer; an IP change of a random peer), each followed untimed by the batch that \
             undid it in the store (`remove_peer`, the store of the previous record), so every \
             replay meets the state the store met. The raw engines commit like their backends \
             (heed: Buffered = commit without `force_sync`; RocksDB: a synced WAL write).\n\
             - Get and write targets, paired (the report's own run, `peerbook_bench::paired`, \
             after the benches): the criterion medians of a store (peerbook bench) and of its \
             floor (baselines bench) are taken minutes apart, and this disk's sync latency swings up \
             to 10x within minutes, so for the engines whose Buffered commit syncs (LMDB, \
             RocksDB) their ratio says little; a busy machine moves reads as much (RocksDB \
             `get_peer` at 1M: 4.57x its floor in one run, 0.45x in the next, same binary; \
             at 100k floors read above their store). The Targets rows `get_peer / get floor` \
             and `store_peer_* Buffered / batch \
             floor` therefore come from one process that, on a copy of the cached fixture book \
             (memory: the same book, built from the reference book's batches) and on the raw \
             store built as the floors' (`raw::replayed`, same captured batches), alternates \
             blocks of 25 `get_peer` calls and 25 floor reads (the engine's cheapest read + \
             `PeerRecord::decode`, as `get_floor`; the same random peers on both sides, read \
             before any write changed the book), then blocks of 25 Buffered `store_peer` calls and 25 floor replays (the side that goes \
             first changes every round), each op timed alone and undone untimed as in the \
             benches (an update's peer is one not updated before in the run, its record \
             read and changed before its block, untimed); 100 rounds (quick: 40), fewer once a workload ran 12 s (quick: 5 s) past \
             20 rounds (quick: 10). Shown: the median per op of each side over all rounds, \
             and the median of the rounds' own ratios (the verdict, as for the writers \
             target): it compares blocks 25 ops apart, so a disk that changes speed during \
             the run moves both sides of a round, where pooled medians can jump between the \
             disk's fast and slow spells (one RocksDB update run: 1.86x pooled, 0.98x by \
             rounds). A paired row is `NOT JUDGED` when the middle half of its rounds (the \
             lowest and highest quarter dropped: one disturbed round in 100 is expected, and \
             the median ignores it) spreads more than 2x. The pairing runs at the largest size of the run up to 100k (in \
             the full run: 100k, not 1M, where the reference book and four replayed raw \
             stores would cost minutes and gigabytes; the 1M get rows of criterion stay in the \
             tables). `--no-paired` skips it; the targets then read the last paired run's files \
             if there are any (files from before the get pairing judge no get row).\n\
             - Where a Buffered `store_peer` goes over its floor on memory (callgrind, \
             instructions per call, 10k peers, `examples/write_cost.rs`, 2026-12-02): a new peer \
             costs 20,650 against a floor of 3,890 (the engine's own write, 3,860, is in both); \
             besides that write it seals two secrets with AES-GCM (3,380, plus one getrandom \
             system call for the nonces), checks every field of the caller's input (3,700: \
             candidates, urls, id, name), encodes the record (4,260) and looks the id up (830). \
             An update costs 29,680 against 4,340: it decodes the stored record with its rule \
             checks (12,140; a record that breaks a rule is `Corrupted`, never trusted for its \
             index keys), checks the record given (3,400), encodes (3,680) and drops the old \
             record (2,330). The engine write plus the seals (new) or plus the input checks \
             (update) alone pass 1.5x the floor, so the 1.5x target is blocked by work a store \
             must do, on memory where the floor is a bare map insert; the disk engines' floors \
             carry their commit and stay closer (the Targets rows).\n\
             - Concurrent writers: the disk backends' Sync book, `update_last_seen` of random \
             peers from N threads at once; criterion's time per iteration is wall time per \
             acknowledged write. The 8-writers target is judged on interleaved rounds run right \
             after those groups (rounds of 1 writer and 8 writers, the order alternating by round, the same writes per side: \
             5 x 2,000 by default, 5 x 500 in quick mode): the median of the per-round 8 / 1 ratios. On this shared \
             machine the disk's fdatasync latency swings from 130 us to 4 ms within minutes, \
             and it sets both the 1-writer rate and the group size; criterion's groups run a \
             minute apart, so the ratio of their medians swung from 2.4x to 7.6x (RocksDB, \
             same binary) with the disk, where each round's pair is measured seconds apart. \
             Rounds that disagree judge nothing (`NOT JUDGED`): a round above 12x (8 writers \
             share each sync and overlap their next writes' CPU with it, so a round passes 8x \
             by about the CPU part of a write, 9-10x here; far beyond, only a disk that \
             changed speed between the two sides explains it: a full run's 1M RocksDB rounds \
             read 14.2x to 42.9x) or rounds more than 2x apart.\n\
             - The group floor of the 8-writers target (`peerbook_bench::group_floor`), \
             measured beside those rounds: the backend's own synced write of the batches the \
             store writes, one at a time and 8 joined, with nothing else around it (the \
             store's group commit joins the batches of the writers that queued into one \
             `Backend::write` with `Durability::Sync`). It is the backend's floor, not the \
             raw engine's: for `file` that write is our own crate, and LMDB's LZ4 runs in \
             our adapter. Beside each \
             writers round (after it, then before it, alternating), one thread captures the \
             batches the store builds for `update_last_seen` of distinct random peers (a \
             Buffered book whose writes are kept, not applied: as many a round as the \
             writers' round writes, 4,000, 1,008 in quick mode, so that the two copies take \
             as many writes and drift alike; they differ still in which peers (distinct ones \
             here, random ones with repeats there) and in the order of the writes) on a second fresh copy of the same pristine book, opened once as a Sync \
             book and closed (an older cached book is migrated, as the writers' copy is), \
             and replays them through that backend's own \
             `Backend::write`, in pairs of chunks of 8: one synced write per batch, and the \
             8 joined into one synced write, the side that goes first alternating by pair \
             (untimed: the capture and the copies). The floor's own ratio (8 joined over 1 \
             each) does not bound the store's 8 / 1: the store's lone writer pays CPU between \
             its syncs (read, decode, encode, seal) that 8 writers overlap with each other's \
             syncs, so the store's ratio can pass the floor's (why a round may pass 8x, \
             above). What does bound it is the floor's 8-joined rate: with 8 writers a group \
             holds at most 8 batches, and no group write of them is faster than the floor's \
             synced write of 8 joined (the same batches through the same backend write, \
             nothing else), so the store's 8-writer rate is at most the floor's 8-joined \
             rate, and its 8 / 1 at most `bound` = the floor's 8-joined rate over the \
             store's own 1-writer rate. It is taken per round (the floor round beside the \
             writers round), then the median over the rounds: each round's 8 / 1 is at \
             most its bound, so the median 8 / 1 is at most the median bound. A missed \
             target is `BLOCKED (backend: 8 writers can reach at most X here, W with the \
             noise of two rounds (1.25x): group floor 8-joined Y/s vs the store's 1 writer \
             Z/s)` (X the median bound, W = 1.25 X rounded down, Y and Z the medians of the two rates) \
             when W is below 4x (a writers round may pass its bound by up to 1.25x from the \
             noise of two rounds measured seconds apart, so only a bound below 4x even \
             1.25x higher rules 4x out: X below 3.2x) and the per-round bounds agree (none \
             more than 2x another, and no writers round more than 1.25x its own bound: the \
             bound holds only while the disk keeps its speed across the seconds between the \
             two rounds, and a round far past it shows it did not), else `NOT MET (ours: \
             the backend's group floor allows X)`; a floor missing from the file, unreadable, or measured with another k than \
             the 8 writers or another count of rounds than theirs, is not used (plain \
             `NOT MET`); whatever the floor, the target is `NOT JUDGED` when the writers' \
             own rounds disagree. The writers table shows the floor's ratio and the bound. Getting \
             past a BLOCKED bound takes a cheaper synced write of 8 joined batches on that \
             backend (for LMDB: fewer pages written and synced per commit); a faster store \
             alone cannot (a faster lone writer only lowers the bound). The floor is taken through the backend's own write, not the raw \
             engine crates of the baselines: it is the call the group commit makes, the \
             LMDB book's values stay in its compressed layout (a raw heed write of the \
             store's plain records into that book would grow every page it touches), and \
             a copy of the book costs seconds where filling a raw engine from it took 33 s \
             (file) to 133 s (LMDB) at 1M; the adapters' own work per batch (a few \
             microseconds, LMDB's LZ4) is in both sides.\n\
             - A million peers (`--full`): fast benchmarks take 10 samples of 0.8 s; export, \
             import and cleanup stop at 100k; the adapter-only raw stores (`*-trait`) are not \
             filled at 1M.\n\
             - RocksDB's Buffered rows measure synced writes: `peerbook-rocksdb` writes Buffered \
             exactly like Sync (an unsynced write-ahead log can lose a batch and keep a later \
             one on power loss), so they cost what its Sync rows cost. For cheap buffered \
             writes, see the file rows (LMDB's Buffered skips only the meta-page sync).\n",
        );
        md
    }
}
