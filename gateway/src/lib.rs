//! JaDFS S3 gateway: speaks S3 (SigV4, XML, aws-chunked bodies) to clients,
//! keeps metadata in the meta cluster and streams chunk bytes directly to
//! and from storage nodes. It holds no state of its own: any number of
//! gateways can serve the same cluster.

pub mod body;
pub mod checksum;
pub mod data;
pub mod error;
mod ops;
pub mod router;
pub mod sigv4;
pub mod xml;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpServer};
use jadfs_common::NodeId;
use jadfs_meta::api::{LocatedObject, StorageNodeInfo};
use jadfs_meta::{Command, CommandResult, MetaClient, Query, QueryResult};
use jadfs_storage_node::client::StorageClient;
use tokio::sync::RwLock;

use crate::error::S3Error;

/// Settings of one gateway.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Addresses (`host:port`) of meta nodes.
    pub meta_addrs: Vec<String>,
    /// Access key → secret key.
    pub credentials: HashMap<String, String>,
    /// The region reported to clients (any region is accepted in signatures).
    pub region: String,
    /// With a domain such as `s3.example.com`, requests to
    /// `bucket.s3.example.com` address `bucket` (virtual-host style).
    pub domain: Option<String>,
    pub chunk_size: u64,
    /// Copies of each chunk written before a PUT is acknowledged.
    pub replicas: usize,
    pub workers: usize,
}

/// Shared state of a gateway's request handlers.
pub struct Gateway {
    pub config: GatewayConfig,
    pub meta: MetaClient,
    pub storage: StorageClient,
    nodes: RwLock<NodeCache>,
}

struct NodeCache {
    fetched: Option<Instant>,
    nodes: Vec<StorageNodeInfo>,
}

const NODE_CACHE_TTL: Duration = Duration::from_secs(5);

impl Gateway {
    pub fn new(config: GatewayConfig) -> Gateway {
        Gateway {
            meta: MetaClient::new(config.meta_addrs.clone()),
            storage: StorageClient::new(),
            nodes: RwLock::new(NodeCache { fetched: None, nodes: Vec::new() }),
            config,
        }
    }

    pub fn secret_of(&self, access_key: &str) -> Option<String> {
        self.config.credentials.get(access_key).cloned()
    }

    /// Applies a command through Raft; a refusal becomes its S3 error.
    pub async fn commit(&self, command: Command) -> Result<CommandResult, S3Error> {
        match self.meta.write(&command).await? {
            CommandResult::Failed(e) => Err(e.into()),
            done => Ok(done),
        }
    }

    pub async fn query(&self, query: Query) -> Result<QueryResult, S3Error> {
        Ok(self.meta.query(&query).await?)
    }

    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        match self.query(Query::GetBucket { name: bucket.to_string() }).await? {
            QueryResult::Bucket(Some(_)) => Ok(()),
            QueryResult::Bucket(None) => Err(S3Error::NoSuchBucket()),
            other => Err(S3Error::internal(format!("unexpected meta answer {other:?}"))),
        }
    }

    /// The object and where its chunks are; NoSuchBucket or NoSuchKey otherwise.
    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<LocatedObject, S3Error> {
        match self.query(Query::GetObject { bucket: bucket.into(), key: key.into() }).await? {
            QueryResult::Object(Some(object)) => Ok(object),
            QueryResult::Object(None) => {
                self.ensure_bucket(bucket).await?;
                Err(S3Error::NoSuchKey())
            }
            other => Err(S3Error::internal(format!("unexpected meta answer {other:?}"))),
        }
    }

    pub async fn storage_nodes(&self, refresh: bool) -> Result<Vec<StorageNodeInfo>, S3Error> {
        {
            let cache = self.nodes.read().await;
            if !refresh && cache.fetched.is_some_and(|t| t.elapsed() < NODE_CACHE_TTL) {
                return Ok(cache.nodes.clone());
            }
        }
        let nodes = match self.query(Query::ListNodes).await? {
            QueryResult::Nodes(nodes) => nodes,
            other => return Err(S3Error::internal(format!("unexpected meta answer {other:?}"))),
        };
        let mut cache = self.nodes.write().await;
        *cache = NodeCache { fetched: Some(Instant::now()), nodes: nodes.clone() };
        Ok(nodes)
    }

    /// The nodes that receive the copies of new chunks: the ones with the
    /// most free space.
    pub async fn pick_nodes(&self) -> Result<Vec<StorageNodeInfo>, S3Error> {
        let mut nodes = self.storage_nodes(false).await?;
        if nodes.len() < self.config.replicas {
            tracing::error!(known = nodes.len(), needed = self.config.replicas, "not enough storage nodes");
            return Err(S3Error::ServiceUnavailable().with_message("Not enough storage nodes are available."));
        }
        nodes.sort_by(|a, b| b.free_bytes.cmp(&a.free_bytes).then(a.id.cmp(&b.id)));
        nodes.truncate(self.config.replicas);
        Ok(nodes)
    }

    /// The address of a storage node, refreshing the node list once if it is unknown.
    pub async fn node_addr(&self, id: NodeId) -> Option<String> {
        for refresh in [false, true] {
            let nodes = self.storage_nodes(refresh).await.ok()?;
            if let Some(node) = nodes.iter().find(|n| n.id == id) {
                return Some(node.addr.clone());
            }
        }
        None
    }
}

/// A started gateway.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub server: actix_web::dev::Server,
}

pub fn start(config: GatewayConfig) -> std::io::Result<RunningGateway> {
    let listener = TcpListener::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let workers = config.workers;
    let gateway = web::Data::new(Arc::new(Gateway::new(config)));
    let server = HttpServer::new(move || App::new().app_data(gateway.clone()).configure(router::configure))
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)?
        .run();
    tracing::info!(%addr, "S3 gateway started");
    Ok(RunningGateway { addr, server })
}
