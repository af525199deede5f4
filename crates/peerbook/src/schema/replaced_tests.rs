//! [`PeerRecord::check_replaced`] against [`PeerRecord::decode`]: it never vouches
//! for stored bytes decode refuses and reads what decode reads (soundness), and it
//! takes the fast path for every valid stored record of the same peer and seals
//! that differs only in fields it checks itself (completeness).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use super::encode_tests::*;
use super::replaced::{Replaced, FIELDS};
use super::*;
use crate::address::{AddressSource, PeerAddress};

/// A record every rule admits, for `check_replaced`'s `self`.
fn valid_record(last_seen: u64, attempts: u32, until: Option<u64>) -> PeerRecord {
    PeerRecord {
        peer_id: PeerId::new("peer-1").expect("a valid id"),
        display_name: "Alice".into(),
        public_key: "pk".into(),
        shared_secret: None,
        last_seen,
        last_connected: 4,
        last_known_ip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
        ice_servers: vec![IceServer {
            urls: vec!["stun:stun.example.org:3478".into()],
            username: None,
            credential: None,
        }],
        cached_candidates: vec![
            "candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host".into(),
            "candidate:2 1 udp 1686052607 203.0.113.9 54321 typ srflx".into(),
        ],
        connection_quality: ConnectionQuality {
            latency_ms: Some(40),
            success_rate: 0.5,
            ..Default::default()
        },
        reconnection_attempts: attempts,
        blacklist_until: until,
        addresses: vec![PeerAddress {
            addr: "/ip4/203.0.113.7/tcp/4001".into(),
            source: AddressSource::Reported,
            last_success: Some(3),
            last_failure: None,
            expires_at: Some(99),
        }],
        metadata: [("agent".to_string(), "node/1.0".to_string())].into(),
    }
}

/// Field `i` of `to` (in encoding order) set to `from`'s.
fn swap_field(to: &mut PeerRecord, from: &PeerRecord, i: usize) {
    match i {
        0 => to.peer_id = from.peer_id.clone(),
        1 => to.display_name = from.display_name.clone(),
        2 => to.public_key = from.public_key.clone(),
        3 => to.shared_secret = from.shared_secret.clone(),
        4 => to.last_seen = from.last_seen,
        5 => to.last_connected = from.last_connected,
        6 => to.last_known_ip = from.last_known_ip,
        7 => to.ice_servers = from.ice_servers.clone(),
        8 => to.cached_candidates = from.cached_candidates.clone(),
        9 => to.connection_quality = from.connection_quality,
        10 => to.reconnection_attempts = from.reconnection_attempts,
        11 => to.blacklist_until = from.blacklist_until,
        12 => to.addresses = from.addresses.clone(),
        _ => to.metadata = from.metadata.clone(),
    }
}

