//! Byte-level encoding of file headers, frames and batch bodies (see FORMAT.md, the `format` module
//! for the layout). Every decoder here works on a byte slice already in memory,
//! checks each length against the bytes that remain before using it, never
//! pre-allocates from a length it read, and reports damage as a typed [`FormatError`]
//! instead of panicking.

use peerbook::backend::{Op, Space, WriteBatch};

use crate::crc::{crc32c, crc32c_append};
use crate::FormatError;

mod body;
mod stream;
pub(crate) use body::{body_ops, FrameOp, LogOp, Ops};
#[cfg(test)]
use body::{decode_body, Reader};
pub(crate) use stream::{read_full, FrameStream, Next};

/// Current on-disk format version, in both file headers. Version 1 files (no salt)
/// are still read.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// Length of a file header (log and snapshot) of the current version.
pub(crate) const FILE_HEADER_LEN: usize = 40;
/// Length of a version-1 file header.
const FILE_HEADER_LEN_V1: usize = 24;
/// Length of the random per-file salt in a version-2 header.
pub(crate) const SALT_LEN: usize = 16;
/// Length of a frame header.
pub(crate) const FRAME_HEADER_LEN: usize = 20;
/// Largest frame body accepted, written or read (1 GiB).
pub(crate) const MAX_FRAME_BODY: usize = 1 << 30;

/// Op tags inside a batch body.
const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_CLEAR: u8 = 3;
const OP_END: u8 = 4;

/// Which of the two file kinds a header belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Log,
    Snapshot,
}

impl FileKind {
    pub(crate) const fn magic(self) -> &'static [u8; 8] {
        match self {
            FileKind::Log => b"PBOOKLOG",
            FileKind::Snapshot => b"PBOOKSNP",
        }
    }

    pub(crate) const fn magic_text(self) -> &'static str {
        match self {
            FileKind::Log => "PBOOKLOG",
            FileKind::Snapshot => "PBOOKSNP",
        }
    }

    pub(crate) const fn noun(self) -> &'static str {
        match self {
            FileKind::Log => "log",
            FileKind::Snapshot => "snapshot",
        }
    }
}

/// The 40-byte (version 2) header of a file of `kind` for `generation`, with its
/// random `salt`.
pub(crate) fn encode_file_header(
    kind: FileKind,
    generation: u64,
    salt: &[u8; SALT_LEN],
) -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[0..8].copy_from_slice(kind.magic());
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&generation.to_le_bytes());
    h[20..36].copy_from_slice(salt);
    let crc = crc32c(&h[0..36]);
    h[36..40].copy_from_slice(&crc.to_le_bytes());
    h
}

/// A file header that checked: where the frames start and the seed of their CRCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The header's length (24 in version 1, 40 in version 2): the first frame's offset.
    pub(crate) len: usize,
    /// The seed of every frame header CRC of the file.
    pub(crate) seed: u32,
}

/// The header length a file of this content has, judging by its version field
/// (for telling an empty file from one holding frames, before a full check).
pub(crate) fn header_len(data: &[u8]) -> usize {
    if data.len() >= 12 && le_u32(data, 8) == 1 {
        FILE_HEADER_LEN_V1
    } else {
        FILE_HEADER_LEN
    }
}

/// The length of the log header at the start of `head` if it is one this crate
/// writes: its magic, a version it reads, a valid checksum, whatever generation it
/// names (a log whose generation has no snapshot is judged by whose bytes it holds,
/// not by its name). Else why not: an empty file, one too short for a header,
/// another magic, a newer format, a damaged header.
pub(crate) fn any_log_header_len(head: &[u8]) -> Result<usize, FormatError> {
    let generation = if head.len() >= 20 {
        le_u64(head, 12)
    } else {
        0
    };
    check_file_header(FileKind::Log, head, generation).map(|header| header.len)
}

/// Check the header at the start of `data` for a file of `kind` and `generation`
/// (version 1 or 2); returns where its frames start and their CRC seed.
pub(crate) fn check_file_header(
    kind: FileKind,
    data: &[u8],
    generation: u64,
) -> Result<Header, FormatError> {
    let magic = kind.magic();
    let n = data.len().min(magic.len());
    if data[..n] != magic[..n] {
        return Err(FormatError::BadMagic {
            found: data[..n].to_vec(),
            expected: kind.magic_text(),
            kind: kind.noun(),
        });
    }
    let need = header_len(data);
    if data.len() < need {
        return Err(FormatError::TruncatedHeader {
            len: data.len(),
            need,
        });
    }
    let version = le_u32(data, 8);
    let crc_at = need - 4;
    let crc_ok = le_u32(data, crc_at) == crc32c(&data[0..crc_at]);
    if version > FORMAT_VERSION {
        return Err(FormatError::NewerVersion {
            version,
            newest: FORMAT_VERSION,
            header_checksum_ok: crc_ok,
        });
    }
    if !crc_ok {
        return Err(FormatError::HeaderChecksum);
    }
    if version == 0 {
        return Err(FormatError::VersionZero);
    }
    let found = le_u64(data, 12);
    if found != generation {
        return Err(FormatError::GenerationMismatch {
            found,
            expected: generation,
        });
    }
    // version 1: no salt (bytes 20..20 are empty)
    let salt = &data[20..crc_at];
    Ok(Header {
        len: need,
        seed: frame_seed(generation, salt),
    })
}

