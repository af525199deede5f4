//! Random damage (flipped bits, cuts, appended and overwritten bytes, huge frame
//! lengths) to the log or the snapshot: open succeeds or reports `Corrupted`, never
//! anything else and never a panic.

use std::fs;

use peerbook::backend::{BackendError, Durability};
use peerbook::conformance::Rng;
use peerbook_file::FileBackend;

use crate::support::{dump, open, options, put, HEADER};

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
