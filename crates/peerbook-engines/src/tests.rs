//! Tests of the parent module (split out to keep files under ~700 lines).

use super::*;

#[test]
fn specs_parse_and_print() {
    #[cfg(feature = "rocksdb")]
    {
        let spec: StoreSpec = "rocks:./peers/".parse().unwrap();
        assert_eq!(spec.engine, Engine::Rocks);
        assert_eq!(spec.path, PathBuf::from("./peers"));
        assert_eq!(spec.to_string(), "rocksdb:./peers");
    }
    assert!(matches!(
        "peers".parse::<StoreSpec>(),
        Err(SpecError::NotASpec(_))
    ));
    assert!(matches!(
        "sqlite:./p".parse::<StoreSpec>(),
        Err(SpecError::UnknownEngine(e)) if e == "sqlite"
    ));
    assert!(matches!(
        "memory:./p".parse::<StoreSpec>(),
        Err(SpecError::UnknownEngine(_))
    ));
    for bad in ["file:", "file:.", "file:..", "file:/"] {
        assert!(
            matches!(bad.parse::<StoreSpec>(), Err(SpecError::BadPath { .. })),
            "{bad}"
        );
    }
    for engine in Engine::ALL {
        assert_eq!(engine.name().parse::<Engine>().unwrap(), engine);
    }
}

/// `.` components, repeated and trailing slashes are dropped, so the path's last
/// component names the store directory (the CLI puts its key file beside it as
/// `<last component>.key`); a path whose last component is `..` (or the root)
/// names no directory of its own and is refused.
#[test]
fn spec_paths_are_normalized_to_end_in_the_directory_name() {
    for (spec, path) in [
        ("file:./peers/.", "./peers"),
        ("file:./peers/./", "./peers"),
        ("file:peers//x/./", "peers/x"),
        ("file:/srv/./peers//", "/srv/peers"),
        ("file:../peers", "../peers"),
        ("file:../../peers", "../../peers"),
        ("file:/../peers", "/../peers"),
    ] {
        let parsed: StoreSpec = spec.parse().unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(parsed.path, PathBuf::from(path), "{spec}");
        assert_eq!(parsed.to_string(), format!("file:{path}"), "{spec}");
    }
    for bad in [
        "file:./peers/..",
        "file:peers/../",
        "file:./.",
        "file://",
        "file:./",
    ] {
        assert!(
            matches!(bad.parse::<StoreSpec>(), Err(SpecError::BadPath { .. })),
            "{bad}"
        );
    }
    // A `..` after a name: `x/../peers` is not `./peers` when x is a link, and
    // creating a missing x would make a directory the store is not in.
    for bad in ["file:./a/../peers", "file:a/../peers", "file:../a/../b/c"] {
        assert!(
            matches!(bad.parse::<StoreSpec>(), Err(SpecError::ParentDir { .. })),
            "{bad}"
        );
    }
}

#[test]
fn every_compiled_engine_opens_and_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    for engine in Engine::available() {
        let dir = tmp.path().join(engine.name());
        let b = engine.open(&dir).unwrap();
        assert_eq!(b.engine_name(), engine.name());
        let mut batch = peerbook::backend::WriteBatch::new();
        batch.put(peerbook::backend::Space::Meta, b"k".to_vec(), b"v".to_vec());
        b.write(batch, peerbook::backend::Durability::Sync).unwrap();
        drop(b);
        let b = engine.open(&dir).unwrap();
        assert_eq!(
            b.get(peerbook::backend::Space::Meta, b"k").unwrap(),
            Some(b"v".to_vec()),
            "{engine}"
        );
    }
    assert_eq!(
        Engine::Memory.open(tmp.path()).unwrap().engine_name(),
        "memory"
    );
}

