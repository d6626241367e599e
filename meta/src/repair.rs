//! The repairer: on the leader, it works through the durable repair queue
//! and has a node holding each chunk copy it to a newly chosen one (bytes go
//! node to node, never through here), recording each copy through Raft.
//! It also trims chunks with surplus copies back to their number, once that
//! many holders are alive: the copies it does not keep are deleted.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use jadfs_common::cluster_auth::Signer;
use jadfs_common::links::Links;
use jadfs_common::NodeId;

use crate::api::*;
use crate::lease;
use crate::node_link::NodeLink;
use crate::nodes::{choose, is_leader, zone_of, Liveness};
use crate::state::ReadPool;

/// Pause of the repairer when its queue is empty or stuck.
const REPAIR_IDLE: Duration = Duration::from_millis(500);
/// Chunks repaired at once.
const REPAIR_CONCURRENCY: usize = 4;

/// Runs for the life of the meta node; does work only while it leads.
/// Queues the chunks of nodes that died, then works through the repair
/// queue oldest first, asking a node holding each chunk to copy it to the
/// chosen new holder (bytes go node to node, never through here).
pub async fn run_repairer(
    raft: Raft,
    readers: Arc<ReadPool>,
    liveness: Arc<Liveness>,
    signer: Arc<Signer>,
    links: Links,
) {
    let copier = NodeLink::new(signer, links);
    let mut queued_dead: HashSet<NodeId> = HashSet::new();
    // Where the last pass stopped: chunks that cannot be repaired yet (no
    // live holder) never keep the ones behind them waiting.
    let mut cursor: Option<(u64, jadfs_common::ChunkId)> = None;
    let mut trim_cursor: Option<jadfs_common::ChunkId> = None;
    loop {
        let leading = is_leader(&raft);
        liveness.observe_leadership(leading);
        if !leading {
            queued_dead.clear();
            tokio::time::sleep(REPAIR_IDLE).await;
            continue;
        }
        let repaired = repair_round(&raft, &readers, &liveness, &copier, &mut queued_dead, &mut cursor).await;
        let trimmed = trim_round(&raft, &readers, &liveness, &mut trim_cursor).await;
        for failed in [repaired.as_ref().err(), trimmed.as_ref().err()].into_iter().flatten() {
            tracing::warn!(error = %failed, "repair round failed");
            crate::metrics::repair_failed();
        }
        if !repaired.unwrap_or(false) && !trimmed.unwrap_or(false) {
            tokio::time::sleep(REPAIR_IDLE).await;
        }
    }
}

/// One pass over the next page of the queue; Ok(true) if it made copies or
/// has more to look at (so another pass may follow at once).
async fn repair_round(
    raft: &Raft,
    readers: &Arc<ReadPool>,
    liveness: &Liveness,
    copier: &NodeLink,
    queued_dead: &mut HashSet<NodeId>,
    cursor: &mut Option<(u64, jadfs_common::ChunkId)>,
) -> Result<bool, MetaError> {
    let mut nodes = readers.list_nodes().await?;
    liveness.annotate(&mut nodes);
    for node in &nodes {
        if node.state != NodeState::Dead {
            queued_dead.remove(&node.id);
        } else if !queued_dead.contains(&node.id) {
            tracing::warn!(node = node.id, addr = %node.addr, "storage node is dead; queueing its chunks for new copies");
            write(raft, Command::QueueNodeChunks { node: node.id }).await?;
            queued_dead.insert(node.id);
        }
    }
    let repairs = readers.repair_queue(*cursor, 256).await?;
    let Some(last) = repairs.last() else {
        // The end of the queue: start again from its head next time.
        let wrapped = cursor.is_some();
        *cursor = None;
        return Ok(wrapped);
    };
    *cursor = Some((last.queued_at_log, last.chunk));
    let nodes = &nodes;
    let outcomes: Vec<Result<bool, MetaError>> = futures_util::stream::iter(repairs)
        .map(|repair| repair_chunk(raft, copier, nodes, repair))
        .buffer_unordered(REPAIR_CONCURRENCY)
        .collect()
        .await;
    let mut progress = false;
    for outcome in outcomes {
        progress |= outcome?;
    }
    Ok(progress)
}

