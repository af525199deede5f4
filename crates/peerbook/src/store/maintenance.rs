//! Retention and upkeep: stale-peer and LRU cleanup, storage statistics,
//! `verify` / `repair`, key rotation and `clear_all`.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::sync::atomic::Ordering;

use serde::Serialize;
use tracing::{info, warn};

use super::keys::{self, Counters, META_KEY_CHECK, META_LAST_CLEANUP, META_QUARANTINE_PREFIX};
use super::{Existing, PeerBook, StagedWrite, WriterGuard};
use crate::backend::{prefix_successor, Backend, Direction, KeyRange, ReadView, Space, WriteBatch};
use crate::crypto::{Cipher, MasterKey, SecretKind};
use crate::error::{Error, Result};
use crate::schema::PeerRecord;

/// What [`PeerBook::get_storage_stats`] reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StorageStats {
    /// Records in the book (corrupt ones included).
    pub peer_count: u64,
    /// Peers blacklisted now.
    pub blacklisted_count: u64,
    /// Records that fail to decode.
    pub corrupt_records: u64,
    /// Records `repair` moved to quarantine.
    pub quarantined_records: u64,
    /// Sum of stored record sizes, in bytes.
    pub record_bytes: u64,
    /// What the backend occupies on disk, in bytes.
    pub disk_bytes: u64,
    /// The configured `max_peers`.
    pub max_peers: u64,
    /// The configured `max_bytes`, if any.
    pub max_bytes: Option<u64>,
    /// How full the book is, 0..=100+: the larger of peers / max_peers and bytes / max_bytes.
    pub utilization_percent: f64,
    /// The oldest `last_seen` (ms), if any peer.
    pub oldest_seen: Option<u64>,
    /// The newest `last_seen` (ms), if any peer.
    pub newest_seen: Option<u64>,
    /// When stale peers were last cleaned up (ms), if ever.
    pub last_cleanup: Option<u64>,
    /// The backend's engine name.
    pub engine: &'static str,
}

/// A stored record that failed to decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CorruptEntry {
    /// The key in the peers space, escaped for display.
    pub key: String,
    /// Why it failed.
    pub reason: String,
}

/// What [`PeerBook::verify`] found. [`is_clean`](Self::is_clean) when nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Records read.
    pub records: u64,
    /// Records that fail to decode.
    pub corrupt: Vec<CorruptEntry>,
    /// Index entries a record needs but the index lacks.
    pub missing_index_entries: u64,
    /// Index entries no record accounts for (stale or damaged).
    pub orphan_index_entries: u64,
    /// The stored counters, when they disagree with the records.
    pub counters_mismatch: Option<CounterMismatch>,
}

/// Stored counters versus what the records add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CounterMismatch {
    /// Peer count in meta.
    pub stored_peers: u64,
    /// Records actually present.
    pub actual_peers: u64,
    /// Record bytes in meta.
    pub stored_bytes: u64,
    /// Record bytes actually present.
    pub actual_bytes: u64,
}

impl VerifyReport {
    /// True when records, indexes and counters all agree.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty()
            && self.missing_index_entries == 0
            && self.orphan_index_entries == 0
            && self.counters_mismatch.is_none()
    }
}

/// What [`PeerBook::repair`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Corrupt records moved to quarantine (meta `quarantine/<key>`).
    pub quarantined: u64,
    /// Index entries added.
    pub index_entries_added: u64,
    /// Index entries removed.
    pub index_entries_removed: u64,
    /// Whether the counters were rewritten.
    pub counters_fixed: bool,
}

/// Display form of a raw key: printable ASCII kept, other bytes as `\xNN`.
fn escape_key(key: &[u8]) -> String {
    key.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}

/// Everything a full read of the peers space tells.
struct Survey {
    counters: Counters,
    /// Index entries (key -> value) the decodable records need, by space: every
    /// entry of [`keys::index_entries`] joins the map of its space (by_quality
    /// holds the quality keys and the rank region).
    expected: BTreeMap<Space, BTreeMap<Vec<u8>, Vec<u8>>>,
    corrupt: Vec<(Vec<u8>, Vec<u8>, String)>,
}

