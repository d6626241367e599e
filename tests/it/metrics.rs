//! Metrics, `jadfs admin status` and the access log, against real processes:
//! counters move by exactly what a known workload did, gauges reach the
//! state, `/metrics` is served only to who may read it.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::common::cluster::{start_storage_node, Process};
use crate::common::{random_bytes, signed, wait_until, Server, ACCESS_KEY, SECRET_KEY};

const MIB: usize = 1 << 20;

/// The Prometheus text of `url` (an open `/metrics`).
async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.expect("scrape sent");
    assert_eq!(response.status(), 200, "scrape of {url}");
    response.text().await.expect("text")
}

/// The sum of the series of `name` whose labels include all of `labels`
/// (0 when there is none).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, number) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            let wanted = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.split(',').any(|pair| pair.trim_end_matches('}') == format!("{k}=\"{v}\"")));
            wanted.then(|| number.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Waits until the scrape of `url` satisfies `check`; the last scrape.
async fn scrape_until(url: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let last = scrape(url).await;
        if check(&last) {
            return last;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}; last scrape:\n{last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn counters_move_by_exactly_what_a_workload_did() {
    let server = Server::start_with(&["--chunk-size", "1048576"]);
    let url = format!("{}/metrics", server.endpoint);
    let s3 = server.client();
    s3.create_bucket().bucket("counted").send().await.unwrap();
    let before = scrape(&url).await;
    let put = |text: &str| value(text, "jadfs_s3_requests_total", &[("op", "PutObject"), ("status", "200")]);

    // Three objects of two chunks each (3 copies of each chunk, one per
    // node), two small ones kept inline.
    let large = 3 * MIB / 2;
    for i in 0..3u64 {
        let body = random_bytes(large, 100 + i);
        s3.put_object().bucket("counted").key(format!("large-{i}")).body(ByteStream::from(body)).send().await.unwrap();
    }
    for i in 0..2 {
        s3.put_object()
            .bucket("counted")
            .key(format!("small-{i}"))
            .body(ByteStream::from(vec![7u8; 100]))
            .send()
            .await
            .unwrap();
    }
    let got = s3.get_object().bucket("counted").key("large-0").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().len(), large);
    assert!(s3.get_object().bucket("counted").key("missing").send().await.is_err());

    let after = scrape_until(&url, "the requests counted", |text| {
        put(text) - put(&before) >= 5.0
            && value(text, "jadfs_s3_requests_total", &[("op", "GetObject")])
                - value(&before, "jadfs_s3_requests_total", &[("op", "GetObject")])
                >= 2.0
    })
    .await;
    let moved = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(moved("jadfs_s3_requests_total", &[("op", "PutObject"), ("status", "200")]), 5.0);
    assert_eq!(moved("jadfs_s3_requests_total", &[("op", "GetObject"), ("status", "200")]), 1.0);
    assert_eq!(moved("jadfs_s3_requests_total", &[("op", "GetObject"), ("status", "404")]), 1.0);
    assert_eq!(moved("jadfs_s3_errors_total", &[("op", "GetObject"), ("code", "NoSuchKey")]), 1.0);
    assert_eq!(moved("jadfs_s3_request_duration_seconds_count", &[("op", "PutObject")]), 5.0);
    // Bodies as they arrived: the SDK may frame them (aws-chunked, a checksum trailer).
    let payload = (3 * large + 200) as f64;
    let received = moved("jadfs_s3_received_bytes_total", &[("op", "PutObject")]);
    assert!(received >= payload && received < payload + 64.0 * 1024.0, "received {received} for {payload}");
    let sent = moved("jadfs_s3_sent_bytes_total", &[("op", "GetObject")]);
    assert!(sent >= large as f64 && sent < (large + 4096) as f64, "sent {sent}");
    // 6 chunks, 3 copies each: 2 on each of the 3 nodes per object.
    assert_eq!(moved("jadfs_node_chunk_writes_total", &[("result", "ok")]), 18.0);
    for node in node_ids(&after) {
        assert_eq!(moved("jadfs_node_chunk_writes_total", &[("node", &node), ("result", "ok")]), 6.0, "node {node}");
    }
    assert_eq!(moved("jadfs_node_chunk_written_bytes_total", &[]), (9 * large) as f64);
    assert_eq!(moved("jadfs_node_chunk_reads_total", &[("result", "ok")]), 2.0);
    assert_eq!(moved("jadfs_node_chunk_read_bytes_total", &[]), large as f64);
    assert_eq!(value(&after, "jadfs_s3_requests_in_flight", &[]), 0.0);
}

/// The `node` label values of the storage nodes' series.
fn node_ids(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("jadfs_node_disk_capacity_bytes{"))
        .filter_map(|l| l.split("node=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "three storage nodes in jadfs server:\n{text}");
    ids
}

#[tokio::test]
async fn gauges_reach_the_state() {
    let server = Server::start_with(&["--chunk-size", "1048576"]);
    let s3 = server.client();
    s3.create_bucket().bucket("gauged").send().await.unwrap();
    s3.put_object().bucket("gauged").key("big").body(ByteStream::from(random_bytes(2 * MIB, 9))).send().await.unwrap();
    s3.put_object().bucket("gauged").key("tiny").body(ByteStream::from(vec![1u8; 10])).send().await.unwrap();
    let url = format!("{}/metrics", server.endpoint);
    let text = scrape_until(&url, "the gauges to show the writes", |t| {
        value(t, "jadfs_meta_objects", &[("stored", "chunks")]) == 1.0
            && value(t, "jadfs_node_chunks", &[]) == 6.0
            && value(t, "jadfs_meta_storage_nodes", &[("state", "alive")]) == 3.0
    })
    .await;
    assert_eq!(value(&text, "jadfs_meta_objects", &[("stored", "inline")]), 1.0);
    assert_eq!(value(&text, "jadfs_meta_buckets", &[]), 1.0);
    assert_eq!(value(&text, "jadfs_meta_chunks", &[]), 2.0);
    assert_eq!(value(&text, "jadfs_meta_chunk_bytes", &[]), (2 * MIB) as f64);
    assert_eq!(value(&text, "jadfs_meta_raft_is_leader", &[]), 1.0);
    assert_eq!(value(&text, "jadfs_meta_raft_leader", &[]), 1.0);
    assert!(value(&text, "jadfs_meta_raft_applied_index", &[]) >= 3.0);
    assert!(value(&text, "jadfs_meta_raft_term", &[]) >= 1.0);
    for node in node_ids(&text) {
        assert_eq!(value(&text, "jadfs_node_chunk_bytes", &[("node", &node)]), (2 * MIB) as f64);
        assert!(value(&text, "jadfs_node_disk_capacity_bytes", &[("node", &node)]) > 0.0);
    }
    // Every family has its help and type lines.
    for family in ["jadfs_s3_requests_total", "jadfs_node_chunks", "jadfs_meta_raft_term"] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family} has no HELP");
        assert!(text.contains(&format!("# TYPE {family} ")), "{family} has no TYPE");
    }
}

#[tokio::test]
async fn a_token_guards_metrics_and_a_signed_get_of_metrics_is_still_s3() {
    let server = Server::start_with(&["--metrics-token", "scrape-me-0123"]);
    let url = format!("{}/metrics", server.endpoint);
    let http = reqwest::Client::new();
    let status = |auth: Option<&'static str>| {
        let mut request = http.get(&url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(None).await, 401, "a token is set: loopback needs it too");
    assert_eq!(status(Some("Bearer wrong")).await, 401);
    assert_eq!(status(Some("Bearer scrape-me-0123")).await, 200);
    let alias = http.get(format!("{}/-/metrics", server.endpoint)).send().await.unwrap();
    assert_eq!(alias.status(), 401);

    // A bucket may be called `metrics`: signed requests reach it.
    server.client().create_bucket().bucket("metrics").send().await.unwrap();
    server.client().put_object().bucket("metrics").key("k").body(ByteStream::from_static(b"v")).send().await.unwrap();
    let listed = signed(reqwest::Method::GET, &url, &[], Vec::new(), ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(listed.status(), 200);
    let xml = listed.text().await.unwrap();
    assert!(xml.contains("<ListBucketResult") && xml.contains("<Key>k</Key>"), "{xml}");
}

#[tokio::test]
async fn each_role_serves_its_own_metrics_without_the_cluster_secret() {
    let dir = tempfile::tempdir().unwrap();
    let meta_dir = dir.path().join("meta").to_string_lossy().into_owned();
    let meta = Process::start(
        &["meta", "--listen", "127.0.0.1:0", "--data-dir", &meta_dir, "--bootstrap"],
        &dir.path().join("meta.log"),
    );
    let node = start_storage_node(dir.path(), "node", &meta.addr, None);
    let gateway = Process::start(
        &[
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--meta",
            &meta.addr,
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
        ],
        &dir.path().join("gateway.log"),
    );
    let s3 = crate::common::client_for(&gateway.addr, ACCESS_KEY, SECRET_KEY);
    wait_until("the gateway answering", Duration::from_secs(30), || async { s3.list_buckets().send().await.is_ok() })
        .await;

    let meta_text = scrape_until(&format!("http://{}/metrics", meta.addr), "a leader", |t| {
        value(t, "jadfs_meta_raft_is_leader", &[]) == 1.0
    })
    .await;
    assert!(!meta_text.contains("jadfs_node_") && !meta_text.contains("jadfs_s3_"), "{meta_text}");
    let node_text = scrape_until(&format!("http://{}/metrics", node.addr), "the disk gauges", |t| {
        value(t, "jadfs_node_disk_capacity_bytes", &[]) > 0.0
    })
    .await;
    assert!(!node_text.contains("jadfs_meta_") && !node_text.contains("jadfs_s3_"), "{node_text}");
    let gateway_text = scrape(&format!("{}/metrics", gateway.addr)).await;
    assert!(value(&gateway_text, "jadfs_s3_requests_total", &[("op", "ListBuckets"), ("status", "200")]) >= 1.0);
    assert!(!gateway_text.contains("jadfs_meta_") && !gateway_text.contains("jadfs_node_"), "{gateway_text}");

    // The rest of the internal APIs still need the secret.
    for url in [format!("http://{}/v1/status", meta.addr), format!("http://{}/v1/stats", node.addr)] {
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 401, "{url}");
    }
}

#[tokio::test]
async fn admin_status_shows_the_cluster_as_a_table_and_as_json() {
    let server = Server::start_with(&["--chunk-size", "1048576"]);
    let s3 = server.client();
    s3.create_bucket().bucket("shown").send().await.unwrap();
    s3.put_object().bucket("shown").key("a").body(ByteStream::from(random_bytes(MIB, 3))).send().await.unwrap();

    let json: serde_json::Value = serde_json::from_str(&server.admin(&["status", "--json"])).expect("JSON");
    assert_eq!(json["leader"], 1);
    assert_eq!(json["meta"].as_array().unwrap().len(), 1);
    assert_eq!(json["meta"][0]["state"], "Leader");
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        assert_eq!(node["state"], "alive", "{node}");
        assert_eq!(node["chunks"], 1, "{node}");
        assert!(node["scrub"].is_object(), "{node}");
    }
    assert_eq!(json["stats"]["objects"], 1);
    assert_eq!(json["alarms"].as_array().unwrap().len(), 0, "{json}");

    let table = server.admin(&["status"]);
    assert!(table.contains("meta cluster: 1 members, leader 1"), "{table}");
    assert!(table.contains("storage nodes: 3") && table.contains("no alarms"), "{table}");
}

