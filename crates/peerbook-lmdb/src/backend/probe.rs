//! Telling a peerbook book from another program's LMDB environment, without
//! writing to it: [`LmdbBackend::may_be_peerbook`], and what a directory holds
//! to this backend ([`LmdbBackend::probe_dir`]); the names in an environment's
//! main database, read the same way ([`LmdbBackend::database_names`]).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, WithoutTls};
use peerbook::backend::{BackendError, Space};
use peerbook::probe::{DirEntries, DirVerdict};

use crate::error::{from_heed, from_heed_at_open, from_io};
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

/// How many keys of the main database the probe reads at most: a book's holds
/// one per database [`peerbook_database`] knows, so a further key is foreign.
const MAX_MAIN_KEYS: usize = PEERBOOK_DATABASES as usize;

/// LMDB's `MDB_MAGIC`, the first field of a meta page's `MDB_meta`.
const MDB_MAGIC: u32 = 0xBEEF_C0DE;
/// LMDB's `P_INVALID`: the root of a database without pages.
const P_INVALID: u64 = !0;
/// The bytes of a meta page the check reads: the 16-byte page header, then
/// `MDB_meta` (136 bytes with 64-bit page numbers).
const META_BYTES: usize = 16 + 136;

/// Whether the meta pages of the LMDB data file `file` (`len` bytes) describe
/// an environment whose main database the probe can read without the map
/// faulting (`SIGBUS`) past the file's end, read with plain reads before LMDB
/// maps it. Checked in both meta pages (page 0, and page 1 at one page size):
/// LMDB's magic, a page size (kept in the free database's `md_pad`) that is a
/// power of two in 512..=65536 and the same in both, and the roots of the free
/// and main databases `P_INVALID` (no pages) or a page at most `mm_last_pg`
/// that lies inside the file. `mm_last_pg` itself may lie past the end: LMDB
/// counts pages it freed in the same commit without writing them ("the file may
/// be shorter if the freeDB lists the final pages", its own comment), so a real
/// book can end short of it. And the main root of the newer snapshot (the one
/// LMDB reads: the greater transaction id) must be a leaf page: a book's main
/// database holds at most five database records, one page; a branch page means
/// another program's many keys, whose child pages would be read through the map.
/// With the root a leaf inside the file, reading the main database (keys and
/// database records, never a value's overflow pages) touches that one page. A
/// crafted leaf (node offsets into a next page past the end) can still fault:
/// LMDB trusts its file, as it does at every open. The layout is LMDB's
/// `MDB_page` header and `MDB_meta`, native-endian, with 64-bit page numbers
/// (checked against files heed writes, see the probe's tests).
#[cfg(target_pointer_width = "64")]
fn meta_pages_fit(file: &mut File, len: u64) -> io::Result<bool> {
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
    }
    // Offsets in a meta page: `MDB_meta` starts after the page header.
    const MAGIC: usize = 16;
    const PAGE_SIZE: usize = 16 + 24; // mm_dbs[0].md_pad
    const FREE_ROOT: usize = 16 + 24 + 40; // mm_dbs[0].md_root
    const MAIN_ROOT: usize = 16 + 72 + 40; // mm_dbs[1].md_root
    const LAST_PG: usize = 16 + 120; // mm_last_pg
    const TXNID: usize = 16 + 128; // mm_txnid
                                   // `MDB_page`'s `mp_flags` (u16 at byte 10) and its `P_LEAF` bit
    const PAGE_FLAGS: u64 = 10;
    const P_LEAF: u16 = 0x02;
    let mut psize = None;
    // (transaction id, main root) of the newer snapshot
    let mut newer: Option<(u64, u64)> = None;
    for page in 0..2u64 {
        let offset = page * u64::from(psize.unwrap_or(0));
        if offset + META_BYTES as u64 > len {
            return Ok(false);
        }
        let mut meta = [0u8; META_BYTES];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut meta)?;
        let size = u32_at(&meta, PAGE_SIZE);
        if u32_at(&meta, MAGIC) != MDB_MAGIC
            || !size.is_power_of_two()
            || !(512..=65536).contains(&size)
            || psize.is_some_and(|first| first != size)
        {
            return Ok(false);
        }
        psize = Some(size);
        let last = u64_at(&meta, LAST_PG);
        let root_ok = |at| {
            let root = u64_at(&meta, at);
            root == P_INVALID
                || (root <= last
                    && root
                        .checked_add(1)
                        .and_then(|pages| pages.checked_mul(u64::from(size)))
                        .is_some_and(|end| end <= len))
        };
        if !root_ok(FREE_ROOT) || !root_ok(MAIN_ROOT) {
            return Ok(false);
        }
        let txnid = u64_at(&meta, TXNID);
        if newer.is_none_or(|(id, _)| txnid > id) {
            newer = Some((txnid, u64_at(&meta, MAIN_ROOT)));
        }
    }
    match (newer, psize) {
        (Some((_, root)), Some(size)) if root != P_INVALID => {
            // inside the file: checked above
            let mut flags = [0u8; 2];
            file.seek(SeekFrom::Start(root * u64::from(size) + PAGE_FLAGS))?;
            file.read_exact(&mut flags)?;
            Ok(u16::from_ne_bytes(flags) & P_LEAF != 0)
        }
        _ => Ok(true),
    }
}

