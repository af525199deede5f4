//! The directories an open (or a command creating a store) has to make, and their
//! removal when it fails: written once for the engines and the CLI, so that a
//! refused or failed open leaves the user's file system as it found it.

use std::io;
use std::path::{Path, PathBuf};

/// The directories an open (or a command creating a store) made on the way to
/// its store, innermost first: those whose creation, by this open, succeeded
/// ([`NewDirs::create`]). A directory that was there before, or that another
/// process made while this one was making the others, is never among them, and
/// neither is anything that is not a directory (a symbolic link to one, a
/// dangling one): a failure removes them again ([`NewDirs::remove`]), and only
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDirs {
    /// Innermost first.
    dirs: Vec<PathBuf>,
}

impl NewDirs {
    /// Make `dir` and its missing ancestors on the real file system, noting
    /// those this call made: [`create_with`](Self::create_with) over
    /// [`std::fs::create_dir`], a directory (through symbolic links) told by
    /// [`std::fs::metadata`].
    pub fn create(dir: &Path) -> Result<NewDirs, (NewDirs, io::Error)> {
        Self::create_with(
            dir,
            |d| std::fs::create_dir(d),
            |d| std::fs::metadata(d).is_ok_and(|m| m.is_dir()),
        )
    }

    /// Make `dir` and its missing ancestors one level at a time with
    /// `create_dir` (which must make one directory, its parent existing, and
    /// fail with [`io::ErrorKind::AlreadyExists`] when anything is there, or
    /// [`io::ErrorKind::NotFound`] when its parent is missing), outermost first,
    /// as `create_dir_all` does, and note exactly those whose `create_dir`
    /// succeeded. `is_dir` tells whether a path that is there is a directory
    /// (through symbolic links): one that is, found there (before or made by
    /// another process meanwhile), is walked through and never noted; one that
    /// is not (a file, a dangling symbolic link) is the error, as is any other
    /// error of `create_dir`. The empty path (the current directory) is taken
    /// as there. Through a backend's own file system layer, for fault
    /// injection.
    ///
    /// `Ok`: `dir` is a directory, with the ones made noted. `Err`: the error,
    /// with those made before it, which the caller removes again
    /// ([`undo_failed_open`](Self::undo_failed_open)).
    pub fn create_with(
        dir: &Path,
        mut create_dir: impl FnMut(&Path) -> io::Result<()>,
        mut is_dir: impl FnMut(&Path) -> bool,
    ) -> Result<NewDirs, (NewDirs, io::Error)> {
        // Outermost first, while made.
        let mut made: Vec<PathBuf> = Vec::new();
        let done = |mut made: Vec<PathBuf>| {
            made.reverse();
            NewDirs { dirs: made }
        };
        // Up from `dir` while its parent is missing: those to make, innermost first.
        let mut todo: Vec<&Path> = Vec::new();
        let mut at = dir;
        loop {
            if at.as_os_str().is_empty() {
                break;
            }
            match create_dir(at) {
                Ok(()) => {
                    made.push(at.to_path_buf());
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => match at.parent() {
                    Some(parent) => {
                        todo.push(at);
                        at = parent;
                    }
                    None => return Err((done(made), e)),
                },
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_dir(at) => break,
                Err(e) => return Err((done(made), e)),
            }
        }
        // Then down again, outermost first.
        while let Some(at) = todo.pop() {
            match create_dir(at) {
                Ok(()) => made.push(at.to_path_buf()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && is_dir(at) => {}
                Err(e) => return Err((done(made), e)),
            }
        }
        Ok(done(made))
    }

    /// The directories, innermost first.
    pub fn paths(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Whether `dir` is one of them (compared as given, not canonicalized).
    pub fn contains(&self, dir: &Path) -> bool {
        self.dirs.iter().any(|d| d == dir)
    }

    /// Remove them with [`std::fs::remove_dir`]: innermost first, each only if
    /// empty, never recursively. See [`remove_with`](Self::remove_with).
    pub fn remove(&self) -> Result<(), (PathBuf, io::Error)> {
        self.remove_with(|d| std::fs::remove_dir(d))
    }

    /// Remove them with `remove_dir` (which must remove an empty directory only),
    /// innermost first: only directories this open made itself
    /// ([`create_with`](Self::create_with)), never one that was there, nor a
    /// symbolic link. One already gone ([`io::ErrorKind::NotFound`]) or on a
    /// file system that cannot remove directories ([`io::ErrorKind::Unsupported`])
    /// is skipped. The first that cannot be removed ends the walk, and is
    /// returned with its error: one not empty ([`io::ErrorKind::DirectoryNotEmpty`])
    /// holds what the failed open wrote, or what another program put there
    /// meanwhile (a directory of its own too), and stays with those above it.
    /// The caller reports it (or not); its own error is what it returns.
    pub fn remove_with(
        &self,
        mut remove_dir: impl FnMut(&Path) -> io::Result<()>,
    ) -> Result<(), (PathBuf, io::Error)> {
        for d in &self.dirs {
            match remove_dir(d) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::Unsupported
                    ) => {}
                Err(e) => return Err((d.clone(), e)),
            }
        }
        Ok(())
    }
}

impl NewDirs {
    /// After a failed open: [`remove`](Self::remove) them, and log (paths only)
    /// one that could not be removed for another reason than holding something
    /// (one not empty keeps what the open wrote, or what another program put
    /// there meanwhile). `engine` names the backend in the log line. The open's
    /// own error is what the caller returns. See
    /// [`undo_failed_open_with`](Self::undo_failed_open_with).
    pub fn undo_failed_open(&self, engine: &str) {
        self.undo_failed_open_with(engine, |d| std::fs::remove_dir(d));
    }

