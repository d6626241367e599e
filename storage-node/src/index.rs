//! The SQLite index of a node's chunks: id, size, when stored, when last verified.

use std::path::Path;

use jadfs_common::{ChunkId, ChunkInfo};
use rusqlite::{params, Connection, OptionalExtension};

use crate::store::StoreError;

pub struct ChunkIndex {
    conn: Connection,
}

impl ChunkIndex {
    /// Opens (or creates) the index. WAL with `synchronous=FULL`: a committed
    /// row survives power loss, which the put path relies on.
    pub fn open(path: &Path) -> Result<ChunkIndex, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS chunks (
                 id BLOB PRIMARY KEY,
                 size INTEGER NOT NULL,
                 stored_at_ms INTEGER NOT NULL,
                 last_verified_ms INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )?;
        Ok(ChunkIndex { conn })
    }

    pub fn insert(&self, id: &ChunkId, size: u64, now_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO chunks (id, size, stored_at_ms, last_verified_ms) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(id) DO NOTHING",
            params![id.as_bytes(), size as i64, now_ms],
        )?;
        Ok(())
    }

    pub fn remove(&self, id: &ChunkId) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM chunks WHERE id = ?1", params![id.as_bytes()])? > 0)
    }

    pub fn get(&self, id: &ChunkId) -> Result<Option<ChunkInfo>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT size, stored_at_ms FROM chunks WHERE id = ?1", params![id.as_bytes()], |row| {
                Ok(ChunkInfo { id: *id, size: row.get::<_, i64>(0)? as u64, stored_at_ms: row.get(1)? })
            })
            .optional()?)
    }

    /// Up to `limit` chunks with an ID greater than `after`, in ID order.
    pub fn list(&self, after: Option<&ChunkId>, limit: usize) -> Result<Vec<ChunkInfo>, StoreError> {
        let after: &[u8] = after.map(|a| &a.as_bytes()[..]).unwrap_or(&[]);
        let mut stmt =
            self.conn.prepare_cached("SELECT id, size, stored_at_ms FROM chunks WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![after, limit as i64], |row| {
            let raw: Vec<u8> = row.get(0)?;
            Ok((raw, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (raw, size, stored_at_ms) = row?;
            let bytes: [u8; 32] = raw.try_into().map_err(|_| StoreError::CorruptIndex)?;
            out.push(ChunkInfo { id: ChunkId::from_bytes(bytes), size: size as u64, stored_at_ms });
        }
        Ok(out)
    }

    /// (chunk count, total bytes).
    pub fn totals(&self) -> Result<(u64, u64), StoreError> {
        Ok(self.conn.query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM chunks", [], |row| {
            Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
        })?)
    }
}
