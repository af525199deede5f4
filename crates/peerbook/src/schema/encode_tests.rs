//! The hand-written [`PeerRecord::encode`] against postcard through the serde
//! derive (the encoding the first version wrote and decode reads): the same bytes on
//! arbitrary records, valid or not, and exactly the capacity it needs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use super::*;
use crate::address::{AddressSource, PeerAddress};

/// What the record encoded before the hand-written encoder: the format byte, then
/// postcard's serialization of the serde derive.
pub(super) fn through_serde(r: &PeerRecord) -> Vec<u8> {
    postcard::to_extend(r, vec![RECORD_FORMAT_V2]).expect("postcard into a Vec")
}

/// Integers near every varint length boundary, and anything else.
pub(super) fn int() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u32..64).prop_map(|bits| 1u64 << bits),
        (0u32..64).prop_map(|bits| (1u64 << bits) - 1),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

pub(super) fn int32() -> impl Strategy<Value = u32> {
    int().prop_map(|v| v as u32)
}

/// Text of any chars (not only what the rules admit), sometimes long enough for a
/// two- or three-byte length.
pub(super) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => ".{0,12}",
        3 => ".{120,140}",
        1 => "[a-z]{16390}",
    ]
}

pub(super) fn sealed() -> impl Strategy<Value = SealedSecret> {
    vec(any::<u8>(), 28..200).prop_map(|b| SealedSecret::from_bytes(b).expect("28..200 bytes"))
}

pub(super) fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ]
}

pub(super) fn ice_server() -> impl Strategy<Value = IceServer> {
    (
        vec(text(), 0..5),
        proptest::option::of(text()),
        proptest::option::of(sealed()),
    )
        .prop_map(|(urls, username, credential)| IceServer {
            urls,
            username,
            credential,
        })
}

pub(super) fn connection_type() -> impl Strategy<Value = ConnectionType> {
    prop_oneof![
        Just(ConnectionType::Host),
        Just(ConnectionType::Srflx),
        Just(ConnectionType::Relay),
        Just(ConnectionType::Unknown),
    ]
}

pub(super) fn quality() -> impl Strategy<Value = ConnectionQuality> {
    (
        proptest::option::of(int32()),
        any::<f32>(),
        connection_type(),
        int32(),
        int32(),
        int(),
    )
        .prop_map(
            |(latency_ms, success_rate, connection_type, total, ok, up)| ConnectionQuality {
                latency_ms,
                success_rate,
                connection_type,
                total_connections: total,
                successful_connections: ok,
                avg_uptime_ms: up,
            },
        )
}

pub(super) fn address() -> impl Strategy<Value = PeerAddress> {
    let source = prop_oneof![
        Just(AddressSource::Observed),
        Just(AddressSource::Reported),
        Just(AddressSource::Discovery),
        Just(AddressSource::Manual),
    ];
    (
        text(),
        source,
        proptest::option::of(int()),
        proptest::option::of(int()),
        proptest::option::of(int()),
    )
        .prop_map(
            |(addr, source, last_success, last_failure, expires_at)| PeerAddress {
                addr,
                source,
                last_success,
                last_failure,
                expires_at,
            },
        )
}

prop_compose! {
    pub(super) fn record()(
        id in text(),
        display_name in text(),
        public_key in text(),
        shared_secret in proptest::option::of(sealed()),
        (last_seen, last_connected) in (int(), int()),
        last_known_ip in proptest::option::of(ip()),
        ice_servers in vec(ice_server(), 0..4),
        // more than 127 sometimes: a two-byte count
        cached_candidates in prop_oneof![4 => vec(text(), 0..6), 1 => vec(".{0,2}", 128..140)],
        connection_quality in quality(),
        reconnection_attempts in int32(),
        blacklist_until in proptest::option::of(int()),
        addresses in vec(address(), 0..4),
        metadata in btree_map(text(), text(), 0..4),
    ) -> PeerRecord {
        PeerRecord {
            // any text: the encoding does not depend on the id rules
            peer_id: PeerId(id),
            display_name,
            public_key,
            shared_secret,
            last_seen,
            last_connected,
            last_known_ip,
            ice_servers,
            cached_candidates,
            connection_quality,
            reconnection_attempts,
            blacklist_until,
            addresses,
            metadata,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_is_the_serde_postcard_encoding(r in record()) {
        let bytes = r.encode();
        prop_assert_eq!(&bytes, &through_serde(&r));
        prop_assert_eq!(bytes.capacity(), bytes.len(), "exactly its length");
    }

    /// `encode_with_ends` gives the same bytes, and each field's bytes between its
    /// ends are postcard's encoding of that field alone (what `check_replaced`
    /// compares and decodes field by field).
    #[test]
    fn field_ends_delimit_each_fields_serde_encoding(r in record()) {
        let (bytes, ends) = r.encode_with_ends();
        prop_assert_eq!(&bytes, &r.encode());
        let fields = serde_fields(&r);
        prop_assert_eq!(fields.len(), ends.len());
        let mut start = 1;
        for (i, (field, end)) in fields.iter().zip(ends).enumerate() {
            prop_assert_eq!(&bytes[start..end], &field[..], "field {}", i);
            start = end;
        }
        prop_assert_eq!(start, bytes.len());
    }
}

/// Each top-level field of `r` through postcard's serde serializer, in order.
pub(super) fn serde_fields(r: &PeerRecord) -> Vec<Vec<u8>> {
    fn one<T: serde::Serialize>(v: &T) -> Vec<u8> {
        postcard::to_allocvec(v).expect("postcard")
    }
    vec![
        one(&r.peer_id),
        one(&r.display_name),
        one(&r.public_key),
        one(&r.shared_secret),
        one(&r.last_seen),
        one(&r.last_connected),
        one(&r.last_known_ip),
        one(&r.ice_servers),
        one(&r.cached_candidates),
        one(&r.connection_quality),
        one(&r.reconnection_attempts),
        one(&r.blacklist_until),
        one(&r.addresses),
        one(&r.metadata),
    ]
}

/// The empty record and the widest integers, which random cases may miss.
#[test]
fn encode_of_the_edges() {
    let mut r = PeerRecord {
        peer_id: PeerId(String::new()),
        display_name: String::new(),
        public_key: String::new(),
        shared_secret: None,
        last_seen: 0,
        last_connected: 0,
        last_known_ip: None,
        ice_servers: Vec::new(),
        cached_candidates: Vec::new(),
        connection_quality: ConnectionQuality::default(),
        reconnection_attempts: 0,
        blacklist_until: None,
        addresses: Vec::new(),
        metadata: BTreeMap::new(),
    };
    assert_eq!(r.encode(), through_serde(&r));
    r.last_seen = u64::MAX;
    r.blacklist_until = Some(u64::MAX);
    r.reconnection_attempts = u32::MAX;
    r.connection_quality.success_rate = f32::NAN;
    r.connection_quality.latency_ms = Some(u32::MAX);
    assert_eq!(r.encode(), through_serde(&r));
}
