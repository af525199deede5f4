//! Hostile files, forged with valid checksums (the salt is in the header, so
//! whoever can write the files can forge frames): lying lengths must cost only the
//! bytes present, never a panic or a huge allocation; cuts at every offset are
//! refused (snapshot) or repaired as a torn tail (log); hand-made snapshots and
//! logs (keys out of order, empty keys and values, a log that deletes, repeats and
//! re-puts keys) load as the documented replay says.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use peerbook::backend::{Backend, BackendError, BackendExt, Dump, Durability, Space, WriteBatch};
use peerbook_file::testing::{crc32c, crc32c_append};
use peerbook_file::{FileBackend, FileOptions, FormatError, RecoveryError, SnapshotRule};

/// Counts the largest single allocation, to prove a lying length is not trusted.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

/// Taken by the tests that measure [`LARGEST`] and the one that allocates big
/// buffers on purpose, so they do not see each other's allocations.
static MEASURE: Mutex<()> = Mutex::new(());

fn measure() -> MutexGuard<'static, ()> {
    MEASURE.lock().unwrap_or_else(|e| e.into_inner())
}

const HEADER: usize = 40;
const MAX_BODY: u32 = 1 << 30;

fn options() -> FileOptions {
    FileOptions::default()
        .with_auto_compact(false)
        .with_snapshot_chunk_bytes(64)
}

fn open(dir: &Path) -> Result<FileBackend, BackendError> {
    FileBackend::open(dir, options())
}

fn recovery_error(result: Result<FileBackend, BackendError>) -> RecoveryError {
    match result {
        Err(BackendError::Corrupted {
            source: Some(source),
            ..
        }) => *source.downcast::<RecoveryError>().expect("a RecoveryError"),
        Err(other) => panic!("expected Corrupted, got {other:?}"),
        Ok(b) => panic!("expected Corrupted, opened with {:?}", b.recovery()),
    }
}

