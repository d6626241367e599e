//! The SQLite index of a node's chunks: id, size, CRC32C, block checksums,
//! when stored, when last verified; and the copies found lost or rotten that
//! meta has not yet been told of. The chunk folders are the truth and the index a cache of
//! them: start-up reconciliation re-indexes a durable chunk file whose row
//! was lost and drops a row whose file is gone.

use std::path::Path;

use jadfs_common::node::ChunkInfo;
use jadfs_common::ChunkId;
use rusqlite::{params, Connection, OptionalExtension};

use crate::blocks::BlockSums;
use crate::error::StoreError;

/// The index's schema version (`PRAGMA user_version`), one step per version.
const INDEX_VERSION: u32 = 3;

/// Brings an index at `from` one version up.
fn upgrade(conn: &Connection, from: u32) -> rusqlite::Result<()> {
    match from {
        0 => conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS chunks (
                 id BLOB PRIMARY KEY,
                 size INTEGER NOT NULL,
                 stored_at_ms INTEGER NOT NULL,
                 last_verified_ms INTEGER NOT NULL
             ) WITHOUT ROWID;",
        ),
        // The CRC32C each chunk was written with, against which whole reads
        // are checked. Chunks indexed before have none and are verified by
        // SHA-256. (Indexes made before versions were recorded say 0 and may
        // already have the column.)
        1 => {
            let has_crc: bool =
                conn.query_row("SELECT COUNT(*) FROM pragma_table_info('chunks') WHERE name = 'crc32c'", [], |row| {
                    row.get::<_, i64>(0).map(|n| n > 0)
                })?;
            if has_crc {
                Ok(())
            } else {
                conn.execute_batch("ALTER TABLE chunks ADD COLUMN crc32c INTEGER")
            }
        }
        // Each chunk's block checksums (`crate::blocks`), checked on every
        // read; rows from before have none until the store computes them
        // at start-up from a file that still matches its id. And the copies
        // lost or found rotten, kept until meta has been told.
        2 => conn.execute_batch(
            "ALTER TABLE chunks ADD COLUMN blocks BLOB;
             CREATE TABLE lost (id BLOB PRIMARY KEY, found_ms INTEGER NOT NULL) WITHOUT ROWID;",
        ),
        _ => unreachable!("no upgrade from version {from}"),
    }
}

pub struct ChunkIndex {
    conn: Connection,
}

