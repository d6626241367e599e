//! End to end against a real `jadfs server` process, driven by the
//! `aws-sdk-s3` crate: what an S3 user sees.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use common::*;

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_string()
}

fn status<E>(e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> u16 {
    e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

async fn get_bytes(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client.get_object().bucket(bucket).key(key).send().await.unwrap_or_else(|e| panic!("get {key}: {e:?}"));
    out.body.collect().await.expect("body").into_bytes().to_vec()
}

#[tokio::test]
async fn buckets_are_created_listed_and_deleted_with_s3_errors() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    s3.create_bucket().bucket("beta.2").send().await.unwrap();

    // us-east-1 (the default) lets the owner create a bucket again, as AWS does.
    s3.create_bucket().bucket("alpha").send().await.unwrap();

    let names: Vec<String> =
        s3.list_buckets().send().await.unwrap().buckets().iter().filter_map(|b| b.name().map(String::from)).collect();
    assert_eq!(names, ["alpha", "beta.2"]);

    s3.head_bucket().bucket("alpha").send().await.unwrap();
    let missing = s3.head_bucket().bucket("gamma").send().await.unwrap_err();
    assert_eq!(status(&missing), 404);
    let location = s3.get_bucket_location().bucket("alpha").send().await.unwrap();
    assert!(location.location_constraint().is_none_or(|c| c.as_str().is_empty()));

    s3.put_object().bucket("alpha").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let not_empty = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&not_empty), "BucketNotEmpty");
    assert_eq!(status(&not_empty), 409);

    s3.delete_object().bucket("alpha").key("k").send().await.unwrap();
    s3.delete_bucket().bucket("alpha").send().await.unwrap();
    let gone = s3.list_objects_v2().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&gone), "NoSuchBucket");
    let gone = s3.get_object().bucket("alpha").key("k").send().await.unwrap_err();
    assert_eq!(code(&gone), "NoSuchBucket");
    let put_gone =
        s3.put_object().bucket("alpha").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap_err();
    assert_eq!(status(&put_gone), 404);
}

#[tokio::test]
async fn outside_us_east_1_recreating_a_bucket_is_already_owned_by_you() {
    let server = Server::start_with(&["--region", "eu-west-1"]);
    let s3 = server.client();
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    let again = s3.create_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!((status(&again), code(&again)), (409, "BucketAlreadyOwnedByYou".to_string()));
    let location = s3.get_bucket_location().bucket("alpha").send().await.unwrap();
    assert_eq!(location.location_constraint().map(|c| c.as_str()), Some("eu-west-1"));
}

#[tokio::test]
async fn objects_of_every_size_round_trip_across_chunk_boundaries() {
    // 4 MiB chunks: the 200 MiB object spans 50 of them.
    let server = Server::start_with(&["--chunk-size", "4194304"]);
    let s3 = server.client();
    s3.create_bucket().bucket("data").send().await.unwrap();
    for (i, size) in [0usize, 1, 5 << 20, 200 << 20].into_iter().enumerate() {
        let data = random_bytes(size, i as u64);
        let key = format!("object-{size}");
        let put = s3.put_object().bucket("data").key(&key).body(ByteStream::from(data.clone())).send().await.unwrap();
        assert_eq!(put.e_tag().unwrap(), format!("\"{:x}\"", md5_digest(&data)));
        let back = get_bytes(&s3, "data", &key).await;
        assert_eq!(back.len(), size);
        assert_eq!(sha256(&back), sha256(&data), "{key}");
        let head = s3.head_object().bucket("data").key(&key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(size as i64));
    }

    // Ranges within a chunk, across chunk boundaries, suffixes, and past the end.
    let big = random_bytes(200 << 20, 3);
    for (range, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=4194300-4194400", 4194300, 4194400),
        ("bytes=10000000-30000000", 10000000, 30000000),
        ("bytes=-100", big.len() - 100, big.len() - 1),
        ("bytes=209715000-", 209715000, big.len() - 1),
    ] {
        let out = s3.get_object().bucket("data").key("object-209715200").range(range).send().await.unwrap();
        assert_eq!(out.content_range().unwrap(), format!("bytes {start}-{end}/{}", big.len()));
        let bytes = out.body.collect().await.unwrap().into_bytes();
        assert_eq!(&bytes[..], &big[start..=end], "{range}");
    }
    let past = s3.get_object().bucket("data").key("object-1").range("bytes=5-9").send().await.unwrap_err();
    assert_eq!(code(&past), "InvalidRange");
    assert_eq!(status(&past), 416);

    // Conditional reads.
    let head = s3.head_object().bucket("data").key("object-1").send().await.unwrap();
    let etag = head.e_tag().unwrap().to_string();
    let not_modified = s3.get_object().bucket("data").key("object-1").if_none_match(&etag).send().await.unwrap_err();
    assert_eq!(status(&not_modified), 304);
    let failed = s3.get_object().bucket("data").key("object-1").if_match("\"nope\"").send().await.unwrap_err();
    assert_eq!(status(&failed), 412);
    s3.get_object().bucket("data").key("object-1").if_match(&etag).send().await.unwrap();

    let missing = s3.get_object().bucket("data").key("nope").send().await.unwrap_err();
    assert_eq!(code(&missing), "NoSuchKey");
}

