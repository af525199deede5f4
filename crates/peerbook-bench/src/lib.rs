//! What the two bench targets and the report example share: the run mode and book
//! sizes, the deterministic peer generator, the fixtures (pristine books built once
//! per backend and size, cached on disk), and where results go.
//!
//! The library of `peerbook-bench` (not published), shared by the two criterion
//! benches (`benches/`) and the report binary (`src/bin/bench_report`):
//! - this file: constants, the run mode and sizes, where results go;
//! - [`generator`]: the deterministic peer generator;
//! - [`fixtures`]: the engines (through the `peerbook_engines` registry) and the
//!   pristine books built once per engine and size;
//! - [`sql`]: the SQLite baseline;
//! - [`raw`]: the raw engines under the backends (the baselines' floors);
//! - [`capture`]: the batches `store_peer` writes, recorded for the write floors;
//! - [`writers`]: the concurrent durable writers workload (also for crash harnesses);
//! - [`group_floor`]: the backend's group floor (a synced write of the store's
//!   batches, one per write and 8 joined: the backend's own write in
//!   `floor_round`, whose joined rate bounds those writers' rate, and over one
//!   writer's rate their speed-up; the raw engine's in `group_floor()`, which the
//!   `group_writers` example uses);
//! - [`paired`]: the write targets' store and floor, timed in one window;
//! - [`counting`]: what the candidates examples share (a backend that counts what a
//!   query reads, the query, their books, a median timer).

pub mod capture;
pub mod counting;
pub mod fixtures;
pub mod generator;
pub mod group_floor;
pub mod paired;
pub mod raw;
pub mod sql;
pub mod writers;

pub use capture::*;
pub use fixtures::*;
pub use generator::*;
pub use writers::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Seed of every generated peer: same seed, same book, on every backend and run.
pub const SEED: u64 = 0x5EED_B00C_2024_0007;
/// The (fixed) time of every book: a `ManualClock` standing here.
pub const NOW_MS: u64 = 1_750_000_000_000;
/// One day in ms.
pub const DAY_MS: u64 = 86_400_000;
/// `last_seen` is spread uniformly over this many days before `NOW_MS`.
pub const SPREAD_DAYS: u64 = 60;
/// `Options::inactive_after` of the bench books: with `last_seen` uniform over 60 days,
/// the peers unseen for more than 54 days are the 10 % that cleanup removes.
pub const INACTIVE_AFTER_DAYS: u64 = 54;
/// Bulk loads import this many records per atomic batch.
pub const LOAD_CHUNK: usize = 1000;
/// Bump when the generator or the fixture layout changes: cached books are rebuilt
/// (they are also rebuilt whenever the bench binary changes, see `fixture_stamp`).
pub const FIXTURE_VERSION: &str = "peerbook-bench fixtures v2";

/// Whether `peerbook-lmdb` offers a Buffered mode cheaper than Sync that keeps the
/// Buffered promise (survives SIGKILL; a power cut loses at most a suffix, never
/// corrupts), as the backend declares it ([`peerbook_lmdb::LmdbBackend::CHEAP_BUFFERED`]).
/// When it is `false` the report drops the "LMDB Buffered <= 0.1x Sync" target row
/// instead of judging it. Recorded in the run data (`run-peerbook.json`).
pub const LMDB_HAS_BUFFERED_MODE: bool = peerbook_lmdb::LmdbBackend::CHEAP_BUFFERED;

/// Thread counts of the concurrent durable writers workload.
pub const WRITER_THREADS: [usize; 4] = [1, 2, 4, 8];

/// Captured `store_peer` calls of each kind replayed by a write floor.
///
/// Each captured batch writes its own random key, and the replay cycles through
/// them: with 64 the floor kept re-inserting the same 64 keys, whose map or B-tree
/// paths stayed in the CPU caches, while the store's benchmarks write a fresh random
/// key on every call (measured on the memory engine at 100k: 1.06 us per replayed
/// new-peer batch with 64, 5.27 us with 4096, same run). 4096 keys cost a few
/// megabytes of cache paths, more than a core's L2 holds; the floor is still the
/// warmer side, since the store never reuses a new key.
pub const CAPTURED_WRITES: usize = 4096;

