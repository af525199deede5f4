//! [`LmdbOptions`]: the settings of an [`LmdbBackend`](crate::LmdbBackend), fixed at open.

/// Default [`LmdbOptions::initial_map_size`]: 16 MiB.
///
/// A book of a few hundred peers fits in well under 1 MiB, so a typical node never
/// grows its map; a bigger book grows it automatically.
pub const DEFAULT_INITIAL_MAP_SIZE: usize = 16 << 20;

/// Default [`LmdbOptions::max_map_size`]: 1 GiB.
///
/// About a thousand times what a typical node needs; it bounds how much disk a runaway
/// caller can fill before writes fail with [`BackendError::Full`].
///
/// [`BackendError::Full`]: peerbook::backend::BackendError::Full
pub const DEFAULT_MAX_MAP_SIZE: usize = 1 << 30;

/// Default [`LmdbOptions::max_readers`]: 126, LMDB's own default.
pub const DEFAULT_MAX_READERS: u32 = 126;

/// The smallest map the backend opens with, whatever the options say: 64 KiB.
pub const MIN_MAP_SIZE: usize = 64 << 10;

/// Settings of an [`LmdbBackend`](crate::LmdbBackend), fixed when it opens.
///
/// Durability is not among them: every write says how durable it must be
/// ([`Durability`](peerbook::backend::Durability)). There is no `MDB_NOSYNC` option:
/// the power-loss harness (`crates/peerbook-powerfail`) saw it corrupt the book, or
/// make the reopening process die with `SIGBUS`, within a few power cuts (see the
/// crate docs). Build from [`Default`] and the `with_*` methods:
///
/// ```
/// use peerbook_lmdb::LmdbOptions;
/// let options = LmdbOptions::default()
///     .with_initial_map_size(1 << 20)
///     .with_max_map_size(256 << 20);
/// assert_eq!(options.max_readers, 126);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LmdbOptions {
    /// Size in bytes of the memory map when the environment opens (default
    /// [`DEFAULT_INITIAL_MAP_SIZE`], 16 MiB).
    ///
    /// The map is address space, not disk: the data file only grows as pages are
    /// written. When a write needs more room the backend doubles the map (up to
    /// [`max_map_size`](Self::max_map_size)) and retries the write, so a small value only
    /// costs a few retries. When reopening an existing book the map starts at least at
    /// twice the data file's size. Rounded up to the OS page size and to at least
    /// [`MIN_MAP_SIZE`].
    pub initial_map_size: usize,
    /// Largest size in bytes the map may grow to (default [`DEFAULT_MAX_MAP_SIZE`],
    /// 1 GiB).
    ///
    /// A write that does not fit in a map of this size fails with
    /// [`BackendError::Full`](peerbook::backend::BackendError::Full) and changes
    /// nothing. Rounded down to the OS page size. If it is below
    /// [`initial_map_size`](Self::initial_map_size), the map opens at this size.
    pub max_map_size: usize,
    /// Most read transactions that may be open at once, across all threads (default
    /// [`DEFAULT_MAX_READERS`], 126).
    ///
    /// Every `get` and `scan` holds one for its duration. Beyond the limit a read
    /// fails with an engine error (`MDB_READERS_FULL`); raise it if more threads read
    /// at once. At least 1.
    pub max_readers: u32,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            initial_map_size: DEFAULT_INITIAL_MAP_SIZE,
            max_map_size: DEFAULT_MAX_MAP_SIZE,
            max_readers: DEFAULT_MAX_READERS,
        }
    }
}

impl LmdbOptions {
    /// These options with [`initial_map_size`](Self::initial_map_size) set to `bytes`.
    #[must_use]
    pub fn with_initial_map_size(mut self, bytes: usize) -> Self {
        self.initial_map_size = bytes;
        self
    }

    /// These options with [`max_map_size`](Self::max_map_size) set to `bytes`.
    #[must_use]
    pub fn with_max_map_size(mut self, bytes: usize) -> Self {
        self.max_map_size = bytes;
        self
    }

    /// These options with [`max_readers`](Self::max_readers) set to `readers`.
    #[must_use]
    pub fn with_max_readers(mut self, readers: u32) -> Self {
        self.max_readers = readers;
        self
    }
}
