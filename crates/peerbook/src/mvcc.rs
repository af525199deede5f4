//! [`VersionedSpaces`]: four ordered in-memory spaces with snapshot views that
//! never copy a space.
//!
//! Each batch gets a sequence number. A key holds its current value only, until a
//! write lands while a view is open: then the key keeps its older versions (each
//! tagged with the batch that wrote it, `None` for a delete) for as long as a view
//! older than them is open. A view reads, for each key, the newest version not
//! newer than its own sequence number. When the oldest view closes, the keys that
//! kept history are pruned to what the remaining views need (collapsed to one value
//! when no view is left). Memory cost: one extra version per key written while a
//! view was open, never a copy of a space.
//!
//! Locking: the spaces sit behind one read-write lock. A view takes the read lock for
//! each `get`, and for the whole of each `scan` (its visitor must not call back into
//! the backend); a write batch holds the write lock while it applies. Opening a view
//! takes only a small registry mutex, never the spaces lock, so a long scan does
//! not stall new views; but dropping the oldest view takes the write lock to prune,
//! and readers queue behind a waiting writer, so a view's scan should be short (the
//! file backend's compaction copies its snapshot out in chunks). [`VersionedSpaces::scan`] (no
//! view) pins a view and reads in chunks without holding the lock during its
//! visitor, so that visitor may call back. Lock order: spaces, then registry.
//!
//! Keys are [`Key`]s: held in the map's nodes when short (every key of an Ed25519
//! peer id), so a search compares bytes in place instead of following a pointer per
//! key, and a loader builds a map without an allocation per key (the file backend's
//! snapshot load copies each key from the file straight into its `Key`).
//!
//! Used by [`MemoryBackend`](crate::MemoryBackend) and the file backend.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::backend::{BackendError, Direction, KeyRange, ReadView, Space, Visit};

#[path = "mvcc_key.rs"]
mod key;
pub use key::Key;

/// The versions of one key.
#[derive(Clone, Debug)]
enum Slot {
    /// The current value, visible to every open view (written before all of them).
    One(Vec<u8>),
    /// `(seq, value)` ascending by seq; `None` is a delete. Kept while a view needs it.
    /// Boxed so that a slot is as small as a value (24 bytes, not 32): the loader's
    /// `(key, value)` vectors then become the `(key, slot)` vectors of
    /// [`VersionedSpaces::from_entries`] in place, not through a second copy.
    #[allow(clippy::box_collection)] // the box keeps the slot small, see above
    Many(Box<Vec<(u64, Option<Vec<u8>>)>>),
}

impl Slot {
    fn at(&self, seq: u64) -> Option<&[u8]> {
        match self {
            Slot::One(v) => Some(v),
            Slot::Many(versions) => versions
                .iter()
                .rev()
                .find(|(s, _)| *s <= seq)
                .and_then(|(_, v)| v.as_deref()),
        }
    }

    fn latest(&self) -> Option<&[u8]> {
        self.at(u64::MAX)
    }

    /// Drop versions no view at or after `oldest` needs; `None` = no view open.
    /// Returns false when the key is gone entirely.
    fn prune(&mut self, oldest: Option<u64>) -> bool {
        let Slot::Many(versions) = self else {
            return true;
        };
        match oldest {
            None => match versions.pop() {
                Some((_, Some(v))) => {
                    *self = Slot::One(v);
                    true
                }
                _ => false,
            },
            Some(oldest) => {
                // keep the newest version the oldest view sees, and everything newer
                let keep_from = versions
                    .iter()
                    .rposition(|(s, _)| *s <= oldest)
                    .unwrap_or(0);
                versions.drain(..keep_from);
                if versions.len() == 1 && versions[0].0 <= oldest {
                    match versions.pop() {
                        Some((_, Some(v))) => *self = Slot::One(v),
                        _ => return false,
                    }
                }
                true
            }
        }
    }
}

#[derive(Debug, Default)]
struct State {
    spaces: [BTreeMap<Key, Slot>; 4],
    /// Live keys per space (keys whose latest version is a value).
    live: [usize; 4],
    /// Keys that hold history (`Slot::Many`), to prune when views close.
    history: Vec<(Space, Key)>,
}

/// Open views: `(seq, how many)`, ascending by seq (a new view has the newest
/// seq, so it goes last). A vector keeps its capacity: opening a view allocates
/// nothing once a few have been open.
type Views = Vec<(u64, usize)>;