/// A store each engine made is [`DirContents::Store`] to it, every file in it
/// one the engine owns, and to the other engines a foreign directory naming it.
#[test]
fn probe_tells_stores_leftovers_and_foreign_directories_apart() {
    let tmp = tempfile::tempdir().unwrap();
    for engine in Engine::available() {
        let dir = tmp.path().join(engine.name());
        assert_eq!(engine.probe(&dir).unwrap(), DirContents::Nothing);
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(engine.probe(&dir).unwrap(), DirContents::Nothing);
        std::fs::write(dir.join("LOCK"), b"").unwrap();
        assert_eq!(engine.probe(&dir).unwrap(), DirContents::Leftovers);
        let b = engine.open(&dir).unwrap();
        let mut batch = peerbook::backend::WriteBatch::new();
        batch.put(peerbook::backend::Space::Meta, b"k".to_vec(), b"v".to_vec());
        b.write(batch, peerbook::backend::Durability::Sync).unwrap();
        drop(b);
        assert_eq!(engine.probe(&dir).unwrap(), DirContents::Store, "{engine}");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(engine.owns_file(&name), "{engine} makes {name}");
        }
        for other in Engine::ON_DISK.into_iter().filter(|e| *e != engine) {
            assert!(
                matches!(
                    other.probe(&dir).unwrap(),
                    DirContents::Foreign { other: Some(e), unexpected } if e == engine && !unexpected.is_empty()
                ),
                "{engine} store probed as {other}"
            );
        }
        std::fs::write(tmp.path().join("notes.txt"), b"").unwrap();
        assert!(matches!(
            engine.probe(tmp.path()).unwrap(),
            DirContents::Foreign { other: None, .. }
        ));
    }
    // Removing a store leaves what the engine did not make, and the directory
    // only then.
    for engine in Engine::available() {
        let dir = tmp.path().join(engine.name());
        std::fs::create_dir(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub").join("LOCK"), b"").unwrap();
        std::fs::write(dir.join("notes.txt"), b"").unwrap();
        let left = engine.remove_store(&dir).unwrap();
        assert_eq!(left, ["notes.txt", "sub"], "{engine}");
        assert_eq!(
            engine.probe(&dir).unwrap(),
            DirContents::Foreign {
                other: None,
                unexpected: vec!["notes.txt".into(), "sub".into()]
            }
        );
        assert!(dir.join("sub").join("LOCK").exists());
        std::fs::remove_dir_all(dir.join("sub")).unwrap();
        std::fs::remove_file(dir.join("notes.txt")).unwrap();
        std::fs::write(dir.join("LOCK"), b"").unwrap();
        assert!(engine.remove_store(&dir).unwrap().is_empty());
        assert!(!dir.exists(), "{engine}");
        assert!(engine.remove_store(&dir).unwrap().is_empty());
    }
    assert!(Engine::File.marks_store("log.7") && !Engine::File.marks_store("log.7.tmp"));
    assert!(Engine::Rocks.owns_file("000012.sst") && !Engine::Rocks.owns_file("x.sst"));
    assert!(Engine::Rocks.owns_file("OPTIONS-000007.dbtmp"));
    assert!(!Engine::Lmdb.owns_file("snapshot.1"));
    let plain = tmp.path().join("notes.txt");
    assert!(
        Engine::File.probe(&plain.join("x")).is_err(),
        "not a directory"
    );
}

