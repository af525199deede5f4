//! Damaged files on a real file system: every damage is either repaired and
//! reported (a torn tail) or refused with a clear `Corrupted` error; never a panic.
//! The tests parse the files with the byte layout documented in the crate docs.

use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use peerbook::backend::{
    Backend, BackendError, BackendExt, Direction, Dump, Durability, KeyRange, Space, WriteBatch,
};
use peerbook::conformance::fixtures::{copy_dir, fixtures_dir};
use peerbook::conformance::Rng;
use peerbook_file::testing::crc32c;
use peerbook_file::{FileBackend, FileOptions, FormatError, LoneLog, RecoveryError};

/// A version-2 file header: magic, version, generation, 16-byte salt, CRC.
const HEADER: usize = 40;
const FRAME_HEADER: usize = 20;

fn options() -> FileOptions {
    // No automatic compaction: the tests decide where frames are.
    FileOptions::default().with_auto_compact(false)
}

fn open(dir: &Path) -> Result<FileBackend, BackendError> {
    FileBackend::open(dir, options())
}

fn put(b: &FileBackend, key: &str, value: &str, durability: Durability) {
    let mut batch = WriteBatch::new();
    batch.put(
        Space::Peers,
        key.as_bytes().to_vec(),
        value.as_bytes().to_vec(),
    );
    batch.put(Space::Meta, b"last".to_vec(), key.as_bytes().to_vec());
    b.write(batch, durability).expect("write");
}

fn dump(b: &FileBackend) -> Dump {
    b.dump().expect("dump")
}

fn keys(b: &FileBackend) -> Vec<String> {
    let mut out = Vec::new();
    b.scan(
        Space::Peers,
        KeyRange::all(),
        Direction::Forward,
        &mut |k, _| {
            out.push(String::from_utf8_lossy(k).into_owned());
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    out
}

/// A store with one batch per `(key, value, durability)` in its log, in order;
/// returns the temp dir, the store's dir and the path of the log.
fn store_with(batches: &[(&str, &str, Durability)]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = open(&dir).unwrap();
    for &(key, value, durability) in batches {
        put(&b, key, value, durability);
    }
    let g = b.stats().generation;
    drop(b);
    let log = dir.join(format!("log.{g}"));
    (tmp, dir, log)
}

/// A store with `n` Sync batches `k00`, `k01`, ... in its log; returns the dir and
/// the path of the log.
fn store_with_log(n: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let batches: Vec<(String, String)> = (0..n)
        .map(|i| (format!("k{i:02}"), format!("value number {i}")))
        .collect();
    let batches: Vec<(&str, &str, Durability)> = batches
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str(), Durability::Sync))
        .collect();
    store_with(&batches)
}

/// The snapshot of the generation of `log`.
fn snapshot_of(log: &Path) -> PathBuf {
    let name = log.file_name().unwrap().to_str().unwrap();
    log.with_file_name(name.replace("log", "snapshot"))
}

/// Write `data` to `path` with the bits of `mask` flipped in byte `at`.
fn write_flipped(path: &Path, data: &[u8], at: usize, mask: u8) {
    let mut bad = data.to_vec();
    bad[at] ^= mask;
    fs::write(path, &bad).unwrap();
}

