//! What each disk engine does when an fsync fails and the file system then keeps
//! working ("fsyncgate": after a failed write-back Linux drops the dirty pages and
//! a later fsync succeeds, so an engine that carries on has silently lost data).
//!
//! For every disk engine, at the `Backend` level and through a `PeerBook` opened
//! with `Durability::Sync`: a child process (this test binary, re-run) on the
//! power-loss file system acknowledges some synced writes, the parent arms
//! [`PowerFailFs::fail_syncs`]`(1)` (the next sync fails with `EIO` and drops that
//! file's unsynced data, every other request keeps working), and the child's next
//! write must return an error, never `Ok`. Every later write on that handle or book
//! must be refused (the backend with an error, the book with `NeedsReopen`) although
//! the file system works again. Then the child either closes and exits, or is
//! SIGKILLed and the power is cut (a random part of the unsynced writes survives);
//! after a remount a second child reopens: every write acknowledged before the
//! failure is there, the failed write is wholly present or wholly absent, no
//! refused write shows up, and the book's `verify` is clean.
//!
//! The mount needs root and `/dev/fuse`: refused under CI (`CI=true`) the test
//! fails, elsewhere it is skipped with a loud message.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peerbook::backend::{Backend, BackendError, Durability, Space, WriteBatch};
use peerbook::{Error, ManualClock, MasterKey, NewPeer, Options, PeerBook, Secret};
use peerbook_powerfail::PowerFailFs;
use support::engine::Engine;
use support::{dump, hex, unhex, State};

const CHILD_ENV: &str = "PEERBOOK_FSYNC_FAILURE_CHILD";
/// Writes acknowledged before the failing sync.
const ACKED: u64 = 4;
/// Writes tried after it (each must be refused).
const LATER: u64 = 3;
/// The batch that meets the failing sync.
const FAILED: u64 = ACKED;

/// Which interface the scenario drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Backend,
    Book,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Backend => "backend",
            Level::Book => "book",
        }
    }
}

/// The keys and values of batch `n` (several spaces, one value spanning pages).
fn batch_ops(n: u64) -> Vec<(Space, Vec<u8>, Vec<u8>)> {
    (0..6u64)
        .map(|j| {
            let len = if j == 0 { 6000 } else { 40 + 10 * j as usize };
            let value = (0..len)
                .map(|i| (n * 31 + j * 7 + i as u64) as u8)
                .collect();
            (
                Space::ALL[(j % 4) as usize],
                format!("batch{n:02}-{j}").into_bytes(),
                value,
            )
        })
        .collect()
}

fn apply_batch(state: &mut State, n: u64) {
    for (space, key, value) in batch_ops(n) {
        state[space.index()].insert(key, value);
    }
}

fn peer_id(n: u64) -> String {
    format!("peer-{n:02}")
}

fn new_peer(n: u64) -> NewPeer {
    NewPeer {
        peer_id: peer_id(n),
        display_name: format!("peer number {n}"),
        public_key: format!("pk{n}"),
        shared_secret: Some(Secret::from(format!("secret {n}"))),
        ..NewPeer::default()
    }
}

fn options() -> Options {
    let mut o = Options::new(MasterKey::from_bytes([7; 32]))
        .with_clock(ManualClock::new(1_700_000_000_000));
    o.durability = Durability::Sync;
    o
}

fn backend_error_kind(e: &BackendError) -> &'static str {
    match e {
        BackendError::Io(_) => "Io",
        BackendError::Full { .. } => "Full",
        BackendError::Corrupted { .. } => "Corrupted",
        BackendError::Locked { .. } => "Locked",
        BackendError::Engine { .. } => "Engine",
        _ => "other",
    }
}

fn book_error_kind(e: &Error) -> String {
    match e {
        Error::NeedsReopen => "NeedsReopen".into(),
        Error::Backend(b) => format!("Backend({})", backend_error_kind(b)),
        other => format!("other {}", other.kind()),
    }
}

