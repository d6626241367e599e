//! An attacker on the cluster's network, and a careless or hostile client:
//! each way in that was open at 55cfa11, tried again and refused.

use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

use crate::common::cluster::*;
use crate::common::*;

/// One meta node, one storage node and a gateway, as separate processes.
struct SmallCluster {
    dir: tempfile::TempDir,
    meta: Process,
    node: Process,
    gateway: Process,
}

impl SmallCluster {
    async fn start() -> SmallCluster {
        SmallCluster::start_with(tempfile::tempdir().unwrap(), &[]).await
    }

    /// In `dir`, every process started with the arguments `extra` too.
    async fn start_with(dir: tempfile::TempDir, extra: &[&str]) -> SmallCluster {
        let meta_dir = dir.path().join("meta").to_string_lossy().into_owned();
        let mut args =
            vec!["meta", "--node-id", "1", "--listen", "127.0.0.1:0", "--data-dir", &meta_dir, "--bootstrap"];
        args.extend(extra);
        let meta = Process::start(&args, &dir.path().join("meta.log"));
        let node_dir = dir.path().join("node").to_string_lossy().into_owned();
        let mut args = vec!["storage-node", "--listen", "127.0.0.1:0", "--data-dir", &node_dir, "--meta", &meta.addr];
        args.extend(extra);
        let node = Process::start(&args, &dir.path().join("node.log"));
        let gateway = start_gateway(dir.path(), "gateway", &meta.addr, extra);
        let s3 = client_for(&gateway.addr, ACCESS_KEY, SECRET_KEY);
        wait_until("the gateway serves", Duration::from_secs(30), || async { s3.list_buckets().send().await.is_ok() })
            .await;
        SmallCluster { dir, meta, node, gateway }
    }

    /// The gateway's S3 endpoint (`http://…`).
    fn endpoint(&self) -> String {
        self.gateway.addr.clone()
    }
}

/// Sends `request` and returns its status.
async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.expect("sent").status().as_u16()
}

