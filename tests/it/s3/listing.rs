//! Listings: prefixes, delimiters, markers and paging.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::common::*;

#[tokio::test]
async fn listing_pages_with_prefixes_delimiters_and_markers() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("list").send().await.unwrap();
    let keys = ["a.txt", "docs/1.md", "docs/2.md", "docs/deep/3.md", "photos/2024/x.jpg", "photos/2025/y.jpg", "z"];
    for key in keys {
        s3.put_object().bucket("list").key(key).body(ByteStream::from_static(b"1")).send().await.unwrap();
    }

    // V2, two entries a page, with a delimiter: folders fold into prefixes.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("list")
            .delimiter("/")
            .max_keys(2)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(page.contents().iter().filter_map(|o| o.key().map(String::from)));
        seen.extend(page.common_prefixes().iter().filter_map(|p| p.prefix().map(String::from)));
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        token = page.next_continuation_token().map(String::from);
    }
    seen.sort();
    assert_eq!(seen, ["a.txt", "docs/", "photos/", "z"]);

    let docs = s3.list_objects_v2().bucket("list").prefix("docs/").delimiter("/").send().await.unwrap();
    let doc_keys: Vec<&str> = docs.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(doc_keys, ["docs/1.md", "docs/2.md"]);
    assert_eq!(docs.common_prefixes()[0].prefix(), Some("docs/deep/"));
    assert_eq!(docs.key_count(), Some(3));

    let after = s3.list_objects_v2().bucket("list").start_after("docs/2.md").send().await.unwrap();
    assert_eq!(after.contents()[0].key(), Some("docs/deep/3.md"));

    // V1 with markers, one key a page.
    let mut v1 = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = s3.list_objects().bucket("list").max_keys(1).set_marker(marker.clone()).send().await.unwrap();
        let key = page.contents()[0].key().unwrap().to_string();
        v1.push(key.clone());
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
        marker = Some(key);
    }
    assert_eq!(v1, keys);

    // DeleteObjects removes several keys at once.
    let objects: Vec<ObjectIdentifier> =
        ["a.txt", "z", "never-existed"].iter().map(|k| ObjectIdentifier::builder().key(*k).build().unwrap()).collect();
    let deleted = s3
        .delete_objects()
        .bucket("list")
        .delete(Delete::builder().set_objects(Some(objects)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.deleted().len(), 3);
    let remaining = s3.list_objects_v2().bucket("list").send().await.unwrap();
    assert_eq!(remaining.key_count(), Some(5));
}
