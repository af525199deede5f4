//! Tests of the parent module (split out to keep files under ~700 lines).

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex};

use peerbook::conformance::failing::{FailOp, FailWhen, FailingBackend};
use peerbook::conformance::hooked::HookedBackend;
use peerbook::{MasterKey, MemoryBackend, Options, PeerBook, SessionObservation};

use super::{Op, State, Via, WriteBehind};

/// A memory backend whose writes wait while the gate is shut; the gate also
/// counts the writes that reached it.
fn gated(gate: Arc<(Mutex<(bool, usize)>, Condvar)>) -> HookedBackend<MemoryBackend> {
    HookedBackend::new(MemoryBackend::new(), move |op| {
        if op != FailOp::Write {
            return;
        }
        let (lock, cvar) = &*gate;
        let mut g = lock.lock().unwrap();
        g.1 += 1;
        cvar.notify_all();
        while !g.0 {
            g = cvar.wait(g).unwrap();
        }
    })
}

fn latency(peer: &str, ms: u32) -> Op {
    Op::State {
        peer: peer.into(),
        state: State {
            latency_ms: Some(ms),
            ..State::default()
        },
    }
}

type Gate = Arc<(Mutex<(bool, usize)>, Condvar)>;
type Book = Arc<PeerBook<HookedBackend<MemoryBackend>>>;

/// A book on a [`gated`] backend and its writer (a queue of `capacity` ops),
/// the writer held inside the write of one op for `stuck` (the gate shut).
fn stuck_writer(capacity: usize, stuck: &str) -> (Gate, Book, WriteBehind) {
    let gate: Gate = Arc::new((Mutex::new((true, 0)), Condvar::new()));
    let backend = gated(gate.clone());
    let book =
        Arc::new(PeerBook::open(backend, Options::new(MasterKey::from_bytes([1; 32]))).unwrap());
    let w = WriteBehind::start(book.clone(), capacity).unwrap();
    let (lock, cvar) = &*gate;
    *lock.lock().unwrap() = (false, 0);
    w.push(latency(stuck, 1));
    let mut g = lock.lock().unwrap();
    while g.1 == 0 {
        g = cvar.wait(g).unwrap();
    }
    drop(g);
    (gate, book, w)
}

/// Let the writer's writes through.
fn open_gate(gate: &Gate) {
    let (lock, cvar) = &**gate;
    lock.lock().unwrap().0 = true;
    cvar.notify_all();
}

/// A book whose backend panics on every write after it was opened.
fn panicking_book() -> Book {
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trigger = armed.clone();
    let backend = HookedBackend::new(MemoryBackend::new(), move |op| {
        let armed = trigger.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            !armed || op != FailOp::Write,
            "the backend panics on a write"
        );
    });
    let book =
        Arc::new(PeerBook::open(backend, Options::new(MasterKey::from_bytes([1; 32]))).unwrap());
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    book
}

#[test]
fn full_queue_keeps_latest_state_per_peer_and_counts_drops() {
    // the writer blocks inside one write
    let (gate, book, mut w) = stuck_writer(2, "p");
    // the writer is stuck: 2 ops fill the queue, the rest overflow
    w.push(latency("q", 2));
    w.push(latency("q", 3));
    w.push(latency("p", 10)); // overflow slot for p
    w.push(latency("p", 11)); // replaces 10: one dropped
    let session = SessionObservation {
        success: true,
        uptime_ms: 5,
        latency_ms: None,
    };
    w.push(Op::Session {
        peer: "p".into(),
        observation: session,
    }); // dropped
    let dropped = w.dropped();
    // open the gate before any assert: a failure must not leave the writer stuck
    open_gate(&gate);
    assert_eq!(dropped, 2, "one replaced state, one session");
    w.wait_idle();
    let p = book.get_peer("p").unwrap().unwrap();
    assert_eq!(
        p.connection_quality.latency_ms,
        Some(11),
        "latest state kept"
    );
    assert_eq!(
        p.connection_quality.total_connections, 0,
        "the session was dropped"
    );
    let q = book.get_peer("q").unwrap().unwrap();
    assert_eq!(
        q.connection_quality.latency_ms,
        Some(3),
        "queued ops applied in order"
    );
    w.shutdown().unwrap();
    assert_eq!(w.failed(), 0);
}

/// Review 3, finding 6: a connection that met a full queue was dropped: a
/// peer we dialed stayed unknown (or "never connected", its later sessions
/// ignored), a reconnected peer kept its attempts and blacklist. It is now
/// folded into the peer's overflow state.
#[test]
fn a_connection_past_a_full_queue_is_kept() {
    let (gate, book, mut w) = stuck_writer(2, "stuck");
    w.push(latency("q", 2));
    w.push(latency("q", 3)); // the queue is full
    let addr = "/ip4/1.2.3.4/tcp/4001";
    w.push(Op::Connected {
        peer: "p".into(),
        public_key: None,
        via: Via::Dialed(Some(addr.into())),
    });
    w.push(latency("p", 7));
    w.push(Op::Connected {
        peer: "p".into(),
        public_key: None,
        via: Via::Inbound, // does not undo the dial
    });
    let dropped = w.dropped();
    open_gate(&gate);
    w.wait_idle();
    let p = book.get_peer("p").unwrap().expect("the connection is kept");
    assert!(p.last_connected > 0, "a success: we dialed it");
    assert_eq!(p.connection_quality.latency_ms, Some(7));
    let kept = p.addresses.iter().find(|a| a.addr == addr).expect("addr");
    assert!(kept.last_success.is_some(), "the dialed address worked");
    assert_eq!(dropped, 0);
    w.shutdown().unwrap();
    assert_eq!(w.failed(), 0);
}