fn md5_digest(data: &[u8]) -> u128 {
    use md5::{Digest, Md5};
    u128::from_be_bytes(Md5::digest(data).into())
}

#[tokio::test]
async fn equal_content_is_stored_once_and_copies_share_chunks() {
    let server = Server::start_with(&["--chunk-size", "1048576"]);
    let s3 = server.client();
    s3.create_bucket().bucket("dedup").send().await.unwrap();
    let data = random_bytes(3 << 20, 42); // three 1 MiB chunks
    s3.put_object().bucket("dedup").key("one").body(ByteStream::from(data.clone())).send().await.unwrap();
    let after_first = server.stats().await;
    s3.put_object().bucket("dedup").key("two").body(ByteStream::from(data.clone())).send().await.unwrap();
    s3.copy_object().bucket("dedup").key("three").copy_source("dedup/one").send().await.unwrap();
    let after_copies = server.stats().await;

    assert_eq!(after_first["meta"]["chunks"], 3);
    assert_eq!(after_copies["meta"]["chunks"], 3, "{after_copies}");
    assert_eq!(after_copies["meta"]["objects"], 3);
    let nodes = after_copies["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for node in nodes {
        assert_eq!(node["stats"]["chunks"], 3, "every node holds each chunk once: {node}");
        assert_eq!(node["stats"]["bytes"], 3 << 20);
    }
    assert_eq!(get_bytes(&s3, "dedup", "three").await, data);

    // The chunks are released only when no object uses them.
    s3.delete_object().bucket("dedup").key("one").send().await.unwrap();
    s3.delete_object().bucket("dedup").key("two").send().await.unwrap();
    assert_eq!(server.stats().await["meta"]["chunks"], 3);
    s3.delete_object().bucket("dedup").key("three").send().await.unwrap();
    let after_delete = server.stats().await;
    assert_eq!(after_delete["meta"]["chunks"], 0);
    assert_eq!(after_delete["meta"]["orphaned_chunks"], 3);
}

#[tokio::test]
async fn a_restart_keeps_everything() {
    let mut server = Server::start_with(&["--chunk-size", "1048576"]);
    let data = random_bytes(5 << 20, 7);
    {
        let s3 = server.client();
        s3.create_bucket().bucket("keep").send().await.unwrap();
        s3.put_object()
            .bucket("keep")
            .key("a/b")
            .body(ByteStream::from(data.clone()))
            .content_type("text/x-test")
            .metadata("color", "blue")
            .send()
            .await
            .unwrap();
        s3.put_object().bucket("keep").key("empty").body(ByteStream::from_static(b"")).send().await.unwrap();
    }
    server.restart();
    let s3 = server.client();
    assert_eq!(get_bytes(&s3, "keep", "a/b").await, data);
    let head = s3.head_object().bucket("keep").key("a/b").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/x-test"));
    assert_eq!(head.metadata().unwrap().get("color").map(String::as_str), Some("blue"));
    let keys: Vec<String> = s3
        .list_objects_v2()
        .bucket("keep")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    assert_eq!(keys, ["a/b", "empty"]);
    // And it keeps accepting writes.
    s3.put_object().bucket("keep").key("after").body(ByteStream::from_static(b"after restart")).send().await.unwrap();
    assert_eq!(get_bytes(&s3, "keep", "after").await, b"after restart");
}

