//! The data path: object bytes cut into chunks and streamed to storage
//! nodes (every copy in parallel, with back-pressure), and read back chunk
//! after chunk, failing over to another copy mid-stream.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::FuturesUnordered;
use futures_util::{Stream, StreamExt};
use jadfs_common::node::{ChunkPutResponse, PutMessage, Trailer};
use jadfs_common::{ChunkId, ChunkRef, NodeId};
use jadfs_meta::api::{LocatedObject, Replication};
use jadfs_storage_node::client::ClientError;
use md5::{Digest, Md5};
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::body::ObjectBody;
use crate::error::{Code, S3Error};
use crate::Gateway;

/// A storage node that takes no bytes, or sends none, for this long is
/// given up on (a copy elsewhere is used instead): a node cut off from the
/// network otherwise stalls a request until TCP gives up, many minutes later.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);
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

/// What storing a body produced.
pub struct StoredData {
    pub size: u64,
    pub md5: [u8; 16],
    pub chunks: Vec<ChunkRef>,
    /// `placement[i]`: the nodes holding `chunks[i]`.
    pub placement: Vec<Vec<NodeId>>,
    /// The bytes of a body small enough to keep in its manifest (no chunks).
    pub inline: Option<Vec<u8>>,
}

impl StoredData {
    pub fn empty() -> StoredData {
        StoredData { size: 0, md5: [0; 16], chunks: Vec::new(), placement: Vec::new(), inline: None }
    }
}

/// Where the bytes of an object come from: a decoded request body, or the
/// file part of a form upload.
pub trait ByteSource {
    /// The next piece, or None at the end (after every check passed).
    fn next_piece(&mut self) -> impl std::future::Future<Output = Result<Option<Bytes>, S3Error>>;
}

impl ByteSource for ObjectBody {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, S3Error> {
        self.next().await
    }
}

/// Streams a decoded body into chunks of the gateway's chunk size, each
/// written to all its chosen nodes at once. Returns once enough copies of
/// every chunk are durable for `replication` to acknowledge the write;
/// nothing is committed to metadata here. A body of at most `inline_max`
/// bytes (but not empty) is returned inline instead, and no node sees it.
pub async fn store_body(
    gw: &Gateway,
    body: &mut impl ByteSource,
    max_size: u64,
    replication: Replication,
    inline_max: u64,
) -> Result<StoredData, S3Error> {
    let mut md5 = Md5::new();
    let mut stored = StoredData::empty();
    let mut writer: Option<ChunkWriter> = None;
    // The bytes so far, while the body may still fit inline.
    let mut small: Option<Vec<u8>> = (inline_max > 0).then(Vec::new);
    while let Some(data) = body.next_piece().await? {
        stored.size += data.len() as u64;
        if stored.size > max_size {
            return Err(S3Error::new(Code::EntityTooLarge));
        }
        md5.update(&data);
        if let Some(held) = &mut small {
            if stored.size <= inline_max {
                held.extend_from_slice(&data);
                continue;
            }
            let held = Bytes::from(std::mem::take(held));
            small = None;
            write_chunks(gw, replication, &mut writer, &mut stored, held).await?;
        }
        write_chunks(gw, replication, &mut writer, &mut stored, data).await?;
    }
    if let Some(last) = writer.take() {
        finish_chunk(last, &mut stored).await?;
    }
    stored.inline = small.filter(|held| !held.is_empty());
    stored.md5 = md5.finalize().into();
    Ok(stored)
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
            *writer = Some(ChunkWriter::open(gw, replication).await?);
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
    copies: Vec<Copy>,
    /// Copies that must be durable for the write to succeed.
    required: usize,
    hasher: Sha256,
    crc32c: u32,
    len: u64,
    /// Pieces written but not yet sent, and their length (under SEND_SIZE).
    gathered: Vec<Bytes>,
    gathered_len: usize,
}

