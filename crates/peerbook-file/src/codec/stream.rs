//! Reading a file frame by frame from an [`io::Read`] (what open does), holding one
//! frame body at a time instead of the whole file: the same checks, in the same
//! order, with the same [`FormatError`]s as [`read_frame`](super::read_frame) on the
//! whole file in memory.
//!
//! A length read from the file is never trusted for an allocation: a body is read
//! in steps of at most [`STEP`] bytes, so a damaged length costs at most the bytes
//! actually present.

use std::io::{self, BufReader, Read};

use super::{
    check_file_header, crc32c, crc32c_append, header_len, le_u32, le_u64, FileKind, Header,
    FILE_HEADER_LEN, FRAME_HEADER_LEN, MAX_FRAME_BODY,
};
use crate::FormatError;

/// The largest step a body buffer grows by while it is read.
const STEP: usize = 1 << 20;
/// The read buffer between the file and the frame parser.
const BUFFER: usize = 64 << 10;

/// What [`FrameStream::next`] found at the current offset.
#[derive(Debug)]
pub(crate) enum Next {
    /// A valid frame; its body is [`FrameStream::body`] until the next call.
    Frame {
        /// Its `synced_to` field.
        synced_to: u64,
    },
    /// The end of the file, exactly at a frame boundary.
    End,
    /// The bytes at [`FrameStream::offset`] are not a valid frame (read the rest
    /// with [`FrameStream::into_rest`]).
    Bad {
        /// Why they are not one.
        error: FormatError,
    },
}

/// The frames of one file, read in order.
pub(crate) struct FrameStream {
    reader: BufReader<Box<dyn Read + Send>>,
    seed: u32,
    /// Offset of the next frame in the file (of the bad one after [`Next::Bad`]).
    offset: usize,
    body: Vec<u8>,
    /// After a [`Next::Bad`]: the bytes of the bad frame already read.
    spent: Vec<u8>,
}

impl std::fmt::Debug for FrameStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStream")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// Read into `buf` until it is full or the reader ends; returns the bytes read.
pub(crate) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl FrameStream {
    /// Check the header of the file `reader` reads (as
    /// [`check_file_header`] does on the whole file) and stand on its first frame.
    /// `Ok(Err(_))` is a bad header, `Err(_)` an I/O error.
    pub(crate) fn open(
        kind: FileKind,
        mut reader: Box<dyn Read + Send>,
        generation: u64,
    ) -> io::Result<Result<(Header, FrameStream), FormatError>> {
        let mut head = [0u8; FILE_HEADER_LEN];
        let n = read_full(&mut reader, &mut head)?;
        let header = match check_file_header(kind, &head[..n], generation) {
            Ok(header) => header,
            Err(e) => return Ok(Err(e)),
        };
        debug_assert_eq!(header.len, header_len(&head[..n]));
        // A version-1 header is shorter: the bytes read past it start the first frame.
        let rest = head[header.len..n].to_vec();
        let reader: Box<dyn Read + Send> = Box::new(io::Cursor::new(rest).chain(reader));
        Ok(Ok((
            header,
            FrameStream {
                reader: BufReader::with_capacity(BUFFER, reader),
                seed: header.seed,
                offset: header.len,
                body: Vec::new(),
                spent: Vec::new(),
            },
        )))
    }

    /// The seed of the file's frame header CRCs.
    pub(crate) fn seed(&self) -> u32 {
        self.seed
    }

    /// The offset of the next frame (after a [`Next::Bad`], of the bad one).
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }

    /// The body of the frame [`next`](FrameStream::next) returned last.
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }

    /// Every byte left in the file from the current offset (for the torn-tail scan,
    /// after a [`Next::Bad`] has left the offset on the bad frame). Consumes the
    /// stream.
    pub(crate) fn into_rest(mut self) -> io::Result<Vec<u8>> {
        let mut rest = std::mem::take(&mut self.spent);
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }

    /// How many bytes are left in the file after the last frame read (consumes
    /// the stream; for the bytes after a snapshot's end frame).
    pub(crate) fn bytes_left(mut self) -> io::Result<u64> {
        io::copy(&mut self.reader, &mut io::sink())
    }

    /// Read the next frame. The checks and their order are those of
    /// [`read_frame`](super::read_frame).
    pub(crate) fn next(&mut self) -> io::Result<Next> {
        let offset = self.offset;
        let mut h = [0u8; FRAME_HEADER_LEN];
        let n = read_full(&mut self.reader, &mut h)?;
        if n == 0 {
            return Ok(Next::End);
        }
        let error = match self.frame(&h[..n]) {
            Ok(()) => {
                self.offset = offset + FRAME_HEADER_LEN + self.body.len();
                return Ok(Next::Frame {
                    synced_to: le_u64(&h, 4),
                });
            }
            Err(Err(e)) => return Err(e),
            Err(Ok(error)) => error,
        };
        self.spent = h[..n].to_vec();
        self.spent.append(&mut self.body);
        Ok(Next::Bad { error })
    }

    /// Check the frame header `h` and read and check the body: `Err(Ok(_))` is a
    /// bad frame, `Err(Err(_))` an I/O error.
    fn frame(&mut self, h: &[u8]) -> Result<(), io::Result<FormatError>> {
        self.body.clear();
        if h.len() < FRAME_HEADER_LEN {
            return Err(Ok(FormatError::ShortFrameHeader {
                left: h.len(),
                need: FRAME_HEADER_LEN,
            }));
        }
        if le_u32(h, 16) != crc32c_append(self.seed, &h[0..16]) {
            return Err(Ok(FormatError::FrameHeaderChecksum));
        }
        let len = le_u32(h, 0) as usize;
        if len == 0 || len > MAX_FRAME_BODY {
            return Err(Ok(FormatError::FrameLength { len }));
        }
        while self.body.len() < len {
            let step = (len - self.body.len()).min(STEP) as u64;
            let got = (&mut self.reader)
                .take(step)
                .read_to_end(&mut self.body)
                .map_err(Err)?;
            if got == 0 {
                break;
            }
        }
        if self.body.len() < len {
            let left = self.body.len();
            return Err(Ok(FormatError::FramePastEnd { len, left }));
        }
        if le_u32(h, 12) != crc32c(&self.body) {
            return Err(Ok(FormatError::FrameBodyChecksum));
        }
        Ok(())
    }
}
