//! Storage nodes and the repair queue.

use jadfs_common::{ChunkId, NodeId};
use rusqlite::params;

use super::{Applier, Outcome};
use crate::api::{CommandResult, StorageNodeInfo};
use crate::state::rows::{replication_of, to_json};

impl Applier<'_> {
    pub(super) fn register_node(&self, node: &StorageNodeInfo) -> Outcome {
        self.tx.execute(
            "INSERT OR REPLACE INTO nodes (id, info) VALUES (?1, ?2)",
            params![node.id as i64, to_json(node)?],
        )?;
        Ok(CommandResult::Done)
    }

    /// The leader's repair of one queued chunk: `added` nodes now hold a
    /// copy; with `done`, enough live copies exist and it leaves the queue.
    pub(super) fn repair_done(&self, chunk: &ChunkId, added: &[NodeId], done: bool) -> Outcome {
        for node in added {
            self.tx.execute(
                "INSERT OR IGNORE INTO placements (chunk, node) VALUES (?1, ?2)",
                params![chunk.as_bytes(), *node as i64],
            )?;
        }
        if done {
            self.tx.execute("DELETE FROM repairs WHERE chunk = ?1", [chunk.as_bytes()])?;
        }
        Ok(CommandResult::Done)
    }

    /// Queues every chunk in use with a copy on `node` (declared dead).
    pub(super) fn queue_node_chunks(&self, node: NodeId) -> Outcome {
        let copies = replication_of(self.tx, None)?.copies;
        self.tx.execute(
            "INSERT OR IGNORE INTO repairs (chunk, copies, queued_at_log)
             SELECT p.chunk, ?2, ?3 FROM placements p JOIN chunks c ON c.id = p.chunk
             WHERE p.node = ?1 AND c.refcount > 0",
            params![node as i64, copies, self.log_index as i64],
        )?;
        Ok(CommandResult::Done)
    }

    /// `node` lost its copies of `chunks`: they leave its placements, and
    /// each one in use is queued for a new copy.
    pub(super) fn copies_lost(&self, node: NodeId, chunks: &[ChunkId]) -> Outcome {
        let copies = replication_of(self.tx, None)?.copies;
        for chunk in chunks {
            self.tx.execute(
                "DELETE FROM placements WHERE chunk = ?1 AND node = ?2",
                params![chunk.as_bytes(), node as i64],
            )?;
            self.tx.execute(
                "INSERT OR IGNORE INTO repairs (chunk, copies, queued_at_log)
                 SELECT id, ?2, ?3 FROM chunks WHERE id = ?1 AND refcount > 0",
                params![chunk.as_bytes(), copies, self.log_index as i64],
            )?;
        }
        Ok(CommandResult::Done)
    }
}
