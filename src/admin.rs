//! `jadfs admin`: manages access keys, bucket grants, replication and
//! storage nodes through a gateway's administration API, signed with a root key.

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use jadfs_gateway::admin::NodeScrub;
use jadfs_gateway::sigv4::{self, RequestParts};
use sha2::{Digest, Sha256};

use crate::credentials::Credentials;

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
    /// Storage nodes, their state (alive, suspect, dead) and space, and the repair backlog.
    Nodes,
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
enum ScrubCommand {
    /// Start a pass now (on every node, or one), unless one is under way.
    Start(ScrubTarget),
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
    let client = AdminClient { endpoint, credentials, region: args.endpoint.region.clone() };
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
        AdminCommand::Nodes => {
            let report: serde_json::Value = client.call("GET", "/-/admin/nodes", None).await?.json().await?;
            println!("{:<20} {:<22} {:<8} {:<8} {:>10} {:>10}", "id", "addr", "zone", "state", "free GiB", "size GiB");
            let gib = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as f64 / (1u64 << 30) as f64;
            for node in report["nodes"].as_array().into_iter().flatten() {
                println!(
                    "{:<20} {:<22} {:<8} {:<8} {:>10.1} {:>10.1}",
                    node["id"],
                    node["addr"].as_str().unwrap_or(""),
                    node["zone"].as_str().unwrap_or("-"),
                    node["state"].as_str().unwrap_or("?"),
                    gib(&node["free_bytes"]),
                    gib(&node["capacity_bytes"]),
                );
            }
            println!("chunks waiting for copies: {}", report["repair_queue"]);
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
            let (method, target) = match command {
                ScrubCommand::Start(target) => ("POST", target),
                ScrubCommand::Status(target) => ("GET", target),
            };
            let path = match target.node {
                Some(node) => format!("/-/admin/scrub?node={node}"),
                None => "/-/admin/scrub".to_string(),
            };
            let report: Vec<NodeScrub> = client.call(method, &path, None).await?.json().await?;
            if target.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_scrub_report(&report);
            }
        }
        AdminCommand::Meta(_) => unreachable!("answered above"),
    }
    Ok(())
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
        let progress = match (s.running, s.pass_total_bytes) {
            (false, _) => "-".to_string(),
            (true, 0) => "0%".to_string(),
            (true, total) => format!("{:.1}%", 100.0 * s.checked_bytes.min(total) as f64 / total as f64),
        };
        println!(
            "{:<20} {:<8} {:>9} {:>10.1} {:>6} {:>9}  {} ({} bad of {} chunks)",
            node.node,
            if s.running { "running" } else { "idle" },
            progress,
            s.rate_bytes_per_s as f64 / (1 << 20) as f64,
            s.bad_copies,
            s.checked_chunks,
            when(s.last_completed_ms),
            s.last_pass_bad_copies,
            s.last_pass_chunks,
        );
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

struct AdminClient {
    endpoint: String,
    credentials: Credentials,
    region: String,
}

impl AdminClient {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let url: reqwest::Url = format!("{}{path}", self.endpoint).parse().context("invalid endpoint")?;
        let body = body.map(|b| serde_json::to_vec(&b)).transpose()?.unwrap_or_default();
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let payload_hash = hex::encode(Sha256::digest(&body));
        let parts = RequestParts {
            method,
            raw_path: url.path(),
            raw_query: url.query().unwrap_or(""),
            headers: vec![("host".into(), host), ("x-amz-content-sha256".into(), payload_hash.clone())],
        };
        let (date, authorization) = sigv4::sign(
            &parts,
            &self.credentials.access_key,
            &self.credentials.secret_key,
            &self.region,
            chrono::Utc::now(),
        )
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        let response = reqwest::Client::new()
            .request(method.parse()?, url.clone())
            .header("x-amz-content-sha256", payload_hash)
            .header("x-amz-date", date)
            .header("authorization", authorization)
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
