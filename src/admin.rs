//! `jadfs admin`: manages access keys, bucket grants, replication and
//! storage nodes through a gateway's administration API, signed with a root key.

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use jadfs_common::node::ScrubStatus;
use jadfs_gateway::admin::{ClusterStatus, NodeScrub, NodesReport};
use jadfs_gateway::sigv4;
use jadfs_meta::api::NodeState;
use sha2::{Digest, Sha256};

use crate::credentials::Credentials;
use crate::s3_client::{NotDeleted, DELETE_BATCH, S3};

#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    #[command(subcommand)]
    command: AdminCommand,
}

/// Where an S3 endpoint is and the key to sign with (shared with `jadfs bench`).
#[derive(Args)]
pub struct EndpointArgs {
    /// S3 endpoint of a gateway.
    #[arg(long, env = "JADFS_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    pub endpoint: String,
    /// Root access key (default: the one `jadfs server` keeps in DATA_DIR).
    #[arg(long, env = "JADFS_ACCESS_KEY")]
    pub access_key: Option<String>,
    /// Root secret key.
    #[arg(long, env = "JADFS_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Data folder of `jadfs server`, where its root credentials are kept.
    #[arg(long, env = "JADFS_DATA_DIR", default_value = "./jadfs-data")]
    pub data_dir: std::path::PathBuf,
    /// The region the endpoint serves (signatures name it).
    #[arg(long, env = "JADFS_REGION", default_value = "us-east-1")]
    pub region: String,
}

