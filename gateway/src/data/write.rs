//! Writing: a body cut into chunks, each streamed to all its nodes at once
//! and acknowledged once its write quorum holds it durably.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use jadfs_common::node::{ChunkPutResponse, PutMessage, Trailer};
use jadfs_common::sse::Keystream;
use jadfs_common::{ChunkId, ChunkRef, NodeId};
use jadfs_meta::api::{CommandResult, LocatedObject, Replication};
use jadfs_meta::{lease, Command};
use jadfs_storage_node::client::ClientError;
use md5::{Digest, Md5};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{read_object, ByteSource, StoredData, STALL_TIMEOUT};
use crate::error::{Code, S3Error};
use crate::Gateway;

/// Time a node has, after the last byte of a chunk, to make it durable: a
/// few seconds, plus time to flush the chunk at a slow disk's 8 MiB/s. A
/// paused node takes a small chunk's bytes into its socket buffer and then
/// never answers; this bounds how long a write waits for it.
fn durable_timeout(len: u64) -> Duration {
    Duration::from_secs(5) + Duration::from_secs_f64(len as f64 / (8 << 20) as f64)
}
/// Once the write quorum is durable, how long the other copies may still
/// take before the write is acknowledged without them (the repair queue
/// makes them later).
const QUORUM_GRACE: Duration = Duration::from_secs(1);
/// Body pieces arrive in whatever sizes the client's socket gave (often a
/// few KiB); they go to the nodes in groups of about this size, because
/// every message costs a wake-up of each copy's sender task.
const SEND_SIZE: usize = 256 << 10;

/// Streams a decoded body into chunks of the gateway's chunk size, each
/// written to all its chosen nodes at once. Returns once enough copies of
/// every chunk are durable for `replication` to acknowledge the write;
/// nothing is committed to metadata here. A body of at most `inline_max`
/// bytes (but not empty) is returned inline instead, and no node sees it.
/// With a `cipher`, what is stored is the body encrypted by it (the MD5 is
/// still the body's own).
pub async fn store_body(
    gw: &Gateway,
    body: &mut impl ByteSource,
    max_size: u64,
    replication: Replication,
    inline_max: u64,
    cipher: Option<Keystream>,
) -> Result<StoredData, S3Error> {
    let mut stored = StoredData::empty();
    let write_id = stored.write_id;
    // The pins are renewed while the body streams; once it is stored, the
    // lease left is ample for the commit that follows.
    let filled = lease::renewing(
        write_id,
        |c| async move { gw.meta.write(&c).await },
        fill(gw, body, max_size, replication, inline_max, cipher, &mut stored),
    );
    match filled.await {
        Ok(()) => Ok(stored),
        Err(e) => {
            forget_write(gw, write_id).await;
            Err(e)
        }
    }
}

/// Drops the pins of a write that will not be committed, so what it stored
/// is collected after the grace period rather than when its pins expire.
pub async fn forget_write(gw: &Gateway, write_id: u64) {
    if let Err(e) = gw.meta.write(&Command::Unpin { write_id }).await {
        tracing::warn!(error = %e, "could not drop a failed write's pins; they expire");
    }
}

async fn fill(
    gw: &Gateway,
    body: &mut impl ByteSource,
    max_size: u64,
    replication: Replication,
    inline_max: u64,
    mut cipher: Option<Keystream>,
    stored: &mut StoredData,
) -> Result<(), S3Error> {
    let mut md5 = Md5::new();
    let mut writer: Option<ChunkWriter> = None;
    // The bytes so far, while the body may still fit inline.
    let mut small: Option<Vec<u8>> = (inline_max > 0).then(Vec::new);
    while let Some(data) = body.next_piece().await? {
        stored.size += data.len() as u64;
        if stored.size > max_size {
            return Err(S3Error::new(Code::EntityTooLarge));
        }
        md5.update(&data);
        let data = match &mut cipher {
            Some(cipher) => cipher.applied(&data),
            None => data,
        };
        if let Some(held) = &mut small {
            if stored.size <= inline_max {
                held.extend_from_slice(&data);
                continue;
            }
            let held = Bytes::from(std::mem::take(held));
            small = None;
            write_chunks(gw, replication, &mut writer, stored, held).await?;
        }
        write_chunks(gw, replication, &mut writer, stored, data).await?;
    }
    if let Some(last) = writer.take() {
        finish_chunk(last, stored).await?;
    }
    stored.inline = small.filter(|held| !held.is_empty());
    stored.md5 = md5.finalize().into();
    Ok(())
}

