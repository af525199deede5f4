//! Baselines for the peerbook workloads, in the same criterion groups:
//!
//! - the raw engines: a put / get of the same encoded record bytes
//!   (`PeerRecord::encode`) straight into heed (`lmdb-raw`) and the rocksdb crate
//!   (`rocksdb-raw`), and through the `Backend` trait of each backend (`memory-raw`,
//!   `file-raw`: those engines are ours, so the trait is their raw API; `lmdb-trait`,
//!   `rocksdb-trait`: the adapter without the store above it);
//! - SQLite (`sqlite`): the same records in an indexed table, every workload.
//!
//! A put of a new key is deleted again (not timed), as in the peerbook bench.

// The workload library (crate root `peerbook_bench`), under the name the benches grew up with.
use peerbook_bench as common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::sql::Sql;
use common::{
    durability_name, load_average, new_peer, peer_id, progress, size_label, unix_now, write_data,
    Ctx, FixtureStats, Generator, Rng, DAY_MS, INACTIVE_AFTER_DAYS, LOAD_CHUNK, NOW_MS, SEED,
};
use criterion::{BatchSize, BenchmarkId, Criterion};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, WithoutTls};
use peerbook::backend::{Backend, Space, WriteBatch};
use peerbook::{ConnectionType, Durability, MemoryBackend};
use peerbook_file::{FileBackend, FileOptions};
use peerbook_lmdb::LmdbBackend;
use peerbook_rocksdb::{RocksBackend, RocksOptions};

// ----- raw engines ------------------------------------------------------------------

/// A key-value store holding encoded records under their peer id.
trait Raw {
    fn put(&self, key: &[u8], value: &[u8], d: Durability);
    fn delete(&self, key: &[u8], d: Durability);
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Write many entries in one batch (Buffered); used to fill the store.
    fn load(&self, entries: &[(Vec<u8>, Vec<u8>)]);
    /// Make everything durable and compact (before the measurements).
    fn settle(&self);
}

/// heed directly: one named database, the flags and syncs LmdbBackend uses
/// (NO_META_SYNC; Sync = commit + `force_sync`).
struct Heed {
    env: Env<WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
}

impl Heed {
    fn open(dir: &Path) -> Heed {
        std::fs::create_dir_all(dir).expect("create dir");
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder.map_size(64 << 30).max_dbs(1);
        // SAFETY: NO_META_SYNC weakens durability only; Sync puts call force_sync, as
        // the LMDB backend does.
        unsafe {
            builder.flags(EnvFlags::NO_META_SYNC);
        }
        // SAFETY: the directory is this benchmark's own; nothing else maps or writes it.
        let env = unsafe { builder.open(dir) }.expect("open LMDB");
        let wtxn = env.write_txn().expect("txn");
        let db = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database::<Bytes, Bytes>(wtxn, Some("peers"))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .expect("create the database")
            .unwrap_commit();
        Heed { env, db }
    }

    fn commit(&self, d: Durability, f: impl FnOnce(&mut heed::RwTxn<'_>)) {
        let mut wtxn = self.env.write_txn().expect("txn");
        f(&mut wtxn);
        wtxn.commit().expect("commit");
        if d == Durability::Sync {
            self.env.force_sync().expect("sync");
        }
    }
}

impl Raw for Heed {
    fn put(&self, key: &[u8], value: &[u8], d: Durability) {
        self.commit(d, |t| self.db.put(t, key, value).expect("put"));
    }
    fn delete(&self, key: &[u8], d: Durability) {
        self.commit(d, |t| {
            self.db.delete(t, key).expect("delete");
        });
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let rtxn = self.env.read_txn().expect("txn");
        self.db.get(&rtxn, key).expect("get").map(<[u8]>::to_vec)
    }
    fn load(&self, entries: &[(Vec<u8>, Vec<u8>)]) {
        self.commit(Durability::Buffered, |t| {
            for (k, v) in entries {
                self.db.put(t, k, v).expect("put");
            }
        });
    }
    fn settle(&self) {
        self.env.force_sync().expect("sync");
    }
}

/// The rocksdb crate directly: default options, the default column family; Sync =
/// a synced WAL write, and so is Buffered, as in `peerbook-rocksdb` (an unsynced WAL
/// can lose a batch and keep a later one on power loss). Only `load` (the bulk fill)
/// writes unsynced.
struct Rocks {
    db: rocksdb::DB,
    sync: rocksdb::WriteOptions,
    buffered: rocksdb::WriteOptions,
}

impl Rocks {
    fn open(dir: &Path) -> Rocks {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, dir).expect("open RocksDB");
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        Rocks {
            db,
            sync,
            buffered: rocksdb::WriteOptions::default(),
        }
    }
    fn opts(&self, _d: Durability) -> &rocksdb::WriteOptions {
        &self.sync
    }
}

