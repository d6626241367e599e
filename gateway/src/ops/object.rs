//! Object operations: PutObject, GetObject/HeadObject, DeleteObject(s),
//! CopyObject.

use actix_web::body::SizedStream;
use actix_web::{HttpResponse, HttpResponseBuilder};
use futures_util::StreamExt;
use jadfs_common::sse::ObjectDecryptor;
use jadfs_common::{ETag, ObjectManifest};
use jadfs_meta::api::ExpectedEncryption;
use jadfs_meta::api::{
    object_expiry, CommandResult, DeleteCondition, LocatedObject, ObjectMetadata, Permission, DAY_MS, NULL_VERSION,
};
use jadfs_meta::Command;

use super::conditions::{check_copy_source_conditions, check_read_conditions, conditional_commit_error};
use super::sse;
use super::{http_date, iso8601, xml_response, Ctx, MAX_PUT_SIZE};
use crate::body::RequestBody;
use crate::data;
use crate::error::{Code, S3Error};
use crate::target::{validate_key, CopySource};
use crate::xml::{self, XmlWriter, MAX_XML_BODY};

pub async fn put_object(ctx: &Ctx<'_>, key: &str, body: RequestBody) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let metadata = ctx.object_metadata()?;
    let content_md5 = ctx.content_md5()?;
    let mut body = ctx.object_body(body)?;
    if body.declared_length().is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(S3Error::new(Code::EntityTooLarge));
    }
    // Refuse before any byte is read when the bucket is missing or the
    // write's condition does not hold.
    let condition = ctx.write_condition();
    let bucket_info = ctx.bucket().await?;
    if metadata.retention.is_some() || metadata.legal_hold {
        if bucket_info.object_lock.is_none() {
            return Err(jadfs_meta::MetaError::NoObjectLock.into());
        }
        super::lock::require_integrity(ctx)?;
    }
    let replication = bucket_info.replication;
    let sealer = super::sse::mode_for_write(&ctx.gw, &|name| ctx.header(name), bucket_info.encryption.as_ref())?;
    if let Some(condition) = &condition {
        ctx.check_write_condition(key, condition).await?;
    }
    let new_body = sealer.as_ref().map(|s| s.new_body());
    let cipher = new_body.as_ref().map(|b| b.keystream());
    let inline_max = ctx.gw.config.inline_max;
    let stored = data::store_body(&ctx.gw, &mut body, MAX_PUT_SIZE, replication, inline_max, cipher).await?;
    if content_md5.is_some_and(|md5| md5 != stored.md5) {
        data::forget_write(&ctx.gw, stored.write_id).await;
        return Err(S3Error::new(Code::BadDigest));
    }
    let checksum = body.verified_checksum().cloned();
    let manifest = ObjectManifest {
        size: stored.size,
        etag: ETag::of_md5(&sse::etag_md5(new_body.as_ref(), stored.md5)),
        last_modified_ms: jadfs_common::now_ms(),
        content_type: metadata.content_type,
        headers: metadata.headers,
        user_metadata: metadata.user_metadata,
        checksum: checksum.clone(),
        chunks: stored.chunks,
        tags: metadata.tags,
        retention: metadata.retention,
        legal_hold: metadata.legal_hold,
        upload_id: None,
        parts: Vec::new(),
        inline: stored.inline,
        version_id: None,
        encryption: sealer.as_ref().zip(new_body).map(|(s, body)| s.encryption(body.sealed)),
    };
    let etag = manifest.etag.clone();
    // The bucket (and its rules) were read above, for its replication.
    let expiration = ctx.bucket().await?.lifecycle.as_deref().and_then(|rules| {
        let (at, rule) = object_expiry(rules, key, manifest.size, &manifest.tags, manifest.last_modified_ms, DAY_MS)?;
        Some(super::lifecycle::expiration_header(at, rule))
    });
    let command = Command::PutObject {
        bucket: bucket.to_string(),
        key: key.to_string(),
        manifest,
        placement: stored.placement,
        condition: condition.clone(),
        write_id: Some(stored.write_id),
    };
    crate::pause_point("before-commit").await;
    let version_id = match ctx.gw.meta.write(&command).await {
        Ok(done) => made_version(done),
        Err(e) => {
            data::forget_write(&ctx.gw, stored.write_id).await;
            return Err(conditional_commit_error(e.into(), &condition));
        }
    };
    let mut response = HttpResponse::Ok();
    response.insert_header(("etag", etag.quoted()));
    if let Some(version_id) = version_id.0 {
        response.insert_header(("x-amz-version-id", version_id));
    }
    if let Some(expiration) = expiration {
        response.insert_header(("x-amz-expiration", expiration));
    }
    if let Some(checksum) = checksum {
        response.insert_header((checksum.algorithm.header(), checksum.value));
    }
    for header in super::sse::headers(sealer.as_ref().map(|s| &s.mode)) {
        response.insert_header(header);
    }
    Ok(response.finish())
}

