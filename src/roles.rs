//! Starting each role from its command-line settings.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use jadfs_common::cluster_auth::{ClusterKey, Signer};
use jadfs_common::links::Links;
use jadfs_common::NodeId;
use jadfs_gateway::GatewayConfig;
use jadfs_meta::api::{Heartbeat, NodeState, StorageNodeInfo};
use jadfs_meta::{Command, MetaClient, MetaConfig};
use jadfs_storage_node::client::StorageClient;
use jadfs_storage_node::{ChunkStore, Directory, StorageNodeConfig};

use crate::credentials::Credentials;
use crate::{GatewayArgs, MetaArgs, S3Args, ServerArgs, StorageNodeArgs};

pub async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir;
    private_dir(&data_dir)?;
    let (credentials, created) = match (&args.s3.access_key, &args.s3.secret_key) {
        (Some(access_key), Some(secret_key)) => {
            (Credentials { access_key: access_key.clone(), secret_key: secret_key.clone() }, false)
        }
        (None, None) => Credentials::load_or_create(&data_dir.join("credentials.json"))?,
        _ => bail!("give both --access-key and --secret-key, or neither"),
    };
    let (cluster_key, _) = args.cluster.key_or_kept(&data_dir, true)?;
    let signer = Arc::new(Signer::new(cluster_key.clone()));

    let meta = jadfs_meta::start(&MetaConfig {
        node_id: 1,
        listen: "127.0.0.1:0".parse()?,
        advertise: None,
        data_dir: data_dir.join("meta"),
        bootstrap: true,
        heartbeat_ms: 150,
        election_timeout_ms: 750,
        node_dead_after: Duration::from_secs(60),
        snapshot_every: 10_000,
        cluster_key: cluster_key.clone(),
        // One machine: the roles' links are loopback.
        links: Links::plain(),
        tls: None,
        gc_grace: args.gc.gc_grace,
        lifecycle_day: args.gc.lifecycle_day(),
        disk_reserve: args.disk.disk_reserve,
    })
    .await?;
    let mut servers = vec![serve(meta.server)];
    jadfs_meta::wait_for_leader(&meta.raft, Duration::from_secs(30)).await?;
    let meta_client = Arc::new(MetaClient::new(vec![meta.addr.clone()], signer.clone(), &Links::plain()));

    let mut local_stores = Vec::new();
    for i in 1..=3 {
        let node = jadfs_storage_node::start(&StorageNodeConfig {
            data_dir: data_dir.join(format!("node-{i}")),
            listen: "127.0.0.1:0".parse()?,
            max_chunk_size: args.s3.chunk_size,
            workers: 2,
            cluster_key: cluster_key.clone(),
            directory: Some(Arc::new(MetaDirectory::new(meta_client.clone()))),
            links: Links::plain(),
            tls: None,
            scrub_rate: args.scrub.scrub_rate,
            disk_reserve: args.disk.disk_reserve,
        })?;
        register_storage_node(&meta_client, &node.store, &node.addr.to_string(), None).await?;
        tokio::spawn(send_heartbeats(meta_client.clone(), node.store.clone(), node.addr.to_string(), None));
        local_stores.push((node.addr.to_string(), node.store.clone()));
        servers.push(serve(node.server));
    }

    // The gateway writes and reads the chunks of this process's nodes
    // directly; other gateways and the repairer reach them over HTTP.
    let storage = StorageClient::with_local(local_stores, signer, &Links::plain());
    let config = gateway_config(&args.s3, vec![meta.addr.clone()], &credentials, cluster_key, Links::plain());
    let gateway = jadfs_gateway::start(config, storage)?;
    servers.push(serve(gateway.server));
    print_banner(
        &format!("{}://{}", gateway.scheme, gateway.addr),
        &credentials,
        created,
        &data_dir.display().to_string(),
    );
    run_until_stopped(servers).await
}

fn gateway_config(
    s3: &S3Args,
    meta_addrs: Vec<String>,
    credentials: &Credentials,
    cluster_key: Arc<ClusterKey>,
    links: Links,
) -> GatewayConfig {
    GatewayConfig {
        listen: s3.listen,
        meta_addrs,
        credentials: HashMap::from([(credentials.access_key.clone(), credentials.secret_key.clone())]),
        region: s3.region.clone(),
        domain: Some(s3.domain.clone()).filter(|d| !d.is_empty()),
        chunk_size: s3.chunk_size,
        inline_max: s3.inline_max,
        kms_keys: s3.kms_keys.iter().map(|k| k.trim().to_string()).filter(|k| !k.is_empty()).collect(),
        tls: s3.tls_cert.clone().zip(s3.tls_key.clone()),
        workers: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2),
        cluster_key,
        links,
        limits: jadfs_gateway::Limits {
            body_idle: Duration::from_secs(s3.body_timeout),
            header_timeout: Duration::from_secs(s3.header_timeout),
            max_requests: s3.max_requests as usize,
            max_requests_per_key: s3.max_requests_per_key as usize,
        },
        access_log: s3.access_log,
    }
}

