//! The typed errors of the file format: [`FormatError`] (why bytes are not a valid
//! header, frame or batch body, from the codec) and [`RecoveryError`] (what open
//! found wrong with a store directory, after fjall's `RecoveryError`). Every
//! [`BackendError::Corrupted`](peerbook::backend::BackendError::Corrupted) of
//! [`FileBackend::open`](crate::FileBackend::open) carries a [`RecoveryError`] as its
//! `source`, so callers and tests match the variant, not the message.

use std::io;
use std::path::PathBuf;

use peerbook::backend::{BackendError, Space};

/// Why bytes are not what `FORMAT.md` says: a header, a frame or a batch body that
/// does not decode. Offsets inside a body (`at`) count from the body's first byte.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The file does not start with the magic of its kind.
    #[error("bad magic {found:02x?} (expected {expected:?}): not a peerbook-file {kind} file")]
    BadMagic {
        /// The bytes found (up to 8).
        found: Vec<u8>,
        /// The magic expected, as text.
        expected: &'static str,
        /// `"log"` or `"snapshot"`.
        kind: &'static str,
    },
    /// The file is shorter than its header.
    #[error("truncated header: the file has {len} bytes, a header needs {need}")]
    TruncatedHeader {
        /// Bytes in the file.
        len: usize,
        /// Bytes of a header of its version.
        need: usize,
    },
    /// A format version newer than this build reads.
    #[error(
        "format version {version} is newer than the newest this build reads \
         ({newest}): open it with a newer peerbook-file{}",
        if *header_checksum_ok { "" } else { " (the header checksum fails too: the header may be damaged)" }
    )]
    NewerVersion {
        /// The version in the header.
        version: u32,
        /// The newest version this build reads.
        newest: u32,
        /// Whether the header's checksum is valid (if not, the version may be damage).
        header_checksum_ok: bool,
    },
    /// The file header's CRC does not match.
    #[error("header checksum mismatch")]
    HeaderChecksum,
    /// Format version 0, which was never written.
    #[error("invalid format version 0")]
    VersionZero,
    /// The header names another generation than the file name.
    #[error("header names generation {found}, the file name generation {expected}")]
    GenerationMismatch {
        /// The generation in the header.
        found: u64,
        /// The generation of the file name.
        expected: u64,
    },
    /// Fewer bytes left than a frame header.
    #[error("only {left} bytes left, a frame header needs {need}")]
    ShortFrameHeader {
        /// Bytes left in the file.
        left: usize,
        /// Bytes of a frame header.
        need: usize,
    },
    /// The frame header's CRC does not match.
    #[error("frame header checksum mismatch")]
    FrameHeaderChecksum,
    /// A frame body length of 0 or over the 1 GiB limit.
    #[error("frame body length {len} out of range")]
    FrameLength {
        /// The length read.
        len: usize,
    },
    /// The frame body runs past the end of the file.
    #[error("frame body of {len} bytes runs past the end of the file ({left} bytes left)")]
    FramePastEnd {
        /// The body length read.
        len: usize,
        /// Bytes left after the frame header.
        left: usize,
    },
    /// The frame body's CRC does not match.
    #[error("frame body checksum mismatch")]
    FrameBodyChecksum,
    /// A batch of no op.
    #[error("empty batch (op count 0)")]
    EmptyBatch,
    /// An op count larger than the body could hold.
    #[error("op count {count} exceeds the {left} bytes of the body")]
    OpCount {
        /// The count read.
        count: u64,
        /// Bytes left in the body.
        left: usize,
    },
    /// An op tag that is not put, delete, clear or end.
    #[error("op {index} at body byte {at}: unknown op tag {tag}")]
    UnknownOp {
        /// Index of the op in the batch.
        index: u64,
        /// Where the op starts.
        at: usize,
        /// The tag read.
        tag: u8,
    },
    /// A space tag that is not a [`Space::index`].
    #[error("unknown space tag {tag} at body byte {at}")]
    UnknownSpace {
        /// The tag read.
        tag: u8,
        /// Where it was read.
        at: usize,
    },
    /// The body ends inside a field.
    #[error("body ends inside {what} (byte {at})")]
    BodyEnds {
        /// The field (`"key"`, `"op tag"`, ...).
        what: &'static str,
        /// Where the body ended.
        at: usize,
    },
    /// A varint over 64 bits.
    #[error("{what} at body byte {at}: varint overflows 64 bits")]
    VarintOverflow {
        /// The field.
        what: &'static str,
        /// Where the varint starts.
        at: usize,
    },
    /// A varint longer than 10 bytes.
    #[error("{what} at body byte {at}: varint longer than 10 bytes")]
    VarintTooLong {
        /// The field.
        what: &'static str,
        /// Where the varint starts.
        at: usize,
    },
    /// A key or value length past the end of the body.
    #[error("{what} length {len} at body byte {at} exceeds the {left} bytes left")]
    LengthPastEnd {
        /// The field.
        what: &'static str,
        /// The length read.
        len: u64,
        /// Where the length starts.
        at: usize,
        /// Bytes left after it.
        left: usize,
    },
    /// Bytes after the last op of a batch.
    #[error("{count} trailing bytes after the last op")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