#[tokio::test]
async fn no_internal_route_answers_without_the_cluster_secret() {
    let cluster = SmallCluster::start().await;
    let (meta, node) = (&cluster.meta.addr, &cluster.node.addr);
    let id = sha256(b"any chunk");
    let query = serde_json::json!("ListAccessKeys");
    let inject = serde_json::json!({"PutAccessKey": {"key": {
        "access_key": "EVILKEY", "secret_key": "evil-secret", "name": "evil", "created_ms": 0}}});
    let routes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::POST, format!("http://{meta}/v1/write"), Some(inject.clone())),
        (Method::POST, format!("http://{meta}/v1/query"), Some(query.clone())),
        (
            Method::POST,
            format!("http://{meta}/v1/heartbeat"),
            Some(serde_json::json!({"id": 1, "free_bytes": 0, "capacity_bytes": 0})),
        ),
        (
            Method::POST,
            format!("http://{meta}/v1/cluster/learners"),
            Some(serde_json::json!({"node_id": 9, "addr": "10.0.0.9:1"})),
        ),
        (Method::POST, format!("http://{meta}/v1/cluster/voters"), Some(serde_json::json!({"add": [9]}))),
        (Method::POST, format!("http://{meta}/raft/append"), Some(serde_json::json!({}))),
        (Method::POST, format!("http://{meta}/raft/vote"), Some(serde_json::json!({}))),
        (Method::POST, format!("http://{meta}/raft/snapshot"), None),
        (Method::GET, format!("http://{meta}/v1/status"), None),
        (Method::GET, format!("http://{node}/v1/chunks"), None),
        (Method::POST, format!("http://{node}/v1/chunks"), None),
        (Method::PUT, format!("http://{node}/v1/chunks/{id}"), None),
        (Method::GET, format!("http://{node}/v1/chunks/{id}"), None),
        (Method::HEAD, format!("http://{node}/v1/chunks/{id}"), None),
        (Method::DELETE, format!("http://{node}/v1/chunks/{id}"), None),
        (
            Method::POST,
            format!("http://{node}/v1/chunks/{id}/replicate"),
            Some(serde_json::json!({"to": "127.0.0.1:1"})),
        ),
        (Method::GET, format!("http://{node}/v1/stats"), None),
    ];
    let http = reqwest::Client::new();
    let wrong = Internal::new("not the cluster's secret at all");
    for (method, url, body) in &routes {
        let with_body = |request: reqwest::RequestBuilder| match body {
            Some(json) => request.json(json),
            None => request,
        };
        assert_eq!(status(with_body(http.request(method.clone(), url))).await, 401, "{method} {url} without proof");
        assert_eq!(status(with_body(wrong.request(method.clone(), url))).await, 401, "{method} {url}, wrong secret");
    }

    // A request signed with the secret passes once; its replay does not.
    let right = Internal::new(CLUSTER_SECRET);
    let signed = right.request(Method::POST, &format!("http://{meta}/v1/query")).json(&query).build().unwrap();
    let replay = signed.try_clone().unwrap();
    let answer = http.execute(signed).await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(http.execute(replay).await.unwrap().status(), 401, "a replay");
    let stats = right.request(Method::GET, &format!("http://{node}/v1/stats")).send().await.unwrap();
    assert_eq!(stats.status(), 200);
    assert_eq!(status(http.get(format!("http://{node}/health"))).await, 200, "health stays open for probes");

    // The key injected above never came to be.
    let evil = client_for(&cluster.endpoint(), "EVILKEY", "evil-secret");
    let refused = evil.list_buckets().send().await.unwrap_err();
    assert_eq!(refused.code(), Some("InvalidAccessKeyId"));
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_kept_sealed() {
    let cluster = SmallCluster::start().await;
    let (key, secret) = create_key_at(&cluster.endpoint(), "carol");
    let carol = client_for(&cluster.endpoint(), &key, &secret);
    carol.list_buckets().send().await.unwrap();

    // Even a holder of the cluster secret is told no secret.
    let internal = Internal::new(CLUSTER_SECRET);
    let listed: serde_json::Value = internal
        .request(Method::POST, &format!("http://{}/v1/query", cluster.meta.addr))
        .json(&serde_json::json!("ListAccessKeys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.to_string().contains(&key));
    assert!(!listed.to_string().contains(&secret), "{listed}");

    // Nothing on disk holds the secret: state, log, snapshots, WAL.
    for path in files_under(&cluster.dir.path().join("meta")) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{} holds the secret", path.display());
    }
}

#[tokio::test]
async fn everything_the_server_keeps_is_its_own_alone() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("modes").send().await.unwrap();
    let body = ByteStream::from(random_bytes(100_000, 12));
    s3.put_object().bucket("modes").key("k").body(body).send().await.unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(server.data_dir()), 0o700);
    for path in files_under(server.data_dir()) {
        assert_eq!(mode(&path) & 0o077, 0, "{} is open to others", path.display());
    }
}

#[tokio::test]
async fn a_key_made_again_under_the_same_id_is_another_key() {
    let server = Server::start();
    server.admin(&["key", "create", "--name", "dave", "--id", "DAVEKEY000000000000X", "--secret", "dave-secret-001"]);
    let dave = client_for(&server.endpoint, "DAVEKEY000000000000X", "dave-secret-001");
    dave.create_bucket().bucket("daves").send().await.unwrap();
    dave.put_object().bucket("daves").key("k").body(ByteStream::from_static(b"mine")).send().await.unwrap();
    server.admin(&["key", "delete", "DAVEKEY000000000000X"]);
    server.admin(&["key", "create", "--name", "mallory", "--id", "DAVEKEY000000000000X", "--secret", "mallory-secret"]);
    let mallory = client_for(&server.endpoint, "DAVEKEY000000000000X", "mallory-secret");
    let denied = mallory.get_object().bucket("daves").key("k").send().await.unwrap_err();
    assert_eq!(denied.code(), Some("AccessDenied"));
    let listed = mallory.list_buckets().send().await.unwrap();
    assert!(listed.buckets().is_empty(), "the old key's buckets are not listed to the new one");
    // Cluster counters are for root keys only.
    let stats = signed(
        Method::GET,
        &format!("{}/-/stats", server.endpoint),
        &[],
        vec![],
        "DAVEKEY000000000000X",
        "mallory-secret",
    )
    .await;
    assert_eq!(stats.status(), 403);
}

