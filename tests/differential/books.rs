//! The system under test: one book per engine, each behind a fault switch
//! ([`Books`]), every step run on each ([`run`]) and its result compared with the
//! model's, with injected write and read failures, reopens and a clean `verify`
//! after every step.

use std::sync::Arc;
use std::time::Duration;

use peerbook::address::AddressSource;
use peerbook::backend::BackendExt;
use peerbook::conformance::failing::{FailOp, FailWhen, FailingBackend};
use peerbook::{
    Backend, CandidateQuery, ExportOptions, ImportMode, ManualClock, NewPeer, Order, PeerBook,
    PeerQuery, PeerRecord, Secret, SessionObservation, SortBy,
};
use proptest_state_machine::StateMachineTest;

use crate::common::{self, Engine, ENGINES};
use crate::model::{Model, RefMachine};
use crate::steps::{Outcome, Step, View, ADDRS, FAILED_ATTEMPTS, IDS, MAX_PEERS, T0};

/// A book over any engine.
type DynBook = PeerBook<Arc<dyn Backend>>;

/// The fault switch of one book's backend.
type Faults = Arc<FailingBackend<Arc<dyn Backend>>>;

/// An open book and the fault switch under it.
type Open = (DynBook, Faults);

/// One book per engine, all on the same manual clock.
pub struct Books {
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
