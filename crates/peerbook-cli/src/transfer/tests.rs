//! Tests of `migrate` into a new TO, of what an import changed, and of the
//! temp files `export --out` writes.

use super::*;

/// Under `dir`: a file store FROM with its key (created), and a new TO at `a/to`
/// whose key file `to.key` a command is to write.
#[cfg(feature = "file")]
fn from_and_new_to(
    dir: &std::path::Path,
) -> (StoreSpec, StoreSpec, KeySource, peerbook::MasterKey) {
    let spec = |name: &str| -> StoreSpec {
        format!("file:{}", dir.join(name).display())
            .parse()
            .unwrap()
    };
    let key = peerbook::MasterKey::load_or_create(dir.join("from.key")).unwrap();
    (
        spec("from"),
        spec("a/to"),
        KeySource::File(dir.join("to.key")),
        key,
    )
}

/// `migrate --json` (no `--force`) from `from` into the new TO `to` that
/// `creation` started.
#[cfg(feature = "file")]
fn into_new_to<'a>(
    from: &'a StoreSpec,
    to: &'a StoreSpec,
    to_key: &'a KeySource,
    creation: &'a Creation,
) -> Migration<'a> {
    Migration {
        from,
        to,
        to_key,
        force: false,
        json: true,
        creation: Some(creation),
    }
}

/// Only a refusal before the commit, or a failure that left the book usable,
/// counts as "changed nothing"; a failed write of unknown outcome (the book
/// poisoned: `Backend`, `NeedsReopen`, `Io`, ...) does not, so `migrate`
/// neither stores TO's settings again nor says TO was not changed.
#[test]
fn only_a_known_refusal_of_an_import_changed_nothing() {
    use peerbook::backend::BackendError;
    use peerbook::{Error, Quota};
    let refusals = [
        Error::QuotaExceeded(Quota::Peers { limit: 1 }),
        Error::InvalidInput {
            field: "format".into(),
            rule: "must be \"peerbook-export\"".into(),
        },
        Error::WrongKey,
    ];
    for e in &refusals {
        assert!(import_changed_nothing(e, false), "{e:?}");
        assert!(import_changed_nothing(e, true), "{e:?}");
    }
    let failed_write = || Error::Backend(BackendError::engine("lmdb", "the sync failed"));
    assert!(import_changed_nothing(&failed_write(), false));
    for e in [failed_write(), Error::NeedsReopen] {
        assert!(!import_changed_nothing(&e, true), "{e:?}");
    }
}

/// The hint of a failed import into a new TO that this command created says
/// what the undo does: removed when the import wrote nothing; after a write
/// of unknown outcome (the book poisoned: `NeedsReopen`), TO may hold FROM's
/// peers and then stays: never "not changed" then.
#[test]
fn a_failed_import_into_its_own_new_to_says_what_the_undo_does() {
    let to = StoreSpec {
        engine: peerbook_engines::Engine::Lmdb,
        path: "/tmp/to".into(),
    };
    let unknown = own_new_to_import_hint(&to, false);
    assert!(!unknown.contains("not changed"), "{unknown}");
    assert!(!unknown.contains("wrote nothing"), "{unknown}");
    assert!(unknown.contains("unknown outcome"), "{unknown}");
    assert!(unknown.contains("may hold FROM's peers"), "{unknown}");
    assert!(unknown.contains("else it stays"), "{unknown}");
    let nothing = own_new_to_import_hint(&to, true);
    assert!(
        nothing.contains("is removed with what this command made"),
        "{nothing}"
    );
}