/// The CRC seed of a frame header: the CRC-32C of the generation's 8 LE bytes and
/// the file's random salt (none in version 1), so a frame of one generation never
/// validates inside a file of another, and a frame forged by someone who does not
/// know the salt (e.g. inside a record's value) validates with odds of 2^-32.
pub(crate) fn frame_seed(generation: u64, salt: &[u8]) -> u32 {
    crc32c_append(crc32c(&generation.to_le_bytes()), salt)
}

/// One whole frame: header + `body`.
pub(crate) fn encode_frame(seed: u32, synced_to: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + body.len());
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    out.extend_from_slice(body);
    seal_frame(&mut out, seed, synced_to);
    out
}

/// Fill the header of `frame` (a zeroed header followed by the body, as
/// [`encode_frame`] and [`FrameBuilder`] lay it out): length, `synced_to`, body
/// checksum, header checksum.
fn seal_frame(frame: &mut [u8], seed: u32, synced_to: u64) {
    let (head, body) = frame.split_at_mut(FRAME_HEADER_LEN);
    // body.len() <= MAX_FRAME_BODY is checked by the encoders; saturate anyway.
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    head[0..4].copy_from_slice(&len.to_le_bytes());
    head[4..12].copy_from_slice(&synced_to.to_le_bytes());
    head[12..16].copy_from_slice(&crc32c(body).to_le_bytes());
    let head_crc = crc32c_append(seed, &head[0..16]);
    head[16..20].copy_from_slice(&head_crc.to_le_bytes());
}

/// A batch frame built in one buffer sized up front: the same bytes as
/// [`BodyEncoder`] then [`encode_frame`], without the two copies of every value
/// and the reallocations of a growing body (the write path of a batch, whose op
/// count and sizes are known before encoding).
pub(crate) struct FrameBuilder {
    frame: Vec<u8>,
}

impl FrameBuilder {
    /// A frame of `count` ops taking `ops_bytes` encoded bytes (see [`entry_size`]
    /// and [`delete_size`]); a wrong guess costs a reallocation, never wrong bytes.
    #[cfg(test)]
    pub(crate) fn new(count: u64, ops_bytes: usize) -> Self {
        Self::new_in(Vec::new(), count, ops_bytes)
    }

    /// [`new`](Self::new) in `buf` (emptied first), whose allocation it keeps when
    /// it is large enough.
    fn new_in(mut frame: Vec<u8>, count: u64, ops_bytes: usize) -> Self {
        frame.clear();
        frame.reserve_exact(FRAME_HEADER_LEN + varint_len(count) + ops_bytes);
        frame.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        put_varint(&mut frame, count);
        FrameBuilder { frame }
    }

    /// The frame of `batch`'s ops, in a buffer of exactly their size.
    #[cfg(test)]
    pub(crate) fn for_batch(batch: &WriteBatch) -> Self {
        Self::for_batch_in(Vec::new(), batch)
    }

    /// [`for_batch`](Self::for_batch) in `buf` (emptied first): a writer that keeps
    /// the buffer of its last frame allocates none for the next one.
    pub(crate) fn for_batch_in(buf: Vec<u8>, batch: &WriteBatch) -> Self {
        let size = batch
            .ops()
            .iter()
            .map(|op| match op {
                Op::Put { key, value, .. } => entry_size(key.len(), value.len()) as usize,
                Op::Delete { key, .. } => delete_size(key.len()),
            })
            .sum();
        let mut frame = FrameBuilder::new_in(buf, batch.ops().len() as u64, size);
        for op in batch.ops() {
            match op {
                Op::Put { space, key, value } => frame.put(*space, key, value),
                Op::Delete { space, key } => frame.delete(*space, key),
            }
        }
        frame
    }

    pub(crate) fn put(&mut self, space: Space, key: &[u8], value: &[u8]) {
        put_op(&mut self.frame, space, key, value);
    }

