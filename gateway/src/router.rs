//! Entry point of every S3 request: authenticate, parse it into an
//! [`Endpoint`], authorise it on its bucket, and hand it to its operation
//! (one exhaustive match). Errors become S3's XML here, with the request id.

use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use tracing::Instrument;

use crate::body::RequestBody;
use crate::endpoint::{BucketOp, Endpoint, ObjectOp, RequestLine};
use crate::error::{Code, S3Error};
use crate::metrics::Exchange;
use crate::ops::{self, Ctx};
use crate::sigv4;
use crate::target::resolve_target;
use crate::{unsupported, Gateway};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // `-` cannot start a bucket name, so nothing under `/-/` shadows a
    // bucket. One scope, so that an S3 request is told apart by its first
    // segment, not by trying every console and admin route's pattern (a
    // regex each: that was most of what metrics seemed to cost small
    // requests). What no route takes falls through to `dispatch`.
    cfg.service(
        web::scope("/-")
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(jadfs_common::metrics::scrape))
            .route("/stats", web::get().to(stats))
            .service(web::scope("/admin").configure(crate::admin::configure))
            .service(web::scope("/console").configure(crate::console::configure)),
    )
    .default_service(web::to(dispatch));
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// Cluster counters (meta and every storage node) as JSON, for operators
/// and tests; signed like any S3 request.
async fn stats(req: HttpRequest, gw: web::Data<Arc<Gateway>>) -> HttpResponse {
    let result = async {
        let (_, principal) = gw.authenticate(req.method(), req.uri(), req.headers()).await?;
        if !principal.root {
            return Err(
                S3Error::new(Code::AccessDenied).with_message("Only root keys may read the cluster's counters.")
            );
        }
        let meta = gw.meta.stats().await?;
        let mut nodes = Vec::new();
        for node in gw.storage_nodes(true).await? {
            match gw.storage.stats(&node.addr).await {
                Ok(stats) => nodes.push(serde_json::json!({ "addr": node.addr, "stats": stats })),
                Err(e) => nodes.push(serde_json::json!({ "addr": node.addr, "error": e.to_string() })),
            }
        }
        Ok::<_, S3Error>(serde_json::json!({ "meta": meta, "nodes": nodes }))
    }
    .await;
    match result {
        Ok(json) => HttpResponse::Ok().json(json),
        Err(e) => e.to_response(req.uri().path(), "-", false),
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
    if head.method == Method::OPTIONS || is_form_upload(&head.method, &head.headers) {
        return Ok(request);
    }
    match gw.authenticate(&head.method, &head.uri, &head.headers).await {
        Ok(_) => Ok(request),
        Err(e) => {
            let request_id = format!("{:016X}", jadfs_common::random_u64());
            Err(e.to_response(head.uri.path(), &request_id, head.method == Method::HEAD).into())
        }
    }
}

async fn dispatch(req: HttpRequest, payload: web::Payload, gw: web::Data<Arc<Gateway>>) -> HttpResponse {
    // Prometheus cannot sign: an unsigned GET /metrics is a scrape (a
    // signed one lists the bucket `metrics`).
    if req.method() == Method::GET && jadfs_common::metrics::is_scrape(req.path(), req.query_string(), req.headers()) {
        return jadfs_common::metrics::respond(&req);
    }
    let request_id = format!("{:016X}", jadfs_common::random_u64());
    let span = tracing::info_span!(
        "s3",
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
        op = tracing::field::Empty,
    );
    let mut exchange = Exchange::begin(request_id, gw.config.access_log);
    let target = target_of(&req, &gw);
    exchange.bucket = target.as_ref().ok().and_then(|(bucket, _)| bucket.clone());
    let body = RequestBody::new(payload, gw.config.limits.body_idle, exchange.received.clone());
    let result = handle(&req, target, body, gw.get_ref().clone(), &mut exchange.op).instrument(span.clone()).await;
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            exchange.code = Some(e.code.as_str());
            span.in_scope(|| tracing::info!(code = e.code.as_str(), status = e.status().as_u16(), "request failed"));
            span.in_scope(|| e.to_response(req.uri().path(), &exchange.request_id, req.method() == Method::HEAD))
        }
    };
    if req.method() != Method::OPTIONS && req.headers().contains_key("origin") {
        if let Some(bucket) = &exchange.bucket {
            ops::cors::decorate(&req, &gw, bucket, &mut response).await;
        }
    }
    if let Ok(value) = HeaderValue::from_str(&exchange.request_id) {
        response.headers_mut().insert(HeaderName::from_static("x-amz-request-id"), value);
    }
    exchange.finish(response)
}

