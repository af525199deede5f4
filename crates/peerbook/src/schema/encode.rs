//! [`PeerRecord::encode`] and its scratch buffer: postcard grows its output byte by byte
//! (nine reallocations for a 1.6 KB record, each copying what it had), so a record
//! is encoded into a buffer kept per thread, then copied once into a value of
//! exactly its length (no spare capacity held by a stored value either).

use std::cell::RefCell;

use postcard::ser_flavors::Flavor;
use serde::Serialize;

use super::{PeerRecord, RECORD_FORMAT_V2};

impl PeerRecord {
    /// The stored encoding: [`RECORD_FORMAT_V2`] then the postcard body.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing into a Vec cannot fail for these types (sized sequences and
        // maps); fall back to an empty body that decode rejects, never a panic.
        encode_with_format(RECORD_FORMAT_V2, self).unwrap_or_else(|| vec![RECORD_FORMAT_V2])
    }
}

/// A scratch buffer grown past this is dropped after use, not kept.
const KEEP_AT_MOST: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A postcard output appending to a borrowed buffer with `extend_from_slice` (the
/// `Extend` output of `to_extend` went through an iterator for every string).
struct Scratch<'a>(&'a mut Vec<u8>);

impl Flavor for Scratch<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// `format` then the postcard body of `value`, in a `Vec` of exactly that length;
/// `None` when postcard fails.
fn encode_with_format<T: Serialize>(format: u8, value: &T) -> Option<Vec<u8>> {
    let fresh = || postcard::to_extend(value, vec![format]).ok();
    SCRATCH
        .try_with(|cell| {
            // Busy only if a Serialize impl re-entered encode: take a fresh buffer.
            let Ok(mut scratch) = cell.try_borrow_mut() else {
                return fresh();
            };
            scratch.clear();
            scratch.push(format);
            let encoded = postcard::serialize_with_flavor(value, Scratch(&mut scratch));
            let out = encoded.ok().map(|()| scratch.as_slice().to_vec());
            if scratch.capacity() > KEEP_AT_MOST {
                *scratch = Vec::new();
            }
            out
        })
        // The thread is being torn down: no scratch buffer left to use.
        .unwrap_or_else(|_| fresh())
}
