//! Authentication and bad input, as a client meets them: each refused with
//! AWS's error code and status, and nothing changed.

use std::time::{Duration, SystemTime};

use crate::common::*;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The `<Code>` of an S3 error body.
fn error_code(body: &str) -> String {
    body.split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next()).unwrap_or("<none>").to_string()
}

async fn expect_error(response: reqwest::Response, status: u16, code: &str) {
    let got_status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_eq!((got_status, error_code(&body).as_str()), (status, code), "{body}");
}

async fn object_exists(server: &Server, bucket: &str, key: &str) -> bool {
    server.client().head_object().bucket(bucket).key(key).send().await.is_ok()
}

#[tokio::test]
async fn wrong_credentials_skew_and_anonymous_requests_are_refused() {
    let server = Server::start();
    let wrong_secret = client_for(&server.endpoint, ACCESS_KEY, "not-the-secret");
    let err = wrong_secret.list_buckets().send().await.unwrap_err();
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&err), Some("SignatureDoesNotMatch"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);

    let unknown = client_for(&server.endpoint, "AKIAUNKNOWNKEY000000", SECRET_KEY);
    let err = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&err), Some("InvalidAccessKeyId"));
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 403);

    let url = format!("{}/", server.endpoint);
    let twenty_minutes_ago = SystemTime::now() - Duration::from_secs(20 * 60);
    let skewed =
        signed_at(reqwest::Method::GET, &url, &[], Vec::new(), ACCESS_KEY, SECRET_KEY, twenty_minutes_ago, None).await;
    expect_error(skewed, 403, "RequestTimeTooSkewed").await;

    let anonymous = reqwest::get(&url).await.unwrap();
    expect_error(anonymous, 403, "AccessDenied").await;

    // Our own signer agrees with aws-sigv4 on a good request.
    let ok = signed(reqwest::Method::GET, &url, &[], Vec::new(), ACCESS_KEY, SECRET_KEY).await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn presigned_urls_work_until_they_expire() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("pre").send().await.unwrap();

    let put = s3
        .put_object()
        .bucket("pre")
        .key("via presigned put")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let response = reqwest::Client::new().put(put.uri()).body("presigned body").send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());

    let get = s3
        .get_object()
        .bucket("pre")
        .key("via presigned put")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let response = reqwest::get(get.uri()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "presigned body");

    let expired_config = PresigningConfig::builder()
        .start_time(SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let expired = s3.get_object().bucket("pre").key("via presigned put").presigned(expired_config).await.unwrap();
    let response = reqwest::get(expired.uri()).await.unwrap();
    assert_eq!(response.status(), 403);
    let body = response.text().await.unwrap();
    assert!(body.contains("<Code>AccessDenied</Code>") && body.contains("Request has expired"), "{body}");

    // A presigned URL whose signature was altered.
    let tampered = get.uri().replace("X-Amz-Signature=", "X-Amz-Signature=0");
    expect_error(reqwest::get(tampered).await.unwrap(), 403, "SignatureDoesNotMatch").await;
}

