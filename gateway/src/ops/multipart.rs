//! Multipart uploads. Each part is chunked and stored on its own, so
//! completing an upload writes only metadata.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::HttpResponse;
use jadfs_common::{ETag, NodeId};
use jadfs_meta::api::{CompleteUpload, PartManifest, Permission, UploadInfo};
use jadfs_meta::{Command, MetaError};

use super::conditions::{check_copy_source_conditions, conditional_commit_error};
use super::sse;
use super::{iso8601, xml_response, Ctx, MAX_PUT_SIZE};
use crate::body::RequestBody;
use crate::checksum::Algorithm;
use crate::data;
use crate::error::{Code, S3Error};
use crate::target::CopySource;
use crate::xml::{self, XmlWriter};

/// Every part but the last must be at least this large (5 MiB, as AWS).
pub const MIN_PART_SIZE: u64 = 5 << 20;

pub async fn create_multipart_upload(ctx: &Ctx<'_>, key: &str) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let mut metadata = ctx.object_metadata()?;
    let default = ctx.bucket().await?.encryption.clone();
    metadata.encryption = sse::mode_for_write(&ctx.gw, &|name| ctx.header(name), default.as_ref())?.map(|s| s.mode);
    let checksum_algorithm = match ctx.header("x-amz-checksum-algorithm") {
        Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| {
            S3Error::new(Code::InvalidRequest).with_message(format!("Checksum algorithm {name} is not supported"))
        })?),
        None => None,
    };
    // CRC64NVME exists only over the full object, SHA only as a composite;
    // CRC32 and CRC32C may be either (composite unless asked).
    let full_object_checksum = match (checksum_algorithm, ctx.header("x-amz-checksum-type")) {
        (None, None) => false,
        (None, Some(_)) => {
            return Err(S3Error::new(Code::InvalidRequest)
                .with_message("x-amz-checksum-type requires x-amz-checksum-algorithm"))
        }
        (Some(algorithm), requested) => {
            let full = match requested.map(str::to_ascii_uppercase).as_deref() {
                None => algorithm == Algorithm::Crc64Nvme,
                Some("FULL_OBJECT") => true,
                Some("COMPOSITE") => false,
                Some(other) => {
                    return Err(
                        S3Error::new(Code::InvalidRequest).with_message(format!("Unknown checksum type {other}"))
                    )
                }
            };
            let allowed = match algorithm {
                Algorithm::Crc64Nvme => full,
                Algorithm::Sha1 | Algorithm::Sha256 => !full,
                Algorithm::Crc32 | Algorithm::Crc32c => true,
            };
            if !allowed {
                return Err(S3Error::new(Code::InvalidRequest).with_message(format!(
                    "The {} checksum does not support the {} checksum type",
                    algorithm.name().to_uppercase(),
                    if full { "FULL_OBJECT" } else { "COMPOSITE" }
                )));
            }
            full
        }
    };
    let upload_id = format!("{:016x}{:016x}", jadfs_common::random_u64(), jadfs_common::random_u64());
    let upload = UploadInfo {
        upload_id: upload_id.clone(),
        key: key.to_string(),
        owner: ctx.principal.id.clone(),
        initiated_ms: jadfs_common::now_ms(),
        metadata: metadata.clone(),
        checksum_algorithm,
        full_object_checksum,
    };
    let checksum_type = upload.checksum_type();
    ctx.gw.meta.write(&Command::CreateUpload { bucket: bucket.to_string(), key: key.to_string(), upload }).await?;
    let mut x = XmlWriter::new();
    x.open("InitiateMultipartUploadResult");
    x.element("Bucket", bucket);
    x.element("Key", key);
    x.element("UploadId", &upload_id);
    x.close("InitiateMultipartUploadResult");
    let mut response = xml_response(x);
    if let Some(algorithm) = checksum_algorithm {
        set_header(&mut response, "x-amz-checksum-algorithm", &algorithm.name().to_uppercase());
        set_header(&mut response, "x-amz-checksum-type", checksum_type.as_str());
    }
    for (name, value) in sse::headers(metadata.encryption.as_ref()) {
        set_header(&mut response, name, &value);
    }
    Ok(response)
}

fn set_header(response: &mut HttpResponse, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        response.headers_mut().insert(name, value);
    }
}

