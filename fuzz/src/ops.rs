//! The body of the `ops_memory_vs_file` fuzz target: the same operations
//! ([`Op`](crate::Op)) on a memory book and a file book (reopened now and then),
//! every result compared, both books verified clean with the same peers at the end.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use peerbook::backend::Backend;
use peerbook::{
    CandidateQuery, ConnectionType, Error, ExportOptions, ManualClock, MemoryBackend, NewIceServer,
    NewPeer, Options, Order, PeerBook, PeerQuery, PeerRecord, QualityUpdate, Secret, SortBy,
};
use peerbook_file::{FileBackend, FileOptions};

use crate::ops_input::{address, pool, Op, OpsInput, MAX_OPS};
use crate::{options, temp_dir, START_MS};

/// A record with its seals replaced by whether they were there (sealing uses a
/// random nonce, so two books never hold the same sealed bytes).
fn unsealed(r: &PeerRecord) -> (PeerRecord, bool, Vec<bool>) {
    let mut r = r.clone();
    let shared = r.shared_secret.take().is_some();
    let creds = r
        .ice_servers
        .iter_mut()
        .map(|s| s.credential.take().is_some())
        .collect();
    (r, shared, creds)
}

/// The result of one op, comparable across backends: errors by kind, records
/// without their sealed bytes.
#[derive(Debug, PartialEq)]
enum Outcome {
    Err(&'static str),
    Unit,
    Bool(bool),
    Count(usize),
    Record(Box<(PeerRecord, bool, Vec<bool>)>),
    MaybeRecord(Option<Box<(PeerRecord, bool, Vec<bool>)>>),
    Records(Vec<(PeerRecord, bool, Vec<bool>)>),
    Candidates(Vec<(String, String)>),
    Stats(Vec<Option<u64>>),
}

fn outcome<T>(r: Result<T, Error>, f: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => f(v),
        Err(e) => Outcome::Err(e.kind()),
    }
}

struct Books {
    clock_m: ManualClock,
    clock_f: ManualClock,
    memory: PeerBook<MemoryBackend>,
    file: Option<PeerBook<FileBackend>>,
    dir: std::path::PathBuf,
    max_peers: u64,
    evict: bool,
}

impl Books {
    fn opts(&self, clock: &ManualClock) -> Options {
        let mut o = options(clock);
        o.max_peers = self.max_peers;
        o.evict_when_full = self.evict;
        o
    }

    fn open_file(&mut self) {
        let backend = FileBackend::open(
            &self.dir,
            FileOptions::default()
                .with_compact_min_log_bytes(4096)
                .with_snapshot_chunk_bytes(512),
        )
        .expect("open the file backend");
        self.file =
            Some(PeerBook::open(backend, self.opts(&self.clock_f)).expect("open the file book"));
    }

    fn file(&self) -> &PeerBook<FileBackend> {
        self.file.as_ref().expect("the file book is open")
    }
}

