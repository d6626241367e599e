//! Drain and rebalance on a cluster of separate processes: one meta node,
//! storage nodes, a gateway. A node drained while writers run gives up
//! every copy and no chunk ever has fewer than three; a node added empty
//! is filled to its share by `jadfs admin rebalance`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::common::cluster::*;
use crate::common::*;

/// Runs `jadfs admin ARGS` against `endpoint`, failing after `deadline`.
async fn admin_within(endpoint: &str, args: &[&str], deadline: Duration) -> String {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_jadfs"))
        .args(["admin", "--endpoint", endpoint, "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .args(args)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(deadline, run).await.unwrap_or_else(|_| panic!("jadfs admin {args:?} timed out"));
    let output = output.expect("run jadfs admin");
    assert!(output.status.success(), "jadfs admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

fn node_id(dir: &std::path::Path) -> u64 {
    std::fs::read_to_string(dir.join("node-id")).unwrap().trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_node_gives_up_every_copy_under_writes_and_a_new_node_gets_its_share() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let meta_data = path("meta1").to_string_lossy().into_owned();
    let args = ["meta", "--node-id", "1", "--listen", "127.0.0.1:0", "--data-dir", &meta_data, "--bootstrap"];
    let meta = Process::start(&args, &path("meta1.log"));
    let client = meta_client(vec![meta.addr.clone()]);
    let mut storage: Vec<Process> =
        (1..=4).map(|i| start_storage_node(dir.path(), &format!("node{i}"), &meta.addr, None)).collect();
    let gateway = start_gateway(dir.path(), "gateway", &meta.addr, &["--chunk-size", "262144"]);
    let s3 = client_for(&gateway.addr, ACCESS_KEY, SECRET_KEY);
    wait_until("four storage nodes", Duration::from_secs(30), || async {
        client.list_nodes().await.map(|n| n.len() == 4).unwrap_or(false)
    })
    .await;
    s3.create_bucket().bucket("drain").send().await.unwrap();
    let written: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    for i in 0..30 {
        let body = random_bytes(200_000 + i * 20_011, i as u64);
        let key = format!("before/{i}");
        s3.put_object().bucket("drain").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        written.lock().unwrap().push((key, sha256(&body)));
    }

    // Writers and a checker run while node 1 is drained.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (s3, written, stop) = (s3.clone(), written.clone(), stop.clone());
        async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = random_bytes(300_000, 1000 + i);
                let key = format!("during/{i}");
                if s3.put_object().bucket("drain").key(&key).body(ByteStream::from(body.clone())).send().await.is_ok() {
                    written.lock().unwrap().push((key, sha256(&body)));
                }
                i += 1;
            }
        }
    });
    let short = Arc::new(AtomicUsize::new(0));
    let checks = Arc::new(AtomicUsize::new(0));
    let checker = tokio::spawn({
        let (client, written, stop, short, checks) =
            (meta_client(vec![meta.addr.clone()]), written.clone(), stop.clone(), short.clone(), checks.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                let keys: Vec<String> = written.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
                for key in keys {
                    let Ok(Some(object)) = client.get_object("drain", &key, None).await else { continue };
                    for holders in &object.locations {
                        if holders.len() < 3 {
                            eprintln!("{key}: a chunk on {holders:?}");
                            short.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                checks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let drained = node_id(&path("node1"));
    let out = admin_within(&gateway.addr, &["node", "drain", &drained.to_string()], Duration::from_secs(120)).await;
    assert!(out.contains("holds no copies"), "{out}");
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    checker.await.unwrap();
    assert!(checks.load(Ordering::Relaxed) >= 2, "the checker ran during the drain");
    assert_eq!(short.load(Ordering::Relaxed), 0, "a chunk had fewer than three copies during the drain");
    let usage = client.usage().await.unwrap();
    assert!(usage.nodes.iter().all(|u| u.node != drained), "node 1 still holds copies: {usage:?}");
    wait_until("the drained node's files deleted", Duration::from_secs(30), || async {
        files_under(&path("node1/chunks")).is_empty()
    })
    .await;
    storage[0].kill();

    // A new node, empty, gets its fair share of what the other three hold.
    storage.push(start_storage_node(dir.path(), "node5", &meta.addr, None));
    let added = node_id(&path("node5"));
    wait_until("the new node registered", Duration::from_secs(30), || async {
        client.list_nodes().await.map(|n| n.iter().any(|n| n.id == added)).unwrap_or(false)
    })
    .await;
    admin_within(&gateway.addr, &["rebalance", "--tolerance", "20"], Duration::from_secs(120)).await;
    let usage = client.usage().await.unwrap();
    let bytes = |id: u64| usage.nodes.iter().find(|u| u.node == id).map_or(0, |u| u.bytes);
    let total: u64 = usage.nodes.iter().map(|u| u.bytes).sum();
    assert!(bytes(added) as f64 >= 0.8 * total as f64 / 4.0, "node 5 holds {} of {total}", bytes(added));
    assert!(usage.rebalance_tolerance.is_none(), "the rebalance ended");

    // Every acknowledged object reads back whole, each chunk on three nodes.
    let written = written.lock().unwrap().clone();
    for (key, digest) in &written {
        let body = s3.get_object().bucket("drain").key(key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(&sha256(&body.into_bytes()), digest, "{key}");
        let object = client.get_object("drain", key, None).await.unwrap().unwrap();
        assert!(
            object.locations.iter().all(|h| h.len() == 3 && !h.contains(&drained)),
            "{key}: {:?}",
            object.locations
        );
    }
}
