//! Answering queries from the applied state: one function per query, and
//! [`answer`], the one place a [`Query`] is matched.

use jadfs_common::{ChunkId, NodeId};
use rusqlite::{params, Connection};

use super::listing::{list_objects, list_versions};
use super::rows::{
    applied_state, chunk_nodes, from_json, load_access_key, load_bucket, load_bucket_setting, load_manifest,
    load_parts, load_upload, load_version, newest_version, replication_of, BucketSetting,
};
use crate::api::*;

pub fn answer(conn: &Connection, query: &Query) -> rusqlite::Result<QueryResult> {
    use Query as Q;
    use QueryResult as R;
    Ok(match query {
        Q::ListBuckets => R::Buckets(list_buckets(conn)?),
        Q::GetBucket { name } => R::Bucket(load_bucket(conn, name)?),
        Q::GetObject { bucket, key, version_id } => R::Object(get_object(conn, bucket, key, version_id.as_deref())?),
        Q::ListObjects(q) => R::Page(list_objects(conn, q)?),
        Q::ListVersions(q) => R::Versions(list_versions(conn, q)?),
        Q::ListNodes => R::Nodes(list_nodes(conn)?),
        Q::Stats => R::Stats(stats(conn)?),
        Q::GetUpload { bucket, key, upload_id } => R::Upload(load_upload(conn, bucket, key, upload_id)?),
        Q::ListParts { bucket, key, upload_id, after_part, max_parts } => {
            R::Parts(list_parts(conn, bucket, key, upload_id, *after_part, *max_parts)?)
        }
        Q::ListUploads { bucket, prefix, after_key, max_uploads } => {
            R::Uploads(list_uploads(conn, bucket, prefix, after_key.as_deref(), *max_uploads)?)
        }
        Q::GetAccessKey { access_key } => R::AccessKey(load_access_key(conn, access_key)?),
        Q::ListAccessKeys => R::AccessKeys(list_access_keys(conn)?),
        Q::GetReplication { bucket } => R::Replication(replication_of(conn, bucket.as_deref())?),
        Q::RepairQueue { after, limit } => R::Repairs(repair_queue(conn, *after, *limit)?),
        Q::Usage => R::Usage(usage(conn)?),
        Q::BucketUsage { bucket } => R::BucketUsage(bucket_usage(conn, bucket)?),
    })
}

fn list_buckets(conn: &Connection) -> rusqlite::Result<Vec<BucketInfo>> {
    let names: Vec<String> = {
        let mut stmt = conn.prepare_cached("SELECT name FROM buckets ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut buckets = Vec::with_capacity(names.len());
    for name in names {
        buckets.extend(load_bucket(conn, &name)?);
    }
    Ok(buckets)
}

/// An object and the nodes holding each of its chunks: the current one, or
/// with `version_id` that version. A delete marker found (the latest
/// version, or the one named) is answered as one.
fn get_object(
    conn: &Connection,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> rusqlite::Result<Option<LocatedObject>> {
    let current = load_manifest(conn, bucket, key)?;
    let (manifest, current, delete_marker) = match (current, version_id) {
        (Some(current), None) => (current, true, false),
        (Some(current), Some(id)) if current.version() == id => (current, true, false),
        (_, id) => {
            let version = match id {
                Some(id) => load_version(conn, bucket, key, id)?,
                None => newest_version(conn, bucket, key)?.filter(|v| v.delete_marker),
            };
            let Some(version) = version else { return Ok(None) };
            (version.manifest, false, version.delete_marker)
        }
    };
    let locations = manifest.chunks.iter().map(|c| chunk_nodes(conn, &c.id)).collect::<rusqlite::Result<_>>()?;
    let rules: Option<Vec<LifecycleRule>> =
        if current { load_bucket_setting(conn, BucketSetting::Lifecycle, bucket)? } else { None };
    let expiration = rules.and_then(|rules| {
        let (at, id) = object_expiry(&rules, key, manifest.size, &manifest.tags, manifest.last_modified_ms, DAY_MS)?;
        Some((at, id.to_string()))
    });
    let versioned = load_bucket_setting::<Versioning>(conn, BucketSetting::Versioning, bucket)?.is_some();
    Ok(Some(LocatedObject { manifest, locations, expiration, delete_marker, versioned }))
}

/// Access keys without their secrets.
fn list_access_keys(conn: &Connection) -> rusqlite::Result<Vec<KeyInfo>> {
    let mut stmt = conn.prepare_cached("SELECT info FROM access_keys ORDER BY access_key")?;
    let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
    let keys: Vec<AccessKey> = rows.map(|raw| from_json(&raw?)).collect::<rusqlite::Result<_>>()?;
    Ok(keys
        .into_iter()
        .map(|k| KeyInfo { access_key: k.access_key, id: k.id, name: k.name, created_ms: k.created_ms })
        .collect())
}

pub fn list_nodes(conn: &Connection) -> rusqlite::Result<Vec<StorageNodeInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT info, EXISTS (SELECT 1 FROM draining WHERE draining.node = nodes.id) FROM nodes ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, bool>(1)?)))?;
    rows.map(|row| {
        let (raw, draining) = row?;
        let mut node: StorageNodeInfo = from_json(&raw)?;
        node.draining = draining;
        Ok(node)
    })
    .collect()
}

