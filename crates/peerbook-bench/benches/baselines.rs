//! Baselines for the peerbook workloads, in the same criterion groups, and the
//! floors the store's targets are measured against:
//!
//! - the raw engines: a put / get of the same encoded record bytes straight into
//!   heed (`lmdb-raw`) and the rocksdb crate (`rocksdb-raw`), and through the
//!   `Backend` trait of each backend (`memory-raw`, `file-raw`: those engines are
//!   ours, so the trait is their raw API; `lmdb-trait`, `rocksdb-trait`: the adapter
//!   without the store above it); see `peerbook_bench::raw`;
//! - the floors, on the same raw stores holding every space of a real book, built by
//!   the batches the store wrote to load it (`peerbook_bench::raw::replayed`):
//!   `get_floor` (the engine's cheapest read, no copy where the engine allows it, +
//!   `PeerRecord::decode` of the bytes: what `get_peer` does after the engine read;
//!   disk engines reopened after the fill, as a book is) and `store_peer_new.floor.buffered` /
//!   `store_peer_update.floor.buffered` (one raw commit of exactly the batch the store
//!   wrote for a `store_peer`, captured by `peerbook_bench::capture`); the report's
//!   Targets judge the get and these writes on its paired run,
//!   `peerbook_bench::paired`, which times store and floor in one window (the same
//!   floors: `get_floor`'s read + decode, these replays);
//! - SQLite (`sqlite`): the same records in an indexed table, every workload.
//!
//! A put of a new key is deleted again (not timed), as in the peerbook bench; a
//! replayed batch is undone (not timed) by the batch that undid it in the store.

// The workload library (crate root `peerbook_bench`), under the name the benches grew up with.
use peerbook_bench as common;

use std::hint::black_box;
use std::path::PathBuf;

use common::raw::{replayed, RAW_KINDS};
use common::sql::Sql;
use common::{
    durability_name, ip_change, new_peer, peer_id, progress, size_label, timed_loop, write_data,
    Captured, Ctx, FixtureStats, Reference, Rng, DAY_MS, INACTIVE_AFTER_DAYS, NOW_MS, SEED,
};
use criterion::{BatchSize, BenchmarkId, Criterion};
use peerbook::{ConnectionType, Durability, PeerRecord};

fn reference(ctx: &Ctx, n: usize) -> Reference {
    progress(
        ctx.started,
        &format!("reference book and captured writes  [{}]", size_label(n)),
    );
    common::reference(&ctx.gen, n)
}

/// The write floor of `workload`: replay `pool` on `store`, Buffered (the targets
/// compare Buffered stores), one batch per iteration (undone, not timed).
fn replay(
    c: &mut Criterion,
    ctx: &Ctx,
    workload: &str,
    id: BenchmarkId,
    n: usize,
    store: &dyn common::raw::Raw,
    pool: &[Captured],
) {
    let d = Durability::Buffered;
    let group = format!("{workload}.floor.{}", durability_name(d));
    progress(ctx.started, &format!("{group}  [{}]", size_label(n)));
    let mut next = 0;
    let mut g = ctx.fast(c, &group, n);
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            timed_loop(
                iters,
                || {
                    next = (next + 1) % pool.len();
                    (pool[next].write.clone(), pool[next].undo.clone())
                },
                |(write, _)| store.write(std::mem::take(write), d),
                |(_, undo), ()| store.write(undo, d),
            )
        })
    });
    g.finish();
}

