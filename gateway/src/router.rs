//! Entry point of every S3 request: authenticate, find the bucket and key
//! (path-style or virtual-host style), and dispatch to the operation.

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use percent_encoding::percent_decode_str;
use tracing::Instrument;

use jadfs_meta::api::Permission;

use crate::error::S3Error;
use crate::ops::{self, Ctx};
use crate::sigv4::{self, RequestParts};
use crate::Gateway;

/// Longest object key S3 allows, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `-` cannot start a bucket name, so these never shadow a bucket.
    cfg.route("/-/health", web::get().to(health))
        .route("/-/stats", web::get().to(stats))
        .configure(crate::admin::configure)
        .default_service(web::to(dispatch));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// Cluster counters (meta and every storage node) as JSON, for operators
/// and tests; signed like any S3 request.
async fn stats(req: HttpRequest, gw: web::Data<Arc<Gateway>>) -> HttpResponse {
    let result = async {
        authenticate(&req, &gw).await?;
        let meta = gw.query(jadfs_meta::Query::Stats).await?;
        let mut nodes = Vec::new();
        for node in gw.storage_nodes(true).await? {
            match gw.storage.stats(&node.addr).await {
                Ok(stats) => nodes.push(serde_json::json!({ "addr": node.addr, "stats": stats })),
                Err(e) => nodes.push(serde_json::json!({ "addr": node.addr, "error": e.to_string() })),
            }
        }
        let jadfs_meta::QueryResult::Stats(meta) = meta else {
            return Err(S3Error::internal("unexpected meta answer"));
        };
        Ok::<_, S3Error>(serde_json::json!({ "meta": meta, "nodes": nodes }))
    }
    .await;
    match result {
        Ok(json) => HttpResponse::Ok().json(json),
        Err(e) => e.to_response(req.uri().path(), "-", false),
    }
}

fn request_parts(req: &HttpRequest) -> RequestParts<'_> {
    RequestParts {
        method: req.method().as_str(),
        raw_path: req.uri().path(),
        raw_query: req.uri().query().unwrap_or(""),
        headers: req
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
    }
}

/// Answers `Expect: 100-continue` before the body is sent: a request that
/// fails authentication gets its error at once, and the client never sends
/// the body. Form uploads and preflights carry no signature and go on.
pub async fn expect_continue(
    gw: &Gateway,
    request: actix_http::Request,
) -> Result<actix_http::Request, actix_http::Response<actix_web::body::BoxBody>> {
    let head = request.head();
    let unsigned_kind = head.method == Method::OPTIONS
        || (head.method == Method::POST
            && !head.headers.contains_key("authorization")
            && head
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("multipart/form-data")));
    if unsigned_kind {
        return Ok(request);
    }
    let parts = RequestParts {
        method: head.method.as_str(),
        raw_path: head.uri.path(),
        raw_query: head.uri.query().unwrap_or(""),
        headers: head
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
    };
    let secret = match sigv4::access_key_of(&parts) {
        Some(access_key) => gw.secret_of(&access_key).await,
        None => Ok(None),
    };
    let verified = secret.and_then(|secret| sigv4::verify(&parts, Utc::now(), |_| secret.clone()));
    match verified {
        Ok(_) => Ok(request),
        Err(e) => {
            let request_id = format!("{:016X}", jadfs_common::random_u64());
            Err(e.to_response(head.uri.path(), &request_id, head.method == Method::HEAD).into())
        }
    }
}

/// Verifies a request's signature with the secret of the key it claims.
pub async fn authenticate(req: &HttpRequest, gw: &Gateway) -> Result<sigv4::Verified, S3Error> {
    let parts = request_parts(req);
    let secret = match sigv4::access_key_of(&parts) {
        Some(access_key) => gw.secret_of(&access_key).await?,
        None => None,
    };
    sigv4::verify(&parts, Utc::now(), |_| secret.clone())
}