/// One write of batch `n` at `level`: `Ok(())` or the error's kind.
fn write_n(
    level: Level,
    backend: &Arc<dyn Backend>,
    book: Option<&PeerBook<Arc<dyn Backend>>>,
    n: u64,
) -> Result<(), String> {
    match level {
        Level::Backend => {
            let mut batch = WriteBatch::new();
            for (space, key, value) in batch_ops(n) {
                batch.put(space, key, value);
            }
            backend
                .write(batch, Durability::Sync)
                .map_err(|e| backend_error_kind(&e).to_string())
        }
        Level::Book => book
            .expect("a book")
            .store_peer(new_peer(n))
            .map(|_| ())
            .map_err(|e| book_error_kind(&e)),
    }
}

/// The child: `run` (writes, waits for the parent to arm the failure, writes
/// again, reports) or `check` (reopens and reports what it finds).
#[test]
fn fsync_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // not a child
    };
    let mut parts = spec.splitn(4, ':');
    let engine = Engine::from_name(parts.next().expect("engine"));
    let level = match parts.next().expect("level") {
        "backend" => Level::Backend,
        _ => Level::Book,
    };
    let phase = parts.next().expect("phase").to_string();
    let dir = Path::new(parts.next().expect("dir"));
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "\n{line}").expect("pipe");
        out.flush().expect("pipe");
    };
    let backend = match engine.open(dir) {
        Ok(b) => b,
        Err(e) => {
            say(format!("open-error {e}"));
            return;
        }
    };
    let book = match level {
        Level::Backend => None,
        Level::Book => match PeerBook::open(Arc::clone(&backend), options()) {
            Ok(b) => Some(b),
            Err(e) => {
                say(format!("open-error {e}"));
                return;
            }
        },
    };
    if phase == "check" {
        match &book {
            None => match dump(&*backend) {
                Ok(state) => {
                    for (i, space) in state.iter().enumerate() {
                        for (k, v) in space {
                            say(format!("kv {i} {} {}", hex(k), hex(v)));
                        }
                    }
                }
                Err(e) => say(format!("dump-error {e}")),
            },
            Some(book) => {
                match book.verify() {
                    Ok(r) if r.is_clean() => say("verify clean".into()),
                    Ok(r) => say(format!("verify dirty {r:?}")),
                    Err(e) => say(format!("verify error {e}")),
                }
                for n in 0..=FAILED + LATER {
                    let seen = match book.get_peer(&peer_id(n)) {
                        Ok(None) => "absent".to_string(),
                        Ok(Some(r)) => {
                            let secret = book
                                .open_shared_secret(&r)
                                .ok()
                                .flatten()
                                .map(|s| s.expose() == format!("secret {n}").as_bytes());
                            let whole = r.display_name == new_peer(n).display_name
                                && r.public_key == new_peer(n).public_key
                                && secret == Some(true);
                            if whole { "present" } else { "partial" }.to_string()
                        }
                        Err(e) => format!("error {}", book_error_kind(&e)),
                    };
                    say(format!("peer {n} {seen}"));
                }
            }
        }
        say("end".into());
        return;
    }
    for n in 0..ACKED {
        match write_n(level, &backend, book.as_ref(), n) {
            Ok(()) => say(format!("acked {n}")),
            Err(e) => {
                say(format!("early-error {n} {e}"));
                return;
            }
        }
    }
    say("armme".into());
    let mut stdin = std::io::stdin().lock();
    let mut line = String::new();
    stdin.read_line(&mut line).expect("parent says go");
    match write_n(level, &backend, book.as_ref(), FAILED) {
        Ok(()) => say("failed-write ok".into()),
        Err(e) => say(format!("failed-write err {e}")),
    }
    for n in FAILED + 1..=FAILED + LATER {
        match write_n(level, &backend, book.as_ref(), n) {
            Ok(()) => say(format!("later {n} ok")),
            Err(e) => say(format!("later {n} err {e}")),
        }
    }
    if let Some(book) = &book {
        say(format!("needs-reopen {}", book.needs_reopen()));
    }
    say("done".into());
    line.clear();
    stdin
        .read_line(&mut line)
        .expect("parent says close or hang");
    if line.trim() == "close" {
        if let Some(book) = book {
            let _ = book.close();
        }
        drop(backend);
        return;
    }
    loop {
        std::thread::sleep(Duration::from_secs(1)); // until killed
    }
}