/// Appends `data` to the chunk being written, opening and finishing chunks
/// as they fill.
async fn write_chunks<'g>(
    gw: &'g Gateway,
    replication: Replication,
    writer: &mut Option<ChunkWriter<'g>>,
    stored: &mut StoredData,
    mut data: Bytes,
) -> Result<(), S3Error> {
    let chunk_size = gw.config.chunk_size;
    while !data.is_empty() {
        if writer.is_none() {
            *writer = Some(ChunkWriter::open(gw, replication, stored.write_id).await?);
        }
        let w = writer.as_mut().expect("just opened");
        let room = (chunk_size - w.len) as usize;
        w.write(data.split_to(room.min(data.len()))).await?;
        if w.len == chunk_size {
            let full = writer.take().expect("just written");
            finish_chunk(full, stored).await?;
        }
    }
    Ok(())
}

async fn finish_chunk(writer: ChunkWriter<'_>, stored: &mut StoredData) -> Result<(), S3Error> {
    let offset = stored.chunks.iter().map(|c| c.size).sum();
    let (chunk, nodes) = writer.finish(offset).await?;
    stored.chunks.push(chunk);
    stored.placement.push(nodes);
    Ok(())
}

/// One chunk being written to several nodes. A node that fails is dropped
/// while enough others remain to acknowledge the write (the repair queue
/// makes the missing copies later). Dropped unfinished (the client went
/// away, or its body failed a check), it aborts the node requests, so the
/// nodes discard what they received.
struct ChunkWriter<'g> {
    gw: &'g Gateway,
    /// The write this chunk belongs to, which pins it.
    write_id: u64,
    copies: Vec<Copy>,
    /// Copies that must be durable for the write to succeed.
    required: usize,
    hasher: Sha256,
    crc32c: u32,
    len: u64,
    /// Pieces written but not yet sent, and their length (under SEND_SIZE).
    gathered: Vec<Bytes>,
    gathered_len: usize,
    /// Whether a node refused the chunk for want of disk space: if the
    /// write fails, the client is told storage is full, not to retry.
    refused_full: bool,
}

/// One node's share of a chunk write; `sender` is None once it failed.
struct Copy {
    node: NodeId,
    sender: Option<mpsc::Sender<PutMessage>>,
    task: JoinHandle<Result<ChunkPutResponse, ClientError>>,
}