/// What [`FileBackend::open`](crate::FileBackend::open) found wrong with a store
/// directory: damage it refuses to repair (see `FORMAT.md`, "Open and the torn-tail
/// rule"). The `source` of the open's
/// [`BackendError::Corrupted`](peerbook::backend::BackendError::Corrupted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// A file's header is damaged or of an unknown version.
    #[error("{}: {error}", file.display())]
    Header {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        #[source]
        error: FormatError,
    },
    /// A snapshot frame is damaged (a snapshot is complete before it is named, so
    /// any damage is an error).
    #[error("{}: snapshot frame at offset {offset}: {error}", file.display())]
    SnapshotFrame {
        /// The snapshot.
        file: PathBuf,
        /// Offset of the frame.
        offset: usize,
        /// What is wrong.
        #[source]
        error: FormatError,
    },
    /// A snapshot frame decodes but breaks a snapshot rule (only puts, no
    /// duplicate key, one end marker last, counting the entries).
    #[error("{}: snapshot frame at offset {offset}: {rule}", file.display())]
    SnapshotRule {
        /// The snapshot.
        file: PathBuf,
        /// Offset of the frame.
        offset: usize,
        /// The rule broken.
        rule: SnapshotRule,
    },
    /// Bytes after a snapshot's end frame.
    #[error("{}: {bytes} bytes after the end frame, at offset {offset}", file.display())]
    AfterEnd {
        /// The snapshot.
        file: PathBuf,
        /// Where they start.
        offset: usize,
        /// How many.
        bytes: usize,
    },
    /// A snapshot without its end frame.
    #[error("{}: the snapshot ends at {len} bytes without its end frame: it is truncated", file.display())]
    SnapshotTruncated {
        /// The snapshot.
        file: PathBuf,
        /// Its length.
        len: usize,
    },
    /// A damaged log frame that a later valid frame proves was synced: damage to
    /// acknowledged data, not a torn write.
    #[error(
        "log frame at offset {offset}: {error}; the valid frame at offset {witness} was \
         appended after the log had been synced past {offset}, so this is damage to \
         acknowledged data, not a torn write ({})",
        file.display()
    )]
    SyncedFrameDamaged {
        /// The log.
        file: PathBuf,
        /// Offset of the damaged frame.
        offset: usize,
        /// Why it is not a valid frame.
        #[source]
        error: FormatError,
        /// Offset of the later frame whose `synced_to` covers `offset`.
        witness: usize,
    },
    /// A damaged log frame, after which the search for a witness (FORMAT.md, the
    /// torn-tail rule) would checksum more than twice the bytes from the frame on
    /// for frame headers that claim a sync after the damaged frame: headers valid
    /// with the file's salt over bodies that are not, over and over. No crash
    /// leaves that (a header written after such a sync is a witness whose body
    /// checks), so it is refused, not scanned on.
    #[error(
        "log frame at offset {offset}: {error}; the frame header at offset {at} claims a \
         sync after it and a body past what the search for a witness checksums (twice \
         the {tail} bytes from offset {offset} on): frame headers valid with this \
         file's salt over bodies that are not, again and again, which no crash leaves \
         ({})",
        file.display()
    )]
    TailScanLimit {
        /// The log.
        file: PathBuf,
        /// Offset of the damaged frame.
        offset: usize,
        /// Why it is not a valid frame.
        #[source]
        error: FormatError,
        /// Offset of the frame header whose body would pass the limit.
        at: usize,
        /// Bytes from the damaged frame to the end of the log.
        tail: usize,
    },
    /// A log frame claiming more bytes synced than its own offset.
    #[error("log frame at offset {offset}: claims {synced_to} bytes synced, beyond its own offset ({})", file.display())]
    SyncedBeyondOffset {
        /// The log.
        file: PathBuf,
        /// Offset of the frame.
        offset: usize,
        /// Its `synced_to`.
        synced_to: u64,
    },
    /// A log frame whose checksums are valid but whose batch does not decode (it
    /// was written that way).
    #[error(
        "log frame at offset {offset}: its checksums are valid but its batch does not \
         decode: {error} ({})",
        file.display()
    )]
    UndecodableBatch {
        /// The log.
        file: PathBuf,
        /// Offset of the frame.
        offset: usize,
        /// Why the body does not decode.
        #[source]
        error: FormatError,
    },
    /// An end marker in a log.
    #[error("log frame at offset {offset}: an end marker belongs in snapshots only ({})", file.display())]
    EndInLog {
        /// The log.
        file: PathBuf,
        /// Offset of the frame.
        offset: usize,
    },
    /// The live generation's log is missing.
    #[error(
        "{} is missing although {snapshot} exists (it is created before the snapshot \
         is committed, so it was lost or removed)",
        file.display()
    )]
    MissingLog {
        /// The missing log.
        file: PathBuf,
        /// The snapshot's file name.
        snapshot: String,
    },
    /// A log holding frames without its snapshot (a snapshot file was lost).
    #[error("{} holds {bytes} bytes of frames but {} (a snapshot file was lost)",
        file.display(),
        match snapshot { Some(s) => format!("{s} does not exist"), None => "the directory has no snapshot".to_string() })]
    LostSnapshot {
        /// The log.
        file: PathBuf,
        /// Bytes of frames it holds.
        bytes: usize,
        /// The snapshot file name it needs, when other snapshots exist.
        snapshot: Option<String>,
    },
}

