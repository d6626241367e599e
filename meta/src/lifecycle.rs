//! The lifecycle worker: on the leader, it walks every bucket that has
//! lifecycle rules in steps of [`STEP`] objects, each step one command
//! (`ApplyLifecycle`) that the state machine judges and carries out. It
//! keeps nothing between rounds, so a new leader simply starts the next
//! round from the first key.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{Command, CommandResult, MetaError, Query, QueryResult, Raft, DAY_MS};
use crate::nodes::is_leader;
use crate::repair::write;
use crate::state::ReadPool;

/// Objects judged per command.
const STEP: u32 = 1000;
/// The longest pause between rounds.
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// Runs for the life of the meta node; does work only while it leads. A
/// round every 24th of a `day` (at most hourly).
pub async fn run_lifecycle(raft: Raft, readers: Arc<ReadPool>, day: Duration) {
    let day_ms = (day.as_millis() as i64).max(1);
    if day_ms != DAY_MS {
        tracing::warn!(
            day_ms,
            "LIFECYCLE DEBUG: a lifecycle day lasts {day:?}, not 24 hours: objects expire that much sooner \
             (--lifecycle-day is for tests only)"
        );
    }
    let interval = (day / 24).clamp(Duration::from_millis(200), MAX_INTERVAL);
    loop {
        tokio::time::sleep(interval).await;
        if !is_leader(&raft) {
            continue;
        }
        if let Err(e) = round(&raft, &readers, day_ms).await {
            tracing::warn!(error = %e, "lifecycle round failed; the next one starts over");
        }
    }
}

async fn round(raft: &Raft, readers: &Arc<ReadPool>, day_ms: i64) -> Result<(), MetaError> {
    let QueryResult::Buckets(buckets) = readers.query(Query::ListBuckets).await? else {
        return Err(MetaError::Internal("unexpected answer to ListBuckets".into()));
    };
    for bucket in buckets.into_iter().filter(|b| b.lifecycle.as_ref().is_some_and(|r| !r.is_empty())) {
        let (mut expired, mut aborted) = (0, 0);
        let mut after = None;
        loop {
            let step = Command::ApplyLifecycle {
                bucket: bucket.name.clone(),
                after: after.take(),
                limit: STEP,
                now_ms: jadfs_common::now_ms(),
                day_ms,
            };
            match write(raft, step).await {
                Ok(CommandResult::Lifecycle { expired: e, aborted: a, next }) => {
                    (expired, aborted) = (expired + e, aborted + a);
                    crate::metrics::lifecycle_done(e, a);
                    match next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                // Deleted since it was listed: nothing left to do there.
                Err(MetaError::NoSuchBucket) => break,
                Ok(other) => return Err(MetaError::Internal(format!("unexpected lifecycle result {other:?}"))),
                Err(e) => return Err(e),
            }
            if !is_leader(raft) {
                return Ok(());
            }
        }
        if expired + aborted > 0 {
            tracing::info!(bucket = %bucket.name, expired, aborted, "lifecycle rules applied");
        }
    }
    Ok(())
}
