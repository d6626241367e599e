//! Reading a chunk, whole or a range, block by block: each block is checked
//! against its checksum before any of its bytes is handed out, so no byte
//! leaves unchecked and a bad block is never sent. A copy that fails is
//! quarantined and noted lost.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use jadfs_common::node::ChunkInfo;
use jadfs_common::ChunkId;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::write::Written;
use super::ChunkStore;
use crate::blocks::{BlockSummer, BlockSums, BLOCK};
use crate::error::StoreError;
use crate::fs::{aligned_buffer, set_direct, DIRECT_ALIGN};
use crate::metrics;

/// Bytes read by one hand-over to a blocking thread.
const READ_BATCH: usize = 1 << 20;

/// An indexed chunk, open for reading.
pub struct OpenChunk {
    pub file: File,
    pub info: ChunkInfo,
    pub blocks: BlockSums,
    /// The file's inode: a copy found bad is quarantined only if it is
    /// still the file in place (not one written since).
    pub inode: u64,
}

/// Reads the inclusive byte range `start..=end` of a chunk (checked by the
/// caller against its size) a block at a time, each checked whole before
/// the part of it in the range is handed out (blocking).
pub struct ChunkReader {
    chunk: OpenChunk,
    /// The next block to read.
    block: usize,
    /// Bytes of that block before the range.
    skip: usize,
    /// Bytes of the range not yet handed out.
    left: u64,
}

impl ChunkReader {
    /// A whole read goes around the page cache, as chunks are written: a
    /// chunk read once is seldom read again soon, and filling the cache
    /// cost more than the rest of the read. Ranges go through it.
    pub fn new(mut chunk: OpenChunk, range: Option<(u64, u64)>) -> Result<ChunkReader, StoreError> {
        let size = chunk.info.size;
        if chunk.blocks.len() != BlockSums::count_for(size) {
            return Err(StoreError::Corrupt(chunk.info.id)); // the index row does not fit the chunk
        }
        let (start, end) = match range {
            Some(range) => range,
            None => {
                let _ = set_direct(&chunk.file, true); // where it can
                (0, size.saturating_sub(1))
            }
        };
        let block = (start / BLOCK as u64) as usize;
        chunk.file.seek(io::SeekFrom::Start(block as u64 * BLOCK as u64))?;
        let left = if size == 0 { 0 } else { end - start + 1 };
        Ok(ChunkReader { chunk, block, skip: (start % BLOCK as u64) as usize, left })
    }

    pub fn id(&self) -> ChunkId {
        self.chunk.info.id
    }

    /// The next checked bytes of the range, or None at its end.
    pub fn next_block(&mut self) -> Result<Option<Bytes>, StoreError> {
        if self.left == 0 {
            return Ok(None);
        }
        let id = self.chunk.info.id;
        let offset = self.block as u64 * BLOCK as u64;
        let expected_len = (self.chunk.info.size - offset).min(BLOCK as u64) as usize;
        // Always a whole block asked for (a direct read must be aligned): a
        // file longer than indexed shows in the last one.
        let block = read_block(&mut self.chunk.file, BLOCK)?;
        if block.len() != expected_len || Some(crc32c::crc32c(&block)) != self.chunk.blocks.get(self.block) {
            tracing::error!(chunk = %id, offset, "a block of a stored chunk failed its check");
            return Err(StoreError::Corrupt(id));
        }
        let take = ((block.len() - self.skip) as u64).min(self.left) as usize;
        let out = block.slice(self.skip..self.skip + take);
        (self.block, self.skip, self.left) = (self.block + 1, 0, self.left - take as u64);
        Ok(Some(out))
    }

    /// The next blocks, about `max` bytes of them, and whether they are the last.
    fn next_blocks(&mut self, max: usize) -> Result<(Vec<Bytes>, bool), StoreError> {
        let (mut blocks, mut size) = (Vec::new(), 0);
        while size < max {
            match self.next_block()? {
                Some(block) => {
                    size += block.len();
                    blocks.push(block);
                }
                None => return Ok((blocks, true)),
            }
        }
        Ok((blocks, self.left == 0))
    }
}

