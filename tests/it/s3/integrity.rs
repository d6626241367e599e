//! What a client reads when copies on disk are damaged or gone, and how
//! the cluster makes them again.

use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::config::ResponseChecksumValidation;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumMode;

use crate::common::*;

/// Where node `node` of a `jadfs server` keeps chunk `id` (hex).
fn copy(server: &Server, node: usize, id: &str) -> PathBuf {
    server.data_dir().join(format!("node-{node}/chunks/{}/{}/{id}", &id[0..2], &id[2..4]))
}

/// Whether every node holds a good copy of each of `ids`.
fn all_copies_good(server: &Server, ids: &[String]) -> bool {
    ids.iter().all(|id| (1..=3).all(|node| std::fs::read(copy(server, node, id)).is_ok_and(|b| sha256(&b) == *id)))
}

/// A client that checks no response checksum (the SDK checks some by
/// default): what it reads is what the cluster sent.
fn trusting(s3: &aws_sdk_s3::Client) -> aws_sdk_s3::Client {
    let config = s3.config().to_builder().response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    aws_sdk_s3::Client::from_conf(config.build())
}

/// An object's bytes, or those of `range`: read by a client that checks
/// the object's checksum (`validate`), or by one that checks nothing.
async fn get(s3: &aws_sdk_s3::Client, key: &str, range: Option<(usize, usize)>, validate: bool) -> Vec<u8> {
    let s3 = if validate { s3.clone() } else { trusting(s3) };
    let mut request = s3.get_object().bucket("rot").key(key);
    if let Some((start, end)) = range {
        request = request.range(format!("bytes={start}-{end}"));
    }
    if validate {
        request = request.checksum_mode(ChecksumMode::Enabled);
    }
    let out = request.send().await.unwrap_or_else(|e| panic!("{key} {range:?}: {e:?}"));
    out.body.collect().await.unwrap_or_else(|e| panic!("{key} {range:?}: {e:?}")).into_bytes().to_vec()
}

#[tokio::test]
async fn every_read_is_right_whatever_byte_rots_and_bad_copies_are_made_again() {
    let server = Server::start_with(&["--scrub-rate", "500"]);
    let s3 = server.client();
    s3.create_bucket().bucket("rot").send().await.unwrap();
    let len = 3 << 20; // one chunk of 12 checked blocks, three copies
    let mut ids = Vec::new();
    // A byte flipped at the start, the middle and the end of the chunk, on
    // one copy and on two.
    for (case, (at, bad_copies)) in
        [(0, 1), (0, 2), (len / 2, 1), (len / 2, 2), (len - 1, 1), (len - 1, 2)].into_iter().enumerate()
    {
        let data = random_bytes(len, 40 + case as u64);
        let key = format!("object-{case}");
        s3.put_object().bucket("rot").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        let id = sha256(&data);
        for n in 0..bad_copies {
            let node = (case + n) % 3 + 1;
            let mut rotten = std::fs::read(copy(&server, node, &id)).unwrap();
            rotten[at] ^= 0x10;
            std::fs::write(copy(&server, node, &id), rotten).unwrap();
        }
        let near = (at.saturating_sub(100), (at + 100).min(len - 1));
        for validate in [false, true] {
            assert!(get(&s3, &key, None, validate).await == data, "case {case}: whole");
            for (start, end) in [near, (at, at), (0, 99), (len - 100, len - 1), (1000, len - 1000)] {
                let got = get(&s3, &key, Some((start, end)), validate).await;
                assert!(got == data[start..=end], "case {case}: bytes {start}-{end}");
            }
        }
        ids.push(id);
    }
    // Reads quarantined the bad copies they met; the scrubber finds the
    // rest. Every bad copy is made again from a good one.
    // `--wait` returns once every pass has ended.
    let waited = server.admin(&["scrub", "start", "--wait"]);
    assert_eq!(waited.lines().filter(|l| l.contains(" idle ")).count(), 3, "{waited}");
    wait_until("every copy good again", Duration::from_secs(60), || async { all_copies_good(&server, &ids) }).await;
    let status = server.admin(&["scrub", "status", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(report.as_array().unwrap().len(), 3, "{status}");
    assert!(
        server.data_dir().join("node-1/quarantine").read_dir().unwrap().next().is_some(),
        "bad copies are kept aside"
    );
}

#[tokio::test]
async fn a_lost_copy_comes_back_and_with_every_copy_gone_the_client_gets_an_error() {
    let server = Server::start_with(&["--scrub-rate", "500"]);
    let s3 = server.client();
    s3.create_bucket().bucket("rot").send().await.unwrap();
    let data = random_bytes(3 << 20, 7);
    s3.put_object().bucket("rot").key("object").body(ByteStream::from(data.clone())).send().await.unwrap();
    let id = sha256(&data);

    // A deleted file: the scrubber of that node notices, and the copy is
    // made again.
    std::fs::remove_file(copy(&server, 2, &id)).unwrap();
    let node_2 = std::fs::read_to_string(server.data_dir().join("node-2/node-id")).unwrap();
    let started = server.admin(&["scrub", "start", "--node", node_2.trim()]);
    assert_eq!(started.lines().count(), 2, "a header and node 2: {started}");
    let ids = [id.clone()];
    wait_until("the lost copy back", Duration::from_secs(60), || async { all_copies_good(&server, &ids) }).await;

    // Every copy rotten near its end: the first bytes may be sent, but the
    // response is cut, never completed as if whole.
    for node in 1..=3 {
        let mut rotten = data.clone();
        rotten[data.len() - 10] ^= 0x40;
        std::fs::write(copy(&server, node, &id), rotten).unwrap();
    }
    let out = trusting(&s3).get_object().bucket("rot").key("object").send().await.unwrap();
    assert!(out.body.collect().await.is_err(), "a response with bad bytes is cut short");

    // Every copy gone: an error before anything is sent, never a 200.
    for node in 1..=3 {
        let _ = std::fs::remove_file(copy(&server, node, &id));
    }
    for range in [None, Some("bytes=0-99")] {
        let mut request = s3.get_object().bucket("rot").key("object");
        if let Some(range) = range {
            request = request.range(range);
        }
        let err = request.send().await.unwrap_err();
        assert_eq!(err.code(), Some("ServiceUnavailable"), "{range:?}: {err:?}");
        assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    }
}