/// A marker name alone does not make a store: every entry must be one the
/// engine makes, a generation name must be one `peerbook-file` writes, and a log
/// whose generation has no snapshot must hold bytes the file backend writes.
/// Anything else is foreign, named, and left as it was.
#[cfg(feature = "file")]
#[test]
fn a_marker_among_other_files_is_no_store() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    let dir = app.as_path();
    // An application directory with a rotated (empty) log of its own: a file
    // store's name, not its bytes (the backend names a log only once its header
    // is synced), so not the backend's file either, and no other engine's store.
    std::fs::write(dir.join("notes.txt"), b"").unwrap();
    std::fs::write(dir.join("log.7"), b"").unwrap();
    let foreign = |unexpected: &[&str]| DirContents::Foreign {
        other: None,
        unexpected: unexpected.iter().map(|n| n.to_string()).collect(),
    };
    assert_eq!(
        Engine::File.probe(dir).unwrap(),
        foreign(&["log.7", "notes.txt"])
    );
    std::fs::remove_file(dir.join("notes.txt")).unwrap();
    // alone it is no store either (it was taken for one: opening it removed it and
    // wrote a new store in the application's directory)
    assert_eq!(Engine::File.probe(dir).unwrap(), foreign(&["log.7"]));
    std::fs::write(dir.join("log.7"), b"rotated at midnight\n").unwrap();
    assert_eq!(Engine::File.probe(dir).unwrap(), foreign(&["log.7"]));
    assert_eq!(
        std::fs::read(dir.join("log.7")).unwrap(),
        b"rotated at midnight\n"
    );
    // A real store's marker among other files: foreign, naming the engine.
    let store = tmp.path().join("store");
    drop(Engine::File.open(&store).unwrap());
    std::fs::write(store.join("notes.txt"), b"").unwrap();
    assert_eq!(
        Engine::File.probe(&store).unwrap(),
        DirContents::Foreign {
            other: Some(Engine::File),
            unexpected: vec!["notes.txt".into()]
        }
    );
    std::fs::remove_file(store.join("notes.txt")).unwrap();
    assert_eq!(Engine::File.probe(&store).unwrap(), DirContents::Store);
    std::fs::remove_file(dir.join("log.7")).unwrap();
    std::fs::write(dir.join("log.01"), b"").unwrap();
    assert!(!Engine::File.marks_store("log.01") && !Engine::File.owns_file("log.01"));
    // the file backend's own reading of names: a generation past u64 and a
    // `LOCK.tmp` are not its files (the engines crate's copy of the rules said so)
    assert!(!Engine::File.marks_store("log.99999999999999999999"));
    assert!(!Engine::File.owns_file("LOCK.tmp"));
    assert_eq!(
        Engine::File.probe(dir).unwrap(),
        DirContents::Foreign {
            other: None,
            unexpected: vec!["log.01".into()]
        }
    );
    assert!(Engine::File.marks_store("log.0") && Engine::File.marks_store("snapshot.10"));
}

/// Another program's RocksDB database (no peerbook column family) is foreign
/// to the probe, which leaves it as it was; a peerbook store is a store.
#[cfg(feature = "rocksdb")]
#[test]
fn a_rocksdb_database_without_peerbook_families_is_foreign() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, &dir).unwrap();
        db.put(b"theirs", b"v").unwrap();
    }
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing(&dir);
    assert_eq!(
        Engine::Rocks.probe(&dir).unwrap(),
        DirContents::Foreign {
            other: None,
            unexpected: vec![]
        }
    );
    assert_eq!(listing(&dir), before, "the probe changed the database");
    let ours = tmp.path().join("ours");
    drop(Engine::Rocks.open(&ours).unwrap());
    assert_eq!(Engine::Rocks.probe(&ours).unwrap(), DirContents::Store);
}

/// A RocksDB database is peerbook's unless its manifest names a family
/// peerbook never makes, or only `default` while it holds data: a crash after
/// RocksDB wrote its first manifest (default family only, no data) and before
/// the backend made its families, or a store missing a family a later
/// peerbook adds (the backend makes missing ones), is a store to open.
#[cfg(feature = "rocksdb")]
#[test]
fn a_rocksdb_store_may_lack_peerbook_families() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = rocksdb::Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    // The crash: CURRENT and a manifest with `default` only, no data.
    let bare = tmp.path().join("bare");
    drop(rocksdb::DB::open(&o, &bare).unwrap());
    assert_eq!(Engine::Rocks.probe(&bare).unwrap(), DirContents::Store);
    drop(Engine::Rocks.open(&bare).unwrap());
    assert_eq!(Engine::Rocks.probe(&bare).unwrap(), DirContents::Store);
    // Some of peerbook's families (an older peerbook's store).
    let older = tmp.path().join("older");
    let some = [peerbook::backend::Space::ALL[0].name()];
    drop(rocksdb::DB::open_cf(&o, &older, some).unwrap());
    assert_eq!(Engine::Rocks.probe(&older).unwrap(), DirContents::Store);
    // A family of another program's, beside peerbook's.
    let theirs = tmp.path().join("theirs");
    let families = [peerbook::backend::Space::ALL[0].name(), "theirs"];
    drop(rocksdb::DB::open_cf(&o, &theirs, families).unwrap());
    assert!(matches!(
        Engine::Rocks.probe(&theirs).unwrap(),
        DirContents::Foreign { other: None, .. }
    ));
    // Another program's `default`-only database whose data is in a table
    // file named `.ldb` (RocksDB reads it as a `.sst`), its log gone.
    let ldb = tmp.path().join("ldb");
    {
        let db = rocksdb::DB::open(&o, &ldb).unwrap();
        db.put(b"their key", b"their value").unwrap();
        db.flush().unwrap();
    }
    for entry in std::fs::read_dir(&ldb).unwrap() {
        let path = entry.unwrap().path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("sst") => std::fs::rename(&path, path.with_extension("ldb")).unwrap(),
            Some("log") => std::fs::remove_file(&path).unwrap(),
            _ => {}
        }
    }
    assert!(matches!(
        Engine::Rocks.probe(&ldb).unwrap(),
        DirContents::Foreign { other: None, .. }
    ));
}