/// A new TO whose copy fails its check (here FROM changed after it was read,
/// which its lock prevents across processes) is emptied, then removed with
/// the key file and directory this command made.
#[cfg(feature = "file")]
#[test]
fn a_new_to_that_fails_its_check_is_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (from, to, to_key, key) = from_and_new_to(tmp.path());
    let source = peerbook::PeerBook::open(from.open().unwrap(), Options::new(key.clone())).unwrap();
    let alice = |name: &str| peerbook::NewPeer {
        peer_id: "alice".into(),
        display_name: name.into(),
        ..peerbook::NewPeer::default()
    };
    source.store_peer(alice("Alice")).unwrap();
    let doc = source.export_data(ExportOptions::default()).unwrap();
    source.store_peer(alice("Alice B.")).unwrap();
    let creation = Creation::start(&to, &to_key, &key).unwrap();
    assert!(tmp.path().join("to.key").is_file());
    let migration = into_new_to(&from, &to, &to_key, &creation);
    let e = migration.write_copy(&source, &doc).unwrap_err();
    assert!(e.cause.starts_with("check failed"), "{e}");
    assert!(
        e.hint.as_deref().unwrap_or("").contains("is removed"),
        "{e}"
    );
    creation.undo();
    assert!(!tmp.path().join("a").exists());
    assert!(!tmp.path().join("to.key").exists());
}

/// A new TO that another process made (empty, with the same key) between this
/// command's start and its open, whose copy then fails its check: it is not
/// this command's, so it is not emptied and not said to be removed, and the
/// undo keeps it, with the key file it may be sealed with.
#[cfg(feature = "file")]
#[test]
fn a_new_to_made_meanwhile_that_fails_its_check_is_not_said_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (from, to, to_key, key) = from_and_new_to(tmp.path());
    let source = peerbook::PeerBook::open(from.open().unwrap(), Options::new(key.clone())).unwrap();
    let alice = |name: &str| peerbook::NewPeer {
        peer_id: "alice".into(),
        display_name: name.into(),
        ..peerbook::NewPeer::default()
    };
    source.store_peer(alice("Alice")).unwrap();
    let doc = source.export_data(ExportOptions::default()).unwrap();
    source.store_peer(alice("Alice B.")).unwrap();
    let creation = Creation::start(&to, &to_key, &key).unwrap();
    // Another process makes TO, with the key file this command wrote.
    let theirs = peerbook::PeerBook::open(to.open().unwrap(), Options::new(key.clone())).unwrap();
    drop(theirs.close().unwrap());
    let migration = into_new_to(&from, &to, &to_key, &creation);
    let e = migration.write_copy(&source, &doc).unwrap_err();
    assert!(e.cause.starts_with("check failed"), "{e}");
    let hint = e.hint.as_deref().unwrap_or("");
    assert!(!hint.contains("removed"), "{e}");
    assert!(hint.contains("another process"), "{e}");
    creation.undo();
    let found = to.engine.probe(&to.path).unwrap();
    assert_eq!(found, peerbook_engines::DirContents::Store);
    assert!(tmp.path().join("to.key").is_file());
}

