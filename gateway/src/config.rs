//! A gateway's settings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jadfs_common::cluster_auth::ClusterKey;
use jadfs_common::links::Links;

/// Settings of one gateway.
#[derive(Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Addresses (`host:port`) of meta nodes.
    pub meta_addrs: Vec<String>,
    /// Access key → secret key of the root keys, which may do anything.
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
    /// The key names SSE-KMS accepts (`x-amz-server-side-encryption-aws-kms-key-id`).
    pub kms_keys: Vec<String>,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub workers: usize,
    pub limits: Limits,
    /// Proves the cluster secret to meta and storage nodes, and unseals the
    /// access keys' secrets kept in the metadata.
    pub cluster_key: Arc<ClusterKey>,
    /// How the gateway reaches meta nodes (plain or TLS; storage nodes are
    /// reached by the `StorageClient` it is given).
    pub links: Links,
    /// Log one line per S3 request (target `jadfs::access`).
    pub access_log: bool,
}

/// What one client, or all of them, may hold of the gateway.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A request whose body sends nothing for this long is answered 400 RequestTimeout.
    pub body_idle: Duration,
    /// A connection that has not sent a whole request head in this long is closed.
    pub header_timeout: Duration,
    /// Requests in progress at once, over all keys (beyond: 503 SlowDown).
    pub max_requests: usize,
    /// Requests in progress at once for one access key (beyond: 503 SlowDown).
    pub max_requests_per_key: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_idle: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            max_requests: 1024,
            max_requests_per_key: 256,
        }
    }
}
