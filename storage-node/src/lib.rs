//! JaDFS storage node: keeps chunks as plain files named by their SHA-256,
//! indexed in SQLite, served over HTTP. It knows nothing of buckets or keys.

pub mod client;
pub mod error;
mod fs;
pub mod http;
mod index;
pub mod store;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use actix_web::{web, App, HttpServer};

pub use store::ChunkStore;

/// Settings of one storage node.
#[derive(Clone, Debug)]
pub struct StorageNodeConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The largest chunk the node accepts.
    pub max_chunk_size: u64,
    pub workers: usize,
}

/// A started storage node.
pub struct RunningNode {
    pub addr: SocketAddr,
    pub store: Arc<ChunkStore>,
    pub server: actix_web::dev::Server,
}

/// Opens the chunk store (reconciling it with its index) and starts serving.
/// The returned server future must be awaited or spawned.
pub fn start(config: &StorageNodeConfig) -> Result<RunningNode, error::StoreError> {
    let store = Arc::new(ChunkStore::open(&config.data_dir, config.max_chunk_size)?);
    let listener = TcpListener::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let data = web::Data::new(store.clone());
    let peers = web::Data::new(client::StorageClient::new());
    let server =
        HttpServer::new(move || App::new().app_data(data.clone()).app_data(peers.clone()).configure(http::configure))
            .on_connect(set_nodelay)
            .workers(config.workers)
            .disable_signals()
            .shutdown_timeout(5)
            .listen(listener)?
            .run();
    tracing::info!(node_id = store.node_id(), %addr, data_dir = %config.data_dir.display(), "storage node started");
    Ok(RunningNode { addr, store, server })
}

/// Turns off Nagle's algorithm on an accepted connection: a response's
/// headers and first body bytes are separate small writes, and Nagle would
/// hold the second until the peer's delayed ACK (40 ms).
pub fn set_nodelay(connection: &dyn std::any::Any, _: &mut actix_web::dev::Extensions) {
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        let _ = tcp.set_nodelay(true);
    }
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
