//! Bucket lifecycle through aws-sdk-s3, with a lifecycle "day" of one
//! second (`--lifecycle-day 1s`): the configuration is kept and answered,
//! the leader's worker expires what the rules name (prefix, tags) and aborts
//! old uploads, leaves everything else, and the space comes back.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleAndOperator, LifecycleRuleFilter, Tag,
};

use super::code;
use crate::common::*;

fn rule(id: &str, filter: LifecycleRuleFilter) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder().id(id).filter(filter).status(ExpirationStatus::Enabled)
}

fn expire_after(days: i32) -> LifecycleExpiration {
    LifecycleExpiration::builder().days(days).build()
}

fn configuration() -> BucketLifecycleConfiguration {
    let tagged = LifecycleRuleAndOperator::builder()
        .prefix("tmp/")
        .tags(Tag::builder().key("temporary").value("yes").build().unwrap())
        .build();
    BucketLifecycleConfiguration::builder()
        .rules(
            rule("logs", LifecycleRuleFilter::builder().prefix("logs/").build())
                .expiration(expire_after(3))
                .build()
                .unwrap(),
        )
        .rules(
            rule("tagged", LifecycleRuleFilter::builder().and(tagged).build())
                .expiration(expire_after(1))
                .build()
                .unwrap(),
        )
        .rules(
            rule("uploads", LifecycleRuleFilter::builder().prefix("").build())
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder().days_after_initiation(2).build(),
                )
                .build()
                .unwrap(),
        )
        .rules(
            rule("off", LifecycleRuleFilter::builder().prefix("").build())
                .status(ExpirationStatus::Disabled)
                .expiration(expire_after(1))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

async fn exists(s3: &aws_sdk_s3::Client, key: &str) -> bool {
    s3.head_object().bucket("lc-test").key(key).send().await.is_ok()
}

#[tokio::test]
async fn rules_expire_what_they_name_abort_old_uploads_and_free_the_space() {
    let server = Server::start_with(&["--lifecycle-day", "1s", "--gc-grace", "1s", "--chunk-size", "1048576"]);
    let s3 = server.client();
    s3.create_bucket().bucket("lc-test").send().await.unwrap();
    let none = s3.get_bucket_lifecycle_configuration().bucket("lc-test").send().await.unwrap_err();
    assert_eq!(code(&none), "NoSuchLifecycleConfiguration");

    // Objects in chunks (3 MiB each), so that their space shows.
    let put = |key: &'static str, tagging: Option<&'static str>| {
        let s3 = s3.clone();
        async move {
            let seed = key.bytes().fold(7u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
            let bytes = random_bytes(3 << 20, seed);
            let mut request = s3.put_object().bucket("lc-test").key(key).body(ByteStream::from(bytes));
            if let Some(tagging) = tagging {
                request = request.tagging(tagging);
            }
            request.send().await.unwrap();
        }
    };
    put("logs/1", None).await;
    put("keep/1", None).await;
    put("tmp/tagged", Some("temporary=yes")).await;
    put("tmp/untagged", Some("temporary=no")).await;
    let upload = s3.create_multipart_upload().bucket("lc-test").key("big").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();
    s3.upload_part()
        .bucket("lc-test")
        .key("big")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(random_bytes(5 << 20, 8)))
        .send()
        .await
        .unwrap();

    s3.put_bucket_lifecycle_configuration()
        .bucket("lc-test")
        .lifecycle_configuration(configuration())
        .send()
        .await
        .unwrap();
    let kept = s3.get_bucket_lifecycle_configuration().bucket("lc-test").send().await.unwrap();
    let ids: Vec<&str> = kept.rules().iter().filter_map(|r| r.id()).collect();
    assert_eq!(ids, ["logs", "tagged", "uploads", "off"]);
    assert_eq!(kept.rules()[0].expiration().and_then(|e| e.days()), Some(3));
    assert_eq!(kept.rules()[3].status(), &ExpirationStatus::Disabled);
    // PUT and HEAD name the rule (the date is in real days, as S3 tells it).
    let put = s3.put_object().bucket("lc-test").key("logs/2").body(ByteStream::from_static(b"x")).send().await.unwrap();
    assert!(put.expiration().is_some_and(|e| e.contains("rule-id=\"logs\"")), "{:?}", put.expiration());
    let head = s3.head_object().bucket("lc-test").key("logs/1").send().await.unwrap();
    assert!(head.expiration().is_some_and(|e| e.contains("rule-id=\"logs\"")), "{:?}", head.expiration());
    let head = s3.head_object().bucket("lc-test").key("keep/1").send().await.unwrap();
    assert_eq!(head.expiration(), None);

    let deadline = Duration::from_secs(30);
    wait_until("the tagged object expired", deadline, || async { !exists(&s3, "tmp/tagged").await }).await;
    wait_until("logs/ expired", deadline, || async { !exists(&s3, "logs/1").await && !exists(&s3, "logs/2").await })
        .await;
    wait_until("the upload aborted", deadline, || async {
        s3.list_multipart_uploads().bucket("lc-test").send().await.unwrap().uploads().is_empty()
    })
    .await;
    assert!(exists(&s3, "keep/1").await, "no enabled rule names keep/");
    assert!(exists(&s3, "tmp/untagged").await, "its tag does not match");
    // Two objects of 3 chunks are left; what the others used is collected.
    wait_until("the space of what expired collected", deadline, || async {
        let stats = server.stats().await;
        stats["meta"]["chunks"] == 6 && stats["meta"]["orphaned_chunks"] == 0
    })
    .await;
    // Each round shows in `jadfs admin status`: one step judges the two
    // objects left, and ends the round.
    let runs = &server.stats().await["meta"]["lifecycle"];
    assert_eq!(runs[0]["bucket"], "lc-test", "{runs}");
    assert_eq!(runs[0]["judged"], 2, "{runs}");
    assert!(runs[0]["finished_ms"].is_i64(), "{runs}");
    let status = server.admin(&["status"]);
    assert!(status.contains("lifecycle rounds:") && status.contains("lc-test"), "{status}");

    s3.delete_bucket_lifecycle().bucket("lc-test").send().await.unwrap();
    let gone = s3.get_bucket_lifecycle_configuration().bucket("lc-test").send().await.unwrap_err();
    assert_eq!(code(&gone), "NoSuchLifecycleConfiguration");
}

/// What S3 refuses: no integrity header, a transition (one storage class
/// here), a non-owner.
#[tokio::test]
async fn a_lifecycle_configuration_is_refused_as_s3_refuses_it() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("lc-test").send().await.unwrap();
    let body = b"<LifecycleConfiguration><Rule><ID>a</ID><Filter><Prefix>x</Prefix></Filter><Status>Enabled</Status>\
<Expiration><Days>1</Days></Expiration></Rule></LifecycleConfiguration>"
        .to_vec();
    let url = format!("{}/lc-test?lifecycle", server.endpoint);
    let unchecked = signed(reqwest::Method::PUT, &url, &[], body.clone(), ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(unchecked.status(), 400);
    assert!(unchecked.text().await.unwrap().contains("Content-MD5"));
    let md5 =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, super::md5_digest(&body).to_be_bytes());
    let checked = signed(reqwest::Method::PUT, &url, &[("content-md5", &md5)], body, ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(checked.status(), 200);

    let transition = b"<LifecycleConfiguration><Rule><ID>t</ID><Filter/><Status>Enabled</Status>\
<Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition></Rule></LifecycleConfiguration>"
        .to_vec();
    let md5 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        super::md5_digest(&transition).to_be_bytes(),
    );
    let refused =
        signed(reqwest::Method::PUT, &url, &[("content-md5", &md5)], transition, ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("InvalidStorageClass"));

    let (key, secret) = server.create_key("reader");
    server.admin(&["bucket", "allow", "lc-test", &key, "--permission", "write"]);
    let writer = client_for(&server.endpoint, &key, &secret);
    let denied = writer.delete_bucket_lifecycle().bucket("lc-test").send().await.unwrap_err();
    assert_eq!(code(&denied), "AccessDenied");
    assert!(s3.get_bucket_lifecycle_configuration().bucket("lc-test").send().await.is_ok(), "still there");
}