impl EndpointArgs {
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        Credentials::given_or_kept(self.access_key.clone(), self.secret_key.clone(), &self.data_dir)
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Access keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Who may use a bucket besides its owner.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Membership of the meta (Raft) cluster.
    Meta(MetaArgs),
    /// The cluster at a glance: meta members and their leader, storage
    /// nodes (state, space, chunks, scrub), what waits for repair and
    /// collection, and alarms.
    Status {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Storage nodes, their state (alive, suspect, dead) and space, and the repair backlog.
    Nodes,
    /// One storage node: drain it before it leaves.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Move copies between storage nodes until each holds its fair share
    /// (by capacity) within a tolerance; a node just added fills up.
    Rebalance(RebalanceArgs),
    /// The scrubbers, which re-read and check every chunk of each storage node.
    #[command(subcommand)]
    Scrub(ScrubCommand),
    /// How new chunks are replicated, for the cluster or one bucket.
    #[command(subcommand)]
    Replication(ReplicationCommand),
}

#[derive(Subcommand)]
enum ReplicationCommand {
    /// Show the replication in force (a bucket's own, else the cluster default).
    Get {
        #[arg(long)]
        bucket: Option<String>,
    },
    /// Set the cluster default, or with --bucket one bucket's (`default` removes a bucket's own).
    Set {
        #[arg(long)]
        bucket: Option<String>,
        /// sync: acknowledged once WRITE_QUORUM copies are durable; async: once one copy is.
        #[arg(value_parser = ["sync", "async", "default"])]
        mode: String,
        /// Copies of every chunk.
        #[arg(long, default_value_t = 3)]
        copies: u8,
        /// Copies durable before a sync write is acknowledged (default: all).
        #[arg(long)]
        write_quorum: Option<u8>,
    },
}

#[derive(Args)]
struct MetaArgs {
    /// Meta nodes to ask (comma-separated `host:port`); any member will do.
    #[arg(long, env = "JADFS_META", value_delimiter = ',', default_value = "127.0.0.1:9100")]
    meta: Vec<String>,
    /// Meta nodes take requests only from holders of the cluster secret
    /// (default: the one `jadfs server` keeps in --data-dir).
    #[command(flatten)]
    cluster: crate::credentials::ClusterSecretArgs,
    #[command(flatten)]
    internal_tls: crate::credentials::InternalTlsArgs,
    #[command(subcommand)]
    command: MetaCommand,
}

#[derive(Subcommand)]
enum MetaCommand {
    /// Leader, term, log and apply index of each member.
    Status,
    /// Add a node as a learner; returns once it has caught up with the log.
    AddLearner { node_id: u64, addr: String },
    /// Make a learner a voter.
    Promote { node_id: u64 },
    /// Remove a node from the cluster.
    Remove { node_id: u64 },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Move every copy off a node (it takes no new ones) and show progress
    /// until it holds none. The drain goes on if this command stops; run it
    /// again to watch, or with --stop to end it.
    Drain {
        id: u64,
        /// End the drain: the node takes new copies again.
        #[arg(long)]
        stop: bool,
        /// Start it and return at once.
        #[arg(long)]
        no_wait: bool,
    },
}

#[derive(Args)]
struct RebalanceArgs {
    /// How far (percent of its fair share) a node's bytes may stay from it.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..=100))]
    tolerance: u8,
    /// End a rebalance in progress.
    #[arg(long)]
    stop: bool,
    /// Start it and return at once.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand)]
enum ScrubCommand {
    /// Start a pass now (on every node, or one), unless one is under way.
    Start {
        #[command(flatten)]
        target: ScrubTarget,
        /// Show a progress bar until every pass started has ended.
        #[arg(long)]
        wait: bool,
    },
    /// Progress of the current pass and what the last one found.
    Status(ScrubTarget),
}

#[derive(Args)]
struct ScrubTarget {
    /// Only this storage node.
    #[arg(long)]
    node: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an access key; prints it with its secret.
    Create {
        /// A name to remember the key by.
        #[arg(long, default_value = "")]
        name: String,
        /// Use this access key ID instead of a random one.
        #[arg(long)]
        id: Option<String>,
        /// Use this secret instead of a random one.
        #[arg(long)]
        secret: Option<String>,
    },
    /// List access keys (never their secrets).
    List,
    /// Delete an access key.
    Delete { access_key: String },
}

#[derive(Subcommand)]
enum BucketCommand {
    /// Let a key read, write or own a bucket.
    Allow {
        bucket: String,
        access_key: String,
        #[arg(long, value_enum, default_value_t = Level::Read)]
        permission: Level,
    },
    /// Take a key's access to a bucket away.
    Deny { bucket: String, access_key: String },
    /// Delete every object of a bucket, or those under a prefix, with a
    /// progress bar (DeleteObjects, 1,000 keys a request). Objects the
    /// cluster refuses to delete are counted and named, not skipped quietly.
    /// In a bucket with versioning each deletion is a delete marker: the
    /// versions stay (delete them by version id through S3).
    Empty {
        bucket: String,
        /// Only the keys that start with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// Do it: without this flag, only count what would be deleted.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Level {
    Read,
    Write,
    Owner,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Owner => "owner",
        }
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    if let AdminCommand::Meta(meta) = args.command {
        return run_meta(meta, &args.endpoint.data_dir).await;
    }
    let credentials = args.endpoint.credentials()?;
    let endpoint = args.endpoint.endpoint.trim_end_matches('/').to_string();
    let client = AdminClient { s3: S3::new(&endpoint, credentials, &args.endpoint.region)?, endpoint };
    match args.command {
        AdminCommand::Key(KeyCommand::Create { name, id, secret }) => {
            let body = serde_json::json!({ "name": name, "access_key": id, "secret_key": secret });
            let key: serde_json::Value = client.call("POST", "/-/admin/keys", Some(body)).await?.json().await?;
            println!(
                "access key: {}\nsecret key: {}",
                key["access_key"].as_str().unwrap_or(""),
                key["secret_key"].as_str().unwrap_or("")
            );
        }
        AdminCommand::Key(KeyCommand::List) => {
            let keys: Vec<serde_json::Value> = client.call("GET", "/-/admin/keys", None).await?.json().await?;
            println!("{:<24} {:<24} created", "access key", "name");
            for key in keys {
                let created = chrono::DateTime::from_timestamp_millis(key["created_ms"].as_i64().unwrap_or(0))
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                println!(
                    "{:<24} {:<24} {created}",
                    key["access_key"].as_str().unwrap_or(""),
                    key["name"].as_str().unwrap_or("")
                );
            }
        }
        AdminCommand::Key(KeyCommand::Delete { access_key }) => {
            client.call("DELETE", &format!("/-/admin/keys/{}", sigv4::uri_encode(&access_key)), None).await?;
        }
        AdminCommand::Bucket(BucketCommand::Allow { bucket, access_key, permission }) => {
            let body = serde_json::json!({ "access_key": access_key, "permission": permission.name() });
            client.call("PUT", &format!("/-/admin/buckets/{}/grants", sigv4::uri_encode(&bucket)), Some(body)).await?;
        }
        AdminCommand::Bucket(BucketCommand::Deny { bucket, access_key }) => {
            let body = serde_json::json!({ "access_key": access_key, "permission": null });
            client.call("PUT", &format!("/-/admin/buckets/{}/grants", sigv4::uri_encode(&bucket)), Some(body)).await?;
        }
        AdminCommand::Bucket(BucketCommand::Empty { bucket, prefix, yes }) => {
            empty_bucket(&client.s3, &bucket, &prefix, yes).await?;
        }
        AdminCommand::Status { json } => {
            let status: ClusterStatus = client.call("GET", "/-/admin/status", None).await?.json().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
        }
        AdminCommand::Nodes => {
            let report = nodes_report(&client).await?;
            println!(
                "{:<20} {:<22} {:<8} {:<15} {:>10} {:>10} {:>9} {:>10}",
                "id", "addr", "zone", "state", "free GiB", "size GiB", "chunks", "held GiB"
            );
            let gib = |v: u64| v as f64 / (1u64 << 30) as f64;
            for node in &report.nodes {
                let held = report.usage.nodes.iter().find(|u| u.node == node.id).cloned().unwrap_or_default();
                let state = serde_json::to_value(node.state)?;
                let state =
                    format!("{}{}", state.as_str().unwrap_or("?"), if node.draining { " draining" } else { "" });
                println!(
                    "{:<20} {:<22} {:<8} {:<15} {:>10.1} {:>10.1} {:>9} {:>10.2}",
                    node.id,
                    node.addr,
                    node.zone.as_deref().unwrap_or("-"),
                    state,
                    gib(node.free_bytes),
                    gib(node.capacity_bytes),
                    held.chunks,
                    gib(held.bytes),
                );
            }
            let without = report.chunks_without_copy;
            println!("chunks waiting for copies: {}", report.repair_queue - without.min(report.repair_queue));
            if without > 0 {
                println!("chunks with no copy left: {without}");
            }
            if let Some(tolerance) = report.usage.rebalance_tolerance {
                println!("rebalancing to within {tolerance}% of each node's share");
            }
        }
        AdminCommand::Replication(ReplicationCommand::Get { bucket }) => {
            let r: serde_json::Value = client.call("GET", &replication_path(&bucket), None).await?.json().await?;
            println!(
                "mode: {}
copies: {}
write quorum: {}",
                r["mode"].as_str().unwrap_or("?"),
                r["copies"],
                r["write_quorum"]
            );
        }
        AdminCommand::Replication(ReplicationCommand::Set { bucket, mode, copies, write_quorum }) => {
            let body = match mode.as_str() {
                // The cluster's default goes back to sync with every copy; a bucket's to the cluster's.
                "default" => serde_json::Value::Null,
                _ => {
                    serde_json::json!({ "mode": mode, "copies": copies, "write_quorum": write_quorum.unwrap_or(copies) })
                }
            };
            client.call("PUT", &replication_path(&bucket), Some(body)).await?;
        }
        AdminCommand::Scrub(command) => {
            let (method, target, wait) = match command {
                ScrubCommand::Start { target, wait } => ("POST", target, wait),
                ScrubCommand::Status(target) => ("GET", target, false),
            };
            let path = match target.node {
                Some(node) => format!("/-/admin/scrub?node={node}"),
                None => "/-/admin/scrub".to_string(),
            };
            let mut report: Vec<NodeScrub> = client.call(method, &path, None).await?.json().await?;
            if wait {
                report = watch_scrub(&client, &path).await?;
            }
            if target.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_scrub_report(&report);
            }
        }
        AdminCommand::Node(NodeCommand::Drain { id, stop, no_wait }) => {
            let body = serde_json::json!({ "draining": !stop });
            client.call("PUT", &format!("/-/admin/nodes/{id}/drain"), Some(body)).await?;
            if !stop && !no_wait {
                watch_drain(&client, id).await?;
            }
        }
        AdminCommand::Rebalance(args) => {
            let body = serde_json::json!({ "tolerance": (!args.stop).then_some(args.tolerance) });
            client.call("PUT", "/-/admin/rebalance", Some(body)).await?;
            if !args.stop && !args.no_wait {
                watch_rebalance(&client).await?;
            }
        }
        AdminCommand::Meta(_) => unreachable!("answered above"),
    }
    Ok(())
}

async fn nodes_report(client: &AdminClient) -> anyhow::Result<NodesReport> {
    Ok(client.call("GET", "/-/admin/nodes", None).await?.json().await?)
}

fn progress_bar(len: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    let template = format!("{{spinner}} [{{bar:40}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}}, {{eta}} left)");
    bar.set_style(indicatif::ProgressStyle::with_template(&template).expect("a valid template").progress_chars("=> "));
    bar
}

/// Deletes the keys of `bucket` under `prefix` page by page, a bar showing
/// those deleted of those listed so far (the total is known only when the
/// listing ends); with `really` false, only counts them.
async fn empty_bucket(s3: &S3, bucket: &str, prefix: &str, really: bool) -> anyhow::Result<()> {
    let bar = progress_bar(0, "keys deleted");
    let (mut listed, mut deleted) = (0u64, 0u64);
    let mut failed: Vec<NotDeleted> = Vec::new();
    // Keys that failed stay listed; the token walks past them, so a failure
    // is reported once and never retried in a loop.
    let mut token: Option<String> = None;
    loop {
        let page = s3.list_page(bucket, prefix, token.as_deref()).await?;
        listed += page.keys.len() as u64;
        bar.set_length(listed);
        if really {
            for batch in page.keys.chunks(DELETE_BATCH) {
                let refused = s3.delete_batch(bucket, batch).await?;
                deleted += (batch.len() - refused.len()) as u64;
                failed.extend(refused);
                bar.set_position(deleted);
                bar.set_message(if failed.is_empty() { String::new() } else { format!("({} refused)", failed.len()) });
            }
        }
        token = page.next;
        if token.is_none() {
            break;
        }
    }
    bar.finish_and_clear();
    if !really {
        println!("{listed} objects under {bucket}/{prefix} would be deleted: add --yes to delete them");
        return Ok(());
    }
    println!("deleted {deleted} of {listed} objects under {bucket}/{prefix}");
    for f in failed.iter().take(20) {
        println!("  not deleted: {} ({})", f.key, f.code);
    }
    if !failed.is_empty() {
        bail!("{} objects were not deleted", failed.len());
    }
    Ok(())
}

/// Shows a drain's progress until the node holds no copy.
async fn watch_drain(client: &AdminClient, id: u64) -> anyhow::Result<()> {
    let held = |report: &NodesReport| report.usage.nodes.iter().find(|u| u.node == id).map_or(0, |u| u.chunks);
    let first = held(&nodes_report(client).await?);
    let bar = progress_bar(first, "copies moved");
    loop {
        let report = nodes_report(client).await?;
        let left = held(&report);
        bar.set_position(first.saturating_sub(left));
        if left == 0 {
            bar.finish_and_clear();
            println!("node {id} holds no copies: it can be stopped");
            return Ok(());
        }
        if !report.nodes.iter().any(|n| n.id == id && n.draining) {
            bar.abandon();
            bail!("node {id} is no longer being drained; {left} copies are left on it");
        }
        bar.set_message(format!("({left} left)"));
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Shows the scrub passes' progress (bytes checked of the bytes held when
/// each began, over the nodes of `path`) until none runs; the last report.
async fn watch_scrub(client: &AdminClient, path: &str) -> anyhow::Result<Vec<NodeScrub>> {
    let bar = progress_bar(0, "MiB checked");
    loop {
        let report: Vec<NodeScrub> = client.call("GET", path, None).await?.json().await?;
        let running: Vec<&ScrubStatus> = report.iter().filter_map(|n| n.scrub.as_ref()).filter(|s| s.running).collect();
        if running.is_empty() {
            bar.finish_and_clear();
            return Ok(report);
        }
        let total: u64 = running.iter().map(|s| s.pass_total_bytes).sum();
        let checked: u64 = running.iter().map(|s| s.checked_bytes.min(s.pass_total_bytes)).sum();
        bar.set_length(total >> 20);
        bar.set_position(checked >> 20);
        bar.set_message(format!("({} nodes scrubbing)", running.len()));
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Shows a rebalance's progress (how far the node furthest from its fair
/// share is from it) until the leader ends it, then each node's share.
async fn watch_rebalance(client: &AdminClient) -> anyhow::Result<()> {
    let bar = progress_bar(100, "%");
    let mut first = None;
    let report = loop {
        let report = nodes_report(client).await?;
        let off = furthest_from_share(&report);
        let first = *first.get_or_insert(off.max(1e-9));
        bar.set_position((100.0 * (1.0 - off / first)).clamp(0.0, 100.0) as u64);
        bar.set_message(format!("furthest node {:.0}% from its share", off * 100.0));
        if report.usage.rebalance_tolerance.is_none() {
            bar.finish_and_clear();
            break report;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    println!("{:<20} {:>10} {:>12}", "node", "chunks", "MiB");
    for u in &report.usage.nodes {
        println!("{:<20} {:>10} {:>12.1}", u.node, u.chunks, u.bytes as f64 / (1 << 20) as f64);
    }
    println!("rebalanced: the furthest node is {:.0}% from its share", furthest_from_share(&report) * 100.0);
    Ok(())
}

/// How far (as a fraction of it) the live, undrained node furthest from
/// its fair share of bytes (by capacity) is from it.
fn furthest_from_share(report: &NodesReport) -> f64 {
    let pool: Vec<_> = report.nodes.iter().filter(|n| !n.draining && n.state == NodeState::Alive).collect();
    let bytes = |id: u64| report.usage.nodes.iter().find(|u| u.node == id).map_or(0, |u| u.bytes) as f64;
    let total: f64 = pool.iter().map(|n| bytes(n.id)).sum();
    let capacity: f64 = pool.iter().map(|n| n.capacity_bytes as f64).sum();
    if total == 0.0 || capacity == 0.0 {
        return 0.0;
    }
    pool.iter().map(|n| (bytes(n.id) / (total * n.capacity_bytes as f64 / capacity) - 1.0).abs()).fold(0.0, f64::max)
}

fn print_scrub_report(report: &[NodeScrub]) {
    println!("{:<20} {:<8} {:>9} {:>10} {:>6} {:>9}  last pass", "node", "state", "progress", "MiB/s", "bad", "chunks");
    let when = |ms: Option<i64>| {
        ms.and_then(chrono::DateTime::from_timestamp_millis).map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())
    };
    for node in report {
        let Some(s) = &node.scrub else {
            println!("{:<20} unreachable: {}", node.node, node.error.as_deref().unwrap_or("?"));
            continue;
        };
        println!(
            "{:<20} {:<8} {:>9} {:>10.1} {:>6} {:>9}  {} ({} bad of {} chunks)",
            node.node,
            if s.running { "running" } else { "idle" },
            scrub_progress(s),
            s.rate_bytes_per_s as f64 / (1 << 20) as f64,
            s.bad_copies,
            s.checked_chunks,
            when(s.last_completed_ms),
            s.last_pass_bad_copies,
            s.last_pass_chunks,
        );
    }
}

/// How far a scrub pass is: a percentage while one runs, `-` otherwise.
fn scrub_progress(s: &ScrubStatus) -> String {
    match (s.running, s.pass_total_bytes) {
        (false, _) => "-".to_string(),
        (true, 0) => "0%".to_string(),
        (true, total) => format!("{:.1}%", 100.0 * s.checked_bytes.min(total) as f64 / total as f64),
    }
}

fn print_status(status: &ClusterStatus) {
    let gib = |v: u64| v as f64 / (1u64 << 30) as f64;
    let or_dash = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    match status.leader {
        Some(leader) => println!("meta cluster: {} members, leader {leader}", status.meta.len()),
        None => println!("meta cluster: {} members, NO LEADER", status.meta.len()),
    }
    println!(
        "  {:<4} {:<22} {:<10} {:>6} {:>6} {:>10} {:>10} {:>10}",
        "id", "addr", "state", "leader", "term", "log", "committed", "applied"
    );
    for m in &status.meta {
        match &m.error {
            Some(e) => println!("  {:<4} {:<22} unreachable: {e}", m.id, m.addr),
            None => println!(
                "  {:<4} {:<22} {:<10} {:>6} {:>6} {:>10} {:>10} {:>10}",
                m.id,
                m.addr,
                m.state.as_deref().unwrap_or("?"),
                or_dash(m.leader),
                or_dash(m.term),
                or_dash(m.last_log),
                or_dash(m.committed),
                or_dash(m.applied)
            ),
        }
    }
    println!("\nstorage nodes: {}", status.nodes.len());
    println!(
        "  {:<20} {:<22} {:<8} {:<15} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "id", "addr", "zone", "state", "used", "size GiB", "chunks", "held GiB", "scrub"
    );
    for n in &status.nodes {
        let info = &n.info;
        let used = match info.capacity_bytes {
            0 => "-".to_string(),
            size => format!("{:.0}%", 100.0 * (size - info.free_bytes.min(size)) as f64 / size as f64),
        };
        let scrub = match &n.scrub {
            Some(s) if s.running => scrub_progress(s),
            Some(_) => "idle".to_string(),
            None => "?".to_string(),
        };
        println!(
            "  {:<20} {:<22} {:<8} {:<15} {:>6} {:>9.1} {:>9} {:>9.2} {:>9}",
            info.id,
            info.addr,
            info.zone.as_deref().unwrap_or("-"),
            format!("{}{}", info.state.as_str(), if info.draining { " draining" } else { "" }),
            used,
            gib(info.capacity_bytes),
            n.chunks,
            gib(n.bytes),
            scrub
        );
    }
    let s = &status.stats;
    println!(
        "\nbuckets {}, objects {} ({} inline), chunks {} ({:.2} GiB)",
        s.buckets,
        s.objects,
        s.inline_objects,
        s.chunks,
        gib(s.chunk_bytes)
    );
    println!(
        "waiting for copies: {} ({} with no copy left), orphaned (to collect): {}, copies to delete: {}",
        s.repair_queue, s.chunks_without_copy, s.orphaned_chunks, s.pending_deletions
    );
    if let Some(tolerance) = status.rebalance_tolerance {
        println!("rebalancing to within {tolerance}% of each node's share");
    }
    if !s.lifecycle.is_empty() {
        println!("\nlifecycle rounds:");
        println!("  {:<24} {:<26} {:>9} {:>9} {:>9}", "bucket", "round", "judged", "expired", "aborted");
        let now = jadfs_common::now_ms();
        for run in &s.lifecycle {
            let round = match run.finished_ms {
                Some(done) => format!("done {} ago", ago(now - done)),
                None => format!("running for {}", ago(now - run.started_ms)),
            };
            println!("  {:<24} {:<26} {:>9} {:>9} {:>9}", run.bucket, round, run.judged, run.expired, run.aborted);
        }
    }
    if status.alarms.is_empty() {
        println!("\nno alarms");
    } else {
        println!("\nALARMS:");
        for alarm in &status.alarms {
            println!("  - {alarm}");
        }
    }
}

/// A duration in milliseconds as people read it: 40s, 12m, 3h, 2d.
fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn replication_path(bucket: &Option<String>) -> String {
    match bucket {
        Some(bucket) => format!("/-/admin/buckets/{}/replication", sigv4::uri_encode(bucket)),
        None => "/-/admin/replication".to_string(),
    }
}

async fn run_meta(args: MetaArgs, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let (key, _) = args.cluster.key_or_kept(data_dir, false)?;
    let signer = std::sync::Arc::new(jadfs_common::cluster_auth::Signer::new(key));
    let client = jadfs_meta::MetaClient::new(args.meta.clone(), signer, &args.internal_tls.links()?);
    let fail = |e: jadfs_meta::MetaError| anyhow::anyhow!("{e}");
    match args.command {
        MetaCommand::Status => {
            // Ask every member the leader knows of, not only the ones given.
            let first = client.status(&args.meta[0]).await.map_err(fail)?;
            let nodes = first["membership_config"]["membership"]["nodes"].as_object().cloned().unwrap_or_default();
            println!(
                "{:<6} {:<22} {:<10} {:<7} {:<8} {:<9} {:<9} {:<9}",
                "id", "addr", "state", "leader", "term", "log", "commit", "applied"
            );
            for (id, node) in nodes {
                let addr = node["addr"].as_str().unwrap_or_default().to_string();
                match client.status(&addr).await {
                    Ok(m) => println!(
                        "{:<6} {:<22} {:<10} {:<7} {:<8} {:<9} {:<9} {:<9}",
                        id,
                        addr,
                        m["state"].as_str().unwrap_or("?"),
                        m["current_leader"].as_u64().map(|l| l.to_string()).unwrap_or("-".into()),
                        m["current_term"],
                        m["last_log_index"].as_u64().map(|l| l.to_string()).unwrap_or("-".into()),
                        m["committed"].as_u64().map(|l| l.to_string()).unwrap_or("-".into()),
                        m["last_applied"]["index"].as_u64().map(|l| l.to_string()).unwrap_or("-".into()),
                    ),
                    Err(e) => println!("{id:<6} {addr:<22} unreachable: {e}"),
                }
            }
        }
        MetaCommand::AddLearner { node_id, addr } => client.add_learner(node_id, &addr).await.map_err(fail)?,
        MetaCommand::Promote { node_id } => client.promote(node_id).await.map_err(fail)?,
        MetaCommand::Remove { node_id } => client.remove_voter(node_id).await.map_err(fail)?,
    }
    Ok(())
}

/// The admin API's client: JSON bodies whose SHA-256 is signed (the API
/// refuses unsigned payloads).
struct AdminClient {
    s3: S3,
    endpoint: String,
}

impl AdminClient {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?.unwrap_or_default();
        let payload_hash = hex::encode(Sha256::digest(&body));
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let response = self
            .s3
            .signed(method, path, query, &payload_hash)?
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.endpoint))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            bail!("{method} {path}: {status}: {text}");
        }
        Ok(response)
    }
}