/// A byte-level change of a stored record.
#[derive(Clone, Debug)]
enum Edit {
    None,
    Set(proptest::sample::Index, u8),
    Insert(proptest::sample::Index, u8),
    Truncate(proptest::sample::Index),
    Append(u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        2 => Just(Edit::None),
        2 => (any::<proptest::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<proptest::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<proptest::sample::Index>().prop_map(Edit::Truncate),
        1 => any::<u8>().prop_map(Edit::Append),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// `check_replaced` never vouches for stored bytes `decode` refuses, nor for
    /// another peer's or other seals, and what it reads is what `decode` reads:
    /// stored records of the same peer with any fields swapped in from an arbitrary
    /// record (valid or not), then a byte set, inserted, cut or appended. Where
    /// nothing but the fields the store changes differ, it takes the fast path.
    #[test]
    fn check_replaced_agrees_with_decode(
        new_ints in (int(), int32(), proptest::option::of(int())),
        old_ints in (int(), int32(), proptest::option::of(int())),
        other in record(),
        swaps in vec(any::<bool>(), FIELDS),
        edit in edit(),
    ) {
        let new = valid_record(new_ints.0, new_ints.1, new_ints.2);
        prop_assert!(new.validate().is_ok());
        let (encoded, ends) = new.encode_with_ends();
        let mut old = valid_record(old_ints.0, old_ints.1, old_ints.2);
        for (i, _) in swaps.iter().enumerate().filter(|(_, swap)| **swap) {
            swap_field(&mut old, &other, i);
        }
        let mut stored = old.encode();
        match &edit {
            Edit::None => {}
            Edit::Set(i, b) => {
                let i = i.index(stored.len());
                stored[i] = *b;
            }
            Edit::Insert(i, b) => stored.insert(i.index(stored.len() + 1), *b),
            Edit::Truncate(i) => stored.truncate(i.index(stored.len())),
            Edit::Append(b) => stored.push(*b),
        }
        let got = new.check_replaced(&encoded, &ends, &stored);
        if let Some(got) = got {
            let decoded = PeerRecord::decode(&stored);
            prop_assert!(decoded.is_ok(), "vouched for bytes decode refuses: {:?}", decoded.err());
            let decoded = decoded.expect("checked above");
            prop_assert_eq!(&decoded.peer_id, &new.peer_id);
            prop_assert!(decoded.shared_secret == new.shared_secret);
            prop_assert_eq!(&decoded.ice_servers, &new.ice_servers);
            // Debug, so a NaN success rate compares equal to itself
            prop_assert_eq!(format!("{got:?}"), format!("{:?}", Replaced::of(&decoded)));
        }
        if matches!(edit, Edit::None) && !swaps.iter().any(|s| *s) {
            prop_assert_eq!(got, Some(Replaced::of(&old)), "the fast path is taken");
        }
    }
}

// `check_replaced`'s completeness, and its inner checks reached: the proptest above
// swaps fields in from arbitrary records, so almost every stored record differs in
// a seal or breaks a rule, and the fast path is almost never asserted taken (a
// `check_replaced` that always answered `None` passed it).

/// The fields `check_replaced` decodes and checks itself where the stored record's
/// differ; the others (the id and the seals) send the caller to decode in full.
const CHECKED_FIELDS: [usize; 11] = [1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13];

/// A candidate the rules admit (printable ASCII), sometimes with a length of two
/// bytes, below and above 256 (a length byte with its high bit set or not).
fn valid_candidate() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[ -~]{0,20}",
        1 => "[ -~]{120,140}",
        1 => "[ -~]{250,270}",
        1 => "[ -~]{500,512}",
    ]
}

/// A stored candidate made from the new record's: equal to one, one with bytes
/// added (the same bytes after a different length: only the length tells them
/// apart), a prefix of one, or another.
#[derive(Clone, Debug)]
enum StoredCandidate {
    Same(proptest::sample::Index),
    Longer(proptest::sample::Index, String),
    Shorter(proptest::sample::Index, proptest::sample::Index),
    Other(String),
}

impl StoredCandidate {
    fn of(&self, new: &[String]) -> String {
        let pick = |i: &proptest::sample::Index| {
            if new.is_empty() {
                String::new()
            } else {
                new[i.index(new.len())].clone()
            }
        };
        match self {
            StoredCandidate::Same(i) => pick(i),
            StoredCandidate::Longer(i, more) => {
                let mut c = pick(i) + more;
                c.truncate(MAX_CANDIDATE_LEN); // ASCII: any byte is a char boundary
                c
            }
            StoredCandidate::Shorter(i, k) => {
                let c = pick(i);
                c[..k.index(c.len() + 1)].to_string()
            }
            StoredCandidate::Other(c) => c.clone(),
        }
    }
}

fn stored_candidate() -> impl Strategy<Value = StoredCandidate> {
    let index = any::<proptest::sample::Index>;
    prop_oneof![
        3 => index().prop_map(StoredCandidate::Same),
        2 => (index(), "[ -~]{1,20}").prop_map(|(i, s)| StoredCandidate::Longer(i, s)),
        1 => (index(), index()).prop_map(|(i, k)| StoredCandidate::Shorter(i, k)),
        2 => valid_candidate().prop_map(StoredCandidate::Other),
    ]
}

