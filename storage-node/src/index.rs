//! The SQLite index of a node's chunks: id, size, CRC32C, when stored, when
//! last verified. The chunk folders are the truth and the index a cache of
//! them: start-up reconciliation re-indexes a durable chunk file whose row
//! was lost and drops a row whose file is gone.

use std::path::Path;

use jadfs_common::{ChunkId, ChunkInfo};
use rusqlite::{params, Connection, OptionalExtension};

use crate::store::StoreError;

pub struct ChunkIndex {
    conn: Connection,
}

impl ChunkIndex {
    /// Opens (or creates) the index. WAL with `synchronous=NORMAL`: a crash
    /// may lose the last rows, never corrupt the file, and a chunk is durable
    /// once its file and folder are fsync'd (reconciliation re-indexes it),
    /// so a put pays no fsync for its row.
    pub fn open(path: &Path) -> Result<ChunkIndex, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS chunks (
                 id BLOB PRIMARY KEY,
                 size INTEGER NOT NULL,
                 stored_at_ms INTEGER NOT NULL,
                 last_verified_ms INTEGER NOT NULL,
                 crc32c INTEGER
             ) WITHOUT ROWID;",
        )?;
        let has_crc: bool =
            conn.query_row("SELECT COUNT(*) FROM pragma_table_info('chunks') WHERE name = 'crc32c'", [], |row| {
                row.get::<_, i64>(0).map(|n| n > 0)
            })?;
        if !has_crc {
            // Indexes written before CRC32Cs were kept: their chunks are
            // verified by SHA-256 until rewritten.
            conn.execute_batch("ALTER TABLE chunks ADD COLUMN crc32c INTEGER")?;
        }
        Ok(ChunkIndex { conn })
    }

    pub fn insert(&self, id: &ChunkId, size: u64, crc32c: u32, now_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO chunks (id, size, stored_at_ms, last_verified_ms, crc32c) VALUES (?1, ?2, ?3, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET crc32c = COALESCE(crc32c, excluded.crc32c)",
            params![id.as_bytes(), size as i64, now_ms, crc32c],
        )?;
        Ok(())
    }

    pub fn remove(&self, id: &ChunkId) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM chunks WHERE id = ?1", params![id.as_bytes()])? > 0)
    }

    pub fn get(&self, id: &ChunkId) -> Result<Option<ChunkInfo>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT size, stored_at_ms, crc32c FROM chunks WHERE id = ?1", params![id.as_bytes()], |row| {
                Ok(ChunkInfo {
                    id: *id,
                    size: row.get::<_, i64>(0)? as u64,
                    stored_at_ms: row.get(1)?,
                    crc32c: row.get(2)?,
                })
            })
            .optional()?)
    }

    /// Up to `limit` chunks with an ID greater than `after`, in ID order.
    pub fn list(&self, after: Option<&ChunkId>, limit: usize) -> Result<Vec<ChunkInfo>, StoreError> {
        let after: &[u8] = after.map(|a| &a.as_bytes()[..]).unwrap_or(&[]);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, size, stored_at_ms, crc32c FROM chunks WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(params![after, limit as i64], |row| {
            let raw: Vec<u8> = row.get(0)?;
            Ok((raw, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?, row.get(3)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (raw, size, stored_at_ms, crc32c) = row?;
            let bytes: [u8; 32] = raw.try_into().map_err(|_| StoreError::CorruptIndex)?;
            out.push(ChunkInfo { id: ChunkId::from_bytes(bytes), size: size as u64, stored_at_ms, crc32c });
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
