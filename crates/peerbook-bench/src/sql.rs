//! The SQLite baseline: the same records in one table with two indexes, driven by the
//! same record logic (peerbook's schema, validation and scoring), so the difference
//! to a peerbook backend is the storage, not the work.
//!
//! ```sql
//! CREATE TABLE peers (id TEXT PRIMARY KEY, record BLOB, last_seen INTEGER, quality INTEGER);
//! CREATE INDEX peers_last_seen ON peers(last_seen);
//! CREATE INDEX peers_quality ON peers(quality);
//! ```
//!
//! WAL mode; `synchronous=FULL` for Sync writes and `NORMAL` for Buffered ones (in WAL
//! mode NORMAL syncs only at checkpoints: a commit survives a crash of the process,
//! maybe not a power loss, as peerbook's Buffered). Page cache 16 MiB, as RocksDB's.

use std::path::Path;
use std::time::Instant;

use peerbook::scoring::{candidate_order, quality_score, reconnection_score};
use peerbook::{Candidate, ConnectionType, Durability, PeerRecord};
use rusqlite::{params, Connection, OptionalExtension};

use super::{FixtureStats, Generator, NOW_MS};

pub const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS peers (
        id TEXT PRIMARY KEY,
        record BLOB NOT NULL,
        last_seen INTEGER NOT NULL,
        quality INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS peers_last_seen ON peers(last_seen);
    CREATE INDEX IF NOT EXISTS peers_quality ON peers(quality);
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
";

/// A peer table in one SQLite file.
pub struct Sql {
    pub conn: Connection,
}

fn decode(bytes: &[u8]) -> PeerRecord {
    PeerRecord::decode(bytes).expect("records in the bench table decode")
}

impl Sql {
    /// Open (creating) the database at `path` with `durability`.
    pub fn open(path: &Path, durability: Durability) -> Sql {
        let conn = Connection::open(path).expect("open SQLite");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("WAL mode");
        conn.pragma_update(None, "cache_size", -16_384)
            .expect("cache size");
        conn.execute_batch(SCHEMA).expect("schema");
        conn.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', x'00000001')",
            [],
        )
        .expect("meta");
        let sql = Sql { conn };
        sql.set_durability(durability);
        sql
    }

    pub fn set_durability(&self, durability: Durability) {
        let level = match durability {
            Durability::Sync => "FULL",
            Durability::Buffered => "NORMAL",
        };
        self.conn
            .pragma_update(None, "synchronous", level)
            .expect("synchronous");
    }

    /// Cold start: open, set up, read the schema version (what `PeerBook::open` reads).
    pub fn open_existing(path: &Path) -> (Sql, Vec<u8>) {
        let conn = Connection::open(path).expect("open SQLite");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("WAL mode");
        conn.pragma_update(None, "synchronous", "FULL")
            .expect("synchronous");
        conn.pragma_update(None, "cache_size", -16_384)
            .expect("cache size");
        let version: Vec<u8> = conn
            .query_row(
                "SELECT value FROM meta WHERE name = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .expect("schema version");
        (Sql { conn }, version)
    }

    fn put(&self, record: &PeerRecord) {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO peers (id, record, last_seen, quality) VALUES (?1, ?2, ?3, ?4)",
            )
            .expect("prepare")
            .execute(params![
                record.peer_id.as_str(),
                record.encode(),
                record.last_seen as i64,
                i64::from(quality_score(&record.connection_quality)),
            ])
            .expect("insert");
    }

    /// Insert `records` in one transaction.
    pub fn insert_all(&self, records: &[PeerRecord]) {
        let tx = self.conn.unchecked_transaction().expect("begin");
        for r in records {
            self.put(r);
        }
        tx.commit().expect("commit");
    }

    /// Build a table of generated peers `0..n`, checkpointed and vacuumed.
    pub fn build(path: &Path, gen: &Generator, n: usize) -> FixtureStats {
        let started = Instant::now();
        let sql = Sql::open(path, Durability::Buffered);
        let (mut record_bytes, mut json_bytes) = (0, 0);
        let mut start = 0;
        while start < n {
            let end = (start + super::LOAD_CHUNK).min(n);
            let records: Vec<PeerRecord> = (start..end).map(|i| gen.record(i)).collect();
            for r in &records {
                record_bytes += r.encode().len() as u64;
                json_bytes += serde_json::to_vec(r).expect("JSON").len() as u64;
            }
            sql.insert_all(&records);
            start = end;
        }
        sql.compact();
        drop(sql);
        FixtureStats {
            peers: n,
            record_bytes,
            json_bytes,
            dir_bytes: file_bytes(path),
            disk_usage: file_bytes(path),
            compacted_bytes: 0,
            build_secs: started.elapsed().as_secs_f64(),
            cached: false,
        }
    }

    /// Checkpoint the WAL into the database file and vacuum it.
    pub fn compact(&self) {
        self.conn
            .execute_batch(
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
            )
            .expect("checkpoint and vacuum");
    }

    // ----- the workloads, as an application over this table would write them ----

    /// `store_peer` of a new peer: seal it, encode it, insert it.
    pub fn store_new(&self, gen: &Generator, peer: peerbook::NewPeer) {
        let record = gen.seal(peer);
        record.validate().expect("valid");
        self.put(&record);
    }

    /// `store_peer` of an updated record (replaces the row).
    pub fn store_record(&self, record: &PeerRecord) {
        record.validate().expect("valid");
        self.put(record);
    }

    pub fn remove(&self, id: &str) {
        self.conn
            .prepare_cached("DELETE FROM peers WHERE id = ?1")
            .expect("prepare")
            .execute([id])
            .expect("delete");
    }

    pub fn get(&self, id: &str) -> Option<PeerRecord> {
        self.conn
            .prepare_cached("SELECT record FROM peers WHERE id = ?1")
            .expect("prepare")
            .query_row([id], |r| r.get::<_, Vec<u8>>(0))
            .optional()
            .expect("select")
            .map(|b| decode(&b))
    }

    /// Read-modify-write of one record in a transaction.
    pub fn modify(&self, id: &str, f: impl FnOnce(&mut PeerRecord)) -> PeerRecord {
        let tx = self.conn.unchecked_transaction().expect("begin");
        let mut record = self.get(id).expect("the peer exists");
        f(&mut record);
        record.validate().expect("valid");
        self.conn
            .prepare_cached(
                "UPDATE peers SET record = ?2, last_seen = ?3, quality = ?4 WHERE id = ?1",
            )
            .expect("prepare")
            .execute(params![
                id,
                record.encode(),
                record.last_seen as i64,
                i64::from(quality_score(&record.connection_quality)),
            ])
            .expect("update");
        tx.commit().expect("commit");
        record
    }

    pub fn update_quality(&self, id: &str, latency: u32, kind: ConnectionType) -> PeerRecord {
        self.modify(id, |r| {
            r.connection_quality.latency_ms = Some(latency);
            r.connection_quality.connection_type = kind;
        })
    }

    pub fn increment_attempts(&self, id: &str) -> PeerRecord {
        self.modify(id, |r| {
            r.reconnection_attempts += 1;
            if r.reconnection_attempts >= 5 {
                r.blacklist_until = Some(NOW_MS + 86_400_000);
            }
        })
    }

    pub fn update_last_seen(&self, id: &str) -> PeerRecord {
        self.modify(id, |r| {
            r.last_seen = NOW_MS;
            r.last_connected = NOW_MS;
            r.reconnection_attempts = 0;
            r.blacklist_until = None;
        })
    }

    fn records(&self, sql: &str, params: impl rusqlite::Params) -> Vec<PeerRecord> {
        let mut stmt = self.conn.prepare_cached(sql).expect("prepare");
        let rows = stmt
            .query_map(params, |r| r.get::<_, Vec<u8>>(0))
            .expect("query");
        rows.map(|b| decode(&b.expect("row"))).collect()
    }

    /// The 10 most recently seen peers.
    pub fn query_last_seen(&self, limit: usize) -> Vec<PeerRecord> {
        self.records(
            "SELECT record FROM peers ORDER BY last_seen DESC LIMIT ?1",
            [limit as i64],
        )
    }

    /// The best peers with a quality score of at least `min`.
    pub fn query_quality(&self, min: u8, limit: usize) -> Vec<PeerRecord> {
        self.records(
            "SELECT record FROM peers WHERE quality >= ?1 ORDER BY quality DESC LIMIT ?2",
            [i64::from(min), limit as i64],
        )
    }

    /// Reconnection candidates, ranked exactly as peerbook ranks them.
    pub fn candidates(&self, limit: usize, max_age_ms: u64) -> Vec<Candidate> {
        let now = NOW_MS;
        let mut scored: Vec<Candidate> = self
            .records(
                "SELECT record FROM peers WHERE last_seen >= ?1",
                [(now - max_age_ms) as i64],
            )
            .into_iter()
            .filter(|p| !p.is_blacklisted(now))
            .map(|peer| Candidate {
                score: reconnection_score(&peer, now),
                peer,
            })
            .collect();
        scored.sort_by(|a, b| candidate_order((&a.score, &a.peer), (&b.score, &b.peer)));
        scored.truncate(limit);
        scored
    }

    /// Remove the peers unseen since `cutoff` (the index serves the inactivity rule;
    /// the table has no column for the failed-attempts rule, see the report).
    pub fn cleanup(&self, cutoff: u64) -> usize {
        let tx = self.conn.unchecked_transaction().expect("begin");
        let removed = self
            .conn
            .execute("DELETE FROM peers WHERE last_seen < ?1", [cutoff as i64])
            .expect("delete");
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('last_cleanup', ?1)",
                [NOW_MS.to_be_bytes().to_vec()],
            )
            .expect("meta");
        tx.commit().expect("commit");
        removed
    }

    /// Every record, in id order.
    pub fn export(&self) -> Vec<PeerRecord> {
        self.records("SELECT record FROM peers ORDER BY id", [])
    }
}

/// Bytes allocated by a database file and its WAL and shared-memory files.
pub fn file_bytes(path: &Path) -> u64 {
    let mut total = super::allocated_bytes(path);
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        total += super::allocated_bytes(Path::new(&p));
    }
    total
}
