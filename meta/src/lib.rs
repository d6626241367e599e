//! JaDFS metadata service: buckets, objects (chunk lists), chunk placement
//! and storage nodes, replicated with openraft. The Raft log and the state
//! machine both live in SQLite; chunk bytes never pass through here.

pub mod api;
mod batch;
pub mod client;
mod collect;
pub mod disk;
pub mod http;
pub mod lease;
mod lifecycle;
pub mod log_store;
mod metrics;
mod mover;
pub mod network;
mod node_link;
pub mod nodes;
mod repair;
pub mod state;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use jadfs_common::cluster_auth::{ClusterKey, Signer, Verifier};
use jadfs_common::links::Links;
use openraft::{BasicNode, SnapshotPolicy};

pub use api::{Command, CommandResult, MetaError, Query, QueryResult};
pub use client::MetaClient;

/// Settings of one meta node.
#[derive(Clone)]
pub struct MetaConfig {
    pub node_id: u64,
    pub listen: SocketAddr,
    /// Address peers and gateways use to reach this node (default: the bound address).
    pub advertise: Option<String>,
    pub data_dir: PathBuf,
    /// Initialise a new cluster with this node as its only voter, if it has no state yet.
    pub bootstrap: bool,
    pub heartbeat_ms: u64,
    pub election_timeout_ms: u64,
    /// Silent this long, a storage node is dead and its chunks are re-copied.
    pub node_dead_after: Duration,
    /// A snapshot is taken every this many log entries, and the log before
    /// it (all but a tenth of that) is purged.
    pub snapshot_every: u64,
    /// The cluster secret's keys: every request to this node must prove it,
    /// and this node proves it to its peers and storage nodes.
    pub cluster_key: Arc<ClusterKey>,
    /// How this node reaches peers and storage nodes (plain or TLS).
    pub links: Links,
    /// Serve TLS with this configuration (`--internal-tls-*`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Chunks unused this long are collected (and copies of no object this
    /// old deleted).
    pub gc_grace: Duration,
    /// Free bytes kept on the data disk (see [`disk::Disk`]).
    pub disk_reserve: u64,
    /// How long a lifecycle rule's day lasts: 24 hours, shorter in tests.
    pub lifecycle_day: Duration,
}

/// A started meta node.
pub struct RunningMeta {
    pub addr: String,
    pub raft: api::Raft,
    pub server: actix_web::dev::Server,
}

pub async fn start(config: &MetaConfig) -> anyhow::Result<RunningMeta> {
    std::fs::create_dir_all(&config.data_dir)?;
    let disk = disk::Disk::open(&config.data_dir, config.disk_reserve);
    tokio::spawn(disk.clone().watch());
    let log_store = log_store::LogStore::open(&config.data_dir.join("raft-log.db"), disk.clone())?;
    let state_machine = state::StateMachineStore::open(&config.data_dir, config.cluster_key.clone(), disk.clone())?;
    let readers = state_machine.readers();
    let raft_config = openraft::Config {
        cluster_name: "jadfs-meta".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_timeout_ms,
        election_timeout_max: config.election_timeout_ms * 2,
        // Snapshots are whole SQLite files, sent in 16 MiB pieces. The last
        // piece's answer waits for the install (a copy into the live
        // database, which grows with the state): openraft's default of
        // 200 ms makes a large snapshot retry forever, and 10 s made a
        // 5 GiB one travel twice.
        install_snapshot_timeout: 120_000,
        snapshot_max_chunk_size: 16 << 20,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: config.snapshot_every / 10,
        ..Default::default()
    };
    let raft_config = Arc::new(raft_config.validate()?);

    let listener = TcpListener::bind(config.listen)?;
    let bound = listener.local_addr()?;
    let addr = config.advertise.clone().unwrap_or_else(|| bound.to_string());
    let log = log_store.clone();
    let signer = Arc::new(Signer::new(config.cluster_key.clone()));
    let network = network::HttpNetwork::new(signer.clone(), &config.links);
    let raft = api::Raft::new(config.node_id, raft_config, network, log_store, state_machine).await?;

    let liveness = Arc::new(nodes::Liveness::new(config.node_dead_after));
    let links = config.links.clone();
    tokio::spawn(repair::run_repairer(raft.clone(), readers.clone(), liveness.clone(), signer.clone(), links.clone()));
    tokio::spawn(mover::run_mover(raft.clone(), readers.clone(), liveness.clone(), signer.clone(), links.clone()));
    tokio::spawn(collect::run_collector(
        raft.clone(),
        readers.clone(),
        liveness.clone(),
        signer,
        links,
        config.gc_grace,
    ));
    tokio::spawn(lifecycle::run_lifecycle(raft.clone(), readers.clone(), config.lifecycle_day));
    metrics::describe();
    tokio::spawn(metrics::sample(metrics::Sources {
        raft: raft.clone(),
        log: log.clone(),
        readers: readers.clone(),
        liveness: liveness.clone(),
        data_dir: config.data_dir.clone(),
    }));
    let writes = batch::WriteBatcher::start(raft.clone());
    let state = web::Data::new(http::MetaState { raft: raft.clone(), writes, readers, liveness, log, disk });
    let verifier = web::Data::new(Verifier::new(config.cluster_key.clone()));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(verifier.clone())
            .wrap(actix_web::middleware::from_fn(http::require_cluster_auth))
            .configure(http::configure)
    })
    .on_connect(jadfs_common::serve::set_nodelay)
    .workers(2)
    .disable_signals()
    .shutdown_timeout(5);
    let server = match &config.tls {
        Some(tls) => server.listen_rustls_0_23(listener, (**tls).clone())?,
        None => server.listen(listener)?,
    }
    .run();

    if config.bootstrap && !raft.is_initialized().await? {
        let members = BTreeMap::from([(config.node_id, BasicNode::new(&addr))]);
        raft.initialize(members).await?;
        tracing::info!(node_id = config.node_id, %addr, "bootstrapped a new meta cluster");
    }
    tracing::info!(node_id = config.node_id, %addr, data_dir = %config.data_dir.display(), "meta node started");
    Ok(RunningMeta { addr, raft, server })
}

/// Waits until the cluster has a leader, or fails after `timeout`.
pub async fn wait_for_leader(raft: &api::Raft, timeout: Duration) -> anyhow::Result<u64> {
    let metrics = raft.wait(Some(timeout)).metrics(|m| m.current_leader.is_some(), "a leader is elected").await?;
    Ok(metrics.current_leader.expect("waited for a leader"))
}

/// The address a meta node listens on when none is given.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9100))
}
