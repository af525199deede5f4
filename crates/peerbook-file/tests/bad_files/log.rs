//! Damaged log frames: damage to a frame that a later sync covered is corruption
//! naming its offset; a garbage or half-written tail is truncated and reported; a
//! damaged frame followed by valid frames is judged by the syncs; a frame forged
//! inside a value does not pass as a witness.

use std::fs;

use peerbook::backend::{Backend, Durability, Space, WriteBatch};
use peerbook::conformance::Rng;
use peerbook_file::testing::crc32c;
use peerbook_file::RecoveryError;

use crate::support::{
    corrupted, dump, frame_offsets, keys, open, put, store_with, store_with_log, write_flipped,
    FRAME_HEADER,
};

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
