//! The store's workloads on every backend (memory, LMDB, RocksDB, file), at every book
//! size of the run mode: one criterion group per workload, the backend as the function
//! and the book size as the parameter (`get_peer/lmdb/100k`).
//!
//! Each backend's book is built once per size (cached on disk between runs) and the
//! benchmarks run on a copy: read-only workloads first, then whole-book ones (open,
//! cleanup, import: each run on a fresh copy, setup not timed), then the writes with
//! `Durability::Sync` and `Durability::Buffered`. Writes of a new peer remove it again
//! (not timed), so the book keeps its size. On the disk backends, the Sync book also
//! serves the concurrent durable writers (`concurrent_update_last_seen.sync.tN`: N
//! threads, one shared book); right after those groups, the same writers run as
//! interleaved rounds of 1 and 8 threads on a fresh copy of the pristine book
//! (`data/writers-interleaved-*.json`, the report's 8-writers target), so the
//! Buffered groups do not inherit their writes; beside each round, a round of the
//! backend's group floor (`peerbook_bench::group_floor::floor_round`: the store's
//! `update_last_seen` batches, one synced backend write each against 8 joined per
//! synced write, single-threaded) on another fresh copy of the same book. Whole-book reads and rebuilds
//! (export, import, cleanup) stop at 100k peers; a million-peer book gets shorter
//! measurements.
//!
//! `PEERBOOK_BENCH_MODE` = quick | default | full picks sizes and times (see
//! `common::Mode`); under `cargo test --benches` every benchmark runs once on a tiny book.

// The workload library (crate root `peerbook_bench`), under the name the benches grew up with.
use peerbook_bench as common;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use common::group_floor::{floor_round, open_as_a_book, FloorRounds};
use common::{
    concurrent_update_last_seen, durability_name, ip_change, new_peer, options, peer_id, pristine,
    progress, size_label, timed_loop, write_data, writers_group, Book, Ctx, Kind, Pristine, Rng,
    KINDS, LMDB_HAS_BUFFERED_MODE, SEED, WRITER_THREADS,
};
use criterion::{BatchSize, BenchmarkId, Criterion};
use peerbook::{
    CandidateQuery, ConnectionType, Durability, ExportOptions, ImportMode, Order, PeerBook,
    PeerQuery, QualityUpdate, SortBy,
};

/// The working copy of one backend's book, reopened with another durability on demand.
struct Fixture<'p> {
    pristine: &'p Pristine,
    work: std::path::PathBuf,
    book: Option<Book>,
    durability: Durability,
}

impl<'p> Fixture<'p> {
    fn new(ctx: &Ctx, pristine: &'p Pristine) -> Self {
        let work = ctx.work(&format!("{}-{}", pristine.kind.name(), pristine.n));
        let backend = pristine.copy(&work);
        let book =
            PeerBook::open(backend, options(Durability::Sync)).expect("open the working copy");
        Fixture {
            pristine,
            work,
            book: Some(book),
            durability: Durability::Sync,
        }
    }

    fn book(&self) -> &Book {
        self.book.as_ref().expect("open")
    }

    /// Close the book (disk backends release their lock), run `f`, reopen.
    fn closed<R>(&mut self, f: impl FnOnce(&Path) -> R) -> R {
        let mut backend = self.book.take().expect("open").close().expect("close");
        if self.pristine.kind.on_disk() {
            drop(backend);
            let out = f(&self.work);
            backend = common::open_backend(self.pristine.kind, &self.work);
            self.book = Some(PeerBook::open(backend, options(self.durability)).expect("reopen"));
            out
        } else {
            let out = f(&self.work);
            self.book = Some(PeerBook::open(backend, options(self.durability)).expect("reopen"));
            out
        }
    }

    fn set_durability(&mut self, d: Durability) {
        if d != self.durability {
            let backend = self.book.take().expect("open").close().expect("close");
            self.book = Some(PeerBook::open(backend, options(d)).expect("reopen"));
            self.durability = d;
        }
    }
}

impl Drop for Fixture<'_> {
    fn drop(&mut self) {
        self.book = None;
        common::remove(&self.work);
    }
}

