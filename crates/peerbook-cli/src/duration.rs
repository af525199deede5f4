//! Durations on the command line, as humantime reads them: `90s`, `15m`, `24h`, `7d`,
//! `1h30m`, `2w`, `1h 30m`, `1.5h`.

use std::time::Duration;

/// Parse a duration: numbers with units (`s`, `m`/`min`, `h`, `d`, `w`, `ms`, ...),
/// concatenated (`1h30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. 90s, 15m, 24h, 7d or 1h30m".into());
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write e.g. 90s, 15m, 24h, 7d or 1h30m")
    })
}

/// A short human form of a duration in ms: `42s`, `5m`, `3h`, `2d`.
pub fn short_ms(ms: u64) -> String {
    let s = ms / 1000;
    if s < 120 {
        format!("{s}s")
    } else if s < 2 * 3600 {
        format!("{}m", s / 60)
    } else if s < 2 * 86_400 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "s",
            "15",
            "15x",
            "-1d",
            "1dd",
            "1h30",
            "h1",
            "১d",
            "99999999999999999999d",
            "999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn short() {
        assert_eq!(short_ms(5_000), "5s");
        assert_eq!(short_ms(600_000), "10m");
        assert_eq!(short_ms(3 * 3_600_000), "3h");
        assert_eq!(short_ms(9 * 86_400_000), "9d");
    }
}