#[tokio::test]
async fn unsigned_amz_headers_and_foreign_regions_are_refused() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("sig").send().await.unwrap();
    s3.put_object().bucket("sig").key("secret").body(ByteStream::from_static(b"private")).send().await.unwrap();
    let url = format!("{}/sig/target", server.endpoint);

    // Header auth: a signed PUT, then headers added that the signature does not cover.
    for (name, value) in [("x-amz-meta-injected", "yes"), ("x-amz-copy-source", "sig/secret")] {
        let (headers, _) =
            sign_request("PUT", &url, &[], b"body", ACCESS_KEY, SECRET_KEY, std::time::SystemTime::now(), None);
        let mut request = reqwest::Client::new().put(&url);
        for (n, v) in headers {
            request = request.header(n, v);
        }
        let response = request.header(name, value).body("body").send().await.unwrap();
        assert_eq!(response.status(), 403, "{name} unsigned");
        assert!(response.text().await.unwrap().contains("not signed"));
    }
    // Presigned: the same added headers.
    let presigned = s3
        .put_object()
        .bucket("sig")
        .key("target")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    for (name, value) in [("x-amz-meta-injected", "yes"), ("x-amz-copy-source", "sig/secret")] {
        let response = reqwest::Client::new().put(presigned.uri()).header(name, value).body("x").send().await.unwrap();
        assert_eq!(response.status(), 403, "{name} added to a presigned PUT");
    }
    assert!(s3.head_object().bucket("sig").key("target").send().await.is_err(), "nothing was written");
    // A query parameter added to a presigned URL breaks it.
    let response = reqwest::Client::new().put(format!("{}&x-id=evil", presigned.uri())).body("x").send().await.unwrap();
    assert_eq!(response.status(), 403);

    // Another region than ours.
    let elsewhere = client_in("eu-west-1", &server.endpoint, ACCESS_KEY, SECRET_KEY);
    let err = elsewhere.list_objects_v2().bucket("sig").send().await.unwrap_err();
    assert_eq!(err.code(), Some("AuthorizationHeaderMalformed"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);
    assert!(err.message().unwrap_or_default().contains("eu-west-1"));
    // The error names our region, as AWS's does: s3cmd reads it and signs again.
    let body = err.raw_response().unwrap().body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    assert!(body.contains("<Region>us-east-1</Region>"), "{body}");
}

#[tokio::test]
async fn promises_we_cannot_keep_are_refused() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("plain").send().await.unwrap();
    let put = || s3.put_object().bucket("plain").key("k").body(ByteStream::from_static(b"data"));
    let lock = put()
        .object_lock_mode(aws_sdk_s3::types::ObjectLockMode::Compliance)
        .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000))
        .send()
        .await
        .unwrap_err();
    assert_eq!((lock.code(), lock.raw_response().unwrap().status().as_u16()), (Some("InvalidRequest"), 400));
    let kms = aws_sdk_s3::types::ServerSideEncryption::AwsKms;
    let context = put().server_side_encryption(kms).ssekms_key_id("k").ssekms_encryption_context("e30=");
    assert_eq!(context.send().await.unwrap_err().code(), Some("NotImplemented"), "an encryption context");
    let class = put().storage_class(aws_sdk_s3::types::StorageClass::Glacier).send().await.unwrap_err();
    assert_eq!(class.code(), Some("InvalidStorageClass"));
    let redirect = put().website_redirect_location("/elsewhere").send().await.unwrap_err();
    assert_eq!(redirect.code(), Some("NotImplemented"));
    assert!(s3.head_object().bucket("plain").key("k").send().await.is_err(), "nothing was stored");
    // A bucket without Object Lock has no retention to tell.
    let retention = s3.get_object_retention().bucket("plain").key("k").send().await.unwrap_err();
    assert_eq!(retention.code(), Some("InvalidRequest"));
    put().storage_class(aws_sdk_s3::types::StorageClass::Standard).send().await.unwrap();

    // A version id this cluster could not have made is refused before any
    // lookup, and one that names nothing is NoSuchVersion: never the
    // current object's bytes.
    let get = s3.get_object().bucket("plain").key("k");
    assert_eq!(get.clone().version_id("3HL4kqtJlcpXroDTDmJ").send().await.unwrap_err().code(), Some("InvalidArgument"));
    assert_eq!(get.clone().version_id("00000000000000aa").send().await.unwrap_err().code(), Some("NoSuchVersion"));
    assert!(get.version_id("null").send().await.is_ok(), "the null version is the object");
    let delete = s3.delete_object().bucket("plain").key("k").version_id("3HL4kqtJlcpXroDTDmJ").send().await;
    assert_eq!(delete.unwrap_err().code(), Some("InvalidArgument"));
    let version = |id: &str| aws_sdk_s3::types::ObjectIdentifier::builder().key("k").version_id(id).build().unwrap();
    let batch = aws_sdk_s3::types::Delete::builder().objects(version("3HL4kqtJlcpXroDTDmJ")).build().unwrap();
    let deleted = s3.delete_objects().bucket("plain").delete(batch).send().await.unwrap();
    assert!(deleted.deleted().is_empty(), "{deleted:?}");
    assert_eq!(deleted.errors()[0].code(), Some("InvalidArgument"));
    assert_eq!(deleted.errors()[0].version_id(), Some("3HL4kqtJlcpXroDTDmJ"));
    let copy = s3.copy_object().bucket("plain").key("copy").copy_source("plain/k?versionId=3HL4kqtJlcpXroDTDmJ").send();
    assert_eq!(copy.await.unwrap_err().code(), Some("InvalidArgument"));
    assert!(s3.head_object().bucket("plain").key("k").send().await.is_ok(), "nothing was deleted");
}

