//! POST Object: uploads from a browser form, authorised by a policy that a
//! key holder signed (SigV4 fields, or the older SigV2 ones). The form is
//! read as it streams: fields first (bounded), then the file, which goes to
//! storage piece by piece like any PUT body.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use jadfs_common::{ETag, ObjectManifest};
use jadfs_meta::api::{ObjectMetadata, Permission};
use jadfs_meta::Command;
use serde_json::Value;

use super::{tagging, xml_response, MAX_PUT_SIZE, MAX_USER_METADATA};
use crate::auth::permits;
use crate::body::{BodyReader, RequestBody};
use crate::data::{self, ByteSource};
use crate::error::{Code, S3Error};
use crate::sigv4::{self, PostSignature};
use crate::target::validate_key;
use crate::xml::{self, XmlWriter};
use crate::Gateway;

const MAX_FIELD: usize = 64 << 10;
const MAX_FIELDS_TOTAL: usize = 1 << 20;
/// Fields a policy need not mention.
const EXEMPT: [&str; 6] = ["awsaccesskeyid", "signature", "x-amz-signature", "policy", "file", "x-amz-security-token"];

/// One form field: name as sent, and value.
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) value: String,
}

pub(crate) struct Form {
    pub(crate) fields: Vec<Field>,
    pub(crate) filename: Option<String>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.value.as_str())
    }

    /// Who signed the form's policy, and how (SigV4 fields or SigV2 ones).
    fn signature(&self) -> Result<(String, PostSignature), S3Error> {
        match (self.get("x-amz-signature"), self.get("awsaccesskeyid")) {
            (Some(signature), _) => {
                if self.get("x-amz-algorithm") != Some(sigv4::ALGORITHM) {
                    return Err(
                        S3Error::new(Code::InvalidArgument).with_message("x-amz-algorithm must be AWS4-HMAC-SHA256")
                    );
                }
                let credential = self.get("x-amz-credential").ok_or_else(|| {
                    S3Error::new(Code::InvalidArgument)
                        .with_message("Bucket POST must contain a field named 'x-amz-credential'.")
                })?;
                let access_key = credential.split('/').next().unwrap_or_default().to_string();
                Ok((
                    access_key,
                    PostSignature::V4 { credential: credential.to_string(), signature: signature.to_string() },
                ))
            }
            (None, Some(access_key)) => {
                let signature = self.get("signature").ok_or_else(|| {
                    S3Error::new(Code::InvalidArgument)
                        .with_message("Bucket POST must contain a field named 'Signature'.")
                })?;
                Ok((access_key.to_string(), PostSignature::V2 { signature: signature.to_string() }))
            }
            (None, None) => Err(S3Error::new(Code::AccessDenied).with_message("Anonymous access is not allowed.")),
        }
    }

    /// Content type, stored headers, user metadata and tags from the fields.
    fn metadata(&self) -> Result<ObjectMetadata, S3Error> {
        let mut headers = Vec::new();
        for name in ["cache-control", "content-disposition", "content-encoding", "expires"] {
            if let Some(value) = self.get(name) {
                headers.push((name.to_string(), value.to_string()));
            }
        }
        let mut user_metadata: Vec<(String, String)> = self
            .fields
            .iter()
            .filter_map(|f| {
                let lower = f.name.to_ascii_lowercase();
                lower.strip_prefix("x-amz-meta-").map(|n| (n.to_string(), f.value.clone()))
            })
            .collect();
        if user_metadata.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>() > MAX_USER_METADATA {
            return Err(S3Error::new(Code::MetadataTooLarge));
        }
        user_metadata.sort();
        let tags = match self.get("tagging") {
            Some(xml_tags) => {
                let tags = xml::parse_tagging(xml_tags.as_bytes())?;
                tagging::validate_tags(&tags, tagging::MAX_OBJECT_TAGS)?;
                tags
            }
            None => Vec::new(),
        };
        let (retention, legal_hold) = super::lock::lock_from(|name| self.get(name), jadfs_common::now_ms())?;
        Ok(ObjectMetadata {
            content_type: self.get("content-type").map(str::to_string),
            headers,
            user_metadata,
            tags,
            retention,
            legal_hold,
            encryption: None,
        })
    }

    /// The answer the form asked for: a redirect, 200, 201 with XML, or 204.
    fn answer(&self, bucket: &str, key: &str, etag: &ETag) -> HttpResponse {
        let location = format!("/{bucket}/{}", crate::sigv4::uri_encode(key).replace("%2F", "/"));
        if let Some(redirect) =
            self.get("success_action_redirect").filter(|r| r.starts_with("http://") || r.starts_with("https://"))
        {
            let separator = if redirect.contains('?') { '&' } else { '?' };
            let target = format!(
                "{redirect}{separator}bucket={}&key={}&etag={}",
                sigv4::uri_encode(bucket),
                sigv4::uri_encode(key),
                sigv4::uri_encode(etag.quoted())
            );
            return HttpResponse::SeeOther()
                .insert_header(("location", target))
                .insert_header(("etag", etag.quoted()))
                .finish();
        }
        match self.get("success_action_status") {
            Some("200") => {
                HttpResponse::Ok().insert_header(("etag", etag.quoted())).insert_header(("location", location)).finish()
            }
            Some("201") => {
                let mut x = XmlWriter::new();
                x.open("PostResponse");
                x.element("Location", &location);
                x.element("Bucket", bucket);
                x.element("Key", key);
                x.element("ETag", etag.quoted());
                x.close("PostResponse");
                let mut response = xml_response(x);
                *response.status_mut() = actix_web::http::StatusCode::CREATED;
                response
            }
            _ => HttpResponse::NoContent()
                .insert_header(("etag", etag.quoted()))
                .insert_header(("location", location))
                .finish(),
        }
    }
}

