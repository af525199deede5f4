//! [`BackendExt`]: conveniences over any [`Backend`] built from its methods only,
//! for tests and tools (object_store's `ObjectStoreExt` pattern).

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::{Backend, BackendError, Direction, KeyRange, Space};

/// The entries of one space, in key order.
pub type SpaceDump = BTreeMap<Vec<u8>, Vec<u8>>;

/// The entries of every space, indexed by [`Space::index`].
pub type Dump = [SpaceDump; 4];

/// Conveniences over any [`Backend`] (implemented for all of them).
///
/// ```
/// use peerbook::backend::{Backend, BackendExt, Durability, Space, WriteBatch};
/// let backend = peerbook::MemoryBackend::new();
/// let mut batch = WriteBatch::new();
/// batch.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
/// backend.write(batch, Durability::Sync)?;
/// let dump = backend.dump()?;
/// assert_eq!(dump[Space::Meta.index()].get(&b"k"[..]), Some(&b"v".to_vec()));
/// assert!(dump[Space::Peers.index()].is_empty());
/// # Ok::<(), peerbook::backend::BackendError>(())
/// ```
pub trait BackendExt: Backend {
    /// Every entry of `space`, copied out by one forward scan.
    fn dump_space(&self, space: Space) -> Result<SpaceDump, BackendError> {
        let mut out = SpaceDump::new();
        self.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
            out.insert(k.to_vec(), v.to_vec());
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Every entry of every space: the whole dataset, in memory, for comparing a
    /// backend with a model in tests. Each space is scanned on its own, so a write
    /// running meanwhile may show in some spaces and not others; dump a
    /// [`view`](Backend::view) when that matters.
    fn dump(&self) -> Result<Dump, BackendError> {
        let mut out = Dump::default();
        for space in Space::ALL {
            out[space.index()] = self.dump_space(space)?;
        }
        Ok(out)
    }
}

impl<B: Backend + ?Sized> BackendExt for B {}