/// Set the format version in the header of a file's `data`, its header CRC
/// rewritten to match.
fn set_version(data: &mut [u8], version: u32) {
    data[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c(&data[..36]);
    data[36..40].copy_from_slice(&crc.to_le_bytes());
}

/// Offsets of the frames of a log or snapshot file.
fn frame_offsets(data: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = HEADER;
    while off + FRAME_HEADER <= data.len() {
        out.push(off);
        let len = u32::from_le_bytes(data[off..off + 4].try_into().unwrap()) as usize;
        off += FRAME_HEADER + len;
    }
    assert_eq!(
        off,
        data.len(),
        "test parser: frames end at the end of the file"
    );
    out
}

/// The [`RecoveryError`] behind a `Corrupted` open (its source).
fn corrupted(result: Result<FileBackend, BackendError>) -> RecoveryError {
    match result {
        Err(BackendError::Corrupted {
            source: Some(source),
            ..
        }) => match source.downcast::<RecoveryError>() {
            Ok(e) => *e,
            Err(other) => panic!("Corrupted with a source that is not a RecoveryError: {other:?}"),
        },
        Err(other) => panic!("expected Corrupted, got {other:?}"),
        Ok(b) => panic!("expected Corrupted, opened with {:?}", b.recovery()),
    }
}

#[test]
fn truncated_log_header_is_refused() {
    let (_tmp, dir, log) = store_with_log(3);
    let data = fs::read(&log).unwrap();
    for cut in [0, 5, 8, 12, 23] {
        fs::write(&log, &data[..cut]).unwrap();
        match corrupted(open(&dir)) {
            RecoveryError::Header {
                file,
                error: FormatError::TruncatedHeader { len, .. },
            } => {
                assert_eq!(file, log, "names the file");
                assert_eq!(len, cut);
            }
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn wrong_magic_is_refused() {
    let (_tmp, dir, log) = store_with_log(3);
    let mut data = fs::read(&log).unwrap();
    data[..8].copy_from_slice(b"SQLite f");
    fs::write(&log, &data).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(
            &e,
            RecoveryError::Header {
                error: FormatError::BadMagic { kind: "log", .. },
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("not a peerbook-file log"), "{e}");
}

#[test]
fn newer_format_version_is_refused() {
    let (_tmp, dir, log) = store_with_log(3);
    let mut data = fs::read(&log).unwrap();
    set_version(&mut data, 3);
    fs::write(&log, &data).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(
            &e,
            RecoveryError::Header {
                error: FormatError::NewerVersion {
                    version: 3,
                    header_checksum_ok: true,
                    ..
                },
                ..
            }
        ),
        "the header checksum is valid: {e:?}"
    );

    // The same for the snapshot.
    let (_tmp, dir, log) = store_with_log(1);
    let snap = snapshot_of(&log);
    let mut data = fs::read(&snap).unwrap();
    set_version(&mut data, 7);
    fs::write(&snap, &data).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(&e, RecoveryError::Header { file, error: FormatError::NewerVersion { version: 7, .. } } if *file == snap),
        "{e:?}"
    );
}

#[test]
fn mid_log_damage_is_an_error_naming_the_offset() {
    let (_tmp, dir, log) = store_with_log(12);
    let data = fs::read(&log).unwrap();
    let offsets = frame_offsets(&data);
    assert_eq!(offsets.len(), 12);
    let victim = offsets[5];
    let end = offsets[6];
    // Every byte of the frame, header (length, synced_to, CRCs) and body alike.
    for at in victim..end {
        write_flipped(&log, &data, at, 0x10);
        let e = corrupted(open(&dir));
        assert!(
            matches!(e, RecoveryError::SyncedFrameDamaged { offset, .. } if offset == victim),
            "byte {at}: {e:?}"
        );
    }
    // A run of garbage over two frames in the middle.
    let mut bad = data.clone();
    for b in &mut bad[offsets[3] + 2..offsets[5] + 7] {
        *b = 0xA5;
    }
    fs::write(&log, &bad).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(e, RecoveryError::SyncedFrameDamaged { offset, .. } if offset == offsets[3]),
        "{e:?}"
    );
    // Repaired by hand, the store opens again with everything.
    fs::write(&log, &data).unwrap();
    let b = open(&dir).unwrap();
    assert_eq!(keys(&b).len(), 12);
    assert!(b.recovery().torn_tail.is_none());
}

#[test]
fn garbage_tail_is_truncated_and_reported() {
    let (_tmp, dir, log) = store_with_log(5);
    let good = fs::read(&log).unwrap();
    let expected = dump(&open(&dir).unwrap());
    let mut rng = Rng::new(77);
    for tail in [
        rng.bytes(1),
        rng.bytes(19),
        rng.bytes(20),
        rng.bytes(100),
        vec![0u8; 4096],
    ] {
        let mut data = good.clone();
        data.extend_from_slice(&tail);
        fs::write(&log, &data).unwrap();
        let b = open(&dir).unwrap();
        let torn = b
            .recovery()
            .torn_tail
            .clone()
            .expect("the torn tail is reported");
        assert_eq!(torn.offset, good.len() as u64);
        assert_eq!(torn.bytes, tail.len() as u64);
        assert!(torn.file.starts_with("log."));
        assert_eq!(dump(&b), expected, "nothing else changed");
        // the tail is gone from the file, and writes go on after the good part
        assert_eq!(fs::read(&log).unwrap(), good);
        drop(b);
        let b = open(&dir).unwrap();
        assert!(b.recovery().torn_tail.is_none(), "reported once");
        assert_eq!(b.recovery().log_frames, 5);
    }
}

#[test]
fn half_written_last_frame_is_truncated() {
    let (_tmp, dir, log) = store_with_log(5);
    let data = fs::read(&log).unwrap();
    let offsets = frame_offsets(&data);
    let last = offsets[4];
    for cut in [last + 1, last + FRAME_HEADER, data.len() - 1] {
        fs::write(&log, &data[..cut]).unwrap();
        let b = open(&dir).unwrap();
        let torn = b.recovery().torn_tail.clone().unwrap();
        assert_eq!(torn.offset, last as u64);
        assert_eq!(
            keys(&b),
            ["k00", "k01", "k02", "k03"],
            "the torn batch is gone whole"
        );
        assert_eq!(b.get(Space::Meta, b"last").unwrap(), Some(b"k03".to_vec()));
        drop(b);
        fs::write(&log, &data).unwrap();
    }
}

/// The torn-tail rule on a damaged frame followed by valid frames: they are a torn
/// tail when none of them was written after a sync covering the damage, and
/// corruption when one was.
#[test]
fn damage_followed_by_valid_frames() {
    // A synced, then B, C, D buffered: C and D were appended before any sync
    // covered B, so damage to B is a torn tail (B, C, D dropped, A kept).
    let (_tmp, dir, log) = store_with(&[
        ("a", "1", Durability::Sync),
        ("b", "2", Durability::Buffered),
        ("c", "3", Durability::Buffered),
        ("d", "4", Durability::Buffered),
    ]);
    let data = fs::read(&log).unwrap();
    let offsets = frame_offsets(&data);
    write_flipped(&log, &data, offsets[1] + FRAME_HEADER + 3, 1);
    let b = open(&dir).unwrap();
    let torn = b.recovery().torn_tail.clone().unwrap();
    assert_eq!(torn.offset, offsets[1] as u64);
    assert_eq!(torn.valid_frames_after, 2, "C and D were dropped with B");
    assert_eq!(keys(&b), ["a"]);
    drop(b);

    // A synced, B buffered, C synced, D buffered: D was appended after C's sync
    // made B durable, so damage to B is corruption.
    let (_tmp, dir, log) = store_with(&[
        ("a", "1", Durability::Sync),
        ("b", "2", Durability::Buffered),
        ("c", "3", Durability::Sync),
        ("d", "4", Durability::Buffered),
    ]);
    let data = fs::read(&log).unwrap();
    let offsets = frame_offsets(&data);
    write_flipped(&log, &data, offsets[1] + FRAME_HEADER + 3, 1);
    let e = corrupted(open(&dir));
    assert!(
        matches!(e, RecoveryError::SyncedFrameDamaged { offset, witness, .. }
            if offset == offsets[1] && witness == offsets[3]),
        "{e:?}"
    );

    // Damage to the last frame is indistinguishable from a torn write: truncated
    // and reported, not silent.
    write_flipped(&log, &data, offsets[3] + FRAME_HEADER + 1, 1);
    let b = open(&dir).unwrap();
    assert_eq!(
        b.recovery().torn_tail.as_ref().unwrap().offset,
        offsets[3] as u64
    );
    assert_eq!(keys(&b), ["a", "b", "c"]);
}

#[test]
fn damaged_snapshot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = FileBackend::open(&dir, options().with_snapshot_chunk_bytes(64)).unwrap();
    for i in 0..40 {
        put(&b, &format!("k{i:02}"), "some value", Durability::Buffered);
    }
    b.compact().unwrap();
    let g = b.stats().generation;
    drop(b);
    let snap = dir.join(format!("snapshot.{g}"));
    let good = fs::read(&snap).unwrap();
    let offsets = frame_offsets(&good);
    assert!(offsets.len() > 3, "the snapshot has several frames");
    let mut rng = Rng::new(5);

    let second_frame = offsets[1];
    let mut flipped = good.clone();
    flipped[offsets[1] + FRAME_HEADER + 2] ^= 4;
    let garbage = rng.bytes(good.len());
    let garbage_body = [&good[..HEADER], &rng.bytes(500)[..]].concat();
    type Expect = Box<dyn Fn(&RecoveryError) -> bool>;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "empty",
            Vec::new(),
            Box::new(|e| {
                matches!(
                    e,
                    RecoveryError::Header {
                        error: FormatError::TruncatedHeader { .. },
                        ..
                    }
                )
            }),
        ),
        (
            "garbage",
            garbage,
            Box::new(|e| {
                matches!(
                    e,
                    RecoveryError::Header {
                        error: FormatError::BadMagic { .. },
                        ..
                    }
                )
            }),
        ),
        (
            "garbage after the header",
            garbage_body,
            Box::new(|e| matches!(e, RecoveryError::SnapshotFrame { offset: HEADER, .. })),
        ),
        (
            "no end frame",
            good[..*offsets.last().unwrap()].to_vec(),
            Box::new(|e| matches!(e, RecoveryError::SnapshotTruncated { .. })),
        ),
        (
            "cut mid-frame",
            good[..offsets[2] + 9].to_vec(),
            Box::new(|e| matches!(e, RecoveryError::SnapshotFrame { .. })),
        ),
        (
            "trailing bytes",
            [&good[..], b"xyz"].concat(),
            Box::new(|e| matches!(e, RecoveryError::AfterEnd { bytes: 3, .. })),
        ),
        (
            "flipped bit",
            flipped,
            Box::new(
                move |e| matches!(e, RecoveryError::SnapshotFrame { offset, .. } if *offset == second_frame),
            ),
        ),
    ];
    for (what, bytes, expect) in cases {
        fs::write(&snap, &bytes).unwrap();
        let e = corrupted(open(&dir));
        assert!(expect(&e), "{what}: {e:?}");
        assert!(
            e.to_string().contains(&format!("snapshot.{g}")),
            "{what}: names the file: {e}"
        );
    }
    fs::write(&snap, &good).unwrap();
    assert_eq!(keys(&open(&dir).unwrap()).len(), 40);
}

