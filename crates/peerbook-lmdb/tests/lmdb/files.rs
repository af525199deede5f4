//! The files an LMDB book makes: the directory and its files at open, `data.mdb`
//! rewritten by clear (and a stale copy of it removed), and the `creating/` scratch
//! directory of an interrupted creation (removed) or of someone else (kept).

use std::path::Path;

use peerbook::backend::{Backend, BackendError, Direction, Durability, Space, WriteBatch};
use peerbook_lmdb::{LmdbBackend, LmdbOptions};

use crate::support::{scan_all, small_map, value_for};

#[test]
fn open_creates_the_directory_and_reports_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a").join("b").join("book");
    let b = LmdbBackend::open(&path, LmdbOptions::default()).unwrap();
    assert!(path.is_dir());
    assert_eq!(b.path(), path.as_path());
    assert_eq!(b.engine_name(), "lmdb");
    assert_eq!(b.options(), &LmdbOptions::default());
    for file in ["data.mdb", "lock.mdb", "LOCK"] {
        assert!(path.join(file).exists(), "{file} exists");
    }
    let empty = b.disk_usage().unwrap();
    let mut batch = WriteBatch::new();
    for i in 0u32..256 {
        batch.put(Space::Peers, i.to_be_bytes().to_vec(), value_for(i, 4096));
    }
    b.write(batch, Durability::Sync).unwrap();
    let full = b.disk_usage().unwrap();
    assert!(
        full >= empty + 1024 * 1024,
        "disk usage grows with the data: {empty} -> {full}"
    );
    assert!(format!("{b:?}").contains("LmdbBackend"));
}

/// Clear rewrites `data.mdb` from a compacted copy: the file shrinks back, the
/// backend keeps working on the new file (also after growing again), and a copy
/// left by a crash before its rename is removed at open with the book intact.
#[test]
fn clear_rewrites_the_data_file_and_a_stale_copy_is_removed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    let b = LmdbBackend::open(&dir, small_map()).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..2000u32 {
        batch.put(Space::Peers, i.to_be_bytes().to_vec(), value_for(i, 500));
    }
    b.write(batch, Durability::Sync).unwrap();
    let full = std::fs::metadata(dir.join("data.mdb")).unwrap().len();
    #[cfg(unix)]
    let mode = |p: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    };
    #[cfg(unix)]
    let mode_before = mode(&dir.join("data.mdb"));
    b.clear(Durability::Buffered).unwrap();
    let cleared = std::fs::metadata(dir.join("data.mdb")).unwrap().len();
    // The rewritten file is as private as the one it replaces.
    #[cfg(unix)]
    assert_eq!(
        mode(&dir.join("data.mdb")),
        mode_before,
        "data.mdb mode kept"
    );
    assert!(
        cleared < full / 10,
        "data.mdb rewritten ({full} -> {cleared} bytes)"
    );
    assert!(!dir.join("data.mdb.clear").exists());
    for space in Space::ALL {
        assert!(scan_all(&b, space, Direction::Forward).is_empty());
    }
    // the reopened environment takes writes, grows, and clears again
    let mut batch = WriteBatch::new();
    for i in 0..2000u32 {
        batch.put(Space::Meta, i.to_be_bytes().to_vec(), value_for(i, 500));
    }
    b.write(batch, Durability::Sync).unwrap();
    assert_eq!(scan_all(&b, Space::Meta, Direction::Forward).len(), 2000);
    b.clear(Durability::Sync).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"kept".to_vec(), b"value".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    drop(b);

    // a crash between writing the copy and renaming it
    std::fs::write(dir.join("data.mdb.clear"), b"half a copy").unwrap();
    let b = LmdbBackend::open(&dir, small_map()).unwrap();
    assert!(!dir.join("data.mdb.clear").exists(), "stale copy removed");
    assert_eq!(
        b.get(Space::Peers, b"kept").unwrap(),
        Some(b"value".to_vec())
    );
}

