//! Bucket versioning through aws-sdk-s3: every operation a backup tool
//! uses on a versioned bucket, what each version reads back, delete markers,
//! the null version under suspension, and the space of versions deleted
//! for good coming back.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, Tag, Tagging,
    VersioningConfiguration,
};

use super::{code, status};
use crate::common::*;

const BUCKET: &str = "versions";

async fn set_versioning(s3: &aws_sdk_s3::Client, status: BucketVersioningStatus) {
    let configuration = VersioningConfiguration::builder().status(status).build();
    s3.put_bucket_versioning().bucket(BUCKET).versioning_configuration(configuration).send().await.unwrap();
}

/// Puts `bytes` at `key`; the version id it answers.
async fn put(s3: &aws_sdk_s3::Client, key: &str, bytes: &[u8]) -> Option<String> {
    let out = s3.put_object().bucket(BUCKET).key(key).body(ByteStream::from(bytes.to_vec())).send().await.unwrap();
    out.version_id().map(str::to_string)
}

/// The bytes of a version (None: the current one) and the version id the read named.
async fn get(s3: &aws_sdk_s3::Client, key: &str, version: Option<&str>) -> (Vec<u8>, Option<String>) {
    let out = s3.get_object().bucket(BUCKET).key(key).set_version_id(version.map(Into::into)).send().await;
    let out = out.unwrap_or_else(|e| panic!("get {key} {version:?}: {e:?}"));
    let id = out.version_id().map(str::to_string);
    (out.body.collect().await.unwrap().into_bytes().to_vec(), id)
}

/// Every (key, version id, is latest, is a delete marker), paged `max_keys`
/// at a time. The SDK keeps a page's versions and delete markers apart:
/// pages of one entry keep the listing's order whole.
async fn versions(s3: &aws_sdk_s3::Client, max_keys: i32) -> Vec<(String, String, bool, bool)> {
    let mut all = Vec::new();
    let (mut key_marker, mut version_marker) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(BUCKET)
            .max_keys(max_keys)
            .set_key_marker(key_marker)
            .set_version_id_marker(version_marker)
            .send()
            .await
            .unwrap();
        let mut entries: Vec<(String, String, bool, bool)> = page
            .versions()
            .iter()
            .map(|v| (v.key().unwrap().into(), v.version_id().unwrap().into(), v.is_latest().unwrap(), false))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key().unwrap().into(), m.version_id().unwrap().into(), m.is_latest().unwrap(), true)),
            )
            .collect();
        assert!(entries.len() <= max_keys as usize);
        all.append(&mut entries);
        if !page.is_truncated().unwrap_or(false) {
            return all;
        }
        key_marker = page.next_key_marker().map(Into::into);
        version_marker = page.next_version_id_marker().map(Into::into);
    }
}