fn bench_raw(c: &mut Criterion, ctx: &Ctx, name: &str, n: usize, reference: &Reference) {
    let size = size_label(n);
    let id = || BenchmarkId::new(name, &size);
    let step = |what: &str| progress(ctx.started, &format!("{what}  [{name} {size}]"));
    step("building with the reference book's batches");
    let dir = ctx.work(&format!("{name}-{n}"));
    common::remove(&dir);
    let store = replayed(name, &dir, &reference.built);
    let ids: Vec<Vec<u8>> = (0..n).map(|i| peer_id(i).into_bytes()).collect();
    let mut rng = Rng::new(SEED ^ 0x0B5E);
    // Values for puts: stored records of the book, so sizes match.
    let pool: Vec<Vec<u8>> = (0..256.min(n))
        .map(|i| store.get(&ids[i]).expect("a stored record"))
        .collect();

    ctx.bench_fast(c, "get_peer", name, n, |b| {
        b.iter(|| black_box(store.get(&ids[rng.index(n)]).expect("hit")))
    });

    // The engine's cheapest read (no copy where the engine allows it) + the decode
    // `get_peer` does.
    ctx.bench_fast(c, "get_floor", name, n, |b| {
        b.iter(|| {
            let mut record = None;
            store.read(&ids[rng.index(n)], &mut |bytes| {
                record = Some(PeerRecord::decode(bytes).expect("decode"));
            });
            black_box(record.expect("hit"))
        })
    });

    let durabilities: &[Durability] = if name == "memory-raw" {
        &[Durability::Buffered]
    } else {
        &[Durability::Sync, Durability::Buffered]
    };
    let mut next_new = n + 10_000_000;
    for &d in durabilities {
        let dn = durability_name(d);
        ctx.bench_fast(c, &format!("store_peer_new.{dn}"), name, n, |b| {
            b.iter_custom(|iters| {
                timed_loop(
                    iters,
                    || {
                        next_new += 1;
                        (peer_id(next_new).into_bytes(), rng.index(pool.len()))
                    },
                    |(key, value)| store.put(key, &pool[*value], d),
                    |(key, _), ()| store.delete(&key, d),
                )
            })
        });

        ctx.bench_fast(c, &format!("store_peer_update.{dn}"), name, n, |b| {
            b.iter(|| {
                let key = &ids[rng.index(n)];
                store.put(key, &pool[rng.index(pool.len())], d)
            })
        });
    }

    for (workload, pool) in [
        ("store_peer_new", &reference.writes.new),
        ("store_peer_update", &reference.writes.update),
    ] {
        replay(c, ctx, workload, id(), n, &*store, pool);
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

    ctx.bench_fast(c, "get_peer", "sqlite", n, |b| {
        b.iter(|| black_box(sql.get(&ids[rng.index(n)]).expect("hit")))
    });

    ctx.bench_fast(c, "query_peers_last_seen", "sqlite", n, |b| {
        b.iter(|| black_box(sql.query_last_seen(10)))
    });

    ctx.bench_fast(c, "query_peers_quality", "sqlite", n, |b| {
        b.iter(|| black_box(sql.query_quality(70, 5)))
    });

    ctx.bench_fast(c, "get_reconnection_candidates", "sqlite", n, |b| {
        b.iter(|| black_box(sql.candidates(5, DAY_MS)))
    });

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
                timed_loop(
                    iters,
                    || {
                        common::remove(&target);
                        std::fs::create_dir_all(&target).expect("dir");
                        Sql::open(&target.join("peers.db"), Durability::Sync)
                    },
                    |fresh| fresh.insert_all(&records),
                    |fresh, ()| {
                        drop(fresh);
                        common::remove(&target);
                    },
                )
            })
        });
        g.finish();

        step("cleanup_stale_peers");
        let target = ctx.work(&format!("sqlite-cleanup-{n}"));
        let cutoff = NOW_MS - INACTIVE_AFTER_DAYS * DAY_MS;
        let mut g = ctx.slow(c, "cleanup_stale_peers");
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| {
                timed_loop(
                    iters,
                    || {
                        common::remove(&target);
                        common::copy_dir(&pristine, &target).expect("copy");
                        Sql::open(&target.join("peers.db"), Durability::Sync)
                    },
                    |copy| copy.cleanup(cutoff),
                    |copy, _| {
                        drop(copy);
                        common::remove(&target);
                    },
                )
            })
        });
        g.finish();
    }

    step("open");
    let mut g = ctx.slow(c, "open");
    g.bench_function(id(), |b| {
        b.iter_custom(|iters| timed_loop(iters, || (), |()| Sql::open_existing(&db), |(), _| ()))
    });
    g.finish();

    let mut next_new = n + 10_000_000;
    for d in [Durability::Sync, Durability::Buffered] {
        sql.set_durability(d);
        let dn = durability_name(d);

        ctx.bench_fast(c, &format!("store_peer_new.{dn}"), "sqlite", n, |b| {
            b.iter_custom(|iters| {
                timed_loop(
                    iters,
                    || {
                        next_new += 1;
                        let peer = new_peer(next_new);
                        (peer.peer_id.clone(), Some(peer))
                    },
                    |(_, peer)| sql.store_new(&ctx.gen, peer.take().expect("a peer")),
                    |(id, _), _| sql.remove(&id),
                )
            })
        });

        ctx.bench_fast(c, &format!("store_peer_update.{dn}"), "sqlite", n, |b| {
            b.iter_batched(
                || {
                    let mut r = sql.get(&ids[rng.index(n)]).expect("hit");
                    ip_change(&mut r, &mut rng);
                    r
                },
                |r| sql.store_record(&r),
                BatchSize::SmallInput,
            )
        });

        ctx.bench_fast(
            c,
            &format!("update_connection_quality.{dn}"),
            "sqlite",
            n,
            |b| {
                b.iter(|| {
                    let kind = *rng.pick(&[
                        ConnectionType::Host,
                        ConnectionType::Srflx,
                        ConnectionType::Relay,
                    ]);
                    let latency = 10 + rng.below(300) as u32;
                    black_box(sql.update_quality(&ids[rng.index(n)], latency, kind))
                })
            },
        );

        ctx.bench_fast(
            c,
            &format!("increment_reconnection_attempts.{dn}"),
            "sqlite",
            n,
            |b| b.iter(|| black_box(sql.increment_attempts(&ids[rng.index(n)]))),
        );

        ctx.bench_fast(c, &format!("update_last_seen.{dn}"), "sqlite", n, |b| {
            b.iter(|| black_box(sql.update_last_seen(&ids[rng.index(n)])))
        });
    }
    drop(sql);
    common::remove(&work);
}

fn main() {
    let ctx = Ctx::new();
    let mut c = Criterion::default().configure_from_args();
    let run = ctx.start_run("baselines (raw engines, floors, SQLite)");
    for n in ctx.mode.sizes() {
        let reference = reference(&ctx, n);
        // The adapters alone (`*-trait`) only explain the store's overhead; at 1M
        // their fills would cost the full run minutes.
        for name in RAW_KINDS
            .into_iter()
            .filter(|k| n < 1_000_000 || !k.ends_with("-trait"))
        {
            bench_raw(&mut c, &ctx, name, n, &reference);
        }
        drop(reference);
        bench_sqlite(&mut c, &ctx, n);
    }
    ctx.finish_run("baselines", run, serde_json::json!({}));
    c.final_summary();
}