/// What a crash while RocksDB creates its database leaves (`000001.dbtmp`, the
/// manifest before its rename) is RocksDB's own, and a volume's `lost+found`
/// counts for nothing: both directories are for the engine to open.
#[test]
fn creation_leftovers_and_lost_and_found_are_no_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rocks");
    std::fs::create_dir(&dir).unwrap();
    for name in ["000001.dbtmp", "MANIFEST-000001", "LOCK", "LOG"] {
        std::fs::write(dir.join(name), b"").unwrap();
    }
    assert!(Engine::Rocks.owns_file("000001.dbtmp") && !Engine::Rocks.owns_file("x.dbtmp"));
    assert_eq!(Engine::Rocks.probe(&dir).unwrap(), DirContents::Leftovers);
    #[cfg(feature = "rocksdb")]
    {
        drop(Engine::Rocks.open(&dir).unwrap());
        assert_eq!(Engine::Rocks.probe(&dir).unwrap(), DirContents::Store);
    }
    for engine in Engine::available() {
        let volume = tmp.path().join(format!("volume-{engine}"));
        std::fs::create_dir_all(volume.join("lost+found")).unwrap();
        assert_eq!(
            engine.probe(&volume).unwrap(),
            DirContents::Nothing,
            "{engine}"
        );
        drop(engine.open(&volume).unwrap());
        assert_eq!(
            engine.probe(&volume).unwrap(),
            DirContents::Store,
            "{engine}"
        );
    }
}

/// LMDB's `creating` is its own only as a creation leaves it: a directory of
/// LMDB's `data.mdb`/`lock.mdb`. A folder of the user's or a plain file of that
/// name is foreign to the probe (beside a store or alone), and removing the
/// store leaves it.
#[cfg(feature = "lmdb")]
#[test]
fn an_lmdb_creating_entry_is_ours_only_as_a_creation_leaves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("book");
    drop(Engine::Lmdb.open(&dir).unwrap());
    let creating = dir.join("creating");
    let foreign = |other| DirContents::Foreign {
        other,
        unexpected: vec!["creating".into()],
    };
    // what a creation leaves: beside the store (LMDB's lock file, after the
    // rename), or alone (before it)
    std::fs::create_dir(&creating).unwrap();
    std::fs::write(creating.join("lock.mdb"), b"").unwrap();
    assert_eq!(Engine::Lmdb.probe(&dir).unwrap(), DirContents::Store);
    let alone = tmp.path().join("alone");
    std::fs::create_dir_all(alone.join("creating")).unwrap();
    std::fs::write(alone.join("LOCK"), b"").unwrap();
    for name in ["data.mdb", "lock.mdb"] {
        std::fs::write(alone.join("creating").join(name), b"").unwrap();
    }
    assert_eq!(Engine::Lmdb.probe(&alone).unwrap(), DirContents::Leftovers);
    // the user's folder, beside the store and alone
    std::fs::write(creating.join("notes.txt"), b"mine").unwrap();
    assert_eq!(
        Engine::Lmdb.probe(&dir).unwrap(),
        foreign(Some(Engine::Lmdb))
    );
    std::fs::write(alone.join("creating").join("notes.txt"), b"mine").unwrap();
    assert_eq!(Engine::Lmdb.probe(&alone).unwrap(), foreign(None));
    // a plain file named `creating`: foreign, and removing the store leaves it
    std::fs::remove_dir_all(&creating).unwrap();
    std::fs::write(&creating, b"mine").unwrap();
    assert_eq!(
        Engine::Lmdb.probe(&dir).unwrap(),
        foreign(Some(Engine::Lmdb))
    );
    assert_eq!(Engine::Lmdb.remove_store(&dir).unwrap(), ["creating"]);
    assert_eq!(std::fs::read(&creating).unwrap(), b"mine");
    assert!(!Engine::Lmdb.owns_file("creating"));
}