/// An import into a new TO this command's open started, whose write fails
/// with an unknown outcome (here: past the process's file size limit, part of
/// the way through the log), is never said to have written nothing: the hint
/// says TO may hold FROM's peers. Run in a child process of its own (the limit
/// is the process's): the test re-runs itself there.
#[cfg(all(target_os = "linux", feature = "file"))]
#[test]
fn a_failed_write_into_its_own_new_to_is_never_said_to_have_written_nothing() {
    const NAME: &str =
        "transfer::tests::a_failed_write_into_its_own_new_to_is_never_said_to_have_written_nothing";
    const CHILD: &str = "PEERBOOK_CLI_TEST_FSIZE_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let said = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "the child failed: {said}");
        assert!(said.contains("1 passed"), "the child ran no test: {said}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (from, to, to_key, key) = from_and_new_to(tmp.path());
    let source = peerbook::PeerBook::open(from.open().unwrap(), Options::new(key.clone())).unwrap();
    // 100 peers of 4 KiB keys: about 400 KiB to write into TO.
    for i in 0..100 {
        source
            .store_peer(peerbook::NewPeer {
                peer_id: format!("peer-{i}"),
                public_key: "k".repeat(4000),
                ..peerbook::NewPeer::default()
            })
            .unwrap();
    }
    let doc = source.export_data(ExportOptions::default()).unwrap();
    let creation = Creation::start(&to, &to_key, &key).unwrap();
    let migration = into_new_to(&from, &to, &to_key, &creation);
    // From here on no file of this process grows past 64 KiB: a write past it
    // fails (EFBIG, its signal ignored).
    // Only the soft limit is lowered: the hard one stays as it is (raising it
    // is refused, EPERM, where it is finite).
    // SAFETY: plain libc calls on this process's own signal disposition and
    // limits, with a valid `rlimit`.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(64 * 1024);
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    let e = migration.write_copy(&source, &doc).unwrap_err();
    // The import's write, past the limit (EFBIG), not an earlier step.
    assert!(e.cause.contains("File too large"), "{}", e.cause);
    let hint = e.hint.as_deref().unwrap_or("");
    assert!(hint.contains("unknown outcome"), "{e}: {hint}");
    assert!(hint.contains("may hold FROM's peers"), "{e}: {hint}");
    assert!(!hint.contains("wrote nothing"), "{e}: {hint}");
    assert!(!hint.contains("not changed"), "{e}: {hint}");
}

/// `--force` does not replace a TO that did not exist when the command looked
/// (another process made it, with peers, before this command's open).
#[cfg(feature = "file")]
#[test]
fn force_never_replaces_a_new_to_made_meanwhile() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = |name: &str| -> StoreSpec {
        format!("file:{}", tmp.path().join(name).display())
            .parse()
            .unwrap()
    };
    let (from, to) = (spec("from"), spec("to"));
    let to_key = KeySource::File(tmp.path().join("to.key"));
    let key = peerbook::MasterKey::load_or_create(tmp.path().join("to.key")).unwrap();
    let peer = |id: &str| peerbook::NewPeer {
        peer_id: id.into(),
        ..peerbook::NewPeer::default()
    };
    let source = peerbook::PeerBook::open(from.open().unwrap(), Options::new(key.clone())).unwrap();
    source.store_peer(peer("alice")).unwrap();
    let doc = source.export_data(ExportOptions::default()).unwrap();
    // TO absent when the command starts, made (with peers) before its open
    let creation = Creation::start(&to, &to_key, &key).unwrap();
    let theirs = peerbook::PeerBook::open(to.open().unwrap(), Options::new(key.clone()));
    let theirs = theirs.unwrap();
    theirs.store_peer(peer("theirs")).unwrap();
    drop(theirs.close().unwrap());
    let migration = Migration {
        from: &from,
        to: &to,
        to_key: &to_key,
        force: true,
        json: true,
        creation: Some(&creation),
    };
    migration.write_copy(&source, &doc).unwrap_err();
    let theirs = peerbook::PeerBook::open(to.open().unwrap(), Options::new(key)).unwrap();
    assert!(theirs.get_peer("theirs").unwrap().is_some());
    assert!(theirs.get_peer("alice").unwrap().is_none());
}

/// A symbolic link planted where `export --out` puts its temp file (a name
/// another user can guess in a shared directory) is never written through.
#[cfg(unix)]
#[test]
fn export_out_never_writes_through_a_planted_link() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    let out = dir.path().join("book.json");
    let planted = dir
        .path()
        .join(format!(".book.json.tmp-{}", std::process::id()));
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    write_atomically(&out, b"{}").unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(fs::symlink_metadata(&out).unwrap().is_file());
    assert_eq!(fs::read_to_string(&out).unwrap(), "{}\n");
}

/// The temp file is created exclusively: a link (or anything) already at its
/// name is refused, never written through.
#[cfg(unix)]
#[test]
fn a_temp_file_is_never_opened_through_an_existing_entry() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let dangling = dir.path().join("dangling");
    std::os::unix::fs::symlink(dir.path().join("nothing"), &dangling).unwrap();
    for path in [&link, &dangling, &victim] {
        let e = create_private(path).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{path:?}");
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert!(!dir.path().join("nothing").exists());
    // Two temp files for one name never share a name.
    let name = std::ffi::OsStr::new("book.json");
    let (a, _) = create_temp(dir.path(), name).unwrap();
    let (b, _) = create_temp(dir.path(), name).unwrap();
    assert_ne!(a, b);
}