/// The version a write or delete made or removed (what its
/// `x-amz-version-id` says; None without versioning), and whether it is a
/// delete marker.
pub(crate) fn made_version(result: CommandResult) -> (Option<String>, bool) {
    match result {
        CommandResult::Version { version_id, delete_marker } => (version_id, delete_marker),
        _ => (None, false),
    }
}

/// The version a read answers with, in a bucket with versioning.
fn version_of(object: &LocatedObject) -> Option<&str> {
    object.versioned.then(|| object.manifest.version())
}

/// Parses a single `bytes=` range into an inclusive range of an object of
/// `size` bytes. None: no (usable) range, serve everything.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else { return Ok(None) };
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let Ok(suffix) = last.parse::<u64>() else { return Ok(None) };
        if suffix == 0 || size == 0 {
            return Err(S3Error::new(Code::InvalidRange));
        }
        (size.saturating_sub(suffix), size - 1)
    } else {
        let Ok(start) = first.parse::<u64>() else { return Ok(None) };
        let end = if last.is_empty() {
            u64::MAX
        } else {
            match last.parse::<u64>() {
                Ok(end) if end >= start => end,
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(S3Error::new(Code::InvalidRange));
        }
        (start, end.min(size - 1))
    };
    Ok(Some(range))
}

/// Headers of a GET or HEAD answer; `whole` when the full object is returned
/// (the stored checksum describes only the whole object).
fn object_headers(response: &mut HttpResponseBuilder, ctx: &Ctx, manifest: &ObjectManifest, whole: bool) {
    response.insert_header(("etag", manifest.etag.quoted()));
    response.insert_header(("last-modified", http_date(manifest.last_modified_ms)));
    response.insert_header(("accept-ranges", "bytes"));
    let content_type = manifest.content_type.clone().unwrap_or_else(|| "binary/octet-stream".into());
    response.insert_header(("content-type", content_type));
    for (name, value) in &manifest.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    for (name, value) in &manifest.user_metadata {
        response.insert_header((format!("x-amz-meta-{name}"), value.as_str()));
    }
    if !manifest.tags.is_empty() {
        response.insert_header(("x-amz-tagging-count", manifest.tags.len().to_string()));
    }
    if whole && ctx.header("x-amz-checksum-mode").is_some_and(|m| m.eq_ignore_ascii_case("enabled")) {
        if let Some(checksum) = &manifest.checksum {
            response.insert_header((checksum.algorithm.header(), checksum.value.as_str()));
            response.insert_header(("x-amz-checksum-type", checksum.kind.as_str()));
        }
    }
    // `response-*` query parameters override headers of a GET.
    for (param, header) in [
        ("response-content-type", "content-type"),
        ("response-content-language", "content-language"),
        ("response-expires", "expires"),
        ("response-cache-control", "cache-control"),
        ("response-content-disposition", "content-disposition"),
        ("response-content-encoding", "content-encoding"),
    ] {
        if let Some(value) = ctx.param(param) {
            response.insert_header((header, value));
        }
    }
    confine(response, ctx.param("response-content-type").or(manifest.content_type.as_deref()));
}

