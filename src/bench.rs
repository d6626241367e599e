//! `jadfs bench`: drives any S3 endpoint with SigV4-signed requests and
//! reports throughput, operation rates, latency percentiles and what the
//! server processes spent (CPU seconds, peak RSS), as a table and as JSON.
//! Nothing in it is specific to JaDFS: point it at another S3 server with
//! the same options to compare on one machine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::admin::EndpointArgs;
use crate::s3_client::S3;

const MIB: u64 = 1 << 20;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// Bucket to use (created if missing; the objects written are deleted at the end).
    #[arg(long, default_value = "jadfs-bench")]
    bucket: String,
    /// Sizes of the large objects, in MiB.
    #[arg(long, value_delimiter = ',', default_values_t = [256u64, 1024])]
    large_mib: Vec<u64>,
    /// Concurrent transfers of large objects (one object per transfer).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 4, 16])]
    large_concurrency: Vec<usize>,
    /// Concurrency of the 4 KiB object runs.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 32])]
    small_concurrency: Vec<usize>,
    /// Operations of each kind (PUT, GET, HEAD, DELETE) per small-object run.
    #[arg(long, default_value_t = 2000)]
    small_ops: usize,
    /// Keys under the prefix that is listed.
    #[arg(long, default_value_t = 10_000)]
    list_keys: usize,
    /// PIDs of the server's processes, whose CPU time and memory are
    /// reported (default: every other process named `jadfs`).
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// Also write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Turn versioning on in the bucket first (every PUT a version, every
    /// DELETE a delete marker).
    #[arg(long)]
    versioned: bool,
}

/// The SHA-256 of each object written, by key.
type Digests = std::sync::Mutex<std::collections::HashMap<String, [u8; 32]>>;

/// What one run measured.
#[derive(Serialize, Default)]
struct RunResult {
    name: String,
    ops: usize,
    errors: usize,
    seconds: f64,
    ops_per_sec: f64,
    mib_per_sec: Option<f64>,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    server_cpu_seconds: Option<f64>,
    /// Server CPU seconds per GiB moved (large objects only).
    server_cpu_per_gib: Option<f64>,
    server_peak_rss_mib: Option<u64>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let endpoint = &args.endpoint.endpoint;
    let s3 = Arc::new(S3::new(endpoint, args.endpoint.credentials()?, &args.endpoint.region)?);
    let server = Server::find(&args.server_pids);
    eprintln!("benchmarking {endpoint} (server processes: {:?})", server.pids);
    s3.create_bucket(&args.bucket).await?;
    if args.versioned {
        s3.enable_versioning(&args.bucket).await?;
    }
    let mut results = Vec::new();

    for &size_mib in &args.large_mib {
        for &concurrency in &args.large_concurrency {
            let keys: Vec<String> = (0..concurrency).map(|i| format!("large/{size_mib}m-{concurrency}c-{i}")).collect();
            let size = size_mib * MIB;
            let digests: Arc<Digests> = Arc::default();
            let name = format!("PUT {size_mib} MiB x{concurrency}");
            let put = {
                let (s3, bucket, digests) = (s3.clone(), args.bucket.clone(), digests.clone());
                measure(&name, &server, keys.clone(), concurrency, Some(size), move |key| {
                    let (s3, bucket, digests) = (s3.clone(), bucket.clone(), digests.clone());
                    async move {
                        let seed = seed_of(&key);
                        let digest = s3.put_generated(&bucket, &key, size, seed).await?;
                        digests.lock().unwrap_or_else(|e| e.into_inner()).insert(key, digest);
                        Ok(())
                    }
                })
                .await
            };
            results.push(put);
            let expected = Arc::new(std::mem::take(&mut *digests.lock().unwrap_or_else(|e| e.into_inner())));
            let name = format!("GET {size_mib} MiB x{concurrency}");
            let get = {
                let (s3, bucket) = (s3.clone(), args.bucket.clone());
                measure(&name, &server, keys.clone(), concurrency, Some(size), move |key| {
                    let (s3, bucket, expected) = (s3.clone(), bucket.clone(), expected.clone());
                    async move {
                        let digest = s3.get_hashed(&bucket, &key).await?;
                        if expected.get(&key) != Some(&digest) {
                            bail!("{key}: the bytes read back differ from the bytes written");
                        }
                        Ok(())
                    }
                })
                .await
            };
            results.push(get);
            for key in &keys {
                s3.delete(&args.bucket, key).await?;
            }
        }
    }

    let small = Bytes::from(vec![0x5a; 4096]);
    for &concurrency in &args.small_concurrency {
        let keys: Vec<String> = (0..args.small_ops).map(|i| format!("small/{concurrency}c/{i:06}")).collect();
        for op in ["PUT", "GET", "HEAD", "DELETE"] {
            let name = format!("{op} 4 KiB x{concurrency}");
            let (s3, bucket, small) = (s3.clone(), args.bucket.clone(), small.clone());
            let result = measure(&name, &server, keys.clone(), concurrency, None, move |key| {
                let (s3, bucket, small) = (s3.clone(), bucket.clone(), small.clone());
                async move {
                    match op {
                        "PUT" => s3.put(&bucket, &key, small).await,
                        "GET" => s3.get_hashed(&bucket, &key).await.map(|_| ()),
                        "HEAD" => s3.head(&bucket, &key).await,
                        _ => s3.delete(&bucket, &key).await,
                    }
                }
            })
            .await;
            results.push(result);
        }
    }