async fn dispatch(req: HttpRequest, payload: web::Payload, gw: web::Data<Arc<Gateway>>) -> HttpResponse {
    let request_id = format!("{:016X}", jadfs_common::random_u64());
    let span = tracing::info_span!("s3", request_id = %request_id, method = %req.method(), path = %req.uri().path());
    let result = handle(&req, payload, gw.get_ref().clone()).instrument(span.clone()).await;
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            span.in_scope(|| tracing::info!(code = e.code, status = e.status.as_u16(), "request failed"));
            e.to_response(req.uri().path(), &request_id, req.method() == Method::HEAD)
        }
    };
    if req.method() != Method::OPTIONS && req.headers().contains_key("origin") {
        if let Ok((Some(bucket), _)) = resolve_target(&req, gw.config.domain.as_deref()) {
            ops::cors::decorate(&req, &gw, &bucket, &mut response).await;
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HeaderName::from_static("x-amz-request-id"), value);
    }
    response
}

async fn handle(req: &HttpRequest, payload: web::Payload, gw: Arc<Gateway>) -> Result<HttpResponse, S3Error> {
    let raw_query = req.uri().query().unwrap_or("");
    if req.method() == Method::OPTIONS {
        // A browser's CORS preflight is never signed.
        return match resolve_target(req, gw.config.domain.as_deref())? {
            (Some(bucket), _) => ops::cors::preflight(req, &gw, &bucket).await,
            _ => Err(S3Error::MethodNotAllowed()),
        };
    }
    if is_form_upload(req) {
        // A browser form carries its authentication inside: its signed policy.
        return match resolve_target(req, gw.config.domain.as_deref())? {
            (Some(bucket), None) => ops::post_object::post_object(req, payload, gw, &bucket).await,
            _ => Err(S3Error::MethodNotAllowed()),
        };
    }
    let verified = authenticate(req, &gw).await?;
    let (bucket, key) = resolve_target(req, gw.config.domain.as_deref())?;
    let ctx = Ctx { req, gw, verified, query: sigv4::parse_query(raw_query) };
    let method = req.method().clone();
    if let Some(bucket) = &bucket {
        if let Some(needed) = required_permission(&ctx, &method, key.is_some()) {
            ctx.gw.authorize(&ctx.verified.access_key, bucket, needed).await?;
        }
    }
    match (bucket, key) {
        (None, _) if method == Method::GET => ops::bucket::list_buckets(&ctx).await,
        (None, _) => Err(S3Error::MethodNotAllowed()),
        (Some(bucket), None) => dispatch_bucket(&ctx, &method, &bucket, payload).await,
        (Some(bucket), Some(key)) => dispatch_object(&ctx, &method, &bucket, &key, payload).await,
    }
}

fn is_form_upload(req: &HttpRequest) -> bool {
    req.method() == Method::POST
        && req.headers().get("authorization").is_none()
        && req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("multipart/form-data"))
}

/// What a request needs on its bucket; None for CreateBucket, which any key may do.
fn required_permission(ctx: &Ctx, method: &Method, is_object: bool) -> Option<Permission> {
    let read = *method == Method::GET || *method == Method::HEAD;
    if is_object {
        return Some(if read { Permission::Read } else { Permission::Write });
    }
    match *method {
        _ if read => Some(Permission::Read),
        Method::POST => Some(Permission::Write),
        Method::PUT if ctx.query.is_empty() => None,
        _ => Some(Permission::Owner),
    }
}