fn oldest(views: &Views) -> Option<u64> {
    views.first().map(|(seq, _)| *seq)
}

impl State {
    fn prune_history(&mut self, oldest: Option<u64>) {
        let history = std::mem::take(&mut self.history);
        for (space, key) in history {
            let map = &mut self.spaces[space.index()];
            let Some(slot) = map.get_mut(&key) else {
                continue;
            };
            if !slot.prune(oldest) {
                map.remove(&key);
            } else if matches!(slot, Slot::Many(_)) {
                self.history.push((space, key));
            }
        }
    }
}

/// Four versioned ordered spaces; see the [module docs](self).
#[derive(Debug, Default)]
pub struct VersionedSpaces {
    state: RwLock<State>,
    /// Sequence number of the last applied batch (changed under the state write lock
    /// and the registry).
    seq: AtomicU64,
    views: Mutex<Views>,
}

impl VersionedSpaces {
    /// Spaces holding `maps` (one per [`Space`], in [`Space::ALL`] order).
    pub fn new(maps: [BTreeMap<Vec<u8>, Vec<u8>>; 4]) -> Self {
        Self::with_spaces(maps.map(|m| {
            m.into_iter()
                .map(|(k, v)| (Key::from(k), Slot::One(v)))
                .collect()
        }))
    }

    /// Spaces holding `entries` (one vector per [`Space`], in [`Space::ALL`]
    /// order), each map built in bulk: in ascending key order (as a loader reading a
    /// sorted file has them) this costs a pass, not a search per key. Any order is
    /// accepted (it is sorted first); for a key given twice the last value is kept.
    pub fn from_entries(entries: [Vec<(Key, Vec<u8>)>; 4]) -> Self {
        Self::with_spaces(entries.map(|e| e.into_iter().map(|(k, v)| (k, Slot::One(v))).collect()))
    }

    fn with_spaces(spaces: [BTreeMap<Key, Slot>; 4]) -> Self {
        let live = spaces.each_ref().map(BTreeMap::len);
        VersionedSpaces {
            state: RwLock::new(State {
                spaces,
                live,
                ..State::default()
            }),
            ..VersionedSpaces::default()
        }
    }

    // Applying a batch cannot panic part way (no user code runs under the lock, map
    // operations only), so a poisoned lock still guards consistent spaces.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn registry(&self) -> MutexGuard<'_, Views> {
        self.views.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live keys in each space.
    pub fn lens(&self) -> [usize; 4] {
        self.read().live
    }

    /// A consistent view of every space as of now.
    pub fn view(&self) -> VersionedView<'_> {
        let mut views = self.registry();
        // A batch changes `seq` while holding the registry: this seq is settled.
        let seq = self.seq.load(Ordering::Acquire);
        match views.last_mut() {
            Some((last, n)) if *last == seq => *n += 1,
            _ => views.push((seq, 1)),
        }
        VersionedView { spaces: self, seq }
    }

    /// Apply one batch atomically: `fill` puts and deletes through the [`Batch`];
    /// no reader sees part of it.
    pub fn apply<R>(&self, fill: impl FnOnce(&mut Batch<'_>) -> R) -> R {
        let mut state = self.write_state();
        // Held until the new seq is published: no view opens in between (it would
        // see this batch's in-place changes under the old seq).
        let views = self.registry();
        let seq = self.seq.load(Ordering::Acquire) + 1;
        let keep_history = !views.is_empty();
        let mut batch = Batch {
            state: &mut state,
            seq,
            keep_history,
        };
        let out = fill(&mut batch);
        self.seq.store(seq, Ordering::Release);
        drop(views);
        out
    }
}

