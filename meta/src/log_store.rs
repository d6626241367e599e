//! The Raft log and vote in SQLite (WAL, `synchronous=FULL`). Appends, votes
//! and the committed index are fsync'd before openraft is told they are
//! durable. A write that finds the disk full releases the node's ballast
//! and is tried again ([`crate::disk`]), rather than stopping openraft.

// openraft's storage traits return its StorageError; its size is not ours to choose.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, RaftLogReader, StorageError, StorageIOError, Vote};
use rusqlite::{params, Connection, OptionalExtension};

use crate::api::TypeConfig;
use crate::disk::{retry_when_full, Disk};

#[derive(Clone)]
pub struct LogStore {
    conn: Arc<Mutex<Connection>>,
    disk: Arc<Disk>,
}

fn read_err(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::read_logs(e).into()
}

fn write_err(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::write_logs(e).into()
}

impl LogStore {
    /// The index of the last entry known committed, as last saved.
    pub fn committed_index(&self) -> Option<u64> {
        Self::get_json::<Option<LogId<u64>>>(&self.lock(), "committed").ok().flatten().flatten().map(|id| id.index)
    }

    pub fn open(path: &Path, disk: Arc<Disk>) -> rusqlite::Result<LogStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS log (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS kv (name TEXT PRIMARY KEY, value BLOB NOT NULL);",
        )?;
        Ok(LogStore { conn: Arc::new(Mutex::new(conn)), disk })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs blocking SQLite work off the async executor.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError<u64>> + Send + 'static,
    ) -> Result<T, StorageError<u64>> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || f(&mut conn.lock().unwrap_or_else(|e| e.into_inner())))
            .await
            .map_err(|e| write_err(&e))?
    }

    /// Runs a blocking write off the async executor, once more after
    /// releasing the ballast if the disk was full.
    async fn write<T: Send + 'static>(
        &self,
        mut f: impl FnMut(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StorageError<u64>> {
        let disk = self.disk.clone();
        self.blocking(move |conn| retry_when_full(&disk, || f(conn)).map_err(|e| write_err(&e))).await
    }

    fn get_json<T: serde::de::DeserializeOwned>(conn: &Connection, name: &str) -> Result<Option<T>, StorageError<u64>> {
        let raw: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM kv WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(|e| read_err(&e))?;
        raw.map(|raw| serde_json::from_slice(&raw).map_err(|e| read_err(&e))).transpose()
    }

    fn put_json<T: serde::Serialize>(conn: &Connection, name: &str, value: &T) -> rusqlite::Result<()> {
        let raw = serde_json::to_vec(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        conn.execute("INSERT OR REPLACE INTO kv (name, value) VALUES (?1, ?2)", params![name, raw])?;
        Ok(())
    }

    fn decode(raw: &[u8]) -> Result<Entry<TypeConfig>, StorageError<u64>> {
        serde_json::from_slice(raw).map_err(|e| read_err(&e))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.saturating_add(1),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => u64::MAX,
        };
        let end = end.min(i64::MAX as u64);
        self.blocking(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT entry FROM log WHERE idx >= ?1 AND idx < ?2 ORDER BY idx")
                .map_err(|e| read_err(&e))?;
            let rows = stmt
                .query_map(params![start as i64, end as i64], |r| r.get::<_, Vec<u8>>(0))
                .map_err(|e| read_err(&e))?;
            let mut entries = Vec::new();
            for raw in rows {
                entries.push(Self::decode(&raw.map_err(|e| read_err(&e))?)?);
            }
            Ok(entries)
        })
        .await
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        self.blocking(|conn| {
            let last_purged: Option<LogId<u64>> = Self::get_json(conn, "last_purged")?;
            let last_raw: Option<Vec<u8>> = conn
                .query_row("SELECT entry FROM log ORDER BY idx DESC LIMIT 1", [], |r| r.get(0))
                .optional()
                .map_err(|e| read_err(&e))?;
            let last_log_id = match last_raw {
                Some(raw) => Some(Self::decode(&raw)?.log_id),
                None => last_purged,
            };
            Ok(LogState { last_purged_log_id: last_purged, last_log_id })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let vote = *vote;
        let disk = self.disk.clone();
        self.blocking(move |conn| {
            retry_when_full(&disk, || Self::put_json(conn, "vote", &vote))
                .map_err(|e| StorageIOError::write_vote(&e).into())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Self::get_json(&self.lock(), "vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), StorageError<u64>> {
        self.write(move |conn| Self::put_json(conn, "committed", &committed)).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(Self::get_json::<Option<LogId<u64>>>(&self.lock(), "committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| serde_json::to_vec(&e).map(|raw| (e.log_id.index, raw)))
            .collect::<Result<_, _>>()
            .map_err(|e| write_err(&e))?;
        let result = self
            .write(move |conn| {
                let tx = conn.transaction()?;
                {
                    let mut stmt = tx.prepare_cached("INSERT OR REPLACE INTO log (idx, entry) VALUES (?1, ?2)")?;
                    for (index, raw) in &entries {
                        stmt.execute(params![*index as i64, raw])?;
                    }
                }
                // With synchronous=FULL the commit returns once the WAL is fsync'd.
                tx.commit()
            })
            .await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.write(move |conn| conn.execute("DELETE FROM log WHERE idx >= ?1", [log_id.index as i64]).map(|_| ())).await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.write(move |conn| {
            let tx = conn.transaction()?;
            Self::put_json(&tx, "last_purged", &log_id)?;
            tx.execute("DELETE FROM log WHERE idx <= ?1", [log_id.index as i64])?;
            tx.commit()
        })
        .await
    }
}
