//! Removal of the directories a failed [`RocksBackend::open`](crate::RocksBackend::open)
//! created on the way to its database (noted with [`NewDirs::find`] before
//! anything is made): a refused open leaves the user's file system as it found it.

use std::io;

use peerbook::backend::NewDirs;

/// Remove the directories a failed open made, innermost first, each only if
/// empty (never RocksDB's own files: one holding its `LOCK` or `LOG` stays, with
/// those above it). One that cannot be removed for another reason is logged
/// (paths only); the open's own error is what it returns.
pub(crate) fn remove_made_dirs(made: &NewDirs) {
    if let Err((d, e)) = made.remove() {
        if e.kind() != io::ErrorKind::DirectoryNotEmpty {
            tracing::warn!(dir = %d.display(), error = %e, "peerbook-rocksdb: a failed open could not remove the directory it created");
        }
    }
}
