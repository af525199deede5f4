//! The read-only commands: `stats`, `list`, `get` and `candidates`.

use peerbook::scoring::quality_score;
use peerbook::{CandidateQuery, PeerQuery, PeerRecord};

use crate::format::{self, age, bytes, clip, when};
use crate::say;
use crate::store::{Book, CliError, KeySource, StoreSpec};

use super::now;

pub(super) fn stats(book: &Book, json: bool) -> Result<u8, CliError> {
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

pub(super) fn status(peer: &PeerRecord, now: u64) -> String {
    match peer.blacklist_until {
        Some(until) if until > now => format!("blacklisted {}", age(until, now)),
        _ if peer.reconnection_attempts > 0 => format!("{} failed", peer.reconnection_attempts),
        _ => "ok".into(),
    }
}

pub(super) fn list(
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

pub(super) fn get(
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
    // the core bounds only its length: it may hold terminal control sequences
    say!(
        "public_key:         {}",
        clip(&format::escape_controls(&peer.public_key), 72)
    );
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

pub(super) fn candidates(
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
