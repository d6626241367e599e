//! SigV4 against AWS's worked examples, our own signer, and what must be refused.

use super::*;

// The worked example of AWS's "Signature Calculations for the
// Authorization Header" page (GET Object with a Range header).
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn example(auth: &str) -> RequestParts<'static> {
    RequestParts {
        method: "GET",
        raw_path: "/test.txt",
        raw_query: "",
        headers: vec![
            ("host".into(), "examplebucket.s3.amazonaws.com".into()),
            ("range".into(), "bytes=0-9".into()),
            ("x-amz-content-sha256".into(), EMPTY_SHA256.into()),
            ("x-amz-date".into(), "20130524T000000Z".into()),
            ("authorization".into(), auth.into()),
        ],
    }
}

fn at(s: &str) -> DateTime<Utc> {
    parse_amz_date(s).unwrap()
}

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

#[test]
fn aws_documented_example_verifies() {
    let secret = |k: &str| (k == "AKIAIOSFODNN7EXAMPLE").then(|| SECRET.to_string());
    let verified = verify(&example(AUTH), at("20130524T000100Z"), "us-east-1", secret).unwrap();
    assert_eq!(verified.access_key, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(verified.payload, PayloadMode::Sha256(EMPTY_SHA256.into()));
}

#[test]
fn wrong_secret_unknown_key_and_skew_are_refused() {
    let wrong = |_: &str| Some("not the secret".to_string());
    assert_eq!(
        verify(&example(AUTH), at("20130524T000100Z"), "us-east-1", wrong).unwrap_err().code,
        Code::SignatureDoesNotMatch
    );
    let none = |_: &str| None;
    assert_eq!(
        verify(&example(AUTH), at("20130524T000100Z"), "us-east-1", none).unwrap_err().code,
        Code::InvalidAccessKeyId
    );
    let secret = |_: &str| Some(SECRET.to_string());
    assert_eq!(
        verify(&example(AUTH), at("20130524T002000Z"), "us-east-1", secret).unwrap_err().code,
        Code::RequestTimeTooSkewed
    );
}

#[test]
fn presigned_example_verifies_and_expires() {
    // AWS's documented presigned GET example (expires in 86400 s).
    let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    let req = RequestParts {
        method: "GET",
        raw_path: "/test.txt",
        raw_query: query,
        headers: vec![("host".into(), "examplebucket.s3.amazonaws.com".into())],
    };
    let secret = |_: &str| Some(SECRET.to_string());
    verify(&req, at("20130524T010000Z"), "us-east-1", secret).unwrap();
    let err = verify(&req, at("20130525T000001Z"), "us-east-1", secret).unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (Code::AccessDenied, "Request has expired"));
}

#[test]
fn our_presigner_makes_aws_documented_url() {
    let presign = Presign {
        method: "GET",
        raw_path: "/test.txt",
        host: "examplebucket.s3.amazonaws.com",
        expires_s: 86400,
        params: &[],
    };
    let query = presign.query("AKIAIOSFODNN7EXAMPLE", SECRET, "us-east-1", at("20130524T000000Z"));
    assert!(
        query.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
        "{query}"
    );
    // And the verifier takes it, for that method and path only.
    let req = |method, raw_path| RequestParts {
        method,
        raw_path,
        raw_query: &query,
        headers: vec![("host".into(), "examplebucket.s3.amazonaws.com".into())],
    };
    let secret = |_: &str| Some(SECRET.to_string());
    verify(&req("GET", "/test.txt"), at("20130524T000100Z"), "us-east-1", secret).unwrap();
    for (method, path) in [("PUT", "/test.txt"), ("GET", "/other.txt")] {
        let err = verify(&req(method, path), at("20130524T000100Z"), "us-east-1", secret).unwrap_err();
        assert_eq!(err.code, Code::SignatureDoesNotMatch, "{method} {path}");
    }
}

#[test]
fn our_signer_and_verifier_agree() {
    let headers = vec![
        ("host".to_string(), "127.0.0.1:9000".to_string()),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
    ];
    let mut req = RequestParts { method: "DELETE", raw_path: "/-/admin/keys/AK%201", raw_query: "a=b", headers };
    let now = at("20240102T030405Z");
    let (date, authorization) = sign(&req, "ADMIN", "secret", "us-east-1", now).unwrap();
    req.headers.push(("x-amz-date".into(), date));
    req.headers.push(("authorization".into(), authorization));
    assert_eq!(access_key_of(&req).as_deref(), Some("ADMIN"));
    let verified = verify(&req, now, "us-east-1", |k| (k == "ADMIN").then(|| "secret".to_string())).unwrap();
    assert_eq!(verified.access_key, "ADMIN");
    assert!(verify(&req, now, "us-east-1", |_| Some("other".to_string())).is_err());
}

#[test]
fn canonical_uri_encodes_each_segment_once() {
    assert_eq!(canonical_uri("/b/a%20b/%2E%2E/c%2Fd"), "/b/a%20b/../c%2Fd");
    assert_eq!(canonical_uri("/b/%E2%82%AC"), "/b/%E2%82%AC");
    assert_eq!(canonical_query("b=2&a=1&a=0&x-id=PutObject", None), "a=0&a=1&b=2&x-id=PutObject");
}

