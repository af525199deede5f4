//! RocksDB's file naming, without RocksDB: which entries of a directory RocksDB
//! makes and which marks a database. Always compiled, feature `engine` or not,
//! so a registry of engines built without RocksDB's C++ (`peerbook-engines`
//! without its `rocksdb` feature) still tells a RocksDB store's files apart.
//! With the backend, [`RocksBackend::owns_file`], [`RocksBackend::marks_store`]
//! and [`RocksBackend::probe_dir`] say the same.
//!
//! [`RocksBackend::owns_file`]: crate::RocksBackend::owns_file
//! [`RocksBackend::marks_store`]: crate::RocksBackend::marks_store
//! [`RocksBackend::probe_dir`]: crate::RocksBackend::probe_dir

use std::io;

use peerbook::probe::{DirEntries, DirVerdict};

/// `digits` is a non-empty run of ASCII digits.
pub(crate) fn all_digits(digits: &str) -> bool {
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether RocksDB makes an entry named `name` in a database directory:
/// `CURRENT`, `IDENTITY`, `LOCK`, `LOG`, `LOG.old.*`, `MANIFEST-N`, `OPTIONS-N`,
/// `N.log`, `N.sst`, `N.ldb`, `N.blob`, their `.dbtmp` temporaries and `N.dbtmp`
/// (a new database's first manifest): RocksDB's file naming, with its default
/// log directory (the backend's).
///
/// ```
/// use peerbook_rocksdb::naming::owns_file;
/// assert!(owns_file("000012.sst") && owns_file("000001.dbtmp"));
/// assert!(!owns_file("x.sst") && !owns_file("data.mdb"));
/// ```
pub fn owns_file(name: &str) -> bool {
    if name.strip_suffix(".dbtmp").is_some_and(all_digits) {
        // `NNNNNN.dbtmp`: a new database's manifest before its rename
        return true;
    }
    let name = name.strip_suffix(".dbtmp").unwrap_or(name);
    matches!(name, "CURRENT" | "IDENTITY" | "LOCK" | "LOG")
        || name.starts_with("LOG.old.")
        || ["MANIFEST-", "OPTIONS-"]
            .iter()
            .any(|p| name.strip_prefix(p).is_some_and(all_digits))
        || name
            .rsplit_once('.')
            .is_some_and(|(n, ext)| all_digits(n) && matches!(ext, "log" | "sst" | "ldb" | "blob"))
}

/// Whether an entry named `name` marks a database: `CURRENT` (what RocksDB
/// itself takes for "a database exists").
pub fn marks_store(name: &str) -> bool {
    name == "CURRENT"
}

/// The verdict on `entries` from their names alone: RocksDB's files only
/// ([`owns_file`]), `CURRENT` ([`marks_store`]) marking a database, which
/// `is_store` (called only then) takes for peerbook's or not. Without the
/// backend (feature `engine`) nothing reads the manifest: pass `|| Ok(true)`.
pub fn judge(
    entries: &DirEntries,
    is_store: impl FnOnce() -> io::Result<bool>,
) -> io::Result<DirVerdict> {
    let unexpected = entries.unowned(|name| Ok(owns_file(name)))?;
    let marked = entries.utf8().any(marks_store);
    DirVerdict::judge(entries, unexpected, marked, is_store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocksdbs_file_names_are_its_own() {
        for name in [
            "CURRENT",
            "IDENTITY",
            "LOCK",
            "LOG",
            "LOG.old.1700000000",
            "MANIFEST-000005",
            "OPTIONS-000007",
            "OPTIONS-000007.dbtmp",
            "000001.dbtmp",
            "000003.log",
            "000012.sst",
            "000012.ldb",
            "000012.blob",
        ] {
            assert!(owns_file(name), "{name}");
        }
        for name in [
            "x.sst",
            "x.dbtmp",
            ".sst",
            "MANIFEST-",
            "MANIFEST-x",
            "000012.txt",
            "log.7",
            "data.mdb",
            "CURRENT.bak",
        ] {
            assert!(!owns_file(name), "{name}");
        }
        assert!(marks_store("CURRENT") && !marks_store("IDENTITY"));
    }
}
