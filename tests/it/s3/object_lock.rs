//! Object Lock as a backup tool relies on it: versions written under
//! COMPLIANCE retention survive every way root has to destroy them, and
//! GOVERNANCE gives way to its bypass only.

use std::time::Duration;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, DefaultRetention, Delete, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectIdentifier,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};

use super::code;
use crate::common::*;

const BUCKET: &str = "backups";

fn in_days(days: i64) -> DateTime {
    DateTime::from_millis(jadfs_common::now_ms() + days * 86_400_000)
}

/// Every version of the bucket: (key, version id), as listed.
async fn all_versions(s3: &aws_sdk_s3::Client) -> Vec<(String, String)> {
    let page = s3.list_object_versions().bucket(BUCKET).send().await.unwrap();
    page.versions().iter().map(|v| (v.key().unwrap().to_string(), v.version_id().unwrap().to_string())).collect()
}

#[tokio::test]
async fn locked_versions_survive_every_way_root_has_to_destroy_them() {
    let server = Server::start_with(&["--lifecycle-day", "1s", "--gc-grace", "1s", "--inline-max", "0"]);
    let s3 = server.client();
    // Without Object Lock, a write asking for it is refused before any byte is kept.
    s3.create_bucket().bucket("plain").send().await.unwrap();
    let refused = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_days(1))
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "InvalidRequest");

    s3.create_bucket().bucket(BUCKET).object_lock_enabled_for_bucket(true).send().await.unwrap();
    let versioning = s3.get_bucket_versioning().bucket(BUCKET).send().await.unwrap();
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled), "Object Lock turns versioning on");
    let suspend = VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build();
    let refused = s3.put_bucket_versioning().bucket(BUCKET).versioning_configuration(suspend).send().await;
    assert_eq!(code(&refused.unwrap_err()), "InvalidBucketState");

    // Every backup written is kept 30 days under COMPLIANCE, by default.
    let default = DefaultRetention::builder().mode(ObjectLockRetentionMode::Compliance).days(30).build();
    let config = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(ObjectLockRule::builder().default_retention(default).build())
        .build();
    s3.put_object_lock_configuration().bucket(BUCKET).object_lock_configuration(config).send().await.unwrap();
    let kept = s3.get_object_lock_configuration().bucket(BUCKET).send().await.unwrap();
    let rule = kept.object_lock_configuration().and_then(|c| c.rule()).and_then(|r| r.default_retention());
    assert_eq!(rule.and_then(|r| r.days()), Some(30));

    let mut written = Vec::new();
    for (i, key) in ["snap/1", "snap/1", "snap/2"].into_iter().enumerate() {
        let bytes = random_bytes(200_000, i as u64);
        let put = s3.put_object().bucket(BUCKET).key(key).body(ByteStream::from(bytes.clone())).send().await.unwrap();
        written.push((key.to_string(), put.version_id().unwrap().to_string(), bytes));
    }
    let head = s3.head_object().bucket(BUCKET).key("snap/2").send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert!(head.object_lock_retain_until_date().is_some_and(|d| d.secs() > in_days(29).secs()));

    // Root tries everything.
    let (key, id, _) = &written[0];
    let delete = s3.delete_object().bucket(BUCKET).key(key).version_id(id).send().await.unwrap_err();
    assert_eq!(code(&delete), "AccessDenied");
    let bypass = s3.delete_object().bucket(BUCKET).key(key).version_id(id).bypass_governance_retention(true).send();
    assert_eq!(code(&bypass.await.unwrap_err()), "AccessDenied", "compliance has no bypass");
    let shorter =
        ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Compliance).retain_until_date(in_days(1)).build();
    let shorten = s3.put_object_retention().bucket(BUCKET).key(key).version_id(id).retention(shorter).send();
    assert_eq!(code(&shorten.await.unwrap_err()), "AccessDenied");
    let governance =
        ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Governance).retain_until_date(in_days(60)).build();
    let weaker = s3.put_object_retention().bucket(BUCKET).key(key).version_id(id).retention(governance);
    assert_eq!(code(&weaker.bypass_governance_retention(true).send().await.unwrap_err()), "AccessDenied");
    let longer =
        ObjectLockRetention::builder().mode(ObjectLockRetentionMode::Compliance).retain_until_date(in_days(90)).build();
    s3.put_object_retention().bucket(BUCKET).key(key).version_id(id).retention(longer).send().await.unwrap();
    // A DELETE without a version, a DeleteObjects of every version, an
    // overwrite, `jadfs admin bucket empty`: markers and new versions at
    // most, never a version gone.
    s3.delete_object().bucket(BUCKET).key("snap/2").send().await.unwrap();
    let mut batch = Delete::builder();
    for (key, id, _) in &written {
        batch = batch.objects(ObjectIdentifier::builder().key(key).version_id(id).build().unwrap());
    }
    let deleted = s3.delete_objects().bucket(BUCKET).bypass_governance_retention(true).delete(batch.build().unwrap());
    let deleted = deleted.send().await.unwrap();
    assert_eq!(deleted.errors().len(), 3, "{deleted:?}");
    assert!(deleted.errors().iter().all(|e| e.code() == Some("AccessDenied")));
    s3.put_object().bucket(BUCKET).key("snap/1").body(ByteStream::from_static(b"ransom")).send().await.unwrap();
    server.admin(&["bucket", "empty", BUCKET, "--yes"]);
    // A lifecycle rule that would expire everything, noncurrent versions too.
    let rule = LifecycleRule::builder()
        .id("wipe")
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(1).build())
        .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
        .build()
        .unwrap();
    let rules = BucketLifecycleConfiguration::builder().rules(rule).build().unwrap();
    s3.put_bucket_lifecycle_configuration().bucket(BUCKET).lifecycle_configuration(rules).send().await.unwrap();
    wait_until("a lifecycle round over the bucket", Duration::from_secs(30), || async {
        let runs = &server.stats().await["meta"]["lifecycle"];
        runs.as_array().is_some_and(|runs| runs.iter().any(|r| r["bucket"] == BUCKET && r["finished_ms"].is_i64()))
    })
    .await;
    // Deleting the bucket, and the owner's key.
    assert_eq!(code(&s3.delete_bucket().bucket(BUCKET).send().await.unwrap_err()), "BucketNotEmpty");
    let (access_key, secret) = server.create_key("owner");
    let owner = client_for(&server.endpoint, &access_key, &secret);
    owner.create_bucket().bucket("owned").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let locked = owner
        .put_object()
        .bucket("owned")
        .key("k")
        .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .unwrap();
    server.admin(&["key", "delete", &access_key]);
    let held = s3.get_object_legal_hold().bucket("owned").key("k").send().await.unwrap();
    assert_eq!(held.legal_hold().and_then(|h| h.status()), Some(&ObjectLockLegalHoldStatus::On));
    let refused = s3.delete_object().bucket("owned").key("k").version_id(locked.version_id().unwrap()).send().await;
    assert_eq!(code(&refused.unwrap_err()), "AccessDenied", "a legal hold keeps it whatever the retention");

    // Every version written is intact.
    let listed = all_versions(&s3).await;
    for (key, id, bytes) in &written {
        assert!(listed.contains(&(key.clone(), id.clone())), "{key} {id} listed");
        let got = s3.get_object().bucket(BUCKET).key(key).version_id(id).send().await.unwrap();
        assert_eq!(&got.body.collect().await.unwrap().into_bytes()[..], &bytes[..], "{key} {id} intact");
    }
}