#[test]
fn missing_files_are_refused() {
    // snapshot.G without log.G
    let (_tmp, dir, log) = store_with_log(3);
    fs::remove_file(&log).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(&e, RecoveryError::MissingLog { file, .. } if *file == log),
        "{e:?}"
    );

    // log.G with frames but no snapshot at all
    let (_tmp, dir, log) = store_with_log(3);
    fs::remove_file(snapshot_of(&log)).unwrap();
    let name = log.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        FileBackend::lone_logs(&dir).unwrap(),
        [(name, LoneLog::Frames)]
    );
    let e = corrupted(open(&dir));
    assert!(
        matches!(&e, RecoveryError::LostSnapshot { file, snapshot: None, .. } if *file == log),
        "{e:?}"
    );
}

#[test]
fn leftovers_of_interrupted_compactions_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = open(&dir).unwrap();
    put(&b, "a", "1", Durability::Sync);
    b.compact().unwrap();
    put(&b, "b", "2", Durability::Sync);
    let g = b.stats().generation;
    assert_eq!(g, 2);
    drop(b);
    // an old generation whose removal was lost, a compaction that never committed
    fs::write(dir.join("snapshot.1"), b"old").unwrap();
    fs::write(dir.join("log.1"), b"old").unwrap();
    fs::write(dir.join("snapshot.3.tmp"), b"half").unwrap();
    let header = fs::read(dir.join("log.2")).unwrap()[..HEADER].to_vec();
    fs::write(dir.join("log.3"), &header).unwrap();
    fs::write(dir.join("notes.txt"), b"not ours").unwrap();
    let b = open(&dir).unwrap();
    let mut removed = b.recovery().removed_files.clone();
    removed.sort();
    assert_eq!(removed, ["log.1", "log.3", "snapshot.1", "snapshot.3.tmp"]);
    assert_eq!(keys(&b), ["a", "b"]);
    assert!(
        dir.join("notes.txt").exists(),
        "foreign files are left alone"
    );
    drop(b);

    // a later-generation log holding frames cannot come from a crash
    let data = fs::read(dir.join("log.2")).unwrap();
    fs::write(dir.join("log.5"), &data).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(&e, RecoveryError::LostSnapshot { file, snapshot: Some(s), .. }
            if file.ends_with("log.5") && s == "snapshot.5"),
        "{e:?}"
    );
}

