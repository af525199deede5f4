//! Key layout of the four spaces and the meta values.
//!
//! | space | key | value |
//! |---|---|---|
//! | peers | peer_id | format byte + postcard(record) |
//! | by_last_seen | big-endian u64 last_seen + peer_id | score hint: quality score, success, reliability (u8 each), penalty (u32 BE), blacklist tag (u8: 0 none, 1 some), blacklist_until (u64 BE; 0 when none) |
//! | by_quality | u8 quality score + peer_id | empty |
//! | meta | name | see the constants below |

use crate::backend::Space;
use crate::schema::PeerRecord;
use crate::scoring::ScoreHint;

/// The schema version this build writes and reads.
///
/// - 1: first release.
/// - 2: the by_last_seen score hint tags `blacklist_until` (schema 1 wrote
///   `Some(0)` like `None`); opening migrates 0 and 1.
pub const SCHEMA_VERSION: u32 = 3;

/// meta `schema_version`: u32 big-endian.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// meta `key_check`: a sealed constant (nonce + ciphertext + tag).
pub const META_KEY_CHECK: &[u8] = b"key_check";
/// meta `counters`: peer count then record bytes, two u64 big-endian.
pub const META_COUNTERS: &[u8] = b"counters";
/// meta `last_cleanup`: u64 big-endian ms.
pub const META_LAST_CLEANUP: &[u8] = b"last_cleanup";
/// meta `quarantine/<peers key>`: the raw bytes of a record `repair` moved aside.
pub const META_QUARANTINE_PREFIX: &[u8] = b"quarantine/";

/// Width of the by_last_seen key prefix.
pub const LAST_SEEN_WIDTH: usize = 8;
/// Width of the by_quality key prefix.
pub const QUALITY_WIDTH: usize = 1;

pub fn last_seen_key(last_seen: u64, peer_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(LAST_SEEN_WIDTH + peer_id.len());
    key.extend_from_slice(&last_seen.to_be_bytes());
    key.extend_from_slice(peer_id);
    key
}

pub fn quality_key(score: u8, peer_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(QUALITY_WIDTH + peer_id.len());
    key.push(score);
    key.extend_from_slice(peer_id);
    key
}

/// The prefix width of an index space's keys.
pub fn prefix_width(space: Space) -> usize {
    match space {
        Space::ByLastSeen => LAST_SEEN_WIDTH,
        _ => QUALITY_WIDTH,
    }
}

/// `(last_seen, peer_id)` of a by_last_seen key.
pub fn split_last_seen_key(key: &[u8]) -> Option<(u64, &[u8])> {
    if key.len() <= LAST_SEEN_WIDTH {
        return None;
    }
    let (ts, id) = key.split_at(LAST_SEEN_WIDTH);
    Some((u64::from_be_bytes(ts.try_into().ok()?), id))
}

/// `(score, peer_id)` of a by_quality key.
pub fn split_quality_key(key: &[u8]) -> Option<(u8, &[u8])> {
    let (&score, id) = key.split_first()?;
    if id.is_empty() {
        return None;
    }
    Some((score, id))
}

/// The two index entries of a record: `(space, key, value)`. A by_last_seen value
/// is the record's `ScoreHint` (what ranking needs besides the time); a by_quality
/// value is empty.
pub fn index_entries(record: &PeerRecord) -> [(Space, Vec<u8>, Vec<u8>); 2] {
    let id = record.peer_id.as_bytes();
    let hint = ScoreHint::of(record);
    [
        (
            Space::ByLastSeen,
            last_seen_key(record.last_seen, id),
            hint.encode(),
        ),
        (
            Space::ByQuality,
            quality_key(hint.quality_score, id),
            Vec::new(),
        ),
    ]
}

/// The store's running totals, kept in meta and updated in every batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Keys in the peers space.
    pub peers: u64,
    /// Sum of the stored value lengths in the peers space.
    pub bytes: u64,
}

impl Counters {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.peers.to_be_bytes());
        v.extend_from_slice(&self.bytes.to_be_bytes());
        v
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 16 {
            return None;
        }
        Some(Counters {
            peers: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            bytes: u64::from_be_bytes(bytes[8..].try_into().ok()?),
        })
    }
}

pub fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

pub fn decode_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_sort_by_value_then_id() {
        assert!(last_seen_key(1, b"zz") < last_seen_key(2, b"aa"));
        assert!(
            last_seen_key(256, b"a") > last_seen_key(255, b"z"),
            "big-endian sorts numerically"
        );
        assert!(quality_key(9, b"z") < quality_key(10, b"a"));
        assert_eq!(
            split_last_seen_key(&last_seen_key(77, b"id")),
            Some((77, &b"id"[..]))
        );
        assert_eq!(
            split_quality_key(&quality_key(5, b"id")),
            Some((5, &b"id"[..]))
        );
        assert_eq!(split_last_seen_key(&[0; 8]), None);
        assert_eq!(split_quality_key(&[1]), None);
        let c = Counters {
            peers: 3,
            bytes: 1 << 40,
        };
        assert_eq!(Counters::decode(&c.encode()), Some(c));
        assert_eq!(Counters::decode(&[0; 15]), None);
    }
}
