//! [`Behaviour`]: the [`NetworkBehaviour`] that records what the swarm sees into the
//! book (through the write-behind queue) and serves the stored addresses back to
//! the swarm when it dials a peer.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished, DialFailure, FromSwarm};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, DialError, NetworkBehaviour, Swarm, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{identify, ping, PeerId};
use peerbook::address::{validate_address, MAX_ADDRESSES, MAX_METADATA_VALUE_LEN};
use peerbook::{AddressSource, Backend, CandidateQuery, PeerBook, SessionObservation};

use crate::mirror::Mirror;
use crate::scope::{connection_scope, keep_reported, round_trips, Scope};
use crate::writer::{Op, State, Via, WriteBehind};
use crate::{Config, Stats};

/// Metadata key of the agent version reported by identify.
pub const AGENT_VERSION_KEY: &str = "libp2p.agent_version";
/// Metadata key of the protocols reported by identify (comma-separated, cut to fit).
pub const PROTOCOLS_KEY: &str = "libp2p.protocols";

/// A persistent peer store for a libp2p swarm. Compose it with your behaviours
/// (`#[derive(NetworkBehaviour)]`), forward ping and identify events with
/// [`observe`](Self::observe), and call
/// [`shutdown_async`](Self::shutdown_async)`.await` (async code) or
/// [`shutdown`](Self::shutdown) when the node stops. See the crate docs.
pub struct Behaviour<B: Backend + 'static> {
    book: Arc<PeerBook<B>>,
    writer: WriteBehind,
    /// Addresses per peer as the book last answered them (peers the book took,
    /// at most its `max_peers` plus the queue's capacity): the swarm reads them
    /// here.
    addresses: Mirror,
    /// Open connections: peer, start, reach of the remote end.
    open: HashMap<ConnectionId, (PeerId, Instant, Scope)>,
    config: Config,
}

