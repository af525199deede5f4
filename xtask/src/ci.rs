//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure,
//! then a summary of how long each step took.

use crate::{bench, cargo, fuzz, readme, root, run};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What the tests step passes to `cargo test`. The examples step and the bench smoke
/// select their targets under exactly these flags: cargo resolves features for the
/// packages a command selects, so `-p CRATE` alone would build the dependencies again
/// with other features (RocksDB's C++ among them: 16 min on a cold machine).
pub const TEST_ARGS: &[&str] = &["--workspace", "--all-features"];

/// The example programs of the published backend crates, `(package, example)`: each
/// opens a book in a temp dir, stores, queries, reopens. `cargo test` builds every
/// example (unrun) with the tests, so running them costs seconds. Their names differ
/// per crate: examples of one name in several packages collide in the target dir.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("peerbook-file", "file_basic"),
    ("peerbook-lmdb", "lmdb_basic"),
    ("peerbook-rocksdb", "rocksdb_basic"),
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
            Box::new(|| run(cargo().arg("test").args(TEST_ARGS))),
        ),
        ("without c++", Box::new(without_cpp)),
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

/// The builds without RocksDB's C++ the README offers (the CLI with `lmdb,file`),
/// which `--all-features` never compiles: peerbook-rocksdb without `engine` (its
/// file naming alone, which the engines crate uses to tell a RocksDB store apart
/// whatever it is built with), the engines crate with each of its other engines
/// alone (and that crate's docs), and the engines' and CLI's tests without
/// `rocksdb`. No C++ is built.
fn without_cpp() -> Result<(), String> {
    let clippy = |args: &[&str]| {
        run(cargo()
            .args(["clippy", "--all-targets", "--no-default-features"])
            .args(args)
            .args(["--", "-D", "warnings"]))
    };
    let selection = [
        "-p",
        "peerbook-engines",
        "-p",
        "peerbook-cli",
        "--no-default-features",
        "--features",
        "peerbook-engines/lmdb,peerbook-engines/file,peerbook-cli/lmdb,peerbook-cli/file",
    ];
    // First, in a second: a dependency that pulls in RocksDB's C++ would make
    // every build below compile it for many minutes before anything failed.
    no_cpp_in_tree(&selection)?;
    clippy(&["-p", "peerbook-rocksdb"])?;
    // its docs too: they name the backend that this build leaves out
    run(cargo()
        .args([
            "doc",
            "--no-deps",
            "--no-default-features",
            "-p",
            "peerbook-rocksdb",
        ])
        .env("RUSTDOCFLAGS", "-D warnings"))?;
    clippy(&["-p", "peerbook-engines", "--features", "lmdb"])?;
    clippy(&["-p", "peerbook-engines", "--features", "file"])?;
    run(cargo().arg("test").args(selection))
}

/// Fails when the packages `selection` picks, with their dev- and build-dependencies,
/// would build RocksDB's C++ (`librocksdb-sys`): a dependency added later must not
/// turn the C++-free build the README offers into a 16-minute one unnoticed.
fn no_cpp_in_tree(selection: &[&str]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["tree", "-e", "normal,build,dev", "--prefix", "none"])
        .args(selection)
        .stdout(Stdio::piped());
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{shown} failed with {}", out.status));
    }
    let tree = String::from_utf8_lossy(&out.stdout);
    if tree.lines().any(|line| line.starts_with("librocksdb-sys ")) {
        return Err(format!(
            "{shown}: librocksdb-sys is in the build without rocksdb (RocksDB's C++)"
        ));
    }
    println!("--> no librocksdb-sys in the build without rocksdb");
    Ok(())
}

