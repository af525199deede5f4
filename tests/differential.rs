//! Differential state-machine test: a pure reference model of the book (ordered
//! maps + the core's scoring functions) and one `PeerBook` per backend (memory,
//! LMDB, RocksDB, file) stepped through the same random transitions. After every
//! step each book's result equals the model's (errors compared by kind), and every
//! book verifies clean.
//!
//! Every book sits on a [`FailingBackend`]: a `Faulty` step fails the first write
//! of a single-write step, before the engine applies it (the model keeps its state)
//! or after (the model applies the step). The book must answer with the backend
//! error, refuse writes until reopened, and after the reopen agree with the model:
//! the write is wholly there or wholly absent, and no acknowledged write is lost.
//! A `FaultyRead` step fails the nth engine read (get, scan or view, on the backend
//! or on a read view) of a read or write step: the step answers with the backend
//! error, the backend's contents are unchanged, the book is not poisoned, and the
//! same step then run without a fault matches the model.
//!
//! CI runs `PROPTEST_CASES` cases (default 64, set in the config below);
//! `cargo xtask long model` runs thousands. A failure shrinks to a short, readable
//! list of transitions.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use peerbook::address::{AddressSource, PeerAddress, MAX_ADDRESS_TTL_MS};
use peerbook::backend::BackendExt;
use peerbook::conformance::failing::{FailOp, FailWhen, FailingBackend};
use peerbook::scoring::{candidate_order, quality_score, reconnection_score, DAY_MS};
use peerbook::{
    update_quality_metrics, Backend, CandidateQuery, ConnectionQuality, ConnectionType,
    ExportOptions, ImportMode, ManualClock, NewPeer, Order, PeerBook, PeerId, PeerQuery,
    PeerRecord, QualityUpdate, Secret, SessionObservation, SortBy,
};
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

use common::{Engine, ENGINES};

const T0: u64 = 1_700_000_000_000;
const MAX_PEERS: usize = 5;
const FAILED_ATTEMPTS: u32 = 5;
const INACTIVE_MS: u64 = 30 * DAY_MS;
const CLEANUP_MS: u64 = 6 * 3_600_000;
/// Ids the transitions pick from: more valid ids than max_peers, and one invalid.
const IDS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "bad id"];
/// Addresses the transitions pick from: three valid (multiaddr, host:port, relay
/// URL) and one invalid.
const ADDRS: [&str; 4] = [
    "/ip4/192.0.2.1/tcp/4001",
    "192.0.2.2:9000",
    "https://relay.example.org/r/a",
    "bad address",
];

/// The user-visible state of one peer, as compared between model and books.
#[derive(Clone, Debug, PartialEq)]
struct View {
    id: String,
    display_name: String,
    last_seen: u64,
    last_connected: u64,
    quality: ConnectionQuality,
    attempts: u32,
    blacklist_until: Option<u64>,
    has_secret: bool,
    addresses: Vec<PeerAddress>,
}

impl View {
    fn of(r: &PeerRecord) -> View {
        View {
            id: r.peer_id.to_string(),
            display_name: r.display_name.clone(),
            last_seen: r.last_seen,
            last_connected: r.last_connected,
            quality: r.connection_quality,
            attempts: r.reconnection_attempts,
            blacklist_until: r.blacklist_until,
            has_secret: r.shared_secret.is_some(),
            addresses: r.addresses.clone(),
        }
    }

    /// A record for the scoring functions (secrets are irrelevant to scores).
    fn record(&self) -> PeerRecord {
        PeerRecord {
            peer_id: PeerId::new(self.id.clone()).expect("model ids are valid"),
            display_name: self.display_name.clone(),
            public_key: String::new(),
            shared_secret: None,
            last_seen: self.last_seen,
            last_connected: self.last_connected,
            last_known_ip: None,
            ice_servers: vec![],
            cached_candidates: vec![],
            connection_quality: self.quality,
            reconnection_attempts: self.attempts,
            blacklist_until: self.blacklist_until,
            addresses: self.addresses.clone(),
            metadata: Default::default(),
        }
    }
}

/// What a step returned.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Unit,
    Err(&'static str),
    Peer(Option<View>),
    Bool(bool),
    Count(usize),
    Ids(Vec<String>),
    Scored(Vec<(String, u8)>),
    Stats { peers: u64, blacklisted: u64 },
}

