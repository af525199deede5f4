//! The interleaved concurrent writers (`data/writers-interleaved-<backend>-<n>.json`,
//! written by the peerbook bench right after its criterion writer groups): rounds of
//! 1 writer and 8 writers (order alternating by round) on a fresh copy of the Sync
//! book, and beside each round a round of the group floor (`group_floor` in the same
//! file: the store's `update_last_seen` batches replayed single-threaded through the
//! backend's own write on another fresh copy of the book, one synced write per batch
//! against 8 joined per synced write). The report's 8-writers target is the median
//! of the writers' per-round ratios, each from two rates measured seconds apart,
//! unless the rounds disagree (then not judged); when it is missed, the bound the
//! floor sets on them (its 8-joined rate over the store's 1-writer rate, per round)
//! tells a backend that provably blocks 4x (blocked) from the store's shortfall.

#[allow(unused_imports)]
use crate::*;
#[allow(unused_imports)]
use peerbook_bench as common;
use std::fmt::Write as _;

use crate::verdict::{UpperBound, Verdict};
use common::group_floor::FloorRounds;
use common::{size_label, Interleaved, INTERLEAVED_THREADS};

/// How far past the writer ratio (8 writers over 1) a round may go and still be
/// judged: 8 writers share each sync and build their next writes while it runs,
/// where one writer does both in turn, so a round passes 8x by the CPU part of a
/// write (about 8 x (CPU + sync) / sync: 9-10x with a 130 us fdatasync). Far
/// beyond that, only a disk that changed speed between the two sides explains it
/// (the 2026-12-02 12:09 full run's 1M RocksDB rounds: 14.2x to 42.9x).
const ROUND_BOUND: f64 = 1.5;

/// The speed-up the 8-writers target asks for.
const GOAL: f64 = 4.0;

/// One backend's interleaved writers, and the group floor measured beside them,
/// or why there is none to judge them against (none in a file written before the
/// floor was, one there but unreadable, or one that does not match the writers:
/// [`usable_floor`]); whatever the floor, the result is NOT JUDGED when the
/// store's rounds disagree.
pub(crate) struct WritersRun {
    pub(crate) n: usize,
    pub(crate) run: Interleaved,
    pub(crate) floor: Result<FloorRounds, String>,
}

impl WritersRun {
    /// Per round, the most the store's 8 writers can gain over its 1 writer by
    /// `floor` (its usable floor, `self.floor`): the
    /// floor's rate of 8 batches joined per synced write over the store's
    /// 1-writer rate of the same round. With 8 writers a group holds at most 8
    /// batches, and no group write of them is faster than the floor's write of 8
    /// joined (the same batches through the same backend write, nothing else), so
    /// the store's 8-writer rate is at most the floor's 8-joined rate. None when
    /// the two have different counts of rounds: then no bound, the plain verdict.
    fn bounds(&self, floor: &FloorRounds) -> Vec<f64> {
        common::per_round(&floor.joined, &self.run.one).unwrap_or_default()
    }
}

/// The group floor of a writers file `v`, when it can judge the writers' rounds
/// `run`: readable ([`FloorRounds::from_json`]), `k` joined per write the count
/// of the 8 writers, and one round beside each of theirs (its rounds are paired
/// with theirs); else why it is not used (then the target is judged without it):
/// none in the file (written before the floor was), or one there but unreadable
/// (a damaged file, not a run without a floor), or one that does not match.
fn usable_floor(v: &serde_json::Value, run: &Interleaved) -> Result<FloorRounds, String> {
    // A `null` floor is a run without one (a writer that writes the key always),
    // not a damaged one.
    let floor = v
        .get("group_floor")
        .filter(|f| !f.is_null())
        .ok_or("no group floor in this run")?;
    let floor = FloorRounds::from_json(floor).ok_or("group floor unreadable: not used")?;
    let [_, eight] = INTERLEAVED_THREADS;
    if floor.k != eight {
        return Err(format!(
            "group floor of {} joined per write, not the {eight} writers: not used",
            floor.k
        ));
    }
    if floor.rounds() != run.rounds() {
        return Err(format!(
            "group floor of {} rounds, not the writers' {}: not used",
            floor.rounds(),
            run.rounds()
        ));
    }
    Ok(floor)
}

