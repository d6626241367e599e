//! What travels between storage nodes and the roles that use them: the
//! chunk upload stream and its trailer, and the node's answers.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{ChunkId, NodeId};

/// A piece of an incoming chunk, or the mark that it is complete. An upload
/// whose sender is dropped without `End` is aborted and leaves nothing.
pub enum PutMessage {
    /// Pieces of the chunk, in order: several per message, so the writer
    /// thread wakes once for all of them.
    Data(Vec<Bytes>),
    End,
}

/// The end of a gateway's chunk upload: the chunk id, then the CRC32C of the
/// chunk's bytes (big-endian). The node checks the CRC32C of what it
/// received against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub id: ChunkId,
    pub crc32c: u32,
}

impl Trailer {
    pub const LEN: usize = 36;

    pub fn to_bytes(self) -> [u8; Trailer::LEN] {
        let mut out = [0u8; Trailer::LEN];
        out[..32].copy_from_slice(self.id.as_bytes());
        out[32..].copy_from_slice(&self.crc32c.to_be_bytes());
        out
    }

    pub fn parse(raw: &[u8]) -> Option<Trailer> {
        let raw: &[u8; Trailer::LEN] = raw.try_into().ok()?;
        let id = ChunkId::from_bytes(raw[..32].try_into().expect("32 bytes"));
        Some(Trailer { id, crc32c: u32::from_be_bytes(raw[32..].try_into().expect("4 bytes")) })
    }
}

/// A storage node's answer to a chunk put.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkPutResponse {
    pub id: ChunkId,
    pub size: u64,
    /// False when the node already held this chunk (deduplicated).
    pub created: bool,
}

/// What a storage node found when it compared its files with its index at
/// start-up.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Temporary files of interrupted puts, removed.
    pub removed_temp_files: u64,
    /// Chunk files that were not indexed but whose bytes match their name: indexed.
    pub adopted: Vec<ChunkId>,
    /// Files in the chunk folders that are not valid chunks: moved to quarantine.
    pub quarantined: Vec<String>,
    /// Indexed chunks whose file is gone: noted lost, for meta to re-make.
    pub missing: Vec<ChunkId>,
    /// Indexed chunks whose file no longer matches its id: quarantined and
    /// noted lost.
    #[serde(default)]
    pub corrupt: Vec<ChunkId>,
}

/// Where a storage node's scrubber is: it re-reads every chunk it holds,
/// checking each block, at a rate limit, pass after pass.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ScrubStatus {
    /// A pass is under way.
    pub running: bool,
    /// When the current (or last) pass began.
    pub pass_started_ms: Option<i64>,
    /// The last chunk the current pass checked: it resumes after it, also
    /// after a restart.
    pub cursor: Option<ChunkId>,
    /// What the current pass has checked so far, and of how many bytes held
    /// when it began.
    pub checked_chunks: u64,
    pub checked_bytes: u64,
    pub pass_total_bytes: u64,
    /// Copies found bad or gone by the current pass (quarantined and
    /// reported, to be made again).
    pub bad_copies: u64,
    /// The last pass that completed: when it ended, and what it found.
    pub last_completed_ms: Option<i64>,
    pub last_pass_chunks: u64,
    pub last_pass_bad_copies: u64,
    /// The rate limit in force, bytes per second.
    pub rate_bytes_per_s: u64,
}

/// A storage node's counters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeStats {
    pub node_id: NodeId,
    pub chunks: u64,
    pub bytes: u64,
    pub free_bytes: u64,
    pub capacity_bytes: u64,
    pub last_reconcile: ReconcileReport,
}

/// One entry of a storage node's chunk listing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkInfo {
    pub id: ChunkId,
    pub size: u64,
    pub stored_at_ms: i64,
    /// CRC32C of the bytes, recorded when the chunk was written (reads check
    /// each block against its own). None only for a chunk indexed before
    /// it was kept, until its node computes it.
    #[serde(default)]
    pub crc32c: Option<u32>,
}

/// A repair's request to a storage node: copy a chunk to the registered
/// node `to`, whose address the node looks up itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReplicateTo {
    pub to: NodeId,
}