impl Raw for Rocks {
    fn put(&self, key: &[u8], value: &[u8], d: Durability) {
        self.db.put_opt(key, value, self.opts(d)).expect("put");
    }
    fn delete(&self, key: &[u8], d: Durability) {
        self.db.delete_opt(key, self.opts(d)).expect("delete");
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.db.get_pinned(key).expect("get").map(|v| v.to_vec())
    }
    fn load(&self, entries: &[(Vec<u8>, Vec<u8>)]) {
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in entries {
            batch.put(k, v);
        }
        self.db.write_opt(batch, &self.buffered).expect("write");
    }
    fn settle(&self) {
        self.db.flush().expect("flush");
        self.db.compact_range(None::<&[u8]>, None::<&[u8]>);
    }
}

/// A backend through its `Backend` trait: one put per batch, peers space only.
struct Trait<B: Backend>(B);

impl<B: Backend> Raw for Trait<B> {
    fn put(&self, key: &[u8], value: &[u8], d: Durability) {
        let mut batch = WriteBatch::new();
        batch.put(Space::Peers, key.to_vec(), value.to_vec());
        self.0.write(batch, d).expect("write");
    }
    fn delete(&self, key: &[u8], d: Durability) {
        let mut batch = WriteBatch::new();
        batch.delete(Space::Peers, key.to_vec());
        self.0.write(batch, d).expect("write");
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(Space::Peers, key).expect("get")
    }
    fn load(&self, entries: &[(Vec<u8>, Vec<u8>)]) {
        let mut batch = WriteBatch::new();
        for (k, v) in entries {
            batch.put(Space::Peers, k.clone(), v.clone());
        }
        self.0.write(batch, Durability::Buffered).expect("write");
    }
    fn settle(&self) {
        self.0.flush().expect("flush");
    }
}

/// Trait stores that can compact (file, RocksDB) do so in `settle` like the fixtures.
struct Compacting<F: Fn()>(Box<dyn Raw>, F);

impl<F: Fn()> Raw for Compacting<F> {
    fn put(&self, key: &[u8], value: &[u8], d: Durability) {
        self.0.put(key, value, d)
    }
    fn delete(&self, key: &[u8], d: Durability) {
        self.0.delete(key, d)
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.0.get(key)
    }
    fn load(&self, entries: &[(Vec<u8>, Vec<u8>)]) {
        self.0.load(entries)
    }
    fn settle(&self) {
        self.0.settle();
        (self.1)();
    }
}

const RAW_KINDS: [&str; 6] = [
    "memory-raw",
    "lmdb-raw",
    "lmdb-trait",
    "rocksdb-raw",
    "rocksdb-trait",
    "file-raw",
];

fn open_raw(name: &str, dir: &Path) -> Box<dyn Raw> {
    match name {
        "memory-raw" => Box::new(Trait(MemoryBackend::new())),
        "lmdb-raw" => Box::new(Heed::open(dir)),
        "lmdb-trait" => Box::new(Trait(
            LmdbBackend::open(dir, common::lmdb_options()).expect("open LMDB"),
        )),
        "rocksdb-raw" => Box::new(Rocks::open(dir)),
        "rocksdb-trait" => {
            let backend = std::sync::Arc::new(
                RocksBackend::open(dir, RocksOptions::default()).expect("open RocksDB"),
            );
            let compact = std::sync::Arc::clone(&backend);
            Box::new(Compacting(Box::new(Trait(backend)), move || {
                compact.compact().expect("compact")
            }))
        }
        "file-raw" => {
            let backend = std::sync::Arc::new(
                FileBackend::open(dir, FileOptions::default()).expect("open file backend"),
            );
            let compact = std::sync::Arc::clone(&backend);
            Box::new(Compacting(Box::new(Trait(backend)), move || {
                compact.compact().expect("compact")
            }))
        }
        other => unreachable!("unknown raw store {other}"),
    }
}

/// Encoded records of peers `0..n`, `LOAD_CHUNK` at a time.
fn for_each_chunk(gen: &Generator, n: usize, mut f: impl FnMut(Vec<(Vec<u8>, Vec<u8>)>)) {
    let mut start = 0;
    while start < n {
        let end = (start + LOAD_CHUNK).min(n);
        f((start..end)
            .map(|i| (peer_id(i).into_bytes(), gen.record(i).encode()))
            .collect());
        start = end;
    }
}

