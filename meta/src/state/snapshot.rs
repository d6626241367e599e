//! Snapshots of the state: a compact copy of the database (`VACUUM INTO`),
//! kept as `snapshots/current.db` with its metadata in `current.json`.
//! A received one is written to a file of its own, which then becomes the
//! live database by a rename ([`super::live`]): installing costs the same
//! for any size. The live file changes from then on, so the installed
//! snapshot is owed rather than kept (`owed.json`): the next time one is
//! asked for, it is built from the live state (the same snapshot, if
//! nothing was applied since).

// openraft's storage traits return its StorageError; its size is not ours to choose.
#![allow(clippy::result_large_err)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use jadfs_common::cluster_auth::ClusterKey;
use openraft::storage::Snapshot;
use openraft::{RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError};
use rusqlite::Connection;

use super::live::{remove_old, LiveDb};
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

/// Makes a received snapshot the live database (blocking): the file is
/// renamed into place, brought to this program's data version and opened
/// in place of the old one, which is then removed. The snapshot is owed
/// from then on (see the module's comment).
pub fn install(
    conn: &Mutex<Connection>,
    live: &LiveDb,
    received: &Path,
    dir: &Path,
    meta: &Meta,
    key: &ClusterKey,
) -> Result<(), StorageError<u64>> {
    let _kept = KEEPING.lock().unwrap_or_else(|e| e.into_inner());
    owe(dir, meta).map_err(|e| snapshot_error(&e))?;
    let (old, new) = live.replace(received).map_err(|e| snapshot_error(&e))?;
    let opened = open_db(&new).map_err(|e| snapshot_error(&e))?;
    migrate(&opened, key).map_err(|e| snapshot_error(&e))?;
    drop(std::mem::replace(&mut *StateMachineStore::lock(conn), opened));
    remove_old(&old);
    Ok(())
}

/// Records that the installed snapshot `meta` is owed, and forgets the
/// current one (older than what is now live), durably.
fn owe(dir: &Path, meta: &Meta) -> io::Result<()> {
    let tmp = dir.join("owed.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(meta)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join("owed.json"))?;
    for name in ["current.json", "current.db"] {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Serialises making a snapshot current: its file and its metadata are
/// renamed apart, and a build may run beside an install.
static KEEPING: Mutex<()> = Mutex::new(());

/// The current snapshot: the one built or received last; one owed since an
/// install is built first.
pub async fn current(live: &Arc<LiveDb>, dir: &Path) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
    if tokio::fs::try_exists(dir.join("owed.json")).await.unwrap_or(false) {
        let (live, owed_dir) = (live.clone(), dir.to_path_buf());
        tokio::task::spawn_blocking(move || build(&live, &owed_dir)).await.map_err(|e| snapshot_error(&e))??;
    }
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

/// Builds a snapshot of the live database as a compact copy (`VACUUM
/// INTO`), read in one transaction, so it matches exactly one applied log
/// position, and makes it current (blocking). A snapshot owed for that same
/// position keeps its id; one owed for an older position is superseded. No
/// install runs meanwhile, so what is built is never older than what is live.
fn build(live: &LiveDb, dir: &Path) -> Result<Meta, StorageError<u64>> {
    let _kept = KEEPING.lock().unwrap_or_else(|e| e.into_inner());
    let building = dir.join(format!("building-{:016x}.db", jadfs_common::random_u64()));
    let conn = open_db(&live.current().1).map_err(|e| snapshot_error(&e))?;
    conn.execute("VACUUM INTO ?1", [building.to_string_lossy()]).map_err(|e| snapshot_error(&e))?;
    drop(conn);
    let copy = Connection::open(&building).map_err(|e| snapshot_error(&e))?;
    let (last_log_id, last_membership) = applied_state(&copy).map_err(|e| snapshot_error(&e))?;
    drop(copy);
    let owed: Option<Meta> =
        std::fs::read(dir.join("owed.json")).ok().and_then(|raw| serde_json::from_slice(&raw).ok());
    let meta = match owed.filter(|owed| owed.last_log_id == last_log_id) {
        Some(owed) => owed,
        None => {
            let suffix = jadfs_common::random_u64() as u32;
            let snapshot_id = match last_log_id {
                Some(id) => format!("{}-{}-{suffix:08x}", id.leader_id.term, id.index),
                None => format!("empty-{suffix:08x}"),
            };
            Meta { last_log_id, last_membership, snapshot_id }
        }
    };
    keep_as_current(dir, &building, &meta).map_err(|e| snapshot_error(&e))?;
    match std::fs::remove_file(dir.join("owed.json")) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(snapshot_error(&e)),
        _ => {}
    }
    Ok(meta)
}

/// Builds snapshots of the live state for openraft (see [`build`]).
pub struct SnapshotBuilder {
    pub(super) live: Arc<LiveDb>,
    pub(super) snapshot_dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (live, dir) = (self.live.clone(), self.snapshot_dir.clone());
        let meta = tokio::task::spawn_blocking(move || build(&live, &dir)).await.map_err(|e| snapshot_error(&e))??;
        let file = tokio::fs::File::open(self.snapshot_dir.join("current.db")).await.map_err(|e| snapshot_error(&e))?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use openraft::storage::RaftStateMachine;
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};

    use super::*;
    use crate::api::{Command, Query, QueryResult};
    use crate::disk::Disk;

    fn store(dir: &Path) -> StateMachineStore {
        let key = Arc::new(ClusterKey::from_secret("the snapshot tests' secret").unwrap());
        StateMachineStore::open(dir, key, Disk::open(dir, 0)).unwrap()
    }

    #[tokio::test]
    async fn an_installed_snapshot_becomes_the_live_file_without_a_copy() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let mut leader = store(a.path());
        let create =
            Command::CreateBucket { name: "kept".into(), owner: "o".into(), created_ms: 0, object_lock: false };
        let entry =
            Entry { log_id: LogId::new(CommittedLeaderId::new(1, 1), 1), payload: EntryPayload::Normal(create) };
        leader.apply([entry]).await.unwrap();
        let built = leader.get_snapshot_builder().await.build_snapshot().await.unwrap();

        let mut follower = store(b.path());
        let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
        let mut source = built.snapshot;
        tokio::io::copy(&mut source, &mut *receiving).await.unwrap();
        let inode = receiving.metadata().await.unwrap().ino();
        follower.install_snapshot(&built.meta, receiving).await.unwrap();

        let live = b.path().join("state-1.db");
        assert_eq!(std::fs::metadata(&live).unwrap().ino(), inode, "the received file is the live state");
        assert!(!b.path().join("state.db").exists(), "the old state is gone");
        let readers = follower.readers();
        let buckets = readers.query(Query::ListBuckets).await.unwrap();
        assert!(matches!(buckets, QueryResult::Buckets(b) if b.len() == 1 && b[0].name == "kept"));
        // The installed snapshot is what the follower offers next, built
        // from its state, under the same id.
        let offered = follower.get_current_snapshot().await.unwrap().expect("a snapshot");
        assert_eq!(offered.meta, built.meta);
        assert!(!b.path().join("snapshots/owed.json").exists());

        // A restart reads the same live file.
        drop((follower, readers));
        let reopened = store(b.path());
        assert_eq!(reopened.live.current().1, live);
    }
}
