//! [`MemoryBackend`]: the reference implementation of [`Backend`], in memory.
//!
//! It is the model every real engine is compared against in the conformance kit and
//! the differential tests, and a handy backend for unit tests of applications.
//! Nothing is persisted: clones share the same data, so "reopening" a clone sees
//! every write, as a reopened disk store would. Clones also share one
//! [`BookClaim`]: one live book per backend, whichever clone it was opened on.
//!
//! The spaces are [`VersionedSpaces`]: a [`view`](Backend::view) costs no copy, and a
//! write while views are open keeps the old versions they need, not whole spaces.

use std::sync::Arc;

use crate::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, Op, ReadView, Space, Visit,
    WriteBatch,
};
use crate::mvcc::VersionedSpaces;

/// An in-memory [`Backend`] over four ordered maps.
///
/// ```
/// use peerbook::backend::{Backend, Durability, Space, WriteBatch};
/// use peerbook::MemoryBackend;
///
/// let backend = MemoryBackend::new();
/// let mut batch = WriteBatch::new();
/// batch.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
/// backend.write(batch, Durability::Sync).unwrap();
/// assert_eq!(backend.get(Space::Meta, b"k").unwrap(), Some(b"v".to_vec()));
/// ```
#[derive(Clone, Default)]
pub struct MemoryBackend {
    spaces: Arc<VersionedSpaces>,
    claim: BookClaim,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("entries_per_space", &self.spaces.lens())
            .finish()
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemoryBackend {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.spaces.get(space, key)
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.spaces.scan(space, range, direction, visitor)
    }

    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        Ok(Box::new(self.spaces.view()))
    }

    fn book_claim(&self) -> BookClaim {
        self.claim.clone()
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<(), BackendError> {
        self.spaces.apply(|b| {
            for op in batch.into_ops() {
                match op {
                    Op::Put { space, key, value } => {
                        b.put(space, key, value);
                    }
                    Op::Delete { space, key } => {
                        b.delete(space, key);
                    }
                }
            }
        });
        Ok(())
    }

    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn clear(&self, _durability: Durability) -> Result<(), BackendError> {
        self.spaces.apply(|b| b.clear());
        Ok(())
    }

    fn disk_usage(&self) -> Result<u64, BackendError> {
        Ok(0)
    }

    fn engine_name(&self) -> &'static str {
        "memory"
    }
}
