//! The garbage collector: on the leader, it has the state machine collect
//! chunks nothing has used for the grace period (`Collect`) and copies no
//! placement names (`CollectStrays`), then has the storage nodes delete the
//! copies the state machine listed, recording each deletion through Raft.
//! What may be collected is decided only when a command applies (see
//! `state/apply/chunks.rs`); this loop only proposes and carries out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jadfs_common::cluster_auth::Signer;
use jadfs_common::links::Links;
use jadfs_common::{ChunkId, NodeId};

use crate::api::*;
use crate::node_link::NodeLink;
use crate::nodes::{is_leader, Liveness};
use crate::repair::write;
use crate::state::ReadPool;

/// Copies deleted per round, at most.
const DELETE_BATCH: usize = 256;
/// The longest pause between rounds.
const MAX_TICK: Duration = Duration::from_secs(1);
/// Strays are looked for at most this often, at least once a grace period.
const MAX_STRAY_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs for the life of the meta node; does work only while it leads.
/// Chunks orphaned `grace` ago or more are collected, and copies of no
/// placement older than `grace` are strays.
pub async fn run_collector(
    raft: Raft,
    readers: Arc<ReadPool>,
    liveness: Arc<Liveness>,
    signer: Arc<Signer>,
    links: Links,
    grace: Duration,
) {
    let nodes = NodeLink::new(signer, links);
    let tick = (grace / 2).clamp(Duration::from_millis(100), MAX_TICK);
    let stray_interval = grace.clamp(Duration::from_secs(1), MAX_STRAY_INTERVAL);
    let mut applied = AppliedSince::default();
    let mut strays_looked: Option<Instant> = None;
    loop {
        tokio::time::sleep(tick).await;
        if !is_leader(&raft) {
            // A new leader counts the grace from its own first look.
            (applied, strays_looked) = (AppliedSince::default(), None);
            continue;
        }
        let last_applied = raft.metrics().borrow().last_applied.map_or(0, |id| id.index);
        applied.observe(last_applied);
        let round = async {
            if let Some(orphaned_by_log) = applied.before(grace) {
                if readers.collectible(orphaned_by_log).await? {
                    let now_ms = jadfs_common::now_ms();
                    if let CommandResult::Collected(n) =
                        write(&raft, Command::Collect { orphaned_by_log, now_ms }).await?
                    {
                        tracing::info!(chunks = n, "collected unused chunks");
                    }
                }
            }
            delete_copies(&raft, &readers, &liveness, &nodes).await?;
            if strays_looked.is_none_or(|at| at.elapsed() >= stray_interval) {
                strays_looked = Some(Instant::now());
                collect_strays(&raft, &readers, &liveness, &nodes, grace).await?;
            }
            Ok::<(), MetaError>(())
        };
        if let Err(e) = round.await {
            tracing::warn!(error = %e, "collection round failed");
        }
    }
}

/// Has each live node delete the copies listed for it, then records the
/// deletions through Raft.
async fn delete_copies(
    raft: &Raft,
    readers: &Arc<ReadPool>,
    liveness: &Liveness,
    link: &NodeLink,
) -> Result<(), MetaError> {
    let mut nodes = readers.list_nodes().await?;
    liveness.annotate(&mut nodes);
    let dead: Vec<NodeId> = nodes.iter().filter(|n| n.state == NodeState::Dead).map(|n| n.id).collect();
    let pending = readers.deletions(DELETE_BATCH, dead).await?;
    if pending.is_empty() {
        return Ok(());
    }
    let asked = pending.iter().filter_map(|&(chunk, node)| {
        let info = nodes.iter().find(|n| n.id == node && n.state != NodeState::Dead)?;
        let addr = info.addr.clone();
        Some(async move {
            match link.delete(&addr, &chunk).await {
                Ok(()) => Some((chunk, node)),
                Err(e) => {
                    tracing::warn!(%chunk, node, error = %e, "deleting a copy failed; will retry");
                    None
                }
            }
        })
    });
    let done: Vec<(ChunkId, NodeId)> = futures_util::future::join_all(asked).await.into_iter().flatten().collect();
    if !done.is_empty() {
        tracing::info!(copies = done.len(), "deleted copies of collected chunks");
        let deleted = done.len();
        write(raft, Command::CopiesDeleted { copies: done }).await?;
        crate::metrics::copies_deleted(deleted);
    }
    Ok(())
}

/// Lists every live node's chunks and proposes for collection those older
/// than `grace` that no placement names and no write pins.
async fn collect_strays(
    raft: &Raft,
    readers: &Arc<ReadPool>,
    liveness: &Liveness,
    link: &NodeLink,
    grace: Duration,
) -> Result<(), MetaError> {
    let mut nodes = readers.list_nodes().await?;
    liveness.annotate(&mut nodes);
    let old_enough = jadfs_common::now_ms() - grace.as_millis() as i64;
    for node in nodes.iter().filter(|n| n.state == NodeState::Alive) {
        let mut after = None;
        loop {
            let page = match link.list(&node.addr, after.as_ref(), 1000).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(node = node.id, error = %e, "listing a node's chunks failed");
                    break;
                }
            };
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let old: Vec<ChunkId> = page.iter().filter(|c| c.stored_at_ms < old_enough).map(|c| c.id).collect();
            let strays = readers.strays(node.id, old).await?;
            if !strays.is_empty() {
                let command = Command::CollectStrays { node: node.id, chunks: strays, now_ms: jadfs_common::now_ms() };
                if let CommandResult::Collected(n) = write(raft, command).await? {
                    tracing::info!(node = node.id, copies = n, "collecting copies no object uses");
                }
            }
        }
    }
    Ok(())
}

/// The leader's record of when it saw which log index applied: the index
/// applied `grace` ago bounds what has been orphaned that long.
#[derive(Default)]
struct AppliedSince {
    seen: VecDeque<(Instant, u64)>,
}

impl AppliedSince {
    fn observe(&mut self, index: u64) {
        self.seen.push_back((Instant::now(), index));
    }

    /// The last index seen applied at least `grace` ago (older sightings go).
    fn before(&mut self, grace: Duration) -> Option<u64> {
        while self.seen.get(1).is_some_and(|(at, _)| at.elapsed() >= grace) {
            self.seen.pop_front();
        }
        self.seen.front().filter(|(at, _)| at.elapsed() >= grace).map(|(_, index)| *index)
    }
}
