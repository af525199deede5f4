//! [`FileBackend::probe_dir`]: what a directory holds to this backend, judged from
//! its names and the first bytes of each log whose generation has no snapshot.

use std::io;
use std::path::Path;

use peerbook::probe::{DirEntries, DirVerdict};

use crate::{FileBackend, LoneLog};

/// The logs of a directory whose generation has no snapshot, by what their bytes
/// make them ([`FileBackend::lone_logs`]), among the entries the probe listed:
/// none read unless some entry is named like a store's marker.
#[derive(Default)]
struct LoneLogs {
    /// Logs this backend did not write (an empty file, another program's bytes):
    /// not its files.
    not_ours: Vec<String>,
    /// Its header and nothing after it (an interrupted creation's): its files,
    /// marking no store.
    no_frames: Vec<String>,
}

impl LoneLogs {
    fn read(dir: &Path, entries: &DirEntries) -> io::Result<LoneLogs> {
        let mut lone = LoneLogs::default();
        if entries.utf8().any(FileBackend::marks_store) {
            for (name, log) in FileBackend::lone_logs_among(dir, entries.utf8())? {
                match log {
                    LoneLog::HeaderOnly => lone.no_frames.push(name),
                    LoneLog::Frames => {}
                    LoneLog::NotOurs => lone.not_ours.push(name),
                }
            }
        }
        Ok(lone)
    }

    /// Whether the entry `name` marks a store: its name
    /// ([`FileBackend::marks_store`]), and for a lone log its bytes (frames after
    /// this backend's header).
    fn marks(&self, name: &str) -> bool {
        FileBackend::marks_store(name)
            && !self
                .not_ours
                .iter()
                .chain(&self.no_frames)
                .any(|l| l == name)
    }
}

