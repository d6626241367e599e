//! The client other roles use to talk to storage nodes: HTTP, or direct
//! calls for nodes that run in the same process.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use jadfs_common::cluster_auth::{self, Signer};
use jadfs_common::links::Links;
use jadfs_common::node::{ChunkInfo, ChunkPutResponse, NodeStats, PutMessage, ScrubStatus};
use jadfs_common::ChunkId;
use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::store::{read_stream, receive_chunk, ChunkStore, WriteCheck};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("storage node did not answer in time")]
    TimedOut,
    #[error("storage node {addr}: {source}")]
    Transport { addr: String, source: reqwest::Error },
    #[error("storage node {addr} answered {status}: {body}")]
    Status { addr: String, status: u16, body: String },
    #[error("storage node {addr} (in this process): {source}")]
    Local { addr: String, source: StoreError },
}

impl ClientError {
    /// Whether the node refused for want of disk space (HTTP 507).
    pub fn is_disk_full(&self) -> bool {
        match self {
            ClientError::Status { status, .. } => *status == 507,
            ClientError::Local { source, .. } => source.is_disk_full(),
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ClientError::Status { status: 404, .. }
                | ClientError::Local { source: StoreError::NotFound | StoreError::FileGone, .. }
        )
    }
}

/// A chunk's bytes as they arrive.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Bytes, ClientError>> + Send>>;

/// Talks to storage nodes over keep-alive connections with TCP_NODELAY, or,
/// for the nodes of this process (`jadfs server`), to their stores
/// directly: the same checks, without the HTTP request, the loopback copies
/// and the wake-ups.
#[derive(Clone)]
pub struct StorageClient {
    http: reqwest::Client,
    /// Proves the cluster secret on every request.
    signer: Arc<Signer>,
    links: Links,
    /// Address → store of the storage nodes running in this process.
    local: Arc<HashMap<String, Arc<ChunkStore>>>,
}

impl StorageClient {
    pub fn new(signer: Arc<Signer>, links: &Links) -> StorageClient {
        StorageClient::with_local(Vec::new(), signer, links)
    }

    /// A client that reaches the nodes listening at these addresses through
    /// their stores.
    pub fn with_local(stores: Vec<(String, Arc<ChunkStore>)>, signer: Arc<Signer>, links: &Links) -> StorageClient {
        let http = links
            .client()
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client with a parsed CA always builds");
        StorageClient { http, signer, links: links.clone(), local: Arc::new(stores.into_iter().collect()) }
    }

    /// Stores one chunk from `pieces`, which must end with its [`Trailer`]
    /// (the node checks the CRC32C) and then [`PutMessage::End`]; pieces
    /// that stop before `End` abort the write.
    ///
    /// [`Trailer`]: jadfs_common::node::Trailer
    pub async fn put_chunk(
        &self,
        addr: &str,
        pieces: mpsc::Receiver<PutMessage>,
    ) -> Result<ChunkPutResponse, ClientError> {
        if let Some(store) = self.local.get(addr).cloned() {
            let written = receive_chunk(store, WriteCheck::Trailer, pieces).await;
            return written.map_err(|source| ClientError::Local { addr: addr.into(), source });
        }
        // Over HTTP the end of the body is the end of the chunk.
        let body = futures_util::stream::unfold(pieces, |mut pieces| async move {
            match pieces.recv().await {
                Some(PutMessage::Data(group)) => Some((group, pieces)),
                Some(PutMessage::End) | None => None,
            }
        })
        .flat_map(|group| futures_util::stream::iter(group.into_iter().map(Ok::<_, std::io::Error>)));
        let request = self.request(reqwest::Method::POST, addr, "/v1/chunks").body(reqwest::Body::wrap_stream(body));
        let response = self.send(addr, request).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
    }

    /// Stores a chunk whose ID is known; the node refuses bytes that hash to anything else.
    pub async fn put_chunk_with_id(
        &self,
        addr: &str,
        id: &ChunkId,
        body: impl Into<reqwest::Body>,
    ) -> Result<ChunkPutResponse, ClientError> {
        let request = self.request(reqwest::Method::PUT, addr, &format!("/v1/chunks/{id}")).body(body);
        let response = self.send(addr, request).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
    }

    /// Streams a chunk, or the inclusive byte range `range` of it (within
    /// the chunk).
    pub async fn get_chunk(
        &self,
        addr: &str,
        id: &ChunkId,
        range: Option<(u64, u64)>,
    ) -> Result<ChunkStream, ClientError> {
        let owned_addr = addr.to_string();
        if let Some(store) = self.local.get(addr).cloned() {
            let local = move |source| ClientError::Local { addr: owned_addr.clone(), source };
            let id = *id;
            let opener = store.clone();
            let opened = tokio::task::spawn_blocking(move || opener.open_chunk(&id)).await;
            let chunk = opened.map_err(|e| local(StoreError::Io(std::io::Error::other(e))))?.map_err(&local)?;
            if range.is_some_and(|(start, end)| start > end || end >= chunk.info.size) {
                return Err(local(StoreError::Io(std::io::Error::other("range outside the chunk"))));
            }
            let mut rx = read_stream(store, chunk, range).await.map_err(&local)?;
            let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
            return Ok(Box::pin(stream.map_err(move |e| local(StoreError::Io(e)))));
        }
        let mut request = self.request(reqwest::Method::GET, addr, &format!("/v1/chunks/{id}"));
        if let Some((start, end)) = range {
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        let response = self.send(addr, request).await?;
        Ok(Box::pin(
            response.bytes_stream().map_err(move |source| ClientError::Transport { addr: owned_addr.clone(), source }),
        ))
    }

    pub async fn delete_chunk(&self, addr: &str, id: &ChunkId) -> Result<(), ClientError> {
        self.send(addr, self.request(reqwest::Method::DELETE, addr, &format!("/v1/chunks/{id}"))).await?;
        Ok(())
    }

    pub async fn list_chunks(
        &self,
        addr: &str,
        after: Option<&ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkInfo>, ClientError> {
        let mut path = format!("/v1/chunks?limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let response = self.send(addr, self.request(reqwest::Method::GET, addr, &path)).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
    }

    pub async fn stats(&self, addr: &str) -> Result<NodeStats, ClientError> {
        let response = self.send(addr, self.request(reqwest::Method::GET, addr, "/v1/stats")).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
    }

    /// The node's scrubber: where it is, or (with `start`) after starting a pass now.
    pub async fn scrub(&self, addr: &str, start: bool) -> Result<ScrubStatus, ClientError> {
        let method = if start { reqwest::Method::POST } else { reqwest::Method::GET };
        let response = self.send(addr, self.request(method, addr, "/v1/scrub")).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
    }

    /// A request to `path` (with its query) of the node at `addr`, signed.
    fn request(&self, method: reqwest::Method, addr: &str, path: &str) -> reqwest::RequestBuilder {
        let proof = self.signer.sign(method.as_str(), path, jadfs_common::now_ms() / 1000);
        self.http.request(method, self.links.url(addr, path)).header(cluster_auth::HEADER, proof)
    }

    async fn send(&self, addr: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(ClientError::Status { addr: addr.into(), status: status.as_u16(), body })
    }
}
