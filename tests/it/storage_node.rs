//! A real `jadfs storage-node` process over HTTP: hashes checked, crashes
//! between write and rename leave nothing visible, ranges, reconciliation.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::Method;

use crate::common::{files_under, random_bytes, sha256, Internal, CLUSTER_SECRET};

struct Node {
    child: Child,
    addr: String,
}

impl Node {
    fn start(data_dir: &Path, failpoint: Option<&str>) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_jadfs"));
        command
            .args(["storage-node", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .env("JADFS_CLUSTER_SECRET", CLUSTER_SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(point) = failpoint {
            command.env("JADFS_FAILPOINT", point);
        }
        let mut child = command.spawn().expect("spawn storage node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.split(" listening on ").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("storage node started");
        Node { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A request to `path` signed with the cluster secret.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        Internal::new(CLUSTER_SECRET).request(method, &self.url(path))
    }

    async fn stats(&self) -> serde_json::Value {
        self.request(Method::GET, "/v1/stats").send().await.unwrap().json().await.unwrap()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn a_bad_hash_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path(), None);
    let wrong_id = sha256(b"something else");
    let response =
        node.request(Method::PUT, &format!("/v1/chunks/{wrong_id}")).body("actual bytes").send().await.unwrap();
    assert_eq!(response.status(), 422);
    assert_eq!(node.stats().await["chunks"], 0);
    assert!(files_under(&dir.path().join("chunks")).is_empty());
    assert!(files_under(&dir.path().join("tmp")).is_empty());

    // Paths never come from the request: a malformed id is refused outright.
    for bad in ["..%2F..%2Fetc%2Fpasswd", "ABC", "zz"] {
        let response = node.request(Method::GET, &format!("/v1/chunks/{bad}")).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn a_crash_between_write_and_rename_leaves_no_visible_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let data = random_bytes(300_000, 1);
    let id = sha256(&data);
    let node = Node::start(dir.path(), Some("chunk-before-rename"));
    let result = node.request(Method::PUT, &format!("/v1/chunks/{id}")).body(data.clone()).send().await;
    assert!(result.is_err(), "the node must die before answering");
    node.stop();
    assert_eq!(files_under(&dir.path().join("tmp")).len(), 1, "the crash left its temporary file");

    let node = Node::start(dir.path(), None);
    let head = node.request(Method::HEAD, &format!("/v1/chunks/{id}")).send().await.unwrap();
    assert_eq!(head.status(), 404);
    let stats = node.stats().await;
    assert_eq!(stats["chunks"], 0);
    assert_eq!(stats["last_reconcile"]["removed_temp_files"], 1);
    assert!(files_under(&dir.path().join("tmp")).is_empty());

    // The same put now succeeds.
    let response = node.request(Method::PUT, &format!("/v1/chunks/{id}")).body(data).send().await.unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn ranges_and_reconciliation() {
    let dir = tempfile::tempdir().unwrap();
    let kept = random_bytes(1_000_000, 2);
    let lost = random_bytes(1000, 3);
    let node = Node::start(dir.path(), None);
    for data in [&kept, &lost] {
        let path = format!("/v1/chunks/{}", sha256(data));
        let response = node.request(Method::PUT, &path).body(data.clone()).send().await.unwrap();
        assert_eq!(response.status(), 201);
        let stored: serde_json::Value = response.json().await.unwrap();
        assert_eq!(stored["id"], sha256(data));
    }
    let kept_id = sha256(&kept);
    let chunk = format!("/v1/chunks/{kept_id}");
    let response = node.request(Method::GET, &chunk).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "bytes 100-199/1000000");
    assert_eq!(&response.bytes().await.unwrap()[..], &kept[100..200]);
    let response = node.request(Method::GET, &chunk).header("range", "bytes=1000000-").send().await.unwrap();
    assert_eq!(response.status(), 416);
    let whole = node.request(Method::GET, &chunk).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(sha256(&whole), kept_id);
    node.stop();

    // Behind the node's back: one chunk file deleted, one valid chunk file added.
    let path_of = |id: &str| dir.path().join("chunks").join(&id[0..2]).join(&id[2..4]).join(id);
    std::fs::remove_file(path_of(&sha256(&lost))).unwrap();
    let stray = random_bytes(5000, 4);
    let stray_path = path_of(&sha256(&stray));
    std::fs::create_dir_all(stray_path.parent().unwrap()).unwrap();
    std::fs::write(&stray_path, &stray).unwrap();

    let node = Node::start(dir.path(), None);
    let stats = node.stats().await;
    assert_eq!(stats["last_reconcile"]["missing"], serde_json::json!([sha256(&lost)]));
    assert_eq!(stats["last_reconcile"]["adopted"], serde_json::json!([sha256(&stray)]));
    assert_eq!(stats["chunks"], 2);
    let listed: Vec<serde_json::Value> =
        node.request(Method::GET, "/v1/chunks").send().await.unwrap().json().await.unwrap();
    let mut ids: Vec<&str> = listed.iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected = vec![kept_id.clone(), sha256(&stray)];
    expected.sort();
    assert_eq!(ids, expected);
}
