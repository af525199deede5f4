//! `cargo xtask fuzz`: the fuzz targets of `fuzz/` under cargo-fuzz, or replayed as a
//! plain test (`--replay`, a CI step).

use crate::{cargo, root, run, target_dir};

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
pub fn fuzz(args: &[String]) -> Result<(), String> {
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
pub fn fuzz_replay() -> Result<(), String> {
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