/// A version-2 header of `magic` for `generation` (salt of 16 x `salt`).
fn header(magic: &[u8; 8], generation: u64, salt: u8) -> Vec<u8> {
    let mut h = magic.to_vec();
    h.extend_from_slice(&2u32.to_le_bytes());
    h.extend_from_slice(&generation.to_le_bytes());
    h.extend_from_slice(&[salt; 16]);
    let crc = crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

/// A frame valid in the file whose header is `file_header`, claiming `len`.
fn frame_claiming(file_header: &[u8], len: u32, synced_to: u64, body: &[u8]) -> Vec<u8> {
    let seed = crc32c_append(crc32c(&file_header[12..20]), &file_header[20..36]);
    let mut f = Vec::new();
    f.extend_from_slice(&len.to_le_bytes());
    f.extend_from_slice(&synced_to.to_le_bytes());
    f.extend_from_slice(&crc32c(body).to_le_bytes());
    let head_crc = crc32c_append(seed, &f);
    f.extend_from_slice(&head_crc.to_le_bytes());
    f.extend_from_slice(body);
    f
}

fn frame(file_header: &[u8], synced_to: u64, body: &[u8]) -> Vec<u8> {
    frame_claiming(file_header, body.len() as u32, synced_to, body)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

enum Op<'a> {
    Put(Space, &'a [u8], &'a [u8]),
    Delete(Space, &'a [u8]),
    End(u64),
}

fn body(ops: &[Op<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, ops.len() as u64);
    for op in ops {
        match op {
            Op::Put(space, k, v) => {
                out.extend([1, space.index() as u8]);
                varint(&mut out, k.len() as u64);
                out.extend_from_slice(k);
                varint(&mut out, v.len() as u64);
                out.extend_from_slice(v);
            }
            Op::Delete(space, k) => {
                out.extend([2, space.index() as u8]);
                varint(&mut out, k.len() as u64);
                out.extend_from_slice(k);
            }
            Op::End(n) => {
                out.push(4);
                varint(&mut out, *n);
            }
        }
    }
    out
}

/// Write generation 1 of `dir` by hand: a snapshot of `snapshot` frames, a log of
/// `log` frames (each claiming everything before it synced).
fn write_store(dir: &Path, snapshot: &[Vec<u8>], log: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
    fs::create_dir_all(dir).unwrap();
    let sh = header(b"PBOOKSNP", 1, 0x5a);
    let mut snap = sh.clone();
    for b in snapshot {
        snap.extend(frame(&sh, 0, b));
    }
    let lh = header(b"PBOOKLOG", 1, 0xa5);
    let mut lg = lh.clone();
    for b in log {
        let synced = lg.len() as u64;
        lg.extend(frame(&lh, synced, b));
    }
    fs::write(dir.join("snapshot.1"), &snap).unwrap();
    fs::write(dir.join("log.1"), &lg).unwrap();
    (snap, lg)
}

fn dump_of(entries: &[(Space, &[u8], &[u8])]) -> Dump {
    let mut d = Dump::default();
    for (space, k, v) in entries {
        d[space.index()].insert(k.to_vec(), v.to_vec());
    }
    d
}

/// A body length of up to 1 GiB, with valid checksums, over a few bytes: open
/// refuses (snapshot) or cuts (log) it, reading only the bytes present.
#[test]
fn lying_lengths_cost_only_the_bytes_present() {
    let _measure = measure();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let end = body(&[Op::End(0)]);
    let sh = header(b"PBOOKSNP", 1, 0x5a);
    let lh = header(b"PBOOKLOG", 1, 0xa5);
    let put = body(&[Op::Put(Space::Peers, b"k", b"v")]);
    for len in [MAX_BODY, MAX_BODY - 1, 1 << 29, 70_000] {
        // the snapshot's only frame claims `len` bytes
        write_store(&dir, &[], &[]);
        let lying = frame_claiming(&sh, len, 0, &end);
        fs::write(dir.join("snapshot.1"), [&sh[..], &lying[..]].concat()).unwrap();
        LARGEST.store(0, Ordering::Relaxed);
        let e = recovery_error(open(&dir));
        assert!(
            matches!(
                e,
                RecoveryError::SnapshotFrame {
                    offset: HEADER,
                    error: FormatError::FramePastEnd { len: l, left: 3 },
                    ..
                } if l == len as usize
            ),
            "{len}: {e:?}"
        );
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(largest < 8 << 20, "{len}: allocated {largest} bytes");

        // the log's second frame claims `len` bytes: a torn tail, cut
        write_store(&dir, std::slice::from_ref(&end), std::slice::from_ref(&put));
        let mut log = fs::read(dir.join("log.1")).unwrap();
        let at = log.len();
        log.extend(frame_claiming(&lh, len, at as u64, &put));
        fs::write(dir.join("log.1"), &log).unwrap();
        LARGEST.store(0, Ordering::Relaxed);
        let b = open(&dir).expect("a torn tail");
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(largest < 8 << 20, "{len}: allocated {largest} bytes");
        let torn = b.recovery().torn_tail.clone().expect("reported");
        assert_eq!(torn.offset, at as u64);
        assert!(matches!(torn.reason, FormatError::FramePastEnd { .. }));
        assert_eq!(b.dump().unwrap(), dump_of(&[(Space::Peers, b"k", b"v")]));
        drop(b);
        assert_eq!(fs::read(dir.join("log.1")).unwrap().len(), at, "cut");
    }
    // beyond the largest body: a bad length, not a read
    write_store(&dir, &[], &[]);
    let lying = frame_claiming(&sh, MAX_BODY + 1, 0, &end);
    fs::write(dir.join("snapshot.1"), [&sh[..], &lying[..]].concat()).unwrap();
    let e = recovery_error(open(&dir));
    assert!(
        matches!(
            e,
            RecoveryError::SnapshotFrame {
                error: FormatError::FrameLength { .. },
                ..
            }
        ),
        "{e:?}"
    );
}

/// Lying lengths inside checksum-valid bodies: an op count, a key length and a
/// value length far past the body. Typed errors, nothing allocated from them.
#[test]
fn lying_lengths_inside_valid_bodies_are_refused() {
    let _measure = measure();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let end = body(&[Op::End(0)]);
    let mut huge_count = Vec::new();
    varint(&mut huge_count, u64::MAX);
    huge_count.push(4);
    let mut huge_key = vec![1, 1, 0];
    varint(&mut huge_key, 1 << 40);
    huge_key.extend(b"key");
    let mut huge_value = vec![1, 1, 0, 1, b'k'];
    varint(&mut huge_value, u64::MAX);
    huge_value.extend(b"v");
    for bad in [huge_count, huge_key, huge_value] {
        // in the snapshot: refused
        write_store(&dir, &[bad.clone(), end.clone()], &[]);
        LARGEST.store(0, Ordering::Relaxed);
        let e = recovery_error(open(&dir));
        assert!(
            matches!(e, RecoveryError::SnapshotFrame { offset: HEADER, .. }),
            "{e:?}"
        );
        // in the log: written that way (valid checksums), so refused, not cut
        write_store(&dir, std::slice::from_ref(&end), std::slice::from_ref(&bad));
        let e = recovery_error(open(&dir));
        assert!(
            matches!(e, RecoveryError::UndecodableBatch { offset: HEADER, .. }),
            "{e:?}"
        );
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(largest < 8 << 20, "allocated {largest} bytes");
    }
}

/// A frame of 2^20 clear ops (one byte each on disk, a few dozen as decoded ops):
/// open takes them one at a time, never a list of them (which grew to 64 MiB for
/// this 1 MiB frame, and to tens of GiB near the largest body). In a log they all
/// apply; in a snapshot the first is refused. A body that does not decode is still
/// reported as such when a clear (snapshot) or an end marker (log) comes first.
#[test]
fn a_frame_of_a_million_clears_costs_only_its_bytes() {
    let _measure = measure();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let n = 1usize << 20;
    let clears = |tail: &[u8]| {
        let mut b = Vec::new();
        varint(&mut b, (n + usize::from(!tail.is_empty())) as u64);
        b.resize(b.len() + n, 3);
        b.extend_from_slice(tail);
        b
    };
    let end = body(&[Op::End(1)]);
    let put = body(&[Op::Put(Space::Peers, b"k", b"v")]);
    let snapshot = [put.clone(), end.clone()];

    // in the log: every clear applied, the store empty
    write_store(&dir, &snapshot, &[clears(&[]), put.clone()]);
    LARGEST.store(0, Ordering::Relaxed);
    let b = open(&dir).expect("a log of clears opens");
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < 4 << 20, "allocated {largest} bytes");
    assert_eq!(b.recovery().log_frames, 2);
    assert_eq!(b.dump().unwrap(), dump_of(&[(Space::Peers, b"k", b"v")]));
    drop(b);
    write_store(&dir, &snapshot, &[clears(&[])]);
    assert_eq!(open(&dir).unwrap().dump().unwrap(), Dump::default());

    // in the snapshot: not a put
    write_store(&dir, &[clears(&[]), end.clone()], &[]);
    LARGEST.store(0, Ordering::Relaxed);
    let e = recovery_error(open(&dir));
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < 4 << 20, "allocated {largest} bytes");
    assert!(
        matches!(
            e,
            RecoveryError::SnapshotRule {
                offset: HEADER,
                rule: SnapshotRule::NotAPut,
                ..
            }
        ),
        "{e:?}"
    );

    // an unknown op last: the body's error, not the rule's
    write_store(&dir, &[clears(&[9]), end.clone()], &[]);
    let e = recovery_error(open(&dir));
    assert!(
        matches!(
            e,
            RecoveryError::SnapshotFrame {
                offset: HEADER,
                error: FormatError::UnknownOp { tag: 9, .. },
                ..
            }
        ),
        "{e:?}"
    );
    write_store(&dir, &snapshot, &[clears(&[9])]);
    let e = recovery_error(open(&dir));
    assert!(
        matches!(
            e,
            RecoveryError::UndecodableBatch {
                offset: HEADER,
                error: FormatError::UnknownOp { tag: 9, .. },
                ..
            }
        ),
        "{e:?}"
    );
    // an end marker in a log, then bytes that do not decode: the body's error
    let mut end_then_junk = body(&[Op::End(0), Op::End(0)]);
    end_then_junk.push(7);
    write_store(&dir, &snapshot, &[end_then_junk]);
    let e = recovery_error(open(&dir));
    assert!(
        matches!(
            e,
            RecoveryError::UndecodableBatch {
                error: FormatError::TrailingBytes { count: 1 },
                ..
            }
        ),
        "{e:?}"
    );
    write_store(&dir, &snapshot, &[body(&[Op::End(0)])]);
    let e = recovery_error(open(&dir));
    assert!(matches!(e, RecoveryError::EndInLog { .. }), "{e:?}");
}

