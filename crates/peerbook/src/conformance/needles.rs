//! Looking for what a clear must leave behind nowhere: the forms a peer id takes
//! on disk, and the files of a store's directory that hold one of a set of byte
//! strings. For the tests that check a cleared book is gone from the files
//! (`tests/clear_wipes.rs` of the workspace, the RocksDB backend's clear tests).

use std::path::Path;

/// The forms a peer id can take in a store's files: its bytes (record keys,
/// `by_quality` quality keys after the score byte), each byte negated
/// (`by_last_seen` keys and the rank keys of `by_quality`, see docs/format.md),
/// and both as upper- and lower-case hex (RocksDB's `LOG` prints keys in hex).
/// Each with a label for a failure message.
///
/// ```
/// use peerbook::conformance::needles::id_forms;
/// let forms = id_forms(b"\x01");
/// assert!(forms.contains(&("negated id as HEX", b"FE".to_vec())));
/// assert_eq!(forms.len(), 6);
/// ```
pub fn id_forms(id: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let negated: Vec<u8> = id.iter().map(|b| !b).collect();
    let hex = |bytes: &[u8], upper: bool| -> Vec<u8> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if upper { text.to_uppercase() } else { text }.into_bytes()
    };
    vec![
        ("id", id.to_vec()),
        ("negated id", negated.clone()),
        ("id as HEX", hex(id, true)),
        ("id as hex", hex(id, false)),
        ("negated id as HEX", hex(&negated, true)),
        ("negated id as hex", hex(&negated, false)),
    ]
}

/// `(file, label)` for every regular file under `dir` (recursively; `file` is its
/// path below `dir`) that holds one of `needles`, sorted, each pair once. Empty
/// files are not opened: an open RocksDB, LMDB or file book's `LOCK` is empty,
/// and closing a descriptor of it would drop its POSIX lock
/// ([`FileLock`](crate::backend::FileLock)). LMDB's own `lock.mdb` is not empty:
/// scan an LMDB book once it is closed. A file that vanishes during the walk (an engine deleting obsolete files in the
/// background) is skipped; any other failure to read panics.
pub fn files_holding(dir: &Path, needles: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    walk(dir, dir, needles, &mut found);
    found.sort();
    found.dedup();
    found
}

fn walk(root: &Path, dir: &Path, needles: &[(String, Vec<u8>)], found: &mut Vec<(String, String)>) {
    use std::io::ErrorKind::NotFound;
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == NotFound && dir != root => return,
        Err(e) => panic!("listing {}: {e}", dir.display()),
    };
    for entry in listing {
        let entry = entry.unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(e) if e.kind() == NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        if kind.is_dir() {
            walk(root, &path, needles, found);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        // An empty file holds nothing, and is not opened: an engine's `LOCK` is
        // an empty file under a POSIX lock, which the close of a read would drop.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == 0 => continue,
            Ok(_) => {}
            Err(e) if e.kind() == NotFound => continue,
            Err(e) => panic!("{}: {e}", path.display()),
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == NotFound => continue,
            Err(e) => panic!("reading {}: {e}", path.display()),
        };
        let file = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        for (label, needle) in needles {
            if !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == &needle[..]) {
                found.push((file.clone(), label.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_needle_in_each_file_below_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        std::fs::write(tmp.path().join("a"), b"..abc..").unwrap();
        std::fs::write(tmp.path().join("sub").join("b"), b"xyz abc").unwrap();
        std::fs::write(tmp.path().join("c"), b"nothing").unwrap();
        let needles = vec![
            ("first".to_string(), b"abc".to_vec()),
            ("second".to_string(), b"xyz".to_vec()),
        ];
        let sub_b = Path::new("sub").join("b").display().to_string();
        assert_eq!(
            files_holding(tmp.path(), &needles),
            vec![
                ("a".to_string(), "first".to_string()),
                (sub_b.clone(), "first".to_string()),
                (sub_b, "second".to_string()),
            ]
        );
    }
}
