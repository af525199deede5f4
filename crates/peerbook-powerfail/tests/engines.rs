//! The power-loss proof of the real engines: the file backend's model-checked crash
//! workload (random batches, clears and flushes, `Sync` and `Buffered`), run on
//! LMDB and RocksDB through the power-loss file system.
//!
//! Each cut point: a child process (this test binary, re-run) opens the engine on
//! the FUSE mount and runs the workload, acknowledging every call that returned;
//! the parent SIGKILLs it at a random moment, cuts the power (a random part of the
//! unsynced writes survives, in any order), unmounts, mounts again, reopens the
//! engine and compares it with the model: the store must equal the model after
//! some prefix of the acknowledged steps (plus maybe the one in flight) that holds
//! every step acknowledged as durable (a `Sync` write or clear, or anything before
//! a returned `flush`). So `Buffered` loses at most a suffix, and nothing is ever
//! half applied or corrupted.
//!
//! `PEERBOOK_POWER_CUTS=N` sets the cut points per engine (default 30);
//! `PEERBOOK_POWER_SEED=S` the seed. A failure prints the seed that reproduces it
//! (the kill moments vary a little from run to run);
//! `PEERBOOK_POWERFAIL_TRACE=1` prints every write, sync, step and cut on stderr.
//!
//! Besides the prefix rule, two stronger checks: a cut that kept every unsynced
//! write (a process crash alone) must keep every acknowledged step, Buffered ones
//! too; and on LMDB a cut undoes at most the last acknowledged commit (documented in
//! `peerbook-lmdb`). Every engine is held to the same prefix rule: RocksDB, whose
//! unsynced write-ahead log could lose a batch and keep a later one, syncs Buffered
//! writes like Sync ones (documented in `peerbook-rocksdb`).
//! The mount needs root and `/dev/fuse`: refused under CI (`CI=true`) the test
//! fails, elsewhere it is skipped with a loud message.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peerbook::backend::{BackendError, Durability};
use peerbook::conformance::Rng;
use peerbook_powerfail::PowerFailFs;
use support::engine::Engine;
use support::{apply, closest, dump, hex, run_step, unhex, State, Step, Workload};

const CHILD_ENV: &str = "PEERBOOK_POWERFAIL_CHILD";
const DEFAULT_CUTS: usize = 30;
const DEFAULT_SEED: u64 = 0x0bad_c0de_0000_0015;
/// Cut points per mount of one file system (a scenario): later points start from
/// what earlier cuts left.
const POINTS_PER_SCENARIO: usize = 10;

/// The child's seed that asks for a dump instead of the workload.
const DUMP: u64 = u64::MAX;
/// The child's seed that asks for an open only (then waits to be killed).
const OPEN_ONLY: u64 = u64::MAX - 1;

