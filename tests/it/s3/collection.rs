//! Deleted data frees its space: unused chunks are collected after the
//! grace period, and never one a write is reusing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::common::*;

/// Bytes of chunk files the three storage nodes of a `jadfs server` hold.
fn chunk_bytes(server: &Server) -> u64 {
    (1..=3)
        .flat_map(|node| files_under(&server.data_dir().join(format!("node-{node}/chunks"))))
        .map(|path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn deleting_frees_the_space_after_the_grace_period() {
    let server = Server::start_with(&["--gc-grace", "1s"]);
    let s3 = server.client();
    s3.create_bucket().bucket("gc-test").send().await.unwrap();
    // 1 GiB in four objects (three copies each), then deleted.
    for i in 0..4u64 {
        let body = ByteStream::from(random_bytes(256 << 20, 100 + i));
        s3.put_object().bucket("gc-test").key(format!("big-{i}")).body(body).send().await.unwrap();
    }
    // A multipart upload aborted, and a PUT whose client went away half-way.
    let upload = s3.create_multipart_upload().bucket("gc-test").key("aborted").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = ByteStream::from(random_bytes(8 << 20, 200));
    s3.upload_part()
        .bucket("gc-test")
        .key("aborted")
        .upload_id(upload_id)
        .part_number(1)
        .body(part)
        .send()
        .await
        .unwrap();
    s3.abort_multipart_upload().bucket("gc-test").key("aborted").upload_id(upload_id).send().await.unwrap();
    let stored = chunk_bytes(&server);
    assert!(stored >= 3 << 30, "three copies of 1 GiB and more: {stored}");
    for i in 0..4 {
        s3.delete_object().bucket("gc-test").key(format!("big-{i}")).send().await.unwrap();
    }
    let deadline = Duration::from_secs(60);
    wait_until("95 % of the space back", deadline, || async { chunk_bytes(&server) * 20 <= stored }).await;
    let stats = server.stats().await;
    assert_eq!(stats["meta"]["orphaned_chunks"], 0, "{stats}");
}

#[tokio::test]
async fn a_failed_write_leaves_nothing_behind() {
    let server = Server::start_with(&["--gc-grace", "1s", "--chunk-size", "1048576"]);
    let s3 = server.client();
    s3.create_bucket().bucket("gc-test").send().await.unwrap();
    // A PUT that promises 8 MiB and stops after 5: its first chunks were
    // written, and no object names them.
    let url = format!("{}/gc-test/cut-short", server.endpoint);
    let data = random_bytes(8 << 20, 9);
    let (headers, _) =
        sign_request("PUT", &url, &[], &data, ACCESS_KEY, SECRET_KEY, std::time::SystemTime::now(), None);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let mut request = reqwest::Client::new().put(&url);
    for (n, v) in headers {
        request = request.header(n, v);
    }
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let sent = tokio::spawn(request.header("content-length", data.len()).body(body).send());
    for piece in data[..5 << 20].chunks(1 << 20) {
        tx.send(Ok(piece.to_vec())).await.unwrap();
    }
    wait_until("the first chunks stored", Duration::from_secs(30), || async { chunk_bytes(&server) >= 3 << 20 }).await;
    tx.send(Err(std::io::Error::other("the client goes away"))).await.unwrap();
    drop(tx);
    assert!(sent.await.unwrap().map(|r| !r.status().is_success()).unwrap_or(true));
    wait_until("the orphaned chunks gone", Duration::from_secs(60), || async { chunk_bytes(&server) == 0 }).await;
    assert!(s3.head_object().bucket("gc-test").key("cut-short").send().await.is_err());
}

#[tokio::test]
async fn a_chunk_reused_while_it_is_collected_is_never_lost() {
    // Over and over: an object is deleted, so its chunk has no reference;
    // near the end of the grace (half a second) the same bytes are put
    // again under another key. Each write waits 300 ms between storing its
    // bytes and committing (JADFS_PAUSE), so the collection of the chunk
    // falls inside writes that reuse it. Four contents race at once. Every
    // object a client was told is stored must read back whole.
    let server = Server::start_with_env(&["--gc-grace", "500ms"], &[("JADFS_PAUSE", "before-commit:300")]);
    let s3 = server.client();
    s3.create_bucket().bucket("race").send().await.unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for content in 0..4u64 {
        let (s3, refused) = (s3.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            let data = random_bytes(256 << 10, 70 + content); // one chunk, not inline
            let put = |key: String| s3.put_object().bucket("race").key(key).body(ByteStream::from(data.clone())).send();
            for round in 0..8u64 {
                let first = format!("c{content}-{round}-first");
                put(first.clone()).await.unwrap();
                s3.delete_object().bucket("race").key(&first).send().await.unwrap();
                // From 300 ms before the grace ends to 200 ms after it.
                tokio::time::sleep(Duration::from_millis(200 + (round * 71 + content * 37) % 500)).await;
                let again = format!("c{content}-{round}-again");
                if put(again.clone()).await.is_err() {
                    refused.fetch_add(1, Ordering::Relaxed); // refused: allowed, never lost
                    continue;
                }
                // Past the grace and a collection round or two.
                tokio::time::sleep(Duration::from_millis(1200)).await;
                let out = s3.get_object().bucket("race").key(&again).send().await;
                let out = out.unwrap_or_else(|e| panic!("{again}, acknowledged, is gone: {e:?}"));
                let got = out.body.collect().await.unwrap_or_else(|e| panic!("{again} unreadable: {e:?}")).into_bytes();
                assert!(got == data[..], "{again} read back wrong");
                s3.delete_object().bucket("race").key(&again).send().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    eprintln!("32 reuses raced with collection; {} writes refused", refused.load(Ordering::Relaxed));
}

#[tokio::test]
async fn a_slow_pin_never_lets_a_collection_take_the_new_copies() {
    // An object is deleted and the same bytes are put again at once. Each
    // chunk's pin waits 1.5 s (JADFS_PAUSE) while the grace is 300 ms, so
    // the old chunk is collected and its copies deleted while the new
    // write waits for its pin. The nodes must not have kept the new bytes
    // before the pin applied: the deletion would take them, and the write
    // would commit copies that are gone.
    let server = Server::start_with_env(&["--gc-grace", "300ms"], &[("JADFS_PAUSE", "before-pin:1500")]);
    let s3 = server.client();
    s3.create_bucket().bucket("slow-pin").send().await.unwrap();
    let mut stored = 0;
    for round in 0..3u64 {
        let data = random_bytes(256 << 10, 90 + round); // one chunk, not inline
        let put = |key: &str| s3.put_object().bucket("slow-pin").key(key).body(ByteStream::from(data.clone())).send();
        put("first").await.unwrap();
        s3.delete_object().bucket("slow-pin").key("first").send().await.unwrap();
        let again = format!("again-{round}");
        if put(&again).await.is_err() {
            continue; // refused: allowed, never lost
        }
        let out = s3.get_object().bucket("slow-pin").key(&again).send().await;
        let out = out.unwrap_or_else(|e| panic!("{again}, acknowledged, is gone: {e:?}"));
        let got = out.body.collect().await.unwrap_or_else(|e| panic!("{again} unreadable: {e:?}")).into_bytes();
        assert!(got == data[..], "{again} read back wrong");
        stored += 1;
    }
    assert!(stored > 0, "every write was refused: the race was not run");
}
