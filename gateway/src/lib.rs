//! JaDFS S3 gateway: speaks S3 (SigV4, XML, aws-chunked bodies) to clients,
//! keeps metadata in the meta cluster and streams chunk bytes directly to
//! and from storage nodes. It holds no state of its own: any number of
//! gateways can serve the same cluster.

pub mod admin;
pub mod body;
pub use jadfs_common::checksum;
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

use actix_web::{web, App};
use jadfs_common::NodeId;
use jadfs_meta::api::{BucketInfo, LocatedObject, NodeState, StorageNodeInfo};
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
    /// Objects of at most this many bytes are kept in their manifest, not in
    /// chunks (0: never).
    pub inline_max: u64,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub workers: usize,
}

/// Shared state of a gateway's request handlers.
pub struct Gateway {
    pub config: GatewayConfig,
    pub meta: MetaClient,
    pub storage: StorageClient,
    nodes: RwLock<NodeCache>,
    /// Storage nodes that failed a write lately: left out of new writes for
    /// a while, before the meta leader has noticed their silence.
    failed_nodes: std::sync::Mutex<HashMap<NodeId, Instant>>,
    /// Access key → (secret, when looked up); None remembers an unknown key.
    keys: std::sync::Mutex<HashMap<String, (Option<String>, Instant)>>,
}

/// How long a looked-up key is trusted: a deleted key stops working on
/// other gateways within this time (at once on the gateway that deleted it).
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
const KEY_CACHE_MAX: usize = 10_000;

struct NodeCache {
    fetched: Option<Instant>,
    nodes: Vec<StorageNodeInfo>,
}

const NODE_CACHE_TTL: Duration = Duration::from_secs(5);
const FAILED_NODE_PAUSE: Duration = Duration::from_secs(10);

impl Gateway {
    pub fn new(config: GatewayConfig, storage: StorageClient) -> Gateway {
        Gateway {
            meta: MetaClient::new(config.meta_addrs.clone()),
            storage,
            nodes: RwLock::new(NodeCache { fetched: None, nodes: Vec::new() }),
            failed_nodes: std::sync::Mutex::new(HashMap::new()),
            keys: std::sync::Mutex::new(HashMap::new()),
            config,
        }
    }

    /// Root keys come from the configuration and may do anything.
    pub fn is_root(&self, access_key: &str) -> bool {
        self.config.credentials.contains_key(access_key)
    }

