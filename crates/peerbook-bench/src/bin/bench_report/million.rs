//! The report's million-peer section: open, reads, queries, disk and peak RSS of
//! every backend on its 1M book (`--full`).

#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use peerbook_bench as common;
use std::fmt::Write as _;

impl Report {
    /// The million-peer section: open, reads, queries, disk and peak RSS per backend.
    pub(crate) fn million(&self, md: &mut String) {
        let n = 1_000_000;
        let _ = writeln!(md, "## A million peers\n");
        if !self.sizes.contains(&n) {
            md.push_str(
                "_Not run in this mode: `cargo xtask bench --full` adds the 1M book (open, \
                 get, candidates, queries, disk and peak RSS for every backend)._\n\n",
            );
            return;
        }
        let t = common::Mode::Full.timing(n);
        let _ = writeln!(
            md,
            "The 1M books are built once per backend and cached under `books/`; their fast \
             benchmarks take {} samples of {:.1} s (smaller books: the default timing), and the \
             whole-book workloads (export, import, cleanup) stop at 100k. Peak RSS: the memory \
             probe (below) on the 1M book.\n",
            t.sample_size,
            t.measurement.as_secs_f64()
        );
        let _ = writeln!(
            md,
            "| backend | open | get_peer | candidates (24 h, 5) | query last_seen (10) | query quality (5) | disk per peer | disk total | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for name in BOOKS.iter().chain(["sqlite"].iter()) {
            let cell = |group: &str| self.median_cell(group, name, n);
            let (per, total) = match (self.bytes_per_peer(name, n), self.fixture(name, n)) {
                (Some((d, _, _)), Some(f)) if *name != "memory" => (
                    format!("{d:.0} B"),
                    fmt_bytes(f["dir_bytes"].as_f64().unwrap_or(f64::NAN)),
                ),
                _ => ("n/a (RAM)".into(), "n/a".into()),
            };
            let rss = self
                .probe(name)
                .filter(|p| p["peers"].as_u64() == Some(n as u64))
                .and_then(|p| p["hwm_kib"].as_f64())
                .map_or("-".into(), |k| fmt_bytes(k * 1024.0));
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} | {} | {} | {per} | {total} | {rss} |",
                cell("open"),
                cell("get_peer"),
                cell("get_reconnection_candidates"),
                cell("query_peers_last_seen"),
                cell("query_peers_quality"),
            );
        }
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use crate::targets::tests::{report, verdict};

    #[test]
    fn the_million_section_shows_every_backend_at_1m() {
        let mut r = report(
            &[
                ("open", "file", 1_000_000, 800e6),
                ("get_peer", "lmdb", 1_000_000, 5_000.0),
                ("query_peers_quality", "sqlite", 1_000_000, 70_000.0),
            ],
            true,
        );
        let mut md = String::new();
        r.million(&mut md);
        assert!(md.contains("Not run in this mode"), "{md}");
        r.sizes.push(1_000_000);
        let mut md = String::new();
        r.million(&mut md);
        for name in ["memory", "lmdb", "rocksdb", "file", "sqlite"] {
            assert!(
                md.contains(&format!("\n| {name} | ")),
                "{name} row in\n{md}"
            );
        }
        assert!(md.contains("| file | 800.00 ms |"), "{md}");
        assert!(md.contains("| lmdb | - | 5.00 µs |"), "{md}");
        let mut md = String::new();
        r.targets(&mut md);
        assert_eq!(verdict(&md, "open of a 1M book", "file"), "MET");
    }
}