async fn dispatch_bucket(
    ctx: &Ctx<'_>,
    method: &Method,
    bucket: &str,
    payload: web::Payload,
) -> Result<HttpResponse, S3Error> {
    use ops::{bucket as b, cors, list, multipart as mp, tagging};
    match *method {
        Method::GET if ctx.has("cors") => cors::get_bucket_cors(ctx, bucket).await,
        Method::PUT if ctx.has("cors") => cors::put_bucket_cors(ctx, bucket, payload).await,
        Method::DELETE if ctx.has("cors") => cors::delete_bucket_cors(ctx, bucket).await,
        Method::GET if ctx.has("tagging") => tagging::get_bucket_tagging(ctx, bucket).await,
        Method::PUT if ctx.has("tagging") => tagging::put_bucket_tagging(ctx, bucket, payload).await,
        Method::DELETE if ctx.has("tagging") => tagging::delete_bucket_tagging(ctx, bucket).await,
        Method::GET if ctx.has("location") => b::get_bucket_location(ctx, bucket).await,
        Method::GET if ctx.has("versioning") => b::get_bucket_versioning(ctx, bucket).await,
        Method::GET if ctx.has("uploads") => mp::list_multipart_uploads(ctx, bucket).await,
        Method::GET if ctx.has("versions") => list::list_object_versions(ctx, bucket).await,
        Method::GET if ctx.param("list-type") == Some("2") => list::list_objects_v2(ctx, bucket).await,
        Method::GET if b::is_unsupported_subresource(ctx) => not_implemented(ctx, bucket).await,
        Method::GET => list::list_objects_v1(ctx, bucket).await,
        Method::PUT if b::is_unsupported_subresource(ctx) => not_implemented(ctx, bucket).await,
        Method::PUT => b::create_bucket(ctx, bucket, payload).await,
        Method::HEAD => b::head_bucket(ctx, bucket).await,
        Method::DELETE if b::is_unsupported_subresource(ctx) => not_implemented(ctx, bucket).await,
        Method::DELETE => b::delete_bucket(ctx, bucket).await,
        Method::POST if ctx.has("delete") => ops::object::delete_objects(ctx, bucket, payload).await,
        _ => Err(S3Error::MethodNotAllowed()),
    }
}

async fn dispatch_object(
    ctx: &Ctx<'_>,
    method: &Method,
    bucket: &str,
    key: &str,
    payload: web::Payload,
) -> Result<HttpResponse, S3Error> {
    use ops::{multipart as mp, object as o, tagging};
    let upload_id = ctx.param("uploadId").map(str::to_string);
    match (method.clone(), upload_id) {
        (Method::GET, None) if ctx.has("tagging") => tagging::get_object_tagging(ctx, bucket, key).await,
        (Method::GET, None) if ctx.has("attributes") => o::get_object_attributes(ctx, bucket, key).await,
        (Method::PUT, None) if ctx.has("tagging") => tagging::put_object_tagging(ctx, bucket, key, payload).await,
        (Method::DELETE, None) if ctx.has("tagging") => tagging::delete_object_tagging(ctx, bucket, key).await,
        (Method::PUT, Some(upload_id)) => mp::upload_part(ctx, bucket, key, &upload_id, payload).await,
        (Method::PUT, None) if ctx.header("x-amz-copy-source").is_some() => o::copy_object(ctx, bucket, key).await,
        (Method::PUT, None) if o::is_unsupported_subresource(ctx) => not_implemented(ctx, bucket).await,
        (Method::PUT, None) => o::put_object(ctx, bucket, key, payload).await,
        (Method::GET, Some(upload_id)) => mp::list_parts(ctx, bucket, key, &upload_id).await,
        (Method::GET | Method::HEAD, None) if o::is_unsupported_subresource(ctx) => not_implemented(ctx, bucket).await,
        (Method::GET, None) => o::get_object(ctx, bucket, key, false).await,
        (Method::HEAD, None) => o::get_object(ctx, bucket, key, true).await,
        (Method::DELETE, Some(upload_id)) => mp::abort_multipart_upload(ctx, bucket, key, &upload_id).await,
        (Method::DELETE, None) => o::delete_object(ctx, bucket, key).await,
        (Method::POST, None) if ctx.has("uploads") => mp::create_multipart_upload(ctx, bucket, key).await,
        (Method::POST, Some(upload_id)) => mp::complete_multipart_upload(ctx, bucket, key, &upload_id, payload).await,
        _ => Err(S3Error::MethodNotAllowed()),
    }
}