/// Reopens the engine in a child process and reads every entry.
fn reopen_and_dump(engine: Engine, mount: &Path) -> Result<State, String> {
    let output = child_command(engine, mount, DUMP, 0)
        .output()
        .expect("run the dump child");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut state: State = Default::default();
    for line in text.lines() {
        let line = line.trim_start_matches("test power_child_entry ... ");
        if let Some(e) = line.strip_prefix("error ") {
            return Err(e.to_string());
        }
        if line == "end" {
            return Ok(state);
        }
        if let Some(kv) = line.strip_prefix("kv ") {
            let mut f = kv.split(' ');
            let (i, k, v) = (f.next(), f.next(), f.next());
            let (Some(i), Some(k), Some(v)) = (i, k, v) else {
                return Err(format!("bad dump line {line:?}"));
            };
            let i: usize = i.parse().map_err(|_| format!("bad dump line {line:?}"))?;
            state[i].insert(unhex(k), unhex(v));
        }
    }
    Err(format!(
        "the reopen crashed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    ))
}

fn child_command(engine: Engine, mount: &Path, seed: u64, sync_percent: u64) -> Command {
    let spec = format!(
        "{}:{seed}:{sync_percent}:{}",
        engine.name(),
        mount.display()
    );
    support::child_command("power_child_entry", CHILD_ENV, spec)
}

/// The child: open, run the workload forever, print `ack N` after step N returned.
#[test]
fn power_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return; // not a child
    };
    let mut parts = spec.splitn(4, ':');
    let engine = Engine::from_name(parts.next().expect("engine"));
    let seed: u64 = parts.next().expect("seed").parse().expect("seed");
    let sync_percent: u64 = parts.next().expect("sync").parse().expect("sync");
    let dir = parts.next().expect("dir");
    let mut out = std::io::stdout().lock();
    if seed == OPEN_ONLY {
        writeln!(out).expect("pipe");
        match engine.open(Path::new(dir)) {
            Ok(_backend) => writeln!(out, "opened").expect("pipe"),
            Err(e) => writeln!(out, "dead {e}").expect("pipe"),
        }
        out.flush().expect("pipe");
        loop {
            std::thread::sleep(Duration::from_secs(1)); // until killed
        }
    }
    if seed == DUMP {
        // The reopen after the cut, in a process of its own: the test process serves
        // the file system and must never map its files (on exit, the kernel would
        // wait for the mapping's write-back on the server thread that is gone).
        writeln!(out).expect("pipe");
        match engine.open(Path::new(dir)).and_then(|b| dump(&*b)) {
            Ok(state) => {
                for (i, space) in state.iter().enumerate() {
                    for (k, v) in space {
                        writeln!(out, "kv {i} {} {}", hex(k), hex(v)).expect("pipe");
                    }
                }
                writeln!(out, "end").expect("pipe");
            }
            Err(e) => writeln!(out, "error {e}").expect("pipe"),
        }
        return;
    }
    writeln!(out, "\nopening").expect("pipe");
    out.flush().expect("pipe");
    // Once the file system failed by itself (`PowerFailFs::fail_after`) every call
    // fails: say so and wait for the kill, as a machine losing power would.
    let dead = |out: &mut std::io::StdoutLock<'_>, e: BackendError| -> ! {
        let _ = writeln!(out, "\ndead {e}");
        let _ = out.flush();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    let backend = match engine.open(Path::new(dir)) {
        Ok(b) => b,
        Err(e) => dead(&mut out, e),
    };
    writeln!(out, "\nopen").expect("pipe");
    out.flush().expect("pipe");
    let mut workload = Workload::new(seed, sync_percent);
    for i in 0u64.. {
        let step = workload.next();
        if std::env::var_os("PEERBOOK_POWERFAIL_TRACE").is_some() {
            eprintln!("TRACE step {i} begin");
        }
        if let Err(e) = run_step(&*backend, &step) {
            dead(&mut out, e);
        }
        if std::env::var_os("PEERBOOK_POWERFAIL_TRACE").is_some() {
            eprintln!("TRACE step {i} done");
        }
        writeln!(out, "ack {i}").expect("pipe");
        out.flush().expect("pipe");
    }
}

#[derive(Debug, Default)]
struct Totals {
    points: usize,
    acked_steps: usize,
    killed_before_open: usize,
    lost_steps: usize,
    cuts_losing_data: usize,
    pieces_pending: usize,
    pieces_kept: usize,
    /// Cuts that kept every unsynced write (a process crash only).
    sigkill_only: usize,
    /// Points where the file system failed by itself after a number of requests.
    budget_points: usize,
}

/// Spawns the child, lets it acknowledge about `wanted` steps (0: kill at a random
/// moment, maybe while opening), SIGKILLs it. Returns the acknowledged step count.
fn run_child(
    engine: Engine,
    mount: &Path,
    seed: u64,
    sync_percent: u64,
    wanted: u64,
    rng: &mut Rng,
) -> (usize, bool) {
    let mut child = child_command(engine, mount, seed, sync_percent)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let mut acked = 0usize;
    let mut opened = false;
    if wanted == 0 {
        // Kill while the engine opens (creates or recovers its files), or just after.
        for line in lines.by_ref() {
            if line.map_or(true, |l| l.ends_with("opening") || l.starts_with("dead ")) {
                break;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3_000)));
    } else {
        let deadline = Instant::now() + Duration::from_secs(60);
        while (acked as u64) < wanted && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) if line == "open" => opened = true,
                Some(Ok(line)) if line.starts_with("ack ") => acked += 1,
                Some(Ok(line)) if line.starts_with("dead ") => break,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
    }
    child.kill().expect("SIGKILL the child");
    // Acknowledgements already in the pipe were given before the kill: they count.
    for line in lines.map_while(Result::ok) {
        if line == "open" {
            opened = true;
        } else if line.starts_with("ack ") {
            acked += 1;
        }
    }
    let status = child.wait().expect("reap child");
    assert!(
        status.code().is_none(),
        "{}: the child ended by itself ({status}) before the kill: see its output above",
        engine.name()
    );
    (acked, opened)
}

