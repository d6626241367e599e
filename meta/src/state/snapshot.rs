//! Snapshots of the state: a compact copy of the database (`VACUUM INTO`),
//! kept as `snapshots/current.db` with its metadata in `current.json`;
//! received ones are written to a file of their own and copied into the
//! live database.

// openraft's storage traits return its StorageError; its size is not ours to choose.
#![allow(clippy::result_large_err)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jadfs_common::cluster_auth::ClusterKey;
use openraft::storage::Snapshot;
use openraft::{RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError};
use rusqlite::Connection;

use super::rows::applied_state;
use super::schema::{migrate, open_db};
use super::StateMachineStore;
use crate::api::TypeConfig;

type Meta = SnapshotMeta<u64, openraft::BasicNode>;

pub fn snapshot_error(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::write_snapshot(None, e).into()
}

/// Removes what an interrupted build or transfer left.
pub fn remove_unfinished(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with("building-") || name.starts_with("receiving-") {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// A new file for a snapshot being received, read as well as written
/// (install reads it back).
pub async fn begin_receiving(dir: &Path) -> Result<(PathBuf, tokio::fs::File), StorageError<u64>> {
    let path = dir.join(format!("receiving-{:016x}.db", jadfs_common::random_u64()));
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .await
        .map_err(|e| snapshot_error(&e))?;
    Ok((path, file))
}

/// The file of a snapshot to install. The snapshot is the handle given,
/// whichever file it is: the one `begin_receiving` made is used as it is;
/// any other is first copied, from its start, into a file of ours.
pub async fn received_file(
    dir: &Path,
    receiving: Option<PathBuf>,
    mut snapshot: Box<tokio::fs::File>,
) -> Result<PathBuf, StorageError<u64>> {
    let given = snapshot.metadata().await.map_err(|e| snapshot_error(&e))?;
    let ours = match &receiving {
        Some(path) => tokio::fs::metadata(path).await.ok().filter(|m| same_file(m, &given)).map(|_| path.clone()),
        None => None,
    };
    if let Some(path) = ours {
        snapshot.sync_all().await.map_err(|e| snapshot_error(&e))?;
        return Ok(path);
    }
    if let Some(unused) = receiving {
        let _ = tokio::fs::remove_file(unused).await;
    }
    let copy_path = dir.join(format!("receiving-{:016x}.db", jadfs_common::random_u64()));
    use tokio::io::AsyncSeekExt;
    snapshot.seek(io::SeekFrom::Start(0)).await.map_err(|e| snapshot_error(&e))?;
    let mut copy = tokio::fs::File::create(&copy_path).await.map_err(|e| snapshot_error(&e))?;
    tokio::io::copy(&mut snapshot, &mut copy).await.map_err(|e| snapshot_error(&e))?;
    copy.sync_all().await.map_err(|e| snapshot_error(&e))?;
    Ok(copy_path)
}

/// Copies a received snapshot into the live database (blocking), brings it
/// to this program's data version, and keeps it as the current snapshot.
pub fn install(
    conn: &Mutex<Connection>,
    received: &Path,
    dir: &Path,
    meta: &Meta,
    key: &ClusterKey,
) -> Result<(), StorageError<u64>> {
    {
        let source = Connection::open(received).map_err(|e| snapshot_error(&e))?;
        let mut target = StateMachineStore::lock(conn);
        let backup = rusqlite::backup::Backup::new(&source, &mut target).map_err(|e| snapshot_error(&e))?;
        // 64 MiB per step, without pauses: nothing else writes meanwhile.
        backup.run_to_completion(16384, std::time::Duration::ZERO, None).map_err(|e| snapshot_error(&e))?;
        drop(backup);
        migrate(&target, key).map_err(|e| snapshot_error(&e))?;
    }
    keep_as_current(dir, received, meta).map_err(|e| snapshot_error(&e))
}

/// The current snapshot, if one was built or installed.
pub async fn current(dir: &Path) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
    let raw = match tokio::fs::read(dir.join("current.json")).await {
        Ok(raw) => raw,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(snapshot_error(&e)),
    };
    let meta: Meta = serde_json::from_slice(&raw).map_err(|e| snapshot_error(&e))?;
    let file = tokio::fs::File::open(dir.join("current.db")).await.map_err(|e| snapshot_error(&e))?;
    Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
}

/// Makes `db` the current snapshot, described by `meta`, durably.
fn keep_as_current(dir: &Path, db: &Path, meta: &Meta) -> io::Result<()> {
    std::fs::File::open(db)?.sync_all()?;
    std::fs::rename(db, dir.join("current.db"))?;
    let tmp = dir.join("current.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(meta)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join("current.json"))?;
    std::fs::File::open(dir)?.sync_all()
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Builds a snapshot as a compact copy of the state database (`VACUUM INTO`),
/// read in one transaction, so it matches exactly one applied log position.
pub struct SnapshotBuilder {
    pub(super) db_path: PathBuf,
    pub(super) snapshot_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let db_path = self.db_path.clone();
        let dir = self.snapshot_dir.clone();
        let meta = tokio::task::spawn_blocking(move || -> Result<_, StorageError<u64>> {
            let building = dir.join(format!("building-{:016x}.db", jadfs_common::random_u64()));
            let conn = open_db(&db_path).map_err(|e| snapshot_error(&e))?;
            conn.execute("VACUUM INTO ?1", [building.to_string_lossy()]).map_err(|e| snapshot_error(&e))?;
            let copy = Connection::open(&building).map_err(|e| snapshot_error(&e))?;
            let (last_log_id, last_membership) = applied_state(&copy).map_err(|e| snapshot_error(&e))?;
            drop(copy);
            let suffix = jadfs_common::random_u64() as u32;
            let snapshot_id = match last_log_id {
                Some(id) => format!("{}-{}-{suffix:08x}", id.leader_id.term, id.index),
                None => format!("empty-{suffix:08x}"),
            };
            let meta = Meta { last_log_id, last_membership, snapshot_id };
            keep_as_current(&dir, &building, &meta).map_err(|e| snapshot_error(&e))?;
            Ok(meta)
        })
        .await
        .map_err(|e| snapshot_error(&e))??;
        let file = tokio::fs::File::open(self.snapshot_dir.join("current.db")).await.map_err(|e| snapshot_error(&e))?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}
