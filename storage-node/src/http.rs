//! The storage node's HTTP API. It speaks only of chunks: the node knows
//! nothing of buckets or keys.
//!
//! - `PUT /v1/chunks/{id}`: store a chunk whose bytes must hash to `id`
//! - `POST /v1/chunks`: store a chunk named by the hash of its bytes
//! - `GET|HEAD /v1/chunks/{id}` (with `Range: bytes=a-b`), `DELETE /v1/chunks/{id}`
//! - `POST /v1/chunks/{id}/replicate` with `{"to": node id}`: copy a chunk to another registered node
//! - `GET /v1/chunks?after=&limit=`, `GET /v1/stats`, `GET /health`
//! - `GET /metrics`: Prometheus text (a token or loopback, not the secret)
//! - `GET /v1/scrub`: the scrubber's progress; `POST /v1/scrub`: start a pass now
//!
//! Every route but `/health` and `/metrics` needs the cluster secret.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{MessageBody, SizedStream};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use futures_util::StreamExt;
use jadfs_common::node::ReplicateTo;
use jadfs_common::node::{ChunkPutResponse, NodeStats, PutMessage};
use jadfs_common::ChunkId;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream_shim::ReceiverStream;

use crate::client::StorageClient;
use crate::error::StoreError;
use crate::scrub::Scrubber;
use crate::store::{read_stream, receive_chunk, ChunkStore, WriteCheck};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("range not satisfiable")]
    RangeNotSatisfiable,
    #[error("request body error: {0}")]
    Body(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("refused: {0}")]
    Unauthorized(String),
    #[error("no registered storage node {0}")]
    UnknownNode(jadfs_common::NodeId),
}