fn malformed(why: &str) -> S3Error {
    S3Error::new(Code::MalformedPOSTRequest)
        .with_message(format!("The body of your POST request is not well-formed multipart/form-data: {why}"))
}

fn boundary_of(content_type: &str) -> Option<String> {
    content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_string())
        .filter(|b| !b.is_empty() && b.len() <= 200)
}

/// Reads fields up to the file part, leaving the reader at the file's first byte.
async fn read_fields(reader: &mut BodyReader, boundary: &str) -> Result<Form, S3Error> {
    let opening = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    while reader.read_until(opening.as_bytes(), 4096).await?.is_some() {}
    let mut form = Form { fields: Vec::new(), filename: None };
    let mut total = 0;
    loop {
        if reader.expect(b"--").await? {
            return Err(
                S3Error::new(Code::InvalidArgument).with_message("POST requires exactly one file upload per request.")
            );
        }
        if !reader.expect(b"\r\n").await? {
            return Err(malformed("bad part delimiter"));
        }
        let (mut name, mut filename) = (None, None);
        while let Some(line) = reader.read_line().await? {
            if line.is_empty() {
                break;
            }
            let (header, value) = line.split_once(':').ok_or_else(|| malformed("bad part header"))?;
            if header.trim().eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').map(str::trim) {
                    if let Some(v) = param.strip_prefix("name=") {
                        name = Some(v.trim_matches('"').to_string());
                    } else if let Some(v) = param.strip_prefix("filename=") {
                        filename = Some(v.trim_matches('"').to_string());
                    }
                }
            }
        }
        let name = name.ok_or_else(|| malformed("a part has no name"))?;
        if name.eq_ignore_ascii_case("file") {
            form.filename = filename;
            return Ok(form);
        }
        let mut value = Vec::new();
        while let Some(piece) = reader.read_until(delimiter.as_bytes(), MAX_FIELD).await? {
            value.extend_from_slice(&piece);
            total += piece.len();
            if value.len() > MAX_FIELD || total > MAX_FIELDS_TOTAL {
                return Err(S3Error::new(Code::InvalidArgument).with_message("Form fields are too large."));
            }
        }
        let value = String::from_utf8(value).map_err(|_| malformed("a field is not UTF-8"))?;
        form.fields.push(Field { name, value });
    }
}

/// The file part's bytes, up to the closing delimiter.
struct FormFile<'a> {
    reader: &'a mut BodyReader,
    delimiter: Vec<u8>,
    done: bool,
}

impl ByteSource for FormFile<'_> {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, S3Error> {
        if self.done {
            return Ok(None);
        }
        match self.reader.read_until(&self.delimiter, 1 << 20).await? {
            Some(piece) => Ok(Some(piece)),
            None => {
                self.done = true;
                Ok(None)
            }
        }
    }
}

