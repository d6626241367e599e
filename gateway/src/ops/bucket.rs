//! Bucket operations.

use actix_web::{web, HttpResponse};
use jadfs_meta::api::BucketInfo;
use jadfs_meta::{Command, Query, QueryResult};

use super::{iso8601, Ctx};
use crate::error::S3Error;
use crate::xml::{self, XmlWriter};

/// Bucket subresources we do not serve yet: answering them as if they were
/// a listing or a create would mislead the client.
const UNSUPPORTED: [&str; 17] = [
    "acl",
    "policy",
    "lifecycle",
    "website",
    "logging",
    "notification",
    "replication",
    "encryption",
    "object-lock",
    "requestPayment",
    "accelerate",
    "analytics",
    "inventory",
    "metrics",
    "ownershipControls",
    "publicAccessBlock",
    "intelligent-tiering",
];

pub fn is_unsupported_subresource(ctx: &Ctx) -> bool {
    UNSUPPORTED.iter().any(|name| ctx.has(name))
}

pub async fn list_buckets(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let QueryResult::Buckets(mut buckets) = ctx.gw.query(Query::ListBuckets).await? else {
        return Err(S3Error::internal("unexpected meta answer"));
    };
    let access_key = &ctx.verified.access_key;
    if !ctx.gw.is_root(access_key) {
        buckets.retain(|b| b.permission_of(access_key).is_some());
    }
    // Optional paging (max-buckets, continuation-token) and prefix, as AWS added in 2024.
    if let Some(prefix) = ctx.param("prefix") {
        buckets.retain(|b| b.name.starts_with(prefix));
    }
    if let Some(after) = ctx.param("continuation-token") {
        buckets.retain(|b| b.name.as_str() > after);
    }
    let mut continuation = None;
    if let Some(max) = ctx.param("max-buckets") {
        let max: usize =
            max.parse().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                S3Error::InvalidArgument().with_message("max-buckets must be an integer from 1 to 10000")
            })?;
        if buckets.len() > max {
            buckets.truncate(max);
            continuation = buckets.last().map(|b| b.name.clone());
        }
    }
    let mut x = XmlWriter::new();
    x.open("ListAllMyBucketsResult");
    x.open("Owner");
    x.element("ID", &ctx.verified.access_key);
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

pub fn xml_response(x: XmlWriter) -> HttpResponse {
    HttpResponse::Ok().content_type("application/xml").body(x.finish())
}

pub async fn create_bucket(ctx: &Ctx<'_>, bucket: &str, payload: web::Payload) -> Result<HttpResponse, S3Error> {
    let body = ctx.small_body(payload, 64 << 10).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let config = xml::parse(&body, 16)?;
        if config.name != "CreateBucketConfiguration" {
            return Err(S3Error::MalformedXML());
        }
    }
    let created = ctx
        .gw
        .commit(Command::CreateBucket {
            name: bucket.to_string(),
            owner: ctx.verified.access_key.clone(),
            created_ms: jadfs_common::now_ms(),
        })
        .await;
    match created {
        // AWS's us-east-1 answers 200 to its owner re-creating a bucket; every
        // other region answers 409 BucketAlreadyOwnedByYou.
        Err(e) if e.code == "BucketAlreadyOwnedByYou" && ctx.gw.config.region == "us-east-1" => {}
        other => {
            other?;
        }
    }
    Ok(HttpResponse::Ok().insert_header(("location", format!("/{bucket}"))).finish())
}

pub async fn head_bucket(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.gw.ensure_bucket(bucket).await?;
    Ok(HttpResponse::Ok().insert_header(("x-amz-bucket-region", ctx.gw.config.region.clone())).finish())
}

pub async fn delete_bucket(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.gw.commit(Command::DeleteBucket { name: bucket.to_string() }).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn get_bucket_location(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.gw.ensure_bucket(bucket).await?;
    let mut x = XmlWriter::new();
    // AWS answers an empty constraint for us-east-1.
    let region = &ctx.gw.config.region;
    x.element("LocationConstraint", if region == "us-east-1" { "" } else { region });
    Ok(xml_response(x))
}

pub async fn get_bucket_versioning(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.gw.ensure_bucket(bucket).await?;
    let mut x = XmlWriter::new();
    x.open("VersioningConfiguration");
    x.close("VersioningConfiguration");
    Ok(xml_response(x))
}