/// The criterion group of the concurrent writers with `threads` threads.
pub fn writers_group(threads: usize) -> String {
    format!("concurrent_update_last_seen.sync.t{threads}")
}

/// What a cached fixture must match: the generator version and the bench binary
/// that built it (any change to the core, a backend or its default options rebuilds
/// the binary, so books are never reused across such changes).
pub fn fixture_stamp() -> String {
    let exe = std::env::current_exe()
        .and_then(fs::metadata)
        .map(|m| {
            let modified = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            format!("{} bytes, modified {modified}", m.len())
        })
        .unwrap_or_else(|_| "unknown binary".into());
    format!("{FIXTURE_VERSION}; bench binary {exe}")
}

// ----- mode and sizes -----------------------------------------------------------------

/// How much to measure: `Smoke` under `cargo test --benches` (every benchmark once, on
/// tiny books), otherwise `PEERBOOK_BENCH_MODE` = quick | default | full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Smoke,
    Quick,
    Default,
    Full,
}

/// Criterion settings of the fast (single operation) benchmarks.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub sample_size: usize,
    pub warm_up: Duration,
    pub measurement: Duration,
    pub nresamples: usize,
}

impl Mode {
    /// `Smoke` unless cargo passed `--bench` without `--test` (criterion's own rule
    /// for its test mode, which runs every benchmark once).
    pub fn detect() -> Mode {
        let args: Vec<String> = std::env::args().collect();
        if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
            Mode::from_env()
        } else {
            Mode::Smoke
        }
    }

    /// The mode `PEERBOOK_BENCH_MODE` names (default: `Default`).
    pub fn from_env() -> Mode {
        match std::env::var("PEERBOOK_BENCH_MODE").as_deref() {
            Ok("quick") => Mode::Quick,
            Ok("full") => Mode::Full,
            Ok("smoke") => Mode::Smoke,
            _ => Mode::Default,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Default => "default",
            Mode::Full => "full",
        }
    }

    /// Book sizes, in peers.
    pub fn sizes(self) -> Vec<usize> {
        match self {
            Mode::Smoke => vec![40],
            Mode::Quick => vec![1_000, 10_000],
            Mode::Default => vec![1_000, 100_000],
            Mode::Full => vec![1_000, 100_000, 1_000_000],
        }
    }

    /// Criterion settings of the fast benchmarks on a book of `n` peers: a million-peer
    /// book gets fewer samples and a shorter measurement (its medians are stable
    /// enough, and the full run must stay under an hour).
    pub fn timing(self, n: usize) -> Timing {
        let ms = Duration::from_millis;
        if n >= 1_000_000 {
            return Timing {
                sample_size: 10,
                warm_up: ms(200),
                measurement: ms(800),
                nresamples: 10_000,
            };
        }
        match self {
            Mode::Smoke | Mode::Quick => Timing {
                sample_size: 10,
                warm_up: ms(100),
                measurement: ms(400),
                nresamples: 5_000,
            },
            // The full run is the default run plus the million-peer book.
            Mode::Default | Mode::Full => Timing {
                sample_size: 15,
                warm_up: ms(400),
                measurement: ms(1_500),
                nresamples: 20_000,
            },
        }
    }

    /// Whole-book workloads that rebuild or read their whole book for every run
    /// (cleanup, import, export) are measured up to this size; a million-peer book
    /// would take minutes per run.
    pub fn whole_book_max(self) -> usize {
        100_000
    }
}

/// "1k", "100k", "1M".
pub fn size_label(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// Where results and fixtures go: `PEERBOOK_BENCH_OUT`, else `$CARGO_TARGET_DIR`
/// (or the target dir this binary was built in) + `/peerbook-bench`.
pub fn out_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PEERBOOK_BENCH_OUT") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
        };
        return dir.join("peerbook-bench");
    }
    // <target>/<profile>/{deps,examples}/<binary>
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("peerbook-bench")
}

