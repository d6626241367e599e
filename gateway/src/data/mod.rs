//! The data path: object bytes cut into chunks and streamed to storage
//! nodes (every copy in parallel, with back-pressure, `write`), and read
//! back chunk after chunk, failing over to another copy mid-stream (`read`).

mod read;
mod write;

use std::time::Duration;

use bytes::Bytes;
use jadfs_common::{ChunkRef, NodeId};

pub use read::{read_object, PlainReader};
pub use write::{copy_range, forget_write, store_body};

use crate::body::ObjectBody;
use crate::error::S3Error;

/// A storage node that takes no bytes, or sends none, for this long is
/// given up on (a copy elsewhere is used instead): a node cut off from the
/// network otherwise stalls a request until TCP gives up, many minutes later.
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What storing a body produced.
pub struct StoredData {
    /// The write that pinned the chunks it put on nodes (its commit names it).
    pub write_id: u64,
    pub size: u64,
    pub md5: [u8; 16],
    pub chunks: Vec<ChunkRef>,
    /// `placement[i]`: the nodes holding `chunks[i]`.
    pub placement: Vec<Vec<NodeId>>,
    /// The bytes of a body small enough to keep in its manifest (no chunks).
    pub inline: Option<Vec<u8>>,
}

impl StoredData {
    pub fn empty() -> StoredData {
        let write_id = jadfs_common::random_u64() >> 1; // stored as an i64
        StoredData { write_id, size: 0, md5: [0; 16], chunks: Vec::new(), placement: Vec::new(), inline: None }
    }
}

/// Where the bytes of an object come from: a decoded request body, or the
/// file part of a form upload.
pub trait ByteSource {
    /// The next piece, or None at the end (after every check passed).
    fn next_piece(&mut self) -> impl std::future::Future<Output = Result<Option<Bytes>, S3Error>>;
}

impl ByteSource for ObjectBody {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, S3Error> {
        self.next().await
    }
}
