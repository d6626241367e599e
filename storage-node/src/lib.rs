//! JaDFS storage node: keeps chunks as plain files named by their SHA-256,
//! indexed in SQLite, served over HTTP. It knows nothing of buckets or keys.

pub mod blocks;
pub mod client;
pub mod error;
mod fs;
pub mod http;
mod index;
pub mod metrics;
pub mod scrub;
pub mod store;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use actix_web::{web, App, HttpServer};
use jadfs_common::cluster_auth::{ClusterKey, Signer, Verifier};
use jadfs_common::links::Links;
use jadfs_common::NodeId;

pub use store::ChunkStore;

/// Settings of one storage node.
#[derive(Clone)]
pub struct StorageNodeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The largest chunk the node accepts.
    pub max_chunk_size: u64,
    pub workers: usize,
    /// Every request to this node must prove the cluster secret, and the
    /// node proves it to the nodes it copies chunks to.
    pub cluster_key: Arc<ClusterKey>,
    /// Where the other registered nodes are: a repair copies only to one of
    /// them. None (a node outside a cluster): no copies.
    pub directory: Option<Arc<dyn Directory>>,
    /// How this node reaches the nodes it copies to (plain or TLS).
    pub links: Links,
    /// Serve TLS with this configuration (`--internal-tls-*`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// The scrubber's rate limit, MiB/s; None: enough for a pass in under
    /// a week.
    pub scrub_rate: Option<f64>,
    /// Free bytes kept on the disk: below them no new chunk is taken.
    pub disk_reserve: u64,
}

/// The storage nodes registered in the cluster, as the meta service lists them.
pub trait Directory: Send + Sync {
    /// The address of a registered node, if there is one with that id.
    fn address_of(&self, node: NodeId) -> Pin<Box<dyn Future<Output = Option<String>> + Send + '_>>;
}

/// A started storage node.
pub struct RunningNode {
    pub addr: SocketAddr,
    pub store: Arc<ChunkStore>,
    pub server: actix_web::dev::Server,
}

/// Opens the chunk store (reconciling it with its index), starts its
/// scrubber and starts serving. The returned server future must be awaited
/// or spawned (within a tokio runtime).
pub fn start(config: &StorageNodeConfig) -> Result<RunningNode, error::StoreError> {
    let store = Arc::new(ChunkStore::open(&config.data_dir, config.max_chunk_size)?.with_reserve(config.disk_reserve));
    let scrubber = scrub::Scrubber::new(store.clone(), config.scrub_rate);
    tokio::spawn(scrubber.clone().run());
    metrics::describe();
    tokio::spawn(metrics::sample(store.clone(), scrubber.clone()));
    let scrubber = web::Data::new(scrubber);
    let listener = TcpListener::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let data = web::Data::new(store.clone());
    let signer = Arc::new(Signer::new(config.cluster_key.clone()));
    let client = client::StorageClient::new(signer, &config.links);
    let peers = web::Data::new(http::Peers { client, directory: config.directory.clone() });
    let verifier = web::Data::new(Verifier::new(config.cluster_key.clone()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(peers.clone())
            .app_data(verifier.clone())
            .app_data(scrubber.clone())
            .wrap(actix_web::middleware::from_fn(http::require_cluster_auth))
            .configure(http::configure)
    })
    .on_connect(jadfs_common::serve::set_nodelay)
    .workers(config.workers)
    .disable_signals()
    .shutdown_timeout(5);
    let server = match &config.tls {
        Some(tls) => server.listen_rustls_0_23(listener, (**tls).clone())?,
        None => server.listen(listener)?,
    }
    .run();
    tracing::info!(node_id = store.node_id(), %addr, data_dir = %config.data_dir.display(), "storage node started");
    Ok(RunningNode { addr, store, server })
}

/// Crash injection for tests: when `JADFS_FAILPOINT` names this point, the
/// process aborts here as a `kill -9` would stop it.
pub fn failpoint(name: &str) {
    static ACTIVE: OnceLock<Option<String>> = OnceLock::new();
    let active = ACTIVE.get_or_init(|| std::env::var("JADFS_FAILPOINT").ok());
    if active.as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
