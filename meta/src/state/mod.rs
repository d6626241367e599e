//! The metadata state machine, kept on disk in SQLite: buckets, objects with
//! their chunk lists, chunk reference counts and placement, uploads, keys,
//! storage nodes. Each batch of Raft entries is applied in one transaction
//! together with the last-applied log id, so the state on disk always
//! matches a log position.
//!
//! - `schema`: the tables and their versioned upgrades
//! - `apply`: commands, one module per family
//! - `query` and `listing`: reads
//! - `rows`: the row helpers both share
//! - `snapshot`: building, receiving and installing snapshots
//! - `live`: which file is the live state (an installed snapshot's, renamed)
//!
//! This file is the openraft glue and the pool of read connections.

// openraft's storage traits return its StorageError; its size is not ours to choose.
#![allow(clippy::result_large_err)]

mod apply;
mod listing;
mod live;
mod query;
mod rows;
pub mod schema;
mod snapshot;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use jadfs_common::cluster_auth::ClusterKey;
use jadfs_common::{ChunkId, NodeId};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{Entry, EntryPayload, LogId, SnapshotMeta, StorageError, StorageIOError};
use rusqlite::Connection;

use crate::api::*;
use crate::disk::{retry_when_full, Disk};
use live::LiveDb;
use rows::{applied_state, write_setting, Membership};
pub use snapshot::SnapshotBuilder;

fn sm_error(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::write_state_machine(e).into()
}

/// Read connections to the state machine database, reused between queries
/// (each kept with the generation of the live file it reads).
pub struct ReadPool {
    live: Arc<LiveDb>,
    idle: Mutex<Vec<(u64, Connection)>>,
}

impl ReadPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, MetaError> {
        let (generation, path) = self.live.current();
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.retain(|(g, _)| *g == generation);
            idle.pop()
        };
        let conn = match conn {
            Some((_, conn)) => conn,
            None => schema::open_db(&path).map_err(|e| MetaError::Internal(e.to_string()))?,
        };
        let result = f(&conn);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push((generation, conn));
        result.map_err(|e| MetaError::Internal(e.to_string()))
    }

    /// Closes the idle connections to files no longer live.
    fn forget_old(&self) {
        let generation = self.live.current().0;
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).retain(|(g, _)| *g == generation);
    }

    /// Runs `f` on a pooled connection on a blocking thread, off the async executor.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, MetaError> {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .unwrap_or_else(|e| Err(MetaError::Internal(e.to_string())))
    }

    /// Answers a query from the applied state.
    pub async fn query(self: &Arc<Self>, query: Query) -> Result<QueryResult, MetaError> {
        self.blocking(move |conn| query::answer(conn, &query)).await
    }

    /// The registered storage nodes (their state as registered, not as heard).
    pub async fn list_nodes(self: &Arc<Self>) -> Result<Vec<StorageNodeInfo>, MetaError> {
        self.blocking(query::list_nodes).await
    }

    /// Chunks waiting for copies, oldest first, after `after`.
    pub async fn repair_queue(
        self: &Arc<Self>,
        after: Option<(u64, ChunkId)>,
        limit: usize,
    ) -> Result<Vec<Repair>, MetaError> {
        self.blocking(move |conn| query::repair_queue(conn, after, limit)).await
    }

    /// Whether a chunk orphaned at or before `log_index` waits for collection.
    pub async fn collectible(self: &Arc<Self>, log_index: u64) -> Result<bool, MetaError> {
        self.blocking(move |conn| query::collectible(conn, log_index)).await
    }

    /// Copies storage nodes are still to delete, (chunk, node), up to
    /// `limit`, none on the nodes of `skip`.
    pub async fn deletions(
        self: &Arc<Self>,
        limit: usize,
        skip: Vec<NodeId>,
    ) -> Result<Vec<(ChunkId, NodeId)>, MetaError> {
        self.blocking(move |conn| query::deletions(conn, limit, &skip)).await
    }

    /// What each node holds, and the rebalancing in progress.
    pub async fn usage(self: &Arc<Self>) -> Result<ClusterUsage, MetaError> {
        self.blocking(query::usage).await
    }

    /// Chunks `node` holds after `after`, in id order, with their holders.
    pub async fn node_chunks(
        self: &Arc<Self>,
        node: NodeId,
        after: Option<ChunkId>,
        limit: usize,
    ) -> Result<Vec<HeldChunk>, MetaError> {
        self.blocking(move |conn| query::node_chunks(conn, node, after, limit)).await
    }

    /// Chunks with surplus copies after `after`, in id order.
    pub async fn surplus(self: &Arc<Self>, after: Option<ChunkId>, limit: usize) -> Result<Vec<Repair>, MetaError> {
        self.blocking(move |conn| query::surplus(conn, after, limit)).await
    }

    /// Those of `chunks` on `node` that no placement names, no write pins
    /// and no deletion covers yet: strays.
    pub async fn strays(self: &Arc<Self>, node: NodeId, chunks: Vec<ChunkId>) -> Result<Vec<ChunkId>, MetaError> {
        self.blocking(move |conn| query::strays(conn, node, &chunks)).await
    }
}