impl ChunkIndex {
    /// Opens (or creates) the index and upgrades it to [`INDEX_VERSION`];
    /// an index from a newer version is refused. WAL with
    /// `synchronous=NORMAL`: a crash may lose the last rows, never corrupt
    /// the file, and a chunk is durable once its file and folder are
    /// fsync'd (reconciliation re-indexes it), so a put pays no fsync for
    /// its row.
    pub fn open(path: &Path) -> Result<ChunkIndex, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let mut version: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > INDEX_VERSION {
            return Err(StoreError::NewerIndex { found: version, known: INDEX_VERSION });
        }
        while version < INDEX_VERSION {
            let tx = conn.unchecked_transaction()?;
            upgrade(&tx, version)?;
            version += 1;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
        }
        Ok(ChunkIndex { conn })
    }
    /// Indexes a chunk whose file is in place (written, or adopted): the
    /// size, CRC32C and block checksums are the file's. A chunk found lost
    /// before is no longer.
    pub fn insert(
        &self,
        id: &ChunkId,
        size: u64,
        crc32c: u32,
        blocks: &BlockSums,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT OR REPLACE INTO chunks (id, size, stored_at_ms, last_verified_ms, crc32c, blocks)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5)",
            params![id.as_bytes(), size as i64, now_ms, crc32c, blocks.to_bytes()],
        )?;
        self.conn.execute("DELETE FROM lost WHERE id = ?1", params![id.as_bytes()])?;
        Ok(())
    }

    /// Records the block checksums of a chunk indexed without them.
    pub fn set_blocks(&self, id: &ChunkId, crc32c: u32, blocks: &BlockSums) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE chunks SET crc32c = ?2, blocks = ?3 WHERE id = ?1",
            params![id.as_bytes(), crc32c, blocks.to_bytes()],
        )?;
        Ok(())
    }

    /// Chunks indexed before block checksums were kept.
    pub fn without_blocks(&self) -> Result<Vec<ChunkId>, StoreError> {
        let mut stmt = self.conn.prepare("SELECT id FROM chunks WHERE blocks IS NULL")?;
        let ids = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
        ids.map(|raw| chunk_id(raw?)).collect()
    }

    pub fn remove(&self, id: &ChunkId) -> Result<bool, StoreError> {
        Ok(self.conn.execute("DELETE FROM chunks WHERE id = ?1", params![id.as_bytes()])? > 0)
    }

    pub fn get(&self, id: &ChunkId) -> Result<Option<ChunkInfo>, StoreError> {
        Ok(self.get_with_blocks(id)?.map(|(info, _)| info))
    }

    /// A chunk's row and its block checksums (None for a row that has none,
    /// or whose checksums are malformed).
    pub fn get_with_blocks(&self, id: &ChunkId) -> Result<Option<(ChunkInfo, Option<BlockSums>)>, StoreError> {
        let mut stmt =
            self.conn.prepare_cached("SELECT size, stored_at_ms, crc32c, blocks FROM chunks WHERE id = ?1")?;
        Ok(stmt
            .query_row(params![id.as_bytes()], |row| {
                let info = ChunkInfo {
                    id: *id,
                    size: row.get::<_, i64>(0)? as u64,
                    stored_at_ms: row.get(1)?,
                    crc32c: row.get(2)?,
                };
                let blocks: Option<Vec<u8>> = row.get(3)?;
                Ok((info, blocks.as_deref().and_then(BlockSums::from_bytes)))
            })
            .optional()?)
    }

    pub fn verified(&self, id: &ChunkId, now_ms: i64) -> Result<(), StoreError> {
        self.conn.execute("UPDATE chunks SET last_verified_ms = ?2 WHERE id = ?1", params![id.as_bytes(), now_ms])?;
        Ok(())
    }

    /// Notes that this node's copy of `id` is lost (gone, or rotten and
    /// quarantined) and drops its row, in one transaction.
    pub fn mark_lost(&mut self, id: &ChunkId, now_ms: i64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM chunks WHERE id = ?1", params![id.as_bytes()])?;
        tx.execute("INSERT OR IGNORE INTO lost (id, found_ms) VALUES (?1, ?2)", params![id.as_bytes(), now_ms])?;
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` lost copies meta has not yet been told of.
    pub fn lost(&self, limit: usize) -> Result<Vec<ChunkId>, StoreError> {
        let mut stmt = self.conn.prepare_cached("SELECT id FROM lost ORDER BY found_ms LIMIT ?1")?;
        let ids = stmt.query_map([limit as i64], |row| row.get::<_, Vec<u8>>(0))?;
        ids.map(|raw| chunk_id(raw?)).collect()
    }

    /// Forgets lost copies once meta knows of them.
    pub fn reported(&self, ids: &[ChunkId]) -> Result<(), StoreError> {
        for id in ids {
            self.conn.execute("DELETE FROM lost WHERE id = ?1", params![id.as_bytes()])?;
        }
        Ok(())
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
            out.push(ChunkInfo { id: chunk_id(raw)?, size: size as u64, stored_at_ms, crc32c });
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

fn chunk_id(raw: Vec<u8>) -> Result<ChunkId, StoreError> {
    let bytes: [u8; 32] = raw.try_into().map_err(|_| StoreError::CorruptIndex)?;
    Ok(ChunkId::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unversioned_index_is_upgraded_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        {
            // As written before CRC32Cs were kept and versions recorded.
            let conn = Connection::open(&path).unwrap();
            upgrade(&conn, 0).unwrap();
            conn.execute("INSERT INTO chunks VALUES (?1, 3, 0, 0)", [&[7u8; 32][..]]).unwrap();
        }
        let index = ChunkIndex::open(&path).unwrap();
        let old = index.get(&ChunkId::from_bytes([7; 32])).unwrap().unwrap();
        assert_eq!((old.size, old.crc32c), (3, None));
        assert_eq!(index.without_blocks().unwrap(), vec![ChunkId::from_bytes([7; 32])]);
        let blocks = BlockSums::of(b"data");
        index.insert(&ChunkId::from_bytes([8; 32]), 4, 99, &blocks, 0).unwrap();
        let (info, sums) = index.get_with_blocks(&ChunkId::from_bytes([8; 32])).unwrap().unwrap();
        assert_eq!((info.crc32c, sums), (Some(99), Some(blocks)));
        drop(index);
        assert!(ChunkIndex::open(&path).is_ok(), "opening again changes nothing");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", INDEX_VERSION + 1).unwrap();
        assert!(matches!(ChunkIndex::open(&path), Err(StoreError::NewerIndex { .. })));
    }
}
