//! A snapshot's entries as open loads them, frame by frame: each op checked
//! against the snapshot rules (FORMAT.md, "Body") and each put copied into its
//! space as it is decoded.

use std::collections::BTreeMap;

use peerbook::backend::Space;
use peerbook::mvcc::{Key, VersionedSpaces};

use super::Dataset;
use crate::codec::{entry_size, FrameOp, Ops};
use crate::error::SnapshotRule;
use crate::FormatError;

/// Why [`SnapshotEntries::frame`] stopped before the end of a frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stop {
    /// The body does not decode.
    Decode(FormatError),
    /// It decodes, but breaks a snapshot rule.
    Rule(SnapshotRule),
}

/// The entries of a snapshot as they load, per space: a vector while the keys
/// ascend (as this crate writes them), built into a map in bulk at the end; a map
/// from the first key out of order on (a snapshot written otherwise), so a
/// duplicate key is always found.
#[derive(Default)]
pub(super) struct SnapshotEntries {
    sorted: [Vec<(Key, Vec<u8>)>; 4],
    unsorted: [Option<BTreeMap<Key, Vec<u8>>>; 4],
    pub(super) count: u64,
    live: u64,
}

impl SnapshotEntries {
    /// Take the ops of one frame as they are decoded, checking the snapshot rules
    /// in op order, up to the first error. Returns true when the frame was the end
    /// frame (its end marker its last op; the caller checks the body's bytes after
    /// it with [`Ops::check_rest`]).
    pub(super) fn frame(&mut self, ops: &mut Ops<'_>) -> Result<bool, Stop> {
        while let Some(op) = ops.next() {
            match op.map_err(Stop::Decode)? {
                FrameOp::Put { space, key, value } => {
                    self.put(space, key, value).map_err(Stop::Rule)?
                }
                FrameOp::End { entries: declared } => {
                    if ops.left() != 0 {
                        return Err(Stop::Rule(SnapshotRule::OpsAfterEnd));
                    }
                    if declared != self.count {
                        return Err(Stop::Rule(SnapshotRule::EndCount {
                            declared,
                            found: self.count,
                        }));
                    }
                    return Ok(true);
                }
                FrameOp::Delete { .. } | FrameOp::Clear => {
                    return Err(Stop::Rule(SnapshotRule::NotAPut))
                }
            }
        }
        Ok(false)
    }

    fn put(&mut self, space: Space, key: &[u8], value: &[u8]) -> Result<(), SnapshotRule> {
        self.live += entry_size(key.len(), value.len());
        let i = space.index();
        let entry = || (Key::from_slice(key), value.to_vec());
        let duplicate = match (&mut self.unsorted[i], self.sorted[i].last()) {
            (Some(map), _) => {
                let (key, value) = entry();
                map.insert(key, value).is_some()
            }
            (None, Some((last, _))) if last.as_slice() >= key => {
                let mut map: BTreeMap<_, _> =
                    std::mem::take(&mut self.sorted[i]).into_iter().collect();
                let (key, value) = entry();
                let duplicate = map.insert(key, value).is_some();
                self.unsorted[i] = Some(map);
                duplicate
            }
            (None, _) => {
                self.sorted[i].push(entry());
                false
            }
        };
        if duplicate {
            return Err(SnapshotRule::DuplicateKey(space));
        }
        self.count += 1;
        Ok(())
    }

