//! The engines under benchmark (opened through the `peerbook_engines` registry) and
//! the fixtures: pristine books built once per engine and size, cached on disk.

#[allow(unused_imports)]
use crate::*;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{Bencher, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode};
use peerbook::backend::Backend;
use peerbook::{Durability, MemoryBackend, PeerBook};
use peerbook_file::{FileBackend, FileOptions};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};
use peerbook_rocksdb::{RocksBackend, RocksOptions};
use serde_json::{json, Value};

// ----- backends and fixtures ------------------------------------------------------------

/// The four backends under test: the registry's engines.
pub use peerbook_engines::Engine as Kind;

/// Every engine, the in-memory reference first.
pub const KINDS: [Kind; 4] = Kind::ALL;

/// A backend behind the trait object every bench book uses.
pub type Dyn = Arc<dyn Backend>;
/// A bench book.
pub type Book = PeerBook<Dyn>;

/// LMDB with address space for a million-peer book (the map is not disk).
pub fn lmdb_options() -> LmdbOptions {
    LmdbOptions::default().with_max_map_size(64 << 30)
}

/// Open the backend `kind` in `dir` through the registry, with its default options
/// (LMDB with [`lmdb_options`]).
pub fn open_backend(kind: Kind, dir: &Path) -> Dyn {
    let options = peerbook_engines::EngineOptions::default().with_lmdb(lmdb_options());
    kind.open_with(dir, &options)
        .unwrap_or_else(|e| panic!("open {kind}: {e}"))
}

/// Compact the closed book in `dir` (RocksDB, file) and return its disk usage as
/// the backend reports it.
fn compact_and_measure(kind: Kind, dir: &Path) -> u64 {
    match kind {
        Kind::Memory => 0,
        Kind::Lmdb => {
            let b = LmdbBackend::open(dir, lmdb_options()).expect("open LMDB");
            b.disk_usage().expect("disk usage")
        }
        Kind::Rocks => {
            let b = RocksBackend::open(dir, RocksOptions::default()).expect("open RocksDB");
            b.compact().expect("compact RocksDB");
            b.flush().expect("flush RocksDB");
            b.disk_usage().expect("disk usage")
        }
        Kind::File => {
            let b = FileBackend::open(dir, FileOptions::default()).expect("open file");
            b.compact().expect("compact file backend");
            b.disk_usage().expect("disk usage")
        }
    }
}

/// The size of a compacting copy of the closed LMDB book in `dir` (what
/// `mdb_env_copy2(MDB_CP_COMPACT)` leaves: live pages only, no free pages).
pub fn lmdb_compacted_bytes(dir: &Path) -> u64 {
    let data = fs::metadata(dir.join("data.mdb")).map_or(0, |m| m.len() as usize);
    let mut options = heed::EnvOpenOptions::new();
    options.map_size((data * 2).max(1 << 20)).max_dbs(8);
    // SAFETY: the book is closed; nothing else maps or writes these files meanwhile.
    let env = unsafe { options.open(dir) }.expect("open the LMDB environment");
    let copy = dir.with_extension("compacted.mdb");
    remove(&copy);
    env.copy_to_path(&copy, heed::CompactionOption::Enabled)
        .expect("compacting copy");
    drop(env);
    let bytes = allocated_bytes(&copy);
    remove(&copy);
    bytes
}

/// Bytes allocated on disk by the files under `path` (st_blocks x 512).
pub fn allocated_bytes(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| allocated_bytes(&e.path()))
                    .sum()
            })
            .unwrap_or(0)
    } else {
        meta.blocks() * 512
    }
}

/// Copy a directory tree (a closed book), every copied file and directory synced
/// before it returns, so the copy's writeback (up to 2 GB of dirty pages at 1M
/// peers) cannot overlap the timed `Sync` writes that follow. The syncs add about
/// 1 s to the 14 s a 1.8 GB copy takes here.
pub fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
            fs::File::open(&target)?.sync_all()?;
        }
    }
    fs::File::open(to)?.sync_all()
}