#[test]
fn random_damage_never_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = FileBackend::open(&dir, options().with_snapshot_chunk_bytes(48)).unwrap();
    let mut rng = Rng::new(0xbad_f11e);
    for i in 0..30 {
        put(
            &b,
            &format!("k{}", rng.below(12)),
            &format!("v{i}"),
            Durability::Sync,
        );
        if i == 15 {
            b.compact().unwrap();
        }
    }
    let g = b.stats().generation;
    drop(b);
    let log = dir.join(format!("log.{g}"));
    let snap = dir.join(format!("snapshot.{g}"));
    let (good_log, good_snap) = (fs::read(&log).unwrap(), fs::read(&snap).unwrap());
    let (mut ok, mut refused) = (0, 0);
    for round in 0..400 {
        let (path, good) = if round % 2 == 0 {
            (&log, &good_log)
        } else {
            (&snap, &good_snap)
        };
        let mut data = good.clone();
        match rng.below(5) {
            0 => {
                let at = rng.below(data.len() as u64) as usize;
                data[at] ^= 1 << rng.below(8);
            }
            1 => data.truncate(rng.below(data.len() as u64) as usize),
            2 => {
                let n = 1 + rng.below(64) as usize;
                data.extend(rng.bytes(n));
            }
            3 => {
                let at = rng.below(data.len() as u64) as usize;
                let n = (1 + rng.below(16) as usize).min(data.len() - at);
                let bytes = rng.bytes(n);
                data[at..at + n].copy_from_slice(&bytes);
            }
            _ => {
                // plausible lengths: a huge body length in some frame header
                let at = HEADER + rng.below((data.len() - HEADER) as u64) as usize;
                let n = 4.min(data.len() - at);
                data[at..at + n].copy_from_slice(&[0xff, 0xff, 0xff, 0x3f][..n]);
            }
        }
        fs::write(path, &data).unwrap();
        match open(&dir) {
            Ok(b) => {
                ok += 1;
                let _ = dump(&b);
            }
            Err(BackendError::Corrupted { .. }) => refused += 1,
            Err(e) => panic!("round {round}: damage must be reported as Corrupted, got {e:?}"),
        }
        fs::write(&log, &good_log).unwrap();
        fs::write(&snap, &good_snap).unwrap();
    }
    assert!(ok > 0 && refused > 0, "ok {ok}, refused {refused}");
}