impl ResponseError for NodeError {
    fn status_code(&self) -> StatusCode {
        match self {
            NodeError::Store(e) if e.is_disk_full() => StatusCode::INSUFFICIENT_STORAGE,
            NodeError::Store(StoreError::NotFound | StoreError::FileGone) => StatusCode::NOT_FOUND,
            NodeError::Store(StoreError::HashMismatch { .. } | StoreError::CrcMismatch { .. }) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            NodeError::Store(StoreError::TooLarge(_)) => StatusCode::PAYLOAD_TOO_LARGE,
            NodeError::Store(StoreError::Aborted | StoreError::NoTrailer)
            | NodeError::Body(_)
            | NodeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            NodeError::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            NodeError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            NodeError::UnknownNode(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.status_code().is_server_error() {
            tracing::error!(error = %self, "storage node request failed");
        }
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// A tiny adapter so a tokio receiver can be a response body stream without
/// pulling in another crate.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct ReceiverStream<T>(pub tokio::sync::mpsc::Receiver<T>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/metrics", web::get().to(jadfs_common::metrics::scrape))
        .route("/v1/stats", web::get().to(stats))
        .route("/v1/chunks", web::post().to(post_chunk))
        .route("/v1/chunks", web::get().to(list_chunks))
        .route("/v1/chunks/{id}", web::put().to(put_chunk))
        .route("/v1/chunks/{id}", web::get().to(get_chunk))
        .route("/v1/chunks/{id}", web::head().to(head_chunk))
        .route("/v1/chunks/{id}", web::delete().to(delete_chunk))
        .route("/v1/chunks/{id}/replicate", web::post().to(replicate_chunk))
        .route("/v1/scrub", web::get().to(scrub_status))
        .route("/v1/scrub", web::post().to(start_scrub));
}

type Store = web::Data<Arc<ChunkStore>>;

/// How this node reaches others: a client that signs its requests, and
/// the cluster's registered nodes.
pub struct Peers {
    pub client: StorageClient,
    pub directory: Option<Arc<dyn crate::Directory>>,
}

/// Refuses, with 401, every request but `/health` that does not prove the
/// cluster secret (`actix_web::middleware::from_fn`).
pub async fn require_cluster_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match jadfs_common::serve::check_cluster_auth(&req) {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => {
            let response = NodeError::Unauthorized(e.to_string()).error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

fn parse_id(raw: &str) -> Result<ChunkId, NodeError> {
    raw.parse().map_err(|_| NodeError::BadRequest(format!("{raw:?} is not a chunk id")))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| NodeError::Internal(e.to_string()))?.map_err(Into::into)
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

async fn stats(store: Store) -> Result<HttpResponse, NodeError> {
    let store = store.get_ref().clone();
    let stats = blocking(move || {
        let (chunks, bytes) = store.totals()?;
        let (free_bytes, capacity_bytes) = store.disk_space();
        Ok(NodeStats {
            node_id: store.node_id(),
            chunks,
            bytes,
            free_bytes,
            capacity_bytes,
            last_reconcile: store.last_reconcile(),
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(stats))
}

async fn put_chunk(store: Store, id: web::Path<String>, payload: web::Payload) -> Result<HttpResponse, NodeError> {
    let id = parse_id(&id)?;
    let stored = receive(store.get_ref().clone(), WriteCheck::Id(id), payload).await?;
    Ok(HttpResponse::Created().json(stored))
}

/// A chunk whose id follows its bytes, in a trailer (see [`WriteCheck::Trailer`]).
async fn post_chunk(store: Store, payload: web::Payload) -> Result<HttpResponse, NodeError> {
    let stored = receive(store.get_ref().clone(), WriteCheck::Trailer, payload).await?;
    Ok(HttpResponse::Created().json(stored))
}

/// A node hands a request body to its writer in groups of about this many
/// bytes.
const GATHER: usize = 256 << 10;

/// A sender that sends no byte of a chunk for this long is given up on.
const BODY_IDLE: Duration = Duration::from_secs(30);

/// Feeds the request body to the store's writer through a bounded channel:
/// memory stays flat whatever the chunk size, the body's next bytes are read
/// while the last are written, and the bytes are checked and written off
/// the async executor.
async fn receive(
    store: Arc<ChunkStore>,
    check: WriteCheck,
    mut payload: web::Payload,
) -> Result<ChunkPutResponse, NodeError> {
    let (tx, rx) = mpsc::channel(4);
    let writer = tokio::spawn(receive_chunk(store, check, rx));
    let fed = async {
        // Pieces go to the writer in groups of about GATHER bytes: it wakes
        // once per group rather than once per socket read.
        let (mut gathered, mut size) = (Vec::new(), 0);
        loop {
            let item = match tokio::time::timeout(BODY_IDLE, payload.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => return Err(NodeError::Body(format!("no bytes for {BODY_IDLE:?}"))),
            };
            let bytes = item.map_err(|e| NodeError::Body(e.to_string()))?;
            size += bytes.len();
            gathered.push(bytes);
            if size >= GATHER {
                size = 0;
                if tx.send(PutMessage::Data(std::mem::take(&mut gathered))).await.is_err() {
                    return Ok(()); // the writer stopped early; its result says why
                }
            }
        }
        if !gathered.is_empty() && tx.send(PutMessage::Data(gathered)).await.is_err() {
            return Ok(());
        }
        let _ = tx.send(PutMessage::End).await;
        Ok::<(), NodeError>(())
    }
    .await;
    drop(tx);
    let written = writer.await.map_err(|e| NodeError::Internal(e.to_string()))?;
    fed?;
    Ok(written?)
}

async fn head_chunk(store: Store, id: web::Path<String>) -> Result<HttpResponse, NodeError> {
    let id = parse_id(&id)?;
    let store = store.get_ref().clone();
    let info = blocking(move || store.info(&id)).await?;
    // actix keeps a set Content-Length only for a stream body.
    let no_body = futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
    Ok(HttpResponse::Ok().no_chunking(info.size).streaming(no_body))
}

/// A chunk, or the range of it the `Range` header names, checked block by
/// block: a copy whose first block is bad is an error status; one that
/// fails later ends the body short with the connection reset.
async fn get_chunk(store: Store, id: web::Path<String>, req: HttpRequest) -> Result<HttpResponse, NodeError> {
    let id = parse_id(&id)?;
    let store = store.get_ref().clone();
    let opener = store.clone();
    let chunk = blocking(move || opener.open_chunk(&id)).await?;
    let size = chunk.info.size;
    let range = match req.headers().get(header::RANGE) {
        Some(value) => Some(parse_range(value.to_str().unwrap_or(""), size)?),
        None => None,
    };
    let length = range.map(|(start, end)| end - start + 1).unwrap_or(size);
    let rx = read_stream(store, chunk, range).await?;
    let mut response = match range {
        Some((start, end)) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            r
        }
        None => HttpResponse::Ok(),
    };
    Ok(response.body(SizedStream::new(length, ReceiverStream(rx))))
}

/// Copies a chunk this node holds to another registered node, for a repair
/// the meta leader asked for: the bytes go from this disk to the other
/// node's, verified as they are read here and again as they are written
/// there. The address is the cluster's, never one a request names.
async fn replicate_chunk(
    store: Store,
    peers: web::Data<Peers>,
    id: web::Path<String>,
    target: web::Json<ReplicateTo>,
) -> Result<HttpResponse, NodeError> {
    let id = parse_id(&id)?;
    let directory = peers.directory.as_ref().ok_or(NodeError::UnknownNode(target.to))?;
    let addr = directory.address_of(target.to).await.ok_or(NodeError::UnknownNode(target.to))?;
    let store = store.get_ref().clone();
    let opener = store.clone();
    let chunk = blocking(move || opener.open_chunk(&id)).await?;
    let rx = read_stream(store, chunk, None).await?;
    let body = reqwest::Body::wrap_stream(ReceiverStream(rx));
    let stored =
        peers.client.put_chunk_with_id(&addr, &id, body).await.map_err(|e| NodeError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok().json(stored))
}

/// Parses `bytes=a-b` (the only form the gateway sends) into an inclusive range.
fn parse_range(value: &str, size: u64) -> Result<(u64, u64), NodeError> {
    let spec = value.strip_prefix("bytes=").ok_or(NodeError::RangeNotSatisfiable)?;
    let (a, b) = spec.split_once('-').ok_or(NodeError::RangeNotSatisfiable)?;
    let start: u64 = a.parse().map_err(|_| NodeError::RangeNotSatisfiable)?;
    let end: u64 =
        if b.is_empty() { size.saturating_sub(1) } else { b.parse().map_err(|_| NodeError::RangeNotSatisfiable)? };
    if start > end || end >= size {
        return Err(NodeError::RangeNotSatisfiable);
    }
    Ok((start, end))
}

async fn delete_chunk(store: Store, id: web::Path<String>) -> Result<HttpResponse, NodeError> {
    let id = parse_id(&id)?;
    let store = store.get_ref().clone();
    blocking(move || store.delete(&id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn scrub_status(scrubber: web::Data<Arc<Scrubber>>) -> HttpResponse {
    HttpResponse::Ok().json(scrubber.status())
}

async fn start_scrub(scrubber: web::Data<Arc<Scrubber>>) -> HttpResponse {
    HttpResponse::Ok().json(scrubber.start())
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_chunks(store: Store, query: web::Query<ListQuery>) -> Result<HttpResponse, NodeError> {
    let after = query.after.as_deref().map(parse_id).transpose()?;
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
    let store = store.get_ref().clone();
    let page = blocking(move || store.list(after.as_ref(), limit)).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 10).unwrap(), (0, 9));
        assert_eq!(parse_range("bytes=5-", 10).unwrap(), (5, 9));
        for bad in ["bytes=5-10", "bytes=9-5", "bytes=-5", "items=0-1", "bytes=a-b"] {
            assert!(parse_range(bad, 10).is_err(), "{bad}");
        }
    }
}
