//! The `jadfs` binary: one subcommand per role, and `server`, which runs
//! them all in one process with an embedded default configuration.

mod admin;
mod bench;
mod config_file;
mod credentials;
mod roles;
mod s3_client;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use jadfs_common::DEFAULT_CHUNK_SIZE;

#[derive(Parser)]
#[command(name = "jadfs", version, about = "JaDFS: a self-hosted, S3-compatible storage cluster")]
struct Cli {
    #[command(subcommand)]
    command: Role,
    /// TOML settings file: `name = value` for any flag of the role
    /// (flags > environment > file > defaults).
    #[arg(long, env = "JADFS_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Log lines as `text` (for people) or `json` (one object a line, with
    /// the request id of every line of an S3 request, for log collectors).
    #[arg(long, env = "JADFS_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Token Prometheus must send (`Authorization: Bearer TOKEN`) to read
    /// `/metrics` on every port this process serves; without one, only
    /// loopback peers may read them.
    #[arg(long, env = "JADFS_METRICS_TOKEN", global = true, hide_env_values = true)]
    metrics_token: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Role {
    /// Run everything on this machine: a single-voter meta node, three
    /// storage nodes (so every chunk has three copies) and the S3 gateway.
    Server(ServerArgs),
    /// Run one meta node (metadata, replicated with Raft).
    Meta(MetaArgs),
    /// Run one storage node (chunk files and their index).
    StorageNode(StorageNodeArgs),
    /// Run one S3 gateway.
    Gateway(GatewayArgs),
    /// Manage access keys, bucket grants, replication, storage nodes and meta-cluster membership.
    Admin(admin::AdminArgs),
    /// Exit 0 if URL answers 2xx within two seconds (a container health check
    /// for images that hold nothing but this binary).
    Probe { url: String },
    /// Benchmark an S3 endpoint (JaDFS or any other): large and small
    /// objects, listing, latency percentiles, server CPU and memory.
    Bench(bench::BenchArgs),
}

/// Settings of the S3 endpoint shared by `server` and `gateway`.
#[derive(Args, Clone)]
struct S3Args {
    /// Address the S3 endpoint listens on.
    #[arg(long, env = "JADFS_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Access key of the root credentials (default for `server`: created on
    /// first start and kept in the data folder).
    #[arg(long, env = "JADFS_ACCESS_KEY")]
    access_key: Option<String>,
    /// Secret key of the root credentials.
    #[arg(long, env = "JADFS_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// Region reported to clients.
    #[arg(long, env = "JADFS_REGION", default_value = "us-east-1")]
    region: String,
    /// Domain for virtual-host-style addressing: `bucket.DOMAIN` names a bucket.
    #[arg(long, env = "JADFS_DOMAIN", default_value = "localhost")]
    domain: String,
    /// Size of the chunks objects are cut into, in bytes.
    #[arg(long, env = "JADFS_CHUNK_SIZE", default_value_t = DEFAULT_CHUNK_SIZE, value_parser = clap::value_parser!(u64).range(1024..=(1 << 30)))]
    chunk_size: u64,
    /// Objects of at most this many bytes are kept inline in their metadata
    /// (one Raft entry, as many copies as meta voters) instead of in chunks
    /// on storage nodes; 0 turns it off.
    #[arg(long, env = "JADFS_INLINE_MAX", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(0..=(256 << 10)))]
    inline_max: u64,
    /// Names of the keys SSE-KMS may encrypt with, comma-separated (each
    /// derived from the cluster secret); none: SSE-KMS is refused.
    #[arg(long, env = "JADFS_KMS_KEYS", value_delimiter = ',')]
    kms_keys: Vec<String>,
    /// PEM certificate chain: serve S3 over HTTPS (with --tls-key).
    #[arg(long, env = "JADFS_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "JADFS_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds a request body may send nothing before it is answered 400 RequestTimeout.
    #[arg(long, env = "JADFS_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    body_timeout: u64,
    /// Seconds a connection has to send a whole request head before it is closed.
    #[arg(long, env = "JADFS_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Requests in progress at once, over all clients (beyond: 503 SlowDown).
    #[arg(long, env = "JADFS_MAX_REQUESTS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    max_requests: u64,
    /// Requests in progress at once for one access key (beyond: 503 SlowDown).
    #[arg(long, env = "JADFS_MAX_REQUESTS_PER_KEY", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    max_requests_per_key: u64,
    /// Log one line per S3 request (log target `jadfs::access`: request id,
    /// operation, bucket, status, error code, bytes, milliseconds).
    #[arg(long, env = "JADFS_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    access_log: bool,
}

#[derive(Args)]
struct ServerArgs {
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    cluster: credentials::ClusterSecretArgs,
    /// Folder holding all data: metadata, chunks of the three storage nodes, credentials.
    #[arg(long, env = "JADFS_DATA_DIR", default_value = "./jadfs-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    scrub: ScrubArgs,
    #[command(flatten)]
    gc: GcArgs,
    #[command(flatten)]
    disk: DiskArgs,
}

/// How much of a disk is kept free.
#[derive(Args)]
struct DiskArgs {
    /// Free space kept on each data disk: a storage node below it takes no
    /// new chunk; a meta node below it refuses writes that add data (deletes
    /// go on) and keeps half of it as a ballast file, released when its disk
    /// fills so deletes can still be written. Bytes, or with a unit (KiB,
    /// MiB, GiB, TiB).
    #[arg(long, env = "JADFS_DISK_RESERVE", default_value = "256MiB", value_parser = parse_size)]
    disk_reserve: u64,
}

/// A size in bytes, with an optional binary unit (`KiB`, `MiB`, `GiB`, `TiB`).
fn parse_size(value: &str) -> Result<u64, String> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{value:?} is not a size such as 512MiB"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" | "K" => 10,
        "MiB" | "M" => 20,
        "GiB" | "G" => 30,
        "TiB" | "T" => 40,
        other => return Err(format!("unknown unit {other:?} in {value:?} (KiB, MiB, GiB or TiB)")),
    };
    number.checked_mul(1 << shift).ok_or_else(|| format!("{value:?} is too large"))
}

