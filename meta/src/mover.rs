//! The mover: on the leader, it moves copies off nodes being drained and,
//! while a rebalance is asked for, from the fullest node to the emptiest.
//! A move is a repair that replaces a holder: the chunk is pinned, a holder
//! pushes a copy to the target (checked on both ends), and `MoveCopy` puts
//! the target in the old holder's place in one command, so a chunk never
//! has fewer copies than before. Its state (who drains, the tolerance) is
//! in the state machine: a new leader goes on where the last one stopped.
//! Moves run a few at a time, so a drain or rebalance never takes the
//! cluster's bandwidth from its clients.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jadfs_common::cluster_auth::Signer;
use jadfs_common::links::Links;
use jadfs_common::{ChunkId, NodeId};

use crate::api::*;
use crate::lease;
use crate::node_link::NodeLink;
use crate::nodes::{choose, is_leader, zone_of, Liveness};
use crate::repair::write;
use crate::state::ReadPool;

/// Copies moved at once (the throttle).
const MOVES_AT_ONCE: usize = 4;
/// Chunks looked at per round.
const MOVE_PAGE: usize = 64;
/// Pause when there is nothing to move.
const MOVE_IDLE: Duration = Duration::from_secs(1);

pub async fn run_mover(raft: Raft, readers: Arc<ReadPool>, liveness: Arc<Liveness>, signer: Arc<Signer>, links: Links) {
    let link = NodeLink::new(signer, links);
    let mut mover = Mover { raft, readers, liveness, link, cursors: HashMap::new(), fruitless: 0 };
    loop {
        if !is_leader(&mover.raft) {
            tokio::time::sleep(MOVE_IDLE).await;
            continue;
        }
        match mover.round().await {
            Ok(true) => {}
            Ok(false) => tokio::time::sleep(MOVE_IDLE).await,
            Err(e) => {
                tracing::warn!(error = %e, "moving copies failed");
                tokio::time::sleep(MOVE_IDLE).await;
            }
        }
    }
}

struct Mover {
    raft: Raft,
    readers: Arc<ReadPool>,
    liveness: Arc<Liveness>,
    link: NodeLink,
    /// Per node, where the last page of its chunks ended.
    cursors: HashMap<NodeId, ChunkId>,
    /// Rebalance pages in a row that moved nothing.
    fruitless: usize,
}

/// A copy to move.
struct Move {
    chunk: HeldChunk,
    from: NodeId,
    to: StorageNodeInfo,
}

impl Mover {
    /// One page of moves: drains first, then the rebalance. Ok(true) if it
    /// moved a copy.
    async fn round(&mut self) -> Result<bool, MetaError> {
        let mut nodes = self.readers.list_nodes().await?;
        self.liveness.annotate(&mut nodes);
        let targets: Vec<StorageNodeInfo> =
            nodes.iter().filter(|n| n.state == NodeState::Alive && !n.draining && n.free_bytes > 0).cloned().collect();
        for drained in nodes.iter().filter(|n| n.draining) {
            let page = self.page(drained.id).await?;
            if page.is_empty() {
                continue;
            }
            let moves: Vec<Move> = page
                .into_iter()
                .filter_map(|chunk| {
                    let to = target(&chunk, drained.id, &nodes, &targets)?;
                    Some(Move { chunk, from: drained.id, to })
                })
                .collect();
            return Ok(self.run(moves, &nodes).await > 0);
        }
        self.rebalance(&nodes, &targets).await
    }

    /// The next page of `node`'s chunks, starting over at the end.
    async fn page(&mut self, node: NodeId) -> Result<Vec<HeldChunk>, MetaError> {
        let after = self.cursors.get(&node).copied();
        let page = self.readers.node_chunks(node, after, MOVE_PAGE).await?;
        match page.last() {
            Some(last) => self.cursors.insert(node, last.chunk),
            None => self.cursors.remove(&node),
        };
        if page.is_empty() && after.is_some() {
            return self.readers.node_chunks(node, None, MOVE_PAGE).await;
        }
        Ok(page)
    }

