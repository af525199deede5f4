//! The group commit's overlay: the latest pending operation on each key, and the
//! view that reads it on top of the backend (see the `group` module).

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::sync::MutexGuard;

use crate::backend::{BackendError, Direction, KeyRange, ReadView, Space, Visit};

/// The latest pending operation on each key, per space: `(seq, Some(value))` for a
/// put, `(seq, None)` for a delete; `seq` is the apply that wrote it.
pub(crate) type Overlay = [BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)>; 4];

/// Drop the overlay entries of batches up to `upto`, all durable (in the backend).
pub(super) fn prune(overlay: &mut Overlay, upto: u64) {
    for space in overlay.iter_mut().filter(|s| !s.is_empty()) {
        space.retain(|_, (seq, _)| *seq > upto);
    }
}

/// A backend view with the pending batches of the group commit on top.
pub(super) struct OverlayView<'a> {
    pub(super) base: Box<dyn ReadView + 'a>,
    pub(super) overlay: MutexGuard<'a, Overlay>,
}

impl ReadView for OverlayView<'_> {
    fn get(&self, space: Space, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, BackendError> {
        match self.overlay[space.index()].get(key) {
            Some((_, value)) => Ok(value.clone()),
            None => self.base.get(space, key),
        }
    }

    fn scan(
        &self,
        space: Space,
        range: KeyRange<'_>,
        direction: Direction,
        visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    ) -> std::result::Result<(), BackendError> {
        if range.is_empty() {
            return Ok(());
        }
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (range.lower, range.upper);
        let mut pending: Vec<(&[u8], Option<&[u8]>)> = self.overlay[space.index()]
            .range::<[u8], _>(bounds)
            .map(|(k, (_, v))| (k.as_slice(), v.as_deref()))
            .collect();
        if direction == Direction::Reverse {
            pending.reverse();
        }
        let before = |pending_key: &[u8], key: &[u8]| match direction {
            Direction::Forward => pending_key < key,
            Direction::Reverse => pending_key > key,
        };
        let mut next = 0;
        let mut stopped = false;
        self.base.scan(space, range, direction, &mut |key, value| {
            while next < pending.len() && before(pending[next].0, key) {
                let (k, v) = pending[next];
                next += 1;
                if let Some(v) = v {
                    if visitor(k, v).is_break() {
                        stopped = true;
                        return ControlFlow::Break(());
                    }
                }
            }
            if next < pending.len() && pending[next].0 == key {
                let (k, v) = pending[next];
                next += 1;
                return match v {
                    Some(v) => visit(visitor, k, v, &mut stopped),
                    None => ControlFlow::Continue(()),
                };
            }
            visit(visitor, key, value, &mut stopped)
        })?;
        if !stopped {
            for (k, v) in &pending[next..] {
                if let Some(v) = v {
                    if visitor(k, v).is_break() {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

fn visit(
    visitor: &mut dyn FnMut(&[u8], &[u8]) -> Visit,
    key: &[u8],
    value: &[u8],
    stopped: &mut bool,
) -> Visit {
    let flow = visitor(key, value);
    if flow.is_break() {
        *stopped = true;
    }
    flow
}