/// [`quality`] made valid: a success rate drawn uniformly from [0, 1] in place of
/// its any-f32 one, and no more successful connections than connections. (Clamping
/// the any-f32 rate instead would keep its NaNs, put about half the cases on
/// exactly 0 or 1 and the rest mostly near 0.)
fn valid_quality() -> impl Strategy<Value = ConnectionQuality> {
    (quality(), 0.0f32..=1.0).prop_map(|(mut q, success_rate)| {
        q.success_rate = success_rate;
        q.successful_connections = q.successful_connections.min(q.total_connections);
        q
    })
}

fn valid_addresses() -> impl Strategy<Value = Vec<PeerAddress>> {
    vec(address(), 0..=crate::address::MAX_ADDRESSES).prop_map(|mut addresses| {
        for (i, a) in addresses.iter_mut().enumerate() {
            // distinct, 1..=256 bytes, no whitespace nor control
            a.addr = format!("/ip4/10.0.0.{i}/tcp/{}", a.addr.len());
        }
        addresses
    })
}

prop_compose! {
    /// A record of values the rules admit in every field `check_replaced` checks
    /// (its candidates are made from the new record's in the test).
    fn valid_fields()(
        (last_seen, attempts, until) in (int(), int32(), proptest::option::of(int())),
        display_name in text().prop_map(|t| sanitize_display_name(&t)),
        public_key in prop_oneof![4 => ".{0,12}", 1 => "[a-z]{120,140}"],
        last_connected in int(),
        last_known_ip in proptest::option::of(ip()),
        connection_quality in valid_quality(),
        addresses in valid_addresses(),
        metadata in btree_map(
            "[!-~]{1,20}",
            prop_oneof![4 => "[ -~]{0,20}", 1 => "[ -~]{120,256}"],
            0..=crate::address::MAX_METADATA_ENTRIES,
        ),
    ) -> PeerRecord {
        PeerRecord {
            display_name,
            public_key,
            last_connected,
            last_known_ip,
            connection_quality,
            addresses,
            metadata,
            ..valid_record(last_seen, attempts, until)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Completeness: a stored record `decode` accepts, of the same peer with the
    /// same seals, that differs from the new one in any of the fields
    /// `check_replaced` checks itself (each with a small chance, so in one, a few
    /// or none), takes the fast path and reads what `decode` reads. The stored
    /// candidates are the new ones, longer, shorter or others, in any order, up to
    /// the most the rule admits.
    #[test]
    fn check_replaced_takes_the_fast_path_for_valid_records(
        new_ints in (int(), int32(), proptest::option::of(int())),
        new_candidates in prop_oneof![
            3 => vec(valid_candidate(), 0..6),
            1 => vec(valid_candidate(), 0..=MAX_CANDIDATES),
        ],
        mut other in valid_fields(),
        stored_candidates in prop_oneof![
            3 => vec(stored_candidate(), 0..8),
            1 => vec(stored_candidate(), MAX_CANDIDATES),
        ],
        differs in vec(prop::bool::weighted(0.15), CHECKED_FIELDS.len()),
    ) {
        let mut new = valid_record(new_ints.0, new_ints.1, new_ints.2);
        new.cached_candidates = new_candidates;
        prop_assert!(new.validate().is_ok());
        let (encoded, ends) = new.encode_with_ends();
        other.cached_candidates =
            stored_candidates.iter().map(|c| c.of(&new.cached_candidates)).collect();
        let mut old = new.clone();
        for (&field, _) in CHECKED_FIELDS.iter().zip(&differs).filter(|(_, d)| **d) {
            swap_field(&mut old, &other, field);
        }
        let stored = old.encode();
        let decoded = PeerRecord::decode(&stored);
        prop_assert!(decoded.is_ok(), "a stored record of the rules': {:?}", decoded.err());
        let decoded = decoded.expect("checked above");
        prop_assert_eq!(
            new.check_replaced(&encoded, &ends, &stored),
            Some(Replaced::of(&decoded))
        );
    }
}

/// The new record's fast path on its own encoding, and on a stored record that
/// differs only in the fields a write changes.
#[test]
fn check_replaced_of_the_same_record() {
    let new = valid_record(7, 1, Some(9));
    let (encoded, ends) = new.encode_with_ends();
    assert_eq!(
        new.check_replaced(&encoded, &ends, &encoded),
        Some(Replaced::of(&new))
    );
    let old = valid_record(6, 0, None);
    assert_eq!(
        new.check_replaced(&encoded, &ends, &old.encode()),
        Some(Replaced::of(&old))
    );
}

/// As many stored candidates as the rule admits pass, one more does not.
#[test]
fn check_replaced_of_the_most_candidates() {
    let new = valid_record(7, 1, Some(9));
    let (encoded, ends) = new.encode_with_ends();
    let mut old = new.clone();
    old.cached_candidates = (0..MAX_CANDIDATES).map(|i| format!("c{i}")).collect();
    assert_eq!(
        new.check_replaced(&encoded, &ends, &old.encode()),
        Some(Replaced::of(&old))
    );
    old.cached_candidates.push("one more".into());
    assert!(PeerRecord::decode(&old.encode()).is_err());
    assert_eq!(new.check_replaced(&encoded, &ends, &old.encode()), None);
}

/// A stored candidate that is a new one with bytes added is another candidate
/// (told apart by its length alone), with a one- and a two-byte length.
#[test]
fn check_replaced_of_a_longer_candidate() {
    for len in [1, 100, 130, 300] {
        let mut new = valid_record(7, 1, Some(9));
        new.cached_candidates = vec!["a".repeat(len)];
        let (encoded, ends) = new.encode_with_ends();
        let mut old = new.clone();
        old.cached_candidates = vec!["a".repeat(len) + "b"];
        assert_eq!(
            new.check_replaced(&encoded, &ends, &old.encode()),
            Some(Replaced::of(&old)),
            "{len}"
        );
        // and a control byte in what it adds breaks its rule
        old.cached_candidates = vec!["a".repeat(len) + "\u{1}"];
        assert!(PeerRecord::decode(&old.encode()).is_err());
        assert_eq!(
            new.check_replaced(&encoded, &ends, &old.encode()),
            None,
            "{len}"
        );
    }
}

fn postcard_of<T: serde::Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("postcard")
}

/// Soundness where a differing field must be decoded and checked: stored bytes of
/// the same peer and seals with one field's bytes replaced by bytes that do not
/// decode or break the field's rule (which only that field's check can see) are
/// refused by `decode`, and `check_replaced` does not vouch for them.
#[test]
fn check_replaced_refuses_a_field_that_breaks_its_rule() {
    let new = valid_record(7, 1, Some(9));
    let (encoded, ends) = new.encode_with_ends();
    let candidates = |n: usize| (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>();
    let overlong = [0xff; 10]
        .iter()
        .copied()
        .chain([0x01])
        .collect::<Vec<u8>>();
    let cases: Vec<(&str, usize, Vec<u8>)> = vec![
        ("name not UTF-8", 1, vec![2, 0xff, 0xfe]),
        ("name not trimmed", 1, postcard_of(&"Alice ")),
        ("name with a control", 1, postcard_of(&"Al\u{7}ice")),
        ("key not UTF-8", 2, vec![1, 0xc3]),
        (
            "key too long",
            2,
            postcard_of(&"k".repeat(MAX_PUBLIC_KEY_LEN + 1)),
        ),
        ("last_seen overflows u64", 4, overlong.clone()),
        ("last_connected overflows u64", 5, overlong.clone()),
        ("ip of no variant", 6, vec![1, 2, 0, 0, 0, 0]),
        ("ip's option tag", 6, vec![2]),
        ("candidate count overflows", 8, overlong.clone()),
        (
            "candidates over the most",
            8,
            postcard_of(&candidates(MAX_CANDIDATES + 1)),
        ),
        ("candidate count past the end", 8, vec![3, 1, b'a']),
        ("candidate not UTF-8", 8, vec![1, 2, 0xff, 0xfe]),
        ("candidate with a control", 8, postcard_of(&vec!["a\u{7}b"])),
        (
            "candidate too long",
            8,
            postcard_of(&vec!["c".repeat(MAX_CANDIDATE_LEN + 1)]),
        ),
        (
            "success rate NaN",
            9,
            postcard_of(&ConnectionQuality {
                success_rate: f32::NAN,
                ..Default::default()
            }),
        ),
        (
            "more successes than connections",
            9,
            postcard_of(&ConnectionQuality {
                successful_connections: 1,
                ..Default::default()
            }),
        ),
        ("attempts overflow u32", 10, postcard_of(&(1u64 << 32))),
        ("blacklist's option tag", 11, vec![2]),
        (
            "address listed twice",
            12,
            postcard_of(&vec![new.addresses[0].clone(), new.addresses[0].clone()]),
        ),
        (
            "metadata key with a space",
            13,
            postcard_of(&BTreeMap::from([("a b".to_string(), String::new())])),
        ),
        ("metadata value not UTF-8", 13, vec![1, 1, b'k', 1, 0xff]),
    ];
    let fields = serde_fields(&new);
    for (what, field, bytes) in cases {
        let mut stored = vec![RECORD_FORMAT_V2];
        for (i, f) in fields.iter().enumerate() {
            stored.extend_from_slice(if i == field { &bytes } else { f });
        }
        assert!(
            PeerRecord::decode(&stored).is_err(),
            "{what}: decode refuses"
        );
        assert_eq!(new.check_replaced(&encoded, &ends, &stored), None, "{what}");
    }
    // and every field decoded but with bytes left over, or a format byte unknown
    let mut old = valid_record(6, 0, None);
    old.display_name = "Bob".into();
    let mut stored = old.encode();
    assert!(new.check_replaced(&encoded, &ends, &stored).is_some());
    stored.push(0);
    assert!(PeerRecord::decode(&stored).is_err());
    assert_eq!(new.check_replaced(&encoded, &ends, &stored), None);
    stored.pop();
    stored[0] = 3;
    assert!(PeerRecord::decode(&stored).is_err());
    assert_eq!(new.check_replaced(&encoded, &ends, &stored), None);
}

/// A stored candidate list of one candidate whose bytes are a new candidate's
/// after a length prefix that is not its length's encoding: a one- or two-byte
/// prefix, and one that runs on with continuation bytes. Only the length tells
/// these from the new candidate, so `check_replaced` must not vouch for what
/// `decode` refuses, and must take the fast path for the true prefix.
#[test]
fn check_replaced_reads_candidate_lengths_exactly() {
    for len in [
        0usize, 1, 5, 100, 127, 128, 129, 200, 255, 256, 300, 384, 512,
    ] {
        let mut new = valid_record(7, 1, Some(9));
        // printable, its first byte not a length's second byte (1..=4)
        let s: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        new.cached_candidates = vec![s.clone()];
        let (encoded, ends) = new.encode_with_ends();
        let fields = serde_fields(&new);
        let first = (len as u8) | 0x80;
        let mut prefixes: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        prefixes.extend((0..=255u8).flat_map(|b| (0..=4u8).map(move |c| vec![b, c])));
        prefixes.push([first].into_iter().chain([0x80; 8]).chain([0]).collect());
        for prefix in prefixes {
            let mut stored = vec![RECORD_FORMAT_V2];
            for f in &fields[..8] {
                stored.extend_from_slice(f);
            }
            stored.push(1); // one candidate
            stored.extend_from_slice(&prefix);
            stored.extend_from_slice(s.as_bytes());
            for f in &fields[9..] {
                stored.extend_from_slice(f);
            }
            let got = new.check_replaced(&encoded, &ends, &stored);
            if prefix == postcard_of(&len) {
                assert_eq!(got, Some(Replaced::of(&new)), "{len}: the true length");
            }
            if let Some(got) = got {
                let decoded = PeerRecord::decode(&stored);
                assert!(
                    decoded.is_ok(),
                    "{len} {prefix:?}: vouched for bytes decode refuses"
                );
                assert_eq!(got, Replaced::of(&decoded.expect("checked above")));
            }
        }
    }
}