/// A partial quality update that prints readably when shrunk.
#[derive(Clone, Copy, Debug)]
struct QualityPatch {
    latency: Option<Option<u32>>,
    rate: Option<f32>,
    kind: Option<ConnectionType>,
    total: Option<u32>,
    ok: Option<u32>,
    uptime: Option<u64>,
}

impl QualityPatch {
    fn update(&self) -> QualityUpdate {
        QualityUpdate {
            latency_ms: self.latency,
            success_rate: self.rate,
            connection_type: self.kind,
            total_connections: self.total,
            successful_connections: self.ok,
            avg_uptime_ms: self.uptime,
        }
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// `store_peer(NewPeer)`: connected now (an upsert that keeps history).
    Store {
        id: usize,
        secret: bool,
    },
    /// `learn_peer(NewPeer)`: heard of the peer, no success.
    Learn {
        id: usize,
        secret: bool,
    },
    /// `add_address` of `ADDRS[addr]`, expiring `expires_ms` from now.
    AddAddress {
        id: usize,
        addr: usize,
        expires_ms: Option<u64>,
    },
    /// `record_address_result` of `ADDRS[addr]`.
    AddressResult {
        id: usize,
        addr: usize,
        ok: bool,
    },
    /// `record_session`: one finished session folded in.
    Session {
        id: usize,
        success: bool,
        uptime_ms: u64,
        latency_ms: Option<u32>,
    },
    /// get, change last_seen (and last_connected, which is never later), store the
    /// record back (the seed's IP change).
    Touch {
        id: usize,
        back_ms: u64,
    },
    Get {
        id: usize,
    },
    Remove {
        id: usize,
    },
    Seen {
        id: usize,
    },
    /// `times` failed reconnections in a row (the outcome is the last one's).
    Fail {
        id: usize,
        times: u32,
    },
    Quality {
        id: usize,
        patch: QualityPatch,
    },
    Query {
        sort: u8,
        desc: bool,
        limit: Option<usize>,
        max_age_ms: Option<u64>,
        min_quality: Option<u8>,
    },
    Candidates {
        limit: usize,
        max_age_ms: Option<u64>,
    },
    CleanupStale,
    CleanupLru(usize),
    Stats,
    NeedsCleanup,
    /// export, clear_all, import the export with Replace.
    ExportClearImport,
    ClearAll,
    Advance(u64),
    Reopen,
    /// `step` (one that writes at most one batch) with its write failing before
    /// (`after` false) or after (`after` true) the engine applies it.
    Faulty {
        step: Box<Step>,
        after: bool,
    },
    /// `step` with its `nth` engine read of kind `op` (0 get, 1 scan, 2 view) failing
    /// before (`after` false) or after the engine call: the step errs, changes
    /// nothing and poisons nothing; then it runs again and must match the model.
    FaultyRead {
        step: Box<Step>,
        op: u8,
        nth: u64,
        after: bool,
    },
}

#[derive(Clone, Debug)]
struct Model {
    now: u64,
    last_cleanup: u64,
    peers: BTreeMap<String, View>,
    expected: Outcome,
}

fn valid(id: usize) -> Option<&'static str> {
    let id = IDS[id];
    (!id.contains(' ')).then_some(id)
}

impl Model {
    fn with_peer(
        &mut self,
        id: usize,
        f: impl FnOnce(&mut View, u64) -> Result<(), &'static str>,
    ) -> Outcome {
        let Some(id) = valid(id) else {
            return Outcome::Err("invalid_input");
        };
        let now = self.now;
        match self.peers.get_mut(id) {
            None => Outcome::Err("not_found"),
            Some(v) => {
                let mut updated = v.clone();
                match f(&mut updated, now) {
                    Ok(()) => {
                        *v = updated.clone();
                        Outcome::Peer(Some(updated))
                    }
                    Err(kind) => Outcome::Err(kind),
                }
            }
        }
    }

    /// `store_peer(NewPeer)` (`connected`) or `learn_peer`: a new peer is created, a
    /// known one keeps its history and gains a secret when one is given.
    fn upsert(&mut self, id: usize, secret: bool, connected: bool) -> Outcome {
        let Some(id) = valid(id) else {
            return Outcome::Err("invalid_input");
        };
        let now = self.now;
        let v = match self.peers.get(id) {
            None if self.peers.len() >= MAX_PEERS => return Outcome::Err("quota_exceeded"),
            None => View {
                id: id.into(),
                display_name: format!("Peer {id}"),
                last_seen: now,
                last_connected: if connected { now } else { 0 },
                quality: ConnectionQuality::default(),
                attempts: 0,
                blacklist_until: None,
                has_secret: secret,
                addresses: Vec::new(),
            },
            Some(old) if connected => View {
                last_seen: now,
                last_connected: now,
                attempts: 0,
                blacklist_until: None,
                has_secret: old.has_secret || secret,
                ..old.clone()
            },
            Some(old) => View {
                has_secret: old.has_secret || secret,
                ..old.clone()
            },
        };
        self.peers.insert(id.into(), v.clone());
        Outcome::Peer(Some(v))
    }

