//! `cargo xtask bench`: the comparative benchmark report, and its CI smoke check.

use crate::ci::TEST_ARGS;
use crate::{cargo, run, target_dir};
use std::time::Instant;

/// Every bench target compiled and run once in test mode (criterion runs each
/// benchmark a single time), under the tests step's flags ([`TEST_ARGS`]) so it
/// reuses that step's build: `-p peerbook-bench` alone resolves features anew and
/// builds RocksDB's C++ again. The library and binary unit tests ran in the tests step.
pub fn bench_smoke() -> Result<(), String> {
    run(cargo().arg("test").args(TEST_ARGS).args(["--bench", "*"]))
}

/// `cargo xtask bench [--quick|--full]`.
pub fn bench(args: &[String]) -> Result<(), String> {
    let mode = match args.first().map(String::as_str) {
        None => "default",
        Some("--quick") => "quick",
        Some("--full") => "full",
        Some(other) => {
            return Err(format!(
                "unknown bench option `{other}` (use --quick or --full)"
            ))
        }
    };
    // Results follow the target dir cargo uses: $CARGO_TARGET_DIR, else <workspace>/target.
    let out = target_dir().join("peerbook-bench");
    let criterion = out.join("criterion");
    // Fresh results every run; the books under books/ are kept (the benches rebuild
    // them when the generator changes).
    for stale in ["criterion", "data", "charts", "work", "report.md"] {
        let path = out.join(stale);
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
    let sizes = match mode {
        "quick" => "1k and 10k peers, about 5 min",
        // Estimate: the default run, plus ~25 min for the 1M books (of which ~10 min
        // build them on a first run; they are cached under books/ afterwards).
        "full" => "1k, 100k and 1M peers, about 55 min",
        _ => "1k and 100k peers, under 30 min",
    };
    let started = Instant::now();
    let step = |what: &str| {
        println!(
            "\n==> xtask bench ({mode}) [{:>5.0}s]: {what}",
            started.elapsed().as_secs_f64()
        )
    };

    step("building the suite in release (the first build compiles RocksDB and SQLite: ~10 min on 2 cores)");
    run(cargo().args(["bench", "-p", "peerbook-bench", "--benches", "--no-run"]))?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "peerbook-bench",
        "--bin",
        "bench_report",
    ]))?;
    for (bench, what) in [
        (
            "peerbook",
            "peerbook workloads on memory, LMDB, RocksDB and file",
        ),
        ("baselines", "baselines: raw engines and SQLite"),
    ] {
        step(&format!("{what} ({sizes} for both benches)"));
        run(cargo()
            .args(["bench", "-p", "peerbook-bench", "--bench", bench])
            .env("PEERBOOK_BENCH_MODE", mode)
            .env("PEERBOOK_BENCH_OUT", &out)
            .env("CRITERION_HOME", &criterion))?;
    }
    step("paired get and write floors (about 1 min), peak memory probes and the report");
    run(cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "peerbook-bench",
            "--bin",
            "bench_report",
        ])
        .env("PEERBOOK_BENCH_MODE", mode)
        .env("PEERBOOK_BENCH_OUT", &out)
        .env("CRITERION_HOME", &criterion))?;
    println!(
        "\n==> xtask bench ({mode}) done in {:.1} min\n  report: {}\n  charts: {}\n  criterion data: {}",
        started.elapsed().as_secs_f64() / 60.0,
        out.join("report.md").display(),
        out.join("charts").display(),
        criterion.display()
    );
    Ok(())
}
