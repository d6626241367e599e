//! Reading: an object's chunks one after another, each from a copy that
//! checks it, the next copy taking over where one fails.

use std::io;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use jadfs_common::{ChunkRef, NodeId};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::STALL_TIMEOUT;
use crate::Gateway;

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

/// How to read bytes `from..=to` of a chunk of `size` bytes from the next
/// copy, when the client already has them up to `position`.
#[derive(Debug, PartialEq, Eq)]
struct CopyRead {
    /// The range to ask the node for; None: the whole chunk.
    range: Option<(u64, u64)>,
    /// Bytes at the start of what the node sends that the client already has.
    skip: u64,
}

impl CopyRead {
    /// A whole chunk is always read whole, so the node checks it; after a
    /// failed copy, the next one is read whole too and what was already sent
    /// is skipped (a range of it would go unchecked). A client's own range
    /// is read as a range, from where the last copy stopped.
    fn plan(size: u64, from: u64, to: u64, position: u64) -> CopyRead {
        if from == 0 && to == size - 1 {
            CopyRead { range: None, skip: position }
        } else {
            CopyRead { range: Some((position, to)), skip: 0 }
        }
    }
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
        let CopyRead { range, mut skip } = CopyRead::plan(chunk.size, from, to, position);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_chunk_is_read_whole_from_every_copy_and_a_range_resumes() {
        // First copy, whole chunk: no range, nothing to skip.
        assert_eq!(CopyRead::plan(100, 0, 99, 0), CopyRead { range: None, skip: 0 });
        // The first copy failed after 40 bytes: the next is read whole
        // (checked) and its first 40 bytes are dropped.
        assert_eq!(CopyRead::plan(100, 0, 99, 40), CopyRead { range: None, skip: 40 });
        // A client's range resumes where the failed copy stopped.
        assert_eq!(CopyRead::plan(100, 10, 49, 10), CopyRead { range: Some((10, 49)), skip: 0 });
        assert_eq!(CopyRead::plan(100, 10, 49, 30), CopyRead { range: Some((30, 49)), skip: 0 });
        assert_eq!(CopyRead::plan(1, 0, 0, 0), CopyRead { range: None, skip: 0 });
    }
}