impl FileBackend {
    /// What directory `dir` holds to this backend: nothing, its store, the
    /// leftovers of an interrupted creation, or not its directory (with the names
    /// of the entries it does not make). Lists `dir`
    /// ([`DirEntries::read`]), then [`probe_entries`](Self::probe_entries).
    ///
    /// ```
    /// use peerbook::probe::DirVerdict;
    /// use peerbook_file::{FileBackend, FileOptions};
    ///
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = tmp.path().join("peers");
    /// assert_eq!(FileBackend::probe_dir(&dir)?, DirVerdict::Nothing);
    /// drop(FileBackend::open(&dir, FileOptions::default()).unwrap());
    /// assert_eq!(FileBackend::probe_dir(&dir)?, DirVerdict::Store);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn probe_dir(dir: impl AsRef<Path>) -> io::Result<DirVerdict> {
        let dir = dir.as_ref();
        DirEntries::probe(dir, |entries| Self::probe_entries(dir, entries))
    }

    /// [`probe_dir`](Self::probe_dir) on `entries`, the listing of `dir`. Every
    /// entry must be one this backend makes ([`owns_file`](Self::owns_file)),
    /// and a store is marked by a snapshot or a log
    /// ([`marks_store`](Self::marks_store)). Names alone do not tell a log whose
    /// generation has no snapshot: those are read ([`lone_logs`](Self::lone_logs),
    /// read-only, when some entry is named like a marker). A log of bytes this backend did
    /// not write (a user's empty `log.7`) is an unexpected entry; one holding
    /// its header alone (what an interrupted creation leaves) is its own and
    /// marks no store; one with frames after the header marks a (damaged)
    /// store, which [`open`](Self::open) reports.
    pub fn probe_entries(dir: impl AsRef<Path>, entries: &DirEntries) -> io::Result<DirVerdict> {
        let lone = LoneLogs::read(dir.as_ref(), entries)?;
        let mut unexpected = entries.unowned(|name| Ok(Self::owns_file(name)))?;
        unexpected.extend(lone.not_ours.iter().cloned());
        let marked = entries.utf8().any(|name| lone.marks(name));
        DirVerdict::judge(entries, unexpected, marked, || Ok(true))
    }

    /// Whether `entries`, the listing of `dir`, mark a store of this backend, as
    /// [`probe_entries`](Self::probe_entries) reads them: a snapshot, or a log
    /// whose generation has a snapshot or which holds frames after this
    /// backend's header. For a program that asks which engine's store a
    /// directory holds when it is not this backend's directory (other files
    /// beside the store).
    pub fn marks_store_among(dir: impl AsRef<Path>, entries: &DirEntries) -> io::Result<bool> {
        let lone = LoneLogs::read(dir.as_ref(), entries)?;
        Ok(entries.utf8().any(|name| lone.marks(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbook::backend::{Backend, Durability, Space, WriteBatch};

    use crate::FileOptions;

    fn foreign(unexpected: &[&str], marked: bool) -> DirVerdict {
        DirVerdict::Foreign {
            unexpected: unexpected.iter().map(|n| n.to_string()).collect(),
            marked,
        }
    }

    fn marks(dir: &Path) -> bool {
        let entries = DirEntries::read(dir).unwrap().unwrap();
        FileBackend::marks_store_among(dir, &entries).unwrap()
    }

    /// The verdicts the engines' probe gave through `Engine::probe`, now the
    /// backend's own: nothing, leftovers, a store, other files beside it.
    #[test]
    fn probe_dir_tells_a_store_from_leftovers_and_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("peers");
        assert_eq!(FileBackend::probe_dir(&dir).unwrap(), DirVerdict::Nothing);
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(dir.join("lost+found")).unwrap();
        assert_eq!(FileBackend::probe_dir(&dir).unwrap(), DirVerdict::Nothing);
        std::fs::remove_dir(dir.join("lost+found")).unwrap();
        std::fs::write(dir.join("LOCK"), b"").unwrap();
        assert_eq!(FileBackend::probe_dir(&dir).unwrap(), DirVerdict::Leftovers);
        drop(FileBackend::open(&dir, FileOptions::default()).unwrap());
        assert_eq!(FileBackend::probe_dir(&dir).unwrap(), DirVerdict::Store);
        assert!(marks(&dir));
        std::fs::write(dir.join("notes.txt"), b"").unwrap();
        std::fs::write(dir.join("log.01"), b"").unwrap();
        assert_eq!(
            FileBackend::probe_dir(&dir).unwrap(),
            foreign(&["log.01", "notes.txt"], true)
        );
    }

    /// A log whose generation has no snapshot is judged by its bytes: a user's
    /// empty `log.7` is not the backend's file and marks nothing; the header
    /// alone (an interrupted creation) is its file marking no store; frames
    /// after it mark a (damaged) store.
    #[test]
    fn a_lone_log_is_judged_by_its_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        std::fs::create_dir(&app).unwrap();
        std::fs::write(app.join("log.7"), b"").unwrap();
        assert_eq!(
            FileBackend::probe_dir(&app).unwrap(),
            foreign(&["log.7"], false)
        );
        assert!(!marks(&app));
        std::fs::write(app.join("notes.txt"), b"").unwrap();
        assert_eq!(
            FileBackend::probe_dir(&app).unwrap(),
            foreign(&["log.7", "notes.txt"], false)
        );
        // a new store whose snapshot is gone: the header alone
        let created = tmp.path().join("created");
        drop(FileBackend::open(&created, FileOptions::default()).unwrap());
        std::fs::remove_file(created.join("snapshot.1")).unwrap();
        assert_eq!(
            FileBackend::probe_dir(&created).unwrap(),
            DirVerdict::Leftovers
        );
        assert!(!marks(&created));
        // a store with a write whose snapshot is gone: frames after the header
        let damaged = tmp.path().join("damaged");
        let b = FileBackend::open(&damaged, FileOptions::default()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
        b.write(batch, Durability::Sync).unwrap();
        drop(b);
        std::fs::remove_file(damaged.join("snapshot.1")).unwrap();
        assert_eq!(FileBackend::probe_dir(&damaged).unwrap(), DirVerdict::Store);
        assert!(marks(&damaged));
        std::fs::write(damaged.join("notes.txt"), b"").unwrap();
        assert_eq!(
            FileBackend::probe_dir(&damaged).unwrap(),
            foreign(&["notes.txt"], true)
        );
    }

    /// The lone logs are judged among the listing the probe judges (one
    /// listing, not a second one taken later): an entry that appeared after it
    /// is not in the verdict, and a snapshot that appeared after it does not
    /// change which logs are lone.
    #[test]
    fn lone_logs_are_judged_among_the_probe_s_listing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        drop(FileBackend::open(dir, FileOptions::default()).unwrap());
        // written after the listing below: another program's empty log
        std::fs::write(dir.join("log.9"), b"").unwrap();
        let listed = DirEntries::from_names(["LOCK", "log.1", "snapshot.1"]);
        assert_eq!(
            FileBackend::probe_entries(dir, &listed).unwrap(),
            DirVerdict::Store
        );
        assert!(FileBackend::marks_store_among(dir, &listed).unwrap());
        // a listing taken before the snapshot was written: log.1 is lone in it,
        // its header alone, an interrupted creation's
        std::fs::remove_file(dir.join("log.9")).unwrap();
        let listed = DirEntries::from_names(["LOCK", "log.1"]);
        assert_eq!(
            FileBackend::probe_entries(dir, &listed).unwrap(),
            DirVerdict::Leftovers
        );
        assert!(!FileBackend::marks_store_among(dir, &listed).unwrap());
    }
}