/// Objects come from the origin that serves the web console: a document
/// among them (HTML, SVG, XML with scripts) must not run as that origin,
/// where it could read the console's pages and post its forms. Sandboxed
/// (CSP `sandbox`), it gets an opaque origin and runs no script; nosniff
/// keeps a browser from taking other bytes for a document. PDFs are left
/// unsandboxed: Chromium's viewer refuses sandboxed ones, and their
/// scripts never reach the page's origin.
fn confine(response: &mut HttpResponseBuilder, content_type: Option<&str>) {
    response.insert_header(("x-content-type-options", "nosniff"));
    let pdf = content_type.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/pdf"));
    if !pdf {
        response.insert_header(("content-security-policy", "sandbox"));
    }
}

pub async fn get_object(ctx: &Ctx<'_>, key: &str, head: bool) -> Result<HttpResponse, S3Error> {
    let header = |name: &str| ctx.header(name);
    sse::refuse_on_read(&header)?;
    let object = ctx.object(key).await?;
    let manifest = &object.manifest;
    let mut range = match ctx.header("range") {
        Some(value) => parse_range(value, manifest.size)?,
        None => None,
    };
    // `?partNumber=N` reads one part of a multipart object (part 1 of any other).
    let part_number = match ctx.param("partNumber") {
        Some(n) => Some(n.parse::<usize>().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
            S3Error::new(Code::InvalidArgument)
                .with_message("Part number must be an integer between 1 and 10000, inclusive")
        })?),
        None => None,
    };
    // An empty part is an empty answer, not the whole object.
    let mut empty_part = false;
    if let Some(n) = part_number {
        if manifest.parts.is_empty() {
            if n != 1 {
                return Err(S3Error::new(Code::InvalidPart).with_message("The requested partnumber is not satisfiable"));
            }
        } else {
            let part = manifest.parts.get(n - 1).ok_or_else(|| {
                S3Error::new(Code::InvalidPart).with_message("The requested partnumber is not satisfiable")
            })?;
            let offset: u64 = manifest.parts[..n - 1].iter().map(|p| p.size).sum();
            range = (part.size > 0).then(|| (offset, offset + part.size - 1));
            empty_part = part.size == 0;
        }
    }
    // An SSE-C object's key comes before conditions: a condition's answer
    // (304, 412) would tell a guesser of its ETag they were right.
    let keys = sse::open(&ctx.gw, &header, sse::CUSTOMER, manifest)?;
    if let Err(e) = check_read_conditions(ctx, manifest) {
        if e.code == Code::NotModified {
            // A 304 still tells the client which version it has.
            let mut response = HttpResponse::NotModified();
            response
                .insert_header(("etag", manifest.etag.quoted()))
                .insert_header(("last-modified", http_date(manifest.last_modified_ms)));
            if let Some(version_id) = version_of(&object) {
                response.insert_header(("x-amz-version-id", version_id));
            }
            return Ok(response.finish());
        }
        return Err(e);
    }
    let mut response = match range {
        Some((start, end)) => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header(("content-range", format!("bytes {start}-{end}/{}", manifest.size)));
            r
        }
        None => HttpResponse::Ok(),
    };
    object_headers(&mut response, ctx, manifest, range.is_none() && !empty_part);
    for header in super::lock::lock_headers(manifest) {
        response.insert_header(header);
    }
    for header in sse::headers(manifest.encryption.as_ref().map(|e| &e.mode)) {
        response.insert_header(header);
    }
    if let Some(version_id) = version_of(&object) {
        response.insert_header(("x-amz-version-id", version_id));
    }
    if let Some((at, rule)) = &object.expiration {
        response.insert_header(("x-amz-expiration", super::lifecycle::expiration_header(*at, rule)));
    }
    if let Some(n) = part_number.filter(|_| !manifest.parts.is_empty()) {
        response.insert_header(("x-amz-mp-parts-count", manifest.parts.len().to_string()));
        // A part is served with its own checksum, and the object's kind of checksum.
        if let (Some(part), Some(object)) = (&manifest.parts[n - 1].checksum, &manifest.checksum) {
            response.insert_header((part.algorithm.header(), part.value.as_str()));
            response.insert_header(("x-amz-checksum-type", object.kind.as_str()));
        }
    }
    let (start, end) = range.unwrap_or((0, manifest.size.saturating_sub(1)));
    let length = if manifest.size == 0 || empty_part { 0 } else { end - start + 1 };
    if head {
        // A HEAD answer carries the length its GET would have, and no body.
        // (actix keeps a set Content-Length only for a stream body).
        let no_body = futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
        return Ok(response.no_chunking(length).streaming(no_body));
    }
    if length == 0 {
        return Ok(response.body(""));
    }
    let mut decryptor = keys.map(|keys| ObjectDecryptor::new(keys, start));
    if let Some(bytes) = &manifest.inline {
        let mut bytes = bytes.get(start as usize..=end as usize).ok_or(Code::InvalidRange)?.to_vec();
        if let Some(decryptor) = &mut decryptor {
            decryptor.apply(&mut bytes);
        }
        return Ok(response.body(bytes));
    }
    let chunks = object.manifest.chunks.into_iter().zip(object.locations).collect();
    let admitted = ctx.take_admission();
    let mut stream = Box::pin(data::read_object(ctx.gw.clone(), chunks, start, end));
    // The first bytes come before the status line: when no copy can be
    // read, the client gets an error, not a 200 with a short body.
    let first = match stream.next().await {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => {
            return Err(S3Error::new(Code::ServiceUnavailable)
                .with_message("No copy of the object's data could be read; please retry.")
                .caused_by(e))
        }
        None => return Err(S3Error::internal("an object's data ended before its first byte")),
    };
    let stream = futures_util::stream::once(async move { Ok(first) }).chain(stream).map(move |piece| {
        let _held_until_the_last_byte = &admitted;
        match (&mut decryptor, piece) {
            (Some(decryptor), Ok(bytes)) => Ok(decryptor.applied(&bytes)),
            (_, piece) => piece,
        }
    });
    Ok(response.body(SizedStream::new(length, Box::pin(stream))))
}