struct Scenario {
    engine: Engine,
    seed: u64,
    rng: Rng,
    sync_percent: u64,
    fs: PowerFailFs,
    /// The state after the last verified reopen.
    base: State,
}

impl Scenario {
    fn fail(&self, point: usize, what: String) -> String {
        format!(
            "{} power-loss proof failed at cut point {point} of scenario seed {seed}: {what}\n\
             reproduce: PEERBOOK_POWER_SEED={seed} PEERBOOK_POWER_CUTS={POINTS_PER_SCENARIO} \
             cargo test -p peerbook-powerfail --test engines",
            self.engine.name(),
            seed = self.seed
        )
    }

    /// Runs `points` cut points: `Ok(false)` when the mount was refused (skipped),
    /// `Err` with the reproduction when the store broke the promise.
    fn run(
        &mut self,
        mount_dir: &Path,
        points: usize,
        totals: &mut Totals,
    ) -> Result<bool, String> {
        let Some(mut mounted) = self.fs.mount_in_test(mount_dir) else {
            return Ok(false);
        };
        for point in 0..points {
            let child_seed = self.rng.next_u64();
            // Often kill early at a scenario's first point: the engine is creating
            // its files then.
            let early = point == 0 && self.rng.below(2) == 0;
            let wanted = match self.rng.below(8) {
                _ if early => 0,
                0 => 0,
                1..=2 => 1 + self.rng.below(5),
                _ => 1 + self.rng.below(60),
            };
            // A third of the points (half of the first ones, when the engine creates
            // its files) end by the file system failing after a few requests: the
            // crash lands exactly inside a sequence of writes and syncs.
            let budget = match (point, self.rng.below(6)) {
                (0, 0..=2) => Some(self.rng.below(40)),
                (_, 0..=1) => Some(self.rng.below(300)),
                _ => None,
            };
            self.fs.fail_after(budget);
            if budget.is_some() {
                totals.budget_points += 1;
            }
            let (acked, opened) = run_child(
                self.engine,
                mount_dir,
                child_seed,
                self.sync_percent,
                wanted,
                &mut self.rng,
            );
            if !opened {
                totals.killed_before_open += 1;
            }
            let report = self.fs.cut_power(self.rng.next_u64());
            if std::env::var_os("PEERBOOK_POWERFAIL_TRACE").is_some() {
                eprintln!("TRACE cut point {point}: {report:?}");
            }
            totals.pieces_pending += report.pieces_pending;
            totals.pieces_kept += report.pieces_kept;
            if report.pieces_kept < report.pieces_pending
                || report.names_kept < report.names_pending
            {
                totals.cuts_losing_data += 1;
            }
            mounted.unmount().expect("unmount after the power cut");
            mounted = self.fs.mount(mount_dir).expect("mount again");

            // The model: the acknowledged steps, then the one in flight.
            let mut workload = Workload::new(child_seed, self.sync_percent);
            let steps: Vec<Step> = (0..=acked).map(|_| workload.next()).collect();
            let durable = steps[..acked]
                .iter()
                .rposition(|s| {
                    matches!(
                        s,
                        Step::Flush
                            | Step::Write(_, Durability::Sync)
                            | Step::Clear(Durability::Sync)
                    )
                })
                .map_or(0, |i| i + 1);
            let actual = match reopen_and_dump(self.engine, mount_dir) {
                Ok(s) => s,
                Err(e) => {
                    return Err(self.fail(
                        point,
                        format!("reopen after the power cut failed: {e}; cut {report:?}"),
                    ))
                }
            };
            let mut state = self.base.clone();
            for s in &steps[..durable] {
                apply(&mut state, s);
            }
            // The longest matching prefix: what survived at least.
            let mut found = None;
            for p in durable..=steps.len() {
                if state == actual {
                    found = Some(p);
                }

                if p < steps.len() {
                    apply(&mut state, &steps[p]);
                }
            }
            let Some(p) = found else {
                let sizes: Vec<usize> = actual.iter().map(BTreeMap::len).collect();
                return Err(self.fail(
                    point,
                    format!(
                        "the reopened store (entries per space {sizes:?}) matches no prefix \
                         of the steps between {durable} (durable) and {} ({acked} \
                         acknowledged + 1 in flight); cut {report:?}\n{}",
                        steps.len(),
                        closest(&self.base, &steps, &actual)
                    ),
                ));
            };
            // Acknowledged steps lost: those after the surviving prefix that changed
            // the store (a delete of an absent key commits nothing).
            let mut state = actual.clone();
            let mut lost_commits = 0;
            for s in &steps[p.min(acked)..acked] {
                let before = state.clone();
                apply(&mut state, s);
                lost_commits += usize::from(state != before);
            }
            if report.pieces_kept == report.pieces_pending
                && report.names_kept == report.names_pending
                && lost_commits > 0
            {
                // Nothing unsynced was dropped: a process crash alone. Every
                // acknowledged step must be there, Buffered ones too.
                return Err(self.fail(
                    point,
                    format!(
                        "a crash that lost no write (SIGKILL only) lost {lost_commits} \
                         acknowledged steps; cut {report:?}"
                    ),
                ));
            }
            if self.engine.buffered_loses_at_most_last_commit() && lost_commits > 1 {
                return Err(self.fail(
                    point,
                    format!(
                        "the power cut undid {lost_commits} acknowledged commits (documented: \
                         at most the last); {p} steps kept of {acked} acknowledged; cut \
                         {report:?}\n{}",
                        closest(&self.base, &steps, &actual)
                    ),
                ));
            }
            totals.sigkill_only += usize::from(report.pieces_kept == report.pieces_pending);
            totals.points += 1;
            totals.acked_steps += acked;
            totals.lost_steps += lost_commits;
            self.base = actual;
        }
        mounted.unmount().expect("unmount");
        Ok(true)
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

/// Runs `points` cut points on `engine`; `Ok(None)` when skipped, `Err` at the first
/// broken promise.
fn prove(engine: Engine, points: usize) -> Result<Option<Totals>, String> {
    let seed =
        env_number("PEERBOOK_POWER_SEED").unwrap_or(match env_number("PEERBOOK_POWER_CUTS") {
            Some(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(DEFAULT_SEED, |d| d.as_nanos() as u64),
            None => DEFAULT_SEED,
        });
    println!(
        "power-loss proof (FUSE power-cut file system) on {}: seed {seed}, {points} cut points",
        engine.name()
    );
    let start = Instant::now();
    watchdog(engine, Duration::from_secs(120 + 3 * points as u64));
    let mut totals = Totals::default();
    let mut done = 0;
    let mut i = 0u64;
    while done < points {
        let n = POINTS_PER_SCENARIO.min(points - done);
        let scenario_seed = seed.wrapping_add(i);
        let mut rng = Rng::new(scenario_seed);
        // Every third scenario mostly Buffered: long unsynced runs to lose.
        let sync_percent = if rng.below(3) == 0 { 5 } else { 50 };
        let mut scenario = Scenario {
            engine,
            seed: scenario_seed,
            rng,
            sync_percent,
            fs: PowerFailFs::new(),
            base: Default::default(),
        };
        let dir = tempfile::tempdir().expect("mount point");
        if !scenario.run(dir.path(), n, &mut totals)? {
            return Ok(None);
        }
        done += n;
        i += 1;
    }
    println!("{}: {totals:?} in {:?}", engine.name(), start.elapsed());
    assert_eq!(totals.points, points);
    Ok(Some(totals))
}

/// A hang (a bug of the file system, or an engine blocked on it) must fail the run,
/// not stall CI: aborts the whole test process after `limit`.
fn watchdog(engine: Engine, limit: Duration) {
    let name = engine.name();
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("!!! {name} power-loss proof still running after {limit:?}: aborting");
        std::process::abort();
    });
}

fn cuts() -> usize {
    env_number("PEERBOOK_POWER_CUTS").map_or(DEFAULT_CUTS, |n| n as usize)
}

#[test]
fn lmdb_power_loss_keeps_every_acknowledged_sync_write() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    if let Some(totals) = prove(Engine::Lmdb, cuts()).unwrap_or_else(|e| panic!("{e}")) {
        assert!(totals.acked_steps > 0, "{totals:?}");
        assert!(
            totals.cuts_losing_data > 0,
            "no cut lost anything: {totals:?}"
        );
    }
}