    if args.list_keys > 0 {
        let keys: Vec<String> = (0..args.list_keys).map(|i| format!("list/{i:06}")).collect();
        let (s3c, bucket, small) = (s3.clone(), args.bucket.clone(), small.clone());
        let fill = measure("PUT 4 KiB (listing setup) x32", &server, keys.clone(), 32, None, move |key| {
            let (s3, bucket, small) = (s3c.clone(), bucket.clone(), small.clone());
            async move { s3.put(&bucket, &key, small).await }
        })
        .await;
        results.push(fill);
        for pages in [2usize, args.list_keys.div_ceil(1000)] {
            let name = format!("LIST {} keys ({pages} pages)", (pages * 1000).min(args.list_keys));
            let runs: Vec<String> = (0..10).map(|i| i.to_string()).collect();
            let (s3c, bucket) = (s3.clone(), args.bucket.clone());
            let result = measure(&name, &server, runs, 1, None, move |_| {
                let (s3, bucket) = (s3c.clone(), bucket.clone());
                async move { s3.list_pages(&bucket, "list/", pages).await.map(|_| ()) }
            })
            .await;
            results.push(result);
        }
        for key in &keys {
            s3.delete(&args.bucket, key).await?;
        }
    }

    print_table(&results);
    if let Some(path) = &args.json {
        let report = serde_json::json!({
            "endpoint": endpoint,
            "server_pids": server.pids,
            "results": results,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("{}", path.display()))?;
        eprintln!("results written to {}", path.display());
    }
    Ok(())
}

/// Runs `op` once per key with `concurrency` in flight, with a progress line,
/// and measures latencies and the server's CPU and memory meanwhile.
async fn measure<F, Fut>(
    name: &str,
    server: &Server,
    keys: Vec<String>,
    concurrency: usize,
    bytes_each: Option<u64>,
    op: F,
) -> RunResult
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let total = keys.len();
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = server.cpu_seconds();
    let peak = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let monitor = {
        let (done, peak, name, server) = (done.clone(), peak.clone(), name.to_string(), server.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(server.rss_mib(), Ordering::Relaxed);
                let n = done.load(Ordering::Relaxed);
                let elapsed = started.elapsed().as_secs_f64();
                let rate = match bytes_each {
                    Some(b) => format!("{:.0} MiB/s", (n * b) as f64 / MIB as f64 / elapsed.max(1e-9)),
                    None => format!("{:.0} ops/s", n as f64 / elapsed.max(1e-9)),
                };
                eprint!("\r  {name:<32} {}  {n}/{total}  {rate}   ", bar(n as usize, total));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let outcomes: Vec<(Duration, bool)> = futures_util::stream::iter(keys)
        .map(|key| {
            let done = done.clone();
            let fut = op(key);
            async move {
                let t = Instant::now();
                let ok = match fut.await {
                    Ok(()) => true,
                    Err(e) => {
                        eprintln!("\n  error: {e:#}");
                        false
                    }
                };
                done.fetch_add(1, Ordering::Relaxed);
                (t.elapsed(), ok)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    monitor.abort();
    peak.fetch_max(server.rss_mib(), Ordering::Relaxed);
    eprintln!("\r  {name:<32} {}  {total}/{total}  done in {seconds:.2} s{:20}", bar(total, total), "");
    let mut latencies: Vec<Duration> = outcomes.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let ms = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |p: f64| ms(p).map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0);
    let errors = outcomes.iter().filter(|(_, ok)| !ok).count();
    let ok = total - errors;
    let cpu = server.cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    let gib = bytes_each.map(|b| (b * ok as u64) as f64 / (1u64 << 30) as f64);
    RunResult {
        name: name.to_string(),
        ops: total,
        errors,
        seconds,
        ops_per_sec: ok as f64 / seconds,
        mib_per_sec: bytes_each.map(|b| (b * ok as u64) as f64 / MIB as f64 / seconds),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        server_cpu_seconds: cpu,
        server_cpu_per_gib: cpu.zip(gib).filter(|(_, g)| *g > 0.0).map(|(c, g)| c / g),
        server_peak_rss_mib: (!server.pids.is_empty()).then(|| peak.load(Ordering::Relaxed)),
    }
}

fn bar(done: usize, total: usize) -> String {
    let filled = (done * 24).checked_div(total).unwrap_or(24);
    format!("[{}{}]", "#".repeat(filled), ".".repeat(24 - filled))
}

fn print_table(results: &[RunResult]) {
    println!(
        "\n{:<34} {:>6} {:>4} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "run", "ops", "err", "ops/s", "MiB/s", "p50 ms", "p99 ms", "p999 ms", "srv CPU", "CPU/GiB", "srv RSS"
    );
    let opt = |v: Option<f64>, digits: usize| v.map(|v| format!("{v:.digits$}")).unwrap_or_else(|| "-".into());
    for r in results {
        println!(
            "{:<34} {:>6} {:>4} {:>9.0} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>8} {:>9} {:>8}",
            r.name,
            r.ops,
            r.errors,
            r.ops_per_sec,
            opt(r.mib_per_sec, 0),
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            opt(r.server_cpu_seconds, 1),
            opt(r.server_cpu_per_gib, 2),
            r.server_peak_rss_mib.map(|m| format!("{m} MiB")).unwrap_or_else(|| "-".into()),
        );
    }
}

/// A distinct seed per key, so no two objects share a chunk (no dedup).
fn seed_of(key: &str) -> u64 {
    u64::from_le_bytes(Sha256::digest(key.as_bytes())[..8].try_into().expect("8 bytes"))
}

/// The server's processes, read from /proc.
#[derive(Clone)]
struct Server {
    pids: Vec<u32>,
}

impl Server {
    fn find(given: &[u32]) -> Server {
        if !given.is_empty() {
            return Server { pids: given.to_vec() };
        }
        let me = std::process::id();
        let pids = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me)
            .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "jadfs"))
            .collect();
        Server { pids }
    }

    /// User + system CPU seconds of all the processes, if they can be read.
    fn cpu_seconds(&self) -> Option<f64> {
        if self.pids.is_empty() {
            return None;
        }
        let mut ticks = 0u64;
        for pid in &self.pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name, which is in parentheses.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            ticks += fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        }
        Some(ticks as f64 / 100.0) // USER_HZ is 100 on Linux
    }

