//! Meta-cluster membership under load: five `jadfs meta` processes, one
//! voter at first, grown to three and then five voters with `jadfs admin
//! meta`, and shrunk back to three (the first leader among the removed),
//! while a writer keeps putting objects through a gateway. Every PUT the
//! gateway acknowledged reads back identical at the end. Snapshots are taken
//! every 10 log entries, so the nodes that join install one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::cluster::*;
use crate::common::*;
use aws_sdk_s3::primitives::ByteStream;

/// A key and the bytes its acknowledged PUT carried.
type Written = (String, Vec<u8>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_grow_from_one_to_five_and_shrink_to_three_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let mut metas: Vec<Process> = (1..=5)
        .map(|id| {
            let data = path(&format!("meta{id}")).to_string_lossy().into_owned();
            let id = id.to_string();
            // A snapshot every 10 entries: nodes that join later catch up
            // from a snapshot (sent in pieces), not from the log.
            let mut args = vec!["meta", "--node-id", &id, "--listen", "127.0.0.1:0", "--data-dir", &data];
            args.extend(["--snapshot-every", "10"]);
            if id == "1" {
                args.push("--bootstrap");
            }
            Process::start(&args, &path(&format!("meta{id}.log")))
        })
        .collect();
    let addrs: Vec<String> = metas.iter().map(|m| m.addr.clone()).collect();
    let meta_list = addrs.join(",");
    let client = meta_client(addrs.clone());
    wait_until("node 1 leads", Duration::from_secs(30), || async { voters(&client, &addrs[0]).await == [1] }).await;

    let _storage: Vec<Process> =
        (1..=3).map(|i| start_storage_node(dir.path(), &format!("node{i}"), &meta_list, None)).collect();
    let gateway = start_gateway(dir.path(), "gateway", &meta_list, &[]);
    let s3 = client_for(&gateway.addr, ACCESS_KEY, SECRET_KEY);
    s3.create_bucket().bucket("load").send().await.unwrap();

    // The writer: PUT after PUT, remembering the ones acknowledged.
    let acked: Arc<Mutex<Vec<Written>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (s3, acked, stop) = (s3.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let key = format!("obj/{i}");
                let body = random_bytes(1000 + (i as usize % 7) * 30_000, i);
                let put = s3.put_object().bucket("load").key(&key).body(ByteStream::from(body.clone())).send().await;
                if put.is_ok() {
                    acked.lock().unwrap().push((key, body));
                }
            }
        })
    };
    let count = || acked.lock().unwrap().len();
    // Each step must let some writes through before the next begins.
    let progress = |what: &'static str| {
        let from = count();
        let acked = acked.clone();
        async move {
            wait_until(what, Duration::from_secs(60), || {
                let acked = acked.clone();
                async move { acked.lock().unwrap().len() >= from + 20 }
            })
            .await
        }
    };
    progress("writes with one voter").await;

    for id in ["2", "3"] {
        admin_meta(&addrs[0], &["add-learner", id, &addrs[id.parse::<usize>().unwrap() - 1]]);
        admin_meta(&addrs[0], &["promote", id]);
    }
    wait_until("three voters", Duration::from_secs(30), || async { voters(&client, &addrs[2]).await == [1, 2, 3] })
        .await;
    progress("writes with three voters").await;

    for id in ["4", "5"] {
        admin_meta(&meta_list, &["add-learner", id, &addrs[id.parse::<usize>().unwrap() - 1]]);
        admin_meta(&meta_list, &["promote", id]);
    }
    wait_until("five voters", Duration::from_secs(30), || async {
        voters(&client, &addrs[4]).await == [1, 2, 3, 4, 5]
    })
    .await;
    progress("writes with five voters").await;

    // Shrink to three, removing the first leader and node 4.
    admin_meta(&meta_list, &["remove", "1"]);
    admin_meta(&meta_list, &["remove", "4"]);
    wait_until("voters 2, 3 and 5", Duration::from_secs(30), || async {
        voters(&client, &addrs[1]).await == [2, 3, 5]
    })
    .await;
    metas[0].kill();
    metas[3].kill();
    progress("writes with three voters again").await;

    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    println!("{} PUTs acknowledged across the membership changes", acked.len());
    for (key, body) in &acked {
        let back = s3.get_object().bucket("load").key(key).send().await.unwrap().body.collect().await.unwrap();
        assert_eq!(&back.into_bytes().to_vec(), body, "{key}");
    }
}