#[tokio::test]
async fn hostile_keys_are_stored_as_themselves_and_never_touch_the_filesystem() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("keys").send().await.unwrap();
    let keys = [
        "../escape",
        "../../../../etc/passwd",
        "%2e%2e/percent",
        "a/./b/../c",
        "with spaces and +plus",
        "ünïcödé/日本語/🚀",
        "trailing/",
        "query?x=1&y=2#frag",
        "back\\slash",
    ];
    for (i, key) in keys.iter().enumerate() {
        s3.put_object()
            .bucket("keys")
            .key(*key)
            .body(ByteStream::from(format!("value {i}").into_bytes()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(get_bytes(&s3, "keys", key).await, format!("value {i}").into_bytes(), "{key}");
    }
    let listed: Vec<String> = s3
        .list_objects_v2()
        .bucket("keys")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect();
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);

    // Nothing outside the data folder's own layout was created.
    let mut names = Vec::new();
    collect_names(server.data_dir(), &mut names);
    for name in &names {
        assert!(
            !(name.contains("passwd") || name.contains("escape") || name.contains("percent") || name.contains(' ')),
            "a key reached the filesystem: {name}"
        );
    }

    let long_key = "k".repeat(1025);
    let err =
        s3.put_object().bucket("keys").key(&long_key).body(ByteStream::from_static(b"x")).send().await.unwrap_err();
    assert_eq!(status(&err), 400);
    assert_eq!(code(&err), "KeyTooLongError");
    let max_key = "k".repeat(1024);
    s3.put_object().bucket("keys").key(&max_key).body(ByteStream::from_static(b"x")).send().await.unwrap();

    for bad in ["ab", "Upper", "bad_name", "-dash", "a..b", "192.168.0.1"] {
        let err = s3.create_bucket().bucket(bad).send().await.unwrap_err();
        assert_eq!(status(&err), 400, "{bad}");
        assert_eq!(code(&err), "InvalidBucketName", "{bad}");
    }
}

fn collect_names(dir: &std::path::Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.file_name().unwrap().to_string_lossy().into_owned());
        if path.is_dir() {
            collect_names(&path, out);
        }
    }
}

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

#[tokio::test]
async fn multipart_uploads_assemble_parts_without_copying() {
    let server = Server::start_with(&["--chunk-size", "2097152"]);
    let s3 = server.client();
    s3.create_bucket().bucket("mpu").send().await.unwrap();
    let part1 = random_bytes(5 << 20, 1);
    let part2 = random_bytes(3 << 20, 2);
    let upload =
        s3.create_multipart_upload().bucket("mpu").key("big").content_type("application/x-big").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();

    let too_small = random_bytes(1 << 20, 9);
    let mut completed = Vec::new();
    for (number, data) in [(1, &too_small), (1, &part1), (2, &part2)] {
        // Part 1 is first uploaded too small, then replaced.
        let out = s3
            .upload_part()
            .bucket("mpu")
            .key("big")
            .upload_id(upload_id)
            .part_number(number)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        completed.retain(|p: &CompletedPart| p.part_number() != Some(number));
        completed.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap()).build());
    }
    let parts = s3.list_parts().bucket("mpu").key("big").upload_id(upload_id).send().await.unwrap();
    assert_eq!(parts.parts().len(), 2);
    assert_eq!(parts.parts()[0].size(), Some(5 << 20));

    let done = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap();
    assert!(done.e_tag().unwrap().ends_with("-2\""), "{:?}", done.e_tag());
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    assert_eq!(sha256(&get_bytes(&s3, "mpu", "big").await), sha256(&whole));
    let head = s3.head_object().bucket("mpu").key("big").send().await.unwrap();
    assert_eq!(head.content_type(), Some("application/x-big"));

    // Completing with a part too small is refused; an unknown upload is NoSuchUpload.
    let second = s3.create_multipart_upload().bucket("mpu").key("small").send().await.unwrap();
    let id = second.upload_id().unwrap();
    let mut parts = Vec::new();
    for number in 1..=2 {
        let out = s3
            .upload_part()
            .bucket("mpu")
            .key("small")
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(vec![number as u8; 1024]))
            .send()
            .await
            .unwrap();
        parts.push(CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap()).build());
    }
    let err = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("small")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "EntityTooSmall");
    s3.abort_multipart_upload().bucket("mpu").key("small").upload_id(id).send().await.unwrap();
    let err = s3.list_parts().bucket("mpu").key("small").upload_id(id).send().await.unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
    let orphaned = server.stats().await["meta"]["orphaned_chunks"].as_u64().unwrap();
    assert!(orphaned >= 1, "the replaced and aborted parts' chunks are released");
}