impl<'g> ChunkWriter<'g> {
    async fn open(gw: &'g Gateway, replication: Replication, write_id: u64) -> Result<ChunkWriter<'g>, S3Error> {
        let required = replication.acknowledge_after();
        let nodes = gw.pick_nodes(replication.written_inline(), required).await?;
        let copies = nodes
            .into_iter()
            .map(|node| {
                let (tx, rx) = mpsc::channel(8);
                let storage = gw.storage.clone();
                let task = tokio::spawn(async move { storage.put_chunk(&node.addr, rx).await });
                Copy { node: node.id, sender: Some(tx), task }
            })
            .collect();
        Ok(ChunkWriter {
            gw,
            write_id,
            copies,
            required,
            hasher: Sha256::new(),
            crc32c: 0,
            len: 0,
            gathered: Vec::new(),
            gathered_len: 0,
            refused_full: false,
        })
    }

    async fn write(&mut self, piece: Bytes) -> Result<(), S3Error> {
        self.hasher.update(&piece);
        self.crc32c = crc32c::crc32c_append(self.crc32c, &piece);
        self.len += piece.len() as u64;
        self.gathered_len += piece.len();
        self.gathered.push(piece);
        if self.gathered_len >= SEND_SIZE {
            self.send().await?;
        }
        Ok(())
    }

    /// Hands the gathered pieces to every copy still writing.
    async fn send(&mut self) -> Result<(), S3Error> {
        let group = std::mem::take(&mut self.gathered);
        self.gathered_len = 0;
        self.send_all(|| PutMessage::Data(group.clone())).await
    }

    /// Hands a message to every copy still writing.
    async fn send_all(&mut self, message: impl Fn() -> PutMessage) -> Result<(), S3Error> {
        for i in 0..self.copies.len() {
            let Some(sender) = &self.copies[i].sender else { continue };
            match tokio::time::timeout(STALL_TIMEOUT, sender.send(message())).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    // The node's request ended early: its result says why.
                    let reason = match (&mut self.copies[i].task).await {
                        Ok(Err(e)) => {
                            self.refused_full |= e.is_disk_full();
                            e.to_string()
                        }
                        other => format!("{other:?}"),
                    };
                    self.drop_copy(i, format!("failed during a chunk write: {reason}"))?;
                }
                Err(_) => {
                    self.copies[i].task.abort();
                    self.drop_copy(i, format!("took no bytes for {STALL_TIMEOUT:?}"))?;
                }
            }
        }
        Ok(())
    }

    /// Gives up on one copy that failed; an error if too few are left.
    fn drop_copy(&mut self, i: usize, reason: String) -> Result<(), S3Error> {
        self.note_failure(i, &reason);
        self.forgo_copy(i, reason)
    }

    /// Goes on without copy `i`; an error if too few are left.
    fn forgo_copy(&mut self, i: usize, reason: String) -> Result<(), S3Error> {
        let node = self.copies[i].node;
        self.copies[i].sender = None;
        let left = self.copies.iter().filter(|c| c.sender.is_some()).count();
        if left < self.required {
            return Err(self.failed(format!("storage node {node} {reason}; {left} copies left")));
        }
        Ok(())
    }

    /// The error of a chunk write that cannot go on: storage full if a node
    /// refused it for want of space, otherwise unavailable (try again).
    fn failed(&self, cause: String) -> S3Error {
        if self.refused_full {
            tracing::warn!(%cause, "write failed: storage nodes are full");
            return S3Error::new(Code::InsufficientStorage).caused_by(cause);
        }
        unavailable(cause)
    }

    /// Logs why copy `i` failed and has the gateway avoid its node a while.
    fn note_failure(&self, i: usize, reason: &str) {
        let node = self.copies[i].node;
        tracing::warn!(node, %reason, "storage node dropped from a chunk write");
        self.gw.note_node_failure(node);
    }

    /// Ends the chunk and waits until the nodes still writing hold it
    /// durably: all of them, or once the write quorum has answered, those
    /// that answer within a short grace. Returns the chunk and its holders.
    ///
    /// The chunk is pinned for the write, so that it is not collected before
    /// the write commits, and the pin must apply before any node is told to
    /// keep the bytes: a node still to delete an older copy of the chunk
    /// (the pin names it) would delete the new one too, so it is sent no
    /// end and discards what it received. Were the end sent first, a node
    /// could keep the bytes, carry out its deletion and have it recorded,
    /// all before a slow pin applied and found no deletion pending: the
    /// write would then commit copies that no longer exist.
    async fn finish(mut self, offset: u64) -> Result<(ChunkRef, Vec<NodeId>), S3Error> {
        let id = ChunkId::from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        let trailer = Trailer { id, crc32c: self.crc32c };
        self.gathered.push(Bytes::copy_from_slice(&trailer.to_bytes()));
        self.send().await?;
        let nodes: Vec<NodeId> = self.copies.iter().filter(|c| c.sender.is_some()).map(|c| c.node).collect();
        let refused = pin_chunk(self.gw, self.write_id, id, nodes).await?;
        for i in 0..self.copies.len() {
            if self.copies[i].sender.is_some() && refused.contains(&self.copies[i].node) {
                self.copies[i].task.abort();
                self.copies[i].sender = None;
            }
        }
        let left = self.copies.iter().filter(|c| c.sender.is_some()).count();
        if left < self.required {
            return Err(unavailable(format!(
                "{left} of {} copies on nodes that may keep them; nodes {refused:?} are still deleting an older copy",
                self.required
            )));
        }
        let holders = self.make_durable(id).await?;
        Ok((ChunkRef { id, offset, size: self.len }, holders))
    }

    /// Tells the copies still writing that the chunk is whole and waits for
    /// them to be durable (see [`ChunkWriter::finish`]); the nodes that hold
    /// them.
    async fn make_durable(&mut self, id: ChunkId) -> Result<Vec<NodeId>, S3Error> {
        self.send_all(|| PutMessage::End).await?;
        let len = self.len;
        let writing: Vec<usize> = (0..self.copies.len()).filter(|&i| self.copies[i].sender.take().is_some()).collect();
        let mut quorum = Quorum::new(self.required, tokio::time::Instant::now() + durable_timeout(len));
        {
            let mut waiting: FuturesUnordered<_> = self
                .copies
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| writing.contains(i))
                .map(|(i, copy)| async move { (i, (&mut copy.task).await) })
                .collect();
            while let Ok(Some((i, outcome))) = tokio::time::timeout_at(quorum.deadline, waiting.next()).await {
                match outcome {
                    Ok(Ok(stored)) if stored.id == id && stored.size == len => {
                        quorum.durable(i, tokio::time::Instant::now())
                    }
                    Ok(Ok(stored)) => {
                        tracing::error!(%id, stored = %stored.id, "a node stored other bytes than sent");
                        let reason =
                            format!("stored {} ({} bytes) where {id} ({len} bytes) was sent", stored.id, stored.size);
                        quorum.failed(i, reason);
                    }
                    Ok(Err(e)) => {
                        self.refused_full |= e.is_disk_full();
                        quorum.failed(i, e.to_string())
                    }
                    Err(e) => quorum.failed(i, e.to_string()),
                }
            }
        }
        for i in quorum.give_up_on_the_rest(&writing) {
            self.copies[i].task.abort();
        }
        for (i, reason) in &quorum.failures {
            self.note_failure(*i, reason);
        }
        if !quorum.reached() {
            let reasons: Vec<String> =
                quorum.failures.iter().map(|(i, r)| format!("node {}: {r}", self.copies[*i].node)).collect();
            let durable = quorum.holders.len();
            return Err(self.failed(format!("{durable} of {} copies durable; {}", self.required, reasons.join("; "))));
        }
        Ok(quorum.holders.iter().map(|&i| self.copies[i].node).collect())
    }
}

