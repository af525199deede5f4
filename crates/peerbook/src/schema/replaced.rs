//! [`PeerRecord::check_replaced`]: what a write needs of the stored record it
//! replaces, read from its bytes next to the new record's encoding, without
//! decoding the fields the two share.
//!
//! A Buffered `store_peer` of a record read back and changed spent about 10,000
//! of its 24,000 instructions on the memory backend decoding the stored record
//! (a `String` and a `Vec` per text field, every byte's UTF-8 checked) and
//! dropping it, only to compare it field by field with the new one. A postcard
//! value is self-delimiting: decoding a field reads exactly the bytes it needs
//! from where it starts. So where the stored bytes at a field's position start
//! with the new record's encoding of that field, the stored field decodes to the
//! same value (consuming those bytes), and it passes its rule exactly when the
//! new one does, which `validate` has checked. Only the fields that differ are
//! decoded (through the same serde types as [`PeerRecord::decode`]) and checked.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use super::{
    validate_candidate, validate_display_name, validate_public_key, ConnectionQuality, PeerRecord,
    RECORD_FORMAT_V2,
};
use crate::address::{validate_addresses, validate_metadata, PeerAddress};

/// The top-level fields of a record, in encoding order.
pub(super) const FIELDS: usize = 14;

/// The stored record a new one replaces, as far as the write needs it: its index
/// entries are made of these fields (`ScoreHint::of` reads the last three).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Replaced {
    pub last_seen: u64,
    pub connection_quality: ConnectionQuality,
    pub reconnection_attempts: u32,
    pub blacklist_until: Option<u64>,
}

impl Replaced {
    /// What the write needs of the decoded record `r`.
    pub(crate) fn of(r: &PeerRecord) -> Self {
        Replaced {
            last_seen: r.last_seen,
            connection_quality: r.connection_quality,
            reconnection_attempts: r.reconnection_attempts,
            blacklist_until: r.blacklist_until,
        }
    }
}

impl PeerRecord {
    /// The fields of [`Replaced`] of the stored record `stored`, when `stored` is
    /// a record [`decode`](Self::decode) accepts, of this peer, with the same
    /// shared secret and ICE servers (so with the same seals) as `self`; `None`
    /// otherwise, and whenever it cannot tell (a [`RECORD_FORMAT_V1`](super::RECORD_FORMAT_V1)
    /// record, a field that fails to decode or breaks its rule): the caller then
    /// decodes `stored` in full.
    ///
    /// `self` must pass every rule of [`validate`](Self::validate), and `encoded` be
    /// `self.encode()` with `ends` its field ends (from [`encode_with_ends`](Self::encode_with_ends)).
    pub(crate) fn check_replaced(
        &self,
        encoded: &[u8],
        ends: &[usize; FIELDS],
        stored: &[u8],
    ) -> Option<Replaced> {
        let (&RECORD_FORMAT_V2, mut rest) = stored.split_first()? else {
            return None;
        };
        let mut start = 1;
        let mut replaced = Replaced::of(self);
        for (field, &end) in ends.iter().enumerate() {
            // ends that do not fit the encoding (a walk that marked a field twice
            // or not at all): let the caller decode in full rather than panic
            let new = encoded.get(start..end)?;
            start = end;
            if let Some(after) = rest.strip_prefix(new) {
                rest = after;
                continue;
            }
            rest = match field {
                // the peer id and the seals: the caller's slow path compares them
                0 | 3 | 7 => return None,
                1 => {
                    let (name, rest) = take::<&str>(rest)?;
                    validate_display_name(name).ok()?;
                    rest
                }
                2 => {
                    let (key, rest) = take::<&str>(rest)?;
                    validate_public_key(key).ok()?;
                    rest
                }
                4 => {
                    let (t, rest) = take::<u64>(rest)?;
                    replaced.last_seen = t;
                    rest
                }
                5 => take::<u64>(rest)?.1,
                6 => take::<Option<IpAddr>>(rest)?.1,
                8 => self.check_candidates(rest)?,
                9 => {
                    let (q, rest) = take::<ConnectionQuality>(rest)?;
                    q.validate().ok()?;
                    replaced.connection_quality = q;
                    rest
                }
                10 => {
                    let (n, rest) = take::<u32>(rest)?;
                    replaced.reconnection_attempts = n;
                    rest
                }
                11 => {
                    let (until, rest) = take::<Option<u64>>(rest)?;
                    replaced.blacklist_until = until;
                    rest
                }
                12 => {
                    let (addresses, rest) = take::<Vec<PeerAddress>>(rest)?;
                    validate_addresses(&addresses).ok()?;
                    rest
                }
                13 => {
                    let (metadata, rest) = take::<BTreeMap<String, String>>(rest)?;
                    validate_metadata(&metadata).ok()?;
                    rest
                }
                _ => return None,
            };
        }
        // no trailing bytes, as `decode` requires
        rest.is_empty().then_some(replaced)
    }
}

impl PeerRecord {
    /// The stored candidates at the front of `bytes` checked against `self`'s
    /// (valid), and what follows them. Decoded as serde decodes a `Vec<String>`
    /// (a varint count, then each string) but element by element: a stored
    /// candidate whose bytes start with the encoding of one of `self`'s is that
    /// candidate (and passes its rule), with no UTF-8 check nor rule to run.
    fn check_candidates<'a>(&self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        // a `usize`, as serde reads a sequence's length (a shorter varint on a
        // 32-bit target: a longer one must fail here as it fails `decode`)
        let (count, mut rest) = take::<usize>(bytes)?;
        if count > super::MAX_CANDIDATES {
            return None; // decodes, breaks the count rule
        }
        let new = &self.cached_candidates;
        // the new candidate after the one the previous stored candidate equals
        // first: a list kept in order, rotated or with candidates added or taken
        // at one place costs one compare a candidate, not a search
        let mut next = 0;
        for i in 0..count {
            let mut same = None;
            for j in (next..new.len()).chain(0..next) {
                if let Some(after) = strip_str(rest, &new[j]) {
                    same = Some(after);
                    next = j + 1;
                    break;
                }
            }
            rest = match same {
                Some(after) => after,
                None => {
                    let (c, after) = take::<&str>(rest)?;
                    validate_candidate(i, c).ok()?;
                    after
                }
            };
        }
        Some(rest)
    }
}

/// `bytes` after postcard's encoding of `s` (its length, then its bytes), if
/// they start with it.
fn strip_str<'a>(bytes: &'a [u8], s: &str) -> Option<&'a [u8]> {
    let mut len = s.len() as u64;
    let mut rest = bytes;
    loop {
        let (&b, after) = rest.split_first()?;
        rest = after;
        if len < 0x80 {
            if b != len as u8 {
                return None;
            }
            break;
        }
        if b != (len as u8) | 0x80 {
            return None;
        }
        len >>= 7;
    }
    rest.strip_prefix(s.as_bytes())
}

/// One field decoded from the front of `bytes`, and what follows it.
fn take<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Option<(T, &'a [u8])> {
    postcard::take_from_bytes(bytes).ok()
}
