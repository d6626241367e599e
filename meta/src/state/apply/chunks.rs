//! Chunk references and placement: every object and part takes one
//! reference per chunk occurrence, and a chunk short of copies joins the
//! repair queue in the same transaction as the write that made it.

use jadfs_common::{ChunkRef, NodeId};
use rusqlite::params;

use super::Applier;
use crate::state::rows::chunk_nodes;

impl Applier<'_> {
    /// Takes one reference per chunk occurrence and records where it is
    /// stored; a chunk with fewer than `copies` copies joins the repair queue
    /// in the same transaction, so no acknowledged write is forgotten.
    pub(super) fn take_chunks(
        &self,
        chunks: &[ChunkRef],
        placement: &[Vec<NodeId>],
        copies: u8,
    ) -> rusqlite::Result<()> {
        for (chunk, nodes) in chunks.iter().zip(placement) {
            self.tx.execute(
                "INSERT INTO chunks (id, size, refcount, orphaned_at_log) VALUES (?1, ?2, 1, NULL)
                 ON CONFLICT(id) DO UPDATE SET refcount = refcount + 1, orphaned_at_log = NULL",
                params![chunk.id.as_bytes(), chunk.size as i64],
            )?;
            for node in nodes {
                self.tx.execute(
                    "INSERT OR IGNORE INTO placements (chunk, node) VALUES (?1, ?2)",
                    params![chunk.id.as_bytes(), *node as i64],
                )?;
            }
            if chunk_nodes(self.tx, &chunk.id)?.len() < copies as usize {
                self.tx.execute(
                    "INSERT OR IGNORE INTO repairs (chunk, copies, queued_at_log) VALUES (?1, ?2, ?3)",
                    params![chunk.id.as_bytes(), copies, self.log_index as i64],
                )?;
            }
        }
        Ok(())
    }

    /// Drops one reference per chunk occurrence; a chunk no object uses any
    /// more is marked orphaned (collection is the garbage collector's job).
    pub(super) fn release_chunks(&self, chunks: &[ChunkRef]) -> rusqlite::Result<()> {
        for chunk in chunks {
            self.tx.execute(
                "UPDATE chunks SET refcount = refcount - 1,
                     orphaned_at_log = CASE WHEN refcount - 1 <= 0 THEN ?2 ELSE NULL END
                 WHERE id = ?1",
                params![chunk.id.as_bytes(), self.log_index as i64],
            )?;
            // A chunk nothing uses needs no more copies.
            self.tx.execute(
                "DELETE FROM repairs WHERE chunk = ?1 AND EXISTS (SELECT 1 FROM chunks WHERE id = ?1 AND refcount <= 0)",
                [chunk.id.as_bytes()],
            )?;
        }
        Ok(())
    }
}
