//! The stored layout of values: how the bytes a caller puts are laid out in LMDB.
//!
//! LMDB's pages are the OS page (4 KiB here), and a leaf page holds whole entries:
//! a peer record of ~1.7 KB left two per page at best, and B-tree splits left
//! 1.5 per page on average (2.8 KB of disk per record). Compressed, four fit a
//! page and splits leave 2.9 per page. Two layouts exist, chosen per book:
//!
//! - [`Layout::Plain`]: every value is stored verbatim. Books written before this
//!   module existed have it, and keep it for as long as they hold data (their values
//!   carry no tag, so nothing can tell a tagged value from a plain one).
//! - [`Layout::Tagged`]: every value starts with one tag byte: [`TAG_PLAIN`] then
//!   the value verbatim, or [`TAG_LZ4`], the value's length (`u32`, little endian)
//!   and an LZ4 block of it (`lz4_flex`, pure Rust, bounds-checked decoding). A
//!   value is compressed when that saves at least [`MIN_SAVING`] bytes; small
//!   values (index entries, counters) stay plain.
//!
//! A book is tagged when the marker [`LAYOUT_KEY`] in the database [`LAYOUT_DB`]
//! says so. [`open_env`](crate::backend) writes it when the book holds no entry
//! (a new book, or one just cleared), so an old book switches to the tagged layout
//! at its first [`clear`](peerbook::backend::Backend::clear), never with data in it.

use std::borrow::Cow;

use peerbook::backend::BackendError;

/// The named database holding the backend's own settings (the layout marker).
pub(crate) const LAYOUT_DB: &str = "peerbook_lmdb";
/// The key of the layout marker in [`LAYOUT_DB`].
pub(crate) const LAYOUT_KEY: &[u8] = b"value_layout";
/// The marker's value for [`Layout::Tagged`].
pub(crate) const LAYOUT_TAGGED: &[u8] = &[1];

/// Tag of a value stored verbatim after the tag.
pub(crate) const TAG_PLAIN: u8 = 0;
/// Tag of a compressed value: `u32` LE length, then an LZ4 block (`lz4_flex`)
/// compressed against the dictionary [`VOCABULARY`] followed by the entry's key.
pub(crate) const TAG_LZ4: u8 = 1;
/// The start of the dictionary of every [`TAG_LZ4`] block: text that WebRTC peer
/// records hold once each (a P-256 JWK's members, well-known public STUN servers,
/// TURN URL schemes, the ICE candidate grammar of RFC 8839 with the attributes
/// browsers add). LZ4 finds repeats within a record by itself; the dictionary
/// spares it the first occurrence (848 instead of 1,021 bytes for the benchmark's
/// 1,696-byte records, the key included). PART OF THE STORED FORMAT: never edit
/// it; a new dictionary needs a new tag.
const VOCABULARY: &[u8] = br#"{"kty":"EC","crv":"P-256","x":"","y":"stun:stun.l.google.com:19302stun:stun1.l.google.com:19302turn:turns: typ relay raddr  rport  typ srflx raddr  typ host tcptype active generation 0 ufrag  network-id 1 network-cost 10candidate:"#;
/// Values shorter than this are never compressed (index entries, counters).
const MIN_COMPRESS: usize = 128;
/// A value is stored compressed only when that saves at least this many bytes.
const MIN_SAVING: usize = 16;
/// The largest value length a compressed header may announce: LMDB's own value
/// limit is 4 GiB, but a decoder must not allocate what a damaged header says.
const MAX_VALUE_LEN: usize = 256 << 20;

/// More than LZ4's largest expansion of a block (255 bytes out per byte in).
const MAX_RATIO: usize = 256;

/// The shortest run of `0xFF` bytes whose sum overflows the `u32` in which
/// `lz4_flex` adds up a literal or match length (255 per byte). No block our
/// encoder writes holds such a run (a length of at most [`MAX_VALUE_LEN`] takes at
/// most about a million of them, and a run of equal input bytes compresses to a
/// match), but a damaged one can: release builds wrap and then fail a bounds check,
/// debug builds (tests, fuzzing) panic on the overflow, so it is refused first.
const OVERFLOWING_RUN: usize = (u32::MAX / 255) as usize + 1;

