//! Reading: an object's chunks one after another, each from a copy that
//! checks it, the next copy taking over where one fails.

use std::io;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use jadfs_common::sse::{DataKey, ObjectDecryptor};
use jadfs_common::{ChunkRef, NodeId};
use jadfs_meta::api::LocatedObject;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{ByteSource, STALL_TIMEOUT};
use crate::error::{Code, S3Error};
use crate::Gateway;

/// The bytes `start..=end` of an object, chunk after chunk. The stream ends
/// with an error only if no copy of a chunk can be read (a caller that has
/// not answered yet answers an error; one that has aborts the response,
/// so the client never takes a short body for a whole one).
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

/// An object's bytes `start..=end` as they were written (decrypted with
/// `keys`, from `ops::sse::open`, if it is encrypted): the source of a copy
/// that cannot share its source's chunks.
pub struct PlainReader {
    pieces: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>>,
    decryptor: Option<ObjectDecryptor>,
}

impl PlainReader {
    pub fn new(
        gw: std::sync::Arc<Gateway>,
        object: &LocatedObject,
        keys: Option<Vec<(u64, DataKey)>>,
        (start, end): (u64, u64),
    ) -> Result<PlainReader, S3Error> {
        let decryptor = keys.map(|keys| ObjectDecryptor::new(keys, start));
        let manifest = &object.manifest;
        let pieces: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, io::Error>> + Send>> = if manifest.size == 0 {
            Box::pin(futures_util::stream::empty())
        } else if let Some(inline) = &manifest.inline {
            let range = inline.get(start as usize..=end as usize).ok_or(Code::InvalidRange)?;
            Box::pin(futures_util::stream::once(std::future::ready(Ok(Bytes::copy_from_slice(range)))))
        } else {
            let chunks = manifest.chunks.iter().cloned().zip(object.locations.iter().cloned()).collect();
            Box::pin(read_object(gw, chunks, start, end))
        };
        Ok(PlainReader { pieces, decryptor })
    }
}

impl ByteSource for PlainReader {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, S3Error> {
        let Some(piece) = self.pieces.next().await else { return Ok(None) };
        let piece = piece.map_err(|e| {
            S3Error::new(Code::ServiceUnavailable)
                .with_message("No copy of the source's data could be read; please retry.")
                .caused_by(e)
        })?;
        Ok(Some(match &mut self.decryptor {
            Some(decryptor) => decryptor.applied(&piece),
            None => piece,
        }))
    }
}

/// What to ask the next copy of a chunk of `size` bytes for, when the
/// client wants bytes up to `to` and has them up to `position`: the whole
/// chunk (None) or the rest as a range. Nodes check every block they send,
/// ranges too, so a copy taking over from one that failed resumes exactly
/// where it stopped.
fn copy_range(size: u64, position: u64, to: u64) -> Option<(u64, u64)> {
    (position != 0 || to != size - 1).then_some((position, to))
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
        let range = copy_range(chunk.size, position, to);
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
                Ok(bytes) => {
                    if bytes.len() as u64 > to + 1 - position {
                        failures.push(format!("node {node}: more bytes than asked for"));
                        break;
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
    fn a_copy_taking_over_resumes_where_the_last_stopped() {
        // First copy, whole chunk: no range.
        assert_eq!(copy_range(100, 0, 99), None);
        assert_eq!(copy_range(1, 0, 0), None);
        // The first copy failed after 40 bytes: the next sends the rest.
        assert_eq!(copy_range(100, 40, 99), Some((40, 99)));
        // A client's range, from its start or where a failed copy stopped.
        assert_eq!(copy_range(100, 10, 49), Some((10, 49)));
        assert_eq!(copy_range(100, 30, 49), Some((30, 49)));
        assert_eq!(copy_range(100, 0, 49), Some((0, 49)));
    }
}
