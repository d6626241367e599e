//! Object and bucket tagging: `?tagging` and the `x-amz-tagging` header.

use actix_web::HttpResponse;
use jadfs_meta::Command;

use super::{xml_response, Ctx};
use crate::body::RequestBody;
use crate::error::{Code, S3Error};
use crate::sigv4::parse_query;
use crate::xml::{self, XmlWriter};

pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_BUCKET_TAGS: usize = 50;

/// AWS's rules: at most `max` tags, unique keys of 1 to 128 characters,
/// values of at most 256.
pub fn validate_tags(tags: &[(String, String)], max: usize) -> Result<(), S3Error> {
    if tags.len() > max {
        return Err(S3Error::new(Code::InvalidTag).with_message(format!("Object tags cannot be greater than {max}")));
    }
    for (i, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(S3Error::new(Code::InvalidTag).with_message("The TagKey you have provided is invalid"));
        }
        if value.chars().count() > 256 {
            return Err(S3Error::new(Code::InvalidTag).with_message("The TagValue you have provided is invalid"));
        }
        if tags[..i].iter().any(|(k, _)| k == key) {
            return Err(S3Error::new(Code::InvalidTag).with_message("Cannot provide multiple Tags with the same key"));
        }
    }
    Ok(())
}

/// Tags from an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded).
pub fn tags_from_header(ctx: &Ctx) -> Result<Vec<(String, String)>, S3Error> {
    let tags = ctx.header("x-amz-tagging").map(parse_query).unwrap_or_default();
    validate_tags(&tags, MAX_OBJECT_TAGS)?;
    Ok(tags)
}

/// S3 lists tags sorted by key.
fn tagging_xml(tags: &[(String, String)]) -> HttpResponse {
    let mut tags = tags.to_vec();
    tags.sort();
    let mut x = XmlWriter::new();
    x.open("Tagging");
    x.open("TagSet");
    for (key, value) in &tags {
        x.open("Tag");
        x.element("Key", key);
        x.element("Value", value);
        x.close("Tag");
    }
    x.close("TagSet");
    x.close("Tagging");
    xml_response(x)
}

pub async fn get_object_tagging(ctx: &Ctx<'_>, key: &str) -> Result<HttpResponse, S3Error> {
    let object = ctx.object(key).await?;
    let mut response = tagging_xml(&object.manifest.tags);
    with_version(&mut response, ctx.param("versionId"));
    Ok(response)
}

pub async fn put_object_tagging(ctx: &Ctx<'_>, key: &str, body: RequestBody) -> Result<HttpResponse, S3Error> {
    let body = ctx.small_body(body, 64 << 10).await?;
    let tags = xml::parse_tagging(&body)?;
    validate_tags(&tags, MAX_OBJECT_TAGS)?;
    set_object_tags(ctx, key, tags).await?;
    let mut response = HttpResponse::Ok().finish();
    with_version(&mut response, ctx.param("versionId"));
    Ok(response)
}

pub async fn delete_object_tagging(ctx: &Ctx<'_>, key: &str) -> Result<HttpResponse, S3Error> {
    set_object_tags(ctx, key, Vec::new()).await?;
    let mut response = HttpResponse::NoContent().finish();
    with_version(&mut response, ctx.param("versionId"));
    Ok(response)
}

/// Sets the tags of the request's object, or of its `versionId`.
async fn set_object_tags(ctx: &Ctx<'_>, key: &str, tags: Vec<(String, String)>) -> Result<(), S3Error> {
    let version_id = ctx.param("versionId").map(str::to_string);
    let command = Command::SetObjectTags { bucket: ctx.bucket_name().into(), key: key.into(), version_id, tags };
    ctx.gw.meta.write(&command).await?;
    Ok(())
}

/// A tagging answer names the version it was about, when the request did.
fn with_version(response: &mut HttpResponse, version_id: Option<&str>) {
    use actix_web::http::header::{HeaderName, HeaderValue};
    if let Some(value) = version_id.and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(HeaderName::from_static("x-amz-version-id"), value);
    }
}

pub async fn get_bucket_tagging(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let tags = ctx.bucket().await?.tags.as_ref().ok_or(Code::NoSuchTagSet)?;
    Ok(tagging_xml(tags))
}

pub async fn put_bucket_tagging(ctx: &Ctx<'_>, body: RequestBody) -> Result<HttpResponse, S3Error> {
    let body = ctx.small_body(body, 64 << 10).await?;
    let tags = xml::parse_tagging(&body)?;
    validate_tags(&tags, MAX_BUCKET_TAGS)?;
    ctx.gw.meta.write(&Command::SetBucketTags { bucket: ctx.bucket_name().into(), tags: Some(tags) }).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn delete_bucket_tagging(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    ctx.gw.meta.write(&Command::SetBucketTags { bucket: ctx.bucket_name().into(), tags: None }).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()
    }

    #[test]
    fn tag_limits() {
        assert!(validate_tags(&tags(10), MAX_OBJECT_TAGS).is_ok());
        assert_eq!(validate_tags(&tags(11), MAX_OBJECT_TAGS).unwrap_err().code, Code::InvalidTag);
        assert!(validate_tags(&[("k".repeat(128), "v".repeat(256))], 10).is_ok());
        assert!(validate_tags(&[("k".repeat(129), "v".into())], 10).is_err());
        assert!(validate_tags(&[("k".into(), "v".repeat(257))], 10).is_err());
        assert!(validate_tags(&[("k".into(), "1".into()), ("k".into(), "2".into())], 10).is_err());
        assert!(validate_tags(&[(String::new(), "v".into())], 10).is_err());
    }
}