    fn remove_ids(&mut self, ids: Vec<String>) -> Outcome {
        let n = ids.len();
        for id in ids {
            self.peers.remove(&id);
        }
        Outcome::Count(n)
    }

    fn blacklisted(&self, v: &View) -> bool {
        v.blacklist_until.is_some_and(|u| u > self.now)
    }

    fn in_age(&self, v: &View, max_age_ms: Option<u64>) -> bool {
        max_age_ms.is_none_or(|age| v.last_seen >= self.now.saturating_sub(age))
    }

    fn ranked(&self, mut views: Vec<&View>) -> Vec<(String, u8)> {
        let now = self.now;
        let records: Vec<(PeerRecord, peerbook::ReconnectionScore)> = views
            .drain(..)
            .map(|v| {
                let r = v.record();
                let s = reconnection_score(&r, now);
                (r, s)
            })
            .collect();
        let mut records = records;
        records.sort_by(|a, b| candidate_order((&a.1, &a.0), (&b.1, &b.0)));
        records
            .into_iter()
            .map(|(r, s)| (r.peer_id.to_string(), s.total))
            .collect()
    }
}

struct RefMachine;

fn patch_strategy() -> impl Strategy<Value = QualityPatch> {
    (
        prop::option::of(prop::option::of(prop_oneof![
            Just(10u32),
            Just(49),
            Just(50),
            Just(150),
            Just(700)
        ])),
        prop::option::of(prop_oneof![
            Just(0.0f32),
            Just(0.5),
            Just(0.9),
            Just(1.0),
            Just(f32::NAN),
            Just(1.5)
        ]),
        prop::option::of(prop_oneof![
            Just(ConnectionType::Host),
            Just(ConnectionType::Srflx),
            Just(ConnectionType::Relay),
            Just(ConnectionType::Unknown)
        ]),
        prop::option::of(0u32..6),
        prop::option::of(0u32..6),
        prop::option::of(prop_oneof![
            Just(0u64),
            Just(90_000),
            Just(400_000),
            Just(700_000)
        ]),
    )
        .prop_map(|(latency, rate, kind, total, ok, uptime)| QualityPatch {
            latency,
            rate,
            kind,
            total,
            ok,
            uptime,
        })
}

fn address_strategy(id: impl Strategy<Value = usize>) -> impl Strategy<Value = Step> {
    (
        id,
        0usize..4,
        prop::option::of(prop_oneof![Just(3_600_000u64), Just(40 * DAY_MS)]),
    )
        .prop_map(|(id, addr, expires_ms)| Step::AddAddress {
            id,
            addr,
            expires_ms,
        })
}

fn session_strategy(id: impl Strategy<Value = usize>) -> impl Strategy<Value = Step> {
    (
        id,
        any::<bool>(),
        prop_oneof![Just(0u64), Just(90_000), Just(700_000)],
        prop::option::of(prop_oneof![Just(10u32), Just(120), Just(900)]),
    )
        .prop_map(|(id, success, uptime_ms, latency_ms)| Step::Session {
            id,
            success,
            uptime_ms,
            latency_ms,
        })
}

