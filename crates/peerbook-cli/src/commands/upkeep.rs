//! The upkeep commands: `verify`, `repair`, `clear`, `rotate-key`, `cleanup` and
//! `settings`.

use std::io::Write;
use std::path::Path;

use peerbook::{Order, PeerQuery, PeerRecord, RetentionSettings, SortBy};
use serde_json::json;

use crate::format::{self, age, bytes, utc};
use crate::progress;
use crate::say;
use crate::store::{Book, CliError, KeySource, StoreSpec, StoreSpecExt};

use super::{book_size, now, EXIT_PROBLEMS};

pub(super) fn verify(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    json: bool,
) -> Result<u8, CliError> {
    let peers = book_size(book);
    let spinner = progress::spinner(peers, "verifying");
    let report = book.verify().map_err(|e| CliError::store(e, key, spec));
    spinner.finish_and_clear();
    let report = report?;
    if json {
        say!("{}", format::json(&report));
    } else {
        say!("records:              {}", report.records);
        say!("corrupt records:      {}", report.corrupt.len());
        for c in &report.corrupt {
            say!("  {}: {}", c.key, c.reason);
        }
        say!("missing index entries: {}", report.missing_index_entries);
        say!("orphan index entries:  {}", report.orphan_index_entries);
        match &report.counters_mismatch {
            None => say!("counters:             ok"),
            Some(m) => say!(
                "counters:             stored {} peers / {} bytes, actual {} peers / {} bytes",
                m.stored_peers,
                m.stored_bytes,
                m.actual_peers,
                m.actual_bytes
            ),
        }
    }
    if report.is_clean() {
        if !json {
            say!("ok: the store is clean");
        }
        Ok(0)
    } else {
        let e = CliError::new(format!("{spec} has problems (see the report above)")).hint(format!(
            "`peerbook repair {spec}` quarantines bad records and rebuilds indexes and counters"
        ));
        let _ = writeln!(std::io::stderr(), "{e}");
        Ok(EXIT_PROBLEMS)
    }
}