/// The upload of the request's bucket; NoSuchBucket or NoSuchUpload otherwise.
async fn ensure_upload(ctx: &Ctx<'_>, key: &str, upload_id: &str) -> Result<UploadInfo, S3Error> {
    match ctx.gw.meta.get_upload(ctx.bucket_name(), key, upload_id).await? {
        Some(upload) => Ok(upload),
        None => {
            ctx.bucket().await?;
            Err(S3Error::new(Code::NoSuchUpload))
        }
    }
}

pub async fn upload_part(
    ctx: &Ctx<'_>,
    key: &str,
    upload_id: &str,
    part_number: u32,
    body: RequestBody,
) -> Result<HttpResponse, S3Error> {
    let content_md5 = ctx.content_md5()?;
    let mut body = ctx.object_body(body)?;
    if body.declared_length().is_some_and(|n| n > MAX_PUT_SIZE) {
        return Err(S3Error::new(Code::EntityTooLarge));
    }
    let upload = ensure_upload(ctx, key, upload_id).await?;
    if let Some(required) = upload.checksum_algorithm {
        if body.declared_checksum() != Some(required) {
            return Err(S3Error::new(Code::InvalidRequest).with_message(format!(
                "The upload was created using a {} checksum; each part must carry one.",
                required.name().to_uppercase()
            )));
        }
    }
    let sealer = sse::mode_for_part(&ctx.gw, &|name| ctx.header(name), upload.metadata.encryption.as_ref())?;
    let new_body = sealer.as_ref().map(|s| s.new_body());
    let cipher = new_body.as_ref().map(|b| b.keystream());
    let replication = ctx.bucket().await?.replication;
    let stored = data::store_body(&ctx.gw, &mut body, MAX_PUT_SIZE, replication, 0, cipher).await?;
    if content_md5.is_some_and(|md5| md5 != stored.md5) {
        data::forget_write(&ctx.gw, stored.write_id).await;
        return Err(S3Error::new(Code::BadDigest));
    }
    let etag = ETag::of_md5(&sse::etag_md5(new_body.as_ref(), stored.md5));
    let checksum = body.verified_checksum().cloned();
    let part = PartManifest {
        size: stored.size,
        etag: etag.clone(),
        last_modified_ms: jadfs_common::now_ms(),
        chunks: stored.chunks,
        checksum: checksum.clone(),
        sealed_key: new_body.map(|b| b.sealed),
    };
    commit_part(ctx, key, upload_id, part_number, part, (stored.placement, stored.write_id)).await?;
    let mut response = HttpResponse::Ok();
    response.insert_header(("etag", etag.quoted()));
    for header in sse::headers(upload.metadata.encryption.as_ref()) {
        response.insert_header(header);
    }
    if let Some(checksum) = checksum {
        response.insert_header((checksum.algorithm.header(), checksum.value));
    }
    Ok(response.finish())
}

async fn commit_part(
    ctx: &Ctx<'_>,
    key: &str,
    upload_id: &str,
    part_number: u32,
    part: PartManifest,
    (placement, write_id): (Vec<Vec<NodeId>>, u64),
) -> Result<(), S3Error> {
    let command = Command::PutPart {
        bucket: ctx.bucket_name().into(),
        key: key.into(),
        upload_id: upload_id.into(),
        part_number,
        part,
        placement,
        write_id: Some(write_id),
    };
    if let Err(e) = ctx.gw.meta.write(&command).await {
        data::forget_write(&ctx.gw, write_id).await;
        return Err(e.into());
    }
    Ok(())
}

/// `x-amz-copy-source-range: bytes=first-last`, both required.
fn parse_copy_range(value: &str, size: u64) -> Result<(u64, u64), S3Error> {
    let invalid = || {
        S3Error::new(Code::InvalidArgument)
            .with_message("The x-amz-copy-source-range value must be of the form bytes=first-last")
    };
    let (first, last) = value.strip_prefix("bytes=").and_then(|r| r.split_once('-')).ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last || last >= size {
        return Err(S3Error::new(Code::InvalidRange)
            .with_message(format!("Range specified is not valid for source object of size: {size}")));
    }
    Ok((first, last))
}

