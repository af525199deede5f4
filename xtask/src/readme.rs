//! `cargo xtask check-readme` (a CI step): the rules README.md keeps.
//!
//! 1. It shows exactly the two set-up commands [`README_COMMANDS`] (lines starting with
//!    `cargo xtask `), and this tool offers them.
//! 2. No heading appears twice (same text, whatever the level; headings inside fenced
//!    code blocks do not count).
//! 3. A **measured table** names its run. A markdown table is measured when its header
//!    names a time or median column (`time`, `median`, `took`, `duration`) or one of
//!    its body cells is a number with a time unit (`3.02 us`, `534 ns`, `19.47 ms`,
//!    `1.2 s`, `21 min`). Between the previous heading (or table) and the table there
//!    must be a line naming the run: it contains `Measured by` and a date `YYYY-MM-DD`.

use crate::root;

/// The commands README.md must show, exactly: the main job and the tests.
pub const README_COMMANDS: [&str; 2] = ["cargo xtask bench", "cargo xtask ci"];

/// `cargo xtask check-readme`: README.md keeps every rule of this module.
pub fn check_readme() -> Result<(), String> {
    let text =
        std::fs::read_to_string(root().join("README.md")).map_err(|e| format!("README.md: {e}"))?;
    check_text(&text).map_err(|e| format!("README.md: {e}"))?;
    for cmd in README_COMMANDS {
        let sub = cmd.rsplit(' ').next().unwrap_or_default();
        if !crate::usage().contains(&format!("  {sub} ")) {
            return Err(format!("xtask does not offer `{cmd}`"));
        }
    }
    Ok(())
}

/// Every rule on one README's text; the error names the rule and the line.
pub fn check_text(text: &str) -> Result<(), String> {
    check_commands(text)?;
    let lines = prose_lines(text);
    check_headings(&lines)?;
    check_tables(&lines)
}

fn check_commands(text: &str) -> Result<(), String> {
    let mut shown: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cargo xtask "))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    shown.sort();
    shown.dedup();
    let expected: Vec<String> = README_COMMANDS.iter().map(|s| s.to_string()).collect();
    if shown != expected {
        return Err(format!(
            "shows {shown:?} as commands; it must show exactly {expected:?}"
        ));
    }
    Ok(())
}

/// The lines outside fenced code blocks, with their 1-based line numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            out.push((i + 1, line));
        }
    }
    out
}

/// The text of a markdown heading line (`## Text` -> `Text`), if it is one.
fn heading(line: &str) -> Option<&str> {
    let hashes = line.len() - line.trim_start_matches('#').len();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    rest.starts_with(' ').then(|| rest.trim())
}

fn check_headings(lines: &[(usize, &str)]) -> Result<(), String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for &(n, line) in lines {
        let Some(text) = heading(line) else {
            continue;
        };
        let key = text.to_lowercase();
        if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
            return Err(format!(
                "heading `{text}` appears twice (lines {first} and {n}): keep one coherent copy"
            ));
        }
        seen.push((key, n));
    }
    Ok(())
}

fn cells(line: &str) -> Vec<&str> {
    line.trim()
        .trim_start_matches('|')
        .trim_end_matches('|')
        .split('|')
        .map(str::trim)
        .collect()
}

fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.starts_with('|') && t.contains('-') && t.chars().all(|c| "|-: ".contains(c))
}

/// Whether a cell holds a number followed by a time unit, as a measured time does.
fn is_time(cell: &str) -> bool {
    let mut words = cell.split_whitespace();
    while let Some(word) = words.next() {
        let is_number = !word.is_empty()
            && word.chars().any(|c| c.is_ascii_digit())
            && word
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ',');
        if is_number {
            if let Some(unit) = words.clone().next() {
                if ["ns", "us", "µs", "ms", "s", "min"].contains(&unit) {
                    return true;
                }
            }
        }
    }
    false
}

fn is_measured(header: &[&str], body: &[Vec<&str>]) -> bool {
    let timed_header = header.iter().any(|h| {
        let h = h.to_lowercase();
        ["time", "median", "took", "duration"].iter().any(|w| {
            h.split(|c: char| !c.is_alphanumeric())
                .any(|word| word == *w)
        })
    });
    timed_header || body.iter().flatten().any(|c| is_time(c))
}

/// Whether a line names a run: `Measured by` and a `YYYY-MM-DD` date.
fn names_run(line: &str) -> bool {
    let has_date = line.as_bytes().windows(10).any(|w| {
        w.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
    });
    line.contains("Measured by") && has_date
}

