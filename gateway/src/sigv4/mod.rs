//! AWS Signature Version 4, verified by our own code: the Authorization
//! header, presigned URLs, and the chunk and trailer signatures of
//! aws-chunked bodies. Signatures are compared in constant time.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Code, S3Error};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// SHA-256 of the empty string.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How far a request's clock may be from ours.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;
/// The longest validity AWS allows for a presigned URL (7 days).
pub const MAX_PRESIGN_SECONDS: i64 = 7 * 24 * 3600;

/// Characters SigV4 leaves unencoded: A-Z a-z 0-9 - _ . ~
const SIGV4_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub fn uri_encode(s: &str) -> String {
    utf8_percent_encode(s, SIGV4_ENCODE).to_string()
}

/// The parts of a request a signature covers.
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as sent, still percent-encoded.
    pub raw_query: &'a str,
    /// Header (lowercase name, value) pairs, in the order received.
    pub headers: Vec<(String, String)>,
}

impl RequestParts<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The signing scope of a request: `date/region/service/aws4_request`.
#[derive(Clone, Debug)]
pub struct Scope {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Scope {
    /// The `x-amz-date` of `now`, and the S3 scope of a key on that day.
    fn of(access_key: &str, region: &str, now: DateTime<Utc>) -> (String, Scope) {
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let scope = Scope {
            access_key: access_key.into(),
            date: amz_date[..8].into(),
            region: region.into(),
            service: "s3".into(),
        };
        (amz_date, scope)
    }

    pub fn string(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date, self.region, self.service)
    }

    fn parse(credential: &str) -> Result<Scope, S3Error> {
        let parts: Vec<&str> = credential.split('/').collect();
        let malformed = || S3Error::new(Code::AccessDenied).with_message("Malformed credential scope.");
        if parts.len() != 5 || parts[4] != "aws4_request" {
            return Err(malformed());
        }
        if parts[3] != "s3" {
            return Err(malformed());
        }
        Ok(Scope {
            access_key: parts[0].to_string(),
            date: parts[1].to_string(),
            region: parts[2].to_string(),
            service: parts[3].to_string(),
        })
    }
}

/// What a verified request says about its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadMode {
    /// Body not covered by the signature.
    Unsigned,
    /// Body must hash to this hex SHA-256.
    Sha256(String),
    /// aws-chunked body whose chunks are signed, chained from the seed signature.
    StreamingSigned { trailer: bool },
    /// aws-chunked body, unsigned, with trailing checksum headers.
    StreamingUnsignedTrailer,
}

/// A request whose signature checked out.
#[derive(Clone, Debug)]
pub struct Verified {
    pub access_key: String,
    pub payload: PayloadMode,
    /// For streaming bodies: what each chunk signature chains from.
    pub chunk_signer: Option<ChunkSigner>,
}

