//! Access keys.

use rusqlite::params;

use super::{Applier, Outcome};
use crate::api::{AccessKey, CommandResult};
use crate::state::rows::to_json;

impl Applier<'_> {
    pub(super) fn put_access_key(&self, key: &AccessKey) -> Outcome {
        self.tx.execute(
            "INSERT OR REPLACE INTO access_keys (access_key, info) VALUES (?1, ?2)",
            params![key.access_key, to_json(key)?],
        )?;
        Ok(CommandResult::Done)
    }

    /// Removes an access key and its bucket grants.
    pub(super) fn delete_access_key(&self, access_key: &str) -> Outcome {
        self.tx.execute("DELETE FROM access_keys WHERE access_key = ?1", [access_key])?;
        self.tx.execute("DELETE FROM bucket_grants WHERE access_key = ?1", [access_key])?;
        Ok(CommandResult::Done)
    }
}