/// A versioned bucket: the current object expires behind a delete marker,
/// noncurrent versions past their days are deleted for good (the newest one
/// kept by NewerNoncurrentVersions), the lone delete marker left goes, and
/// the space of every version deleted comes back.
#[tokio::test]
async fn noncurrent_versions_and_lone_markers_expire_and_their_space_comes_back() {
    use aws_sdk_s3::types::{BucketVersioningStatus, NoncurrentVersionExpiration, VersioningConfiguration};
    let server = Server::start_with(&["--lifecycle-day", "1s", "--gc-grace", "1s", "--chunk-size", "1048576"]);
    let s3 = server.client();
    s3.create_bucket().bucket("lc-versions").send().await.unwrap();
    let enabled = VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build();
    s3.put_bucket_versioning().bucket("lc-versions").versioning_configuration(enabled).send().await.unwrap();
    // Three versions of db/k (2 MiB each, 2 chunks); one of gone/k, then deleted.
    for (i, key) in ["db/k", "db/k", "db/k", "gone/k"].into_iter().enumerate() {
        let body = ByteStream::from(random_bytes(2 << 20, 40 + i as u64));
        s3.put_object().bucket("lc-versions").key(key).body(body).send().await.unwrap();
    }
    s3.delete_object().bucket("lc-versions").key("gone/k").send().await.unwrap();
    let rules = BucketLifecycleConfiguration::builder()
        .rules(
            rule("old", LifecycleRuleFilter::builder().prefix("").build())
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder().noncurrent_days(1).newer_noncurrent_versions(1).build(),
                )
                .build()
                .unwrap(),
        )
        .rules(
            rule("markers", LifecycleRuleFilter::builder().prefix("gone/").build())
                .expiration(LifecycleExpiration::builder().expired_object_delete_marker(true).build())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s3.put_bucket_lifecycle_configuration().bucket("lc-versions").lifecycle_configuration(rules).send().await.unwrap();
    let versions = || async {
        let page = s3.list_object_versions().bucket("lc-versions").send().await.unwrap();
        (page.versions().len(), page.delete_markers().len())
    };
    // gone/k's version is its newest noncurrent one: kept, so its marker stays.
    // db/k keeps its current version and its newest noncurrent one.
    wait_until("db/k's oldest version expired", Duration::from_secs(30), || async { versions().await == (3, 1) }).await;
    // Four versions of 2 chunks were written, one is gone: 6 chunks are left.
    wait_until("its space collected", Duration::from_secs(30), || async {
        let stats = server.stats().await;
        stats["meta"]["chunks"] == 6 && stats["meta"]["orphaned_chunks"] == 0
    })
    .await;
    let kept = s3.get_object().bucket("lc-versions").key("db/k").send().await.unwrap();
    let bytes = kept.body.collect().await.unwrap().into_bytes();
    assert_eq!(&bytes[..], &random_bytes(2 << 20, 42)[..], "the current version is untouched");
}