pub async fn upload_part_copy(
    ctx: &Ctx<'_>,
    key: &str,
    upload_id: &str,
    part_number: u32,
    source: &CopySource,
) -> Result<HttpResponse, S3Error> {
    ctx.gw.authorize(&ctx.principal, &source.bucket, Permission::Read).await?;
    let source = ctx.gw.get_object(&source.bucket, &source.key, source.version_id.as_deref()).await?;
    check_copy_source_conditions(ctx, &source.manifest)?;
    let size = source.manifest.size;
    let (first, last) = match ctx.header("x-amz-copy-source-range") {
        Some(range) => parse_copy_range(range, size)?,
        None if size == 0 => (0, 0),
        None => (0, size - 1),
    };
    if last - first + 1 > MAX_PUT_SIZE {
        return Err(S3Error::new(Code::EntityTooLarge));
    }
    let upload = ensure_upload(ctx, key, upload_id).await?;
    let header = |name: &str| ctx.header(name);
    let source_keys = sse::open(&ctx.gw, &header, sse::SOURCE_CUSTOMER, &source.manifest)?;
    let sealer = sse::mode_for_part(&ctx.gw, &header, upload.metadata.encryption.as_ref())?;
    let replication = ctx.bucket().await?.replication;
    let new_body = sealer.as_ref().map(|s| s.new_body());
    let cipher = new_body.as_ref().map(|b| b.keystream());
    let stored = if source_keys.is_some() || cipher.is_some() {
        // Encrypted bytes on either side: decrypted and written anew.
        let mut reader = data::PlainReader::new(ctx.gw.clone(), &source, source_keys, (first, last))?;
        data::store_body(&ctx.gw, &mut reader, MAX_PUT_SIZE, replication, 0, cipher).await?
    } else if size == 0 {
        data::StoredData { md5: super::md5_of(b""), ..data::StoredData::empty() }
    } else {
        data::copy_range(&ctx.gw, &source, first, last, replication).await?
    };
    let etag = ETag::of_md5(&sse::etag_md5(new_body.as_ref(), stored.md5));
    let last_modified_ms = jadfs_common::now_ms();
    let part = PartManifest {
        size: stored.size,
        etag: etag.clone(),
        last_modified_ms,
        chunks: stored.chunks,
        checksum: None,
        sealed_key: new_body.map(|b| b.sealed),
    };
    commit_part(ctx, key, upload_id, part_number, part, (stored.placement, stored.write_id)).await?;
    let mut x = XmlWriter::new();
    x.open("CopyPartResult");
    x.element("LastModified", &iso8601(last_modified_ms));
    x.element("ETag", etag.quoted());
    x.close("CopyPartResult");
    let mut response = xml_response(x);
    for (name, value) in sse::headers(upload.metadata.encryption.as_ref()) {
        set_header(&mut response, name, &value);
    }
    Ok(response)
}

pub async fn complete_multipart_upload(
    ctx: &Ctx<'_>,
    key: &str,
    upload_id: &str,
    body: RequestBody,
) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let body = ctx.complete_body(body, xml::MAX_XML_BODY).await?;
    let listed = xml::parse_complete(&body)?;
    if listed.windows(2).any(|w| w[0].number >= w[1].number) {
        return Err(S3Error::new(Code::InvalidPartOrder));
    }
    let expected_checksum = Algorithm::ALL.into_iter().find_map(|a| ctx.header(&a.header()).map(str::to_string));
    let part_checksums = listed.iter().map(|p| p.checksum.clone()).collect();
    let parts = listed.into_iter().map(|p| (p.number, p.etag)).collect();
    // An upload under a customer key is completed by that key's holder
    // only: the state machine compares the key's MD5 with the upload's.
    let customer_key_md5 = sse::customer_key(&|name| ctx.header(name), sse::CUSTOMER)?.map(|k| k.md5().to_string());
    let condition = ctx.write_condition();
    if let Some(condition) = &condition {
        ctx.check_write_condition(key, condition).await?;
    }
    let command = Command::CompleteUpload(CompleteUpload {
        bucket: bucket.into(),
        key: key.into(),
        upload_id: upload_id.into(),
        parts,
        min_part_size: MIN_PART_SIZE,
        last_modified_ms: jadfs_common::now_ms(),
        condition: condition.clone(),
        expected_checksum,
        part_checksums,
        customer_key_md5,
    });
    let manifest = match ctx.gw.meta.write_object(&command).await {
        Ok(manifest) => manifest,
        Err(MetaError::NoSuchUpload) => {
            ctx.bucket().await?;
            return Err(Code::NoSuchUpload.into());
        }
        Err(e) => return Err(conditional_commit_error(e.into(), &condition)),
    };
    let mut x = XmlWriter::new();
    x.open("CompleteMultipartUploadResult");
    x.element("Location", &format!("/{bucket}/{key}"));
    x.element("Bucket", bucket);
    x.element("Key", key);
    x.element("ETag", manifest.etag.quoted());
    if let Some(checksum) = &manifest.checksum {
        x.element(&checksum.algorithm.xml_element(), &checksum.value);
        x.element("ChecksumType", checksum.kind.as_str());
    }
    x.close("CompleteMultipartUploadResult");
    let mut response = xml_response(x);
    for (name, value) in sse::headers(manifest.encryption.as_ref().map(|e| &e.mode)) {
        set_header(&mut response, name, &value);
    }
    if let Some(version_id) = &manifest.version_id {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(version_id) {
            response.headers_mut().insert(actix_web::http::header::HeaderName::from_static("x-amz-version-id"), value);
        }
    }
    Ok(response)
}

