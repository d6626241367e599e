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

/// Reads a whole chunk file in blocks, handing each block to `emit` only once
/// the next one is read, and the last only after the bytes passed `check`:
/// a reader never receives the end of a corrupt chunk.
pub fn read_verified(
    mut file: File,
    id: ChunkId,
    check: ReadCheck,
    mut emit: impl FnMut(bytes::Bytes) -> bool,
) -> Result<(), StoreError> {
    let mut sha = matches!(check, ReadCheck::Id).then(Sha256::new);
    let mut crc = 0u32;
    let mut held: Option<bytes::Bytes> = None;
    loop {
        let block = read_block(&mut file, READ_BLOCK)?;
        if block.is_empty() {
            break;
        }
        match &mut sha {
            Some(sha) => sha.update(&block),
            None => crc = crc32c::crc32c_append(crc, &block),
        }
        if let Some(previous) = held.replace(block) {
            if !emit(previous) {
                return Ok(());
            }
        }
    }
    let intact = match check {
        ReadCheck::Crc32c(expected) => crc == expected,
        ReadCheck::Id => sha.is_some_and(|sha| ChunkId::from_bytes(sha.finalize().into()) == id),
    };
    if !intact {
        return Err(StoreError::Corrupt(id));
    }
    if let Some(last) = held {
        emit(last);
    }
    Ok(())
}

/// Streams a chunk file on a blocking thread into a small bounded channel:
/// the whole chunk, checked against `check` as [`read_verified`] does, or
/// the inclusive byte range `range` (which the caller has checked against
/// the size). A failed read ends the stream with an error.
pub fn spawn_reader(
    mut file: File,
    id: ChunkId,
    check: ReadCheck,
    range: Option<(u64, u64)>,
) -> mpsc::Receiver<io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let emit = |bytes| tx.blocking_send(Ok(bytes)).is_ok();
        let result = match range {
            // A range goes unchecked: the recorded CRC32C covers the whole chunk.
            // Whole chunks are read around the page cache, as they were
            // written: a chunk read once is seldom read again soon, and
            // filling the cache cost more than the rest of the read.
            None => {
                let _ = set_direct(&file, true); // where it can
                read_verified(file, id, check, emit)
            }
            Some((start, end)) => match file.seek(io::SeekFrom::Start(start)) {
                Ok(_) => read_range(file, end - start + 1, emit),
                Err(e) => Err(e.into()),
            },
        };
        if let Err(e) = result {
            tracing::error!(chunk = %id, error = %e, "chunk read failed; ending the stream with an error");
            let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
        }
    });
    rx
}

/// Reads `len` bytes of a file from its current position, in blocks.
pub fn read_range(mut file: File, mut len: u64, mut emit: impl FnMut(bytes::Bytes) -> bool) -> Result<(), StoreError> {
    while len > 0 {
        let block = read_block(&mut file, READ_BLOCK.min(len as usize))?;
        if block.is_empty() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunk file shorter than indexed").into());
        }
        len -= block.len() as u64;
        if !emit(block) {
            break;
        }
    }
    Ok(())
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
