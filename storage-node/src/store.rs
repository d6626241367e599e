//! Chunk files on disk. A chunk is written to a temporary file while it is
//! hashed, fsync'd, checked against its ID, renamed into its fan-out folder
//! and the folder fsync'd; only then is it indexed. Paths are built from a
//! validated `ChunkId` alone.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

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
    Data(bytes::Bytes),
    End,
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
    /// a blocking thread. With `expected`, bytes that hash to anything else
    /// are refused and leave nothing behind.
    pub fn write_chunk(
        &self,
        expected: Option<ChunkId>,
        mut rx: mpsc::Receiver<PutMessage>,
    ) -> Result<ChunkPutResponse, StoreError> {
        let mut tmp = TempFile::create(&self.tmp_dir)?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            match rx.blocking_recv() {
                Some(PutMessage::Data(bytes)) => {
                    size += bytes.len() as u64;
                    if size > self.max_chunk_size {
                        return Err(StoreError::TooLarge(self.max_chunk_size));
                    }
                    hasher.update(&bytes);
                    tmp.file.write_all(&bytes)?;
                }
                Some(PutMessage::End) => break,
                None => return Err(StoreError::Aborted),
            }
        }
        tmp.file.sync_all()?;
        let id = ChunkId::from_bytes(hasher.finalize().into());
        if let Some(expected) = expected {
            if expected != id {
                return Err(StoreError::HashMismatch { expected, actual: id });
            }
        }
        crate::failpoint("chunk-before-rename");
        self.commit(tmp, id, size)
    }

    fn commit(&self, tmp: TempFile, id: ChunkId, size: u64) -> Result<ChunkPutResponse, StoreError> {
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
        self.index().insert(&id, size, now_ms())?;
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
            let (actual, size) = hash_file(&path)?;
            if actual == *id {
                self.index().insert(id, size, now_ms())?;
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

/// Reads a whole chunk file in blocks, handing each block to `emit` only once
/// the next one is read, and the last only after the bytes hashed to `id`:
/// a reader never receives the end of a corrupt chunk.
pub fn read_verified(
    mut file: File,
    id: ChunkId,
    mut emit: impl FnMut(bytes::Bytes) -> bool,
) -> Result<(), StoreError> {
    let mut hasher = Sha256::new();
    let mut held: Option<bytes::Bytes> = None;
    loop {
        let block = read_block(&mut file, READ_BLOCK)?;
        if block.is_empty() {
            break;
        }
        hasher.update(&block);
        if let Some(previous) = held.replace(block) {
            if !emit(previous) {
                return Ok(());
            }
        }
    }
    if ChunkId::from_bytes(hasher.finalize().into()) != id {
        return Err(StoreError::Corrupt(id));
    }
    if let Some(last) = held {
        emit(last);
    }
    Ok(())
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

fn read_block(file: &mut File, max: usize) -> io::Result<bytes::Bytes> {
    let mut buf = vec![0u8; max];
    let mut filled = 0;
    while filled < max {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(bytes::Bytes::from(buf))
}

fn hash_file(path: &Path) -> io::Result<(ChunkId, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)?;
    Ok((ChunkId::from_bytes(hasher.finalize().into()), size))
}

/// A temporary file that is removed unless it was renamed into place.
struct TempFile {
    path: Option<PathBuf>,
    file: File,
}

impl TempFile {
    fn create(dir: &Path) -> io::Result<TempFile> {
        let path = dir.join(format!("{:016x}.tmp", jadfs_common::random_u64()));
        let file = fs::OpenOptions::new().write(true).create_new(true).open(&path)?;
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

    fn put(store: &ChunkStore, expected: Option<ChunkId>, data: &[u8]) -> Result<ChunkPutResponse, StoreError> {
        let (tx, rx) = mpsc::channel(data.len() / 1000 + 4);
        for piece in data.chunks(1000) {
            tx.try_send(PutMessage::Data(bytes::Bytes::copy_from_slice(piece))).unwrap();
        }
        tx.try_send(PutMessage::End).unwrap();
        store.write_chunk(expected, rx)
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
        let first = put(&store, None, &data).unwrap();
        assert_eq!(first.id, ChunkId::of(&data));
        assert!(first.created);
        let second = put(&store, Some(first.id), &data).unwrap();
        assert!(!second.created);
        assert_eq!(store.totals().unwrap(), (1, 5000));
        assert_eq!(files_under(&dir.path().join("tmp")), 0);
    }

    #[test]
    fn bad_hash_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
        let wrong = ChunkId::of(b"something else");
        let err = put(&store, Some(wrong), b"actual bytes").unwrap_err();
        assert!(matches!(err, StoreError::HashMismatch { .. }), "{err}");
        assert_eq!(store.totals().unwrap(), (0, 0));
        assert_eq!(files_under(&dir.path().join("tmp")) + files_under(&dir.path().join("chunks")), 0);
    }

    #[test]
    fn aborted_and_oversized_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::open(dir.path(), 100).unwrap();
        let (tx, rx) = mpsc::channel(4);
        tx.try_send(PutMessage::Data(bytes::Bytes::from_static(b"partial"))).unwrap();
        drop(tx);
        assert!(matches!(store.write_chunk(None, rx), Err(StoreError::Aborted)));
        assert!(matches!(put(&store, None, &[1u8; 101]), Err(StoreError::TooLarge(100))));
        assert_eq!(files_under(&dir.path().join("tmp")) + files_under(&dir.path().join("chunks")), 0);
    }

    #[test]
    fn reconcile_finds_temp_files_strays_and_missing_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let (kept, lost, stray) = {
            let store = ChunkStore::open(dir.path(), 1 << 20).unwrap();
            let kept = put(&store, None, b"kept").unwrap().id;
            let lost = put(&store, None, b"lost").unwrap().id;
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
        let id = put(&store, None, &data).unwrap().id;

        let mut got = Vec::new();
        let (file, _) = store.open_chunk(&id).unwrap();
        read_verified(file, id, |b| {
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
        let err = read_verified(file, id, |b| {
            got.extend_from_slice(&b);
            true
        })
        .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)));
        assert!(got.len() < data.len());
    }
}
