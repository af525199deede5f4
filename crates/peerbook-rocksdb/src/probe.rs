//! [`RocksBackend::probe_dir`]: what a directory holds to this backend, judged
//! from RocksDB's file naming and the column families its manifest lists (read
//! without opening the database).

use std::io;
use std::path::Path;

use peerbook::backend::Space;
use peerbook::probe::{DirEntries, DirVerdict};

use crate::{naming, RocksBackend};

impl RocksBackend {
    /// Whether RocksDB makes an entry named `name` in a database directory:
    /// RocksDB's file naming ([`naming::owns_file`](crate::naming::owns_file):
    /// `CURRENT`, `MANIFEST-N`, `N.sst`, ...).
    ///
    /// ```
    /// use peerbook_rocksdb::RocksBackend;
    /// assert!(RocksBackend::owns_file("000012.sst") && RocksBackend::owns_file("000001.dbtmp"));
    /// assert!(!RocksBackend::owns_file("x.sst") && !RocksBackend::owns_file("data.mdb"));
    /// ```
    pub fn owns_file(name: &str) -> bool {
        naming::owns_file(name)
    }

    /// Whether an entry named `name` marks a database: `CURRENT`
    /// ([`naming::marks_store`](crate::naming::marks_store)).
    pub fn marks_store(name: &str) -> bool {
        naming::marks_store(name)
    }

    /// What directory `dir` holds to this backend: nothing, its store, the
    /// leftovers of an interrupted creation, or not its directory (with the names
    /// of the entries it does not make). Lists `dir`
    /// ([`DirEntries::read`]), then [`probe_entries`](Self::probe_entries).
    ///
    /// ```
    /// use peerbook::probe::DirVerdict;
    /// use peerbook_rocksdb::RocksBackend;
    ///
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = tmp.path().join("peers");
    /// assert_eq!(RocksBackend::probe_dir(&dir)?, DirVerdict::Nothing);
    /// std::fs::create_dir(&dir)?;
    /// std::fs::write(dir.join("LOCK"), b"")?;
    /// assert_eq!(RocksBackend::probe_dir(&dir)?, DirVerdict::Leftovers);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn probe_dir(dir: impl AsRef<Path>) -> io::Result<DirVerdict> {
        let dir = dir.as_ref();
        DirEntries::probe(dir, |entries| Self::probe_entries(dir, entries))
    }

    /// [`probe_dir`](Self::probe_dir) on `entries`, the listing of `dir`: every
    /// entry must be one RocksDB makes ([`owns_file`](Self::owns_file)),
    /// `CURRENT` marks a database ([`marks_store`](Self::marks_store)), and the
    /// column families its manifest lists must be peerbook's (read-only:
    /// RocksDB's `list_cf`, no database is opened; see below), else a
    /// [`DirVerdict::Foreign`] with no unexpected entry.
    ///
    /// A database may be peerbook's when its manifest lists no family but
    /// `default` and peerbook's ([`Space`] names), and not `default` alone beside
    /// data (a `*.sst`, `*.ldb`, `*.blob` or non-empty `*.log`). Some of
    /// peerbook's families missing is fine: a crash after RocksDB wrote its first
    /// manifest and before the backend made its families leaves `default` alone,
    /// and an older peerbook's store lacks a family a later one adds (the backend
    /// makes missing families). A manifest RocksDB cannot read counts as ours:
    /// opening then fails on it too, changing nothing, and reports the damage.
    pub fn probe_entries(dir: impl AsRef<Path>, entries: &DirEntries) -> io::Result<DirVerdict> {
        let dir = dir.as_ref();
        naming::judge(entries, || Ok(may_be_peerbook(dir, entries)))
    }
}

/// Whether the RocksDB database in `dir` (its `CURRENT` is there, and `entries`
/// are its listing) may be peerbook's: see [`RocksBackend::probe_entries`].
fn may_be_peerbook(dir: &Path, entries: &DirEntries) -> bool {
    let families = match rocksdb::DB::list_cf(&rocksdb::Options::default(), dir) {
        Ok(families) => families,
        Err(_) => return true,
    };
    let known = |f: &String| {
        f == rocksdb::DEFAULT_COLUMN_FAMILY_NAME || Space::ALL.iter().any(|s| f == s.name())
    };
    if !families.iter().all(known) {
        return false;
    }
    if families
        .iter()
        .any(|f| f != rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
    {
        return true;
    }
    !entries.utf8().any(|n| match n.rsplit_once('.') {
        // RocksDB reads a table file named `.ldb` as it reads a `.sst`
        Some((_, "sst" | "ldb" | "blob")) => true,
        // a log removed since the listing (RocksDB deleting an old WAL) holds
        // nothing; one that cannot be read is taken as data
        Some((_, "log")) => std::fs::metadata(dir.join(n))
            .map_or_else(|e| e.kind() != io::ErrorKind::NotFound, |m| m.len() > 0),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn foreign(unexpected: &[&str]) -> DirVerdict {
        DirVerdict::Foreign {
            unexpected: unexpected.iter().map(|n| n.to_string()).collect(),
            marked: true,
        }
    }

    /// The verdicts the engines' probe gave through `Engine::probe`, now the
    /// backend's own: a store, leftovers, other files, and another program's
    /// database (its families or its data), read without a change.
    #[test]
    fn probe_dir_tells_a_store_from_leftovers_and_another_programs_database() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("peers");
        assert_eq!(RocksBackend::probe_dir(&dir).unwrap(), DirVerdict::Nothing);
        std::fs::create_dir(&dir).unwrap();
        for name in ["000001.dbtmp", "MANIFEST-000001", "LOCK", "LOG"] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        assert_eq!(
            RocksBackend::probe_dir(&dir).unwrap(),
            DirVerdict::Leftovers
        );
        drop(RocksBackend::open(&dir, crate::RocksOptions::default()).unwrap());
        assert_eq!(RocksBackend::probe_dir(&dir).unwrap(), DirVerdict::Store);
        std::fs::write(dir.join("notes.txt"), b"").unwrap();
        assert_eq!(
            RocksBackend::probe_dir(&dir).unwrap(),
            foreign(&["notes.txt"])
        );
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        // their family beside peerbook's
        let theirs = tmp.path().join("theirs");
        drop(rocksdb::DB::open_cf(&o, &theirs, [Space::ALL[0].name(), "theirs"]).unwrap());
        assert_eq!(RocksBackend::probe_dir(&theirs).unwrap(), foreign(&[]));
        // `default` alone, with data
        let data = tmp.path().join("data");
        {
            let db = rocksdb::DB::open(&o, &data).unwrap();
            db.put(b"their key", b"their value").unwrap();
        }
        let before = DirEntries::read(&data).unwrap();
        assert_eq!(RocksBackend::probe_dir(&data).unwrap(), foreign(&[]));
        assert_eq!(DirEntries::read(&data).unwrap(), before);
        // `default` alone without data: a crash before the families were made
        let bare = tmp.path().join("bare");
        drop(rocksdb::DB::open(&o, &bare).unwrap());
        assert_eq!(RocksBackend::probe_dir(&bare).unwrap(), DirVerdict::Store);
    }
}
