//! The state database's schema and its versions. The data version is kept
//! in `PRAGMA user_version`; at start-up (and after a snapshot is
//! installed, which may come from an older node) the database is brought
//! to [`DATA_VERSION`] one step at a time, and a newer one is refused.

use std::path::Path;

use jadfs_common::cluster_auth::ClusterKey;
use rusqlite::Connection;

use super::rows::{from_json, to_json};
use crate::api::AccessKey;

/// The version of the state this program reads and writes.
pub const DATA_VERSION: u32 = 10;

/// Version 1: the tables of wave 1 (buckets, objects and their inline
/// bytes, chunks with reference counts, placements, nodes, uploads and
/// parts, bucket settings, repairs, access keys and grants). Databases made
/// before versions were recorded say 0 and hold some or all of them.
const VERSION_1: &str = "
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

/// Brings the state at version `from` one step up.
fn upgrade(conn: &Connection, from: u32, key: &ClusterKey) -> rusqlite::Result<()> {
    match from {
        0 => conn.execute_batch(VERSION_1),
        // Version 2 keeps checksums typed (`{"algorithm", "value", "type"}`)
        // and upload checksum algorithms by name. Rows of version 1 hold
        // `(algorithm, value)` pairs, which `Checksum` still reads (a
        // composite is the one ending in `-N`), so no row is rewritten.
        1 => Ok(()),
        // Version 3 seals access keys' secrets and gives each key an id of
        // its own; a key of before keeps its access key id as id, which is
        // what its buckets and grants already name.
        2 => seal_access_keys(conn, key),
        // Version 4 collects garbage: pins keep the chunks of writes in
        // flight from collection, and deletions are the copies nodes are to
        // delete (see `apply/chunks.rs`).
        3 => conn.execute_batch(
            "CREATE TABLE pins (
                 chunk BLOB NOT NULL, write_id INTEGER NOT NULL, expires_ms INTEGER NOT NULL,
                 PRIMARY KEY (chunk, write_id)) WITHOUT ROWID;
             CREATE INDEX pins_by_write ON pins (write_id);
             CREATE TABLE deletions (
                 chunk BLOB NOT NULL, node INTEGER NOT NULL, queued_at_log INTEGER NOT NULL,
                 PRIMARY KEY (chunk, node)) WITHOUT ROWID;",
        ),
        // Version 5 trims surplus copies (chunks whose placement names more
        // nodes than their copies wait in `surplus` for the leader), and
        // drains and rebalances nodes (`draining`; placements by node), and
        // keeps the nodes each pin is for (`pin_nodes`), so a pin holds back
        // the trimming or moving of those copies only.
        4 => conn.execute_batch(
            "CREATE TABLE surplus (chunk BLOB PRIMARY KEY, copies INTEGER NOT NULL) WITHOUT ROWID;
             CREATE TABLE draining (node INTEGER PRIMARY KEY);
             CREATE TABLE pin_nodes (
                 chunk BLOB NOT NULL, write_id INTEGER NOT NULL, node INTEGER NOT NULL,
                 PRIMARY KEY (chunk, node, write_id)) WITHOUT ROWID;
             CREATE TRIGGER pin_nodes_follow_pins AFTER DELETE ON pins BEGIN
                 DELETE FROM pin_nodes WHERE chunk = OLD.chunk AND write_id = OLD.write_id;
             END;
             CREATE INDEX placements_by_node ON placements (node, chunk);
             INSERT INTO surplus (chunk, copies)
                 SELECT chunk, 3 FROM placements GROUP BY chunk HAVING COUNT(*) > 3;",
        ),
        // Version 6 applies a client's write once: the requests it took.
        5 => conn.execute_batch(
            "CREATE TABLE requests (
                 id INTEGER PRIMARY KEY,
                 log_index INTEGER NOT NULL,
                 result BLOB NOT NULL
             );
             CREATE INDEX requests_by_log ON requests (log_index);",
        ),
        // Version 7 keeps buckets' lifecycle rules.
        6 => conn.execute_batch("CREATE TABLE bucket_lifecycle (bucket TEXT PRIMARY KEY, value BLOB NOT NULL);"),
        // Version 8 keeps where each bucket's lifecycle round is.
        7 => conn.execute_batch(
            "CREATE TABLE lifecycle_runs (
                 bucket TEXT PRIMARY KEY,
                 started_ms INTEGER NOT NULL,
                 stepped_ms INTEGER NOT NULL,
                 finished_ms INTEGER,
                 judged INTEGER NOT NULL,
                 expired INTEGER NOT NULL,
                 aborted INTEGER NOT NULL
             );",
        ),
        // Version 9 keeps versions: each bucket's versioning and Object Lock, and every
        // version of a key that is not its current object (noncurrent ones
        // and delete markers), newest first (see `apply/versions.rs`).
        8 => conn.execute_batch(
            "CREATE TABLE bucket_versioning (bucket TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE bucket_object_lock (bucket TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE versions (
                 bucket TEXT NOT NULL,
                 key BLOB NOT NULL,
                 seq INTEGER NOT NULL,
                 version_id TEXT NOT NULL,
                 delete_marker INTEGER NOT NULL,
                 size INTEGER NOT NULL,
                 etag TEXT NOT NULL,
                 last_modified_ms INTEGER NOT NULL,
                 manifest BLOB NOT NULL,
                 inline BLOB,
                 PRIMARY KEY (bucket, key, seq DESC)) WITHOUT ROWID;
             CREATE UNIQUE INDEX versions_by_id ON versions (bucket, key, version_id);",
        ),
        // Version 10 keeps each bucket's default encryption.
        9 => conn.execute_batch("CREATE TABLE bucket_encryption (bucket TEXT PRIMARY KEY, value BLOB NOT NULL);"),
        _ => unreachable!("no upgrade from version {from}"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the state is at data version {found}, newer than this program's {DATA_VERSION}")]
    Newer { found: u32 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Seals the secrets of keys written in plain text and gives them an id.
fn seal_access_keys(conn: &Connection, key: &ClusterKey) -> rusqlite::Result<()> {
    let rows: Vec<(String, Vec<u8>)> = {
        let mut stmt = conn.prepare("SELECT access_key, info FROM access_keys")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for (access_key, raw) in rows {
        let mut info: AccessKey = from_json(&raw)?;
        if info.id.is_empty() {
            info.id = access_key.clone();
        }
        if !jadfs_common::sealed::is_sealed(&info.secret_key) {
            info.secret_key = jadfs_common::sealed::seal(key.secrets_key(), &access_key, &info.secret_key);
        }
        conn.execute(
            "UPDATE access_keys SET info = ?2 WHERE access_key = ?1",
            rusqlite::params![access_key, to_json(&info)?],
        )?;
    }
    Ok(())
}

/// Upgrades the database to [`DATA_VERSION`], each step in its own transaction.
pub fn migrate(conn: &Connection, key: &ClusterKey) -> Result<(), SchemaError> {
    let mut version: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > DATA_VERSION {
        return Err(SchemaError::Newer { found: version });
    }
    while version < DATA_VERSION {
        let tx = conn.unchecked_transaction()?;
        upgrade(&tx, version, key)?;
        version += 1;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        tracing::info!(version, "state database upgraded");
    }
    Ok(())
}

/// Opens a connection to the state database: WAL, and every commit synced.
pub fn open_db(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(conn)
}

/// The cluster key tests seal with.
#[cfg(test)]
pub fn test_key() -> ClusterKey {
    ClusterKey::from_secret("the tests' cluster secret").expect("long enough")
}

/// A fresh in-memory state at [`DATA_VERSION`], for tests.
#[cfg(test)]
pub fn in_memory() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory database");
    migrate(&conn, &test_key()).expect("fresh schema");
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unversioned_state_is_upgraded_and_a_newer_one_refused() {
        let conn = Connection::open_in_memory().unwrap();
        // As written before versions were recorded: some tables, version 0.
        conn.execute_batch(
            "CREATE TABLE buckets (name TEXT PRIMARY KEY, owner TEXT NOT NULL, created_ms INTEGER NOT NULL);",
        )
        .unwrap();
        conn.execute("INSERT INTO buckets VALUES ('b', 'o', 0)", []).unwrap();
        migrate(&conn, &test_key()).unwrap();
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, DATA_VERSION);
        let kept: i64 = conn.query_row("SELECT COUNT(*) FROM buckets", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, 1);
        migrate(&conn, &test_key()).unwrap();
        conn.pragma_update(None, "user_version", DATA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&conn, &test_key()), Err(SchemaError::Newer { .. })));
    }

    #[test]
    fn version_3_seals_the_secrets_of_keys_written_before_and_names_them() {
        let conn = Connection::open_in_memory().unwrap();
        for from in 0..2 {
            upgrade(&conn, from, &test_key()).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        let plain = r#"{"access_key":"AK1","secret_key":"plain secret","name":"n","created_ms":0}"#;
        conn.execute("INSERT INTO access_keys VALUES ('AK1', ?1)", [plain.as_bytes()]).unwrap();
        migrate(&conn, &test_key()).unwrap();
        let raw: Vec<u8> = conn.query_row("SELECT info FROM access_keys", [], |r| r.get(0)).unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("plain secret"));
        let key: AccessKey = from_json(&raw).unwrap();
        assert_eq!(key.id, "AK1", "it keeps owning what it owned");
        let secret = jadfs_common::sealed::unseal(test_key().secrets_key(), "AK1", &key.secret_key).unwrap();
        assert_eq!(secret, "plain secret");
    }
}
