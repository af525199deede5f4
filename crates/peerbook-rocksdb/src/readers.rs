//! The reads in flight, by the clear they began before: [`Backend::clear`]
//! (crate::RocksBackend) waits for the reads that began before its commit point
//! to end before it flushes and compacts, since a read in flight keeps the files
//! it reads (a view, its snapshot's entries too) through RocksDB's compaction.
//! Reads that begin after the commit point see the empty book and hold nothing
//! back, so they are not waited for.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// Counts of the reads in flight: those begun in the current epoch, and those
/// begun before the last [`Readers::wait_for_older`].
#[derive(Debug, Default)]
pub(crate) struct Readers {
    state: Mutex<State>,
    /// Notified when the last older read ends.
    older_ended: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by each [`Readers::wait_for_older`].
    epoch: u64,
    /// Reads begun in `epoch`.
    current: usize,
    /// Reads begun in an earlier epoch, still in flight.
    older: usize,
}

/// One read in flight, from [`Readers::enter`] until dropped.
#[derive(Debug)]
pub(crate) struct ReadGuard<'a> {
    readers: &'a Readers,
    epoch: u64,
}

impl Readers {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The counts stay consistent across a panic: no code between lock and unlock
        // can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read begins; it ends when the guard is dropped.
    pub(crate) fn enter(&self) -> ReadGuard<'_> {
        let mut state = self.lock();
        state.current += 1;
        ReadGuard {
            readers: self,
            epoch: state.epoch,
        }
    }

    /// Every read in flight now becomes older; wait until they have all ended, or
    /// `deadline` has passed. Returns whether they all ended.
    pub(crate) fn wait_for_older(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        state.epoch += 1;
        state.older += state.current;
        state.current = 0;
        while state.older > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = self
                .older_ended
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.readers.lock();
        if self.epoch == state.epoch {
            state.current -= 1;
        } else {
            state.older -= 1;
            if state.older == 0 {
                self.readers.older_ended.notify_all();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn after(limit: Duration) -> Instant {
        Instant::now() + limit
    }

    const LONG: Duration = Duration::from_secs(60);

    #[test]
    fn waits_for_the_reads_begun_before_and_not_for_later_ones() {
        let readers = Readers::default();
        assert!(
            readers.wait_for_older(after(Duration::ZERO)),
            "no read in flight"
        );
        let before = readers.enter();
        let epoch = readers.lock().epoch;
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| readers.wait_for_older(after(LONG)));
            // a read begun after the wait started is not waited for
            while readers.lock().epoch == epoch {
                std::thread::yield_now();
            }
            let after = readers.enter();
            std::thread::sleep(Duration::from_millis(20));
            assert!(
                !waiter.is_finished(),
                "the wait ended with an older read in flight"
            );
            drop(before);
            assert!(waiter.join().unwrap(), "all older reads ended");
            drop(after);
        });
        let state = readers.lock();
        assert_eq!((state.current, state.older), (0, 0));
    }

    #[test]
    fn gives_up_after_the_limit() {
        let readers = Readers::default();
        let held = readers.enter();
        assert!(!readers.wait_for_older(after(Duration::from_millis(10))));
        // a second wait counts the same read as older still
        assert!(!readers.wait_for_older(after(Duration::from_millis(10))));
        drop(held);
        assert!(readers.wait_for_older(after(Duration::ZERO)));
    }
}
