//! Access keys, by id: a key deleted and made again is another key.

use rusqlite::params;

use super::{refuse, Applier, Outcome};
use crate::api::{AccessKey, CommandResult, MetaError};
use crate::state::rows::{load_access_key, to_json};

impl Applier<'_> {
    /// Creates a key; one whose access key id is taken is refused.
    pub(super) fn put_access_key(&self, key: &AccessKey) -> Outcome {
        if load_access_key(self.tx, &key.access_key)?.is_some() {
            return refuse(MetaError::AccessKeyExists);
        }
        self.tx.execute(
            "INSERT INTO access_keys (access_key, info) VALUES (?1, ?2)",
            params![key.access_key, to_json(key)?],
        )?;
        Ok(CommandResult::Done)
    }

    /// Removes an access key and its bucket grants (the buckets it owns stay
    /// its, and no later key of the same access key id inherits them).
    pub(super) fn delete_access_key(&self, access_key: &str) -> Outcome {
        if let Some(key) = load_access_key(self.tx, access_key)? {
            self.tx.execute("DELETE FROM bucket_grants WHERE access_key = ?1", [&key.id])?;
        }
        self.tx.execute("DELETE FROM access_keys WHERE access_key = ?1", [access_key])?;
        Ok(CommandResult::Done)
    }
}
