//! Lifecycle: a bucket's rules, and the steps of the leader's worker, each
//! judged here when it applies (the time and the day's length are in the
//! command), so an object rewritten since the worker looked is judged anew.

use rusqlite::params;

use super::{Applier, Fail, Outcome};
use crate::api::{
    lone_marker_due, noncurrent_due, object_expiry, upload_due, CommandResult, LifecycleRule, UploadInfo,
};
use crate::state::rows::{
    from_json, load_bucket_setting, load_manifest, load_versions, set_bucket_setting, BucketSetting,
};

impl Applier<'_> {
    pub(super) fn set_bucket_lifecycle(&self, bucket: &str, rules: Option<&Vec<LifecycleRule>>) -> Outcome {
        self.require_bucket(bucket)?;
        set_bucket_setting(self.tx, BucketSetting::Lifecycle, bucket, rules)?;
        Ok(CommandResult::Done)
    }

    pub(super) fn apply_lifecycle(
        &self,
        bucket: &str,
        after: Option<&str>,
        limit: u32,
        now_ms: i64,
        day_ms: i64,
    ) -> Outcome {
        self.require_bucket(bucket)?;
        let rules: Vec<LifecycleRule> =
            load_bucket_setting(self.tx, BucketSetting::Lifecycle, bucket)?.unwrap_or_default();
        let mut aborted = 0;
        if after.is_none() {
            let uploads: Vec<(String, Vec<u8>)> = {
                let mut stmt = self.tx.prepare("SELECT upload_id, info FROM uploads WHERE bucket = ?1")?;
                let rows = stmt.query_map([bucket], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for (upload_id, info) in uploads {
                let info: UploadInfo = from_json(&info)?;
                if upload_due(&rules, &info.key, info.initiated_ms, now_ms, day_ms) {
                    self.drop_upload(&upload_id)?;
                    aborted += 1;
                }
            }
        }
        let acts_on_objects =
            rules.iter().any(|r| r.enabled && (r.expiration.is_some() || r.noncurrent_days.is_some()));
        if !acts_on_objects {
            self.note_lifecycle_step(bucket, after.is_none(), now_ms, (0, 0, aborted), true)?;
            return Ok(CommandResult::Lifecycle { expired: 0, aborted, next: None });
        }
        // The keys with a current object or other versions, in order.
        let keys: Vec<Vec<u8>> = {
            let mut stmt = self.tx.prepare_cached(
                "SELECT key FROM objects WHERE bucket = ?1 AND key > ?2
                 UNION SELECT key FROM versions WHERE bucket = ?1 AND key > ?2
                 ORDER BY key LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![bucket, after.unwrap_or("").as_bytes(), limit], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let next = if keys.len() as u32 >= limit.max(1) {
            keys.last().map(|key| String::from_utf8_lossy(key).into_owned())
        } else {
            None
        };
        let judged = keys.len() as u64;
        let mut expired = 0;
        for key in keys {
            let key = String::from_utf8_lossy(&key).into_owned();
            expired += self.judge_key(bucket, &key, &rules, now_ms, day_ms)?;
        }
        self.note_lifecycle_step(bucket, after.is_none(), now_ms, (judged, expired, aborted), next.is_none())?;
        Ok(CommandResult::Lifecycle { expired, aborted, next })
    }

    /// Applies the rules to one key: its current object expires (a delete
    /// marker takes its place in a bucket with versioning), noncurrent
    /// versions past their days are deleted for good, and a delete marker
    /// left with nothing behind it is removed. Answers how many went.
    fn judge_key(
        &self,
        bucket: &str,
        key: &str,
        rules: &[LifecycleRule],
        now_ms: i64,
        day_ms: i64,
    ) -> Result<u64, Fail> {
        let mut expired = 0;
        if let Some(current) = load_manifest(self.tx, bucket, key)? {
            let due = object_expiry(rules, key, current.size, &current.tags, current.last_modified_ms, day_ms)
                .is_some_and(|(at, _)| at <= now_ms);
            if due {
                self.delete_object(bucket, key, None, now_ms, false)?;
                expired += 1;
            }
        }
        let current = load_manifest(self.tx, bucket, key)?;
        let versions = load_versions(self.tx, bucket, key)?;
        // A version became noncurrent when the one after it was made.
        let mut successor_ms = current.as_ref().map(|m| m.last_modified_ms);
        let mut newer = 0;
        let mut left = versions.len();
        for version in &versions {
            let m = &version.manifest;
            let since = successor_ms.unwrap_or(m.last_modified_ms);
            successor_ms = Some(m.last_modified_ms);
            if version.delete_marker {
                continue;
            }
            // Object Lock keeps a version whatever the rules say.
            let locked = m.lock_at(now_ms, false).is_some();
            if !locked && noncurrent_due(rules, (key, m.size, &m.tags), since, newer, now_ms, day_ms) {
                let id = m.version();
                self.delete_object(bucket, key, Some(id), now_ms, false)?;
                expired += 1;
                left -= 1;
            } else {
                newer += 1;
            }
        }
        let lone_marker = versions.iter().find(|v| v.delete_marker).filter(|_| current.is_none() && left == 1);
        if let Some(marker) =
            lone_marker.filter(|m| lone_marker_due(rules, key, m.manifest.last_modified_ms, now_ms, day_ms))
        {
            let id = marker.manifest.version();
            self.delete_object(bucket, key, Some(id), now_ms, false)?;
            expired += 1;
        }
        Ok(expired)
    }

    /// Records a step in the bucket's round, for `jadfs admin status`: the
    /// first step (no `after`) starts a new round, the last one ends it.
    fn note_lifecycle_step(
        &self,
        bucket: &str,
        first: bool,
        now_ms: i64,
        (judged, expired, aborted): (u64, u64, u64),
        last: bool,
    ) -> rusqlite::Result<()> {
        if first {
            self.tx.execute(
                "INSERT OR REPLACE INTO lifecycle_runs (bucket, started_ms, stepped_ms, finished_ms, judged, expired, aborted)
                 VALUES (?1, ?2, ?2, NULL, 0, 0, 0)",
                params![bucket, now_ms],
            )?;
        }
        self.tx.execute(
            "UPDATE lifecycle_runs SET stepped_ms = ?2, judged = judged + ?3, expired = expired + ?4,
                 aborted = aborted + ?5, finished_ms = CASE WHEN ?6 THEN ?2 END
             WHERE bucket = ?1",
            params![bucket, now_ms, judged as i64, expired as i64, aborted as i64, last],
        )?;
        Ok(())
    }
}