/// Without 64-bit page numbers the layout differs: left to LMDB.
#[cfg(not(target_pointer_width = "64"))]
fn meta_pages_fit(_file: &mut File, _len: u64) -> io::Result<bool> {
    Ok(true)
}

/// What is at a path, judged without following a symbolic link.
enum Entry {
    Missing,
    /// A regular file, of this many bytes.
    File(u64),
    /// A symbolic link, FIFO, socket, device or directory.
    Other,
}

fn entry(path: &Path) -> io::Result<Entry> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(Entry::File(meta.len())),
        Ok(_) => Ok(Entry::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Entry::Missing),
        Err(e) => Err(e),
    }
}

/// The environment of a directory, opened read-only by [`open_read_only`].
enum ReadOnly {
    /// No `data.mdb`.
    Missing,
    /// A `data.mdb` (or `lock.mdb`) peerbook never leaves, or one LMDB does not
    /// take for an environment, or whose main database it cannot read without
    /// the map faulting: see [`LmdbBackend::may_be_peerbook`].
    NotReadable,
    /// The environment, opened read-only; closed by [`read_main`].
    Env(Env<WithoutTls>),
}

/// Open the environment in `dir` read-only, as
/// [`LmdbBackend::may_be_peerbook`] says: `data.mdb` never written, an existing
/// `lock.mdb` written as by any LMDB reader, none made.
fn open_read_only(dir: &Path) -> Result<ReadOnly, BackendError> {
    let data = dir.join(DATA_FILE);
    match entry(&data).map_err(|e| from_io(e, dir))? {
        // gone meanwhile: nothing of anyone's to change
        Entry::Missing => return Ok(ReadOnly::Missing),
        // Peerbook builds a new `data.mdb` in `creating/` and renames it
        // into place complete (`create`): an empty one is not its. Nor is
        // a link, FIFO or device, which LMDB would follow or block on.
        Entry::File(0) | Entry::Other => return Ok(ReadOnly::NotReadable),
        Entry::File(_) => {}
    }
    let locked = match entry(&dir.join(LMDB_LOCK_FILE)).map_err(|e| from_io(e, dir))? {
        Entry::Missing => false,
        Entry::File(_) => true,
        // LMDB opens, locks and sizes it read-write: never through a link,
        // nor a FIFO or device
        Entry::Other => return Ok(ReadOnly::NotReadable),
    };
    // Before LMDB maps it: a file whose meta pages point past its end would
    // fault (`SIGBUS`) in the map instead of failing.
    let fits = File::open(&data).and_then(|mut file| {
        let len = file.metadata()?.len();
        meta_pages_fit(&mut file, len)
    });
    match fits {
        Ok(true) => {}
        Ok(false) => return Ok(ReadOnly::NotReadable),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(ReadOnly::NotReadable),
        Err(e) => return Err(from_io(e, dir)),
    }
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
    // of its own (LMDB keeps the last two snapshots). The read touches the
    // main database's root, which `meta_pages_fit` checked above is a leaf
    // page inside the file; a crafted leaf, or a file truncated by someone
    // else between that check and the read, is not guarded against (LMDB
    // trusts its file, as at every open).
    unsafe {
        builder.flags(flags);
    }
    // SAFETY: the map is read-only and we never write the files. Another
    // program changing `data.mdb` meanwhile does so through LMDB, which keeps
    // the pages of our snapshot while our reader is registered in `lock.mdb`
    // (see above for the case without one); nothing read outlives the read
    // transaction.
    match unsafe { builder.open(dir) } {
        Ok(env) => Ok(ReadOnly::Env(env)),
        // Not an environment LMDB takes: no book of peerbook's either (which
        // `open` would fail on only after making `lock.mdb` beside it).
        Err(heed::Error::Mdb(MdbError::Invalid | MdbError::VersionMismatch)) => {
            Ok(ReadOnly::NotReadable)
        }
        Err(e) => Err(from_heed_at_open(e, dir)),
    }
}

