//! Chunk references, placement and collection. Every object and part takes
//! one reference per chunk occurrence, and a chunk short of copies joins the
//! repair queue in the same transaction as the write that made it.
//!
//! Collection is decided here, so that a new reference and a deletion can
//! never both win. A write pins each chunk (`Pin`) after sending its bytes
//! and before the nodes keep them; a chunk is collected (`Collect`: its
//! copies join `deletions`) only if nothing references it and no write pins
//! it, and a pin answers which of the write's nodes still have a deletion
//! of that chunk to carry out, so the write does not keep it there. The
//! commit then takes the reference only while its pin holds. So whichever
//! of a commit and a collection applies first, the other sees it: a
//! collection after a pin or a reference takes nothing; a pin after a
//! collection keeps the write off the nodes deleting the chunk.

use jadfs_common::{ChunkId, ChunkRef, NodeId};
use rusqlite::{params, OptionalExtension};

use super::{refuse, Applier, Fail, Outcome};
use crate::api::{CommandResult, MetaError};
use crate::state::rows::chunk_nodes;

/// Chunks one `Collect` takes at most (the rest wait for the next).
const COLLECT_BATCH: i64 = 1000;

/// Where a command's chunks were put, and by what.
#[derive(Clone, Copy)]
pub(in crate::state) struct Written<'a> {
    /// `placement[i]`: the nodes that took chunk `i`.
    pub placement: &'a [Vec<NodeId>],
    pub by: Writer,
}

#[derive(Clone, Copy)]
pub(in crate::state) enum Writer {
    /// The write with this id, which pinned the chunks it put on nodes.
    Write(u64),
    /// No write: every chunk is a reused one.
    Nothing,
    /// A command from before pins, whose placement is trusted as it was then.
    BeforePins,
}

impl<'a> Written<'a> {
    /// What a PutObject or PutPart says (no write id: from before pins).
    pub fn by(placement: &'a [Vec<NodeId>], write_id: Option<u64>) -> Written<'a> {
        Written { placement, by: write_id.map_or(Writer::BeforePins, Writer::Write) }
    }

    /// Chunks already stored and referenced, none written (a copy).
    pub fn reused() -> Written<'static> {
        Written { placement: &[], by: Writer::Nothing }
    }
}

