//! Objects: bodies of every size, deduplication, restarts, hostile keys, copies, conditional writes and small objects kept inline.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::{code, get_bytes, list_keys, md5_digest, status};
use crate::common::*;

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
    let keys = list_keys(&s3, "keep").await;
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
    let listed = list_keys(&s3, "keys").await;
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
