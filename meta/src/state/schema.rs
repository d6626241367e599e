//! The state database's schema and its versions. The data version is kept
//! in `PRAGMA user_version`; at start-up (and after a snapshot is
//! installed, which may come from an older node) the database is brought
//! to [`DATA_VERSION`] one step at a time, and a newer one is refused.

use std::path::Path;

use rusqlite::Connection;

/// The version of the state this program reads and writes.
pub const DATA_VERSION: u32 = 2;

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
fn upgrade(conn: &Connection, from: u32) -> rusqlite::Result<()> {
    match from {
        0 => conn.execute_batch(VERSION_1),
        // Version 2 keeps checksums typed (`{"algorithm", "value", "type"}`)
        // and upload checksum algorithms by name. Rows of version 1 hold
        // `(algorithm, value)` pairs, which `Checksum` still reads (a
        // composite is the one ending in `-N`), so no row is rewritten.
        1 => Ok(()),
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

/// Upgrades the database to [`DATA_VERSION`], each step in its own transaction.
pub fn migrate(conn: &Connection) -> Result<(), SchemaError> {
    let mut version: u32 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > DATA_VERSION {
        return Err(SchemaError::Newer { found: version });
    }
    while version < DATA_VERSION {
        let tx = conn.unchecked_transaction()?;
        upgrade(&tx, version)?;
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

/// A fresh in-memory state at [`DATA_VERSION`], for tests.
#[cfg(test)]
pub fn in_memory() -> Connection {
    let conn = Connection::open_in_memory().expect("in-memory database");
    migrate(&conn).expect("fresh schema");
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
        migrate(&conn).unwrap();
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, DATA_VERSION);
        let kept: i64 = conn.query_row("SELECT COUNT(*) FROM buckets", [], |r| r.get(0)).unwrap();
        assert_eq!(kept, 1);
        migrate(&conn).unwrap();
        conn.pragma_update(None, "user_version", DATA_VERSION + 1).unwrap();
        assert!(matches!(migrate(&conn), Err(SchemaError::Newer { .. })));
    }
}