impl Report {
    /// The interleaved writers of `backend` at the largest size of this run whose
    /// file was written during this run (not before the peerbook bench started; no
    /// record of that start, no row) and says it holds `backend` at that size; its
    /// group floor when the file holds a readable one.
    pub(crate) fn interleaved(&self, backend: &str) -> Option<WritersRun> {
        let since = self
            .runs
            .iter()
            .find(|(name, _)| name == "peerbook")
            .and_then(|(_, v)| v["started"].as_u64())?;
        self.sizes.iter().rev().find_map(|&n| {
            let stem = format!("writers-interleaved-{backend}-{n}");
            let v = run_data(&self.out, &stem, backend, n, Written::Since(since))?;
            let run = Interleaved::from_json(&v)?;
            let floor = usable_floor(&v, &run);
            Some(WritersRun { n, run, floor })
        })
    }

    /// The measured cell of the 8-writers target and its verdict
    /// ([`Verdict::against_bound`]): met when the median of the writers'
    /// per-round ratios reaches 4x; else blocked by the backend when the median of
    /// the per-round bounds ([`WritersRun::bounds`]) times the noise a round may
    /// pass it by ([`crate::verdict::PAST_BOUND`]) is below 4x, in rounds that
    /// agree, not met (ours) when not; not judged when the writers' rounds
    /// disagree (a round above [`ROUND_BOUND`] x 8, or rounds more than 2x apart:
    /// [`crate::verdict::rounds_disagree`]); or why there is none.
    pub(crate) fn interleaved_target(&self, backend: &str) -> Result<(String, Verdict), String> {
        let w = self
            .interleaved(backend)
            .ok_or("no interleaved writers in this run")?;
        let ratio = w.run.ratio_median();
        let [one, eight] = INTERLEAVED_THREADS;
        let bound = ROUND_BOUND * (eight / one) as f64;
        let mut measured = format!(
            "8 writers {:.0} vs 1 writer {:.0} ops/s (medians); median per-round ratio {} \
             at {} (interleaved, {} rounds)",
            common::median(&w.run.eight),
            common::median(&w.run.one),
            fmt_ratio(ratio),
            size_label(w.n),
            w.run.rounds()
        );
        let upper = match &w.floor {
            Ok(f) => {
                let rounds = w.bounds(f);
                let of = format!(
                    "group floor {}-joined {:.0}/s vs the store's 1 writer {:.0}/s",
                    f.k,
                    common::median(&f.joined),
                    common::median(&w.run.one)
                );
                let _ = write!(
                    measured,
                    "; group floor ({} joined per synced write / 1 each) {} (median of {} \
                     rounds beside them); bound on 8 / 1: {} (median per round of the \
                     floor's {}-joined rate over the store's 1-writer rate; medians: {of})",
                    f.k,
                    fmt_ratio(f.ratio_median()),
                    f.rounds(),
                    fmt_ratio(common::median(&rounds)),
                    f.k
                );
                Some(UpperBound { rounds, of })
            }
            Err(why) => {
                let _ = write!(measured, "; {why}");
                None
            }
        };
        Ok((
            measured,
            Verdict::against_bound(&w.run.ratios(), upper, bound, GOAL),
        ))
    }

