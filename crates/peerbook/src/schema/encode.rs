//! [`PeerRecord::encode`]: the stored encoding written by hand, byte for byte the
//! postcard body of the serde derive behind a format byte, into one `Vec` of exactly
//! its length.
//!
//! Through serde, postcard spent about 2,800 instructions on a 1.6 KB record (a
//! call per field, the peer id cloned into a `String` for its `into = "String"`),
//! then the copy out of a scratch buffer and its allocation about 1,400 more: a
//! fifth of a Buffered `store_peer` of a new peer on the file backend. Here one walk
//! over the fields ([`body`]) runs twice, once to add up the length and once to
//! write the bytes, so the two cannot disagree. Decoding still goes through serde:
//! the layout is the derive's, and a test holds the two encodings equal on
//! arbitrary records (`encode_tests`).
//!
//! The postcard rules used: an unsigned integer and a length is a LEB128 varint (7
//! bits a byte, low first); a string or byte string is its length then its bytes; an
//! `Option` is a byte 0 or 1 then the value; a sequence or map is its length then the
//! elements; an enum is its variant index as a varint, then the variant's data; an
//! `f32` is its 4 little-endian bytes; a `u8` array is its bytes; a struct is its
//! fields in order.

use std::net::IpAddr;

use super::replaced::FIELDS;
use super::{ConnectionQuality, ConnectionType, IceServer, PeerRecord, RECORD_FORMAT_V2};
use crate::address::{AddressSource, PeerAddress};

impl PeerRecord {
    /// The stored encoding: [`RECORD_FORMAT_V2`] then the postcard body.
    pub fn encode(&self) -> Vec<u8> {
        let mut size = Size(1);
        body(self, &mut size);
        let mut out = Vec::with_capacity(size.0);
        out.push(RECORD_FORMAT_V2);
        body(self, &mut out);
        debug_assert_eq!(out.len(), size.0, "the size walk and the write walk agree");
        out
    }

    /// [`encode`](Self::encode), and where each top-level field's bytes end in it
    /// (for [`check_replaced`](Self::check_replaced)).
    pub(crate) fn encode_with_ends(&self) -> (Vec<u8>, [usize; FIELDS]) {
        let mut size = Size(1);
        body(self, &mut size);
        let mut out = Ends {
            out: Vec::with_capacity(size.0),
            ends: [0; FIELDS],
            next: 0,
        };
        out.out.push(RECORD_FORMAT_V2);
        body(self, &mut out);
        debug_assert_eq!(
            out.out.len(),
            size.0,
            "the size walk and the write walk agree"
        );
        debug_assert_eq!(out.next, FIELDS, "every field marked once");
        (out.out, out.ends)
    }
}

/// A `Vec` sink that notes where each top-level field ends.
struct Ends {
    out: Vec<u8>,
    ends: [usize; FIELDS],
    next: usize,
}

impl Sink for Ends {
    #[inline(always)]
    fn bytes(&mut self, bytes: &[u8]) {
        self.out.bytes(bytes);
    }

    #[inline(always)]
    fn varint(&mut self, value: u64) {
        self.out.varint(value);
    }

    #[inline(always)]
    fn field_end(&mut self) {
        if let Some(end) = self.ends.get_mut(self.next) {
            *end = self.out.len();
        }
        self.next += 1;
    }
}

/// Where a walk over the record puts its bytes: a [`Size`] counts them, a `Vec`
/// appends them.
trait Sink {
    fn bytes(&mut self, bytes: &[u8]);
    fn varint(&mut self, value: u64);
    /// A top-level field of the record ends here.
    #[inline(always)]
    fn field_end(&mut self) {}
}

/// The length of what a walk would write.
struct Size(usize);

impl Sink for Size {
    #[inline(always)]
    fn bytes(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }

    #[inline(always)]
    fn varint(&mut self, value: u64) {
        // 7 bits a byte; 0 takes one byte
        let bits = 64 - (value | 1).leading_zeros() as usize;
        self.0 += bits.div_ceil(7);
    }
}

impl Sink for Vec<u8> {
    #[inline(always)]
    fn bytes(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }

    #[inline(always)]
    fn varint(&mut self, mut value: u64) {
        // byte by byte: a slice of a varying length would be a `memcpy` call
        while value >= 0x80 {
            self.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.push(value as u8);
    }
}

#[inline(always)]
fn len<S: Sink>(out: &mut S, len: usize) {
    out.varint(len as u64);
}

#[inline(always)]
fn bytes<S: Sink>(out: &mut S, b: &[u8]) {
    len(out, b.len());
    out.bytes(b);
}

#[inline(always)]
fn option<S: Sink, T>(out: &mut S, value: Option<T>, some: impl FnOnce(&mut S, T)) {
    match value {
        None => out.bytes(&[0]),
        Some(v) => {
            out.bytes(&[1]);
            some(out, v);
        }
    }
}

/// The postcard body of `r`: its fields in declaration order, as the serde derive
/// gives them to postcard. Each struct is destructured naming every field, so a
/// field added to one of them does not compile until it is encoded here too.
#[inline(always)]
fn body<S: Sink>(r: &PeerRecord, out: &mut S) {
    let PeerRecord {
        peer_id,
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
    } = r;
    bytes(out, peer_id.as_bytes());
    out.field_end();
    bytes(out, display_name.as_bytes());
    out.field_end();
    bytes(out, public_key.as_bytes());
    out.field_end();
    option(out, shared_secret.as_ref(), |o, s| bytes(o, s.as_bytes()));
    out.field_end();
    out.varint(*last_seen);
    out.field_end();
    out.varint(*last_connected);
    out.field_end();
    // serde's non-human-readable `IpAddr`: variant V4 (0) or V6 (1), then the
    // octets as a tuple of bytes
    option(out, last_known_ip.as_ref(), |o, ip| match ip {
        IpAddr::V4(v4) => {
            o.varint(0);
            o.bytes(&v4.octets());
        }
        IpAddr::V6(v6) => {
            o.varint(1);
            o.bytes(&v6.octets());
        }
    });
    out.field_end();
    len(out, ice_servers.len());
    for server in ice_servers {
        ice_server(server, out);
    }
    out.field_end();
    len(out, cached_candidates.len());
    for c in cached_candidates {
        bytes(out, c.as_bytes());
    }
    out.field_end();
    let ConnectionQuality {
        latency_ms,
        success_rate,
        connection_type,
        total_connections,
        successful_connections,
        avg_uptime_ms,
    } = connection_quality;
    option(out, *latency_ms, |o, ms| o.varint(u64::from(ms)));
    out.bytes(&success_rate.to_bits().to_le_bytes());
    out.varint(connection_type_index(*connection_type));
    out.varint(u64::from(*total_connections));
    out.varint(u64::from(*successful_connections));
    out.varint(*avg_uptime_ms);
    out.field_end();
    out.varint(u64::from(*reconnection_attempts));
    out.field_end();
    option(out, *blacklist_until, |o, until| o.varint(until));
    out.field_end();
    len(out, addresses.len());
    for a in addresses {
        address(a, out);
    }
    out.field_end();
    len(out, metadata.len());
    for (key, value) in metadata {
        bytes(out, key.as_bytes());
        bytes(out, value.as_bytes());
    }
    out.field_end();
}

#[inline(always)]
fn ice_server<S: Sink>(server: &IceServer, out: &mut S) {
    let IceServer {
        urls,
        username,
        credential,
    } = server;
    len(out, urls.len());
    for url in urls {
        bytes(out, url.as_bytes());
    }
    option(out, username.as_deref(), |o, name| {
        bytes(o, name.as_bytes())
    });
    option(out, credential.as_ref(), |o, c| bytes(o, c.as_bytes()));
}

#[inline(always)]
fn address<S: Sink>(a: &PeerAddress, out: &mut S) {
    let PeerAddress {
        addr,
        source,
        last_success,
        last_failure,
        expires_at,
    } = a;
    bytes(out, addr.as_bytes());
    out.varint(address_source_index(*source));
    option(out, *last_success, |o, t| o.varint(t));
    option(out, *last_failure, |o, t| o.varint(t));
    option(out, *expires_at, |o, t| o.varint(t));
}

/// The serde variant index: the declaration order.
fn connection_type_index(t: ConnectionType) -> u64 {
    match t {
        ConnectionType::Host => 0,
        ConnectionType::Srflx => 1,
        ConnectionType::Relay => 2,
        ConnectionType::Unknown => 3,
    }
}

/// The serde variant index: the declaration order.
fn address_source_index(s: AddressSource) -> u64 {
    match s {
        AddressSource::Observed => 0,
        AddressSource::Reported => 1,
        AddressSource::Discovery => 2,
        AddressSource::Manual => 3,
    }
}