/// A child process, SIGKILLed if the test fails while it runs (it would otherwise
/// hang on the file system the failed test no longer serves), or when it hangs
/// for longer than [`WATCHDOG`] (the test then fails on its missing answers).
struct Kid(Child, Arc<AtomicBool>);

/// How long a child may run.
const WATCHDOG: Duration = Duration::from_secs(120);

impl Kid {
    fn new(child: Child) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let pid = child.id() as libc::pid_t;
        let flag = Arc::clone(&done);
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while start.elapsed() < WATCHDOG {
                if flag.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !flag.load(Ordering::Acquire) {
                eprintln!("!!! a child ran for {WATCHDOG:?}: killing it");
                // SAFETY: a plain kill(2) of our own child, not yet reaped (the
                // flag is set before every wait).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Kid(child, done)
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.0.wait().expect("wait");
        self.1.store(true, Ordering::Release);
        status
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        if !self.1.load(Ordering::Acquire) {
            let _ = self.0.kill();
            let _ = self.wait();
        }
    }
}

fn child(engine: Engine, level: Level, phase: &str, mount: &Path) -> Kid {
    let spec = format!(
        "{}:{}:{phase}:{}",
        engine.name(),
        level.name(),
        mount.display()
    );
    Kid::new(
        support::child_command("fsync_child_entry", CHILD_ENV, spec)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the child"),
    )
}

/// Lines of the child's protocol (the harness's own output is skipped).
fn protocol_lines(child: &mut Kid) -> impl Iterator<Item = String> {
    let stdout = child.0.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty() && !l.starts_with("test ") && !l.starts_with("running "))
}