    /// Moves from the node furthest above its fair share to the one furthest
    /// below, until every node is within the tolerance; then ends the
    /// rebalance (or when a whole pass finds nothing to move).
    async fn rebalance(&mut self, nodes: &[StorageNodeInfo], targets: &[StorageNodeInfo]) -> Result<bool, MetaError> {
        let usage = self.readers.usage().await?;
        let Some(tolerance) = usage.rebalance_tolerance else {
            self.fruitless = 0;
            return Ok(false);
        };
        let held: HashMap<NodeId, u64> = usage.nodes.iter().map(|u| (u.node, u.bytes)).collect();
        let shares = fair_shares(targets, &held);
        let tol = tolerance as f64 / 100.0;
        let ratio = |(id, fair): &(NodeId, f64)| held.get(id).copied().unwrap_or(0) as f64 / fair.max(1.0);
        let fullest = shares.iter().max_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        let emptiest = shares.iter().min_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        let (Some(&(from, _)), Some(&(to, fair_to))) = (fullest, emptiest) else {
            return self.end_rebalance("no nodes").await;
        };
        if shares.iter().all(|s| (ratio(s) - 1.0).abs() <= tol) {
            return self.end_rebalance("every node is within its tolerance").await;
        }
        let chunks_from = usage.nodes.iter().find(|u| u.node == from).map_or(0, |u| u.chunks) as usize;
        if self.fruitless > chunks_from / MOVE_PAGE + 1 {
            return self.end_rebalance("nothing more can move").await;
        }
        let to_node = targets.iter().find(|n| n.id == to).expect("a share is a target");
        // Fill the emptiest up to its share, not past its tolerance.
        let mut room = fair_to * (1.0 + tol) - held.get(&to).copied().unwrap_or(0) as f64;
        let mut moves = Vec::new();
        for chunk in self.page(from).await? {
            if room < chunk.size as f64 || chunk.holders.contains(&to) || !keeps_zones(&chunk, from, to_node, nodes) {
                continue;
            }
            room -= chunk.size as f64;
            moves.push(Move { chunk, from, to: to_node.clone() });
        }
        let moved = self.run(moves, nodes).await;
        self.fruitless = if moved == 0 { self.fruitless + 1 } else { 0 };
        Ok(true)
    }

    async fn end_rebalance(&mut self, why: &str) -> Result<bool, MetaError> {
        self.fruitless = 0;
        tracing::info!(why, "rebalance done");
        write(&self.raft, Command::SetRebalance { tolerance: None }).await?;
        Ok(false)
    }

    /// Carries out moves, a few at a time; how many took place.
    async fn run(&self, moves: Vec<Move>, nodes: &[StorageNodeInfo]) -> usize {
        let outcomes: Vec<bool> = futures_util::stream::iter(moves)
            .map(|m| self.move_copy(m, nodes))
            .buffer_unordered(MOVES_AT_ONCE)
            .map(|outcome| {
                outcome.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "a move failed; it is tried again later");
                    false
                })
            })
            .collect()
            .await;
        outcomes.into_iter().filter(|&moved| moved).count()
    }

    async fn move_copy(&self, m: Move, nodes: &[StorageNodeInfo]) -> Result<bool, MetaError> {
        let write_id = jadfs_common::random_u64() >> 1;
        let chunk = m.chunk.chunk;
        if let CommandResult::Pinned { refused } = write(&self.raft, lease::pin(write_id, chunk, vec![m.to.id])).await?
        {
            if !refused.is_empty() {
                write(&self.raft, Command::Unpin { write_id }).await?;
                return Ok(false);
            }
        }
        // The drained node reads its own copy first; any live holder will do.
        let mut sources: Vec<&StorageNodeInfo> =
            nodes.iter().filter(|n| n.state == NodeState::Alive && m.chunk.holders.contains(&n.id)).collect();
        sources.sort_by_key(|n| n.id != m.from);
        let copy = async {
            for source in sources {
                match self.link.copy(&source.addr, &chunk, m.to.id).await {
                    Ok(response) if response.status().is_success() => return true,
                    Ok(response) => {
                        tracing::warn!(%chunk, from = source.id, to = m.to.id, status = %response.status(), "copy refused")
                    }
                    Err(e) => tracing::warn!(%chunk, from = source.id, to = m.to.id, error = %e, "copy failed"),
                }
            }
            false
        };
        if lease::renewing(write_id, |c| write(&self.raft, c), copy).await {
            let done = Command::MoveCopy { chunk, from: m.from, to: m.to.id, write_id, now_ms: jadfs_common::now_ms() };
            return Ok(matches!(write(&self.raft, done).await?, CommandResult::Collected(1)));
        }
        write(&self.raft, Command::Unpin { write_id }).await?;
        Ok(false)
    }
}