/// Review 3, finding 8: `wait_idle` (the store's `flush`) waited for the
/// ops in flight forever once the writer thread panicked applying them.
#[test]
fn waiting_returns_when_the_writer_panicked() {
    let w = WriteBehind::start(panicking_book(), 4).unwrap();
    w.push(latency("p", 1));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        w.wait_idle();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok(),
        "wait_idle hung after the writer panicked"
    );
}

/// Review 4, finding 3: once the writer thread panicked, ops pushed afterwards
/// (and the op it died on) were queued for nobody and counted nowhere, so
/// `stats()` looked clean while observations were lost.
#[test]
fn ops_after_the_writer_panicked_are_counted_as_dropped() {
    let w = WriteBehind::start(panicking_book(), 4).unwrap();
    w.push(latency("p", 1));
    w.wait_idle();
    let before = w.dropped();
    assert!(before >= 1, "the op the writer died on is lost: {before}");
    for i in 0..10 {
        w.push(latency(&format!("q{i}"), 1));
    }
    assert_eq!(w.dropped(), before + 10, "every op after the panic is lost");
    w.wait_idle();
}

/// Finding 10: the only way to stop the writer joined its thread, on the
/// caller's thread, while it applied what was queued: from an async task that
/// blocks a runtime worker (here the only one, so the task that would let the
/// writer finish never runs). `close` + `finished` never block.
#[test]
fn closing_from_a_task_does_not_block_the_runtime() {
    let (gate, book, w) = stuck_writer(4, "p");
    w.push(latency("q", 2)); // queued behind the stuck write
    let (tx, rx) = std::sync::mpsc::channel();
    let opener = gate.clone();
    let task = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async move {
            // the write the writer is stuck in completes only once this runs
            let open = tokio::spawn(async move { open_gate(&opener) });
            w.close();
            w.finished().await.unwrap();
            open.await.unwrap();
            drop(w);
        });
        tx.send(()).unwrap();
    });
    let done = rx.recv_timeout(std::time::Duration::from_secs(10));
    // open the gate whatever happened: a failure must not leave a thread stuck
    open_gate(&gate);
    assert!(done.is_ok(), "closing blocked the runtime's only worker");
    task.join().unwrap();
    assert!(
        book.get_peer("q").unwrap().is_some(),
        "the queue was applied"
    );
}

/// Finding 2: once the queue is full, every distinct peer used to get its own
/// overflow slot, so remote peers (fresh identities) grew it without bound.
#[test]
fn overflow_is_capped_and_what_does_not_fit_is_counted() {
    let (gate, book, mut w) = stuck_writer(2, "stuck");
    // 2 ops fill the queue, then 1,000 distinct peers overflow
    for i in 0..1002 {
        w.push(latency(&format!("p{i}"), 5));
    }
    let (kept, dropped) = (w.overflowed(), w.dropped());
    open_gate(&gate);
    assert_eq!(kept, 2, "the overflow holds at most the queue's capacity");
    assert_eq!(dropped, 1000 - 2, "every peer that did not fit is counted");
    w.wait_idle();
    assert!(book.get_peer("p3").unwrap().is_some(), "overflow applied");
    assert!(book.get_peer("p4").unwrap().is_none(), "dropped");
    w.shutdown().unwrap();
    assert_eq!(w.failed(), 0);
}

/// A book whose backend fails its next flush.
fn failing_flush_book() -> Arc<PeerBook<FailingBackend<MemoryBackend>>> {
    let backend = FailingBackend::new(MemoryBackend::new());
    let book = PeerBook::open(backend, Options::new(MasterKey::from_bytes([1; 32]))).unwrap();
    book.backend().fail_nth(FailOp::Flush, 1, FailWhen::Before);
    Arc::new(book)
}

/// Review 5, finding 4: the writer thread's final flush was `let _ =`: a
/// failed one (the writes it applied maybe not durable) was seen by nobody.
/// `shutdown` and `finished` now return it, and `stats().failed` counts it.
#[test]
fn a_failed_final_flush_is_returned_and_counted() {
    let mut w = WriteBehind::start(failing_flush_book(), 4).unwrap();
    w.push(latency("p", 1));
    let done = w.shutdown();
    assert!(
        matches!(done, Err(crate::Error::Book(peerbook::Error::Backend(_)))),
        "{done:?}"
    );
    assert_eq!(w.failed(), 1, "the failed flush is counted");

    // the same through close + finished (what shutdown_async awaits)
    let w = WriteBehind::start(failing_flush_book(), 4).unwrap();
    w.push(latency("p", 1));
    w.close();
    let done = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(w.finished());
    assert!(
        matches!(done, Err(crate::Error::Book(peerbook::Error::Backend(_)))),
        "{done:?}"
    );
    assert_eq!(w.failed(), 1);
}