/// A file-store log whose generation has no snapshot is judged by its bytes: the
/// backend's header alone (what an interrupted creation leaves) is leftovers, its
/// header and frames a (damaged) store, which opening reports; bytes it did not
/// write are foreign, to every engine. The probe changes none of them.
#[cfg(feature = "file")]
#[test]
fn file_logs_without_a_snapshot_are_judged_by_their_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let listing = |dir: &Path| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        files.sort();
        files
    };
    // a new store whose snapshot is gone: log.1 holds the header alone
    let created = tmp.path().join("created");
    drop(Engine::File.open(&created).unwrap());
    std::fs::remove_file(created.join("snapshot.1")).unwrap();
    let before = listing(&created);
    assert_eq!(
        Engine::File.probe(&created).unwrap(),
        DirContents::Leftovers
    );
    assert_eq!(listing(&created), before);
    // a store with a write whose snapshot is gone: a damaged store
    let damaged = tmp.path().join("damaged");
    let b = Engine::File.open(&damaged).unwrap();
    let mut batch = peerbook::backend::WriteBatch::new();
    batch.put(peerbook::backend::Space::Meta, b"k".to_vec(), b"v".to_vec());
    b.write(batch, peerbook::backend::Durability::Sync).unwrap();
    drop(b);
    std::fs::remove_file(damaged.join("snapshot.1")).unwrap();
    let before = listing(&damaged);
    assert_eq!(Engine::File.probe(&damaged).unwrap(), DirContents::Store);
    assert_eq!(listing(&damaged), before);
    assert!(matches!(
        Engine::File.open(&damaged).map(drop),
        Err(peerbook::backend::BackendError::Corrupted { .. })
    ));
    // another program's empty log: no engine's store
    let app = tmp.path().join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("log.7"), b"").unwrap();
    for engine in Engine::available() {
        assert_eq!(
            engine.probe(&app).unwrap(),
            DirContents::Foreign {
                other: None,
                unexpected: vec!["log.7".into()]
            },
            "{engine}"
        );
    }
    assert_eq!(listing(&app), [("log.7".to_string(), Vec::new())]);
}

/// The probe names the first engine whose store the entries mark and reads no
/// further: a file-store log beside an LMDB environment that cannot be read (a
/// symbolic link to itself) does not fail the probe that LMDB's marker answered.
#[cfg(all(feature = "file", feature = "lmdb", unix))]
#[test]
fn the_first_engine_that_marks_is_named_without_reading_further() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    drop(Engine::Lmdb.open(dir).unwrap());
    std::os::unix::fs::symlink("log.5", dir.join("log.5")).unwrap();
    // the file backend's reading of that log fails
    let entries = DirEntries::read(dir).unwrap().unwrap();
    assert!(peerbook_file::FileBackend::marks_store_among(dir, &entries).is_err());
    let contents = Engine::Memory.probe(dir).unwrap();
    let DirContents::Foreign { other, .. } = contents else {
        panic!("memory owns no entry: {contents:?}");
    };
    assert_eq!(other, Some(Engine::Lmdb));
}
