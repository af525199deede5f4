//! The store's options: retention and quota settings (the seed's defaults),
//! durability, eviction, and the [`Clock`] that tells the time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::Durability;
use crate::crypto::MasterKey;

/// Where the store reads the time, in ms since the Unix epoch.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in ms since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(duration_ms)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use peerbook::{Clock, ManualClock};
/// use std::time::Duration;
/// let clock = ManualClock::new(1_000);
/// let shared = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(shared.now_ms(), 3_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now_ms)))
    }

    /// Set the time.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    /// Move the time forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = duration_ms(by);
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(by))
            });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A duration in whole ms, saturating at `u64::MAX`.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// How a [`PeerBook`](crate::PeerBook) behaves. Build with [`Options::new`] and adjust
/// the public fields; every default is the seed's.
///
/// ```
/// use peerbook::{MasterKey, Options};
/// use std::time::Duration;
/// let mut options = Options::new(MasterKey::from_bytes([7; 32]));
/// options.max_peers = 500;
/// options.inactive_after = Duration::from_secs(14 * 24 * 3600);
/// assert_eq!(options.failed_attempts, 5);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    /// The master key that seals secrets (never stored with the data).
    pub key: MasterKey,
    /// Most peers in the book (default 100).
    pub max_peers: u64,
    /// Optional cap on the sum of encoded record sizes, in bytes (default none).
    pub max_bytes: Option<u64>,
    /// A peer unseen for longer than this is stale (default 30 days).
    pub inactive_after: Duration,
    /// Failed reconnection attempts that blacklist a peer (default 5).
    pub failed_attempts: u32,
    /// How long a blacklist lasts (default 24 h).
    pub blacklist_for: Duration,
    /// How often cleanup should run (default 6 h).
    pub cleanup_interval: Duration,
    /// When a NEW peer would exceed a quota, evict the least recently seen peers
    /// instead of failing with `QuotaExceeded` (default false).
    pub evict_when_full: bool,
    /// Durability of every write (default [`Durability::Sync`]).
    pub durability: Durability,
    /// Where time comes from (default [`SystemClock`]).
    pub clock: Arc<dyn Clock>,
}

impl Options {
    /// The seed's defaults with `key`.
    pub fn new(key: MasterKey) -> Self {
        Options {
            key,
            max_peers: 100,
            max_bytes: None,
            inactive_after: Duration::from_secs(30 * 24 * 3600),
            failed_attempts: 5,
            blacklist_for: Duration::from_secs(24 * 3600),
            cleanup_interval: Duration::from_secs(6 * 3600),
            evict_when_full: false,
            durability: Durability::Sync,
            clock: Arc::new(SystemClock),
        }
    }

    /// Use `clock` for time.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}
