//! Writing a chunk: bytes into a temporary file around the page cache,
//! checked (CRC32C trailer or SHA-256 id), fsync'd, renamed into place.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use jadfs_common::node::{ChunkPutResponse, PutMessage, Trailer};
use jadfs_common::{now_ms, ChunkId};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::read::hash_file;
use super::ChunkStore;
use crate::blocks::{BlockSummer, BlockSums};
use crate::error::StoreError;
use crate::fs::{aligned_buffer, create_dir_durable, fsync_dir, set_direct, DIRECT_ALIGN};

/// How a chunk write proves that the bytes stored are the bytes meant.
#[derive(Clone, Copy, Debug)]
pub enum WriteCheck {
    /// The bytes must hash (SHA-256) to this id: a copy made for a repair.
    Id(ChunkId),
    /// The stream ends with a [`Trailer`] naming the chunk and giving the
    /// CRC32C of the bytes before it, which must match. The gateway has just
    /// hashed the bytes to name them, so the node checks only that they
    /// arrived intact: CRC32C runs in hardware, SHA-256 would cost each copy
    /// as much as the gateway's pass. Reads check the recorded CRC32C; copies
    /// for repair and adopted strays are checked against the id.
    Trailer,
}

/// A chunk being written: begun by [`ChunkStore::begin_write`], given its
/// pieces, then finished by [`ChunkStore::finish_write`]. Each step is
/// blocking (disk I/O) but short; no step waits for the network, so a
/// sender that stalls holds no thread.
pub struct ChunkWrite {
    out: DirectWriter,
    check: WriteCheck,
    sha: Option<Sha256>,
    sums: BlockSummer,
    size: u64,
    max_size: u64,
    /// With a trailer, the last [`Trailer::LEN`] bytes received so far may
    /// be it, so they are held back until more arrive.
    held: Vec<u8>,
}

impl ChunkWrite {
    /// Appends pieces of the chunk (blocking).
    pub fn write(&mut self, pieces: Vec<Bytes>) -> Result<(), StoreError> {
        let hold = if matches!(self.check, WriteCheck::Trailer) { Trailer::LEN } else { 0 };
        for bytes in pieces {
            if bytes.len() >= hold {
                let (body, tail) = bytes.split_at(bytes.len() - hold);
                let held = std::mem::take(&mut self.held);
                self.take(&held)?;
                self.take(body)?;
                self.held = held;
                self.held.clear();
                self.held.extend_from_slice(tail);
            } else {
                self.held.extend_from_slice(&bytes);
                if self.held.len() > hold {
                    let excess: Vec<u8> = self.held.drain(..self.held.len() - hold).collect();
                    self.take(&excess)?;
                }
            }
        }
        Ok(())
    }

    fn take(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.size += bytes.len() as u64;
        if self.size > self.max_size {
            return Err(StoreError::TooLarge(self.max_size));
        }
        self.sums.update(bytes);
        if let Some(sha) = &mut self.sha {
            sha.update(bytes);
        }
        Ok(self.out.write(bytes)?)
    }
}

impl ChunkStore {
    /// Starts writing a chunk to a temporary file (blocking).
    /// Refused while the disk is below the store's reserve.
    pub fn begin_write(&self, check: WriteCheck) -> Result<ChunkWrite, StoreError> {
        self.check_room()?;
        Ok(ChunkWrite {
            out: DirectWriter::new(TempFile::create(&self.tmp_dir)?),
            check,
            sha: matches!(check, WriteCheck::Id(_)).then(Sha256::new),
            sums: BlockSummer::default(),
            size: 0,
            max_size: self.max_chunk_size,
            held: Vec::with_capacity(Trailer::LEN),
        })
    }

    /// Checks a written chunk, makes it durable and puts it in place
    /// (blocking). Bytes that fail their check leave nothing behind.
    pub fn finish_write(&self, write: ChunkWrite) -> Result<ChunkPutResponse, StoreError> {
        let ChunkWrite { out, check, sha, sums, size, held, .. } = write;
        let tmp = out.finish()?;
        let (blocks, crc) = sums.finish();
        let id = match check {
            WriteCheck::Id(expected) => {
                let actual = ChunkId::from_bytes(sha.expect("hashing by id").finalize().into());
                if actual != expected {
                    return Err(StoreError::HashMismatch { expected, actual });
                }
                expected
            }
            WriteCheck::Trailer => {
                let trailer = Trailer::parse(&held).ok_or(StoreError::NoTrailer)?;
                if trailer.crc32c != crc {
                    return Err(StoreError::CrcMismatch { expected: trailer.crc32c, actual: crc });
                }
                trailer.id
            }
        };
        tmp.file.sync_all()?;
        crate::failpoint("chunk-before-rename");
        let written = Written { id, size, crc32c: crc, blocks };
        self.commit(tmp, written, matches!(check, WriteCheck::Id(_)))
    }

