//! The scrubber: re-reads every chunk the node holds, checking each block,
//! at a rate limit, so a copy that rotted or vanished on a disk no one reads
//! is found (quarantined, noted lost, reported, made again) long before
//! the other copies could go too. Its progress is kept in `scrub.json`, so a
//! restart resumes a pass where it stopped.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jadfs_common::node::ScrubStatus;
use jadfs_common::{now_ms, ChunkId};
use tokio::sync::Notify;

use crate::error::StoreError;
use crate::fs::write_file_durable;
use crate::store::{read_batch, ChunkReader, ChunkStore};

/// A new pass begins this long after the last one began (or at once when
/// asked for).
const PASS_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// With no rate given, the rate that reads everything held in this long:
/// under the 7 days within which every copy is to have been checked.
const PASS_TARGET: Duration = Duration::from_secs(6 * 24 * 3600);
/// The slowest automatic rate, bytes per second.
const MIN_AUTO_RATE: u64 = 1 << 20;
/// Progress is saved at least this often during a pass.
const SAVE_EVERY: Duration = Duration::from_secs(10);

pub struct Scrubber {
    store: Arc<ChunkStore>,
    /// Bytes per second; None: enough for a pass in [`PASS_TARGET`].
    rate: Option<u64>,
    path: PathBuf,
    status: Mutex<ScrubStatus>,
    wake: Notify,
}

impl Scrubber {
    /// A scrubber for `store`, reading at `rate_mib_s` MiB/s (None: automatic),
    /// its progress loaded from the last run.
    pub fn new(store: Arc<ChunkStore>, rate_mib_s: Option<f64>) -> Arc<Scrubber> {
        let path = store.root().join("scrub.json");
        let status = match std::fs::read(&path) {
            Ok(raw) => serde_json::from_slice(&raw).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "scrub progress unreadable; starting afresh");
                ScrubStatus::default()
            }),
            Err(_) => ScrubStatus::default(),
        };
        let rate = rate_mib_s.map(|r| ((r * (1 << 20) as f64) as u64).max(1));
        Arc::new(Scrubber { store, rate, path, status: Mutex::new(status), wake: Notify::new() })
    }

    pub fn status(&self) -> ScrubStatus {
        self.status.lock().unwrap().clone()
    }

    /// Starts a pass now, unless one is under way.
    pub fn start(&self) -> ScrubStatus {
        {
            let mut status = self.status.lock().unwrap();
            if !status.running {
                self.begin_pass(&mut status);
            }
        }
        self.wake.notify_one();
        self.status()
    }

    fn begin_pass(&self, status: &mut ScrubStatus) {
        let total = self.store.totals().map(|(_, bytes)| bytes).unwrap_or(0);
        let rate = self.rate.unwrap_or_else(|| (total / PASS_TARGET.as_secs()).max(MIN_AUTO_RATE));
        *status = ScrubStatus {
            running: true,
            pass_started_ms: Some(now_ms()),
            pass_total_bytes: total,
            rate_bytes_per_s: rate,
            ..status.clone()
        };
        (status.cursor, status.checked_chunks, status.checked_bytes, status.bad_copies) = (None, 0, 0, 0);
    }

    /// Runs for the life of the node.
    pub async fn run(self: Arc<Self>) {
        loop {
            let due = {
                let mut status = self.status.lock().unwrap();
                let since = status.pass_started_ms.map_or(u64::MAX, |at| (now_ms() - at).max(0) as u64);
                if !status.running && since >= PASS_INTERVAL.as_millis() as u64 {
                    self.begin_pass(&mut status);
                }
                status.running
            };
            if !due {
                let _ = tokio::time::timeout(Duration::from_secs(60), self.wake.notified()).await;
                continue;
            }
            if let Err(e) = self.pass().await {
                tracing::error!(error = %e, "scrub pass interrupted; resuming shortly");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }

    /// Runs the current pass from its cursor to its end.
    async fn pass(&self) -> Result<(), StoreError> {
        let rate = self.status().rate_bytes_per_s.max(1);
        let mut pace = Pace::new(rate);
        let mut saved = Instant::now();
        loop {
            let cursor = self.status().cursor;
            let page = self.store.list(cursor.as_ref(), 100)?;
            if page.is_empty() {
                let summary = {
                    let mut status = self.status.lock().unwrap();
                    status.running = false;
                    status.last_completed_ms = Some(now_ms());
                    (status.last_pass_chunks, status.last_pass_bad_copies) = (status.checked_chunks, status.bad_copies);
                    status.clone()
                };
                tracing::info!(chunks = summary.checked_chunks, bad = summary.bad_copies, "scrub pass complete");
                self.save();
                return Ok(());
            }
            for info in page {
                let sound = self.check(info.id, &mut pace).await?;
                let mut status = self.status.lock().unwrap();
                status.cursor = Some(info.id);
                status.checked_chunks += 1;
                status.checked_bytes += info.size;
                status.bad_copies += u64::from(!sound);
            }
            if saved.elapsed() >= SAVE_EVERY {
                self.save();
                saved = Instant::now();
            }
        }
    }

    /// Reads one chunk whole, checked, at the pace; false if the copy was
    /// bad or gone (it is then quarantined and noted lost by the store).
    async fn check(&self, id: ChunkId, pace: &mut Pace) -> Result<bool, StoreError> {
        let store = self.store.clone();
        let chunk = match tokio::task::spawn_blocking(move || store.open_chunk(&id)).await {
            Ok(Ok(chunk)) => chunk,
            Ok(Err(StoreError::NotFound)) => return Ok(true), // deleted since it was listed
            Ok(Err(StoreError::FileGone)) => return Ok(false),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(StoreError::Io(std::io::Error::other(e))),
        };
        let inode = chunk.inode;
        let mut reader = ChunkReader::new(chunk, None);
        loop {
            match read_batch(reader).await {
                Ok((next, (blocks, end))) => {
                    pace.wait(blocks.iter().map(|b| b.len() as u64).sum()).await;
                    if end {
                        break;
                    }
                    reader = Ok(next);
                }
                Err(e) if e.means_bad_copy() => {
                    let e = self.store.copy_failed(id, inode, e).await;
                    tracing::error!(chunk = %id, error = %e, "scrub found a bad copy");
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
        }
        self.store.verified(&id)?;
        Ok(true)
    }

    fn save(&self) {
        let status = self.status();
        let raw = serde_json::to_vec(&status).expect("the status serializes");
        if let Err(e) = write_file_durable(&self.path, &raw) {
            tracing::warn!(error = %e, "could not save scrub progress");
        }
    }
}

/// Keeps reading at or under a rate: waits until the bytes read so far
/// could have been read at it.
struct Pace {
    rate: u64,
    began: Instant,
    bytes: u64,
}

impl Pace {
    fn new(rate: u64) -> Pace {
        Pace { rate, began: Instant::now(), bytes: 0 }
    }

    async fn wait(&mut self, bytes: u64) {
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.rate as f64);
        if let Some(ahead) = due.checked_sub(self.began.elapsed()) {
            tokio::time::sleep(ahead).await;
        }
    }
}