#[tokio::test]
async fn copy_object_keeps_or_replaces_metadata() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("src").send().await.unwrap();
    s3.create_bucket().bucket("dst").send().await.unwrap();
    s3.put_object()
        .bucket("src")
        .key("orig name")
        .body(ByteStream::from_static(b"copy me"))
        .content_type("text/plain")
        .metadata("k", "v")
        .send()
        .await
        .unwrap();

    s3.copy_object().bucket("dst").key("kept").copy_source("src/orig%20name").send().await.unwrap();
    let kept = s3.head_object().bucket("dst").key("kept").send().await.unwrap();
    assert_eq!(kept.content_type(), Some("text/plain"));
    assert_eq!(kept.metadata().unwrap().get("k").map(String::as_str), Some("v"));

    s3.copy_object()
        .bucket("dst")
        .key("replaced")
        .copy_source("src/orig%20name")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_type("application/json")
        .send()
        .await
        .unwrap();
    let replaced = s3.head_object().bucket("dst").key("replaced").send().await.unwrap();
    assert_eq!(replaced.content_type(), Some("application/json"));
    assert!(replaced.metadata().is_none_or(|m| m.is_empty()));
    assert_eq!(get_bytes(&s3, "dst", "replaced").await, b"copy me");

    let to_itself =
        s3.copy_object().bucket("src").key("orig name").copy_source("src/orig%20name").send().await.unwrap_err();
    assert_eq!(code(&to_itself), "InvalidRequest");
    let missing = s3.copy_object().bucket("dst").key("x").copy_source("src/missing").send().await.unwrap_err();
    assert_eq!(code(&missing), "NoSuchKey");
}

#[tokio::test]
async fn virtual_host_style_addresses_the_bucket_in_the_host_name() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("vhost").send().await.unwrap();
    s3.put_object().bucket("vhost").key("dir/file.txt").body(ByteStream::from_static(b"by host")).send().await.unwrap();

    let addr: std::net::SocketAddr = server.endpoint.trim_start_matches("http://").parse().unwrap();
    let url = format!("http://vhost.localhost:{}/dir/file.txt", addr.port());
    let (headers, _) = sign_request("GET", &url, &[], b"", ACCESS_KEY, SECRET_KEY, std::time::SystemTime::now(), None);
    let client = reqwest::Client::builder().resolve("vhost.localhost", addr).build().unwrap();
    let mut request = client.get(&url);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "by host");
}