fn bench_raw(c: &mut Criterion, ctx: &Ctx, name: &str, n: usize, pool: &[Vec<u8>]) {
    let size = size_label(n);
    let id = || BenchmarkId::new(name, &size);
    progress(ctx.started, &format!("filling  [{name} {size}]"));
    let dir = ctx.work(&format!("{name}-{n}"));
    common::remove(&dir);
    let store = open_raw(name, &dir);
    for_each_chunk(&ctx.gen, n, |chunk| store.load(&chunk));
    store.settle();
    let ids: Vec<Vec<u8>> = (0..n).map(|i| peer_id(i).into_bytes()).collect();
    let mut rng = Rng::new(SEED ^ 0x0B5E);

    progress(ctx.started, &format!("get_peer  [{name} {size}]"));
    let mut g = ctx.fast(c, "get_peer");
    g.bench_function(id(), |b| {
        b.iter(|| black_box(store.get(&ids[rng.index(n)]).expect("hit")))
    });
    g.finish();

    let durabilities: &[Durability] = if name == "memory-raw" {
        &[Durability::Buffered]
    } else {
        &[Durability::Sync, Durability::Buffered]
    };
    let mut next_new = n + 10_000_000;
    for &d in durabilities {
        let dn = durability_name(d);
        progress(
            ctx.started,
            &format!("store_peer_new.{dn}  [{name} {size}]"),
        );
        let mut g = ctx.fast(c, &format!("store_peer_new.{dn}"));
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    next_new += 1;
                    let key = peer_id(next_new).into_bytes();
                    let value = &pool[rng.index(pool.len())];
                    let t = Instant::now();
                    store.put(&key, value, d);
                    total += t.elapsed();
                    store.delete(&key, d);
                }
                total
            })
        });
        g.finish();

        progress(
            ctx.started,
            &format!("store_peer_update.{dn}  [{name} {size}]"),
        );
        let mut g = ctx.fast(c, &format!("store_peer_update.{dn}"));
        g.bench_function(id(), |b| {
            b.iter(|| {
                let key = &ids[rng.index(n)];
                store.put(key, &pool[rng.index(pool.len())], d)
            })
        });
        g.finish();
    }
    drop(store);
    common::remove(&dir);
}

// ----- SQLite -----------------------------------------------------------------------

/// The cached SQLite book of `n` peers (a directory holding `peers.db`).
fn sqlite_fixture(ctx: &Ctx, n: usize) -> PathBuf {
    let (dir, _) = common::fixture_paths(&ctx.out, "sqlite", n);
    let stats = match common::cached_fixture(&ctx.out, "sqlite", n) {
        Some(stats) => stats,
        None => {
            common::remove(&dir);
            std::fs::create_dir_all(&dir).expect("create fixture dir");
            let stats: FixtureStats = Sql::build(&dir.join("peers.db"), &ctx.gen, n);
            common::mark_fixture(&ctx.out, "sqlite", &stats);
            stats
        }
    };
    write_data(
        &ctx.out,
        &format!("fixture-sqlite-{n}"),
        &stats.to_json("sqlite"),
    );
    dir
}