    pub(crate) fn delete(&mut self, space: Space, key: &[u8]) {
        delete_op(&mut self.frame, space, key);
    }

    /// The body size, checked against [`MAX_FRAME_BODY`] (`Err(size)` beyond it).
    pub(crate) fn check_size(&self) -> Result<(), usize> {
        let body = self.frame.len() - FRAME_HEADER_LEN;
        if body > MAX_FRAME_BODY {
            return Err(body);
        }
        Ok(())
    }

    /// The whole frame, its header filled for `seed` and `synced_to`.
    pub(crate) fn seal(mut self, seed: u32, synced_to: u64) -> Vec<u8> {
        seal_frame(&mut self.frame, seed, synced_to);
        self.frame
    }
}

/// A put op appended to a body: tag, space, key, value (both length-prefixed).
fn put_op(out: &mut Vec<u8>, space: Space, key: &[u8], value: &[u8]) {
    out.push(OP_PUT);
    out.push(space.index() as u8);
    put_bytes(out, key);
    put_bytes(out, value);
}

/// A delete op appended to a body: tag, space, key (length-prefixed).
fn delete_op(out: &mut Vec<u8>, space: Space, key: &[u8]) {
    out.push(OP_DELETE);
    out.push(space.index() as u8);
    put_bytes(out, key);
}

/// Bytes one delete op takes in a body (op tag, space, key length, key).
pub(crate) fn delete_size(key_len: usize) -> usize {
    2 + varint_len(key_len as u64) + key_len
}

/// A frame that decoded with both checksums valid.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// The `synced_to` field: the file length the writer knew durable when it
    /// appended this frame.
    pub(crate) synced_to: u64,
    /// The body bytes (open reads bodies through [`FrameStream`]; the torn-tail
    /// scan needs only where a frame ends).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) body: &'a [u8],
    /// Offset just past the frame.
    pub(crate) end: usize,
}

/// Read the frame at `off` of `data`. `Err` says why the bytes there are not a
/// valid frame (short, bad header checksum, bad length, body past EOF, bad body
/// checksum).
pub(crate) fn read_frame(data: &[u8], off: usize, seed: u32) -> Result<Frame<'_>, FormatError> {
    let left = data.len().saturating_sub(off);
    if left < FRAME_HEADER_LEN {
        return Err(FormatError::ShortFrameHeader {
            left,
            need: FRAME_HEADER_LEN,
        });
    }
    let h = &data[off..off + FRAME_HEADER_LEN];
    if le_u32(h, 16) != crc32c_append(seed, &h[0..16]) {
        return Err(FormatError::FrameHeaderChecksum);
    }
    let len = le_u32(h, 0) as usize;
    if len == 0 || len > MAX_FRAME_BODY {
        return Err(FormatError::FrameLength { len });
    }
    let body_start = off + FRAME_HEADER_LEN;
    if len > data.len() - body_start {
        return Err(FormatError::FramePastEnd {
            len,
            left: data.len() - body_start,
        });
    }
    let body = &data[body_start..body_start + len];
    if le_u32(h, 12) != crc32c(body) {
        return Err(FormatError::FrameBodyChecksum);
    }
    Ok(Frame {
        synced_to: le_u64(h, 4),
        body,
        end: body_start + len,
    })
}

/// What lies after a bad frame: see [`scan_after`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// A valid frame at this offset has `synced_to` greater than the bad frame's
    /// offset: it was appended after a sync had made the bad frame's bytes durable,
    /// so the bad frame is damage to synced data, not a torn write.
    Witness(usize),
    /// No witness; this many valid frames (all unsynced when written) follow.
    Torn { valid_frames_after: u64 },
    /// The frame header at this offset (header checksum valid) would be a
    /// witness by its `synced_to`, and checking its body would take the bytes
    /// checksummed by the scan past [`scan_budget`]: headers that validate with
    /// the file's salt and claim a sync after the bad frame, over bodies that do
    /// not check, over and over. No crash leaves those: a header written after a
    /// sync that covered the bad frame is a witness whose body checks (the first
    /// ends the scan). Refused, not scanned on (each such header can claim a body
    /// up to the end of the file: a quadratic scan).
    OverBudget { at: usize },
}

/// The body bytes a scan of a tail of `tail_len` bytes may checksum: twice the
/// tail. Past it, a header that would not be a witness has its body left
/// unchecked (the scan steps on by a byte, and the count of valid frames after
/// the bad one becomes a lower bound), and one that would be is
/// [`After::OverBudget`]. Stale headers a crash can leave (a failed append cut
/// back and written over, its header surviving a power cut) claim no sync after
/// the bad frame, so they cost budget but can never refuse an honest log.
fn scan_budget(tail_len: usize) -> usize {
    tail_len.saturating_mul(2)
}