#[tokio::test]
async fn versions_are_kept_read_listed_and_deleted_as_s3_does() {
    let server = Server::start_with(&["--chunk-size", "65536", "--inline-max", "0", "--gc-grace", "1s"]);
    let s3 = server.client();
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let status_now = s3.get_bucket_versioning().bucket(BUCKET).send().await.unwrap();
    assert_eq!(status_now.status(), None, "never turned on");
    let (v0, v1, v2) = (random_bytes(100_000, 0), random_bytes(150_000, 1), random_bytes(70_000, 2));
    assert_eq!(put(&s3, "k", &v0).await, None, "no version id without versioning");

    // Enabled: each write is a version of its own; the first one is `null`.
    set_versioning(&s3, BucketVersioningStatus::Enabled).await;
    let status_now = s3.get_bucket_versioning().bucket(BUCKET).send().await.unwrap();
    assert_eq!(status_now.status(), Some(&BucketVersioningStatus::Enabled));
    let id1 = put(&s3, "k", &v1).await.expect("a version id");
    let id2 = put(&s3, "k", &v2).await.expect("a version id");
    assert_ne!(id1, id2);
    assert_eq!(get(&s3, "k", None).await, (v2.clone(), Some(id2.clone())));
    assert_eq!(get(&s3, "k", Some(&id1)).await, (v1.clone(), Some(id1.clone())));
    assert_eq!(get(&s3, "k", Some("null")).await, (v0.clone(), Some("null".into())));
    let head = s3.head_object().bucket(BUCKET).key("k").version_id(&id1).send().await.unwrap();
    assert_eq!((head.content_length(), head.version_id()), (Some(150_000), Some(id1.as_str())));
    let missing = s3.get_object().bucket(BUCKET).key("k").version_id("00000000000000aa").send().await.unwrap_err();
    assert_eq!(code(&missing), "NoSuchVersion");
    assert_eq!(
        versions(&s3, 1000).await,
        [
            ("k".into(), id2.clone(), true, false),
            ("k".into(), id1.clone(), false, false),
            ("k".into(), "null".into(), false, false)
        ]
    );

    // A DELETE without a version puts a delete marker in front: the key is
    // gone for reads and listings, every version is still there.
    let deleted = s3.delete_object().bucket(BUCKET).key("k").send().await.unwrap();
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().expect("the marker's id").to_string();
    let gone = s3.get_object().bucket(BUCKET).key("k").send().await.unwrap_err();
    assert_eq!((code(&gone), status(&gone)), ("NoSuchKey".into(), 404));
    let on_marker = s3.head_object().bucket(BUCKET).key("k").version_id(&marker).send().await.unwrap_err();
    assert_eq!(status(&on_marker), 405, "a delete marker named has no bytes to read");
    assert!(super::list_keys(&s3, BUCKET).await.is_empty());
    assert_eq!(versions(&s3, 1).await[0], ("k".into(), marker.clone(), true, true));
    assert_eq!(get(&s3, "k", Some(&id1)).await.0, v1, "an old version still reads");

    // Copy and tag a version that is not the current one.
    let copy = s3.copy_object().bucket(BUCKET).key("copy").copy_source(format!("{BUCKET}/k?versionId={id1}")).send();
    let copy = copy.await.unwrap();
    assert_eq!(copy.copy_source_version_id(), Some(id1.as_str()));
    assert!(copy.version_id().is_some());
    assert_eq!(get(&s3, "copy", None).await.0, v1);
    let tagging = Tagging::builder().tag_set(Tag::builder().key("old").value("yes").build().unwrap()).build().unwrap();
    s3.put_object_tagging().bucket(BUCKET).key("k").version_id(&id1).tagging(tagging).send().await.unwrap();
    let tags = s3.get_object_tagging().bucket(BUCKET).key("k").version_id(&id1).send().await.unwrap();
    assert_eq!(tags.tag_set().len(), 1);
    let tags = s3.get_object_tagging().bucket(BUCKET).key("k").version_id(&id2).send().await.unwrap();
    assert!(tags.tag_set().is_empty(), "only that version was tagged");

    // Deleting the marker for good brings the newest version back.
    let undone = s3.delete_object().bucket(BUCKET).key("k").version_id(&marker).send().await.unwrap();
    assert_eq!((undone.delete_marker(), undone.version_id()), (Some(true), Some(marker.as_str())));
    assert_eq!(get(&s3, "k", None).await, (v2.clone(), Some(id2.clone())));

    // A multipart upload makes a version too.
    let upload = s3.create_multipart_upload().bucket(BUCKET).key("mp").send().await.unwrap();
    let part = s3
        .upload_part()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from(v2.clone()))
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    let done = s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .upload_id(upload.upload_id().unwrap())
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    let mp_version = done.version_id().expect("a version id").to_string();

    // Suspended: a write is the null version, and replaces the null one.
    set_versioning(&s3, BucketVersioningStatus::Suspended).await;
    let v3 = random_bytes(90_000, 3);
    assert_eq!(put(&s3, "k", &v3).await, None, "AWS names no version for a suspended bucket's write");
    assert_eq!(get(&s3, "k", Some("null")).await.0, v3, "the old null version was replaced");
    let listed = versions(&s3, 1).await;
    let of_k: Vec<(String, bool)> = listed.iter().filter(|v| v.0 == "k").map(|v| (v.1.clone(), v.2)).collect();
    assert_eq!(of_k, [("null".into(), true), (id2.clone(), false), (id1.clone(), false)]);
    assert_eq!(listed.len(), 5, "k's three, copy's and mp's: {listed:?}");

    // A bucket with versions left is not empty; deleting every version empties it.
    let refused = s3.delete_bucket().bucket(BUCKET).send().await.unwrap_err();
    assert_eq!(code(&refused), "BucketNotEmpty");
    let mut batch = Delete::builder();
    for (key, id, _, _) in &listed {
        batch = batch.objects(ObjectIdentifier::builder().key(key).version_id(id).build().unwrap());
    }
    let deleted = s3.delete_objects().bucket(BUCKET).delete(batch.build().unwrap()).send().await.unwrap();
    assert_eq!(deleted.deleted().len(), 5, "{deleted:?}");
    assert!(deleted.deleted().iter().any(|d| d.version_id() == Some(mp_version.as_str())));
    assert!(versions(&s3, 1000).await.is_empty());
    wait_until("the space of every version collected", Duration::from_secs(30), || async {
        let stats = server.stats().await;
        stats["meta"]["chunks"] == 0 && stats["meta"]["orphaned_chunks"] == 0
    })
    .await;
    s3.delete_bucket().bucket(BUCKET).send().await.unwrap();
}

/// Conditional deletes (`If-Match`, `x-amz-if-match-size`), checked where
/// the delete applies: the wrong object is never deleted, a missing one is
/// gone all the same.
#[tokio::test]
async fn a_conditional_delete_takes_only_the_object_it_names() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("cond").send().await.unwrap();
    let put = s3.put_object().bucket("cond").key("k").body(ByteStream::from_static(b"hello")).send().await.unwrap();
    let etag = put.e_tag().unwrap().to_string();
    let delete = || s3.delete_object().bucket("cond").key("k");
    let wrong = delete().if_match("\"0123\"").send().await.unwrap_err();
    assert_eq!((code(&wrong), status(&wrong)), ("PreconditionFailed".into(), 412));
    let wrong_size = delete().if_match_size(6).send().await.unwrap_err();
    assert_eq!(code(&wrong_size), "PreconditionFailed");
    assert!(s3.head_object().bucket("cond").key("k").send().await.is_ok(), "still there");
    delete().if_match(&etag).if_match_size(5).send().await.unwrap();
    assert!(s3.head_object().bucket("cond").key("k").send().await.is_err(), "deleted");
    delete().if_match(&etag).send().await.expect("a missing object is gone all the same");
}
