//! Reading and writing the state's rows: JSON columns, objects and their
//! inline bytes, uploads and parts, buckets and their settings. Shared by
//! the applier (which writes) and the queries (which only read).

use jadfs_common::{ChunkId, NodeId, ObjectManifest};
use openraft::{LogId, StoredMembership};
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::api::{AccessKey, BucketInfo, PartManifest, Replication, UploadInfo};

pub type Membership = StoredMembership<u64, openraft::BasicNode>;

pub fn to_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

pub fn from_json<T: serde::de::DeserializeOwned>(raw: &[u8]) -> rusqlite::Result<T> {
    serde_json::from_slice(raw).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// A value of the state's own (`sm_meta`): applied log id, membership, defaults.
pub fn read_setting<T: serde::de::DeserializeOwned>(conn: &Connection, name: &str) -> rusqlite::Result<Option<T>> {
    let raw: Option<Vec<u8>> =
        conn.query_row("SELECT value FROM sm_meta WHERE name = ?1", [name], |r| r.get(0)).optional()?;
    raw.map(|raw| from_json(&raw)).transpose()
}

pub fn write_setting<T: serde::Serialize>(conn: &Connection, name: &str, value: &T) -> rusqlite::Result<()> {
    conn.execute("INSERT OR REPLACE INTO sm_meta (name, value) VALUES (?1, ?2)", params![name, to_json(value)?])?;
    Ok(())
}

/// The last applied log id and the membership it holds.
pub fn applied_state(conn: &Connection) -> rusqlite::Result<(Option<LogId<u64>>, Membership)> {
    let last_applied = read_setting(conn, "last_applied")?.flatten();
    let membership = read_setting(conn, "membership")?.unwrap_or_default();
    Ok((last_applied, membership))
}

pub fn bucket_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT EXISTS (SELECT 1 FROM buckets WHERE name = ?1)", [name], |r| r.get(0))
}

pub fn bucket_owner(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT owner FROM buckets WHERE name = ?1", [name], |r| r.get(0)).optional()
}

pub fn load_bucket(conn: &Connection, name: &str) -> rusqlite::Result<Option<BucketInfo>> {
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
    let lifecycle = load_bucket_setting(conn, BucketSetting::Lifecycle, name)?;
    let versioning = load_bucket_setting(conn, BucketSetting::Versioning, name)?;
    let object_lock = load_bucket_setting(conn, BucketSetting::ObjectLock, name)?;
    let encryption = load_bucket_setting(conn, BucketSetting::Encryption, name)?;
    Ok(Some(BucketInfo {
        name: name.to_string(),
        owner,
        created_ms,
        grants,
        tags,
        cors,
        replication,
        lifecycle,
        versioning,
        object_lock,
        encryption,
    }))
}

/// Optional per-bucket settings, each a JSON value in a table of its own.
#[derive(Clone, Copy)]
pub enum BucketSetting {
    Tags,
    Cors,
    Replication,
    Lifecycle,
    Versioning,
    ObjectLock,
    Encryption,
}

impl BucketSetting {
    pub const ALL: [BucketSetting; 7] = [
        BucketSetting::Tags,
        BucketSetting::Cors,
        BucketSetting::Replication,
        BucketSetting::Lifecycle,
        BucketSetting::Versioning,
        BucketSetting::ObjectLock,
        BucketSetting::Encryption,
    ];

    fn table(self) -> &'static str {
        match self {
            BucketSetting::Tags => "bucket_tags",
            BucketSetting::Cors => "bucket_cors",
            BucketSetting::Replication => "bucket_replication",
            BucketSetting::Lifecycle => "bucket_lifecycle",
            BucketSetting::Versioning => "bucket_versioning",
            BucketSetting::ObjectLock => "bucket_object_lock",
            BucketSetting::Encryption => "bucket_encryption",
        }
    }
}

/// Sets a bucket's setting, or with None removes it.
pub fn set_bucket_setting<T: serde::Serialize>(
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

pub fn load_bucket_setting<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    setting: BucketSetting,
    bucket: &str,
) -> rusqlite::Result<Option<T>> {
    let sql = format!("SELECT value FROM {} WHERE bucket = ?1", setting.table());
    let raw: Option<Vec<u8>> = conn.prepare_cached(&sql)?.query_row([bucket], |r| r.get(0)).optional()?;
    raw.map(|raw| from_json(&raw)).transpose()
}