// ---- aws-chunked bodies, built from the AWS specification ----

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn amz_date(time: SystemTime) -> (String, String) {
    let secs = time.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let days = secs.div_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let rem = secs.rem_euclid(86400);
    let date = format!("{y:04}{m:02}{d:02}");
    (date.clone(), format!("{date}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60))
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A signed aws-chunked body: each chunk's signature chains from the seed.
fn signed_chunked_body(chunks: &[&[u8]], seed: &str, time: SystemTime) -> Vec<u8> {
    let (date, datetime) = amz_date(time);
    let scope = format!("{date}/us-east-1/s3/aws4_request");
    let key = ["us-east-1", "s3", "aws4_request"]
        .iter()
        .fold(hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date.as_bytes()), |k, part| hmac(&k, part.as_bytes()));
    let empty = hex::encode(Sha256::digest(b""));
    let mut previous = seed.to_string();
    let mut body = Vec::new();
    for data in chunks.iter().copied().chain([&b""[..]]) {
        let to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{datetime}\n{scope}\n{previous}\n{empty}\n{}",
            hex::encode(Sha256::digest(data))
        );
        previous = hex::encode(hmac(&key, to_sign.as_bytes()));
        body.extend_from_slice(format!("{:x};chunk-signature={previous}\r\n", data.len()).as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body
}

async fn put_signed_chunked(server: &Server, key: &str, chunks: &[&[u8]], tamper: bool) -> reqwest::Response {
    let url = format!("{}/chunky/{key}", server.endpoint);
    let decoded: usize = chunks.iter().map(|c| c.len()).sum();
    let time = SystemTime::now();
    let mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    // The encoded length depends only on the chunk sizes, so build once to measure.
    let probe = signed_chunked_body(chunks, &"0".repeat(64), time);
    let decoded_s = decoded.to_string();
    let length_s = probe.len().to_string();
    let headers = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", decoded_s.as_str()),
        ("content-length", length_s.as_str()),
    ];
    let (all, seed) = sign_request("PUT", &url, &headers, &[], ACCESS_KEY, SECRET_KEY, time, Some(mode));
    let mut body = signed_chunked_body(chunks, &seed, time);
    if tamper {
        let at = body.iter().position(|&b| b == b'\n').unwrap() + 5;
        body[at] ^= 0x01;
    }
    let mut request = reqwest::Client::new().put(&url);
    for (name, value) in all {
        request = request.header(name, value);
    }
    request.body(body).send().await.unwrap()
}

#[tokio::test]
async fn signed_aws_chunked_bodies_are_verified_chunk_by_chunk() {
    let server = Server::start();
    server.client().create_bucket().bucket("chunky").send().await.unwrap();
    let first = random_bytes(64 * 1024, 1);
    let second = random_bytes(10_000, 2);

    let ok = put_signed_chunked(&server, "good", &[&first, &second], false).await;
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    let back = server.client().get_object().bucket("chunky").key("good").send().await.unwrap();
    let mut expected = first.clone();
    expected.extend_from_slice(&second);
    assert_eq!(back.body.collect().await.unwrap().into_bytes().to_vec(), expected, "framing never reaches the object");

    let tampered = put_signed_chunked(&server, "tampered", &[&first, &second], true).await;
    expect_error(tampered, 403, "SignatureDoesNotMatch").await;
    assert!(!object_exists(&server, "chunky", "tampered").await);
}

#[tokio::test]
async fn unsigned_trailers_are_checked_against_the_body() {
    let server = Server::start();
    server.client().create_bucket().bucket("trail").send().await.unwrap();
    let data = random_bytes(100_000, 5);
    let crc = base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(&data).to_be_bytes());
    for (key, checksum, expect_ok) in [("right", crc.as_str(), true), ("wrong", "AAAAAA==", false)] {
        let mut body = format!("{:x}\r\n", data.len()).into_bytes();
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n0\r\nx-amz-checksum-crc32:{checksum}\r\n\r\n").as_bytes());
        let url = format!("{}/trail/{key}", server.endpoint);
        let decoded = data.len().to_string();
        let headers = [
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ];
        let mode = Some("STREAMING-UNSIGNED-PAYLOAD-TRAILER");
        let response =
            signed_at(reqwest::Method::PUT, &url, &headers, body, ACCESS_KEY, SECRET_KEY, SystemTime::now(), mode)
                .await;
        if expect_ok {
            assert_eq!(response.headers().get("x-amz-checksum-crc32").unwrap(), checksum);
            assert_eq!(response.status(), 200);
            let head = server
                .client()
                .head_object()
                .bucket("trail")
                .key(key)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .unwrap();
            assert_eq!(head.checksum_crc32(), Some(checksum));
        } else {
            expect_error(response, 400, "BadDigest").await;
            assert!(!object_exists(&server, "trail", key).await);
        }
    }
}

#[tokio::test]
async fn bad_bodies_and_digests_change_nothing() {
    let server = Server::start();
    let s3 = server.client();
    s3.create_bucket().bucket("bad").send().await.unwrap();
    s3.put_object().bucket("bad").key("keep").body(ByteStream::from_static(b"kept")).send().await.unwrap();

    // The signed payload hash does not match the body.
    let url = format!("{}/bad/mismatch", server.endpoint);
    let hash_of_other = sha256(b"other body");
    let response = signed_at(
        reqwest::Method::PUT,
        &url,
        &[],
        b"this body".to_vec(),
        ACCESS_KEY,
        SECRET_KEY,
        SystemTime::now(),
        Some(&hash_of_other),
    )
    .await;
    expect_error(response, 400, "XAmzContentSHA256Mismatch").await;
    assert!(!object_exists(&server, "bad", "mismatch").await);

    // Content-MD5 that does not match.
    let wrong_md5 = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
    let response =
        signed(reqwest::Method::PUT, &url, &[("content-md5", &wrong_md5)], b"body".to_vec(), ACCESS_KEY, SECRET_KEY)
            .await;
    expect_error(response, 400, "BadDigest").await;
    let response =
        signed(reqwest::Method::PUT, &url, &[("content-md5", "not base64!")], b"body".to_vec(), ACCESS_KEY, SECRET_KEY)
            .await;
    expect_error(response, 400, "InvalidDigest").await;
    assert!(!object_exists(&server, "bad", "mismatch").await);

    // Malformed, oversized and over-long DeleteObjects bodies.
    let delete_url = format!("{}/bad?delete", server.endpoint);
    for body in [
        b"<Delete><Object><Key>keep</Key></Object>".to_vec(),
        b"not xml at all".to_vec(),
        format!("<Delete>{}</Delete>", "<Object><Key>k</Key></Object>".repeat(1001)).into_bytes(),
        vec![b' '; 3 << 20],
    ] {
        let response = signed(reqwest::Method::POST, &delete_url, &[], body, ACCESS_KEY, SECRET_KEY).await;
        expect_error(response, 400, "MalformedXML").await;
    }
    assert!(object_exists(&server, "bad", "keep").await);

    // Unknown part number ranges and a Complete with unordered parts.
    let upload = s3.create_multipart_upload().bucket("bad").key("mp").send().await.unwrap();
    let id = upload.upload_id().unwrap();
    for number in ["0", "10001", "x"] {
        let url = format!("{}/bad/mp?partNumber={number}&uploadId={id}", server.endpoint);
        let response = signed(reqwest::Method::PUT, &url, &[], b"part".to_vec(), ACCESS_KEY, SECRET_KEY).await;
        expect_error(response, 400, "InvalidArgument").await;
    }
    let url = format!("{}/bad/mp?uploadId={id}", server.endpoint);
    let body = b"<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>\"a\"</ETag></Part><Part><PartNumber>1</PartNumber><ETag>\"b\"</ETag></Part></CompleteMultipartUpload>".to_vec();
    let response = signed(reqwest::Method::POST, &url, &[], body, ACCESS_KEY, SECRET_KEY).await;
    expect_error(response, 400, "InvalidPartOrder").await;
    let body =
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"a\"</ETag></Part></CompleteMultipartUpload>"
            .to_vec();
    let response = signed(reqwest::Method::POST, &url, &[], body, ACCESS_KEY, SECRET_KEY).await;
    expect_error(response, 400, "InvalidPart").await;
    let url = format!("{}/bad/mp?uploadId=nope", server.endpoint);
    let response =
        signed(reqwest::Method::PUT, &format!("{url}&partNumber=1"), &[], b"x".to_vec(), ACCESS_KEY, SECRET_KEY).await;
    expect_error(response, 404, "NoSuchUpload").await;
}

/// Sends only the head of a PUT with `Expect: 100-continue` and returns the
/// first status line the server answers, before any body byte is sent.
async fn status_before_body(server: &Server, headers: &[(String, String)]) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let addr = server.endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("PUT /expect/k HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 5\r\nexpect: 100-continue\r\n");
    for (name, value) in headers {
        if !["host", "content-length", "expect"].contains(&name.as_str()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await.unwrap();
    line.trim().to_string()
}

#[tokio::test]
async fn expect_100_continue_refuses_a_bad_signature_before_the_body() {
    let server = Server::start();
    server.client().create_bucket().bucket("expect").send().await.unwrap();
    assert_eq!(status_before_body(&server, &[]).await, "HTTP/1.1 403 Forbidden");

    let url = format!("{}/expect/k", server.endpoint);
    let extra = [("content-length", "5"), ("expect", "100-continue")];
    let (good, _) =
        sign_request("PUT", &url, &extra, b"", ACCESS_KEY, SECRET_KEY, SystemTime::now(), Some("UNSIGNED-PAYLOAD"));
    assert_eq!(status_before_body(&server, &good).await, "HTTP/1.1 100 Continue");
    let (wrong, _) =
        sign_request("PUT", &url, &extra, b"", ACCESS_KEY, "wrong", SystemTime::now(), Some("UNSIGNED-PAYLOAD"));
    assert_eq!(status_before_body(&server, &wrong).await, "HTTP/1.1 403 Forbidden");
}

/// Sends a raw request, half-closes the connection (so the server sees the
/// body end early), and returns the response's status line and body.
async fn raw_request(server: &Server, head: &str, body: &[u8]) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.lines().next().unwrap_or_default().to_string();
    (status, text)
}

fn head_of(method: &str, path: &str, headers: &[(String, String)], addr: &str) -> String {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head + "\r\n"
}

#[tokio::test]
async fn truncated_bodies_and_lying_lengths_store_nothing() {
    let server = Server::start();
    server.client().create_bucket().bucket("short").send().await.unwrap();
    let addr = server.endpoint.trim_start_matches("http://").to_string();

    // Content-Length promises 1000 bytes; 400 arrive.
    let url = format!("{}/short/lying", server.endpoint);
    let (headers, _) = sign_request(
        "PUT",
        &url,
        &[("content-length", "1000")],
        b"",
        ACCESS_KEY,
        SECRET_KEY,
        SystemTime::now(),
        Some("UNSIGNED-PAYLOAD"),
    );
    let (status, text) = raw_request(&server, &head_of("PUT", "/short/lying", &headers, &addr), &[7u8; 400]).await;
    assert!(status.contains(" 400 ") && text.contains("IncompleteBody"), "{text}");
    assert!(!object_exists(&server, "short", "lying").await);

    // A signed aws-chunked body cut off in its second chunk.
    let first = random_bytes(64 * 1024, 1);
    let second = random_bytes(10_000, 2);
    let time = SystemTime::now();
    let url = format!("{}/short/chunked", server.endpoint);
    let decoded = (first.len() + second.len()).to_string();
    let probe = signed_chunked_body(&[&first, &second], &"0".repeat(64), time);
    let length = probe.len().to_string();
    let extra = [
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", decoded.as_str()),
        ("content-length", length.as_str()),
    ];
    let (headers, seed) = sign_request(
        "PUT",
        &url,
        &extra,
        b"",
        ACCESS_KEY,
        SECRET_KEY,
        time,
        Some("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    );
    let body = signed_chunked_body(&[&first, &second], &seed, time);
    let cut = &body[..first.len() + 5000];
    let (status, text) = raw_request(&server, &head_of("PUT", "/short/chunked", &headers, &addr), cut).await;
    assert!(status.contains(" 400 ") && text.contains("IncompleteBody"), "{text}");
    assert!(!object_exists(&server, "short", "chunked").await);
    assert_eq!(server.stats().await["meta"]["objects"], 0);
}