impl ReferenceStateMachine for RefMachine {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model {
            now: T0,
            last_cleanup: T0,
            peers: BTreeMap::new(),
            expected: Outcome::Unit,
        })
        .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Step> {
        // Most steps hit three hot ids so histories on one peer grow long; the rest
        // fill the book past max_peers; the last id is invalid.
        let id = prop_oneof![8 => 0usize..3, 3 => 3usize..7, 1 => Just(7usize)];
        let age = prop::option::of(prop_oneof![
            Just(3_600_000u64),
            Just(DAY_MS),
            Just(7 * DAY_MS),
            Just(40 * DAY_MS)
        ]);
        prop_oneof![
            6 => (id.clone(), any::<bool>()).prop_map(|(id, secret)| Step::Store { id, secret }),
            2 => (id.clone(), any::<bool>()).prop_map(|(id, secret)| Step::Learn { id, secret }),
            4 => session_strategy(id.clone()),
            3 => address_strategy(id.clone()),
            3 => (id.clone(), 0usize..4, any::<bool>()).prop_map(|(id, addr, ok)| Step::AddressResult { id, addr, ok }),
            2 => (id.clone(), prop_oneof![Just(0u64), Just(60_000), Just(2 * DAY_MS), Just(45 * DAY_MS)])
                .prop_map(|(id, back_ms)| Step::Touch { id, back_ms }),
            2 => id.clone().prop_map(|id| Step::Get { id }),
            2 => id.clone().prop_map(|id| Step::Remove { id }),
            3 => id.clone().prop_map(|id| Step::Seen { id }),
            5 => (id.clone(), 1u32..7).prop_map(|(id, times)| Step::Fail { id, times }),
            4 => (id.clone(), patch_strategy()).prop_map(|(id, patch)| Step::Quality { id, patch }),
            4 => (0u8..3, any::<bool>(), prop::option::of(0usize..4), age.clone(), prop::option::of(prop_oneof![Just(0u8), Just(20), Just(40), Just(70), Just(101)]))
                .prop_map(|(sort, desc, limit, max_age_ms, min_quality)| Step::Query { sort, desc, limit, max_age_ms, min_quality }),
            3 => (0usize..4, age).prop_map(|(limit, max_age_ms)| Step::Candidates { limit, max_age_ms }),
            1 => Just(Step::CleanupStale),
            1 => (0usize..3).prop_map(Step::CleanupLru),
            1 => Just(Step::Stats),
            1 => Just(Step::NeedsCleanup),
            1 => Just(Step::ExportClearImport),
            1 => Just(Step::ClearAll),
            4 => prop_oneof![
                Just(60_000u64), Just(3_600_000), Just(7 * 3_600_000), Just(DAY_MS), Just(3 * DAY_MS),
                Just(10 * DAY_MS), Just(31 * DAY_MS), Just(90 * DAY_MS)
            ].prop_map(Step::Advance),
            1 => Just(Step::Reopen),
            3 => (prop_oneof![
                (id.clone(), any::<bool>()).prop_map(|(id, secret)| Step::Store { id, secret }),
                (id.clone(), prop_oneof![Just(0u64), Just(2 * DAY_MS)])
                    .prop_map(|(id, back_ms)| Step::Touch { id, back_ms }),
                id.clone().prop_map(|id| Step::Remove { id }),
                (id.clone(), any::<bool>()).prop_map(|(id, secret)| Step::Learn { id, secret }),
                session_strategy(id.clone()),
                address_strategy(id.clone()),
                id.clone().prop_map(|id| Step::Seen { id }),
                id.clone().prop_map(|id| Step::Fail { id, times: 1 }),
                (id.clone(), patch_strategy()).prop_map(|(id, patch)| Step::Quality { id, patch }),
                Just(Step::CleanupStale),
                (0usize..3).prop_map(Step::CleanupLru),
            ], any::<bool>())
                .prop_map(|(step, after)| Step::Faulty { step: Box::new(step), after }),
            3 => (prop_oneof![
                (id.clone(), any::<bool>()).prop_map(|(id, secret)| Step::Store { id, secret }),
                id.clone().prop_map(|id| Step::Get { id }),
                id.clone().prop_map(|id| Step::Remove { id }),
                (id.clone(), any::<bool>()).prop_map(|(id, secret)| Step::Learn { id, secret }),
                session_strategy(id.clone()),
                address_strategy(id.clone()),
                id.clone().prop_map(|id| Step::Seen { id }),
                id.clone().prop_map(|id| Step::Fail { id, times: 1 }),
                (0u8..3, any::<bool>(), prop::option::of(0usize..4), prop::option::of(Just(DAY_MS)), Just(None))
                    .prop_map(|(sort, desc, limit, max_age_ms, min_quality)| Step::Query { sort, desc, limit, max_age_ms, min_quality }),
                (0usize..4, prop::option::of(Just(DAY_MS))).prop_map(|(limit, max_age_ms)| Step::Candidates { limit, max_age_ms }),
                Just(Step::CleanupStale),
                (0usize..3).prop_map(Step::CleanupLru),
                Just(Step::Stats),
            ], 0u8..3, 1u64..4, any::<bool>())
                .prop_map(|(step, op, nth, after)| Step::FaultyRead { step: Box::new(step), op, nth, after }),
        ]
        .boxed()
    }

    fn apply(mut m: Model, step: &Step) -> Model {
        if let Step::FaultyRead { step, .. } = step {
            // a failed read changes nothing; the step then runs unfaulted
            return Self::apply(m, step);
        }
        if let Step::Faulty { step, after } = step {
            // After: the write landed. Before: nothing did (a step changes the model
            // only with a write); the outcome is the step's when it never writes.
            let applied = Self::apply(m.clone(), step);
            if *after {
                return applied;
            }
            m.expected = applied.expected;
            return m;
        }
        m.expected = match *step {
            Step::Store { id, secret } => m.upsert(id, secret, true),
            Step::AddAddress {
                id,
                addr,
                expires_ms,
            } => {
                if addr == 3 {
                    Outcome::Err("invalid_input")
                } else {
                    m.with_peer(id, |v, now| {
                        let expires_at = expires_ms.map(|ms| now + ms);
                        if expires_ms.is_some_and(|ms| ms > MAX_ADDRESS_TTL_MS) {
                            return Err("invalid_input");
                        }
                        match v.addresses.iter_mut().find(|a| a.addr == ADDRS[addr]) {
                            Some(a) => {
                                a.source = AddressSource::Discovery;
                                a.expires_at = expires_at;
                            }
                            None => v.addresses.push(PeerAddress {
                                addr: ADDRS[addr].into(),
                                source: AddressSource::Discovery,
                                expires_at,
                                ..PeerAddress::default()
                            }),
                        }
                        Ok(())
                    })
                }
            }
            Step::AddressResult { id, addr, ok } => m.with_peer(id, |v, now| {
                let a = v
                    .addresses
                    .iter_mut()
                    .find(|a| a.addr == ADDRS[addr])
                    .ok_or("invalid_input")?;
                if ok {
                    a.last_success = Some(now);
                } else {
                    a.last_failure = Some(now);
                }
                Ok(())
            }),
            Step::Learn { id, secret } => m.upsert(id, secret, false),
            Step::Session {
                id,
                success,
                uptime_ms,
                latency_ms,
            } => m.with_peer(id, |v, _| {
                let session = SessionObservation {
                    success,
                    uptime_ms,
                    latency_ms,
                };
                v.quality = update_quality_metrics(&v.quality, &session);
                Ok(())
            }),
            Step::Touch { id, back_ms } => match valid(id) {
                None => Outcome::Err("invalid_input"),
                Some(id) => match m.peers.get_mut(id) {
                    None => Outcome::Peer(None),
                    Some(v) => {
                        v.last_seen = m.now.saturating_sub(back_ms);
                        v.last_connected = v.last_connected.min(v.last_seen);
                        Outcome::Peer(Some(v.clone()))
                    }
                },
            },
            Step::Get { id } => match valid(id) {
                None => Outcome::Err("invalid_input"),
                Some(id) => Outcome::Peer(m.peers.get(id).cloned()),
            },
            Step::Remove { id } => match valid(id) {
                None => Outcome::Err("invalid_input"),
                Some(id) => Outcome::Bool(m.peers.remove(id).is_some()),
            },
            Step::Seen { id } => m.with_peer(id, |v, now| {
                v.last_seen = now;
                v.last_connected = now;
                v.attempts = 0;
                v.blacklist_until = None;
                Ok(())
            }),
            Step::Fail { id, times } => m.with_peer(id, |v, now| {
                for _ in 0..times {
                    v.attempts = v.attempts.saturating_add(1);
                    if v.attempts >= FAILED_ATTEMPTS {
                        v.blacklist_until = Some(now + DAY_MS);
                    }
                }
                Ok(())
            }),
            Step::Quality { id, patch } => m.with_peer(id, |v, _| {
                let q = &mut v.quality;
                let next = ConnectionQuality {
                    latency_ms: patch.latency.unwrap_or(q.latency_ms),
                    success_rate: patch.rate.unwrap_or(q.success_rate),
                    connection_type: patch.kind.unwrap_or(q.connection_type),
                    total_connections: patch.total.unwrap_or(q.total_connections),
                    successful_connections: patch.ok.unwrap_or(q.successful_connections),
                    avg_uptime_ms: patch.uptime.unwrap_or(q.avg_uptime_ms),
                };
                let rate_ok =
                    next.success_rate.is_finite() && (0.0..=1.0).contains(&next.success_rate);
                if !rate_ok || next.successful_connections > next.total_connections {
                    return Err("invalid_input");
                }
                *q = next;
                Ok(())
            }),
            Step::Query {
                sort,
                desc,
                limit,
                max_age_ms,
                min_quality,
            } => {
                if min_quality.is_some_and(|q| q > 100) {
                    Outcome::Err("invalid_input")
                } else {
                    let min = min_quality.unwrap_or(0);
                    let mut views: Vec<&View> = m
                        .peers
                        .values()
                        .filter(|v| m.in_age(v, max_age_ms) && quality_score(&v.quality) >= min)
                        .collect();
                    let ids: Vec<String> = match sort {
                        0 | 1 => {
                            let key = |v: &View| {
                                if sort == 0 {
                                    v.last_seen
                                } else {
                                    u64::from(quality_score(&v.quality))
                                }
                            };
                            views.sort_by(|a, b| (key(a), &a.id).cmp(&(key(b), &b.id)));
                            if desc {
                                views.reverse();
                            }
                            views.into_iter().map(|v| v.id.clone()).collect()
                        }
                        _ => {
                            let mut ranked: Vec<String> =
                                m.ranked(views).into_iter().map(|(id, _)| id).collect();
                            if !desc {
                                ranked.reverse();
                            }
                            ranked
                        }
                    };
                    Outcome::Ids(ids.into_iter().take(limit.unwrap_or(usize::MAX)).collect())
                }
            }
            Step::Candidates { limit, max_age_ms } => {
                let views: Vec<&View> = m
                    .peers
                    .values()
                    .filter(|v| !m.blacklisted(v) && m.in_age(v, max_age_ms))
                    .collect();
                Outcome::Scored(m.ranked(views).into_iter().take(limit).collect())
            }
            Step::CleanupStale => {
                let now = m.now;
                let stale: Vec<String> = m
                    .peers
                    .values()
                    .filter(|v| {
                        now.saturating_sub(v.last_seen) > INACTIVE_MS
                            || (v.attempts >= FAILED_ATTEMPTS
                                && v.blacklist_until.is_none_or(|u| u <= now))
                    })
                    .map(|v| v.id.clone())
                    .collect();
                m.last_cleanup = now;
                let removed = m.remove_ids(stale);
                for v in m.peers.values_mut() {
                    v.addresses.retain(|a| !a.is_expired(now));
                }
                removed
            }
            Step::CleanupLru(n) => {
                let mut all: Vec<&View> = m.peers.values().collect();
                all.sort_by(|a, b| (a.last_seen, &a.id).cmp(&(b.last_seen, &b.id)));
                let victims = all.into_iter().take(n).map(|v| v.id.clone()).collect();
                m.remove_ids(victims)
            }
            Step::Stats => Outcome::Stats {
                peers: m.peers.len() as u64,
                blacklisted: m.peers.values().filter(|v| m.blacklisted(v)).count() as u64,
            },
            Step::NeedsCleanup => Outcome::Bool(
                m.now.saturating_sub(m.last_cleanup) > CLEANUP_MS
                    || m.peers.len() * 10 >= MAX_PEERS * 9,
            ),
            Step::ExportClearImport => {
                m.last_cleanup = m.now;
                Outcome::Count(m.peers.len())
            }
            Step::ClearAll => {
                m.peers.clear();
                m.last_cleanup = m.now;
                Outcome::Unit
            }
            Step::Advance(ms) => {
                m.now += ms;
                Outcome::Unit
            }
            Step::Reopen | Step::Faulty { .. } | Step::FaultyRead { .. } => Outcome::Unit,
        };
        m
    }
}

