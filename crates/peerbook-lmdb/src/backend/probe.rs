//! Telling a peerbook book from another program's LMDB environment, without
//! writing to it: [`LmdbBackend::may_be_peerbook`].

use std::fs;
use std::io;
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, EnvFlags, EnvOpenOptions, MdbError};
use peerbook::backend::{BackendError, Space};

use crate::error::{from_heed_at_open, from_io};
use crate::value::LAYOUT_DB;

use super::{LmdbBackend, DATA_FILE, LMDB_LOCK_FILE};

/// The database named `name` (a key of the environment's main, unnamed,
/// database) if [`LmdbBackend::open`] makes it: one per [`Space`] (`open_env` and
/// `create::ensure_created`) and its own settings, [`LAYOUT_DB`].
fn peerbook_database(name: &[u8]) -> Option<&'static str> {
    Space::ALL
        .map(Space::name)
        .into_iter()
        .chain([LAYOUT_DB])
        .find(|ours| ours.as_bytes() == name)
}

/// How many databases [`peerbook_database`] knows.
const PEERBOOK_DATABASES: u32 = Space::ALL.len() as u32 + 1;

impl LmdbBackend {
    /// Whether the LMDB environment in directory `dir` (its `data.mdb` is there) may
    /// be a peerbook book, judged without writing to it: its main (unnamed)
    /// database is empty (an environment whose first commit never came), or its
    /// keys are the records of all four space databases (`peers`,
    /// `by_last_seen`, `by_quality`, `meta`) and nothing else but, optionally,
    /// `peerbook_lmdb` (books from before it lack it). Peerbook creates the four
    /// in one transaction (`create::ensure_created`, and `open` since the first
    /// version), so an environment holding only some of them is another
    /// program's. `false` means another program's environment, which `open`
    /// would change: it creates its databases in it.
    ///
    /// The environment is opened read-only (`MDB_RDONLY`: `data.mdb` is opened and
    /// mapped read-only) and closed before this returns. It takes part in LMDB's
    /// locking through `lock.mdb` like any reader, so a program writing the
    /// environment meanwhile keeps the pages read here until the read ends
    /// (`MDB_NOLOCK` would let that writer reuse them mid-read). LMDB's reader
    /// registration writes `lock.mdb` only (its reader table; the first opener
    /// resets it, as any LMDB program's open does); without a `lock.mdb`, which
    /// `MDB_RDONLY` would create, the environment is read with `MDB_NOLOCK` and no
    /// file is made: LMDB creates `lock.mdb` at every locking open and never
    /// removes it, so none is open with locks.
    ///
    /// No `data.mdb`, or one LMDB does not take for an environment (empty, not an
    /// LMDB file, or of another LMDB version), counts as peerbook's: `open` fails
    /// on it too before it writes to it (an empty one it makes into a new book),
    /// as for a RocksDB manifest the engines' probe cannot read. Any other failure
    /// (the environment already open in this process, `lock.mdb` not writable,
    /// damage met while reading the main database) is an error, never a guess.
    pub fn may_be_peerbook(dir: impl AsRef<Path>) -> Result<bool, BackendError> {
        let dir = dir.as_ref();
        match fs::metadata(dir.join(DATA_FILE)) {
            // LMDB's open would make a new environment of it (and `open` a new book)
            Ok(meta) if meta.len() == 0 => return Ok(true),
            Ok(_) => {}
            // gone meanwhile: nothing of anyone's to change
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(from_io(e, dir)),
        }
        let locked = match fs::symlink_metadata(dir.join(LMDB_LOCK_FILE)) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(from_io(e, dir)),
        };
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder.max_dbs(PEERBOOK_DATABASES);
        let flags = if locked {
            EnvFlags::READ_ONLY
        } else {
            EnvFlags::READ_ONLY | EnvFlags::NO_LOCK
        };
        // SAFETY: `READ_ONLY` weakens nothing. `NO_LOCK` (only when there is no
        // `lock.mdb`) leaves concurrent access to us: no locking LMDB process has
        // the environment open (its open would have made `lock.mdb`, which LMDB
        // never removes), we make a single short read transaction, and a process
        // opening it meanwhile could reuse a page we read only after two commits
        // of its own (LMDB keeps the last two snapshots); the page numbers we
        // follow are checked against our snapshot, inside our map.
        unsafe {
            builder.flags(flags);
        }
        // SAFETY: the map is read-only and we never write the files. Another
        // program changing `data.mdb` meanwhile does so through LMDB, which keeps
        // the pages of our snapshot while our reader is registered in `lock.mdb`
        // (see above for the case without one); nothing read outlives the read
        // transaction.
        let env = match unsafe { builder.open(dir) } {
            Ok(env) => env,
            Err(heed::Error::Mdb(MdbError::Invalid | MdbError::VersionMismatch)) => {
                return Ok(true)
            }
            Err(e) => return Err(from_heed_at_open(e, dir)),
        };
        // Set when the main database holds a key that is no database of ours.
        let mut foreign = false;
        let read = env.read_txn().and_then(|rtxn| {
            env.open_databases_and_commit(
                rtxn,
                |opener, rtxn| -> heed::Result<CommitOrAbort<(), ()>> {
                    let Some(main) = opener.open_database::<Bytes, Bytes>(rtxn, None)? else {
                        return Err(heed::Error::Mdb(MdbError::NotFound));
                    };
                    let mut names = Vec::new();
                    for entry in main.iter(rtxn)? {
                        match peerbook_database(entry?.0) {
                            Some(name) => names.push(name),
                            None => foreign = true,
                        }
                    }
                    // All four spaces or none: peerbook makes them together.
                    let spaces = Space::ALL
                        .iter()
                        .filter(|space| names.contains(&space.name()))
                        .count();
                    if !names.is_empty() && spaces < Space::ALL.len() {
                        foreign = true;
                    }
                    for name in names {
                        // A key of the main database that is data, not a
                        // database's record, is refused by LMDB as a name.
                        match opener.open_database::<Bytes, Bytes>(rtxn, Some(name)) {
                            Ok(_) => {}
                            Err(heed::Error::Mdb(MdbError::Incompatible)) => foreign = true,
                            Err(e) => return Err(e),
                        }
                    }
                    // Aborted: the read keeps no database handle open.
                    Ok(CommitOrAbort::Abort(()))
                },
            )
        });
        env.prepare_for_closing().wait();
        match read {
            Ok(_) => Ok(!foreign),
            Err(e) => Err(from_heed_at_open(e, dir)),
        }
    }
}