/// After a bad log frame, ~50,000 frame headers 20 bytes apart, each valid with
/// the file's salt (from its header) and claiming a body to the end of the file
/// whose checksum fails: the witness search would checksum ~n^2/40 bytes (25 GB
/// here, a hang). It stops at twice the tail and refuses the log, naming the bad
/// frame.
#[test]
fn forged_frame_headers_after_a_bad_frame_cost_a_linear_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let put = body(&[Op::Put(Space::Peers, b"k", b"v")]);
    let (_, mut log) = write_store(&dir, &[body(&[Op::End(0)])], std::slice::from_ref(&put));
    let lh = log[..HEADER].to_vec();
    let bad = log.len();
    log.extend(b"torn");
    let headers = 50_000;
    let len = log.len() + headers * 20;
    while log.len() < len {
        let at = log.len();
        let claim = (len - at - 20) as u32;
        // a witness by its synced_to, if its body checked; the body checksum of
        // the 4 bytes "junk", never the claimed body's
        let header = &frame_claiming(&lh, claim, at as u64, b"junk")[..20];
        log.extend_from_slice(header);
    }
    fs::write(dir.join("log.1"), &log).unwrap();
    let e = recovery_error(open(&dir));
    assert!(
        matches!(
            e,
            RecoveryError::TailScanLimit {
                offset,
                error: FormatError::FrameHeaderChecksum,
                tail,
                ..
            } if offset == bad && tail == len - bad
        ),
        "{e:?}"
    );
    assert_eq!(fs::read(dir.join("log.1")).unwrap(), log, "nothing cut");
}

