//! The meta service's wire types: the Raft type configuration, the commands
//! that change metadata (`command`), the queries that read it and their
//! answers (`query`), the records both speak of (`model`), and the
//! cluster's own messages (`cluster`). All of it is written to the Raft log,
//! the state database or an HTTP body: a change stays readable by what was
//! written before (new fields `#[serde(default)]`), or comes with a step of
//! the state's data version (`state::schema`).

mod cluster;
mod command;
mod lifecycle;
mod model;
mod query;

pub use cluster::*;
pub use command::*;
pub use jadfs_common::NodeId;
pub use lifecycle::*;
pub use model::*;
pub use query::*;

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

/// Failures a client of the meta service can act on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("no such bucket")]
    NoSuchBucket,
    #[error("no such key")]
    NoSuchKey,
    #[error("no such version")]
    NoSuchVersion,
    /// Object Lock keeps the version: what would delete it or shorten its
    /// retention is refused.
    #[error("the version is locked: {0}")]
    ObjectLocked(String),
    #[error("the bucket has no Object Lock")]
    NoObjectLock,
    #[error("not in the bucket's state: {0}")]
    InvalidBucketState(String),
    #[error("the bucket is not empty")]
    BucketNotEmpty,
    #[error("the bucket already exists and is yours")]
    BucketAlreadyOwnedByYou,
    #[error("the bucket name is taken")]
    BucketAlreadyExists,
    #[error("no such upload")]
    NoSuchUpload,
    #[error("no such access key")]
    NoSuchAccessKey,
    #[error("the access key exists")]
    AccessKeyExists,
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
    /// A write's chunk is not held as the write assumed: its pin expired
    /// (the write took too long) or the chunk it reused was collected. The
    /// client may try again.
    #[error("a chunk of the write is gone: {0}")]
    ChunkGone(String),
    /// The meta node's disk is below its reserve: writes that add data are
    /// refused until space is freed (deletes go on).
    #[error("the metadata disk is full: {0}")]
    DiskFull(String),
    #[error("not the leader; leader is {leader_addr:?}")]
    ForwardToLeader { leader_addr: Option<String> },
    /// An SSE-C upload completed without its customer key.
    #[error("the upload's customer key was not given")]
    WrongCustomerKey,
    #[error("meta service unavailable: {0}")]
    Unavailable(String),
    #[error("refused: {0}")]
    Unauthorized(String),
    #[error("meta internal error: {0}")]
    Internal(String),
}

impl MetaError {
    /// What a Raft call's failure means to a client: go to the leader it
    /// names, or try again later.
    pub fn from_raft<E>(error: &openraft::error::RaftError<u64, E>) -> MetaError
    where
        E: std::error::Error + openraft::TryAsRef<openraft::error::ForwardToLeader<u64, openraft::BasicNode>>,
    {
        match error.forward_to_leader::<openraft::BasicNode>() {
            Some(forward) => {
                MetaError::ForwardToLeader { leader_addr: forward.leader_node.as_ref().map(|n| n.addr.clone()) }
            }
            None => MetaError::Unavailable(error.to_string()),
        }
    }
}