/// The directory's entries, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// What a creation cut short leaves in `creating/` is removed at open, beside a
/// book (after the rename: LMDB's `lock.mdb` alone) or without one (before it:
/// `data.mdb` and `lock.mdb`, or nothing yet), and the book opens.
#[test]
fn an_interrupted_creations_scratch_directory_is_removed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    // before the rename: a whole environment in `creating/`, no book
    let dir = tmp.path().join("before");
    let scratch = dir.join("creating");
    std::fs::create_dir_all(&scratch).unwrap();
    // SAFETY: a fresh directory of this test's; nothing else maps its files.
    let env = unsafe { heed::EnvOpenOptions::new().open(&scratch).unwrap() };
    env.prepare_for_closing().wait();
    assert_eq!(listing(&scratch), ["data.mdb", "lock.mdb"]);
    assert!(LmdbBackend::owns_entry(&dir, "creating").unwrap());
    drop(LmdbBackend::open(&dir, small_map()).unwrap());
    assert!(!LmdbBackend::owns_entry(&dir, "creating").unwrap(), "gone");
    assert_eq!(listing(&dir), ["LOCK", "data.mdb", "lock.mdb"]);
    // after the rename: the book, and LMDB's lock file left in `creating/`
    std::fs::create_dir(&scratch).unwrap();
    std::fs::write(scratch.join("lock.mdb"), b"").unwrap();
    let b = LmdbBackend::open(&dir, small_map()).unwrap();
    assert_eq!(listing(&dir), ["LOCK", "data.mdb", "lock.mdb"]);
    let mut batch = WriteBatch::new();
    batch.put(Space::Peers, b"k".to_vec(), b"v".to_vec());
    b.write(batch, Durability::Sync).unwrap();
    drop(b);
    // an empty scratch directory (a cut right after making it)
    std::fs::create_dir(&scratch).unwrap();
    let b = LmdbBackend::open(&dir, small_map()).unwrap();
    assert_eq!(listing(&dir), ["LOCK", "data.mdb", "lock.mdb"]);
    assert_eq!(b.get(Space::Peers, b"k").unwrap(), Some(b"v".to_vec()));
}

/// A `creating` that is not what a creation leaves (a directory holding other
/// files, a plain file) is never removed: beside a book the book opens and it
/// stays; without one the open is refused (`Io`, `AlreadyExists`) and nothing
/// of it goes.
#[test]
fn a_creating_entry_peerbook_did_not_make_is_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let theirs = |dir: &Path, as_dir: bool| {
        let creating = dir.join("creating");
        if as_dir {
            std::fs::create_dir_all(&creating).unwrap();
            std::fs::write(creating.join("notes.txt"), b"mine").unwrap();
            // a name LMDB uses, among the user's files: not removed either
            std::fs::write(creating.join("lock.mdb"), b"mine too").unwrap();
        } else {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(&creating, b"mine").unwrap();
        }
    };
    let intact = |dir: &Path, as_dir: bool| {
        let creating = dir.join("creating");
        if as_dir {
            assert_eq!(listing(&creating), ["lock.mdb", "notes.txt"]);
            assert_eq!(std::fs::read(creating.join("notes.txt")).unwrap(), b"mine");
            assert_eq!(
                std::fs::read(creating.join("lock.mdb")).unwrap(),
                b"mine too"
            );
        } else {
            assert_eq!(std::fs::read(&creating).unwrap(), b"mine");
        }
    };
    for as_dir in [true, false] {
        // beside a book
        let dir = tmp.path().join(format!("book-{as_dir}"));
        let b = LmdbBackend::open(&dir, small_map()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Space::Peers, b"k".to_vec(), b"v".to_vec());
        b.write(batch, Durability::Sync).unwrap();
        drop(b);
        theirs(&dir, as_dir);
        assert!(!LmdbBackend::owns_entry(&dir, "creating").unwrap());
        assert!(!LmdbBackend::owns_file("creating"));
        let b = LmdbBackend::open(&dir, small_map())
            .unwrap_or_else(|e| panic!("a book beside a foreign `creating` (dir: {as_dir}): {e}"));
        assert_eq!(b.get(Space::Peers, b"k").unwrap(), Some(b"v".to_vec()));
        drop(b);
        intact(&dir, as_dir);
        // alone: no book is made over it
        let dir = tmp.path().join(format!("alone-{as_dir}"));
        theirs(&dir, as_dir);
        match LmdbBackend::open(&dir, small_map()) {
            Err(BackendError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                assert!(e.to_string().contains("creating"), "{e}")
            }
            other => panic!("a foreign `creating` alone (dir: {as_dir}): {other:?}"),
        }
        intact(&dir, as_dir);
        assert!(!dir.join("data.mdb").exists());
    }
}