/// What each node's placements name (one pass over them), and the
/// rebalancing in progress.
pub fn usage(conn: &Connection) -> rusqlite::Result<ClusterUsage> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.node, COUNT(*), COALESCE(SUM(c.size), 0) FROM placements p JOIN chunks c ON c.id = p.chunk
         GROUP BY p.node ORDER BY p.node",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(NodeUsage {
            node: r.get::<_, i64>(0)? as NodeId,
            chunks: r.get::<_, i64>(1)? as u64,
            bytes: r.get::<_, i64>(2)? as u64,
        })
    })?;
    let nodes = rows.collect::<rusqlite::Result<_>>()?;
    let rebalance_tolerance = super::rows::read_setting::<Option<u8>>(conn, "rebalance_tolerance")?.flatten();
    Ok(ClusterUsage { nodes, rebalance_tolerance })
}

/// Chunks `node` holds after `after`, in id order, with their holders.
pub fn node_chunks(
    conn: &Connection,
    node: NodeId,
    after: Option<ChunkId>,
    limit: usize,
) -> rusqlite::Result<Vec<HeldChunk>> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.chunk, c.size FROM placements p JOIN chunks c ON c.id = p.chunk
         WHERE p.node = ?1 AND p.chunk > ?2 ORDER BY p.chunk LIMIT ?3",
    )?;
    let after = after.map_or(Vec::new(), |c| c.as_bytes().to_vec());
    let rows = stmt
        .query_map(params![node as i64, after, limit as i64], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (raw, size) = row?;
        let Ok(bytes) = <[u8; 32]>::try_from(raw.as_slice()) else { continue };
        let chunk = ChunkId::from_bytes(bytes);
        out.push(HeldChunk { chunk, size: size as u64, holders: chunk_nodes(conn, &chunk)? });
    }
    Ok(out)
}

