//! The commands: each opens its store(s), does one job, prints a report.

use std::io::Write;
use std::path::Path;

use peerbook::scoring::quality_score;
use peerbook::{
    CandidateQuery, Clock, ImportMode, Options, Order, PeerQuery, PeerRecord, RetentionSettings,
    SortBy, SystemClock,
};
use serde_json::json;

use crate::format::{self, age, bytes, clip, utc, when};
use crate::progress;
use crate::say;
use crate::store::{open_with, Access, Book, CliError, KeySource, StoreSpec, StoreSpecExt};
use crate::transfer;
use crate::{Cli, Command, Sort, SortOrder};

/// The exit code of `verify` when the book has problems (distinct from an
/// operational failure, 1, and a usage error, 2).
pub const EXIT_PROBLEMS: u8 = 3;

/// Run the parsed command line; `Ok` carries the exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    let key_file = cli.key.key_file.as_deref();
    let key_env = cli.key.key_env.as_deref();
    let json = cli.json;
    let key_for = |spec: &StoreSpec| KeySource::resolve(key_file, key_env, spec);
    let open = |spec: &StoreSpec, access| open_with(spec, &key_for(spec), access, |o| o);
    match &cli.command {
        Command::Init { store } => {
            let existed = store.exists();
            init(
                store,
                &key_for(store),
                existed,
                open(store, Access::Write),
                json,
            )
        }
        Command::Stats { store } => stats(&open(store, Access::Read)?, json),
        Command::List {
            store,
            sort,
            order,
            limit,
            max_age,
            min_quality,
            reveal_secrets,
        } => {
            let query = PeerQuery {
                sort_by: match sort {
                    Sort::LastSeen => SortBy::LastSeen,
                    Sort::Quality => SortBy::Quality,
                    Sort::Score => SortBy::ReconnectionScore,
                },
                order: match order {
                    SortOrder::Asc => Order::Asc,
                    SortOrder::Desc => Order::Desc,
                },
                limit: *limit,
                max_age: *max_age,
                min_quality: *min_quality,
            };
            let book = open(store, Access::Read)?;
            list(&book, store, &key_for(store), &query, json, *reveal_secrets)
        }
        Command::Get {
            store,
            id,
            reveal_secrets,
        } => {
            let book = open(store, Access::Read)?;
            get(&book, store, &key_for(store), id, json, *reveal_secrets)
        }
        Command::Candidates {
            store,
            limit,
            max_age,
        } => {
            let book = open(store, Access::Read)?;
            let query = CandidateQuery {
                limit: *limit,
                max_age: *max_age,
            };
            candidates(&book, store, &key_for(store), &query, json)
        }
        Command::Verify { store } => {
            verify(&open(store, Access::Read)?, store, &key_for(store), json)
        }
        Command::Repair { store } => {
            repair(&open(store, Access::Read)?, store, &key_for(store), json)
        }
        Command::Export {
            store,
            out,
            no_secrets,
        } => {
            let book = open(store, Access::Read)?;
            transfer::export(
                &book,
                store,
                &key_for(store),
                out.as_deref(),
                *no_secrets,
                json,
            )
        }
        Command::Import {
            store,
            file,
            merge: _,
            replace,
        } => {
            let doc = transfer::read_document(file)?;
            // A store this import creates gets room for the whole document; an
            // existing one keeps its settings (its node's quota).
            let creating = !store.exists();
            let room = doc.peers.len() as u64;
            let book = open_with(store, &key_for(store), Access::Write, |o| {
                if creating {
                    Options {
                        max_peers: o.max_peers.max(room),
                        ..o
                    }
                } else {
                    o
                }
            })?;
            let mode = if *replace {
                ImportMode::Replace
            } else {
                ImportMode::Merge
            };
            transfer::import(&book, store, &doc, mode, json)
        }
        Command::Migrate { from, to, force } => {
            let from_key = key_for(from);
            // With default key files, TO gets a copy of FROM's key unless it has one.
            let default_keys = key_file.is_none() && key_env.is_none();
            let to_key = if default_keys {
                KeySource::File(to.default_key_file())
            } else {
                from_key.clone()
            };
            transfer::migrate(from, &from_key, to, &to_key, *force, json)
        }
        Command::Settings {
            store,
            max_peers,
            max_bytes,
            inactive_after,
            failed_attempts,
            blacklist_for,
            cleanup_interval,
            evict_when_full,
        } => {
            let change = |o: Options| Options {
                max_peers: max_peers.unwrap_or(o.max_peers),
                max_bytes: match max_bytes {
                    None => o.max_bytes,
                    Some(0) => None,
                    Some(n) => Some(*n),
                },
                inactive_after: inactive_after.unwrap_or(o.inactive_after),
                failed_attempts: failed_attempts.unwrap_or(o.failed_attempts),
                blacklist_for: blacklist_for.unwrap_or(o.blacklist_for),
                cleanup_interval: cleanup_interval.unwrap_or(o.cleanup_interval),
                evict_when_full: evict_when_full.unwrap_or(o.evict_when_full),
                ..o
            };
            let changing = max_peers.is_some()
                || max_bytes.is_some()
                || inactive_after.is_some()
                || failed_attempts.is_some()
                || blacklist_for.is_some()
                || cleanup_interval.is_some()
                || evict_when_full.is_some();
            let key = key_for(store);
            let before = if changing {
                Some(open(store, Access::Read)?.retention())
            } else {
                None
            };
            let book = open_with(store, &key, Access::Read, change)?;
            settings(&book, store, before.as_ref(), json)
        }
        Command::RotateKey {
            store,
            new_key_file,
        } => rotate_key(
            &open(store, Access::Read)?,
            store,
            &key_for(store),
            new_key_file,
            json,
        ),
        Command::Clear { store, destroy_key } => {
            let key = key_for(store);
            clear(open(store, Access::Read)?, store, &key, *destroy_key, json)
        }
        Command::Cleanup {
            store,
            stale,
            lru,
            dry_run,
        } => {
            let book = open(store, Access::Read)?;
            cleanup(&book, store, &key_for(store), *stale, *lru, *dry_run, json)
        }
    }
}

