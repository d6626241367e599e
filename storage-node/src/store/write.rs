//! Writing a chunk: bytes into a temporary file around the page cache,
//! checked (CRC32C trailer or SHA-256 id), fsync'd, renamed into place.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jadfs_common::node::{ChunkPutResponse, PutMessage, Trailer};
use jadfs_common::{now_ms, ChunkId};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::ChunkStore;
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

impl ChunkStore {
    /// Receives a chunk's bytes from `rx` and stores it. Blocking: run it on
    /// a blocking thread. Bytes that fail `check` are refused and leave
    /// nothing behind.
    pub fn write_chunk(
        &self,
        check: WriteCheck,
        mut rx: mpsc::Receiver<PutMessage>,
    ) -> Result<ChunkPutResponse, StoreError> {
        let mut tmp = TempFile::create(&self.tmp_dir)?;
        let mut out = DirectWriter::new(&mut tmp.file);
        let mut sha = matches!(check, WriteCheck::Id(_)).then(Sha256::new);
        let mut crc = 0u32;
        let mut size = 0u64;
        // With a trailer, the last Trailer::LEN bytes received so far may be
        // it, so they are held back until more arrive.
        let hold = if matches!(check, WriteCheck::Trailer) { Trailer::LEN } else { 0 };
        let mut held: Vec<u8> = Vec::with_capacity(hold);
        let mut take = |bytes: &[u8]| -> Result<(), StoreError> {
            size += bytes.len() as u64;
            if size > self.max_chunk_size {
                return Err(StoreError::TooLarge(self.max_chunk_size));
            }
            crc = crc32c::crc32c_append(crc, bytes);
            if let Some(sha) = &mut sha {
                sha.update(bytes);
            }
            Ok(out.write(bytes)?)
        };
        loop {
            let pieces = match rx.blocking_recv() {
                Some(PutMessage::Data(pieces)) => pieces,
                Some(PutMessage::End) => break,
                None => return Err(StoreError::Aborted),
            };
            for bytes in pieces {
                if bytes.len() >= hold {
                    let (body, tail) = bytes.split_at(bytes.len() - hold);
                    take(&held)?;
                    take(body)?;
                    held.clear();
                    held.extend_from_slice(tail);
                } else {
                    held.extend_from_slice(&bytes);
                    if held.len() > hold {
                        let excess = held.len() - hold;
                        take(&held[..excess])?;
                        held.drain(..excess);
                    }
                }
            }
        }
        out.finish()?;
        let id = match check {
            WriteCheck::Id(expected) => {
                let actual = ChunkId::from_bytes(sha.take().expect("hashing by id").finalize().into());
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
        self.commit(tmp, id, size, crc)
    }

    fn commit(&self, tmp: TempFile, id: ChunkId, size: u64, crc32c: u32) -> Result<ChunkPutResponse, StoreError> {
        let _guard = self.stripe(&id);
        let path = self.chunk_path(&id);
        let created = if path.exists() {
            drop(tmp);
            false
        } else {
            let parent = path.parent().expect("chunk paths have a parent");
            create_dir_durable(parent)?;
            fs::rename(tmp.disarm(), &path)?;
            fsync_dir(parent)?;
            true
        };
        self.index().insert(&id, size, crc32c, now_ms())?;
        Ok(ChunkPutResponse { id, size, created })
    }
}

/// Writes a chunk file around the page cache (O_DIRECT): through an aligned
/// buffer, in whole blocks of it; the tail that is not a multiple of the
/// block size is written normally at the end. A chunk that was just written
/// is rarely read at once, and copying it into page-cache pages (three
/// copies per chunk on one machine) cost more than the rest of the node.
struct DirectWriter<'f> {
    file: &'f mut File,
    buf: Vec<u8>,
    /// Where the aligned region of `buf` starts.
    start: usize,
    filled: usize,
}

pub(super) const DIRECT_BUF: usize = 1 << 20;

impl<'f> DirectWriter<'f> {
    fn new(file: &'f mut File) -> DirectWriter<'f> {
        let (buf, start) = aligned_buffer(DIRECT_BUF);
        DirectWriter { file, buf, start, filled: 0 }
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
            match self.file.write(block) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => block = &block[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    set_direct(self.file, false)?;
                    direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        let aligned = self.filled / DIRECT_ALIGN * DIRECT_ALIGN;
        self.write_direct(aligned)?;
        if aligned < self.filled {
            set_direct(self.file, false)?;
            self.file.write_all(&self.buf[self.start + aligned..self.start + self.filled])?;
        }
        Ok(())
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
