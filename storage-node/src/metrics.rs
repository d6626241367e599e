//! The storage node's metrics (served by `jadfs_common::metrics`): chunk
//! writes and reads with their latency, copies lost, and every few seconds
//! the disk, the chunks held and the scrubber's progress. Every series has
//! a `node` label: `jadfs server` runs three nodes in one process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jadfs_common::NodeId;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

use crate::scrub::Scrubber;
use crate::ChunkStore;

const WRITES: &str = "jadfs_node_chunk_writes_total";
const WRITTEN_BYTES: &str = "jadfs_node_chunk_written_bytes_total";
const WRITE_SECONDS: &str = "jadfs_node_chunk_write_duration_seconds";
const READS: &str = "jadfs_node_chunk_reads_total";
const READ_BYTES: &str = "jadfs_node_chunk_read_bytes_total";
const READ_SECONDS: &str = "jadfs_node_chunk_read_duration_seconds";
const LOST: &str = "jadfs_node_copies_lost_total";
const CAPACITY: &str = "jadfs_node_disk_capacity_bytes";
const FREE: &str = "jadfs_node_disk_free_bytes";
const CHUNKS: &str = "jadfs_node_chunks";
const CHUNK_BYTES: &str = "jadfs_node_chunk_bytes";
const SCRUB_RUNNING: &str = "jadfs_node_scrub_running";
const SCRUB_CHECKED: &str = "jadfs_node_scrub_pass_checked_bytes";
const SCRUB_TOTAL: &str = "jadfs_node_scrub_pass_total_bytes";
const SCRUB_BAD: &str = "jadfs_node_scrub_pass_bad_copies";
const SCRUB_LAST: &str = "jadfs_node_scrub_last_completed_timestamp_seconds";

/// How often the gauges are read from the index, the disk and the scrubber.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

pub fn describe() {
    describe_counter!(WRITES, "Chunk writes that ended, by result (ok, error).");
    describe_counter!(WRITTEN_BYTES, Unit::Bytes, "Bytes of chunks written.");
    describe_histogram!(WRITE_SECONDS, Unit::Seconds, "Time from a chunk write's first byte until it is durable.");
    describe_counter!(READS, "Chunk reads (whole or ranges) that ended, by result (ok, error).");
    describe_counter!(READ_BYTES, Unit::Bytes, "Checked bytes of chunks sent.");
    describe_histogram!(
        READ_SECONDS,
        Unit::Seconds,
        "Time from a chunk read's start until its last byte was handed on."
    );
    describe_counter!(LOST, "Copies found bad or gone (quarantined, reported to be made again).");
    describe_gauge!(CAPACITY, Unit::Bytes, "Size of the file system holding the chunks.");
    describe_gauge!(FREE, Unit::Bytes, "Free bytes beyond the reserve: what new chunks may take.");
    describe_gauge!(CHUNKS, "Chunks held.");
    describe_gauge!(CHUNK_BYTES, Unit::Bytes, "Bytes of the chunks held.");
    describe_gauge!(SCRUB_RUNNING, "1 while a scrub pass runs.");
    describe_gauge!(SCRUB_CHECKED, Unit::Bytes, "Bytes the current scrub pass has checked.");
    describe_gauge!(SCRUB_TOTAL, Unit::Bytes, "Bytes held when the current scrub pass began.");
    describe_gauge!(SCRUB_BAD, "Bad or missing copies the current scrub pass found.");
    describe_gauge!(SCRUB_LAST, Unit::Seconds, "When the last complete scrub pass ended (Unix time).");
}

fn result(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "error"
    }
}

pub(crate) fn chunk_written(node: NodeId, bytes: Option<u64>, started: Instant) {
    let node = node.to_string();
    counter!(WRITES, "node" => node.clone(), "result" => result(bytes.is_some())).increment(1);
    if let Some(bytes) = bytes {
        counter!(WRITTEN_BYTES, "node" => node.clone()).increment(bytes);
        histogram!(WRITE_SECONDS, "node" => node).record(started.elapsed());
    }
}

pub(crate) fn chunk_read(node: NodeId, bytes: u64, ok: bool, started: Instant) {
    let node = node.to_string();
    counter!(READS, "node" => node.clone(), "result" => result(ok)).increment(1);
    counter!(READ_BYTES, "node" => node.clone()).increment(bytes);
    if ok {
        histogram!(READ_SECONDS, "node" => node).record(started.elapsed());
    }
}

pub(crate) fn copy_lost(node: NodeId) {
    counter!(LOST, "node" => node.to_string()).increment(1);
}

/// Sets the gauges every few seconds, for as long as the node runs.
pub async fn sample(store: Arc<ChunkStore>, scrubber: Arc<Scrubber>) {
    let node = store.node_id().to_string();
    let set = |name: &'static str, value: f64| gauge!(name, "node" => node.clone()).set(value);
    loop {
        let held = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.totals()).await
        };
        if let Ok(Ok((chunks, bytes))) = held {
            set(CHUNKS, chunks as f64);
            set(CHUNK_BYTES, bytes as f64);
        }
        let (free, capacity) = store.disk_space();
        set(CAPACITY, capacity as f64);
        set(FREE, free as f64);
        let scrub = scrubber.status();
        set(SCRUB_RUNNING, if scrub.running { 1.0 } else { 0.0 });
        set(SCRUB_CHECKED, scrub.checked_bytes as f64);
        set(SCRUB_TOTAL, scrub.pass_total_bytes as f64);
        set(SCRUB_BAD, scrub.bad_copies as f64);
        if let Some(ms) = scrub.last_completed_ms {
            set(SCRUB_LAST, ms as f64 / 1000.0);
        }
        tokio::time::sleep(SAMPLE_EVERY).await;
    }
}