/// The latest state, read without a view: what a backend over these spaces
/// answers to [`Backend::get`](crate::backend::Backend::get) and
/// [`Backend::scan`](crate::backend::Backend::scan), written once here for every
/// such backend.
impl ReadView for VersionedSpaces {
    /// The current value of `key` in `space`.
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let state = self.read();
        Ok(state.spaces[space.index()]
            .get(key)
            .and_then(Slot::latest)
            .map(<[u8]>::to_vec))
    }

    /// Scans the current state on a pinned view, in chunks of 256 entries copied
    /// out, without holding the lock while `visitor` runs: unlike a view's scan,
    /// its visitor may call back into the owner of these spaces.
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        const CHUNK: usize = 256;
        if range.is_empty() {
            return Ok(());
        }
        let view = self.view();
        let (mut lower, mut upper) = (
            range.lower.map(<[u8]>::to_vec),
            range.upper.map(<[u8]>::to_vec),
        );
        loop {
            let mut chunk: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(CHUNK);
            let bounds = KeyRange {
                lower: as_ref(&lower),
                upper: as_ref(&upper),
            };
            view.visit(space, bounds, direction, &mut |k, v| {
                chunk.push((k.to_vec(), v.to_vec()));
                if chunk.len() >= CHUNK {
                    Visit::Break(())
                } else {
                    Visit::Continue(())
                }
            });
            let full = chunk.len() >= CHUNK;
            for (k, v) in &chunk {
                if visitor(k, v).is_break() {
                    return Ok(());
                }
            }
            match chunk.pop() {
                Some((last, _)) if full => match direction {
                    Direction::Forward => lower = Bound::Excluded(last),
                    Direction::Reverse => upper = Bound::Excluded(last),
                },
                _ => return Ok(()),
            }
        }
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v),
        Bound::Excluded(v) => Bound::Excluded(v),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// One batch being applied by [`VersionedSpaces::apply`].
#[derive(Debug)]
pub struct Batch<'a> {
    state: &'a mut State,
    seq: u64,
    keep_history: bool,
}

impl Batch<'_> {
    /// Put `key` = `value` in `space`; returns the length of the value it replaced.
    pub fn put(&mut self, space: Space, key: Vec<u8>, value: Vec<u8>) -> Option<usize> {
        self.set(space, Key::from(key), Some(value))
    }

    /// Delete `key` in `space`; returns the length of the value it removed.
    pub fn delete(&mut self, space: Space, key: Vec<u8>) -> Option<usize> {
        self.set(space, Key::from(key), None)
    }

    /// Delete every key of every space.
    pub fn clear(&mut self) {
        if !self.keep_history {
            for map in &mut self.state.spaces {
                map.clear();
            }
            self.state.live = [0; 4];
            self.state.history.clear();
            return;
        }
        for space in Space::ALL {
            let keys: Vec<Key> = self.state.spaces[space.index()]
                .iter()
                .filter(|(_, slot)| slot.latest().is_some())
                .map(|(k, _)| k.clone())
                .collect();
            for key in keys {
                self.set(space, key, None);
            }
        }
    }

    fn set(&mut self, space: Space, key: Key, value: Option<Vec<u8>>) -> Option<usize> {
        let (seq, keep_history) = (self.seq, self.keep_history);
        let state = &mut *self.state;
        let map = &mut state.spaces[space.index()];
        let adds = usize::from(value.is_some());
        // One search per op: the entry, not a lookup then an insert.
        let old_len = match map.entry(key) {
            Entry::Vacant(vacant) => {
                if let Some(value) = value {
                    if keep_history {
                        // invisible to the open views, which predate it
                        state.history.push((space, vacant.key().clone()));
                        vacant.insert(Slot::Many(Box::new(vec![(seq, Some(value))])));
                    } else {
                        vacant.insert(Slot::One(value));
                    }
                }
                state.live[space.index()] += adds;
                return None;
            }
            Entry::Occupied(mut occupied) => {
                let old_len = occupied.get().latest().map(<[u8]>::len);
                if !keep_history {
                    match value {
                        Some(value) => *occupied.get_mut() = Slot::One(value),
                        None => {
                            occupied.remove();
                        }
                    }
                } else {
                    match occupied.get_mut() {
                        Slot::One(old) => {
                            let old = std::mem::take(old);
                            // the old value predates every open view: seq 0 stands for it
                            *occupied.get_mut() =
                                Slot::Many(Box::new(vec![(0, Some(old)), (seq, value)]));
                            state.history.push((space, occupied.key().clone()));
                        }
                        Slot::Many(versions) => match versions.last_mut() {
                            Some((s, v)) if *s == seq => *v = value,
                            _ => versions.push((seq, value)),
                        },
                    }
                }
                old_len
            }
        };
        state.live[space.index()] =
            state.live[space.index()] + adds - usize::from(old_len.is_some());
        old_len
    }
}

/// A [`ReadView`] of [`VersionedSpaces`]: the state after batch `seq`.
#[derive(Debug)]
pub struct VersionedView<'a> {
    spaces: &'a VersionedSpaces,
    seq: u64,
}