/// The replication in force for a bucket (its own, else the cluster's), or the cluster's.
pub fn replication_of(conn: &Connection, bucket: Option<&str>) -> rusqlite::Result<Replication> {
    if let Some(bucket) = bucket {
        if let Some(own) = load_bucket_setting(conn, BucketSetting::Replication, bucket)? {
            return Ok(own);
        }
    }
    Ok(read_setting(conn, "replication")?.unwrap_or_default())
}

/// An object's manifest, with its inline bytes put back.
pub fn load_manifest(conn: &Connection, bucket: &str, key: &str) -> rusqlite::Result<Option<ObjectManifest>> {
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
    let mut manifest: ObjectManifest = from_json(&raw)?;
    if inline.is_some() {
        manifest.inline = inline;
    }
    Ok(Some(manifest))
}

/// Writes an object's row. An inline object's bytes go to a table of their
/// own, so the rows a listing walks stay small.
pub fn write_object(tx: &Transaction, bucket: &str, key: &str, manifest: &ObjectManifest) -> rusqlite::Result<()> {
    let mut row = manifest.clone();
    let inline = row.inline.take();
    tx.execute(
        "INSERT OR REPLACE INTO objects (bucket, key, size, etag, last_modified_ms, manifest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![bucket, key.as_bytes(), row.size as i64, row.etag.quoted(), row.last_modified_ms, to_json(&row)?],
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

/// Removes an object's row and its inline bytes.
pub fn delete_object_row(tx: &Transaction, bucket: &str, key: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM objects WHERE bucket = ?1 AND key = ?2", params![bucket, key.as_bytes()])?;
    tx.execute("DELETE FROM inline_objects WHERE bucket = ?1 AND key = ?2", params![bucket, key.as_bytes()])?;
    Ok(())
}

/// A version that is not its key's current object: a noncurrent version or
/// a delete marker. `seq` orders a key's versions (the greater, the newer).
pub struct StoredVersion {
    pub seq: i64,
    pub delete_marker: bool,
    pub manifest: ObjectManifest,
}

const VERSION_COLUMNS: &str = "seq, delete_marker, manifest, inline";

type VersionRow = (i64, bool, Vec<u8>, Option<Vec<u8>>);

fn version_row(r: &rusqlite::Row) -> rusqlite::Result<VersionRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// A version's row, with its inline bytes (kept raw beside the manifest) put back.
fn stored_version(row: Option<VersionRow>) -> rusqlite::Result<Option<StoredVersion>> {
    row.map(|(seq, delete_marker, raw, inline)| {
        let mut manifest: ObjectManifest = from_json(&raw)?;
        if inline.is_some() {
            manifest.inline = inline;
        }
        Ok(StoredVersion { seq, delete_marker, manifest })
    })
    .transpose()
}

/// The version `version_id` (`null`: the null version) of a key, unless it is the current object.
pub fn load_version(
    conn: &Connection,
    bucket: &str,
    key: &str,
    version_id: &str,
) -> rusqlite::Result<Option<StoredVersion>> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ?1 AND key = ?2 AND version_id = ?3");
    let row =
        conn.prepare_cached(&sql)?.query_row(params![bucket, key.as_bytes(), version_id], version_row).optional()?;
    stored_version(row)
}

/// The newest of a key's versions that are not its current object.
pub fn newest_version(conn: &Connection, bucket: &str, key: &str) -> rusqlite::Result<Option<StoredVersion>> {
    let sql =
        format!("SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ?1 AND key = ?2 ORDER BY seq DESC LIMIT 1");
    let row = conn.prepare_cached(&sql)?.query_row(params![bucket, key.as_bytes()], version_row).optional()?;
    stored_version(row)
}

/// A key's versions that are not its current object, newest first.
pub fn load_versions(conn: &Connection, bucket: &str, key: &str) -> rusqlite::Result<Vec<StoredVersion>> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM versions WHERE bucket = ?1 AND key = ?2 ORDER BY seq DESC");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![bucket, key.as_bytes()], version_row)?;
    rows.map(|row| stored_version(Some(row?)).map(|v| v.expect("a row"))).collect()
}