/// Remove a file or directory tree, if present.
pub fn remove(path: &Path) {
    if path.is_dir() {
        let _ = fs::remove_dir_all(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

/// Copy every entry of `from` into `to` (a deep copy of an in-memory book).
pub fn copy_entries(from: &dyn Backend, to: &dyn Backend) {
    crate::raw::scan_chunks(from, |batch| {
        to.write(batch, Durability::Buffered).expect("copy")
    });
}

/// What building a pristine book found (cached next to it as JSON).
#[derive(Clone, Debug, Default)]
pub struct FixtureStats {
    pub peers: usize,
    /// Sum of the records' stored encodings (format byte + postcard).
    pub record_bytes: u64,
    /// Sum of the records' compact JSON.
    pub json_bytes: u64,
    /// Allocated bytes of the book's directory after flush and compaction.
    pub dir_bytes: u64,
    /// `Backend::disk_usage` after flush and compaction.
    pub disk_usage: u64,
    /// LMDB only: allocated bytes of a compacting copy (0 elsewhere).
    pub compacted_bytes: u64,
    pub build_secs: f64,
    /// True when an earlier run's book was reused.
    pub cached: bool,
}

impl FixtureStats {
    pub fn to_json(&self, backend: &str) -> Value {
        json!({
            "backend": backend,
            "peers": self.peers,
            "record_bytes": self.record_bytes,
            "json_bytes": self.json_bytes,
            "dir_bytes": self.dir_bytes,
            "disk_usage": self.disk_usage,
            "compacted_bytes": self.compacted_bytes,
            "build_secs": self.build_secs,
            "cached": self.cached,
            "version": fixture_stamp(),
        })
    }

    pub fn from_json(v: &Value) -> Option<Self> {
        if v.get("version")?.as_str()? != fixture_stamp() {
            return None;
        }
        Some(FixtureStats {
            peers: v.get("peers")?.as_u64()? as usize,
            record_bytes: v.get("record_bytes")?.as_u64()?,
            json_bytes: v.get("json_bytes")?.as_u64()?,
            dir_bytes: v.get("dir_bytes")?.as_u64()?,
            disk_usage: v.get("disk_usage")?.as_u64()?,
            compacted_bytes: v.get("compacted_bytes")?.as_u64()?,
            build_secs: v.get("build_secs")?.as_f64()?,
            cached: true,
        })
    }
}

/// A book of `n` generated peers as built, never written to by a benchmark: the
/// benchmarks work on copies.
pub struct Pristine {
    pub kind: Kind,
    pub n: usize,
    /// The book's directory (disk backends).
    pub dir: Option<PathBuf>,
    /// The book itself (memory backend).
    pub memory: Option<MemoryBackend>,
    pub stats: FixtureStats,
}

/// The pristine directory of a disk fixture, and its marker file.
pub fn fixture_paths(out: &Path, name: &str, n: usize) -> (PathBuf, PathBuf) {
    let books = out.join("books");
    (
        books.join(format!("{name}-{n}")),
        books.join(format!("{name}-{n}.json")),
    )
}

/// Read a cached fixture's stats if its marker matches this version and its files exist.
pub fn cached_fixture(out: &Path, name: &str, n: usize) -> Option<FixtureStats> {
    let (dir, marker) = fixture_paths(out, name, n);
    if !dir.exists() {
        return None;
    }
    let v: Value = serde_json::from_str(&fs::read_to_string(marker).ok()?).ok()?;
    FixtureStats::from_json(&v).filter(|s| s.peers == n)
}

/// Record a built fixture (the marker is written last: a half-built book is rebuilt).
pub fn mark_fixture(out: &Path, name: &str, stats: &FixtureStats) {
    let (_, marker) = fixture_paths(out, name, stats.peers);
    let text = serde_json::to_string_pretty(&stats.to_json(name)).expect("JSON");
    fs::write(marker, text).expect("write the fixture marker");
}

/// The pristine book of `kind` with `n` peers: cached under `<out>/books/` for disk
/// backends (built with Buffered writes, flushed and compacted), built in memory
/// otherwise.
pub fn pristine(out: &Path, gen: &Generator, kind: Kind, n: usize) -> Pristine {
    let started = Instant::now();
    if kind == Kind::Memory {
        let backend = MemoryBackend::new();
        let book = PeerBook::open(backend.clone(), options(Durability::Buffered)).expect("open");
        let (record_bytes, json_bytes) = gen.load(&book, n);
        return Pristine {
            kind,
            n,
            dir: None,
            memory: Some(backend),
            stats: FixtureStats {
                peers: n,
                record_bytes,
                json_bytes,
                build_secs: started.elapsed().as_secs_f64(),
                ..FixtureStats::default()
            },
        };
    }
    let (dir, marker) = fixture_paths(out, kind.name(), n);
    if let Some(stats) = cached_fixture(out, kind.name(), n) {
        return Pristine {
            kind,
            n,
            dir: Some(dir),
            memory: None,
            stats,
        };
    }
    remove(&dir);
    remove(&marker);
    fs::create_dir_all(dir.parent().expect("books dir")).expect("create books dir");
    let book = PeerBook::open(open_backend(kind, &dir), options(Durability::Buffered))
        .expect("open a new book");
    let (record_bytes, json_bytes) = gen.load(&book, n);
    drop(book.close().expect("close"));
    let disk_usage = compact_and_measure(kind, &dir);
    let stats = FixtureStats {
        peers: n,
        record_bytes,
        json_bytes,
        dir_bytes: allocated_bytes(&dir),
        disk_usage,
        compacted_bytes: if kind == Kind::Lmdb {
            lmdb_compacted_bytes(&dir)
        } else {
            0
        },
        build_secs: started.elapsed().as_secs_f64(),
        cached: false,
    };
    mark_fixture(out, kind.name(), &stats);
    Pristine {
        kind,
        n,
        dir: Some(dir),
        memory: None,
        stats,
    }
}

impl Pristine {
    /// A fresh copy of the book (a new directory `work`, or a deep copy in memory),
    /// opened as a backend.
    pub fn copy(&self, work: &Path) -> Dyn {
        match (&self.memory, &self.dir) {
            (Some(memory), _) => {
                let copy = MemoryBackend::new();
                copy_entries(memory, &copy);
                Arc::new(copy) as Dyn
            }
            (None, Some(dir)) => {
                remove(work);
                copy_dir(dir, work).expect("copy the pristine book");
                open_backend(self.kind, work)
            }
            (None, None) => unreachable!("a pristine book is in memory or on disk"),
        }
    }
}

/// What every benchmark group needs: the mode, where results go, the record generator.
pub struct Ctx {
    pub mode: Mode,
    pub out: PathBuf,
    pub gen: Generator,
    pub started: Instant,
    /// Holds the smoke run's scratch directory.
    pub _scratch: Option<tempfile::TempDir>,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new()
    }
}

impl Ctx {
    /// The context of one bench binary: the mode from the command line and
    /// environment, and a scratch output directory in smoke (test) mode.
    pub fn new() -> Ctx {
        let mode = Mode::detect();
        let scratch = (mode == Mode::Smoke).then(|| tempfile::tempdir().expect("a scratch dir"));
        let out = match &scratch {
            Some(dir) => dir.path().to_path_buf(),
            None => out_dir(),
        };
        Ctx {
            mode,
            out,
            gen: Generator::new(),
            started: Instant::now(),
            _scratch: scratch,
        }
    }

    /// A group of single-operation benchmarks on a book of `n` peers.
    pub fn fast<'a>(
        &self,
        c: &'a mut Criterion,
        name: &str,
        n: usize,
    ) -> BenchmarkGroup<'a, WallTime> {
        let t = self.mode.timing(n);
        let mut g = c.benchmark_group(name);
        g.sample_size(t.sample_size)
            .warm_up_time(t.warm_up)
            .measurement_time(t.measurement)
            .nresamples(t.nresamples);
        g
    }

    /// One fast benchmark on a book of `n` peers, announced on stderr: group `group`,
    /// function `function` (the backend), parameter the size label.
    pub fn bench_fast(
        &self,
        c: &mut Criterion,
        group: &str,
        function: &str,
        n: usize,
        f: impl FnMut(&mut Bencher<'_, WallTime>),
    ) {
        let size = size_label(n);
        progress(self.started, &format!("{group}  [{function} {size}]"));
        let mut g = self.fast(c, group, n);
        g.bench_function(BenchmarkId::new(function, &size), f);
        g.finish();
    }

    /// A group of whole-book benchmarks: ten runs of one iteration each (flat
    /// sampling, a token warm-up), whatever one run costs.
    pub fn slow<'a>(&self, c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
        let mut g = c.benchmark_group(name);
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_millis(1))
            .nresamples(self.mode.timing(0).nresamples);
        g
    }

    /// Announce the run of the bench binary `what` (mode, sizes, output).
    pub fn start_run(&self, what: &str) -> RunInfo {
        progress(
            self.started,
            &format!(
                "{what}, mode {}, sizes {:?}, output {}",
                self.mode.name(),
                self.mode.sizes(),
                self.out.display()
            ),
        );
        RunInfo {
            started_at: unix_now(),
            load_before: load_average(),
        }
    }

    /// Remove the scratch books and record the run as `data/run-<name>.json`, with
    /// `extra` fields.
    pub fn finish_run(&self, name: &str, run: RunInfo, extra: Value) {
        remove(&self.out.join("work"));
        let mut data = json!({
            "mode": self.mode.name(),
            "sizes": self.mode.sizes(),
            "started": run.started_at,
            "finished": unix_now(),
            "seconds": self.started.elapsed().as_secs_f64(),
            "load_before": run.load_before,
            "load_after": load_average(),
        });
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        write_data(&self.out, &format!("run-{name}"), &data);
    }

    /// A scratch directory for one benchmark.
    pub fn work(&self, name: &str) -> PathBuf {
        self.out.join("work").join(name)
    }
}

/// `sync` or `buffered`, for benchmark ids.
pub fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Sync => "sync",
        Durability::Buffered => "buffered",
    }
}
