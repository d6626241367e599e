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