    /// Puts a durable, checked chunk file in place and indexes it. If the
    /// node already holds the chunk, the two are compared (see [`Duplicate`]).
    fn commit(&self, tmp: TempFile, written: Written, hashed: bool) -> Result<ChunkPutResponse, StoreError> {
        let Written { id, size, crc32c, blocks } = written;
        let _guard = self.stripe(&id);
        let path = self.chunk_path(&id);
        let parent = path.parent().expect("chunk paths have a parent");
        if path.exists() {
            match self.compare_with_stored(&tmp, &path, id, size, crc32c, hashed)? {
                Duplicate::Same => {
                    drop(tmp);
                    self.index().insert(&id, size, crc32c, &blocks, now_ms())?;
                    return Ok(ChunkPutResponse { id, size, created: false });
                }
                Duplicate::Replaces => {
                    tracing::warn!(chunk = %id, "a stored copy did not match its id; replaced by the one received")
                }
                Duplicate::Refused(e) => return Err(e),
            }
        } else {
            create_dir_durable(parent)?;
        }
        fs::rename(tmp.disarm(), &path)?;
        fsync_dir(parent)?;
        self.index().insert(&id, size, crc32c, &blocks, now_ms())?;
        Ok(ChunkPutResponse { id, size, created: true })
    }

    /// Compares a received chunk with the stored file of the same id. The
    /// same size and CRC32C as indexed is the same chunk (a file that rotted
    /// since is found when it is read, whole reads being checked); otherwise both are
    /// hashed, so that a forged upload wins neither by arriving first nor
    /// by arriving second.
    fn compare_with_stored(
        &self,
        tmp: &TempFile,
        stored: &Path,
        id: ChunkId,
        size: u64,
        crc32c: u32,
        hashed: bool,
    ) -> Result<Duplicate, StoreError> {
        let indexed = self.index().get(&id)?;
        if indexed.is_some_and(|held| held.size == size && held.crc32c == Some(crc32c)) {
            return Ok(Duplicate::Same);
        }
        let received = if hashed { id } else { hash_file(tmp.path())?.id };
        if received != id {
            return Ok(Duplicate::Refused(StoreError::HashMismatch { expected: id, actual: received }));
        }
        let stored_id = hash_file(stored)?.id;
        Ok(if stored_id == id { Duplicate::Same } else { Duplicate::Replaces })
    }
}

/// A chunk file written and checked: what its index row records.
pub(super) struct Written {
    pub id: ChunkId,
    pub size: u64,
    pub crc32c: u32,
    pub blocks: BlockSums,
}

/// What a received chunk is to the stored file of the same id.
enum Duplicate {
    /// The same bytes: kept once.
    Same,
    /// The stored file does not match its id; the received one, which does, takes its place.
    Replaces,
    /// The received bytes do not match the id they came with.
    Refused(StoreError),
}

/// Writes a chunk file around the page cache (O_DIRECT): through an aligned
/// buffer, in whole blocks of it; the tail that is not a multiple of the
/// block size is written normally at the end. A chunk that was just written
/// is rarely read at once, and copying it into page-cache pages (three
/// copies per chunk on one machine) cost more than the rest of the node.
struct DirectWriter {
    tmp: TempFile,
    buf: Vec<u8>,
    /// Where the aligned region of `buf` starts.
    start: usize,
    filled: usize,
}

pub(super) const DIRECT_BUF: usize = 1 << 20;

impl DirectWriter {
    fn new(tmp: TempFile) -> DirectWriter {
        let (buf, start) = aligned_buffer(DIRECT_BUF);
        DirectWriter { tmp, buf, start, filled: 0 }
    }

    fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = data.len().min(DIRECT_BUF - self.filled);
            let at = self.start + self.filled;
            self.buf[at..at + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == DIRECT_BUF {
                self.write_direct(DIRECT_BUF)?;
                self.filled = 0;
            }
        }
        Ok(())
    }

    /// Writes the first `len` bytes of the buffer, a multiple of the
    /// alignment. A file system that refuses direct writes of that
    /// alignment gets the rest through the page cache, from where the
    /// refused write stopped.
    fn write_direct(&mut self, len: usize) -> io::Result<()> {
        let mut block = &self.buf[self.start..self.start + len];
        let mut direct = true;
        while !block.is_empty() {
            match self.tmp.file.write(block) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => block = &block[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    set_direct(&self.tmp.file, false)?;
                    direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes what is buffered and hands back the file.
    fn finish(mut self) -> io::Result<TempFile> {
        let aligned = self.filled / DIRECT_ALIGN * DIRECT_ALIGN;
        self.write_direct(aligned)?;
        if aligned < self.filled {
            set_direct(&self.tmp.file, false)?;
            self.tmp.file.write_all(&self.buf[self.start + aligned..self.start + self.filled])?;
        }
        Ok(self.tmp)
    }
}

/// A temporary file that is removed unless it was renamed into place.
struct TempFile {
    path: Option<PathBuf>,
    file: File,
}

impl TempFile {
    fn create(dir: &Path) -> io::Result<TempFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(format!("{:016x}.tmp", jadfs_common::random_u64()));
        let open = |flags| fs::OpenOptions::new().write(true).create_new(true).custom_flags(flags).open(&path);
        // O_DIRECT where the file system has it (tmpfs has not).
        let file = match open(libc::O_DIRECT) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => open(0)?,
            other => other?,
        };
        Ok(TempFile { path: Some(path), file })
    }

    fn path(&self) -> &Path {
        self.path.as_deref().expect("armed until disarmed")
    }

    fn disarm(mut self) -> PathBuf {
        self.path.take().expect("disarmed once")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = fs::remove_file(path);
        }
    }
}

/// What arrived while a blocking write ran is written by the next one, up
/// to this much: one hand-over to a thread per MiB, not per piece.
const WRITE_BATCH: usize = 1 << 20;

/// Stores one chunk from `pieces`, which end with [`PutMessage::End`]
/// (pieces that stop before it abort the write). It waits for pieces
/// without holding a thread; each write goes to a blocking thread only
/// while it runs, with whatever else has arrived by then.
pub async fn receive_chunk(
    store: Arc<ChunkStore>,
    check: WriteCheck,
    pieces: mpsc::Receiver<PutMessage>,
) -> Result<ChunkPutResponse, StoreError> {
    let (node, started) = (store.node_id(), Instant::now());
    let written = write_pieces(store, check, pieces).await;
    crate::metrics::chunk_written(node, written.as_ref().ok().map(|w| w.size), started);
    written
}

async fn write_pieces(
    store: Arc<ChunkStore>,
    check: WriteCheck,
    mut pieces: mpsc::Receiver<PutMessage>,
) -> Result<ChunkPutResponse, StoreError> {
    let mut write: Option<ChunkWrite> = None;
    loop {
        let mut next = Some(pieces.recv().await.ok_or(StoreError::Aborted)?);
        let (mut batch, mut size, mut ended) = (Vec::new(), 0, false);
        while let Some(message) = next.take() {
            match message {
                PutMessage::Data(group) => {
                    size += group.iter().map(Bytes::len).sum::<usize>();
                    batch.extend(group);
                }
                PutMessage::End => {
                    ended = true;
                    break;
                }
            }
            if size < WRITE_BATCH {
                next = match pieces.try_recv() {
                    Ok(message) => Some(message),
                    Err(mpsc::error::TryRecvError::Empty) => None,
                    Err(mpsc::error::TryRecvError::Disconnected) => return Err(StoreError::Aborted),
                };
            }
        }
        let store = store.clone();
        let step = blocking(move || {
            let mut write = match write {
                Some(write) => write,
                None => store.begin_write(check)?,
            };
            write.write(batch)?;
            Ok(if ended { Err(store.finish_write(write)?) } else { Ok(write) })
        })
        .await?;
        match step {
            Ok(more) => write = Some(more),
            Err(done) => return Ok(done),
        }
    }
}

/// Runs `f` on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Io(io::Error::other(e)))?
}