/// A frame as an attacker would forge it without knowing the file's salt: the CRC
/// seeded with the generation alone (all a version-1 file used), claiming
/// `synced_to` bytes durable.
fn forged_frame(generation: u64, synced_to: u64, body: &[u8]) -> Vec<u8> {
    let mut head = Vec::new();
    head.extend_from_slice(&(body.len() as u32).to_le_bytes());
    head.extend_from_slice(&synced_to.to_le_bytes());
    head.extend_from_slice(&crc32c(body).to_le_bytes());
    // crc32c_append(crc32c(G), head) == crc32c(G ++ head)
    let seeded = [&generation.to_le_bytes()[..], &head[..]].concat();
    let head_crc = crc32c(&seeded);
    [&head[..], &head_crc.to_le_bytes()[..], body].concat()
}

/// A record value carrying a CRC-valid fake frame that claims the record's own
/// frame synced: when a crash tears that record's frame, the fake frame must not
/// pass as a witness (which would make open fail with `Corrupted`); the salt in
/// the header seeds the real CRCs, so the fake does not validate.
#[test]
fn a_frame_forged_inside_a_value_does_not_turn_a_torn_tail_into_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = open(&dir).unwrap();
    put(&b, "before", "synced", Durability::Sync);
    let generation = b.stats().generation;
    let log = dir.join(format!("log.{generation}"));
    let victim = fs::read(&log).unwrap().len();
    // forged with every seed an attacker might guess: the generation alone, and
    // the generation with an all-zero salt
    let mut value = b"-----BEGIN PUBLIC KEY-----".to_vec();
    let fake_body = b"\x01\x01\x00\x04evil\x01x"; // one put in the peers space
    value.extend(forged_frame(generation, victim as u64 + 1, fake_body));
    let zero_salted = {
        let mut f = forged_frame(generation, victim as u64 + 1, fake_body);
        let head = f[..16].to_vec();
        let seeded = [&generation.to_le_bytes()[..], &[0u8; 16][..], &head[..]].concat();
        f[16..20].copy_from_slice(&crc32c(&seeded).to_le_bytes());
        f
    };
    value.extend(zero_salted);
    value.extend(vec![b'A'; 512]);
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"mallory".to_vec(), value.clone());
    b.write(batch, Durability::Buffered).unwrap();
    drop(b);
    // the crash tore mallory's frame after the fake frames reached the disk
    let data = fs::read(&log).unwrap();
    let fake_at = data
        .windows(26)
        .position(|w| w == b"-----BEGIN PUBLIC KEY-----")
        .expect("value in the log")
        + 26;
    let cut = fake_at + 2 * (FRAME_HEADER + fake_body.len()) + 100;
    assert!(cut < data.len(), "the cut tears mallory's frame");
    fs::write(&log, &data[..cut]).unwrap();

    let b = open(&dir).expect("a torn tail is truncated, not reported as corruption");
    let torn = b.recovery().torn_tail.clone().expect("torn tail reported");
    assert_eq!(torn.offset, victim as u64);
    assert_eq!(keys(&b), ["before"], "mallory's torn batch is dropped");
}