#[test]
fn rocksdb_power_loss_keeps_every_acknowledged_sync_write() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    if let Some(totals) = prove(Engine::Rocks, cuts()).unwrap_or_else(|e| panic!("{e}")) {
        assert!(totals.acked_steps > 0, "{totals:?}");
        assert!(
            totals.cuts_losing_data > 0,
            "no cut lost anything: {totals:?}"
        );
    }
}

/// Power cuts at every point of a new book's creation (the first open): the file
/// system fails after `b` requests, for each `b` up to what a whole open takes,
/// then the power is cut (several ways); the book must then open, empty. LMDB
/// writes a new file's meta pages without a sync: before `peerbook-lmdb` built new
/// books aside and renamed them in, a lost first page left a book that never opened
/// again ("not an LMDB file").
fn creation_survives_power_cuts(engine: Engine) {
    watchdog(engine, Duration::from_secs(300));
    let dir = tempfile::tempdir().expect("mount point");
    let mount_dir = dir.path();
    // How many requests a whole creation takes.
    let fs = PowerFailFs::new();
    let Some(m) = fs.mount_in_test(mount_dir) else {
        return;
    };
    open_in_child_then_kill(engine, mount_dir);
    let total = fs.mutations();
    m.unmount().expect("unmount");
    let step = (total / 40).max(1);
    let mut points = 0;
    let start = Instant::now();
    let budgets = total / step + 1;
    let cuts = (200 / budgets).clamp(3, 16);
    for budget in (0..=total).step_by(step as usize) {
        for cut in 0..cuts {
            let fs = PowerFailFs::new();
            let m = fs.mount(mount_dir).expect("mount");
            fs.fail_after(Some(budget));
            open_in_child_then_kill(engine, mount_dir);
            let report = fs.cut_power(budget * 16 + cut);
            m.unmount().expect("unmount");
            let m = fs.mount(mount_dir).expect("mount again");
            match reopen_and_dump(engine, mount_dir) {
                Ok(state) => assert!(
                    state.iter().all(BTreeMap::is_empty),
                    "{}: a new book holds data after a cut during its creation",
                    engine.name()
                ),
                Err(e) => panic!(
                    "{}: a power cut after {budget} of the {total} requests of a new book's \
                     creation left a book that does not open: {e}; cut {report:?}",
                    engine.name()
                ),
            }
            m.unmount().expect("unmount");
            points += 1;
        }
    }
    println!(
        "{}: {points} power cuts during creation ({total} requests) in {:?}",
        engine.name(),
        start.elapsed()
    );
}

#[test]
fn lmdb_creation_survives_power_cuts() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    creation_survives_power_cuts(Engine::Lmdb);
}

#[test]
fn rocksdb_creation_survives_power_cuts() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    creation_survives_power_cuts(Engine::Rocks);
}

#[test]
fn file_power_loss_keeps_every_acknowledged_sync_write() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    if let Some(totals) = prove(Engine::File, cuts()).unwrap_or_else(|e| panic!("{e}")) {
        assert!(totals.acked_steps > 0, "{totals:?}");
        assert!(
            totals.cuts_losing_data > 0,
            "no cut lost anything: {totals:?}"
        );
    }
}

/// Run a child that only opens a new book in `mount_dir`, wait until it says it
/// opened (or died), then kill it: the creation sweep's one step, measured once
/// whole and then cut at every request budget.
fn open_in_child_then_kill(engine: Engine, mount_dir: &Path) {
    let mut child = child_command(engine, mount_dir, OPEN_ONLY, 0)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = BufReader::new(child.stdout.take().expect("piped"));
    for line in out.lines().map_while(Result::ok) {
        if line.ends_with("opened") || line.starts_with("dead ") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}
