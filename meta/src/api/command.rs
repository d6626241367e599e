//! The commands that change metadata, replicated through the Raft log, and
//! what applying one produced.

use jadfs_common::sse::SseMode;
use jadfs_common::{ChunkId, ETag, NodeId, ObjectManifest};
use serde::{Deserialize, Serialize};

use super::{
    AccessKey, CorsRule, DeleteCondition, LifecycleRule, MetaError, ObjectLockConfig, ObjectMetadata, PartManifest,
    Permission, Replication, Retention, StorageNodeInfo, UploadInfo, Versioning,
};

/// A change to the metadata, replicated through the Raft log. Everything a
/// command needs is inside it (times included): applying it is deterministic.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Command {
    CreateBucket {
        name: String,
        /// The creating key's id.
        owner: String,
        created_ms: i64,
        /// Created with Object Lock (and so with versioning enabled).
        #[serde(default)]
        object_lock: bool,
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
        /// The write that put the chunks on the nodes of `placement`, and
        /// pinned them (see [`Command::Pin`]); chunks it did not pin are
        /// reused ones, which must still be in use. None: a command from
        /// before pins, trusted as it was.
        #[serde(default)]
        write_id: Option<u64>,
    },
    /// Without `version_id`: deletes the current object (a bucket without
    /// versioning) or puts a delete marker in front of it. With: deletes
    /// that version for good.
    DeleteObject {
        bucket: String,
        key: String,
        #[serde(default)]
        version_id: Option<String>,
        /// When a delete marker it makes is dated, and the time Object
        /// Lock retentions are judged at.
        #[serde(default)]
        now_ms: i64,
        /// A governance retention does not hold the version back (the
        /// caller may bypass it, and asked to).
        #[serde(default)]
        bypass_governance: bool,
        /// Deletes only if the version (or current object) is this one.
        #[serde(default)]
        condition: Option<DeleteCondition>,
    },
    /// Enables Object Lock on a bucket with versioning enabled, or sets its
    /// default retention.
    SetObjectLock {
        bucket: String,
        config: ObjectLockConfig,
    },
    /// Sets or (None) removes a version's retention, by Object Lock's rules.
    SetRetention {
        bucket: String,
        key: String,
        version_id: Option<String>,
        retention: Option<Retention>,
        bypass_governance: bool,
        now_ms: i64,
    },
    SetLegalHold {
        bucket: String,
        key: String,
        version_id: Option<String>,
        on: bool,
    },
    /// Turns versioning on, or suspends it (never off again).
    SetBucketVersioning {
        bucket: String,
        versioning: Versioning,
    },
    /// A new manifest over the source's chunks: no bytes move. With
    /// `metadata`, the copy's metadata is replaced instead of kept.
    CopyObject {
        src_bucket: String,
        src_key: String,
        dst_bucket: String,
        dst_key: String,
        /// The source's version (`null`: its null version); None: its current object.
        #[serde(default)]
        src_version: Option<String>,
        metadata: Option<ObjectMetadata>,
        last_modified_ms: i64,
        /// With Some, the copy's tags are replaced instead of kept.
        #[serde(default)]
        tags: Option<Vec<(String, String)>>,
        /// The copy's Object Lock (never the source's).
        #[serde(default)]
        retention: Option<Retention>,
        #[serde(default)]
        legal_hold: bool,
        /// The encryption the source must still have (the gateway chose to
        /// share its chunks for it); None: not checked.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_encryption: Option<ExpectedEncryption>,
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
        /// As for [`Command::PutObject`].
        #[serde(default)]
        write_id: Option<u64>,
    },
    /// Joins the listed parts into the object: only metadata is written.
    CompleteUpload(CompleteUpload),
    AbortUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// Replaces an object's tags.
    SetObjectTags {
        bucket: String,
        key: String,
        /// The version whose tags these are; None: the current one.
        #[serde(default)]
        version_id: Option<String>,
        tags: Vec<(String, String)>,
    },
    /// Replaces a bucket's CORS rules; None removes them.
    SetBucketCors {
        bucket: String,
        rules: Option<Vec<CorsRule>>,
    },
    /// Replaces a bucket's default encryption; None removes it.
    SetBucketEncryption {
        bucket: String,
        mode: Option<SseMode>,
    },
    /// Replaces a bucket's lifecycle rules; None removes them.
    SetBucketLifecycle {
        bucket: String,
        rules: Option<Vec<LifecycleRule>>,
    },
    /// One step of the leader's lifecycle worker over a bucket: the objects
    /// after `after` in key order (at most `limit`) and, on the first step,
    /// the multipart uploads, judged here by the bucket's rules at `now_ms`
    /// with days `day_ms` long; those due are deleted or aborted.
    ApplyLifecycle {
        bucket: String,
        after: Option<String>,
        limit: u32,
        now_ms: i64,
        day_ms: i64,
    },
    /// Replaces a bucket's tags; None removes them.
    SetBucketTags {
        bucket: String,
        tags: Option<Vec<(String, String)>>,
    },
    /// Creates an access key (whose secret is sealed); AccessKeyExists if
    /// its access key id is taken.
    PutAccessKey {
        key: AccessKey,
    },
    /// Removes an access key and its bucket grants.
    DeleteAccessKey {
        access_key: String,
    },
    /// Grants `permission` on a bucket to the key `access_key` is now (by
    /// its id), or with None takes it away; NoSuchAccessKey if there is none.
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
        /// The repair's pin: a copy it no longer covers is not recorded.
        #[serde(default)]
        write_id: Option<u64>,
    },
    /// Queues every chunk with a copy on `node` (declared dead) for repair.
    QueueNodeChunks {
        node: NodeId,
    },
    /// `node` no longer holds these chunks (their files were gone, or
    /// failed their checks and were quarantined): it leaves their
    /// placements, and each one still in use is queued for a new copy.
    CopiesLost {
        node: NodeId,
        chunks: Vec<ChunkId>,
    },
    /// Keeps `chunk` from collection while the write `write_id` puts it on
    /// `nodes`, until `expires_ms` (and renews the write's other pins to
    /// then); sent after a chunk's bytes and before the nodes are told to
    /// keep them. Answers the nodes still to delete a copy of the chunk:
    /// the write must not keep it there.
    Pin {
        write_id: u64,
        chunk: ChunkId,
        nodes: Vec<NodeId>,
        /// Set by the leader from `lease_ms` (see [`Command::start_leases`]).
        #[serde(default)]
        expires_ms: i64,
        /// How long the pins hold unless renewed, by the leader's clock.
        #[serde(default)]
        lease_ms: u64,
    },
    /// Renews the pins of a write still under way (see [`crate::lease`]).
    RenewPins {
        write_id: u64,
        /// Set by the leader from `lease_ms`.
        #[serde(default)]
        expires_ms: i64,
        lease_ms: u64,
    },
    /// Drops the pins of a write that failed.
    Unpin {
        write_id: u64,
    },
    /// Collects the chunks no object, part or upload uses, orphaned at or
    /// before log index `orphaned_by_log` and pinned by no write: their
    /// copies join the deletions. Pins that expired by `now_ms` go first.
    Collect {
        orphaned_by_log: u64,
        now_ms: i64,
    },
    /// Copies on `node` that no placement names (failed writes, surplus):
    /// those still unnamed and unpinned join the deletions.
    CollectStrays {
        node: NodeId,
        chunks: Vec<ChunkId>,
        now_ms: i64,
    },
    /// Drops the copies of `chunk` on `nodes` from its placement (they join
    /// the deletions) while more than its number of copies remain named;
    /// nothing while a write pins the chunk. Sent by the leader for a chunk
    /// with surplus copies, naming those it does not keep.
    TrimCopies {
        chunk: ChunkId,
        nodes: Vec<NodeId>,
        /// Pins that expired by then no longer count (0: from before leases).
        #[serde(default)]
        now_ms: i64,
    },
    /// Starts (or stops) draining a node: no new copies go to it, and the
    /// leader moves each of its copies to another node.
    SetDraining {
        node: NodeId,
        draining: bool,
    },
    /// The leader copied `chunk` from `from` to `to` (durable, pinned by
    /// `write_id`): `to` takes `from`'s place, whose copy joins the
    /// deletions. Nothing while another write pins the chunk, or if `from`
    /// no longer holds it.
    MoveCopy {
        chunk: ChunkId,
        from: NodeId,
        to: NodeId,
        write_id: u64,
        /// Pins that expired by then no longer count (0: from before leases).
        #[serde(default)]
        now_ms: i64,
    },
    /// Starts rebalancing until every node's bytes are within `tolerance`
    /// percent of its fair share (by capacity); None: stops.
    SetRebalance {
        tolerance: Option<u8>,
    },
    /// Storage nodes deleted these copies (chunk, node).
    CopiesDeleted {
        copies: Vec<(ChunkId, NodeId)>,
    },
    /// Commands committed together (group commit), applied in order, each
    /// with its own result; a batch holds no batch.
    Batch(Vec<Command>),
    /// A client's write, sent again under the same `request` id when its
    /// answer was lost: applied once, later copies answer what the first
    /// did. (A write retried after a leader change can be committed twice;
    /// applied twice, a DELETE would undo the writes between.)
    Once {
        request: u64,
        command: Box<Command>,
    },
}