/// Parsed `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
struct AuthHeader {
    scope: Scope,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_auth_header(value: &str) -> Result<AuthHeader, S3Error> {
    let rest = value
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| S3Error::new(Code::InvalidArgument).with_message("Unsupported Authorization Type"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let malformed = || S3Error::new(Code::AccessDenied).with_message("Malformed Authorization header.");
    Ok(AuthHeader {
        scope: Scope::parse(credential.ok_or_else(malformed)?)?,
        signed_headers: signed.ok_or_else(malformed)?.split(';').map(str::to_string).collect(),
        signature: signature.ok_or_else(malformed)?.to_string(),
    })
}

pub fn parse_amz_date(value: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc())
}

/// Verifies a request signed in its Authorization header or as a presigned
/// URL, as AWS does: for `region` (the credential scope must name it), with
/// `host` and every `x-amz-*` header signed. `secret_of` looks up an access
/// key's secret.
pub fn verify(
    req: &RequestParts,
    now: DateTime<Utc>,
    region: &str,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Verified, S3Error> {
    if let Some(auth) = req.header("authorization") {
        verify_header(req, auth, now, region, secret_of)
    } else if query_has(req.raw_query, "X-Amz-Signature") {
        verify_presigned(req, now, region, secret_of)
    } else {
        Err(S3Error::new(Code::AccessDenied).with_message("Anonymous access is not allowed."))
    }
}

/// The access key a request claims, from its Authorization header or its
/// presigned query, before anything is verified.
pub fn access_key_of(req: &RequestParts) -> Option<String> {
    if let Some(auth) = req.header("authorization") {
        return parse_auth_header(auth).ok().map(|a| a.scope.access_key);
    }
    let params = parse_query(req.raw_query);
    let credential = params.iter().find(|(k, _)| k == "X-Amz-Credential").map(|(_, v)| v.as_str())?;
    credential.split('/').next().map(str::to_string)
}

/// Signs a request (header auth): returns the `x-amz-date` and
/// `authorization` values. `headers` must hold `host` and
/// `x-amz-content-sha256`; every header given is signed.
pub fn sign(
    req: &RequestParts,
    access_key: &str,
    secret_key: &str,
    region: &str,
    now: DateTime<Utc>,
) -> Result<(String, String), S3Error> {
    let (amz_date, scope) = Scope::of(access_key, region, now);
    let mut with_date = RequestParts {
        method: req.method,
        raw_path: req.raw_path,
        raw_query: req.raw_query,
        headers: req.headers.clone(),
    };
    with_date.headers.push(("x-amz-date".into(), amz_date.clone()));
    let mut signed: Vec<String> = with_date.headers.iter().map(|(n, _)| n.clone()).collect();
    signed.sort();
    signed.dedup();
    let payload_hash = with_date.header("x-amz-content-sha256").unwrap_or(UNSIGNED_PAYLOAD).to_string();
    let canonical = canonical_request(&with_date, &signed, &payload_hash, None)?;
    let signature = sign_string(&signing_key(secret_key, &scope), &string_to_sign(&amz_date, &scope, &canonical));
    let authorization = format!(
        "{ALGORITHM} Credential={access_key}/{}, SignedHeaders={}, Signature={signature}",
        scope.string(),
        signed.join(";")
    );
    Ok((amz_date, authorization))
}

/// What a presigned URL allows: one method on one path (as it will be
/// sent, percent-encoded) at one host, for `expires_s` seconds.
pub struct Presign<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    pub host: &'a str,
    pub expires_s: i64,
    /// More query parameters the URL carries, signed with it (say
    /// `response-content-disposition`), not yet encoded.
    pub params: &'a [(&'a str, &'a str)],
}

impl Presign<'_> {
    /// The URL's query string (with its signature) for the key
    /// `access_key`: only `host` is signed and the payload is not, as the
    /// AWS SDKs presign.
    pub fn query(&self, access_key: &str, secret_key: &str, region: &str, now: DateTime<Utc>) -> String {
        let (amz_date, scope) = Scope::of(access_key, region, now);
        let query = format!(
            "X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires={}&X-Amz-SignedHeaders=host",
            uri_encode(&format!("{access_key}/{}", scope.string())),
            self.expires_s.clamp(1, MAX_PRESIGN_SECONDS),
        );
        let query = self.params.iter().fold(query, |q, (k, v)| format!("{q}&{}={}", uri_encode(k), uri_encode(v)));
        let parts = RequestParts {
            method: self.method,
            raw_path: self.raw_path,
            raw_query: &query,
            headers: vec![("host".into(), self.host.into())],
        };
        let canonical =
            canonical_request(&parts, &["host".to_string()], UNSIGNED_PAYLOAD, None).expect("the host header is given");
        let signature = sign_string(&signing_key(secret_key, &scope), &string_to_sign(&amz_date, &scope, &canonical));
        format!("{query}&X-Amz-Signature={signature}")
    }
}

