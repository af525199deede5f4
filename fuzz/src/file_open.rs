//! The `file_open` fuzz target: arbitrary `snapshot.G` / `log.G` files for the
//! file backend ([`FileInput`]), with their checksums fixed up on request
//! ([`fix_checksums`]), and the read checks of an opened store
//! ([`check_backend_reads`]).

use std::ops::ControlFlow;

use peerbook::backend::{Backend, Direction, KeyRange, Space};
use peerbook::{CandidateQuery, ExportOptions, ManualClock, PeerBook, PeerQuery};
use peerbook_file::{FileBackend, FileOptions};

use crate::{options, temp_dir, START_MS};

/// CRC-32C (Castagnoli), to fix up checksums of fuzzed files: the file backend's own.
pub use peerbook_file::testing::crc32c_append;

/// Recompute the header CRC and every frame's checksums of a file of `generation`
/// in place (the frames are walked by their own `body_len` fields), so mutations
/// reach the body decoder instead of dying at a checksum.
pub fn fix_checksums(file: &mut [u8], generation: u64) {
    // Format version 1: a 24-byte header, frames seeded by the generation; version
    // 2 (and anything else): a 40-byte header whose 16-byte salt seeds them too.
    let v1 = file.len() >= 12 && file[8..12] == 1u32.to_le_bytes();
    let (header, salt_end) = if v1 { (24, 20) } else { (40, 36) };
    if file.len() >= header {
        let crc = crc32c_append(0, &file[0..salt_end]);
        file[salt_end..header].copy_from_slice(&crc.to_le_bytes());
    }
    let mut seed = crc32c_append(0, &generation.to_le_bytes());
    if file.len() >= header {
        seed = crc32c_append(seed, &file[20..salt_end]);
    }
    let mut off = header;
    while off + 20 <= file.len() {
        let len = u32::from_le_bytes(file[off..off + 4].try_into().expect("4 bytes")) as usize;
        let body_start = off + 20;
        let body_end = body_start.saturating_add(len);
        if body_end <= file.len() {
            let crc = crc32c_append(0, &file[body_start..body_end]);
            file[off + 12..off + 16].copy_from_slice(&crc.to_le_bytes());
        }
        let head = crc32c_append(seed, &file[off..off + 16]);
        file[off + 16..off + 20].copy_from_slice(&head.to_le_bytes());
        if len == 0 || body_end > file.len() {
            break;
        }
        off = body_end;
    }
}

/// The input of `file_open`, parsed from raw bytes (a layout simple enough to write
/// seeds by hand):
///
/// - byte 0: flags; bit 0: fix up checksums ([`fix_checksums`]); bit 1: also write
///   `snapshot.G+1` / `log.G+1` copies of the two files (a second generation);
///   bit 2: write no `log.G`; bit 3: open a `PeerBook` on the backend too;
/// - byte 1: the generation `G` = 1 + byte % 3;
/// - bytes 2..6: `u32` LE length `n` of the snapshot (cut to what remains);
/// - `n` bytes: `snapshot.G`; the rest: `log.G`.
pub struct FileInput {
    /// Byte 0.
    pub flags: u8,
    /// `G`.
    pub generation: u64,
    /// The bytes of `snapshot.G`.
    pub snapshot: Vec<u8>,
    /// The bytes of `log.G`.
    pub log: Vec<u8>,
}

impl FileInput {
    /// Parse (`None` when shorter than 6 bytes).
    pub fn parse(data: &[u8]) -> Option<Self> {
        if data.len() < 6 {
            return None;
        }
        let n = u32::from_le_bytes(data[2..6].try_into().ok()?) as usize;
        let rest = &data[6..];
        let n = n.min(rest.len());
        Some(FileInput {
            flags: data[0],
            generation: 1 + u64::from(data[1] % 3),
            snapshot: rest[..n].to_vec(),
            log: rest[n..].to_vec(),
        })
    }

    /// The inverse of [`parse`](Self::parse) (for writing seeds).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags, (self.generation.saturating_sub(1) % 3) as u8];
        out.extend_from_slice(&(self.snapshot.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.snapshot);
        out.extend_from_slice(&self.log);
        out
    }
}

/// Arbitrary `snapshot.G` / `log.G` files: `FileBackend::open` never panics; when it
/// opens, every space scans the same both ways, point reads agree with scans, and
/// (flag bit 3) a `PeerBook` on it opens or fails cleanly, and its reads work.
pub fn file_open(data: &[u8]) {
    let Some(input) = FileInput::parse(data) else {
        return;
    };
    let tmp = temp_dir();
    let dir = tmp.path().join("book");
    std::fs::create_dir_all(&dir).expect("create the book directory");
    let g = input.generation;
    let mut files = vec![(g, input.snapshot.clone(), input.log.clone())];
    if input.flags & 2 != 0 {
        files.push((g + 1, input.snapshot.clone(), input.log.clone()));
    }
    for (gen, mut snapshot, mut log) in files {
        if input.flags & 1 != 0 {
            fix_checksums(&mut snapshot, gen);
            fix_checksums(&mut log, gen);
        }
        std::fs::write(dir.join(format!("snapshot.{gen}")), &snapshot).expect("write snapshot");
        if input.flags & 4 == 0 {
            std::fs::write(dir.join(format!("log.{gen}")), &log).expect("write log");
        }
    }
    let Ok(backend) = FileBackend::open(&dir, FileOptions::default()) else {
        return;
    };
    check_backend_reads(&backend);
    if input.flags & 8 != 0 {
        let clock = ManualClock::new(START_MS);
        if let Ok(book) = PeerBook::open(backend, options(&clock)) {
            let _ = book.verify();
            let _ = book.get_storage_stats();
            let _ = book.query_peers(&PeerQuery::default());
            let _ = book.get_reconnection_candidates(&CandidateQuery::default());
            let _ = book.export_data(ExportOptions::default());
            if book.repair().is_ok() {
                let report = book.verify().expect("verify after repair");
                assert!(report.is_clean(), "repair left {report:?}");
            }
        }
    }
}

/// Every space scans to the same entries forward and backward, in strictly
/// ascending / descending key order, and `get` agrees with the scan.
pub fn check_backend_reads(backend: &impl Backend) {
    for space in Space::ALL {
        let mut forward = Vec::new();
        backend
            .scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
                forward.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            })
            .expect("forward scan of an opened store");
        let mut backward = Vec::new();
        backend
            .scan(space, KeyRange::all(), Direction::Reverse, &mut |k, v| {
                backward.push((k.to_vec(), v.to_vec()));
                ControlFlow::Continue(())
            })
            .expect("backward scan of an opened store");
        assert!(forward.windows(2).all(|w| w[0].0 < w[1].0), "scan order");
        backward.reverse();
        assert_eq!(forward, backward, "forward and backward scans differ");
        for (k, v) in forward.iter().take(16) {
            assert_eq!(
                backend.get(space, k).expect("get").as_ref(),
                Some(v),
                "get disagrees with scan"
            );
        }
    }
}
