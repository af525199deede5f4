//! A report that cannot be written (stdout on `/dev/full`, Linux only): the
//! command fails, and when it had already made its change it says so and does not
//! invite a rerun; a reader that went away is no error.

use crate::support::{bin, ok, run_cmd, run_in, seed};

/// Output that cannot be written (a full disk behind `> backup.json`) fails the
/// command with exit 1, so `export > backup.json && clear` stops; a reader that went
/// away (`| head`) is no error.
#[cfg(target_os = "linux")]
#[test]
fn a_failed_write_to_stdout_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 1);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    for args in [
        vec!["export", spec.as_str()],
        vec!["stats", &spec],
        vec!["list", &spec, "--json"],
    ] {
        run_cmd(
            bin()
                .current_dir(d)
                .args(&args)
                .stdout(full.try_clone().unwrap()),
        )
        .exits(1)
        .stderr_starts("error: cannot write to stdout");
    }
    for _ in 0..5 {
        let mut child = bin()
            .current_dir(d)
            .args(["export", &spec])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A command that made its change but could not write its report (stdout on a full
/// disk) fails, saying the change was made, and does not invite a rerun (which
/// would fail, the key being gone, or act a second time).
#[cfg(target_os = "linux")]
#[test]
fn a_lost_report_after_a_change_says_the_change_was_made() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spec = seed("file", d, 2);
    ok(run_in(d, &["export", &spec, "--out", "book.json"]));
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let lost = |args: &[&str], change: &str| {
        let r = run_cmd(
            bin()
                .current_dir(d)
                .args(args)
                .stdout(full.try_clone().unwrap()),
        )
        .exits(1);
        r.stderr_starts(&format!("error: {change}"))
            .stderr_has("only the report was lost")
            .stderr_has("do NOT rerun");
        assert!(!r.stderr.contains("rerun the command once"), "{}", r.stderr);
    };
    // (with --json: nothing is written before the copy)
    lost(
        &["migrate", &spec, "lmdb:./copy", "--json"],
        "wrote the 5 peers of",
    );
    lost(
        &[
            "import",
            "rocksdb:./imported",
            "book.json",
            "--key-file",
            "peers.key",
        ],
        "imported 5 peers",
    );
    lost(&["cleanup", &spec, "--stale", "--json"], "removed 2 stale");
    lost(
        &["rotate-key", &spec, "--new-key-file", "new.key"],
        "re-sealed",
    );
    std::fs::rename(d.join("new.key"), d.join("peers.key")).unwrap();
    lost(&["clear", &spec, "--destroy-key"], "cleared");
    assert!(!d.join("peers.key").exists());
    // A report lost before anything changed still says to rerun.
    run_cmd(
        bin()
            .current_dir(d)
            .args(["stats", "lmdb:./copy"])
            .stdout(full.try_clone().unwrap()),
    )
    .exits(1)
    .stderr_has("rerun the command once");
}
