//! Tests of what is specific to RocksBackend: the LOCK file, ordering after
//! tombstones and compaction (against MemoryBackend), errors, disk usage (clear:
//! `tests/clear.rs`).

mod common;

use std::io::{BufRead, BufReader};
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use peerbook::backend::{
    Backend, BackendError, Direction, Durability, KeyRange, Space, WriteBatch,
};
use peerbook::conformance::fixtures::{copy_dir, fixtures_dir};
use peerbook::conformance::Rng;
use peerbook::{ManualClock, MasterKey, MemoryBackend, Options, PeerBook};
use peerbook_rocksdb::{Compression, RocksBackend, RocksOptions, ENGINE};

use common::{collect, index_workload, small_options, temp_db, Entries};

fn collect_first(
    b: &dyn Backend,
    space: Space,
    range: KeyRange<'_>,
    dir: Direction,
    limit: usize,
) -> Entries {
    let mut out = Vec::new();
    b.scan(space, range, dir, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        if out.len() == limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .expect("scan");
    out
}

fn locked_message(result: Result<RocksBackend, BackendError>) -> String {
    match result {
        Err(BackendError::Locked { message, .. }) => message,
        Err(other) => panic!("expected Locked, got {other:?}"),
        Ok(_) => panic!("a second open of a locked database succeeded"),
    }
}

/// RocksDB's `LOCK` is in peerbook's process-wide table while the database is
/// open: an LMDB or file open of the same directory in this process (which takes
/// that table's lock first) is refused, not let in beside RocksDB's own
/// per-process lock, and let in once RocksDB closed.
#[cfg(unix)]
#[test]
fn an_open_database_holds_its_lock_in_the_process_table() {
    let (_dir, path) = temp_db();
    let lock = path.join("LOCK");
    let db = RocksBackend::open(&path, RocksOptions::default()).unwrap();
    assert!(peerbook::backend::is_locked_here(&lock).unwrap());
    let refused = peerbook::backend::try_lock_file(&lock).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::WouldBlock);
    drop(db);
    assert!(!peerbook::backend::is_locked_here(&lock).unwrap());
    drop(peerbook::backend::try_lock_file(&lock).expect("free once closed"));
}

/// A directory whose `LOCK` an LMDB or file book of this process holds is refused
/// before RocksDB opens anything there: its lock-and-close of the same file would
/// drop that book's POSIX lock.
#[cfg(unix)]
#[test]
fn a_directory_another_engines_book_holds_here_is_locked() {
    let (_dir, path) = temp_db();
    std::fs::create_dir_all(&path).unwrap();
    let held = peerbook::backend::try_lock_file(&path.join("LOCK")).unwrap();
    let message = locked_message(RocksBackend::open(&path, RocksOptions::default()));
    assert!(message.contains("LOCK"), "{message}");
    let names: Vec<_> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["LOCK"], "RocksDB made nothing there");
    drop(held);
    drop(RocksBackend::open(&path, RocksOptions::default()).expect("free once released"));
}

#[test]
fn second_open_in_this_process_is_locked_until_drop() {
    let (_dir, path) = temp_db();
    let first = RocksBackend::open(&path, RocksOptions::default()).expect("first open");
    let message = locked_message(RocksBackend::open(&path, RocksOptions::default()));
    assert!(
        message.contains(&path.display().to_string()),
        "the Locked message names the directory: {message}"
    );
    let shown = BackendError::locked(message).to_string();
    assert!(shown.contains("locked"), "{shown}");

    let mut batch = WriteBatch::new();
    batch.put(Space::Meta, b"still".to_vec(), b"works".to_vec());
    first
        .write(batch, Durability::Sync)
        .expect("the first handle is unharmed by the refused open");
    drop(first);

    let again = RocksBackend::open(&path, RocksOptions::default()).expect("open after drop");
    assert_eq!(
        again.get(Space::Meta, b"still").unwrap(),
        Some(b"works".to_vec())
    );
}

const LOCK_HOLDER_ENV: &str = "PEERBOOK_ROCKSDB_TEST_LOCK_HOLDER";

/// Not a test of its own: when run by `second_open_from_another_process_is_locked`
/// with the environment variable set, it holds the database open until its stdin
/// closes. Otherwise it returns at once.
#[test]
fn lock_holder_child() {
    let Some(path) = std::env::var_os(LOCK_HOLDER_ENV) else {
        return;
    };
    let backend = RocksBackend::open(PathBuf::from(path), RocksOptions::default())
        .expect("child opens the database");
    println!("LOCK-HOLDER-READY");
    let mut sink = String::new();
    while std::io::stdin()
        .read_line(&mut sink)
        .map(|n| n > 0)
        .unwrap_or(false)
    {}
    drop(backend);
}