fn print_banner(endpoint: &str, credentials: &Credentials, created: bool, data_dir: &str) {
    let kept = if created { "created now and kept" } else { "kept" };
    println!(
        "JaDFS is running.\n\
         \n  S3 endpoint: {endpoint}\n  access key:  {access}\n  secret key:  {secret}\n  data folder: {data_dir} (credentials {kept} in credentials.json)\n\
         \nTry it:\n  export AWS_ACCESS_KEY_ID={access} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION=us-east-1\n  \
         aws --endpoint-url {endpoint} s3 mb s3://my-bucket\n  \
         aws --endpoint-url {endpoint} s3 cp ./some-file s3://my-bucket/\n  \
         aws --endpoint-url {endpoint} s3 ls s3://my-bucket\n",
        access = credentials.access_key,
        secret = credentials.secret_key,
    );
}

pub async fn meta(args: MetaArgs) -> anyhow::Result<()> {
    let cluster_key = args.cluster.key()?;
    let (links, tls) = (args.internal_tls.links()?, args.internal_tls.server()?);
    private_dir(&args.data_dir)?;
    let meta = jadfs_meta::start(&MetaConfig {
        node_id: args.node_id,
        listen: args.listen,
        advertise: args.advertise,
        data_dir: args.data_dir,
        bootstrap: args.bootstrap,
        heartbeat_ms: args.heartbeat_ms,
        election_timeout_ms: args.election_timeout_ms,
        node_dead_after: Duration::from_secs(args.node_dead_after),
        snapshot_every: args.snapshot_every,
        cluster_key: cluster_key.clone(),
        links: links.clone(),
        tls,
        gc_grace: args.gc.gc_grace,
        lifecycle_day: args.gc.lifecycle_day(),
        disk_reserve: args.disk.disk_reserve,
    })
    .await?;
    println!("JaDFS meta node {} listening on {}", args.node_id, meta.addr);
    let handle = serve(meta.server);
    if !args.join.is_empty() {
        let client = MetaClient::new(args.join, Arc::new(Signer::new(cluster_key)), &links);
        tokio::spawn(join_meta_cluster(meta.raft.clone(), args.node_id, meta.addr.clone(), client));
    }
    run_until_stopped(vec![handle]).await
}

pub async fn storage_node(args: StorageNodeArgs) -> anyhow::Result<()> {
    let cluster_key = args.cluster.key()?;
    let (links, tls) = (args.internal_tls.links()?, args.internal_tls.server()?);
    private_dir(&args.data_dir)?;
    let signer = Arc::new(Signer::new(cluster_key.clone()));
    let meta = (!args.meta.is_empty()).then(|| Arc::new(MetaClient::new(args.meta.clone(), signer, &links)));
    let node = jadfs_storage_node::start(&StorageNodeConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        max_chunk_size: args.max_chunk_size,
        workers: 2,
        cluster_key,
        directory: meta.clone().map(|meta| Arc::new(MetaDirectory::new(meta)) as Arc<dyn Directory>),
        links,
        tls,
        scrub_rate: args.scrub.scrub_rate,
        disk_reserve: args.disk.disk_reserve,
    })?;
    let addr = args.advertise.unwrap_or_else(|| node.addr.to_string());
    if let Some(meta) = meta {
        register_storage_node(&meta, &node.store, &addr, args.zone.clone()).await?;
        tokio::spawn(send_heartbeats(meta, node.store.clone(), addr.clone(), args.zone));
    }
    println!("JaDFS storage node {} listening on {addr}", node.store.node_id());
    run_until_stopped(vec![serve(node.server)]).await
}

pub async fn gateway(args: GatewayArgs) -> anyhow::Result<()> {
    let (Some(access_key), Some(secret_key)) = (args.s3.access_key.clone(), args.s3.secret_key.clone()) else {
        bail!("a gateway needs --access-key and --secret-key (or JADFS_ACCESS_KEY and JADFS_SECRET_KEY)");
    };
    let credentials = Credentials { access_key, secret_key };
    let cluster_key = args.cluster.key()?;
    let links = args.internal_tls.links()?;
    let storage = StorageClient::new(Arc::new(Signer::new(cluster_key.clone())), &links);
    let config = gateway_config(&args.s3, args.meta, &credentials, cluster_key, links);
    let gateway = jadfs_gateway::start(config, storage)?;
    println!("JaDFS S3 endpoint: {}://{}", gateway.scheme, gateway.addr);
    run_until_stopped(vec![serve(gateway.server)]).await
}