    /// The secret of an access key: a root key, or one kept in the meta cluster.
    pub async fn secret_of(&self, access_key: &str) -> Result<Option<String>, S3Error> {
        if let Some(secret) = self.config.credentials.get(access_key) {
            return Ok(Some(secret.clone()));
        }
        if let Some((secret, at)) = self.keys.lock().unwrap_or_else(|e| e.into_inner()).get(access_key) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(secret.clone());
            }
        }
        let secret = match self.query(Query::GetAccessKey { access_key: access_key.to_string() }).await? {
            QueryResult::AccessKey(key) => key.map(|k| k.secret_key),
            other => return Err(S3Error::internal(format!("unexpected meta answer {other:?}"))),
        };
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= KEY_CACHE_MAX {
            keys.clear();
        }
        keys.insert(access_key.to_string(), (secret.clone(), Instant::now()));
        Ok(secret)
    }

    /// Drops a key from the cache, so a deletion takes effect here at once.
    pub fn forget_key(&self, access_key: &str) {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).remove(access_key);
    }

    /// Checks that `access_key` may act on `bucket` with `needed`; answers
    /// NoSuchBucket for a missing bucket and AccessDenied otherwise.
    pub async fn authorize(
        &self,
        access_key: &str,
        bucket: &str,
        needed: jadfs_meta::api::Permission,
    ) -> Result<(), S3Error> {
        if self.is_root(access_key) {
            return Ok(());
        }
        match self.query(Query::GetBucket { name: bucket.to_string() }).await? {
            QueryResult::Bucket(Some(info)) if info.permission_of(access_key).is_some_and(|p| p >= needed) => Ok(()),
            QueryResult::Bucket(Some(_)) => Err(S3Error::AccessDenied()),
            QueryResult::Bucket(None) => Err(S3Error::NoSuchBucket()),
            other => Err(S3Error::internal(format!("unexpected meta answer {other:?}"))),
        }
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

    /// The bucket, or NoSuchBucket.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<BucketInfo, S3Error> {
        match self.query(Query::GetBucket { name: bucket.to_string() }).await? {
            QueryResult::Bucket(Some(info)) => Ok(info),
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

    /// The nodes that receive the copies of a new chunk: up to `count` live
    /// nodes in different zones, weighted by free space; at least `required`.
    pub async fn pick_nodes(&self, count: usize, required: usize) -> Result<Vec<StorageNodeInfo>, S3Error> {
        let failed: Vec<NodeId> = {
            let mut failed = self.failed_nodes.lock().unwrap_or_else(|e| e.into_inner());
            failed.retain(|_, at| at.elapsed() < FAILED_NODE_PAUSE);
            failed.keys().copied().collect()
        };
        let nodes = self.storage_nodes(false).await?;
        let alive: Vec<StorageNodeInfo> = nodes.iter().filter(|n| n.state == NodeState::Alive).cloned().collect();
        let healthy: Vec<StorageNodeInfo> = alive.iter().filter(|n| !failed.contains(&n.id)).cloned().collect();
        // Nodes that failed lately, or went quiet, are still better than no write at all.
        let candidates = if healthy.len() >= required {
            healthy
        } else if alive.len() >= required {
            alive
        } else {
            nodes.into_iter().filter(|n| n.state != NodeState::Dead).collect()
        };
        let chosen: Vec<StorageNodeInfo> =
            jadfs_meta::nodes::choose(&candidates, count, &[], &mut rand::thread_rng()).into_iter().cloned().collect();
        if chosen.len() < required {
            tracing::error!(alive = candidates.len(), required, "not enough live storage nodes");
            return Err(S3Error::ServiceUnavailable().with_message("Not enough storage nodes are available."));
        }
        Ok(chosen)
    }

    /// Remembers that a node failed a write, so the next ones avoid it.
    pub fn note_node_failure(&self, node: NodeId) {
        self.failed_nodes.lock().unwrap_or_else(|e| e.into_inner()).insert(node, Instant::now());
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
    /// `http` or `https`.
    pub scheme: &'static str,
    pub server: actix_server::Server,
}

/// A rustls server configuration from PEM files (ring provider, TLS 1.2 and 1.3).
fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> std::io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{what}: {e}"))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(&format!("TLS certificate {}", cert.display()), &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(&format!("TLS key {}", key.display()), &e))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS", &e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid("TLS certificate and key", &e))
}

/// Starts serving S3; `storage` reaches the storage nodes (in `jadfs
/// server`, the ones in this process directly). The HTTP service is
/// assembled here rather than by actix-web's HttpServer so that `Expect:
/// 100-continue` requests are authenticated before the client is told to
/// send its body.
pub fn start(config: GatewayConfig, storage: StorageClient) -> std::io::Result<RunningGateway> {
    use actix_http::HttpService;
    use actix_service::{fn_service, map_config};
    use actix_web::dev::AppConfig;

    let listener = TcpListener::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let tls = config.tls.as_ref().map(|(cert, key)| tls_config(cert, key)).transpose()?;
    let workers = config.workers;
    let gateway = Arc::new(Gateway::new(config, storage));
    // One HTTP service per accepted connection type (plain TCP or TLS).
    macro_rules! s3_service {
        () => {{
            let gw = gateway.clone();
            let app = App::new().app_data(web::Data::new(gw.clone())).configure(router::configure);
            HttpService::build()
                .tcp_nodelay(true)
                .expect(fn_service(move |request: actix_http::Request| {
                    let gw = gw.clone();
                    async move { router::expect_continue(&gw, request).await }
                }))
                .finish(map_config(app, |_| AppConfig::default()))
        }};
    }
    let builder = actix_server::Server::build().workers(workers).disable_signals().shutdown_timeout(5);
    let builder = match tls {
        Some(tls) => builder.listen("s3", listener, move || s3_service!().rustls_0_23(tls.clone()))?,
        None => builder.listen("s3", listener, move || s3_service!().tcp())?,
    };
    tracing::info!(%addr, scheme, "S3 gateway started");
    Ok(RunningGateway { addr, scheme, server: builder.run() })
}
