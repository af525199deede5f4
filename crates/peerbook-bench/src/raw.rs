//! The raw engines under the backends, for the baselines: heed (`lmdb-raw`), the
//! rocksdb crate (`rocksdb-raw`) and the `Backend` trait of our own engines
//! (`memory-raw`, `file-raw`) or of the adapters (`lmdb-trait`, `rocksdb-trait`).
//!
//! Each holds the four spaces of a book (heed: one named database per space;
//! RocksDB: one column family per space, configured as `peerbook-rocksdb` does), so
//! a floor can replay the very batches the store writes, and reads through the
//! engine's cheapest API ([`Raw::read`]: no copy out of heed or RocksDB).

#[allow(unused_imports)]
use crate::*;
use std::path::Path;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, WithoutTls};
use peerbook::backend::{Backend, Op, Space, WriteBatch};
use peerbook::{Durability, MemoryBackend};
use peerbook_file::{FileBackend, FileOptions};
use peerbook_lmdb::LmdbBackend;
use peerbook_rocksdb::{RocksBackend, RocksOptions};

/// A key-value store holding a book's entries, space by space.
pub trait Raw {
    /// One put of `value` under `key` in the peers space, as its own commit.
    fn put(&self, key: &[u8], value: &[u8], d: Durability);
    /// One delete of `key` in the peers space, as its own commit.
    fn delete(&self, key: &[u8], d: Durability);
    /// Read `key` of the peers space.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// The engine's cheapest read of `key` of the peers space: `f` sees the value
    /// where the engine holds it (heed: in the map; RocksDB: a pinned block), with
    /// no copy; not called when the key is missing. The get floor decodes here.
    fn read(&self, key: &[u8], f: &mut dyn FnMut(&[u8]));
    /// Apply every operation of `batch` in one commit.
    fn write(&self, batch: WriteBatch, d: Durability);
    /// Make everything durable and compact (before the measurements).
    fn settle(&self);
}

/// The raw stores, in report order.
pub const RAW_KINDS: [&str; 6] = [
    "memory-raw",
    "lmdb-raw",
    "lmdb-trait",
    "rocksdb-raw",
    "rocksdb-trait",
    "file-raw",
];

/// heed directly: one named database per space, the flags and syncs LmdbBackend
/// uses (NO_META_SYNC; Sync = commit + `force_sync`, Buffered = commit alone).
pub struct Heed {
    env: Env<WithoutTls>,
    dbs: [Database<'static, Bytes, Bytes>; 4],
}

impl Heed {
    /// Create (or open) the environment in `dir`.
    pub fn open(dir: &Path) -> Heed {
        std::fs::create_dir_all(dir).expect("create dir");
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder.map_size(64 << 30).max_dbs(4);
        // SAFETY: NO_META_SYNC weakens durability only; Sync puts call force_sync, as
        // the LMDB backend does.
        unsafe {
            builder.flags(EnvFlags::NO_META_SYNC);
        }
        // SAFETY: the directory is this benchmark's own; nothing else maps or writes it.
        let env = unsafe { builder.open(dir) }.expect("open LMDB");
        let wtxn = env.write_txn().expect("txn");
        let dbs = env
            .create_databases_and_commit(
                wtxn,
                |opener,
                 wtxn|
                 -> heed::Result<CommitOrAbort<[Database<'_, Bytes, Bytes>; 4], ()>> {
                    let [a, b, c, d] = Space::ALL.map(Space::name);
                    Ok(CommitOrAbort::Commit([
                        opener.create_database(wtxn, Some(a))?,
                        opener.create_database(wtxn, Some(b))?,
                        opener.create_database(wtxn, Some(c))?,
                        opener.create_database(wtxn, Some(d))?,
                    ]))
                },
            )
            .expect("create the databases")
            .unwrap_commit();
        Heed { env, dbs }
    }