/// Runs every backend crate's example (see [`EXAMPLES`]): the binaries the tests step
/// built, found in the artifacts that step's command reports under `--no-run` (all
/// fresh, nothing compiled), run from the workspace root as `cargo run` would.
fn examples() -> Result<(), String> {
    let mut cmd = cargo();
    cmd.arg("test")
        .args(TEST_ARGS)
        .args(["--no-run", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    let mut messages = String::new();
    let read = child
        .stdout
        .take()
        .map(|mut out| out.read_to_string(&mut messages))
        .transpose();
    let status = child.wait().map_err(|e| format!("{shown}: {e}"))?;
    read.map_err(|e| format!("{shown}: reading its output: {e}"))?;
    if !status.success() {
        return Err(format!("{shown} failed with {status}"));
    }
    let built = example_executables(&messages);
    for (package, example) in EXAMPLES {
        let exe = built
            .iter()
            .find(|(p, e, _)| p == package && e == example)
            .map(|(_, _, exe)| exe)
            .ok_or(format!(
                "{shown} built no example `{example}` of package `{package}`"
            ))?;
        println!("--> {package} example {example}: {}", exe.display());
        run(Command::new(exe).current_dir(root()))?;
    }
    Ok(())
}

/// `(package, example, executable)` of every example in cargo's JSON messages (one
/// object a line).
fn example_executables(messages: &str) -> Vec<(String, String, PathBuf)> {
    messages
        .lines()
        .filter(|line| line.contains(r#""reason":"compiler-artifact""#))
        .filter_map(|line| {
            let target = &line[line.find(r#""target":{"#)?..];
            if !target.starts_with(r#""target":{"kind":["example"]"#) {
                return None;
            }
            let package = package_name(&json_string(line, "package_id")?)?;
            let example = json_string(target, "name")?;
            let exe = json_string(line, "executable")?;
            Some((package, example, PathBuf::from(exe)))
        })
        .collect()
}

/// The package name of a cargo package id: `path+file:///w/crates/NAME#0.1.0`, or
/// `...#NAME@0.1.0` when the name is not the last path segment.
fn package_name(id: &str) -> Option<String> {
    let (url, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _)) => Some(name.to_string()),
        None if fragment.starts_with(|c: char| c.is_ascii_digit()) => {
            url.rsplit('/').next().map(String::from)
        }
        None => Some(fragment.to_string()),
    }
}

/// The first string value of `"key":` in a JSON text, unescaped (in paths and names
/// cargo escapes only quotes, backslashes and control characters).
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut out = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as `cargo test --no-run --message-format=json` prints them (cut): a
    /// library, a binary, two examples, the end.
    const MESSAGES: &str = concat!(
        r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/peerbook-cli#0.1.0","target":{"kind":["bin"],"crate_types":["bin"],"name":"peerbook"},"executable":"/t/debug/peerbook","fresh":true}"#,
        "\n",
        r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/peerbook-lmdb#0.1.0","manifest_path":"/w/crates/peerbook-lmdb/Cargo.toml","target":{"kind":["lib"],"crate_types":["lib"],"name":"peerbook_lmdb"},"executable":null,"fresh":true}"#,
        "\n",
        r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/peerbook-lmdb#0.1.0","manifest_path":"/w/crates/peerbook-lmdb/Cargo.toml","target":{"kind":["example"],"crate_types":["bin"],"name":"lmdb_basic","src_path":"/w/crates/peerbook-lmdb/examples/lmdb_basic.rs","test":false},"profile":{"opt_level":"1","test":false},"features":[],"filenames":["/t/debug/examples/lmdb_basic"],"executable":"/t/debug/examples/lmdb_basic","fresh":true}"#,
        "\n",
        r#"{"reason":"compiler-artifact","package_id":"path+file:///w/odd%20dir#peerbook-file@0.1.0","target":{"kind":["example"],"crate_types":["bin"],"name":"file_basic"},"executable":"C:\\t\\say \"hi\"\\file_basic.exe","fresh":false}"#,
        "\n",
        r#"{"reason":"build-finished","success":true}"#,
    );

    #[test]
    fn finds_examples_and_their_executables() {
        assert_eq!(
            example_executables(MESSAGES),
            vec![
                (
                    "peerbook-lmdb".to_string(),
                    "lmdb_basic".to_string(),
                    PathBuf::from("/t/debug/examples/lmdb_basic")
                ),
                (
                    "peerbook-file".to_string(),
                    "file_basic".to_string(),
                    PathBuf::from(r#"C:\t\say "hi"\file_basic.exe"#)
                ),
            ]
        );
    }

    #[test]
    fn package_names_from_ids() {
        assert_eq!(
            package_name("path+file:///w/crates/peerbook-file#0.1.0").as_deref(),
            Some("peerbook-file")
        );
        assert_eq!(
            package_name("path+file:///w/x#peerbook-suite@0.1.0").as_deref(),
            Some("peerbook-suite")
        );
        assert_eq!(
            package_name("registry+https://github.com/rust-lang/crates.io-index#libc@0.2.1")
                .as_deref(),
            Some("libc")
        );
        assert_eq!(package_name("no fragment"), None);
    }

    #[test]
    fn every_ci_example_is_a_file() {
        for (package, example) in EXAMPLES {
            let path = root()
                .join("crates")
                .join(package)
                .join("examples")
                .join(format!("{example}.rs"));
            assert!(path.is_file(), "{} is missing", path.display());
        }
    }
}