    /// [`undo_failed_open`](Self::undo_failed_open) through a backend's own
    /// `remove_dir` (its file system layer, for fault injection).
    pub fn undo_failed_open_with(
        &self,
        engine: &str,
        remove_dir: impl FnMut(&Path) -> io::Result<()>,
    ) {
        if let Err((d, e)) = self.remove_with(remove_dir) {
            if e.kind() != io::ErrorKind::DirectoryNotEmpty {
                tracing::warn!(
                    engine,
                    dir = %d.display(),
                    error = %e,
                    "a failed open could not remove the directory it created"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_directories_it_made_go_innermost_first_and_only_while_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b").join("c");
        let made = NewDirs::create(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(
            made.paths(),
            [dir.clone(), tmp.path().join("a/b"), tmp.path().join("a")]
        );
        assert!(made.contains(&dir));
        assert!(!made.contains(tmp.path()));
        // all there already: none made
        assert_eq!(NewDirs::create(&dir).unwrap(), NewDirs::default());
        std::fs::write(tmp.path().join("a/b/theirs"), b"x").unwrap();
        let (stays, e) = made.remove().unwrap_err();
        assert_eq!(stays, tmp.path().join("a/b"));
        assert_eq!(e.kind(), io::ErrorKind::DirectoryNotEmpty);
        assert!(!dir.exists());
        assert!(tmp.path().join("a/b/theirs").is_file());

        std::fs::remove_file(tmp.path().join("a/b/theirs")).unwrap();
        made.remove().unwrap();
        assert!(!tmp.path().join("a").exists());
        assert!(tmp.path().exists());
        // all gone already: nothing to do
        made.remove().unwrap();
    }

    /// A file system in memory for [`NewDirs::create_with`]: the directories
    /// there, and each path `create_dir` was asked to make.
    struct Fake {
        dirs: std::collections::BTreeSet<PathBuf>,
        asked: Vec<PathBuf>,
    }

    impl Fake {
        fn with(dirs: &[&str]) -> Fake {
            Fake {
                dirs: dirs.iter().map(PathBuf::from).collect(),
                asked: Vec::new(),
            }
        }

        fn create_dir(&mut self, d: &Path) -> io::Result<()> {
            self.asked.push(d.to_path_buf());
            if self.dirs.contains(d) {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            match d.parent() {
                Some(p) if self.dirs.contains(p) => {
                    self.dirs.insert(d.to_path_buf());
                    Ok(())
                }
                _ => Err(io::ErrorKind::NotFound.into()),
            }
        }

        /// `create_with` of `dir` on it.
        fn create(&mut self, dir: &str) -> Result<NewDirs, (NewDirs, io::Error)> {
            let this = std::cell::RefCell::new(self);
            NewDirs::create_with(
                Path::new(dir),
                |d| this.borrow_mut().create_dir(d),
                |d| this.borrow().dirs.contains(d),
            )
        }
    }

    /// The race: a directory that another process makes between two steps of
    /// this one (`mkdir -p a/b` while this one makes `a/b/c`) is never noted,
    /// so a failed open leaves it; nor is one made between this one finding its
    /// parent missing and making it.
    #[test]
    fn a_directory_made_meanwhile_by_another_process_is_never_noted() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("a/b"));
        let dir = b.join("c");
        // `a` found missing (its child's creation said so), then made by the
        // other process, with `a/b`, before this one makes it.
        let made = NewDirs::create_with(
            &dir,
            |d| {
                if d == a {
                    std::fs::create_dir_all(&b).unwrap();
                }
                std::fs::create_dir(d)
            },
            |d| d.is_dir(),
        )
        .unwrap();
        assert_eq!(made.paths(), std::slice::from_ref(&dir));
        made.undo_failed_open("test");
        assert!(b.is_dir(), "a/b, made by another process, stays");
        assert!(!dir.exists());
        std::fs::remove_dir_all(&a).unwrap();

        // This one makes `a` and `a/b`; the other makes `a/b/c` just before
        // this one would: `c` is theirs, `a/b` (not empty) and `a` stay.
        let made = NewDirs::create_with(
            &dir,
            |d| {
                if d == dir && b.is_dir() {
                    std::fs::create_dir(&dir).unwrap();
                }
                std::fs::create_dir(d)
            },
            |d| d.is_dir(),
        )
        .unwrap();
        assert_eq!(made.paths(), [b.clone(), a.clone()]);
        made.undo_failed_open("test");
        assert!(dir.is_dir(), "a/b/c, made by another process, stays");

        // A file the other process puts where this one is about to make `a/b`
        // is the error: never noted, never walked through.
        std::fs::remove_dir_all(&a).unwrap();
        let (made, e) = NewDirs::create_with(
            &b,
            |d| {
                if d == b && a.is_dir() {
                    std::fs::write(&b, b"theirs").unwrap();
                }
                std::fs::create_dir(d)
            },
            |d| d.is_dir(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(made.paths(), std::slice::from_ref(&a));
        made.undo_failed_open("test");
        assert_eq!(std::fs::read(&b).unwrap(), b"theirs");

        // The same with the walk told by a file system in memory: only what
        // `create_dir` made is noted, outermost made first.
        let mut fs = Fake::with(&["/", "/t"]);
        let made = fs.create("/t/a/b").unwrap();
        assert_eq!(made.paths(), [Path::new("/t/a/b"), Path::new("/t/a")]);
        assert_eq!(fs.asked, ["/t/a/b", "/t/a", "/t/a/b"].map(PathBuf::from));
    }

    /// What is there and is not a directory is the error, never noted: a file,
    /// a dangling symbolic link (at the path or above it); a symbolic link to a
    /// directory is walked through, never noted.
    #[cfg(unix)]
    #[test]
    fn what_is_there_is_never_noted_and_only_a_directory_is_walked_through() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, b"mine").unwrap();
        let (made, e) = NewDirs::create(&file).unwrap_err();
        assert_eq!(
            (made, e.kind()),
            (NewDirs::default(), io::ErrorKind::AlreadyExists)
        );
        let (made, e) = NewDirs::create(&file.join("x")).unwrap_err();
        assert_eq!(
            (made, e.kind()),
            (NewDirs::default(), io::ErrorKind::NotADirectory)
        );

        let dangling = tmp.path().join("dangling");
        std::os::unix::fs::symlink(tmp.path().join("gone"), &dangling).unwrap();
        for dir in [dangling.clone(), dangling.join("x"), dangling.join("x/y")] {
            let (made, e) = NewDirs::create(&dir).unwrap_err();
            assert_eq!(made, NewDirs::default(), "{}", dir.display());
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{}", dir.display());
        }
        assert!(std::fs::symlink_metadata(&dangling).unwrap().is_symlink());
        assert!(!tmp.path().join("gone").exists());

        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(NewDirs::create(&link).unwrap(), NewDirs::default());
        let made = NewDirs::create(&link.join("x")).unwrap();
        assert_eq!(made.paths(), [link.join("x")]);
        made.remove().unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert!(real.is_dir() && !real.join("x").exists());
    }

    /// A failure part of the way returns the error with those made before it,
    /// which the caller removes again; a missing root is the error too.
    #[test]
    fn a_failure_returns_those_made_before_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b").join("n".repeat(300));
        let (made, e) = NewDirs::create(&dir).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidFilename);
        assert_eq!(made.paths(), [tmp.path().join("a/b"), tmp.path().join("a")]);
        made.remove().unwrap();
        assert!(!tmp.path().join("a").exists());

        // `c` refused once its parent is there: `a` and `a/b` were made.
        let denied = |d: &Path| match d.ends_with("c") && d.parent().is_some_and(Path::is_dir) {
            true => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
            false => std::fs::create_dir(d),
        };
        let (made, e) =
            NewDirs::create_with(&tmp.path().join("a/b/c"), denied, |d| d.is_dir()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(made.paths(), [tmp.path().join("a/b"), tmp.path().join("a")]);
        made.remove().unwrap();
        // Refused on the way up: nothing made.
        let denied = |d: &Path| match d.ends_with("b") {
            true => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
            false => std::fs::create_dir(d),
        };
        let (made, e) =
            NewDirs::create_with(&tmp.path().join("a/b/c"), denied, |d| d.is_dir()).unwrap_err();
        assert_eq!(
            (made, e.kind()),
            (NewDirs::default(), io::ErrorKind::PermissionDenied)
        );
        assert!(!tmp.path().join("a").exists());

        // Nothing there, not even a root: the error, nothing made.
        let (made, e) = Fake::with(&[]).create("/a").unwrap_err();
        assert_eq!(
            (made, e.kind()),
            (NewDirs::default(), io::ErrorKind::NotFound)
        );
        // Relative: the current directory (the empty path) is taken as there,
        // never asked for; gone, its child cannot be made.
        let mut fs = Fake::with(&[""]);
        let made = fs.create("a/b").unwrap();
        assert_eq!(made.paths(), [Path::new("a/b"), Path::new("a")]);
        let mut fs = Fake::with(&[]);
        let (made, e) = fs.create("a").unwrap_err();
        assert_eq!(
            (made, e.kind()),
            (NewDirs::default(), io::ErrorKind::NotFound)
        );
        assert_eq!(fs.asked, [Path::new("a"), Path::new("a")]);
    }

    /// Named through a missing directory and `..`, an existing one is found
    /// there (made by no one here), never noted, and stays; only the missing
    /// directory named before the `..` is made, and goes. A new one named
    /// through `..` is made, and goes.
    #[test]
    fn a_directory_named_through_dot_dot_is_never_counted() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("keep/empty")).unwrap();
        let dir = tmp.path().join("nope/../keep/empty");
        let made = NewDirs::create(&dir).unwrap();
        assert_eq!(made.paths(), [tmp.path().join("nope")]);
        made.remove().unwrap();
        assert!(tmp.path().join("keep/empty").is_dir());
        assert!(!tmp.path().join("nope").exists());

        let made = NewDirs::create(&tmp.path().join("keep/../new/x")).unwrap();
        assert_eq!(
            made.paths(),
            [
                tmp.path().join("keep/../new/x"),
                tmp.path().join("keep/../new")
            ]
        );
        made.remove().unwrap();
        assert!(!tmp.path().join("new").exists());
        assert!(tmp.path().join("keep/empty").is_dir());
        // leading `..`
        let made = Fake::with(&["", "..", "../.."])
            .create("../../a/b")
            .unwrap();
        assert_eq!(made.paths(), [Path::new("../../a/b"), Path::new("../../a")]);
    }