/// A snapshot cut at every offset is refused; a log cut at every offset opens
/// with a prefix of its batches, the cut reported as a torn tail unless it falls
/// on a frame boundary.
#[test]
fn cuts_at_every_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = open(&dir).unwrap();
    for i in 0..6u8 {
        let mut batch = WriteBatch::new();
        batch.put(Space::Peers, vec![b'a' + i], vec![i; 9]);
        b.write(batch, Durability::Buffered).unwrap();
    }
    b.compact().unwrap();
    let mut prefixes = vec![b.dump().unwrap()];
    for i in 0..5u8 {
        let mut batch = WriteBatch::new();
        batch.delete(Space::Peers, vec![b'a' + i]);
        batch.put(Space::Meta, b"n".to_vec(), vec![i]);
        b.write(batch, Durability::Sync).unwrap();
        prefixes.push(b.dump().unwrap());
    }
    let g = b.stats().generation;
    drop(b);
    let (snap_path, log_path) = (
        dir.join(format!("snapshot.{g}")),
        dir.join(format!("log.{g}")),
    );
    let (snap, log) = (fs::read(&snap_path).unwrap(), fs::read(&log_path).unwrap());

    for cut in 0..snap.len() {
        fs::write(&snap_path, &snap[..cut]).unwrap();
        fs::write(&log_path, &log).unwrap();
        let e = recovery_error(open(&dir));
        assert!(
            matches!(
                e,
                RecoveryError::Header { .. }
                    | RecoveryError::SnapshotFrame { .. }
                    | RecoveryError::SnapshotTruncated { .. }
            ),
            "snapshot cut at {cut}: {e:?}"
        );
    }
    fs::write(&snap_path, &snap).unwrap();
    let mut boundaries = 0;
    for cut in HEADER..=log.len() {
        fs::write(&log_path, &log[..cut]).unwrap();
        let b = open(&dir).unwrap_or_else(|e| panic!("log cut at {cut}: {e:?}"));
        let r = b.recovery().clone();
        let frames = r.log_frames as usize;
        assert_eq!(b.dump().unwrap(), prefixes[frames], "log cut at {cut}");
        match &r.torn_tail {
            None => boundaries += 1,
            Some(t) => assert_eq!(t.bytes + t.offset, cut as u64, "log cut at {cut}"),
        }
    }
    assert_eq!(
        boundaries,
        prefixes.len(),
        "one clean cut per frame boundary"
    );
}