/// Why a [`Backend::clear`](peerbook::backend::Backend::clear) that committed
/// returned an error: the store is empty (on disk and in the handle, which goes on
/// taking writes), but a file of the directory may still hold bytes of former
/// entries. The `source` of the clear's
/// [`BackendError::Engine`](peerbook::backend::BackendError::Engine); its own
/// `source` is the I/O error. A later clear that succeeds, or the next open,
/// removes what is left.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClearError {
    /// A file of a former generation, or a temporary of this backend, could not be
    /// removed (the first such; the others are logged).
    #[error("cleared, but could not remove {}, which may hold former entries: {source}", file.display())]
    Remove {
        /// The file left.
        file: PathBuf,
        /// Why it could not be removed.
        #[source]
        source: io::Error,
    },
    /// The directory could not be listed, so files that earlier failed removals
    /// left may remain (the files of the generation the clear replaced were
    /// removed all the same).
    #[error("cleared, but could not list {} to remove every former file: {source}", dir.display())]
    List {
        /// The store directory.
        dir: PathBuf,
        /// Why it could not be listed.
        #[source]
        source: io::Error,
    },
    /// The directory sync after the removals failed: after a power loss, removed
    /// files may be back (the next open removes them).
    #[error("cleared, but the sync of {} after removing the former files failed, so a power loss may bring them back: {source}", dir.display())]
    SyncDir {
        /// The store directory.
        dir: PathBuf,
        /// Why it could not be synced.
        #[source]
        source: io::Error,
    },
}

/// A snapshot rule a decodable snapshot frame breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotRule {
    /// A key twice.
    #[error("duplicate key in {0}")]
    DuplicateKey(Space),
    /// Ops after the end marker.
    #[error("ops after the end marker")]
    OpsAfterEnd,
    /// The end marker's count is not the number of entries.
    #[error("the end marker counts {declared} entries, the snapshot holds {found}")]
    EndCount {
        /// The count in the marker.
        declared: u64,
        /// Entries found.
        found: u64,
    },
    /// A delete or clear in a snapshot.
    #[error("a snapshot holds only puts")]
    NotAPut,
}

impl From<RecoveryError> for BackendError {
    fn from(e: RecoveryError) -> Self {
        BackendError::corrupted(e.to_string()).with_source(e)
    }
}