fn now() -> u64 {
    SystemClock.now_ms()
}

/// The number of peers, for progress; only counted when someone watches (it scans).
pub fn book_size(book: &Book) -> u64 {
    if progress::watching() {
        book.get_storage_stats().map_or(0, |s| s.peer_count)
    } else {
        0
    }
}

fn init(
    spec: &StoreSpec,
    key: &KeySource,
    existed: bool,
    book: Result<Book, CliError>,
    json: bool,
) -> Result<u8, CliError> {
    let book = book?;
    let stats = book
        .get_storage_stats()
        .map_err(|e| CliError::store(e, key, spec))?;
    if json {
        say!(
            "{}",
            format::json(&json!({
                "store": spec.to_string(),
                "created": !existed,
                "peers": stats.peer_count,
                "key": key.to_string(),
            }))
        );
    } else if existed {
        say!(
            "store {spec} already exists ({} peers); it opens with the {key}",
            stats.peer_count
        );
    } else {
        say!("created store {spec}");
        say!("{key} (keep it safe and outside the data directory: without it no secret opens)");
    }
    Ok(0)
}

fn stats(book: &Book, json: bool) -> Result<u8, CliError> {
    let s = book
        .get_storage_stats()
        .map_err(|e| CliError::new(e.to_string()))?;
    if json {
        say!("{}", format::json(&s));
        return Ok(0);
    }
    let now = now();
    let opt_time = |t: Option<u64>| t.map_or_else(|| "-".into(), |t| when(t, now));
    say!("engine:        {}", s.engine);
    say!(
        "peers:         {} of max {} ({:.1} % full)",
        s.peer_count,
        s.max_peers,
        s.utilization_percent
    );
    say!(
        "record bytes:  {}{}",
        bytes(s.record_bytes),
        s.max_bytes
            .map_or_else(String::new, |m| format!(" of max {}", bytes(m)))
    );
    say!("disk bytes:    {}", bytes(s.disk_bytes));
    say!("blacklisted:   {}", s.blacklisted_count);
    say!("oldest seen:   {}", opt_time(s.oldest_seen));
    say!("newest seen:   {}", opt_time(s.newest_seen));
    say!("last cleanup:  {}", opt_time(s.last_cleanup));
    say!("corrupt:       {}", s.corrupt_records);
    say!("quarantined:   {}", s.quarantined_records);
    Ok(0)
}

