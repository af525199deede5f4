//! System prerequisites of the build, checked before `ci`, `bench` and `long`, and by
//! `cargo xtask prereqs [--check]`.
//!
//! Each prerequisite is one row of [`BUILD`]: what it is, why the build needs it, the
//! Debian package that provides it and how to tell it is present. When some are
//! missing and we run as root on a machine with `apt-get`, they are installed (one
//! line says what and why); otherwise the run stops with one line naming the packages
//! and the command to install them. Another prerequisite (say `fusermount3` from
//! `fuse3` for a FUSE power-loss test) is one more row.
//!
//! The C linker that builds this tool itself cannot be checked here: `.ci/run` and the
//! README's one-line prerequisite cover it.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One system prerequisite of the build.
pub struct Prereq {
    /// What it is, as the messages name it.
    pub name: &'static str,
    /// Why the build needs it.
    pub why: &'static str,
    /// The Debian package that provides it.
    pub apt_package: &'static str,
    /// Whether it is present on this machine.
    pub present: fn() -> bool,
}

/// What building the workspace (RocksDB above all) needs besides Rust and a C linker.
pub const BUILD: &[Prereq] = &[
    Prereq {
        name: "libclang",
        why: "bindgen loads it to generate RocksDB's bindings",
        apt_package: "libclang-dev",
        present: libclang_present,
    },
    Prereq {
        name: "a C++ compiler",
        why: "RocksDB is C++",
        apt_package: "g++",
        present: cxx_present,
    },
];

/// `cargo xtask prereqs [--check]`: the check alone; `--check` never installs.
pub fn command(args: &[String]) -> Result<(), String> {
    let install = match args.first().map(String::as_str) {
        None => true,
        Some("--check") => false,
        Some(other) => return Err(format!("unknown prereqs option `{other}` (use --check)")),
    };
    ensure(BUILD, install)?;
    for p in BUILD {
        println!("ok: {} ({})", p.name, p.why);
    }
    ensure_components(install)?;
    println!(
        "ok: {} (the fmt and clippy checks of `cargo xtask ci`)",
        COMPONENTS.join(", ")
    );
    if let Some(lib) = find_libclang(&libclang_dirs(env::var_os("LIBCLANG_PATH").as_deref())) {
        println!("libclang: {}", lib.display());
    }
    Ok(())
}

/// The check `ci`, `bench` and `long` run first: installs what is missing when it can.
pub fn ensure_for_build() -> Result<(), String> {
    ensure(BUILD, true)
}

/// The rustup components `cargo xtask ci` runs (its `fmt` and `clippy` steps).
pub const COMPONENTS: [&str; 2] = ["rustfmt", "clippy"];

/// The check `ci` runs first besides [`BUILD`]: the [`COMPONENTS`] its checks run.
/// Missing ones are added with `rustup component add` (one line says so) when
/// `install` is set and rustup is there; otherwise the run stops with one line
/// saying what to install.
pub fn ensure_components(install: bool) -> Result<(), String> {
    let rustup = find_on_path(OsStr::new("rustup")).is_some();
    let missing = if rustup {
        let listed = Command::new("rustup")
            .args(["component", "list", "--installed"])
            .output()
            .map_err(|e| format!("could not start rustup: {e}"))?;
        missing_components(&String::from_utf8_lossy(&listed.stdout))
    } else {
        COMPONENTS
            .into_iter()
            .filter(|c| !cargo_tool_runs(c))
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    if !(rustup && install) {
        return Err(format!(
            "missing the Rust components {} that `cargo xtask ci` runs; install them \
             with `rustup component add {}` (or your distribution's rustfmt and \
             rust-clippy packages)",
            missing.join(", "),
            missing.join(" ")
        ));
    }
    println!(
        "xtask: adding the Rust components {} with rustup, for the fmt and clippy checks",
        missing.join(" ")
    );
    let status = Command::new("rustup")
        .args(["component", "add"])
        .args(&missing)
        .status()
        .map_err(|e| format!("could not start rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`rustup component add {}` failed with {status}",
            missing.join(" ")
        ))
    }
}