/// The copies of one chunk as they answer after its last byte: which hold
/// it durably, which failed and why, and until when to wait. Once the write
/// quorum holds it, the others get [`QUORUM_GRACE`] more, no longer.
struct Quorum {
    required: usize,
    deadline: tokio::time::Instant,
    /// Copies (by index) that hold the chunk durably, in the order they said so.
    holders: Vec<usize>,
    failures: Vec<(usize, String)>,
}

impl Quorum {
    fn new(required: usize, deadline: tokio::time::Instant) -> Quorum {
        Quorum { required, deadline, holders: Vec::new(), failures: Vec::new() }
    }

    fn durable(&mut self, copy: usize, now: tokio::time::Instant) {
        self.holders.push(copy);
        if self.holders.len() == self.required {
            self.deadline = self.deadline.min(now + QUORUM_GRACE);
        }
    }

    fn failed(&mut self, copy: usize, reason: String) {
        self.failures.push((copy, reason));
    }

    /// At the deadline: the copies of `writing` that answered neither way
    /// count as failed, and are returned so their requests are stopped.
    fn give_up_on_the_rest(&mut self, writing: &[usize]) -> Vec<usize> {
        let silent: Vec<usize> = writing
            .iter()
            .copied()
            .filter(|i| !self.holders.contains(i) && !self.failures.iter().any(|(f, _)| f == i))
            .collect();
        for &i in &silent {
            self.failed(i, "did not make the chunk durable in time".into());
        }
        silent
    }

    fn reached(&self) -> bool {
        self.holders.len() >= self.required
    }
}

impl Drop for ChunkWriter<'_> {
    fn drop(&mut self) {
        for copy in &self.copies {
            copy.task.abort();
        }
    }
}

/// Bytes `start..=end` of `source` as the chunks of a new part, for
/// UploadPartCopy: source chunks wholly inside the range are reused (no
/// byte is written), the partial ones at the edges are written anew. Every
/// byte is read once, so the part's MD5 (its ETag) is exact.
pub async fn copy_range(
    gw: &std::sync::Arc<Gateway>,
    source: &LocatedObject,
    start: u64,
    end: u64,
    replication: Replication,
) -> Result<StoredData, S3Error> {
    let mut stored = StoredData::empty();
    match copy_into(gw, source, (start, end), replication, &mut stored).await {
        Ok(()) => Ok(stored),
        Err(e) => {
            forget_write(gw, stored.write_id).await;
            Err(e)
        }
    }
}