    /// The interleaved rounds of every disk backend and their group floors, after
    /// the criterion writers table.
    pub(crate) fn interleaved_table(&self, md: &mut String) {
        md.push_str(
            "Interleaved (the Targets row): rounds of 1 writer and 8 writers (order alternating), the same \
             writes per side, on a fresh copy of the same book after the groups above; each \
             round's ratio compares two rates measured seconds apart, where the `8 / 1` column \
             above divides criterion medians measured a minute apart. Beside each round (after \
             it, then before it, alternating), a round of the group floor on another fresh copy \
             of the same book: the store's `update_last_seen` batches on distinct peers, \
             replayed by one thread through the backend's own write, 8 joined per synced write \
             over one synced write each (see Method). Its 8-joined rate over the store's \
             1-writer rate of the same round bounds that round's 8 / 1 from above (`bound`: \
             see Method).\n\n\
             | backend | peers | rounds | writes per side | 1 writer (median) | 8 writers (median) | per-round 8 / 1 | median 8 / 1 | floor batches per round | floor 8 joined (median) | floor median 8 / 1 | bound per round | bound (median) |\n\
             |---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|\n",
        );
        let mut any = false;
        for backend in ["lmdb", "rocksdb", "file"] {
            let Some(w) = self.interleaved(backend) else {
                continue;
            };
            any = true;
            let ratios = |r: Vec<f64>| -> String {
                r.into_iter().map(fmt_ratio).collect::<Vec<_>>().join(", ")
            };
            let floor = match &w.floor {
                Ok(f) => {
                    let bounds = w.bounds(f);
                    let median_bound = fmt_ratio(common::median(&bounds));
                    format!(
                        "{} | {:.0} /s | {} | {} | {median_bound}",
                        f.batches,
                        common::median(&f.joined),
                        fmt_ratio(f.ratio_median()),
                        ratios(bounds),
                    )
                }
                Err(_) => "- | - | - | - | -".into(),
            };
            let _ = writeln!(
                md,
                "| {backend} | {} | {} | {} | {:.0} /s | {:.0} /s | {} | {} | {floor} |",
                size_label(w.n),
                w.run.rounds(),
                w.run.ops,
                common::median(&w.run.one),
                common::median(&w.run.eight),
                ratios(w.run.ratios()),
                fmt_ratio(w.run.ratio_median()),
            );
        }
        if !any {
            md.push_str("| _not run in this run_ | | | | | | | | | | | | |\n");
        }
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn report(out: &std::path::Path, started: u64) -> Report {
        Report {
            out: out.to_path_buf(),
            results: Results::new(),
            sizes: vec![1_000, 10_000],
            mode: "quick".into(),
            fixtures: BTreeMap::new(),
            cleanup: BTreeMap::new(),
            probes: Vec::new(),
            runs: vec![("peerbook".into(), json!({ "started": started }))],
            paired: BTreeMap::new(),
        }
    }

    /// The 8-threads row of `backend` in the Targets table.
    fn row(md: &str, backend: &str) -> String {
        md.lines()
            .find(|l| l.starts_with("| 8 threads") && l.contains(&format!(" | {backend} | ")))
            .unwrap_or_else(|| panic!("no 8 threads row of {backend} in\n{md}"))
            .to_string()
    }

    #[test]
    fn the_writers_target_is_the_median_of_the_interleaved_ratios() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, run: &Interleaved, n: usize, at: u64| {
            let backend = name.split('-').nth(2).expect("backend in the name");
            common::write_data(dir.path(), name, &run.to_json(backend, n, at));
        };
        // Ratios 7x, 4.5x, 3.875x: median 4.5x (met), while the ratio of the medians
        // is 1550 / 400 = 3.875x (not met).
        let file = Interleaved {
            ops: 500,
            one: vec![100.0, 1000.0, 400.0],
            eight: vec![700.0, 4500.0, 1550.0],
        };
        write("writers-interleaved-file-10000", &file, 10_000, 100);
        // Only the largest size of the run counts: 1k met, 10k not.
        let rocks_1k = Interleaved {
            ops: 500,
            one: vec![100.0; 3],
            eight: vec![800.0; 3],
        };
        let rocks_10k = Interleaved {
            ops: 500,
            one: vec![100.0; 3],
            eight: vec![300.0, 350.0, 500.0],
        };
        write("writers-interleaved-rocksdb-1000", &rocks_1k, 1_000, 100);
        write("writers-interleaved-rocksdb-10000", &rocks_10k, 10_000, 100);
        // Written by an earlier run: not this run's data.
        write("writers-interleaved-lmdb-10000", &rocks_1k, 10_000, 50);

        let r = report(dir.path(), 90);
        let mut md = String::new();
        r.targets(&mut md);
        let file_row = row(&md, "file");
        assert!(file_row.ends_with("| MET |"), "{file_row}");
        assert!(
            file_row.contains("8 writers 1550 vs 1 writer 400 ops/s (medians)")
                && file_row.contains("ratio 4.50x at 10k (interleaved, 3 rounds)"),
            "{file_row}"
        );
        let rocks_row = row(&md, "rocksdb");
        assert!(rocks_row.ends_with("| **NOT MET** |"), "{rocks_row}");
        assert!(rocks_row.contains("3.50x at 10k"), "{rocks_row}");
        // A file without a floor (written before there was one) says so.
        assert!(
            rocks_row.contains("; no group floor in this run"),
            "{rocks_row}"
        );
        let lmdb_row = row(&md, "lmdb");
        assert!(
            lmdb_row.ends_with("| NOT RUN (no interleaved writers in this run) |"),
            "{lmdb_row}"
        );

        let mut md = String::new();
        r.interleaved_table(&mut md);
        assert!(
            md.contains(
                "| file | 10k | 3 | 500 | 400 /s | 1550 /s | 7.00x, 4.50x, 3.88x | 4.50x |"
            ),
            "{md}"
        );
        assert!(!md.contains("| lmdb |"), "{md}");
    }

