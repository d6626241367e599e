//! A gateway's settings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings of one gateway.
#[derive(Clone, Debug)]
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
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub workers: usize,
}