#[tokio::test]
async fn conditional_writes_are_a_compare_and_swap() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("cas").send().await.unwrap();
    let put = |body: &'static [u8]| s3.put_object().bucket("cas").key("k").body(ByteStream::from_static(body));

    let first = put(b"one").if_none_match("*").send().await.unwrap();
    let err = put(b"two").if_none_match("*").send().await.unwrap_err();
    assert_eq!((status(&err), code(&err)), (412, "PreconditionFailed".to_string()));
    let err = s3
        .put_object()
        .bucket("cas")
        .key("absent")
        .if_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&err), code(&err)), (404, "NoSuchKey".to_string()));

    let second = put(b"two").if_match(first.e_tag().unwrap()).send().await.unwrap();
    let err = put(b"three").if_match(first.e_tag().unwrap()).send().await.unwrap_err();
    assert_eq!(status(&err), 412, "the old ETag no longer matches");
    assert_eq!(get_bytes(&s3, "cas", "k").await, b"two");
    let err = s3.get_object().bucket("cas").key("k").if_none_match(second.e_tag().unwrap()).send().await.unwrap_err();
    assert_eq!(status(&err), 304);
    assert_eq!(err.raw_response().unwrap().headers().get("etag"), second.e_tag());

    let err = s3
        .copy_object()
        .bucket("cas")
        .key("copy")
        .copy_source("cas/k")
        .copy_source_if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&err), code(&err)), (412, "PreconditionFailed".to_string()));
    s3.copy_object()
        .bucket("cas")
        .key("copy")
        .copy_source("cas/k")
        .copy_source_if_match(second.e_tag().unwrap())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn objects_and_buckets_carry_tags() {
    use aws_sdk_s3::types::{Tag, Tagging};
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("tags").send().await.unwrap();
    s3.put_object()
        .bucket("tags")
        .key("k")
        .tagging("project=jadfs&tier=gold")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let tags = s3.get_object_tagging().bucket("tags").key("k").send().await.unwrap();
    let pairs: Vec<(&str, &str)> = tags.tag_set().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(pairs, [("project", "jadfs"), ("tier", "gold")]);
    let head = s3.head_object().bucket("tags").key("k").send().await.unwrap();
    assert_eq!(head.tag_count(), Some(2));

    let eleven: Vec<Tag> = (0..11).map(|i| Tag::builder().key(format!("k{i}")).value("v").build().unwrap()).collect();
    let err = s3
        .put_object_tagging()
        .bucket("tags")
        .key("k")
        .tagging(Tagging::builder().set_tag_set(Some(eleven)).build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&err), code(&err)), (400, "InvalidTag".to_string()));

    s3.copy_object().bucket("tags").key("copy").copy_source("tags/k").send().await.unwrap();
    assert_eq!(s3.get_object_tagging().bucket("tags").key("copy").send().await.unwrap().tag_set().len(), 2);
    s3.delete_object_tagging().bucket("tags").key("k").send().await.unwrap();
    assert!(s3.get_object_tagging().bucket("tags").key("k").send().await.unwrap().tag_set().is_empty());

    let err = s3.get_bucket_tagging().bucket("tags").send().await.unwrap_err();
    assert_eq!((status(&err), code(&err)), (404, "NoSuchTagSet".to_string()));
    let set = Tagging::builder().tag_set(Tag::builder().key("team").value("storage").build().unwrap()).build().unwrap();
    s3.put_bucket_tagging().bucket("tags").tagging(set).send().await.unwrap();
    assert_eq!(s3.get_bucket_tagging().bucket("tags").send().await.unwrap().tag_set()[0].value(), "storage");
    s3.delete_bucket_tagging().bucket("tags").send().await.unwrap();
    assert!(s3.get_bucket_tagging().bucket("tags").send().await.is_err());
}

#[tokio::test]
async fn upload_part_copy_reuses_whole_chunks_and_writes_only_the_edges() {
    let server = Server::start_with(&["--chunk-size", "1048576"]);
    let s3 = server.client();
    s3.create_bucket().bucket("pcopy").send().await.unwrap();
    let source = random_bytes((6 << 20) + 300, 11); // 7 chunks of 1 MiB (the last short)
    s3.put_object().bucket("pcopy").key("src").body(ByteStream::from(source.clone())).send().await.unwrap();
    let chunks_before = server.stats().await["meta"]["chunks"].as_u64().unwrap();

    let upload = s3.create_multipart_upload().bucket("pcopy").key("dst").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    // Part 1 starts and ends mid-chunk: two edge pieces, four whole chunks between them.
    let (a, b) = (100usize, (5 << 20) + 99);
    let mut parts = Vec::new();
    for (number, range) in [(1, format!("bytes={a}-{b}")), (2, format!("bytes={}-{}", b + 1, source.len() - 1))] {
        let out = s3
            .upload_part_copy()
            .bucket("pcopy")
            .key("dst")
            .upload_id(id)
            .part_number(number)
            .copy_source("pcopy/src")
            .copy_source_range(range)
            .send()
            .await
            .unwrap();
        let etag = out.copy_part_result().unwrap().e_tag().unwrap().to_string();
        parts.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
    }
    assert_eq!(parts[0].e_tag().unwrap(), format!("\"{:x}\"", md5_digest(&source[a..=b])));
    let err = s3
        .upload_part_copy()
        .bucket("pcopy")
        .key("dst")
        .upload_id(id)
        .part_number(3)
        .copy_source("pcopy/src")
        .copy_source_range("bytes=0-99999999")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRange");
    let err = s3
        .upload_part_copy()
        .bucket("pcopy")
        .key("dst")
        .upload_id(id)
        .part_number(3)
        .copy_source("pcopy/src")
        .copy_source_range("0-10")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");

    s3.complete_multipart_upload()
        .bucket("pcopy")
        .key("dst")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&get_bytes(&s3, "pcopy", "dst").await), sha256(&source[a..]));
    let new_chunks = server.stats().await["meta"]["chunks"].as_u64().unwrap() - chunks_before;
    assert_eq!(new_chunks, 3, "only the edge pieces are new chunks (two of part 1, one of part 2)");
}

