//! What a command creating a store made (`init`, `import`, `migrate` into a new
//! store), and its undo when the command fails: the key file it wrote, the store's
//! files, the directories it made; never what was there before.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::path::{Path, PathBuf};

use peerbook::backend::{Backend, NewDirs};
use peerbook::{MasterKey, PeerBook};
use peerbook_engines::DirContents;

use crate::store::{CliError, KeySource, StoreSpec};

/// The key a new store takes from `key`: a new one for a missing key file (which
/// [`Creation::start`] writes); else loaded with every check, before anything is made.
pub fn key_for_new_store(key: &KeySource) -> Result<MasterKey, CliError> {
    match key {
        KeySource::File(path) if std::fs::symlink_metadata(path).is_err() => {
            MasterKey::generate().map_err(|e| CliError::new(e.to_string()))
        }
        _ => key.load(false),
    }
}

/// What a command creating a store made, to remove it again when the command
/// fails: the store's files, the directories it had to make (the store's and
/// missing parents) and the key file, each only if it did not exist before.
///
/// The store's files are the command's only when its own open started the book
/// there ([`note_open`](Creation::note_open)): a store that was absent when the
/// command started and is there now, empty, may still be another process's, made
/// meanwhile with the same key (`--key-env`, a shared key file) or its own (so
/// this command's open failed on the wrong key).
pub struct Creation {
    spec: StoreSpec,
    /// The directories this command made, innermost first.
    new_dirs: NewDirs,
    /// The key file this command created.
    new_key_file: Option<PathBuf>,
    /// Whether the store's directory held no store when the command started
    /// (missing, empty or leftovers): a store there then is someone else's.
    store_was_absent: bool,
    /// Whether an open of this command started the book in the store
    /// ([`note_open`](Creation::note_open)): only then are its files this
    /// command's.
    created_book: Cell<bool>,
    /// Run once the undo has let go of the store's lock (a test plays another
    /// process taking it there).
    #[cfg(test)]
    on_release: std::cell::Cell<Option<Box<dyn FnOnce()>>>,
}

impl Creation {
    /// Before anything else is created: make the store's directory and its
    /// missing parents, noting those this command made ([`NewDirs::create`]:
    /// not one another process made meanwhile), and write `fresh` (a new key,
    /// checked by the caller) to `key`'s file if it is missing (create-new, so
    /// the file is certainly this command's). On an error, what it made is
    /// removed again.
    pub fn start(spec: &StoreSpec, key: &KeySource, fresh: &MasterKey) -> Result<Self, CliError> {
        let missing = |p: &Path| std::fs::symlink_metadata(p).is_err();
        let store_was_absent = match spec.engine.probe(&spec.path) {
            Ok(DirContents::Nothing | DirContents::Leftovers) => true,
            Err(_) => missing(&spec.path),
            Ok(_) => false,
        };
        let report = |w: String| {
            let _ = writeln!(std::io::stderr(), "warning: {w}");
        };
        let new_dirs = match NewDirs::create(&spec.path) {
            Ok(made) => made,
            Err((made, e)) => {
                remove_new_dirs(&made, &report);
                return Err(CliError::new(format!(
                    "cannot create the store directory {}: {e}",
                    spec.path.display()
                )));
            }
        };
        let new_key_file = Self::write_key_file(key, fresh).inspect_err(|_| {
            remove_new_dirs(&new_dirs, &report);
        })?;
        Ok(Creation {
            spec: spec.clone(),
            new_dirs,
            new_key_file,
            store_was_absent,
            created_book: Cell::new(false),
            #[cfg(test)]
            on_release: Default::default(),
        })
    }