fn target_of(req: &HttpRequest, gw: &Gateway) -> Result<(Option<String>, Option<String>), S3Error> {
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
    resolve_target(req.uri().path(), host, gw.config.domain.as_deref())
}

/// Answers one S3 request addressed to `target` (its bucket and key, or why
/// they are not valid: answered in its turn, after admission and
/// authentication); `op` is set to the operation's name once it is known
/// (for metrics and the access log).
async fn handle(
    req: &HttpRequest,
    target: Result<(Option<String>, Option<String>), S3Error>,
    body: RequestBody,
    gw: Arc<Gateway>,
    op: &mut &'static str,
) -> Result<HttpResponse, S3Error> {
    let place = gw.admission.enter()?;
    if req.method() == Method::OPTIONS {
        *op = "CorsPreflight";
        // A browser's CORS preflight is never signed.
        return match target? {
            (Some(bucket), _) => ops::cors::preflight(req, &gw, &bucket).await,
            _ => Err(Code::MethodNotAllowed.into()),
        };
    }
    if is_form_upload(req.method(), req.headers()) {
        // A browser form carries its authentication inside: its signed policy.
        *op = "PostObject";
        return match target? {
            (Some(bucket), None) => ops::post_object::post_object(req, body, gw, &bucket).await,
            _ => Err(Code::MethodNotAllowed.into()),
        };
    }
    let signed = gw.authenticate(req.method(), req.uri(), req.headers()).await?;
    let admitted = gw.admission.enter_as(place, &signed.0.access_key)?;
    let (bucket, key) = target?;
    let query = sigv4::parse_query(req.uri().query().unwrap_or(""));
    let copy_source = req.headers().get("x-amz-copy-source").and_then(|v| v.to_str().ok());
    let endpoint =
        Endpoint::parse(RequestLine { method: req.method(), bucket: bucket.clone(), key, query: &query, copy_source })?;
    *op = endpoint.name();
    tracing::Span::current().record("op", *op);
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    unsupported::refuse_unsupported(&endpoint, header)?;
    let ctx = Ctx::new(req, gw, signed, query, bucket, admitted);
    if let Some(needed) = endpoint.permission() {
        ctx.authorize(needed).await?;
    }
    if let Some(expected) = header("x-amz-expected-bucket-owner") {
        if !matches!(endpoint, Endpoint::ListBuckets) && ctx.bucket().await?.owner != expected {
            return Err(Code::AccessDenied.into());
        }
    }
    match endpoint {
        Endpoint::ListBuckets => ops::bucket::list_buckets(&ctx).await,
        Endpoint::Bucket { op, .. } => bucket_op(&ctx, op, body).await,
        Endpoint::Object { key, op, .. } => object_op(&ctx, &key, op, body).await,
    }
}