    #[test]
    fn undo_after_a_failed_open_goes_through_the_given_remove_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("x").join("y");
        let made = NewDirs::create(&dir).unwrap();
        let mut asked = Vec::new();
        made.undo_failed_open_with("test", |d| {
            asked.push(d.to_path_buf());
            std::fs::remove_dir(d)
        });
        assert_eq!(asked, [dir.clone(), tmp.path().join("x")]);
        assert!(!tmp.path().join("x").exists());

        // One that holds something stays, with those above it, and nothing panics.
        let made = NewDirs::create(&dir).unwrap();
        std::fs::write(dir.join("theirs"), b"x").unwrap();
        made.undo_failed_open("test");
        assert!(dir.join("theirs").is_file());
    }

    /// The events a [`tracing::Subscriber`] is given, each as its fields
    /// (`name=value`, the message included): all this test needs, without a
    /// subscriber crate.
    #[derive(Clone, Default)]
    struct Events(std::sync::Arc<std::sync::Mutex<Vec<Event>>>);

    /// One event: its level and fields.
    type Event = (tracing::Level, Vec<String>);

    struct Fields(Vec<String>);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push(format!("{}={value:?}", field.name()));
        }
    }

    impl tracing::Subscriber for Events {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            let level = *event.metadata().level();
            self.0.lock().unwrap().push((level, fields.0));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// What `undo_failed_open_with` adds over `remove_with`: one not empty
    /// stops the walk without a word; any other error is one warning, naming
    /// the engine, the directory and the error, and nothing else.
    #[test]
    fn undo_warns_once_for_a_directory_it_cannot_remove_but_not_for_one_not_empty() {
        let made = NewDirs {
            dirs: vec![PathBuf::from("/nowhere/a/b"), PathBuf::from("/nowhere/a")],
        };
        let undo = |kind: io::ErrorKind| {
            let events = Events::default();
            let mut asked = 0;
            tracing::subscriber::with_default(events.clone(), || {
                made.undo_failed_open_with("test-engine", |_| {
                    asked += 1;
                    Err(io::Error::new(kind, "injected"))
                });
            });
            assert_eq!(asked, 1, "{kind:?}: the first failure ends the walk");
            let events = events.0.lock().unwrap().clone();
            events
        };

        assert_eq!(undo(io::ErrorKind::DirectoryNotEmpty), []);

        let events = undo(io::ErrorKind::PermissionDenied);
        assert_eq!(events.len(), 1, "one warning: {events:?}");
        let (level, fields) = &events[0];
        assert_eq!(*level, tracing::Level::WARN);
        let mut fields = fields.clone();
        fields.sort();
        assert_eq!(
            fields,
            [
                "dir=/nowhere/a/b",
                "engine=\"test-engine\"",
                "error=injected",
                "message=a failed open could not remove the directory it created",
            ]
        );
    }
}