/// A writer thread that died is reported by `shutdown` and `finished`.
#[test]
fn a_dead_writer_is_reported_at_shutdown() {
    let mut w = WriteBehind::start(panicking_book(), 4).unwrap();
    w.push(latency("p", 1));
    w.wait_idle();
    let died = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(w.finished());
    assert!(matches!(died, Err(crate::Error::WriterDied)), "{died:?}");
    let died = w.shutdown();
    assert!(matches!(died, Err(crate::Error::WriterDied)), "{died:?}");
}

/// What identify tells, as a folded state: key, addresses, agent, protocols.
fn identified(peer: &str, agent: &str) -> Op {
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert("agent".to_string(), agent.to_string());
    metadata.insert("protocols".to_string(), "/ping".to_string());
    Op::State {
        peer: peer.into(),
        state: State {
            public_key: Some("key".into()),
            addresses: vec![(
                "/ip4/1.2.3.4/tcp/1".into(),
                peerbook::AddressSource::Reported,
            )],
            metadata,
            ..State::default()
        },
    }
}

/// Review 5, finding 5: `dropped` counts lost facts, but a folded value was
/// counted lost whenever it was replaced, by the same value too (a peer that
/// repeats its identify lost nothing), and an identify lost whole to a full
/// overflow counted one though it held four facts.
#[test]
fn dropped_counts_facts_lost_not_values_repeated() {
    let (gate, _book, mut w) = stuck_writer(1, "stuck");
    w.push(latency("q", 1)); // the queue is full
    w.push(identified("p", "a/1")); // p's overflow slot (the overflow is full)
    w.push(identified("p", "a/1")); // the same again: nothing lost
    let repeated = w.dropped();
    w.push(identified("p", "a/2")); // a newer agent: one fact lost
    let newer = w.dropped();
    w.push(identified("r", "a/1")); // past the full overflow: four facts lost
    let past = w.dropped();
    open_gate(&gate);
    assert_eq!(repeated, 0, "a repeated value is no loss");
    assert_eq!(newer, 1, "the replaced agent version");
    assert_eq!(past - newer, 4, "key, addresses, agent, protocols");
    w.shutdown().unwrap();
}

/// Records the writer's `dropped` count at the moment it is woken.
struct CountAtWake(Arc<super::Shared>, Mutex<Option<u64>>);

impl std::task::Wake for CountAtWake {
    fn wake(self: Arc<Self>) {
        let dropped = self.0.dropped.load(std::sync::atomic::Ordering::SeqCst);
        *self.1.lock().unwrap() = Some(dropped);
    }
}

/// Review 5, finding 6: a writer thread that died marked itself finished and
/// woke whoever awaited it before it counted what it lost: `stats()` read
/// right after `shutdown_async().await` could miss the loss. It counts first.
#[test]
fn a_dead_writer_counts_its_loss_before_it_reports_its_end() {
    let mut w = WriteBehind::start(panicking_book(), 4).unwrap();
    let counter = Arc::new(CountAtWake(w.shared.clone(), Mutex::new(None)));
    let waker = std::task::Waker::from(counter.clone());
    let mut finished = std::pin::pin!(w.finished());
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(finished.as_mut().poll(&mut cx).is_pending());
    w.push(latency("p", 1)); // the writer dies applying it
                             // Joined, so it has woken `finished` (waiting only until idle raced the wake:
                             // the queue is idle before the dying thread wakes anyone).
    assert!(w.shutdown().is_err(), "the writer died");
    let final_count = w.dropped();
    assert_eq!(final_count, 1, "the op it died on");
    let at_wake = counter.1.lock().unwrap().expect("woken");
    assert_eq!(at_wake, final_count, "woken before the loss was counted");
}

/// Review 5, finding 8: a thread the OS refused panicked in `start` (so in
/// `Behaviour::new`, which returns a `Result`). It is now an `Error::Spawn`;
/// the refusal is real: a stack larger than the address space.
#[test]
fn a_refused_thread_is_a_typed_error() {
    let book = Arc::new(
        PeerBook::open(
            MemoryBackend::new(),
            Options::new(MasterKey::from_bytes([1; 32])),
        )
        .unwrap(),
    );
    let huge = std::thread::Builder::new().stack_size(1 << 50);
    match WriteBehind::start_on(huge, book.clone(), 4) {
        Err(crate::Error::Spawn(_)) => {}
        Err(other) => panic!("{other:?}"),
        Ok(_) => panic!("the OS gave the thread"),
    }
    // the book is free again: its share went with the refused thread
    assert_eq!(Arc::strong_count(&book), 1);
}