/// A request signed by our signer with `headers`, then given `extra`
/// headers the signature does not cover.
fn signed_with(headers: &[(&str, &str)], extra: &[(&str, &str)], region: &str) -> RequestParts<'static> {
    let mut headers: Vec<(String, String)> = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    headers.push(("host".into(), "127.0.0.1:9000".into()));
    headers.push(("x-amz-content-sha256".into(), EMPTY_SHA256.into()));
    let mut req = RequestParts { method: "PUT", raw_path: "/b/k", raw_query: "", headers };
    let (date, authorization) = sign(&req, "AK", "secret", region, at("20240102T030405Z")).unwrap();
    req.headers.push(("x-amz-date".into(), date));
    req.headers.push(("authorization".into(), authorization));
    req.headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    req
}

#[test]
fn every_amz_header_must_be_signed_and_the_region_ours() {
    let secret = |_: &str| Some("secret".to_string());
    let now = at("20240102T030405Z");
    let meta = [("x-amz-meta-color", "blue")];
    assert!(verify(&signed_with(&meta, &[], "us-east-1"), now, "us-east-1", secret).is_ok());
    for extra in [("x-amz-meta-size", "big"), ("x-amz-copy-source", "b/other"), ("x-amz-acl", "public-read")] {
        let err = verify(&signed_with(&meta, &[extra], "us-east-1"), now, "us-east-1", secret).unwrap_err();
        assert_eq!(err.code, Code::AccessDenied, "{extra:?}");
        assert!(err.message.contains("not signed") && err.message.contains(extra.0), "{}", err.message);
    }
    // Other headers may go unsigned, as AWS allows.
    assert!(verify(&signed_with(&[], &[("user-agent", "x")], "us-east-1"), now, "us-east-1", secret).is_ok());
    let err = verify(&signed_with(&[], &[], "eu-west-1"), now, "us-east-1", secret).unwrap_err();
    assert_eq!(err.code, Code::AuthorizationHeaderMalformed);
    assert!(err.message.contains("'eu-west-1'") && err.message.contains("'us-east-1'"), "{}", err.message);
}

/// AWS's documented presigned GET, with its query and signed headers as given.
fn presigned(query: &str, headers: &[(&str, &str)]) -> RequestParts<'static> {
    RequestParts {
        method: "GET",
        raw_path: "/test.txt",
        raw_query: Box::leak(query.to_string().into_boxed_str()),
        headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
    }
}

#[test]
fn a_presigned_url_signs_host_and_every_amz_header_and_binds_its_payload_hash() {
    let secret = |_: &str| Some(SECRET.to_string());
    let now = at("20130524T010000Z");
    let host = ("host", "examplebucket.s3.amazonaws.com");
    let query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    assert!(verify(&presigned(query, &[host]), now, "us-east-1", secret).is_ok());
    let err = verify(&presigned(query, &[host, ("x-amz-meta-x", "1")]), now, "us-east-1", secret).unwrap_err();
    assert_eq!(err.code, Code::AccessDenied);
    let err = verify(&presigned(query, &[host]), now, "eu-west-1", secret).unwrap_err();
    assert_eq!(err.code, Code::AuthorizationQueryParametersError);
    let no_host = query.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=range");
    let err = verify(&presigned(&no_host, &[host, ("range", "bytes=0-1")]), now, "us-east-1", secret).unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (Code::AccessDenied, "The host header must be signed."));

    // A payload hash in the query is signed, and the body must match it.
    let req = RequestParts {
        method: "PUT",
        raw_path: "/b/k",
        raw_query: "",
        headers: vec![("host".into(), "h".into()), ("x-amz-content-sha256".into(), EMPTY_SHA256.into())],
    };
    let scope =
        Scope { access_key: "AK".into(), date: "20240102".into(), region: "us-east-1".into(), service: "s3".into() };
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256={EMPTY_SHA256}&X-Amz-Credential=AK%2F20240102%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240102T030405Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host"
    );
    let unsigned = RequestParts {
        raw_query: Box::leak(query.clone().into_boxed_str()),
        headers: vec![("host".into(), "h".into())],
        ..req
    };
    let canonical = canonical_request(&unsigned, &["host".to_string()], EMPTY_SHA256, Some("X-Amz-Signature")).unwrap();
    let signature =
        sign_string(&signing_key("secret", &scope), &string_to_sign("20240102T030405Z", &scope, &canonical));
    let signed = presigned(&format!("{query}&X-Amz-Signature={signature}"), &[("host", "h")]);
    let signed = RequestParts { method: "PUT", raw_path: "/b/k", ..signed };
    let verified = verify(&signed, at("20240102T030500Z"), "us-east-1", |_| Some("secret".to_string())).unwrap();
    assert_eq!(verified.payload, PayloadMode::Sha256(EMPTY_SHA256.into()));
}