fn run_op<B: Backend>(
    book: &PeerBook<B>,
    op: &Op,
    memory: &PeerBook<MemoryBackend>,
    now: u64,
) -> Outcome {
    let rec = |r: PeerRecord| Outcome::Record(Box::new(unsealed(&r)));
    match op {
        Op::Store {
            id,
            name,
            secret,
            ice,
        } => {
            let new = NewPeer {
                peer_id: pool(*id).into(),
                display_name: ["Alice", "  Bob\u{202e}  x", "", "Carol the   third"]
                    [usize::from(*name) % 4]
                    .into(),
                public_key: "{\"kty\":\"EC\"}".into(),
                shared_secret: secret.then(|| Secret::from("s3cret")),
                ice_servers: if *ice {
                    vec![NewIceServer {
                        urls: vec!["turn:turn.example.org:3478".into()],
                        username: Some("u".into()),
                        credential: Some(Secret::from("pw")),
                    }]
                } else {
                    Vec::new()
                },
                cached_candidates: vec!["candidate:1 1 udp 1 192.0.2.1 9 typ host".into()],
                last_known_ip: Some(IpAddr::from([192, 0, 2, *name])),
            };
            outcome(book.store_peer(new), rec)
        }
        Op::StoreRecord { id, attempts } => {
            // The record is read from the memory book and re-sealed for this book: a
            // record's seals only open in the book that made them, so the file book
            // gets its own copy's seals.
            let Ok(Some(mut r)) = memory.get_peer(pool(*id)) else {
                return Outcome::Unit;
            };
            let mine = book.get_peer(pool(*id));
            let Ok(Some(own)) = mine else {
                return Outcome::Unit;
            };
            r.shared_secret = own.shared_secret;
            for (s, o) in r.ice_servers.iter_mut().zip(own.ice_servers) {
                s.credential = o.credential;
            }
            r.reconnection_attempts = u32::from(*attempts);
            outcome(book.store_peer(r), rec)
        }
        Op::Get(id) => outcome(book.get_peer(pool(*id)), |r| {
            Outcome::MaybeRecord(r.map(|r| Box::new(unsealed(&r))))
        }),
        Op::Remove(id) => outcome(book.remove_peer(pool(*id)), Outcome::Bool),
        Op::UpdateLastSeen(id) => outcome(book.update_last_seen(pool(*id)), rec),
        Op::Increment(id) => outcome(book.increment_reconnection_attempts(pool(*id)), rec),
        Op::Quality {
            id,
            latency,
            success,
            kind,
            total,
            successful,
            uptime,
        } => {
            let update = QualityUpdate {
                latency_ms: *latency,
                success_rate: success.map(|s| f32::from(s) / 200.0),
                connection_type: kind.map(|k| {
                    [
                        ConnectionType::Host,
                        ConnectionType::Srflx,
                        ConnectionType::Relay,
                        ConnectionType::Unknown,
                    ][usize::from(k) % 4]
                }),
                total_connections: total.map(u32::from),
                successful_connections: successful.map(u32::from),
                avg_uptime_ms: uptime.map(u64::from),
            };
            outcome(book.update_connection_quality(pool(*id), update), rec)
        }
        Op::Query {
            sort,
            desc,
            limit,
            max_age_min,
            min_quality,
        } => {
            let query = PeerQuery {
                sort_by: [SortBy::LastSeen, SortBy::Quality, SortBy::ReconnectionScore]
                    [usize::from(*sort) % 3],
                order: if *desc { Order::Desc } else { Order::Asc },
                limit: limit.map(usize::from),
                max_age: max_age_min.map(|m| Duration::from_secs(u64::from(m) * 60)),
                min_quality: *min_quality,
            };
            outcome(book.query_peers(&query), |v| {
                Outcome::Records(v.iter().map(unsealed).collect())
            })
        }
        Op::Candidates { limit, max_age_min } => {
            let query = CandidateQuery {
                limit: usize::from(*limit),
                max_age: max_age_min.map(|m| Duration::from_secs(u64::from(m) * 60)),
            };
            outcome(book.get_reconnection_candidates(&query), |v| {
                Outcome::Candidates(
                    v.iter()
                        .map(|c| (c.peer.peer_id.to_string(), format!("{:?}", c.score)))
                        .collect(),
                )
            })
        }
        Op::CleanupStale => outcome(book.cleanup_stale_peers(), Outcome::Count),
        Op::CleanupLru(n) => outcome(book.cleanup_lru(usize::from(*n % 8)), Outcome::Count),
        Op::Clear => outcome(book.clear_all(), |()| Outcome::Unit),
        Op::Stats => outcome(book.get_storage_stats(), |s| {
            Outcome::Stats(vec![
                Some(s.peer_count),
                Some(s.blacklisted_count),
                Some(s.corrupt_records),
                Some(s.quarantined_records),
                Some(s.record_bytes),
                Some(s.max_peers),
                s.oldest_seen,
                s.newest_seen,
                s.last_cleanup,
            ])
        }),
        Op::Export => outcome(
            book.export_data(ExportOptions {
                include_secrets: false,
            }),
            |d| Outcome::Records(d.peers.iter().map(unsealed).collect()),
        ),
        Op::Learn { id, secret } => outcome(
            book.learn_peer(NewPeer {
                peer_id: pool(*id).into(),
                public_key: "{\"kty\":\"EC\"}".into(),
                shared_secret: secret.then(|| Secret::from("s3cret")),
                ..NewPeer::default()
            }),
            rec,
        ),
        Op::Session {
            id,
            success,
            uptime_s,
            latency,
        } => outcome(
            book.record_session(
                pool(*id),
                &peerbook::SessionObservation {
                    success: *success,
                    uptime_ms: u64::from(*uptime_s) * 1000,
                    latency_ms: latency.map(u32::from),
                },
            ),
            rec,
        ),
        Op::AddAddress {
            id,
            addr,
            source,
            expires_min,
        } => {
            let source = [
                peerbook::AddressSource::Observed,
                peerbook::AddressSource::Reported,
                peerbook::AddressSource::Discovery,
                peerbook::AddressSource::Manual,
            ][usize::from(*source % 4)];
            let expires = expires_min.map(|m| now.saturating_add(u64::from(m) * 60_000));
            outcome(
                book.add_address(pool(*id), &address(*addr), source, expires),
                rec,
            )
        }
        Op::AddressResult { id, addr, ok } => outcome(
            book.record_address_result(pool(*id), &address(*addr), *ok),
            rec,
        ),
        Op::Metadata { id, key, value } => {
            let key = ["agent", "protocols", "bad key", ""][usize::from(*key % 4)];
            let value = value.map(|v| "v".repeat(usize::from(v) + 1));
            outcome(book.set_metadata(pool(*id), key, value.as_deref()), rec)
        }
        Op::Advance(_) | Op::Reopen => Outcome::Unit,
    }
}