fn status(peer: &PeerRecord, now: u64) -> String {
    match peer.blacklist_until {
        Some(until) if until > now => format!("blacklisted {}", age(until, now)),
        _ if peer.reconnection_attempts > 0 => format!("{} failed", peer.reconnection_attempts),
        _ => "ok".into(),
    }
}

fn list(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    query: &PeerQuery,
    json: bool,
    reveal: bool,
) -> Result<u8, CliError> {
    let peers = book
        .query_peers(query)
        .map_err(|e| CliError::store(e, key, spec))?;
    if json {
        let values = peers
            .iter()
            .map(|p| format::peer_json(book, p, reveal))
            .collect::<Result<Vec<_>, _>>()?;
        say!("{}", format::json(&values));
        return Ok(0);
    }
    let now = now();
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.peer_id.to_string(),
                clip(&p.display_name, 24),
                age(p.last_seen, now),
                quality_score(&p.connection_quality).to_string(),
                format!(
                    "{}/{}",
                    p.connection_quality.successful_connections,
                    p.connection_quality.total_connections
                ),
                p.addresses.len().to_string(),
                status(p, now),
            ]
        })
        .collect();
    say!(
        "{}",
        format::table(
            &[
                "ID",
                "NAME",
                "LAST SEEN",
                "QUALITY",
                "OK/TOTAL",
                "ADDRS",
                "STATUS"
            ],
            &rows
        )
    );
    say!("({} peers)", peers.len());
    Ok(0)
}

fn get(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    id: &str,
    json: bool,
    reveal: bool,
) -> Result<u8, CliError> {
    let peer = book
        .get_peer(id)
        .map_err(|e| CliError::store(e, key, spec))?
        .ok_or_else(|| {
            CliError::new(format!("peer not found: {id}"))
                .hint(format!("`peerbook list {spec}` shows the stored peers"))
        })?;
    if json {
        say!("{}", format::json(&format::peer_json(book, &peer, reveal)?));
        return Ok(0);
    }
    let now = now();
    let q = &peer.connection_quality;
    say!("peer_id:            {}", peer.peer_id);
    say!("display_name:       {}", peer.display_name);
    say!("public_key:         {}", clip(&peer.public_key, 72));
    say!(
        "shared_secret:      {}",
        format::shared_secret(book, &peer, reveal)?.unwrap_or_else(|| "-".into())
    );
    say!("last_seen:          {}", when(peer.last_seen, now));
    say!("last_connected:     {}", when(peer.last_connected, now));
    say!(
        "last_known_ip:      {}",
        peer.last_known_ip
            .map_or_else(|| "-".into(), |ip| ip.to_string())
    );
    if peer.ice_servers.is_empty() {
        say!("ice_servers:        -");
    }
    for (i, server) in peer.ice_servers.iter().enumerate() {
        let mut line = server.urls.join(" ");
        if let Some(u) = &server.username {
            line.push_str(&format!(" (username {u}"));
            match format::ice_credential(book, &peer, i, reveal)? {
                Some(c) => line.push_str(&format!(", credential {c})")),
                None => line.push(')'),
            }
        } else if let Some(c) = format::ice_credential(book, &peer, i, reveal)? {
            line.push_str(&format!(" (credential {c})"));
        }
        say!("ice_servers[{i}]:     {line}");
    }
    say!("cached_candidates:  {}", peer.cached_candidates.len());
    if peer.addresses.is_empty() {
        say!("addresses:          -");
    }
    let opt_when = |t: Option<u64>| t.map_or_else(|| "-".into(), |t| when(t, now));
    for (i, a) in peer.addresses.iter().enumerate() {
        say!(
            "addresses[{i}]:       {} ({}, last ok {}, last failed {}, expires {})",
            a.addr,
            format!("{:?}", a.source).to_lowercase(),
            opt_when(a.last_success),
            opt_when(a.last_failure),
            opt_when(a.expires_at)
        );
    }
    if peer.metadata.is_empty() {
        say!("metadata:           -");
    }
    for (k, v) in &peer.metadata {
        // escaped: metadata comes from peers and may hold bidi characters
        say!("metadata.{k}: {}", clip(&v.escape_debug().to_string(), 120));
    }
    say!(
        "quality:            score {} (latency {}, success {}/{} = {:.2}, type {}, avg uptime {})",
        quality_score(q),
        q.latency_ms
            .map_or_else(|| "unknown".into(), |l| format!("{l} ms")),
        q.successful_connections,
        q.total_connections,
        q.success_rate,
        format!("{:?}", q.connection_type).to_lowercase(),
        crate::duration::short_ms(q.avg_uptime_ms)
    );
    say!("reconnect_attempts: {}", peer.reconnection_attempts);
    say!(
        "blacklist_until:    {}",
        peer.blacklist_until
            .map_or_else(|| "-".into(), |t| when(t, now))
    );
    Ok(0)
}