    fn commit(&self, d: Durability, f: impl FnOnce(&mut heed::RwTxn<'_>)) {
        let mut wtxn = self.env.write_txn().expect("txn");
        f(&mut wtxn);
        wtxn.commit().expect("commit");
        if d == Durability::Sync {
            self.env.force_sync().expect("sync");
        }
    }
}

impl Raw for Heed {
    fn put(&self, key: &[u8], value: &[u8], d: Durability) {
        let db = self.dbs[Space::Peers.index()];
        self.commit(d, |t| db.put(t, key, value).expect("put"));
    }
    fn delete(&self, key: &[u8], d: Durability) {
        let db = self.dbs[Space::Peers.index()];
        self.commit(d, |t| {
            db.delete(t, key).expect("delete");
        });
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let rtxn = self.env.read_txn().expect("txn");
        self.dbs[Space::Peers.index()]
            .get(&rtxn, key)
            .expect("get")
            .map(<[u8]>::to_vec)
    }
    fn read(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) {
        let rtxn = self.env.read_txn().expect("txn");
        if let Some(value) = self.dbs[Space::Peers.index()].get(&rtxn, key).expect("get") {
            f(value);
        }
    }
    fn write(&self, batch: WriteBatch, d: Durability) {
        self.commit(d, |t| {
            for op in batch.ops() {
                let db = self.dbs[op.space().index()];
                match op {
                    Op::Put { key, value, .. } => db.put(t, key, value).expect("put"),
                    Op::Delete { key, .. } => {
                        db.delete(t, key).expect("delete");
                    }
                }
            }
        });
    }
    fn settle(&self) {
        self.env.force_sync().expect("sync");
    }
}

/// The rocksdb crate directly, configured as `peerbook-rocksdb` configures it
/// ([`RocksOptions::rocksdb_options`]: one column family per space, the same block
/// cache, block size, Bloom filter, data-block hash index and LZ4), so the floor is
/// the engine the backend runs, not RocksDB's untuned defaults; Sync = a synced WAL
/// write, and so is Buffered, as in `peerbook-rocksdb` (an unsynced WAL can lose a
/// batch and keep a later one on power loss).
pub struct Rocks {
    db: rocksdb::DB,
    sync: rocksdb::WriteOptions,
}

impl Rocks {
    /// Create (or open) the database in `dir`.
    pub fn open(dir: &Path) -> Rocks {
        let (o, families) = RocksOptions::default().rocksdb_options();
        let families = families
            .into_iter()
            .map(|(name, o)| rocksdb::ColumnFamilyDescriptor::new(name, o));
        let db = rocksdb::DB::open_cf_descriptors(&o, dir, families).expect("open RocksDB");
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        Rocks { db, sync }
    }

    fn cf(&self, space: Space) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(space.name()).expect("column family")
    }
}

impl Raw for Rocks {
    fn put(&self, key: &[u8], value: &[u8], _d: Durability) {
        let cf = self.cf(Space::Peers);
        self.db.put_cf_opt(cf, key, value, &self.sync).expect("put");
    }
    fn delete(&self, key: &[u8], _d: Durability) {
        let cf = self.cf(Space::Peers);
        self.db.delete_cf_opt(cf, key, &self.sync).expect("delete");
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let cf = self.cf(Space::Peers);
        self.db
            .get_pinned_cf(cf, key)
            .expect("get")
            .map(|v| v.to_vec())
    }
    fn read(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) {
        let cf = self.cf(Space::Peers);
        if let Some(value) = self.db.get_pinned_cf(cf, key).expect("get") {
            f(&value);
        }
    }
    fn write(&self, batch: WriteBatch, _d: Durability) {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            let cf = self.cf(op.space());
            match op {
                Op::Put { key, value, .. } => wb.put_cf(cf, key, value),
                Op::Delete { key, .. } => wb.delete_cf(cf, key),
            }
        }
        self.db.write_opt(wb, &self.sync).expect("write");
    }
    fn settle(&self) {
        for space in Space::ALL {
            self.db.flush_cf(self.cf(space)).expect("flush");
            self.db
                .compact_range_cf(self.cf(space), None::<&[u8]>, None::<&[u8]>);
        }
    }
}

/// What `settle` runs after the flush of a [`Trait`] store (its compaction).
pub type Compact<B> = Option<Box<dyn Fn(&B)>>;

/// A backend through its `Backend` trait; `settle` flushes and runs `compact` (file,
/// RocksDB: as the fixtures are compacted).
pub struct Trait<B: Backend> {
    backend: B,
    compact: Compact<B>,
}

impl<B: Backend> Trait<B> {
    /// `backend` as a raw store.
    pub fn new(backend: B, compact: Compact<B>) -> Self {
        Trait { backend, compact }
    }
}

impl<B: Backend> Raw for Trait<B> {
    fn put(&self, key: &[u8], value: &[u8], d: Durability) {
        let mut batch = WriteBatch::new();
        batch.put(Space::Peers, key.to_vec(), value.to_vec());
        self.backend.write(batch, d).expect("write");
    }
    fn delete(&self, key: &[u8], d: Durability) {
        let mut batch = WriteBatch::new();
        batch.delete(Space::Peers, key.to_vec());
        self.backend.write(batch, d).expect("write");
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.backend.get(Space::Peers, key).expect("get")
    }
    fn read(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) {
        // The trait's get is these engines' only read (the memory and file engines
        // copy the value out under their lock; that copy is their API).
        if let Some(value) = self.backend.get(Space::Peers, key).expect("get") {
            f(&value);
        }
    }
    fn write(&self, batch: WriteBatch, d: Durability) {
        self.backend.write(batch, d).expect("write");
    }
    fn settle(&self) {
        self.backend.flush().expect("flush");
        if let Some(compact) = &self.compact {
            compact(&self.backend);
        }
    }
}