/// One scenario; `cut` is `Some(seed)` for a SIGKILL and a power cut, `None` for a
/// clean close.
fn scenario(
    fs: &PowerFailFs,
    m: peerbook_powerfail::Mounted,
    engine: Engine,
    level: Level,
    passing: u64,
    cut: Option<u64>,
) {
    let mount = m.path().to_path_buf();
    let mount = mount.as_path();
    let what = format!(
        "{} {} sync {} fails, cut {cut:?}",
        engine.name(),
        level.name(),
        passing + 1
    );
    let mut run = child(engine, level, "run", mount);
    let mut stdin = run.0.stdin.take().expect("stdin");
    let mut lines = protocol_lines(&mut run);
    let mut acked = 0;
    let mut failed_write = None;
    let mut later = Vec::new();
    let mut needs_reopen = None;
    for line in lines.by_ref() {
        if line.starts_with("acked ") {
            acked += 1;
        } else if line == "armme" {
            fs.fail_syncs_after(passing, 1);
            writeln!(stdin, "go").expect("to child");
        } else if let Some(r) = line.strip_prefix("failed-write ") {
            failed_write = Some(r.to_string());
        } else if line.starts_with("later ") {
            later.push(line.clone());
        } else if let Some(r) = line.strip_prefix("needs-reopen ") {
            needs_reopen = Some(r == "true");
        } else if line == "done" {
            break;
        } else {
            panic!("{what}: unexpected child line {line:?}");
        }
    }
    assert_eq!(
        acked, ACKED,
        "{what}: the writes before the failure were acknowledged"
    );
    assert!(fs.failed_syncs() > 0, "{what}: no sync was failed");
    fs.fail_syncs(0);
    let failed_write = failed_write.unwrap_or_else(|| panic!("{what}: the child died"));
    assert!(
        failed_write.starts_with("err "),
        "{what}: a Sync write whose fsync failed returned Ok"
    );
    assert_eq!(later.len() as u64, LATER, "{what}: {later:?}");
    for l in &later {
        let refused = match level {
            Level::Backend => l.contains(" err "),
            Level::Book => l.ends_with(" err NeedsReopen"),
        };
        assert!(
            refused,
            "{what}: a write after the failed fsync was not refused: {l} (failed write: \
             {failed_write})"
        );
    }
    if level == Level::Book {
        assert_eq!(
            needs_reopen,
            Some(true),
            "{what}: the book does not say NeedsReopen"
        );
    }
    match cut {
        None => {
            writeln!(stdin, "close").expect("to child");
            lines.for_each(drop); // the harness's last words, until the pipe closes
            let status = run.wait();
            assert!(
                status.success(),
                "{what}: the child failed to close: {status}"
            );
        }
        Some(_) => {
            run.0.kill().expect("SIGKILL");
            run.wait();
            drop(lines);
        }
    }
    if let Some(seed) = cut {
        fs.cut_power(seed);
    }
    // The remount drops the kernel's page cache of the mount.
    m.unmount().expect("unmount");
    let check_mount = fs.mount(mount).expect("mount again");

    let mut check = child(engine, level, "check", mount);
    let mut lines: Vec<String> = protocol_lines(&mut check).collect();
    check.wait();
    drop(check_mount);
    let Some(end) = lines.iter().position(|l| l == "end") else {
        let short: Vec<String> = lines
            .iter()
            .map(|l| l.chars().take(120).collect())
            .collect();
        panic!("{what}: the reopen did not finish: {short:?}");
    };
    lines.truncate(end);
    match level {
        Level::Backend => {
            let mut state = State::default();
            for l in &lines {
                let f: Vec<&str> = l.split(' ').collect();
                assert!(f.len() == 4 && f[0] == "kv", "{what}: {l:.120}");
                state[f[1].parse::<usize>().expect("space")].insert(unhex(f[2]), unhex(f[3]));
            }
            let mut before = State::default();
            (0..ACKED).for_each(|n| apply_batch(&mut before, n));
            let mut with_failed = before.clone();
            apply_batch(&mut with_failed, FAILED);
            eprintln!(
                "{what}: failed write {failed_write}, later {later:?}, after reopen the \
                 failed batch is {}",
                if state == before { "absent" } else { "present" }
            );
            assert!(
                state == before || state == with_failed,
                "{what}: after the reopen the store is neither the acknowledged writes nor \
                 those plus the failed one: {}",
                support::closest(&before, &[], &state)
            );
        }
        Level::Book => {
            eprintln!(
                "{what}: failed write {failed_write}, later {later:?}, after reopen {:?}",
                lines.get(1 + FAILED as usize)
            );
            assert_eq!(lines[0], "verify clean", "{what}: {lines:?}");
            for n in 0..=FAILED + LATER {
                let seen = &lines[1 + n as usize];
                let want: &[&str] = if n < ACKED {
                    &["present"]
                } else if n == FAILED {
                    &["present", "absent"]
                } else {
                    &["absent"]
                };
                assert!(
                    want.iter().any(|w| *seen == format!("peer {n} {w}")),
                    "{what}: `{seen}`, wanted one of {want:?}"
                );
            }
        }
    }
}

/// Every scenario of `engine`, with the write's first sync failing, and for each
/// later sync in `later_syncs` (one Sync write syncing more than once) that one.
fn run_engine(engine: Engine, later_syncs: &[u64]) {
    for level in [Level::Backend, Level::Book] {
        for passing in std::iter::once(0).chain(later_syncs.iter().copied()) {
            for cut in [None, Some(1), Some(2), Some(3)] {
                let dir = tempfile::tempdir().expect("temp dir");
                let fs = PowerFailFs::new();
                let Some(m) = fs.mount_in_test(dir.path()) else {
                    return;
                };
                scenario(&fs, m, engine, level, passing, cut);
            }
        }
    }
}

#[test]
fn lmdb_refuses_writes_after_a_failed_fsync() {
    // A Sync commit syncs twice: the data pages in `mdb_txn_commit`, then the meta
    // page in `force_sync` (`MDB_NOMETASYNC`); the second failing is the second case.
    run_engine(Engine::Lmdb, &[1]);
}

#[test]
fn rocksdb_refuses_writes_after_a_failed_fsync() {
    run_engine(Engine::Rocks, &[]);
}

#[test]
fn file_refuses_writes_after_a_failed_fsync() {
    run_engine(Engine::File, &[]);
}