fn candidates(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    query: &CandidateQuery,
    json: bool,
) -> Result<u8, CliError> {
    let found = book
        .get_reconnection_candidates(query)
        .map_err(|e| CliError::store(e, key, spec))?;
    let now = now();
    if json {
        let values: Vec<serde_json::Value> = found
            .iter()
            .map(|c| {
                serde_json::json!({
                    "peer_id": c.peer.peer_id.as_str(),
                    "display_name": c.peer.display_name,
                    "last_seen": c.peer.last_seen,
                    "score": {
                        "total": c.score.total,
                        "quality": c.score.quality,
                        "recency": c.score.recency,
                        "success": c.score.success,
                        "reliability": c.score.reliability,
                        "penalty": c.score.penalty,
                    }
                })
            })
            .collect();
        say!("{}", format::json(&values));
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|c| {
            let s = &c.score;
            vec![
                c.peer.peer_id.to_string(),
                clip(&c.peer.display_name, 20),
                s.total.to_string(),
                s.quality.to_string(),
                s.recency.to_string(),
                s.success.to_string(),
                s.reliability.to_string(),
                if s.penalty == 0 {
                    "0".into()
                } else {
                    format!("-{}", s.penalty)
                },
                age(c.peer.last_seen, now),
            ]
        })
        .collect();
    say!(
        "{}",
        format::table(
            &[
                "ID",
                "NAME",
                "SCORE",
                "QUALITY",
                "RECENCY",
                "SUCCESS",
                "RELIAB",
                "PENALTY",
                "LAST SEEN"
            ],
            &rows
        )
    );
    say!("({} candidates)", found.len());
    Ok(0)
}

fn verify(book: &Book, spec: &StoreSpec, key: &KeySource, json: bool) -> Result<u8, CliError> {
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
fn clear(
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
    if destroy_key {
        let KeySource::File(path) = key else {
            return Err(CliError::new(format!(
                "{spec} is cleared, but its key comes from the environment ({key}): peerbook cannot destroy it"
            ))
            .hint("delete the key from wherever you keep it"));
        };
        peerbook::MasterKey::destroy_file(path).map_err(|e| {
            CliError::new(e.to_string()).hint("the store is cleared; remove the key file by hand")
        })?;
        lines.push(format!("destroyed {key}: sealed secrets in any copy of the book can no longer be opened (unless the key itself was copied)"));
        // The emptied store only names the destroyed key (its key check): remove it,
        // so the next write starts a new store with a new key.
        std::fs::remove_dir_all(&spec.path).map_err(|e| {
            CliError::new(format!("cannot remove the emptied store {spec}: {e}"))
                .hint("remove the directory by hand; it holds no peer data")
        })?;
        lines.push(format!(
            "removed the emptied store directory {}",
            spec.path.display()
        ));
    } else {
        lines.push("copies outside the store (backups, exports, snapshots) still hold their data; --destroy-key makes their secrets unreadable".into());
    }
    if json {
        say!(
            "{}",
            format::json(&json!({
                "cleared": spec.to_string(),
                "peers_erased": peers,
                "key_destroyed": destroy_key,
                "store_removed": destroy_key,
            }))
        );
    } else {
        for line in lines {
            say!("{line}");
        }
    }
    Ok(0)
}

fn repair(book: &Book, spec: &StoreSpec, key: &KeySource, json: bool) -> Result<u8, CliError> {
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

fn rotate_key(
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

fn cleanup(
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
    Ok(0)
}

/// `settings`: the retention settings the book now holds; `before` is set when the
/// command changed them.
fn settings(
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
