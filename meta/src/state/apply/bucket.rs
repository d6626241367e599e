//! Buckets and their settings: create, delete, CORS, tags, grants, replication.

use jadfs_common::sse::SseMode;
use rusqlite::params;

use super::{refuse, Applier, Outcome};
use crate::api::{CommandResult, CorsRule, MetaError, Permission, Replication};
use crate::state::rows::{bucket_owner, load_access_key, set_bucket_setting, to_json, write_setting, BucketSetting};

impl Applier<'_> {
    /// With `object_lock`, the bucket has Object Lock (no default
    /// retention) and versioning enabled from the start.
    pub(super) fn create_bucket(&self, name: &str, owner: &str, created_ms: i64, object_lock: bool) -> Outcome {
        match bucket_owner(self.tx, name)? {
            Some(existing) if existing == owner => refuse(MetaError::BucketAlreadyOwnedByYou),
            Some(_) => refuse(MetaError::BucketAlreadyExists),
            None => {
                self.tx.execute(
                    "INSERT INTO buckets (name, owner, created_ms) VALUES (?1, ?2, ?3)",
                    params![name, owner, created_ms],
                )?;
                if object_lock {
                    let enabled = Some(&crate::api::Versioning::Enabled);
                    set_bucket_setting(self.tx, BucketSetting::Versioning, name, enabled)?;
                    let config = crate::api::ObjectLockConfig::default();
                    set_bucket_setting(self.tx, BucketSetting::ObjectLock, name, Some(&config))?;
                }
                Ok(CommandResult::Done)
            }
        }
    }

    /// Deletes an empty bucket with its uploads, grants and settings.
    pub(super) fn delete_bucket(&self, name: &str) -> Outcome {
        self.require_bucket(name)?;
        // Noncurrent versions and delete markers count: a bucket is empty
        // when it has no version of anything left.
        let has_objects: bool = self.tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = ?1)
                 OR EXISTS (SELECT 1 FROM versions WHERE bucket = ?1)",
            [name],
            |r| r.get(0),
        )?;
        if has_objects {
            return refuse(MetaError::BucketNotEmpty);
        }
        let uploads: Vec<String> = {
            let mut stmt = self.tx.prepare("SELECT upload_id FROM uploads WHERE bucket = ?1")?;
            let rows = stmt.query_map([name], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for upload_id in uploads {
            self.drop_upload(&upload_id)?;
        }
        self.tx.execute("DELETE FROM bucket_grants WHERE bucket = ?1", [name])?;
        self.tx.execute("DELETE FROM lifecycle_runs WHERE bucket = ?1", [name])?;
        for setting in BucketSetting::ALL {
            set_bucket_setting::<()>(self.tx, setting, name, None)?;
        }
        self.tx.execute("DELETE FROM buckets WHERE name = ?1", [name])?;
        Ok(CommandResult::Done)
    }

    pub(super) fn set_bucket_cors(&self, bucket: &str, rules: Option<&Vec<CorsRule>>) -> Outcome {
        self.require_bucket(bucket)?;
        set_bucket_setting(self.tx, BucketSetting::Cors, bucket, rules)?;
        Ok(CommandResult::Done)
    }

    pub(super) fn set_bucket_encryption(&self, bucket: &str, mode: Option<&SseMode>) -> Outcome {
        self.require_bucket(bucket)?;
        set_bucket_setting(self.tx, BucketSetting::Encryption, bucket, mode)?;
        Ok(CommandResult::Done)
    }

    pub(super) fn set_bucket_tags(&self, bucket: &str, tags: Option<&Vec<(String, String)>>) -> Outcome {
        self.require_bucket(bucket)?;
        set_bucket_setting(self.tx, BucketSetting::Tags, bucket, tags)?;
        Ok(CommandResult::Done)
    }

    /// Grants are kept by key id (in the column named `access_key`).
    pub(super) fn set_bucket_grant(&self, bucket: &str, access_key: &str, permission: Option<Permission>) -> Outcome {
        self.require_bucket(bucket)?;
        let Some(key) = load_access_key(self.tx, access_key)? else { return refuse(MetaError::NoSuchAccessKey) };
        match permission {
            Some(permission) => self.tx.execute(
                "INSERT OR REPLACE INTO bucket_grants (bucket, access_key, permission) VALUES (?1, ?2, ?3)",
                params![bucket, key.id, to_json(&permission)?],
            )?,
            None => self
                .tx
                .execute("DELETE FROM bucket_grants WHERE bucket = ?1 AND access_key = ?2", params![bucket, key.id])?,
        };
        Ok(CommandResult::Done)
    }

    /// The cluster default with no bucket; a bucket's own with one (None
    /// there: back to the default).
    pub(super) fn set_replication(&self, bucket: Option<&str>, replication: Option<Replication>) -> Outcome {
        match bucket {
            None => write_setting(self.tx, "replication", &replication.unwrap_or_default())?,
            Some(bucket) => {
                self.require_bucket(bucket)?;
                set_bucket_setting(self.tx, BucketSetting::Replication, bucket, replication.as_ref())?;
            }
        }
        Ok(CommandResult::Done)
    }
}