/// Sends the head of a signed 1 MiB PUT and 8 KiB of its body, then stalls.
async fn stalled_upload(endpoint: &str, key: &str) -> tokio::net::TcpStream {
    let addr = endpoint.trim_start_matches("http://");
    let url = format!("{endpoint}/stall/{key}");
    let headers = [("content-length", "1048576")];
    let (signed, _) = sign_request(
        "PUT",
        &url,
        &headers,
        b"",
        ACCESS_KEY,
        SECRET_KEY,
        std::time::SystemTime::now(),
        Some("UNSIGNED-PAYLOAD"),
    );
    let mut head = format!("PUT /stall/{key} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in signed.iter().filter(|(n, _)| n != "host") {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[7u8; 8192]).await.unwrap();
    stream
}

#[tokio::test]
async fn stalled_uploads_do_not_starve_other_clients() {
    let server = Server::start();
    let root = server.client();
    root.create_bucket().bucket("stall").send().await.unwrap();
    let (key, secret) = server.create_key("patient");
    let other = client_for(&server.endpoint, &key, &secret);
    other.create_bucket().bucket("other").send().await.unwrap();
    let big = random_bytes(5 << 20, 9);
    other.put_object().bucket("other").key("big").body(ByteStream::from(big.clone())).send().await.unwrap();

    let mut stalled = Vec::new();
    for i in 0..250 {
        stalled.push(stalled_upload(&server.endpoint, &format!("k{i}")).await);
    }
    // Let the stalled bodies reach the storage nodes' writers.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let started = Instant::now();
    let got = other.get_object().bucket("other").key("big").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), big.len());
    assert!(started.elapsed() < Duration::from_secs(2), "5 MiB GET took {:?}", started.elapsed());
    let started = Instant::now();
    let small = random_bytes(64 << 10, 10);
    other.put_object().bucket("other").key("small").body(ByteStream::from(small)).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "64 KiB PUT took {:?}", started.elapsed());
    drop(stalled);
}

#[tokio::test]
async fn a_stalled_body_times_out_with_request_timeout() {
    let server = Server::start_with(&["--body-timeout", "1"]);
    server.client().create_bucket().bucket("stall").send().await.unwrap();
    let mut stream = stalled_upload(&server.endpoint, "slow").await;
    let mut answer = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer));
    let _ = read.await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("RequestTimeout"), "{answer}");
}

#[tokio::test]
async fn repairs_copy_only_to_registered_nodes() {
    let cluster = SmallCluster::start().await;
    let internal = Internal::new(CLUSTER_SECRET);
    let id = sha256(b"any chunk");
    let url = format!("http://{}/v1/chunks/{id}/replicate", cluster.node.addr);
    // A free-form address is not even understood; an unknown node is refused.
    let free_form = internal.request(Method::POST, &url).json(&serde_json::json!({"to": "127.0.0.1:9"})).send().await;
    assert_eq!(free_form.unwrap().status(), 400);
    let unknown = internal.request(Method::POST, &url).json(&serde_json::json!({"to": 424242})).send().await;
    assert_eq!(unknown.unwrap().status(), 400);
}