fn verify_header(
    req: &RequestParts,
    auth: &str,
    now: DateTime<Utc>,
    region: &str,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Verified, S3Error> {
    let auth = parse_auth_header(auth)?;
    if auth.scope.region != region {
        return Err(S3Error::new(Code::AuthorizationHeaderMalformed)
            .with_message(format!(
                "The authorization header is malformed; the region '{}' is wrong; expecting '{region}'",
                auth.scope.region
            ))
            .with_region(region));
    }
    let secret = secret_of(&auth.scope.access_key).ok_or(Code::InvalidAccessKeyId)?;
    let amz_date = req.header("x-amz-date").ok_or_else(|| {
        S3Error::new(Code::AccessDenied).with_message("AWS authentication requires a valid Date or x-amz-date header")
    })?;
    let date = parse_amz_date(amz_date).ok_or_else(|| {
        S3Error::new(Code::AccessDenied).with_message("AWS authentication requires a valid Date or x-amz-date header")
    })?;
    if (now - date).num_seconds().abs() > MAX_SKEW_SECONDS {
        return Err(S3Error::new(Code::RequestTimeTooSkewed));
    }
    if !amz_date.starts_with(&auth.scope.date) {
        return Err(S3Error::new(Code::SignatureDoesNotMatch)
            .with_message("The credential date does not match the request date."));
    }
    let payload_hash = req
        .header("x-amz-content-sha256")
        .ok_or_else(|| {
            S3Error::new(Code::InvalidRequest)
                .with_message("Missing required header for this request: x-amz-content-sha256")
        })?
        .to_string();
    let payload = match payload_hash.as_str() {
        UNSIGNED_PAYLOAD => PayloadMode::Unsigned,
        STREAMING_SIGNED => PayloadMode::StreamingSigned { trailer: false },
        STREAMING_SIGNED_TRAILER => PayloadMode::StreamingSigned { trailer: true },
        STREAMING_UNSIGNED_TRAILER => PayloadMode::StreamingUnsignedTrailer,
        hash if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            PayloadMode::Sha256(hash.to_ascii_lowercase())
        }
        _ => {
            return Err(S3Error::new(Code::InvalidArgument).with_message(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, a STREAMING-* value, or a SHA-256 hex digest",
            ));
        }
    };
    check_signed_headers(req, &auth.signed_headers)?;
    let canonical = canonical_request(req, &auth.signed_headers, &payload_hash, None)?;
    let key = signing_key(&secret, &auth.scope);
    let expected = sign_string(&key, &string_to_sign(amz_date, &auth.scope, &canonical));
    check_signature(&expected, &auth.signature)?;
    let chunk_signer = matches!(payload, PayloadMode::StreamingSigned { .. }).then(|| ChunkSigner {
        key,
        datetime: amz_date.to_string(),
        scope: auth.scope.string(),
        previous: expected,
    });
    Ok(Verified { access_key: auth.scope.access_key, payload, chunk_signer })
}

fn verify_presigned(
    req: &RequestParts,
    now: DateTime<Utc>,
    region: &str,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Verified, S3Error> {
    let params = parse_query(req.raw_query);
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let malformed = |what: &str| {
        S3Error::new(Code::AccessDenied).with_message(format!("Query-string authentication requires {what}."))
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(malformed("X-Amz-Algorithm=AWS4-HMAC-SHA256"));
    }
    let scope = Scope::parse(get("X-Amz-Credential").ok_or_else(|| malformed("X-Amz-Credential"))?)?;
    if scope.region != region {
        return Err(S3Error::new(Code::AuthorizationQueryParametersError)
            .with_message(format!(
                "Error parsing the X-Amz-Credential parameter; the region '{}' is wrong; expecting '{region}'",
                scope.region
            ))
            .with_region(region));
    }
    let secret = secret_of(&scope.access_key).ok_or(Code::InvalidAccessKeyId)?;
    let amz_date = get("X-Amz-Date").ok_or_else(|| malformed("X-Amz-Date"))?;
    let date = parse_amz_date(amz_date).ok_or_else(|| malformed("a valid X-Amz-Date"))?;
    let expires: i64 = get("X-Amz-Expires")
        .and_then(|v| v.parse().ok())
        .filter(|v| (1..=MAX_PRESIGN_SECONDS).contains(v))
        .ok_or_else(|| malformed("X-Amz-Expires between 1 and 604800 seconds"))?;
    if (date - now).num_seconds() > MAX_SKEW_SECONDS {
        return Err(S3Error::new(Code::AccessDenied).with_message("Request is not valid yet"));
    }
    if (now - date).num_seconds() > expires {
        return Err(S3Error::new(Code::AccessDenied).with_message("Request has expired"));
    }
    if !amz_date.starts_with(&scope.date) {
        return Err(S3Error::new(Code::SignatureDoesNotMatch));
    }
    let signed_headers: Vec<String> = get("X-Amz-SignedHeaders")
        .ok_or_else(|| malformed("X-Amz-SignedHeaders"))?
        .split(';')
        .map(str::to_string)
        .collect();
    check_signed_headers(req, &signed_headers)?;
    // A payload hash in the (signed) query binds the body, as in a header.
    let payload_hash = get("X-Amz-Content-Sha256").unwrap_or(UNSIGNED_PAYLOAD).to_string();
    let payload = match payload_hash.as_str() {
        UNSIGNED_PAYLOAD => PayloadMode::Unsigned,
        hash if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            PayloadMode::Sha256(hash.to_ascii_lowercase())
        }
        _ => {
            return Err(S3Error::new(Code::InvalidArgument).with_message(
                "X-Amz-Content-Sha256 of a presigned URL must be UNSIGNED-PAYLOAD or a SHA-256 hex digest",
            ))
        }
    };
    let canonical = canonical_request(req, &signed_headers, &payload_hash, Some("X-Amz-Signature"))?;
    let key = signing_key(&secret, &scope);
    let expected = sign_string(&key, &string_to_sign(amz_date, &scope, &canonical));
    check_signature(&expected, get("X-Amz-Signature").unwrap_or_default())?;
    Ok(Verified { access_key: scope.access_key, payload, chunk_signer: None })
}