impl Survey {
    /// The entries the records need in `space` (none for a space without any).
    fn expected(&self, space: Space) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        static NONE: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        self.expected.get(&space).unwrap_or(&NONE)
    }
}

impl<B: Backend> PeerBook<B> {
    /// True when the last cleanup is older than `cleanup_interval`, or the book is at
    /// least 90 % full (by peers, or by bytes when `max_bytes` is set).
    pub fn needs_cleanup(&self) -> Result<bool> {
        let now = self.now();
        let last = self
            .backend
            .get(Space::Meta, META_LAST_CLEANUP)?
            .as_deref()
            .and_then(keys::decode_u64);
        let overdue =
            last.is_none_or(|t| now.saturating_sub(t) > self.settings.cleanup_interval_ms);
        let c = *self.lock_writer();
        let full_by_peers = c.peers.saturating_mul(10) >= self.settings.max_peers.saturating_mul(9);
        let full_by_bytes = self
            .settings
            .max_bytes
            .is_some_and(|max| c.bytes.saturating_mul(10) >= max.saturating_mul(9));
        Ok(overdue || full_by_peers || full_by_bytes)
    }

    /// True when `record` is stale at `now`: unseen for longer than `inactive_after`,
    /// or failed `failed_attempts` times with its blacklist over.
    pub fn is_stale(&self, record: &PeerRecord, now: u64) -> bool {
        let inactive = now.saturating_sub(record.last_seen) > self.settings.inactive_after_ms;
        let given_up = record.reconnection_attempts >= self.settings.failed_attempts
            && record.blacklist_until.is_none_or(|until| until <= now);
        inactive || given_up
    }

