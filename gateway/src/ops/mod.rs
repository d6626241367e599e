//! S3 operations, one function per operation, grouped by area.

pub mod bucket;
pub mod cors;
pub mod list;
pub mod multipart;
pub mod object;
pub mod post_object;
pub mod tagging;

use std::sync::Arc;

use actix_web::{web, HttpRequest};
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use jadfs_meta::api::{ObjectMetadata, WriteCondition};

use crate::body::{BodyHeaders, ObjectBody};
use crate::checksum::Algorithm;
use crate::error::S3Error;
use crate::sigv4::{PayloadMode, Verified};
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
    pub query: Vec<(String, String)>,
}

impl Ctx<'_> {
    pub fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The request body as object bytes, with aws-chunked framing removed
    /// and every declared length, signature and checksum checked.
    pub fn object_body(&self, payload: web::Payload) -> Result<ObjectBody, S3Error> {
        self.body_with(payload, true)
    }

    /// `checksum_headers_are_the_body's`: false where `x-amz-checksum-*`
    /// describes something else (CompleteMultipartUpload: the object).
    fn body_with(&self, payload: web::Payload, checksum_headers_are_the_bodys: bool) -> Result<ObjectBody, S3Error> {
        let number = |name: &str| -> Result<Option<u64>, S3Error> {
            self.header(name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| S3Error::InvalidArgument().with_message(format!("Invalid {name}")))
                })
                .transpose()
        };
        let checksum_header = Algorithm::ALL
            .into_iter()
            .find_map(|a| self.header(&a.header()).map(|v| (a, v.trim().to_string())))
            .filter(|_| checksum_headers_are_the_bodys);
        let trailer_checksum = match self.header("x-amz-trailer") {
            Some(name) => Some(
                Algorithm::from_header(name.trim())
                    .ok_or_else(|| S3Error::InvalidRequest().with_message(format!("Unsupported trailer {name}")))?,
            ),
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
            return Err(S3Error::MissingContentLength());
        }
        if matches!(self.verified.payload, PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer)
            && headers.decoded_content_length.is_none()
            && headers.content_length.is_some()
        {
            return Err(S3Error::MissingContentLength().with_message("x-amz-decoded-content-length is required"));
        }
        ObjectBody::new(payload, &self.verified.payload, self.verified.chunk_signer.clone(), &headers)
    }

    /// A small request body (XML), read whole, bounded, and checked against
    /// Content-MD5 and the signed payload hash when they are given.
    pub async fn small_body(&self, payload: web::Payload, max: usize) -> Result<bytes::Bytes, S3Error> {
        self.small_body_with(payload, max, true).await
    }

    /// The body of CompleteMultipartUpload, whose `x-amz-checksum-*` header
    /// is the expected checksum of the object, not of this body.
    pub async fn complete_body(&self, payload: web::Payload, max: usize) -> Result<bytes::Bytes, S3Error> {
        self.small_body_with(payload, max, false).await
    }

    async fn small_body_with(
        &self,
        payload: web::Payload,
        max: usize,
        checksums: bool,
    ) -> Result<bytes::Bytes, S3Error> {
        let mut body = self.body_with(payload, checksums)?;
        let mut out = bytes::BytesMut::new();
        while let Some(piece) = body.next().await? {
            if out.len() + piece.len() > max {
                return Err(S3Error::MalformedXML().with_message("The XML you provided was too large."));
            }
            out.extend_from_slice(&piece);
        }
        if let Some(expected) = self.content_md5()? {
            if md5_of(&out) != expected {
                return Err(S3Error::BadDigest());
            }
        }
        Ok(out.freeze())
    }

    /// The decoded `Content-MD5` header, if sent.
    pub fn content_md5(&self) -> Result<Option<[u8; 16]>, S3Error> {
        let Some(value) = self.header("content-md5") else { return Ok(None) };
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| S3Error::InvalidDigest())?;
        bytes.try_into().map(Some).map_err(|_| S3Error::InvalidDigest())
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
            return Err(S3Error::MetadataTooLarge());
        }
        user_metadata.sort();
        Ok(ObjectMetadata {
            content_type: self.header("content-type").map(str::to_string),
            headers,
            user_metadata,
            tags: tagging::tags_from_header(self)?,
        })
    }
}

impl Ctx<'_> {
    /// `If-Match` / `If-None-Match` of a write, if any.
    pub fn write_condition(&self) -> Option<WriteCondition> {
        let condition = WriteCondition {
            if_match: self.header("if-match").map(str::to_string),
            if_none_match: self.header("if-none-match").map(str::to_string),
        };
        (condition != WriteCondition::default()).then_some(condition)
    }

    /// Checks a write condition before any byte is read, so a write that
    /// cannot succeed is refused at once.
    pub async fn check_write_condition(
        &self,
        bucket: &str,
        key: &str,
        condition: &WriteCondition,
    ) -> Result<(), S3Error> {
        let current = match self.gw.get_object(bucket, key).await {
            Ok(object) => Some(object.manifest.etag),
            Err(e) if e.code == "NoSuchKey" => None,
            Err(e) => return Err(e),
        };
        condition.check(current.as_deref()).map_err(S3Error::from)
    }
}

/// A conditional write that passed its first check but failed when it
/// applied lost a race with another write: S3 answers 409.
pub fn conditional_commit_error(e: S3Error, condition: &Option<WriteCondition>) -> S3Error {
    let lost_race = condition.is_some() && (e.code == "PreconditionFailed" || e.code == "NoSuchKey");
    if lost_race {
        S3Error::ConditionalRequestConflict()
    } else {
        e
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

/// Percent-encodes a key or prefix for `encoding-type=url` listings.
pub fn url_encode_key(key: &str) -> String {
    crate::sigv4::uri_encode(key).replace("%2F", "/")
}
