//! The directories an open (or a command creating a store) has to make, and their
//! removal when it fails: written once for the engines and the CLI, so that a
//! refused or failed open leaves the user's file system as it found it.

use std::io;
use std::path::{Component, Path, PathBuf};

/// The directories among a path and its ancestors that do not exist, innermost
/// first: those `create_dir_all` of that path makes. Noted before anything is
/// created, so that a failure can remove them again ([`NewDirs::remove`]), and
/// only them: a directory that existed before is never among them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDirs {
    /// Innermost first.
    dirs: Vec<PathBuf>,
}

impl NewDirs {
    /// The missing directories of `dir` on the real file system: `dir` and its
    /// ancestors that [`std::fs::symlink_metadata`] does not find (see
    /// [`find_with`](Self::find_with)).
    pub fn find(dir: &Path) -> NewDirs {
        Self::find_with(dir, |d| std::fs::symlink_metadata(d).map(drop))
    }

    /// The missing directories of `dir`, as `look` (which fails on a path that
    /// is not there) tells: a backend's own file system layer, for fault
    /// injection. One is missing when `look` fails with
    /// [`io::ErrorKind::NotFound`], or [`io::ErrorKind::InvalidFilename`] (a name
    /// too long for the file system, which therefore cannot be there); the walk
    /// up stops at the first that is there, or cannot be told (any other error):
    /// such a one is never counted as made by this open. A path with a `..`
    /// component after a name names through it a directory that may exist
    /// under another name: never counted either (of `nope/../keep/empty`, only
    /// `nope`; leading ones, as in `../a`, are counted as any other).
    pub fn find_with(dir: &Path, mut look: impl FnMut(&Path) -> io::Result<()>) -> NewDirs {
        let mut missing = |d: &Path| {
            look(d).is_err_and(|e| {
                matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::InvalidFilename
                )
            })
        };
        let dirs = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && missing(d))
            // One named through `..` may be a directory that exists under its
            // own name (`nope/../keep` is `keep`, missing only while `nope` is):
            // never counted. Those without such a `..` (`nope`) name what is made.
            .filter(|d| !through_dot_dot(d))
            .map(Path::to_path_buf)
            .collect();
        NewDirs { dirs }
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
    /// innermost first. One already gone ([`io::ErrorKind::NotFound`]), never made
    /// (a name too long, [`io::ErrorKind::InvalidFilename`]) or on a file
    /// system that cannot remove directories ([`io::ErrorKind::Unsupported`]) is
    /// skipped. The first that cannot be removed ends the walk, and is returned with
    /// its error: one not empty ([`io::ErrorKind::DirectoryNotEmpty`]) holds what the
    /// failed open wrote, or what another program put there meanwhile, and stays
    /// with those above it. The caller reports it (or not); its own error is what
    /// it returns.
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
                        io::ErrorKind::NotFound
                            | io::ErrorKind::InvalidFilename
                            | io::ErrorKind::Unsupported
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

/// Whether `path` has a `..` after a name (`nope/..`), which names, through that
/// name, a directory that may exist under another (leading ones, `../a`, do not).
fn through_dot_dot(path: &Path) -> bool {
    let mut named = false;
    path.components().any(|c| match c {
        Component::Normal(_) => {
            named = true;
            false
        }
        Component::ParentDir => named,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_missing_directories_go_innermost_first_and_only_while_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("b").join("c");
        let made = NewDirs::find(&dir);
        assert_eq!(
            made.paths(),
            [dir.clone(), tmp.path().join("a/b"), tmp.path().join("a")]
        );
        assert!(made.contains(&dir));
        assert!(!made.contains(tmp.path()));
        std::fs::create_dir_all(&dir).unwrap();
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
        assert_eq!(NewDirs::find(tmp.path()), NewDirs::default());
    }

    /// Through a missing directory and `..`, an existing one looks missing: it
    /// is never counted, and stays; only the missing directory named without
    /// `..` goes.
    #[test]
    fn a_directory_named_through_dot_dot_is_never_counted() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("keep/empty")).unwrap();
        let dir = tmp.path().join("nope/../keep/empty");
        let made = NewDirs::find(&dir);
        assert_eq!(made.paths(), [tmp.path().join("nope")]);
        std::fs::create_dir_all(&dir).unwrap();
        made.remove().unwrap();
        assert!(tmp.path().join("keep/empty").is_dir());
        assert!(!tmp.path().join("nope").exists());
        // leading `..` name no directory through another
        let made = NewDirs::find(&tmp.path().join("keep/../new/x"));
        assert_eq!(made, NewDirs::default());
        let made = NewDirs::find_with(Path::new("../../a/b"), |d| {
            match d.components().any(|c| matches!(c, Component::Normal(_))) {
                true => Err(io::ErrorKind::NotFound.into()),
                false => Ok(()),
            }
        });
        assert_eq!(made.paths(), [Path::new("../../a/b"), Path::new("../../a")]);
    }

    #[test]
    fn undo_after_a_failed_open_goes_through_the_given_remove_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("x").join("y");
        let made = NewDirs::find(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut asked = Vec::new();
        made.undo_failed_open_with("test", |d| {
            asked.push(d.to_path_buf());
            std::fs::remove_dir(d)
        });
        assert_eq!(asked, [dir.clone(), tmp.path().join("x")]);
        assert!(!tmp.path().join("x").exists());

        // One that holds something stays, with those above it, and nothing panics.
        let made = NewDirs::find(&dir);
        std::fs::create_dir_all(&dir).unwrap();
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
