//! A compaction writes its snapshot from a view while readers go on: its file
//! writes happen outside the spaces' lock, so the drop of the oldest view (which
//! prunes under the write lock) and the reads queued behind that drop never wait
//! for the compaction's I/O.

use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use peerbook::backend::{Backend, Direction, Durability, KeyRange, Space, WriteBatch};
use peerbook_file::testing::{FsHook, FsOp, HookedFs, SimFs};
use peerbook_file::{FileBackend, FileOptions};

/// Holds the `hold_at`-th append to a snapshot being written until released.
#[derive(Debug)]
struct Gate {
    hold_at: usize,
    appends: AtomicUsize,
    /// (an append is held now, released)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    fn new(hold_at: usize) -> Self {
        Gate {
            hold_at,
            appends: AtomicUsize::new(0),
            state: Mutex::new((false, false)),
            changed: Condvar::new(),
        }
    }

    /// Wait (up to a minute) until an append is held.
    fn wait_held(&self) -> bool {
        let state = self.state.lock().unwrap();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, Duration::from_secs(60), |s| !s.0)
            .unwrap();
        state.0
    }

    fn still_held(&self) -> bool {
        let state = self.state.lock().unwrap();
        state.0 && !state.1
    }

    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

impl FsHook for Gate {
    fn before(&self, op: FsOp, path: &Path) -> io::Result<()> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if op == FsOp::Append && name.starts_with("snapshot.") && name.ends_with(".tmp") {
            let n = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
            if n == self.hold_at {
                let mut state = self.state.lock().unwrap();
                state.0 = true;
                self.changed.notify_all();
                while !state.1 {
                    state = self.changed.wait(state).unwrap();
                }
            }
        }
        Ok(())
    }
}

/// Releases the gate however the test ends, so the compaction thread finishes.
struct Release<'a>(&'a Gate);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[test]
fn dropping_the_oldest_view_and_reading_do_not_wait_for_the_snapshot_writes() {
    let fs = HookedFs::with_hook(SimFs::new(5), Gate::new(4));
    let options = FileOptions::default()
        .with_auto_compact(false)
        .with_snapshot_chunk_bytes(512);
    let b = FileBackend::open_with_vfs(Arc::new(fs.clone()), "/book", options).unwrap();
    for chunk in 0..8u32 {
        let mut batch = WriteBatch::new();
        for i in 0..500u32 {
            let key = format!("peer-{:06}", chunk * 500 + i);
            batch.put(Space::Peers, key.into_bytes(), vec![7u8; 40]);
        }
        b.write(batch, Durability::Buffered).unwrap();
    }
    // one entry larger than a chunk's bytes: a chunk of its own
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"peer-002000x".to_vec(), vec![9u8; 100 << 10]);
    b.write(batch, Durability::Buffered).unwrap();
    let gate = fs.hook();
    let (dropped, got) = std::thread::scope(|s| {
        let _release = Release(gate);
        let (view_opened, opened) = mpsc::channel();
        let (drop_view, drop_now) = mpsc::channel::<()>();
        let (events, event) = mpsc::channel();
        let view_events = events.clone();
        // The oldest view, held by its own thread (a view is not `Send`).
        let b = &b;
        s.spawn(move || {
            let view = b.view().unwrap();
            view_opened.send(()).unwrap();
            let _ = drop_now.recv();
            drop(view);
            let _ = view_events.send("dropped");
        });
        opened.recv().unwrap();
        // a write after the view: the view is older than the compaction's own
        let mut batch = WriteBatch::new();
        batch.put(Space::Meta, b"after-view".to_vec(), b"x".to_vec());
        b.write(batch, Durability::Buffered).unwrap();
        let compaction = s.spawn(move || b.compact());
        assert!(gate.wait_held(), "the compaction reached its held append");
        // The compaction is inside an append, in the middle of the peers space.
        drop_view.send(()).unwrap();
        let dropped = event.recv_timeout(Duration::from_secs(5)).ok();
        let get_events = events.clone();
        s.spawn(move || {
            let value = b.get(Space::Peers, b"peer-000123").unwrap();
            assert_eq!(value, Some(vec![7u8; 40]));
            let _ = get_events.send("got");
        });
        let got = event.recv_timeout(Duration::from_secs(5)).ok();
        let held = gate.still_held();
        gate.release();
        compaction.join().unwrap().expect("the compaction succeeds");
        assert!(held, "the append was held throughout");
        (dropped, got)
    });
    assert_eq!(
        dropped,
        Some("dropped"),
        "the oldest view's drop waited for the compaction's file writes"
    );
    assert_eq!(
        got,
        Some("got"),
        "a read waited for the compaction's file writes"
    );
    drop(b);
    let b =
        FileBackend::open_with_vfs(Arc::new(fs.clone()), "/book", FileOptions::default()).unwrap();
    assert_eq!(b.stats().generation, 2);
    // every entry, once, in order, across the chunk boundaries
    let mut peers: Vec<(Vec<u8>, Vec<u8>)> = (0..4000u32)
        .map(|i| (format!("peer-{i:06}").into_bytes(), vec![7u8; 40]))
        .collect();
    peers.push((b"peer-002000x".to_vec(), vec![9u8; 100 << 10]));
    peers.sort();
    assert_eq!(all(&b, Space::Peers), peers);
    assert!(all(&b, Space::Meta).contains(&(b"after-view".to_vec(), b"x".to_vec())));
}

/// Every entry of `space`, in key order.
fn all(b: &FileBackend, space: Space) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    b.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}