/// A version-1 store (the committed fixture) opens, takes writes in its version-1
/// log, and after a compaction every file is version 2, with a salt.
#[test]
fn version_1_files_open_and_compaction_writes_version_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    copy_dir(&fixtures_dir().join("v1/file"), &dir);
    let version = |name: &str| {
        let data = fs::read(dir.join(name)).unwrap();
        u32::from_le_bytes(data[8..12].try_into().unwrap())
    };
    assert_eq!((version("snapshot.1"), version("log.1")), (1, 1));
    let b = open(&dir).unwrap();
    let before = dump(&b);
    assert!(!before.is_empty(), "the fixture holds entries");
    put(&b, "after", "upgrade", Durability::Sync);
    drop(b);
    assert_eq!(version("log.1"), 1, "a version-1 log is appended as it is");
    let b = open(&dir).unwrap();
    assert!(b.recovery().torn_tail.is_none());
    assert_eq!(keys(&b).iter().filter(|k| *k == "after").count(), 1);
    b.compact().unwrap();
    let expected = dump(&b);
    drop(b);
    assert_eq!((version("snapshot.2"), version("log.2")), (2, 2));
    let b = open(&dir).unwrap();
    assert_eq!(
        dump(&b),
        expected,
        "the version-2 generation holds everything"
    );
    assert!(!dir.join("log.1").exists() && !dir.join("snapshot.1").exists());
}

/// The bytes of `log.G` as this backend writes it for generation `g`: its header
/// and no frame (a new store, compacted `g - 1` times, with no write since).
fn header_only_log(g: u64) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let b = open(tmp.path()).unwrap();
    for _ in 1..g {
        b.compact().unwrap();
    }
    assert_eq!(b.stats().generation, g);
    let bytes = fs::read(tmp.path().join(format!("log.{g}"))).unwrap();
    assert_eq!(bytes.len(), HEADER);
    bytes
}

