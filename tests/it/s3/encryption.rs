//! Server-side encryption as an S3 user sees it (SSE-S3, SSE-KMS, SSE-C,
//! a bucket's default), and what a thief of a disk would find: no byte of
//! an encrypted object in the clear, in chunks or in the metadata.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{code, status};
use crate::common::*;

const BUCKET: &str = "secrets";

/// A body that says `marker` every 64 bytes, so any piece of it on disk
/// would be found.
fn body_with(marker: &str, len: usize) -> Vec<u8> {
    let line = format!("{marker:<63}\n");
    line.as_bytes().iter().cycle().take(len).copied().collect()
}

/// Whether any file under `dir` holds `needle`.
fn found_on_disk(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if path.is_dir() {
            return found_on_disk(&path, needle);
        }
        std::fs::read(&path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

struct CustomerKey {
    key: String,
    md5: String,
}

fn customer_key(byte: u8) -> CustomerKey {
    let raw = [byte; 32];
    let md5 = {
        use md5::{Digest, Md5};
        STANDARD.encode(Md5::digest(raw))
    };
    CustomerKey { key: STANDARD.encode(raw), md5 }
}

async fn get_range(s3: &aws_sdk_s3::Client, key: &str, range: Option<String>, sse_c: Option<&CustomerKey>) -> Vec<u8> {
    let mut get = s3.get_object().bucket(BUCKET).key(key).set_range(range);
    if let Some(c) = sse_c {
        get = get.sse_customer_algorithm("AES256").sse_customer_key(&c.key).sse_customer_key_md5(&c.md5);
    }
    let out = get.send().await.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn encrypted_objects_read_back_whole_and_in_ranges_and_never_rest_in_the_clear() {
    let server = Server::start_with(&["--chunk-size", "65536", "--kms-keys", "backup-key,other"]);
    let s3 = server.client();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();

    // SSE-S3, chunked (3 chunks and a bit) and inline.
    let big = body_with("SSE-S3-PLAINTEXT-MARKER", 200_000);
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("s3")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(put.e_tag().unwrap(), format!("\"{:032x}\"", super::md5_digest(&big)), "the ETag is the body's MD5");
    let small = body_with("INLINE-PLAINTEXT-MARKER", 300);
    s3.put_object()
        .bucket(BUCKET)
        .key("small")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(super::get_bytes(&s3, BUCKET, "s3").await, big);
    assert_eq!(super::get_bytes(&s3, BUCKET, "small").await, small);
    for (first, last) in [(0, 0), (65_530, 65_545), (100_000, 199_999), (131_071, 131_072)] {
        let got = get_range(&s3, "s3", Some(format!("bytes={first}-{last}")), None).await;
        assert_eq!(got, &big[first..=last], "range {first}-{last}");
    }
    let got = get_range(&s3, "small", Some("bytes=10-20".into()), None).await;
    assert_eq!(got, &small[10..=20]);
    let head = s3.head_object().bucket(BUCKET).key("s3").send().await.unwrap();
    assert_eq!(head.server_side_encryption(), Some(&ServerSideEncryption::Aes256));

    // SSE-KMS with a key of the cluster's; any other key is refused.
    let kms = body_with("KMS-PLAINTEXT-MARKER", 70_000);
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("kms")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("backup-key")
        .body(ByteStream::from(kms.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.ssekms_key_id(), Some("backup-key"));
    assert_eq!(super::get_bytes(&s3, BUCKET, "kms").await, kms);
    let refused = s3
        .put_object()
        .bucket(BUCKET)
        .key("kms2")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("not-ours")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&refused), 400);

    // SSE-C: the key on every request; without it, or with another, no byte.
    let (mine, theirs) = (customer_key(7), customer_key(8));
    let secret = body_with("CUSTOMER-PLAINTEXT-MARKER", 100_000);
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("c")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&mine.key)
        .sse_customer_key_md5(&mine.md5)
        .body(ByteStream::from(secret.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.sse_customer_key_md5(), Some(mine.md5.as_str()));
    // Its ETag is not the MD5 of its bytes (nor is an SSE-KMS one's): a
    // listing says nothing of what is encrypted.
    let md5 = format!("\"{:032x}\"", super::md5_digest(&secret));
    assert_ne!(put.e_tag(), Some(md5.as_str()));
    let listed = s3.list_objects_v2().bucket(BUCKET).prefix("c").send().await.unwrap();
    assert_eq!(listed.contents()[0].e_tag(), put.e_tag(), "the ETag is kept as answered");
    let kms_md5 = format!("\"{:032x}\"", super::md5_digest(&kms));
    let kms_listed = s3.list_objects_v2().bucket(BUCKET).prefix("kms").send().await.unwrap();
    assert_ne!(kms_listed.contents()[0].e_tag(), Some(kms_md5.as_str()));
    assert_eq!(get_range(&s3, "c", None, Some(&mine)).await, secret);
    assert_eq!(get_range(&s3, "c", Some("bytes=70000-70010".into()), Some(&mine)).await, &secret[70_000..=70_010]);
    let without = s3.get_object().bucket(BUCKET).key("c").send().await.unwrap_err();
    assert_eq!(status(&without), 400);
    let head = s3.head_object().bucket(BUCKET).key("c").send().await.unwrap_err();
    assert_eq!(status(&head), 400, "even the headers are the key holder's");
    let wrong = s3
        .get_object()
        .bucket(BUCKET)
        .key("c")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&theirs.key)
        .sse_customer_key_md5(&theirs.md5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&wrong), 400);
    let bad_md5 = s3
        .put_object()
        .bucket(BUCKET)
        .key("c2")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&mine.key)
        .sse_customer_key_md5(&theirs.md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(bad_md5.as_service_error().unwrap()), "InvalidArgument");
    // A copy of an SSE-C object needs its key as the copy source's.
    let copy = s3.copy_object().bucket(BUCKET).key("c-copy").copy_source(format!("{BUCKET}/c")).send().await;
    assert_eq!(status(&copy.unwrap_err()), 400);
    // With it, the copy is re-encrypted as asked: here under SSE-KMS.
    let copied = s3
        .copy_object()
        .bucket(BUCKET)
        .key("c-copy")
        .copy_source(format!("{BUCKET}/c"))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&mine.key)
        .copy_source_sse_customer_key_md5(&mine.md5)
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("other")
        .send()
        .await
        .unwrap();
    assert_eq!(copied.ssekms_key_id(), Some("other"));
    assert_eq!(super::get_bytes(&s3, BUCKET, "c-copy").await, secret);
    // And a plain object copied under a customer key needs that key after.
    s3.put_object().bucket(BUCKET).key("p").body(ByteStream::from_static(b"plain bytes")).send().await.unwrap();
    s3.copy_object()
        .bucket(BUCKET)
        .key("p-c")
        .copy_source(format!("{BUCKET}/p"))
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&theirs.key)
        .sse_customer_key_md5(&theirs.md5)
        .send()
        .await
        .unwrap();
    assert_eq!(get_range(&s3, "p-c", None, Some(&theirs)).await, b"plain bytes");
    assert_eq!(status(&s3.get_object().bucket(BUCKET).key("p-c").send().await.unwrap_err()), 400);
    // An SSE-S3 copy shares the chunks and stays encrypted.
    let copied = s3.copy_object().bucket(BUCKET).key("s3-copy").copy_source(format!("{BUCKET}/s3")).send().await;
    assert_eq!(copied.unwrap().server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    assert_eq!(super::get_bytes(&s3, BUCKET, "s3-copy").await, big);

    // Nothing of any of them rests in the clear, in chunks or in the metadata.
    for marker in
        ["SSE-S3-PLAINTEXT-MARKER", "INLINE-PLAINTEXT-MARKER", "KMS-PLAINTEXT-MARKER", "CUSTOMER-PLAINTEXT-MARKER"]
    {
        assert!(!found_on_disk(server.data_dir(), marker.as_bytes()), "{marker} found on disk");
    }
    // The checker sees what is not encrypted.
    s3.put_object()
        .bucket(BUCKET)
        .key("plain")
        .body(ByteStream::from(body_with("PLAIN-MARKER", 100_000)))
        .send()
        .await
        .unwrap();
    assert!(found_on_disk(server.data_dir(), b"PLAIN-MARKER"));
}

