//! [`Key`]: a key as [`VersionedSpaces`](super::VersionedSpaces) holds it, in the
//! map's node when it is short.
//!
//! A map keyed by `Vec<u8>` allocates once per key and follows a pointer at every
//! comparison of a search: at a million peers, each of those is a cache miss, and
//! opening a file-backed book allocates four million keys. Every key peerbook writes
//! for an Ed25519 peer id (52 characters) fits in [`Key::INLINE`] bytes (a rank key,
//! the longest, is 11 bytes and the id), so such a key is held in place, in 64 bytes;
//! a longer one (a longer id) goes to the heap. Keys compare, hash and borrow as the
//! byte strings they hold, so a map of them is searched with a `&[u8]`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU8;
use std::ops::Deref;

/// The longest key held in place.
const INLINE: usize = 63;

/// A key of a space: bytes, held in place up to [`Key::INLINE`] bytes, on the heap
/// beyond. Compares, hashes and borrows as its bytes.
///
/// ```
/// use peerbook::mvcc::Key;
///
/// let short = Key::from_slice(b"peer");
/// let long = Key::from(vec![7u8; 100]);
/// assert_eq!(&*short, b"peer");
/// assert_eq!(long.len(), 100);
/// assert!(short < Key::from_slice(b"peer\0"));
/// assert_eq!(std::mem::size_of::<Key>(), 64);
/// ```
#[derive(Clone)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    /// `len` is the key's length plus one: never zero, so the heap variant's tag
    /// lives in that niche and a key takes 64 bytes, not 72.
    Inline {
        len: NonZeroU8,
        bytes: [u8; INLINE],
    },
    Heap(Box<[u8]>),
}

// What the module docs promise; a layout change fails the build, not a benchmark.
const _: () = assert!(std::mem::size_of::<Key>() == INLINE + 1);

impl Key {
    /// The longest key held in place, without an allocation.
    pub const INLINE: usize = INLINE;

    /// A key holding a copy of `key`.
    pub fn from_slice(key: &[u8]) -> Key {
        match inline(key) {
            Some(repr) => Key(repr),
            None => Key(Repr::Heap(key.into())),
        }
    }

    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(len.get() - 1)],
            Repr::Heap(bytes) => bytes,
        }
    }
}

fn inline(key: &[u8]) -> Option<Repr> {
    let len = NonZeroU8::new(u8::try_from(key.len() + 1).ok()?)?;
    let mut bytes = [0u8; INLINE];
    bytes.get_mut(..key.len())?.copy_from_slice(key);
    Some(Repr::Inline { len, bytes })
}

impl From<Vec<u8>> for Key {
    /// Takes the vector's allocation for a long key (shrunk to fit), copies a short
    /// one in place.
    fn from(key: Vec<u8>) -> Key {
        match inline(&key) {
            Some(repr) => Key(repr),
            None => Key(Repr::Heap(key.into_boxed_slice())),
        }
    }
}

impl From<&[u8]> for Key {
    fn from(key: &[u8]) -> Key {
        Key::from_slice(key)
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn keys_up_to_inline_stay_in_place_and_longer_ones_go_to_the_heap() {
        for len in [
            0,
            1,
            INLINE - 1,
            INLINE,
            INLINE + 1,
            200,
            254,
            255,
            256,
            300,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            for key in [Key::from_slice(&bytes), Key::from(bytes.clone())] {
                assert_eq!(key.as_slice(), &bytes[..], "len {len}");
                assert_eq!(&*key, &bytes[..], "deref, len {len}");
                assert_eq!(
                    matches!(key.0, Repr::Inline { .. }),
                    len <= INLINE,
                    "len {len}"
                );
                assert_eq!(format!("{key:?}"), format!("{bytes:?}"));
            }
        }
    }

    #[test]
    fn keys_order_as_their_bytes_whatever_their_form() {
        // a short key, a prefix of a long one, trailing zeros: the byte order decides
        let mut byte_keys: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 0],
            vec![1; INLINE],
            vec![1; INLINE + 1],
            vec![1; INLINE + 40],
            vec![2],
            vec![255; INLINE],
            vec![255; INLINE + 1],
        ];
        byte_keys.sort();
        let map: BTreeMap<Key, usize> = byte_keys
            .iter()
            .rev()
            .enumerate()
            .map(|(i, k)| (Key::from_slice(k), i))
            .collect();
        let in_order: Vec<&[u8]> = map.keys().map(Key::as_slice).collect();
        assert_eq!(
            in_order,
            byte_keys.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        for (a, b) in byte_keys.iter().zip(byte_keys.iter().skip(1)) {
            assert!(Key::from_slice(a) < Key::from_slice(b));
            assert_ne!(Key::from_slice(a), Key::from_slice(b));
        }
        // searched by a slice
        assert!(map.contains_key(&[1u8; INLINE + 1][..]));
        assert!(!map.contains_key(&[1u8; INLINE + 2][..]));
        assert_eq!(Key::from_slice(&[9; 70]), Key::from(vec![9; 70]));
    }

    #[test]
    fn keys_hash_as_their_bytes() {
        let set: std::collections::HashSet<Key> = [&b"a"[..], &[3; 80][..]]
            .into_iter()
            .map(Key::from)
            .collect();
        assert!(set.contains(&b"a"[..]));
        assert!(set.contains(&[3u8; 80][..]));
        assert!(!set.contains(&b"b"[..]));
        assert_eq!(Key::from_slice(b"ab").as_ref(), b"ab");
    }
}