/// When unused data is deleted.
#[derive(Args)]
struct GcArgs {
    /// How long a chunk no object, part or upload uses is kept before its
    /// copies are deleted (and how old a copy no object names must be):
    /// a duration such as `500ms`, `10s`, `5m`, `1h`, `2d`.
    #[arg(long, env = "JADFS_GC_GRACE", default_value = "1h", value_parser = parse_duration)]
    gc_grace: std::time::Duration,
    /// For tests only: how long a lifecycle rule's day lasts (`2s` expires
    /// an object with `Days` 1 after two seconds). Unset, a day is 24 hours;
    /// set, the meta node says so loudly in its log.
    #[arg(long, env = "JADFS_LIFECYCLE_DAY", value_parser = parse_duration)]
    lifecycle_day: Option<std::time::Duration>,
}

impl GcArgs {
    fn lifecycle_day(&self) -> std::time::Duration {
        self.lifecycle_day.unwrap_or(std::time::Duration::from_millis(jadfs_meta::api::DAY_MS as u64))
    }
}

/// A duration: a number with a unit (`ms`, `s`, `m`, `h`, `d`; seconds without one).
fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{value:?} is not a duration such as 10s or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86400.0,
        other => return Err(format!("unknown unit {other:?} in {value:?} (ms, s, m, h or d)")),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|e| format!("{value:?}: {e}"))
}

/// How a storage node's scrubber re-reads its chunks.
#[derive(Args)]
struct ScrubArgs {
    /// Rate limit of the scrubber (re-reading and checking every chunk), in
    /// MiB/s per node. Default: whatever reads all a node holds in 6 days,
    /// at least 1 MiB/s.
    #[arg(long, env = "JADFS_SCRUB_RATE", value_parser = positive_rate)]
    scrub_rate: Option<f64>,
}

fn positive_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{value:?} is not a positive number of MiB/s")),
    }
}

#[derive(Args)]
struct MetaArgs {
    #[command(flatten)]
    cluster: credentials::ClusterSecretArgs,
    #[command(flatten)]
    internal_tls: credentials::InternalTlsArgs,
    /// This node's Raft ID, unique in the meta cluster.
    #[arg(long, env = "JADFS_NODE_ID", default_value_t = 1)]
    node_id: u64,
    /// Address the meta node listens on (Raft and the metadata API).
    #[arg(long, env = "JADFS_META_LISTEN", default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Address peers and gateways reach this node at (default: the listen address).
    #[arg(long, env = "JADFS_META_ADVERTISE")]
    advertise: Option<String>,
    /// Folder of the Raft log and the state machine.
    #[arg(long, env = "JADFS_DATA_DIR", default_value = "./jadfs-meta")]
    data_dir: PathBuf,
    /// Start a new cluster with this node as its only voter (ignored once initialised).
    #[arg(long, env = "JADFS_BOOTSTRAP", conflicts_with = "join")]
    bootstrap: bool,
    /// Join the cluster of these meta nodes (comma-separated `host:port`):
    /// become a learner, catch up, then a voter. Retried until it succeeds.
    #[arg(long, env = "JADFS_JOIN", value_delimiter = ',')]
    join: Vec<String>,
    /// Raft heartbeat interval, in milliseconds.
    #[arg(long, env = "JADFS_HEARTBEAT_MS", default_value_t = 150)]
    heartbeat_ms: u64,
    /// Minimum Raft election timeout, in milliseconds.
    #[arg(long, env = "JADFS_ELECTION_TIMEOUT_MS", default_value_t = 750)]
    election_timeout_ms: u64,
    /// Seconds without a heartbeat after which a storage node counts as
    /// dead and its chunks are copied to other nodes.
    #[arg(long, env = "JADFS_NODE_DEAD_AFTER", default_value_t = 60)]
    node_dead_after: u64,
    /// Take a Raft snapshot every this many log entries (and purge the log before it).
    #[arg(long, env = "JADFS_SNAPSHOT_EVERY", default_value_t = 10_000)]
    snapshot_every: u64,
    #[command(flatten)]
    gc: GcArgs,
    #[command(flatten)]
    disk: DiskArgs,
}

