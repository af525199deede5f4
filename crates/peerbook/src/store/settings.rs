//! Retention settings kept in the book's meta (`retention`), so every program that
//! opens the book (the node, the `peerbook` command) can see the rules it runs by.
//!
//! The [`Options`] a book is opened with win: [`PeerBook::open`] writes their
//! retention part to meta when it differs from what is stored. A tool that should
//! follow the node reads them first with [`read_retention`] and opens with
//! [`RetentionSettings::apply`]. The value is a small JSON object with a format
//! version; records and the other meta entries are untouched.

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{PeerBook, Settings};
use crate::backend::{Backend, Space, WriteBatch};
use crate::error::{Error, Result};
use crate::options::{duration_ms, Options};
use std::time::Duration;

/// meta `retention`: [`RetentionSettings`] as JSON.
pub const META_RETENTION: &[u8] = b"retention";

/// The format version of the stored value; a newer one is refused as corrupted
/// rather than misread.
const RETENTION_FORMAT: u32 = 1;

/// The retention rules of a book, as stored in its meta: the [`Options`] fields
/// without the key, the durability and the clock. Durations are in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// [`Options::max_peers`].
    pub max_peers: u64,
    /// [`Options::max_bytes`].
    pub max_bytes: Option<u64>,
    /// [`Options::inactive_after`], in ms.
    pub inactive_after_ms: u64,
    /// [`Options::failed_attempts`].
    pub failed_attempts: u32,
    /// [`Options::blacklist_for`], in ms.
    pub blacklist_for_ms: u64,
    /// [`Options::cleanup_interval`], in ms.
    pub cleanup_interval_ms: u64,
    /// [`Options::evict_when_full`].
    pub evict_when_full: bool,
}

/// The stored form: the settings and the format version.
#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    #[serde(flatten)]
    settings: RetentionSettings,
}

impl RetentionSettings {
    /// The retention part of `options`.
    pub fn from_options(options: &Options) -> Self {
        RetentionSettings {
            max_peers: options.max_peers,
            max_bytes: options.max_bytes,
            inactive_after_ms: duration_ms(options.inactive_after),
            failed_attempts: options.failed_attempts,
            blacklist_for_ms: duration_ms(options.blacklist_for),
            cleanup_interval_ms: duration_ms(options.cleanup_interval),
            evict_when_full: options.evict_when_full,
        }
    }

    /// `options` with these retention rules (key, durability and clock kept).
    pub fn apply(&self, options: Options) -> Options {
        Options {
            max_peers: self.max_peers,
            max_bytes: self.max_bytes,
            inactive_after: Duration::from_millis(self.inactive_after_ms),
            failed_attempts: self.failed_attempts,
            blacklist_for: Duration::from_millis(self.blacklist_for_ms),
            cleanup_interval: Duration::from_millis(self.cleanup_interval_ms),
            evict_when_full: self.evict_when_full,
            ..options
        }
    }

    fn from_settings(s: &Settings) -> Self {
        RetentionSettings {
            max_peers: s.max_peers,
            max_bytes: s.max_bytes,
            inactive_after_ms: s.inactive_after_ms,
            failed_attempts: s.failed_attempts,
            blacklist_for_ms: s.blacklist_for_ms,
            cleanup_interval_ms: s.cleanup_interval_ms,
            evict_when_full: s.evict_when_full,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let stored = Stored {
            format: RETENTION_FORMAT,
            settings: self.clone(),
        };
        // A struct of integers and bools always serializes.
        serde_json::to_vec(&stored).unwrap_or_default()
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let corrupted = |detail: String| Error::Corrupted {
            what: "meta",
            location: "retention".into(),
            detail,
        };
        let stored: Stored =
            serde_json::from_slice(bytes).map_err(|e| corrupted(format!("not settings: {e}")))?;
        if stored.format != RETENTION_FORMAT {
            return Err(corrupted(format!(
                "format {} (this build reads {RETENTION_FORMAT})",
                stored.format
            )));
        }
        let s = stored.settings;
        if s.max_peers == 0 || s.failed_attempts == 0 || s.max_bytes == Some(0) {
            return Err(corrupted(
                "max_peers, failed_attempts and max_bytes must be at least 1".into(),
            ));
        }
        Ok(s)
    }
}

/// The retention settings stored in the book on `backend`, if any were written (a
/// book last opened by a peerbook before 0.1 has none). Needs no key: the settings
/// are not secret.
///
/// Fails with [`Error::Corrupted`] when the stored value does not decode.
pub fn read_retention<B: Backend + ?Sized>(backend: &B) -> Result<Option<RetentionSettings>> {
    match backend.get(Space::Meta, META_RETENTION)? {
        None => Ok(None),
        Some(bytes) => RetentionSettings::decode(&bytes).map(Some),
    }
}

impl<B: Backend> PeerBook<B> {
    /// The retention settings this book runs with (those of the [`Options`] it was
    /// opened with, which `open` also stored in meta).
    pub fn retention(&self) -> RetentionSettings {
        RetentionSettings::from_settings(&self.settings)
    }

