//! Crash safety: `kill -9` of `jadfs server` while PUTs stream in. After a
//! restart every acknowledged PUT reads back identical, and nothing half
//! written is listed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::primitives::ByteStream;

/// The body written under `key`: derived from the key, so any listed key
/// can be checked.
fn body_for(key: &str) -> Vec<u8> {
    let seed = key.bytes().fold(1469598103934665603u64, |h, b| (h ^ b as u64).wrapping_mul(1099511628211));
    let size = 1 + (seed % (1536 * 1024)) as usize; // up to 1.5 MiB: several 256 KiB chunks
    random_bytes(size, seed)
}

fn no_retry_client(server: &Server) -> aws_sdk_s3::Client {
    let base = server.client();
    let config = base.config().to_builder().retry_config(RetryConfig::disabled()).build();
    aws_sdk_s3::Client::from_conf(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_puts_survive_kill_9_and_partial_ones_stay_invisible() {
    let mut server = Server::start_with(&["--chunk-size", "262144"]);
    server.client().create_bucket().bucket("crash").send().await.unwrap();
    let acknowledged: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();

    for round in 0..3 {
        let s3 = no_retry_client(&server);
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for writer in 0..4 {
            let (s3, stop, acknowledged) = (s3.clone(), stop.clone(), acknowledged.clone());
            writers.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("round-{round}/writer-{writer}/object-{n}");
                    n += 1;
                    let body = body_for(&key);
                    let put =
                        s3.put_object().bucket("crash").key(&key).body(ByteStream::from(body.clone())).send().await;
                    if put.is_ok() {
                        acknowledged.lock().unwrap().insert(key, sha256(&body));
                    }
                }
            }));
        }
        // Kill once this round has some acknowledged writes, while more are in flight.
        let before = acknowledged.lock().unwrap().len();
        wait_until("acknowledged writes", Duration::from_secs(120), || {
            let count = acknowledged.lock().unwrap().len();
            async move { count >= before + 12 }
        })
        .await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.unwrap();
        }
        server.launch(&[]);

        let s3 = server.client();
        let expected = acknowledged.lock().unwrap().clone();
        for (key, digest) in &expected {
            let object =
                s3.get_object().bucket("crash").key(key).send().await.unwrap_or_else(|e| panic!("lost {key}: {e:?}"));
            let bytes = object.body.collect().await.unwrap().into_bytes();
            assert_eq!(&sha256(&bytes), digest, "{key} changed after the crash");
        }
        // Every listed object is complete: acknowledged, or in flight and whole.
        let mut token = None;
        loop {
            let page = s3.list_objects_v2().bucket("crash").set_continuation_token(token).send().await.unwrap();
            for object in page.contents() {
                let key = object.key().unwrap();
                let bytes = s3
                    .get_object()
                    .bucket("crash")
                    .key(key)
                    .send()
                    .await
                    .unwrap()
                    .body
                    .collect()
                    .await
                    .unwrap()
                    .into_bytes();
                assert_eq!(bytes.to_vec(), body_for(key), "listed object {key} is not whole");
                assert_eq!(object.size(), Some(bytes.len() as i64));
            }
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            token = page.next_continuation_token().map(String::from);
        }
    }
}