#[tokio::test]
async fn one_access_line_per_request_with_its_request_id_and_none_when_turned_off() {
    let env = [("RUST_LOG", "warn,jadfs::access=info,jadfs_gateway=info")];
    let logged = Server::start_with_env(&["--log-format", "json"], &env);
    let quiet = Server::start_with_env(&["--log-format", "json", "--access-log", "false"], &env);
    for server in [&logged, &quiet] {
        let s3 = server.client();
        s3.create_bucket().bucket("logged").send().await.unwrap();
        // A failed request logs a line of its own (inside its span) too.
        let missing = s3.get_object().bucket("logged").key("missing").send().await.unwrap_err();
        let id = missing.raw_response().and_then(|r| r.headers().get("x-amz-request-id")).unwrap().to_string();
        let lines = |server: &Server| -> Vec<serde_json::Value> {
            server.log().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
        };
        let failed =
            |line: &serde_json::Value| line["span"]["request_id"] == id.as_str() && line["target"] != "jadfs::access";
        wait_until("the failed request's line", Duration::from_secs(10), || async { lines(server).iter().any(failed) })
            .await;
        let access = |server: &Server| -> Vec<serde_json::Value> {
            lines(server).into_iter().filter(|l| l["target"] == "jadfs::access").collect()
        };
        if std::ptr::eq(server, &quiet) {
            // Requests that ended before this one have logged theirs.
            s3.head_bucket().bucket("logged").send().await.unwrap();
            assert!(access(server).is_empty(), "access lines with --access-log false: {:?}", access(server));
            continue;
        }
        let ours = |l: &serde_json::Value| l["fields"]["request_id"] == id.as_str();
        wait_until("the access line", Duration::from_secs(10), || async { access(server).iter().any(ours) }).await;
        let access = access(server);
        let line = access.iter().find(|l| ours(l)).expect("an access line for the request");
        assert_eq!(line["fields"]["op"], "GetObject");
        assert_eq!(line["fields"]["bucket"], "logged");
        assert_eq!(line["fields"]["status"], 404);
        assert_eq!(line["fields"]["code"], "NoSuchKey");
        assert_eq!(access.iter().filter(|l| ours(l)).count(), 1);
    }
}
