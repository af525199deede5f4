//! The raw engines under the backends, for the baselines: heed (`lmdb-raw`), the
//! rocksdb crate (`rocksdb-raw`) and the `Backend` trait of our own engines
//! (`memory-raw`, `file-raw`) or of the adapters (`lmdb-trait`, `rocksdb-trait`).
//!
//! Each holds the four spaces of a book (heed: one named database per space;
//! RocksDB: the default column family for peers, one column family per other
//! space), so a floor can replay the very batches the store writes.

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

/// The rocksdb crate directly: default options, peers in the default column family
/// and one column family per other space; Sync = a synced WAL write, and so is
/// Buffered, as in `peerbook-rocksdb` (an unsynced WAL can lose a batch and keep a
/// later one on power loss).
pub struct Rocks {
    db: rocksdb::DB,
    sync: rocksdb::WriteOptions,
}

impl Rocks {
    /// Create (or open) the database in `dir`.
    pub fn open(dir: &Path) -> Rocks {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        let names = Space::ALL[1..].iter().map(|s| s.name());
        let db = rocksdb::DB::open_cf(&o, dir, names).expect("open RocksDB");
        let mut sync = rocksdb::WriteOptions::default();
        sync.set_sync(true);
        Rocks { db, sync }
    }
}

impl Raw for Rocks {
    fn put(&self, key: &[u8], value: &[u8], _d: Durability) {
        self.db.put_opt(key, value, &self.sync).expect("put");
    }
    fn delete(&self, key: &[u8], _d: Durability) {
        self.db.delete_opt(key, &self.sync).expect("delete");
    }
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.db.get_pinned(key).expect("get").map(|v| v.to_vec())
    }
    fn write(&self, batch: WriteBatch, _d: Durability) {
        let mut wb = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match (op.space(), op) {
                (Space::Peers, Op::Put { key, value, .. }) => wb.put(key, value),
                (Space::Peers, Op::Delete { key, .. }) => wb.delete(key),
                (space, Op::Put { key, value, .. }) => {
                    let cf = self.db.cf_handle(space.name()).expect("column family");
                    wb.put_cf(cf, key, value)
                }
                (space, Op::Delete { key, .. }) => {
                    let cf = self.db.cf_handle(space.name()).expect("column family");
                    wb.delete_cf(cf, key)
                }
            }
        }
        self.db.write_opt(wb, &self.sync).expect("write");
    }
    fn settle(&self) {
        self.db.flush().expect("flush");
        self.db.compact_range(None::<&[u8]>, None::<&[u8]>);
        for space in &Space::ALL[1..] {
            let cf = self.db.cf_handle(space.name()).expect("column family");
            self.db.flush_cf(cf).expect("flush");
            self.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
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
