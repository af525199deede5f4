//! Key layout of the four spaces and the meta values.
//!
//! | space | key | value |
//! |---|---|---|
//! | peers | peer_id | format byte + postcard(record) |
//! | by_last_seen | big-endian u64 `!last_seen` (bitwise not) + every byte of peer_id bitwise-negated + `0xFF` | score hint: quality score, success, reliability (u8 each), penalty (u32 BE), blacklist tag (u8: 0 none, 1 some), blacklist_until (u64 BE; 0 when none) |
//! | by_quality, quality keys | u8 quality score (0..=100) + peer_id | empty |
//! | by_quality, rank region (schema 5) | [`RANK_TAG`] (`0xFF`) + u8 run ([`ScoreHint::rank_byte`], 0..=100) + the peer's by_last_seen key | the score hint, as in by_last_seen |
//! | meta | name | see the constants below |
//!
//! by_last_seen sorts newest first (schema 4): a forward walk yields the entries by
//! last_seen descending, ties by peer id descending, which is what the hot walks
//! (reconnection candidates, `query_peers` newest first) read; the oldest-first walks
//! (LRU eviction, oldest first queries) are the reverse ones. The id part reverses
//! the id order, prefixes included (`"abc"` sorts before `"ab"`): a peer id is
//! printable ASCII (0x21..=0x7E, see [`crate::schema::PeerId`]), never 0x00, so a
//! negated id byte is never 0xFF and the terminator sorts after every one of them.
//!
//! The rank region (schema 5) shares by_quality with the quality keys and sorts
//! after every one of them: a quality key starts with a score of at most 100, so
//! the keys from [`QUALITY_END`] up are rank keys (or damage), never quality keys.
//! A rank key is the run of the peer's score hint (the best time-independent part
//! of the score first), then its by_last_seen key: within a run, newest first.
//! Code that reads quality keys bounds its range by [`QUALITY_END`].

use std::ops::Bound;

use crate::backend::Space;
use crate::schema::PeerRecord;
use crate::scoring::ScoreHint;

/// The schema version this build writes and reads.
///
/// - 1: first release.
/// - 2: the by_last_seen score hint tags `blacklist_until` (schema 1 wrote
///   `Some(0)` like `None`); opening migrates 0 and 1.
/// - 3: records of format 2 (addresses, metadata).
/// - 4: by_last_seen keys sort newest first (`!last_seen`, the negated id and a
///   terminator); schema 3 and older wrote `last_seen` + id, oldest first.
/// - 5: the rank index: one entry per record in the rank region of by_quality
///   (docs/format.md, "The rank region"); opening migrates 4 and older.
pub const SCHEMA_VERSION: u32 = 5;

/// meta `schema_version`: u32 big-endian.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// meta `migrating`: u32 big-endian, the version a migration in progress started
/// from; absent otherwise. A migration's first write puts it with `schema_version`
/// = [`SCHEMA_VERSION`], its last write (after every step) deletes it: while it is
/// there the index may be in an older layout or partly deleted, so the version
/// already says the new one and an older peerbook refuses the store rather than
/// misread it, and an open that finds the marker runs the migration again from the
/// version it names (every step is idempotent).
pub const META_MIGRATING: &[u8] = b"migrating";
/// meta `key_check`: a sealed constant (nonce + ciphertext + tag).
pub const META_KEY_CHECK: &[u8] = b"key_check";
/// meta `counters`: peer count then record bytes, two u64 big-endian.
pub const META_COUNTERS: &[u8] = b"counters";
/// meta `last_cleanup`: u64 big-endian ms.
pub const META_LAST_CLEANUP: &[u8] = b"last_cleanup";
/// meta `quarantine/<peers key>`: the raw bytes of a record `repair` moved aside.
pub const META_QUARANTINE_PREFIX: &[u8] = b"quarantine/";

/// Width of the by_last_seen key prefix (the negated time).
pub const LAST_SEEN_WIDTH: usize = 8;
/// The last byte of a by_last_seen key: sorts after every negated id byte.
pub const LAST_SEEN_TERMINATOR: u8 = 0xFF;
/// Width of the by_quality key prefix.
pub const QUALITY_WIDTH: usize = 1;

/// The by_last_seen key of `peer_id` seen at `last_seen`: newest first, and among
/// equal times the greater id first.
pub fn last_seen_key(last_seen: u64, peer_id: &[u8]) -> Vec<u8> {
    // One allocation of the key's size: the suffix written in place, not built in
    // a `Vec` of its own that the terminator's push then grows (a realloc and a
    // copy, about 650 instructions a key, a key or two in every record write).
    let mut key = Vec::with_capacity(LAST_SEEN_WIDTH + peer_id.len() + 1);
    key.extend_from_slice(&last_seen_prefix(last_seen));
    push_last_seen_suffix(&mut key, peer_id);
    key
}

