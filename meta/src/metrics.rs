//! The meta node's metrics (served by `jadfs_common::metrics`): Raft's
//! state, what the state machine holds (objects, chunks, the repair queue,
//! deletions), storage nodes by state, and what the leader's repairer and
//! collector did.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metrics::{counter, describe_counter, describe_gauge, gauge, Unit};

use crate::api::{NodeState, Query, QueryResult, Raft};
use crate::log_store::LogStore;
use crate::nodes::{is_leader, Liveness};
use crate::state::ReadPool;

const TERM: &str = "jadfs_meta_raft_term";
const LEADER: &str = "jadfs_meta_raft_leader";
const IS_LEADER: &str = "jadfs_meta_raft_is_leader";
const LAST_LOG: &str = "jadfs_meta_raft_last_log_index";
const COMMITTED: &str = "jadfs_meta_raft_committed_index";
const APPLIED: &str = "jadfs_meta_raft_applied_index";
const LOG_ENTRIES: &str = "jadfs_meta_raft_log_entries";
const LOG_BYTES: &str = "jadfs_meta_raft_log_bytes";
const SNAPSHOT_INDEX: &str = "jadfs_meta_raft_snapshot_index";
const SNAPSHOT_TIME: &str = "jadfs_meta_raft_snapshot_timestamp_seconds";
const BUCKETS: &str = "jadfs_meta_buckets";
const OBJECTS: &str = "jadfs_meta_objects";
const CHUNKS: &str = "jadfs_meta_chunks";
const CHUNK_BYTES: &str = "jadfs_meta_chunk_bytes";
const ORPHANED: &str = "jadfs_meta_orphaned_chunks";
const REPAIR_QUEUE: &str = "jadfs_meta_repair_queue_chunks";
const DELETIONS: &str = "jadfs_meta_pending_deletions";
const NODES: &str = "jadfs_meta_storage_nodes";
const COPIES_MADE: &str = "jadfs_meta_repair_copies_total";
const REPAIR_FAILURES: &str = "jadfs_meta_repair_failures_total";
const COPIES_DELETED: &str = "jadfs_meta_copies_deleted_total";
const LIFECYCLE_EXPIRED: &str = "jadfs_meta_lifecycle_expired_objects_total";
const LIFECYCLE_ABORTED: &str = "jadfs_meta_lifecycle_aborted_uploads_total";
const WRITE_TIMEOUTS: &str = "jadfs_meta_raft_write_timeouts_total";

/// Raft's gauges move fast and cost nothing to read; the state's need
/// counting queries, so they are read less often.
const RAFT_EVERY: Duration = Duration::from_secs(2);
const STATE_EVERY: u32 = 5;

pub fn describe() {
    describe_gauge!(TERM, "Current Raft term.");
    describe_gauge!(LEADER, "Node id of the Raft leader this node follows (0: none known).");
    describe_gauge!(IS_LEADER, "1 while this node is the Raft leader.");
    describe_gauge!(LAST_LOG, "Index of the last entry in this node's Raft log.");
    describe_gauge!(COMMITTED, "Highest Raft log index this node knows committed.");
    describe_gauge!(APPLIED, "Highest Raft log index applied to this node's state machine.");
    describe_gauge!(LOG_ENTRIES, "Raft log entries kept (not yet purged behind a snapshot).");
    describe_gauge!(LOG_BYTES, Unit::Bytes, "Size of the Raft log's database files.");
    describe_gauge!(SNAPSHOT_INDEX, "Last log index of the newest snapshot.");
    describe_gauge!(SNAPSHOT_TIME, Unit::Seconds, "When the newest snapshot was written (Unix time).");
    describe_gauge!(BUCKETS, "Buckets.");
    describe_gauge!(OBJECTS, "Objects, by where their bytes are (inline in metadata, or in chunks).");
    describe_gauge!(CHUNKS, "Distinct chunks in use.");
    describe_gauge!(CHUNK_BYTES, Unit::Bytes, "Bytes of the chunks in use, each counted once.");
    describe_gauge!(ORPHANED, "Chunks nothing uses, waiting for collection.");
    describe_gauge!(REPAIR_QUEUE, "Chunks waiting for more copies.");
    describe_gauge!(DELETIONS, "Copies storage nodes are still to delete.");
    describe_gauge!(NODES, "Storage nodes by state, as the leader sees them (0 on followers).");
    describe_counter!(COPIES_MADE, "Copies the repairer had made (repairs of lost or missing copies).");
    describe_counter!(REPAIR_FAILURES, "Repair rounds that failed (retried).");
    describe_counter!(COPIES_DELETED, "Copies storage nodes deleted for the collector or trimmer.");
    describe_counter!(LIFECYCLE_EXPIRED, "Objects deleted by lifecycle rules (on the leader that applied them).");
    describe_counter!(LIFECYCLE_ABORTED, "Multipart uploads aborted by lifecycle rules.");
    describe_counter!(WRITE_TIMEOUTS, "Raft writes not answered in time, whose commands were answered unavailable.");
}