fn check_tables(lines: &[(usize, &str)]) -> Result<(), String> {
    // lines since the last heading or table: where a table's run must be named
    let mut context_start = 0;
    let mut i = 0;
    while i < lines.len() {
        let (n, line) = lines[i];
        if heading(line).is_some() {
            context_start = i;
            i += 1;
            continue;
        }
        let starts_table = line.trim_start().starts_with('|')
            && lines.get(i + 1).is_some_and(|(_, l)| is_separator(l));
        if !starts_table {
            i += 1;
            continue;
        }
        let header = cells(line);
        let mut end = i + 2;
        while end < lines.len() && lines[end].1.trim_start().starts_with('|') {
            end += 1;
        }
        let body: Vec<Vec<&str>> = lines[i + 2..end].iter().map(|(_, l)| cells(l)).collect();
        if is_measured(&header, &body) && !lines[context_start..i].iter().any(|(_, l)| names_run(l))
        {
            return Err(format!(
                "the measured table at line {n} does not name its run: precede it with a line \
                 saying `Measured by <command> on <YYYY-MM-DD> ...` (mode, machine)"
            ));
        }
        context_start = end;
        i = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# peerbook\n\n## Use it\n\n```sh\ncargo xtask bench\ncargo xtask ci\n# a comment, not a heading\n```\n\n\
## Choosing a backend\n\nMeasured by `cargo xtask bench --quick` on 2026-11-24 08:06 UTC, 2 cores.\n\n\
| backend | get_peer | disk |\n|---|---:|---:|\n| lmdb | 3.09 us | 4219 B |\n\n\
## Layout\n\n| crate | what |\n|---|---|\n| peerbook | core |\n";

    #[test]
    fn a_coherent_readme_passes() {
        assert_eq!(check_text(GOOD), Ok(()));
    }

    #[test]
    fn a_duplicated_heading_fails() {
        let twice = format!("{GOOD}\n## Choosing a backend\n\nagain, disagreeing\n");
        let err = check_text(&twice).unwrap_err();
        assert!(err.contains("`Choosing a backend` appears twice"), "{err}");
        // the level does not matter
        let other_level = format!("{GOOD}\n### Layout\n");
        assert!(check_text(&other_level).is_err());
    }

    #[test]
    fn a_measured_table_without_its_run_fails() {
        let unnamed = GOOD.replace(
            "Measured by `cargo xtask bench --quick` on 2026-11-24 08:06 UTC, 2 cores.",
            "Some numbers.",
        );
        let err = check_text(&unnamed).unwrap_err();
        assert!(err.contains("does not name its run"), "{err}");
        // a date is part of naming the run
        let undated = GOOD.replace("on 2026-11-24 08:06 UTC", "recently");
        assert!(check_text(&undated).is_err());
        // the run named above an earlier heading does not count for this table
        let elsewhere = unnamed.replace(
            "## Use it\n",
            "## Use it\n\nMeasured by `cargo xtask bench` on 2026-11-20.\n",
        );
        assert!(check_text(&elsewhere).is_err());
        // a time or median column makes a table measured even without units
        let median = GOOD.replace(
            "Measured by `cargo xtask bench --quick` on 2026-11-24 08:06 UTC, 2 cores.\n\n",
            "",
        );
        let median = median.replace(
            "| backend | get_peer | disk |",
            "| backend | median | disk |",
        );
        assert!(check_text(&median).is_err());
    }

    #[test]
    fn the_two_commands_and_only_them() {
        assert!(check_text(&GOOD.replace("cargo xtask ci\n", "")).is_err());
        assert!(check_text(
            &GOOD.replace("cargo xtask ci\n", "cargo xtask ci\ncargo xtask long\n")
        )
        .is_err());
    }

    #[test]
    fn times_are_numbers_with_units() {
        for yes in [
            "3.02 us",
            "534 ns",
            "19.47 ms",
            "1.2 s",
            "21 min",
            "about 5 ms",
        ] {
            assert!(is_time(yes), "{yes}");
        }
        for no in ["4219 B", "n/a", "0.17x", "us", "2 cores", "v1 s2"] {
            assert!(!is_time(no), "{no}");
        }
    }

    #[test]
    fn the_project_readme_passes() {
        let text = std::fs::read_to_string(root().join("README.md")).unwrap();
        assert_eq!(check_text(&text), Ok(()));
    }
}