impl<B: Backend + 'static> Behaviour<B> {
    /// Start recording into `book`: loads every stored peer's addresses (one read
    /// of the book: call it before the swarm runs, or from a blocking thread) and
    /// starts the write-behind thread ([`Error::Spawn`](crate::Error::Spawn) if
    /// the OS refuses it; [`Error::Book`](crate::Error::Book) if the read fails).
    pub fn new(book: Arc<PeerBook<B>>, config: Config) -> Result<Self, crate::Error> {
        // Slack over the book's cap: peers the book drops without an op of ours
        // (cleanup, eviction) stay in the mirror until an op for them tells
        // (or they are the least recently used), and must not push live ones out.
        let cap = usize::try_from(book.retention().max_peers)
            .unwrap_or(usize::MAX)
            .saturating_add(config.queue_capacity);
        let mut addresses = Mirror::new(cap);
        // oldest first: the most recently seen get the newest ticks and leave last
        let oldest_first = peerbook::PeerQuery {
            order: peerbook::Order::Asc,
            ..peerbook::PeerQuery::default()
        };
        for record in book.query_peers(&oldest_first)? {
            let Ok(peer) = record.peer_id.as_str().parse::<PeerId>() else {
                continue; // not a libp2p peer
            };
            let addrs: Vec<Multiaddr> = record
                .addresses
                .iter()
                .filter_map(|a| a.addr.parse().ok())
                .collect();
            addresses.set(peer, addrs);
        }
        let writer = WriteBehind::start(Arc::clone(&book), config.queue_capacity)?;
        Ok(Behaviour {
            book,
            writer,
            addresses,
            open: HashMap::new(),
            config,
        })
    }

    /// The book behind this store (its calls block: use them off the poll loop).
    pub fn book(&self) -> &Arc<PeerBook<B>> {
        &self.book
    }

    /// The addresses the store knows for `peer` (what a dial of it will use): the
    /// book's, as of the last op the writer applied for it and the store took in
    /// (when the swarm polls it, or at [`flush`](Self::flush)). A peer the book
    /// dropped on its own (`cleanup_lru`, `cleanup_stale_peers`, eviction when
    /// full, `remove_peer`) keeps its addresses here until the next op for it.
    pub fn addresses_of(&self, peer: &PeerId) -> &[Multiaddr] {
        self.addresses.get(peer)
    }

    /// Counters of the write-behind queue.
    pub fn stats(&self) -> Stats {
        Stats {
            dropped: self.writer.dropped(),
            failed: self.writer.failed(),
        }
    }

    /// The best peers to reconnect to (the book's reconnection ranking, peers with
    /// a recently working address first), at most `limit`: peers we connected to
    /// ourselves once (a peer that only connected to us, or was only heard of,
    /// is never one: it would become a success by our dial alone) that have an
    /// address. Reads the book (every peer's record): call it at startup, not
    /// from the poll loop.
    pub fn reconnection_candidates(&self, limit: usize) -> peerbook::Result<Vec<PeerId>> {
        // the whole ranking: filtered first, then cut to `limit`
        let query = CandidateQuery {
            limit: usize::MAX,
            ..CandidateQuery::default()
        };
        let recent = Duration::from_secs(24 * 3600);
        Ok(self
            .book
            .get_reconnection_candidates_by_address(&query, recent)?
            .into_iter()
            .filter(|c| c.peer.last_connected > 0)
            .filter_map(|c| c.peer.peer_id.as_str().parse::<PeerId>().ok())
            .filter(|p| self.addresses.contains(p))
            .take(limit)
            .collect())
    }

    /// Feed a ping or identify event (from your composed behaviour's events) to
    /// the store: ping RTT -> latency, identify -> public key, reported addresses,
    /// agent version and protocols. Never blocks.
    ///
    /// Reported addresses are kept by their reach and the connection's: over a
    /// public connection only public ones; private and link-local ones only over
    /// a local connection, loopback ones only over a loopback connection;
    /// unspecified, multicast and broadcast ones never (an event for a connection
    /// the store does not know counts as public). An address reaches as far as
    /// its narrowest component (a transport may dial any of them); one that does
    /// not start with a host (an IP, a DNS name, a unix socket) is never kept; a
    /// `/dnsaddr` counts as local. The book keeps an address as text: one whose
    /// text reads back as another address (an `/sni` or `/ip6zone` value with a
    /// `/` in it) is never kept, reported or dialed. A DNS name is taken at its word: `localhost`,
    /// `.local`, an IP literal and an IPv4 written into the name (`10.0.0.1.nip.io`)
    /// count as what they name, but a public name that resolves to a private or
    /// loopback IP is kept (name resolution happens at dial time, in the
    /// transport).
    ///
    /// A connection reaches as far as its widest component, and a relayed one
    /// (`/p2p-circuit`) counts as public. The connection's reach is its remote
    /// address as the transport tells it: behind a NAT that rewrites the source
    /// (docker-proxy, Kubernetes SNAT) every inbound connection looks local and
    /// vouches for local addresses, and a local connection from one private
    /// range vouches for every other.
    pub fn observe<E: Observe>(&mut self, event: &E) {
        self.sync_mirror();
        let open = &self.open;
        let reach = |connection: ConnectionId| {
            open.get(&connection)
                .map_or(Scope::Global, |&(_, _, reach)| reach)
        };
        if let Some((peer, state)) = event.state(&reach) {
            self.writer.push(Op::State {
                peer: peer.to_string(),
                state,
            });
        }
    }

    /// Block until every observation queued so far is in the book (and its
    /// addresses in [`addresses_of`](Self::addresses_of)), or the writer thread
    /// died (a panic in the book or its backend: what it held is lost). Takes
    /// `&mut self` (to take in the book's answers): call it through
    /// `swarm.behaviour_mut()`.
    pub fn flush(&mut self) {
        self.writer.wait_idle();
        self.sync_mirror();
    }

    /// The node stops: record a session for each connection still open (up to
    /// now), apply everything queued, flush the book and stop the writer thread.
    /// Blocks until done: in async code use
    /// [`shutdown_async`](Self::shutdown_async) instead.
    ///
    /// Returns [`Error::Book`](crate::Error::Book) when the final flush failed
    /// (what was applied may not be durable; also counted in
    /// [`Stats::failed`](crate::Stats::failed)), told to the first shutdown
    /// that asks, and [`Error::WriterDied`](crate::Error::WriterDied) when the
    /// writer thread died (a panic in the book or its backend: what it held is
    /// lost, counted in [`Stats::dropped`](crate::Stats::dropped)).
    ///
    /// Dropping the store without either also applies the queue and joins the
    /// writer thread, on the dropping thread (a runtime worker, if the swarm is
    /// dropped in a task: logged as a warning when there is work left), but
    /// records no session for the connections still open; a failed final flush
    /// is then only logged (warning) and counted in `failed`.
    pub fn shutdown(&mut self) -> Result<(), crate::Error> {
        self.end_sessions();
        let done = self.writer.shutdown();
        self.sync_mirror();
        done
    }

    /// [`shutdown`](Self::shutdown) for async code, blocking no thread: records a
    /// session for each connection still open, closes the queue (later
    /// observations are dropped) and returns at once. The future resolves when
    /// the writer thread has applied everything queued, flushed the book and
    /// ended (its handle on the book released), with the same result as
    /// [`shutdown`](Self::shutdown); it needs no particular runtime.
    /// The swarm may be dropped before the future is awaited: the thread goes on
    /// alone.
    ///
    /// Await the future before the process exits: the writer thread is detached,
    /// and returning from `main` (or `std::process::exit`) kills it mid-queue,
    /// losing what it had not applied. Once it resolves, this store's handle is
    /// the last one on the book (unless you hold clones): the book closes where
    /// the store is dropped, on a runtime worker if the swarm is dropped in a
    /// task. The writer thread flushed it, so that is cheap for the file backend,
    /// but a backend whose close does work (RocksDB joins its background
    /// threads) does it there; drop the swarm from a blocking thread to avoid it.
    pub fn shutdown_async(
        &mut self,
    ) -> impl Future<Output = Result<(), crate::Error>> + Send + 'static {
        self.end_sessions();
        self.writer.close();
        self.writer.finished()
    }

    fn end_sessions(&mut self) {
        for (_, (peer, since, _)) in std::mem::take(&mut self.open) {
            self.writer.push(Op::Session {
                peer: peer.to_string(),
                observation: session(since),
            });
        }
    }

    /// Take in what the book answered since the last call: a peer's addresses as
    /// stored, or its absence.
    fn sync_mirror(&mut self) {
        for (peer, addrs) in self.writer.take_stored() {
            let Ok(peer) = peer.parse::<PeerId>() else {
                continue;
            };
            match addrs {
                Some(addrs) => {
                    let addrs = addrs.iter().filter_map(|a| a.parse().ok()).collect();
                    self.addresses.set(peer, addrs);
                }
                None => self.addresses.remove(&peer),
            }
        }
    }

    fn established(&mut self, e: ConnectionEstablished<'_>) {
        let remote = match e.endpoint {
            ConnectedPoint::Dialer { address, .. } => address,
            ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
        };
        self.open.insert(
            e.connection_id,
            (e.peer_id, Instant::now(), connection_scope(remote)),
        );
        // Only a dialed address is worth keeping: an inbound connection comes
        // from an ephemeral port. Nor one whose text (what the book keeps) would
        // be dialed as another address (see `round_trips`).
        let via = match e.endpoint {
            ConnectedPoint::Dialer { address, .. } => Via::Dialed(
                Some(without_peer(address))
                    .filter(round_trips)
                    .map(|a| a.to_string()),
            ),
            ConnectedPoint::Listener { .. } => Via::Inbound,
        };
        self.writer.push(Op::Connected {
            peer: e.peer_id.to_string(),
            public_key: key_of(&e.peer_id),
            via,
        });
    }

    fn closed(&mut self, e: ConnectionClosed<'_>) {
        if let Some((peer, since, _)) = self.open.remove(&e.connection_id) {
            self.writer.push(Op::Session {
                peer: peer.to_string(),
                observation: session(since),
            });
        }
    }

    fn dial_failed(&mut self, e: DialFailure<'_>) {
        let Some(peer) = e.peer_id else { return };
        let addrs = match e.error {
            DialError::Transport(errors) => errors
                .iter()
                .map(|(a, _)| without_peer(a).to_string())
                .collect(),
            DialError::WrongPeerId { .. } => Vec::new(),
            // our own decision not to dial (`Denied`: a behaviour of ours, e.g.
            // connection limits or a block list, refused it): not the peer's failure
            _ => return,
        };
        self.writer.push(Op::DialFailed {
            peer: peer.to_string(),
            addrs,
        });
    }
}

