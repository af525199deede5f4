//! `cargo xtask`: the single entry point for the project's checks and jobs.
//!
//! - `cargo xtask ci`: every check CI runs, in order, stopping at the first failure,
//!   with how long each step took.
//! - `cargo xtask bench [--quick|--full]`: the comparative benchmark report.
//! - `cargo xtask long [crash|model]`: the long versions of the randomized tests.
//! - `cargo xtask fuzz [TARGET] [--time SECS]`: the fuzz targets of `fuzz/` under
//!   cargo-fuzz (installed if missing); `cargo xtask fuzz --replay`: every seed and
//!   crash file through the targets as a plain test, no cargo-fuzz needed (a CI step).
//!
//! Only the standard library: the tool must build in seconds on a fresh clone.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// The commands README.md must show, exactly: the main job and the tests.
const README_COMMANDS: [&str; 2] = ["cargo xtask bench", "cargo xtask ci"];

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("long") => long(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("check-readme") => {
            check_readme().map(|()| println!("README.md shows {README_COMMANDS:?}"))
        }
        Some("help" | "--help" | "-h") | None => {
            print!("{}", usage());
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{}", usage())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: cargo xtask <command>\n\
     \n\
     commands:\n  \
       ci                 fmt, clippy, tests, docs, bench smoke, fuzz replay, README check (what CI runs)\n  \
       bench [--quick]    the comparative benchmark report (target/peerbook-bench/report.md)\n  \
       long [crash|model] long runs of the randomized crash and model tests\n  \
       fuzz [TARGET] [--time SECS]\n                     \
                          run the fuzz targets (all, or TARGET) for SECS each (300)\n  \
       fuzz --replay      replay fuzz/corpus and fuzz/artifacts as tests (no cargo-fuzz)\n  \
       check-readme       check README.md shows the two set-up commands\n"
        .to_string()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

struct Step {
    name: &'static str,
    took: Duration,
    ok: bool,
}

fn ci() -> Result<(), String> {
    type Check = Box<dyn Fn() -> Result<(), String>>;
    let steps: Vec<(&'static str, Check)> = vec![
        (
            "fmt",
            Box::new(|| {
                run(cargo().args(["fmt", "--all", "--check"]))?;
                // the fuzz crate is its own workspace: check it too
                run(cargo().args([
                    "fmt",
                    "--manifest-path",
                    "fuzz/Cargo.toml",
                    "--all",
                    "--check",
                ]))
            }),
        ),
        (
            "clippy",
            Box::new(|| {
                run(cargo().args([
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ]))
            }),
        ),
        (
            "tests",
            Box::new(|| run(cargo().args(["test", "--workspace", "--all-features"]))),
        ),
        (
            "docs",
            Box::new(|| {
                run(cargo()
                    .args(["doc", "--workspace", "--no-deps", "--all-features"])
                    .env("RUSTDOCFLAGS", "-D warnings"))
            }),
        ),
        ("bench smoke", Box::new(bench_smoke)),
        ("fuzz replay", Box::new(fuzz_replay)),
        ("readme", Box::new(check_readme)),
    ];
    let mut done: Vec<Step> = Vec::new();
    let total = Instant::now();
    let mut failure = None;
    for (name, step) in &steps {
        println!("\n==> xtask ci: {name}");
        let start = Instant::now();
        let result = step();
        done.push(Step {
            name,
            took: start.elapsed(),
            ok: result.is_ok(),
        });
        if let Err(e) = result {
            failure = Some(format!("step `{name}` failed: {e}"));
            break;
        }
    }
    println!("\n==> xtask ci summary");
    for s in &done {
        println!(
            "  {:<12} {:>8.1}s  {}",
            s.name,
            s.took.as_secs_f64(),
            if s.ok { "ok" } else { "FAILED" }
        );
    }
    for (name, _) in steps.iter().skip(done.len()) {
        println!("  {name:<12}        -  not run");
    }
    println!("  {:<12} {:>8.1}s", "total", total.elapsed().as_secs_f64());
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Benches compiled and run once each in test mode (criterion runs every
/// benchmark a single time), in the test profile so nothing is built twice.
fn bench_smoke() -> Result<(), String> {
    run(cargo().args(["test", "-p", "peerbook-suite", "--benches"]))
}

fn bench(args: &[String]) -> Result<(), String> {
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
        "full" => "1k, 100k and 1M peers, an hour or more",
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
    run(cargo().args(["bench", "-p", "peerbook-suite", "--benches", "--no-run"]))?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "peerbook-suite",
        "--example",
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
            .args(["bench", "-p", "peerbook-suite", "--bench", bench])
            .env("PEERBOOK_BENCH_MODE", mode)
            .env("PEERBOOK_BENCH_OUT", &out)
            .env("CRITERION_HOME", &criterion))?;
    }
    step("peak memory probes and the report");
    run(cargo()
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "peerbook-suite",
            "--example",
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

fn long(args: &[String]) -> Result<(), String> {
    let which = args.first().map(String::as_str).unwrap_or("all");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--release", "--all-features"]);
    match which {
        "crash" => {
            cmd.env("PEERBOOK_CRASH_POINTS", "10000")
                .env("PEERBOOK_KILLS", "1000")
                .env("PEERBOOK_POWER_CUTS", "1000");
        }
        "model" => {
            cmd.env("PROPTEST_CASES", "5000");
        }
        "all" => {
            cmd.env("PEERBOOK_CRASH_POINTS", "10000")
                .env("PEERBOOK_KILLS", "1000")
                .env("PEERBOOK_POWER_CUTS", "1000")
                .env("PROPTEST_CASES", "5000");
        }
        other => return Err(format!("unknown long run `{other}` (use crash or model)")),
    }
    run(&mut cmd)
}

/// The target directory cargo uses for the main workspace: $CARGO_TARGET_DIR, else
/// `<workspace>/target`.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        })
        .unwrap_or_else(|| root().join("target"))
}

/// The fuzz targets: the files of fuzz/fuzz_targets/, sorted.
fn fuzz_targets() -> Result<Vec<String>, String> {
    let dir = root().join("fuzz").join("fuzz_targets");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut targets: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(String::from)
        })
        .collect();
    targets.sort();
    Ok(targets)
}

/// `fuzz [TARGET] [--time SECS]` or `fuzz --replay`.
fn fuzz(args: &[String]) -> Result<(), String> {
    let mut target = None;
    let mut secs: u64 = 300;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--replay" => return fuzz_replay(),
            "--time" => {
                let value = rest.next().ok_or("--time needs a number of seconds")?;
                secs = value
                    .parse()
                    .map_err(|_| format!("--time {value}: not a number of seconds"))?;
            }
            other if other.starts_with('-') => {
                return Err(format!(
                    "unknown fuzz option `{other}` (use --time SECS or --replay)"
                ))
            }
            other => target = Some(other.to_string()),
        }
    }
    let all = fuzz_targets()?;
    let targets = match target {
        Some(t) if all.contains(&t) => vec![t],
        Some(t) => return Err(format!("unknown fuzz target `{t}` (one of {all:?})")),
        None => all,
    };
    let has_cargo_fuzz = cargo()
        .args(["fuzz", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_cargo_fuzz {
        println!("==> xtask fuzz: cargo-fuzz is missing; installing it (a few minutes, once)");
        run(cargo().args(["install", "cargo-fuzz", "--locked"]))?;
    }
    let fuzz_dir = root().join("fuzz");
    for t in &targets {
        // New inputs go to fuzz/target/corpus/T (ignored by git); the committed
        // seeds of fuzz/corpus/T are only read. Crashes land in fuzz/artifacts/T,
        // which `fuzz --replay` then replays until they are fixed.
        let work = fuzz_dir.join("target").join("corpus").join(t);
        std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
        println!(
            "\n==> xtask fuzz: {t} for {secs}s (new inputs in {})",
            work.display()
        );
        run(cargo()
            .args([
                "fuzz",
                "run",
                t,
                "--sanitizer",
                "none",
                "--features",
                "libfuzzer",
            ])
            .arg(&work)
            .arg(fuzz_dir.join("corpus").join(t))
            .args([
                "--".to_string(),
                format!("-max_total_time={secs}"),
                "-timeout=10".to_string(),
                "-print_final_stats=1".to_string(),
            ]))?;
    }
    Ok(())
}

/// Every file of fuzz/corpus/*/ and fuzz/artifacts/*/ through its target's body, as
/// a plain `cargo test` of the fuzz workspace (stable, no libFuzzer). It shares the
/// main workspace's target directory and dev profile, so dependencies build once.
fn fuzz_replay() -> Result<(), String> {
    run(cargo()
        .args([
            "test",
            "--manifest-path",
            "fuzz/Cargo.toml",
            "--test",
            "replay",
        ])
        .env("CARGO_TARGET_DIR", target_dir()))
}

/// README.md must hold exactly the two set-up commands, and this tool must offer them.
fn check_readme() -> Result<(), String> {
    let text =
        std::fs::read_to_string(root().join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    let mut shown: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo xtask "))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    shown.sort();
    shown.dedup();
    let expected: Vec<String> = README_COMMANDS.iter().map(|s| s.to_string()).collect();
    if shown != expected {
        return Err(format!(
            "README.md shows {shown:?} as commands; it must show exactly {expected:?}"
        ));
    }
    for cmd in README_COMMANDS {
        let sub = cmd.rsplit(' ').next().unwrap_or_default();
        if !usage().contains(&format!("  {sub} ")) {
            return Err(format!("xtask does not offer `{cmd}`"));
        }
    }
    Ok(())
}