#[tokio::test]
async fn cors_rules_answer_preflights_and_decorate_browser_requests() {
    use aws_sdk_s3::presigning::PresigningConfig;
    use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("web").send().await.unwrap();
    s3.put_object().bucket("web").key("app.js").body(ByteStream::from_static(b"console.log(1)")).send().await.unwrap();
    let err = s3.get_bucket_cors().bucket("web").send().await.unwrap_err();
    assert_eq!((status(&err), code(&err)), (404, "NoSuchCORSConfiguration".to_string()));

    let rule = CorsRule::builder()
        .allowed_origins("https://*.example.com")
        .allowed_methods("GET")
        .allowed_methods("PUT")
        .allowed_headers("*")
        .expose_headers("ETag")
        .max_age_seconds(600)
        .build()
        .unwrap();
    s3.put_bucket_cors()
        .bucket("web")
        .cors_configuration(CorsConfiguration::builder().cors_rules(rule).build().unwrap())
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(got.cors_rules()[0].allowed_origins(), ["https://*.example.com"]);

    let http = reqwest::Client::new();
    let url = format!("{}/web/app.js", server.endpoint);
    let preflight = |origin: &'static str, method: &'static str| {
        http.request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header("access-control-request-headers", "content-type, x-amz-date")
            .send()
    };
    let ok = preflight("https://app.example.com", "PUT").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(ok.headers()["access-control-allow-methods"], "GET, PUT");
    assert_eq!(ok.headers()["access-control-max-age"], "600");
    assert_eq!(preflight("https://evil.test", "GET").await.unwrap().status(), 403);
    assert_eq!(preflight("https://app.example.com", "DELETE").await.unwrap().status(), 403);

    let presigned = s3
        .get_object()
        .bucket("web")
        .key("app.js")
        .presigned(PresigningConfig::expires_in(std::time::Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let response = http.get(presigned.uri()).header("origin", "https://app.example.com").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example.com");
    assert_eq!(response.headers()["access-control-expose-headers"], "ETag");

    s3.delete_bucket_cors().bucket("web").send().await.unwrap();
    assert_eq!(preflight("https://app.example.com", "GET").await.unwrap().status(), 403);
}

#[tokio::test]
async fn multipart_objects_keep_their_parts_and_a_composite_checksum() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ObjectAttributes};
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("parts").send().await.unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("parts")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap();
    assert_eq!(upload.checksum_algorithm(), Some(&ChecksumAlgorithm::Sha256));
    let id = upload.upload_id().unwrap();
    let bodies = [random_bytes(5 << 20, 1), random_bytes(1000, 2)];
    let mut parts = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("parts")
            .key("k")
            .upload_id(id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let checksum = out.checksum_sha256().unwrap().to_string();
        parts.push(
            CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap()).checksum_sha256(checksum).build(),
        );
    }
    let listed = s3.list_parts().bucket("parts").key("k").upload_id(id).send().await.unwrap();
    assert!(listed.parts()[0].checksum_sha256().is_some());
    let done = s3
        .complete_multipart_upload()
        .bucket("parts")
        .key("k")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    assert!(done.checksum_sha256().unwrap().ends_with("-2"), "{:?}", done.checksum_sha256());

    let head = s3.head_object().bucket("parts").key("k").checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
    assert_eq!(head.checksum_sha256(), done.checksum_sha256());
    let second = s3.get_object().bucket("parts").key("k").part_number(2).send().await.unwrap();
    assert_eq!(second.parts_count(), Some(2));
    assert_eq!(second.body.collect().await.unwrap().into_bytes().to_vec(), bodies[1]);
    let err = s3.get_object().bucket("parts").key("k").part_number(3).send().await.unwrap_err();
    assert_eq!(code(&err), "InvalidPart");

    let attributes = s3
        .get_object_attributes()
        .bucket("parts")
        .key("k")
        .object_attributes(ObjectAttributes::ObjectParts)
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!(attributes.object_size(), Some(((5 << 20) + 1000) as i64));
    let object_parts = attributes.object_parts().unwrap();
    assert_eq!(object_parts.total_parts_count(), Some(2));
    assert_eq!(object_parts.parts()[1].size(), Some(1000));
}