/// The directory's entries with their bytes, sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// What an interrupted creation leaves (FORMAT.md, "Files"): `log.1` renamed into
/// place with its synced header, no `snapshot.1` yet. Open removes logs holding
/// this backend's header and nothing after it (whatever their generation: they
/// hold nothing) and creates generation 1.
#[test]
fn header_only_logs_without_a_snapshot_are_an_interrupted_creation() {
    for names in [&["log.1"][..], &["log.7"], &["log.1", "log.2"]] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("book");
        fs::create_dir_all(&dir).unwrap();
        for name in names {
            let g = name.strip_prefix("log.").unwrap().parse().unwrap();
            fs::write(dir.join(name), header_only_log(g)).unwrap();
        }
        let judged: Vec<_> = names
            .iter()
            .map(|n| (n.to_string(), LoneLog::HeaderOnly))
            .collect();
        assert_eq!(FileBackend::lone_logs(&dir).unwrap(), judged);
        let b = open(&dir).unwrap_or_else(|e| panic!("open over {names:?}: {e}"));
        put(&b, "k", "v", Durability::Sync);
        drop(b);
        let b = open(&dir).unwrap_or_else(|e| panic!("reopen over {names:?}: {e}"));
        assert_eq!(keys(&b), vec!["k".to_string()], "{names:?}");
    }
}

/// A log whose bytes are not a log header this backend writes (an empty file, a
/// user's short file, a prefix of the magic, a header of a newer format) is not
/// the backend's, whatever its name: with no snapshot, or above the store's
/// generation, open refuses the directory (`Corrupted`, a `RecoveryError::Header`
/// naming the file), removes nothing and writes no store. An empty `log.N` is
/// never what a creation leaves: `log.G` gets its name only once its header is
/// synced (FORMAT.md).
#[test]
fn a_log_this_backend_did_not_write_is_refused_and_kept() {
    let mut newer = header_only_log(1);
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    let contents: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("text", b"rotated at midnight\n".to_vec()),
        ("40 bytes of text", vec![b'x'; HEADER]),
        ("a prefix of the magic", b"PBOOK".to_vec()),
        ("a newer format", newer),
    ];
    for (what, bytes) in &contents {
        for name in ["log.1", "log.7"] {
            // alone: no store is made
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("app");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(name), bytes).unwrap();
            assert_eq!(
                FileBackend::lone_logs(&dir).unwrap(),
                [(name.to_string(), LoneLog::NotOurs)],
                "{what} {name}"
            );
            let e = corrupted(open(&dir));
            assert!(
                matches!(&e, RecoveryError::Header { file, .. } if *file == dir.join(name)),
                "{what} {name}: {e:?}"
            );
            // not even a LOCK: the refused open removes the one it created
            assert_eq!(
                files(&dir),
                [(name.to_string(), bytes.clone())],
                "{what} {name}"
            );
        }
        // above a store's generation
        let (_tmp, dir, _log) = store_with_log(2);
        let before = files(&dir);
        fs::write(dir.join("log.9"), bytes).unwrap();
        assert_eq!(
            FileBackend::lone_logs(&dir).unwrap(),
            [("log.9".to_string(), LoneLog::NotOurs)],
            "{what}"
        );
        let e = corrupted(open(&dir));
        assert!(
            matches!(&e, RecoveryError::Header { file, .. } if *file == dir.join("log.9")),
            "{what} log.9: {e:?}"
        );
        let mut after = files(&dir);
        after.retain(|(n, _)| n != "log.9");
        assert_eq!(after, before, "{what}: the store is untouched");
        assert_eq!(fs::read(dir.join("log.9")).unwrap(), *bytes, "{what}");
        fs::remove_file(dir.join("log.9")).unwrap();
        assert_eq!(keys(&open(&dir).unwrap()), ["k00", "k01"], "{what}");
    }
}