async fn copy_into(
    gw: &std::sync::Arc<Gateway>,
    source: &LocatedObject,
    (start, end): (u64, u64),
    replication: Replication,
    stored: &mut StoredData,
) -> Result<(), S3Error> {
    let mut md5 = Md5::new();
    if let Some(bytes) = &source.manifest.inline {
        // A small source has no chunks to reuse: its bytes make a new one.
        let range = bytes.get(start as usize..=end as usize).ok_or(Code::InvalidRange)?;
        let piece = Bytes::copy_from_slice(range);
        md5.update(&piece);
        stored.size = piece.len() as u64;
        let mut writer = None;
        write_chunks(gw, replication, &mut writer, stored, piece).await?;
        if let Some(last) = writer {
            finish_chunk(last, stored).await?;
        }
    }
    for (chunk, replicas) in source.manifest.chunks.iter().zip(&source.locations) {
        let chunk_end = chunk.offset + chunk.size - 1;
        if chunk.size == 0 || chunk_end < start || chunk.offset > end {
            continue;
        }
        let from = start.max(chunk.offset);
        let to = end.min(chunk_end);
        let whole = from == chunk.offset && to == chunk_end;
        let mut bytes = Box::pin(read_object(gw.clone(), vec![(chunk.clone(), replicas.clone())], from, to));
        let mut writer = if whole { None } else { Some(ChunkWriter::open(gw, replication, stored.write_id).await?) };
        while let Some(piece) = bytes.next().await {
            let piece = piece.map_err(|e| unavailable(format!("reading the copy source: {e}")))?;
            md5.update(&piece);
            if let Some(writer) = &mut writer {
                writer.write(piece).await?;
            }
        }
        let offset = stored.size;
        stored.size += to - from + 1;
        match writer {
            Some(writer) => {
                let (new_chunk, placement) = writer.finish(offset).await?;
                stored.chunks.push(new_chunk);
                stored.placement.push(placement);
            }
            None => {
                stored.chunks.push(ChunkRef { id: chunk.id, offset, size: chunk.size });
                stored.placement.push(replicas.clone());
            }
        }
    }
    stored.md5 = md5.finalize().into();
    Ok(())
}

/// Pins `chunk` for the write `write_id` (see `Command::Pin`): the nodes
/// of `nodes` it must not keep the chunk on.
async fn pin_chunk(gw: &Gateway, write_id: u64, chunk: ChunkId, nodes: Vec<NodeId>) -> Result<Vec<NodeId>, S3Error> {
    crate::pause_point("before-pin").await;
    match gw.meta.write(&lease::pin(write_id, chunk, nodes)).await? {
        CommandResult::Pinned { refused } => Ok(refused),
        other => Err(S3Error::internal(format!("a pin answered {other:?}"))),
    }
}

fn unavailable(cause: String) -> S3Error {
    tracing::warn!(%cause, "write failed");
    S3Error::new(Code::ServiceUnavailable).with_message("A storage node could not take the data; please retry.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quorum_waits_a_grace_for_the_rest_then_gives_up_on_them() {
        let start = tokio::time::Instant::now();
        let deadline = start + Duration::from_secs(30);
        let mut quorum = Quorum::new(2, deadline);
        quorum.durable(2, start);
        assert_eq!(quorum.deadline, deadline, "one copy is not the quorum");
        assert!(!quorum.reached());
        quorum.durable(0, start + Duration::from_secs(1));
        assert_eq!(quorum.deadline, start + Duration::from_secs(1) + QUORUM_GRACE, "the rest get a grace");
        assert!(quorum.reached());
        assert_eq!(quorum.give_up_on_the_rest(&[0, 1, 2]), [1], "the silent copy is stopped");
        assert_eq!(quorum.failures, [(1, "did not make the chunk durable in time".to_string())]);
        assert_eq!(quorum.holders, [2, 0]);

        // A grace never extends the deadline.
        let mut late = Quorum::new(1, start + Duration::from_millis(100));
        late.durable(0, start);
        assert_eq!(late.deadline, start + Duration::from_millis(100));

        // Failures leave the quorum short: the write fails with every reason.
        let mut short = Quorum::new(3, deadline);
        short.durable(0, start);
        short.failed(1, "refused".into());
        assert_eq!(short.give_up_on_the_rest(&[0, 1, 2]), [2]);
        assert!(!short.reached());
        assert_eq!(short.failures.len(), 2);
    }
}
