//! A meta node's disk when it fills. Below the reserve (`--disk-reserve`)
//! the node refuses commands that add data, with a clear error, and takes
//! the rest (deletes, collection, the bookkeeping of copies). Half the
//! reserve is held as a ballast file: when something else fills the disk
//! to the end, the ballast is released so the Raft log and the state can
//! still take the deletes that free space, and a write that hit a full
//! disk is tried again after releasing it, so openraft never sees the
//! error (which would stop the node). Once enough is free again, the
//! ballast comes back and writes resume by themselves.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jadfs_common::disk::{create_ballast, disk_space};

use crate::api::{Command, MetaError};

pub struct Disk {
    dir: PathBuf,
    ballast: PathBuf,
    reserve: u64,
    /// Whether the ballast file is in place (data writes need it).
    holding: AtomicBool,
}

impl Disk {
    /// Watches the disk of `dir`, laying the ballast if there is room.
    pub fn open(dir: &Path, reserve: u64) -> Arc<Disk> {
        let ballast = dir.join("ballast");
        let disk = Disk { dir: dir.to_path_buf(), holding: AtomicBool::new(ballast.exists()), ballast, reserve };
        disk.refill();
        Arc::new(disk)
    }

    fn ballast_len(&self) -> u64 {
        self.reserve / 2
    }

    fn free(&self) -> u64 {
        disk_space(&self.dir).map(|(free, _)| free).unwrap_or(0)
    }

    /// Refuses a command that adds data while the disk is below its reserve.
    pub fn admit(&self, command: &Command) -> Result<(), MetaError> {
        if self.reserve == 0 || !command.adds_data() {
            return Ok(());
        }
        let free = self.free();
        if self.holding.load(Ordering::Relaxed) && free >= self.reserve {
            return Ok(());
        }
        Err(MetaError::DiskFull(format!(
            "{free} bytes free, below the reserve of {} bytes; delete data to go on",
            self.reserve
        )))
    }

    /// Frees the ballast for the writes that must go on; true if it was there.
    pub fn release(&self) -> bool {
        if !self.holding.swap(false, Ordering::Relaxed) {
            return false;
        }
        match std::fs::remove_file(&self.ballast) {
            Ok(()) => tracing::error!(
                dir = %self.dir.display(),
                freed = self.ballast_len(),
                "the metadata disk is full: released its ballast so deletes can go on; writes that add data are refused"
            ),
            Err(e) => tracing::error!(error = %e, "could not release the ballast of a full metadata disk"),
        }
        true
    }

    /// Lays the ballast again once the reserve and the ballast fit.
    fn refill(&self) {
        if self.reserve == 0 || self.holding.load(Ordering::Relaxed) {
            return;
        }
        if self.free() < self.reserve + self.ballast_len() {
            return;
        }
        match create_ballast(&self.ballast, self.ballast_len()) {
            Ok(()) => {
                if self.holding.swap(true, Ordering::Relaxed) {
                    return;
                }
                tracing::info!(dir = %self.dir.display(), "the metadata disk has room again: writes resume");
            }
            Err(e) => tracing::warn!(error = %e, "could not lay the metadata disk's ballast"),
        }
    }

    /// Every second: releases the ballast when the disk is nearly full,
    /// lays it again when there is room.
    pub async fn watch(self: Arc<Self>) {
        if self.reserve == 0 {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let disk = self.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if disk.holding.load(Ordering::Relaxed) && disk.free() < disk.ballast_len() {
                    disk.release();
                }
                disk.refill();
            })
            .await;
        }
    }
}

/// Whether SQLite failed for want of disk space.
pub fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::DiskFull)
}

/// Runs a blocking write; if the disk was full, releases the ballast and
/// runs it once more (a failed SQLite transaction leaves nothing behind).
pub fn retry_when_full<T>(disk: &Disk, mut write: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    match write() {
        Err(e) if is_full(&e) && disk.release() => write(),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_writes_need_the_ballast_and_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let unpin = Command::Unpin { write_id: 1 };
        let create = Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false };
        let disk = Disk::open(dir.path(), 2 << 20);
        assert!(dir.path().join("ballast").exists(), "laid on open");
        assert_eq!(std::fs::metadata(dir.path().join("ballast")).unwrap().len(), 1 << 20);
        disk.admit(&create).unwrap();
        assert!(disk.release());
        assert!(!dir.path().join("ballast").exists());
        assert!(matches!(disk.admit(&create), Err(MetaError::DiskFull(_))), "no ballast: no data writes");
        disk.admit(&unpin).unwrap();
        disk.admit(&Command::Batch(vec![unpin.clone()])).unwrap();
        assert!(disk.admit(&Command::Batch(vec![unpin, create.clone()])).is_err(), "a batch adding data");
        disk.refill();
        disk.admit(&create).unwrap();
        let huge = Disk::open(dir.path(), u64::MAX / 4);
        assert!(huge.admit(&create).is_err(), "a reserve larger than the disk refuses data");
    }
}