/// A copy that cannot share its source's chunks (it is encrypted
/// otherwise): the source's bytes, decrypted, are written anew as a new
/// object with `manifest`'s metadata.
struct Rewrite<'a> {
    replication: jadfs_meta::api::Replication,
    key: &'a str,
    manifest: ObjectManifest,
    sealer: Option<&'a sse::Sealer>,
}

impl Rewrite<'_> {
    async fn store(self, ctx: &Ctx<'_>, mut source: data::PlainReader) -> Result<ObjectManifest, S3Error> {
        let new_body = self.sealer.map(|s| s.new_body());
        let cipher = new_body.as_ref().map(|b| b.keystream());
        let inline_max = ctx.gw.config.inline_max;
        let stored = data::store_body(&ctx.gw, &mut source, MAX_PUT_SIZE, self.replication, inline_max, cipher).await?;
        let mut manifest = self.manifest;
        // One body now: its own MD5, no parts; a composite checksum no longer describes it.
        manifest.etag = ETag::of_md5(&sse::etag_md5(new_body.as_ref(), stored.md5));
        manifest.size = stored.size;
        manifest.chunks = stored.chunks;
        manifest.inline = stored.inline;
        manifest.parts = Vec::new();
        manifest.upload_id = None;
        manifest.version_id = None;
        manifest.checksum = manifest.checksum.filter(|c| c.kind == jadfs_common::ChecksumType::FullObject);
        manifest.last_modified_ms = jadfs_common::now_ms();
        manifest.encryption = self.sealer.zip(new_body).map(|(s, body)| s.encryption(body.sealed));
        let command = Command::PutObject {
            bucket: ctx.bucket_name().to_string(),
            key: self.key.to_string(),
            manifest: manifest.clone(),
            placement: stored.placement,
            condition: None,
            write_id: Some(stored.write_id),
        };
        match ctx.gw.meta.write(&command).await {
            Ok(done) => {
                manifest.version_id = made_version(done).0.filter(|v| v != NULL_VERSION);
                Ok(manifest)
            }
            Err(e) => {
                data::forget_write(&ctx.gw, stored.write_id).await;
                Err(e.into())
            }
        }
    }
}