/// Brings one chunk up to its number of live copies, as far as live nodes allow.
async fn repair_chunk(
    raft: &Raft,
    copier: &NodeLink,
    nodes: &[StorageNodeInfo],
    repair: Repair,
) -> Result<bool, MetaError> {
    let node = |id: NodeId| nodes.iter().find(|n| n.id == id);
    let live: Vec<&StorageNodeInfo> =
        repair.holders.iter().filter_map(|&id| node(id)).filter(|n| n.state == NodeState::Alive).collect();
    let wanted = (repair.copies as usize).saturating_sub(live.len());
    if wanted == 0 {
        write(raft, Command::RepairDone { chunk: repair.chunk, added: Vec::new(), done: true, write_id: None }).await?;
        return Ok(true);
    }
    if live.is_empty() {
        return Ok(false); // no copy to read until a holder is back
    }
    // A node with nothing free beyond its reserve would refuse the copy.
    let candidates: Vec<StorageNodeInfo> = nodes
        .iter()
        .filter(|n| n.state == NodeState::Alive && n.free_bytes > 0 && !n.draining && !repair.holders.contains(&n.id))
        .cloned()
        .collect();
    let zones: Vec<String> = live.iter().map(|n| zone_of(n)).collect();
    let mut targets: Vec<StorageNodeInfo> =
        choose(&candidates, wanted, &zones, &mut rand::thread_rng()).into_iter().cloned().collect();
    // Pinned like any write, so the chunk is not collected under the copy;
    // a target still to delete a copy of it is left for a later round.
    let write_id = jadfs_common::random_u64() >> 1;
    let pin = lease::pin(write_id, repair.chunk, targets.iter().map(|t| t.id).collect());
    if let CommandResult::Pinned { refused } = write(raft, pin).await? {
        targets.retain(|t| !refused.contains(&t.id));
    }
    let copies = async {
        let mut added = Vec::new();
        for target in &targets {
            for source in &live {
                match copier.copy(&source.addr, &repair.chunk, target.id).await {
                    Ok(response) if response.status().is_success() => {
                        added.push(target.id);
                        break;
                    }
                    Ok(response) => {
                        tracing::warn!(chunk = %repair.chunk, from = source.id, to = target.id, status = %response.status(), "copy refused")
                    }
                    Err(e) => {
                        tracing::warn!(chunk = %repair.chunk, from = source.id, to = target.id, error = %e, "copy failed")
                    }
                }
            }
        }
        added
    };
    let added = lease::renewing(write_id, |c| write(raft, c), copies).await;
    if added.is_empty() {
        write(raft, Command::Unpin { write_id }).await?;
        return Ok(false);
    }
    let done = live.len() + added.len() >= repair.copies as usize;
    let made = added.len();
    write(raft, Command::RepairDone { chunk: repair.chunk, added, done, write_id: Some(write_id) }).await?;
    crate::metrics::copies_made(made);
    Ok(true)
}

/// One pass over the next page of chunks with surplus copies; Ok(true) if
/// there is more to look at.
async fn trim_round(
    raft: &Raft,
    readers: &Arc<ReadPool>,
    liveness: &Liveness,
    cursor: &mut Option<jadfs_common::ChunkId>,
) -> Result<bool, MetaError> {
    let surplus = readers.surplus(*cursor, 256).await?;
    let Some(last) = surplus.last() else {
        let wrapped = cursor.is_some();
        *cursor = None;
        return Ok(wrapped);
    };
    *cursor = Some(last.chunk);
    let mut nodes = readers.list_nodes().await?;
    liveness.annotate(&mut nodes);
    for chunk in surplus {
        let Some(nodes) = not_kept(&chunk.holders, &nodes, chunk.copies as usize) else { continue };
        if let CommandResult::Collected(n @ 1..) =
            write(raft, Command::TrimCopies { chunk: chunk.chunk, nodes, now_ms: jadfs_common::now_ms() }).await?
        {
            tracing::info!(chunk = %chunk.chunk, copies = n, "surplus copies trimmed");
        }
    }
    Ok(true)
}

/// The holders of a chunk with surplus copies that are not kept: `copies`
/// live holders stay (none being drained), in different zones first and the
/// emptier first. None
/// while fewer than `copies` holders are alive: nothing is trimmed until
/// the copies that count are there.
fn not_kept(holders: &[NodeId], nodes: &[StorageNodeInfo], copies: usize) -> Option<Vec<NodeId>> {
    let mut alive: Vec<&StorageNodeInfo> =
        nodes.iter().filter(|n| n.state == NodeState::Alive && !n.draining && holders.contains(&n.id)).collect();
    if alive.len() < copies {
        return None;
    }
    alive.sort_by_key(|n| (std::cmp::Reverse(n.free_bytes), n.id));
    let mut kept: Vec<NodeId> = Vec::with_capacity(copies);
    let mut zones: HashSet<String> = HashSet::new();
    for node in &alive {
        if kept.len() < copies && zones.insert(zone_of(node)) {
            kept.push(node.id);
        }
    }
    for node in &alive {
        if kept.len() < copies && !kept.contains(&node.id) {
            kept.push(node.id);
        }
    }
    Some(holders.iter().copied().filter(|h| !kept.contains(h)).collect())
}

/// Commits a command of the leader's own (its leases timed by its clock).
pub(crate) async fn write(raft: &Raft, mut command: Command) -> Result<CommandResult, MetaError> {
    command.start_leases(jadfs_common::now_ms());
    match crate::batch::client_write(raft, command).await? {
        CommandResult::Failed(e) => Err(e),
        done => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: NodeId, zone: &str, free: u64, state: NodeState) -> StorageNodeInfo {
        crate::nodes::test_node(id, zone, free, 100, state)
    }

    #[test]
    fn surplus_copies_go_from_dead_nodes_first_then_keep_zones_apart() {
        let nodes = [
            node(1, "a", 50, NodeState::Alive),
            node(2, "a", 90, NodeState::Alive),
            node(3, "b", 10, NodeState::Alive),
            node(4, "c", 99, NodeState::Dead),
            node(5, "c", 20, NodeState::Suspect),
        ];
        assert_eq!(not_kept(&[1, 2, 3, 4], &nodes, 3), Some(vec![4]), "the dead node's copy goes");
        assert_eq!(not_kept(&[1, 2, 3], &nodes, 2), Some(vec![1]), "zones a and b kept, the emptier of a");
        assert_eq!(not_kept(&[1, 2, 5], &nodes, 3), None, "a suspect holder does not count: wait");
        assert_eq!(not_kept(&[1, 2, 3], &nodes, 3), Some(vec![]), "nothing surplus among live ones");
    }
}