/// The by_last_seen key schemas 1 to 3 wrote: `last_seen` big-endian + the id,
/// oldest first. Nothing reads it any more (the 3 -> 4 migration deletes every
/// by_last_seen key); tests build older books with it.
#[cfg(any(test, feature = "conformance"))]
pub fn legacy_last_seen_key(last_seen: u64, peer_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(LAST_SEEN_WIDTH + peer_id.len());
    key.extend_from_slice(&last_seen.to_be_bytes());
    key.extend_from_slice(peer_id);
    key
}

/// The first [`LAST_SEEN_WIDTH`] bytes of every by_last_seen key of `last_seen`.
pub fn last_seen_prefix(last_seen: u64) -> [u8; LAST_SEEN_WIDTH] {
    (!last_seen).to_be_bytes()
}

/// The part of a by_last_seen key after the time: the negated id, then the
/// terminator.
pub fn last_seen_suffix(peer_id: &[u8]) -> Vec<u8> {
    let mut suffix = Vec::with_capacity(peer_id.len() + 1);
    push_last_seen_suffix(&mut suffix, peer_id);
    suffix
}

/// [`last_seen_suffix`] appended to `out`.
fn push_last_seen_suffix(out: &mut Vec<u8>, peer_id: &[u8]) {
    out.extend(peer_id.iter().map(|b| !b));
    out.push(LAST_SEEN_TERMINATOR);
}

/// The peer id a by_last_seen key suffix (see [`last_seen_suffix`]) encodes, if
/// well formed: a non-empty negated id, then the terminator.
pub fn peer_id_of_last_seen_suffix(suffix: &[u8]) -> Option<Vec<u8>> {
    match suffix.split_last() {
        Some((&LAST_SEEN_TERMINATOR, negated))
            if !negated.is_empty() && !negated.contains(&LAST_SEEN_TERMINATOR) =>
        {
            Some(negated.iter().map(|b| !b).collect())
        }
        _ => None,
    }
}

/// The by_last_seen key range of the entries seen at or after `since`
/// (`None`: every entry): a prefix of the index, since it sorts newest first.
pub fn last_seen_since(since: Option<u64>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    // seen at or after `since` <=> negated time <= !since <=> key < prefix(!since + 1)
    let upper = match since.map(|t| !t) {
        Some(top) if top < u64::MAX => Bound::Excluded((top + 1).to_be_bytes().to_vec()),
        _ => Bound::Unbounded,
    };
    (Bound::Unbounded, upper)
}

pub fn quality_key(score: u8, peer_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(QUALITY_WIDTH + peer_id.len());
    key.push(score);
    key.extend_from_slice(peer_id);
    key
}

/// The index spaces, in the order verify, repair and the corrupt-record delete go
/// through them.
pub const INDEX_SPACES: [Space; 2] = [Space::ByLastSeen, Space::ByQuality];

/// The first byte of a rank index key (schema 5). The rank index lives in the
/// by_quality space, after every quality key: a quality key starts with the quality
/// score, at most 100, so every first byte from [`QUALITY_END`] up is free.
pub const RANK_TAG: u8 = 0xFF;
/// The exclusive upper bound of the quality keys in the by_quality space: the
/// rank entries sort at and after it.
pub const QUALITY_END: [u8; 1] = [101];
/// Width of a rank key's prefix: the tag and the run byte.
pub const RANK_PREFIX_WIDTH: usize = 2;

/// The rank index key (schema 5) of `peer_id` seen at `last_seen` whose hint sorts
/// in run `run` ([`ScoreHint::rank_byte`]): the tag, the run, then the by_last_seen
/// key, so a run sorts newest first and equal times by id descending.
pub fn rank_key(run: u8, last_seen: u64, peer_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(RANK_PREFIX_WIDTH + LAST_SEEN_WIDTH + peer_id.len() + 1);
    key.extend_from_slice(&[RANK_TAG, run]);
    key.extend_from_slice(&last_seen_prefix(last_seen));
    push_last_seen_suffix(&mut key, peer_id);
    key
}

