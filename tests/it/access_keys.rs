//! Several access keys, made with the real `jadfs admin` CLI: a bucket
//! belongs to the key that created it, other keys get AccessDenied until
//! they are granted read, write or owner.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use crate::common::*;

#[tokio::test]
async fn buckets_belong_to_their_creator_until_access_is_granted() {
    let server = Server::start();
    let created = server.admin(&["key", "create", "--name", "alice"]);
    let alice_key = created.lines().find_map(|l| l.strip_prefix("access key: ")).unwrap().to_string();
    let alice_secret = created.lines().find_map(|l| l.strip_prefix("secret key: ")).unwrap().to_string();
    server.admin(&["key", "create", "--name", "bob", "--id", "BOBKEY0000000000000X", "--secret", "bob-secret-0001"]);
    let listed = server.admin(&["key", "list"]);
    assert!(listed.contains(&alice_key) && listed.contains("BOBKEY0000000000000X") && listed.contains("alice"));
    assert!(!listed.contains(&alice_secret), "secrets are never listed");

    let alice = client_for(&server.endpoint, &alice_key, &alice_secret);
    let bob = client_for(&server.endpoint, "BOBKEY0000000000000X", "bob-secret-0001");
    alice.create_bucket().bucket("alices").send().await.unwrap();
    alice.put_object().bucket("alices").key("diary").body(ByteStream::from_static(b"dear diary")).send().await.unwrap();

    let denied = bob.get_object().bucket("alices").key("diary").send().await.unwrap_err();
    assert_eq!(denied.code(), Some("AccessDenied"));
    assert_eq!(denied.raw_response().unwrap().status().as_u16(), 403);
    assert_eq!(bob.list_objects_v2().bucket("alices").send().await.unwrap_err().code(), Some("AccessDenied"));
    let bob_buckets = bob.list_buckets().send().await.unwrap();
    assert!(bob_buckets.buckets().is_empty(), "bob sees no bucket of alice's");
    let root_buckets = server.client().list_buckets().send().await.unwrap();
    assert_eq!(root_buckets.buckets().len(), 1, "root sees every bucket");

    server.admin(&["bucket", "allow", "alices", "BOBKEY0000000000000X", "--permission", "read"]);
    let got = bob.get_object().bucket("alices").key("diary").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), b"dear diary");
    let write = bob.put_object().bucket("alices").key("graffiti").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(write.unwrap_err().code(), Some("AccessDenied"));
    assert_eq!(bob.delete_bucket().bucket("alices").send().await.unwrap_err().code(), Some("AccessDenied"));

    server.admin(&["bucket", "allow", "alices", "BOBKEY0000000000000X", "--permission", "write"]);
    bob.put_object().bucket("alices").key("note").body(ByteStream::from_static(b"from bob")).send().await.unwrap();
    assert_eq!(bob.delete_bucket().bucket("alices").send().await.unwrap_err().code(), Some("AccessDenied"));

    server.admin(&["bucket", "deny", "alices", "BOBKEY0000000000000X"]);
    assert_eq!(bob.get_object().bucket("alices").key("note").send().await.unwrap_err().code(), Some("AccessDenied"));

    // Only root keys may administer.
    let url = format!("{}/-/admin/keys", server.endpoint);
    let response = signed(reqwest::Method::GET, &url, &[], Vec::new(), "BOBKEY0000000000000X", "bob-secret-0001").await;
    assert_eq!(response.status(), 403);

    server.admin(&["key", "delete", &alice_key]);
    let gone = alice.list_buckets().send().await.unwrap_err();
    assert_eq!(gone.code(), Some("InvalidAccessKeyId"));
}

/// `jadfs admin bucket empty`: counts first, then deletes every key under
/// the prefix (more than one page and one DeleteObjects batch, keys that
/// need escaping in XML and URLs) and nothing else.
#[tokio::test]
async fn admin_bucket_empty_deletes_only_the_keys_under_its_prefix() {
    use futures_util::StreamExt;
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bulk").send().await.unwrap();
    let mut keys: Vec<String> = (0..1100).map(|i| format!("drop/{i:05}")).collect();
    keys.extend(["drop/a&b <c>", "drop/x y+z", "drop/é/ü?", "keep/1", "keep/2", "dropped-not/3"].map(String::from));
    futures_util::stream::iter(keys.iter())
        .map(|key| s3.put_object().bucket("bulk").key(key).body(ByteStream::from_static(b"x")).send())
        .buffer_unordered(32)
        .for_each(|put| async move {
            put.unwrap();
        })
        .await;

    let counted = server.admin(&["bucket", "empty", "bulk", "--prefix", "drop/"]);
    assert!(counted.contains("1103 objects under bulk/drop/ would be deleted"), "{counted}");
    let listed = |prefix: &'static str| {
        let s3 = s3.clone();
        async move {
            let pages = s3.list_objects_v2().bucket("bulk").prefix(prefix).into_paginator().send();
            let pages: Vec<_> = pages.collect().await;
            pages.into_iter().map(|p| p.unwrap().key_count().unwrap_or(0)).sum::<i32>()
        }
    };
    assert_eq!(listed("drop/").await, 1103, "counting deletes nothing");

    let emptied = server.admin(&["bucket", "empty", "bulk", "--prefix", "drop/", "--yes"]);
    assert!(emptied.contains("deleted 1103 of 1103 objects under bulk/drop/"), "{emptied}");
    assert_eq!(listed("drop/").await, 0);
    assert_eq!(listed("").await, 3, "keep/1, keep/2 and dropped-not/3 are left");
    let emptied = server.admin(&["bucket", "empty", "bulk", "--yes"]);
    assert!(emptied.contains("deleted 3 of 3 objects under bulk/"), "{emptied}");
    s3.delete_bucket().bucket("bulk").send().await.expect("the bucket is empty");
}