/// Read the main database of `env` (the environment of `dir`) in one read
/// transaction, aborted (it keeps no database handle open): `read` gets the
/// opener, the transaction and the main database. Closes the environment
/// before it returns.
fn read_main<R>(
    env: Env<WithoutTls>,
    dir: &Path,
    read: impl FnOnce(
        &heed::DatabaseOpener<'_, WithoutTls>,
        &heed::RoTxn<'_, WithoutTls>,
        Database<Bytes, Bytes>,
    ) -> heed::Result<R>,
) -> Result<R, BackendError> {
    let result = env.read_txn().and_then(|rtxn| {
        env.open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<CommitOrAbort<(), R>> {
            let Some(main) = opener.open_database::<Bytes, Bytes>(rtxn, None)? else {
                return Err(heed::Error::Mdb(MdbError::NotFound));
            };
            Ok(CommitOrAbort::Abort(read(opener, rtxn, main)?))
        })
    });
    env.prepare_for_closing().wait();
    match result {
        Ok(CommitOrAbort::Abort(read)) => Ok(read),
        Ok(CommitOrAbort::Commit(())) => unreachable!("the read is never committed"),
        // A read in an environment open: not the open's failure.
        Err(e) => Err(from_heed(e, dir)),
    }
}

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
    /// mapped read-only, and left byte for byte as it was) and closed before this
    /// returns. It takes part in LMDB's locking through `lock.mdb` like any
    /// reader, so a program writing the environment meanwhile keeps the pages
    /// read here until the read ends (`MDB_NOLOCK` would let that writer reuse
    /// them mid-read). So an existing `lock.mdb` is written, as by any LMDB
    /// reader: LMDB opens it read-write, registers the read in its reader table
    /// (process and thread ids, cleared when the read ends), and when no other
    /// process has the environment open, LMDB, as the exclusive first opener,
    /// reinitialises its header (transaction id, reader count, mutexes) and may
    /// extend the file to its reader table's size. Its bytes change; its
    /// meaning to LMDB (which rebuilds it at every first open) does not. Without
    /// a `lock.mdb`, which `MDB_RDONLY` would create, the environment is read
    /// with `MDB_NOLOCK` and no file is made: LMDB creates `lock.mdb` at every
    /// locking open and never removes it, so none is open with locks.
    ///
    /// No `data.mdb` counts as peerbook's (nothing of anyone's to change). A
    /// `data.mdb` peerbook never leaves is not: an empty one (peerbook builds a
    /// new one in `creating/` and renames it into place complete), one that is
    /// not a regular file (a symbolic link, FIFO or device; the same for
    /// `lock.mdb`), one whose meta pages, read with plain reads before LMDB
    /// maps the file, are not LMDB's, put a root page past the file's end (a
    /// map would fault on it) or give the main database more than one page (a
    /// book's never has), or one LMDB does not take for an environment.
    /// The main database is read up to its first foreign key and no further
    /// than a book's five keys. Any other failure (the environment already open
    /// in this process, `lock.mdb` not writable, damage met while reading the
    /// main database) is an error, never a guess.
    pub fn may_be_peerbook(dir: impl AsRef<Path>) -> Result<bool, BackendError> {
        let dir = dir.as_ref();
        let env = match open_read_only(dir)? {
            ReadOnly::Missing => return Ok(true),
            ReadOnly::NotReadable => return Ok(false),
            ReadOnly::Env(env) => env,
        };
        read_main(env, dir, |opener, rtxn, main| {
            // Read up to the first foreign key, and no further than a book's
            // keys: any more is foreign (the walk stays short whatever the file
            // holds).
            let mut names = Vec::new();
            for entry in main.iter(rtxn)? {
                match peerbook_database(entry?.0) {
                    Some(name) if names.len() < MAX_MAIN_KEYS => names.push(name),
                    _ => return Ok(false),
                }
            }
            // All four spaces or none: peerbook makes them together.
            let spaces = Space::ALL
                .iter()
                .filter(|space| names.contains(&space.name()))
                .count();
            if !names.is_empty() && spaces < Space::ALL.len() {
                return Ok(false);
            }
            let mut foreign = false;
            for name in names {
                // A key of the main database that is data, not a database's
                // record, is refused by LMDB as a name.
                match opener.open_database::<Bytes, Bytes>(rtxn, Some(name)) {
                    Ok(_) => {}
                    Err(heed::Error::Mdb(MdbError::Incompatible)) => foreign = true,
                    Err(e) => return Err(e),
                }
            }
            Ok(!foreign)
        })
    }

    /// The keys of the main (unnamed) database of the LMDB environment in
    /// directory `dir`, in LMDB's order: the names of its databases, and any data
    /// another program keeps there. Read as
    /// [`may_be_peerbook`](Self::may_be_peerbook) reads them (read-only,
    /// `data.mdb` never written), but every key of the main database, whose root
    /// must be one page: `None` when there is no `data.mdb`, or none whose main
    /// database that reading reads (see there). For a program that must show
    /// what another program's environment holds, or check that it is unchanged.
    ///
    /// ```
    /// use peerbook_lmdb::{LmdbBackend, LmdbOptions};
    ///
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = tmp.path().join("book");
    /// assert_eq!(LmdbBackend::database_names(&dir)?, None);
    /// drop(LmdbBackend::open(&dir, LmdbOptions::default())?);
    /// let names = LmdbBackend::database_names(&dir)?.unwrap();
    /// assert!(names.iter().any(|n| n == b"peers"));
    /// # Ok::<(), peerbook::backend::BackendError>(())
    /// ```
    pub fn database_names(dir: impl AsRef<Path>) -> Result<Option<Vec<Vec<u8>>>, BackendError> {
        let dir = dir.as_ref();
        let env = match open_read_only(dir)? {
            ReadOnly::Missing | ReadOnly::NotReadable => return Ok(None),
            ReadOnly::Env(env) => env,
        };
        read_main(env, dir, |_, rtxn, main| {
            let mut names = Vec::new();
            for entry in main.iter(rtxn)? {
                names.push(entry?.0.to_vec());
            }
            Ok(Some(names))
        })
    }

    /// What directory `dir` holds to this backend: nothing, its book, the
    /// leftovers of an interrupted creation, or not its directory (with the names
    /// of the entries it does not make). Lists `dir`
    /// ([`DirEntries::read`]), then [`probe_entries`](Self::probe_entries).
    /// Creates and removes nothing and never writes `data.mdb`; an existing
    /// `lock.mdb` is written as by any LMDB reader (its reader table, and its
    /// header when no other process has the environment open).
    ///
    /// ```
    /// use peerbook::probe::DirVerdict;
    /// use peerbook_lmdb::{LmdbBackend, LmdbOptions};
    ///
    /// # let tmp = tempfile::tempdir().unwrap();
    /// let dir = tmp.path().join("book");
    /// assert_eq!(LmdbBackend::probe_dir(&dir)?, DirVerdict::Nothing);
    /// drop(LmdbBackend::open(&dir, LmdbOptions::default()).unwrap());
    /// assert_eq!(LmdbBackend::probe_dir(&dir)?, DirVerdict::Store);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn probe_dir(dir: impl AsRef<Path>) -> io::Result<DirVerdict> {
        let dir = dir.as_ref();
        DirEntries::probe(dir, |entries| Self::probe_entries(dir, entries))
    }

    /// [`probe_dir`](Self::probe_dir) on `entries`, the listing of `dir`: every
    /// entry must be one this backend makes ([`owns_entry`](Self::owns_entry),
    /// which looks inside a `creating` directory), `data.mdb` marks a book
    /// ([`marks_store`](Self::marks_store)), and the environment must be one
    /// peerbook makes ([`may_be_peerbook`](Self::may_be_peerbook), read-only;
    /// else a [`DirVerdict::Foreign`] with no unexpected entry). An environment
    /// that cannot be read is an error.
    pub fn probe_entries(dir: impl AsRef<Path>, entries: &DirEntries) -> io::Result<DirVerdict> {
        let dir = dir.as_ref();
        let unexpected = entries.unowned(|name| Self::owns_entry(dir, name))?;
        let marked = entries.utf8().any(Self::marks_store);
        DirVerdict::judge(entries, unexpected, marked, || {
            Self::may_be_peerbook(dir).map_err(io::Error::other)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failure of the read in an environment that opened is never said to
    /// be LMDB's open failing.
    #[test]
    fn a_failed_read_is_not_the_open_failing() {
        let tmp = tempfile::tempdir().unwrap();
        // SAFETY: a new environment in a directory of this test's own.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .open(tmp.path())
        }
        .unwrap();
        let e = read_main(env, tmp.path(), |_, _, _| -> heed::Result<()> {
            Err(heed::Error::Io(io::Error::other("injected")))
        })
        .unwrap_err();
        let said = e.to_string();
        assert!(!said.contains(crate::error::LMDB_OPEN_FAILED), "{said}");
        assert!(said.contains("injected"), "{said}");
    }
}