/// GetObjectAttributes: the attributes named in `x-amz-object-attributes`.
pub async fn get_object_attributes(ctx: &Ctx<'_>, key: &str) -> Result<HttpResponse, S3Error> {
    let object = ctx.object(key).await?;
    let manifest = &object.manifest;
    // An SSE-C object's attributes are the key holder's only.
    sse::open(&ctx.gw, &|name| ctx.header(name), sse::CUSTOMER, manifest)?;
    // Clients send the list in one header or in several.
    let wanted: Vec<String> = ctx
        .req
        .headers()
        .get_all("x-amz-object-attributes")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(S3Error::new(Code::InvalidArgument)
            .with_message("x-amz-object-attributes must name at least one attribute"));
    }
    let wants = |name: &str| wanted.iter().any(|w| w == name);
    let mut x = XmlWriter::new();
    x.open("GetObjectAttributesResponse");
    if wants("etag") {
        x.element("ETag", manifest.etag.unquoted());
    }
    if wants("checksum") {
        if let Some(checksum) = &manifest.checksum {
            x.open("Checksum");
            x.element(&checksum.algorithm.xml_element(), &checksum.value);
            x.element("ChecksumType", checksum.kind.as_str());
            x.close("Checksum");
        }
    }
    if wants("objectparts") && !manifest.parts.is_empty() {
        let max_parts: usize = ctx.header("x-amz-max-parts").and_then(|n| n.parse().ok()).unwrap_or(1000).min(1000);
        let marker: usize = ctx.header("x-amz-part-number-marker").and_then(|n| n.parse().ok()).unwrap_or(0);
        let page: Vec<(usize, &jadfs_common::ObjectPart)> = manifest
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| (i + 1, p))
            .filter(|(n, _)| *n > marker)
            .take(max_parts)
            .collect();
        let truncated = page.last().is_some_and(|(n, _)| *n < manifest.parts.len());
        x.open("ObjectParts");
        x.element("PartsCount", &manifest.parts.len().to_string());
        x.element("PartNumberMarker", &marker.to_string());
        if let Some((n, _)) = page.last() {
            x.element("NextPartNumberMarker", &n.to_string());
        }
        x.element("MaxParts", &max_parts.to_string());
        x.element("IsTruncated", if truncated { "true" } else { "false" });
        for (number, part) in page {
            x.open("Part");
            x.element("PartNumber", &number.to_string());
            x.element("Size", &part.size.to_string());
            if let Some(checksum) = &part.checksum {
                x.element(&checksum.algorithm.xml_element(), &checksum.value);
            }
            x.close("Part");
        }
        x.close("ObjectParts");
    }
    if wants("storageclass") {
        x.element("StorageClass", "STANDARD");
    }
    if wants("objectsize") {
        x.element("ObjectSize", &manifest.size.to_string());
    }
    x.close("GetObjectAttributesResponse");
    let mut response = xml_response(x);
    if let Some(version_id) = version_of(&object).and_then(|v| actix_web::http::header::HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-amz-version-id"), version_id);
    }
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&http_date(manifest.last_modified_ms)) {
        response.headers_mut().insert(actix_web::http::header::LAST_MODIFIED, value);
    }
    Ok(response)
}