/// `(run, last_seen, key suffix)` of a rank key, the suffix still encoded as in a
/// by_last_seen key; `None` for a key that is not one (a quality key, or damaged).
pub fn split_rank_key_raw(key: &[u8]) -> Option<(u8, u64, &[u8])> {
    match key {
        [RANK_TAG, run, rest @ ..] if *run <= 100 => {
            let (last_seen, suffix) = split_last_seen_key_raw(rest)?;
            Some((*run, last_seen, suffix))
        }
        _ => None,
    }
}

/// Tells the index keys of one peer whatever time, score or run they hold: how
/// the entries of a record that cannot tell them (a corrupt one) are found.
pub struct KeysOf<'a> {
    peer_id: &'a [u8],
    /// [`last_seen_suffix`] of the peer: what its by_last_seen and rank keys end with.
    suffix: Vec<u8>,
}

impl<'a> KeysOf<'a> {
    pub fn new(peer_id: &'a [u8]) -> Self {
        KeysOf {
            peer_id,
            suffix: last_seen_suffix(peer_id),
        }
    }

    /// Whether `key`, a key of the index `space`, is one of the peer's: in
    /// by_last_seen, its suffix after the time; in by_quality, its id after the
    /// score (a quality key) or, after the tag, the run and the time, its suffix
    /// (a rank key).
    pub fn holds(&self, space: Space, key: &[u8]) -> bool {
        let ends_with =
            |width: usize, tail: &[u8]| key.len() == width + tail.len() && key[width..] == *tail;
        match space {
            Space::ByLastSeen => ends_with(LAST_SEEN_WIDTH, &self.suffix),
            _ => {
                ends_with(QUALITY_WIDTH, self.peer_id)
                    || (key.first() == Some(&RANK_TAG)
                        && ends_with(RANK_PREFIX_WIDTH + LAST_SEEN_WIDTH, &self.suffix))
            }
        }
    }
}

/// `(last_seen, key suffix)` of a by_last_seen key, the suffix still encoded (see
/// [`last_seen_suffix`]; suffixes sort in the reverse order of their ids). For walks
/// that decode the id only for the entries they keep.
pub fn split_last_seen_key_raw(key: &[u8]) -> Option<(u64, &[u8])> {
    if key.len() <= LAST_SEEN_WIDTH {
        return None;
    }
    let (ts, suffix) = key.split_at(LAST_SEEN_WIDTH);
    Some((!u64::from_be_bytes(ts.try_into().ok()?), suffix))
}

/// `(last_seen, peer_id)` of a by_last_seen key, if well formed.
pub fn split_last_seen_key(key: &[u8]) -> Option<(u64, Vec<u8>)> {
    let (last_seen, suffix) = split_last_seen_key_raw(key)?;
    Some((last_seen, peer_id_of_last_seen_suffix(suffix)?))
}

/// `(score, peer_id)` of a by_quality quality key; `None` for a key of the rank
/// region (at or after [`QUALITY_END`]) or a damaged one.
pub fn split_quality_key(key: &[u8]) -> Option<(u8, &[u8])> {
    let (&score, id) = key.split_first()?;
    if id.is_empty() || score >= QUALITY_END[0] {
        return None;
    }
    Some((score, id))
}

/// True when `key`, a by_quality key, is a quality key: it sorts before
/// [`QUALITY_END`] (the rank region sorts at and after it).
pub fn is_quality_key(key: &[u8]) -> bool {
    key < QUALITY_END.as_slice()
}

