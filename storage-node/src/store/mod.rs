//! Chunk files on disk and their index. A chunk is written to a temporary
//! file while its bytes are checked and its block checksums computed,
//! fsync'd, renamed into its fan-out folder and the folder fsync'd; only
//! then is it indexed (`write`). Reads check each block before any of its
//! bytes leaves (`read`); start-up compares the folders with the index
//! (`reconcile`). A copy found gone or bad is quarantined and noted lost,
//! until meta is told. Paths are built from a validated `ChunkId` alone.

mod read;
mod reconcile;
mod write;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use jadfs_common::node::{ChunkInfo, ReconcileReport};
use jadfs_common::{ChunkId, NodeId};

pub(crate) use read::read_batch;
pub use read::{read_stream, ChunkReader, OpenChunk};
pub use write::{receive_chunk, ChunkWrite, WriteCheck};

use crate::error::StoreError;
use crate::fs::{create_dir_durable, fsync_dir, write_file_durable};
use crate::index::ChunkIndex;
use write::blocking;

pub struct ChunkStore {
    node_id: NodeId,
    root: PathBuf,
    chunks_dir: PathBuf,
    tmp_dir: PathBuf,
    quarantine_dir: PathBuf,
    max_chunk_size: u64,
    /// Free bytes kept on the disk: below them no new chunk is taken.
    reserve: u64,
    index: Mutex<ChunkIndex>,
    /// Serialises commit and delete of the same chunk (striped by first byte).
    stripes: Vec<Mutex<()>>,
    last_reconcile: Mutex<ReconcileReport>,
}

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
            reserve: 0,
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
                corrupt = report.corrupt.len(),
                "storage node reconciled files with its index"
            );
        }
        *store.last_reconcile.lock().unwrap() = report;
        Ok(store)
    }

    /// Keeps `reserve` bytes of the disk free: below them the store takes
    /// no new chunk ([`StoreError::DiskFull`]); reads and deletes go on.
    pub fn with_reserve(mut self, reserve: u64) -> ChunkStore {
        self.reserve = reserve;
        self
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

    pub fn info(&self, id: &ChunkId) -> Result<ChunkInfo, StoreError> {
        self.index().get(id)?.ok_or(StoreError::NotFound)
    }

    /// Opens an indexed chunk for reading. A chunk indexed but whose file
    /// is gone is noted lost ([`StoreError::FileGone`]).
    pub fn open_chunk(&self, id: &ChunkId) -> Result<OpenChunk, StoreError> {
        use std::os::unix::fs::MetadataExt;
        let (info, blocks) = self.index().get_with_blocks(id)?.ok_or(StoreError::NotFound)?;
        let file = match File::open(self.chunk_path(id)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::error!(chunk = %id, "an indexed chunk's file is gone; noting the copy lost");
                self.lose(id, None)?;
                return Err(StoreError::FileGone);
            }
            Err(e) => return Err(e.into()),
        };
        let inode = file.metadata()?.ino();
        Ok(OpenChunk { file, info, blocks: blocks.unwrap_or_default(), inode })
    }

    /// What a failed read of a copy means: one that failed its check, or
    /// that the disk could not read, is quarantined and noted lost (see
    /// [`ChunkStore::lose`]). Hands the error back.
    pub(crate) async fn copy_failed(self: &Arc<Self>, id: ChunkId, inode: u64, e: StoreError) -> StoreError {
        if e.means_bad_copy() {
            let store = self.clone();
            if let Err(failed) = blocking(move || store.lose(&id, Some(inode))).await {
                tracing::error!(chunk = %id, error = %failed, "could not quarantine a bad copy");
            }
        }
        e
    }

    /// Notes this node's copy of `id` lost, to be reported to meta (and
    /// re-made from another): its file, if there is one and it is still
    /// the file with `inode` (not one a write put there since), is moved to
    /// quarantine for an operator to look at, and its index row dropped.
    pub fn lose(&self, id: &ChunkId, inode: Option<u64>) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let _guard = self.stripe(id);
        let path = self.chunk_path(id);
        match (fs::metadata(&path), inode) {
            (Ok(now), Some(inode)) if now.ino() != inode => return Ok(()), // written again since
            (Ok(_), _) => {
                let target = self.quarantine_dir.join(format!("{}-{}", jadfs_common::random_u64(), id.to_hex()));
                fs::rename(&path, target)?;
                fsync_dir(path.parent().expect("chunk paths have a parent"))?;
            }
            (Err(e), _) if e.kind() == io::ErrorKind::NotFound => {}
            (Err(e), _) => return Err(e.into()),
        }
        tracing::warn!(chunk = %id, "copy quarantined and noted lost");
        crate::metrics::copy_lost(self.node_id());
        self.index().mark_lost(id, jadfs_common::now_ms())
    }

    /// Records that a chunk's copy was read whole and passed every check.
    pub fn verified(&self, id: &ChunkId) -> Result<(), StoreError> {
        self.index().verified(id, jadfs_common::now_ms())
    }

    /// Up to `limit` lost copies not yet reported to meta.
    pub fn lost(&self, limit: usize) -> Result<Vec<ChunkId>, StoreError> {
        self.index().lost(limit)
    }

    /// Forgets lost copies meta now knows of.
    pub fn reported(&self, ids: &[ChunkId]) -> Result<(), StoreError> {
        self.index().reported(ids)
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

    /// (usable, capacity) bytes of the file system holding the store:
    /// usable is what is free beyond the reserve, what new chunks may take.
    pub fn disk_space(&self) -> (u64, u64) {
        let (free, capacity) = crate::fs::disk_space(&self.root).unwrap_or((0, 0));
        (free.saturating_sub(self.reserve), capacity)
    }

    /// Refuses a new chunk while the disk is below the reserve.
    fn check_room(&self) -> Result<(), StoreError> {
        let (free, _) = crate::fs::disk_space(&self.root)?;
        if free < self.reserve {
            return Err(StoreError::DiskFull { free, reserve: self.reserve });
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests;
