//! Tests of [`NewDirs`]: what it notes as made, what it walks through, what
//! is its error, and what its undo removes and says.

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
            |d| Ok(this.borrow().dirs.contains(d)),
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
        |d| Ok(d.is_dir()),
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
        |d| Ok(d.is_dir()),
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
        |d| Ok(d.is_dir()),
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
    // A file above the store: the error names it (not the bare ENOTDIR of
    // the path asked for), and its source is what `create_dir` said there.
    for dir in [file.join("x"), file.join("x/y")] {
        let (made, e) = NewDirs::create(&dir).unwrap_err();
        assert_eq!(
            (made, e.kind()),
            (NewDirs::default(), io::ErrorKind::NotADirectory)
        );
        let said = e.to_string();
        assert!(
            said.starts_with(&format!(
                "{} is there and is not a directory",
                file.display()
            )),
            "{said}"
        );
    }

    let dangling = tmp.path().join("dangling");
    std::os::unix::fs::symlink(tmp.path().join("gone"), &dangling).unwrap();
    for (dir, kind) in [
        (dangling.clone(), io::ErrorKind::AlreadyExists),
        (dangling.join("x"), io::ErrorKind::NotADirectory),
        (dangling.join("x/y"), io::ErrorKind::NotADirectory),
    ] {
        let (made, e) = NewDirs::create(&dir).unwrap_err();
        assert_eq!(made, NewDirs::default(), "{}", dir.display());
        assert_eq!(e.kind(), kind, "{}", dir.display());
        // The error names what is there, not the path asked for, and keeps
        // the error `create_dir` gave there as its source.
        let said = e.to_string();
        assert!(
            said.starts_with(&format!(
                "{} is there and is not a directory",
                dangling.display()
            )),
            "{said}"
        );
        let source = std::error::Error::source(e.get_ref().unwrap()).unwrap();
        let source = source.downcast_ref::<io::Error>().unwrap();
        assert_eq!(source.kind(), io::ErrorKind::AlreadyExists);
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

/// A failure to tell whether what is there is a directory is that error
/// (its kind, naming the path), never taken for "not a directory"
/// (`AlreadyExists`): a loop of symbolic links, or one `is_dir` injected.
#[test]
fn a_failure_of_is_dir_is_the_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let there = tmp.path().join("there");
    std::fs::create_dir(&there).unwrap();
    let (made, e) = NewDirs::create_with(
        &there,
        |d| std::fs::create_dir(d),
        |_| Err(io::Error::from(io::ErrorKind::PermissionDenied)),
    )
    .unwrap_err();
    assert_eq!(made, NewDirs::default());
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert!(
        e.to_string().starts_with(&format!(
            "cannot tell whether {} is a directory",
            there.display()
        )),
        "{e}"
    );

    #[cfg(unix)]
    {
        let looped = tmp.path().join("loop");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        for dir in [looped.clone(), looped.join("a")] {
            let (made, e) = NewDirs::create(&dir).unwrap_err();
            assert_eq!(made, NewDirs::default(), "{}", dir.display());
            assert!(
                !matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory
                ),
                "{}: {e:?}",
                dir.display()
            );
        }
        assert!(std::fs::symlink_metadata(&looped).unwrap().is_symlink());
    }
}

