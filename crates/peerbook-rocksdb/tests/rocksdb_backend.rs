//! Tests of what is specific to RocksBackend: the LOCK file, ordering after
//! tombstones and compaction (against MemoryBackend), clear, errors, disk usage.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use peerbook::backend::{
    Backend, BackendError, Direction, Durability, KeyRange, ReadView, Space, WriteBatch,
};
use peerbook::conformance::fixtures::{copy_dir, fixtures_dir};
use peerbook::conformance::Rng;
use peerbook::{ManualClock, MasterKey, MemoryBackend, Options, PeerBook};
use peerbook_rocksdb::{Compression, RocksBackend, RocksOptions, ENGINE};
use tempfile::TempDir;

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn temp_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("db");
    (dir, path)
}

/// Memtables of 64 KiB: a few thousand writes go through flushes and compactions.
fn small_options() -> RocksOptions {
    let mut options = RocksOptions::default();
    options.peers_write_buffer_bytes = 64 * 1024;
    options.index_write_buffer_bytes = 64 * 1024;
    options.block_cache_bytes = 1 << 20;
    options
}

fn collect(b: &dyn Backend, space: Space, range: KeyRange<'_>, dir: Direction) -> Entries {
    let mut out = Vec::new();
    b.scan(space, range, dir, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .expect("scan");
    out
}

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

/// A store-like workload: peers updated again and again (each update deletes the
/// old index entries and writes new ones), some removed, counters in meta. The
/// same batches go to both backends.
fn index_workload(rng: &mut Rng, steps: usize, backends: &[&dyn Backend]) {
    const PEERS: u64 = 1500;
    let mut state: BTreeMap<Vec<u8>, (u64, u8)> = BTreeMap::new();
    for step in 0..steps {
        let mut batch = WriteBatch::new();
        for _ in 0..rng.below(4) + 1 {
            let peer = format!("peer-{:05}", rng.below(PEERS)).into_bytes();
            let old = state.get(&peer).copied();
            if let Some((seen, quality)) = old {
                batch.delete(Space::ByLastSeen, last_seen_key(seen, &peer));
                batch.delete(Space::ByQuality, index_key(&[quality], &peer));
            }
            if old.is_some() && rng.below(5) == 0 {
                batch.delete(Space::Peers, peer.clone());
                state.remove(&peer);
            } else {
                let seen = 1_700_000_000_000 + rng.below(30 * 86_400_000);
                let quality = rng.below(101) as u8;
                let len = 200 + rng.below(800) as usize;
                batch.put(Space::Peers, peer.clone(), rng.bytes(len));
                batch.put(Space::ByLastSeen, last_seen_key(seen, &peer), Vec::new());
                batch.put(Space::ByQuality, index_key(&[quality], &peer), Vec::new());
                state.insert(peer, (seen, quality));
            }
        }
        batch.put(
            Space::Meta,
            b"peer_count".to_vec(),
            (state.len() as u64).to_be_bytes().to_vec(),
        );
        let durability = if step % 10 == 0 {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        for b in backends {
            b.write(batch.clone(), durability).expect("write");
        }
    }
}

/// The store's by_last_seen key (schema 4, newest first): the negated time, the
/// negated id, a 0xFF terminator.
fn last_seen_key(seen: u64, peer: &[u8]) -> Vec<u8> {
    let mut key = (!seen).to_be_bytes().to_vec();
    key.extend(peer.iter().map(|b| !b));
    key.push(0xFF);
    key
}

fn index_key(prefix: &[u8], peer: &[u8]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(peer);
    key
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
        Some(4u32.to_be_bytes().to_vec()),
        "migrated"
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
fn clear_then_reopen_is_empty() {
    let (_dir, path) = temp_db();
    let rocks = RocksBackend::open(&path, small_options()).expect("open");
    let mut rng = Rng::new(42);
    index_workload(&mut rng, 1500, &[&rocks]);
    // Keys that no finite range end covers: they start with 0xff.
    let mut batch = WriteBatch::new();
    for space in Space::ALL {
        batch.put(space, vec![0xff], b"a".to_vec());
        batch.put(space, vec![0xff, 0xff, 0xff], b"b".to_vec());
        batch.put(space, vec![0xff, 0x00], b"c".to_vec());
        batch.put(space, vec![0x00], b"d".to_vec());
        // runs of 0xff up to the ranges' end and past it (point-deleted)
        for run in [8, 16, 17, 20] {
            batch.put(space, vec![0xff; run], b"e".to_vec());
            let mut key = vec![0xff; run];
            key.push(0x01);
            batch.put(space, key, b"f".to_vec());
        }
    }
    rocks.write(batch, Durability::Sync).unwrap();
    rocks.compact().expect("compact"); // part of the data in SST files, part not
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"in-memtable".to_vec(), b"x".to_vec());
    rocks.write(batch, Durability::Buffered).unwrap();

    let full = rocks.disk_usage().unwrap();
    rocks.clear(Durability::Sync).expect("clear");
    // clear flushes and compacts: the space comes back at once
    let cleared = rocks.disk_usage().unwrap();
    assert!(
        cleared < full,
        "clear reclaims the space of the old data ({full} -> {cleared})"
    );
    for space in Space::ALL {
        assert!(
            collect(&rocks, space, KeyRange::all(), Direction::Forward).is_empty(),
            "clear empties {space}"
        );
        assert_eq!(rocks.get(space, &[0xff, 0xff, 0xff]).unwrap(), None);
    }
    drop(rocks);

    let rocks = RocksBackend::open(&path, small_options()).expect("reopen");
    for space in Space::ALL {
        for dir in [Direction::Forward, Direction::Reverse] {
            assert!(
                collect(&rocks, space, KeyRange::all(), dir).is_empty(),
                "a cleared {space} is empty after reopen ({dir:?})"
            );
        }
    }
    assert_eq!(rocks.get(Space::Peers, b"peer-00001").unwrap(), None);

    // A compaction after clear has nothing left to reclaim; the backend keeps working.
    rocks.compact().expect("compact");
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"new".to_vec(), b"life".to_vec());
    rocks.write(batch, Durability::Sync).unwrap();
    assert_eq!(
        rocks.get(Space::Peers, b"new").unwrap(),
        Some(b"life".to_vec())
    );
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

/// The forms in which a peer id can reach the files: its bytes (`peers` and
/// `by_quality` keys), its negated bytes (`by_last_seen` keys), and both as hex
/// (RocksDB's `LOG` prints keys in hex, upper case).
fn id_needles(id: &[u8]) -> Vec<(String, Vec<u8>)> {
    let negated: Vec<u8> = id.iter().map(|b| !b).collect();
    let hex = |bytes: &[u8], upper: bool| -> Vec<u8> {
        bytes
            .iter()
            .map(|b| {
                if upper {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
            })
            .collect::<String>()
            .into_bytes()
    };
    vec![
        ("id".to_string(), id.to_vec()),
        ("negated id".to_string(), negated.clone()),
        ("id as HEX".to_string(), hex(id, true)),
        ("id as hex".to_string(), hex(id, false)),
        ("negated id as HEX".to_string(), hex(&negated, true)),
        ("negated id as hex".to_string(), hex(&negated, false)),
    ]
}

/// `(file name, needle)` for every file of `dir` holding one of `needles`.
fn needles_in_files(dir: &Path, needles: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read db dir") {
        let path = entry.expect("dir entry").path();
        // RocksDB deletes obsolete files in the background: one may vanish.
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for (what, needle) in needles {
            if bytes.windows(needle.len()).any(|w| w == &needle[..]) {
                found.push((name.clone(), what.clone()));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Peer ids are not in any file once `clear` returns, nor after close and reopen:
/// not in the SST files, the write-ahead log, the `LOG`, nor the `MANIFEST`, whose
/// edits name each SST file's smallest and largest key. Nor are keys of the meta
/// column family, the last one `clear` compacts. The ids are random (hex of
/// 20 random bytes), so no other byte sequence of the files matches them by chance;
/// half of the book reaches SST files before the clear (the reopen flushes the log),
/// half is still in the memtable.
#[test]
fn clear_leaves_no_peer_id_in_any_file() {
    let (_dir, path) = temp_db();
    let mut rng = Rng::new(0x1d5_c1ea4);
    let ids: Vec<Vec<u8>> = (0..200)
        .map(|_| {
            rng.bytes(20)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    let meta_key = |id: &[u8]| [b"note-".as_slice(), id].concat();
    let mut needles = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        for (what, needle) in id_needles(id) {
            needles.push((format!("{what} of peer {i}"), needle));
        }
        needles.push((format!("meta key of peer {i}"), meta_key(id)));
    }
    let write_peers = |rocks: &RocksBackend, ids: &[Vec<u8>], rng: &mut Rng| {
        for chunk in ids.chunks(10) {
            let mut batch = WriteBatch::new();
            for id in chunk {
                let seen = 1_764_000_000_000 + rng.below(86_400_000);
                batch.put(Space::Peers, id.clone(), rng.bytes(300));
                batch.put(Space::ByLastSeen, last_seen_key(seen, id), rng.bytes(16));
                batch.put(Space::ByQuality, index_key(&[50], id), Vec::new());
            }
            batch.put(Space::Meta, b"counters".to_vec(), rng.bytes(24));
            // a Meta key as distinctive as an id: meta is the last column family
            // `clear` compacts
            batch.put(Space::Meta, meta_key(&chunk[0]), Vec::new());
            rocks.write(batch, Durability::Sync).expect("write");
        }
    };
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("open");
    write_peers(&rocks, &ids[..100], &mut rng);
    drop(rocks);
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("reopen");
    write_peers(&rocks, &ids[100..], &mut rng);
    let before = needles_in_files(&path, &needles);
    let files_before: std::collections::BTreeSet<_> =
        before.iter().map(|(file, _)| file.clone()).collect();
    eprintln!("before clear, files holding ids: {files_before:?}");
    for file in &files_before {
        let kinds: std::collections::BTreeSet<_> = before
            .iter()
            .filter(|(f, _)| f == file)
            .map(|(_, what)| what.split(" of peer").next().unwrap().to_string())
            .collect();
        eprintln!("  {file}: {kinds:?}");
    }
    assert!(
        files_before.iter().any(|f| f.ends_with(".sst")),
        "ids reached SST files before the clear: {files_before:?}"
    );

    rocks.clear(Durability::Sync).expect("clear");
    let after_clear = needles_in_files(&path, &needles);
    assert!(
        after_clear.is_empty(),
        "peer ids once clear returned: {after_clear:?}"
    );
    drop(rocks);
    let after_close = needles_in_files(&path, &needles);
    assert!(
        after_close.is_empty(),
        "peer ids after close: {after_close:?}"
    );
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("reopen");
    let after_reopen = needles_in_files(&path, &needles);
    assert!(
        after_reopen.is_empty(),
        "peer ids after reopen: {after_reopen:?}"
    );
    assert_eq!(rocks.get(Space::Peers, &ids[0]).unwrap(), None);
}

/// Readers on other threads keep reading through clears: every `get`, `scan` and
/// `view` succeeds; a get finds the value written or nothing; a view (and a scan)
/// sees a whole book or an empty one, never part of one (a peer and its index
/// entry go in one batch, clear is one batch); one reader keeps a view open at
/// all times (it takes the next before dropping the last); each clear finishes
/// within a minute (no deadlock with the readers).
#[test]
fn readers_run_through_clear() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    const PEERS: usize = 2000;
    let (_dir, path) = temp_db();
    let rocks = Arc::new(RocksBackend::open(&path, small_options()).expect("open"));
    let id = |n: usize| format!("peer-{n:05}").into_bytes();
    let value = |n: usize| format!("value of peer {n:05}").repeat(20).into_bytes();
    let count = |view: &dyn ReadView, space: Space| {
        let mut n = 0usize;
        view.scan(space, KeyRange::all(), Direction::Forward, &mut |_, _| {
            n += 1;
            ControlFlow::Continue(())
        })
        .expect("scan in a view");
        n
    };
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (rocks, stop, reads) = (rocks.clone(), stop.clone(), reads.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(t);
                let mut held = rocks.view().expect("view");
                while !stop.load(Ordering::Relaxed) {
                    let n = rng.below(PEERS as u64) as usize;
                    let got = rocks.get(Space::Peers, &id(n)).expect("get");
                    assert!(got.is_none() || got == Some(value(n)), "a torn value");
                    match t {
                        0 => {
                            // a view's peers and index entries match
                            let view = rocks.view().expect("view");
                            let (peers, index) =
                                (count(&*view, Space::Peers), count(&*view, Space::ByQuality));
                            assert_eq!(peers, index, "a view sees part of a batch");
                        }
                        1 => {
                            let mut n = 0usize;
                            rocks
                                .scan(
                                    Space::ByQuality,
                                    KeyRange::all(),
                                    Direction::Reverse,
                                    &mut |_, _| {
                                        n += 1;
                                        ControlFlow::Continue(())
                                    },
                                )
                                .expect("scan");
                        }
                        _ => {
                            // always one view open: the next before the last goes
                            let next = rocks.view().expect("view");
                            held.get(Space::Peers, &id(n)).expect("get in a view");
                            held = next;
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for round in 0..3 {
        for chunk in (0..PEERS).collect::<Vec<_>>().chunks(100) {
            let mut batch = WriteBatch::new();
            for &n in chunk {
                batch.put(Space::Peers, id(n), value(n));
                batch.put(Space::ByQuality, index_key(&[round], &id(n)), Vec::new());
            }
            rocks.write(batch, Durability::Sync).expect("write");
        }
        if round == 1 {
            rocks.compact().expect("compact"); // SST files, not only memtables
        }
        let before = reads.load(Ordering::Relaxed);
        let (done, finished) = mpsc::channel();
        let clearing = rocks.clone();
        std::thread::spawn(move || done.send(clearing.clear(Durability::Sync)));
        let cleared = finished
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("clear of round {round} still running after 60 s"));
        cleared.expect("clear");
        assert_eq!(rocks.get(Space::Peers, &id(0)).unwrap(), None);
        // the readers got through this clear too
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while reads.load(Ordering::Relaxed) < before + 10 {
            assert!(
                std::time::Instant::now() < deadline,
                "the readers stopped reading"
            );
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().expect("a reader failed");
    }
    assert!(collect(&*rocks, Space::Peers, KeyRange::all(), Direction::Forward).is_empty());
}

/// The one exception to "no former key once clear returns": a view opened before
/// the clear keeps what it sees, on disk too (a compaction keeps what a snapshot
/// sees). Once the view is dropped, RocksDB compacts those entries away in the
/// background (the files holding them are marked for compaction when the oldest
/// snapshot goes), and that compaction's new `MANIFEST` forgets their keys.
#[test]
fn view_across_clear_keeps_its_entries_until_dropped() {
    let (_dir, path) = temp_db();
    let mut rng = Rng::new(7);
    let ids: Vec<Vec<u8>> = (0..100)
        .map(|_| {
            rng.bytes(20)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    let needles: Vec<(String, Vec<u8>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("id of peer {i}"), id.clone()))
        .collect();
    let rocks = RocksBackend::open(&path, RocksOptions::default()).expect("open");
    let mut batch = WriteBatch::new();
    for id in &ids {
        batch.put(Space::Peers, id.clone(), rng.bytes(100));
    }
    rocks.write(batch, Durability::Sync).unwrap();
    rocks.compact().unwrap();
    let view = rocks.view().unwrap();
    rocks.clear(Durability::Sync).expect("clear");
    assert!(view.get(Space::Peers, &ids[0]).unwrap().is_some());
    assert!(
        !needles_in_files(&path, &needles).is_empty(),
        "the view's entries are on disk while it lives"
    );
    drop(view);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let left = needles_in_files(&path, &needles);
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "30 s after the view was dropped: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(rocks.get(Space::Peers, &ids[0]).unwrap(), None);
}