pub(crate) fn lifecycle_done(expired: u64, aborted: u64) {
    counter!(LIFECYCLE_EXPIRED).increment(expired);
    counter!(LIFECYCLE_ABORTED).increment(aborted);
}

pub(crate) fn copies_made(n: usize) {
    counter!(COPIES_MADE).increment(n as u64);
}

pub(crate) fn raft_write_timed_out() {
    counter!(WRITE_TIMEOUTS).increment(1);
}

pub(crate) fn repair_failed() {
    counter!(REPAIR_FAILURES).increment(1);
}

pub(crate) fn copies_deleted(n: usize) {
    counter!(COPIES_DELETED).increment(n as u64);
}

/// What the sampler reads.
pub(crate) struct Sources {
    pub raft: Raft,
    pub log: LogStore,
    pub readers: Arc<ReadPool>,
    pub liveness: Arc<Liveness>,
    pub data_dir: PathBuf,
}

/// Sets the gauges every few seconds, for as long as the node runs.
pub(crate) async fn sample(sources: Sources) {
    for round in 0u32.. {
        sample_raft(&sources);
        if round % STATE_EVERY == 0 {
            if let Err(e) = sample_state(&sources).await {
                tracing::debug!(error = %e, "reading the state's counts for metrics failed");
            }
        }
        tokio::time::sleep(RAFT_EVERY).await;
    }
}

fn sample_raft(s: &Sources) {
    let m = s.raft.metrics().borrow().clone();
    let index = |id: Option<openraft::LogId<u64>>| id.map_or(0.0, |id| id.index as f64);
    gauge!(TERM).set(m.current_term as f64);
    gauge!(LEADER).set(m.current_leader.unwrap_or(0) as f64);
    gauge!(IS_LEADER).set(if m.current_leader == Some(m.id) { 1.0 } else { 0.0 });
    gauge!(LAST_LOG).set(m.last_log_index.unwrap_or(0) as f64);
    gauge!(COMMITTED).set(s.log.committed_index().unwrap_or(0) as f64);
    gauge!(APPLIED).set(index(m.last_applied));
    let first_kept = m.purged.map_or(0, |id| id.index + 1);
    gauge!(LOG_ENTRIES).set(m.last_log_index.map_or(0, |last| (last + 1).saturating_sub(first_kept)) as f64);
    gauge!(SNAPSHOT_INDEX).set(index(m.snapshot));
    let size = |name: &str| std::fs::metadata(s.data_dir.join(name)).map_or(0, |m| m.len());
    gauge!(LOG_BYTES).set((size("raft-log.db") + size("raft-log.db-wal")) as f64);
    let written = std::fs::metadata(s.data_dir.join("snapshots").join("current.db")).and_then(|m| m.modified());
    if let Ok(age) = written.map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()) {
        gauge!(SNAPSHOT_TIME).set(age.as_secs_f64());
    }
}

async fn sample_state(s: &Sources) -> Result<(), crate::MetaError> {
    if let QueryResult::Stats(stats) = s.readers.query(Query::Stats).await? {
        gauge!(BUCKETS).set(stats.buckets as f64);
        gauge!(OBJECTS, "stored" => "inline").set(stats.inline_objects as f64);
        gauge!(OBJECTS, "stored" => "chunks").set(stats.objects.saturating_sub(stats.inline_objects) as f64);
        gauge!(CHUNKS).set(stats.chunks as f64);
        gauge!(CHUNK_BYTES).set(stats.chunk_bytes as f64);
        gauge!(ORPHANED).set(stats.orphaned_chunks as f64);
        gauge!(REPAIR_QUEUE).set(stats.repair_queue as f64);
        gauge!(DELETIONS).set(stats.pending_deletions as f64);
    }
    let leading = is_leader(&s.raft);
    let mut nodes = s.readers.list_nodes().await?;
    s.liveness.annotate(&mut nodes);
    for state in [NodeState::Alive, NodeState::Suspect, NodeState::Dead] {
        let count = if leading { nodes.iter().filter(|n| n.state == state).count() } else { 0 };
        gauge!(NODES, "state" => state.as_str()).set(count as f64);
    }
    Ok(())
}