#[derive(Args)]
struct StorageNodeArgs {
    #[command(flatten)]
    cluster: credentials::ClusterSecretArgs,
    #[command(flatten)]
    internal_tls: credentials::InternalTlsArgs,
    /// Address the storage node listens on.
    #[arg(long, env = "JADFS_NODE_LISTEN", default_value = "127.0.0.1:9200")]
    listen: SocketAddr,
    /// Address gateways and peers reach this node at (default: the listen address).
    #[arg(long, env = "JADFS_NODE_ADVERTISE")]
    advertise: Option<String>,
    /// Folder of the chunk files and their index.
    #[arg(long, env = "JADFS_DATA_DIR", default_value = "./jadfs-node")]
    data_dir: PathBuf,
    /// Meta nodes to register with (comma-separated `host:port`).
    #[arg(long, env = "JADFS_META", value_delimiter = ',')]
    meta: Vec<String>,
    /// Failure-domain label (rack, room, …).
    #[arg(long, env = "JADFS_ZONE")]
    zone: Option<String>,
    /// Largest chunk accepted, in bytes.
    #[arg(long, env = "JADFS_MAX_CHUNK_SIZE", default_value_t = 1 << 30)]
    max_chunk_size: u64,
    #[command(flatten)]
    scrub: ScrubArgs,
    #[command(flatten)]
    disk: DiskArgs,
}

#[derive(Args)]
struct GatewayArgs {
    #[command(flatten)]
    s3: S3Args,
    #[command(flatten)]
    cluster: credentials::ClusterSecretArgs,
    /// Reach meta and storage nodes over TLS (only --internal-tls-ca is needed here).
    #[command(flatten)]
    internal_tls: credentials::InternalTlsArgs,
    /// Meta nodes (comma-separated `host:port`).
    #[arg(long, env = "JADFS_META", value_delimiter = ',', required = true)]
    meta: Vec<String>,
}

/// What the process sets about itself before anything runs: files it
/// creates are its own alone (data, databases, snapshots, secrets: 0600 and
/// 0700), and it may hold as many files open as the system lets it (each
/// upload in progress holds a temporary file per copy).
fn harden_process() {
    // SAFETY: umask, getrlimit and setrlimit only read and set this
    // process's own attributes; `limit` is a valid out-pointer.
    unsafe {
        libc::umask(0o077);
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() -> anyhow::Result<()> {
    harden_process();
    // The settings file becomes environment variables before any thread starts.
    let args: Vec<String> = std::env::args().collect();
    if let Some((role, path)) = config_file::locate(&args) {
        use clap::CommandFactory;
        let text = config_file::read(&path)?;
        for (name, value) in
            config_file::env_from_file(&Cli::command(), &role, &text, |n| std::env::var_os(n).is_some())?
        {
            std::env::set_var(name, value);
        }
    }
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,openraft=warn".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }
    if matches!(cli.command, Role::Server(_) | Role::Meta(_) | Role::StorageNode(_) | Role::Gateway(_)) {
        jadfs_common::metrics::install(cli.metrics_token.clone());
    }
    match cli.command {
        Role::Server(args) => roles::server(args).await,
        Role::Meta(args) => roles::meta(args).await,
        Role::StorageNode(args) => roles::storage_node(args).await,
        Role::Gateway(args) => roles::gateway(args).await,
        Role::Admin(args) => admin::run(args).await,
        Role::Bench(args) => bench::run(args).await,
        Role::Probe { url } => {
            let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build()?;
            client.get(&url).send().await?.error_for_status()?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        let ok = |s| super::parse_duration(s).unwrap();
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("1.5m"), Duration::from_secs(90));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("2d"), Duration::from_secs(2 * 86400));
        for bad in ["", "h", "10x", "-1s", "1e400s", "ten seconds"] {
            assert!(super::parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_take_a_binary_unit_or_mean_bytes() {
        let ok = |s| super::parse_size(s).unwrap();
        assert_eq!(ok("4096"), 4096);
        assert_eq!(ok("64KiB"), 64 << 10);
        assert_eq!(ok("256MiB"), 256 << 20);
        assert_eq!(ok("2 GiB"), 2 << 30);
        assert_eq!(ok("1T"), 1 << 40);
        for bad in ["", "MiB", "1.5GiB", "10MB", "-1", "99999999999TiB"] {
            assert!(super::parse_size(bad).is_err(), "{bad}");
        }
    }
}
