//! # peerbook
//!
//! A P2P node's book of known peers, kept on disk: who each peer is, how to reach it
//! again, how good its connections were, and which peers to try first after a restart.
//!
//! This core crate holds everything that must be the same whatever the storage engine:
//! the record [`schema`], input validation, [`scoring`], retention rules, [`crypto`]
//! for secrets, and the store's whole API ([`PeerBook`]). Storage engines plug in
//! through the small [`Backend`] trait; this crate ships the
//! in-memory reference backend [`MemoryBackend`], and the crates `peerbook-lmdb`,
//! `peerbook-rocksdb` and `peerbook-file` provide disk engines.
//!
//! ```
//! use peerbook::{CandidateQuery, MasterKey, MemoryBackend, NewPeer, Options, PeerBook, Secret};
//! use std::time::Duration;
//!
//! let book = PeerBook::open(MemoryBackend::new(), Options::new(MasterKey::generate()?))?;
//! book.store_peer(NewPeer {
//!     peer_id: "ABC123".into(),
//!     display_name: "Alice".into(),
//!     public_key: "{\"kty\":\"EC\"}".into(),
//!     shared_secret: Some(Secret::from("secret-key")),
//!     ..NewPeer::default()
//! })?;
//! let candidates = book.get_reconnection_candidates(&CandidateQuery {
//!     limit: 5,
//!     max_age: Some(Duration::from_secs(24 * 3600)),
//! })?;
//! for candidate in &candidates {
//!     // reconnect(...) then:
//!     book.update_last_seen(candidate.peer.peer_id.as_str())?;
//! }
//! # Ok::<(), peerbook::Error>(())
//! ```
//!
//! Modules:
//! - [`schema`]: the record, its validation rules and stored encoding;
//! - [`address`]: addresses of any transport and metadata per peer, their limits;
//! - [`scoring`]: quality and reconnection scores, `update_quality_metrics`;
//! - [`crypto`]: the master key, sealing of secrets;
//! - [`backend`]: the storage trait engines implement;
//! - [`probe`]: what a directory holds to an engine ([`probe::DirVerdict`]), the
//!   words each backend crate judges a store directory in;
//! - [`store`]: [`PeerBook`] and its query, export and maintenance types;
//! - `conformance` (feature `conformance`): the test kit every backend runs;
//! - `webrtc` (feature `webrtc`): ICE servers and ICE stats of a webrtc-rs node.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod address;
pub mod backend;
pub mod clock {
    //! Time sources for the store ([`Clock`], [`SystemClock`], [`ManualClock`]).
    pub use crate::options::{Clock, ManualClock, SystemClock};
}
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod crypto;
mod error;
mod memory;
pub mod mvcc;
mod options;
pub mod probe;
pub mod schema;
pub mod scoring;
pub mod store;
#[cfg(feature = "webrtc")]
pub mod webrtc;

pub use address::{AddressSource, PeerAddress};
pub use backend::{Backend, BackendError, Durability};
pub use crypto::{MasterKey, SealedSecret, Secret};
pub use error::{Error, Quota, Result};
pub use memory::MemoryBackend;
pub use options::{duration_ms, Clock, ManualClock, Options, SystemClock};
pub use schema::{
    ConnectionQuality, ConnectionType, IceServer, NewIceServer, NewPeer, PeerId, PeerRecord,
    QualityUpdate,
};
pub use scoring::{update_quality_metrics, ReconnectionScore, SessionObservation};
pub use store::{
    Candidate, CandidateQuery, CorruptEntry, CounterMismatch, ExportDocument, ExportOptions,
    ImportMode, ImportReport, Order, PeerBook, PeerInput, PeerQuery, RepairReport,
    RetentionSettings, SortBy, StorageStats, VerifyReport, MAX_CLOCK_SKEW_MS,
};

/// The README's examples, compiled and run as doctests so they never go stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