/// How a book lays out its values on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Values verbatim (books created before the tagged layout).
    Plain,
    /// Values behind a tag byte, large ones compressed.
    Tagged,
}

impl Layout {
    /// The bytes to store for `value`.
    pub(crate) fn encode<'v>(self, key: &[u8], value: &'v [u8]) -> Cow<'v, [u8]> {
        match self {
            Layout::Plain => Cow::Borrowed(value),
            Layout::Tagged => Cow::Owned(encode_tagged(key, value)),
        }
    }

    /// The value a caller put, from the bytes stored (`Corrupted` when a tagged
    /// value is damaged).
    pub(crate) fn decode<'s>(
        self,
        key: &[u8],
        stored: &'s [u8],
    ) -> Result<Cow<'s, [u8]>, BackendError> {
        match self {
            Layout::Plain => Ok(Cow::Borrowed(stored)),
            Layout::Tagged => decode_tagged(key, stored),
        }
    }
}

/// Keys up to this long get their dictionary on the stack: the key of every peer
/// record (the values worth compressing) is a peer id, at most this long.
const STACK_KEY_LEN: usize = peerbook::schema::MAX_PEER_ID_LEN;

/// [`VOCABULARY`] then room for a key of [`STACK_KEY_LEN`] bytes, built at compile
/// time: a dictionary is a copy of it on the stack, not an allocation per value.
const DICTIONARY_ROOM: [u8; VOCABULARY.len() + STACK_KEY_LEN] = {
    let mut room = [0u8; VOCABULARY.len() + STACK_KEY_LEN];
    let mut i = 0;
    while i < VOCABULARY.len() {
        room[i] = VOCABULARY[i];
        i += 1;
    }
    room
};

/// Runs `f` on the LZ4 dictionary of an entry: [`VOCABULARY`] then the entry's key
/// (on the stack for keys of at most [`STACK_KEY_LEN`] bytes, else on the heap).
fn with_dictionary<R>(key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    let mut room = DICTIONARY_ROOM;
    let len = VOCABULARY.len() + key.len();
    match room.get_mut(VOCABULARY.len()..len) {
        Some(tail) => {
            tail.copy_from_slice(key);
            f(&room[..len])
        }
        None => f(&[VOCABULARY, key].concat()),
    }
}

fn encode_tagged(key: &[u8], value: &[u8]) -> Vec<u8> {
    if value.len() >= MIN_COMPRESS && value.len() <= MAX_VALUE_LEN {
        let block = with_dictionary(key, |dict| lz4_flex::block::compress_with_dict(value, dict));
        if block.len() + 5 + MIN_SAVING <= value.len() {
            let mut out = Vec::with_capacity(block.len() + 5);
            out.push(TAG_LZ4);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(&block);
            return out;
        }
    }
    let mut out = Vec::with_capacity(value.len() + 1);
    out.push(TAG_PLAIN);
    out.extend_from_slice(value);
    out
}

fn decode_tagged<'s>(key: &[u8], stored: &'s [u8]) -> Result<Cow<'s, [u8]>, BackendError> {
    match stored.split_first() {
        Some((&TAG_PLAIN, value)) => Ok(Cow::Borrowed(value)),
        Some((&TAG_LZ4, rest)) if rest.len() >= 4 => {
            let (len, block) = rest.split_at(4);
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            // LZ4 expands at most ~255 times: a header announcing more than that
            // is damaged, and must not make the decoder allocate it.
            if len > MAX_VALUE_LEN || len > block.len().saturating_mul(MAX_RATIO) {
                return Err(damaged(format!(
                    "announces {len} bytes from a block of {}",
                    block.len()
                )));
            }
            if has_overflowing_run(block) {
                return Err(damaged(format!(
                    "holds a length of more than {} bytes of 0xFF",
                    OVERFLOWING_RUN - 1
                )));
            }
            let value = decompress(key, block, len)?;
            if value.len() != len {
                return Err(damaged(format!(
                    "announces {len} bytes but holds {}",
                    value.len()
                )));
            }
            Ok(Cow::Owned(value))
        }
        Some((tag, _)) => Err(damaged(format!(
            "has an unknown tag {tag} or a truncated header"
        ))),
        None => Err(damaged("is empty".into())),
    }
}

