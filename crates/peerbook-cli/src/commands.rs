//! The commands: each opens its store(s), does one job, prints a report.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use peerbook::scoring::quality_score;
use peerbook::{
    CandidateQuery, Clock, ExportDocument, ExportOptions, ImportMode, Options, Order, PeerQuery,
    PeerRecord, RetentionSettings, SortBy, SystemClock,
};
use serde_json::json;

use crate::format::{self, age, bytes, clip, utc, when};
use crate::progress;
use crate::say;
use crate::store::{open_with, Access, Book, CliError, KeySource, StoreSpec};
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
            export(
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
            let doc = read_document(file)?;
            let book = open(store, Access::Write)?;
            let mode = if *replace {
                ImportMode::Replace
            } else {
                ImportMode::Merge
            };
            import(&book, store, &doc, mode, json)
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
            migrate(from, &from_key, to, &to_key, *force, json)
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
fn book_size(book: &Book) -> u64 {
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
                status(p, now),
            ]
        })
        .collect();
    say!(
        "{}",
        format::table(
            &["ID", "NAME", "LAST SEEN", "QUALITY", "OK/TOTAL", "STATUS"],
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

fn export(
    book: &Book,
    spec: &StoreSpec,
    key: &KeySource,
    out: Option<&Path>,
    no_secrets: bool,
    json: bool,
) -> Result<u8, CliError> {
    let peers = book_size(book);
    let spinner = progress::spinner(peers, "exporting");
    let doc = book
        .export_data(ExportOptions {
            include_secrets: !no_secrets,
        })
        .map_err(|e| CliError::store(e, key, spec));
    spinner.finish_and_clear();
    let doc = doc?;
    let text = doc.to_json();
    match out {
        // the document is JSON already
        None => say!("{text}"),
        Some(path) => {
            write_atomically(path, text.as_bytes())?;
            if json {
                say!(
                    "{}",
                    format::json(&json!({
                        "exported": doc.peers.len(),
                        "out": path.display().to_string(),
                        "secrets": !no_secrets,
                    }))
                );
            } else {
                let _ = writeln!(
                    std::io::stderr(),
                    "exported {} peers to {}",
                    doc.peers.len(),
                    path.display()
                );
            }
        }
    }
    Ok(0)
}

/// Replace `path` with `data` + a newline, all or nothing: a temp file in the same
/// directory (readable by its owner only: it may hold sealed secrets), fsynced, then
/// renamed over `path`, then the directory fsynced. A crash or an error leaves the
/// old file (or none) and no temp file behind.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::new(format!("cannot write {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| CliError::usage(format!("--out {}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let write = || -> std::io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(data)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // the rename itself is durable once the directory is synced
        #[cfg(unix)]
        fs::File::open(&dir)?.sync_all()?;
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(e)
    })
}

fn read_document(file: &Path) -> Result<ExportDocument, CliError> {
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        fs::File::open(file).and_then(|mut f| f.read_to_string(&mut text).map(|_| ()))
    };
    read.map_err(|e| CliError::new(format!("cannot read {}: {e}", file.display())))?;
    ExportDocument::from_json(&text).map_err(|e| {
        CliError::new(format!("{} is not a peerbook export: {e}", file.display()))
            .hint("make one with `peerbook export BACKEND:PATH --out FILE`")
    })
}

fn import(
    book: &Book,
    spec: &StoreSpec,
    doc: &ExportDocument,
    mode: ImportMode,
    json: bool,
) -> Result<u8, CliError> {
    let spinner = progress::spinner(doc.peers.len() as u64, "importing");
    let report = book.import_data(doc, mode);
    spinner.finish_and_clear();
    let report = report.map_err(|e| match e {
        peerbook::Error::WrongKey => CliError::new(e.to_string()).hint(
            "the document's secrets were sealed under another key: import with that book's key (--key-file / --key-env), or export with --no-secrets",
        ),
        peerbook::Error::QuotaExceeded(_) => CliError::new(e.to_string())
            .hint(format!("nothing was imported; raise the book's limit with `peerbook settings {spec} --max-peers N` if its node allows more")),
        other => CliError::new(other.to_string()).hint("nothing was imported"),
    })?;
    if json {
        say!(
            "{}",
            format::json(&json!({ "store": spec.to_string(), "import": report }))
        );
        return Ok(0);
    }
    say!(
        "imported {} peers into {spec} ({} replaced, {} removed)",
        report.imported,
        report.replaced,
        report.removed
    );
    Ok(0)
}

