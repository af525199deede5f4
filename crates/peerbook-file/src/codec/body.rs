//! Decoding a batch body (FORMAT.md, "Body"): its ops one at a time, each borrowing
//! its bytes from the body.
//!
//! No op list is ever collected: an op decoded takes a few dozen bytes of memory
//! (a clear op is one byte on disk), so a list of a frame's ops would cost tens of
//! times the bytes present (a 1 GiB body of clear ops, tens of GiB). Open applies
//! (log) or checks and copies (snapshot) each op as it is decoded instead; a frame
//! that then fails to decode fails the whole open, so the ops of it already taken
//! are never seen by anyone.

use peerbook::backend::Space;

use super::{OP_CLEAR, OP_DELETE, OP_END, OP_PUT};
use crate::FormatError;

/// One operation of a batch body, its bytes held as `B`: owned ([`LogOp`]), or
/// borrowed from the body ([`OpRef`], what [`Ops`] decodes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FrameOp<B> {
    /// Insert or replace.
    Put { space: Space, key: B, value: B },
    /// Remove a key.
    Delete { space: Space, key: B },
    /// Empty every space.
    Clear,
    /// Snapshot only: the end of the snapshot, with its number of entries.
    End { entries: u64 },
}

/// An operation that owns its bytes.
pub(crate) type LogOp = FrameOp<Vec<u8>>;

/// An operation whose bytes are borrowed from the frame body it was decoded from.
pub(crate) type OpRef<'a> = FrameOp<&'a [u8]>;

impl OpRef<'_> {
    /// The same operation, owning a copy of its bytes.
    pub(crate) fn to_owned_op(&self) -> LogOp {
        match *self {
            FrameOp::Put { space, key, value } => FrameOp::Put {
                space,
                key: key.to_vec(),
                value: value.to_vec(),
            },
            FrameOp::Delete { space, key } => FrameOp::Delete {
                space,
                key: key.to_vec(),
            },
            FrameOp::Clear => FrameOp::Clear,
            FrameOp::End { entries } => FrameOp::End { entries },
        }
    }
}

/// The ops of a batch body, decoded one at a time (see [`body_ops`]). Yields each
/// op, then, if bytes follow the last one, [`FormatError::TrailingBytes`]; nothing
/// after an error.
#[derive(Debug)]
pub(crate) struct Ops<'a> {
    r: Reader<'a>,
    /// Ops decoded so far.
    index: u64,
    /// The op count the body declares.
    count: u64,
    /// Set once the last op, the trailing-bytes check or an error was yielded.
    done: bool,
}

/// The ops of `body`, once its op count checks (not zero, not beyond the bytes of
/// the body: each op takes at least one). Never panics, never allocates.
pub(crate) fn body_ops(body: &[u8]) -> Result<Ops<'_>, FormatError> {
    let mut r = Reader { data: body, pos: 0 };
    let count = r.varint("op count")?;
    if count == 0 {
        return Err(FormatError::EmptyBatch);
    }
    if count > r.remaining() as u64 {
        return Err(FormatError::OpCount {
            count,
            left: r.remaining(),
        });
    }
    Ok(Ops {
        r,
        index: 0,
        count,
        done: false,
    })
}

impl<'a> Ops<'a> {
    /// How many ops the body declares after those decoded so far.
    pub(crate) fn left(&self) -> u64 {
        self.count - self.index
    }

    /// Decode the ops not yet taken, for the body's first error if any (trailing
    /// bytes included): the caller that stopped taking ops early (a rule broken, an
    /// end marker) still reports a body that does not decode as such, as when every
    /// op was decoded before any was looked at.
    pub(crate) fn check_rest(&mut self) -> Result<(), FormatError> {
        for op in self {
            op?;
        }
        Ok(())
    }

    fn op(&mut self) -> Result<OpRef<'a>, FormatError> {
        let r = &mut self.r;
        let at = r.pos;
        Ok(match r.byte("op tag")? {
            OP_PUT => {
                let space = r.space()?;
                let key = r.bytes("key")?;
                let value = r.bytes("value")?;
                FrameOp::Put { space, key, value }
            }
            OP_DELETE => {
                let space = r.space()?;
                let key = r.bytes("key")?;
                FrameOp::Delete { space, key }
            }
            OP_CLEAR => FrameOp::Clear,
            OP_END => FrameOp::End {
                entries: r.varint("entry count")?,
            },
            tag => {
                return Err(FormatError::UnknownOp {
                    index: self.index,
                    at,
                    tag,
                })
            }
        })
    }
}

impl<'a> Iterator for Ops<'a> {
    type Item = Result<OpRef<'a>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.index == self.count {
            self.done = true;
            let count = self.r.remaining();
            return (count != 0).then_some(Err(FormatError::TrailingBytes { count }));
        }
        let op = self.op();
        self.index += 1;
        self.done = op.is_err();
        Some(op)
    }
}

/// Decode a whole batch body into owned ops (the tests' view of [`body_ops`]).
#[cfg(test)]
pub(crate) fn decode_body(body: &[u8]) -> Result<Vec<LogOp>, FormatError> {
    body_ops(body)?
        .map(|op| op.map(|op| op.to_owned_op()))
        .collect()
}

#[derive(Debug)]
pub(super) struct Reader<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn byte(&mut self, what: &'static str) -> Result<u8, FormatError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or(FormatError::BodyEnds { what, at: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn varint(&mut self, what: &'static str) -> Result<u64, FormatError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.byte(what)?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(FormatError::VarintOverflow { what, at: start });
            }
            value |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FormatError::VarintTooLong { what, at: start })
    }

    fn space(&mut self) -> Result<Space, FormatError> {
        let at = self.pos;
        let tag = self.byte("space tag")?;
        Space::from_index(tag as usize).ok_or(FormatError::UnknownSpace { tag, at })
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], FormatError> {
        let at = self.pos;
        let len = self.varint(what)?;
        if len > self.remaining() as u64 {
            return Err(FormatError::LengthPastEnd {
                what,
                len,
                at,
                left: self.remaining(),
            });
        }
        let len = len as usize;
        let out = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }
}