fn bench_sqlite(c: &mut Criterion, ctx: &Ctx, n: usize) {
    let size = size_label(n);
    let id = || BenchmarkId::new("sqlite", &size);
    let step = |what: &str| progress(ctx.started, &format!("{what}  [sqlite {size}]"));
    step("building or loading the pristine table");
    let pristine = sqlite_fixture(ctx, n);
    let work = ctx.work(&format!("sqlite-{n}"));
    common::remove(&work);
    common::copy_dir(&pristine, &work).expect("copy");
    let db = work.join("peers.db");
    let sql = Sql::open(&db, Durability::Sync);
    let ids: Vec<String> = (0..n).map(peer_id).collect();
    let mut rng = Rng::new(SEED ^ 0x0B5E);

    step("get_peer");
    let mut g = ctx.fast(c, "get_peer");
    g.bench_function(id(), |b| {
        b.iter(|| black_box(sql.get(&ids[rng.index(n)]).expect("hit")))
    });
    g.finish();

    step("query_peers_last_seen");
    let mut g = ctx.fast(c, "query_peers_last_seen");
    g.bench_function(id(), |b| b.iter(|| black_box(sql.query_last_seen(10))));
    g.finish();

    step("query_peers_quality");
    let mut g = ctx.fast(c, "query_peers_quality");
    g.bench_function(id(), |b| b.iter(|| black_box(sql.query_quality(70, 5))));
    g.finish();

    step("get_reconnection_candidates");
    let mut g = ctx.fast(c, "get_reconnection_candidates");
    g.bench_function(id(), |b| b.iter(|| black_box(sql.candidates(5, DAY_MS))));
    g.finish();

    step("export_data");
    let mut g = ctx.slow(c, "export_data");
    g.bench_function(id(), |b| b.iter(|| black_box(sql.export())));
    g.finish();

    if n <= ctx.mode.whole_book_max() {
        step("import_data");
        let records = sql.export();
        let target = ctx.work(&format!("sqlite-import-{n}"));
        let mut g = ctx.slow(c, "import_data");
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    common::remove(&target);
                    std::fs::create_dir_all(&target).expect("dir");
                    let fresh = Sql::open(&target.join("peers.db"), Durability::Sync);
                    let t = Instant::now();
                    fresh.insert_all(&records);
                    total += t.elapsed();
                    drop(fresh);
                    common::remove(&target);
                }
                total
            })
        });
        g.finish();

        step("cleanup_stale_peers");
        let target = ctx.work(&format!("sqlite-cleanup-{n}"));
        let cutoff = NOW_MS - INACTIVE_AFTER_DAYS * DAY_MS;
        let mut g = ctx.slow(c, "cleanup_stale_peers");
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    common::remove(&target);
                    common::copy_dir(&pristine, &target).expect("copy");
                    let copy = Sql::open(&target.join("peers.db"), Durability::Sync);
                    let t = Instant::now();
                    black_box(copy.cleanup(cutoff));
                    total += t.elapsed();
                    drop(copy);
                    common::remove(&target);
                }
                total
            })
        });
        g.finish();
    }

    step("open");
    let mut g = ctx.slow(c, "open");
    g.bench_function(id(), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let opened = Sql::open_existing(&db);
                total += t.elapsed();
                black_box(&opened);
            }
            total
        })
    });
    g.finish();

    let mut next_new = n + 10_000_000;
    for d in [Durability::Sync, Durability::Buffered] {
        sql.set_durability(d);
        let dn = durability_name(d);

        step(&format!("store_peer_new.{dn}"));
        let mut g = ctx.fast(c, &format!("store_peer_new.{dn}"));
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    next_new += 1;
                    let peer = new_peer(next_new);
                    let id = peer.peer_id.clone();
                    let t = Instant::now();
                    sql.store_new(&ctx.gen, peer);
                    total += t.elapsed();
                    sql.remove(&id);
                }
                total
            })
        });
        g.finish();

        step(&format!("store_peer_update.{dn}"));
        let mut g = ctx.fast(c, &format!("store_peer_update.{dn}"));
        g.bench_function(id(), |b| {
            b.iter_batched(
                || {
                    let mut r = sql.get(&ids[rng.index(n)]).expect("hit");
                    r.cached_candidates.rotate_left(1);
                    r.last_known_ip = Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                        rng.next_u64() as u32,
                    )));
                    r.last_seen = NOW_MS;
                    r
                },
                |r| sql.store_record(&r),
                BatchSize::SmallInput,
            )
        });
        g.finish();

        step(&format!("update_connection_quality.{dn}"));
        let mut g = ctx.fast(c, &format!("update_connection_quality.{dn}"));
        g.bench_function(id(), |b| {
            b.iter(|| {
                let kind = *rng.pick(&[
                    ConnectionType::Host,
                    ConnectionType::Srflx,
                    ConnectionType::Relay,
                ]);
                let latency = 10 + rng.below(300) as u32;
                black_box(sql.update_quality(&ids[rng.index(n)], latency, kind))
            })
        });
        g.finish();

        step(&format!("increment_reconnection_attempts.{dn}"));
        let mut g = ctx.fast(c, &format!("increment_reconnection_attempts.{dn}"));
        g.bench_function(id(), |b| {
            b.iter(|| black_box(sql.increment_attempts(&ids[rng.index(n)])))
        });
        g.finish();

        step(&format!("update_last_seen.{dn}"));
        let mut g = ctx.fast(c, &format!("update_last_seen.{dn}"));
        g.bench_function(id(), |b| {
            b.iter(|| black_box(sql.update_last_seen(&ids[rng.index(n)])))
        });
        g.finish();
    }
    drop(sql);
    common::remove(&work);
}

fn main() {
    let ctx = Ctx::new();
    let mode = ctx.mode;
    let mut c = Criterion::default().configure_from_args();
    let started_at = unix_now();
    let load_before = load_average();
    progress(
        ctx.started,
        &format!(
            "baselines (raw engines, SQLite), mode {}, sizes {:?}, output {}",
            mode.name(),
            mode.sizes(),
            ctx.out.display()
        ),
    );
    // Values for puts: encodings of real records, so sizes match the books'.
    let pool: Vec<Vec<u8>> = (0..256).map(|i| ctx.gen.record(i).encode()).collect();
    for n in mode.sizes() {
        for name in RAW_KINDS {
            bench_raw(&mut c, &ctx, name, n, &pool);
        }
        bench_sqlite(&mut c, &ctx, n);
    }
    common::remove(&ctx.out.join("work"));
    write_data(
        &ctx.out,
        "run-baselines",
        &serde_json::json!({
            "mode": mode.name(),
            "sizes": mode.sizes(),
            "started": started_at,
            "finished": unix_now(),
            "seconds": ctx.started.elapsed().as_secs_f64(),
            "load_before": load_before,
            "load_after": load_average(),
        }),
    );
    c.final_summary();
}
