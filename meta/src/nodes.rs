//! Storage nodes as the leader sees them: liveness from heartbeats (kept in
//! memory, outside the Raft log), and where new copies go.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jadfs_common::NodeId;
use rand::Rng;

use crate::api::*;

/// How often storage nodes report to the leader.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);
/// Silent this long, a node takes no new chunks. Long enough for a node's
/// heartbeats to find a new leader after an election.
const SUSPECT_AFTER: Duration = Duration::from_secs(10);

/// Heartbeats heard by this meta node while it leads.
pub struct Liveness {
    inner: Mutex<Seen>,
    /// Silent this long, a node's chunks are copied elsewhere.
    dead_after: Duration,
}

#[derive(Default)]
struct Seen {
    /// When this node last became leader: silence is counted from then at
    /// the earliest, since heartbeats went to the previous leader before.
    leader_since: Option<Instant>,
    heartbeats: HashMap<NodeId, (Instant, Heartbeat)>,
}

impl Liveness {
    pub fn new(dead_after: Duration) -> Liveness {
        Liveness { inner: Mutex::default(), dead_after: dead_after.max(SUSPECT_AFTER) }
    }

    /// Tells whether this node leads now; a new term of leadership restarts the clocks.
    pub fn observe_leadership(&self, leading: bool) {
        let mut seen = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match (leading, seen.leader_since) {
            (true, None) => seen.leader_since = Some(Instant::now()),
            (false, Some(_)) => seen.leader_since = None,
            _ => {}
        }
    }

    pub fn record(&self, heartbeat: Heartbeat) {
        let mut seen = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        seen.heartbeats.insert(heartbeat.id, (Instant::now(), heartbeat));
    }

    /// Fills in each node's state and its last reported space.
    pub fn annotate(&self, nodes: &mut [StorageNodeInfo]) {
        let seen = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let since = seen.leader_since.unwrap_or_else(Instant::now);
        for node in nodes {
            let heard = seen.heartbeats.get(&node.id);
            if let Some((_, beat)) = heard {
                node.free_bytes = beat.free_bytes;
                node.capacity_bytes = beat.capacity_bytes;
            }
            let last = heard.map_or(since, |(at, _)| (*at).max(since));
            let silent = last.elapsed();
            node.state = if silent < SUSPECT_AFTER {
                NodeState::Alive
            } else if silent < self.dead_after {
                NodeState::Suspect
            } else {
                NodeState::Dead
            };
        }
    }
}

/// Chooses up to `count` of `candidates` for new copies: each in a zone not
/// used yet (by `zones_taken` or an earlier pick) while such zones remain,
/// weighted by free space so emptier nodes fill first. A node without a zone
/// is a zone of its own.
pub fn choose<'a>(
    candidates: &'a [StorageNodeInfo],
    count: usize,
    zones_taken: &[String],
    rng: &mut impl Rng,
) -> Vec<&'a StorageNodeInfo> {
    let mut zones: HashSet<String> = zones_taken.iter().cloned().collect();
    let mut left: Vec<&StorageNodeInfo> = candidates.iter().collect();
    let mut chosen = Vec::with_capacity(count);
    while chosen.len() < count && !left.is_empty() {
        let fresh: Vec<usize> = (0..left.len()).filter(|&i| !zones.contains(&zone_of(left[i]))).collect();
        let pool = if fresh.is_empty() { (0..left.len()).collect() } else { fresh };
        // Weights in MiB (plus one) keep the sum far from overflow.
        let weight = |i: usize| (left[i].free_bytes >> 20) + 1;
        let total: u64 = pool.iter().map(|&i| weight(i)).sum();
        let mut ticket = rng.gen_range(0..total);
        let mut pick = pool[pool.len() - 1];
        for &i in &pool {
            if ticket < weight(i) {
                pick = i;
                break;
            }
            ticket -= weight(i);
        }
        let node = left.swap_remove(pick);
        zones.insert(zone_of(node));
        chosen.push(node);
    }
    chosen
}

pub fn zone_of(node: &StorageNodeInfo) -> String {
    node.zone.clone().unwrap_or_else(|| format!("node-{}", node.id))
}

/// True while this meta node is the Raft leader.
pub fn is_leader(raft: &Raft) -> bool {
    let metrics = raft.metrics().borrow().clone();
    metrics.current_leader == Some(metrics.id)
}

/// A storage node as the leader lists it, for tests.
#[cfg(test)]
pub(crate) fn test_node(
    id: NodeId,
    zone: &str,
    free_bytes: u64,
    capacity_bytes: u64,
    state: NodeState,
) -> StorageNodeInfo {
    StorageNodeInfo {
        id,
        addr: format!("n{id}"),
        zone: Some(zone.into()),
        capacity_bytes,
        free_bytes,
        registered_ms: 0,
        state,
        draining: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn node(id: NodeId, zone: &str, free_gib: u64) -> StorageNodeInfo {
        test_node(id, zone, free_gib << 30, 100 << 30, NodeState::Alive)
    }

    #[test]
    fn copies_spread_over_zones_first() {
        let nodes = [node(1, "a", 10), node(2, "a", 10), node(3, "b", 10), node(4, "b", 10)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let picked = choose(&nodes, 2, &[], &mut rng);
            assert_eq!(picked.len(), 2);
            assert_ne!(picked[0].zone, picked[1].zone);
            let three = choose(&nodes, 3, &[], &mut rng);
            let ids: HashSet<_> = three.iter().map(|n| n.id).collect();
            assert_eq!(ids.len(), 3, "three different nodes");
        }
        // A zone already holding a copy is avoided while another exists.
        for _ in 0..50 {
            assert_eq!(choose(&nodes, 1, &["a".into()], &mut rng)[0].zone.as_deref(), Some("b"));
        }
    }

    #[test]
    fn emptier_nodes_receive_more() {
        let nodes = [node(1, "a", 90), node(2, "b", 10), node(3, "c", 10), node(4, "d", 10)];
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let firsts = (0..1000).filter(|_| choose(&nodes, 1, &[], &mut rng)[0].id == 1).count();
        assert!((700..850).contains(&firsts), "the node with 75% of the free space got {firsts}/1000");
    }

    #[test]
    fn silence_makes_a_node_suspect_then_dead() {
        let liveness = Liveness::new(Duration::from_secs(60));
        liveness.observe_leadership(true);
        liveness.record(Heartbeat { id: 1, free_bytes: 5, capacity_bytes: 9 });
        let mut nodes = vec![node(1, "a", 1), node(2, "b", 1)];
        liveness.annotate(&mut nodes);
        assert_eq!((nodes[0].state, nodes[0].free_bytes), (NodeState::Alive, 5));
        // Never heard of, but the leadership is new: alive until proven silent.
        assert_eq!(nodes[1].state, NodeState::Alive);
        {
            let mut seen = liveness.inner.lock().unwrap();
            let long_ago = Instant::now() - Duration::from_secs(61);
            seen.leader_since = Some(long_ago);
            seen.heartbeats.get_mut(&1).unwrap().0 = Instant::now() - SUSPECT_AFTER - Duration::from_secs(1);
        }
        liveness.annotate(&mut nodes);
        assert_eq!(nodes[0].state, NodeState::Suspect);
        assert_eq!(nodes[1].state, NodeState::Dead);
    }
}
