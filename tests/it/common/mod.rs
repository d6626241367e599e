//! Test harness: starts the real `jadfs` binary on 127.0.0.1 with an
//! ephemeral port and a temporary data folder, and drives it with real
//! clients. Every wait has a deadline; nothing sleeps for luck.

pub mod cluster;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};
use jadfs_common::cluster_auth::{ClusterKey, Signer};
use sha2::{Digest, Sha256};

pub const ACCESS_KEY: &str = "JADFSTESTACCESSKEY01";
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdefghijklmn";
/// The cluster secret of the tests' multi-process clusters (`jadfs server`
/// makes its own, in its data folder).
pub const CLUSTER_SECRET: &str = "jadfs-tests-cluster-secret-0123456789";

pub struct Server {
    child: Option<Child>,
    pub endpoint: String,
    pub data_dir: PathBuf,
    extra_args: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts `jadfs server` with extra command-line arguments.
    pub fn start_with(extra_args: &[&str]) -> Server {
        Server::start_with_env(extra_args, &[])
    }

    /// Starts `jadfs server` with extra command-line arguments and environment.
    pub fn start_with_env(extra_args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut server = Server::prepare(extra_args);
        server.launch(env);
        server
    }

    /// A server not started yet: its data folder may be prepared (say, a
    /// small file system mounted there) before [`Server::launch`].
    pub fn prepare(extra_args: &[&str]) -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().join("data");
        Server {
            child: None,
            endpoint: String::new(),
            data_dir,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            _tmp: tmp,
        }
    }

    /// Starts the process and waits (with a deadline) for its endpoint line.
    pub fn launch(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self._tmp.path().join("server.log"))
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_jadfs"));
        command
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .args(&self.extra_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn jadfs server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(endpoint) = line.trim().strip_prefix("S3 endpoint: ") {
                    let _ = tx.send(endpoint.to_string());
                }
            }
        });
        self.endpoint = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("jadfs server did not start; log:\n{}", self.log()));
        self.child = Some(child);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self._tmp.path().join("server.log")).unwrap_or_default()
    }

    /// Stops the process as `kill -9` would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.launch(&[]);
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        client_for(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }

    /// Cluster counters from the gateway's authenticated stats endpoint.
    pub async fn stats(&self) -> serde_json::Value {
        let url = format!("{}/-/stats", self.endpoint);
        let response = signed(reqwest::Method::GET, &url, &[], Vec::new(), ACCESS_KEY, SECRET_KEY).await;
        assert_eq!(response.status(), 200, "stats: {}", response.text().await.unwrap_or_default());
        response.json().await.expect("stats json")
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Runs `jadfs admin` against the server with its root key; its output.
    pub fn admin(&self, args: &[&str]) -> String {
        admin_at(&self.endpoint, args)
    }

    /// A new access key made with `jadfs admin`: (access key, secret).
    pub fn create_key(&self, name: &str) -> (String, String) {
        create_key_at(&self.endpoint, name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `jadfs admin` against a gateway with the tests' root key; its output.
pub fn admin_at(endpoint: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_jadfs"))
        .args(["admin", "--endpoint", endpoint, "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run jadfs admin");
    assert!(output.status.success(), "jadfs admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// A new access key made with `jadfs admin`: (access key, secret).
pub fn create_key_at(endpoint: &str, name: &str) -> (String, String) {
    let created = admin_at(endpoint, &["key", "create", "--name", name]);
    let field = |label: &str| created.lines().find_map(|l| l.strip_prefix(label)).expect("printed").to_string();
    (field("access key: "), field("secret key: "))
}

pub fn client_for(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    client_in("us-east-1", endpoint, access_key, secret_key)
}

/// A client that signs for `region`.
pub fn client_in(region: &str, endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Requests to internal APIs (meta and storage nodes), each signed with a
/// cluster secret, as the roles sign theirs.
pub struct Internal {
    http: reqwest::Client,
    signer: Signer,
}

impl Internal {
    pub fn new(cluster_secret: &str) -> Internal {
        let key = Arc::new(ClusterKey::from_secret(cluster_secret).expect("a long enough secret"));
        Internal { http: reqwest::Client::new(), signer: Signer::new(key) }
    }

    pub fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let parsed: reqwest::Url = url.parse().expect("a URL");
        let path = match parsed.query() {
            Some(query) => format!("{}?{query}", parsed.path()),
            None => parsed.path().to_string(),
        };
        let proof = self.signer.sign(method.as_str(), &path, jadfs_common::now_ms() / 1000);
        self.http.request(method, url).header(jadfs_common::cluster_auth::HEADER, proof)
    }
}

/// A meta client proving the tests' cluster secret.
pub fn meta_client(addrs: Vec<String>) -> jadfs_meta::MetaClient {
    let key = Arc::new(ClusterKey::from_secret(CLUSTER_SECRET).expect("a long enough secret"));
    jadfs_meta::MetaClient::new(addrs, Arc::new(Signer::new(key)), &jadfs_common::links::Links::plain())
}

/// Every file under `dir`, at any depth; none if `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Waits until `check` holds, or panics after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends a request signed with SigV4 (by the aws-sigv4 crate, not ours),
/// with a signed payload hash, at the current time.
pub async fn signed(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    access_key: &str,
    secret_key: &str,
) -> reqwest::Response {
    signed_at(method, url, headers, body, access_key, secret_key, std::time::SystemTime::now(), None).await
}

/// Like `signed`, at a chosen time and optionally with a chosen
/// `x-amz-content-sha256` value (e.g. a STREAMING-* mode).
#[allow(clippy::too_many_arguments)]
pub async fn signed_at(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    access_key: &str,
    secret_key: &str,
    time: std::time::SystemTime,
    payload_mode: Option<&str>,
) -> reqwest::Response {
    let (request, _) = sign_request(method.as_str(), url, headers, &body, access_key, secret_key, time, payload_mode);
    let mut builder = reqwest::Client::new().request(method, url);
    for (name, value) in request {
        builder = builder.header(name, value);
    }
    builder.body(body).send().await.expect("request sent")
}

/// Signs a request with aws-sigv4; returns every header to send and the
/// signature (the seed of an aws-chunked body).
#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    access_key: &str,
    secret_key: &str,
    time: std::time::SystemTime,
    payload_mode: Option<&str>,
) -> (Vec<(String, String)>, String) {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;

    let payload_hash = payload_mode.map(str::to_string).unwrap_or_else(|| sha256(body));
    let mut all: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    all.push(("x-amz-content-sha256".into(), payload_hash.clone()));
    let identity = Credentials::new(access_key, secret_key, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        all.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(payload_hash),
    )
    .expect("signable request");
    let (instructions, signature) = sign(signable, &params).expect("signed").into_parts();
    for (name, value) in instructions.headers() {
        all.push((name.to_string(), value.to_string()));
    }
    (all, signature)
}
