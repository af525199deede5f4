//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure,
//! then a summary of how long each step took.

use crate::{bench, cargo, fuzz, readme, run};
use std::time::{Duration, Instant};

/// The example programs of the published backend crates, `(package, example)`: each
/// opens a book in a temp dir, stores, queries, reopens. They share the dev build of
/// the tests, so running them costs seconds.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("peerbook-file", "basic"),
    ("peerbook-lmdb", "basic"),
    ("peerbook-rocksdb", "basic"),
];

struct Step {
    name: &'static str,
    took: Duration,
    ok: bool,
}

type Check = Box<dyn Fn() -> Result<(), String>>;

fn steps() -> Vec<(&'static str, Check)> {
    vec![
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
        ("examples", Box::new(examples)),
        ("bench smoke", Box::new(bench::bench_smoke)),
        ("fuzz replay", Box::new(fuzz::fuzz_replay)),
        ("readme", Box::new(readme::check_readme)),
    ]
}

/// Runs every backend crate's example (see [`EXAMPLES`]).
fn examples() -> Result<(), String> {
    for (package, example) in EXAMPLES {
        println!("--> cargo run -p {package} --example {example}");
        run(cargo().args(["run", "--quiet", "-p", package, "--example", example]))?;
    }
    Ok(())
}

/// `cargo xtask ci`.
pub fn ci() -> Result<(), String> {
    let steps = steps();
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