impl Command {
    /// Whether the command stores more: refused while the meta node's disk
    /// is below its reserve. Deletions, collection and the bookkeeping of
    /// copies and nodes (what frees space or keeps data safe) go on.
    pub fn adds_data(&self) -> bool {
        match self {
            Command::DeleteBucket { .. }
            | Command::DeleteObject { .. }
            | Command::ApplyLifecycle { .. }
            | Command::AbortUpload { .. }
            | Command::DeleteAccessKey { .. }
            | Command::RegisterNode { .. }
            | Command::RepairDone { .. }
            | Command::QueueNodeChunks { .. }
            | Command::CopiesLost { .. }
            | Command::Unpin { .. }
            | Command::RenewPins { .. }
            | Command::Collect { .. }
            | Command::CollectStrays { .. }
            | Command::TrimCopies { .. }
            | Command::SetDraining { .. }
            | Command::MoveCopy { .. }
            | Command::SetRebalance { .. }
            | Command::CopiesDeleted { .. } => false,
            Command::Batch(commands) => commands.iter().any(Command::adds_data),
            Command::Once { command, .. } => command.adds_data(),
            _ => true,
        }
    }

    /// Times the leases of pins by the leader's clock, when the leader
    /// takes the command: a writer's clock may be off by minutes.
    pub fn start_leases(&mut self, now_ms: i64) {
        match self {
            Command::Pin { expires_ms, lease_ms, .. } | Command::RenewPins { expires_ms, lease_ms, .. }
                if *lease_ms > 0 =>
            {
                *expires_ms = now_ms.saturating_add(i64::try_from(*lease_ms).unwrap_or(i64::MAX));
            }
            Command::Batch(commands) => commands.iter_mut().for_each(|c| c.start_leases(now_ms)),
            Command::Once { command, .. } => command.start_leases(now_ms),
            _ => {}
        }
    }
}