#[tokio::test]
async fn full_object_crc_of_a_multipart_upload_is_the_crc_of_all_its_bytes() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ChecksumType};
    use base64::Engine;
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("crc").send().await.unwrap();
    let upload = s3
        .create_multipart_upload()
        .bucket("crc")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let bodies = [random_bytes(5 << 20, 3), random_bytes(3333, 4)];
    let mut parts = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("crc")
            .key("k")
            .upload_id(id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap())
                .checksum_crc32(out.checksum_crc32().unwrap())
                .build(),
        );
    }
    let mut whole = crc32fast::Hasher::new();
    bodies.iter().for_each(|b| whole.update(b));
    let expected = base64::engine::general_purpose::STANDARD.encode(whole.finalize().to_be_bytes());
    let done = s3
        .complete_multipart_upload()
        .bucket("crc")
        .key("k")
        .upload_id(id)
        .checksum_crc32(&expected)
        .checksum_type(ChecksumType::FullObject)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    assert_eq!(done.checksum_crc32(), Some(expected.as_str()));
    let head = s3.head_object().bucket("crc").key("k").checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
    assert_eq!(head.checksum_crc32(), Some(expected.as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
}

#[tokio::test]
async fn small_objects_live_in_their_manifest_and_behave_like_any_other() {
    let server = Server::start_with(&["--inline-max", "4096"]);
    let s3 = server.client();
    s3.create_bucket().bucket("small").send().await.unwrap();
    let small = random_bytes(4096, 21);
    for (key, data) in [("one-byte", &small[..1]), ("page", &small[..])] {
        let put = s3.put_object().bucket("small").key(key).body(ByteStream::from(data.to_vec())).send().await.unwrap();
        assert_eq!(put.e_tag().unwrap(), format!("\"{:x}\"", md5_digest(data)));
        assert_eq!(get_bytes(&s3, "small", key).await, data);
    }
    let stats = server.stats().await;
    assert_eq!(stats["meta"]["chunks"], 0, "no chunk for inline objects: {stats}");
    for node in stats["nodes"].as_array().unwrap() {
        assert_eq!(node["stats"]["chunks"], 0, "no node saw them: {node}");
    }

    // Ranges, HEAD, listing sizes, copies.
    let out = s3.get_object().bucket("small").key("page").range("bytes=100-199").send().await.unwrap();
    assert_eq!(out.content_range().unwrap(), "bytes 100-199/4096");
    assert_eq!(&out.body.collect().await.unwrap().into_bytes()[..], &small[100..200]);
    let past = s3.get_object().bucket("small").key("page").range("bytes=4096-").send().await.unwrap_err();
    assert_eq!(code(&past), "InvalidRange");
    let head = s3.head_object().bucket("small").key("page").send().await.unwrap();
    assert_eq!(head.content_length(), Some(4096));
    let listed = s3.list_objects_v2().bucket("small").send().await.unwrap();
    let sizes: Vec<i64> = listed.contents().iter().map(|o| o.size().unwrap()).collect();
    assert_eq!(sizes, vec![1, 4096]);
    s3.copy_object().bucket("small").key("copy").copy_source("small/page").send().await.unwrap();
    assert_eq!(get_bytes(&s3, "small", "copy").await, small);

    // A part copied from an inline object is written as a chunk.
    let upload = s3.create_multipart_upload().bucket("small").key("assembled").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let out = s3
        .upload_part_copy()
        .bucket("small")
        .key("assembled")
        .upload_id(id)
        .part_number(1)
        .copy_source("small/page")
        .copy_source_range("bytes=10-2009")
        .send()
        .await
        .unwrap();
    let etag = out.copy_part_result().unwrap().e_tag().unwrap().to_string();
    assert_eq!(etag, format!("\"{:x}\"", md5_digest(&small[10..2010])));
    let part = CompletedPart::builder().part_number(1).e_tag(etag).build();
    s3.complete_multipart_upload()
        .bucket("small")
        .key("assembled")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "small", "assembled").await, &small[10..2010]);

    // One byte more than the threshold goes to chunks, on every node.
    let bigger = random_bytes(4097, 22);
    s3.put_object().bucket("small").key("bigger").body(ByteStream::from(bigger.clone())).send().await.unwrap();
    assert_eq!(get_bytes(&s3, "small", "bigger").await, bigger);
    let stats = server.stats().await;
    assert_eq!(stats["meta"]["chunks"], 2, "the copied part and the 4097-byte object: {stats}");
    for node in stats["nodes"].as_array().unwrap() {
        assert_eq!(node["stats"]["chunks"], 2, "{node}");
    }
}

