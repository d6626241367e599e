//! Bucket operations.

use actix_web::HttpResponse;
use jadfs_meta::api::{BucketInfo, Versioning};
use jadfs_meta::Command;

use super::{iso8601, xml_response, Ctx};
use crate::auth::Principal;
use crate::body::RequestBody;
use crate::error::{Code, S3Error};
use crate::xml::{self, XmlWriter};
use crate::Gateway;

pub async fn list_buckets(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let mut buckets = visible_buckets(&ctx.gw, &ctx.principal).await?;
    // Optional paging (max-buckets, continuation-token) and prefix, as AWS added in 2024.
    if let Some(prefix) = ctx.param("prefix") {
        buckets.retain(|b| b.name.starts_with(prefix));
    }
    if let Some(after) = ctx.param("continuation-token") {
        buckets.retain(|b| b.name.as_str() > after);
    }
    let mut continuation = None;
    if let Some(max) = ctx.param("max-buckets") {
        let max: usize = max.parse().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
            S3Error::new(Code::InvalidArgument).with_message("max-buckets must be an integer from 1 to 10000")
        })?;
        if buckets.len() > max {
            buckets.truncate(max);
            continuation = buckets.last().map(|b| b.name.clone());
        }
    }
    let mut x = XmlWriter::new();
    x.open("ListAllMyBucketsResult");
    x.open("Owner");
    x.element("ID", &ctx.principal.id);
    x.element("DisplayName", &ctx.verified.access_key);
    x.close("Owner");
    x.open("Buckets");
    for BucketInfo { name, created_ms, .. } in &buckets {
        x.open("Bucket");
        x.element("Name", name);
        x.element("CreationDate", &iso8601(*created_ms));
        x.close("Bucket");
    }
    x.close("Buckets");
    if let Some(token) = continuation {
        x.element("ContinuationToken", &token);
    }
    if let Some(prefix) = ctx.param("prefix") {
        x.element("Prefix", prefix);
    }
    x.close("ListAllMyBucketsResult");
    Ok(xml_response(x))
}

pub async fn create_bucket(ctx: &Ctx<'_>, body: RequestBody) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let body = ctx.small_body(body, 64 << 10).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let config = xml::parse(&body, 16)?;
        if config.name != "CreateBucketConfiguration" {
            return Err(S3Error::new(Code::MalformedXML));
        }
    }
    let object_lock = ctx.header("x-amz-bucket-object-lock-enabled").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    match create(&ctx.gw, bucket, &ctx.principal, object_lock).await {
        // AWS's us-east-1 answers 200 to its owner re-creating a bucket; every
        // other region answers 409 BucketAlreadyOwnedByYou.
        Err(e) if e.code == Code::BucketAlreadyOwnedByYou && ctx.gw.config.region == "us-east-1" => {}
        other => other?,
    }
    Ok(HttpResponse::Ok().insert_header(("location", format!("/{bucket}"))).finish())
}

/// Creates a bucket (its name already validated) owned by `owner`; with
/// `object_lock`, with Object Lock and versioning enabled.
pub async fn create(gw: &Gateway, bucket: &str, owner: &Principal, object_lock: bool) -> Result<(), S3Error> {
    let command = Command::CreateBucket {
        name: bucket.to_string(),
        owner: owner.id.clone(),
        created_ms: jadfs_common::now_ms(),
        object_lock,
    };
    gw.meta.write(&command).await?;
    Ok(())
}

/// The buckets `principal` may see: all for a root key, else those it
/// owns or has a grant on.
pub async fn visible_buckets(gw: &Gateway, principal: &Principal) -> Result<Vec<BucketInfo>, S3Error> {
    let mut buckets = gw.meta.list_buckets().await?;
    if !principal.root {
        buckets.retain(|b| b.permission_of(&principal.id).is_some());
    }
    Ok(buckets)
}

pub async fn head_bucket(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    ctx.bucket().await?;
    Ok(HttpResponse::Ok().insert_header(("x-amz-bucket-region", ctx.gw.config.region.clone())).finish())
}

pub async fn delete_bucket(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    ctx.gw.meta.write(&Command::DeleteBucket { name: ctx.bucket_name().to_string() }).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn get_bucket_location(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    ctx.bucket().await?;
    let mut x = XmlWriter::new();
    // AWS answers an empty constraint for us-east-1.
    let region = &ctx.gw.config.region;
    x.element("LocationConstraint", if region == "us-east-1" { "" } else { region });
    Ok(xml_response(x))
}

pub async fn get_bucket_versioning(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let versioning = ctx.bucket().await?.versioning;
    let mut x = XmlWriter::new();
    x.open("VersioningConfiguration");
    if let Some(versioning) = versioning {
        x.element("Status", versioning.as_str());
    }
    x.close("VersioningConfiguration");
    Ok(xml_response(x))
}

/// PutBucketVersioning: Enabled or Suspended (a bucket never goes back to
/// no versioning). MFA delete needs a device we do not have: refused.
pub async fn put_bucket_versioning(ctx: &Ctx<'_>, body: RequestBody) -> Result<HttpResponse, S3Error> {
    let body = ctx.small_body(body, crate::xml::MAX_XML_BODY).await?;
    let (status, mfa_delete) = crate::xml::parse_versioning(&body)?;
    if mfa_delete {
        return Err(S3Error::new(Code::NotImplemented).with_message("MFA delete is not supported."));
    }
    let versioning = match status.as_deref() {
        None => {
            ctx.bucket().await?;
            return Ok(HttpResponse::Ok().finish());
        }
        Some("Enabled") => Versioning::Enabled,
        Some("Suspended") => Versioning::Suspended,
        Some(_) => return Err(Code::MalformedXML.into()),
    };
    ctx.gw.meta.write(&Command::SetBucketVersioning { bucket: ctx.bucket_name().into(), versioning }).await?;
    Ok(HttpResponse::Ok().finish())
}