/// Another process removes a directory this one just made (its own failed
/// open of the same new path, undone) before this one makes the next one
/// down: the walk starts again, and makes them all, each noted once. A
/// directory that keeps going missing ends the walk after 3 of them.
#[test]
fn a_directory_gone_on_the_way_down_starts_the_walk_again() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let dir = a.join("b").join("c");
    let mut removals = 1;
    let mut asked = Vec::new();
    let made = NewDirs::create_with(
        &dir,
        |d| {
            asked.push(d.to_path_buf());
            if d == a.join("b") && a.is_dir() && removals > 0 {
                removals -= 1;
                std::fs::remove_dir(&a).unwrap();
            }
            std::fs::create_dir(d)
        },
        |d| Ok(d.is_dir()),
    )
    .unwrap();
    assert!(dir.is_dir());
    assert_eq!(made.paths(), [dir.clone(), a.join("b"), a.clone()]);
    assert_eq!(asked.iter().filter(|d| **d == a).count(), 2, "{asked:?}");
    made.remove().unwrap();
    assert!(!a.exists());

    // Gone each time: the error after 3 walks, with `a` no longer noted
    // (made by each walk, gone since: what is there later is another's).
    let mut walks = 0;
    let (made, e) = NewDirs::create_with(
        &dir,
        |d| {
            if d == dir {
                walks += 1;
            }
            if d == a.join("b") && a.is_dir() {
                std::fs::remove_dir(&a).unwrap();
            }
            std::fs::create_dir(d)
        },
        |d| Ok(d.is_dir()),
    )
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("went missing"), "{e}");
    assert_eq!(walks, 3);
    assert_eq!(made, NewDirs::default());
    assert!(!a.exists());

    // Both `a/b` and `a`, made by this one, removed before it makes `c`;
    // `a` made again by the other process before the next walk gets to it:
    // `a` is theirs, never noted again, and stays after the undo.
    let mut removed = false;
    let mut remade = false;
    let made = NewDirs::create_with(
        &dir,
        |d| {
            if d == dir && !removed && a.join("b").is_dir() {
                removed = true;
                std::fs::remove_dir(a.join("b")).unwrap();
                std::fs::remove_dir(&a).unwrap();
            } else if d == a && removed && !remade {
                remade = true;
                std::fs::create_dir(&a).unwrap();
            }
            std::fs::create_dir(d)
        },
        |d| Ok(d.is_dir()),
    )
    .unwrap();
    assert!(remade);
    assert_eq!(made.paths(), [dir.clone(), a.join("b")]);
    made.undo_failed_open("test");
    assert!(a.is_dir(), "a, made again by another process, stays");
    std::fs::remove_dir(&a).unwrap();
}

/// What `create_dir` said was there, gone by the time `is_dir` looks (a
/// directory another process removed in between): not taken for "not a
/// directory", the walk starts again and makes it. What stays there and is
/// not a directory is the error after 3 walks.
#[test]
fn a_directory_gone_between_create_dir_and_is_dir_is_walked_again() {
    // `/t/a` there when `create_dir` asks, gone when `is_dir` does.
    let fs = std::cell::RefCell::new(Fake::with(&["/", "/t", "/t/a"]));
    let mut looked = 0;
    let made = NewDirs::create_with(
        Path::new("/t/a"),
        |d| fs.borrow_mut().create_dir(d),
        |d| {
            looked += 1;
            if looked == 1 {
                fs.borrow_mut().dirs.remove(d);
            }
            Ok(fs.borrow().dirs.contains(d))
        },
    )
    .unwrap();
    assert_eq!(made.paths(), [Path::new("/t/a")]);
    assert_eq!(fs.borrow().asked, ["/t/a"; 2].map(PathBuf::from));
    assert!(fs.borrow().dirs.contains(Path::new("/t/a")));

    // Not a directory each time it looks: the error, naming it, after 3 walks.
    let fs = std::cell::RefCell::new(Fake::with(&["/", "/t", "/t/a"]));
    let (made, e) = NewDirs::create_with(
        Path::new("/t/a"),
        |d| fs.borrow_mut().create_dir(d),
        |_| Ok(false),
    )
    .unwrap_err();
    assert_eq!(
        (made, e.kind()),
        (NewDirs::default(), io::ErrorKind::AlreadyExists)
    );
    assert!(
        e.to_string()
            .starts_with("/t/a is there and is not a directory"),
        "{e}"
    );
    assert_eq!(fs.borrow().asked, ["/t/a"; 3].map(PathBuf::from));
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
        NewDirs::create_with(&tmp.path().join("a/b/c"), denied, |d| Ok(d.is_dir())).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(made.paths(), [tmp.path().join("a/b"), tmp.path().join("a")]);
    made.remove().unwrap();
    // Refused on the way up: nothing made.
    let denied = |d: &Path| match d.ends_with("b") {
        true => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
        false => std::fs::create_dir(d),
    };
    let (made, e) =
        NewDirs::create_with(&tmp.path().join("a/b/c"), denied, |d| Ok(d.is_dir())).unwrap_err();
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
