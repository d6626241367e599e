//! Chunk files on disk. A chunk is written to a temporary file while it is
//! hashed, fsync'd, checked against its ID, renamed into its fan-out folder
//! and the folder fsync'd; only then is it indexed. Paths are built from a
//! validated `ChunkId` alone.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;
use jadfs_common::{now_ms, ChunkId, ChunkInfo, ChunkPutResponse, NodeId, ReconcileReport};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::index::ChunkIndex;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("chunk not found")]
    NotFound,
    #[error("chunk bytes hash to {actual}, not to the requested id {expected}")]
    HashMismatch { expected: ChunkId, actual: ChunkId },
    #[error("chunk larger than the {0} byte limit")]
    TooLarge(u64),
    #[error("chunk bytes have CRC32C {actual:08x}, not the {expected:08x} their sender computed")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("the upload is shorter than its trailer")]
    NoTrailer,
    #[error("the upload ended before it was complete")]
    Aborted,
    #[error("stored chunk {0} does not match its id: refusing to serve it")]
    Corrupt(ChunkId),
    #[error("the index holds a malformed row")]
    CorruptIndex,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("index error: {0}")]
    Index(#[from] rusqlite::Error),
}

/// A piece of an incoming chunk, or the mark that it is complete. An upload
/// whose sender is dropped without `End` is aborted and leaves nothing.
pub enum PutMessage {
    /// Pieces of the chunk, in order: several per message, so the writer
    /// thread wakes once for all of them.
    Data(Vec<bytes::Bytes>),
    End,
}

/// How a chunk write proves that the bytes stored are the bytes meant.
#[derive(Clone, Copy, Debug)]
pub enum WriteCheck {
    /// The bytes must hash (SHA-256) to this id: a copy made for a repair.
    Id(ChunkId),
    /// The stream ends with a [`Trailer`] naming the chunk and giving the
    /// CRC32C of the bytes before it, which must match. The gateway has just
    /// hashed the bytes to name them, so the node checks only that they
    /// arrived intact: CRC32C runs in hardware, SHA-256 would cost each copy
    /// as much as the gateway's pass. The scrubber checks ids later.
    Trailer,
}

/// The end of a gateway's chunk upload: the chunk id, then the CRC32C of the
/// chunk's bytes (big-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trailer {
    pub id: ChunkId,
    pub crc32c: u32,
}

pub const TRAILER_LEN: usize = 36;

impl Trailer {
    pub fn to_bytes(self) -> [u8; TRAILER_LEN] {
        let mut out = [0u8; TRAILER_LEN];
        out[..32].copy_from_slice(self.id.as_bytes());
        out[32..].copy_from_slice(&self.crc32c.to_be_bytes());
        out
    }

    pub fn parse(raw: &[u8]) -> Option<Trailer> {
        let raw: &[u8; TRAILER_LEN] = raw.try_into().ok()?;
        let id = ChunkId::from_bytes(raw[..32].try_into().expect("32 bytes"));
        Some(Trailer { id, crc32c: u32::from_be_bytes(raw[32..].try_into().expect("4 bytes")) })
    }
}

pub struct ChunkStore {
    node_id: NodeId,
    root: PathBuf,
    chunks_dir: PathBuf,
    tmp_dir: PathBuf,
    quarantine_dir: PathBuf,
    max_chunk_size: u64,
    index: Mutex<ChunkIndex>,
    /// Serialises commit and delete of the same chunk (striped by first byte).
    stripes: Vec<Mutex<()>>,
    last_reconcile: Mutex<ReconcileReport>,
}

const READ_BLOCK: usize = 256 * 1024;

