//! The files in a store directory: a missing log or snapshot is refused, leftovers
//! of interrupted compactions are removed, header-only logs without a snapshot are
//! an interrupted creation, and a log this backend did not write is refused and kept.

use std::fs;
use std::path::Path;

use peerbook::backend::Durability;
use peerbook_file::{FileBackend, LoneLog, RecoveryError};

use crate::support::{corrupted, keys, open, put, snapshot_of, store_with_log, HEADER};

#[test]
fn missing_files_are_refused() {
    // snapshot.G without log.G
    let (_tmp, dir, log) = store_with_log(3);
    fs::remove_file(&log).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(&e, RecoveryError::MissingLog { file, .. } if *file == log),
        "{e:?}"
    );

    // log.G with frames but no snapshot at all
    let (_tmp, dir, log) = store_with_log(3);
    fs::remove_file(snapshot_of(&log)).unwrap();
    let name = log.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        FileBackend::lone_logs(&dir).unwrap(),
        [(name, LoneLog::Frames)]
    );
    let e = corrupted(open(&dir));
    assert!(
        matches!(&e, RecoveryError::LostSnapshot { file, snapshot: None, .. } if *file == log),
        "{e:?}"
    );
}

#[test]
fn leftovers_of_interrupted_compactions_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = open(&dir).unwrap();
    put(&b, "a", "1", Durability::Sync);
    b.compact().unwrap();
    put(&b, "b", "2", Durability::Sync);
    let g = b.stats().generation;
    assert_eq!(g, 2);
    drop(b);
    // an old generation whose removal was lost, a compaction that never committed
    fs::write(dir.join("snapshot.1"), b"old").unwrap();
    fs::write(dir.join("log.1"), b"old").unwrap();
    fs::write(dir.join("snapshot.3.tmp"), b"half").unwrap();
    let header = fs::read(dir.join("log.2")).unwrap()[..HEADER].to_vec();
    fs::write(dir.join("log.3"), &header).unwrap();
    fs::write(dir.join("notes.txt"), b"not ours").unwrap();
    let b = open(&dir).unwrap();
    let mut removed = b.recovery().removed_files.clone();
    removed.sort();
    assert_eq!(removed, ["log.1", "log.3", "snapshot.1", "snapshot.3.tmp"]);
    assert_eq!(keys(&b), ["a", "b"]);
    assert!(
        dir.join("notes.txt").exists(),
        "foreign files are left alone"
    );
    drop(b);

    // a later-generation log holding frames cannot come from a crash
    let data = fs::read(dir.join("log.2")).unwrap();
    fs::write(dir.join("log.5"), &data).unwrap();
    let e = corrupted(open(&dir));
    assert!(
        matches!(&e, RecoveryError::LostSnapshot { file, snapshot: Some(s), .. }
            if file.ends_with("log.5") && s == "snapshot.5"),
        "{e:?}"
    );
}

/// The bytes of `log.G` as this backend writes it for generation `g`: its header
/// and no frame (a new store, compacted `g - 1` times, with no write since).
fn header_only_log(g: u64) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let b = open(tmp.path()).unwrap();
    for _ in 1..g {
        b.compact().unwrap();
    }
    assert_eq!(b.stats().generation, g);
    let bytes = fs::read(tmp.path().join(format!("log.{g}"))).unwrap();
    assert_eq!(bytes.len(), HEADER);
    bytes
}

/// The directory's entries with their bytes, sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// What an interrupted creation leaves (FORMAT.md, "Files"): `log.1` renamed into
/// place with its synced header, no `snapshot.1` yet. Open removes logs holding
/// this backend's header and nothing after it (whatever their generation: they
/// hold nothing) and creates generation 1.
#[test]
fn header_only_logs_without_a_snapshot_are_an_interrupted_creation() {
    for names in [&["log.1"][..], &["log.7"], &["log.1", "log.2"]] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("book");
        fs::create_dir_all(&dir).unwrap();
        for name in names {
            let g = name.strip_prefix("log.").unwrap().parse().unwrap();
            fs::write(dir.join(name), header_only_log(g)).unwrap();
        }
        let judged: Vec<_> = names
            .iter()
            .map(|n| (n.to_string(), LoneLog::HeaderOnly))
            .collect();
        assert_eq!(FileBackend::lone_logs(&dir).unwrap(), judged);
        let b = open(&dir).unwrap_or_else(|e| panic!("open over {names:?}: {e}"));
        put(&b, "k", "v", Durability::Sync);
        drop(b);
        let b = open(&dir).unwrap_or_else(|e| panic!("reopen over {names:?}: {e}"));
        assert_eq!(keys(&b), vec!["k".to_string()], "{names:?}");
    }
}

/// A log whose bytes are not a log header this backend writes (an empty file, a
/// user's short file, a prefix of the magic, a header of a newer format) is not
/// the backend's, whatever its name: with no snapshot, or above the store's
/// generation, open refuses the directory (`Corrupted`, a `RecoveryError::Header`
/// naming the file), removes nothing and writes no store. An empty `log.N` is
/// never what a creation leaves: `log.G` gets its name only once its header is
/// synced (FORMAT.md).
#[test]
fn a_log_this_backend_did_not_write_is_refused_and_kept() {
    let mut newer = header_only_log(1);
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    let contents: [(&str, Vec<u8>); 5] = [
        ("empty", Vec::new()),
        ("text", b"rotated at midnight\n".to_vec()),
        ("40 bytes of text", vec![b'x'; HEADER]),
        ("a prefix of the magic", b"PBOOK".to_vec()),
        ("a newer format", newer),
    ];
    for (what, bytes) in &contents {
        for name in ["log.1", "log.7"] {
            // alone: no store is made
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("app");
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(name), bytes).unwrap();
            assert_eq!(
                FileBackend::lone_logs(&dir).unwrap(),
                [(name.to_string(), LoneLog::NotOurs)],
                "{what} {name}"
            );
            let e = corrupted(open(&dir));
            assert!(
                matches!(&e, RecoveryError::Header { file, .. } if *file == dir.join(name)),
                "{what} {name}: {e:?}"
            );
            // not even a LOCK: the refused open removes the one it created
            assert_eq!(
                files(&dir),
                [(name.to_string(), bytes.clone())],
                "{what} {name}"
            );
        }
        // above a store's generation
        let (_tmp, dir, _log) = store_with_log(2);
        let before = files(&dir);
        fs::write(dir.join("log.9"), bytes).unwrap();
        assert_eq!(
            FileBackend::lone_logs(&dir).unwrap(),
            [("log.9".to_string(), LoneLog::NotOurs)],
            "{what}"
        );
        let e = corrupted(open(&dir));
        assert!(
            matches!(&e, RecoveryError::Header { file, .. } if *file == dir.join("log.9")),
            "{what} log.9: {e:?}"
        );
        let mut after = files(&dir);
        after.retain(|(n, _)| n != "log.9");
        assert_eq!(after, before, "{what}: the store is untouched");
        assert_eq!(fs::read(dir.join("log.9")).unwrap(), *bytes, "{what}");
        fs::remove_file(dir.join("log.9")).unwrap();
        assert_eq!(keys(&open(&dir).unwrap()), ["k00", "k01"], "{what}");
    }
}