/// The fields of [`Command::CompleteUpload`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CompleteUpload {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
    /// (part number, ETag) in ascending part order.
    pub parts: Vec<(u32, String)>,
    /// Every part but the last must be at least this large.
    pub min_part_size: u64,
    pub last_modified_ms: i64,
    #[serde(default)]
    pub condition: Option<WriteCondition>,
    /// The whole object's checksum the client expects (`x-amz-checksum-*`).
    #[serde(default)]
    pub expected_checksum: Option<String>,
    /// The checksum the client lists for each part, if any.
    #[serde(default)]
    pub part_checksums: Vec<Option<String>>,
    /// The MD5 of the SSE-C key the request brought (checked against it by
    /// the gateway): an upload started with a customer key needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_key_md5: Option<String>,
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
    pub fn check(&self, current: Option<&ETag>) -> Result<(), MetaError> {
        if let Some(list) = &self.if_match {
            match current {
                None => return Err(MetaError::NoSuchKey),
                Some(etag) if !etag.matches(list) => return Err(MetaError::PreconditionFailed),
                Some(_) => {}
            }
        }
        if let (Some(list), Some(etag)) = (&self.if_none_match, current) {
            if etag.matches(list) {
                return Err(MetaError::PreconditionFailed);
            }
        }
        Ok(())
    }
}

/// What applying a command produced.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum CommandResult {
    Done,
    Object(Box<ObjectManifest>),
    Failed(MetaError),
    /// The results of a [`Command::Batch`], in its order.
    Batch(Vec<CommandResult>),
    /// A [`Command::Pin`]: the nodes the write must not keep the chunk on.
    Pinned {
        refused: Vec<NodeId>,
    },
    /// The version a write made or a delete removed or made (`null`: None),
    /// and whether that version is a delete marker.
    Version {
        version_id: Option<String>,
        delete_marker: bool,
    },
    /// How many chunks or copies a collection took.
    Collected(u64),
    /// What a [`Command::ApplyLifecycle`] did, and where the next step
    /// starts (None: the bucket is done).
    Lifecycle {
        expired: u64,
        aborted: u64,
        next: Option<String>,
    },
}

/// The encryption an object is expected to have (None: none).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpectedEncryption {
    pub mode: Option<SseMode>,
}