/// The state machine as openraft drives it.
pub struct StateMachineStore {
    live: Arc<LiveDb>,
    snapshot_dir: PathBuf,
    conn: Arc<Mutex<Connection>>,
    readers: Arc<ReadPool>,
    /// The file `begin_receiving_snapshot` made, until it is installed.
    receiving: Option<PathBuf>,
    /// Seals secrets written before they were sealed (a data upgrade).
    key: Arc<ClusterKey>,
    /// A full disk releases its ballast and the apply is tried again.
    disk: Arc<Disk>,
}

impl StateMachineStore {
    /// Opens the state under `dir` and brings it to the current data version.
    pub fn open(dir: &Path, key: Arc<ClusterKey>, disk: Arc<Disk>) -> io::Result<StateMachineStore> {
        let snapshot_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        snapshot::remove_unfinished(&snapshot_dir)?;
        let live = Arc::new(LiveDb::open(dir)?);
        let conn = schema::open_db(&live.current().1).map_err(io::Error::other)?;
        schema::migrate(&conn, &key).map_err(io::Error::other)?;
        Ok(StateMachineStore {
            readers: Arc::new(ReadPool { live: live.clone(), idle: Mutex::new(Vec::new()) }),
            live,
            snapshot_dir,
            conn: Arc::new(Mutex::new(conn)),
            receiving: None,
            key,
            disk,
        })
    }

    pub fn readers(&self) -> Arc<ReadPool> {
        self.readers.clone()
    }

    fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
        conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        applied_state(&Self::lock(&self.conn)).map_err(|e| sm_error(&e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (conn, disk) = (self.conn.clone(), self.disk.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = Self::lock(&conn);
            retry_when_full(&disk, || {
                let tx = conn.transaction()?;
                let mut results = Vec::with_capacity(entries.len());
                let mut membership = None;
                for entry in &entries {
                    results.push(match &entry.payload {
                        EntryPayload::Blank => CommandResult::Done,
                        EntryPayload::Normal(command) => apply::Applier::new(&tx, entry.log_id.index).apply(command)?,
                        EntryPayload::Membership(m) => {
                            membership = Some(Membership::new(Some(entry.log_id), m.clone()));
                            CommandResult::Done
                        }
                    });
                }
                let last = entries.last().map(|e| e.log_id);
                write_setting(&tx, "last_applied", &last)?;
                if let Some(membership) = membership {
                    write_setting(&tx, "membership", &membership)?;
                }
                tx.commit()?;
                Ok(results)
            })
        })
        .await
        .map_err(|e| sm_error(&e))?
        .map_err(|e: rusqlite::Error| sm_error(&e))
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { live: self.live.clone(), snapshot_dir: self.snapshot_dir.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError<u64>> {
        let (path, file) = snapshot::begin_receiving(&self.snapshot_dir).await?;
        self.receiving = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<u64>> {
        let received = snapshot::received_file(&self.snapshot_dir, self.receiving.take(), snapshot).await?;
        let (conn, live, dir) = (self.conn.clone(), self.live.clone(), self.snapshot_dir.clone());
        let (meta, key) = (meta.clone(), self.key.clone());
        let installed =
            tokio::task::spawn_blocking(move || snapshot::install(&conn, &live, &received, &dir, &meta, &key))
                .await
                .map_err(|e| snapshot::snapshot_error(&e))?;
        self.readers.forget_old();
        installed
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        snapshot::current(&self.live, &self.snapshot_dir).await
    }
}