/// Open the raw store `name` (one of [`RAW_KINDS`]) in `dir`.
pub fn open_raw(name: &str, dir: &Path) -> Box<dyn Raw> {
    match name {
        "memory-raw" => Box::new(Trait::new(MemoryBackend::new(), None)),
        "lmdb-raw" => Box::new(Heed::open(dir)),
        "lmdb-trait" => Box::new(Trait::new(
            LmdbBackend::open(dir, lmdb_options()).expect("open LMDB"),
            None,
        )),
        "rocksdb-raw" => Box::new(Rocks::open(dir)),
        "rocksdb-trait" => Box::new(Trait::new(
            RocksBackend::open(dir, RocksOptions::default()).expect("open RocksDB"),
            Some(Box::new(|b: &RocksBackend| b.compact().expect("compact"))),
        )),
        "file-raw" => Box::new(Trait::new(
            FileBackend::open(dir, FileOptions::default()).expect("open file backend"),
            Some(Box::new(|b: &FileBackend| b.compact().expect("compact"))),
        )),
        other => unreachable!("unknown raw store {other}"),
    }
}

/// Every entry of every space of `from`, handed to `f` as Buffered-sized batches of
/// at most `LOAD_CHUNK` puts (one space per batch).
pub fn scan_chunks(from: &dyn Backend, mut f: impl FnMut(WriteBatch)) {
    use std::ops::ControlFlow;
    for space in Space::ALL {
        let mut batch = WriteBatch::new();
        from.scan(
            space,
            peerbook::backend::KeyRange::all(),
            peerbook::backend::Direction::Forward,
            &mut |k, v| {
                batch.put(space, k.to_vec(), v.to_vec());
                if batch.len() >= LOAD_CHUNK {
                    f(std::mem::take(&mut batch));
                }
                ControlFlow::Continue(())
            },
        )
        .expect("scan");
        if !batch.is_empty() {
            f(batch);
        }
    }
}

/// Fill `raw` with every entry of every space of `from` (a book's backend), one
/// Buffered commit per chunk, then settle it.
pub fn fill_from(raw: &dyn Raw, from: &dyn Backend) {
    scan_chunks(from, |batch| raw.write(batch, Durability::Buffered));
    raw.settle();
}

/// The raw store `name` in `dir` holding every entry of `from`, in the state the
/// store's benchmarks meet their engine: filled and settled, then, on disk, closed
/// and opened again, as a pristine book is closed, copied and opened. Without the
/// reopen the file engine kept the maps its writes built, where a book opened from
/// its snapshot reads maps built in one pass (`get_peer` on the file book measured
/// 0.46x this floor), and RocksDB and LMDB kept the caches the fill warmed.
pub fn filled(name: &str, dir: &Path, from: &dyn Backend) -> Box<dyn Raw> {
    reopened(name, dir, |store| fill_from(store, from))
}

/// The raw store `name` in `dir` built by `batches`, the batches the store wrote
/// to build a book (its imports, recorded), each one Buffered commit in order, then
/// settled and reopened as [`filled`] does. The write floors need this: LMDB's
/// pages are laid out by the order of its writes, and a store-built book (records
/// imported a chunk at a time, each chunk's index entries scattered over the index
/// trees) dirtied 15.2 pages per new-peer commit where the same batch on a store
/// filled in key order dirtied 12.2 (strace, 100k peers). Filled like the book, the
/// floor's commit dirties what the book's does.
pub fn replayed(name: &str, dir: &Path, batches: &[WriteBatch]) -> Box<dyn Raw> {
    reopened(name, dir, |store| {
        for batch in batches {
            store.write(batch.clone(), Durability::Buffered);
        }
        store.settle();
    })
}

/// Open `name` in `dir`, `fill` it, then close and open it again (on disk).
fn reopened(name: &str, dir: &Path, fill: impl FnOnce(&dyn Raw)) -> Box<dyn Raw> {
    let store = open_raw(name, dir);
    fill(&*store);
    if name == "memory-raw" {
        return store; // nothing to reopen: it would be empty
    }
    drop(store);
    open_raw(name, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use peerbook::PeerBook;
    use std::sync::Arc;

    /// A store replayed from the batches that built a book holds every record of
    /// that book, byte for byte, on every engine the write floors use.
    #[test]
    fn a_replayed_store_holds_the_book_its_batches_built() {
        let n = 40;
        let rec = Arc::new(recording(MemoryBackend::new()));
        let book = PeerBook::open(Arc::clone(&rec), options(Durability::Buffered)).expect("open");
        rec.hook().start();
        Generator::new().load(&book, n);
        let built = rec.hook().take();
        rec.hook().stop();
        assert!(!built.is_empty(), "the load wrote batches");
        for name in ["memory-raw", "file-raw", "lmdb-raw"] {
            let dir = tempfile::tempdir().expect("dir");
            let raw = replayed(name, dir.path(), &built);
            for i in 0..n {
                let id = peer_id(i);
                assert_eq!(
                    raw.get(id.as_bytes()),
                    rec.inner().get(Space::Peers, id.as_bytes()).expect("get"),
                    "{name}: {id}"
                );
            }
            assert_eq!(
                raw.get(peer_id(n).as_bytes()),
                None,
                "{name}: no other peer"
            );
        }
    }
}