pub async fn abort_multipart_upload(ctx: &Ctx<'_>, key: &str, upload_id: &str) -> Result<HttpResponse, S3Error> {
    let command =
        Command::AbortUpload { bucket: ctx.bucket_name().into(), key: key.into(), upload_id: upload_id.into() };
    ctx.gw.meta.write(&command).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_parts(ctx: &Ctx<'_>, key: &str, upload_id: &str) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let after_part: u32 = ctx.param("part-number-marker").and_then(|n| n.parse().ok()).unwrap_or(0);
    let max_parts: usize = ctx.param("max-parts").and_then(|n| n.parse().ok()).unwrap_or(1000).min(1000);
    let upload = ensure_upload(ctx, key, upload_id).await?;
    let page = ctx.gw.meta.list_parts(bucket, key, upload_id, after_part, max_parts).await?;
    let page = page.ok_or(Code::NoSuchUpload)?;
    let mut x = XmlWriter::new();
    x.open("ListPartsResult");
    x.element("Bucket", bucket);
    x.element("Key", key);
    x.element("UploadId", upload_id);
    initiator_and_owner(&mut x, &upload.owner);
    x.element("StorageClass", "STANDARD");
    if let Some(algorithm) = upload.checksum_algorithm {
        x.element("ChecksumAlgorithm", &algorithm.name().to_uppercase());
    }
    x.element("PartNumberMarker", &after_part.to_string());
    if let Some(last) = page.parts.last() {
        x.element("NextPartNumberMarker", &last.part_number.to_string());
    }
    x.element("MaxParts", &max_parts.to_string());
    x.element("IsTruncated", if page.truncated { "true" } else { "false" });
    for part in &page.parts {
        x.open("Part");
        x.element("PartNumber", &part.part_number.to_string());
        x.element("LastModified", &iso8601(part.last_modified_ms));
        x.element("ETag", part.etag.quoted());
        x.element("Size", &part.size.to_string());
        if let Some(checksum) = &part.checksum {
            x.element(&checksum.algorithm.xml_element(), &checksum.value);
        }
        x.close("Part");
    }
    x.close("ListPartsResult");
    Ok(xml_response(x))
}

/// The key that started an upload is both its initiator and its owner.
fn initiator_and_owner(x: &mut XmlWriter, owner: &str) {
    for element in ["Initiator", "Owner"] {
        x.open(element);
        x.element("ID", owner);
        x.close(element);
    }
}

pub async fn list_multipart_uploads(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let prefix = ctx.param("prefix").unwrap_or_default().to_string();
    let after_key = ctx.param("key-marker").filter(|k| !k.is_empty()).map(str::to_string);
    let max_uploads: usize = ctx.param("max-uploads").and_then(|n| n.parse().ok()).unwrap_or(1000).min(1000);
    ctx.bucket().await?;
    let page = ctx.gw.meta.list_uploads(bucket, &prefix, after_key.as_deref(), max_uploads).await?;
    let mut x = XmlWriter::new();
    x.open("ListMultipartUploadsResult");
    x.element("Bucket", bucket);
    x.element("KeyMarker", after_key.as_deref().unwrap_or_default());
    x.element("UploadIdMarker", "");
    if let Some(last) = page.uploads.last() {
        x.element("NextKeyMarker", &last.key);
        x.element("NextUploadIdMarker", &last.upload_id);
    }
    x.element("Prefix", &prefix);
    x.element("MaxUploads", &max_uploads.to_string());
    x.element("IsTruncated", if page.truncated { "true" } else { "false" });
    for upload in &page.uploads {
        x.open("Upload");
        x.element("Key", &upload.key);
        x.element("UploadId", &upload.upload_id);
        initiator_and_owner(&mut x, &upload.owner);
        x.element("StorageClass", "STANDARD");
        x.element("Initiated", &iso8601(upload.initiated_ms));
        x.close("Upload");
    }
    x.close("ListMultipartUploadsResult");
    Ok(xml_response(x))
}