/// The [`COMPONENTS`] absent from `installed`, the output of `rustup component list
/// --installed` (one `name-target` per line, e.g. `clippy-x86_64-unknown-linux-gnu`).
pub fn missing_components(installed: &str) -> Vec<&'static str> {
    COMPONENTS
        .into_iter()
        .filter(|c| {
            !installed.lines().any(|line| {
                let line = line.trim();
                line == *c
                    || line
                        .strip_prefix(c)
                        .is_some_and(|rest| rest.starts_with('-'))
            })
        })
        .collect()
}

/// Whether `cargo fmt --version` (for `rustfmt`) or `cargo clippy --version` runs.
fn cargo_tool_runs(component: &str) -> bool {
    let sub = if component == "rustfmt" {
        "fmt"
    } else {
        component
    };
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([sub, "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Checks `prereqs`; installs the missing ones with apt-get when `install` is set and
/// we are root with apt-get, else fails with one line naming packages and command.
pub fn ensure(prereqs: &[Prereq], install: bool) -> Result<(), String> {
    let missing: Vec<&Prereq> = prereqs.iter().filter(|p| !(p.present)()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|p| p.apt_package).collect();
    let described: Vec<String> = missing
        .iter()
        .map(|p| format!("{} ({})", p.name, p.why))
        .collect();
    let can_install = install && is_root() && find_on_path(OsStr::new("apt-get")).is_some();
    if !can_install {
        let sudo = if is_root() { "" } else { "sudo " };
        return Err(format!(
            "missing {}; install with `{sudo}apt-get install -y {}` (or your system's equivalent)",
            described.join(", "),
            packages.join(" ")
        ));
    }
    println!(
        "xtask: installing {} with apt-get, for {}",
        packages.join(" "),
        described.join(", ")
    );
    apt_get(&["update", "-qq"])?;
    let mut install_args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    install_args.extend(&packages);
    apt_get(&install_args)?;
    let still: Vec<&Prereq> = missing.into_iter().filter(|p| !(p.present)()).collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still missing {} after installing {}",
            names(&still),
            packages.join(" ")
        ))
    }
}

fn names(prereqs: &[&Prereq]) -> String {
    prereqs
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("could not start apt-get: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`apt-get {}` failed with {status}", args.join(" ")))
    }
}

/// Whether the effective user is root (the `Uid:` line of /proc/self/status, else `id -u`).
fn is_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        if let Some(line) = status.lines().find(|l| l.starts_with("Uid:")) {
            return line.split_whitespace().nth(2) == Some("0");
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The first executable file named `name` in the directories of $PATH.
fn find_on_path(name: &OsStr) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A C++ compiler as the `cc` crate looks for it: $CXX if set, else `c++`, `g++` or
/// `clang++` on $PATH.
fn cxx_present() -> bool {
    if let Some(cxx) = env::var_os("CXX").filter(|v| !v.is_empty()) {
        // CXX may carry arguments ("ccache g++"): the program is its first word.
        let program = cxx
            .to_string_lossy()
            .split_whitespace()
            .next()
            .map(String::from);
        return program.is_some_and(|p| {
            if p.contains('/') {
                Path::new(&p).is_file()
            } else {
                find_on_path(OsStr::new(&p)).is_some()
            }
        });
    }
    ["c++", "g++", "clang++"]
        .iter()
        .any(|c| find_on_path(OsStr::new(c)).is_some())
}

/// Whether bindgen (clang-sys, runtime loading) can find a libclang.
fn libclang_present() -> bool {
    find_libclang(&libclang_dirs(env::var_os("LIBCLANG_PATH").as_deref())).is_some()
}

/// Whether clang-sys would load a file of this name as libclang: `libclang.so`,
/// `libclang-*.so`, `libclang.so.*` or `libclang-*.so.*`, but never `libclang-cpp*`
/// (the C++ API library, which a fresh Debian has without libclang).
pub fn is_libclang_name(name: &str) -> bool {
    if name.contains("-cpp.") || name.starts_with("libclang-cpp") {
        return false;
    }
    if name == "libclang.so" || name.starts_with("libclang.so.") {
        return true;
    }
    match name.strip_prefix("libclang-") {
        Some(rest) => !rest.is_empty() && (rest.ends_with(".so") || rest.contains(".so.")),
        None => false,
    }
}

/// The first libclang (by [`is_libclang_name`]) found in `dirs`, searched in order; a
/// path in `dirs` that is itself such a file counts too (as `LIBCLANG_PATH` may be).
pub fn find_libclang(dirs: &[PathBuf]) -> Option<PathBuf> {
    for dir in dirs {
        let own_name = dir.file_name().and_then(OsStr::to_str);
        if dir.is_file() && own_name.is_some_and(is_libclang_name) {
            return Some(dir.clone());
        }
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_str().is_some_and(is_libclang_name))
            .map(|e| e.path())
            // a dangling symlink is no library
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if let Some(first) = found.into_iter().next() {
            return Some(first);
        }
    }
    None
}