/// A book over any engine.
type DynBook = PeerBook<Arc<dyn Backend>>;

/// The fault switch of one book's backend.
type Faults = Arc<FailingBackend<Arc<dyn Backend>>>;

/// An open book and the fault switch under it.
type Open = (DynBook, Faults);

/// One book per engine, all on the same manual clock.
struct Books {
    clock: ManualClock,
    books: Vec<(Engine, Option<Open>, tempfile::TempDir)>,
}

/// Open `engine`'s book in `dir` behind a fault switch.
fn open_book(engine: Engine, dir: &std::path::Path, clock: &ManualClock) -> Open {
    let faults: Faults = Arc::new(FailingBackend::new(engine.open(dir)));
    let backend: Arc<dyn Backend> = faults.clone();
    let book = PeerBook::open(backend, options(clock)).expect("open book");
    (book, faults)
}

fn options(clock: &ManualClock) -> peerbook::Options {
    let mut o = common::options(clock);
    o.max_peers = MAX_PEERS as u64;
    o.failed_attempts = FAILED_ATTEMPTS;
    // Buffered keeps the many cases quick; durability is proven by the crash tests.
    o.durability = peerbook::Durability::Buffered;
    o
}

fn err(e: peerbook::Error) -> Outcome {
    Outcome::Err(e.kind())
}