    /// Remove every stale peer (see [`is_stale`](Self::is_stale)) in one batch and
    /// record the cleanup time; in the same batch, drop the expired addresses
    /// (`expires_at` <= now) of the peers kept. Returns how many peers were removed.
    /// Corrupt records are left to [`repair`](Self::repair).
    pub fn cleanup_stale_peers(&self) -> Result<usize> {
        let guard = self.lock_writer_to_write()?;
        let now = self.now();
        let mut stale = Vec::new();
        let mut expired = Vec::new();
        let view = self.writer_view()?;
        view.scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |k, v| {
                // A record under another peer's key (damage verify reports) is not
                // that peer: deleting or rewriting by its id would hit the healthy one.
                if let Ok(record) = super::decode_stored(k, v) {
                    let len = v.len() as u64;
                    if self.is_stale(&record, now) {
                        stale.push(Existing::Decoded { record, len });
                    } else if record.addresses.iter().any(|a| a.is_expired(now)) {
                        expired.push(Existing::Decoded { record, len });
                    }
                }
                ControlFlow::Continue(())
            },
        )?;
        let mut staged = StagedWrite::new(*guard);
        for existing in &stale {
            if let Existing::Decoded { record, .. } = existing {
                self.delete_record(&*view, &mut staged, &record.peer_id, existing)?;
            }
        }
        for existing in expired {
            if let Existing::Decoded { record, .. } = &existing {
                let mut kept = record.clone();
                kept.addresses.retain(|a| !a.is_expired(now));
                self.write_record(&*view, &mut staged, Some(existing), &kept)?;
            }
        }
        drop(view); // a view ends before its thread writes (LMDB)
        staged.batch.put(
            Space::Meta,
            META_LAST_CLEANUP.to_vec(),
            now.to_be_bytes().to_vec(),
        );
        self.commit(guard, staged)?;
        info!(removed = stale.len(), "peerbook stale-peer cleanup");
        Ok(stale.len())
    }

    /// Remove the `n` least recently seen peers in one batch. Returns how many were removed.
    pub fn cleanup_lru(&self, n: usize) -> Result<usize> {
        let guard = self.lock_writer_to_write()?;
        if n == 0 {
            return Ok(0);
        }
        let mut staged = StagedWrite::new(*guard);
        let removed = {
            let view = self.writer_view()?;
            self.delete_least_recent(&*view, &mut staged, None, |_, deleted| deleted >= n)?
        };
        self.commit(guard, staged)?;
        info!(removed, "peerbook LRU cleanup");
        Ok(removed)
    }

    /// Counts, sizes, utilization and the state of the book (reads every record).
    pub fn get_storage_stats(&self) -> Result<StorageStats> {
        let now = self.now();
        let mut s = StorageStats {
            max_peers: self.settings.max_peers,
            max_bytes: self.settings.max_bytes,
            engine: self.backend.engine_name(),
            ..StorageStats::default()
        };
        let view = self.backend.view()?;
        view.scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |k, v| {
                s.peer_count += 1;
                s.record_bytes += v.len() as u64;
                match super::decode_stored(k, v) {
                    Ok(r) => {
                        s.blacklisted_count += u64::from(r.is_blacklisted(now));
                        s.oldest_seen =
                            Some(s.oldest_seen.map_or(r.last_seen, |o| o.min(r.last_seen)));
                        s.newest_seen =
                            Some(s.newest_seen.map_or(r.last_seen, |o| o.max(r.last_seen)));
                    }
                    Err(_) => s.corrupt_records += 1,
                }
                ControlFlow::Continue(())
            },
        )?;
        let successor = prefix_successor(META_QUARANTINE_PREFIX).unwrap_or_default();
        let range = KeyRange {
            lower: Bound::Included(META_QUARANTINE_PREFIX),
            upper: Bound::Excluded(&successor),
        };
        view.scan(Space::Meta, range, Direction::Forward, &mut |_, _| {
            s.quarantined_records += 1;
            ControlFlow::Continue(())
        })?;
        s.last_cleanup = view
            .get(Space::Meta, META_LAST_CLEANUP)?
            .as_deref()
            .and_then(keys::decode_u64);
        s.disk_bytes = self.backend.disk_usage()?;
        let by_peers = s.peer_count as f64 / s.max_peers as f64;
        let by_bytes = s
            .max_bytes
            .map_or(0.0, |m| s.record_bytes as f64 / m as f64);
        s.utilization_percent = (by_peers.max(by_bytes) * 1000.0).round() / 10.0;
        Ok(s)
    }

    fn survey(&self, view: &dyn ReadView) -> Result<Survey> {
        let mut survey = Survey {
            counters: Counters::default(),
            expected: Default::default(),
            corrupt: Vec::new(),
        };
        view.scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |k, v| {
                survey.counters.peers += 1;
                survey.counters.bytes += v.len() as u64;
                match super::decode_stored(k, v) {
                    Ok(record) => {
                        for (space, key, value) in keys::index_entries(&record) {
                            survey.expected.entry(space).or_default().insert(key, value);
                        }
                    }
                    Err(reason) => survey.corrupt.push((k.to_vec(), v.to_vec(), reason)),
                }
                ControlFlow::Continue(())
            },
        )?;
        Ok(survey)
    }

    /// Index entries of `space` that are not in `expected`, and how many expected ones exist.
    fn index_diff(
        &self,
        view: &dyn ReadView,
        space: Space,
        expected: &BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> Result<(Vec<Vec<u8>>, u64)> {
        let mut orphans = Vec::new();
        let mut present = 0u64;
        view.scan(space, KeyRange::all(), Direction::Forward, &mut |k, v| {
            // an entry with the wrong value is stale: removed, then put anew
            if expected.get(k).is_some_and(|want| want.as_slice() == v) {
                present += 1;
            } else {
                orphans.push(k.to_vec());
            }
            ControlFlow::Continue(())
        })?;
        Ok((orphans, present))
    }

    /// Check that every record decodes, every index entry matches a record and back,
    /// and the counters agree. Changes nothing.
    pub fn verify(&self) -> Result<VerifyReport> {
        // The counters and the view are taken together under the writer lock, so
        // they describe one state (counters change only with a commit, under it).
        let (stored, view) = {
            let guard = self.lock_writer();
            self.drain()?;
            (*guard, self.backend.view()?)
        };
        let survey = self.survey(&*view)?;
        let mut report = VerifyReport {
            records: survey.counters.peers,
            ..VerifyReport::default()
        };
        for space in keys::INDEX_SPACES {
            let expected = survey.expected(space);
            let (orphans, present) = self.index_diff(&*view, space, expected)?;
            report.orphan_index_entries += orphans.len() as u64;
            report.missing_index_entries += (expected.len() as u64).saturating_sub(present);
        }
        report.corrupt = survey
            .corrupt
            .iter()
            .map(|(k, _, reason)| CorruptEntry {
                key: escape_key(k),
                reason: reason.clone(),
            })
            .collect();
        if stored != survey.counters {
            report.counters_mismatch = Some(CounterMismatch {
                stored_peers: stored.peers,
                actual_peers: survey.counters.peers,
                stored_bytes: stored.bytes,
                actual_bytes: survey.counters.bytes,
            });
        }
        if report.is_clean() {
            info!(records = report.records, "peerbook verify: clean");
        } else {
            warn!(
                records = report.records,
                corrupt = report.corrupt.len(),
                missing = report.missing_index_entries,
                orphans = report.orphan_index_entries,
                "peerbook verify found problems"
            );
        }
        Ok(report)
    }

    /// Move corrupt records to quarantine (meta `quarantine/<key>`), rebuild the
    /// indexes (by_last_seen; by_quality's quality keys and rank region) from the
    /// records, and rewrite the counters, in one atomic batch.
    pub fn repair(&self) -> Result<RepairReport> {
        let mut guard = self.lock_writer_to_write()?;
        let report = self.rebuild(&mut guard, true)?;
        info!(
            quarantined = report.quarantined,
            added = report.index_entries_added,
            removed = report.index_entries_removed,
            "peerbook repair done"
        );
        Ok(report)
    }

    /// The body of `repair` and of schema migration.
    pub(crate) fn rebuild(
        &self,
        guard: &mut WriterGuard<'_>,
        quarantine: bool,
    ) -> Result<RepairReport> {
        self.drain()?;
        let view = self.backend.view()?;
        let survey = self.survey(&*view)?;
        let mut report = RepairReport::default();
        let mut batch = WriteBatch::new();
        let mut counters = survey.counters;
        for (key, value, reason) in &survey.corrupt {
            warn!(key = %escape_key(key), reason = %reason, "peerbook quarantining a corrupt record");
            if quarantine {
                let mut qkey = META_QUARANTINE_PREFIX.to_vec();
                qkey.extend_from_slice(key);
                batch.put(Space::Meta, qkey, value.clone());
                batch.delete(Space::Peers, key.clone());
                counters.peers = counters.peers.saturating_sub(1);
                counters.bytes = counters.bytes.saturating_sub(value.len() as u64);
                report.quarantined += 1;
            }
        }
        for space in keys::INDEX_SPACES {
            let expected = survey.expected(space);
            let (orphans, present) = self.index_diff(&*view, space, expected)?;
            report.index_entries_removed += orphans.len() as u64;
            for key in orphans {
                batch.delete(space, key);
            }
            if present < expected.len() as u64 {
                // put every expected entry: puts of present ones are harmless
                for (key, value) in expected {
                    batch.put(space, key.clone(), value.clone());
                }
                report.index_entries_added += (expected.len() as u64).saturating_sub(present);
            }
        }
        report.counters_fixed = counters != **guard;
        batch.put(Space::Meta, keys::META_COUNTERS.to_vec(), counters.encode());
        drop(view); // a view ends before its thread writes (LMDB)
        self.write_batch(batch)?;
        **guard = counters;
        Ok(report)
    }

    /// Re-seal every secret under `new_key` and store a new key check, in one atomic
    /// batch: afterwards the book opens with `new_key` only. Returns how many records
    /// were re-sealed. Fails with [`Error::Corrupted`] (changing nothing) when a record
    /// or secret cannot be read: run [`repair`](Self::repair) first.
    ///
    /// Save `new_key` (e.g. [`MasterKey::create`]) before calling this.
    pub fn rotate_key(&self, new_key: &MasterKey) -> Result<usize> {
        let mut guard = self.lock_writer_to_write()?;
        self.drain()?;
        let old = self.cipher();
        let new = Cipher::new(new_key);
        let mut corrupt: Option<String> = None;
        let mut records = Vec::new();
        let view = self.backend.view()?;
        view.scan(
            Space::Peers,
            KeyRange::all(),
            Direction::Forward,
            &mut |k, v| match super::decode_stored(k, v) {
                Ok(r) => {
                    if r.shared_secret.is_some()
                        || r.ice_servers.iter().any(|s| s.credential.is_some())
                    {
                        records.push((r, v.len() as u64));
                    }
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    corrupt = Some(format!("{}: {e}", escape_key(k)));
                    ControlFlow::Break(())
                }
            },
        )?;
        drop(view); // a view ends before its thread writes (LMDB)
        if let Some(detail) = corrupt {
            return Err(Error::Corrupted {
                what: "peer record",
                location: detail,
                detail: "run repair before rotate_key".into(),
            });
        }
        let mut staged = StagedWrite::new(*guard);
        let count = records.len();
        for (mut record, len) in records {
            let id = record.peer_id.to_string();
            let reseal = |kind,
                          sealed: &crate::crypto::SealedSecret|
             -> Result<crate::crypto::SealedSecret> {
                let plain = old.open(kind, &id, sealed).map_err(|_| Error::Corrupted {
                    what: "sealed secret",
                    location: format!("peers/{id}"),
                    detail: "does not open under the current key; run repair or restore it before rotate_key".into(),
                })?;
                new.seal(kind, &id, plain.expose())
            };
            if let Some(s) = &record.shared_secret {
                record.shared_secret = Some(reseal(SecretKind::SharedSecret, s)?);
            }
            for server in &mut record.ice_servers {
                if let Some(c) = &server.credential {
                    server.credential = Some(reseal(SecretKind::IceCredential, c)?);
                }
            }
            let encoded = record.encode();
            staged.counters.bytes = staged
                .counters
                .bytes
                .saturating_sub(len)
                .saturating_add(encoded.len() as u64);
            staged
                .batch
                .put(Space::Peers, record.peer_id.as_bytes().to_vec(), encoded);
        }
        staged.batch.put(
            Space::Meta,
            META_KEY_CHECK.to_vec(),
            new.key_check()?.as_bytes().to_vec(),
        );
        // Hold the cipher slot while the batch lands so no reader opens a new seal with the old key.
        let mut slot = self.cipher.write().unwrap_or_else(|e| e.into_inner());
        self.commit_locked(&mut guard, staged)?;
        *slot = std::sync::Arc::new(new);
        drop(slot);
        info!(resealed = count, "peerbook key rotated");
        Ok(count)
    }

    /// Remove every peer (and quarantine), keeping the book usable with the same key.
    ///
    /// On the disk backends of this project (LMDB, RocksDB, file) no byte of a
    /// former record stays readable in the store's directory once this returns:
    /// names, keys, addresses, candidates and sealed secrets are gone from the data
    /// files, logs and free pages (each backend's [`Backend::clear`] says how). A
    /// crash in the middle leaves the old book or an empty one.
    ///
    /// What it cannot erase: copies made outside the store (backups, exports,
    /// file-system snapshots, other machines), and blocks the file system or the
    /// device may still hold after a file is removed or rewritten (copy-on-write
    /// file systems, SSD wear levelling, swap). Against those, destroy the key too
    /// ([`MasterKey::destroy_file`](crate::MasterKey::destroy_file)): every sealed
    /// secret of every copy then stays sealed for good (the non-secret fields of a
    /// copy are not encrypted and stay readable in it).
    pub fn clear_all(&self) -> Result<()> {
        let mut guard = self.lock_writer_to_write()?;
        self.drain()?;
        self.guarded(|| self.backend.clear(self.settings.durability))?;
        // The engine is empty now: if its fresh meta is refused, it holds no meta and
        // no counters, which the counters in memory do not describe; a reopen starts
        // it afresh.
        if let Err(e) = self.init_meta(&mut guard) {
            self.poisoned.store(true, Ordering::Release);
            warn!("peerbook cleared but its meta was not written; the book needs a reopen");
            return Err(e);
        }
        info!("peerbook cleared");
        Ok(())
    }
}

#[cfg(test)]
#[path = "maintenance_tests.rs"]
mod tests;
