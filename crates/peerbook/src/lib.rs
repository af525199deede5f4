//! # peerbook
//!
//! A P2P node's book of known peers, kept on disk: who each peer is, how to reach it
//! again, how good its connections were, and which peers to try first after a restart.
//!
//! This core crate holds everything that must be the same whatever the storage engine:
//! the record [`schema`], input validation, [`scoring`], retention rules, [`crypto`]
//! for secrets, and the store's whole API ([`PeerBook`]). Storage engines plug in
//! through the small [`Backend`](backend::Backend) trait; this crate ships the
//! in-memory reference backend [`MemoryBackend`], and the crates `peerbook-lmdb`,
//! `peerbook-rocksdb` and `peerbook-file` provide disk engines.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod backend;
#[cfg(feature = "conformance")]
pub mod conformance;
mod memory;

pub use memory::MemoryBackend;