/// DeleteObject: the current object (or with `versionId` that version).
pub async fn delete_object(ctx: &Ctx<'_>, key: &str) -> Result<HttpResponse, S3Error> {
    let condition = DeleteCondition {
        etag: ctx.header("if-match").map(str::to_string),
        last_modified_ms: match ctx.header("x-amz-if-match-last-modified-time") {
            Some(t) => Some(super::parse_http_date(t).ok_or(Code::InvalidArgument)?.timestamp_millis()),
            None => None,
        },
        size: match ctx.header("x-amz-if-match-size") {
            Some(n) => Some(n.parse().map_err(|_| Code::InvalidArgument)?),
            None => None,
        },
    };
    let (version_id, delete_marker) = delete(ctx, key, ctx.param("versionId"), condition).await?;
    let mut response = HttpResponse::NoContent();
    if let Some(version_id) = version_id {
        response.insert_header(("x-amz-version-id", version_id));
    }
    if delete_marker {
        response.insert_header(("x-amz-delete-marker", "true"));
    }
    Ok(response.finish())
}

/// Deletes a key's current object or one of its versions; answers the
/// version deleted or the delete marker made, as `made_version`.
async fn delete(
    ctx: &Ctx<'_>,
    key: &str,
    version_id: Option<&str>,
    condition: DeleteCondition,
) -> Result<(Option<String>, bool), S3Error> {
    let command = Command::DeleteObject {
        bucket: ctx.bucket_name().to_string(),
        key: key.to_string(),
        version_id: version_id.map(str::to_string),
        now_ms: jadfs_common::now_ms(),
        bypass_governance: version_id.is_some() && super::lock::bypass_governance(ctx).await?,
        condition: (condition != DeleteCondition::default()).then_some(condition),
    };
    Ok(made_version(ctx.gw.meta.write(&command).await?))
}

pub async fn delete_objects(ctx: &Ctx<'_>, body: RequestBody) -> Result<HttpResponse, S3Error> {
    let body = ctx.small_body(body, MAX_XML_BODY).await?;
    let request = xml::parse_delete(&body)?;
    ctx.bucket().await?;
    let mut x = XmlWriter::new();
    x.open("DeleteResult");
    for xml::DeleteTarget { key, version_id, condition } in &request.objects {
        let result = async {
            crate::endpoint::check_version_id(version_id.as_deref())?;
            if key.is_empty() {
                return Err(S3Error::new(Code::KeyTooLongError));
            }
            validate_key(key)?;
            delete(ctx, key, version_id.as_deref(), condition.clone()).await
        }
        .await;
        match result {
            Ok(_) if request.quiet => {}
            Ok((made, delete_marker)) => {
                x.open("Deleted");
                x.element("Key", key);
                if let Some(version_id) = version_id {
                    x.element("VersionId", version_id);
                }
                if delete_marker {
                    x.element("DeleteMarker", "true");
                    x.element("DeleteMarkerVersionId", made.as_deref().unwrap_or(NULL_VERSION));
                }
                x.close("Deleted");
            }
            Err(e) => {
                x.open("Error");
                x.element("Key", key);
                if let Some(version_id) = version_id {
                    x.element("VersionId", version_id);
                }
                x.element("Code", e.code.as_str());
                x.element("Message", &e.message);
                x.close("Error");
            }
        }
    }
    x.close("DeleteResult");
    Ok(xml_response(x))
}