impl ChunkStore {
    /// Opens the store under `root`, creating it on first use, and reconciles
    /// the files with the index.
    pub fn open(root: &Path, max_chunk_size: u64) -> Result<ChunkStore, StoreError> {
        let chunks_dir = root.join("chunks");
        let tmp_dir = root.join("tmp");
        let quarantine_dir = root.join("quarantine");
        for dir in [root, &chunks_dir, &tmp_dir, &quarantine_dir] {
            create_dir_durable(dir)?;
        }
        let node_id = load_or_create_node_id(&root.join("node-id"))?;
        let index = ChunkIndex::open(&root.join("index.db"))?;
        let store = ChunkStore {
            node_id,
            root: root.to_path_buf(),
            chunks_dir,
            tmp_dir,
            quarantine_dir,
            max_chunk_size,
            index: Mutex::new(index),
            stripes: (0..64).map(|_| Mutex::new(())).collect(),
            last_reconcile: Mutex::new(ReconcileReport::default()),
        };
        let report = store.reconcile()?;
        if report != ReconcileReport::default() {
            tracing::warn!(
                removed_temp_files = report.removed_temp_files,
                adopted = report.adopted.len(),
                quarantined = report.quarantined.len(),
                missing = report.missing.len(),
                "storage node reconciled files with its index"
            );
        }
        *store.last_reconcile.lock().unwrap() = report;
        Ok(store)
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn last_reconcile(&self) -> ReconcileReport {
        self.last_reconcile.lock().unwrap().clone()
    }

    fn index(&self) -> MutexGuard<'_, ChunkIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stripe(&self, id: &ChunkId) -> MutexGuard<'_, ()> {
        let i = id.as_bytes()[0] as usize % self.stripes.len();
        self.stripes[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn chunk_path(&self, id: &ChunkId) -> PathBuf {
        let hex = id.to_hex();
        self.chunks_dir.join(&hex[0..2]).join(&hex[2..4]).join(hex)
    }

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
        // With a trailer, the last TRAILER_LEN bytes received so far may be
        // it, so they are held back until more arrive.
        let hold = if matches!(check, WriteCheck::Trailer) { TRAILER_LEN } else { 0 };
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

    pub fn info(&self, id: &ChunkId) -> Result<ChunkInfo, StoreError> {
        self.index().get(id)?.ok_or(StoreError::NotFound)
    }

    /// Opens an indexed chunk for reading.
    pub fn open_chunk(&self, id: &ChunkId) -> Result<(File, ChunkInfo), StoreError> {
        let info = self.info(id)?;
        match File::open(self.chunk_path(id)) {
            Ok(file) => Ok((file, info)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a chunk: file first, then the index row, so a crash in between
    /// leaves a row that reconciliation drops.
    pub fn delete(&self, id: &ChunkId) -> Result<bool, StoreError> {
        let _guard = self.stripe(id);
        let path = self.chunk_path(id);
        match fs::remove_file(&path) {
            Ok(()) => fsync_dir(path.parent().expect("chunk paths have a parent"))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        self.index().remove(id)
    }

    pub fn list(&self, after: Option<&ChunkId>, limit: usize) -> Result<Vec<ChunkInfo>, StoreError> {
        self.index().list(after, limit)
    }

    pub fn totals(&self) -> Result<(u64, u64), StoreError> {
        self.index().totals()
    }

    /// Compares the files with the index: removes temporary files of
    /// interrupted puts, indexes chunk files whose bytes match their name,
    /// quarantines anything else, and drops index rows whose file is gone.
    pub fn reconcile(&self) -> Result<ReconcileReport, StoreError> {
        let mut report = ReconcileReport::default();
        for entry in fs::read_dir(&self.tmp_dir)? {
            fs::remove_file(entry?.path())?;
            report.removed_temp_files += 1;
        }
        fsync_dir(&self.tmp_dir)?;

        let mut on_disk = HashSet::new();
        for level1 in fs::read_dir(&self.chunks_dir)? {
            let level1 = level1?.path();
            if !level1.is_dir() {
                self.quarantine(&level1, &mut report)?;
                continue;
            }
            for level2 in fs::read_dir(&level1)? {
                let level2 = level2?.path();
                if !level2.is_dir() {
                    self.quarantine(&level2, &mut report)?;
                    continue;
                }
                for file in fs::read_dir(&level2)? {
                    let path = file?.path();
                    let parsed = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<ChunkId>().ok());
                    match parsed {
                        Some(id) if self.chunk_path(&id) == path => {
                            on_disk.insert(id);
                        }
                        _ => self.quarantine(&path, &mut report)?,
                    }
                }
            }
        }

        let mut indexed = HashSet::new();
        let mut after = None;
        loop {
            let page = self.list(after.as_ref(), 10_000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            indexed.extend(page.into_iter().map(|c| c.id));
        }

        for id in indexed.difference(&on_disk) {
            self.index().remove(id)?;
            report.missing.push(*id);
        }
        for id in on_disk.difference(&indexed) {
            let path = self.chunk_path(id);
            let (actual, size, crc32c) = hash_file(&path)?;
            if actual == *id {
                self.index().insert(id, size, crc32c, now_ms())?;
                report.adopted.push(*id);
            } else {
                self.quarantine(&path, &mut report)?;
            }
        }
        report.missing.sort();
        report.adopted.sort();
        Ok(report)
    }

    fn quarantine(&self, path: &Path, report: &mut ReconcileReport) -> Result<(), StoreError> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let target = self.quarantine_dir.join(format!("{}-{}", jadfs_common::random_u64(), name));
        fs::rename(path, &target)?;
        report.quarantined.push(name);
        Ok(())
    }

    /// (free, capacity) bytes of the file system holding the store.
    pub fn disk_space(&self) -> (u64, u64) {
        disk_space(&self.root).unwrap_or((0, 0))
    }
}

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
            // A range cannot be checked; the scrubber checks whole chunks.
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
fn hash_file(path: &Path) -> io::Result<(ChunkId, u64, u32)> {
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

const DIRECT_BUF: usize = 1 << 20;
const DIRECT_ALIGN: usize = 4096;

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

/// Turns O_DIRECT on or off for a file's further reads and writes. A file
/// system without it refuses to turn it on.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl with F_GETFL/F_SETFL on a descriptor the File owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    let flags = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A zeroed buffer of `len` bytes plus slack, and where in it the region
/// aligned for O_DIRECT starts.
fn aligned_buffer(len: usize) -> (Vec<u8>, usize) {
    let buf = vec![0u8; len + DIRECT_ALIGN];
    let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
    (buf, start)
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

/// Creates a folder (and its parents) and fsyncs each parent that gained an
/// entry, so the folder survives power loss.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_dir_durable(parent)?;
        }
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fsync_dir(parent),
        _ => Ok(()),
    }
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Reads the node's ID from `path`, or creates it durably on first start.
fn load_or_create_node_id(path: &Path) -> io::Result<NodeId> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a node id", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let id = jadfs_common::random_u64() >> 1; // fits an i64 wherever it is stored
            write_file_durable(path, id.to_string().as_bytes())?;
            Ok(id)
        }
        Err(e) => Err(e),
    }
}

/// Writes a small file atomically and durably: temp file, fsync, rename, fsync folder.
pub fn write_file_durable(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn disk_space(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with NUL"))?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out-pointer.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let block = stat.f_frsize as u64;
    Ok((stat.f_bavail as u64 * block, stat.f_blocks as u64 * block))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `pieces` as one upload, ended.
    fn send(store: &ChunkStore, check: WriteCheck, pieces: &[&[u8]]) -> Result<ChunkPutResponse, StoreError> {
        let (tx, rx) = mpsc::channel(pieces.len() + 1);
        // Two pieces a message, as a node's receiver gathers them.
        for pair in pieces.chunks(2) {
            tx.try_send(PutMessage::Data(pair.iter().map(|p| bytes::Bytes::copy_from_slice(p)).collect())).unwrap();
        }
        tx.try_send(PutMessage::End).unwrap();
        store.write_chunk(check, rx)
    }

    /// Stores `data` the way a gateway does: in 1000-byte pieces, then its trailer.
    fn put(store: &ChunkStore, data: &[u8]) -> Result<ChunkPutResponse, StoreError> {
        let trailer = Trailer { id: ChunkId::of(data), crc32c: crc32c::crc32c(data) }.to_bytes();
        let mut pieces: Vec<&[u8]> = data.chunks(1000).collect();
        pieces.push(&trailer);
        send(store, WriteCheck::Trailer, &pieces)
    }

    fn files_under(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                if p.is_dir() {
                    files_under(&p)
                } else {
                    1
                }
            })
            .sum()
    }

    #[test]
    fn put_is_content_addressed_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
        let data = vec![7u8; 5000];
        let first = put(&store, &data).unwrap();
        assert_eq!(first.id, ChunkId::of(&data));
        assert!(first.created);
        let second = send(&store, WriteCheck::Id(first.id), &[&data]).unwrap();
        assert!(!second.created);
        assert_eq!(store.totals().unwrap(), (1, 5000));
        assert_eq!(files_under(&dir.path().join("tmp")), 0);
    }

    #[test]
    fn chunks_of_any_length_are_written_whole() {
        // Whole direct-write blocks, a tail shorter than the alignment, and
        // pieces that straddle both.
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 8 << 20).unwrap();
        for len in [0, 1, 4095, 4096, 4097, DIRECT_BUF, DIRECT_BUF + 1, 2 * DIRECT_BUF + DIRECT_BUF / 2 + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let id = put(&store, &data).unwrap().id;
            assert_eq!(fs::read(store.chunk_path(&id)).unwrap(), data, "{len} bytes");
            // And read back whole around the page cache, checked.
            let (file, info) = store.open_chunk(&id).unwrap();
            set_direct(&file, true).unwrap();
            let mut got = Vec::new();
            read_verified(file, id, ReadCheck::for_chunk(&info), |b| {
                got.extend_from_slice(&b);
                true
            })
            .unwrap();
            assert_eq!(got, data, "{len} bytes read back");
        }
    }