/// Asks the cluster at `peers` to take this node as a learner and then as a
/// voter, retrying until it is a voter (at once, if it already is one).
async fn join_meta_cluster(raft: jadfs_meta::api::Raft, node_id: u64, addr: String, client: MetaClient) {
    loop {
        let is_voter = raft.metrics().borrow().membership_config.membership().voter_ids().any(|id| id == node_id);
        if is_voter {
            tracing::info!(node_id, "member of the meta cluster");
            return;
        }
        let joined = match client.add_learner(node_id, &addr).await {
            Ok(()) => client.promote(node_id).await,
            Err(e) => Err(e),
        };
        if let Err(e) = joined {
            tracing::warn!(error = %e, "joining the meta cluster failed; retrying");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn register_storage_node(
    meta: &MetaClient,
    store: &ChunkStore,
    addr: &str,
    zone: Option<String>,
) -> anyhow::Result<()> {
    let (free_bytes, capacity_bytes) = store.disk_space();
    let node = StorageNodeInfo {
        id: store.node_id(),
        addr: addr.to_string(),
        zone,
        capacity_bytes,
        free_bytes,
        registered_ms: jadfs_common::now_ms(),
        state: NodeState::Alive,
        draining: false,
    };
    meta.write(&Command::RegisterNode { node }).await.context("registering the storage node")?;
    Ok(())
}

/// Tells the meta leader every few seconds that this node lives and how
/// much space it has (outside the Raft log), registering again if the
/// cluster has forgotten the node; and reports the copies it lost.
async fn send_heartbeats(meta: Arc<MetaClient>, store: Arc<ChunkStore>, addr: String, zone: Option<String>) {
    loop {
        tokio::time::sleep(jadfs_meta::nodes::HEARTBEAT_INTERVAL).await;
        let (free_bytes, capacity_bytes) = store.disk_space();
        let beat = Heartbeat { id: store.node_id(), free_bytes, capacity_bytes };
        let outcome = match meta.heartbeat(&beat).await {
            Ok(true) => report_lost_copies(&meta, &store).await,
            Ok(false) => register_storage_node(&meta, &store, &addr, zone.clone()).await,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "storage node heartbeat failed; will retry");
        }
    }
}

/// Tells meta (through Raft) of the copies this node found gone or bad, so
/// they are made again elsewhere; each is forgotten here once meta knows.
async fn report_lost_copies(meta: &MetaClient, store: &Arc<ChunkStore>) -> anyhow::Result<()> {
    loop {
        let lost = store.lost(1000)?;
        if lost.is_empty() {
            return Ok(());
        }
        let command = Command::CopiesLost { node: store.node_id(), chunks: lost.clone() };
        meta.write(&command).await.context("reporting lost copies")?;
        tracing::warn!(copies = lost.len(), "reported lost copies to meta");
        store.reported(&lost)?;
    }
}

/// The registered storage nodes, as the meta service lists them, kept for
/// a few seconds: where a storage node may copy a chunk to.
struct MetaDirectory {
    meta: Arc<MetaClient>,
    listed: tokio::sync::Mutex<Option<(std::time::Instant, Vec<StorageNodeInfo>)>>,
}

impl MetaDirectory {
    fn new(meta: Arc<MetaClient>) -> MetaDirectory {
        MetaDirectory { meta, listed: tokio::sync::Mutex::new(None) }
    }
}

impl Directory for MetaDirectory {
    fn address_of(
        &self,
        node: NodeId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send + '_>> {
        Box::pin(async move {
            let mut listed = self.listed.lock().await;
            let fresh = listed
                .as_ref()
                .is_some_and(|(at, nodes)| at.elapsed() < Duration::from_secs(5) && nodes.iter().any(|n| n.id == node));
            if !fresh {
                *listed = Some((std::time::Instant::now(), self.meta.list_nodes().await.ok()?));
            }
            let (_, nodes) = listed.as_ref()?;
            nodes.iter().find(|n| n.id == node).map(|n| n.addr.clone())
        })
    }
}

/// Creates a role's data folder if needed and makes it its owner's alone
/// (0700), whatever modes the files inside were made with before.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))
}

/// Starts serving: an actix server runs only while its future is polled.
fn serve(server: actix_web::dev::Server) -> actix_web::dev::ServerHandle {
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

/// Serves until SIGINT or SIGTERM, then stops every server gracefully.
async fn run_until_stopped(handles: Vec<actix_web::dev::ServerHandle>) -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    for handle in handles {
        handle.stop(true).await;
    }
    Ok(())
}
