//! JaDFS S3 gateway: speaks S3 (SigV4, XML, aws-chunked bodies) to clients,
//! keeps metadata in the meta cluster and streams chunk bytes directly to
//! and from storage nodes. It holds no state of its own beyond caches: any
//! number of gateways can serve the same cluster.
//!
//! A request goes `server` → `router` (authenticate with `auth` and
//! `sigv4`, parse into an `endpoint::Endpoint`, authorise) → one handler in
//! `ops` → `data` (chunks to and from storage nodes placed by `placement`).

pub mod admin;
mod admission;
pub mod auth;
pub mod body;
pub use jadfs_common::checksum;
mod config;
pub mod console;
pub mod data;
pub mod endpoint;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod metrics;
mod ops;
pub mod placement;
pub mod router;
mod server;
pub mod sigv4;
pub mod target;
mod unsupported;
pub mod xml;

pub use config::{GatewayConfig, Limits};
pub use server::{start, RunningGateway};

use jadfs_meta::api::LocatedObject;
use jadfs_meta::MetaClient;
use jadfs_storage_node::client::StorageClient;

use crate::error::{Code, S3Error};

/// Shared state of a gateway's request handlers.
pub struct Gateway {
    pub config: GatewayConfig,
    pub meta: MetaClient,
    pub storage: StorageClient,
    /// Storage nodes as last listed, and those that failed lately.
    nodes: placement::NodeCache,
    /// Access keys' secrets as last looked up.
    keys: auth::KeyCache,
    /// How many requests are in progress, over all and per key.
    admission: admission::Admission,
    /// Who is signed in to the web console.
    pub console: console::Sessions,
}

impl Gateway {
    /// `storage` reaches the storage nodes (signing its requests); meta
    /// nodes are reached with a client of the gateway's own.
    pub fn new(config: GatewayConfig, storage: StorageClient) -> Gateway {
        let signer = std::sync::Arc::new(jadfs_common::cluster_auth::Signer::new(config.cluster_key.clone()));
        Gateway {
            meta: MetaClient::new(config.meta_addrs.clone(), signer, &config.links),
            storage,
            nodes: placement::NodeCache::default(),
            keys: auth::KeyCache::default(),
            admission: admission::Admission::new(&config.limits),
            console: console::Sessions::default(),
            config,
        }
    }

    /// An object (its current version, or `version_id`) and where its
    /// chunks are; NoSuchBucket, NoSuchKey or NoSuchVersion otherwise. A
    /// delete marker is no object: as the latest version the key is not
    /// found, named by its id the method is not allowed (with AWS's headers).
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<LocatedObject, S3Error> {
        match self.meta.get_object(bucket, key, version_id).await? {
            Some(marker) if marker.delete_marker => {
                let id = marker.manifest.version_id.unwrap_or_else(|| jadfs_meta::api::NULL_VERSION.into());
                let error = match version_id {
                    Some(_) => S3Error::new(Code::MethodNotAllowed)
                        .with_header("last-modified", ops::http_date(marker.manifest.last_modified_ms)),
                    None => S3Error::new(Code::NoSuchKey),
                };
                Err(error.with_header("x-amz-delete-marker", "true").with_header("x-amz-version-id", id))
            }
            Some(object) => Ok(object),
            None if self.meta.get_bucket(bucket).await?.is_none() => Err(Code::NoSuchBucket.into()),
            None if version_id.is_some() => Err(Code::NoSuchVersion.into()),
            // Not found and no delete marker in the way: AWS says so.
            None => Err(S3Error::new(Code::NoSuchKey).with_header("x-amz-delete-marker", "false")),
        }
    }
}

/// Delay injection for tests: with `JADFS_PAUSE=NAME:MS` in the
/// environment, a request waits MS milliseconds at the point named NAME
/// (so a test can widen the race it looks for). Free when unset.
pub(crate) async fn pause_point(name: &str) {
    static PAUSE: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        let value = std::env::var("JADFS_PAUSE").ok()?;
        let (point, ms) = value.split_once(':')?;
        Some((point.to_string(), ms.parse().ok()?))
    });
    if let Some((point, ms)) = pause {
        if point == name {
            tokio::time::sleep(std::time::Duration::from_millis(*ms)).await;
        }
    }
}