    /// The loaded maps.
    pub(super) fn finish(self) -> Dataset {
        let mut entries = self.sorted;
        for (i, map) in self.unsorted.into_iter().enumerate() {
            if let Some(map) = map {
                entries[i] = map.into_iter().collect();
            }
        }
        Dataset {
            spaces: VersionedSpaces::from_entries(entries),
            live: self.live,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{body_ops, BodyEncoder, LogOp};
    use peerbook::backend::ReadView;

    fn put(space: Space, key: &str) -> LogOp {
        LogOp::Put {
            space,
            key: key.as_bytes().to_vec(),
            value: key.to_uppercase().into_bytes(),
        }
    }

    /// The frames of `ops` encoded, then loaded as open loads a snapshot's frames.
    fn load(frames: Vec<Vec<LogOp>>) -> Result<(Dataset, u64), SnapshotRule> {
        let mut entries = SnapshotEntries::default();
        for ops in frames {
            let mut body = BodyEncoder::new();
            for op in ops {
                match op {
                    LogOp::Put { space, key, value } => body.put(space, &key, &value),
                    LogOp::Delete { space, key } => body.delete(space, &key),
                    LogOp::Clear => body.clear(),
                    LogOp::End { entries } => body.end(entries),
                }
            }
            let body = body.finish().unwrap();
            let mut ops = body_ops(&body).unwrap();
            let taken = entries.frame(&mut ops);
            assert_eq!(ops.check_rest(), Ok(()));
            taken.map_err(|stop| match stop {
                Stop::Rule(rule) => rule,
                Stop::Decode(e) => panic!("{e}"),
            })?;
        }
        let count = entries.count;
        Ok((entries.finish(), count))
    }

    #[test]
    fn sorted_snapshot_entries_load_in_bulk() {
        let (data, count) = load(vec![
            vec![put(Space::Peers, "a"), put(Space::Peers, "b")],
            vec![put(Space::Peers, "c"), put(Space::Meta, "a")],
        ])
        .unwrap();
        assert_eq!(count, 4);
        assert_eq!(data.spaces.lens(), [3, 0, 0, 1]);
        assert_eq!(
            data.spaces.get(Space::Peers, b"b").unwrap(),
            Some(b"B".to_vec())
        );
        assert_eq!(data.live, 4 * entry_size(1, 1));
    }

    #[test]
    fn duplicates_are_found_in_and_out_of_order() {
        let dup = |ops| {
            matches!(
                load(vec![ops]),
                Err(SnapshotRule::DuplicateKey(Space::Peers))
            )
        };
        assert!(dup(vec![put(Space::Peers, "a"), put(Space::Peers, "a")]));
        // out of order: a map from "b" on, which still sees "a"
        assert!(dup(vec![
            put(Space::Peers, "a"),
            put(Space::Peers, "c"),
            put(Space::Peers, "b"),
            put(Space::Peers, "a"),
        ]));
        assert!(dup(vec![
            put(Space::Peers, "a"),
            put(Space::Peers, "c"),
            put(Space::Peers, "b"),
            put(Space::Peers, "c"),
        ]));
        // the same key in two spaces is no duplicate
        assert!(load(vec![vec![put(Space::Peers, "a"), put(Space::Meta, "a")]]).is_ok());
    }

    #[test]
    fn out_of_order_entries_still_load() {
        let (data, count) = load(vec![vec![
            put(Space::ByQuality, "b"),
            put(Space::ByQuality, "c"),
            put(Space::ByQuality, "a"),
            put(Space::ByQuality, "d"),
        ]])
        .unwrap();
        assert_eq!(count, 4);
        assert_eq!(data.spaces.lens(), [0, 0, 4, 0]);
        for k in ["a", "b", "c", "d"] {
            assert_eq!(
                data.spaces.get(Space::ByQuality, k.as_bytes()).unwrap(),
                Some(k.to_uppercase().into_bytes())
            );
        }
    }

    #[test]
    fn snapshot_rules_hold_in_op_order() {
        let end = |entries| LogOp::End { entries };
        assert!(matches!(
            load(vec![vec![put(Space::Peers, "a"), end(1)]]),
            Ok((_, 1))
        ));
        assert_eq!(
            load(vec![vec![end(0), put(Space::Peers, "a")]]).err(),
            Some(SnapshotRule::OpsAfterEnd)
        );
        assert_eq!(
            load(vec![vec![put(Space::Peers, "a"), end(2)]]).err(),
            Some(SnapshotRule::EndCount {
                declared: 2,
                found: 1
            })
        );
        let delete = LogOp::Delete {
            space: Space::Peers,
            key: b"a".to_vec(),
        };
        assert_eq!(
            load(vec![vec![
                delete,
                put(Space::Peers, "a"),
                put(Space::Peers, "a")
            ]])
            .err(),
            Some(SnapshotRule::NotAPut)
        );
    }
}