/// Where clang-sys looks for libclang on Linux: only `LIBCLANG_PATH` when it is set;
/// else `llvm-config --prefix`'s lib dirs, $LD_LIBRARY_PATH, $LIBRARY_PATH and the
/// system patterns (`/usr/lib*/*/*`, `/usr/lib/llvm-*/lib` among them).
pub fn libclang_dirs(libclang_path: Option<&OsStr>) -> Vec<PathBuf> {
    if let Some(path) = libclang_path.filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(path)];
    }
    let mut dirs = Vec::new();
    if let Ok(out) = Command::new("llvm-config")
        .arg("--prefix")
        .stderr(Stdio::null())
        .output()
    {
        let prefix = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !prefix.is_empty() {
            for sub in ["bin", "lib", "lib64"] {
                dirs.push(Path::new(&prefix).join(sub));
            }
        }
    }
    for var in ["LD_LIBRARY_PATH", "LIBRARY_PATH"] {
        if let Some(value) = env::var_os(var) {
            dirs.extend(env::split_paths(&value));
        }
    }
    for pattern in [
        "/usr/local/llvm*/lib*",
        "/usr/local/lib*/*/*",
        "/usr/local/lib*/*",
        "/usr/local/lib*",
        "/usr/lib*/*/*",
        "/usr/lib*/*",
        "/usr/lib*",
    ] {
        dirs.extend(expand(Path::new(pattern)));
    }
    dirs
}