    /// At open: store the options' retention settings unless meta already holds the
    /// same (a damaged stored value is replaced).
    pub(super) fn store_retention(&self) -> Result<()> {
        let ours = self.retention();
        let stored = match read_retention(&self.backend) {
            Ok(stored) => stored,
            Err(Error::Corrupted { detail, .. }) => {
                warn!(engine = self.backend.engine_name(), %detail, "peerbook retention settings in meta damaged; rewriting them");
                None
            }
            Err(e) => return Err(e),
        };
        if stored.as_ref() == Some(&ours) {
            return Ok(());
        }
        if stored.is_some() {
            info!(
                engine = self.backend.engine_name(),
                "peerbook retention settings changed by the options at open"
            );
        }
        let mut batch = WriteBatch::new();
        batch.put(Space::Meta, META_RETENTION.to_vec(), ours.encode());
        self.backend.write(batch, self.settings.durability)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MasterKey, MemoryBackend};
    use std::sync::Arc;

    fn options(key: &MasterKey) -> Options {
        Options::new(key.clone())
    }

    #[test]
    fn open_stores_the_options_and_the_latest_open_wins() {
        let key = MasterKey::from_bytes([3; 32]);
        let backend = Arc::new(MemoryBackend::new());
        assert_eq!(read_retention(&backend).unwrap(), None);

        let book = PeerBook::open(backend.clone(), options(&key)).unwrap();
        let defaults = RetentionSettings::from_options(&options(&key));
        assert_eq!(read_retention(&backend).unwrap(), Some(defaults.clone()));
        assert_eq!(book.retention(), defaults);
        drop(book);

        let mut node = options(&key);
        node.max_peers = 500;
        node.inactive_after = Duration::from_secs(7 * 86_400);
        node.evict_when_full = true;
        let book = PeerBook::open(backend.clone(), node.clone()).unwrap();
        let stored = read_retention(&backend).unwrap().unwrap();
        assert_eq!(stored, RetentionSettings::from_options(&node));
        assert_eq!(stored.max_peers, 500);
        assert_eq!(stored.inactive_after_ms, 7 * 86_400_000);
        drop(book);

        // A tool that follows the node opens with the stored settings: nothing changes.
        let follower = stored.apply(options(&key));
        assert_eq!(follower.max_peers, 500);
        assert!(follower.evict_when_full);
        let book = PeerBook::open(backend.clone(), follower).unwrap();
        assert_eq!(book.retention(), stored);
        assert_eq!(read_retention(&backend).unwrap(), Some(stored));
    }

    #[test]
    fn equal_settings_write_nothing_at_open() {
        let key = MasterKey::from_bytes([4; 32]);
        let backend = Arc::new(MemoryBackend::new());
        drop(PeerBook::open(backend.clone(), options(&key)).unwrap());
        // Replace the stored value with an equal one in another spelling: an open
        // with the same settings must leave it as it is.
        let same = RetentionSettings::from_options(&options(&key));
        let mut text = serde_json::to_string(&Stored {
            format: RETENTION_FORMAT,
            settings: same,
        })
        .unwrap();
        text.push(' ');
        let mut batch = WriteBatch::new();
        batch.put(
            Space::Meta,
            META_RETENTION.to_vec(),
            text.clone().into_bytes(),
        );
        backend.write(batch, crate::Durability::Sync).unwrap();
        drop(PeerBook::open(backend.clone(), options(&key)).unwrap());
        assert_eq!(
            backend.get(Space::Meta, META_RETENTION).unwrap(),
            Some(text.into_bytes())
        );
    }

    #[test]
    fn damaged_settings_are_reported_and_replaced_at_open() {
        let key = MasterKey::from_bytes([5; 32]);
        let backend = Arc::new(MemoryBackend::new());
        drop(PeerBook::open(backend.clone(), options(&key)).unwrap());
        for bad in [
            &b"not json"[..],
            br#"{"format":2,"max_peers":1,"max_bytes":null,"inactive_after_ms":1,"failed_attempts":1,"blacklist_for_ms":1,"cleanup_interval_ms":1,"evict_when_full":false}"#,
            br#"{"format":1,"max_peers":0,"max_bytes":null,"inactive_after_ms":1,"failed_attempts":1,"blacklist_for_ms":1,"cleanup_interval_ms":1,"evict_when_full":false}"#,
            br#"{"format":1,"max_peers":5}"#,
        ] {
            let mut batch = WriteBatch::new();
            batch.put(Space::Meta, META_RETENTION.to_vec(), bad.to_vec());
            backend.write(batch, crate::Durability::Sync).unwrap();
            let err = read_retention(&backend).unwrap_err();
            assert!(matches!(err, Error::Corrupted { what: "meta", .. }), "{err:?}");
            drop(PeerBook::open(backend.clone(), options(&key)).unwrap());
            assert_eq!(
                read_retention(&backend).unwrap(),
                Some(RetentionSettings::from_options(&options(&key)))
            );
        }
    }

    #[test]
    fn a_wrong_key_writes_no_settings() {
        let backend = Arc::new(MemoryBackend::new());
        drop(PeerBook::open(backend.clone(), options(&MasterKey::from_bytes([6; 32]))).unwrap());
        let mut other = options(&MasterKey::from_bytes([7; 32]));
        other.max_peers = 9;
        assert!(matches!(
            PeerBook::open(backend.clone(), other),
            Err(Error::WrongKey)
        ));
        assert_eq!(read_retention(&backend).unwrap().unwrap().max_peers, 100);
    }
}
