//! [`MemoryBackend`]: the reference implementation of [`Backend`], in memory.
//!
//! It is the model every real engine is compared against in the conformance kit and
//! the differential tests, and a handy backend for unit tests of applications.
//! Nothing is persisted: clones share the same data, so "reopening" a clone sees
//! every write, as a reopened disk store would. Clones also share one
//! [`BookClaim`]: one live book per backend, whichever clone it was opened on.
//!
//! Each space is an `Arc<BTreeMap>`; a [`view`](Backend::view) shares the four
//! `Arc`s, and a write copies a space that a live view still shares.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::backend::{
    Backend, BackendError, BookClaim, Direction, Durability, KeyRange, MapSpace, MapView, Op,
    ReadView, Space, Visit, WriteBatch,
};

type Spaces = [Arc<MapSpace>; 4];

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
    spaces: Arc<RwLock<Spaces>>,
    claim: BookClaim,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes = self.read().map(|s| s.each_ref().map(|m| m.len())).ok();
        f.debug_struct("MemoryBackend")
            .field("entries_per_space", &sizes)
            .finish()
    }
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Spaces>, BackendError> {
        self.spaces.read().map_err(|_| poisoned())
    }

    fn write_lock(&self) -> Result<RwLockWriteGuard<'_, Spaces>, BackendError> {
        self.spaces.write().map_err(|_| poisoned())
    }
}

fn poisoned() -> BackendError {
    BackendError::Engine {
        engine: "memory",
        message: "a thread panicked while holding the lock".into(),
    }
}

impl Backend for MemoryBackend {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.read()?[space.index()].get(key).cloned())
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        // A snapshot of the space, iterated without the lock: the visitor may call back.
        let map = Arc::clone(&self.read()?[space.index()]);
        MapView::scan_map(&map, range, direction, visitor);
        Ok(())
    }

    fn view(&self) -> Result<Box<dyn ReadView + '_>, BackendError> {
        Ok(Box::new(MapView::new(&*self.read()?)))
    }

    fn book_claim(&self) -> BookClaim {
        self.claim.clone()
    }

    fn write(&self, batch: WriteBatch, _durability: Durability) -> Result<(), BackendError> {
        let mut guard = self.write_lock()?;
        for op in batch.into_ops() {
            match op {
                Op::Put { space, key, value } => {
                    Arc::make_mut(&mut guard[space.index()]).insert(key, value);
                }
                Op::Delete { space, key } => {
                    if guard[space.index()].contains_key(&key) {
                        Arc::make_mut(&mut guard[space.index()]).remove(&key);
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn clear(&self, _durability: Durability) -> Result<(), BackendError> {
        let mut guard = self.write_lock()?;
        for map in guard.iter_mut() {
            *map = Arc::new(BTreeMap::new());
        }
        Ok(())
    }

    fn disk_usage(&self) -> Result<u64, BackendError> {
        Ok(0)
    }

    fn engine_name(&self) -> &'static str {
        "memory"
    }
}
