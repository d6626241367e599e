//! The meta service's wire types: the Raft type configuration, the commands
//! that change metadata, the queries that read it, and their answers.

use jadfs_common::{ChunkId, NodeId, ObjectManifest};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Raft types of the JaDFS metadata cluster.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;

/// A change to the metadata, replicated through the Raft log. Everything a
/// command needs is inside it (times included): applying it is deterministic.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Command {
    CreateBucket {
        name: String,
        owner: String,
        created_ms: i64,
    },
    DeleteBucket {
        name: String,
    },
    /// Creates or replaces `key`; `placement[i]` lists the storage nodes that
    /// hold `manifest.chunks[i]`.
    PutObject {
        bucket: String,
        key: String,
        manifest: ObjectManifest,
        placement: Vec<Vec<NodeId>>,
        /// Checked against the current object when the command applies.
        #[serde(default)]
        condition: Option<WriteCondition>,
    },
    DeleteObject {
        bucket: String,
        key: String,
    },
    /// A new manifest over the source's chunks: no bytes move. With
    /// `metadata`, the copy's metadata is replaced instead of kept.
    CopyObject {
        src_bucket: String,
        src_key: String,
        dst_bucket: String,
        dst_key: String,
        metadata: Option<ObjectMetadata>,
        last_modified_ms: i64,
        /// With Some, the copy's tags are replaced instead of kept.
        #[serde(default)]
        tags: Option<Vec<(String, String)>>,
    },
    RegisterNode {
        node: StorageNodeInfo,
    },
    CreateUpload {
        bucket: String,
        key: String,
        upload: UploadInfo,
    },
    /// Adds or replaces one part of a multipart upload.
    PutPart {
        bucket: String,
        key: String,
        upload_id: String,
        part_number: u32,
        part: PartManifest,
        placement: Vec<Vec<NodeId>>,
    },
    /// Joins the listed parts into the object: only metadata is written.
    CompleteUpload {
        bucket: String,
        key: String,
        upload_id: String,
        /// (part number, ETag) in ascending part order.
        parts: Vec<(u32, String)>,
        /// Every part but the last must be at least this large.
        min_part_size: u64,
        last_modified_ms: i64,
        #[serde(default)]
        condition: Option<WriteCondition>,
        /// The whole object's checksum the client expects (`x-amz-checksum-*`).
        #[serde(default)]
        expected_checksum: Option<String>,
        /// The checksum the client lists for each part, if any.
        #[serde(default)]
        part_checksums: Vec<Option<String>>,
    },
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// Replaces an object's tags.
    SetObjectTags {
        bucket: String,
        key: String,
        tags: Vec<(String, String)>,
    },
    /// Replaces a bucket's CORS rules; None removes them.
    SetBucketCors {
        bucket: String,
        rules: Option<Vec<CorsRule>>,
    },
    /// Replaces a bucket's tags; None removes them.
    SetBucketTags {
        bucket: String,
        tags: Option<Vec<(String, String)>>,
    },
    /// Creates or replaces an access key.
    PutAccessKey {
        key: AccessKey,
    },
    /// Removes an access key and its bucket grants.
    DeleteAccessKey {
        access_key: String,
    },
    /// Grants `permission` on a bucket to a key, or with None takes it away.
    SetBucketGrant {
        bucket: String,
        access_key: String,
        permission: Option<Permission>,
    },
    /// Sets how new chunks are replicated: the cluster default with no
    /// bucket, a bucket's own setting with one (None there: back to the default).
    SetReplication {
        bucket: Option<String>,
        replication: Option<Replication>,
    },
    /// The leader's repair of one queued chunk: `added` nodes now hold a
    /// copy; with `done`, enough live copies exist and it leaves the queue.
    RepairDone {
        chunk: ChunkId,
        added: Vec<NodeId>,
        done: bool,
    },
    /// Queues every chunk with a copy on `node` (declared dead) for repair.
    QueueNodeChunks {
        node: NodeId,
    },
    /// Commands committed together (group commit), applied in order, each
    /// with its own result; a batch holds no batch.
    Batch(Vec<Command>),
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

/// A conditional write (`If-Match` / `If-None-Match` on PutObject and
/// CompleteMultipartUpload), evaluated atomically when the write applies.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct WriteCondition {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

impl WriteCondition {
    /// Checks the condition against the current object's ETag (None: no object).
    pub fn check(&self, current: Option<&str>) -> Result<(), MetaError> {
        if let Some(list) = &self.if_match {
            match current {
                None => return Err(MetaError::NoSuchKey),
                Some(etag) if !etag_matches(list, etag) => return Err(MetaError::PreconditionFailed),
                Some(_) => {}
            }
        }
        if let (Some(list), Some(etag)) = (&self.if_none_match, current) {
            if etag_matches(list, etag) {
                return Err(MetaError::PreconditionFailed);
            }
        }
        Ok(())
    }
}

/// Whether an `If-Match`-style list (`*`, or ETags, quoted or not) names `etag`.
pub fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_matches('"') == etag.trim_matches('"'))
}