#[tokio::test]
async fn multipart_parts_are_encrypted_each_with_its_own_key_and_the_uploads_customer_key() {
    let server = Server::start_with(&["--chunk-size", "1048576"]);
    let s3 = server.client();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let c = customer_key(3);
    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&c.key)
        .sse_customer_key_md5(&c.md5)
        .send()
        .await
        .unwrap();
    let upload_id = created.upload_id().unwrap();
    let parts = [body_with("PART-ONE", 5 << 20), body_with("PART-TWO", 1_234_567)];
    let mut completed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let number = i as i32 + 1;
        let done = s3
            .upload_part()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(upload_id)
            .part_number(number)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(&c.key)
            .sse_customer_key_md5(&c.md5)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap();
        completed.push(CompletedPart::builder().part_number(number).e_tag(done.e_tag().unwrap()).build());
    }
    // A part under another key, or none, is refused.
    let other = customer_key(4);
    let refused = s3
        .upload_part()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload_id)
        .part_number(3)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&other.key)
        .sse_customer_key_md5(&other.md5)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&refused), 400);
    let refused = s3
        .upload_part()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload_id)
        .part_number(3)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&refused), 400);
    // Only the key's holder completes it.
    let complete = || {
        s3.complete_multipart_upload()
            .bucket(BUCKET)
            .key("mp")
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed.clone())).build())
    };
    assert_eq!(status(&complete().send().await.unwrap_err()), 400);
    complete()
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&c.key)
        .sse_customer_key_md5(&c.md5)
        .send()
        .await
        .unwrap();
    let whole: Vec<u8> = parts.concat();
    assert_eq!(get_range(&s3, "mp", None, Some(&c)).await, whole);
    let edge = 5 << 20;
    for (first, last) in [(edge - 10, edge + 10), (0, 99), (edge, whole.len() - 1)] {
        let got = get_range(&s3, "mp", Some(format!("bytes={first}-{last}")), Some(&c)).await;
        assert_eq!(got, &whole[first..=last], "range {first}-{last}");
    }
    // A part copied from it into an SSE-S3 upload is decrypted with the
    // source's key and encrypted anew.
    let upload = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp2")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap();
    let copied = s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("mp2")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .copy_source(format!("{BUCKET}/mp"))
        .copy_source_range(format!("bytes={}-{}", edge - 100, edge + 99))
        .copy_source_sse_customer_algorithm("AES256")
        .copy_source_sse_customer_key(&c.key)
        .copy_source_sse_customer_key_md5(&c.md5)
        .send()
        .await
        .unwrap();
    let part =
        CompletedPart::builder().part_number(1).e_tag(copied.copy_part_result().unwrap().e_tag().unwrap()).build();
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp2")
        .upload_id(upload.upload_id().unwrap())
        .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
        .send()
        .await
        .unwrap();
    assert_eq!(super::get_bytes(&s3, BUCKET, "mp2").await, &whole[edge - 100..edge + 100]);
    assert!(!found_on_disk(server.data_dir(), b"PART-ONE") && !found_on_disk(server.data_dir(), b"PART-TWO"));
}

