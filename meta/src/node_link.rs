//! How the leader's background work (repair, collection) asks storage nodes
//! to act: signed HTTP requests naming chunks and registered node ids, never
//! an address a node would have to trust.

use std::sync::Arc;
use std::time::Duration;

use jadfs_common::cluster_auth::{self, Signer};
use jadfs_common::links::Links;
use jadfs_common::node::{ChunkInfo, ReplicateTo};
use jadfs_common::{ChunkId, NodeId};

pub struct NodeLink {
    http: reqwest::Client,
    signer: Arc<Signer>,
    links: Links,
}

impl NodeLink {
    pub fn new(signer: Arc<Signer>, links: Links) -> NodeLink {
        let http = links.client().timeout(Duration::from_secs(600)).build().expect("an HTTP client always builds");
        NodeLink { http, signer, links }
    }

    fn request(&self, method: reqwest::Method, addr: &str, path: &str) -> reqwest::RequestBuilder {
        let proof = self.signer.sign(method.as_str(), path, jadfs_common::now_ms() / 1000);
        self.http.request(method, self.links.url(addr, path)).header(cluster_auth::HEADER, proof)
    }

    /// Has the node at `source` push `chunk` to the registered node `target`
    /// (the source looks its address up in the cluster, never taking one
    /// from the request).
    pub async fn copy(&self, source: &str, chunk: &ChunkId, target: NodeId) -> reqwest::Result<reqwest::Response> {
        let path = format!("/v1/chunks/{chunk}/replicate");
        self.request(reqwest::Method::POST, source, &path).json(&ReplicateTo { to: target }).send().await
    }

    /// Deletes the node's copy of `chunk`: Ok once it holds none (also if it held none).
    pub async fn delete(&self, addr: &str, chunk: &ChunkId) -> Result<(), String> {
        let path = format!("/v1/chunks/{chunk}");
        let response = self.request(reqwest::Method::DELETE, addr, &path).send().await.map_err(|e| e.to_string())?;
        match response.status() {
            s if s.is_success() || s == reqwest::StatusCode::NOT_FOUND => Ok(()),
            s => Err(format!("{addr} answered {s}")),
        }
    }

    /// A page of the node's chunks after `after`, in id order.
    pub async fn list(&self, addr: &str, after: Option<&ChunkId>, limit: usize) -> Result<Vec<ChunkInfo>, String> {
        let mut path = format!("/v1/chunks?limit={limit}");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        let response = self.request(reqwest::Method::GET, addr, &path).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{addr} answered {}", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }
}
