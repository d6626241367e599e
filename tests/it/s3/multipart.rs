//! Multipart uploads: parts, copies of ranges, checksums of the whole.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::{code, get_bytes, md5_digest};
use crate::common::*;

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
    let copy_part = |number: i32, range: String| {
        s3.upload_part_copy()
            .bucket("pcopy")
            .key("dst")
            .upload_id(id)
            .part_number(number)
            .copy_source("pcopy/src")
            .copy_source_range(range)
            .send()
    };
    let mut parts = Vec::new();
    for (number, range) in [(1, format!("bytes={a}-{b}")), (2, format!("bytes={}-{}", b + 1, source.len() - 1))] {
        let out = copy_part(number, range).await.unwrap();
        let etag = out.copy_part_result().unwrap().e_tag().unwrap().to_string();
        parts.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
    }
    assert_eq!(parts[0].e_tag().unwrap(), format!("\"{:x}\"", md5_digest(&source[a..=b])));
    let err = copy_part(3, "bytes=0-99999999".into()).await.unwrap_err();
    assert_eq!(code(&err), "InvalidRange");
    let err = copy_part(3, "0-10".into()).await.unwrap_err();
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

/// Uploads `bodies` as parts 1, 2, … of an upload, each with its checksum
/// in `algorithm` (SHA-256 or CRC32), and returns the parts that complete
/// it, with the checksums the server answered.
async fn upload_parts_with_checksums(
    s3: &aws_sdk_s3::Client,
    (bucket, key, upload_id): (&str, &str, &str),
    bodies: &[Vec<u8>],
    algorithm: aws_sdk_s3::types::ChecksumAlgorithm,
) -> Vec<CompletedPart> {
    use aws_sdk_s3::types::ChecksumAlgorithm;
    let mut parts = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let number = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let part = CompletedPart::builder().part_number(number).e_tag(out.e_tag().unwrap());
        parts.push(
            match algorithm {
                ChecksumAlgorithm::Sha256 => part.checksum_sha256(out.checksum_sha256().unwrap()),
                ChecksumAlgorithm::Crc32 => part.checksum_crc32(out.checksum_crc32().unwrap()),
                ref other => panic!("no checksum field for {other:?} here"),
            }
            .build(),
        );
    }
    parts
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
    let parts = upload_parts_with_checksums(&s3, ("parts", "k", id), &bodies, ChecksumAlgorithm::Sha256).await;
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
    let parts = upload_parts_with_checksums(&s3, ("crc", "k", id), &bodies, ChecksumAlgorithm::Crc32).await;
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

#[tokio::test]
async fn an_empty_last_part_read_by_its_number_is_empty_not_the_whole_object() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("parts").send().await.unwrap();
    let upload = s3.create_multipart_upload().bucket("parts").key("k").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let mut parts = Vec::new();
    for (number, body) in [(1, random_bytes(5 << 20, 3)), (2, Vec::new())] {
        let part = s3
            .upload_part()
            .bucket("parts")
            .key("k")
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        parts.push(CompletedPart::builder().part_number(number).e_tag(part.e_tag().unwrap()).build());
    }
    s3.complete_multipart_upload()
        .bucket("parts")
        .key("k")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    let second = s3.get_object().bucket("parts").key("k").part_number(2).send().await.unwrap();
    assert_eq!(second.content_length(), Some(0));
    assert!(second.body.collect().await.unwrap().into_bytes().is_empty());
}
