//! Where new chunks go: the storage nodes as the meta leader last listed
//! them (cached briefly), minus those that failed this gateway lately,
//! chosen in different zones and weighted by free space.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jadfs_common::NodeId;
use jadfs_meta::api::{NodeState, StorageNodeInfo};
use tokio::sync::RwLock;

use crate::error::{Code, S3Error};
use crate::Gateway;

const NODE_CACHE_TTL: Duration = Duration::from_secs(5);
/// A node that failed a write is left out of new writes this long, before
/// the meta leader has noticed its silence.
const FAILED_NODE_PAUSE: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct NodeCache {
    listed: RwLock<Option<(Instant, Vec<StorageNodeInfo>)>>,
    failed: Mutex<HashMap<NodeId, Instant>>,
}

impl Gateway {
    /// The storage nodes, from the cache unless `refresh` or it is stale.
    pub async fn storage_nodes(&self, refresh: bool) -> Result<Vec<StorageNodeInfo>, S3Error> {
        if let Some((at, nodes)) = &*self.nodes.listed.read().await {
            if !refresh && at.elapsed() < NODE_CACHE_TTL {
                return Ok(nodes.clone());
            }
        }
        let nodes = self.meta.list_nodes().await?;
        *self.nodes.listed.write().await = Some((Instant::now(), nodes.clone()));
        Ok(nodes)
    }

    /// The nodes that receive the copies of a new chunk: up to `count` live
    /// nodes in different zones, weighted by free space; at least `required`.
    pub async fn pick_nodes(&self, count: usize, required: usize) -> Result<Vec<StorageNodeInfo>, S3Error> {
        let failed: Vec<NodeId> = {
            let mut failed = self.nodes.failed.lock().unwrap_or_else(|e| e.into_inner());
            failed.retain(|_, at| at.elapsed() < FAILED_NODE_PAUSE);
            failed.keys().copied().collect()
        };
        // A node being drained takes no new copies.
        let nodes = self.storage_nodes(false).await?.into_iter().filter(|n| !n.draining).collect();
        let live = candidates(nodes, &failed, required);
        // A node without room for one more chunk beyond its reserve is
        // left out: it would refuse the chunk.
        let (roomy, full): (Vec<StorageNodeInfo>, Vec<StorageNodeInfo>) =
            live.into_iter().partition(|n| n.free_bytes >= self.config.chunk_size);
        let chosen: Vec<StorageNodeInfo> =
            jadfs_meta::nodes::choose(&roomy, count, &[], &mut rand::thread_rng()).into_iter().cloned().collect();
        if chosen.len() < required {
            if roomy.len() + full.len() >= required {
                tracing::error!(roomy = roomy.len(), full = full.len(), required, "storage nodes are full");
                return Err(Code::InsufficientStorage.into());
            }
            tracing::error!(alive = roomy.len() + full.len(), required, "not enough live storage nodes");
            return Err(S3Error::new(Code::ServiceUnavailable).with_message("Not enough storage nodes are available."));
        }
        Ok(chosen)
    }

    /// Remembers that a node failed a write, so the next ones avoid it.
    pub fn note_node_failure(&self, node: NodeId) {
        self.nodes.failed.lock().unwrap_or_else(|e| e.into_inner()).insert(node, Instant::now());
    }

    /// The address of a storage node, refreshing the node list once if it is unknown.
    pub async fn node_addr(&self, id: NodeId) -> Option<String> {
        for refresh in [false, true] {
            let nodes = self.storage_nodes(refresh).await.ok()?;
            if let Some(node) = nodes.iter().find(|n| n.id == id) {
                return Some(node.addr.clone());
            }
        }
        None
    }
}

/// The nodes a new chunk may go to: live ones that did not fail lately;
/// if fewer than `required`, live ones that did; if still fewer, any not
/// declared dead. A node that failed or went quiet is still better than no
/// write at all.
fn candidates(nodes: Vec<StorageNodeInfo>, failed: &[NodeId], required: usize) -> Vec<StorageNodeInfo> {
    let alive: Vec<StorageNodeInfo> = nodes.iter().filter(|n| n.state == NodeState::Alive).cloned().collect();
    let healthy: Vec<StorageNodeInfo> = alive.iter().filter(|n| !failed.contains(&n.id)).cloned().collect();
    if healthy.len() >= required {
        healthy
    } else if alive.len() >= required {
        alive
    } else {
        nodes.into_iter().filter(|n| n.state != NodeState::Dead).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: NodeId, state: NodeState) -> StorageNodeInfo {
        StorageNodeInfo {
            id,
            addr: format!("n{id}"),
            zone: None,
            capacity_bytes: 1 << 30,
            free_bytes: 1 << 30,
            registered_ms: 0,
            state,
            draining: false,
        }
    }

    fn ids(nodes: &[StorageNodeInfo]) -> Vec<NodeId> {
        nodes.iter().map(|n| n.id).collect()
    }

    #[test]
    fn nodes_that_failed_lately_are_used_only_when_too_few_are_left() {
        let nodes = vec![
            node(1, NodeState::Alive),
            node(2, NodeState::Alive),
            node(3, NodeState::Alive),
            node(4, NodeState::Suspect),
            node(5, NodeState::Dead),
        ];
        assert_eq!(ids(&candidates(nodes.clone(), &[], 3)), [1, 2, 3]);
        assert_eq!(ids(&candidates(nodes.clone(), &[2], 2)), [1, 3], "enough without the failed node");
        assert_eq!(ids(&candidates(nodes.clone(), &[2], 3)), [1, 2, 3], "too few: the failed node is back");
        assert_eq!(ids(&candidates(nodes.clone(), &[], 4)), [1, 2, 3, 4], "a suspect node rather than no write");
        assert!(!ids(&candidates(nodes, &[], 5)).contains(&5), "a dead node never");
    }
}