/// A CA and a certificate it signed for 127.0.0.1, made with the openssl CLI: (ca, cert, key).
fn internal_certificates(dir: &std::path::Path) -> (String, String, String) {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl").args(args).output().expect("openssl runs");
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let (ca, ca_key, cert, key, csr) =
        (path("ca.pem"), path("ca.key"), path("node.pem"), path("node.key"), path("node.csr"));
    openssl(
        &[&["req", "-x509"][..], &ec, &["-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj", "/CN=jadfs test CA"]]
            .concat(),
    );
    openssl(&[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]].concat());
    let ext = path("san.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    (ca, cert, key)
}

#[tokio::test]
async fn internal_links_can_run_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = internal_certificates(dir.path());
    let tls = ["--internal-tls-cert", &cert, "--internal-tls-key", &key, "--internal-tls-ca", &ca];
    let cluster = SmallCluster::start_with(dir, &tls).await;
    admin_at(&cluster.endpoint(), &["replication", "set", "sync", "--copies", "1", "--write-quorum", "1"]);
    let s3 = client_for(&cluster.endpoint(), ACCESS_KEY, SECRET_KEY);
    s3.create_bucket().bucket("tls").send().await.unwrap();
    let data = random_bytes(300_000, 13);
    s3.put_object().bucket("tls").key("k").body(ByteStream::from(data.clone())).send().await.unwrap();
    let back = s3.get_object().bucket("tls").key("k").send().await.unwrap().body.collect().await.unwrap();
    assert_eq!(back.into_bytes().to_vec(), data);
    // The internal ports speak nothing but TLS.
    for addr in [&cluster.meta.addr, &cluster.node.addr] {
        assert!(reqwest::get(format!("http://{addr}/health")).await.is_err(), "{addr} answered plain HTTP");
    }
}

/// Objects share the console's origin: a document among them must not run
/// as that origin (an uploaded HTML page could drive a signed-in console).
#[tokio::test]
async fn objects_are_served_sandboxed_but_pdfs() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("pages").send().await.unwrap();
    for (key, kind) in [("a.html", "text/html"), ("b.svg", "image/svg+xml"), ("c.pdf", "application/pdf")] {
        let body = ByteStream::from_static(b"<script>fetch('/-/console/keys')</script>");
        s3.put_object().bucket("pages").key(key).content_type(kind).body(body).send().await.unwrap();
    }
    let headers = |key: &'static str, query: &'static str| {
        let url = format!("{}/pages/{key}{query}", server.endpoint);
        async move {
            let got = signed(Method::GET, &url, &[], Vec::new(), ACCESS_KEY, SECRET_KEY).await;
            assert_eq!(got.status(), 200, "{url}");
            let header = |name| got.headers().get(name).map(|v| v.to_str().unwrap().to_string());
            (header("content-security-policy"), header("x-content-type-options"))
        }
    };
    let sandboxed = (Some("sandbox".to_string()), Some("nosniff".to_string()));
    assert_eq!(headers("a.html", "").await, sandboxed);
    assert_eq!(headers("b.svg", "").await, sandboxed);
    assert_eq!(headers("c.pdf", "").await, (None, Some("nosniff".to_string())));
    // An override of the type is judged as what the browser gets.
    assert_eq!(headers("c.pdf", "?response-content-type=text%2Fhtml").await, sandboxed);
}

/// The admin API acts on a root key's word: a presigned URL or an unsigned
/// payload would let whoever holds the request choose the body.
#[tokio::test]
async fn admin_requests_must_sign_their_payload() {
    let server = Server::start();
    server.client().create_bucket().bucket("someone").send().await.unwrap();
    let (mallory, _) = server.create_key("mallory");
    let url = format!("{}/-/admin/buckets/someone/grants", server.endpoint);
    let body = format!(r#"{{"access_key":"{mallory}","permission":"owner"}}"#).into_bytes();
    let unsigned = signed_at(
        Method::PUT,
        &url,
        &[],
        body.clone(),
        ACCESS_KEY,
        SECRET_KEY,
        std::time::SystemTime::now(),
        Some("UNSIGNED-PAYLOAD"),
    )
    .await;
    assert_eq!(unsigned.status(), 403);
    assert!(unsigned.text().await.unwrap().contains("must sign their payload"));
    let signed_body = signed(Method::PUT, &url, &[], body, ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(signed_body.status(), 204, "{}", signed_body.text().await.unwrap_or_default());
}