/// A hand-made snapshot (keys out of order, an empty key, empty values, several
/// spaces, the end frame alone) and a log that deletes, repeats and re-puts keys:
/// open replays exactly that; writes, a reopen and a compaction keep it.
#[test]
fn handmade_snapshot_and_log_replay_as_documented() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let (p, m, q) = (Space::Peers, Space::Meta, Space::ByQuality);
    let snapshot = vec![
        body(&[
            Op::Put(p, b"m", b"1"),
            Op::Put(p, b"c", b"2"),
            Op::Put(p, b"", b"empty key"),
        ]),
        body(&[
            Op::Put(p, b"a", b""),
            Op::Put(m, b"z", b"meta"),
            Op::Put(q, b"q", b""),
        ]),
        body(&[Op::Put(p, b"b", b"3")]),
        body(&[Op::End(7)]),
    ];
    let log = vec![
        body(&[
            Op::Delete(p, b"m"),
            Op::Put(p, b"m", b"again"),
            Op::Delete(p, b"c"),
        ]),
        body(&[
            Op::Put(p, b"x", b"1"),
            Op::Put(p, b"x", b"2"),
            Op::Delete(p, b"nope"),
        ]),
        body(&[
            Op::Delete(p, b""),
            Op::Put(m, b"z", b""),
            Op::Delete(q, b"q"),
        ]),
        body(&[Op::Put(q, b"q", b"back")]),
    ];
    write_store(&dir, &snapshot, &log);
    let expected = dump_of(&[
        (p, b"m", b"again"),
        (p, b"a", b""),
        (p, b"b", b"3"),
        (p, b"x", b"2"),
        (m, b"z", b""),
        (q, b"q", b"back"),
    ]);
    let b = open(&dir).unwrap();
    assert_eq!(b.recovery().snapshot_entries, 7);
    assert_eq!(b.recovery().log_frames, 4);
    assert_eq!(b.dump().unwrap(), expected);
    for (space, key) in [(p, &b"m"[..]), (p, b"a"), (p, b"c"), (p, b""), (q, b"q")] {
        assert_eq!(
            b.get(space, key).unwrap().as_ref(),
            expected[space.index()].get(key),
            "{space:?} {key:?}"
        );
    }
    let mut batch = WriteBatch::new();
    batch.put(p, b"c".to_vec(), b"new".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    let mut expected = expected;
    expected[p.index()].insert(b"c".to_vec(), b"new".to_vec());
    drop(b);
    let b = open(&dir).unwrap();
    assert_eq!(b.dump().unwrap(), expected);
    b.compact().unwrap();
    drop(b);
    assert_eq!(
        open(&dir).unwrap().dump().unwrap(),
        expected,
        "after compaction"
    );

    // a key twice in a snapshot, adjacent or out of order, in one frame or two
    for frames in [
        vec![body(&[
            Op::Put(p, b"a", b"1"),
            Op::Put(p, b"a", b"2"),
            Op::End(2),
        ])],
        vec![
            body(&[Op::Put(p, b"b", b"1"), Op::Put(p, b"c", b"1")]),
            body(&[Op::Put(p, b"a", b"1"), Op::Put(p, b"b", b"2"), Op::End(4)]),
        ],
    ] {
        let dir = tmp.path().join(format!("dup{}", frames.len()));
        write_store(&dir, &frames, &[]);
        let e = recovery_error(open(&dir));
        assert!(
            matches!(
                e,
                RecoveryError::SnapshotRule {
                    rule: SnapshotRule::DuplicateKey(Space::Peers),
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

/// Bodies longer than the stream's read step (1 MiB) and its buffer: read whole
/// across steps in the snapshot and the log, and a cut in a later step of the last
/// frame is a torn tail that reports exactly the bytes present.
#[test]
fn bodies_longer_than_a_read_step() {
    let _measure = measure();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let big = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    };
    let b = open(&dir).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"snap".to_vec(), big((5 << 19) + 7, 1));
    b.write(batch, Durability::Sync).unwrap();
    b.compact().unwrap();
    let log_at = b.stats().log_bytes;
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"log".to_vec(), big((9 << 18) + 3, 2));
    b.write(batch, Durability::Sync).unwrap();
    let expected = b.dump().unwrap();
    let g = b.stats().generation;
    drop(b);
    let b = open(&dir).unwrap();
    assert_eq!(b.dump().unwrap(), expected);
    assert!(b.recovery().torn_tail.is_none());
    drop(b);

    let log_path = dir.join(format!("log.{g}"));
    let log = fs::read(&log_path).unwrap();
    let body_len = log.len() - log_at as usize - 20;
    for present in [
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        (2 << 20) + 5,
        body_len - 1,
    ] {
        fs::write(&log_path, &log[..log_at as usize + 20 + present]).unwrap();
        let b = open(&dir).unwrap();
        let torn = b.recovery().torn_tail.clone().expect("torn");
        assert_eq!(torn.offset, log_at);
        assert_eq!(
            torn.reason,
            FormatError::FramePastEnd {
                len: body_len,
                left: present
            },
            "{present} bytes present"
        );
        assert_eq!(b.dump().unwrap()[0].len(), 1, "only the snapshot's key");
    }
}