/// `clear STORE [--destroy-key]`: erase every peer from the store's files, and
/// optionally destroy the key file (crypto-shredding copies made elsewhere).
pub(super) fn clear(
    book: Book,
    spec: &StoreSpec,
    key: &KeySource,
    destroy_key: bool,
    json: bool,
) -> Result<u8, CliError> {
    let peers = book
        .get_storage_stats()
        .map_err(|e| CliError::store(e, key, spec))?
        .peer_count;
    book.clear_all()
        .map_err(|e| CliError::store(e, key, spec))?;
    drop(book.close().map_err(|e| CliError::store(e, key, spec))?);
    let mut lines = vec![format!(
        "cleared {spec}: {peers} peers erased from the store's files"
    )];
    let mut store_removed = false;
    if destroy_key {
        let KeySource::File(path) = key else {
            // refused before the book was opened (`commands::run`)
            return Err(CliError::usage("--destroy-key needs a key file"));
        };
        peerbook::MasterKey::destroy_file(path).map_err(|e| {
            CliError::new(e.to_string()).hint("the store is cleared; remove the key file by hand")
        })?;
        lines.push(format!("destroyed {key}: sealed secrets in any copy of the book can no longer be opened (unless the key itself was copied)"));
        // The emptied store only names the destroyed key (its key check): remove it,
        // so the next write starts a new store with a new key. Only the engine's own
        // files go: whatever else the directory holds is not ours to delete.
        let link = std::fs::symlink_metadata(&spec.path).is_ok_and(|m| m.file_type().is_symlink());
        let left = spec.engine.remove_store(&spec.path).map_err(|e| {
            CliError::new(format!("cannot remove the emptied store {spec}: {e}"))
                .hint("remove the store's files by hand; they hold no peer data")
        })?;
        if link && left.is_empty() {
            lines.push(format!(
                "removed the emptied store's files; left the symbolic link {} and the empty directory it points to",
                spec.path.display()
            ));
        } else if left.is_empty() {
            lines.push(format!(
                "removed the emptied store directory {}",
                spec.path.display()
            ));
        } else {
            lines.push(format!(
                "removed the emptied store's files; left the directory {} with what peerbook did not make there: {}",
                spec.path.display(),
                left.iter()
                    .map(|n| n.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        store_removed = left.is_empty() && !link;
    } else {
        lines.push("copies outside the store (backups, exports, snapshots) still hold their data; --destroy-key makes their secrets unreadable".into());
    }
    let report = || -> Result<(), CliError> {
        if json {
            say!(
                "{}",
                format::json(&json!({
                    "cleared": spec.to_string(),
                    "peers_erased": peers,
                    "key_destroyed": destroy_key,
                    "store_removed": store_removed,
                }))
            );
        } else {
            for line in &lines {
                say!("{line}");
            }
        }
        Ok(())
    };
    report().map_err(|e| e.after_change(lines.join("; ")))?;
    Ok(0)
}

pub(super) fn repair(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    json: bool,
) -> Result<u8, CliError> {
    let r = book.repair().map_err(|e| CliError::store(e, key, spec))?;
    let after = book.verify().map_err(|e| CliError::store(e, key, spec))?;
    if json {
        say!(
            "{}",
            format::json(&json!({ "repair": r, "clean_after": after.is_clean() }))
        );
    } else {
        say!("quarantined records:   {}", r.quarantined);
        say!("index entries added:   {}", r.index_entries_added);
        say!("index entries removed: {}", r.index_entries_removed);
        say!(
            "counters:              {}",
            if r.counters_fixed { "rewritten" } else { "ok" }
        );
    }
    if after.is_clean() {
        if !json {
            say!("ok: the store verifies clean");
        }
        Ok(0)
    } else {
        Err(
            CliError::new(format!("{spec} still has problems after repair"))
                .hint(format!("run `peerbook verify {spec}` for the report")),
        )
    }
}

pub(super) fn rotate_key(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    new_key_file: &Path,
    json: bool,
) -> Result<u8, CliError> {
    let new_key = peerbook::MasterKey::create(new_key_file).map_err(|e| {
        CliError::new(e.to_string()).hint(
            "rotate-key writes a NEW key file: name a path that does not exist yet (nothing was changed)",
        )
    })?;
    let count = book.rotate_key(&new_key).map_err(|e| {
        // A storage error may come after the batch landed (e.g. a failed fsync): the
        // book may open with either key, so neither key file may be deleted.
        let hint = if matches!(e, peerbook::Error::Backend(_) | peerbook::Error::NeedsReopen) {
            format!(
                "the storage failed part way: the book may now open with the {key} OR with the \
                 new key file {}; KEEP BOTH, reopen the book (e.g. `verify`) with each to see \
                 which one it takes, and delete nothing until then",
                new_key_file.display()
            )
        } else {
            format!(
                "the book was not changed and still opens with the {key}; delete {} before retrying",
                new_key_file.display()
            )
        };
        CliError::store(e, key, spec).hint(hint)
    })?;
    if json {
        say!(
            "{}",
            format::json(&json!({
                "resealed_peers": count,
                "new_key_file": new_key_file.display().to_string(),
            }))
        );
        return Ok(0);
    }
    let peers = if count == 1 { "peer" } else { "peers" };
    say!("re-sealed the secrets of {count} {peers} under the new key");
    say!(
        "the book now opens ONLY with the key file {} (the {key} no longer opens it)",
        new_key_file.display()
    );
    let default = spec.default_key_file();
    match key {
        KeySource::File(old) if *old == default => say!(
            "next: switch key files: mv {} {}",
            new_key_file.display(),
            default.display()
        ),
        _ => say!(
            "next: pass --key-file {} from now on (or store the new key where your node reads it)",
            new_key_file.display()
        ),
    }
    Ok(0)
}

pub(super) fn cleanup(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    stale: bool,
    lru: Option<usize>,
    dry_run: bool,
    json: bool,
) -> Result<u8, CliError> {
    let err = |e| CliError::store(e, key, spec);
    let now = now();
    // Least recently seen first, as the LRU index orders them.
    let peers = book
        .query_peers(&PeerQuery {
            sort_by: SortBy::LastSeen,
            order: Order::Asc,
            ..PeerQuery::default()
        })
        .map_err(err)?;
    let (stale_peers, rest): (Vec<&PeerRecord>, Vec<&PeerRecord>) =
        peers.iter().partition(|p| stale && book.is_stale(p, now));
    let lru_peers: Vec<&PeerRecord> = rest.into_iter().take(lru.unwrap_or(0)).collect();
    let verb = if dry_run { "would remove" } else { "removing" };
    let ids = |peers: &[&PeerRecord]| -> Vec<String> {
        peers.iter().map(|p| p.peer_id.to_string()).collect()
    };
    let planned = json!({ "stale": ids(&stale_peers), "lru": ids(&lru_peers) });
    for p in stale_peers.iter().filter(|_| !json) {
        say!(
            "{verb} {} (stale: last seen {}, {} failed attempts)",
            p.peer_id,
            age(p.last_seen, now),
            p.reconnection_attempts
        );
    }
    for p in lru_peers.iter().filter(|_| !json) {
        say!(
            "{verb} {} (least recently seen: {})",
            p.peer_id,
            utc(p.last_seen)
        );
    }
    if dry_run && json {
        say!(
            "{}",
            format::json(&json!({ "dry_run": true, "would_remove": planned }))
        );
        return Ok(0);
    }
    if dry_run {
        say!(
            "dry run: {} stale and {} least recently seen peers would be removed; nothing was changed",
            stale_peers.len(),
            lru_peers.len()
        );
        return Ok(0);
    }
    let removed_stale = if stale {
        book.cleanup_stale_peers().map_err(err)?
    } else {
        0
    };
    let removed_lru = match lru {
        Some(n) => book.cleanup_lru(n).map_err(err)?,
        None => 0,
    };
    let report = || -> Result<(), CliError> {
        if json {
            say!(
                "{}",
                format::json(&json!({
                    "dry_run": false,
                    "removed_stale": removed_stale,
                    "removed_lru": removed_lru,
                }))
            );
        } else {
            say!("removed {removed_stale} stale and {removed_lru} least recently seen peers");
        }
        Ok(())
    };
    report().map_err(|e| {
        e.after_change(format!(
            "removed {removed_stale} stale and {removed_lru} least recently seen peers from {spec}"
        ))
    })?;
    Ok(0)
}

/// `settings`: the retention settings the book now holds; `before` is set when the
/// command changed them.
pub(super) fn settings(
    book: &Book,
    spec: &StoreSpec,
    before: Option<&RetentionSettings>,
    json: bool,
) -> Result<u8, CliError> {
    let now = book.retention();
    if json {
        say!(
            "{}",
            format::json(&json!({
                "store": spec.to_string(),
                "retention": now,
                "changed": before.is_some_and(|b| *b != now),
            }))
        );
        return Ok(0);
    }
    let d = |ms: u64| humantime::format_duration(std::time::Duration::from_millis(ms)).to_string();
    say!("max peers:         {}", now.max_peers);
    say!(
        "max bytes:         {}",
        now.max_bytes.map_or_else(|| "none".into(), bytes)
    );
    say!("inactive after:    {}", d(now.inactive_after_ms));
    say!("failed attempts:   {}", now.failed_attempts);
    say!("blacklist for:     {}", d(now.blacklist_for_ms));
    say!("cleanup interval:  {}", d(now.cleanup_interval_ms));
    say!(
        "evict when full:   {}",
        if now.evict_when_full { "yes" } else { "no" }
    );
    match before {
        Some(b) if *b != now => say!(
            "changed: stored in {spec} (a node opening the book with other Options overrides them)"
        ),
        Some(_) => say!("unchanged"),
        None => {}
    }
    Ok(0)
}