/// The index entries of a record: `(space, key, value)`. A by_last_seen value is
/// the record's `ScoreHint` (what ranking needs besides the time); a by_quality
/// quality key's value is empty; the rank entry (schema 5, in by_quality) holds
/// the hint too.
pub fn index_entries(record: &PeerRecord) -> [(Space, Vec<u8>, Vec<u8>); 3] {
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
        (
            Space::ByQuality,
            rank_key(hint.rank_byte(), record.last_seen, id),
            hint.encode(),
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
        assert!(quality_key(9, b"z") < quality_key(10, b"a"));
        assert_eq!(
            split_quality_key(&quality_key(5, b"id")),
            Some((5, &b"id"[..]))
        );
        assert_eq!(split_quality_key(&[1]), None);
        let c = Counters {
            peers: 3,
            bytes: 1 << 40,
        };
        assert_eq!(Counters::decode(&c.encode()), Some(c));
        assert_eq!(Counters::decode(&[0; 15]), None);
    }

    /// Rank keys sort by run (best base first), then as by_last_seen keys (newest
    /// first, equal times by id descending), after every quality key, and split
    /// back; keys that are not rank keys do not split.
    #[test]
    fn rank_keys_sort_by_run_then_newest_and_split_back() {
        let ordered: &[(u8, u64, &[u8])] = &[
            (0, u64::MAX, b"a"),
            (0, 5, b"b"),
            (0, 5, b"a"),
            (0, 0, b"z"),
            (1, u64::MAX, b"z"),
            (100, 9, b"a"),
        ];
        for pair in ordered.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                rank_key(a.0, a.1, a.2) < rank_key(b.0, b.1, b.2),
                "{a:?} < {b:?}"
            );
        }
        for &(run, ls, id) in ordered {
            let key = rank_key(run, ls, id);
            let (r, l, suffix) = split_rank_key_raw(&key).expect("a rank key");
            assert_eq!((r, l), (run, ls));
            assert_eq!(peer_id_of_last_seen_suffix(suffix).as_deref(), Some(id));
            assert!(quality_key(100, &[0x7e; 200]).as_slice() < QUALITY_END.as_slice());
            assert!(QUALITY_END.as_slice() < key.as_slice());
        }
        assert_eq!(split_rank_key_raw(&quality_key(100, b"a")), None);
        assert_eq!(
            split_quality_key(&rank_key(0, 5, b"a")),
            None,
            "not a quality key"
        );
        assert_eq!(split_quality_key(&[101, b'a']), None, "at QUALITY_END");
        assert!(!is_quality_key(&rank_key(0, 0, b"!")));
        assert!(!is_quality_key(&QUALITY_END));
        assert!(is_quality_key(&quality_key(100, &[0xFF; 8])));
        assert_eq!(
            split_rank_key_raw(&[RANK_TAG, 101, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            None
        );
        assert_eq!(split_rank_key_raw(&[RANK_TAG, 0, 0, 0]), None);
        assert_eq!(split_rank_key_raw(&[RANK_TAG]), None);
    }

    /// A record's three index entries, and the keys [`KeysOf`] finds for a peer:
    /// each of its entries, whatever the time, score or run, never another id's
    /// (a prefix of it, or one it prefixes) nor a key of the other space.
    #[test]
    fn index_entries_and_the_keys_of_a_peer() {
        let record = |id: &[u8]| PeerRecord {
            peer_id: crate::schema::PeerId::from_bytes(id).unwrap(),
            display_name: String::new(),
            public_key: "pk".into(),
            shared_secret: None,
            last_seen: 77,
            last_connected: 0,
            last_known_ip: None,
            ice_servers: Vec::new(),
            cached_candidates: Vec::new(),
            connection_quality: Default::default(),
            reconnection_attempts: 2,
            blacklist_until: None,
            addresses: Vec::new(),
            metadata: Default::default(),
        };
        let record_ab = record(b"ab");
        let hint = ScoreHint::of(&record_ab);
        assert_eq!(hint.rank_byte(), 70 + 10, "two attempts: base -10");
        let entries = index_entries(&record_ab);
        assert_eq!(
            entries,
            [
                (Space::ByLastSeen, last_seen_key(77, b"ab"), hint.encode()),
                (
                    Space::ByQuality,
                    quality_key(hint.quality_score, b"ab"),
                    vec![]
                ),
                (
                    Space::ByQuality,
                    rank_key(hint.rank_byte(), 77, b"ab"),
                    hint.encode()
                ),
            ]
        );
        let of = KeysOf::new(b"ab");
        for (space, key, _) in &entries {
            assert!(of.holds(*space, key), "{space}: {key:?}");
        }
        for (space, key) in [
            (Space::ByLastSeen, last_seen_key(u64::MAX, b"ab")),
            (Space::ByQuality, quality_key(0, b"ab")),
            (Space::ByQuality, rank_key(100, 0, b"ab")),
            // a run past 100 is damage, still the peer's to delete
            (
                Space::ByQuality,
                [&[RANK_TAG, 101][..], &last_seen_key(1, b"ab")].concat(),
            ),
        ] {
            assert!(of.holds(space, &key), "{space}: {key:?}");
        }
        for id in [&b"a"[..], b"abc", b"ba"] {
            for (space, key, _) in index_entries(&record(id)) {
                assert!(!of.holds(space, &key), "{space}: {key:?}");
            }
        }
        assert!(!of.holds(Space::ByLastSeen, &rank_key(0, 77, b"ab")));
        assert!(!of.holds(Space::ByQuality, &last_seen_key(77, b"ab")));
        assert!(!of.holds(
            Space::ByQuality,
            &[0xFE, 0, 0, 0, 0, 0, 0, 0, 0, !b'a', !b'b', 0xFF]
        ));
    }

    /// The order a forward walk of by_last_seen gives: last_seen descending, ties by
    /// peer id descending (a prefix after the longer id).
    #[test]
    fn last_seen_keys_sort_newest_first_then_greater_id() {
        let ordered: &[(u64, &[u8])] = &[
            (u64::MAX, b"~"),
            (u64::MAX, b"!"),
            (256, b"a"),
            (255, b"z"),
            (2, b"aa"),
            (1, b"zz"),
            (1, b"abd"),
            (1, b"abc~"),
            (1, b"abc!"),
            (1, b"abc"),
            (1, b"ab"),
            (1, b"a"),
            (1, b"A"),
            (1, b"!"),
            (0, b"~~"),
            (0, b"~"),
            (0, b"!"),
        ];
        for pair in ordered.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert!(
                last_seen_key(a.0, a.1) < last_seen_key(b.0, b.1),
                "{a:?} sorts before {b:?}"
            );
        }
        // every id byte against every other, and against the end of a shorter id
        let visible: Vec<u8> = (0x21..=0x7e).collect();
        for &x in &visible {
            assert!(last_seen_key(7, &[b'a', x]) < last_seen_key(7, b"a"));
            for &y in &visible {
                assert_eq!(
                    last_seen_key(7, &[x]).cmp(&last_seen_key(7, &[y])),
                    y.cmp(&x),
                    "{x} vs {y}"
                );
            }
        }
    }

    /// Old-layout keys of any time before 2^63 ms sort before every new-layout key
    /// (top bit 0 vs 1): the 3 -> 4 migration's tombstones all lie in front of the
    /// first live key, which is why it has the backend compact the index.
    #[test]
    fn legacy_keys_sort_before_every_new_key() {
        let newest_legacy = legacy_last_seen_key((1 << 63) - 1, b"~~~");
        assert_eq!(
            &newest_legacy[..LAST_SEEN_WIDTH],
            &((1u64 << 63) - 1).to_be_bytes()
        );
        assert!(newest_legacy.ends_with(b"~~~"));
        for t in [0, 1, 1_764_000_000_000, (1 << 63) - 1] {
            assert!(newest_legacy < last_seen_key(t, b"!"), "{t}");
        }
    }

    #[test]
    fn last_seen_keys_split_back() {
        for (t, id) in [
            (0, &b"a"[..]),
            (77, b"id"),
            (u64::MAX, b"~~~"),
            (1 << 63, b"QmAlice"),
        ] {
            let key = last_seen_key(t, id);
            assert_eq!(key.len(), LAST_SEEN_WIDTH + id.len() + 1);
            assert_eq!(split_last_seen_key(&key), Some((t, id.to_vec())));
            let (raw_t, suffix) = split_last_seen_key_raw(&key).unwrap();
            assert_eq!((raw_t, suffix), (t, &last_seen_suffix(id)[..]));
            assert!(KeysOf::new(id).holds(Space::ByLastSeen, &key));
        }
        assert_eq!(split_last_seen_key(&[0; 8]), None);
        // no id, no terminator, or a terminator inside: not a key of this layout
        assert_eq!(split_last_seen_key(&[0, 0, 0, 0, 0, 0, 0, 0, 0xFF]), None);
        assert_eq!(split_last_seen_key(&[0, 0, 0, 0, 0, 0, 0, 0, !b'a']), None);
        assert_eq!(
            split_last_seen_key(&[0, 0, 0, 0, 0, 0, 0, 0, !b'a', 0xFF, 0xFF]),
            None
        );
    }

    #[test]
    fn last_seen_since_bounds_the_newest_entries() {
        let within = |since: Option<u64>, t: u64| {
            let (lower, upper) = last_seen_since(since);
            let key = last_seen_key(t, b"~~");
            let key_lo = last_seen_key(t, b"!");
            [key, key_lo].iter().all(|k| {
                let k = k.as_slice();
                let above = match &lower {
                    Bound::Included(l) => k >= l.as_slice(),
                    Bound::Excluded(l) => k > l.as_slice(),
                    Bound::Unbounded => true,
                };
                let below = match &upper {
                    Bound::Included(u) => k <= u.as_slice(),
                    Bound::Excluded(u) => k < u.as_slice(),
                    Bound::Unbounded => true,
                };
                above && below
            })
        };
        for since in [0, 1, 255, 256, 1 << 40, u64::MAX - 1, u64::MAX] {
            for t in [0, 1, 255, 256, 1 << 40, u64::MAX - 1, u64::MAX] {
                assert_eq!(within(Some(since), t), t >= since, "{since} {t}");
                assert!(within(None, t));
            }
        }
    }
}
