//! Reading a chunk: whole, checked before its last block leaves, or a range.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

use bytes::Bytes;
use jadfs_common::node::ChunkInfo;
use jadfs_common::ChunkId;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::fs::{aligned_buffer, set_direct, DIRECT_ALIGN};

/// Bytes read from a chunk file at a time.
pub(super) const READ_BLOCK: usize = 256 * 1024;
/// Bytes read by one hand-over to a blocking thread.
const READ_BATCH: usize = 1 << 20;

/// What a whole-chunk read checks the bytes against.
#[derive(Clone, Copy, Debug)]
pub enum ReadCheck {
    /// The CRC32C recorded when the chunk was written: cheap, for clients'
    /// reads, and catches what the disk changed since.
    Crc32c(u32),
    /// The chunk's id (SHA-256): for copies that repair another node, and
    /// for chunks indexed without a CRC32C.
    Id,
}

impl ReadCheck {
    /// The cheapest check this chunk allows.
    pub fn for_chunk(info: &ChunkInfo) -> ReadCheck {
        info.crc32c.map(ReadCheck::Crc32c).unwrap_or(ReadCheck::Id)
    }
}

/// A chunk read block by block (blocking): whole, each block held back
/// until the next is read and the last until every byte passed the check,
/// so a reader never receives the end of a corrupt chunk; or a range.
pub struct ChunkReader {
    file: File,
    id: ChunkId,
    kind: Reading,
}

enum Reading {
    Whole { check: ReadCheck, sha: Option<Sha256>, crc: u32, held: Option<Bytes>, verified: bool },
    Range { left: u64 },
}

impl ChunkReader {
    /// Reads the whole chunk, checked against `check`. Whole chunks are read
    /// around the page cache, as they were written: a chunk read once is
    /// seldom read again soon, and filling the cache cost more than the rest
    /// of the read.
    pub fn whole(file: File, id: ChunkId, check: ReadCheck) -> ChunkReader {
        let _ = set_direct(&file, true); // where it can
        let sha = matches!(check, ReadCheck::Id).then(Sha256::new);
        ChunkReader { file, id, kind: Reading::Whole { check, sha, crc: 0, held: None, verified: false } }
    }

    /// Reads the inclusive byte range `start..=end` (checked by the caller
    /// against the size). A range goes unchecked: the recorded CRC32C covers
    /// the whole chunk.
    pub fn range(mut file: File, id: ChunkId, (start, end): (u64, u64)) -> io::Result<ChunkReader> {
        file.seek(io::SeekFrom::Start(start))?;
        Ok(ChunkReader { file, id, kind: Reading::Range { left: end - start + 1 } })
    }

    /// The next block to hand out, or None at the end.
    pub fn next_block(&mut self) -> Result<Option<Bytes>, StoreError> {
        match &mut self.kind {
            Reading::Range { left } => {
                if *left == 0 {
                    return Ok(None);
                }
                let block = read_block(&mut self.file, READ_BLOCK.min(*left as usize))?;
                if block.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunk file shorter than indexed").into());
                }
                *left -= block.len() as u64;
                Ok(Some(block))
            }
            Reading::Whole { check, sha, crc, held, verified } => loop {
                if *verified {
                    return Ok(held.take());
                }
                let block = read_block(&mut self.file, READ_BLOCK)?;
                if block.is_empty() {
                    let intact = match check {
                        ReadCheck::Crc32c(expected) => *crc == *expected,
                        ReadCheck::Id => {
                            sha.take().is_some_and(|sha| ChunkId::from_bytes(sha.finalize().into()) == self.id)
                        }
                    };
                    if !intact {
                        return Err(StoreError::Corrupt(self.id));
                    }
                    *verified = true;
                    continue;
                }
                match sha {
                    Some(sha) => sha.update(&block),
                    None => *crc = crc32c::crc32c_append(*crc, &block),
                }
                if let Some(previous) = held.replace(block) {
                    return Ok(Some(previous));
                }
            },
        }
    }
}

impl ChunkReader {
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
        Ok((blocks, false))
    }
}

/// Reads a whole chunk, checked, handing each block to `emit` until it
/// answers false (blocking).
pub fn read_verified(
    file: File,
    id: ChunkId,
    check: ReadCheck,
    mut emit: impl FnMut(Bytes) -> bool,
) -> Result<(), StoreError> {
    let mut reader = ChunkReader::whole(file, id, check);
    while let Some(block) = reader.next_block()? {
        if !emit(block) {
            break;
        }
    }
    Ok(())
}

/// Streams a chunk file into a small bounded channel: the whole chunk,
/// checked against `check`, or the inclusive byte range `range`. It waits
/// for the receiver without holding a thread (a client that stops reading
/// costs none); each block is read on a blocking thread. A failed read ends
/// the stream with an error.
pub fn spawn_reader(
    file: File,
    id: ChunkId,
    check: ReadCheck,
    range: Option<(u64, u64)>,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let reader = match range {
            None => Ok(ChunkReader::whole(file, id, check)),
            Some(range) => ChunkReader::range(file, id, range).map_err(StoreError::from),
        };
        let mut reader = match reader {
            Ok(reader) => reader,
            Err(e) => return fail(&tx, id, e).await,
        };
        loop {
            let read = tokio::task::spawn_blocking(move || {
                let next = reader.next_blocks(READ_BATCH);
                (reader, next)
            })
            .await;
            let next;
            (reader, next) = match read {
                Ok(read) => read,
                Err(e) => return fail(&tx, id, StoreError::Io(io::Error::other(e))).await,
            };
            let (blocks, end) = match next {
                Ok(read) => read,
                Err(e) => return fail(&tx, id, e).await,
            };
            for block in blocks {
                if tx.send(Ok(block)).await.is_err() {
                    return; // the reader went away
                }
            }
            if end {
                return;
            }
        }
    });
    rx
}

async fn fail(tx: &mpsc::Sender<io::Result<Bytes>>, id: ChunkId, e: StoreError) {
    tracing::error!(chunk = %id, error = %e, "chunk read failed; ending the stream with an error");
    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
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

/// (SHA-256, size, CRC32C) of a file.
pub(super) fn hash_file(path: &Path) -> io::Result<(ChunkId, u64, u32)> {
    let mut file = File::open(path)?;
    let (mut sha, mut crc, mut size) = (Sha256::new(), 0u32, 0u64);
    loop {
        let block = read_block(&mut file, READ_BLOCK)?;
        if block.is_empty() {
            return Ok((ChunkId::from_bytes(sha.finalize().into()), size, crc));
        }
        sha.update(&block);
        crc = crc32c::crc32c_append(crc, &block);
        size += block.len() as u64;
    }
}
