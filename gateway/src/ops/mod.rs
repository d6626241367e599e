//! S3 operations, one function per operation, grouped by area, and the
//! request context they share.

pub mod bucket;
pub mod conditions;
pub mod cors;
pub mod lifecycle;
pub mod list;
pub mod lock;
pub mod multipart;
pub mod object;
pub mod post_object;
pub mod sse;
pub mod tagging;

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use jadfs_meta::api::{BucketInfo, LocatedObject, ObjectMetadata, Permission};
use tokio::sync::OnceCell;

use crate::admission::Admitted;
use crate::auth::{permits, Principal};
use crate::body::{BodyHeaders, ObjectBody, RequestBody};
use crate::checksum::Algorithm;
use crate::error::{Code, S3Error};
use crate::sigv4::{PayloadMode, Verified};
use crate::xml::XmlWriter;
use crate::Gateway;

/// Largest object a single PUT (or one part) may carry: 5 GiB, as AWS.
pub const MAX_PUT_SIZE: u64 = 5 << 30;
/// Largest total of `x-amz-meta-*` names and values: 2 KB, as AWS.
pub const MAX_USER_METADATA: usize = 2048;

/// Headers S3 stores with an object and returns on GET and HEAD.
const STORED_HEADERS: [&str; 5] =
    ["cache-control", "content-disposition", "content-encoding", "content-language", "expires"];