/// An arbitrary sequence of book operations on a small id pool, applied to a
/// `MemoryBackend` book and a `FileBackend` book (temporary directory, reopened now
/// and then): every result must be the same (errors compared by `Error::kind`), and
/// both books end clean under `verify` with the same peers.
pub fn ops_memory_vs_file(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(input) = OpsInput::arbitrary(&mut u) else {
        return;
    };
    let tmp = temp_dir();
    let clock_m = ManualClock::new(START_MS);
    let clock_f = ManualClock::new(START_MS);
    let max_peers = 1 + u64::from(input.max_peers % 8);
    let mut memory_options = options(&clock_m);
    memory_options.max_peers = max_peers;
    memory_options.evict_when_full = input.evict;
    let mut books = Books {
        memory: PeerBook::open(MemoryBackend::new(), memory_options).expect("open memory book"),
        clock_m,
        clock_f,
        file: None,
        dir: tmp.path().join("book"),
        max_peers,
        evict: input.evict,
    };
    books.open_file();
    let mut history = Vec::new();
    for op in input.ops.iter().take(MAX_OPS) {
        history.push(op);
        match op {
            Op::Advance(minutes) => {
                let by = Duration::from_secs(u64::from(*minutes) * 60);
                books.clock_m.advance(by);
                books.clock_f.advance(by);
                continue;
            }
            Op::Reopen => {
                books
                    .file
                    .take()
                    .expect("open")
                    .close()
                    .expect("close the file book");
                books.open_file();
                continue;
            }
            _ => {}
        }
        let now = peerbook::Clock::now_ms(&books.clock_m);
        let m = run_op(&books.memory, op, &books.memory, now);
        let f = run_op(books.file(), op, &books.memory, now);
        assert_eq!(m, f, "memory and file books differ after {history:#?}");
    }
    let all = |records: Vec<PeerRecord>| -> BTreeMap<String, (PeerRecord, bool, Vec<bool>)> {
        records
            .iter()
            .map(|r| (r.peer_id.to_string(), unsealed(r)))
            .collect()
    };
    let m = all(books
        .memory
        .query_peers(&PeerQuery::default())
        .expect("query memory"));
    let f = all(books
        .file()
        .query_peers(&PeerQuery::default())
        .expect("query file"));
    assert_eq!(m, f, "final books differ after {history:#?}");
    for report in [books.memory.verify(), books.file().verify()] {
        let report = report.expect("verify");
        assert!(report.is_clean(), "verify: {report:?} after {history:#?}");
    }
    // The file book holds the same after a reopen.
    books
        .file
        .take()
        .expect("open")
        .close()
        .expect("close the file book");
    books.open_file();
    let again = all(books
        .file()
        .query_peers(&PeerQuery::default())
        .expect("query file"));
    assert_eq!(
        m, again,
        "the reopened file book differs after {history:#?}"
    );
}