#[tokio::test]
async fn governance_gives_way_to_its_bypass_and_only_for_the_owner() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket(BUCKET).object_lock_enabled_for_bucket(true).send().await.unwrap();
    let put = s3
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_days(10))
        .content_md5("XUFAKrxLKna5cZ2REBfFkg==")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let id = put.version_id().unwrap().to_string();
    let retention = s3.get_object_retention().bucket(BUCKET).key("k").version_id(&id).send().await.unwrap();
    assert_eq!(retention.retention().and_then(|r| r.mode()), Some(&ObjectLockRetentionMode::Governance));
    // A key allowed to write, not to own, cannot bypass.
    let (access_key, secret) = server.create_key("writer");
    server.admin(&["bucket", "allow", BUCKET, &access_key, "--permission", "write"]);
    let writer = client_for(&server.endpoint, &access_key, &secret);
    let denied = writer.delete_object().bucket(BUCKET).key("k").version_id(&id).bypass_governance_retention(true);
    assert_eq!(code(&denied.send().await.unwrap_err()), "AccessDenied");
    let plain = s3.delete_object().bucket(BUCKET).key("k").version_id(&id).send().await;
    assert_eq!(code(&plain.unwrap_err()), "AccessDenied", "no bypass asked");
    // A legal hold holds even against the bypass.
    let on = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::On).build();
    s3.put_object_legal_hold().bucket(BUCKET).key("k").version_id(&id).legal_hold(on).send().await.unwrap();
    let held = s3.delete_object().bucket(BUCKET).key("k").version_id(&id).bypass_governance_retention(true).send();
    assert_eq!(code(&held.await.unwrap_err()), "AccessDenied");
    let off = ObjectLockLegalHold::builder().status(ObjectLockLegalHoldStatus::Off).build();
    s3.put_object_legal_hold().bucket(BUCKET).key("k").version_id(&id).legal_hold(off).send().await.unwrap();
    // The owner, asking: the version goes.
    s3.delete_object().bucket(BUCKET).key("k").version_id(&id).bypass_governance_retention(true).send().await.unwrap();
    assert!(all_versions(&s3).await.is_empty());
}
