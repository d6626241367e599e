//! The meta cluster's own messages: storage nodes' heartbeats, snapshot
//! pieces between meta nodes, and membership changes.

use std::collections::BTreeSet;

use openraft::BasicNode;
use serde::{Deserialize, Serialize};

use super::NodeId;

/// A storage node's periodic report to the meta leader (not in the Raft log).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Heartbeat {
    pub id: NodeId,
    pub free_bytes: u64,
    pub capacity_bytes: u64,
}

/// The header of a snapshot piece; the piece's bytes follow it raw after a
/// newline (JSON would spell every byte as a number, several times the size).
#[derive(Serialize, Deserialize)]
pub struct SnapshotPiece {
    pub vote: openraft::Vote<u64>,
    pub meta: openraft::SnapshotMeta<u64, BasicNode>,
    pub offset: u64,
    pub done: bool,
}

impl SnapshotPiece {
    /// A piece as sent: its JSON header line, then its bytes raw.
    pub fn split(body: &[u8]) -> Result<(SnapshotPiece, &[u8]), String> {
        let newline = body.iter().position(|&b| b == b'\n').ok_or("a snapshot piece starts with a JSON line")?;
        let piece = serde_json::from_slice(&body[..newline]).map_err(|e| format!("bad snapshot piece header: {e}"))?;
        Ok((piece, &body[newline + 1..]))
    }
}

/// A meta node to add as a learner.
#[derive(Serialize, Deserialize)]
pub struct Learner {
    pub node_id: u64,
    pub addr: String,
}

/// A change of the voters, applied atomically by the leader.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoterChange {
    /// Learners that become voters.
    Add(BTreeSet<u64>),
    /// Voters that leave the cluster.
    Remove(BTreeSet<u64>),
}