/// What a checked policy allows: the content length range.
pub(crate) struct Policy {
    min_length: u64,
    max_length: u64,
}

fn policy_error(why: &str) -> S3Error {
    S3Error::new(Code::InvalidPolicyDocument).with_message(format!("Invalid Policy: {why}"))
}

fn denied(why: &str) -> S3Error {
    S3Error::new(Code::AccessDenied).with_message(format!("Invalid according to Policy: {why}"))
}

/// Checks the decoded policy against the form: expiration, every
/// condition, and that every field is covered by one.
pub(crate) fn check_policy(policy: &Value, form: &Form, bucket: &str, now: DateTime<Utc>) -> Result<Policy, S3Error> {
    let object = policy.as_object().ok_or_else(|| policy_error("not a JSON object"))?;
    let expiration =
        object.get("expiration").and_then(Value::as_str).ok_or_else(|| policy_error("Policy missing expiration"))?;
    // ISO 8601 as AWS writes it: 2024-01-01T00:00:00Z, optionally with fractions.
    let iso = expiration.len() >= 20 && expiration.as_bytes()[10] == b'T' && expiration.ends_with('Z');
    let expiration = DateTime::parse_from_rfc3339(expiration)
        .ok()
        .filter(|_| iso)
        .ok_or_else(|| policy_error("Invalid 'expiration' value"))?;
    if expiration < now {
        return Err(denied("Policy expired."));
    }
    let conditions =
        object.get("conditions").and_then(Value::as_array).ok_or_else(|| policy_error("Policy missing conditions"))?;
    let value_of = |field: &str| -> Option<String> {
        if field.eq_ignore_ascii_case("bucket") {
            Some(bucket.to_string())
        } else {
            form.get(field).map(str::to_string)
        }
    };
    let mut covered: Vec<String> = Vec::new();
    let mut limits = Policy { min_length: 0, max_length: MAX_PUT_SIZE };
    for condition in conditions {
        match condition {
            Value::Object(map) => {
                if map.len() != 1 {
                    return Err(policy_error("a condition must name one field"));
                }
                let (field, expected) = map.iter().next().expect("one entry");
                let expected = expected.as_str().ok_or_else(|| policy_error("condition values are strings"))?;
                if value_of(field).as_deref() != Some(expected) {
                    return Err(denied(&format!("Policy Condition failed: [\"eq\", \"${field}\", \"{expected}\"]")));
                }
                covered.push(field.to_ascii_lowercase());
            }
            Value::Array(items) => {
                let op = items.first().and_then(Value::as_str).ok_or_else(|| policy_error("malformed condition"))?;
                if op.eq_ignore_ascii_case("content-length-range") {
                    let bound = |i: usize| items.get(i).and_then(Value::as_i64).filter(|n| *n >= 0);
                    let (Some(min), Some(max)) = (bound(1), bound(2)) else {
                        return Err(policy_error("content-length-range needs two non-negative integers"));
                    };
                    limits = Policy { min_length: min as u64, max_length: (max as u64).min(MAX_PUT_SIZE) };
                    continue;
                }
                if items.len() != 3 {
                    return Err(policy_error("malformed condition"));
                }
                let field = items[1]
                    .as_str()
                    .and_then(|f| f.strip_prefix('$'))
                    .ok_or_else(|| policy_error("malformed condition"))?;
                let expected = items[2].as_str().ok_or_else(|| policy_error("condition values are strings"))?;
                let actual = value_of(field).unwrap_or_default();
                let holds = match op.to_ascii_lowercase().as_str() {
                    "eq" => actual == expected,
                    "starts-with" => actual.starts_with(expected),
                    _ => return Err(policy_error(&format!("unknown condition {op}"))),
                };
                if !holds {
                    return Err(denied(&format!("Policy Condition failed: [\"{op}\", \"${field}\", \"{expected}\"]")));
                }
                covered.push(field.to_ascii_lowercase());
            }
            _ => return Err(policy_error("malformed condition")),
        }
    }
    for field in &form.fields {
        let name = field.name.to_ascii_lowercase();
        if EXEMPT.contains(&name.as_str()) || name.starts_with("x-ignore-") || covered.contains(&name) {
            continue;
        }
        return Err(denied(&format!("Extra input fields: {}", field.name)));
    }
    Ok(limits)
}