/// Chunks waiting for copies, oldest first, after the (queued_at_log, chunk) position.
pub fn repair_queue(conn: &Connection, after: Option<(u64, ChunkId)>, limit: usize) -> rusqlite::Result<Vec<Repair>> {
    let mut stmt = conn.prepare_cached(
        "SELECT chunk, copies, queued_at_log FROM repairs WHERE (queued_at_log, chunk) > (?1, ?2)
         ORDER BY queued_at_log, chunk LIMIT ?3",
    )?;
    let (after_log, after_chunk) = match after {
        Some((log, chunk)) => (log as i64, chunk.as_bytes().to_vec()),
        None => (-1, Vec::new()),
    };
    let rows = stmt.query_map(params![after_log, after_chunk, limit as i64], |r| {
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
    Ok(repairs)
}

/// Chunks with surplus copies after `after`, in id order, with the nodes
/// their placement names (as [`Repair`]s: the copies to keep, the holders).
pub fn surplus(conn: &Connection, after: Option<ChunkId>, limit: usize) -> rusqlite::Result<Vec<Repair>> {
    let mut stmt = conn.prepare_cached("SELECT chunk, copies FROM surplus WHERE chunk > ?1 ORDER BY chunk LIMIT ?2")?;
    let after = after.map_or(Vec::new(), |c| c.as_bytes().to_vec());
    let rows = stmt.query_map(params![after, limit as i64], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (raw, copies) = row?;
        let Ok(bytes) = <[u8; 32]>::try_from(raw.as_slice()) else { continue };
        let chunk = ChunkId::from_bytes(bytes);
        let holders = chunk_nodes(conn, &chunk)?;
        out.push(Repair { chunk, copies: copies as u8, holders, queued_at_log: 0 });
    }
    Ok(out)
}

pub fn collectible(conn: &Connection, log_index: u64) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM chunks WHERE refcount <= 0 AND orphaned_at_log <= ?1)",
        [log_index as i64],
        |r| r.get(0),
    )
}

/// Copies to delete, oldest first, but none on the nodes of `skip` (dead:
/// theirs wait until they are back, and must not hold up the others').
pub fn deletions(conn: &Connection, limit: usize, skip: &[NodeId]) -> rusqlite::Result<Vec<(ChunkId, NodeId)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT chunk, node FROM deletions WHERE node NOT IN (SELECT value FROM json_each(?2))
         ORDER BY queued_at_log LIMIT ?1",
    )?;
    let skip = serde_json::to_string(skip).expect("node ids serialise");
    let rows = stmt.query_map(params![limit as i64, skip], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (raw, node) = row?;
        if let Ok(bytes) = <[u8; 32]>::try_from(raw.as_slice()) {
            out.push((ChunkId::from_bytes(bytes), node as NodeId));
        }
    }
    Ok(out)
}

pub fn strays(conn: &Connection, node: NodeId, chunks: &[ChunkId]) -> rusqlite::Result<Vec<ChunkId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT NOT EXISTS (SELECT 1 FROM placements WHERE chunk = ?1 AND node = ?2)
            AND NOT EXISTS (SELECT 1 FROM deletions WHERE chunk = ?1 AND node = ?2)
            AND NOT EXISTS (SELECT 1 FROM pins WHERE chunk = ?1)",
    )?;
    let mut out = Vec::new();
    for chunk in chunks {
        if stmt.query_row(params![chunk.as_bytes(), node as i64], |r| r.get::<_, bool>(0))? {
            out.push(*chunk);
        }
    }
    Ok(out)
}

/// A page of an upload's parts after `after_part`; None if there is no such upload.
fn list_parts(
    conn: &Connection,
    bucket: &str,
    key: &str,
    upload_id: &str,
    after_part: u32,
    max_parts: usize,
) -> rusqlite::Result<Option<PartsPage>> {
    if load_upload(conn, bucket, key, upload_id)?.is_none() {
        return Ok(None);
    }
    let mut parts: Vec<PartEntry> = load_parts(conn, upload_id)?
        .into_iter()
        .filter(|(n, _)| *n > after_part)
        .map(|(part_number, p)| PartEntry {
            part_number,
            size: p.size,
            etag: p.etag,
            last_modified_ms: p.last_modified_ms,
            checksum: p.checksum,
        })
        .collect();
    let truncated = parts.len() > max_parts;
    parts.truncate(max_parts);
    Ok(Some(PartsPage { parts, truncated }))
}