/// Write `value` as `<out>/data/<name>.json`.
pub fn write_data(out: &Path, name: &str, value: &Value) {
    let dir = out.join("data");
    fs::create_dir_all(&dir).expect("create the bench data directory");
    let text = serde_json::to_string_pretty(value).expect("JSON");
    fs::write(dir.join(format!("{name}.json")), text).expect("write bench data");
}

/// `v` as a number when it is finite and above zero (a rate or a time read back
/// from a data file: zero, negative or infinite would make a ratio lie).
pub fn positive(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite() && *x > 0.0)
}

/// `v` as an array of [`positive`] numbers (per-round rates read back from a data
/// file); `None` when it is not an array or any of its elements is not one.
pub fn positives(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(positive).collect()
}

/// `num[r] / den[r]` for each round `r`: the per-round ratio of two rates
/// measured in the same round (the interleaved writers' 8 / 1, the group floor's
/// joined / single, the bound of the 8-writers target); `None` when the two have
/// different counts of rounds (a damaged file: its rounds cannot be paired, and
/// truncating would pair a ratio with the wrong round's rate).
pub fn per_round(num: &[f64], den: &[f64]) -> Option<Vec<f64>> {
    (num.len() == den.len()).then(|| num.iter().zip(den).map(|(n, d)| n / d).collect())
}

/// One line of progress on stderr, next to criterion's own output.
pub fn progress(started: Instant, what: &str) {
    eprintln!("==> [{:>6.1}s] {what}", started.elapsed().as_secs_f64());
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg says.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A field of this process's `/proc/self/status` in KiB (`"VmHWM:"` the peak RSS,
/// `"VmRSS:"` the current one); 0 where the file or the field is missing.
pub fn status_kib(field: &str) -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Time `timed` alone, `iters` times: `before` prepares its input (not timed),
/// `after` cleans up (not timed). For criterion's `iter_custom`.
pub fn timed_loop<T, R>(
    iters: u64,
    mut before: impl FnMut() -> T,
    mut timed: impl FnMut(&mut T) -> R,
    mut after: impl FnMut(T, R),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut input = before();
        let t = Instant::now();
        let out = timed(&mut input);
        total += t.elapsed();
        after(input, std::hint::black_box(out));
    }
    total
}

/// What a bench binary records about its run (see [`Ctx::start_run`]).
pub struct RunInfo {
    pub(crate) started_at: u64,
    pub(crate) load_before: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn per_round_ratios_and_positive_rates() {
        assert_eq!(
            super::per_round(&[6.0, 4.0], &[2.0, 4.0]),
            Some(vec![3.0, 1.0])
        );
        assert_eq!(super::per_round(&[], &[]), Some(vec![]));
        // Rounds that cannot be paired give no ratio, not a truncated one.
        assert_eq!(super::per_round(&[6.0, 4.0], &[2.0, 4.0, 9.0]), None);
        assert_eq!(super::per_round(&[], &[1.0]), None);
        assert_eq!(super::positives(&json!([1.0, 2.5])), Some(vec![1.0, 2.5]));
        assert_eq!(super::positives(&json!([])), Some(vec![]));
        // One rate that is not a positive number voids the array.
        for bad in [
            json!([1.0, 0.0]),
            json!([-1.0, 2.0]),
            json!([1.0, "x"]),
            json!(1.0),
        ] {
            assert_eq!(super::positives(&bad), None, "{bad}");
        }
    }

    #[test]
    fn status_kib_reads_this_process_s_rss() {
        let (rss, peak) = (super::status_kib("VmRSS:"), super::status_kib("VmHWM:"));
        assert!(rss > 0 && peak >= rss, "VmRSS {rss} KiB, VmHWM {peak} KiB");
        assert_eq!(super::status_kib("NoSuchField:"), 0);
    }
}