pub async fn copy_object(ctx: &Ctx<'_>, key: &str, source: &CopySource) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let CopySource { bucket: src_bucket, key: src_key, version_id: src_version } = source.clone();
    let replace = match ctx.header("x-amz-metadata-directive") {
        None | Some("COPY") => false,
        Some("REPLACE") => true,
        Some(_) => return Err(S3Error::new(Code::InvalidArgument).with_message("Unknown metadata directive.")),
    };
    let changes_encryption = ctx.header(sse::SSE).is_some() || ctx.header(sse::CUSTOMER_ALGORITHM).is_some();
    if src_bucket == bucket && src_key == key && src_version.is_none() && !replace && !changes_encryption {
        return Err(S3Error::new(Code::InvalidRequest).with_message(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    ctx.gw.authorize(&ctx.principal, &src_bucket, Permission::Read).await?;
    let source = ctx.gw.get_object(&src_bucket, &src_key, src_version.as_deref()).await?;
    check_copy_source_conditions(ctx, &source.manifest)?;
    let header = |name: &str| ctx.header(name);
    let source_keys = sse::open(&ctx.gw, &header, sse::SOURCE_CUSTOMER, &source.manifest)?;
    let bucket_info = ctx.bucket().await?;
    let replication = bucket_info.replication;
    let sealer = sse::mode_for_write(&ctx.gw, &header, bucket_info.encryption.as_ref())?;
    let copied_version = version_of(&source).map(str::to_string);
    let (retention, legal_hold) = super::lock::lock_from(|name| ctx.header(name), jadfs_common::now_ms())?;
    let metadata: Option<ObjectMetadata> = if replace { Some(ctx.object_metadata()?) } else { None };
    let tags = match ctx.header("x-amz-tagging-directive") {
        None | Some("COPY") => None,
        Some("REPLACE") => Some(super::tagging::tags_from_header(ctx)?),
        Some(_) => return Err(S3Error::new(Code::InvalidArgument).with_message("Unknown tagging directive.")),
    };
    let source_mode = source.manifest.encryption.as_ref().map(|e| &e.mode);
    let manifest = if sse::copy_shares(source_mode, sealer.as_ref().map(|s| &s.mode)) {
        ctx.gw
            .meta
            .write_object(&Command::CopyObject {
                src_bucket,
                src_key,
                src_version,
                dst_bucket: bucket.to_string(),
                dst_key: key.to_string(),
                metadata,
                last_modified_ms: jadfs_common::now_ms(),
                tags,
                retention,
                legal_hold,
                source_encryption: Some(ExpectedEncryption { mode: source_mode.cloned() }),
            })
            .await?
    } else {
        if source.manifest.size > MAX_PUT_SIZE {
            return Err(S3Error::new(Code::EntityTooLarge)
                .with_message("A copy into another encryption is written anew, and at most 5 GiB may be."));
        }
        let source_bytes =
            data::PlainReader::new(ctx.gw.clone(), &source, source_keys, (0, source.manifest.size.saturating_sub(1)))?;
        let mut manifest = source.manifest.clone();
        if let Some(metadata) = metadata {
            manifest.content_type = metadata.content_type;
            manifest.headers = metadata.headers;
            manifest.user_metadata = metadata.user_metadata;
        }
        if let Some(tags) = tags {
            manifest.tags = tags;
        }
        (manifest.retention, manifest.legal_hold) = (retention, legal_hold);
        let rewritten = Rewrite { replication, key, manifest, sealer: sealer.as_ref() };
        rewritten.store(ctx, source_bytes).await?
    };
    let mut x = XmlWriter::new();
    x.open("CopyObjectResult");
    x.element("LastModified", &iso8601(manifest.last_modified_ms));
    x.element("ETag", manifest.etag.quoted());
    x.close("CopyObjectResult");
    let mut response = xml_response(x);
    let headers = response.headers_mut();
    use actix_web::http::header::{HeaderName, HeaderValue};
    for (name, value) in sse::headers(manifest.encryption.as_ref().map(|e| &e.mode)) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    for (name, value) in
        [("x-amz-copy-source-version-id", copied_version), ("x-amz-version-id", manifest.version_id.clone())]
    {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_s3_reads_them() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=90-500", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some((0, 99)));
        assert_eq!(parse_range("bytes=5-2", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=100-", 100).unwrap_err().code, Code::InvalidRange);
        assert_eq!(parse_range("bytes=0-0", 0).unwrap_err().code, Code::InvalidRange);
        assert_eq!(parse_range("bytes=-0", 100).unwrap_err().code, Code::InvalidRange);
    }
}