/// Copy a key file (validated by loading it) to a new 0600 file.
fn copy_key_file(src: &Path, dst: &Path) -> Result<(), CliError> {
    peerbook::MasterKey::load(src).map_err(|e| {
        CliError::new(e.to_string())
            .hint("pass the key of FROM with --key-file PATH or --key-env VAR")
    })?;
    let data =
        fs::read(src).map_err(|e| CliError::new(format!("cannot read {}: {e}", src.display())))?;
    let io = |e: std::io::Error| CliError::new(format!("cannot create {}: {e}", dst.display()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(dst).map_err(io)?;
    f.write_all(&data).map_err(io)?;
    f.sync_all().map_err(io)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn migrate(
    from: &StoreSpec,
    from_key: &KeySource,
    to: &StoreSpec,
    to_key: &KeySource,
    force: bool,
    json: bool,
) -> Result<u8, CliError> {
    if same_dir(&from.path, &to.path) {
        return Err(CliError::usage("FROM and TO are the same directory")
            .hint("migrate copies a book into another, new or empty, store"));
    }
    let source = crate::store::open_with(from, from_key, Access::Read, |o| o)?;
    let spinner = progress::spinner(book_size(&source), "reading");
    let doc = source
        .export_data(ExportOptions::default())
        .map_err(|e| CliError::store(e, from_key, from));
    spinner.finish_and_clear();
    let doc = doc?;
    let n = doc.peers.len();
    if !json {
        say!("read {n} peers from {from}");
    }
    let to_exists = to.exists();
    if let (KeySource::File(src), KeySource::File(dst)) = (from_key, to_key) {
        if src != dst && !to_exists && fs::symlink_metadata(dst).is_err() {
            copy_key_file(src, dst)?;
            if !json {
                say!("copied key file {} to {}", src.display(), dst.display());
            }
        }
    }
    // TO takes FROM's retention settings, with room for every peer.
    let retention = source.retention();
    let target = crate::store::open_with(to, to_key, Access::Write, |o| {
        let o = retention.apply(o);
        Options {
            max_peers: o.max_peers.max(n as u64).max(1),
            ..o
        }
    })?;
    if to_exists {
        let existing = target
            .get_storage_stats()
            .map_err(|e| CliError::store(e, to_key, to))?;
        if existing.peer_count > 0 && !force {
            return Err(CliError::new(format!(
                "{to} is not empty ({} peers)",
                existing.peer_count
            ))
            .hint("pass --force to replace its peers with FROM's"));
        }
    }
    let spinner = progress::spinner(n as u64, "writing");
    let report = target.import_data(&doc, ImportMode::Replace);
    spinner.finish_and_clear();
    let report = report.map_err(|e| CliError::store(e, to_key, to).hint("TO was not changed"))?;
    if !json {
        say!(
            "wrote {} peers to {to} ({} removed)",
            report.imported,
            report.removed
        );
    }
    check_copy(&source, &target, &doc, to, to_key)?;
    if json {
        say!(
            "{}",
            format::json(&json!({
                "from": from.to_string(),
                "to": to.to_string(),
                "peers": n,
                "removed": report.removed,
                "checked": n,
                "key": to_key.to_string(),
            }))
        );
    } else {
        say!("checked {n}/{n}");
        say!("ok: {to} holds exactly the {n} peers of {from}; it opens with the {to_key}");
    }
    Ok(0)
}

/// Record by record: every peer of `doc` reads back identical from `target`, and
/// `target` holds nothing else.
fn check_copy(
    source: &Book,
    target: &Book,
    doc: &ExportDocument,
    to: &StoreSpec,
    to_key: &KeySource,
) -> Result<(), CliError> {
    let n = doc.peers.len();
    let bar = progress::bar(n as u64, "checking");
    for peer in &doc.peers {
        let id = peer.peer_id.as_str();
        let copy = target
            .get_peer(id)
            .map_err(|e| CliError::store(e, to_key, to))?;
        let original = source
            .get_peer(id)
            .map_err(|e| CliError::new(format!("re-reading {id} from FROM: {e}")))?;
        if copy.as_ref() != Some(peer) || original.as_ref() != Some(peer) {
            return Err(CliError::new(format!(
                "check failed: peer {} differs in {to}",
                peer.peer_id
            ))
            .hint("report this bug; FROM is unchanged"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let stats = target
        .get_storage_stats()
        .map_err(|e| CliError::store(e, to_key, to))?;
    let clean = target
        .verify()
        .map_err(|e| CliError::store(e, to_key, to))?
        .is_clean();
    if stats.peer_count != n as u64 || !clean {
        return Err(CliError::new(format!(
            "check failed: {to} holds {} records (expected {n}), verify clean: {clean}",
            stats.peer_count
        ))
        .hint("FROM is unchanged"));
    }
    Ok(())
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
        CliError::store(e, key, spec).hint(format!(
            "the book was not changed and still opens with the {key}; delete {} before retrying",
            new_key_file.display()
        ))
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
