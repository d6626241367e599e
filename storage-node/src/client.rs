//! The HTTP client other roles use to talk to storage nodes.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use jadfs_common::{ChunkId, ChunkInfo, ChunkPutResponse, NodeStats};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("storage node did not answer in time")]
    TimedOut,
    #[error("storage node {addr}: {source}")]
    Transport { addr: String, source: reqwest::Error },
    #[error("storage node {addr} answered {status}: {body}")]
    Status { addr: String, status: u16, body: String },
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Status { status: 404, .. })
    }
}

/// Talks to storage nodes over keep-alive connections with TCP_NODELAY.
#[derive(Clone)]
pub struct StorageClient {
    http: reqwest::Client,
}

impl Default for StorageClient {
    fn default() -> Self {
        StorageClient::new()
    }
}

impl StorageClient {
    pub fn new() -> StorageClient {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            // Nodes are on the same network: a connection that takes longer
            // than this is to a node that is down or cut off.
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("a plain HTTP client always builds");
        StorageClient { http }
    }

    /// Streams one chunk to a node: its bytes, then a [`Trailer`] with its
    /// id and CRC32C (the node checks the CRC32C).
    ///
    /// [`Trailer`]: crate::store::Trailer
    pub async fn put_chunk(&self, addr: &str, body: reqwest::Body) -> Result<ChunkPutResponse, ClientError> {
        let response = self.send(addr, self.http.post(format!("http://{addr}/v1/chunks")).body(body)).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
    }

    /// Stores a chunk whose ID is known; the node refuses bytes that hash to anything else.
    pub async fn put_chunk_with_id(
        &self,
        addr: &str,
        id: &ChunkId,
        body: impl Into<reqwest::Body>,
    ) -> Result<ChunkPutResponse, ClientError> {
        let response = self.send(addr, self.http.put(format!("http://{addr}/v1/chunks/{id}")).body(body)).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
    }

    /// Streams a chunk, or the inclusive byte range `range` of it.
    pub async fn get_chunk(
        &self,
        addr: &str,
        id: &ChunkId,
        range: Option<(u64, u64)>,
    ) -> Result<impl Stream<Item = Result<Bytes, ClientError>> + Send + 'static, ClientError> {
        let mut request = self.http.get(format!("http://{addr}/v1/chunks/{id}"));
        if let Some((start, end)) = range {
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        let response = self.send(addr, request).await?;
        let addr = addr.to_string();
        Ok(response.bytes_stream().map_err(move |source| ClientError::Transport { addr: addr.clone(), source }))
    }

    pub async fn delete_chunk(&self, addr: &str, id: &ChunkId) -> Result<(), ClientError> {
        self.send(addr, self.http.delete(format!("http://{addr}/v1/chunks/{id}"))).await?;
        Ok(())
    }

    pub async fn list_chunks(
        &self,
        addr: &str,
        after: Option<&ChunkId>,
        limit: usize,
    ) -> Result<Vec<ChunkInfo>, ClientError> {
        let mut url = format!("http://{addr}/v1/chunks?limit={limit}");
        if let Some(after) = after {
            url.push_str(&format!("&after={after}"));
        }
        let response = self.send(addr, self.http.get(url)).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
    }

    pub async fn stats(&self, addr: &str) -> Result<NodeStats, ClientError> {
        let response = self.send(addr, self.http.get(format!("http://{addr}/v1/stats"))).await?;
        response.json().await.map_err(|source| ClientError::Transport { addr: addr.into(), source })
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
