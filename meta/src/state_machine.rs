//! The metadata state machine, kept on disk in SQLite: buckets, objects with
//! their chunk lists, chunk reference counts and placement, storage nodes.
//! Each batch of Raft entries is applied in one transaction together with the
//! last-applied log id, so the state on disk always matches a log position.

// openraft's storage traits return its StorageError; its size is not ours to choose.
#![allow(clippy::result_large_err)]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use jadfs_common::{ChunkId, NodeId, ObjectManifest};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::api::*;

type Membership = StoredMembership<u64, openraft::BasicNode>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sm_meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, key BLOB NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL,
    last_modified_ms INTEGER NOT NULL, manifest BLOB NOT NULL,
    PRIMARY KEY (bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inline_objects (
    bucket TEXT NOT NULL, key BLOB NOT NULL, bytes BLOB NOT NULL,
    PRIMARY KEY (bucket, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    id BLOB PRIMARY KEY, size INTEGER NOT NULL, refcount INTEGER NOT NULL,
    orphaned_at_log INTEGER) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_orphaned ON chunks (orphaned_at_log) WHERE orphaned_at_log IS NOT NULL;
CREATE TABLE IF NOT EXISTS placements (
    chunk BLOB NOT NULL, node INTEGER NOT NULL, PRIMARY KEY (chunk, node)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (id INTEGER PRIMARY KEY, info BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key BLOB NOT NULL, info BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS bucket_tags (bucket TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS bucket_cors (bucket TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS bucket_replication (bucket TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS repairs (
    chunk BLOB PRIMARY KEY, copies INTEGER NOT NULL, queued_at_log INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repairs_by_age ON repairs (queued_at_log, chunk);
CREATE TABLE IF NOT EXISTS access_keys (access_key TEXT PRIMARY KEY, info BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS bucket_grants (
    bucket TEXT NOT NULL, access_key TEXT NOT NULL, permission TEXT NOT NULL,
    PRIMARY KEY (bucket, access_key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL, part_number INTEGER NOT NULL, manifest BLOB NOT NULL,
    PRIMARY KEY (upload_id, part_number)) WITHOUT ROWID;
";

fn open_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

fn sm_error(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::write_state_machine(e).into()
}

fn snapshot_error(e: &(impl std::error::Error + 'static)) -> StorageError<u64> {
    StorageIOError::write_snapshot(None, e).into()
}

/// Read connections to the state machine database, reused between queries.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match conn {
            Some(conn) => conn,
            None => open_db(&self.path)?,
        };
        let result = f(&conn);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        result
    }

    /// Answers a query from the applied state.
    pub fn query(&self, query: &Query) -> Result<QueryResult, MetaError> {
        self.with(|conn| answer(conn, query)).map_err(|e| MetaError::Internal(e.to_string()))
    }

    /// [`ReadPool::query`] on a blocking thread, off the async executor.
    pub async fn query_blocking(self: &Arc<Self>, query: Query) -> Result<QueryResult, MetaError> {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || readers.query(&query))
            .await
            .unwrap_or_else(|e| Err(MetaError::Internal(e.to_string())))
    }
}

/// The state machine as openraft drives it.
pub struct StateMachineStore {
    db_path: PathBuf,
    snapshot_dir: PathBuf,
    conn: Arc<Mutex<Connection>>,
    readers: Arc<ReadPool>,
    receiving: Option<PathBuf>,
}

impl StateMachineStore {
    pub fn open(dir: &Path) -> io::Result<StateMachineStore> {
        let snapshot_dir = dir.join("snapshots");
        std::fs::create_dir_all(&snapshot_dir)?;
        for entry in std::fs::read_dir(&snapshot_dir)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if name.starts_with("building-") || name.starts_with("receiving-") {
                std::fs::remove_file(&path)?;
            }
        }
        let db_path = dir.join("state.db");
        let conn = open_db(&db_path).map_err(io::Error::other)?;
        conn.execute_batch(SCHEMA).map_err(io::Error::other)?;
        Ok(StateMachineStore {
            readers: Arc::new(ReadPool { path: db_path.clone(), idle: Mutex::new(Vec::new()) }),
            db_path,
            snapshot_dir,
            conn: Arc::new(Mutex::new(conn)),
            receiving: None,
        })
    }

    pub fn readers(&self) -> Arc<ReadPool> {
        self.readers.clone()
    }

    fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
        conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(conn: &Connection, name: &str) -> rusqlite::Result<Option<T>> {
    let raw: Option<Vec<u8>> =
        conn.query_row("SELECT value FROM sm_meta WHERE name = ?1", [name], |r| r.get(0)).optional()?;
    raw.map(|raw| serde_json::from_slice(&raw).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e))))
        .transpose()
}

fn write_json<T: serde::Serialize>(conn: &Connection, name: &str, value: &T) -> rusqlite::Result<()> {
    let raw = serde_json::to_vec(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    conn.execute("INSERT OR REPLACE INTO sm_meta (name, value) VALUES (?1, ?2)", params![name, raw])?;
    Ok(())
}

fn applied_state(conn: &Connection) -> rusqlite::Result<(Option<LogId<u64>>, Membership)> {
    let last_applied = read_json(conn, "last_applied")?.flatten();
    let membership = read_json(conn, "membership")?.unwrap_or_default();
    Ok((last_applied, membership))
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
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = Self::lock(&conn);
            let tx = conn.transaction()?;
            let mut results = Vec::with_capacity(entries.len());
            let mut membership = None;
            for entry in &entries {
                results.push(match &entry.payload {
                    EntryPayload::Blank => CommandResult::Done,
                    EntryPayload::Normal(command) => apply_command(&tx, command, entry.log_id.index)?,
                    EntryPayload::Membership(m) => {
                        membership = Some(Membership::new(Some(entry.log_id), m.clone()));
                        CommandResult::Done
                    }
                });
            }
            let last = entries.last().map(|e| e.log_id);
            write_json(&tx, "last_applied", &last)?;
            if let Some(membership) = membership {
                write_json(&tx, "membership", &membership)?;
            }
            tx.commit()?;
            Ok(results)
        })
        .await
        .map_err(|e| sm_error(&e))?
        .map_err(|e: rusqlite::Error| sm_error(&e))
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder { db_path: self.db_path.clone(), snapshot_dir: self.snapshot_dir.clone() }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError<u64>> {
        let path = self.snapshot_dir.join(format!("receiving-{:016x}.db", jadfs_common::random_u64()));
        // Read as well as written: install_snapshot reads it back.
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| snapshot_error(&e))?;
        self.receiving = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError<u64>> {
        // The snapshot is the handle given, whichever file it is. The one
        // begin_receiving_snapshot made is installed as it is; any other is
        // first copied, from its start, into a file of ours.
        let receiving = self.receiving.take();
        let given = snapshot.metadata().await.map_err(|e| snapshot_error(&e))?;
        let ours = match &receiving {
            Some(path) => tokio::fs::metadata(path).await.ok().filter(|m| same_file(m, &given)).map(|_| path.clone()),
            None => None,
        };
        let received = match ours {
            Some(path) => {
                snapshot.sync_all().await.map_err(|e| snapshot_error(&e))?;
                path
            }
            None => {
                if let Some(unused) = receiving {
                    let _ = tokio::fs::remove_file(unused).await;
                }
                let copy_path = self.snapshot_dir.join(format!("receiving-{:016x}.db", jadfs_common::random_u64()));
                let mut snapshot = snapshot;
                use tokio::io::AsyncSeekExt;
                snapshot.seek(io::SeekFrom::Start(0)).await.map_err(|e| snapshot_error(&e))?;
                let mut copy = tokio::fs::File::create(&copy_path).await.map_err(|e| snapshot_error(&e))?;
                tokio::io::copy(&mut snapshot, &mut copy).await.map_err(|e| snapshot_error(&e))?;
                copy.sync_all().await.map_err(|e| snapshot_error(&e))?;
                copy_path
            }
        };
        let conn = self.conn.clone();
        let snapshot_dir = self.snapshot_dir.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || -> Result<(), StorageError<u64>> {
            {
                let source = Connection::open(&received).map_err(|e| snapshot_error(&e))?;
                let mut target = Self::lock(&conn);
                let backup = rusqlite::backup::Backup::new(&source, &mut target).map_err(|e| snapshot_error(&e))?;
                // 64 MiB per step, without pauses: nothing else writes meanwhile.
                backup.run_to_completion(16384, std::time::Duration::ZERO, None).map_err(|e| snapshot_error(&e))?;
            }
            keep_as_current(&snapshot_dir, &received, &meta).map_err(|e| snapshot_error(&e))
        })
        .await
        .map_err(|e| snapshot_error(&e))?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let meta_path = self.snapshot_dir.join("current.json");
        let raw = match tokio::fs::read(&meta_path).await {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(snapshot_error(&e)),
        };
        let meta: SnapshotMeta<u64, openraft::BasicNode> =
            serde_json::from_slice(&raw).map_err(|e| snapshot_error(&e))?;
        let file = tokio::fs::File::open(self.snapshot_dir.join("current.db")).await.map_err(|e| snapshot_error(&e))?;
        Ok(Some(Snapshot { meta, snapshot: Box::new(file) }))
    }
}

/// Makes `db` the current snapshot, described by `meta`, durably.
fn keep_as_current(dir: &Path, db: &Path, meta: &SnapshotMeta<u64, openraft::BasicNode>) -> io::Result<()> {
    std::fs::File::open(db)?.sync_all()?;
    std::fs::rename(db, dir.join("current.db"))?;
    let tmp = dir.join("current.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(meta)?)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join("current.json"))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Builds a snapshot as a compact copy of the state database (`VACUUM INTO`),
/// read in one transaction, so it matches exactly one applied log position.
pub struct SnapshotBuilder {
    db_path: PathBuf,
    snapshot_dir: PathBuf,
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
            let snapshot_id = match last_log_id {
                Some(id) => format!("{}-{}-{:08x}", id.leader_id.term, id.index, rand_suffix()),
                None => format!("empty-{:08x}", rand_suffix()),
            };
            let meta = SnapshotMeta { last_log_id, last_membership, snapshot_id };
            keep_as_current(&dir, &building, &meta).map_err(|e| snapshot_error(&e))?;
            Ok(meta)
        })
        .await
        .map_err(|e| snapshot_error(&e))??;
        let file = tokio::fs::File::open(self.snapshot_dir.join("current.db")).await.map_err(|e| snapshot_error(&e))?;
        Ok(Snapshot { meta, snapshot: Box::new(file) })
    }
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

fn rand_suffix() -> u32 {
    jadfs_common::random_u64() as u32
}

// ---- applying commands ----

fn bucket_owner(tx: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    tx.query_row("SELECT owner FROM buckets WHERE name = ?1", [name], |r| r.get(0)).optional()
}

fn load_manifest(conn: &Connection, bucket: &str, key: &str) -> rusqlite::Result<Option<ObjectManifest>> {
    let row: Option<(Vec<u8>, Option<Vec<u8>>)> = conn
        .query_row(
            "SELECT o.manifest, i.bytes FROM objects o
             LEFT JOIN inline_objects i ON i.bucket = o.bucket AND i.key = o.key
             WHERE o.bucket = ?1 AND o.key = ?2",
            params![bucket, key.as_bytes()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((raw, inline)) = row else { return Ok(None) };
    let mut manifest: ObjectManifest =
        serde_json::from_slice(&raw).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    if inline.is_some() {
        manifest.inline = inline;
    }
    Ok(Some(manifest))
}

fn apply_command(tx: &Transaction, command: &Command, log_index: u64) -> rusqlite::Result<CommandResult> {
    let fail = |e| Ok(CommandResult::Failed(e));
    match command {
        Command::Batch(commands) => {
            let mut results = Vec::with_capacity(commands.len());
            for command in commands {
                results.push(match command {
                    Command::Batch(_) => CommandResult::Failed(MetaError::Internal("a batch inside a batch".into())),
                    command => apply_command(tx, command, log_index)?,
                });
            }
            Ok(CommandResult::Batch(results))
        }
        Command::CreateBucket { name, owner, created_ms } => match bucket_owner(tx, name)? {
            Some(existing) if existing == *owner => fail(MetaError::BucketAlreadyOwnedByYou),
            Some(_) => fail(MetaError::BucketAlreadyExists),
            None => {
                tx.execute(
                    "INSERT INTO buckets (name, owner, created_ms) VALUES (?1, ?2, ?3)",
                    params![name, owner, created_ms],
                )?;
                Ok(CommandResult::Done)
            }
        },
        Command::DeleteBucket { name } => {
            if bucket_owner(tx, name)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            let has_objects: bool =
                tx.query_row("SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = ?1)", [name], |r| r.get(0))?;
            if has_objects {
                return fail(MetaError::BucketNotEmpty);
            }
            let uploads: Vec<String> = {
                let mut stmt = tx.prepare("SELECT upload_id FROM uploads WHERE bucket = ?1")?;
                let rows = stmt.query_map([name], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for upload_id in uploads {
                drop_upload(tx, &upload_id, log_index)?;
            }
            tx.execute("DELETE FROM bucket_grants WHERE bucket = ?1", [name])?;
            set_bucket_setting::<()>(tx, BucketSetting::Tags, name, None)?;
            set_bucket_setting::<()>(tx, BucketSetting::Cors, name, None)?;
            set_bucket_setting::<()>(tx, BucketSetting::Replication, name, None)?;
            tx.execute("DELETE FROM buckets WHERE name = ?1", [name])?;
            Ok(CommandResult::Done)
        }
        Command::PutObject { bucket, key, manifest, placement, condition } => {
            if bucket_owner(tx, bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            if placement.len() != manifest.chunks.len() {
                return fail(MetaError::Internal("placement does not match the chunk list".into()));
            }
            if manifest.inline.as_ref().is_some_and(|b| b.len() as u64 != manifest.size || !manifest.chunks.is_empty())
            {
                return fail(MetaError::Internal("inline bytes do not match the object".into()));
            }
            if let Some(condition) = condition {
                let current = load_manifest(tx, bucket, key)?;
                if let Err(e) = condition.check(current.as_ref().map(|m| m.etag.as_str())) {
                    return fail(e);
                }
            }
            let copies = replication_of(tx, Some(bucket))?.copies;
            store_object(tx, bucket, key, manifest, placement, copies, log_index)?;
            Ok(CommandResult::Done)
        }
        Command::DeleteObject { bucket, key } => {
            if bucket_owner(tx, bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            if let Some(old) = load_manifest(tx, bucket, key)? {
                release_chunks(tx, &old.chunks, log_index)?;
                tx.execute("DELETE FROM objects WHERE bucket = ?1 AND key = ?2", params![bucket, key.as_bytes()])?;
                tx.execute(
                    "DELETE FROM inline_objects WHERE bucket = ?1 AND key = ?2",
                    params![bucket, key.as_bytes()],
                )?;
            }
            Ok(CommandResult::Done)
        }
        Command::CopyObject { src_bucket, src_key, dst_bucket, dst_key, metadata, last_modified_ms, tags } => {
            if bucket_owner(tx, src_bucket)?.is_none() || bucket_owner(tx, dst_bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            let Some(mut manifest) = load_manifest(tx, src_bucket, src_key)? else {
                return fail(MetaError::NoSuchKey);
            };
            if let Some(metadata) = metadata {
                manifest.content_type = metadata.content_type.clone();
                manifest.headers = metadata.headers.clone();
                manifest.user_metadata = metadata.user_metadata.clone();
            }
            manifest.last_modified_ms = *last_modified_ms;
            if let Some(tags) = tags {
                manifest.tags = tags.clone();
            }
            let placement =
                manifest.chunks.iter().map(|c| chunk_nodes(tx, &c.id)).collect::<rusqlite::Result<Vec<_>>>()?;
            let copies = replication_of(tx, Some(dst_bucket))?.copies;
            store_object(tx, dst_bucket, dst_key, &manifest, &placement, copies, log_index)?;
            Ok(CommandResult::Object(Box::new(manifest)))
        }
        Command::RegisterNode { node } => {
            tx.execute(
                "INSERT OR REPLACE INTO nodes (id, info) VALUES (?1, ?2)",
                params![node.id as i64, to_json(node)?],
            )?;
            Ok(CommandResult::Done)
        }
        Command::CreateUpload { bucket, key, upload } => {
            if bucket_owner(tx, bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            tx.execute(
                "INSERT INTO uploads (upload_id, bucket, key, info) VALUES (?1, ?2, ?3, ?4)",
                params![upload.upload_id, bucket, key.as_bytes(), to_json(upload)?],
            )?;
            Ok(CommandResult::Done)
        }
        Command::PutPart { bucket, key, upload_id, part_number, part, placement } => {
            if load_upload(tx, bucket, key, upload_id)?.is_none() {
                return fail(MetaError::NoSuchUpload);
            }
            if placement.len() != part.chunks.len() {
                return fail(MetaError::Internal("placement does not match the chunk list".into()));
            }
            let copies = replication_of(tx, Some(bucket))?.copies;
            take_chunks(tx, &part.chunks, placement, copies, log_index)?;
            if let Some(old) = load_part(tx, upload_id, *part_number)? {
                release_chunks(tx, &old.chunks, log_index)?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO parts (upload_id, part_number, manifest) VALUES (?1, ?2, ?3)",
                params![upload_id, part_number, to_json(part)?],
            )?;
            Ok(CommandResult::Done)
        }
        Command::CompleteUpload {
            bucket,
            key,
            upload_id,
            parts,
            min_part_size,
            last_modified_ms,
            condition,
            expected_checksum,
            part_checksums,
        } => {
            let Some(upload) = load_upload(tx, bucket, key, upload_id)? else {
                // Completing again an upload that already completed answers
                // as the first time did, while its object is still there.
                return match load_manifest(tx, bucket, key)? {
                    Some(current) if current.upload_id.as_deref() == Some(upload_id.as_str()) => {
                        Ok(CommandResult::Object(Box::new(current)))
                    }
                    _ => fail(MetaError::NoSuchUpload),
                };
            };
            if parts.windows(2).any(|w| w[0].0 >= w[1].0) {
                return fail(MetaError::InvalidPartOrder);
            }
            let mut chosen = Vec::with_capacity(parts.len());
            for (i, (number, etag)) in parts.iter().enumerate() {
                let part = match load_part(tx, upload_id, *number)? {
                    Some(part) if part.etag.trim_matches('"') == etag.trim_matches('"') => part,
                    _ => {
                        return fail(MetaError::InvalidPart(format!("part {number} with ETag {etag} was not uploaded")))
                    }
                };
                if i + 1 < parts.len() && part.size < *min_part_size {
                    return fail(MetaError::EntityTooSmall(*number));
                }
                if let Some(Some(listed)) = part_checksums.get(i) {
                    if part.checksum.as_ref().map(|(_, value)| value) != Some(listed) {
                        return fail(MetaError::BadDigest(format!(
                            "the checksum listed for part {number} is not the part's"
                        )));
                    }
                }
                chosen.push(part);
            }
            if let Some(condition) = condition {
                let current = load_manifest(tx, bucket, key)?;
                if let Err(e) = condition.check(current.as_ref().map(|m| m.etag.as_str())) {
                    return fail(e);
                }
            }
            let manifest = assemble(&upload, &chosen, *last_modified_ms);
            if let Some(expected) = expected_checksum {
                let actual = manifest.checksum.as_ref().map(|(_, value)| value.as_str()).unwrap_or("");
                if expected != actual && Some(expected.as_str()) != actual.rsplit_once('-').map(|(c, _)| c) {
                    return fail(MetaError::BadDigest("the object checksum does not match".into()));
                }
            }
            // The chosen parts' chunk references pass to the object; the
            // parts left out release theirs.
            let mut leftover = load_parts(tx, upload_id)?;
            leftover.retain(|(number, _)| !parts.iter().any(|(n, _)| n == number));
            for (_, part) in &leftover {
                release_chunks(tx, &part.chunks, log_index)?;
            }
            if let Some(old) = load_manifest(tx, bucket, key)? {
                release_chunks(tx, &old.chunks, log_index)?;
            }
            write_object(tx, bucket, key, &manifest)?;
            tx.execute("DELETE FROM parts WHERE upload_id = ?1", [upload_id])?;
            tx.execute("DELETE FROM uploads WHERE upload_id = ?1", [upload_id])?;
            Ok(CommandResult::Object(Box::new(manifest)))
        }
        Command::SetObjectTags { bucket, key, tags } => {
            if bucket_owner(tx, bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            let Some(mut manifest) = load_manifest(tx, bucket, key)? else {
                return fail(MetaError::NoSuchKey);
            };
            manifest.tags = tags.clone();
            write_object(tx, bucket, key, &manifest)?;
            Ok(CommandResult::Done)
        }
        Command::SetBucketCors { bucket, rules } => {
            if bucket_owner(tx, bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            set_bucket_setting(tx, BucketSetting::Cors, bucket, rules.as_ref())?;
            Ok(CommandResult::Done)
        }
        Command::SetBucketTags { bucket, tags } => {
            if bucket_owner(tx, bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            set_bucket_setting(tx, BucketSetting::Tags, bucket, tags.as_ref())?;
            Ok(CommandResult::Done)
        }
        Command::PutAccessKey { key } => {
            tx.execute(
                "INSERT OR REPLACE INTO access_keys (access_key, info) VALUES (?1, ?2)",
                params![key.access_key, to_json(key)?],
            )?;
            Ok(CommandResult::Done)
        }
        Command::DeleteAccessKey { access_key } => {
            tx.execute("DELETE FROM access_keys WHERE access_key = ?1", [access_key])?;
            tx.execute("DELETE FROM bucket_grants WHERE access_key = ?1", [access_key])?;
            Ok(CommandResult::Done)
        }
        Command::SetBucketGrant { bucket, access_key, permission } => {
            if bucket_owner(tx, bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            match permission {
                Some(permission) => tx.execute(
                    "INSERT OR REPLACE INTO bucket_grants (bucket, access_key, permission) VALUES (?1, ?2, ?3)",
                    params![bucket, access_key, to_json(permission)?],
                )?,
                None => tx.execute(
                    "DELETE FROM bucket_grants WHERE bucket = ?1 AND access_key = ?2",
                    params![bucket, access_key],
                )?,
            };
            Ok(CommandResult::Done)
        }
        Command::AbortUpload { bucket, key, upload_id } => {
            if load_upload(tx, bucket, key, upload_id)?.is_none() {
                return fail(MetaError::NoSuchUpload);
            }
            drop_upload(tx, upload_id, log_index)?;
            Ok(CommandResult::Done)
        }
        Command::SetReplication { bucket: None, replication } => {
            write_json(tx, "replication", &replication.unwrap_or_default())?;
            Ok(CommandResult::Done)
        }
        Command::SetReplication { bucket: Some(bucket), replication } => {
            if bucket_owner(tx, bucket)?.is_none() {
                return fail(MetaError::NoSuchBucket);
            }
            set_bucket_setting(tx, BucketSetting::Replication, bucket, replication.as_ref())?;
            Ok(CommandResult::Done)
        }
        Command::RepairDone { chunk, added, done } => {
            for node in added {
                tx.execute(
                    "INSERT OR IGNORE INTO placements (chunk, node) VALUES (?1, ?2)",
                    params![chunk.as_bytes(), *node as i64],
                )?;
            }
            if *done {
                tx.execute("DELETE FROM repairs WHERE chunk = ?1", [chunk.as_bytes()])?;
            }
            Ok(CommandResult::Done)
        }
        Command::QueueNodeChunks { node } => {
            let copies = replication_of(tx, None)?.copies;
            tx.execute(
                "INSERT OR IGNORE INTO repairs (chunk, copies, queued_at_log)
                 SELECT p.chunk, ?2, ?3 FROM placements p JOIN chunks c ON c.id = p.chunk
                 WHERE p.node = ?1 AND c.refcount > 0",
                params![*node as i64, copies, log_index as i64],
            )?;
            Ok(CommandResult::Done)
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn from_json<T: serde::de::DeserializeOwned>(raw: &[u8]) -> rusqlite::Result<T> {
    serde_json::from_slice(raw).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn load_upload(conn: &Connection, bucket: &str, key: &str, upload_id: &str) -> rusqlite::Result<Option<UploadInfo>> {
    let raw: Option<Vec<u8>> = conn
        .query_row(
            "SELECT info FROM uploads WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3",
            params![upload_id, bucket, key.as_bytes()],
            |r| r.get(0),
        )
        .optional()?;
    raw.map(|raw| from_json(&raw)).transpose()
}

fn load_part(conn: &Connection, upload_id: &str, number: u32) -> rusqlite::Result<Option<PartManifest>> {
    let raw: Option<Vec<u8>> = conn
        .query_row(
            "SELECT manifest FROM parts WHERE upload_id = ?1 AND part_number = ?2",
            params![upload_id, number],
            |r| r.get(0),
        )
        .optional()?;
    raw.map(|raw| from_json(&raw)).transpose()
}

fn load_parts(conn: &Connection, upload_id: &str) -> rusqlite::Result<Vec<(u32, PartManifest)>> {
    let mut stmt =
        conn.prepare_cached("SELECT part_number, manifest FROM parts WHERE upload_id = ?1 ORDER BY part_number")?;
    let rows = stmt.query_map([upload_id], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut parts = Vec::new();
    for row in rows {
        let (number, raw) = row?;
        parts.push((number, from_json(&raw)?));
    }
    Ok(parts)
}

/// Removes an upload and its parts, releasing their chunks.
fn drop_upload(tx: &Transaction, upload_id: &str, log_index: u64) -> rusqlite::Result<()> {
    for (_, part) in load_parts(tx, upload_id)? {
        release_chunks(tx, &part.chunks, log_index)?;
    }
    tx.execute("DELETE FROM parts WHERE upload_id = ?1", [upload_id])?;
    tx.execute("DELETE FROM uploads WHERE upload_id = ?1", [upload_id])?;
    Ok(())
}

/// The object made of `parts`, in order: chunk offsets run on across parts
/// and the ETag is the MD5 of the parts' binary MD5s, then `-N`.
fn assemble(upload: &UploadInfo, parts: &[PartManifest], last_modified_ms: i64) -> ObjectManifest {
    use md5::{Digest, Md5};
    let mut md5_of_md5s = Md5::new();
    let mut chunks = Vec::new();
    let mut offset = 0;
    for part in parts {
        md5_of_md5s.update(hex::decode(part.etag.trim_matches('"')).unwrap_or_default());
        for chunk in &part.chunks {
            chunks.push(jadfs_common::ChunkRef { id: chunk.id, offset: offset + chunk.offset, size: chunk.size });
        }
        offset += part.size;
    }
    ObjectManifest {
        size: offset,
        etag: format!("\"{}-{}\"", hex::encode(md5_of_md5s.finalize()), parts.len()),
        last_modified_ms,
        content_type: upload.metadata.content_type.clone(),
        headers: upload.metadata.headers.clone(),
        user_metadata: upload.metadata.user_metadata.clone(),
        checksum: upload.checksum_algorithm.as_ref().and_then(|name| {
            let algorithm = jadfs_common::checksum::Algorithm::from_name(name)?;
            let part_checksums: Vec<Option<String>> =
                parts.iter().map(|p| p.checksum.as_ref().filter(|(a, _)| a == name).map(|(_, v)| v.clone())).collect();
            let checksum = if upload.full_object_checksum {
                let sized: Vec<(Option<String>, u64)> =
                    part_checksums.into_iter().zip(parts.iter().map(|p| p.size)).collect();
                jadfs_common::checksum::full_object(algorithm, &sized)?
            } else {
                jadfs_common::checksum::composite(algorithm, &part_checksums)?
            };
            Some((name.clone(), checksum))
        }),
        chunks,
        tags: upload.metadata.tags.clone(),
        upload_id: Some(upload.upload_id.clone()),
        parts: parts.iter().map(|p| jadfs_common::ObjectPart { size: p.size, checksum: p.checksum.clone() }).collect(),
        inline: None,
    }
}

/// Writes an object, taking references on its chunks before releasing the
/// ones of the object it replaces, so a chunk both share never drops to zero.
fn store_object(
    tx: &Transaction,
    bucket: &str,
    key: &str,
    manifest: &ObjectManifest,
    placement: &[Vec<NodeId>],
    copies: u8,
    log_index: u64,
) -> rusqlite::Result<()> {
    take_chunks(tx, &manifest.chunks, placement, copies, log_index)?;
    if let Some(old) = load_manifest(tx, bucket, key)? {
        release_chunks(tx, &old.chunks, log_index)?;
    }
    write_object(tx, bucket, key, manifest)
}

/// Takes one reference per chunk occurrence and records where it is
/// stored; a chunk with fewer than `copies` copies joins the repair queue
/// in the same transaction, so no acknowledged write is forgotten.
fn take_chunks(
    tx: &Transaction,
    chunks: &[jadfs_common::ChunkRef],
    placement: &[Vec<NodeId>],
    copies: u8,
    log_index: u64,
) -> rusqlite::Result<()> {
    for (chunk, nodes) in chunks.iter().zip(placement) {
        tx.execute(
            "INSERT INTO chunks (id, size, refcount, orphaned_at_log) VALUES (?1, ?2, 1, NULL)
             ON CONFLICT(id) DO UPDATE SET refcount = refcount + 1, orphaned_at_log = NULL",
            params![chunk.id.as_bytes(), chunk.size as i64],
        )?;
        for node in nodes {
            tx.execute(
                "INSERT OR IGNORE INTO placements (chunk, node) VALUES (?1, ?2)",
                params![chunk.id.as_bytes(), *node as i64],
            )?;
        }
        if chunk_nodes(tx, &chunk.id)?.len() < copies as usize {
            tx.execute(
                "INSERT OR IGNORE INTO repairs (chunk, copies, queued_at_log) VALUES (?1, ?2, ?3)",
                params![chunk.id.as_bytes(), copies, log_index as i64],
            )?;
        }
    }
    Ok(())
}

/// Writes an object's row. An inline object's bytes go to a table of their
/// own, so the rows a listing walks stay small.
fn write_object(tx: &Transaction, bucket: &str, key: &str, manifest: &ObjectManifest) -> rusqlite::Result<()> {
    let mut row = manifest.clone();
    let inline = row.inline.take();
    tx.execute(
        "INSERT OR REPLACE INTO objects (bucket, key, size, etag, last_modified_ms, manifest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![bucket, key.as_bytes(), row.size as i64, row.etag, row.last_modified_ms, to_json(&row)?],
    )?;
    match inline {
        Some(bytes) => tx.execute(
            "INSERT OR REPLACE INTO inline_objects (bucket, key, bytes) VALUES (?1, ?2, ?3)",
            params![bucket, key.as_bytes(), bytes],
        )?,
        None => {
            tx.execute("DELETE FROM inline_objects WHERE bucket = ?1 AND key = ?2", params![bucket, key.as_bytes()])?
        }
    };
    Ok(())
}

/// Drops one reference per chunk occurrence; a chunk no object uses any more
/// is marked orphaned (collection is the garbage collector's job).
fn release_chunks(tx: &Transaction, chunks: &[jadfs_common::ChunkRef], log_index: u64) -> rusqlite::Result<()> {
    for chunk in chunks {
        tx.execute(
            "UPDATE chunks SET refcount = refcount - 1,
                 orphaned_at_log = CASE WHEN refcount - 1 <= 0 THEN ?2 ELSE NULL END
             WHERE id = ?1",
            params![chunk.id.as_bytes(), log_index as i64],
        )?;
        // A chunk nothing uses needs no more copies.
        tx.execute(
            "DELETE FROM repairs WHERE chunk = ?1 AND EXISTS (SELECT 1 FROM chunks WHERE id = ?1 AND refcount <= 0)",
            [chunk.id.as_bytes()],
        )?;
    }
    Ok(())
}

fn chunk_nodes(conn: &Connection, id: &ChunkId) -> rusqlite::Result<Vec<NodeId>> {
    let mut stmt = conn.prepare_cached("SELECT node FROM placements WHERE chunk = ?1 ORDER BY node")?;
    let nodes = stmt.query_map([id.as_bytes()], |r| r.get::<_, i64>(0))?;
    nodes.map(|n| n.map(|n| n as NodeId)).collect()
}

// ---- answering queries ----

fn answer(conn: &Connection, query: &Query) -> rusqlite::Result<QueryResult> {
    Ok(match query {
        Query::ListBuckets => {
            let names: Vec<String> = {
                let mut stmt = conn.prepare_cached("SELECT name FROM buckets ORDER BY name")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut buckets = Vec::with_capacity(names.len());
            for name in names {
                buckets.extend(load_bucket(conn, &name)?);
            }
            QueryResult::Buckets(buckets)
        }
        Query::GetBucket { name } => QueryResult::Bucket(load_bucket(conn, name)?),
        Query::GetAccessKey { access_key } => {
            let raw: Option<Vec<u8>> = conn
                .query_row("SELECT info FROM access_keys WHERE access_key = ?1", [access_key], |r| r.get(0))
                .optional()?;
            QueryResult::AccessKey(raw.map(|raw| from_json(&raw)).transpose()?)
        }
        Query::ListAccessKeys => {
            let mut stmt = conn.prepare_cached("SELECT info FROM access_keys ORDER BY access_key")?;
            let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            let mut keys = Vec::new();
            for raw in rows {
                keys.push(from_json(&raw?)?);
            }
            QueryResult::AccessKeys(keys)
        }
        Query::GetObject { bucket, key } => match load_manifest(conn, bucket, key)? {
            None => QueryResult::Object(None),
            Some(manifest) => {
                let locations =
                    manifest.chunks.iter().map(|c| chunk_nodes(conn, &c.id)).collect::<rusqlite::Result<_>>()?;
                QueryResult::Object(Some(LocatedObject { manifest, locations }))
            }
        },
        Query::ListObjects(q) => QueryResult::Page(list_objects(conn, q)?),
        Query::ListNodes => {
            let mut stmt = conn.prepare_cached("SELECT info FROM nodes ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
            let mut nodes = Vec::new();
            for raw in rows {
                nodes.push(
                    serde_json::from_slice(&raw?).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
                );
            }
            QueryResult::Nodes(nodes)
        }
        Query::GetReplication { bucket } => QueryResult::Replication(replication_of(conn, bucket.as_deref())?),
        Query::RepairQueue { after, limit } => {
            let mut stmt = conn.prepare_cached(
                "SELECT chunk, copies, queued_at_log FROM repairs WHERE (queued_at_log, chunk) > (?1, ?2)
                 ORDER BY queued_at_log, chunk LIMIT ?3",
            )?;
            let (after_log, after_chunk) = match after {
                Some((log, chunk)) => (*log as i64, chunk.as_bytes().to_vec()),
                None => (-1, Vec::new()),
            };
            let rows = stmt.query_map(params![after_log, after_chunk, *limit as i64], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            })?;
            let mut repairs = Vec::new();
            for row in rows {
                let (raw, copies, queued_at_log) = row?;
                let Ok(bytes) = <[u8; 32]>::try_from(raw.as_slice()) else { continue };
                let chunk = ChunkId::from_bytes(bytes);
                let holders = chunk_nodes(conn, &chunk)?;
                repairs.push(Repair { chunk, copies: copies as u8, holders, queued_at_log: queued_at_log as u64 });
            }
            QueryResult::Repairs(repairs)
        }
        Query::GetUpload { bucket, key, upload_id } => QueryResult::Upload(load_upload(conn, bucket, key, upload_id)?),
        Query::ListParts { bucket, key, upload_id, after_part, max_parts } => {
            if load_upload(conn, bucket, key, upload_id)?.is_none() {
                return Ok(QueryResult::Upload(None));
            }
            let mut parts: Vec<PartEntry> = load_parts(conn, upload_id)?
                .into_iter()
                .filter(|(n, _)| n > after_part)
                .map(|(part_number, p)| PartEntry {
                    part_number,
                    size: p.size,
                    etag: p.etag,
                    last_modified_ms: p.last_modified_ms,
                    checksum: p.checksum,
                })
                .collect();
            let truncated = parts.len() > *max_parts;
            parts.truncate(*max_parts);
            QueryResult::Parts(parts, truncated)
        }
        Query::ListUploads { bucket, prefix, after_key, max_uploads } => {
            let mut stmt = conn.prepare_cached(
                "SELECT info FROM uploads WHERE bucket = ?1 AND key >= ?2 AND (?3 IS NULL OR key > ?3)
                 ORDER BY key, upload_id LIMIT ?4",
            )?;
            let after = after_key.as_ref().map(|k| k.as_bytes().to_vec());
            let rows = stmt.query_map(params![bucket, prefix.as_bytes(), after, (*max_uploads + 1) as i64], |r| {
                r.get::<_, Vec<u8>>(0)
            })?;
            let mut uploads: Vec<UploadInfo> = Vec::new();
            for raw in rows {
                let upload: UploadInfo = from_json(&raw?)?;
                if upload.key.starts_with(prefix.as_str()) {
                    uploads.push(upload);
                }
            }
            let truncated = uploads.len() > *max_uploads;
            uploads.truncate(*max_uploads);
            QueryResult::Uploads(uploads, truncated)
        }
        Query::Stats => {
            let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n as u64);
            QueryResult::Stats(MetaStats {
                buckets: count("SELECT COUNT(*) FROM buckets")?,
                objects: count("SELECT COUNT(*) FROM objects")?,
                chunks: count("SELECT COUNT(*) FROM chunks WHERE refcount > 0")?,
                chunk_bytes: count("SELECT COALESCE(SUM(size), 0) FROM chunks WHERE refcount > 0")?,
                orphaned_chunks: count("SELECT COUNT(*) FROM chunks WHERE refcount <= 0")?,
                repair_queue: count("SELECT COUNT(*) FROM repairs")?,
                last_applied_index: applied_state(conn)?.0.map(|id| id.index),
            })
        }
    })
}

/// Optional per-bucket settings, each a JSON value in a table of its own.
#[derive(Clone, Copy)]
enum BucketSetting {
    Tags,
    Cors,
    Replication,
}

impl BucketSetting {
    fn table(self) -> &'static str {
        match self {
            BucketSetting::Tags => "bucket_tags",
            BucketSetting::Cors => "bucket_cors",
            BucketSetting::Replication => "bucket_replication",
        }
    }
}

/// Sets a bucket's setting, or with None removes it.
fn set_bucket_setting<T: serde::Serialize>(
    tx: &Transaction,
    setting: BucketSetting,
    bucket: &str,
    value: Option<&T>,
) -> rusqlite::Result<()> {
    let table = setting.table();
    match value {
        Some(value) => tx.execute(
            &format!("INSERT OR REPLACE INTO {table} (bucket, value) VALUES (?1, ?2)"),
            params![bucket, to_json(value)?],
        )?,
        None => tx.execute(&format!("DELETE FROM {table} WHERE bucket = ?1"), [bucket])?,
    };
    Ok(())
}

fn load_bucket_setting<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    setting: BucketSetting,
    bucket: &str,
) -> rusqlite::Result<Option<T>> {
    let sql = format!("SELECT value FROM {} WHERE bucket = ?1", setting.table());
    let raw: Option<Vec<u8>> = conn.query_row(&sql, [bucket], |r| r.get(0)).optional()?;
    raw.map(|raw| from_json(&raw)).transpose()
}

fn load_bucket(conn: &Connection, name: &str) -> rusqlite::Result<Option<BucketInfo>> {
    let Some((owner, created_ms)) = conn
        .query_row("SELECT owner, created_ms FROM buckets WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt =
        conn.prepare_cached("SELECT access_key, permission FROM bucket_grants WHERE bucket = ?1 ORDER BY access_key")?;
    let rows = stmt.query_map([name], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut grants = Vec::new();
    for row in rows {
        let (key, permission) = row?;
        grants.push((key, from_json(&permission)?));
    }
    let tags = load_bucket_setting(conn, BucketSetting::Tags, name)?;
    let cors = load_bucket_setting(conn, BucketSetting::Cors, name)?;
    let replication = replication_of(conn, Some(name))?;
    Ok(Some(BucketInfo { name: name.to_string(), owner, created_ms, grants, tags, cors, replication }))
}

/// The replication in force for a bucket (its own, else the cluster's), or the cluster's.
fn replication_of(conn: &Connection, bucket: Option<&str>) -> rusqlite::Result<Replication> {
    if let Some(bucket) = bucket {
        if let Some(own) = load_bucket_setting(conn, BucketSetting::Replication, bucket)? {
            return Ok(own);
        }
    }
    Ok(read_json(conn, "replication")?.unwrap_or_default())
}

/// The smallest byte string greater than every string starting with `prefix`
/// (None: no such bound).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

struct ObjectRow {
    key: Vec<u8>,
    size: i64,
    etag: String,
    last_modified_ms: i64,
}

/// Keys of `bucket` from `from` (inclusive or not) up to `to` (exclusive), in order.
fn scan(
    conn: &Connection,
    bucket: &str,
    from: &[u8],
    inclusive: bool,
    to: Option<&[u8]>,
    limit: usize,
) -> rusqlite::Result<Vec<ObjectRow>> {
    let sql = if inclusive {
        "SELECT key, size, etag, last_modified_ms FROM objects
         WHERE bucket = ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4"
    } else {
        "SELECT key, size, etag, last_modified_ms FROM objects
         WHERE bucket = ?1 AND key > ?2 AND (?3 IS NULL OR key < ?3) ORDER BY key LIMIT ?4"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![bucket, from, to, limit as i64], |r| {
        Ok(ObjectRow { key: r.get(0)?, size: r.get(1)?, etag: r.get(2)?, last_modified_ms: r.get(3)? })
    })?;
    rows.collect()
}

/// One page of keys under a prefix, folding keys that contain the delimiter
/// after the prefix into common prefixes. Each common prefix costs one
/// indexed seek, so a page costs O(page), whatever the bucket holds.
fn list_objects(conn: &Connection, q: &ListObjectsQuery) -> rusqlite::Result<ListPage> {
    let prefix = q.prefix.as_bytes();
    let upper = prefix_end(prefix);
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty()).map(str::as_bytes);

    // Start at the prefix, or after start-after when that is later.
    let start_after = q.start_after.as_deref().map(str::as_bytes);
    let (mut from, mut inclusive) = match start_after {
        Some(after) if after >= prefix => (after.to_vec(), false),
        _ => (prefix.to_vec(), true),
    };

    let mut page = ListPage::default();
    if q.max_keys == 0 {
        return Ok(page);
    }
    let mut returned = 0;
    'scan: loop {
        let batch = scan(conn, &q.bucket, &from, inclusive, upper.as_deref(), q.max_keys - returned + 1)?;
        let exhausted = batch.len() < q.max_keys - returned + 1;
        for row in batch {
            if returned == q.max_keys {
                page.truncated = true;
                break 'scan;
            }
            let folded = delimiter.and_then(|d| {
                let rest = &row.key[prefix.len()..];
                find(rest, d).map(|at| row.key[..prefix.len() + at + d.len()].to_vec())
            });
            returned += 1;
            match folded {
                Some(common) => {
                    let Some(end) = prefix_end(&common) else { break 'scan };
                    from = end;
                    inclusive = true;
                    // A common prefix at or before start-after was returned
                    // by an earlier page: skip its keys without counting it.
                    if start_after.is_some_and(|after| common.as_slice() <= after) {
                        returned -= 1;
                        continue 'scan;
                    }
                    let common = String::from_utf8_lossy(&common).into_owned();
                    page.last = Some(common.clone());
                    page.common_prefixes.push(common);
                    continue 'scan;
                }
                None => {
                    let key = String::from_utf8_lossy(&row.key).into_owned();
                    page.last = Some(key.clone());
                    page.objects.push(ObjectEntry {
                        key,
                        size: row.size as u64,
                        etag: row.etag,
                        last_modified_ms: row.last_modified_ms,
                    });
                    from = row.key;
                    inclusive = false;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    Ok(page)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(conn: &Connection, key: &str) {
        conn.execute(
            "INSERT INTO objects (bucket, key, size, etag, last_modified_ms, manifest) VALUES ('b', ?1, 1, 'e', 0, x'')",
            [key.as_bytes()],
        )
        .unwrap();
    }

    fn list(conn: &Connection, prefix: &str, delimiter: Option<&str>, max_keys: usize) -> Vec<String> {
        // Pages through everything and returns keys and prefixes in order.
        let mut out = Vec::new();
        let mut resume: Option<String> = None;
        loop {
            let mut q = ListObjectsQuery {
                bucket: "b".into(),
                prefix: prefix.into(),
                delimiter: delimiter.map(Into::into),
                max_keys,
                ..Default::default()
            };
            q.start_after = resume.clone();
            let page = list_objects(conn, &q).unwrap();
            let mut entries: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
            entries.extend(page.common_prefixes.iter().map(|p| format!("{p}*")));
            entries.sort_by(|a, b| a.trim_end_matches('*').cmp(b.trim_end_matches('*')));
            out.extend(entries);
            if !page.truncated {
                return out;
            }
            resume = page.last;
        }
    }

    #[test]
    fn a_batch_applies_in_order_and_each_command_fails_alone() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let absent = || Some(WriteCondition { if_none_match: Some("*".into()), ..Default::default() });
        let put = |bucket: &str, key: &str, condition: Option<WriteCondition>| {
            let manifest: ObjectManifest = serde_json::from_value(serde_json::json!({
                "size": 2, "etag": format!("\"{key}\""), "last_modified_ms": 0, "content_type": null,
                "chunks": [], "inline": "aGk="
            }))
            .unwrap();
            Command::PutObject { bucket: bucket.into(), key: key.into(), manifest, placement: vec![], condition }
        };
        let batch = Command::Batch(vec![
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0 },
            put("b", "k", absent()),
            put("missing", "k", None),
            put("b", "k", absent()),
            Command::Batch(vec![]),
        ]);
        let tx = conn.transaction().unwrap();
        let CommandResult::Batch(results) = apply_command(&tx, &batch, 1).unwrap() else { panic!("not a batch") };
        tx.commit().unwrap();
        assert_eq!(results[0], CommandResult::Done);
        assert_eq!(results[1], CommandResult::Done);
        assert_eq!(results[2], CommandResult::Failed(MetaError::NoSuchBucket));
        assert_eq!(results[3], CommandResult::Failed(MetaError::PreconditionFailed), "the first put already applied");
        assert!(matches!(results[4], CommandResult::Failed(MetaError::Internal(_))));
        let stored = load_manifest(&conn, "b", "k").unwrap().unwrap();
        assert_eq!(stored.inline.as_deref(), Some(&b"hi"[..]));
        let row: Vec<u8> = conn.query_row("SELECT manifest FROM objects", [], |r| r.get(0)).unwrap();
        assert!(!String::from_utf8(row).unwrap().contains("inline"), "the bytes live beside the row");

        let tx = conn.transaction().unwrap();
        apply_command(&tx, &Command::DeleteObject { bucket: "b".into(), key: "k".into() }, 2).unwrap();
        tx.commit().unwrap();
        let left: i64 = conn.query_row("SELECT COUNT(*) FROM inline_objects", [], |r| r.get(0)).unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn the_repair_queue_pages_oldest_first_from_a_cursor() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let ids: Vec<ChunkId> = (1u8..=5).map(|n| ChunkId::from_bytes([n; 32])).collect();
        // Queued at log indexes 7, 7, 3, 9, 3 (two pairs share an index).
        for (id, log) in ids.iter().zip([7, 7, 3, 9, 3]) {
            conn.execute(
                "INSERT INTO repairs (chunk, copies, queued_at_log) VALUES (?1, 3, ?2)",
                params![id.as_bytes(), log],
            )
            .unwrap();
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let QueryResult::Repairs(page) = answer(&conn, &Query::RepairQueue { after, limit: 2 }).unwrap() else {
                panic!("not repairs")
            };
            let Some(last) = page.last() else { break };
            after = Some((last.queued_at_log, last.chunk));
            seen.extend(page.iter().map(|r| (r.queued_at_log, r.chunk.as_bytes()[0])));
        }
        assert_eq!(seen, [(3, 3), (3, 5), (7, 1), (7, 2), (9, 4)]);
    }

    #[test]
    fn listing_pages_with_prefix_and_delimiter() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        for key in
            ["a", "b/1", "b/2", "b/3/x", "c", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "z\u{ff}"]
        {
            object(&conn, key);
        }
        let everything =
            ["a", "b/1", "b/2", "b/3/x", "c", "photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg", "z\u{ff}"];
        for max_keys in [1, 2, 3, 1000] {
            assert_eq!(list(&conn, "", None, max_keys), everything, "max_keys {max_keys}");
            assert_eq!(list(&conn, "", Some("/"), max_keys), ["a", "b/*", "c", "photos/*", "z\u{ff}"]);
            assert_eq!(list(&conn, "b/", Some("/"), max_keys), ["b/1", "b/2", "b/3/*"]);
            assert_eq!(list(&conn, "photos/", Some("/"), max_keys), ["photos/2024/*", "photos/2025/*"]);
            assert_eq!(list(&conn, "photos/2024/", Some("/"), max_keys), ["photos/2024/a.jpg", "photos/2024/b.jpg"]);
            assert_eq!(list(&conn, "nothing", Some("/"), max_keys), Vec::<String>::new());
        }
    }

    /// What a listing must return, computed by brute force over sorted keys.
    fn model(keys: &[String], prefix: &str, delimiter: Option<&str>, start_after: Option<&str>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(prefix)) {
            let entry = match delimiter.and_then(|d| key[prefix.len()..].find(d).map(|at| (d, at))) {
                Some((d, at)) => key[..prefix.len() + at + d.len()].to_string() + "*",
                None => key.clone(),
            };
            let name = entry.trim_end_matches('*');
            if start_after.is_some_and(|after| name <= after) || out.last() == Some(&entry) {
                continue;
            }
            out.push(entry);
        }
        out
    }

    #[test]
    fn listing_100k_keys_pages_correctly_for_every_combination() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let mut keys: Vec<String> = (0..100_000).map(|i| format!("dir{}/sub{}/file{i}", i % 100, i % 7)).collect();
        keys.extend(["top-level".to_string(), "dir1".to_string(), "dir1/".to_string()]);
        conn.execute_batch("BEGIN").unwrap();
        for key in &keys {
            object(&conn, key);
        }
        conn.execute_batch("COMMIT").unwrap();
        keys.sort();
        for (prefix, max_keys) in
            [("", 1000), ("dir1", 999), ("dir1/", 250), ("dir42/sub3/", 7), ("dir42/sub3/", 1), ("zzz", 5), ("top", 1)]
        {
            for delimiter in [None, Some("/"), Some("sub")] {
                for start_after in [None, Some("dir5"), Some("dir50/sub2/file1550")] {
                    let expected = model(&keys, prefix, delimiter, start_after);
                    let mut got = Vec::new();
                    let mut resume = start_after.map(str::to_string);
                    loop {
                        let q = ListObjectsQuery {
                            bucket: "b".into(),
                            prefix: prefix.into(),
                            delimiter: delimiter.map(Into::into),
                            start_after: resume.clone(),
                            max_keys,
                        };
                        let page = list_objects(&conn, &q).unwrap();
                        assert!(page.objects.len() + page.common_prefixes.len() <= max_keys);
                        let mut entries: Vec<String> = page.objects.iter().map(|o| o.key.clone()).collect();
                        entries.extend(page.common_prefixes.iter().map(|p| format!("{p}*")));
                        entries.sort_by(|a, b| a.trim_end_matches('*').cmp(b.trim_end_matches('*')));
                        got.extend(entries);
                        if !page.truncated {
                            break;
                        }
                        resume = page.last;
                    }
                    assert_eq!(got, expected, "prefix {prefix:?} delimiter {delimiter:?} start-after {start_after:?}");
                }
            }
        }
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