#[tokio::test]
async fn a_corrupt_copy_is_never_served_and_another_copy_is_read() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("rot").send().await.unwrap();
    let data = random_bytes(3 << 20, 31); // one chunk, three copies
    s3.put_object().bucket("rot").key("object").body(ByteStream::from(data.clone())).send().await.unwrap();
    let id = sha256(&data);
    let copy = |node: usize| server.data_dir().join(format!("node-{node}/chunks/{}/{}/{id}", &id[0..2], &id[2..4]));
    let mut rotten = data.clone();
    rotten[data.len() - 10] ^= 0x40;

    // Every copy rotten: the client gets an error, never the wrong bytes.
    for node in 1..=3 {
        std::fs::write(copy(node), &rotten).unwrap();
    }
    let out = s3.get_object().bucket("rot").key("object").send().await.unwrap();
    assert!(out.body.collect().await.is_err(), "a corrupt chunk must not be served whole");

    // One good copy left, on each node in turn (so in one round it is the
    // last the gateway tries): every read is whole and right. A node with a
    // bad copy withholds its last block; the gateway reads the next copy
    // whole again rather than a range of it, which would go unchecked.
    for good in 1..=3 {
        for node in 1..=3 {
            std::fs::write(copy(node), if node == good { &data } else { &rotten }).unwrap();
        }
        let out = s3.get_object().bucket("rot").key("object").send().await.unwrap();
        let bytes = out.body.collect().await.unwrap_or_else(|e| panic!("good copy on node {good}: {e:?}"));
        assert_eq!(sha256(&bytes.into_bytes()), id);
    }
}

#[tokio::test]
async fn a_part_copied_from_an_inline_object_is_cut_into_chunks_like_any_body() {
    // Chunks smaller than the inline threshold: the copied range spans several.
    let server = Server::start_with(&["--chunk-size", "1024", "--inline-max", "4096"]);
    let s3 = server.client();
    s3.create_bucket().bucket("tiny").send().await.unwrap();
    let small = random_bytes(4000, 41);
    s3.put_object().bucket("tiny").key("src").body(ByteStream::from(small.clone())).send().await.unwrap();
    let upload = s3.create_multipart_upload().bucket("tiny").key("dst").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let out = s3
        .upload_part_copy()
        .bucket("tiny")
        .key("dst")
        .upload_id(id)
        .part_number(1)
        .copy_source("tiny/src")
        .copy_source_range("bytes=100-3099")
        .send()
        .await
        .unwrap();
    let etag = out.copy_part_result().unwrap().e_tag().unwrap().to_string();
    let part = CompletedPart::builder().part_number(1).e_tag(etag).build();
    s3.complete_multipart_upload()
        .bucket("tiny")
        .key("dst")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "tiny", "dst").await, &small[100..3100]);
    assert_eq!(server.stats().await["meta"]["chunks"], 3, "3,000 bytes in chunks of 1,024");
}