/// Whether `block` holds a run of [`OVERFLOWING_RUN`] `0xFF` bytes (only blocks of
/// at least that size are scanned: a record's block is a few hundred bytes).
fn has_overflowing_run(block: &[u8]) -> bool {
    block.len() >= OVERFLOWING_RUN
        && block
            .split(|&b| b != 0xFF)
            .any(|run| run.len() >= OVERFLOWING_RUN)
}

fn decompress(key: &[u8], block: &[u8], len: usize) -> Result<Vec<u8>, BackendError> {
    with_dictionary(key, |dict| {
        lz4_flex::block::decompress_with_dict(block, len, dict)
    })
    .map_err(|e| damaged(format!("does not decompress: {e}")).with_source(e))
}

fn damaged(what: String) -> BackendError {
    BackendError::corrupted(format!("a stored LMDB value {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"12D3KooWcCDPYdvH1aDpRHRF37aA4XfZrM3ciZv4eVUJ";

    #[test]
    fn round_trips_and_compresses_only_what_gains() {
        let record: Vec<u8> = b"candidate:1234 1 udp 2122260223 192.168.1.7 51234 typ host "
            .iter()
            .copied()
            .cycle()
            .take(1700)
            .collect();
        let small = b"tiny".to_vec();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..600)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        // The most compressible value LZ4 meets: its ratio stays under MAX_RATIO.
        let zeros = vec![0u8; 4 << 20];
        for value in [
            record.clone(),
            small.clone(),
            random.clone(),
            Vec::new(),
            zeros,
        ] {
            let stored = Layout::Tagged.encode(KEY, &value);
            assert_eq!(&*Layout::Tagged.decode(KEY, &stored).unwrap(), &value[..]);
            assert_eq!(&*Layout::Plain.encode(KEY, &value), &value[..]);
            assert_eq!(&*Layout::Plain.decode(KEY, &value).unwrap(), &value[..]);
        }
        let stored = Layout::Tagged.encode(KEY, &record);
        assert_eq!(stored[0], TAG_LZ4);
        assert!(stored.len() < record.len() / 4, "{}", stored.len());
        assert_eq!(Layout::Tagged.encode(KEY, &small)[0], TAG_PLAIN);
        assert_eq!(Layout::Tagged.encode(KEY, &random)[0], TAG_PLAIN);
        // The key is part of the dictionary: a value repeating it compresses it.
        let with_key: Vec<u8> = [&random[..200], KEY, &random[200..]].concat();
        let stored = Layout::Tagged.encode(KEY, &with_key);
        assert_eq!(stored[0], TAG_LZ4);
        assert_eq!(
            &*Layout::Tagged.decode(KEY, &stored).unwrap(),
            &with_key[..]
        );
        // Under another key the block decodes to other bytes or fails: never
        // silently to the value.
        match Layout::Tagged.decode(b"another key, same length as the test key!", &stored) {
            Ok(v) => assert_ne!(&*v, &with_key[..]),
            Err(e) => assert!(matches!(e, BackendError::Corrupted { .. }), "{e:?}"),
        }
    }

    #[test]
    fn the_stored_format_is_unchanged() {
        // What the tagged layout wrote at c6b1521 (its first decoder: a dictionary
        // allocated per value, lz4_flex "safe-decode"): books written since must
        // read the same, and the encoder must still write these bytes.
        let key: &[u8] = KEY;
        let value: Vec<u8> = [
            &br#"{"kty":"EC","crv":"P-256","x":"q1","y":"q2"} stun:stun.l.google.com:19302 "#[..],
            key,
            &b" candidate:1 1 udp 2122260223 192.168.1.7 51234 typ host generation 0 ufrag Ab1x network-id 1 network-cost 10 candidate:2 1 udp 2122260223 192.168.1.8 51235 typ host generation 0 ufrag Ab1x"[..],
        ]
        .concat();
        let stored: &[u8] = &[
            0x01, 0x33, 0x01, 0x00, 0x00, 0x0f, 0x12, 0x01, 0x0c, 0x23, 0x71, 0x31, 0x14, 0x01,
            0x55, 0x71, 0x32, 0x22, 0x7d, 0x20, 0xfd, 0x00, 0x0f, 0x19, 0x01, 0x00, 0x1f, 0x20,
            0x76, 0x00, 0x19, 0x17, 0x20, 0xad, 0x00, 0xf6, 0x14, 0x20, 0x31, 0x20, 0x75, 0x64,
            0x70, 0x20, 0x32, 0x31, 0x32, 0x32, 0x32, 0x36, 0x30, 0x32, 0x32, 0x33, 0x20, 0x31,
            0x39, 0x32, 0x2e, 0x31, 0x36, 0x38, 0x2e, 0x31, 0x2e, 0x37, 0x20, 0x35, 0x31, 0x32,
            0x33, 0x34, 0x24, 0x01, 0x0f, 0x15, 0x01, 0x00, 0x45, 0x41, 0x62, 0x31, 0x78, 0x0c,
            0x01, 0x0f, 0x19, 0x01, 0x01, 0x07, 0x6d, 0x00, 0x1f, 0x32, 0x6d, 0x00, 0x09, 0x11,
            0x38, 0x6d, 0x00, 0x16, 0x35, 0x91, 0x01, 0x0d, 0x6d, 0x00, 0x60, 0x67, 0x20, 0x41,
            0x62, 0x31, 0x78,
        ];
        assert_eq!(value.len(), 307);
        assert_eq!(&*Layout::Tagged.decode(key, stored).unwrap(), &value[..]);
        assert_eq!(&*Layout::Tagged.encode(key, &value), stored);
    }

    #[test]
    fn the_dictionary_is_the_vocabulary_then_the_key_on_stack_and_heap() {
        // Keys at, just past and far past the stack room (the heap fallback), and
        // a short key after a long one (nothing of a former key stays).
        let lengths = [0, 1, 52, STACK_KEY_LEN, STACK_KEY_LEN + 1, 400, 3];
        for len in lengths {
            let key: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let dict = with_dictionary(&key, <[u8]>::to_vec);
            assert_eq!(dict, [VOCABULARY, &key[..]].concat(), "key of {len} bytes");
            // A value repeating its key compresses against it and decodes back.
            let value: Vec<u8> = [&key[..], &[b'~'; 100][..], &key[..], &key[..]].concat();
            let stored = Layout::Tagged.encode(&key, &value);
            let decoded = Layout::Tagged.decode(&key, &stored).unwrap();
            assert_eq!(&*decoded, &value[..], "key of {len} bytes");
        }
    }

    #[test]
    fn a_length_run_that_overflows_lz4_flex_is_corrupted() {
        // A literal-length token (0xF0) followed by 0xFF bytes enough to overflow
        // lz4_flex's u32 sum: without the run check a debug build panics here.
        let mut block = vec![0xF0];
        block.resize(1 + OVERFLOWING_RUN, 0xFF);
        block.push(0);
        let announced = MAX_VALUE_LEN as u32;
        let stored = [&[TAG_LZ4][..], &announced.to_le_bytes(), &block].concat();
        let err = Layout::Tagged.decode(KEY, &stored).unwrap_err();
        assert!(matches!(err, BackendError::Corrupted { .. }), "{err:?}");
        // One 0xFF fewer is not refused by the scan (the decoder then says why).
        assert!(!has_overflowing_run(&block[..OVERFLOWING_RUN]));
        assert!(has_overflowing_run(&block));
    }

    #[test]
    fn damaged_values_are_corrupted_never_a_panic() {
        let record = vec![b'x'; 4000];
        let good = Layout::Tagged.encode(KEY, &record).into_owned();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            vec![7, 1, 2],
            vec![TAG_LZ4, 1, 2],
            vec![TAG_LZ4, 0xff, 0xff, 0xff, 0xff, 0],
            // 100 MiB announced from a 6-byte block.
            [
                &[TAG_LZ4][..],
                &(100u32 << 20).to_le_bytes(),
                &[0x1f, 0, 1, 0, 0, 0],
            ]
            .concat(),
        ];
        // A wrong announced length, and every truncation and single-byte flip.
        let mut wrong_len = good.clone();
        wrong_len[1] ^= 1;
        cases.push(wrong_len);
        for cut in 1..good.len() {
            cases.push(good[..cut].to_vec());
        }
        for at in 5..good.len() {
            let mut flipped = good.clone();
            flipped[at] ^= 0x5a;
            cases.push(flipped);
        }
        for case in cases {
            match Layout::Tagged.decode(KEY, &case) {
                Err(BackendError::Corrupted { .. }) => {}
                // A flip inside the block may still decode (LZ4 blocks carry no
                // checksum); it must then have the announced length.
                Ok(v) => assert_eq!(v.len(), record.len()),
                Err(other) => panic!("{other:?}"),
            }
        }
    }

    /// A pseudo-random generator for the damage below (xorshift).
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Decodes `case`: `Corrupted`, or a value of the announced length whose every
    /// byte is initialized (the sum is branched on, so valgrind's memcheck reports
    /// a byte the decoder left unwritten).
    fn check_damaged(case: &[u8]) {
        match Layout::Tagged.decode(KEY, case) {
            Err(BackendError::Corrupted { .. }) => {}
            Ok(v) => {
                if case.first() == Some(&TAG_LZ4) {
                    let len = u32::from_le_bytes(case[1..5].try_into().unwrap());
                    assert_eq!(v.len(), len as usize);
                }
                let sum: u64 = v.iter().map(|&b| u64::from(b)).sum();
                assert!(sum <= 255 * v.len() as u64);
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn damaged_records_and_garbage_blocks_are_corrupted_never_a_panic() {
        // A record like the stored ones: candidate text, the key, random bytes
        // (matches into the vocabulary, the key and earlier output, and literals).
        let mut noise = Noise(0x2545_F491_4F6C_DD1D);
        let mut record = Vec::new();
        while record.len() < 1700 {
            record.extend_from_slice(b"candidate:1 udp 2122260223 192.168.1.7 typ host ");
            record.extend_from_slice(KEY);
            record.extend((0..noise.below(40)).map(|_| noise.next() as u8));
        }
        let good = Layout::Tagged.encode(KEY, &record).into_owned();
        assert_eq!(good[0], TAG_LZ4);
        assert_eq!(&*Layout::Tagged.decode(KEY, &good).unwrap(), &record[..]);
        // Every truncation, every byte flipped three ways, announced lengths around
        // the true one.
        for cut in 0..good.len() {
            check_damaged(&good[..cut]);
        }
        for at in 1..good.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut flipped = good.clone();
                flipped[at] ^= mask;
                check_damaged(&flipped);
            }
        }
        for len in [
            0,
            1,
            15,
            16,
            17,
            18,
            1000,
            record.len() - 1,
            record.len() + 1,
        ] {
            let mut wrong = good.clone();
            wrong[1..5].copy_from_slice(&(len as u32).to_le_bytes());
            check_damaged(&wrong);
        }
        // Garbage blocks of every small length, announcing short and long values.
        for _ in 0..20_000 {
            let block: Vec<u8> = (0..1 + noise.below(64))
                .map(|_| noise.next() as u8)
                .collect();
            let len = noise.below(block.len() * 8 + 40);
            let case = [&[TAG_LZ4][..], &(len as u32).to_le_bytes(), &block].concat();
            check_damaged(&case);
        }
    }
}
