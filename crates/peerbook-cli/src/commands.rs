//! The commands: each opens its store(s), does one job, prints a report.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use peerbook::scoring::quality_score;
use peerbook::{
    CandidateQuery, Clock, ExportDocument, ExportOptions, ImportMode, Options, Order, PeerQuery,
    PeerRecord, SortBy, SystemClock,
};

use crate::format::{self, age, bytes, clip, utc, when};
use crate::say;
use crate::store::{open_with, Access, Book, CliError, KeySource, StoreSpec};
use crate::{Cli, Command, Sort, SortOrder};

/// Run the parsed command line; `Ok` carries the exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    let key_file = cli.key.key_file.as_deref();
    let key_env = cli.key.key_env.as_deref();
    let key_for = |spec: &StoreSpec| KeySource::resolve(key_file, key_env, spec);
    let opts = |options: Options| Options {
        max_peers: cli.max_peers,
        ..options
    };
    let open = |spec: &StoreSpec, access| open_with(spec, &key_for(spec), access, opts);
    match &cli.command {
        Command::Init { store } => {
            let existed = store.exists();
            init(store, &key_for(store), existed, open(store, Access::Write))
        }
        Command::Stats { store, json } => stats(&open(store, Access::Read)?, *json),
        Command::List {
            store,
            sort,
            order,
            limit,
            max_age,
            min_quality,
            json,
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
            list(
                &book,
                store,
                &key_for(store),
                &query,
                *json,
                *reveal_secrets,
            )
        }
        Command::Get {
            store,
            id,
            json,
            reveal_secrets,
        } => {
            let book = open(store, Access::Read)?;
            get(&book, store, &key_for(store), id, *json, *reveal_secrets)
        }
        Command::Candidates {
            store,
            limit,
            max_age,
            json,
        } => {
            let book = open(store, Access::Read)?;
            let query = CandidateQuery {
                limit: *limit,
                max_age: *max_age,
            };
            candidates(&book, store, &key_for(store), &query, *json)
        }
        Command::Verify { store, json } => {
            verify(&open(store, Access::Read)?, store, &key_for(store), *json)
        }
        Command::Repair { store } => repair(&open(store, Access::Read)?, store, &key_for(store)),
        Command::Export {
            store,
            out,
            no_secrets,
        } => {
            let book = open(store, Access::Read)?;
            export(&book, store, &key_for(store), out.as_deref(), *no_secrets)
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
            import(&book, store, &doc, mode)
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
            migrate(from, &from_key, to, &to_key, *force, cli.max_peers)
        }
        Command::RotateKey {
            store,
            new_key_file,
        } => rotate_key(
            &open(store, Access::Read)?,
            store,
            &key_for(store),
            new_key_file,
        ),
        Command::Cleanup {
            store,
            stale,
            lru,
            dry_run,
        } => {
            let book = open(store, Access::Read)?;
            cleanup(&book, store, &key_for(store), *stale, *lru, *dry_run)
        }
    }
}

fn now() -> u64 {
    SystemClock.now_ms()
}

fn init(
    spec: &StoreSpec,
    key: &KeySource,
    existed: bool,
    book: Result<Book, CliError>,
) -> Result<u8, CliError> {
    let book = book?;
    let stats = book
        .get_storage_stats()
        .map_err(|e| CliError::store(e, key, spec))?;
    if existed {
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
    let report = book.verify().map_err(|e| CliError::store(e, key, spec))?;
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
        Ok(1)
    }
}

fn repair(book: &Book, spec: &StoreSpec, key: &KeySource) -> Result<u8, CliError> {
    let r = book.repair().map_err(|e| CliError::store(e, key, spec))?;
    say!("quarantined records:   {}", r.quarantined);
    say!("index entries added:   {}", r.index_entries_added);
    say!("index entries removed: {}", r.index_entries_removed);
    say!(
        "counters:              {}",
        if r.counters_fixed { "rewritten" } else { "ok" }
    );
    let after = book.verify().map_err(|e| CliError::store(e, key, spec))?;
    if after.is_clean() {
        say!("ok: the store verifies clean");
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
) -> Result<u8, CliError> {
    let doc = book
        .export_data(ExportOptions {
            include_secrets: !no_secrets,
        })
        .map_err(|e| CliError::store(e, key, spec))?;
    let json = doc.to_json();
    match out {
        None => say!("{json}"),
        Some(path) => {
            write_private(path, json.as_bytes())?;
            let _ = writeln!(
                std::io::stderr(),
                "exported {} peers to {}",
                doc.peers.len(),
                path.display()
            );
        }
    }
    Ok(0)
}

/// Write a file readable by its owner only (it may hold sealed secrets).
fn write_private(path: &Path, data: &[u8]) -> Result<(), CliError> {
    let io = |e: std::io::Error| CliError::new(format!("cannot write {}: {e}", path.display()));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.write_all(b"\n").map_err(io)?;
    f.sync_all().map_err(io)
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
) -> Result<u8, CliError> {
    let report = book.import_data(doc, mode).map_err(|e| match e {
        peerbook::Error::WrongKey => CliError::new(e.to_string()).hint(
            "the document's secrets were sealed under another key: import with that book's key (--key-file / --key-env), or export with --no-secrets",
        ),
        peerbook::Error::QuotaExceeded(_) => CliError::new(e.to_string())
            .hint("nothing was imported; raise --max-peers if the book's application allows more"),
        other => CliError::new(other.to_string()).hint("nothing was imported"),
    })?;
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
    max_peers: u64,
) -> Result<u8, CliError> {
    if same_dir(&from.path, &to.path) {
        return Err(CliError::usage("FROM and TO are the same directory")
            .hint("migrate copies a book into another, new or empty, store"));
    }
    let source =
        crate::store::open_with(from, from_key, Access::Read, |o| Options { max_peers, ..o })?;
    let doc = source
        .export_data(ExportOptions::default())
        .map_err(|e| CliError::store(e, from_key, from))?;
    let n = doc.peers.len();
    say!("read {n} peers from {from}");
    let to_exists = to.exists();
    if let (KeySource::File(src), KeySource::File(dst)) = (from_key, to_key) {
        if src != dst && !to_exists && fs::symlink_metadata(dst).is_err() {
            copy_key_file(src, dst)?;
            say!("copied key file {} to {}", src.display(), dst.display());
        }
    }
    let target = crate::store::open_with(to, to_key, Access::Write, |o| Options {
        max_peers: max_peers.max(n as u64).max(1),
        ..o
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
    let report = target
        .import_data(&doc, ImportMode::Replace)
        .map_err(|e| CliError::store(e, to_key, to).hint("TO was not changed"))?;
    say!(
        "wrote {} peers to {to} ({} removed)",
        report.imported,
        report.removed
    );
    check_copy(&source, &target, &doc, to, to_key)?;
    say!("ok: {to} holds exactly the {n} peers of {from}; it opens with the {to_key}");
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
    let step = (n / 10).max(100);
    for (i, peer) in doc.peers.iter().enumerate() {
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
        if (i + 1) % step == 0 || i + 1 == n {
            say!("checked {}/{n}", i + 1);
        }
    }
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
    for p in &stale_peers {
        say!(
            "{verb} {} (stale: last seen {}, {} failed attempts)",
            p.peer_id,
            age(p.last_seen, now),
            p.reconnection_attempts
        );
    }
    for p in &lru_peers {
        say!(
            "{verb} {} (least recently seen: {})",
            p.peer_id,
            utc(p.last_seen)
        );
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
    say!("removed {removed_stale} stale and {removed_lru} least recently seen peers");
    Ok(0)
}