/// Verifies the signature of a browser-form (POST) policy. SigV4 forms
/// sign the base64 policy with the scope's key; SigV2 forms (still sent by
/// some tools) with HMAC-SHA1 of the secret.
pub fn verify_post_policy(
    policy_b64: &str,
    signature: &PostSignature,
    secret: &str,
    region: &str,
) -> Result<(), S3Error> {
    match signature {
        PostSignature::V4 { credential, signature } => {
            let scope = Scope::parse(credential)?;
            if scope.region != region {
                return Err(S3Error::new(Code::AuthorizationQueryParametersError)
                    .with_message(format!(
                        "Error parsing the X-Amz-Credential parameter; the region '{}' is wrong; expecting '{region}'",
                        scope.region
                    ))
                    .with_region(region));
            }
            let expected = sign_string(&signing_key(secret, &scope), policy_b64);
            check_signature(&expected, &signature.to_ascii_lowercase())
        }
        PostSignature::V2 { signature } => {
            use base64::Engine;
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
            mac.update(policy_b64.as_bytes());
            let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            check_signature(&expected, signature)
        }
    }
}

/// The signature fields of a POST form.
pub enum PostSignature {
    V4 { credential: String, signature: String },
    V2 { signature: String },
}

/// `host` and every `x-amz-*` header present must be among the signed
/// headers: an unsigned one could say anything (a copy source, metadata)
/// under a valid signature.
fn check_signed_headers(req: &RequestParts, signed: &[String]) -> Result<(), S3Error> {
    if !signed.iter().any(|h| h == "host") {
        return Err(S3Error::new(Code::AccessDenied).with_message("The host header must be signed."));
    }
    let mut unsigned: Vec<&str> = req
        .headers
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| name.starts_with("x-amz-") && !signed.iter().any(|s| s == name))
        .collect();
    unsigned.dedup();
    if unsigned.is_empty() {
        Ok(())
    } else {
        Err(S3Error::new(Code::AccessDenied).with_message(format!(
            "There were headers present in the request which were not signed: {}",
            unsigned.join(", ")
        )))
    }
}

fn check_signature(expected: &str, given: &str) -> Result<(), S3Error> {
    if expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
        Ok(())
    } else {
        Err(S3Error::new(Code::SignatureDoesNotMatch))
    }
}

fn query_has(raw_query: &str, name: &str) -> bool {
    raw_query.split('&').any(|pair| pair.split('=').next() == Some(name))
}

/// Decodes a query string into (name, value) pairs. `+` is taken literally,
/// as SigV4 clients encode spaces as `%20`.
pub fn parse_query(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The canonical URI: each path segment decoded once, then encoded the SigV4 way.
fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".into();
    }
    raw_path.split('/').map(|segment| uri_encode(&decode(segment))).collect::<Vec<_>>().join("/")
}