/// Keeps a version that is not (or no longer) the current object; its
/// inline bytes stay in its manifest.
pub fn write_version(tx: &Transaction, bucket: &str, key: &str, version: &StoredVersion) -> rusqlite::Result<()> {
    let mut m = version.manifest.clone();
    let inline = m.inline.take();
    tx.prepare_cached(
        "INSERT INTO versions (bucket, key, seq, version_id, delete_marker, size, etag, last_modified_ms, manifest, inline)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        bucket,
        key.as_bytes(),
        version.seq,
        m.version(),
        version.delete_marker,
        m.size as i64,
        m.etag.quoted(),
        m.last_modified_ms,
        to_json(&m)?,
        inline,
    ])?;
    Ok(())
}

/// Moves a key's current object to `versions` at `seq` as it is, row to
/// row (its manifest is not decoded again); false if it has none.
pub fn retire_object_row(tx: &Transaction, bucket: &str, key: &str, seq: i64) -> rusqlite::Result<bool> {
    let moved = tx
        .prepare_cached(
            "INSERT INTO versions (bucket, key, seq, version_id, delete_marker, size, etag, last_modified_ms, manifest, inline)
             SELECT o.bucket, o.key, ?3, COALESCE(json_extract(o.manifest, '$.version_id'), 'null'), 0, o.size, o.etag,
                    o.last_modified_ms, o.manifest, i.bytes
             FROM objects o LEFT JOIN inline_objects i ON i.bucket = o.bucket AND i.key = o.key
             WHERE o.bucket = ?1 AND o.key = ?2",
        )?
        .execute(params![bucket, key.as_bytes(), seq])?;
    if moved > 0 {
        delete_object_row(tx, bucket, key)?;
    }
    Ok(moved > 0)
}

/// Replaces the manifest of a noncurrent version (its tags changed).
pub fn rewrite_version(
    tx: &Transaction,
    bucket: &str,
    key: &str,
    seq: i64,
    manifest: &ObjectManifest,
) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE versions SET manifest = ?4 WHERE bucket = ?1 AND key = ?2 AND seq = ?3")?
        .execute(params![bucket, key.as_bytes(), seq, to_json(manifest)?])?;
    Ok(())
}

pub fn delete_version_row(tx: &Transaction, bucket: &str, key: &str, seq: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM versions WHERE bucket = ?1 AND key = ?2 AND seq = ?3")?.execute(params![
        bucket,
        key.as_bytes(),
        seq
    ])?;
    Ok(())
}

pub use crate::api::NULL_VERSION;

pub fn load_upload(
    conn: &Connection,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> rusqlite::Result<Option<UploadInfo>> {
    let raw: Option<Vec<u8>> = conn
        .query_row(
            "SELECT info FROM uploads WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3",
            params![upload_id, bucket, key.as_bytes()],
            |r| r.get(0),
        )
        .optional()?;
    raw.map(|raw| from_json(&raw)).transpose()
}

pub fn load_part(conn: &Connection, upload_id: &str, number: u32) -> rusqlite::Result<Option<PartManifest>> {
    let raw: Option<Vec<u8>> = conn
        .query_row(
            "SELECT manifest FROM parts WHERE upload_id = ?1 AND part_number = ?2",
            params![upload_id, number],
            |r| r.get(0),
        )
        .optional()?;
    raw.map(|raw| from_json(&raw)).transpose()
}

/// An upload's parts in ascending part order.
pub fn load_parts(conn: &Connection, upload_id: &str) -> rusqlite::Result<Vec<(u32, PartManifest)>> {
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

/// The nodes the state says hold a chunk, in id order.
pub fn chunk_nodes(conn: &Connection, id: &ChunkId) -> rusqlite::Result<Vec<NodeId>> {
    let mut stmt = conn.prepare_cached("SELECT node FROM placements WHERE chunk = ?1 ORDER BY node")?;
    let nodes = stmt.query_map([id.as_bytes()], |r| r.get::<_, i64>(0))?;
    nodes.map(|n| n.map(|n| n as NodeId)).collect()
}

pub fn load_access_key(conn: &Connection, access_key: &str) -> rusqlite::Result<Option<AccessKey>> {
    let raw: Option<Vec<u8>> =
        conn.query_row("SELECT info FROM access_keys WHERE access_key = ?1", [access_key], |r| r.get(0)).optional()?;
    raw.map(|raw| from_json(&raw)).transpose()
}