fn list_uploads(
    conn: &Connection,
    bucket: &str,
    prefix: &str,
    after_key: Option<&str>,
    max_uploads: usize,
) -> rusqlite::Result<UploadsPage> {
    let mut stmt = conn.prepare_cached(
        "SELECT info FROM uploads WHERE bucket = ?1 AND key >= ?2 AND (?3 IS NULL OR key > ?3)
         ORDER BY key, upload_id LIMIT ?4",
    )?;
    let after = after_key.map(|k| k.as_bytes().to_vec());
    let rows = stmt
        .query_map(params![bucket, prefix.as_bytes(), after, (max_uploads + 1) as i64], |r| r.get::<_, Vec<u8>>(0))?;
    let mut uploads: Vec<UploadInfo> = Vec::new();
    for raw in rows {
        let upload: UploadInfo = from_json(&raw?)?;
        if upload.key.starts_with(prefix) {
            uploads.push(upload);
        }
    }
    let truncated = uploads.len() > max_uploads;
    uploads.truncate(max_uploads);
    Ok(UploadsPage { uploads, truncated })
}

fn bucket_usage(conn: &Connection, bucket: &str) -> rusqlite::Result<BucketUsage> {
    conn.query_row("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM objects WHERE bucket = ?1", [bucket], |r| {
        Ok(BucketUsage { objects: r.get::<_, i64>(0)? as u64, bytes: r.get::<_, i64>(1)? as u64 })
    })
}

fn stats(conn: &Connection) -> rusqlite::Result<MetaStats> {
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).map(|n| n as u64);
    Ok(MetaStats {
        buckets: count("SELECT COUNT(*) FROM buckets")?,
        objects: count("SELECT COUNT(*) FROM objects")?,
        inline_objects: count("SELECT COUNT(*) FROM inline_objects")?,
        chunks: count("SELECT COUNT(*) FROM chunks WHERE refcount > 0")?,
        chunk_bytes: count("SELECT COALESCE(SUM(size), 0) FROM chunks WHERE refcount > 0")?,
        orphaned_chunks: count("SELECT COUNT(*) FROM chunks WHERE refcount <= 0")?,
        repair_queue: count("SELECT COUNT(*) FROM repairs")?,
        chunks_without_copy: count(
            "SELECT COUNT(*) FROM repairs r WHERE NOT EXISTS (SELECT 1 FROM placements p WHERE p.chunk = r.chunk)",
        )?,
        pending_deletions: count("SELECT COUNT(*) FROM deletions")?,
        last_applied_index: applied_state(conn)?.0.map(|id| id.index),
        lifecycle: lifecycle_runs(conn)?,
    })
}

fn lifecycle_runs(conn: &Connection) -> rusqlite::Result<Vec<LifecycleRun>> {
    let mut stmt = conn.prepare_cached(
        "SELECT bucket, started_ms, stepped_ms, finished_ms, judged, expired, aborted FROM lifecycle_runs
         WHERE bucket IN (SELECT bucket FROM bucket_lifecycle) ORDER BY bucket",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(LifecycleRun {
            bucket: r.get(0)?,
            started_ms: r.get(1)?,
            stepped_ms: r.get(2)?,
            finished_ms: r.get(3)?,
            judged: r.get::<_, i64>(4)? as u64,
            expired: r.get::<_, i64>(5)? as u64,
            aborted: r.get::<_, i64>(6)? as u64,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::schema;

    #[test]
    fn the_repair_queue_pages_oldest_first_from_a_cursor() {
        let conn = schema::in_memory();
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
            let page = repair_queue(&conn, after, 2).unwrap();
            let Some(last) = page.last() else { break };
            after = Some((last.queued_at_log, last.chunk));
            seen.extend(page.iter().map(|r| (r.queued_at_log, r.chunk.as_bytes()[0])));
        }
        assert_eq!(seen, [(3, 3), (3, 5), (7, 1), (7, 2), (9, 4)]);
        // Of the five, those no node holds are counted apart.
        let placed = |n: usize| {
            conn.execute("INSERT INTO placements (chunk, node) VALUES (?1, 1)", params![ids[n].as_bytes()]).unwrap()
        };
        placed(0);
        placed(3);
        let counts = stats(&conn).unwrap();
        assert_eq!((counts.repair_queue, counts.chunks_without_copy), (5, 3));
    }
}