    #[test]
    fn bad_hash_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
        let wrong = ChunkId::of(b"something else");
        let err = send(&store, WriteCheck::Id(wrong), &[b"actual bytes"]).unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
        assert_eq!(store.totals().unwrap(), (0, 0));
        assert_eq!(files_under(&dir.path().join("tmp")) + files_under(&dir.path().join("chunks")), 0);
    }

    #[test]
    fn trailer_may_arrive_split_and_a_bad_crc_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
        let data = b"bytes the gateway hashed";
        let trailer = Trailer { id: ChunkId::of(data), crc32c: crc32c::crc32c(data) }.to_bytes();
        // The trailer straddles pieces, and the last piece is shorter than it.
        let stored = send(&store, WriteCheck::Trailer, &[&data[..5], &data[5..], &trailer[..30], &trailer[30..]]);
        assert_eq!(stored.unwrap().id, ChunkId::of(data));
        let (file, info) = store.open_chunk(&ChunkId::of(data)).unwrap();
        assert_eq!(info.crc32c, Some(crc32c::crc32c(data)));
        let mut got = Vec::new();
        read_verified(file, info.id, ReadCheck::for_chunk(&info), |b| {
            got.extend_from_slice(&b);
            true
        })
        .unwrap();
        assert_eq!(got, data);

        let other = b"other bytes, same length!";
        let bad = Trailer { id: ChunkId::of(other), crc32c: crc32c::crc32c(data) }.to_bytes();
        let err = send(&store, WriteCheck::Trailer, &[other, &bad]).unwrap_err();
        assert!(matches!(err, StoreError::CrcMismatch { .. }), "{err}");
        let err = send(&store, WriteCheck::Trailer, &[&trailer[..20]]).unwrap_err();
        assert!(matches!(err, StoreError::NoTrailer), "{err}");
        assert_eq!(store.totals().unwrap().0, 1);
        assert_eq!(files_under(&dir.path().join("tmp")), 0);
    }

    #[test]
    fn aborted_and_oversized_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 100).unwrap();
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(PutMessage::Data(vec![bytes::Bytes::from_static(b"partial")])).unwrap();
        drop(tx);
        assert!(matches!(store.write_chunk(WriteCheck::Trailer, rx), Err(StoreError::Aborted)));
        assert!(matches!(put(&store, &[1u8; 101]), Err(StoreError::TooLarge(100))));
        assert_eq!(files_under(&dir.path().join("tmp")) + files_under(&dir.path().join("chunks")), 0);
    }

    #[test]
    fn reconcile_finds_temp_files_strays_and_missing_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, lost, stray) = {
            let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
            let kept = put(&store, b"kept").unwrap().id;
            let lost = put(&store, b"lost").unwrap().id;
            fs::remove_file(store.chunk_path(&lost)).unwrap();
            // A chunk file written behind the node's back, with the right name.
            let stray = ChunkId::of(b"stray");
            let path = store.chunk_path(&stray);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, b"stray").unwrap();
            // A file whose bytes do not match its name, and an interrupted put.
            let liar = store.chunk_path(&ChunkId::of(b"liar"));
            fs::create_dir_all(liar.parent().unwrap()).unwrap();
            fs::write(&liar, b"not the liar bytes").unwrap();
            fs::write(dir.path().join("tmp").join("123.tmp"), b"half a chunk").unwrap();
            (kept, lost, stray)
        };
        let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
        let report = store.last_reconcile();
        assert_eq!(report.removed_temp_files, 1);
        assert_eq!(report.missing, vec![lost]);
        assert_eq!(report.adopted, vec![stray]);
        assert_eq!(report.quarantined, vec![ChunkId::of(b"liar").to_hex()]);
        let ids: Vec<ChunkId> = store.list(None, 10).unwrap().into_iter().map(|c| c.id).collect();
        let mut expected = vec![kept, stray];
        expected.sort();
        assert_eq!(ids, expected);
    }

    #[test]
    fn verified_read_withholds_the_end_of_a_corrupt_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 4 << 20).unwrap();
        let data: Vec<u8> = (0..(READ_BLOCK * 2 + 10)).map(|i| (i % 251) as u8).collect();
        let id = put(&store, &data).unwrap().id;
        let crc = store.info(&id).unwrap().crc32c.expect("recorded at write");

        for check in [ReadCheck::Crc32c(crc), ReadCheck::Id] {
            fs::write(store.chunk_path(&id), &data).unwrap();
            let mut got = Vec::new();
            let (file, _) = store.open_chunk(&id).unwrap();
            read_verified(file, id, check, |b| {
                got.extend_from_slice(&b);
                true
            })
            .unwrap();
            assert_eq!(got, data);

            let mut corrupt = data.clone();
            corrupt[READ_BLOCK * 2 + 5] ^= 1;
            fs::write(store.chunk_path(&id), &corrupt).unwrap();
            let mut got = Vec::new();
            let (file, _) = store.open_chunk(&id).unwrap();
            let err = read_verified(file, id, check, |b| {
                got.extend_from_slice(&b);
                true
            })
            .unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{check:?}: {err}");
            assert!(got.len() < data.len());
        }
    }
}