fn new_peer(id: usize, secret: bool) -> NewPeer {
    NewPeer {
        peer_id: IDS[id].into(),
        display_name: format!("  Peer\u{202E} {}", IDS[id]),
        public_key: "pk".into(),
        shared_secret: secret.then(|| Secret::from("s3cret")),
        ..NewPeer::default()
    }
}

fn run(book: &PeerBook<Arc<dyn Backend>>, step: &Step, now: u64) -> Outcome {
    let peer =
        |r: peerbook::Result<PeerRecord>| r.map_or_else(err, |r| Outcome::Peer(Some(View::of(&r))));
    match *step {
        Step::Store { id, secret } => peer(book.store_peer(new_peer(id, secret))),
        Step::AddAddress {
            id,
            addr,
            expires_ms,
        } => peer(book.add_address(
            IDS[id],
            ADDRS[addr],
            AddressSource::Discovery,
            expires_ms.map(|ms| now + ms),
        )),
        Step::AddressResult { id, addr, ok } => {
            peer(book.record_address_result(IDS[id], ADDRS[addr], ok))
        }
        Step::Learn { id, secret } => peer(book.learn_peer(new_peer(id, secret))),
        Step::Session {
            id,
            success,
            uptime_ms,
            latency_ms,
        } => peer(book.record_session(
            IDS[id],
            &SessionObservation {
                success,
                uptime_ms,
                latency_ms,
            },
        )),
        Step::Touch { id, back_ms } => match book.get_peer(IDS[id]) {
            Err(e) => err(e),
            Ok(None) => Outcome::Peer(None),
            Ok(Some(mut r)) => {
                r.last_seen = now.saturating_sub(back_ms);
                // never connected after last seen (the book refuses that)
                r.last_connected = r.last_connected.min(r.last_seen);
                peer(book.store_peer(r))
            }
        },
        Step::Get { id } => book
            .get_peer(IDS[id])
            .map_or_else(err, |r| Outcome::Peer(r.as_ref().map(View::of))),
        Step::Remove { id } => book.remove_peer(IDS[id]).map_or_else(err, Outcome::Bool),
        Step::Seen { id } => peer(book.update_last_seen(IDS[id])),
        Step::Fail { id, times } => {
            let mut last = book.increment_reconnection_attempts(IDS[id]);
            for _ in 1..times {
                if last.is_err() {
                    break;
                }
                last = book.increment_reconnection_attempts(IDS[id]);
            }
            peer(last)
        }
        Step::Quality { id, patch } => {
            peer(book.update_connection_quality(IDS[id], patch.update()))
        }
        Step::Query {
            sort,
            desc,
            limit,
            max_age_ms,
            min_quality,
        } => {
            let query = PeerQuery {
                sort_by: [SortBy::LastSeen, SortBy::Quality, SortBy::ReconnectionScore]
                    [sort as usize],
                order: if desc { Order::Desc } else { Order::Asc },
                limit,
                max_age: max_age_ms.map(Duration::from_millis),
                min_quality,
            };
            book.query_peers(&query).map_or_else(err, |rs| {
                Outcome::Ids(rs.iter().map(|r| r.peer_id.to_string()).collect())
            })
        }
        Step::Candidates { limit, max_age_ms } => book
            .get_reconnection_candidates(&CandidateQuery {
                limit,
                max_age: max_age_ms.map(Duration::from_millis),
            })
            .map_or_else(err, |cs| {
                Outcome::Scored(
                    cs.iter()
                        .map(|c| (c.peer.peer_id.to_string(), c.score.total))
                        .collect(),
                )
            }),
        Step::CleanupStale => book.cleanup_stale_peers().map_or_else(err, Outcome::Count),
        Step::CleanupLru(n) => book.cleanup_lru(n).map_or_else(err, Outcome::Count),
        Step::Stats => book
            .get_storage_stats()
            .map_or_else(err, |s| Outcome::Stats {
                peers: s.peer_count,
                blacklisted: s.blacklisted_count,
            }),
        Step::NeedsCleanup => book.needs_cleanup().map_or_else(err, Outcome::Bool),
        Step::ExportClearImport => {
            let doc = match book.export_data(ExportOptions::default()) {
                Ok(doc) => doc,
                Err(e) => return err(e),
            };
            let json = doc.to_json();
            if let Err(e) = book.clear_all() {
                return err(e);
            }
            let parsed = match peerbook::ExportDocument::from_json(&json) {
                Ok(d) => d,
                Err(e) => return err(e),
            };
            book.import_data(&parsed, ImportMode::Replace)
                .map_or_else(err, |r| Outcome::Count(r.imported))
        }
        Step::ClearAll => book.clear_all().map_or_else(err, |()| Outcome::Unit),
        Step::Advance(_) | Step::Reopen | Step::Faulty { .. } | Step::FaultyRead { .. } => {
            Outcome::Unit
        }
    }
}

