//! File naming of a store directory (FORMAT.md, "Files"): the `LOCK` file,
//! `snapshot.G`, `log.G`, their `.tmp` forms, and [`classify`] of a directory entry.

/// The lock file, held with an exclusive advisory lock while a backend is open.
pub(crate) const LOCK_FILE: &str = "LOCK";

pub(crate) fn snapshot_name(generation: u64) -> String {
    format!("snapshot.{generation}")
}

pub(crate) fn log_name(generation: u64) -> String {
    format!("log.{generation}")
}

/// The temporary name of `name` while a compaction writes it.
pub(crate) fn temp_name(name: &str) -> String {
    format!("{name}.tmp")
}

/// What a directory entry is to the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Snapshot(u64),
    Log(u64),
    Temp,
    Other,
}

/// What a directory entry named `name` is: a generation's file, a temporary, or
/// something the backend leaves alone.
pub(crate) fn classify(name: &str) -> Entry {
    fn generation(digits: &str) -> Option<u64> {
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if canonical {
            digits.parse().ok()
        } else {
            None
        }
    }
    if let Some(stem) = name.strip_suffix(".tmp") {
        return match classify(stem) {
            Entry::Snapshot(_) | Entry::Log(_) => Entry::Temp,
            _ => Entry::Other,
        };
    }
    if let Some(g) = name.strip_prefix("snapshot.").and_then(generation) {
        return Entry::Snapshot(g);
    }
    if let Some(g) = name.strip_prefix("log.").and_then(generation) {
        return Entry::Log(g);
    }
    Entry::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify("snapshot.1"), Entry::Snapshot(1));
        assert_eq!(classify("log.18446744073709551615"), Entry::Log(u64::MAX));
        assert_eq!(classify("log.18446744073709551616"), Entry::Other);
        assert_eq!(classify("log.01"), Entry::Other);
        assert_eq!(classify("log.0"), Entry::Log(0));
        assert_eq!(classify("log."), Entry::Other);
        assert_eq!(classify("log.+1"), Entry::Other);
        assert_eq!(classify("snapshot.7.tmp"), Entry::Temp);
        assert_eq!(classify("notes.tmp"), Entry::Other);
        assert_eq!(classify("LOCK"), Entry::Other);
    }
}