/// Streams the bytes `range` of a chunk (all of it with None), checked,
/// through a small bounded channel. The first bytes are read and checked
/// before it returns, so a copy whose first block is bad is an error its
/// caller can answer before sending anything. Later, it waits for the
/// receiver without holding a thread (a client that stops reading costs
/// none); each batch is read on a blocking thread. A bad block ends the
/// stream with an error, its bytes unsent, and the copy is quarantined.
pub async fn read_stream(
    store: Arc<ChunkStore>,
    chunk: OpenChunk,
    range: Option<(u64, u64)>,
) -> Result<mpsc::Receiver<io::Result<Bytes>>, StoreError> {
    let (id, inode) = (chunk.info.id, chunk.inode);
    let (node, started) = (store.node_id(), Instant::now());
    let reader = ChunkReader::new(chunk, range);
    let (mut reader, (first, mut end)) = match read_batch(reader).await {
        Ok(read) => read,
        Err(e) => {
            metrics::chunk_read(node, 0, false, started);
            return Err(store.copy_failed(id, inode, e).await);
        }
    };
    let (tx, rx) = mpsc::channel(READ_BATCH / BLOCK + 1);
    let mut sent = 0;
    for block in first {
        sent += block.len() as u64;
        tx.try_send(Ok(block)).expect("the channel holds a batch");
    }
    tokio::spawn(async move {
        while !end {
            let blocks;
            (reader, (blocks, end)) = match read_batch(Ok(reader)).await {
                Ok(read) => read,
                Err(e) => {
                    metrics::chunk_read(node, sent, false, started);
                    let e = store.copy_failed(id, inode, e).await;
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            for block in blocks {
                sent += block.len() as u64;
                if tx.send(Ok(block)).await.is_err() {
                    return; // the reader went away
                }
            }
        }
        metrics::chunk_read(node, sent, true, started);
    });
    Ok(rx)
}

/// Checked bytes of a chunk, and whether they are its last.
pub(crate) type Batch = (Vec<Bytes>, bool);

/// The next batch of a reader (about 1 MiB), read on a blocking thread.
pub(crate) async fn read_batch(reader: Result<ChunkReader, StoreError>) -> Result<(ChunkReader, Batch), StoreError> {
    let read = tokio::task::spawn_blocking(move || {
        let mut reader = reader?;
        let batch = reader.next_blocks(READ_BATCH)?;
        Ok((reader, batch))
    });
    read.await.map_err(|e| StoreError::Io(io::Error::other(e)))?
}

/// Reads up to `max` bytes into a buffer aligned for O_DIRECT (so a file
/// opened that way can be read into it) and hands it over without a copy.
fn read_block(file: &mut File, max: usize) -> io::Result<bytes::Bytes> {
    let (mut buf, start) = aligned_buffer(max);
    let mut filled = 0;
    while filled < max {
        match file.read(&mut buf[start + filled..start + max]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                // Only the end of a file gives a read that is not whole
                // blocks; reading on from there would be unaligned.
                if n % DIRECT_ALIGN != 0 {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(bytes::Bytes::from(buf).slice(start..start + filled))
}

/// What a file holds: the SHA-256 of its bytes (the id it should have), its
/// size, CRC32C and block checksums.
pub(super) fn hash_file(path: &Path) -> io::Result<Written> {
    let mut file = File::open(path)?;
    let (mut sha, mut sums, mut size) = (Sha256::new(), BlockSummer::default(), 0u64);
    loop {
        let block = read_block(&mut file, BLOCK)?;
        if block.is_empty() {
            let (blocks, crc32c) = sums.finish();
            return Ok(Written { id: ChunkId::from_bytes(sha.finalize().into()), size, crc32c, blocks });
        }
        sha.update(&block);
        sums.update(&block);
        size += block.len() as u64;
    }
}
