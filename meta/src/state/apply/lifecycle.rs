//! Lifecycle: a bucket's rules, and the steps of the leader's worker, each
//! judged here when it applies (the time and the day's length are in the
//! command), so an object rewritten since the worker looked is judged anew.

use jadfs_common::ObjectManifest;
use rusqlite::params;

use super::{Applier, Outcome};
use crate::api::{object_expiry, upload_due, CommandResult, LifecycleRule, UploadInfo};
use crate::state::rows::{from_json, load_bucket_setting, set_bucket_setting, BucketSetting};

/// An object as the worker's step judges it: key, size, when it was
/// written, and its manifest when a rule filters by tags.
type Candidate = (Vec<u8>, i64, i64, Option<Vec<u8>>);

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
        if !rules.iter().any(|r| r.enabled && r.expiration.is_some()) {
            self.note_lifecycle_step(bucket, after.is_none(), now_ms, (0, 0, aborted), true)?;
            return Ok(CommandResult::Lifecycle { expired: 0, aborted, next: None });
        }
        let with_tags = rules.iter().any(|r| r.enabled && !r.filter.tags.is_empty());
        let rows: Vec<Candidate> = {
            let mut stmt = self.tx.prepare(
                "SELECT key, size, last_modified_ms, CASE WHEN ?4 THEN manifest END FROM objects
                 WHERE bucket = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![bucket, after.unwrap_or("").as_bytes(), limit, with_tags], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let next = if rows.len() as u32 >= limit.max(1) {
            rows.last().map(|(key, ..)| String::from_utf8_lossy(key).into_owned())
        } else {
            None
        };
        let judged = rows.len() as u64;
        let mut expired = 0;
        for (key, size, written_ms, manifest) in rows {
            let key = String::from_utf8_lossy(&key).into_owned();
            let tags = match manifest {
                Some(raw) => from_json::<ObjectManifest>(&raw)?.tags,
                None => Vec::new(),
            };
            let due = object_expiry(&rules, &key, size.max(0) as u64, &tags, written_ms, day_ms)
                .is_some_and(|(at, _)| at <= now_ms);
            if due {
                self.delete_object(bucket, &key, None, now_ms)?;
                expired += 1;
            }
        }
        self.note_lifecycle_step(bucket, after.is_none(), now_ms, (judged, expired, aborted), next.is_none())?;
        Ok(CommandResult::Lifecycle { expired, aborted, next })
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