/// Scan every offset after a bad frame at `bad_off` for valid frames, looking for
/// a witness (see [`After::Witness`]).
#[cfg(test)]
pub(crate) fn scan_after(data: &[u8], bad_off: usize, seed: u32) -> After {
    scan_tail(data.get(bad_off..).unwrap_or_default(), bad_off, seed)
}

/// [`scan_after`] on the bytes of the file from the bad frame on (`tail`, which
/// starts at offset `bad_off`): the offsets it returns are the file's.
pub(crate) fn scan_tail(tail: &[u8], bad_off: usize, seed: u32) -> After {
    scan_counting(tail, bad_off, seed).0
}

/// [`scan_tail`], with the body bytes it checksummed.
fn scan_counting(tail: &[u8], bad_off: usize, seed: u32) -> (After, usize) {
    let budget = scan_budget(tail.len());
    let mut checksummed = 0usize;
    let mut valid = 0u64;
    let mut p = 1;
    while p + FRAME_HEADER_LEN <= tail.len() {
        let h = &tail[p..p + FRAME_HEADER_LEN];
        let len = le_u32(h, 0) as usize;
        // The header decides first (its length fits, its checksum); only then is
        // the body checksummed (by `read_frame`), within the budget.
        if len == 0
            || len > MAX_FRAME_BODY
            || len > tail.len() - p - FRAME_HEADER_LEN
            || le_u32(h, 16) != crc32c_append(seed, &h[0..16])
        {
            p += 1;
            continue;
        }
        let at = bad_off + p;
        let synced_to = le_u64(h, 4);
        let could_witness = synced_to > bad_off as u64 && synced_to <= at as u64;
        if len > budget - checksummed {
            if could_witness {
                return (After::OverBudget { at }, checksummed);
            }
            p += 1;
            continue;
        }
        checksummed += len;
        if let Ok(frame) = read_frame(tail, p, seed) {
            // the header's synced_to, now that its body checks too
            if frame.synced_to > bad_off as u64 && frame.synced_to <= at as u64 {
                return (After::Witness(at), checksummed);
            }
            valid += 1;
            p = frame.end;
            continue;
        }
        p += 1;
    }
    let after = After::Torn {
        valid_frames_after: valid,
    };
    (after, checksummed)
}

/// Builds a batch body: `varint op count` then the ops.
#[derive(Debug, Default)]
pub(crate) struct BodyEncoder {
    ops: Vec<u8>,
    count: u64,
}

impl BodyEncoder {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn put(&mut self, space: Space, key: &[u8], value: &[u8]) {
        put_op(&mut self.ops, space, key, value);
        self.count += 1;
    }

    /// A delete op (batches are written through [`FrameBuilder`]; the tests build
    /// bodies with deletes here).
    #[cfg(test)]
    pub(crate) fn delete(&mut self, space: Space, key: &[u8]) {
        delete_op(&mut self.ops, space, key);
        self.count += 1;
    }

    /// A clear op. [`Backend::clear`](peerbook::backend::Backend::clear) now commits
    /// an empty generation instead, but logs written before still hold clear ops.
    #[cfg(test)]
    pub(crate) fn clear(&mut self) {
        self.ops.push(OP_CLEAR);
        self.count += 1;
    }

    pub(crate) fn end(&mut self, entries: u64) {
        self.ops.push(OP_END);
        put_varint(&mut self.ops, entries);
        self.count += 1;
    }

    /// Number of ops so far.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// Bytes of ops so far (without the count prefix).
    pub(crate) fn len(&self) -> usize {
        self.ops.len()
    }

    /// The finished body, or `Err(size)` when it exceeds [`MAX_FRAME_BODY`].
    pub(crate) fn finish(self) -> Result<Vec<u8>, usize> {
        let mut out = Vec::with_capacity(self.ops.len() + 10);
        put_varint(&mut out, self.count);
        out.extend_from_slice(&self.ops);
        if out.len() > MAX_FRAME_BODY {
            return Err(out.len());
        }
        Ok(out)
    }
}

/// Bytes one entry takes in a snapshot body (op tag, space, two lengths, key, value).
pub(crate) fn entry_size(key_len: usize, value_len: usize) -> u64 {
    (2 + varint_len(key_len as u64) + key_len + varint_len(value_len as u64) + value_len) as u64
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Little-endian u32 at `at`; callers guarantee `at + 4 <= data.len()`.
fn le_u32(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Little-endian u64 at `at`; callers guarantee `at + 8 <= data.len()`.
fn le_u64(data: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&data[at..at + 8]);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests;