/// An S3 access key and its secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key: String,
    pub secret_key: String,
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
    pub owner: String,
    pub initiated_ms: i64,
    pub metadata: ObjectMetadata,
    /// The flexible checksum every part carries (`x-amz-checksum-algorithm`), lowercase.
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
    /// Whether the object's checksum covers the full object (CRCs only) or
    /// is the composite of the parts' (`x-amz-checksum-type`).
    #[serde(default)]
    pub full_object_checksum: bool,
}

/// One uploaded part: its chunks (offsets within the part) and ETag.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartManifest {
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    pub chunks: Vec<jadfs_common::ChunkRef>,
    /// The part's verified flexible checksum, e.g. `("sha256", "base64…")`.
    #[serde(default)]
    pub checksum: Option<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PartEntry {
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    #[serde(default)]
    pub checksum: Option<(String, String)>,
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
}

/// What applying a command produced.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum CommandResult {
    Done,
    Object(Box<ObjectManifest>),
    Failed(MetaError),
    /// The results of a [`Command::Batch`], in its order.
    Batch(Vec<CommandResult>),
}

/// Failures a client of the meta service can act on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such key")]
    NoSuchKey,
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the bucket already exists and is yours")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket name is taken")]
    BucketAlreadyExists,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("invalid part: {0}")]
    InvalidPart(String),
    #[error("invalid part order")]
    InvalidPartOrder,
    #[error("part {0} is smaller than the minimum part size")]
    EntityTooSmall(u32),
    #[error("a checksum does not match: {0}")]
    BadDigest(String),
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("not the leader; leader is {leader_addr:?}")]
    ForwardToLeader { leader_addr: Option<String> },
    #[error("meta service unavailable: {0}")]
    Unavailable(String),
    #[error("meta internal error: {0}")]
    Internal(String),
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

/// A storage node's periodic report to the meta leader (not in the Raft log).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Heartbeat {
    pub id: NodeId,
    pub free_bytes: u64,
    pub capacity_bytes: u64,
}

/// A read of the metadata, answered linearizably.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Query {
    ListBuckets,
    GetBucket {
        name: String,
    },
    GetObject {
        bucket: String,
        key: String,
    },
    ListObjects(ListObjectsQuery),
    ListNodes,
    Stats,
    GetUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    ListParts {
        bucket: String,
        key: String,
        upload_id: String,
        after_part: u32,
        max_parts: usize,
    },
    ListUploads {
        bucket: String,
        prefix: String,
        after_key: Option<String>,
        max_uploads: usize,
    },
    GetAccessKey {
        access_key: String,
    },
    ListAccessKeys,
    /// The replication in force for a bucket, or the cluster default.
    GetReplication {
        bucket: Option<String>,
    },
    /// Chunks waiting for copies, oldest first, after the given
    /// (queued_at_log, chunk) position.
    RepairQueue {
        after: Option<(u64, ChunkId)>,
        limit: usize,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ListObjectsQuery {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Return only keys, and common prefixes, greater than this.
    pub start_after: Option<String>,
    pub max_keys: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub owner: String,
    pub created_ms: i64,
    /// Keys other than the owner allowed on the bucket.
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
}

impl BucketInfo {
    /// What `access_key` may do on this bucket, if anything.
    pub fn permission_of(&self, access_key: &str) -> Option<Permission> {
        if self.owner == access_key {
            return Some(Permission::Owner);
        }
        self.grants.iter().find(|(k, _)| k == access_key).map(|(_, p)| *p)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
}

/// One page of a listing. Entries and common prefixes are each sorted;
/// `truncated` says whether more follow.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectEntry>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix returned: the next page starts after it.
    pub last: Option<String>,
}

/// An object with where each of its chunks lives.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LocatedObject {
    pub manifest: ObjectManifest,
    /// `locations[i]` are the nodes holding `manifest.chunks[i]`.
    pub locations: Vec<Vec<NodeId>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct MetaStats {
    pub buckets: u64,
    pub objects: u64,
    /// Distinct chunks referenced by at least one object.
    pub chunks: u64,
    /// Bytes of those chunks, each counted once.
    pub chunk_bytes: u64,
    /// Chunks no object uses any more, waiting for collection.
    pub orphaned_chunks: u64,
    /// Chunks waiting for copies (async writes, quorum writes, dead nodes).
    #[serde(default)]
    pub repair_queue: u64,
    pub last_applied_index: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum QueryResult {
    Buckets(Vec<BucketInfo>),
    Bucket(Option<BucketInfo>),
    Object(Option<LocatedObject>),
    Page(ListPage),
    Nodes(Vec<StorageNodeInfo>),
    Stats(MetaStats),
    Upload(Option<UploadInfo>),
    /// Parts in ascending order, and whether more follow.
    Parts(Vec<PartEntry>, bool),
    /// Uploads in key order, and whether more follow.
    Uploads(Vec<UploadInfo>, bool),
    AccessKey(Option<AccessKey>),
    AccessKeys(Vec<AccessKey>),
    Replication(Replication),
    Repairs(Vec<Repair>),
}
