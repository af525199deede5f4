//! The reference model: the book as ordered maps plus the core's scoring
//! functions ([`Model`]), and the reference state machine ([`RefMachine`]) that
//! generates the transitions and says what each one returns and changes.

use std::collections::BTreeMap;

use peerbook::address::{AddressSource, PeerAddress, MAX_ADDRESS_TTL_MS};
use peerbook::scoring::{candidate_order, quality_score, reconnection_score, DAY_MS};
use peerbook::{update_quality_metrics, ConnectionQuality, PeerRecord, SessionObservation};
use proptest::prelude::*;
use proptest_state_machine::ReferenceStateMachine;

use crate::steps::{
    address_strategy, patch_strategy, session_strategy, Outcome, Step, View, ADDRS, CLEANUP_MS,
    FAILED_ATTEMPTS, IDS, INACTIVE_MS, MAX_PEERS, T0,
};

#[derive(Clone, Debug)]
pub struct Model {
    pub now: u64,
    pub last_cleanup: u64,
    pub peers: BTreeMap<String, View>,
    pub expected: Outcome,
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

pub struct RefMachine;

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