fn bench_book(c: &mut Criterion, ctx: &Ctx, kind: Kind, n: usize) {
    let size = size_label(n);
    let id = || BenchmarkId::new(kind.name(), &size);
    let step = |what: &str| progress(ctx.started, &format!("{what}  [{} {size}]", kind.name()));

    step("building or loading the pristine book");
    let pristine = pristine(&ctx.out, &ctx.gen, kind, n);
    write_data(
        &ctx.out,
        &format!("fixture-{}-{}", kind.name(), n),
        &pristine.stats.to_json(kind.name()),
    );
    let ids: Vec<String> = (0..n).map(peer_id).collect();
    let mut rng = Rng::new(SEED ^ 0x0B5E);
    let mut fx = Fixture::new(ctx, &pristine);

    // ----- reads -----
    ctx.bench_fast(c, "get_peer", kind.name(), n, |b| {
        b.iter(|| black_box(fx.book().get_peer(&ids[rng.index(n)]).expect("get")))
    });

    step("query_peers_last_seen");
    let by_last_seen = PeerQuery {
        sort_by: SortBy::LastSeen,
        order: Order::Desc,
        limit: Some(10),
        ..PeerQuery::default()
    };
    let mut g = ctx.fast(c, "query_peers_last_seen", n);
    g.bench_function(id(), |b| {
        b.iter(|| black_box(fx.book().query_peers(&by_last_seen).expect("query")))
    });
    g.finish();

    step("query_peers_quality");
    let by_quality = PeerQuery {
        sort_by: SortBy::Quality,
        order: Order::Desc,
        limit: Some(5),
        min_quality: Some(70),
        ..PeerQuery::default()
    };
    let mut g = ctx.fast(c, "query_peers_quality", n);
    g.bench_function(id(), |b| {
        b.iter(|| black_box(fx.book().query_peers(&by_quality).expect("query")))
    });
    g.finish();

    step("get_reconnection_candidates");
    let candidates = CandidateQuery {
        limit: 5,
        max_age: Some(Duration::from_secs(24 * 3600)),
    };
    let found = fx
        .book()
        .get_reconnection_candidates(&candidates)
        .expect("candidates");
    assert!(n < 1000 || found.len() == 5, "a big book has 5 candidates");
    let mut g = ctx.fast(c, "get_reconnection_candidates", n);
    g.bench_function(id(), |b| {
        b.iter(|| {
            black_box(
                fx.book()
                    .get_reconnection_candidates(&candidates)
                    .expect("candidates"),
            )
        })
    });
    g.finish();

    // ----- whole-book operations -----
    if n <= ctx.mode.whole_book_max() {
        step("export_data");
        let doc = fx
            .book()
            .export_data(ExportOptions::default())
            .expect("export");
        assert_eq!(doc.peers.len(), n);
        let mut g = ctx.slow(c, "export_data");
        g.bench_function(id(), |b| {
            b.iter(|| {
                black_box(
                    fx.book()
                        .export_data(ExportOptions::default())
                        .expect("export"),
                )
            })
        });
        g.finish();

        step("import_data");
        let target = ctx.work(&format!("import-{}-{n}", kind.name()));
        let mut g = ctx.slow(c, "import_data");
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| {
                timed_loop(
                    iters,
                    || {
                        common::remove(&target);
                        PeerBook::open(
                            common::open_backend(kind, &target),
                            options(Durability::Sync),
                        )
                        .expect("open an empty book")
                    },
                    |book| book.import_data(&doc, ImportMode::Merge).expect("import"),
                    |book, report| {
                        assert_eq!(report.imported, n);
                        drop(book);
                        common::remove(&target);
                    },
                )
            })
        });
        g.finish();

        step("cleanup_stale_peers");
        let target = ctx.work(&format!("cleanup-{}-{n}", kind.name()));
        let mut removed = 0;
        let mut g = ctx.slow(c, "cleanup_stale_peers");
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| {
                timed_loop(
                    iters,
                    || {
                        PeerBook::open(pristine.copy(&target), options(Durability::Sync))
                            .expect("open a copy")
                    },
                    |book| book.cleanup_stale_peers().expect("cleanup"),
                    |book, r| {
                        removed = r;
                        drop(book);
                        common::remove(&target);
                    },
                )
            })
        });
        g.finish();
        write_data(
            &ctx.out,
            &format!("cleanup-{}-{n}", kind.name()),
            &serde_json::json!({ "backend": kind.name(), "peers": n, "removed": removed }),
        );
    }

    step("open");
    let mut g = ctx.slow(c, "open");
    fx.closed(|dir| {
        g.bench_function(id(), |b| {
            b.iter_custom(|iters| {
                timed_loop(
                    iters,
                    || (),
                    |()| {
                        let backend = match &pristine.memory {
                            // The memory backend has nothing to recover: this is the core's open.
                            Some(memory) => std::sync::Arc::new(memory.clone()) as common::Dyn,
                            None => common::open_backend(kind, dir),
                        };
                        PeerBook::open(backend, options(Durability::Sync)).expect("open")
                    },
                    |(), book| drop(book),
                )
            })
        });
    });
    g.finish();

    // ----- writes -----
    let durabilities: &[Durability] = if kind.on_disk() {
        &[Durability::Sync, Durability::Buffered]
    } else {
        &[Durability::Buffered] // the memory backend ignores durability
    };
    let mut next_new = n + 10_000_000;
    for &d in durabilities {
        fx.set_durability(d);
        let dn = durability_name(d);

        ctx.bench_fast(c, &format!("store_peer_new.{dn}"), kind.name(), n, |b| {
            b.iter_custom(|iters| {
                timed_loop(
                    iters,
                    || {
                        next_new += 1;
                        Some(new_peer(next_new))
                    },
                    |peer| {
                        let peer = peer.take().expect("a peer");
                        fx.book().store_peer(peer).expect("store")
                    },
                    |_, stored| {
                        fx.book()
                            .remove_peer(stored.peer_id.as_str())
                            .expect("remove");
                    },
                )
            })
        });

        ctx.bench_fast(c, &format!("store_peer_update.{dn}"), kind.name(), n, |b| {
            b.iter_batched(
                || {
                    // An IP change: new candidates, address and last_seen.
                    let mut r = fx
                        .book()
                        .get_peer(&ids[rng.index(n)])
                        .expect("get")
                        .expect("stored");
                    ip_change(&mut r, &mut rng);
                    r
                },
                |r| black_box(fx.book().store_peer(r).expect("store")),
                BatchSize::SmallInput,
            )
        });

        ctx.bench_fast(
            c,
            &format!("update_connection_quality.{dn}"),
            kind.name(),
            n,
            |b| {
                b.iter(|| {
                    let update = QualityUpdate {
                        latency_ms: Some(Some(10 + rng.below(300) as u32)),
                        connection_type: Some(*rng.pick(&[
                            ConnectionType::Host,
                            ConnectionType::Srflx,
                            ConnectionType::Relay,
                        ])),
                        ..QualityUpdate::default()
                    };
                    black_box(
                        fx.book()
                            .update_connection_quality(&ids[rng.index(n)], update)
                            .expect("update"),
                    )
                })
            },
        );

        ctx.bench_fast(
            c,
            &format!("increment_reconnection_attempts.{dn}"),
            kind.name(),
            n,
            |b| {
                b.iter(|| {
                    black_box(
                        fx.book()
                            .increment_reconnection_attempts(&ids[rng.index(n)])
                            .expect("increment"),
                    )
                })
            },
        );

        ctx.bench_fast(c, &format!("update_last_seen.{dn}"), kind.name(), n, |b| {
            b.iter(|| {
                black_box(
                    fx.book()
                        .update_last_seen(&ids[rng.index(n)])
                        .expect("update"),
                )
            })
        });

        if d == Durability::Sync && kind.on_disk() {
            bench_writers(c, ctx, &mut fx, &ids);
        }
    }
    fx.book().flush().expect("flush");
    drop(fx);
}

