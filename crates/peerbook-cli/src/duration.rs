//! Durations on the command line: a whole number and one unit, `90s`, `15m`, `24h`, `7d`.

use std::time::Duration;

/// Parse `<number><unit>` with unit `s`, `m`, `h` or `d` (no spaces, no fractions).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit; write e.g. 90s, 15m, 24h or 7d"))?;
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{text}` does not start with a number; write e.g. 90s, 15m, 24h or 7d"
        ));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{digits}` is too large a number"))?;
    let scale: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; use s, m, h or d (e.g. 90s, 15m, 24h, 7d)"
            ))
        }
    };
    let secs = n
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too long a duration"))?;
    Ok(Duration::from_secs(secs))
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
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "s",
            "15",
            "15x",
            "1.5h",
            "-1d",
            "1 d",
            "1dd",
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