async fn bucket_op(ctx: &Ctx<'_>, op: BucketOp, body: RequestBody) -> Result<HttpResponse, S3Error> {
    use ops::{bucket as b, cors, lifecycle, list, lock, multipart as mp, object as o, sse, tagging};
    use BucketOp as B;
    match op {
        B::Create => b::create_bucket(ctx, body).await,
        B::Head => b::head_bucket(ctx).await,
        B::Delete => b::delete_bucket(ctx).await,
        B::ListObjects => list::list_objects_v1(ctx).await,
        B::ListObjectsV2 => list::list_objects_v2(ctx).await,
        B::ListObjectVersions => list::list_object_versions(ctx).await,
        B::ListMultipartUploads => mp::list_multipart_uploads(ctx).await,
        B::GetLocation => b::get_bucket_location(ctx).await,
        B::GetVersioning => b::get_bucket_versioning(ctx).await,
        B::PutVersioning => b::put_bucket_versioning(ctx, body).await,
        B::GetObjectLock => lock::get_object_lock_configuration(ctx).await,
        B::PutObjectLock => lock::put_object_lock_configuration(ctx, body).await,
        B::GetCors => cors::get_bucket_cors(ctx).await,
        B::PutCors => cors::put_bucket_cors(ctx, body).await,
        B::DeleteCors => cors::delete_bucket_cors(ctx).await,
        B::GetEncryption => sse::get_bucket_encryption(ctx).await,
        B::PutEncryption => sse::put_bucket_encryption(ctx, body).await,
        B::DeleteEncryption => sse::delete_bucket_encryption(ctx).await,
        B::GetLifecycle => lifecycle::get_bucket_lifecycle(ctx).await,
        B::PutLifecycle => lifecycle::put_bucket_lifecycle(ctx, body).await,
        B::DeleteLifecycle => lifecycle::delete_bucket_lifecycle(ctx).await,
        B::GetTagging => tagging::get_bucket_tagging(ctx).await,
        B::PutTagging => tagging::put_bucket_tagging(ctx, body).await,
        B::DeleteTagging => tagging::delete_bucket_tagging(ctx).await,
        B::DeleteObjects => o::delete_objects(ctx, body).await,
        B::NotImplemented(..) => not_implemented(ctx).await,
    }
}

async fn object_op(ctx: &Ctx<'_>, key: &str, op: ObjectOp, body: RequestBody) -> Result<HttpResponse, S3Error> {
    use ops::{lock, multipart as mp, object as o, tagging};
    use ObjectOp as O;
    match op {
        O::Get => o::get_object(ctx, key, false).await,
        O::Head => o::get_object(ctx, key, true).await,
        O::Put => o::put_object(ctx, key, body).await,
        O::Copy(source) => o::copy_object(ctx, key, &source).await,
        O::Delete => o::delete_object(ctx, key).await,
        O::GetAttributes => o::get_object_attributes(ctx, key).await,
        O::GetTagging => tagging::get_object_tagging(ctx, key).await,
        O::PutTagging => tagging::put_object_tagging(ctx, key, body).await,
        O::DeleteTagging => tagging::delete_object_tagging(ctx, key).await,
        O::GetRetention => lock::get_object_retention(ctx, key).await,
        O::PutRetention => lock::put_object_retention(ctx, key, body).await,
        O::GetLegalHold => lock::get_object_legal_hold(ctx, key).await,
        O::PutLegalHold => lock::put_object_legal_hold(ctx, key, body).await,
        O::CreateMultipartUpload => mp::create_multipart_upload(ctx, key).await,
        O::UploadPart { upload_id, part_number } => mp::upload_part(ctx, key, &upload_id, part_number, body).await,
        O::UploadPartCopy { upload_id, part_number, source } => {
            mp::upload_part_copy(ctx, key, &upload_id, part_number, &source).await
        }
        O::CompleteMultipartUpload { upload_id } => mp::complete_multipart_upload(ctx, key, &upload_id, body).await,
        O::AbortMultipartUpload { upload_id } => mp::abort_multipart_upload(ctx, key, &upload_id).await,
        O::ListParts { upload_id } => mp::list_parts(ctx, key, &upload_id).await,
        O::NotImplemented(..) => not_implemented(ctx).await,
    }
}

/// A feature we do not have yet: a missing bucket is still NoSuchBucket.
async fn not_implemented(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    ctx.bucket().await?;
    Err(Code::NotImplemented.into())
}

fn is_form_upload(method: &Method, headers: &actix_web::http::header::HeaderMap) -> bool {
    *method == Method::POST
        && !headers.contains_key("authorization")
        && headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("multipart/form-data"))
}