/// A feature we do not have yet: a missing bucket is still NoSuchBucket.
async fn not_implemented(ctx: &Ctx<'_>, bucket: &str) -> Result<HttpResponse, S3Error> {
    ctx.gw.ensure_bucket(bucket).await?;
    Err(S3Error::NotImplemented())
}

/// The bucket and key a request addresses. Both come from the client and
/// are only ever used as metadata, never as file paths.
pub fn resolve_target(req: &HttpRequest, domain: Option<&str>) -> Result<(Option<String>, Option<String>), S3Error> {
    let path = req.uri().path();
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    let vhost_bucket = domain.and_then(|d| host.strip_suffix(d)?.strip_suffix('.')).filter(|b| !b.is_empty());
    let (bucket, raw_key) = match vhost_bucket {
        Some(bucket) => (Some(bucket.to_string()), path.strip_prefix('/').unwrap_or(path)),
        None => {
            let rest = path.strip_prefix('/').unwrap_or(path);
            match rest.split_once('/') {
                Some((bucket, key)) => (Some(decode(bucket)?), key),
                None if rest.is_empty() => (None, ""),
                None => (Some(decode(rest)?), ""),
            }
        }
    };
    let Some(bucket) = bucket else { return Ok((None, None)) };
    validate_bucket_name(&bucket)?;
    if raw_key.is_empty() {
        return Ok((Some(bucket), None));
    }
    let key = decode(raw_key)?;
    if key.len() > MAX_KEY_BYTES {
        return Err(S3Error::KeyTooLongError());
    }
    Ok((Some(bucket), Some(key)))
}

fn decode(raw: &str) -> Result<String, S3Error> {
    percent_decode_str(raw).decode_utf8().map(|s| s.into_owned()).map_err(|_| S3Error::InvalidURI())
}

/// S3's bucket naming rules.
pub fn validate_bucket_name(name: &str) -> Result<(), S3Error> {
    let bytes = name.as_bytes();
    let valid_chars = bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ip_like =
        name.split('.').count() == 4 && name.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let ok = (3..=63).contains(&bytes.len())
        && valid_chars
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
        && !name.contains("..")
        && !ip_like
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias");
    if ok {
        Ok(())
    } else {
        Err(S3Error::InvalidBucketName())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn bucket_names() {
        for good in ["abc", "my-bucket.2024", "a1b", &"a".repeat(63)] {
            assert!(validate_bucket_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "ABC", "-abc", "abc-", "a..b", "192.168.1.1", "a_b", &"a".repeat(64), "xn--abc", "..", "a/b"]
        {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_path_and_virtual_host_style() {
        let req = TestRequest::get()
            .uri("/bucket/dir/%2E%2E/a%20b")
            .insert_header(("host", "localhost:9000"))
            .to_http_request();
        assert_eq!(
            resolve_target(&req, Some("localhost")).unwrap(),
            (Some("bucket".into()), Some("dir/../a b".into()))
        );
        let req =
            TestRequest::get().uri("/k%C3%A9y").insert_header(("host", "bucket.localhost:9000")).to_http_request();
        assert_eq!(resolve_target(&req, Some("localhost")).unwrap(), (Some("bucket".into()), Some("kéy".into())));
        let req = TestRequest::get().uri("/").insert_header(("host", "localhost")).to_http_request();
        assert_eq!(resolve_target(&req, Some("localhost")).unwrap(), (None, None));
        let req = TestRequest::get().uri("/bucket/").to_http_request();
        assert_eq!(resolve_target(&req, None).unwrap(), (Some("bucket".into()), None));
        let long = format!("/bucket/{}", "k".repeat(1025));
        let req = TestRequest::get().uri(&long).to_http_request();
        assert_eq!(resolve_target(&req, None).unwrap_err().code, "KeyTooLongError");
        let req = TestRequest::get().uri("/Bad_Bucket/k").to_http_request();
        assert_eq!(resolve_target(&req, None).unwrap_err().code, "InvalidBucketName");
    }
}