/// The directories matching an absolute path pattern whose components may hold `*`
/// (never matching `/`), sorted.
pub fn expand(pattern: &Path) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::from("/")];
    for component in pattern.components().skip(1) {
        let part = component.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &current {
            if !part.contains('*') {
                let path = base.join(&*part);
                if path.is_dir() {
                    next.push(path);
                }
                continue;
            }
            let Ok(entries) = fs::read_dir(base) else {
                continue;
            };
            for entry in entries.filter_map(|e| e.ok()) {
                let path = entry.path();
                if entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| wildcard(&part, n))
                    && path.is_dir()
                {
                    next.push(path);
                }
            }
        }
        next.sort();
        current = next;
    }
    current
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
fn wildcard(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == name;
    }
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn missing_components_reads_rustup_s_list() {
        let both = "cargo-x86_64-unknown-linux-gnu\nclippy-x86_64-unknown-linux-gnu\n\
                    rustfmt-x86_64-unknown-linux-gnu\nrust-std-x86_64-unknown-linux-gnu\n";
        assert!(missing_components(both).is_empty());
        let no_clippy = "cargo-x86_64-unknown-linux-gnu\nrustfmt-x86_64-unknown-linux-gnu\n";
        assert_eq!(missing_components(no_clippy), ["clippy"]);
        // a component whose name only starts like one of ours is not it
        assert_eq!(
            missing_components(
                "rustfmt-x86_64-unknown-linux-gnu\nclippyx-x86_64-unknown-linux-gnu\n"
            ),
            ["clippy"]
        );
        assert_eq!(missing_components(""), ["rustfmt", "clippy"]);
    }

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh empty directory under the system temp dir (std only: no tempfile).
    fn temp_dir() -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = env::temp_dir().join(format!(
            "xtask-prereqs-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn names_bindgen_loads_and_the_cpp_library_it_does_not() {
        for yes in [
            "libclang.so",
            "libclang.so.1",
            "libclang-14.so",
            "libclang-14.so.1",
            "libclang-14.0.6.so",
            "libclang-14.so.14.0.6",
        ] {
            assert!(is_libclang_name(yes), "{yes}");
        }
        for no in [
            "libclang-cpp.so.14",
            "libclang-cpp.so",
            "libclangAST.a",
            "libclang.a",
            "libclang-14.a",
            "libclangd.so",
            "libclang",
        ] {
            assert!(!is_libclang_name(no), "{no}");
        }
    }

    #[test]
    fn a_dir_with_only_libclang_cpp_has_no_libclang_until_the_real_one_comes() {
        let dir = temp_dir();
        fs::write(dir.join("libclang-cpp.so.14"), b"").unwrap();
        fs::write(dir.join("libclangAST.a"), b"").unwrap();
        assert_eq!(find_libclang(std::slice::from_ref(&dir)), None);
        // LIBCLANG_PATH=<dir> restricts the search to it, as in clang-sys
        assert_eq!(find_libclang(&libclang_dirs(Some(dir.as_os_str()))), None);

        fs::write(dir.join("libclang-14.so.1"), b"").unwrap();
        assert_eq!(
            find_libclang(std::slice::from_ref(&dir)),
            Some(dir.join("libclang-14.so.1"))
        );
        // LIBCLANG_PATH naming the file itself
        let file = dir.join("libclang-14.so.1");
        assert_eq!(
            find_libclang(&libclang_dirs(Some(file.as_os_str()))),
            Some(file)
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_is_no_libclang() {
        let dir = temp_dir();
        std::os::unix::fs::symlink(dir.join("gone.so.1"), dir.join("libclang.so")).unwrap();
        assert_eq!(find_libclang(std::slice::from_ref(&dir)), None);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn patterns_expand_like_clang_sys_globs() {
        let dir = temp_dir();
        fs::create_dir_all(dir.join("llvm-14/lib")).unwrap();
        fs::create_dir_all(dir.join("llvm-15/lib")).unwrap();
        fs::create_dir_all(dir.join("other/lib")).unwrap();
        fs::write(dir.join("llvm-15/lib/libclang-15.so.1"), b"").unwrap();
        let dirs = expand(&dir.join("llvm-*/lib"));
        assert_eq!(dirs, vec![dir.join("llvm-14/lib"), dir.join("llvm-15/lib")]);
        assert_eq!(
            find_libclang(&dirs),
            Some(dir.join("llvm-15/lib/libclang-15.so.1"))
        );
        assert!(expand(&dir.join("nothing-*/lib")).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn wildcards_match_runs_of_characters() {
        assert!(wildcard("lib*", "lib64"));
        assert!(wildcard("lib*", "lib"));
        assert!(wildcard("llvm*", "llvm-14"));
        assert!(wildcard("*", "anything"));
        assert!(wildcard("a*b*c", "axxbyyc"));
        assert!(!wildcard("lib*", "usr"));
        assert!(!wildcard("a*b*c", "axxc"));
        assert!(!wildcard("ab*ba", "aba"));
    }

    fn absent() -> bool {
        false
    }
    fn there() -> bool {
        true
    }

    #[test]
    fn a_missing_prereq_without_install_stops_with_package_and_command() {
        let table = [
            Prereq {
                name: "thing",
                why: "needed",
                apt_package: "thing-dev",
                present: there,
            },
            Prereq {
                name: "fuse",
                why: "the FUSE power-loss test mounts with it",
                apt_package: "fuse3",
                present: absent,
            },
        ];
        assert_eq!(ensure(&table[..1], false), Ok(()));
        let err = ensure(&table, false).unwrap_err();
        assert!(err.contains("missing fuse"), "{err}");
        assert!(err.contains("apt-get install -y fuse3"), "{err}");
        assert!(!err.contains("thing-dev"), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}