impl Applier<'_> {
    /// Takes one reference per chunk occurrence and records where it is
    /// stored; a chunk with fewer than `copies` copies joins the repair queue
    /// in the same transaction, so no acknowledged write is forgotten. A
    /// chunk the write pinned is recorded on the nodes it was put on; one it
    /// did not pin is a reused one, which must still be in use (else the
    /// command is refused: it may have been collected). The write's pins
    /// are then dropped.
    pub(super) fn take_chunks(&self, chunks: &[ChunkRef], written: Written, copies: u8) -> Result<(), Fail> {
        for (i, chunk) in chunks.iter().enumerate() {
            let pinned = match written.by {
                Writer::BeforePins => true,
                Writer::Write(write_id) => self.pinned_by(&chunk.id, write_id)?,
                Writer::Nothing => false,
            };
            if !pinned && !self.in_use(&chunk.id)? {
                return refuse(MetaError::ChunkGone(format!(
                    "chunk {} is neither pinned by this write nor in use",
                    chunk.id
                )));
            }
            self.tx.execute(
                "INSERT INTO chunks (id, size, refcount, orphaned_at_log) VALUES (?1, ?2, 1, NULL)
                 ON CONFLICT(id) DO UPDATE SET refcount = refcount + 1, orphaned_at_log = NULL",
                params![chunk.id.as_bytes(), chunk.size as i64],
            )?;
            let nodes = written.placement.get(i).filter(|_| pinned).map_or(&[][..], Vec::as_slice);
            for node in nodes {
                // A node with a deletion of the chunk pending would lose the copy.
                self.tx.execute(
                    "INSERT OR IGNORE INTO placements (chunk, node)
                     SELECT ?1, ?2 WHERE NOT EXISTS (SELECT 1 FROM deletions WHERE chunk = ?1 AND node = ?2)",
                    params![chunk.id.as_bytes(), *node as i64],
                )?;
            }
            let named = chunk_nodes(self.tx, &chunk.id)?.len();
            if named < copies as usize {
                self.tx.execute(
                    "INSERT OR IGNORE INTO repairs (chunk, copies, queued_at_log) VALUES (?1, ?2, ?3)",
                    params![chunk.id.as_bytes(), copies, self.log_index as i64],
                )?;
            } else if named > copies as usize {
                self.note_surplus(&chunk.id, copies)?;
            }
        }
        if let Writer::Write(write_id) = written.by {
            self.tx.execute("DELETE FROM pins WHERE write_id = ?1", [write_id as i64])?;
        }
        Ok(())
    }

    fn pinned_by(&self, chunk: &ChunkId, write_id: u64) -> rusqlite::Result<bool> {
        let found = self
            .tx
            .query_row(
                "SELECT 1 FROM pins WHERE chunk = ?1 AND write_id = ?2",
                params![chunk.as_bytes(), write_id as i64],
                |_| Ok(()),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// Whether a write other than `except` pins `chunk` for `node` (a pin
    /// from before pins named their nodes counts for every node): that
    /// write may still record a copy there, which must then exist.
    fn pinned_on(&self, chunk: &ChunkId, node: NodeId, except: Option<u64>) -> rusqlite::Result<bool> {
        self.tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM pins p WHERE p.chunk = ?1 AND p.write_id IS NOT ?3
                 AND (EXISTS (SELECT 1 FROM pin_nodes n WHERE n.chunk = ?1 AND n.write_id = p.write_id AND n.node = ?2)
                      OR NOT EXISTS (SELECT 1 FROM pin_nodes n WHERE n.chunk = ?1 AND n.write_id = p.write_id)))",
            params![chunk.as_bytes(), node as i64, except.map(|w| w as i64)],
            |r| r.get(0),
        )
    }

    /// Whether `node` is still to delete its copy of `chunk`.
    fn deleting(&self, chunk: &ChunkId, node: NodeId) -> rusqlite::Result<bool> {
        self.tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM deletions WHERE chunk = ?1 AND node = ?2)",
            params![chunk.as_bytes(), node as i64],
            |r| r.get(0),
        )
    }

    fn in_use(&self, chunk: &ChunkId) -> rusqlite::Result<bool> {
        let refcount: Option<i64> = self
            .tx
            .query_row("SELECT refcount FROM chunks WHERE id = ?1", [chunk.as_bytes()], |r| r.get(0))
            .optional()?;
        Ok(refcount.is_some_and(|n| n > 0))
    }

    /// Drops one reference per chunk occurrence; a chunk no object uses any
    /// more is marked orphaned (collected once its grace has passed).
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

    pub(super) fn pin(&self, write_id: u64, chunk: &ChunkId, nodes: &[NodeId], expires_ms: i64) -> Outcome {
        self.tx.execute(
            "INSERT INTO pins (chunk, write_id, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (chunk, write_id) DO UPDATE SET expires_ms = MAX(expires_ms, excluded.expires_ms)",
            params![chunk.as_bytes(), write_id as i64, expires_ms],
        )?;
        self.renew_pins(write_id, expires_ms)?;
        for &node in nodes {
            self.tx.execute(
                "INSERT OR IGNORE INTO pin_nodes (chunk, write_id, node) VALUES (?1, ?2, ?3)",
                params![chunk.as_bytes(), write_id as i64, node as i64],
            )?;
        }
        let mut refused = Vec::new();
        for &node in nodes {
            if self.deleting(chunk, node)? {
                refused.push(node);
            }
        }
        Ok(CommandResult::Pinned { refused })
    }

    pub(super) fn renew_pins(&self, write_id: u64, expires_ms: i64) -> Outcome {
        self.tx.execute(
            "UPDATE pins SET expires_ms = MAX(expires_ms, ?2) WHERE write_id = ?1",
            params![write_id as i64, expires_ms],
        )?;
        Ok(CommandResult::Done)
    }

    /// Pins whose lease lapsed by `now_ms` (their writer died, or was cut
    /// off longer than a lease) hold nothing any more.
    fn drop_lapsed_pins(&self, now_ms: i64) -> rusqlite::Result<()> {
        self.tx.execute("DELETE FROM pins WHERE expires_ms < ?1", [now_ms])?;
        Ok(())
    }

    pub(super) fn unpin(&self, write_id: u64) -> Outcome {
        self.tx.execute("DELETE FROM pins WHERE write_id = ?1", [write_id as i64])?;
        Ok(CommandResult::Done)
    }

    /// Collects unreferenced, unpinned chunks orphaned at or before
    /// `orphaned_by_log`: their rows go, and each of their copies joins the
    /// deletions.
    pub(super) fn collect(&self, orphaned_by_log: u64, now_ms: i64) -> Outcome {
        self.drop_lapsed_pins(now_ms)?;
        let ids: Vec<Vec<u8>> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT id FROM chunks
                 WHERE refcount <= 0 AND orphaned_at_log <= ?1
                   AND NOT EXISTS (SELECT 1 FROM pins WHERE pins.chunk = chunks.id)
                 LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![orphaned_by_log as i64, COLLECT_BATCH], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            self.tx.execute(
                "INSERT OR IGNORE INTO deletions (chunk, node, queued_at_log)
                 SELECT chunk, node, ?2 FROM placements WHERE chunk = ?1",
                params![id, self.log_index as i64],
            )?;
            self.tx.execute("DELETE FROM placements WHERE chunk = ?1", [id])?;
            self.tx.execute("DELETE FROM repairs WHERE chunk = ?1", [id])?;
            self.tx.execute("DELETE FROM surplus WHERE chunk = ?1", [id])?;
            self.tx.execute("DELETE FROM chunks WHERE id = ?1", [id])?;
        }
        Ok(CommandResult::Collected(ids.len() as u64))
    }

    /// Copies on `node` that no placement names and no write pins join the
    /// deletions: left by failed writes, or surplus.
    pub(super) fn collect_strays(&self, node: NodeId, chunks: &[ChunkId], now_ms: i64) -> Outcome {
        self.drop_lapsed_pins(now_ms)?;
        let mut taken = 0;
        for chunk in chunks {
            taken += self.tx.execute(
                "INSERT OR IGNORE INTO deletions (chunk, node, queued_at_log)
                 SELECT ?1, ?2, ?3
                 WHERE NOT EXISTS (SELECT 1 FROM placements WHERE chunk = ?1 AND node = ?2)
                   AND NOT EXISTS (SELECT 1 FROM pins WHERE chunk = ?1)",
                params![chunk.as_bytes(), node as i64, self.log_index as i64],
            )?;
        }
        Ok(CommandResult::Collected(taken as u64))
    }

    /// Queues a chunk whose placement names more than `copies` nodes (a
    /// write of equal bytes put it on other nodes; a repair made copies
    /// while a holder was only slow or away), for the leader to trim.
    pub(super) fn note_surplus(&self, chunk: &ChunkId, copies: u8) -> rusqlite::Result<()> {
        self.tx.execute(
            "INSERT INTO surplus (chunk, copies) VALUES (?1, ?2)
             ON CONFLICT (chunk) DO UPDATE SET copies = MAX(copies, excluded.copies)",
            params![chunk.as_bytes(), copies],
        )?;
        Ok(())
    }

    /// Drops `nodes` from the chunk's placement, each copy joining the
    /// deletions, while more than its number of copies stay named. A node a
    /// write pins the chunk for keeps its copy (the write may record it):
    /// the leader tries again later.
    pub(super) fn trim_copies(&self, chunk: &ChunkId, nodes: &[NodeId], now_ms: i64) -> Outcome {
        self.drop_lapsed_pins(now_ms)?;
        let copies: Option<i64> = self
            .tx
            .query_row("SELECT copies FROM surplus WHERE chunk = ?1", [chunk.as_bytes()], |r| r.get(0))
            .optional()?;
        let Some(copies) = copies else { return Ok(CommandResult::Collected(0)) };
        let holders = chunk_nodes(self.tx, chunk)?;
        let mut named = holders.len();
        let mut trimmed = 0;
        for node in nodes.iter().filter(|n| holders.contains(n)) {
            if named <= copies as usize {
                break;
            }
            if self.pinned_on(chunk, *node, None)? {
                continue;
            }
            self.tx.execute(
                "INSERT OR IGNORE INTO deletions (chunk, node, queued_at_log) VALUES (?1, ?2, ?3)",
                params![chunk.as_bytes(), *node as i64, self.log_index as i64],
            )?;
            self.tx.execute(
                "DELETE FROM placements WHERE chunk = ?1 AND node = ?2",
                params![chunk.as_bytes(), *node as i64],
            )?;
            named -= 1;
            trimmed += 1;
        }
        if named <= copies as usize {
            self.tx.execute("DELETE FROM surplus WHERE chunk = ?1", [chunk.as_bytes()])?;
        }
        Ok(CommandResult::Collected(trimmed))
    }

    /// `to` takes the place of `from` among the chunk's holders, once the
    /// copy made for it is durable and still pinned by `write_id`; `from`'s
    /// copy joins the deletions. Not while another write pins the chunk for
    /// `from` (it may record the copy there), nor if `from` no longer holds
    /// it or `to` already does (or is to delete it). The move's pins are
    /// dropped.
    pub(super) fn move_copy(&self, chunk: &ChunkId, from: NodeId, to: NodeId, write_id: u64, now_ms: i64) -> Outcome {
        self.drop_lapsed_pins(now_ms)?;
        let pinned = self.pinned_by(chunk, write_id)?;
        let others = self.pinned_on(chunk, from, Some(write_id))?;
        self.tx.execute("DELETE FROM pins WHERE write_id = ?1", [write_id as i64])?;
        let holders = chunk_nodes(self.tx, chunk)?;
        if !pinned || others || !holders.contains(&from) || holders.contains(&to) || self.deleting(chunk, to)? {
            return Ok(CommandResult::Collected(0));
        }
        self.tx
            .execute("INSERT INTO placements (chunk, node) VALUES (?1, ?2)", params![chunk.as_bytes(), to as i64])?;
        self.tx
            .execute("DELETE FROM placements WHERE chunk = ?1 AND node = ?2", params![chunk.as_bytes(), from as i64])?;
        self.tx.execute(
            "INSERT OR IGNORE INTO deletions (chunk, node, queued_at_log) VALUES (?1, ?2, ?3)",
            params![chunk.as_bytes(), from as i64, self.log_index as i64],
        )?;
        Ok(CommandResult::Collected(1))
    }

    pub(super) fn copies_deleted(&self, copies: &[(ChunkId, NodeId)]) -> Outcome {
        for (chunk, node) in copies {
            self.tx.execute(
                "DELETE FROM deletions WHERE chunk = ?1 AND node = ?2",
                params![chunk.as_bytes(), *node as i64],
            )?;
        }
        Ok(CommandResult::Done)
    }
}