    /// Resident memory of all the processes together, in MiB.
    fn rss_mib(&self) -> u64 {
        let kib: u64 = self
            .pids
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|s| s.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        kib / 1024
    }
}

impl S3 {
    async fn put(&self, bucket: &str, key: &str, body: Bytes) -> anyhow::Result<()> {
        let request = self.request("PUT", &Self::object_path(bucket, key), "")?.body(body);
        self.send(request, &format!("PUT {key}")).await.map(|_| ())
    }

    /// PUTs `size` bytes generated from `seed` without holding them, and
    /// returns their SHA-256.
    async fn put_generated(&self, bucket: &str, key: &str, size: u64, seed: u64) -> anyhow::Result<[u8; 32]> {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let hasher = tokio::task::spawn_blocking(move || {
            let mut base = vec![0u8; MIB as usize];
            let mut state = seed | 1;
            for word in base.chunks_mut(8) {
                // xorshift: fast, and incompressible enough for storage.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
            }
            let mut sha = Sha256::new();
            let mut sent = 0u64;
            let mut block = 0u64;
            while sent < size {
                let len = (size - sent).min(MIB) as usize;
                // Each MiB differs from every other: the block index is in it.
                let mut piece = base[..len].to_vec();
                piece[..16.min(len)]
                    .copy_from_slice(&[seed.to_le_bytes(), block.to_le_bytes()].concat()[..16.min(len)]);
                sha.update(&piece);
                if tx.blocking_send(Ok(Bytes::from(piece))).is_err() {
                    break;
                }
                sent += len as u64;
                block += 1;
            }
            <[u8; 32]>::from(sha.finalize())
        });
        let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
        let request =
            self.request("PUT", &Self::object_path(bucket, key), "")?.header("content-length", size).body(body);
        self.send(request, &format!("PUT {key}")).await?;
        Ok(hasher.await?)
    }

    /// GETs an object, hashing it as it arrives (never holding it).
    async fn get_hashed(&self, bucket: &str, key: &str) -> anyhow::Result<[u8; 32]> {
        let response =
            self.send(self.request("GET", &Self::object_path(bucket, key), "")?, &format!("GET {key}")).await?;
        let mut stream = response.bytes_stream();
        let mut sha = Sha256::new();
        while let Some(piece) = stream.next().await {
            sha.update(&piece?);
        }
        Ok(sha.finalize().into())
    }

    async fn head(&self, bucket: &str, key: &str) -> anyhow::Result<()> {
        self.send(self.request("HEAD", &Self::object_path(bucket, key), "")?, &format!("HEAD {key}")).await.map(|_| ())
    }

    async fn delete(&self, bucket: &str, key: &str) -> anyhow::Result<()> {
        let request = self.request("DELETE", &Self::object_path(bucket, key), "")?;
        self.send(request, &format!("DELETE {key}")).await.map(|_| ())
    }

    /// Lists up to `pages` pages of 1,000 keys under `prefix` (ListObjectsV2); returns the keys seen.
    async fn list_pages(&self, bucket: &str, prefix: &str, pages: usize) -> anyhow::Result<usize> {
        let mut token: Option<String> = None;
        let mut keys = 0;
        for _ in 0..pages {
            let page = self.list_page(bucket, prefix, token.as_deref()).await?;
            keys += page.keys.len();
            token = page.next;
            if token.is_none() {
                break;
            }
        }
        Ok(keys)
    }
}
