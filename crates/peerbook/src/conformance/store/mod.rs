//! Conformance tests of every [`PeerBook`](crate::PeerBook) operation and design
//! rule, over any backend, grouped by topic:
//! - [`records`]: store, get, update, remove; bad input and far-future times refused;
//! - [`indexes`]: the quality and last-seen indexes as queries and candidates see
//!   them, attempts and blacklisting, quality updates;
//! - [`retention`]: stale cleanup, LRU, quotas, eviction, stats, clear;
//! - [`secrets`]: sealing, binding to the peer, the wrong key, key rotation;
//! - [`transfer`]: export and import, all or nothing;
//! - [`repair`]: corruption, verify and repair, schema versions and migration;
//! - [`durability`]: persistence across reopen, concurrent writers losing nothing.
//!
//! Each rule opens books on backends made by the [`Factory`] through a [`Driver`]
//! (plain [`PeerBook`](crate::PeerBook)s with [`Direct`](super::Direct), or a
//! wrapper), drives them with a [`ManualClock`], and panics with a message naming
//! the rule that broke. The pure scoring and validation tables are unit tests of
//! [`scoring`](crate::scoring) and [`schema`](crate::schema), run once.

use std::sync::Arc;
use std::time::Duration;

use super::{BookUnderTest, Driver, Factory};
use crate::backend::{Backend, BackendExt, Direction, Durability, KeyRange, Space, WriteBatch};
use crate::scoring::{quality_score, reconnection_score, DAY_MS, MINUTE_MS};
use crate::{
    CandidateQuery, ConnectionQuality, ConnectionType, Error, ExportDocument, ExportOptions,
    ImportMode, ManualClock, MasterKey, NewIceServer, NewPeer, Options, Order, PeerQuery,
    PeerRecord, QualityUpdate, Quota, Secret, SortBy,
};

pub mod durability;
pub mod indexes;
pub mod records;
pub mod repair;
pub mod retention;
pub mod secrets;
pub mod transfer;

pub use durability::*;
pub use indexes::*;
pub use records::*;
pub use repair::*;
pub use retention::*;
pub use secrets::*;
pub use transfer::*;

/// The time every test starts at (ms).
pub const T0: u64 = 1_700_000_000_000;
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn key() -> MasterKey {
    MasterKey::from_bytes([42; 32])
}

fn other_key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

fn options(clock: &ManualClock) -> Options {
    Options::new(key()).with_clock(clock.clone())
}

/// The book type driver `D` opens on the factory's backends.
type BookOf<F, D> = <D as Driver>::Book<<F as Factory>::Backend>;

/// Open a book of driver `D` on `backend`.
fn open<D: Driver, B: Backend + 'static>(
    backend: B,
    options: Options,
) -> crate::Result<D::Book<B>> {
    <D::Book<B> as BookUnderTest>::open(backend, options)
}

/// A book on a fresh backend, with a manual clock at [`T0`].
fn fresh<F: Factory, D: Driver>(f: &F) -> (BookOf<F, D>, ManualClock) {
    book_with::<F, D>(f, |_| {})
}

fn book_with<F: Factory, D: Driver>(
    f: &F,
    tweak: impl FnOnce(&mut Options),
) -> (BookOf<F, D>, ManualClock) {
    let clock = ManualClock::new(T0);
    let mut opts = options(&clock);
    tweak(&mut opts);
    (
        open::<D, _>(f.create(), opts).expect("open a fresh book"),
        clock,
    )
}

fn reopen<F: Factory, D: Driver>(
    f: &F,
    book: BookOf<F, D>,
    opts: Options,
) -> crate::Result<BookOf<F, D>> {
    let backend = book.close().expect("close");
    open::<D, _>(f.reopen(backend), opts)
}

/// A realistic new peer with a shared secret, a TURN server with a credential,
/// and two candidates.
pub fn sample_peer(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        display_name: format!("Peer {id}"),
        public_key: format!("{{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"{id}\"}}"),
        shared_secret: Some(Secret::from(format!("shared-secret-of-{id}"))),
        ice_servers: vec![
            NewIceServer { urls: vec!["stun:stun.example.org:3478".into()], username: None, credential: None },
            NewIceServer {
                urls: vec!["turn:turn.example.org:3478?transport=udp".into(), "turns:turn.example.org:5349".into()],
                username: Some("user".into()),
                credential: Some(Secret::from(format!("turn-credential-of-{id}"))),
            },
        ],
        cached_candidates: vec![
            "candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host".into(),
            "candidate:2 1 udp 1686052607 203.0.113.7 54321 typ srflx raddr 192.168.1.20 rport 54321".into(),
        ],
        last_known_ip: Some("203.0.113.7".parse().expect("ip")),
    }
}

/// A peer without secrets.
fn plain_peer(id: &str) -> NewPeer {
    NewPeer {
        peer_id: id.into(),
        display_name: id.into(),
        public_key: "pk".into(),
        ..NewPeer::default()
    }
}

/// Every entry of every space ([`BackendExt::dump`]), for "nothing changed" checks.
pub fn snapshot(backend: &impl Backend) -> crate::backend::Dump {
    backend.dump().expect("dump every space")
}

fn space_keys(backend: &impl Backend, space: Space) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    backend
        .scan(space, KeyRange::all(), Direction::Forward, &mut |k, _| {
            out.push(k.to_vec());
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    out
}

/// The quality keys of by_quality (those before [`QUALITY_END`](crate::store::keys::QUALITY_END)).
fn quality_keys(backend: &impl Backend) -> Vec<Vec<u8>> {
    let mut keys = space_keys(backend, Space::ByQuality);
    keys.retain(|k| crate::store::keys::is_quality_key(k));
    keys
}

/// The keys of by_quality's rank region (schema 5): one per record.
fn rank_keys(backend: &impl Backend) -> Vec<Vec<u8>> {
    let mut keys = space_keys(backend, Space::ByQuality);
    keys.retain(|k| !crate::store::keys::is_quality_key(k));
    keys
}

fn ids(records: &[PeerRecord]) -> Vec<&str> {
    records.iter().map(|r| r.peer_id.as_str()).collect()
}

fn quality(
    latency: Option<u32>,
    rate: f32,
    kind: ConnectionType,
    total: u32,
    ok: u32,
    uptime_ms: u64,
) -> ConnectionQuality {
    ConnectionQuality {
        latency_ms: latency,
        success_rate: rate,
        connection_type: kind,
        total_connections: total,
        successful_connections: ok,
        avg_uptime_ms: uptime_ms,
    }
}

fn assert_clean(book: &impl BookUnderTest, context: &str) {
    let report = book.verify().expect("verify");
    assert!(
        report.is_clean(),
        "{context}: verify should be clean: {report:?}"
    );
}
