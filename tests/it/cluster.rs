//! A cluster of separate processes on 127.0.0.1: three meta nodes grown
//! from one voter with `jadfs admin meta`, four storage nodes in two zones,
//! two gateways. Writes through one gateway are read through the other at
//! once; copies span both zones; an async bucket reaches three copies; the
//! cluster keeps serving after `kill -9` of the Raft leader and of a storage
//! node, whose copies are then made again elsewhere.

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::cluster::*;
use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;
use jadfs_meta::api::{NodeState, StorageNodeInfo};

/// Node 1's address, which node 3 is told to join.
static META1: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn admin(gateway: &str, args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_jadfs"))
        .args(["admin", "--endpoint", gateway, "--access-key", ACCESS_KEY])
        .args(["--secret-key", SECRET_KEY])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "jadfs admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

async fn storage_nodes(meta: &jadfs_meta::MetaClient) -> Vec<StorageNodeInfo> {
    meta.list_nodes().await.unwrap()
}

/// The nodes holding each chunk of an object.
async fn locations(meta: &jadfs_meta::MetaClient, bucket: &str, key: &str) -> Vec<Vec<u64>> {
    meta.get_object(bucket, key, None).await.unwrap().expect("the object exists").locations
}

async fn repair_queue(meta: &jadfs_meta::MetaClient) -> u64 {
    meta.stats().await.unwrap().repair_queue
}

/// True when every chunk of every object has three copies on live nodes.
async fn fully_replicated(meta: &jadfs_meta::MetaClient, bucket: &str, keys: &[String]) -> bool {
    let live: HashSet<u64> =
        storage_nodes(meta).await.into_iter().filter(|n| n.state == NodeState::Alive).map(|n| n.id).collect();
    for key in keys {
        for holders in locations(meta, bucket, key).await {
            if holders.iter().filter(|n| live.contains(n)).count() < 3 {
                return false;
            }
        }
    }
    repair_queue(meta).await == 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_losing_its_meta_leader_and_a_storage_node() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let mut metas: Vec<Process> = (1..=3)
        .map(|id| {
            let data = path(&format!("meta{id}"));
            let mut args =
                vec!["meta".to_string(), "--node-id".into(), id.to_string(), "--listen".into(), "127.0.0.1:0".into()];
            // A storage node silent for 8 s is dead here (60 s by default).
            args.extend(["--node-dead-after".into(), "8".into()]);
            args.extend(["--data-dir".into(), data.to_string_lossy().into_owned()]);
            match id {
                1 => args.push("--bootstrap".into()),
                // Node 3 joins by itself; node 2 is added with the admin CLI below.
                3 => args.extend(["--join".to_string(), META1.get().expect("node 1 starts first").clone()]),
                _ => {}
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let process = Process::start(&args, &path(&format!("meta{id}.log")));
            if id == 1 {
                META1.set(process.addr.clone()).unwrap();
            }
            process
        })
        .collect();
    let meta_addrs: Vec<String> = metas.iter().map(|m| m.addr.clone()).collect();
    let client = meta_client(meta_addrs.clone());
    wait_until("node 1 leads", Duration::from_secs(30), || async { voters(&client, &meta_addrs[0]).await == [1] })
        .await;

    // Grow from one voter to three: node 2 with the admin CLI, node 3 by --join.
    admin_meta(&meta_addrs[0], &["add-learner", "2", &meta_addrs[1]]);
    admin_meta(&meta_addrs[0], &["promote", "2"]);
    wait_until("three voters", Duration::from_secs(30), || async {
        voters(&client, &meta_addrs[2]).await == [1, 2, 3]
    })
    .await;

    let meta_list = meta_addrs.join(",");
    let mut storage: Vec<Process> = (1..=4)
        .map(|i| {
            let zone = if i <= 2 { "zone-a" } else { "zone-b" };
            start_storage_node(dir.path(), &format!("node{i}"), &meta_list, Some(zone))
        })
        .collect();
    let gateways: Vec<Process> = (1..=2)
        .map(|i| start_gateway(dir.path(), &format!("gateway{i}"), &meta_list, &["--chunk-size", "262144"]))
        .collect();
    let a = client_for(&gateways[0].addr, ACCESS_KEY, SECRET_KEY);
    let b = client_for(&gateways[1].addr, ACCESS_KEY, SECRET_KEY);

    a.create_bucket().bucket("cluster").send().await.unwrap();
    let mut written = Vec::new();
    for i in 0..10 {
        let key = format!("before/{i}");
        let body = random_bytes(100_000 + i * 7919, i as u64);
        a.put_object().bucket("cluster").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        // Read through the other gateway at once: reads are linearizable.
        let back = b.get_object().bucket("cluster").key(&key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(back.into_bytes().to_vec(), body);
        written.push((key, body));
    }

    // Three copies of every chunk, on three nodes, in both zones.
    let nodes = storage_nodes(&client).await;
    assert_eq!(nodes.len(), 4);
    let zone_of = |id: u64| nodes.iter().find(|n| n.id == id).and_then(|n| n.zone.clone()).unwrap();
    for (key, _) in &written {
        for holders in locations(&client, "cluster", key).await {
            assert_eq!(holders.len(), 3, "{key}: {holders:?}");
            let zones: HashSet<String> = holders.iter().map(|&id| zone_of(id)).collect();
            assert_eq!(zones.len(), 2, "{key}: copies in {zones:?}");
        }
    }

    // An async bucket: acknowledged after one copy, three follow from the queue.
    a.create_bucket().bucket("lazy").send().await.unwrap();
    admin(&gateways[0].addr, &["replication", "set", "--bucket", "lazy", "async"]);
    let started = Instant::now();
    let mut lazy_keys = Vec::new();
    for i in 0..20 {
        let key = format!("lazy/{i}");
        let body = random_bytes(300_000 + i, 500 + i as u64);
        a.put_object().bucket("lazy").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        let back = b.get_object().bucket("lazy").key(&key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(back.into_bytes().to_vec(), body);
        lazy_keys.push(key);
    }
    let written_after = started.elapsed();
    wait_until("three copies of every async chunk", Duration::from_secs(60), || {
        fully_replicated(&client, "lazy", &lazy_keys)
    })
    .await;
    println!(
        "async: 20 objects (40 chunks) written in {written_after:?}, all with 3 copies after {:?}",
        started.elapsed()
    );

    // kill -9 the Raft leader; the others elect a new one and the gateways follow.
    let status = client.status(&meta_addrs[0]).await.unwrap();
    let leader = status["current_leader"].as_u64().expect("a leader") as usize;
    metas[leader - 1].kill();
    let survivor = meta_addrs[if leader == 1 { 1 } else { 0 }].clone();
    wait_until("a new leader", Duration::from_secs(30), || async {
        client
            .status(&survivor)
            .await
            .ok()
            .and_then(|s| s["current_leader"].as_u64())
            .is_some_and(|l| l as usize != leader)
    })
    .await;
    for i in 0..10 {
        let key = format!("after/{i}");
        let body = random_bytes(50_000 + i, 100 + i as u64);
        b.put_object().bucket("cluster").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        written.push((key, body));
    }

    // Lose a storage node too: every object is still read, from other
    // copies, and new writes go to the three nodes left.
    storage[0].kill();
    for (key, body) in &written {
        let back = a.get_object().bucket("cluster").key(key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(&back.into_bytes().to_vec(), body, "{key}");
    }
    for i in 0..5 {
        let key = format!("degraded/{i}");
        let body = random_bytes(70_000 + i, 900 + i as u64);
        a.put_object().bucket("cluster").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        written.push((key, body));
    }

    // Once the node counts as dead, its copies are made again on the others.
    let lost = storage[0].addr.clone();
    wait_until("the killed node counts as dead", Duration::from_secs(60), || async {
        storage_nodes(&client).await.iter().any(|n| n.addr == lost && n.state == NodeState::Dead)
    })
    .await;
    let keys: Vec<String> = written.iter().map(|(k, _)| k.clone()).collect();
    wait_until("three live copies of every chunk", Duration::from_secs(90), || {
        fully_replicated(&client, "cluster", &keys)
    })
    .await;
    for (key, body) in &written {
        let back = b.get_object().bucket("cluster").key(key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(&back.into_bytes().to_vec(), body, "{key}");
    }

    // The lost node comes back with its old copies: they are surplus now,
    // trimmed and deleted, and every chunk is named on exactly three nodes.
    storage[0] = start_storage_node(dir.path(), "node1", &meta_list, Some("zone-a"));
    let back_id: u64 = std::fs::read_to_string(path("node1/node-id")).unwrap().trim().parse().unwrap();
    // The same bytes under more keys: each write may put them on other nodes.
    let same = random_bytes(300_000, 4242);
    for i in 0..6 {
        let key = format!("same/{i}");
        a.put_object().bucket("cluster").key(&key).body(ByteStream::from(same.clone())).send().await.unwrap();
        written.push((key, same.clone()));
    }
    let keys: Vec<String> = written.iter().map(|(k, _)| k.clone()).collect();
    let back_dir = path("node1");
    wait_until("surplus copies trimmed and deleted", Duration::from_secs(90), || {
        exactly_three_copies(&client, "cluster", &keys, &back_dir, back_id)
    })
    .await;
    for (key, body) in &written {
        let back = a.get_object().bucket("cluster").key(key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(&back.into_bytes().to_vec(), body, "{key}");
    }
}

/// True when every chunk of `keys` is named on exactly three nodes and the
/// node `id` (data in `data_dir`) holds no file of a chunk not named on it.
async fn exactly_three_copies(
    meta: &jadfs_meta::MetaClient,
    bucket: &str,
    keys: &[String],
    data_dir: &std::path::Path,
    id: u64,
) -> bool {
    for key in keys {
        let object = meta.get_object(bucket, key, None).await.unwrap().expect("the object exists");
        for (chunk, holders) in object.manifest.chunks.iter().zip(&object.locations) {
            let hex = chunk.id.to_hex();
            let file = data_dir.join("chunks").join(&hex[0..2]).join(&hex[2..4]).join(&hex);
            if holders.len() != 3 || (!holders.contains(&id) && file.exists()) {
                return false;
            }
        }
    }
    true
}