/// Dial the top `limit` reconnection candidates of `swarm`'s store (see
/// [`Behaviour::reconnection_candidates`]) by peer id: the swarm takes their
/// addresses from the store. `store` picks the store out of your behaviour.
/// A candidate whose dial the swarm refuses (already connected or being dialed,
/// denied by a behaviour) is passed over for the next one, so up to `limit`
/// dials start while candidates last. Returns the peers dialed. Reads the book:
/// call it at startup.
pub fn bootstrap<TB, B>(
    swarm: &mut Swarm<TB>,
    store: impl Fn(&mut TB) -> &mut Behaviour<B>,
    limit: usize,
) -> peerbook::Result<Vec<PeerId>>
where
    TB: NetworkBehaviour,
    B: Backend + 'static,
{
    // the whole ranking: a dial the swarm refuses (the peer is already being
    // dialed or connected, a behaviour denied it) leaves room for the next one
    let peers = store(swarm.behaviour_mut()).reconnection_candidates(usize::MAX)?;
    let mut dialed = Vec::new();
    for peer in peers {
        if dialed.len() >= limit {
            break;
        }
        if swarm.dial(DialOpts::peer_id(peer).build()).is_ok() {
            dialed.push(peer);
        }
    }
    Ok(dialed)
}

/// `addr` without a trailing `/p2p/<peer id>` (the swarm appends it when dialing).
fn without_peer(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

fn session(since: Instant) -> SessionObservation {
    SessionObservation {
        success: true,
        uptime_ms: u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
        // latency comes from ping (observe), not from the session
        latency_ms: None,
    }
}

/// An event [`Behaviour::observe`] understands: ping and identify events (sealed).
pub trait Observe: sealed::Sealed {}

impl Observe for ping::Event {}
impl Observe for identify::Event {}

mod sealed {
    use super::{ConnectionId, PeerId, Scope, State};

    /// What an observed event tells: the peer and its latest state, if any.
    /// `reach` tells the reach of a connection's remote end.
    pub trait Sealed {
        fn state(&self, reach: &dyn Fn(ConnectionId) -> Scope) -> Option<(PeerId, State)>;
    }
}

impl sealed::Sealed for ping::Event {
    fn state(&self, _: &dyn Fn(ConnectionId) -> Scope) -> Option<(PeerId, State)> {
        let rtt = self.result.as_ref().ok()?;
        let ms = u32::try_from(rtt.as_millis()).unwrap_or(u32::MAX).max(1);
        Some((
            self.peer,
            State {
                latency_ms: Some(ms),
                ..State::default()
            },
        ))
    }
}

impl sealed::Sealed for identify::Event {
    fn state(&self, reach: &dyn Fn(ConnectionId) -> Scope) -> Option<(PeerId, State)> {
        let (peer, info, connection) = match self {
            identify::Event::Received {
                peer_id,
                info,
                connection_id,
            } => (*peer_id, info, reach(*connection_id)),
            _ => return None,
        };
        let mut metadata = BTreeMap::new();
        metadata.insert(
            AGENT_VERSION_KEY.to_string(),
            cut(
                &without_controls(&info.agent_version),
                MAX_METADATA_VALUE_LEN,
            ),
        );
        // A protocol name with a control character cannot be shown: left out.
        let protocols: Vec<String> = info
            .protocols
            .iter()
            .map(|p| p.to_string())
            .filter(|p| !p.chars().any(char::is_control))
            .collect();
        metadata.insert(PROTOCOLS_KEY.to_string(), join_fitting(&protocols));
        Some((
            peer,
            State {
                public_key: Some(hex(&info.public_key.encode_protobuf())),
                latency_ms: None,
                addresses: info
                    .listen_addrs
                    .iter()
                    // none the connection does not vouch for (see `observe`)
                    .filter(|a| keep_reported(a, connection))
                    .map(ToString::to_string)
                    // the first ones the book accepts (length, characters)
                    .filter(|a| validate_address("addr", a).is_ok())
                    .take(MAX_ADDRESSES)
                    .map(|a| (a, AddressSource::Reported))
                    .collect(),
                metadata,
                connected: None,
            },
        ))
    }
}

/// `s` without control characters (the book refuses them in metadata values).
fn without_controls(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Comma-joined items, as many whole ones as fit in a metadata value.
fn join_fitting(items: &[String]) -> String {
    let mut out = String::new();
    for item in items {
        let extra = item.len() + usize::from(!out.is_empty());
        if out.len() + extra > MAX_METADATA_VALUE_LEN {
            break;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(item);
    }
    out
}

/// The public key embedded in a peer id (ed25519 and other short keys use the
/// identity multihash), as identify reports it (protobuf, hex).
fn key_of(peer: &PeerId) -> Option<String> {
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    if hash.code() != 0 {
        return None; // a hash of the key: identify will tell it
    }
    let key = libp2p::identity::PublicKey::try_decode_protobuf(hash.digest()).ok()?;
    Some(hex(&key.encode_protobuf()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<B: Backend + 'static> NetworkBehaviour for Behaviour<B> {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        maybe_peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let Some(peer) = maybe_peer else {
            return Ok(Vec::new());
        };
        self.sync_mirror();
        self.addresses.touch(&peer);
        Ok(self.addresses.get(&peer).to_vec())
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => self.established(e),
            FromSwarm::ConnectionClosed(e) => self.closed(e),
            FromSwarm::DialFailure(e) => self.dial_failed(e),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        let _ = &self.config;
        self.writer.register(cx.waker());
        self.sync_mirror();
        Poll::Pending
    }
}