pub async fn post_object(
    req: &HttpRequest,
    body: RequestBody,
    gw: Arc<Gateway>,
    bucket: &str,
) -> Result<HttpResponse, S3Error> {
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = boundary_of(content_type).ok_or_else(|| malformed("no boundary"))?;
    let mut reader = body.into_form_reader();
    let form = read_fields(&mut reader, &boundary).await?;

    let key_template = form.get("key").ok_or_else(|| {
        S3Error::new(Code::InvalidArgument).with_message("Bucket POST must contain a field named 'key'.")
    })?;
    let key = key_template.replace("${filename}", form.filename.as_deref().unwrap_or(""));
    if key.is_empty() {
        return Err(S3Error::new(Code::InvalidArgument).with_message("Bucket POST must contain a field named 'key'."));
    }
    validate_key(&key)?;

    crate::unsupported::refuse_write_features(&|name| form.get(name))?;
    let (access_key, signature) = form.signature()?;
    let policy_b64 = form.get("policy").ok_or_else(|| {
        S3Error::new(Code::InvalidArgument).with_message("Bucket POST must contain a field named 'policy'.")
    })?;
    let signer = gw.signing_key(&access_key).await?.ok_or(Code::InvalidAccessKeyId)?;
    sigv4::verify_post_policy(policy_b64, &signature, &signer.secret, &gw.config.region)?;
    let info = gw.meta.get_bucket(bucket).await?.ok_or(Code::NoSuchBucket)?;
    permits(&signer.principal, &info, Permission::Write)?;
    let replication = info.replication;
    let policy_json = base64::engine::general_purpose::STANDARD
        .decode(policy_b64.trim())
        .ok()
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .ok_or_else(|| policy_error("not base64-encoded JSON"))?;
    let limits = check_policy(&policy_json, &form, bucket, Utc::now())?;

    let metadata = form.metadata()?;
    let sealer = super::sse::mode_for_write(&gw, &|name| form.get(name), info.encryption.as_ref())?;
    let new_body = sealer.as_ref().map(|s| s.new_body());
    let cipher = new_body.as_ref().map(|b| b.keystream());

    let mut file = FormFile { reader: &mut reader, delimiter: format!("\r\n--{boundary}").into_bytes(), done: false };
    let stored =
        match data::store_body(&gw, &mut file, limits.max_length, replication, gw.config.inline_max, cipher).await {
            Err(e) if e.code == Code::EntityTooLarge => {
                return Err(S3Error::new(Code::EntityTooLarge)
                    .with_message("Your proposed upload exceeds the maximum allowed size"))
            }
            other => other?,
        };
    if stored.size < limits.min_length {
        return Err(S3Error::new(Code::EntityTooSmall)
            .with_message("Your proposed upload is smaller than the minimum allowed size"));
    }
    let etag = ETag::of_md5(&super::sse::etag_md5(new_body.as_ref(), stored.md5));
    let manifest = ObjectManifest {
        size: stored.size,
        etag: etag.clone(),
        last_modified_ms: jadfs_common::now_ms(),
        content_type: metadata.content_type,
        headers: metadata.headers,
        user_metadata: metadata.user_metadata,
        checksum: None,
        chunks: stored.chunks,
        tags: metadata.tags,
        upload_id: None,
        parts: Vec::new(),
        inline: stored.inline,
        version_id: None,
        retention: metadata.retention,
        legal_hold: metadata.legal_hold,
        encryption: sealer.as_ref().zip(new_body).map(|(s, body)| s.encryption(body.sealed)),
    };
    let command = Command::PutObject {
        bucket: bucket.to_string(),
        key: key.clone(),
        manifest,
        placement: stored.placement,
        condition: None,
        write_id: Some(stored.write_id),
    };
    let version_id = match gw.meta.write(&command).await {
        Ok(done) => super::object::made_version(done).0,
        Err(e) => {
            crate::data::forget_write(&gw, stored.write_id).await;
            return Err(e.into());
        }
    };
    let mut response = form.answer(bucket, &key, &etag);
    if let Some(value) = version_id.and_then(|v| actix_web::http::header::HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-amz-version-id"), value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(fields: &[(&str, &str)]) -> Form {
        Form {
            fields: fields.iter().map(|(n, v)| Field { name: n.to_string(), value: v.to_string() }).collect(),
            filename: None,
        }
    }

    fn policy(conditions: Value) -> Value {
        serde_json::json!({ "expiration": "2100-01-01T00:00:00Z", "conditions": conditions })
    }

    #[test]
    fn policies_check_every_field() {
        let now = Utc::now();
        let f = form(&[("key", "foo.txt"), ("Content-Type", "text/plain"), ("policy", "x"), ("x-ignore-me", "1")]);
        let ok = policy(
            serde_json::json!([{"bucket": "b"}, ["starts-with", "$key", "foo"], ["eq", "$content-type", "text/plain"], ["content-length-range", 1, 10]]),
        );
        let limits = check_policy(&ok, &f, "b", now).unwrap();
        assert_eq!((limits.min_length, limits.max_length), (1, 10));

        let missing = policy(serde_json::json!([{"bucket": "b"}, ["starts-with", "$key", "foo"]]));
        assert_eq!(
            check_policy(&missing, &f, "b", now).err().unwrap().code,
            Code::AccessDenied,
            "Content-Type is not covered"
        );
        let wrong_bucket = policy(
            serde_json::json!([{"bucket": "other"}, ["starts-with", "$key", ""], ["starts-with", "$content-type", ""]]),
        );
        assert_eq!(check_policy(&wrong_bucket, &f, "b", now).err().unwrap().code, Code::AccessDenied);
        let any_case = policy(
            serde_json::json!([{"bUcKeT": "b"}, ["StArTs-WiTh", "$KeY", "foo"], ["EQ", "$content-type", "text/plain"]]),
        );
        assert!(check_policy(&any_case, &f, "b", now).is_ok(), "operators and field names ignore case");
        let upper = serde_json::json!({"expiration": "2100-01-01T00:00:00Z", "CONDITIONS": []});
        assert_eq!(check_policy(&upper, &f, "b", now).err().unwrap().code, Code::InvalidPolicyDocument);
        let spaced = serde_json::json!({"expiration": "2100-01-01 00:00:00+00:00", "conditions": []});
        assert_eq!(check_policy(&spaced, &f, "b", now).err().unwrap().code, Code::InvalidPolicyDocument);
        let expired = serde_json::json!({"expiration": "2000-01-01T00:00:00Z", "conditions": []});
        assert_eq!(check_policy(&expired, &f, "b", now).err().unwrap().code, Code::AccessDenied);
        let no_expiry = serde_json::json!({"EXPIRATION": "2100-01-01T00:00:00Z", "conditions": []});
        assert_eq!(check_policy(&no_expiry, &f, "b", now).err().unwrap().code, Code::InvalidPolicyDocument);
        let bad_range = policy(serde_json::json!([["content-length-range", 0]]));
        assert_eq!(check_policy(&bad_range, &f, "b", now).err().unwrap().code, Code::InvalidPolicyDocument);
    }

    #[test]
    fn boundaries() {
        assert_eq!(boundary_of("multipart/form-data; boundary=abc").as_deref(), Some("abc"));
        assert_eq!(boundary_of("multipart/form-data; boundary=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(boundary_of("multipart/form-data"), None);
    }

    #[test]
    fn the_form_chooses_its_answer() {
        let etag = ETag::of_md5(&[1; 16]);
        let header = |r: &HttpResponse, name: &str| r.headers().get(name).unwrap().to_str().unwrap().to_string();
        let redirect = form(&[("success_action_redirect", "https://app.example/done?x=1")]).answer("b", "a b", &etag);
        assert_eq!(redirect.status(), 303);
        let expected = format!("https://app.example/done?x=1&bucket=b&key=a%20b&etag=%22{}%22", "01".repeat(16));
        assert_eq!(header(&redirect, "location"), expected);
        let not_a_url = form(&[("success_action_redirect", "javascript:alert(1)")]).answer("b", "k", &etag);
        assert_eq!(not_a_url.status(), 204, "only http(s) redirects are followed");
        let ok = form(&[("success_action_status", "200")]).answer("b", "dir/k", &etag);
        assert_eq!((ok.status().as_u16(), header(&ok, "location")), (200, "/b/dir/k".to_string()));
        let created = form(&[("success_action_status", "201")]).answer("b", "k", &etag);
        assert_eq!((created.status().as_u16(), header(&created, "content-type")), (201, "application/xml".to_string()));
    }
}