/// Concurrent durable writers: `update_last_seen` from 1, 2, 4 and 8 threads on the
/// one Sync book; criterion's time per iteration is wall time per acknowledged
/// write, so ops/s of all threads together = 1 s / median.
///
/// Then, when criterion ran those groups (its filter let them through), the
/// interleaved measurement of 1 against 8 writers, written to
/// `data/writers-interleaved-<backend>-<n>.json`: the criterion groups run a
/// minute apart, while the disk's sync latency (which sets both the 1-writer rate
/// and the group size) swings within minutes, so their 8 / 1 ratio swings with it.
/// Its rounds (20,000 writes at the default size) run on a fresh copy of the
/// pristine book, with the working copy closed, and the copy is removed after: the
/// Buffered groups that reopen the working copy next find it as the Sync groups
/// left it. Beside each round (after it in even rounds, before it in odd ones), a
/// round of the group floor on a second fresh copy of the pristine book, opened
/// once as a Sync book and closed (an older cached book is migrated, as the
/// writers' copy is), then with no book on it: as many captured `update_last_seen`
/// batches as the writers' round writes (4,000 at the default size, so both copies
/// take as many writes and drift alike) replayed through its own `Backend::write`,
/// one synced write per batch against 8 joined per synced write, as the group
/// commit joins them; its
/// rounds go into the same file (`group_floor`). The copy costs what the writers'
/// copy costs (about 15 s for a 1.8 GB book at 1M), where filling a raw engine
/// from the book took 33-133 s at 1M (the baselines bench).
fn bench_writers(c: &mut Criterion, ctx: &Ctx, fx: &mut Fixture<'_>, ids: &[String]) {
    let (pristine, book) = (fx.pristine, fx.book());
    let (kind, n) = (pristine.kind, pristine.n);
    let size = size_label(n);
    let mut ran = false;
    for threads in WRITER_THREADS {
        let group = writers_group(threads);
        progress(ctx.started, &format!("{group}  [{} {size}]", kind.name()));
        let mut seed = SEED ^ 0x3417;
        let mut g = ctx.fast(c, &group, n);
        g.bench_function(BenchmarkId::new(kind.name(), &size), |b| {
            // Each thread writes `iters` times; returning wall time / threads makes
            // criterion's time per iteration the wall time per acknowledged write.
            b.iter_custom(|iters| {
                ran = true;
                seed = common::mix(seed);
                let ops = iters * threads as u64;
                let run = concurrent_update_last_seen(book, ids, threads, ops, seed, &|_, _| ())
                    .expect("concurrent writers");
                run.elapsed / threads as u32
            })
        });
        g.finish();
    }
    // Only at the largest size of the mode: the report judges that one alone, and
    // the 1-writer side costs seconds when the disk's syncs are slow.
    if ran && ctx.mode.sizes().last() == Some(&n) {
        let (rounds, ops) = interleaved_size(ctx.mode);
        progress(
            ctx.started,
            &format!(
                "interleaved writers, {rounds} rounds of 1 and 8 writers (order alternating) x {ops} writes, each beside a group floor round  [{} {size}]",
                kind.name()
            ),
        );
        let target = ctx.work(&format!("writers-{}-{n}", kind.name()));
        let floor_target = ctx.work(&format!("group-floor-{}-{n}", kind.name()));
        let [_, k] = common::INTERLEAVED_THREADS;
        let pairs = common::group_floor::pairs_beside(2 * ops as usize, k);
        let (at, run, floor) = fx.closed(|_| {
            let copy = PeerBook::open(pristine.copy(&target), options(Durability::Sync))
                .expect("open a copy");
            // The group floor's engine: another copy of the pristine book, opened
            // once as a book (migrated as the writers' copy is), then with no book
            // on it (see floor_round).
            let copied = std::time::Instant::now();
            let engine = pristine.copy(&floor_target);
            open_as_a_book(&engine);
            let copy_secs = copied.elapsed().as_secs_f64();
            let mut floor_secs = 0.0;
            let mut floor = FloorRounds::new(k);
            let at = common::unix_now();
            let run = common::interleaved_writers_beside(
                &copy,
                ids,
                rounds,
                ops,
                SEED ^ 0x1908,
                &mut |round| {
                    let seed = common::mix(SEED ^ 0xF100 ^ round as u64);
                    let started = std::time::Instant::now();
                    floor.push(floor_round(&engine, ids, pairs, k, seed).expect("a floor round"));
                    floor_secs += started.elapsed().as_secs_f64();
                },
            )
            .expect("interleaved writers");
            drop((copy, engine));
            common::remove(&target);
            common::remove(&floor_target);
            (at, run, (floor, copy_secs, floor_secs))
        });
        let (floor, copy_secs, floor_secs) = floor;
        let two = |v: Vec<f64>| {
            v.iter()
                .map(|r| (r * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        };
        eprintln!(
            "    1 writer {:?} ops/s, 8 writers {:?} ops/s, ratios {:?}: median {:.2}x",
            run.one.iter().map(|r| r.round()).collect::<Vec<_>>(),
            run.eight.iter().map(|r| r.round()).collect::<Vec<_>>(),
            two(run.ratios()),
            run.ratio_median(),
        );
        eprintln!(
            "    group floor ({} batches a round; its copy of the book {copy_secs:.1} s, its rounds {floor_secs:.1} s): 1 per commit {:?}/s, {k} per commit {:?}/s, ratios {:?}: median {:.2}x",
            floor.batches,
            floor.one.iter().map(|r| r.round()).collect::<Vec<_>>(),
            floor.joined.iter().map(|r| r.round()).collect::<Vec<_>>(),
            two(floor.ratios()),
            floor.ratio_median(),
        );
        // The report's bound on the writers' 8 / 1: the floor's joined rate over
        // the store's 1-writer rate, per round.
        let bounds = common::per_round(&floor.joined, &run.one).unwrap_or_default();
        eprintln!(
            "    bound on 8 / 1 (group floor {k} joined / the store's 1 writer): {:?}: median {:.2}x",
            two(bounds.clone()),
            common::median(&bounds),
        );
        let mut data = run.to_json(kind.name(), n, at);
        data["group_floor"] = floor.to_json();
        write_data(
            &ctx.out,
            &format!("writers-interleaved-{}-{n}", kind.name()),
            &data,
        );
    }
}

/// Rounds and writes per side of the interleaved writers: 2,000 writes take about
/// 0.5 s for one writer at a 250 us sync (the disk's calm spells), and five rounds
/// give a median that one slow round does not move.
fn interleaved_size(mode: common::Mode) -> (usize, u64) {
    match mode {
        common::Mode::Smoke => (3, 16),
        common::Mode::Quick => (5, 500),
        common::Mode::Default | common::Mode::Full => (5, 2_000),
    }
}

/// Encoding and decoding one record, no storage: the floor under every operation.
fn bench_codec(c: &mut Criterion, ctx: &Ctx) {
    let record = ctx.gen.record(7);
    let bytes = record.encode();
    progress(ctx.started, "codec");
    let mut g = ctx.fast(c, "codec_encode", 0);
    g.bench_function(BenchmarkId::new("core", "record"), |b| {
        b.iter(|| black_box(black_box(&record).encode()))
    });
    g.finish();
    let mut g = ctx.fast(c, "codec_decode", 0);
    g.bench_function(BenchmarkId::new("core", "record"), |b| {
        b.iter(|| black_box(peerbook::PeerRecord::decode(black_box(&bytes)).expect("decode")))
    });
    g.finish();
    // decode = postcard + validate: the two parts alone.
    let mut g = ctx.fast(c, "codec_postcard_only", 0);
    g.bench_function(BenchmarkId::new("core", "record"), |b| {
        b.iter(|| {
            black_box(
                postcard::from_bytes::<peerbook::PeerRecord>(black_box(&bytes[1..]))
                    .expect("postcard"),
            )
        })
    });
    g.finish();
    let mut g = ctx.fast(c, "codec_validate", 0);
    g.bench_function(BenchmarkId::new("core", "record"), |b| {
        b.iter(|| black_box(black_box(&record).validate()).expect("valid"))
    });
    g.finish();
}

fn main() {
    let ctx = Ctx::new();
    let mut c = Criterion::default().configure_from_args();
    let run = ctx.start_run("peerbook workloads");
    bench_codec(&mut c, &ctx);
    for n in ctx.mode.sizes() {
        for kind in KINDS {
            bench_book(&mut c, &ctx, kind, n);
        }
    }
    ctx.finish_run(
        "peerbook",
        run,
        serde_json::json!({
            "backends": KINDS.map(Kind::name),
            "lmdb_has_buffered_mode": LMDB_HAS_BUFFERED_MODE,
        }),
    );
    c.final_summary();
}