#[tokio::test]
async fn a_buckets_default_encryption_applies_to_writes_that_ask_for_none() {
    let server = Server::start_with(&["--kms-keys", "k1"]);
    let s3 = server.client();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let missing = s3.get_bucket_encryption().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code(missing.as_service_error().unwrap()), "ServerSideEncryptionConfigurationNotFoundError");
    let config = |algorithm: ServerSideEncryption, key: Option<&str>| {
        let default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(algorithm)
            .set_kms_master_key_id(key.map(Into::into));
        ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default.build().unwrap())
                    .build(),
            )
            .build()
            .unwrap()
    };
    let unknown = s3
        .put_bucket_encryption()
        .bucket(BUCKET)
        .server_side_encryption_configuration(config(ServerSideEncryption::AwsKms, Some("k9")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&unknown), 400, "only the cluster's KMS keys");
    s3.put_bucket_encryption()
        .bucket(BUCKET)
        .server_side_encryption_configuration(config(ServerSideEncryption::AwsKms, Some("k1")))
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_encryption().bucket(BUCKET).send().await.unwrap();
    let rule = &got.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(rule.apply_server_side_encryption_by_default().unwrap().kms_master_key_id(), Some("k1"));
    let put = s3.put_object().bucket(BUCKET).key("k").body(ByteStream::from_static(b"default")).send().await.unwrap();
    assert_eq!(put.server_side_encryption(), Some(&ServerSideEncryption::AwsKms));
    assert_eq!(super::get_bytes(&s3, BUCKET, "k").await, b"default");
    // A write's own choice wins over the default.
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("own")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"own"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.server_side_encryption(), Some(&ServerSideEncryption::Aes256));
    s3.delete_bucket_encryption().bucket(BUCKET).send().await.unwrap();
    let put = s3.put_object().bucket(BUCKET).key("after").body(ByteStream::from_static(b"x")).send().await.unwrap();
    assert_eq!(put.server_side_encryption(), None);
    // Objects written under the default stay readable without it.
    assert_eq!(super::get_bytes(&s3, BUCKET, "k").await, b"default");
}