#[test]
fn second_open_from_another_process_is_locked() {
    let (_dir, path) = temp_db();
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCK_HOLDER_ENV, &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the lock holder");
    let stdout = child.stdout.take().expect("child stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut ready = false;
    for line in lines.by_ref() {
        let line = line.expect("read child output");
        if line.contains("LOCK-HOLDER-READY") {
            ready = true;
            break;
        }
    }
    assert!(ready, "the child process opened the database");

    let message = locked_message(RocksBackend::open(&path, RocksOptions::default()));
    assert!(
        message.contains(&path.display().to_string()),
        "the Locked message names the directory: {message}"
    );

    drop(child.stdin.take()); // EOF: the child drops its backend and exits
    for _ in lines {} // keep reading, so the child never writes to a closed pipe
    let status = child.wait().expect("wait for the child");
    assert!(status.success(), "the lock holder exited cleanly");
    RocksBackend::open(&path, RocksOptions::default()).expect("open after the other process exits");
}

/// Every scan the store makes of its indexes (and a few more), compared.
fn assert_same_scans(rocks: &dyn Backend, model: &dyn Backend, when: &str) {
    let day = 86_400_000u64;
    // by_last_seen key prefixes (negated times), ascending
    let cutoffs: Vec<Vec<u8>> = (0..=30)
        .rev()
        .step_by(3)
        .map(|d| (!(1_700_000_000_000 + d * day)).to_be_bytes().to_vec())
        .collect();
    let scores: Vec<Vec<u8>> = [0u8, 1, 25, 50, 99, 100, 101]
        .iter()
        .map(|s| vec![*s])
        .collect();
    for space in Space::ALL {
        for dir in [Direction::Forward, Direction::Reverse] {
            let expected = collect(model, space, KeyRange::all(), dir);
            assert_eq!(
                collect(rocks, space, KeyRange::all(), dir),
                expected,
                "{when}: whole {space} {dir:?}"
            );
            assert_eq!(
                collect_first(rocks, space, KeyRange::all(), dir, 25),
                collect_first(model, space, KeyRange::all(), dir, 25),
                "{when}: first 25 of {space} {dir:?}"
            );
        }
    }
    let mut ranges: Vec<(Space, KeyRange<'_>)> = Vec::new();
    for c in &cutoffs {
        // recent peers: last_seen > cutoff; stale ones: last_seen <= cutoff
        ranges.push((
            Space::ByLastSeen,
            KeyRange {
                lower: Bound::Unbounded,
                upper: Bound::Excluded(c),
            },
        ));
        ranges.push((
            Space::ByLastSeen,
            KeyRange {
                lower: Bound::Included(c),
                upper: Bound::Unbounded,
            },
        ));
    }
    for pair in cutoffs.windows(2) {
        ranges.push((
            Space::ByLastSeen,
            KeyRange {
                lower: Bound::Excluded(&pair[0]),
                upper: Bound::Included(&pair[1]),
            },
        ));
    }
    for s in &scores {
        ranges.push((
            Space::ByQuality,
            KeyRange {
                lower: Bound::Included(s),
                upper: Bound::Unbounded,
            },
        ));
        ranges.push((
            Space::ByQuality,
            KeyRange {
                lower: Bound::Unbounded,
                upper: Bound::Included(s),
            },
        ));
        ranges.push((
            Space::ByQuality,
            KeyRange {
                lower: Bound::Excluded(s),
                upper: Bound::Excluded(&scores[scores.len() - 1]),
            },
        ));
    }
    for (space, range) in ranges {
        for dir in [Direction::Forward, Direction::Reverse] {
            assert_eq!(
                collect(rocks, space, range, dir),
                collect(model, space, range, dir),
                "{when}: {space} {range:?} {dir:?}"
            );
            assert_eq!(
                collect_first(rocks, space, range, dir, 10),
                collect_first(model, space, range, dir, 10),
                "{when}: first 10 of {space} {range:?} {dir:?}"
            );
        }
    }
    // Point reads agree too, for present and removed peers.
    for i in (0..1500).step_by(7) {
        let peer = format!("peer-{i:05}").into_bytes();
        assert_eq!(
            rocks.get(Space::Peers, &peer).unwrap(),
            model.get(Space::Peers, &peer).unwrap(),
            "{when}: get {i}"
        );
    }
}

#[test]
fn index_scans_match_memory_backend_through_tombstones_compaction_and_reopen() {
    let (_dir, path) = temp_db();
    let rocks = RocksBackend::open(&path, small_options()).expect("open");
    let model = MemoryBackend::new();
    let mut rng = Rng::new(0x0c0f_fee5);

    index_workload(&mut rng, 3000, &[&rocks, &model]);
    assert_same_scans(&rocks, &model, "after updates and deletes");

    rocks.compact().expect("compact");
    assert_same_scans(&rocks, &model, "after a manual compaction");

    index_workload(&mut rng, 1000, &[&rocks, &model]);
    assert_same_scans(&rocks, &model, "after more tombstones over compacted files");

    rocks.flush().expect("flush");
    drop(rocks);
    let rocks = RocksBackend::open(&path, small_options()).expect("reopen");
    assert_same_scans(&rocks, &model, "after reopen");
}

/// The schema 3 -> 4 migration deletes every by_last_seen key, and the old keys
/// (`last_seen` first) all sort before the new ones (`!last_seen` first): a
/// forward walk of the index would step over every tombstone before its first live
/// key until RocksDB compacted them. The store has the backend compact the column
/// family after the step, so a forward scan of the migrated v3 fixture book skips no
/// deleted key (RocksDB's perf context counts those an iterator steps over).
#[test]
fn migrated_index_scans_over_no_tombstone() {
    let (_dir, path) = temp_db();
    copy_dir(&fixtures_dir().join("v3/rocksdb"), &path);
    // the fixture's key and time (see tests/fixtures.rs at the workspace root)
    let clock = ManualClock::new(1_764_000_000_000 + 3_600_000);
    let options = Options::new(MasterKey::from_bytes([7; 32])).with_clock(clock);
    let backend = RocksBackend::open(&path, RocksOptions::default()).expect("open the fixture");
    assert_eq!(
        backend.get(Space::Meta, b"schema_version").unwrap(),
        Some(3u32.to_be_bytes().to_vec()),
        "a schema-3 book"
    );
    let backend = PeerBook::open(backend, options)
        .expect("open migrates")
        .close()
        .expect("close");
    assert_eq!(
        backend.get(Space::Meta, b"schema_version").unwrap(),
        Some(peerbook::store::SCHEMA_VERSION.to_be_bytes().to_vec()),
        "migrated to the current schema"
    );
    use rocksdb::perf::{set_perf_stats, PerfContext, PerfMetric, PerfStatsLevel};
    set_perf_stats(PerfStatsLevel::EnableCount);
    let mut perf = PerfContext::default();
    perf.reset();
    let entries = collect(
        &backend,
        Space::ByLastSeen,
        KeyRange::all(),
        Direction::Forward,
    );
    let skipped = perf.metric(PerfMetric::InternalDeleteSkippedCount);
    let report = perf.report(true);
    set_perf_stats(PerfStatsLevel::Disable);
    assert!(!entries.is_empty(), "the fixture's peers are indexed");
    assert_eq!(skipped, 0, "deleted keys stepped over: {report}");
}

#[test]
fn disk_usage_engine_name_and_path() {
    let (dir, path) = temp_db();
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("open");
    assert_eq!(rocks.engine_name(), "rocksdb");
    assert_eq!(rocks.engine_name(), ENGINE);
    assert_eq!(rocks.path(), path.as_path());
    assert!(dir.path().join("db").join("CURRENT").is_file());
    let empty = rocks.disk_usage().unwrap();
    assert!(empty > 0, "MANIFEST, OPTIONS and the WAL are counted");

    let mut batch = WriteBatch::new();
    for i in 0u32..2000 {
        batch.put(Space::Peers, i.to_be_bytes().to_vec(), vec![7; 1000]);
    }
    rocks.write(batch, Durability::Sync).unwrap();
    let with_wal = rocks.disk_usage().unwrap();
    assert!(
        with_wal >= empty + 2_000_000,
        "the WAL holds the batch ({empty} -> {with_wal})"
    );
    rocks.compact().unwrap();
    assert!(rocks.disk_usage().unwrap() > empty, "the SST files count");
    assert!(format!("{rocks:?}").contains("RocksBackend"));
}

#[test]
fn open_without_create_if_missing_fails_cleanly() {
    let (_dir, path) = temp_db();
    let mut options = RocksOptions::default();
    options.create_if_missing = false;
    match RocksBackend::open(&path, options.clone()) {
        Err(BackendError::Io(e)) => {
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        Err(other) => panic!("unexpected error kind: {other:?}"),
        Ok(_) => panic!("opened a database that does not exist"),
    }
    assert!(!path.exists(), "nothing was created");

    drop(RocksBackend::open(&path, RocksOptions::default()).expect("create"));
    RocksBackend::open(&path, options)
        .expect("an existing database opens without create_if_missing");
}

#[test]
fn uncompressed_files_and_option_changes_keep_the_data() {
    let (_dir, path) = temp_db();
    let mut options = small_options();
    options.compression = Compression::None;
    options.bloom_bits_per_key = 0.0;
    let rocks = RocksBackend::open(&path, options).expect("open without compression");
    let model = MemoryBackend::new();
    let mut rng = Rng::new(7);
    index_workload(&mut rng, 800, &[&rocks, &model]);
    rocks.compact().unwrap();
    assert_same_scans(&rocks, &model, "no compression");
    drop(rocks);
    // Reopen with the defaults (LZ4, bloom filter on): files written with other
    // options stay readable, and new files mix with them.
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("reopen");
    assert_same_scans(
        &rocks,
        &model,
        "uncompressed files read with default options",
    );
    index_workload(&mut rng, 300, &[&rocks, &model]);
    rocks.compact().unwrap();
    assert_same_scans(&rocks, &model, "uncompressed files rewritten with LZ4");
}

fn sst_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .collect();
    files.sort();
    files
}

#[test]
fn damaged_sst_reads_as_corrupted_not_panic() {
    let (_dir, path) = temp_db();
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("open");
    let mut batch = WriteBatch::new();
    for i in 0u32..3000 {
        batch.put(
            Space::Peers,
            i.to_be_bytes().to_vec(),
            vec![(i % 251) as u8; 500],
        );
    }
    rocks.write(batch, Durability::Sync).unwrap();
    rocks.compact().unwrap();
    drop(rocks);

    let files = sst_files(&path);
    assert!(!files.is_empty(), "compaction wrote SST files");
    for file in &files {
        let mut bytes = std::fs::read(file).unwrap();
        // Damage the data blocks at the start of the file, not the footer.
        let end = (bytes.len() / 2).min(64 * 1024);
        for b in &mut bytes[16..end] {
            *b ^= 0x5a;
        }
        std::fs::write(file, bytes).unwrap();
    }

    let rocks = match RocksBackend::open(&path, RocksOptions::default()) {
        Ok(rocks) => rocks,
        Err(BackendError::Corrupted { .. }) => return, // found at open: also fine
        Err(other) => panic!("expected Corrupted at open or read, got {other:?}"),
    };
    let scan = rocks.scan(
        Space::Peers,
        KeyRange::all(),
        Direction::Forward,
        &mut |_, _| ControlFlow::Continue(()),
    );
    assert!(
        matches!(scan, Err(BackendError::Corrupted { .. })),
        "a damaged block reads as Corrupted: {scan:?}"
    );
    let get = rocks.get(Space::Peers, &0u32.to_be_bytes());
    assert!(
        matches!(get, Err(BackendError::Corrupted { .. })),
        "a damaged block reads as Corrupted: {get:?}"
    );
}

#[test]
fn buffered_writes_survive_reopen_without_flush_after_clean_close() {
    // A clean drop is not a crash: RocksDB syncs the WAL when it closes.
    let (_dir, path) = temp_db();
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("open");
    for i in 0u32..100 {
        let mut batch = WriteBatch::new();
        batch.put(Space::Peers, i.to_be_bytes().to_vec(), b"v".to_vec());
        batch.put(Space::ByQuality, i.to_be_bytes().to_vec(), Vec::new());
        rocks.write(batch, Durability::Buffered).unwrap();
    }
    drop(rocks);
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("reopen");
    assert_eq!(
        collect(&rocks, Space::Peers, KeyRange::all(), Direction::Forward).len(),
        100
    );
    assert_eq!(
        collect(
            &rocks,
            Space::ByQuality,
            KeyRange::all(),
            Direction::Reverse
        )
        .len(),
        100
    );
}

/// A synthetic record shaped like an encoded `PeerRecord`: a base58 peer id, a
/// name, a JWK public key, a sealed secret and quality numbers; with `text`, also
/// two ICE servers (one with a sealed credential) and 4 to 8 cached ICE candidates
/// (about 1.1 KiB in all, against about 0.3 KiB without).
fn synthetic_record(rng: &mut Rng, text: bool) -> (Vec<u8>, Vec<u8>) {
    const B58: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    fn pick(rng: &mut Rng, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }
    let peer_id = format!("12D3KooW{}", pick(rng, B58, 44));
    let jwk = format!(
        r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}","ext":true}}"#,
        pick(rng, B64, 43),
        pick(rng, B64, 43)
    );
    let name = format!("node-{}", pick(rng, B58, 6));
    let mut record = vec![1u8];
    record.extend_from_slice(peer_id.as_bytes());
    record.extend_from_slice(name.as_bytes());
    record.extend_from_slice(jwk.as_bytes());
    record.extend(rng.bytes(12 + 32 + 16)); // sealed shared secret
    if text {
        record.extend_from_slice(b"stun:stun.l.google.com:19302");
        record.extend_from_slice(b"turn:turn.example.net:3478?transport=udp");
        record.extend_from_slice(pick(rng, B64, 20).as_bytes()); // TURN username
        record.extend(rng.bytes(12 + 24 + 16)); // sealed credential
        for c in 0..(4 + rng.below(5)) {
            let candidate = format!(
                "candidate:{} 1 udp {} {}.{}.{}.{} {} typ {} generation 0 ufrag {} network-id {}",
                rng.next_u64() % 4_000_000_000,
                [2_122_260_223u64, 1_686_052_607, 41_885_439][(c % 3) as usize],
                rng.below(256),
                rng.below(256),
                rng.below(256),
                rng.below(256),
                1024 + rng.below(60_000),
                ["host", "srflx", "relay"][(c % 3) as usize],
                pick(rng, B64, 4),
                1 + rng.below(3),
            );
            record.extend_from_slice(candidate.as_bytes());
        }
    }
    record.extend(rng.bytes(40)); // quality numbers, timestamps, varints
    (peer_id.into_bytes(), record)
}

fn sst_bytes(dir: &Path) -> u64 {
    sst_files(dir)
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// The measurement behind the default compression (run with `--ignored --nocapture`):
/// 20 000 synthetic records, with and without ICE text, in SST files without
/// compression and with LZ4: file bytes, a full scan, 20 000 random point reads.
#[test]
#[ignore = "a measurement, not a check: run by hand with --ignored --nocapture"]
fn measure_compression_of_record_like_values() {
    for text in [true, false] {
        let mut sizes = Vec::new();
        for compression in [Compression::None, Compression::Lz4] {
            let (_dir, path) = temp_db();
            let mut options = RocksOptions::default();
            options.compression = compression;
            let rocks = RocksBackend::open(&path, options).expect("open");
            let mut rng = Rng::new(99);
            let mut raw = 0u64;
            let mut ids = Vec::new();
            for _ in 0..20 {
                let mut batch = WriteBatch::new();
                for _ in 0..1000 {
                    let (key, value) = synthetic_record(&mut rng, text);
                    raw += (key.len() + value.len()) as u64;
                    ids.push(key.clone());
                    batch.put(Space::Peers, key, value);
                }
                rocks.write(batch, Durability::Buffered).unwrap();
            }
            rocks.compact().unwrap();
            let start = std::time::Instant::now();
            let mut n = 0u64;
            rocks
                .scan(
                    Space::Peers,
                    KeyRange::all(),
                    Direction::Forward,
                    &mut |_, _| {
                        n += 1;
                        ControlFlow::Continue(())
                    },
                )
                .unwrap();
            let scan_time = start.elapsed();
            let start = std::time::Instant::now();
            for _ in 0..20_000 {
                let id = &ids[rng.below(ids.len() as u64) as usize];
                assert!(rocks.get(Space::Peers, id).unwrap().is_some());
            }
            let get_time = start.elapsed() / 20_000;
            let ssts = sst_bytes(&path);
            println!(
                "text {text}, {compression:?}: {n} records of {} bytes, {ssts} bytes of SST, \
                 full scan {scan_time:?}, point read {get_time:?}",
                raw / n
            );
            sizes.push(ssts);
        }
        println!(
            "text {text}: lz4 saves {:.1} % of the SST bytes",
            100.0 * (1.0 - sizes[1] as f64 / sizes[0] as f64)
        );
    }
}