/// A verified request on its way to an operation.
pub struct Ctx<'a> {
    pub req: &'a HttpRequest,
    pub gw: Arc<Gateway>,
    pub verified: Verified,
    /// Who signed the request.
    pub principal: Principal,
    pub query: Vec<(String, String)>,
    /// The bucket the request addresses, if any: its name, and its
    /// metadata once read (at most once per request).
    bucket: Option<(String, OnceCell<BucketInfo>)>,
    /// The request's places in the gateway, until a streamed answer takes them.
    admitted: std::sync::Mutex<Option<Admitted>>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        req: &'a HttpRequest,
        gw: Arc<Gateway>,
        (verified, principal): (Verified, Principal),
        query: Vec<(String, String)>,
        bucket: Option<String>,
        admitted: Admitted,
    ) -> Ctx<'a> {
        let bucket = bucket.map(|name| (name, OnceCell::new()));
        Ctx { req, gw, verified, principal, query, bucket, admitted: std::sync::Mutex::new(Some(admitted)) }
    }

    /// The request's places, for an answer that streams after the handler
    /// returns: they are held until its last byte.
    pub fn take_admission(&self) -> Option<Admitted> {
        self.admitted.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Ctx<'_> {
    /// The name of the bucket the request addresses ("" for ListBuckets).
    pub fn bucket_name(&self) -> &str {
        self.bucket.as_ref().map(|(name, _)| name.as_str()).unwrap_or_default()
    }

    /// The bucket the request addresses, read once; NoSuchBucket if missing.
    pub async fn bucket(&self) -> Result<&BucketInfo, S3Error> {
        let Some((name, info)) = &self.bucket else { return Err(Code::NoSuchBucket.into()) };
        info.get_or_try_init(|| async { self.gw.meta.get_bucket(name).await?.ok_or(Code::NoSuchBucket.into()) }).await
    }

    /// Checks that the request's key may act on its bucket with `needed`.
    pub async fn authorize(&self, needed: Permission) -> Result<(), S3Error> {
        if self.principal.root {
            return Ok(());
        }
        permits(&self.principal, self.bucket().await?, needed)
    }

    /// An object of the request's bucket (its `versionId`, or the current
    /// one) and where its chunks are; NoSuchBucket, NoSuchKey or
    /// NoSuchVersion otherwise.
    pub async fn object(&self, key: &str) -> Result<LocatedObject, S3Error> {
        self.gw.get_object(self.bucket_name(), key, self.param("versionId")).await
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The request body as object bytes, with aws-chunked framing removed
    /// and every declared length, signature and checksum checked.
    pub fn object_body(&self, body: RequestBody) -> Result<ObjectBody, S3Error> {
        self.body_with(body, true)
    }

    /// `checksum_headers_are_the_body's`: false where `x-amz-checksum-*`
    /// describes something else (CompleteMultipartUpload: the object).
    fn body_with(&self, body: RequestBody, checksum_headers_are_the_bodys: bool) -> Result<ObjectBody, S3Error> {
        let number = |name: &str| -> Result<Option<u64>, S3Error> {
            self.header(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| S3Error::new(Code::InvalidArgument).with_message(format!("Invalid {name}")))
                })
                .transpose()
        };
        let checksum_header = Algorithm::ALL
            .into_iter()
            .find_map(|a| self.header(&a.header()).map(|v| (a, v.trim().to_string())))
            .filter(|_| checksum_headers_are_the_bodys);
        let trailer_checksum = match self.header("x-amz-trailer") {
            Some(name) => Some(Algorithm::from_header(name.trim()).ok_or_else(|| {
                S3Error::new(Code::InvalidRequest).with_message(format!("Unsupported trailer {name}"))
            })?),
            None => None,
        };
        let headers = BodyHeaders {
            content_length: number("content-length")?,
            decoded_content_length: number("x-amz-decoded-content-length")?,
            checksum_header,
            trailer_checksum,
        };
        let chunked_transfer =
            self.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
        if headers.content_length.is_none() && !chunked_transfer && self.req.method() == actix_web::http::Method::PUT {
            return Err(S3Error::new(Code::MissingContentLength));
        }
        if matches!(self.verified.payload, PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer)
            && headers.decoded_content_length.is_none()
            && headers.content_length.is_some()
        {
            return Err(
                S3Error::new(Code::MissingContentLength).with_message("x-amz-decoded-content-length is required")
            );
        }
        ObjectBody::new(body, &self.verified.payload, self.verified.chunk_signer.clone(), &headers)
    }

    /// A small request body (XML), read whole, bounded, and checked against
    /// Content-MD5 and the signed payload hash when they are given.
    pub async fn small_body(&self, body: RequestBody, max: usize) -> Result<bytes::Bytes, S3Error> {
        self.small_body_with(body, max, true).await
    }

    /// The body of CompleteMultipartUpload, whose `x-amz-checksum-*` header
    /// is the expected checksum of the object, not of this body.
    pub async fn complete_body(&self, body: RequestBody, max: usize) -> Result<bytes::Bytes, S3Error> {
        self.small_body_with(body, max, false).await
    }

    async fn small_body_with(&self, body: RequestBody, max: usize, checksums: bool) -> Result<bytes::Bytes, S3Error> {
        let mut body = self.body_with(body, checksums)?;
        let mut out = bytes::BytesMut::new();
        while let Some(piece) = body.next().await? {
            if out.len() + piece.len() > max {
                return Err(S3Error::new(Code::MalformedXML).with_message("The XML you provided was too large."));
            }
            out.extend_from_slice(&piece);
        }
        if let Some(expected) = self.content_md5()? {
            if md5_of(&out) != expected {
                return Err(S3Error::new(Code::BadDigest));
            }
        }
        Ok(out.freeze())
    }

    /// Refuses a request without Content-MD5 or a flexible checksum, where
    /// S3 requires one (lifecycle, object lock, DeleteObjects in AWS's
    /// newer rules).
    pub fn require_integrity_header(&self) -> Result<(), S3Error> {
        let checksum = self.req.headers().keys().any(|name| name.as_str().starts_with("x-amz-checksum-"));
        let trailer = self.header("x-amz-trailer").is_some_and(|t| t.trim().starts_with("x-amz-checksum-"));
        if self.header("content-md5").is_some() || checksum || trailer {
            Ok(())
        } else {
            Err(S3Error::new(Code::InvalidRequest)
                .with_message("Missing required header for this request: Content-MD5"))
        }
    }

    /// The decoded `Content-MD5` header, if sent.
    pub fn content_md5(&self) -> Result<Option<[u8; 16]>, S3Error> {
        let Some(value) = self.header("content-md5") else { return Ok(None) };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| S3Error::new(Code::InvalidDigest))?;
        bytes.try_into().map(Some).map_err(|_| S3Error::new(Code::InvalidDigest))
    }

    /// Content-Type, stored headers and `x-amz-meta-*` of the request.
    pub fn object_metadata(&self) -> Result<ObjectMetadata, S3Error> {
        let mut headers = Vec::new();
        for name in STORED_HEADERS {
            if let Some(value) = self.header(name) {
                let value = if name == "content-encoding" && value.contains("aws-chunked") {
                    // aws-chunked is framing, not a property of the object.
                    let parts: Vec<&str> =
                        value.split(',').map(str::trim).filter(|p| *p != "aws-chunked" && !p.is_empty()).collect();
                    parts.join(", ")
                } else {
                    value.to_string()
                };
                if !value.is_empty() {
                    headers.push((name.to_string(), value));
                }
            }
        }
        let mut user_metadata = Vec::new();
        let mut total = 0;
        for (name, value) in self.req.headers() {
            if let Some(short) = name.as_str().strip_prefix("x-amz-meta-") {
                // Stored as sent; bytes that are not UTF-8 are replaced.
                let value = String::from_utf8_lossy(value.as_bytes());
                total += short.len() + value.len();
                user_metadata.push((short.to_string(), value.to_string()));
            }
        }
        if total > MAX_USER_METADATA {
            return Err(S3Error::new(Code::MetadataTooLarge));
        }
        user_metadata.sort();
        let (retention, legal_hold) = lock::lock_from(|name| self.header(name), jadfs_common::now_ms())?;
        Ok(ObjectMetadata {
            content_type: self.header("content-type").map(str::to_string),
            headers,
            user_metadata,
            tags: tagging::tags_from_header(self)?,
            retention,
            legal_hold,
            encryption: None,
        })
    }
}

pub fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(data).into()
}

pub fn datetime(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// `2009-10-12T17:50:30.000Z`, as S3's XML prints times.
pub fn iso8601(ms: i64) -> String {
    datetime(ms).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `Wed, 21 Oct 2015 07:28:00 GMT`, as HTTP headers print times.
pub fn http_date(ms: i64) -> String {
    datetime(ms).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

pub fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(value.trim()).ok().map(|t| t.with_timezone(&Utc))
}

/// A 200 answer with an XML body.
pub fn xml_response(x: XmlWriter) -> HttpResponse {
    HttpResponse::Ok().content_type("application/xml").body(x.finish())
}

/// Percent-encodes a key or prefix for `encoding-type=url` listings.
pub fn url_encode_key(key: &str) -> String {
    crate::sigv4::uri_encode(key).replace("%2F", "/")
}
