//! Storage nodes and the repair queue.

use jadfs_common::{ChunkId, NodeId};
use rusqlite::{params, OptionalExtension};

use super::{Applier, Outcome};
use crate::api::{CommandResult, StorageNodeInfo};
use crate::state::rows::{from_json, replication_of, to_json};

impl Applier<'_> {
    /// A node registering at an address another id still holds has taken
    /// that node's place (its data folder, and so its id, is new): the
    /// other id is forgotten, so that nothing addressed to it (a listing
    /// for strays, a deletion, a write or copy placed on it by a leader
    /// that has not yet heard it is silent) reaches the new node under the
    /// old id. Its copies are gone with its disk: every chunk in use that
    /// it held is queued for repair, its pending deletions are dropped.
    pub(super) fn register_node(&self, node: &StorageNodeInfo) -> Outcome {
        let replaced: Vec<NodeId> = {
            let mut stmt = self.tx.prepare_cached("SELECT id, info FROM nodes WHERE id != ?1")?;
            let rows = stmt.query_map([node.id as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
            let mut replaced = Vec::new();
            for row in rows {
                let (id, raw) = row?;
                let other: StorageNodeInfo = from_json(&raw)?;
                if other.addr == node.addr {
                    replaced.push(id as NodeId);
                }
            }
            replaced
        };
        for old in replaced {
            self.queue_node_chunks(old)?;
            self.tx.execute("DELETE FROM placements WHERE node = ?1", [old as i64])?;
            self.tx.execute("DELETE FROM deletions WHERE node = ?1", [old as i64])?;
            self.tx.execute("DELETE FROM draining WHERE node = ?1", [old as i64])?;
            self.tx.execute("DELETE FROM nodes WHERE id = ?1", [old as i64])?;
        }
        self.tx.execute(
            "INSERT OR REPLACE INTO nodes (id, info) VALUES (?1, ?2)",
            params![node.id as i64, to_json(node)?],
        )?;
        Ok(CommandResult::Done)
    }

    /// The leader's repair of one queued chunk: `added` nodes now hold a
    /// copy; with `done`, enough live copies exist and it leaves the queue.
    /// A repair that pinned the chunk records its copies only while the pin
    /// holds (else they may have been collected), and never on a node with a
    /// deletion of the chunk pending.
    pub(super) fn repair_done(&self, chunk: &ChunkId, added: &[NodeId], done: bool, write_id: Option<u64>) -> Outcome {
        let pinned = match write_id {
            Some(write_id) => self
                .tx
                .query_row(
                    "SELECT 1 FROM pins WHERE chunk = ?1 AND write_id = ?2",
                    params![chunk.as_bytes(), write_id as i64],
                    |_| Ok(()),
                )
                .optional()?
                .is_some(),
            None => true,
        };
        for node in added.iter().filter(|_| pinned) {
            self.tx.execute(
                "INSERT OR IGNORE INTO placements (chunk, node)
                 SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM deletions WHERE chunk = ?1 AND node = ?2)",
                params![chunk.as_bytes(), *node as i64],
            )?;
        }
        if let Some(write_id) = write_id {
            self.tx.execute("DELETE FROM pins WHERE write_id = ?1", [write_id as i64])?;
        }
        // Copies made while a holder was only slow or away are surplus once it is back.
        self.tx.execute(
            "INSERT INTO surplus (chunk, copies)
             SELECT chunk, copies FROM repairs
             WHERE chunk = ?1 AND copies < (SELECT COUNT(*) FROM placements WHERE chunk = ?1)
             ON CONFLICT (chunk) DO UPDATE SET copies = MAX(copies, excluded.copies)",
            [chunk.as_bytes()],
        )?;
        if done && pinned {
            self.tx.execute("DELETE FROM repairs WHERE chunk = ?1", [chunk.as_bytes()])?;
        }
        Ok(CommandResult::Done)
    }

    pub(super) fn set_draining(&self, node: NodeId, draining: bool) -> Outcome {
        if draining {
            self.tx.execute("INSERT OR IGNORE INTO draining (node) VALUES (?1)", [node as i64])?;
        } else {
            self.tx.execute("DELETE FROM draining WHERE node = ?1", [node as i64])?;
        }
        Ok(CommandResult::Done)
    }

    pub(super) fn set_rebalance(&self, tolerance: Option<u8>) -> Outcome {
        crate::state::rows::write_setting(self.tx, "rebalance_tolerance", &tolerance)?;
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
