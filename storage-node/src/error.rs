//! What can go wrong in a storage node's store.

use std::io;

use jadfs_common::ChunkId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chunk not found")]
    NotFound,
    #[error("the chunk's file is gone: the copy is noted lost")]
    FileGone,
    #[error("chunk bytes hash to {actual}, not to the requested id {expected}")]
    HashMismatch { expected: ChunkId, actual: ChunkId },
    /// The node's disk is below its free-space reserve: it takes no new
    /// chunk until space is freed.
    #[error("the disk has {free} bytes free, below the node's reserve of {reserve}: no new chunks")]
    DiskFull { free: u64, reserve: u64 },
    #[error("chunk larger than the {0} byte limit")]
    TooLarge(u64),
    #[error("chunk bytes have CRC32C {actual:08x}, not the {expected:08x} their sender computed")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("the upload is shorter than its trailer")]
    NoTrailer,
    #[error("the upload ended before it was complete")]
    Aborted,
    #[error("stored chunk {0} failed its check: refusing to serve it")]
    Corrupt(ChunkId),
    #[error("the index holds a malformed row")]
    CorruptIndex,
    #[error("the index is at version {found}, newer than this program's {known}")]
    NewerIndex { found: u32, known: u32 },
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("index error: {0}")]
    Index(#[from] rusqlite::Error),
}

impl StoreError {
    /// Whether a read that failed so means the copy is bad: it failed its
    /// check, or the disk could not read it.
    pub fn means_bad_copy(&self) -> bool {
        match self {
            StoreError::Corrupt(_) => true,
            StoreError::Io(e) => e.raw_os_error() == Some(libc::EIO),
            _ => false,
        }
    }

    /// Whether the write failed for want of disk space: below the reserve,
    /// or the file system itself full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull { .. } => true,
            StoreError::Io(e) => matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)),
            StoreError::Index(rusqlite::Error::SqliteFailure(e, _)) => e.code == rusqlite::ErrorCode::DiskFull,
            _ => false,
        }
    }
}