impl VersionedView<'_> {
    fn visit(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) {
        if range.is_empty() {
            return;
        }
        let state = self.spaces.read();
        let iter = state.spaces[space.index()].range::<[u8], _>((range.lower, range.upper));
        let seq = self.seq;
        let mut visit = |(k, slot): (&Key, &Slot)| match slot.at(seq) {
            Some(v) => visitor(k.as_slice(), v),
            None => Visit::Continue(()),
        };
        match direction {
            Direction::Forward => {
                for entry in iter {
                    if visit(entry).is_break() {
                        break;
                    }
                }
            }
            Direction::Reverse => {
                for entry in iter.rev() {
                    if visit(entry).is_break() {
                        break;
                    }
                }
            }
        }
    }
}

impl ReadView for VersionedView<'_> {
    fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        let state = self.spaces.read();
        Ok(state.spaces[space.index()]
            .get(key)
            .and_then(|slot| slot.at(self.seq))
            .map(<[u8]>::to_vec))
    }

    /// Holds the read lock while `visitor` runs: it must not call back into the
    /// owner of these spaces, and should not wait on anything slow (I/O): a writer
    /// waiting for the lock meanwhile (a batch, or the drop of the oldest view,
    /// which prunes) makes every later reader wait too. To write a view out, copy
    /// a bounded chunk, leave the scan, write it, and go on after its last key.
    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> Result<(), BackendError> {
        self.visit(space, range, direction, visitor);
        Ok(())
    }
}

impl Drop for VersionedView<'_> {
    fn drop(&mut self) {
        let oldest_changed = {
            let mut views = self.spaces.registry();
            let was_oldest = oldest(&views) == Some(self.seq);
            if let Some(i) = views.iter().rposition(|(seq, _)| *seq == self.seq) {
                views[i].1 -= 1;
                if views[i].1 == 0 {
                    views.remove(i);
                }
            }
            was_oldest && oldest(&views) != Some(self.seq)
        };
        if oldest_changed {
            let mut state = self.spaces.write_state();
            if !state.history.is_empty() {
                // Views opened since take the latest versions, which pruning keeps.
                let oldest = oldest(&self.spaces.registry());
                state.prune_history(oldest);
            }
        }
    }
}

