//! The records the state machine keeps and commands and answers carry:
//! buckets and their settings, uploads and parts, keys, storage nodes,
//! replication and repairs.

use jadfs_common::sse::SseMode;
use jadfs_common::{Algorithm, Checksum, ChecksumType, ChunkId, ETag, NodeId};
pub use jadfs_common::{LockMode, Retention};
use serde::{Deserialize, Serialize};

use super::LifecycleRule;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    /// The id ([`AccessKey::id`]) of the key that created it.
    pub owner: String,
    pub created_ms: i64,
    /// Keys (by id) other than the owner allowed on the bucket.
    #[serde(default)]
    pub grants: Vec<(String, Permission)>,
    /// Bucket tags, if any were set.
    #[serde(default)]
    pub tags: Option<Vec<(String, String)>>,
    /// CORS rules, if any were set.
    #[serde(default)]
    pub cors: Option<Vec<CorsRule>>,
    /// The replication in force: the bucket's own, or the cluster default.
    #[serde(default)]
    pub replication: Replication,
    /// Lifecycle rules, if any were set.
    #[serde(default)]
    pub lifecycle: Option<Vec<LifecycleRule>>,
    /// None: versioning was never turned on (and never can be turned off).
    #[serde(default)]
    pub versioning: Option<Versioning>,
    /// Object Lock, once enabled (never disabled).
    #[serde(default)]
    pub object_lock: Option<ObjectLockConfig>,
    /// The encryption of objects written without asking for one, if set.
    #[serde(default)]
    pub encryption: Option<SseMode>,
}

/// A bucket's Object Lock: enabled, with the retention new versions get
/// when their write names none.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectLockConfig {
    pub default_retention: Option<DefaultRetention>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: LockMode,
    pub period: LockPeriod,
}

/// A default retention's length, as it was given.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum LockPeriod {
    Days(u32),
    Years(u32),
}

impl LockPeriod {
    pub fn ms(self) -> i64 {
        let days = match self {
            LockPeriod::Days(days) => i64::from(days),
            LockPeriod::Years(years) => i64::from(years) * 365,
        };
        days.saturating_mul(super::DAY_MS)
    }
}

/// What a conditional delete asks of the object it deletes
/// (`If-Match`, `x-amz-if-match-last-modified-time`, `x-amz-if-match-size`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeleteCondition {
    /// An `If-Match` list: ETags, or `*`.
    pub etag: Option<String>,
    /// Matched to the second, as HTTP dates tell it.
    pub last_modified_ms: Option<i64>,
    pub size: Option<u64>,
}

impl DeleteCondition {
    pub fn holds(&self, object: &jadfs_common::ObjectManifest) -> bool {
        self.etag.as_ref().is_none_or(|list| object.etag.matches(list))
            && self.last_modified_ms.is_none_or(|t| t.div_euclid(1000) == object.last_modified_ms.div_euclid(1000))
            && self.size.is_none_or(|size| size == object.size)
    }
}

/// A bucket's versioning, once turned on.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Versioning {
    /// Every write makes a version with an id of its own.
    Enabled,
    /// Writes make the `null` version, replacing the one there was; the
    /// versions made while enabled are kept.
    Suspended,
}

pub use jadfs_common::NULL_VERSION;

/// Whether `id` could name a version: `null`, or an id this cluster makes
/// (16 lowercase hex digits).
pub fn is_version_id(id: &str) -> bool {
    id == NULL_VERSION || (id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

impl Versioning {
    pub fn as_str(self) -> &'static str {
        match self {
            Versioning::Enabled => "Enabled",
            Versioning::Suspended => "Suspended",
        }
    }
}

impl BucketInfo {
    /// What the key with id `key_id` may do on this bucket, if anything.
    pub fn permission_of(&self, key_id: &str) -> Option<Permission> {
        if self.owner == key_id {
            return Some(Permission::Owner);
        }
        self.grants.iter().find(|(k, _)| k == key_id).map(|(_, p)| *p)
    }
}

/// How the copies of new chunks are made.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Replication {
    pub mode: ReplicationMode,
    /// Copies every chunk should have.
    pub copies: u8,
    /// In sync mode, copies that must be durable before a PUT is
    /// acknowledged; the rest are made from the repair queue.
    pub write_quorum: u8,
}

impl Default for Replication {
    fn default() -> Self {
        Replication { mode: ReplicationMode::Sync, copies: 3, write_quorum: 3 }
    }
}

impl Replication {
    /// Copies durable before a write is acknowledged.
    pub fn acknowledge_after(&self) -> usize {
        match self.mode {
            ReplicationMode::Sync => self.write_quorum.clamp(1, self.copies.max(1)) as usize,
            ReplicationMode::Async => 1,
        }
    }

    /// Copies the gateway writes itself: async mode writes one and queues the rest.
    pub fn written_inline(&self) -> usize {
        match self.mode {
            ReplicationMode::Sync => self.copies.max(1) as usize,
            ReplicationMode::Async => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    /// Acknowledged once `write_quorum` copies are durable.
    Sync,
    /// Acknowledged once one copy is durable; the others follow from a durable queue.
    Async,
}

impl std::str::FromStr for ReplicationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sync" => Ok(ReplicationMode::Sync),
            "async" => Ok(ReplicationMode::Async),
            other => Err(format!("replication mode is sync or async, not {other:?}")),
        }
    }
}

