//! `cargo xtask`: the single entry point for the project's checks and jobs.
//!
//! - `cargo xtask ci`: every check CI runs, in order, stopping at the first failure,
//!   with how long each step took.
//! - `cargo xtask bench [--quick|--full]`: the comparative benchmark report.
//! - `cargo xtask long [crash|model]`: the long versions of the randomized tests.
//! - `cargo xtask fuzz [TARGET] [--time SECS]`: the fuzz targets of `fuzz/` under
//!   cargo-fuzz (installed if missing); `cargo xtask fuzz --replay`: every seed and
//!   crash file through the targets as a plain test, no cargo-fuzz needed (a CI step).
//! - `cargo xtask prereqs [--check]`: the system packages the build needs (libclang,
//!   a C++ compiler), installed when missing and possible; `ci`, `bench` and `long`
//!   run this check first.
//! - `cargo xtask check-readme`: the README rules (a CI step).
//!
//! One module per task. Only the standard library: the tool must build in seconds on
//! a fresh clone.

mod bench;
mod ci;
mod fuzz;
mod long;
mod prereqs;
mod readme;

use std::env;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("ci") => prereqs::ensure_for_build()
            .and_then(|()| prereqs::ensure_components(true))
            .and_then(|()| ci::ci()),
        Some("bench") => prereqs::ensure_for_build().and_then(|()| bench::bench(rest)),
        Some("long") => prereqs::ensure_for_build().and_then(|()| long::long(rest)),
        Some("fuzz") => fuzz::fuzz(rest),
        Some("prereqs") => prereqs::command(rest),
        Some("check-readme") => readme::check_readme().map(|()| {
            println!(
                "README.md: shows {:?}, no duplicated heading, every measured table names its run",
                readme::README_COMMANDS
            )
        }),
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
       ci                 fmt, clippy, tests, without c++, docs, examples, bench smoke, fuzz replay, README check (what CI runs)\n  \
       bench [--quick|--full]\n                     \
                          the comparative benchmark report (target/peerbook-bench/report.md);\n                     \
                          default 1k and 100k peers, --quick 1k and 10k, --full adds 1M\n  \
       long [crash|model] long runs of the randomized crash and model tests\n  \
       fuzz [TARGET] [--time SECS]\n                     \
                          run the fuzz targets (all, or TARGET) for SECS each (300)\n  \
       fuzz --replay      replay fuzz/corpus and fuzz/artifacts as tests (no cargo-fuzz)\n  \
       prereqs [--check]  check the system packages the build needs (libclang, C++ compiler) and\n                     \
                          install the missing ones when root with apt-get (--check: never install);\n                     \
                          ci, bench and long run it first\n  \
       check-readme       check README.md: the two set-up commands, no duplicated heading,\n                     \
                          every measured table preceded by a line naming its run\n"
        .to_string()
}

/// The workspace root (the parent of this crate). `cargo run` (the `xtask` alias)
/// sets `CARGO_MANIFEST_DIR` for the process it starts: that names the checkout being
/// run even when a shared target dir holds an `xtask` binary built in another
/// checkout (cargo may keep it as fresh, with the other path compiled in). The path
/// compiled in is the fallback for a binary started by hand.
fn root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask's manifest directory sits inside the workspace")
        .to_path_buf()
}

/// `cargo` (the one running us, if any) in the workspace root, without the variables
/// `cargo run` set for xtask itself ([`set_by_cargo_run`]). Build scripts may watch
/// them (ring's reruns when `CARGO_PKG_NAME` or `CARGO_MANIFEST_DIR` changes, as cargo
/// sees its own environment), so with them a build under `cargo xtask` and one from a
/// shell would each rebuild ring and the ~30 crates above it (rustls, webrtc, libp2p).
fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    for (key, _) in env::vars_os() {
        if key.to_str().is_some_and(set_by_cargo_run) {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Whether `cargo run` sets `key` for the program it runs (the package's name,
/// version, manifest and target): none of these configures cargo.
fn set_by_cargo_run(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
        )
}

/// Runs a command to completion; an error names the command and its exit status.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_runs_without_what_cargo_run_set_for_xtask() {
        assert!(set_by_cargo_run("CARGO_PKG_NAME"));
        assert!(set_by_cargo_run("CARGO_MANIFEST_DIR"));
        for config in [
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO_INCREMENTAL",
            "CARGO",
        ] {
            assert!(!set_by_cargo_run(config), "{config} is kept");
        }
        // `cargo test` sets CARGO_PKG_NAME for this test as `cargo run` does for xtask
        assert!(env::var_os("CARGO_PKG_NAME").is_some());
        let cmd = cargo();
        let removed: Vec<_> = cmd
            .get_envs()
            .filter(|(_, value)| value.is_none())
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .collect();
        for key in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_VERSION_MAJOR",
        ] {
            assert!(removed.iter().any(|k| k == key), "{key} not removed");
        }
    }
}
