//! The reads of the metadata (answered linearizably, by the leader or after
//! a read index) and their answers. `MetaClient` has one typed method per
//! query; nothing else matches on [`QueryResult`].

use jadfs_common::{ChunkId, ETag, ObjectManifest};
use serde::{Deserialize, Serialize};

use super::{
    AccessKey, BucketInfo, ClusterUsage, KeyInfo, NodeId, PartEntry, Repair, Replication, StorageNodeInfo, UploadInfo,
};

/// A read of the metadata, answered linearizably.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Query {
    ListBuckets,
    GetBucket {
        name: String,
    },
    /// The current version, or with `version_id` that version (`null` for
    /// the null version).
    GetObject {
        bucket: String,
        key: String,
        #[serde(default)]
        version_id: Option<String>,
    },
    /// One page of every version and delete marker, key by key, newest first.
    ListVersions(ListVersionsQuery),
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
    /// What each storage node holds, and the rebalancing in progress.
    Usage,
    /// How many objects a bucket holds and their bytes (O(objects)).
    BucketUsage {
        bucket: String,
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
pub struct ObjectEntry {
    pub key: String,
    pub size: u64,
    pub etag: ETag,
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
    /// When a lifecycle rule of the bucket will delete it, and the rule's
    /// id (`x-amz-expiration`).
    #[serde(default)]
    pub expiration: Option<(i64, String)>,
    /// The version found is a delete marker: `manifest` holds only its
    /// version id and when it was made.
    #[serde(default)]
    pub delete_marker: bool,
    /// The bucket has versioning (enabled or suspended): reads show the
    /// version id, `null` included.
    #[serde(default)]
    pub versioned: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ListVersionsQuery {
    pub bucket: String,
    pub prefix: String,
    pub delimiter: Option<String>,
    /// Start after this key (all its versions), or with `version_marker`
    /// after that version of it.
    pub key_marker: Option<String>,
    pub version_marker: Option<String>,
    pub max_keys: usize,
}

/// A version or delete marker in a versions listing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VersionEntry {
    pub key: String,
    /// `null` for the null version.
    pub version_id: String,
    pub latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub etag: ETag,
    pub last_modified_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct VersionsPage {
    pub versions: Vec<VersionEntry>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts: after this key, and after this version of it.
    pub next_key_marker: Option<String>,
    pub next_version_marker: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct MetaStats {
    pub buckets: u64,
    pub objects: u64,
    /// Of those, the ones whose bytes are kept in their metadata.
    #[serde(default)]
    pub inline_objects: u64,
    /// Distinct chunks referenced by at least one object.
    pub chunks: u64,
    /// Bytes of those chunks, each counted once.
    pub chunk_bytes: u64,
    /// Chunks no object uses any more, waiting for collection.
    pub orphaned_chunks: u64,
    /// Chunks waiting for copies (async writes, quorum writes, dead nodes).
    #[serde(default)]
    pub repair_queue: u64,
    /// Of those, the ones no node holds a copy of any more (a lost disk
    /// had the only one): they wait for that disk to come back, and their
    /// objects cannot be read until it does.
    #[serde(default)]
    pub chunks_without_copy: u64,
    /// Copies storage nodes are still to delete (collected chunks, strays).
    #[serde(default)]
    pub pending_deletions: u64,
    pub last_applied_index: Option<u64>,
    /// Each bucket's latest lifecycle round, by bucket name.
    #[serde(default)]
    pub lifecycle: Vec<LifecycleRun>,
}

/// A bucket's latest lifecycle round, as its steps recorded it (times by
/// the leader's clock when it proposed them).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct LifecycleRun {
    pub bucket: String,
    pub started_ms: i64,
    /// When its last step applied.
    pub stepped_ms: i64,
    /// None while the round is under way.
    pub finished_ms: Option<i64>,
    /// Objects judged against the rules so far in this round.
    pub judged: u64,
    pub expired: u64,
    pub aborted: u64,
}

/// A bucket's objects and their bytes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct BucketUsage {
    pub objects: u64,
    pub bytes: u64,
}

/// One page of an upload's parts, in ascending order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PartsPage {
    pub parts: Vec<PartEntry>,
    /// Whether more parts follow.
    pub truncated: bool,
}

/// One page of a bucket's uploads in progress, in key order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct UploadsPage {
    pub uploads: Vec<UploadInfo>,
    /// Whether more uploads follow.
    pub truncated: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum QueryResult {
    Buckets(Vec<BucketInfo>),
    Bucket(Option<BucketInfo>),
    Object(Option<LocatedObject>),
    Page(ListPage),
    Versions(VersionsPage),
    Nodes(Vec<StorageNodeInfo>),
    Stats(MetaStats),
    BucketUsage(BucketUsage),
    Upload(Option<UploadInfo>),
    /// None: no such upload.
    Parts(Option<PartsPage>),
    Uploads(UploadsPage),
    AccessKey(Option<AccessKey>),
    AccessKeys(Vec<KeyInfo>),
    Replication(Replication),
    Repairs(Vec<Repair>),
    Usage(ClusterUsage),
}
