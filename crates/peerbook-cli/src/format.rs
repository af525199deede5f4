//! Output helpers: times, sizes, tables, and peers as JSON with secrets redacted
//! (or opened, with `--reveal-secrets`).

use peerbook::scoring::quality_score;
use peerbook::{PeerRecord, Secret};
use serde_json::Value;

use crate::duration::short_ms;
use crate::store::{Book, CliError};

/// What a redacted secret prints as.
pub const SEALED: &str = "<sealed>";

/// `2026-11-24 07:33:38Z` from ms since the Unix epoch.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-24 07:33:38Z (5m ago)`.
pub fn when(ms: u64, now: u64) -> String {
    if ms > now {
        format!("{} (in {})", utc(ms), short_ms(ms - now))
    } else {
        format!("{} ({} ago)", utc(ms), short_ms(now - ms))
    }
}

/// `5m ago` (or `in 3h` for a time ahead of now).
pub fn age(ms: u64, now: u64) -> String {
    if ms > now {
        format!("in {}", short_ms(ms - now))
    } else {
        format!("{} ago", short_ms(now - ms))
    }
}

/// `1.5 KiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A secret as text: UTF-8 as is, other bytes as `hex:...`.
fn secret_text(s: &Secret) -> String {
    match s.expose_str() {
        Some(t) => t.to_owned(),
        None => {
            let hex: String = s.expose().iter().map(|b| format!("{b:02x}")).collect();
            format!("hex:{hex}")
        }
    }
}

/// The peer's shared secret for display: `<sealed>`, opened, or absent.
pub fn shared_secret(
    book: &Book,
    peer: &PeerRecord,
    reveal: bool,
) -> Result<Option<String>, CliError> {
    if peer.shared_secret.is_none() {
        return Ok(None);
    }
    if !reveal {
        return Ok(Some(SEALED.into()));
    }
    let s = book
        .open_shared_secret(peer)
        .map_err(|e| CliError::new(e.to_string()))?;
    Ok(s.as_ref().map(secret_text))
}

/// The TURN credential of ice server `i` for display.
pub fn ice_credential(
    book: &Book,
    peer: &PeerRecord,
    i: usize,
    reveal: bool,
) -> Result<Option<String>, CliError> {
    if peer
        .ice_servers
        .get(i)
        .and_then(|s| s.credential.as_ref())
        .is_none()
    {
        return Ok(None);
    }
    if !reveal {
        return Ok(Some(SEALED.into()));
    }
    let s = book
        .open_ice_credential(peer, i)
        .map_err(|e| CliError::new(e.to_string()))?;
    Ok(s.as_ref().map(secret_text))
}

/// The record as JSON, with its quality score, and secrets `<sealed>` unless `reveal`.
pub fn peer_json(book: &Book, peer: &PeerRecord, reveal: bool) -> Result<Value, CliError> {
    let mut v = serde_json::to_value(peer).map_err(|e| CliError::new(e.to_string()))?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "shared_secret".into(),
            shared_secret(book, peer, reveal)?.map_or(Value::Null, Value::String),
        );
        if let Some(Value::Array(servers)) = obj.get_mut("ice_servers") {
            for (i, server) in servers.iter_mut().enumerate() {
                if let Some(s) = server.as_object_mut() {
                    s.insert(
                        "credential".into(),
                        ice_credential(book, peer, i, reveal)?.map_or(Value::Null, Value::String),
                    );
                }
            }
        }
        obj.insert(
            "quality_score".into(),
            Value::from(quality_score(&peer.connection_quality)),
        );
    }
    Ok(v)
}

/// Pretty JSON (never fails for values built here).
pub fn json(v: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Left-aligned columns; every row as long as the header.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(w - cell.chars().count() + 2));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// At most `max` characters, with `...` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
}

/// `s` with its control and bidirectional formatting characters escaped
/// (`\u{1b}`, `\n`, `\u{202e}`, as `escape_debug` does), and `\` as `\\`; all else
/// as is (a JSON Web Key keeps its quotes). Text from peers then reaches a terminal
/// inert.
pub fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let bidi = matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
        if bidi {
            out.extend(c.escape_unicode());
        } else if c.is_control() || c == '\\' {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20Z");
        assert!(utc(u64::MAX).len() > 10);
    }

    #[test]
    fn sizes_and_tables() {
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(
            table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]),
            "A    BB\nxyz  1"
        );
        assert_eq!(clip("abcdef", 5), "ab...");
    }
}