impl StateMachineTest for Books {
    type SystemUnderTest = Books;
    type Reference = RefMachine;

    fn init_test(_: &Model) -> Books {
        let clock = ManualClock::new(T0);
        let books = ENGINES
            .iter()
            .map(|&engine| {
                let dir = tempfile::tempdir().expect("temp dir");
                let book = open_book(engine, dir.path(), &clock);
                (engine, Some(book), dir)
            })
            .collect();
        Books { clock, books }
    }

    fn apply(mut sut: Books, model: &Model, step: Step) -> Books {
        sut.clock.set(model.now);
        for (engine, slot, dir) in &mut sut.books {
            if let Step::Reopen = step {
                let (book, faults) = slot.take().expect("book present");
                let backend = book.close().expect("close");
                drop((backend, faults));
                *slot = Some(open_book(*engine, dir.path(), &sut.clock));
                continue;
            }
            let (book, faults) = slot.as_ref().expect("book present");
            if let Step::Faulty { step: inner, after } = &step {
                let before = faults.injected();
                let when = if *after {
                    FailWhen::After
                } else {
                    FailWhen::Before
                };
                faults.fail_nth(FailOp::Write, 1, when);
                let got = run(book, inner, model.now);
                faults.disarm();
                if faults.injected() == before {
                    // the step wrote nothing: its plain outcome
                    assert_eq!(got, model.expected, "{}: {step:?}", engine.name());
                    continue;
                }
                assert_eq!(got, Outcome::Err("backend"), "{}: {step:?}", engine.name());
                assert!(
                    book.needs_reopen(),
                    "{}: poisoned after {step:?}",
                    engine.name()
                );
                let refused = book.store_peer(NewPeer {
                    peer_id: "a".into(),
                    public_key: "pk".into(),
                    ..NewPeer::default()
                });
                assert!(
                    matches!(refused, Err(peerbook::Error::NeedsReopen)),
                    "{}: a poisoned book refuses writes",
                    engine.name()
                );
                let (book, faults) = slot.take().expect("book present");
                let backend = book.close().expect("close a poisoned book");
                drop((backend, faults));
                *slot = Some(open_book(*engine, dir.path(), &sut.clock));
                continue;
            }
            if let Step::FaultyRead {
                step: inner,
                op,
                nth,
                after,
            } = &step
            {
                let before = faults.dump().expect("dump before the step");
                let injected = faults.injected();
                let op = [FailOp::Get, FailOp::Scan, FailOp::View][usize::from(*op)];
                let when = if *after {
                    FailWhen::After
                } else {
                    FailWhen::Before
                };
                faults.fail_nth(op, *nth, when);
                let got = run(book, inner, model.now);
                faults.disarm();
                let name = engine.name();
                if faults.injected() == injected {
                    // the step made fewer reads of that kind: its plain outcome
                    assert_eq!(got, model.expected, "{name}: {step:?}");
                    continue;
                }
                assert_eq!(got, Outcome::Err("backend"), "{name}: {step:?}");
                assert!(
                    !book.needs_reopen(),
                    "{name}: a failed read poisons nothing"
                );
                let now = faults.dump().expect("dump after the step");
                assert!(
                    now == before,
                    "{name}: a failed read changed the book: {step:?}"
                );
                let got = run(book, inner, model.now);
                assert_eq!(got, model.expected, "{name}: {step:?} run again");
                continue;
            }
            let got = run(book, &step, model.now);
            assert_eq!(got, model.expected, "{}: {step:?}", engine.name());
        }
        sut
    }

    fn check_invariants(sut: &Books, _: &Model) {
        for (engine, book, _) in &sut.books {
            let report = book
                .as_ref()
                .expect("book present")
                .0
                .verify()
                .expect("verify");
            assert!(
                report.is_clean(),
                "{}: verify after the step: {report:?}",
                engine.name()
            );
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(128),
        max_shrink_iters: 4096,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn every_backend_matches_the_model(sequential 1..80 => Books);
}
