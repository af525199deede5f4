//! A persistent peer store for [rust-libp2p](https://github.com/libp2p/rust-libp2p)
//! swarms, backed by [`peerbook`]: a node remembers the peers it met across
//! restarts and reconnects to the best of them at startup.
//!
//! [`Behaviour`] is a [`NetworkBehaviour`](libp2p::swarm::NetworkBehaviour) to
//! compose with your own (`#[derive(NetworkBehaviour)]`). It records what the
//! swarm sees:
//!
//! | swarm event | book |
//! |---|---|
//! | connection established, dialed by us | `store_peer` (a success), the dialed address kept (`observed`) and marked working |
//! | connection established, inbound | `store_peer` for a peer we once connected to, else `learn_peer` (no success: attempts and blacklist kept) |
//! | connection closed (or still open at [`Behaviour::shutdown`]) | `record_session` with the uptime, for a peer we once connected to |
//! | dial failure of a peer in the book (not one our own swarm denied) | `increment_reconnection_attempts`, the failed addresses marked |
//! | ping RTT (forwarded with [`Behaviour::observe`]) | latency |
//! | identify (forwarded with [`Behaviour::observe`]) | public key (protobuf, hex), listen addresses (`reported`; judged by their narrowest component: loopback, private and link-local ones only from a peer connected over such an address; DNS names taken at their word, see [`Behaviour::observe`]), metadata [`AGENT_VERSION_KEY`] and [`PROTOCOLS_KEY`] |
//!
//! and serves the stored addresses back: a dial by peer id alone
//! (`DialOpts::peer_id(p).build()`) gets them through
//! `handle_pending_outbound_connection`. [`bootstrap`] dials the book's top
//! reconnection candidates at startup, among the peers we connected to ourselves
//! once (a peer that only connected to us is never dialed by it).
//!
//! libp2p's own peer-store `Store` trait returns borrowed addresses and has no
//! notion of sessions or failures, so this crate is a behaviour of its own with an
//! in-memory mirror of the addresses in front of the book. The mirror holds what
//! the book stored (filled from the writer thread's results, so a peer the book
//! refused is never in it), at most the book's `max_peers` plus
//! [`Config::queue_capacity`] peers (the least recently updated or dialed leaves
//! first; loaded oldest first), and forgets a peer the book no longer has as soon
//! as an op for it says so: a peer the book removed on its own (cleanup, eviction
//! when full) is still dialed from the mirror until then.
//!
//! **Never blocks the poll loop.** Writes go through a write-behind queue
//! ([`Config::queue_capacity`]) applied by one thread. When the queue is full a
//! connection, ping or identify observation is folded into a per-peer latest
//! state (whether and over which address we connected, latest latency,
//! addresses, metadata) of at most [`Config::queue_capacity`] peers; a session or
//! dial failure that does not fit, or a peer past a full overflow, is dropped,
//! and [`Behaviour::stats`] counts every drop. [`Behaviour::shutdown`]
//! (blocking) or [`Behaviour::shutdown_async`] (a future, blocking no thread)
//! applies what is queued, flushes the book and says whether that went well
//! ([`Error`]).
//!
//! Ping and identify events go to your behaviour's event stream, not to a
//! sibling behaviour: forward them with one call,
//! `swarm.behaviour_mut().peerbook.observe(&event)` (see the README example).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod apply;
mod behaviour;
mod mirror;
mod scope;
mod writer;

pub use behaviour::{bootstrap, Behaviour, Observe, AGENT_VERSION_KEY, PROTOCOLS_KEY};

/// Settings of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Observations queued for the writer thread before coalescing starts
    /// (default 1,024); the coalesced overflow holds at most as many peers, so
    /// the queue's memory is bounded whatever remote peers send.
    pub queue_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            queue_capacity: 1024,
        }
    }
}

/// What starting or stopping the store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The book refused or failed a call (match its variants as usual): at
    /// shutdown, the final flush of what the writer thread applied.
    #[error(transparent)]
    Book(#[from] peerbook::Error),
    /// The OS refused the write-behind thread (at [`Behaviour::new`]).
    #[error("cannot start the peerbook-libp2p writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The writer thread died (a panic in the book or its backend): what it
    /// still held is lost (counted in [`Stats::dropped`]) and the book was not
    /// flushed by it.
    #[error("the peerbook-libp2p writer thread died (a panic in the book or its backend)")]
    WriterDied,
}

/// Counters of the write-behind queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Facts lost, not events. A session or a dial failure is one fact; a
    /// connection is one, plus its public key when the peer id holds it; a ping
    /// one (latency); an identify four (key, addresses, agent version,
    /// protocols). Counted: every fact of an op that met a full queue and could
    /// not be folded into the overflow (a session, a dial failure, any op for a
    /// peer past a full overflow); one per fact of a folded state replaced by a
    /// different one (a repeated value loses nothing); every fact of an op
    /// pushed after shutdown or after the writer thread died; when it dies (a
    /// panic in the book or backend), every fact it still held, queued,
    /// overflowed or in its batch in flight (ops of that batch applied before
    /// the panic included: an upper bound).
    pub dropped: u64,
    /// Ops the book refused or failed to write (logged at debug level), and a
    /// failed final flush at shutdown (logged as a warning; also returned by
    /// [`Behaviour::shutdown`] and [`Behaviour::shutdown_async`]).
    pub failed: u64,
}

/// The README's example, compiled as a doctest so it never goes stale.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