    /// Write `fresh` to `key`'s file if it is missing (create-new): the path
    /// when this command wrote it.
    fn write_key_file(key: &KeySource, fresh: &MasterKey) -> Result<Option<PathBuf>, CliError> {
        let missing = |p: &Path| std::fs::symlink_metadata(p).is_err();
        let new_key_file = match key {
            KeySource::File(path) if missing(path) => match fresh.write_new_file(path) {
                Ok(()) => Some(path.clone()),
                // made by someone else meanwhile: theirs, loaded as any key file
                Err(peerbook::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists && !missing(path) =>
                {
                    None
                }
                Err(e) => {
                    // Linked, then the sync of its directory failed: the one error
                    // of `write_new_file` naming the directory, not the file (a
                    // failure before the link leaves nothing there, and a file
                    // there then is another process's). That file is this
                    // command's, and goes.
                    let linked = matches!(&e, peerbook::Error::Io { path: p, .. } if p != path);
                    if linked && !missing(path) {
                        if let Err(e) = MasterKey::destroy_file(path) {
                            let _ = writeln!(
                                std::io::stderr(),
                                "warning: the new key file {} stays: {e}; remove it by hand",
                                path.display()
                            );
                        }
                    }
                    return Err(CliError::new(e.to_string())
                        .hint("pass the book's key with --key-file PATH or --key-env VAR"));
                }
            },
            _ => None,
        };
        Ok(new_key_file)
    }

    /// Note an open of the new store by this command: when it started the book
    /// there ([`PeerBook::created_book`]), the store is this command's, which
    /// [`undo`](Self::undo) may remove. Call it right after each successful open
    /// of the store until the first (a later one finds the book there).
    pub fn note_open<B: Backend>(&self, book: &PeerBook<B>) {
        if book.created_book() {
            self.created_book.set(true);
        }
    }

    /// The key file this creation wrote (create-new), if it wrote one.
    pub fn new_key_file(&self) -> Option<&Path> {
        self.new_key_file.as_deref()
    }

    /// Remove what the failed command created, never recursively, never a file
    /// the engine does not make, and the key file last. A store there is first
    /// reopened (taking the engine's lock: a store another process has open
    /// stays) and must hold no peer record: otherwise it may be another
    /// process's, made meanwhile with the new key, and it stays with the key file.
    /// It must also be this command's: none there when it started, and its book
    /// started by this command's own open ([`note_open`](Self::note_open)); any
    /// other (this command's open failed, or another process made it meanwhile,
    /// with this command's key too) stays, and so does the key file this command
    /// wrote, which that store's book may be sealed with (another process may
    /// have loaded it): a warning names both.
    /// Under that lock the store's files go (its lock file too, but RocksDB's and
    /// off Unix), then the key file; once the lock is let go, only the new
    /// directories, each only while empty. What cannot be removed is named on
    /// stderr.
    pub fn undo(self) {
        for warning in self.undo_warnings() {
            let _ = writeln!(std::io::stderr(), "warning: {warning}");
        }
    }

    /// [`undo`](Self::undo), returning its warnings (what stays, and why)
    /// instead of writing them.
    fn undo_warnings(self) -> Vec<String> {
        let warnings = RefCell::new(Vec::new());
        self.undo_with(&|w| warnings.borrow_mut().push(w));
        warnings.into_inner()
    }

    fn undo_with(&self, report: &dyn Fn(String)) {
        let warn = |what: String| report(format!("{what}; remove it by hand"));
        let dir = &self.spec.path;
        let engine = self.spec.engine;
        let destroy_key = || {
            if let Some(path) = &self.new_key_file {
                if let Err(e) = MasterKey::destroy_file(path) {
                    warn(format!("the new key file {} stays: {e}", path.display()));
                }
            }
        };
        let absent = || {
            std::fs::symlink_metadata(dir)
                .is_err_and(|e| e.kind() != std::io::ErrorKind::PermissionDenied)
        };
        let stays = |what: String, e: &dyn std::fmt::Display| {
            report(format!("{what}: it stays{}: {e}", self.with_what_it_made()))
        };
        match engine.probe(dir) {
            // Empty or gone: no file of a store to remove (one appearing now is
            // another process's), only the directories, while empty.
            Ok(DirContents::Nothing) => destroy_key(),
            // The store directory was never made (its open failed making it, a
            // name too long): only the key file and the directories made above it.
            Err(_) if absent() => destroy_key(),
            Err(e) => {
                let what = format!("the new store's directory {} cannot be read", dir.display());
                return stays(what, &e);
            }
            Ok(DirContents::Store | DirContents::Leftovers) if !self.store_was_absent => {
                let what = format!("the store {} was there before this command", dir.display());
                return stays(what, &"another process made it");
            }
            // Not started by this command's open (which failed, or found a book
            // another process had started there, with the same key or not): its
            // book may be sealed with the key file this command wrote, which
            // stays with it.
            Ok(DirContents::Store | DirContents::Leftovers) if !self.created_book.get() => {
                return report(format!(
                    "the store {} was not made by this command (its open failed, or another \
                     process made it meanwhile): it stays{}",
                    dir.display(),
                    self.with_what_it_made()
                ));
            }
            Ok(DirContents::Store | DirContents::Leftovers) => {
                let what = || format!("the new store {}", dir.display());
                let backend = match self.spec.open() {
                    Ok(backend) => backend,
                    Err(e) => return stays(what(), &e),
                };
                match peerbook::store::holds_peers(&*backend) {
                    Ok(false) => {}
                    // the import's batch, written before the error it reported,
                    // or another process's book made meanwhile: not to remove
                    Ok(true) => {
                        return report(format!(
                            "{} holds peers (written before the error, or by another process \
                             meanwhile): it stays{}; check it with `list` before running the \
                             command again",
                            what(),
                            self.with_what_it_made()
                        ))
                    }
                    Err(e) => return stays(what(), &e),
                }
                // Everything goes while the lock is held: once it is let go,
                // another process (a node, an import) may take it and start its
                // book here, which a removal then would destroy (and, its lock
                // file gone, a third opener would lock a new one beside it). The
                // lock file goes too where the lock checks that the file it
                // locked is still the one linked there (`try_lock_file_made`:
                // LMDB and the file backend, on Unix): an opener that opened it
                // before starts over on a new one. RocksDB's own `LOCK` has no
                // such check: it stays, and the directory with it (what RocksDB
                // writes when closing stays too).
                let keep_lock = engine == peerbook_engines::Engine::Rocks || !cfg!(unix);
                let removed = if keep_lock {
                    engine.remove_store_files_but_lock(dir)
                } else {
                    engine.remove_store_files(dir)
                };
                let left = match removed {
                    Ok(left) => left,
                    Err(e) => return stays(what(), &e),
                };
                destroy_key();
                drop(backend);
                self.released();
                if !left.is_empty() {
                    let names: Vec<_> = left.iter().map(|n| n.to_string_lossy()).collect();
                    let lock = match keep_lock {
                        true => format!(
                            " (its lock file, and what {engine} wrote when closing, stay: \
                             removed only once no program has the store open)"
                        ),
                        false => String::new(),
                    };
                    return warn(format!(
                        "the new store's directory {} stays{}, holding {}{lock}",
                        dir.display(),
                        self.in_new_dirs(),
                        names.join(", ")
                    ));
                }
            }
            // Another engine's store, files this engine does not make: not this
            // command's to touch.
            Ok(_) => {
                let what = format!("the new store's directory {}", dir.display());
                return stays(what, &"it holds files this command did not make");
            }
        }
        self.remove_new_dirs(report);
    }

    /// `, with the key file PATH this command wrote` when it wrote one, and the new
    /// directories it is in ([`in_new_dirs`](Self::in_new_dirs)), for a warning
    /// naming what stays.
    fn with_what_it_made(&self) -> String {
        let key = match &self.new_key_file {
            Some(path) => format!(", with the key file {} this command wrote", path.display()),
            None => String::new(),
        };
        key + &self.in_new_dirs()
    }

    /// ` (in PATH, which this command made)`, PATH the outermost directory it
    /// made, if any.
    fn in_new_dirs(&self) -> String {
        match self.new_dirs.paths().last() {
            Some(outer) => format!(" (in {}, which this command made)", outer.display()),
            None => String::new(),
        }
    }

    /// The store's lock is no longer held by this undo.
    fn released(&self) {
        #[cfg(test)]
        if let Some(hook) = self.on_release.take() {
            hook();
        }
    }

    /// Remove the directories this command made ([`remove_new_dirs`]).
    fn remove_new_dirs(&self, report: &dyn Fn(String)) {
        remove_new_dirs(&self.new_dirs, report);
    }
}

/// Remove the directories this command made (`made`), innermost first, only
/// while empty; one that stays (not empty) is reported.
fn remove_new_dirs(made: &NewDirs, report: &dyn Fn(String)) {
    if let Err((dir, e)) = made.remove() {
        report(format!(
            "the directory {} made by this command stays: {e}; remove it by hand if it \
             is not yours",
            dir.display()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbook::Options;
    use peerbook_engines::Engine;

    /// A temp dir, the not yet made store `a/new` of `engine` in it, and `new.key`.
    fn new_store_at(engine: Engine) -> (tempfile::TempDir, PathBuf, StoreSpec, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a").join("new");
        let spec = format!("{engine}:{}", path.display()).parse().unwrap();
        let key_file = tmp.path().join("new.key");
        (tmp, path, spec, key_file)
    }

    /// A store found where a failed creating command expected its own, holding
    /// peers when the undo reopens it (another process made its book there with
    /// the new key file after the command closed its book), stays, and so does
    /// the key file (its book is sealed with it).
    #[test]
    fn undo_leaves_a_store_that_holds_peers_when_reopened() {
        for engine in Engine::available() {
            undo_leaves_a_store_that_holds_peers(engine);
        }
    }

    fn undo_leaves_a_store_that_holds_peers(engine: Engine) {
        let (tmp, path, spec, key_file) = new_store_at(engine);
        let key = KeySource::File(key_file.clone());
        let fresh = MasterKey::generate().unwrap();
        let creation = Creation::start(&spec, &key, &fresh).unwrap();
        assert!(key_file.is_file());
        // The command's own book, seen empty, closed; meanwhile another process
        // opens the store with that key file and stores a peer.
        let own = PeerBook::open(spec.open().unwrap(), Options::new(fresh.clone())).unwrap();
        creation.note_open(&own);
        drop(own);
        let book =
            PeerBook::open(spec.open().unwrap(), Options::new(key.load(false).unwrap())).unwrap();
        book.store_peer(peerbook::NewPeer {
            peer_id: "theirs".into(),
            ..peerbook::NewPeer::default()
        })
        .unwrap();
        drop(book.close().unwrap());
        creation.undo();
        assert!(key_file.is_file(), "{engine}");
        assert_eq!(spec.engine.probe(&path).unwrap(), DirContents::Store);

        // Its own store, still empty: all it made goes, key file, store, directories.
        std::fs::remove_dir_all(tmp.path().join("a")).unwrap();
        std::fs::remove_file(&key_file).unwrap();
        let creation = Creation::start(&spec, &key, &fresh).unwrap();
        let own = PeerBook::open(spec.open().unwrap(), Options::new(fresh.clone())).unwrap();
        creation.note_open(&own);
        drop(own);
        creation.undo();
        assert!(!key_file.exists(), "{engine}");
        if engine == Engine::Rocks {
            // RocksDB's own LOCK and what it wrote closing (a manifest naming the
            // removed files) stay, with the directory, named in a warning: never
            // removed once unlocked
            assert!(path.join("LOCK").exists(), "{engine}");
            assert!(!std::fs::read_dir(&path).unwrap().any(|e| {
                let name = e.unwrap().file_name();
                let name = name.to_string_lossy();
                name.ends_with(".sst") || name.ends_with(".log")
            }));
        } else {
            assert!(!tmp.path().join("a").exists(), "{engine}");
        }
    }

    /// Another process taking the store's lock as soon as the undo lets go of it,
    /// and making its book there (with its own key), keeps that book: the undo
    /// removes the store's files, its lock file too, while it holds the lock.
    #[test]
    fn undo_removes_the_store_while_it_holds_its_lock() {
        for engine in Engine::available() {
            if matches!(engine, Engine::Lmdb | Engine::File) {
                undo_removes_the_store_under_its_lock(engine);
            }
        }
    }

    fn undo_removes_the_store_under_its_lock(engine: Engine) {
        let (_tmp, _, spec, key_file) = new_store_at(engine);
        let key = KeySource::File(key_file);
        let fresh = MasterKey::generate().unwrap();
        let creation = Creation::start(&spec, &key, &fresh).unwrap();
        let own = PeerBook::open(spec.open().unwrap(), Options::new(fresh)).unwrap();
        creation.note_open(&own);
        drop(own);
        let theirs = MasterKey::generate().unwrap();
        let (their_spec, their_key) = (spec.clone(), theirs.clone());
        creation.on_release.set(Some(Box::new(move || {
            let book = PeerBook::open(their_spec.open().unwrap(), Options::new(their_key)).unwrap();
            book.store_peer(peerbook::NewPeer {
                peer_id: "theirs".into(),
                ..peerbook::NewPeer::default()
            })
            .unwrap();
            drop(book.close().unwrap());
        })));
        creation.undo();
        let book = PeerBook::open(spec.open().unwrap(), Options::new(theirs)).unwrap();
        assert!(book.get_peer("theirs").unwrap().is_some(), "{engine}");
    }

    /// A store that is not this command's stays when it undoes, empty as it is:
    /// one there when the command started (even with the command's key), or one
    /// another process made meanwhile with its own key (the command's open
    /// then failed with the wrong key). The key file the command wrote stays
    /// with it: the undo does not open another's store to learn its key.
    #[test]
    fn undo_leaves_an_empty_store_that_is_not_its_own() {
        for engine in Engine::available() {
            if matches!(engine, Engine::Lmdb | Engine::File) {
                undo_leaves_an_empty_store_of_another(engine);
            }
        }
    }

    fn undo_leaves_an_empty_store_of_another(engine: Engine) {
        let (tmp, path, spec, key_file) = new_store_at(engine);
        let key = KeySource::File(key_file);
        let fresh = MasterKey::generate().unwrap();
        // Made meanwhile, with another key.
        let creation = Creation::start(&spec, &key, &fresh).unwrap();
        let theirs = MasterKey::generate().unwrap();
        drop(PeerBook::open(spec.open().unwrap(), Options::new(theirs.clone())).unwrap());
        let warnings = creation.undo_warnings();
        assert_eq!(engine.probe(&path).unwrap(), DirContents::Store, "{engine}");
        drop(PeerBook::open(spec.open().unwrap(), Options::new(theirs)).unwrap());
        assert!(tmp.path().join("new.key").is_file(), "{engine}");
        assert!(warnings[0].contains("new.key"), "{warnings:?}");
        std::fs::remove_file(tmp.path().join("new.key")).unwrap();

        // There before (made meanwhile, above), then with the command's key.
        let creation = Creation::start(&spec, &key, &fresh).unwrap();
        creation.undo();
        assert_eq!(engine.probe(&path).unwrap(), DirContents::Store, "{engine}");
        let path = tmp.path().join("b");
        let spec: StoreSpec = format!("{engine}:{}", path.display()).parse().unwrap();
        drop(PeerBook::open(spec.open().unwrap(), Options::new(fresh.clone())).unwrap());
        let creation = Creation::start(&spec, &KeySource::File(tmp.path().join("b.key")), &fresh);
        creation.unwrap().undo();
        assert_eq!(engine.probe(&path).unwrap(), DirContents::Store, "{engine}");
    }

    /// A store absent when the command started, whose book another open (another
    /// process) started with the command's own key (`--key-env`, a shared key
    /// file) before the command's open failed (or found it there), stays as it
    /// is, every file and byte: the undo removes only a book its own open
    /// started (`note_open`), and a warning names the store. Two `init`s of one
    /// path with one key: the second must not remove the first's new store.
    #[test]
    fn undo_leaves_a_book_another_open_started_with_its_key() {
        for engine in Engine::available() {
            if matches!(engine, Engine::Lmdb | Engine::File) {
                undo_leaves_a_book_started_by_another(engine);
            }
        }
    }

    /// Every entry under `dir`, sorted: its relative path and bytes (`None` for
    /// a directory).
    fn tree(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Option<Vec<u8>>)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.strip_prefix(root).unwrap().to_path_buf();
                if path.is_dir() {
                    out.push((name, None));
                    walk(root, &path, out);
                } else {
                    out.push((name, Some(std::fs::read(&path).unwrap())));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    fn undo_leaves_a_book_started_by_another(engine: Engine) {
        let (tmp, path, spec, _) = new_store_at(engine);
        let shared = MasterKey::generate().unwrap();
        let key = KeySource::Env("PEERBOOK_TEST_SHARED_KEY".into());
        let creation = Creation::start(&spec, &key, &shared).unwrap();
        // The other `init` (another process, the same key) starts its book; this
        // command's open then fails (Locked) or finds that book: either way its
        // open did not start it.
        let theirs = PeerBook::open(spec.open().unwrap(), Options::new(shared.clone())).unwrap();
        assert!(theirs.created_book());
        drop(theirs.close().unwrap());
        let ours = PeerBook::open(spec.open().unwrap(), Options::new(shared.clone())).unwrap();
        creation.note_open(&ours);
        drop(ours.close().unwrap());
        let before = tree(tmp.path());
        let warnings = creation.undo_warnings();
        let after = tree(tmp.path());
        let names = |t: &[(PathBuf, Option<Vec<u8>>)]| -> Vec<PathBuf> {
            t.iter().map(|(name, _)| name.clone()).collect()
        };
        assert_eq!(names(&after), names(&before), "{engine}");
        // every byte but LMDB's reader table (`lock.mdb`), which any reader of
        // the store writes, the undo's look at it too
        let data = |t: Vec<(PathBuf, Option<Vec<u8>>)>| -> Vec<_> {
            t.into_iter()
                .filter(|(name, _)| !name.ends_with("lock.mdb"))
                .collect()
        };
        assert!(
            data(after) == data(before),
            "{engine}: a file's bytes changed"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&*path.to_string_lossy()),
            "{warnings:?}"
        );
        assert!(
            warnings[0].contains("not made by this command"),
            "{warnings:?}"
        );
        drop(PeerBook::open(spec.open().unwrap(), Options::new(shared)).unwrap());
    }

    /// A store directory holding files the engine does not make stays, with the
    /// key file the command wrote and the directories it made, and a warning
    /// names them.
    #[cfg(feature = "file")]
    #[test]
    fn undo_names_what_stays_in_a_foreign_directory() {
        let (tmp, path, spec, key_file) = new_store_at(Engine::File);
        let key = KeySource::File(key_file.clone());
        let creation = Creation::start(&spec, &key, &MasterKey::generate().unwrap()).unwrap();
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("theirs.txt"), "theirs").unwrap();
        let warnings = creation.undo_warnings();
        assert!(key_file.is_file() && path.join("theirs.txt").is_file());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let w = &warnings[0];
        for named in [&path, &key_file, &tmp.path().join("a")] {
            assert!(w.contains(&*named.to_string_lossy()), "{w}");
        }
        assert!(w.contains("did not make"), "{w}");
    }

    /// A directory the command made that is not empty when it undoes (another
    /// process put a file in it meanwhile) stays, with those above it and the
    /// file, and a warning names it; the key file the command wrote and the
    /// (empty) directories below go.
    #[cfg(feature = "file")]
    #[test]
    fn undo_leaves_a_new_directory_someone_else_wrote_in() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a").join("b").join("new");
        let spec: StoreSpec = format!("file:{}", path.display()).parse().unwrap();
        let key_file = tmp.path().join("new.key");
        let key = KeySource::File(key_file.clone());
        let creation = Creation::start(&spec, &key, &MasterKey::generate().unwrap()).unwrap();
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(tmp.path().join("a/b/theirs.txt"), "theirs").unwrap();
        let warnings = creation.undo_warnings();
        assert!(!key_file.exists());
        assert!(!path.exists(), "the store's own new directory goes");
        let b = tmp.path().join("a/b");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&format!("{} made by", b.display())),
            "{warnings:?}"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("a/b/theirs.txt")).unwrap(),
            "theirs"
        );
    }
}