/// Where a drained node's copy of `chunk` goes: a live node that does not
/// hold it, in a zone the other holders do not use where one is left.
fn target(
    chunk: &HeldChunk,
    from: NodeId,
    nodes: &[StorageNodeInfo],
    targets: &[StorageNodeInfo],
) -> Option<StorageNodeInfo> {
    let candidates: Vec<StorageNodeInfo> = targets.iter().filter(|n| !chunk.holders.contains(&n.id)).cloned().collect();
    let zones: Vec<String> =
        nodes.iter().filter(|n| n.id != from && chunk.holders.contains(&n.id)).map(zone_of).collect();
    choose(&candidates, 1, &zones, &mut rand::thread_rng()).into_iter().next().cloned()
}

/// Whether moving `chunk`'s copy from `from` to `to` leaves its copies in
/// at least as many zones.
fn keeps_zones(chunk: &HeldChunk, from: NodeId, to: &StorageNodeInfo, nodes: &[StorageNodeInfo]) -> bool {
    let zone = |id: NodeId| nodes.iter().find(|n| n.id == id).map(zone_of).unwrap_or_else(|| format!("node-{id}"));
    let before: HashSet<String> = chunk.holders.iter().map(|&h| zone(h)).collect();
    let mut after: HashSet<String> = chunk.holders.iter().filter(|&&h| h != from).map(|&h| zone(h)).collect();
    after.insert(zone_of(to));
    after.len() >= before.len()
}

/// Each target's fair share of the bytes the targets hold, by capacity.
fn fair_shares(targets: &[StorageNodeInfo], held: &HashMap<NodeId, u64>) -> Vec<(NodeId, f64)> {
    let total: u64 = targets.iter().map(|n| held.get(&n.id).copied().unwrap_or(0)).sum();
    let capacity: u64 = targets.iter().map(|n| n.capacity_bytes).sum();
    if capacity == 0 {
        return Vec::new();
    }
    targets.iter().map(|n| (n.id, total as f64 * n.capacity_bytes as f64 / capacity as f64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: NodeId, zone: &str, capacity: u64) -> StorageNodeInfo {
        crate::nodes::test_node(id, zone, capacity, capacity, NodeState::Alive)
    }

    #[test]
    fn fair_shares_follow_capacity_and_moves_keep_zones() {
        let nodes = [node(1, "a", 100), node(2, "b", 100), node(3, "b", 200)];
        let held = HashMap::from([(1, 300), (2, 100), (3, 0)]);
        assert_eq!(fair_shares(&nodes, &held), [(1, 100.0), (2, 100.0), (3, 200.0)]);
        let chunk = HeldChunk { chunk: ChunkId::of(b"c"), size: 1, holders: vec![1, 2] };
        assert!(!keeps_zones(&chunk, 1, &nodes[2], &nodes), "a and b would become b alone");
        assert!(keeps_zones(&chunk, 2, &nodes[2], &nodes), "b for b");
        let moved = target(&chunk, 1, &nodes, &nodes).unwrap();
        assert_eq!(moved.id, 3, "the only node without a copy");
    }
}