    /// Rounds that disagree judge nothing: a round above 12x (far beyond what 8
    /// writers reach over 1: the disk changed speed within the round), or rounds
    /// more than 2x apart, make the row NOT JUDGED, with the reason, whatever the
    /// median says.
    #[test]
    fn disturbed_writer_rounds_are_not_judged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |backend: &str, one: Vec<f64>, eight: Vec<f64>| {
            let run = Interleaved {
                ops: 500,
                one,
                eight,
            };
            let name = format!("writers-interleaved-{backend}-10000");
            common::write_data(dir.path(), &name, &run.to_json(backend, 10_000, 100));
        };
        // The full run's RocksDB rounds at 1M: median 27.5x, "met".
        let rocks = [30.4, 42.9, 16.5, 27.5, 14.2];
        write(
            "rocksdb",
            vec![100.0; 5],
            rocks.iter().map(|r| r * 100.0).collect(),
        );
        // Within 8x, but 2.3x to 7.9x (the full run's LMDB, median 4.67x).
        write(
            "lmdb",
            vec![100.0; 5],
            vec![230.0, 467.0, 788.0, 500.0, 310.0],
        );
        // Within 8x and 2x: judged (median 4.5x, met).
        write("file", vec![100.0; 3], vec![400.0, 450.0, 790.0]);
        let r = report(dir.path(), 90);
        let mut md = String::new();
        r.targets(&mut md);
        let rocks_row = row(&md, "rocksdb");
        assert!(
            rocks_row.ends_with("| **NOT JUDGED (rounds disagree: a round at 42.9x, above the 12x the workload can reach)** |"),
            "{rocks_row}"
        );
        assert!(
            rocks_row.contains("median per-round ratio 27.5x"),
            "{rocks_row}"
        );
        let lmdb_row = row(&md, "lmdb");
        assert!(
            lmdb_row.ends_with("| **NOT JUDGED (rounds disagree: rounds from 2.30x to 7.88x, more than 2x apart)** |"),
            "{lmdb_row}"
        );
        assert!(row(&md, "file").ends_with("| MET |"), "{md}");
    }

    #[test]
    fn without_the_file_the_writers_target_is_not_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = report(dir.path(), 0);
        let mut md = String::new();
        r.targets(&mut md);
        for backend in ["lmdb", "rocksdb", "file"] {
            assert!(row(&md, backend).contains("NOT RUN"), "{md}");
        }
        // A damaged file (of this run) is missing data, not a panic; so is a file
        // whose rates cannot be (a zero rate would make an infinite ratio: MET), one
        // holding another backend or size than its name says, and one dated at the
        // end of time.
        let good = json!({"backend": "file", "peers": 10_000, "at": 1, "ops": 5,
            "one_per_sec": [1.0], "eight_per_sec": [8.0]});
        let damaged = [
            ("ops", json!("x")),
            ("one_per_sec", json!([0.0])),
            ("eight_per_sec", json!([-8.0])),
            ("backend", json!("lmdb")),
            ("peers", json!(1_000)),
            ("at", json!(u64::MAX)),
        ];
        for (key, bad) in damaged {
            let mut v = good.clone();
            v[key] = bad;
            common::write_data(dir.path(), "writers-interleaved-file-10000", &v);
            let mut md = String::new();
            r.targets(&mut md);
            let file = row(&md, "file");
            let judged = !file.contains("NOT RUN");
            assert_eq!(judged, key == "at", "{key}: {file}");
        }
        // The good file itself is judged (8x: met), so each case above failed on
        // its one damaged field.
        common::write_data(dir.path(), "writers-interleaved-file-10000", &good);
        let mut md = String::new();
        r.targets(&mut md);
        assert!(row(&md, "file").ends_with("| MET |"), "{md}");
        common::write_data(
            dir.path(),
            "writers-interleaved-file-10000",
            &json!({"at": 1}),
        );
        let mut md = String::new();
        r.interleaved_table(&mut md);
        assert!(md.contains("_not run in this run_"), "{md}");
    }

    /// A missed target with its group floor: blocked by the backend when the
    /// bound (the floor's 8-joined rate over the store's 1-writer rate, per round)
    /// is below 4x, ours when it is not, even with the floor's own ratio below 4x
    /// (the store's lone writer pays CPU the floor's does not); a bound whose
    /// rounds disagree proves nothing; a file without a (readable) floor judges
    /// as before.
    #[test]
    fn a_missed_writers_target_is_judged_against_the_group_floor() {
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |backend: &str, eight: Vec<f64>, floor: Option<FloorRounds>| {
            let run = Interleaved {
                ops: 2000,
                one: vec![1000.0; 3],
                eight,
            };
            let mut v = run.to_json(backend, 10_000, 100);
            if let Some(f) = floor {
                v["group_floor"] = f.to_json();
            }
            let name = format!("writers-interleaved-{backend}-10000");
            common::write_data(dir.path(), &name, &v);
        };
        let floor = |one: Vec<f64>, joined: Vec<f64>| FloorRounds {
            k: 8,
            batches: 640,
            one,
            joined,
        };
        // LMDB as the 13:44 full run measured it (2.26x); its floor's 8 joined
        // reach 2.25-2.60 times the store's lone writer, each round above the
        // store's ratio: blocked.
        write(
            "lmdb",
            vec![2200.0, 2260.0, 2300.0],
            Some(floor(vec![1000.0; 3], vec![2250.0, 2400.0, 2600.0])),
        );
        // RocksDB at 3.20x; the floor's own ratio 3.90x is below 4x, but its 8
        // joined reach 4.68x the store's lone writer (slower than the floor's
        // single commits by its CPU): the store's own shortfall.
        write(
            "rocksdb",
            vec![3200.0, 3190.0, 3300.0],
            Some(floor(vec![1200.0; 3], vec![4680.0, 4600.0, 4800.0])),
        );
        // File met (4.5x) under a bound of 3x: met is met.
        write(
            "file",
            vec![4500.0, 4400.0, 4600.0],
            Some(floor(vec![1000.0; 3], vec![3000.0; 3])),
        );
        let r = report(dir.path(), 90);
        let mut md = String::new();
        r.targets(&mut md);
        let lmdb = row(&md, "lmdb");
        assert!(
            lmdb.ends_with(
                "| **BLOCKED (backend: 8 writers can reach at most 2.40x here, 3.00x with the \
                 noise of two rounds (1.25x): group floor 8-joined 2400/s vs the store's 1 \
                 writer 1000/s)** |"
            ),
            "{lmdb}"
        );
        assert!(
            lmdb.contains(
                "median per-round ratio 2.26x at 10k (interleaved, 3 rounds); group floor (8 \
                 joined per synced write / 1 each) 2.40x (median of 3 rounds beside them); \
                 bound on 8 / 1: 2.40x (median per round of the floor's 8-joined rate over \
                 the store's 1-writer rate; medians: group floor 8-joined 2400/s vs the \
                 store's 1 writer 1000/s)"
            ),
            "{lmdb}"
        );
        let rocks = row(&md, "rocksdb");
        assert!(
            rocks.ends_with("| **NOT MET (ours: the backend's group floor allows 4.68x)** |"),
            "{rocks}"
        );
        assert!(rocks.contains("group floor (8 joined per synced write / 1 each) 3.90x"));
        assert!(row(&md, "file").ends_with("| MET |"), "{md}");

        let mut md = String::new();
        r.interleaved_table(&mut md);
        assert!(
            md.contains(
                "| lmdb | 10k | 3 | 2000 | 1000 /s | 2260 /s | 2.20x, 2.26x, 2.30x | 2.26x | 640 | \
                 2400 /s | 2.40x | 2.25x, 2.40x, 2.60x | 2.40x |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| rocksdb | 10k | 3 | 2000 | 1000 /s | 3200 /s | 3.20x, 3.19x, 3.30x | 3.20x | \
                 640 | 4680 /s | 3.90x | 4.68x, 4.60x, 4.80x | 4.68x |"
            ),
            "{md}"
        );

        // The bound's rounds 1.5x to 3.5x apart prove nothing: the miss is ours.
        write(
            "lmdb",
            vec![2200.0, 2260.0, 2300.0],
            Some(floor(vec![1000.0; 3], vec![1500.0, 2400.0, 3500.0])),
        );
        // A damaged floor (k of 0) is not used, and says so (it is not a run
        // without a floor): RocksDB is plainly not met.
        let run = Interleaved {
            ops: 2000,
            one: vec![1000.0; 3],
            eight: vec![3200.0, 3190.0, 3300.0],
        };
        let mut v = run.to_json("rocksdb", 10_000, 100);
        v["group_floor"] = floor(vec![300.0; 3], vec![1500.0; 3]).to_json();
        v["group_floor"]["k"] = json!(0);
        common::write_data(dir.path(), "writers-interleaved-rocksdb-10000", &v);
        let mut md = String::new();
        r.targets(&mut md);
        assert!(
            row(&md, "lmdb").ends_with(
                "| **NOT MET (ours: the backend's group floor allows 2.40x, in rounds that do \
                 not agree: rounds from 1.50x to 3.50x, more than 2x apart)** |"
            ),
            "{md}"
        );
        let rocks = row(&md, "rocksdb");
        assert!(rocks.ends_with("| **NOT MET** |"), "{rocks}");
        assert!(
            rocks.contains("; group floor unreadable: not used"),
            "{rocks}"
        );
        let mut md = String::new();
        r.interleaved_table(&mut md);
        assert!(md.contains("| 3.20x | - | - | - | - | - |"), "{md}");
    }

    /// A floor that does not match the writers (another `k` than their 8, or
    /// another count of rounds than theirs) is not used: the LMDB row its floor
    /// would block is plainly not met, saying why, and the table shows no floor.
    #[test]
    fn a_null_floor_is_no_floor_not_an_unreadable_one() {
        let run = Interleaved {
            ops: 2000,
            one: vec![1000.0; 3],
            eight: vec![2200.0, 2260.0, 2300.0],
        };
        let mut v = run.to_json("lmdb", 10_000, 100);
        v["group_floor"] = serde_json::Value::Null;
        assert_eq!(
            usable_floor(&v, &run).err().as_deref(),
            Some("no group floor in this run")
        );
        v["group_floor"] = json!({"k": 8});
        assert_eq!(
            usable_floor(&v, &run).err().as_deref(),
            Some("group floor unreadable: not used")
        );
    }

    #[test]
    fn a_floor_that_does_not_match_the_writers_is_not_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = report(dir.path(), 90);
        let run = Interleaved {
            ops: 2000,
            one: vec![1000.0; 3],
            eight: vec![2200.0, 2260.0, 2300.0],
        };
        // The LMDB row and table row beside a floor of `k` and `rounds`.
        let judged = |k: usize, rounds: usize| -> (String, String) {
            let floor = FloorRounds {
                k,
                batches: 640,
                one: vec![1000.0; rounds],
                joined: vec![2400.0; rounds],
            };
            let mut v = run.to_json("lmdb", 10_000, 100);
            v["group_floor"] = floor.to_json();
            common::write_data(dir.path(), "writers-interleaved-lmdb-10000", &v);
            let (mut md, mut table) = (String::new(), String::new());
            r.targets(&mut md);
            r.interleaved_table(&mut table);
            let table = table.lines().find(|l| l.starts_with("| lmdb | "));
            (row(&md, "lmdb"), table.expect("a table row").to_string())
        };
        let (used, table) = judged(8, 3);
        assert!(used.contains("BLOCKED"), "{used}");
        assert!(!table.ends_with("| - |"), "{table}");
        let mut cases = vec![(
            judged(4, 3),
            "group floor of 4 joined per write, not the 8 writers: not used".to_string(),
        )];
        for rounds in [2, 4] {
            cases.push((
                judged(8, rounds),
                format!("group floor of {rounds} rounds, not the writers' 3: not used"),
            ));
        }
        for ((lmdb, table), why) in cases {
            assert!(lmdb.ends_with("| **NOT MET** |"), "{lmdb}");
            assert!(lmdb.contains(&format!("; {why}")), "{lmdb}");
            assert!(table.ends_with("| - | - | - | - | - |"), "{table}");
        }
    }
}