/// A chunk waiting for more copies.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Repair {
    pub chunk: ChunkId,
    pub copies: u8,
    /// Nodes the metadata says hold a copy (some may be dead).
    pub holders: Vec<NodeId>,
    /// The log index that queued it: older entries are repaired first.
    pub queued_at_log: u64,
}

/// One CORS rule of a bucket, as S3's CORSConfiguration holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct CorsRule {
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age_seconds: Option<u64>,
}

/// An S3 access key and its secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key: String,
    /// Sealed (`jadfs_common::sealed`): the metadata never holds it in plain text.
    pub secret_key: String,
    pub name: String,
    pub created_ms: i64,
    /// The key's identity, made when it is created and never reused: what
    /// buckets and grants name, so a key deleted and created again under
    /// the same access key id is another key. (Keys of data version 2 and
    /// before have their access key id as id.)
    #[serde(default)]
    pub id: String,
}

/// An access key as listed: never its secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub access_key: String,
    pub id: String,
    pub name: String,
    pub created_ms: i64,
}

/// What a key may do on a bucket it does not own; each level includes the ones before.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read objects and list them.
    Read,
    /// Also write and delete objects.
    Write,
    /// Everything the owner may do, deleting the bucket included.
    Owner,
}

/// A multipart upload in progress.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UploadInfo {
    pub upload_id: String,
    pub key: String,
    /// The id of the key that started it.
    pub owner: String,
    pub initiated_ms: i64,
    pub metadata: ObjectMetadata,
    /// The flexible checksum every part carries (`x-amz-checksum-algorithm`).
    #[serde(default)]
    pub checksum_algorithm: Option<Algorithm>,
    /// Whether the object's checksum covers the full object (CRCs only) or
    /// is the composite of the parts' (`x-amz-checksum-type`).
    #[serde(default)]
    pub full_object_checksum: bool,
}

impl UploadInfo {
    /// The type of checksum the completed object will carry.
    pub fn checksum_type(&self) -> ChecksumType {
        if self.full_object_checksum {
            ChecksumType::FullObject
        } else {
            ChecksumType::Composite
        }
    }
}

/// One uploaded part: its chunks (offsets within the part) and ETag.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartManifest {
    pub size: u64,
    pub etag: ETag,
    pub last_modified_ms: i64,
    pub chunks: Vec<jadfs_common::ChunkRef>,
    /// The part's verified flexible checksum.
    #[serde(default)]
    pub checksum: Option<Checksum>,
    /// The part's data key, sealed, if the upload is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_key: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartEntry {
    pub part_number: u32,
    pub size: u64,
    pub etag: ETag,
    pub last_modified_ms: i64,
    #[serde(default)]
    pub checksum: Option<Checksum>,
}

/// The replaceable metadata of an object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectMetadata {
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub user_metadata: Vec<(String, String)>,
    /// Tags given when the object is created (`x-amz-tagging`).
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// Object Lock asked for when the object is created (`x-amz-object-lock-*`).
    #[serde(default)]
    pub retention: Option<Retention>,
    #[serde(default)]
    pub legal_hold: bool,
    /// The encryption the object gets (an upload's parts are encrypted as
    /// they come; a copy keeps its source's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<SseMode>,
}

/// A storage node as the meta cluster knows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StorageNodeInfo {
    pub id: NodeId,
    /// `host:port` of its HTTP API.
    pub addr: String,
    pub zone: Option<String>,
    pub capacity_bytes: u64,
    pub free_bytes: u64,
    pub registered_ms: i64,
    /// Filled in by the leader from heartbeats when nodes are listed.
    #[serde(default)]
    pub state: NodeState,
    /// Being drained (`jadfs admin node drain`): no new copies go to it,
    /// and the leader moves its copies elsewhere. Kept by the state, not by
    /// what the node says when it registers.
    #[serde(default)]
    pub draining: bool,
}

/// The copies a node holds, as its placements name them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeUsage {
    pub node: NodeId,
    pub chunks: u64,
    pub bytes: u64,
}

/// What each node holds, and the rebalancing in progress.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClusterUsage {
    pub nodes: Vec<NodeUsage>,
    /// While the cluster is being rebalanced: how far (in percent of its
    /// fair share) a node's bytes may be from it when done.
    pub rebalance_tolerance: Option<u8>,
}

/// A chunk a node holds, with its size and every holder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldChunk {
    pub chunk: ChunkId,
    pub size: u64,
    pub holders: Vec<NodeId>,
}

/// What the leader makes of a storage node's heartbeats.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Heard from within the last few heartbeats: it receives new chunks.
    #[default]
    Alive,
    /// Silent for a while: no new chunks, but its copies still count.
    Suspect,
    /// Silent for long: its chunks are re-copied elsewhere.
    Dead,
}

impl NodeState {
    /// Its name as it is serialised (and shown to operators).
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Alive => "alive",
            NodeState::Suspect => "suspect",
            NodeState::Dead => "dead",
        }
    }
}