#[cfg(test)]
#[path = "mvcc_stress.rs"]
mod stress;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::ControlFlow;

    fn all(view: &dyn ReadView, space: Space) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        view.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            ControlFlow::Continue(())
        })
        .unwrap();
        out
    }

    fn kv(k: &str, v: &str) -> (Vec<u8>, Vec<u8>) {
        (k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    /// `(key, value)` pairs as [`VersionedSpaces::from_entries`] takes them.
    pub(super) fn keyed(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Key, Vec<u8>)> {
        entries
            .into_iter()
            .map(|(k, v)| (Key::from(k), v))
            .collect()
    }

    #[test]
    fn views_see_their_state_and_history_is_pruned() {
        let s = VersionedSpaces::default();
        s.apply(|b| {
            b.put(Space::Peers, b"a".to_vec(), b"1".to_vec());
            b.put(Space::Peers, b"b".to_vec(), b"1".to_vec());
        });
        let v1 = s.view();
        s.apply(|b| {
            assert_eq!(b.put(Space::Peers, b"a".to_vec(), b"22".to_vec()), Some(1));
            assert_eq!(b.delete(Space::Peers, b"b".to_vec()), Some(1));
            assert_eq!(b.put(Space::Peers, b"c".to_vec(), b"2".to_vec()), None);
        });
        let v2 = s.view();
        s.apply(|b| b.clear());
        assert_eq!(all(&v1, Space::Peers), vec![kv("a", "1"), kv("b", "1")]);
        assert_eq!(all(&v2, Space::Peers), vec![kv("a", "22"), kv("c", "2")]);
        assert_eq!(v1.get(Space::Peers, b"c").unwrap(), None);
        assert_eq!(v2.get(Space::Peers, b"b").unwrap(), None);
        assert_eq!(s.get(Space::Peers, b"a").unwrap(), None);
        assert_eq!(s.lens(), [0; 4]);
        drop(v1);
        assert_eq!(all(&v2, Space::Peers), vec![kv("a", "22"), kv("c", "2")]);
        drop(v2);
        let state = s.read();
        assert!(state.spaces[0].is_empty(), "tombstones pruned");
        assert!(state.history.is_empty());
    }

    #[test]
    fn history_collapses_to_one_value() {
        let s = VersionedSpaces::default();
        s.apply(|b| b.put(Space::Meta, b"k".to_vec(), b"0".to_vec()));
        let view = s.view();
        for i in 1..5u8 {
            s.apply(|b| b.put(Space::Meta, b"k".to_vec(), vec![i]));
        }
        assert_eq!(view.get(Space::Meta, b"k").unwrap(), Some(b"0".to_vec()));
        drop(view);
        assert!(matches!(s.read().spaces[3].get(&b"k"[..]), Some(Slot::One(v)) if v == &[4]));
        let mut seen = Vec::new();
        s.scan(
            Space::Meta,
            KeyRange::all(),
            Direction::Reverse,
            &mut |k, _| {
                seen.push(k.to_vec());
                // a callback into the owner while scanning is fine
                assert!(s.get(Space::Meta, k).unwrap().is_some());
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert_eq!(seen, vec![b"k".to_vec()]);
    }

    #[test]
    fn from_entries_builds_every_space() {
        let entries = [
            vec![kv("a", "1"), kv("b", "2")],
            vec![],
            // out of order, and "x" twice: sorted, the last value kept
            vec![kv("y", "1"), kv("x", "1"), kv("x", "2")],
            vec![kv("m", "")],
        ];
        let s = VersionedSpaces::from_entries(entries.map(keyed));
        assert_eq!(s.lens(), [2, 0, 2, 1]);
        assert_eq!(
            all(&s.view(), Space::ByQuality),
            vec![kv("x", "2"), kv("y", "1")]
        );
        s.apply(|b| assert_eq!(b.put(Space::Peers, b"a".to_vec(), b"9".to_vec()), Some(1)));
        assert_eq!(s.get(Space::Peers, b"a").unwrap(), Some(b"9".to_vec()));
    }

    #[test]
    fn inline_and_heap_keys_share_one_byte_order() {
        // keys either side of Key::INLINE, sharing a prefix: every read sees byte order
        let key = |len: usize, last: u8| {
            let mut k = vec![7u8; len];
            if let Some(l) = k.last_mut() {
                *l = last;
            }
            k
        };
        let at = |k: &[u8]| k.len().to_be_bytes().to_vec();
        let mut keys = vec![
            key(1, 7),
            key(62, 7),
            key(63, 1),
            key(63, 7),
            key(63, 9),
            key(64, 0),
            key(64, 7),
            key(100, 7),
            key(300, 7),
        ];
        let s = VersionedSpaces::default();
        s.apply(|b| {
            for k in keys.iter().rev() {
                b.put(Space::Peers, k.clone(), at(k));
            }
        });
        let view = s.view();
        s.apply(|b| {
            b.delete(Space::Peers, key(64, 0));
            b.put(Space::Peers, key(300, 7), b"new".to_vec());
        });
        keys.sort();
        let scanned: Vec<Vec<u8>> = all(&view, Space::Peers)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(scanned, keys);
        let (low, high) = (key(63, 7), key(100, 7));
        let mut between = Vec::new();
        view.scan(
            Space::Peers,
            KeyRange {
                lower: Bound::Excluded(&low),
                upper: Bound::Included(&high),
            },
            Direction::Reverse,
            &mut |k, _| {
                between.push(k.to_vec());
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        let mut expected: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| **k > low && **k <= high)
            .cloned()
            .collect();
        expected.reverse();
        assert_eq!(between, expected);
        assert_eq!(
            view.get(Space::Peers, &key(64, 0)).unwrap(),
            Some(at(&key(64, 0)))
        );
        assert_eq!(s.get(Space::Peers, &key(64, 0)).unwrap(), None);
        assert_eq!(
            view.get(Space::Peers, &key(300, 7)).unwrap(),
            Some(at(&key(300, 7)))
        );
        assert_eq!(
            s.get(Space::Peers, &key(300, 7)).unwrap(),
            Some(b"new".to_vec())
        );
        drop(view);
        assert_eq!(s.lens(), [keys.len() - 1, 0, 0, 0]);
        assert!(s.read().history.is_empty());
    }

    #[test]
    fn a_slot_is_as_small_as_a_value() {
        // from_entries turns (key, value) into (key, slot) in place only if they match
        assert_eq!(
            std::mem::size_of::<(Key, Slot)>(),
            std::mem::size_of::<(Key, Vec<u8>)>()
        );
    }
}