/// One node's share of a chunk write; `sender` is None once it failed.
struct Copy {
    node: NodeId,
    sender: Option<mpsc::Sender<PutMessage>>,
    task: JoinHandle<Result<ChunkPutResponse, ClientError>>,
}

impl<'g> ChunkWriter<'g> {
    async fn open(gw: &'g Gateway, replication: Replication) -> Result<ChunkWriter<'g>, S3Error> {
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
            copies,
            required,
            hasher: Sha256::new(),
            crc32c: 0,
            len: 0,
            gathered: Vec::new(),
            gathered_len: 0,
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
                        Ok(Err(e)) => e.to_string(),
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

    /// Gives up on one copy; an error if too few are left.
    fn drop_copy(&mut self, i: usize, reason: String) -> Result<(), S3Error> {
        let node = self.copies[i].node;
        self.copies[i].sender = None;
        self.note_failure(i, &reason);
        let left = self.copies.iter().filter(|c| c.sender.is_some()).count();
        if left < self.required {
            return Err(unavailable(format!("storage node {node} {reason}; {left} copies left")));
        }
        Ok(())
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
    async fn finish(mut self, offset: u64) -> Result<(ChunkRef, Vec<NodeId>), S3Error> {
        let id = ChunkId::from_bytes(std::mem::take(&mut self.hasher).finalize().into());
        let trailer = Trailer { id, crc32c: self.crc32c };
        self.gathered.push(Bytes::copy_from_slice(&trailer.to_bytes()));
        self.send().await?;
        self.send_all(|| PutMessage::End).await?;
        let (len, required) = (self.len, self.required);
        let writing: Vec<usize> = (0..self.copies.len()).filter(|&i| self.copies[i].sender.take().is_some()).collect();
        let mut holders = Vec::with_capacity(writing.len());
        let mut failures: Vec<(usize, String)> = Vec::new();
        {
            let mut waiting: FuturesUnordered<_> = self
                .copies
                .iter_mut()
                .enumerate()
                .filter(|(i, _)| writing.contains(i))
                .map(|(i, copy)| async move { (i, (&mut copy.task).await) })
                .collect();
            let mut deadline = tokio::time::Instant::now() + durable_timeout(len);
            while let Ok(Some((i, outcome))) = tokio::time::timeout_at(deadline, waiting.next()).await {
                let reason = match outcome {
                    Ok(Ok(stored)) if stored.id == id && stored.size == len => {
                        holders.push(i);
                        if holders.len() == required {
                            deadline = deadline.min(tokio::time::Instant::now() + QUORUM_GRACE);
                        }
                        continue;
                    }
                    Ok(Ok(stored)) => {
                        tracing::error!(%id, stored = %stored.id, "a node stored other bytes than sent");
                        format!("stored {} ({} bytes) where {id} ({len} bytes) was sent", stored.id, stored.size)
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                };
                failures.push((i, reason));
            }
        }
        for &i in &writing {
            if !holders.contains(&i) && !failures.iter().any(|(f, _)| *f == i) {
                self.copies[i].task.abort();
                failures.push((i, "did not make the chunk durable in time".into()));
            }
        }
        for (i, reason) in &failures {
            self.note_failure(*i, reason);
        }
        if holders.len() < required {
            let reasons: Vec<String> =
                failures.iter().map(|(i, r)| format!("node {}: {r}", self.copies[*i].node)).collect();
            return Err(unavailable(format!("{} of {required} copies durable; {}", holders.len(), reasons.join("; "))));
        }
        let holders = holders.iter().map(|&i| self.copies[i].node).collect();
        Ok((ChunkRef { id, offset, size: len }, holders))
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
    let mut md5 = Md5::new();
    let mut stored = StoredData::empty();
    if let Some(bytes) = &source.manifest.inline {
        // A small source has no chunks to reuse: its bytes make a new one.
        let range = bytes.get(start as usize..=end as usize).ok_or(Code::InvalidRange)?;
        let piece = Bytes::copy_from_slice(range);
        md5.update(&piece);
        stored.size = piece.len() as u64;
        let mut writer = None;
        write_chunks(gw, replication, &mut writer, &mut stored, piece).await?;
        if let Some(last) = writer {
            finish_chunk(last, &mut stored).await?;
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
        let mut writer = if whole { None } else { Some(ChunkWriter::open(gw, replication).await?) };
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
    Ok(stored)
}

fn unavailable(cause: String) -> S3Error {
    tracing::warn!(%cause, "write failed");
    S3Error::new(Code::ServiceUnavailable).with_message("A storage node could not take the data; please retry.")
}

/// The bytes `start..=end` of an object, chunk after chunk. The stream ends
/// with an error (and the client sees a short body) only if no copy of a
/// chunk can be read.
pub fn read_object(
    gw: std::sync::Arc<Gateway>,
    chunks: Vec<(ChunkRef, Vec<NodeId>)>,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, io::Error>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for (chunk, replicas) in &chunks {
            let chunk_end = chunk.offset + chunk.size - 1;
            if chunk.size == 0 || chunk_end < start || chunk.offset > end {
                continue;
            }
            let from = start.max(chunk.offset) - chunk.offset;
            let to = end.min(chunk_end) - chunk.offset;
            match read_chunk(&gw, chunk, replicas, from, to, &tx).await {
                Ok(true) => {}
                Ok(false) => return, // the client went away
                Err(e) => {
                    tracing::error!(chunk = %chunk.id, error = %e, "no copy of a chunk could be read");
                    let _ = tx.send(Err(io::Error::other(e))).await;
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

/// Sends bytes `from..=to` of a chunk, trying each copy in turn and
/// resuming where the last one stopped. Ok(false) if the receiver is gone.
async fn read_chunk(
    gw: &Gateway,
    chunk: &ChunkRef,
    replicas: &[NodeId],
    from: u64,
    to: u64,
    tx: &mpsc::Sender<Result<Bytes, io::Error>>,
) -> Result<bool, String> {
    let mut position = from;
    let mut failures = Vec::new();
    for node in replicas {
        let Some(addr) = gw.node_addr(*node).await else {
            failures.push(format!("node {node}: unknown"));
            continue;
        };
        // A whole chunk is always read whole, so the node checks it; after a
        // failed copy, the next one is read whole too and what was already
        // sent is skipped (a range of it would go unchecked).
        let whole = from == 0 && to == chunk.size - 1;
        let range = (!whole).then_some((position, to));
        let mut skip = if whole { position } else { 0 };
        let mut stream = match tokio::time::timeout(STALL_TIMEOUT, gw.storage.get_chunk(&addr, &chunk.id, range)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                failures.push(e.to_string());
                continue;
            }
            Err(_) => {
                failures.push(format!("node {node}: no answer in {STALL_TIMEOUT:?}"));
                continue;
            }
        };
        loop {
            let item = match tokio::time::timeout(STALL_TIMEOUT, stream.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    failures.push(format!("node {node}: no bytes for {STALL_TIMEOUT:?}"));
                    break;
                }
            };
            match item {
                Ok(mut bytes) => {
                    if skip > 0 {
                        let skipped = skip.min(bytes.len() as u64);
                        skip -= skipped;
                        bytes = bytes.slice(skipped as usize..);
                        if bytes.is_empty() {
                            continue;
                        }
                    }
                    position += bytes.len() as u64;
                    if tx.send(Ok(bytes)).await.is_err() {
                        return Ok(false);
                    }
                }
                Err(e) => {
                    failures.push(e.to_string());
                    break;
                }
            }
        }
        if position > to {
            return Ok(true);
        }
        tracing::warn!(chunk = %chunk.id, node, position, "chunk read stopped early; trying another copy");
    }
    Err(format!("chunk {}: {}", chunk.id, failures.join("; ")))
}