fn canonical_query(raw_query: &str, exclude: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = parse_query(raw_query)
        .into_iter()
        .filter(|(k, _)| Some(k.as_str()) != exclude)
        .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
        .collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

fn canonical_request(
    req: &RequestParts,
    signed_headers: &[String],
    payload_hash: &str,
    exclude_query: Option<&str>,
) -> Result<String, S3Error> {
    let mut out = String::with_capacity(512);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.raw_path));
    out.push('\n');
    out.push_str(&canonical_query(req.raw_query, exclude_query));
    out.push('\n');
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(S3Error::new(Code::AccessDenied).with_message(format!("Signed header {name} is missing.")));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

fn string_to_sign(amz_date: &str, scope: &Scope, canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{}\n{}", scope.string(), hex::encode(Sha256::digest(canonical_request)))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub fn signing_key(secret: &str, scope: &Scope) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes());
    let k_region = hmac(&k_date, scope.region.as_bytes());
    let k_service = hmac(&k_region, scope.service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn sign_string(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Verifies the chain of chunk signatures of a signed aws-chunked body.
#[derive(Clone, Debug)]
pub struct ChunkSigner {
    key: [u8; 32],
    datetime: String,
    scope: String,
    previous: String,
}

impl ChunkSigner {
    /// Checks one chunk's signature and advances the chain.
    pub fn verify_chunk(&mut self, data: &[u8], signature: &str) -> Result<(), S3Error> {
        let hash = hex::encode(Sha256::digest(data));
        self.verify_next("AWS4-HMAC-SHA256-PAYLOAD", &format!("{EMPTY_SHA256}\n{hash}"), signature)
    }

    /// Checks the signature over the trailing headers (`name:value\n` each).
    pub fn verify_trailer(&mut self, canonical_trailers: &str, signature: &str) -> Result<(), S3Error> {
        self.verify_next("AWS4-HMAC-SHA256-TRAILER", &hex::encode(Sha256::digest(canonical_trailers)), signature)
    }

    /// Each signature signs the previous one and the hashes of what it covers.
    fn verify_next(&mut self, algorithm: &str, hashes: &str, signature: &str) -> Result<(), S3Error> {
        let expected = self.next_signature(algorithm, hashes);
        check_signature(&expected, signature)?;
        self.previous = expected;
        Ok(())
    }

    fn next_signature(&self, algorithm: &str, hashes: &str) -> String {
        let to_sign = format!("{algorithm}\n{}\n{}\n{}\n{hashes}", self.datetime, self.scope, self.previous);
        sign_string(&self.key, &to_sign)
    }
}

/// A client's side of a signed aws-chunked body, for tests and fuzzing of the decoder.
#[cfg(any(test, feature = "fuzzing"))]
pub mod test_signer {
    use super::*;

    /// A signer and a verifier that start from the same seed signature.
    pub fn pair() -> (ChunkSigner, ChunkSigner) {
        let scope = Scope {
            access_key: "AK".into(),
            date: "20240102".into(),
            region: "us-east-1".into(),
            service: "s3".into(),
        };
        let signer = ChunkSigner {
            key: signing_key("secret", &scope),
            datetime: "20240102T030405Z".into(),
            scope: scope.string(),
            previous: "seed".into(),
        };
        (signer.clone(), signer)
    }

    /// The signature of the next chunk, advancing the chain.
    pub fn sign_chunk(signer: &mut ChunkSigner, data: &[u8]) -> String {
        let hashes = format!("{EMPTY_SHA256}\n{}", hex::encode(Sha256::digest(data)));
        signer.previous = signer.next_signature("AWS4-HMAC-SHA256-PAYLOAD", &hashes);
        signer.previous.clone()
    }

    /// The signature of the trailing headers, advancing the chain.
    pub fn sign_trailer(signer: &mut ChunkSigner, canonical_trailers: &str) -> String {
        let hash = hex::encode(Sha256::digest(canonical_trailers));
        signer.previous = signer.next_signature("AWS4-HMAC-SHA256-TRAILER", &hash);
        signer.previous.clone()
    }
}

#[cfg(test)]
mod tests;
