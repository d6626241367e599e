//! The web console, `/-/console/`: pages rendered here (maud), a little
//! JavaScript and CSS of our own, embedded in the binary.
//!
//! Sign-in proves an access key's secret once; a session cookie stands for
//! it afterwards ([`session`]). Every form carries the session's CSRF token.
//! What the console does it does as that key and no more: bucket and key
//! management through the same functions the S3 and admin APIs use, with
//! the same permission checks; object bytes never pass through here: the
//! browser uploads and downloads with URLs presigned for the session's key,
//! so S3's own checks (signature, permission, body) apply to them.

mod pages;
mod session;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use jadfs_meta::api::Permission;
use serde::Deserialize;

use crate::admin::{self, Grant};
use crate::auth::Principal;
use crate::error::{Code, S3Error};
use crate::ops::bucket;
use crate::sigv4::Presign;
use crate::target::{validate_bucket_name, validate_key};
use crate::Gateway;
use pages::Page;
pub use session::Sessions;

type Gw = web::Data<Arc<Gateway>>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(|| async { see_other("/-/console/") }))
        .route("/", web::get().to(overview))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/buckets", web::get().to(buckets))
        .route("/buckets", web::post().to(create_bucket))
        .route("/buckets/{bucket}", web::get().to(browse))
        .route("/buckets/{bucket}/delete", web::post().to(delete_bucket))
        .route("/buckets/{bucket}/objects/delete", web::post().to(delete_object))
        .route("/buckets/{bucket}/objects/share", web::post().to(share))
        .route("/buckets/{bucket}/objects/upload-url", web::post().to(upload_url))
        .route("/buckets/{bucket}/objects/download", web::get().to(download))
        .route("/keys", web::get().to(keys))
        .route("/keys", web::post().to(create_key))
        .route("/keys/delete", web::post().to(delete_key))
        .route("/grants", web::post().to(grant))
        .route("/throughput", web::get().to(throughput))
        .route("/assets/{name}", web::get().to(asset));
}

/// Who is signed in: the session and the key it stands for.
pub struct Visitor {
    pub access_key: String,
    pub csrf: String,
    pub principal: Principal,
    secret: String,
}

/// A console answer other than the page asked for (the sign-in page, an
/// error page), as an actix error so handlers can `?` it.
type Answer = actix_web::Error;

fn answer(response: HttpResponse) -> Answer {
    actix_web::error::InternalError::from_response("console", response).into()
}

/// The signed-in visitor, or the answer to give instead (to the sign-in
/// page; a key deleted since ends its sessions).
async fn visitor(req: &HttpRequest, gw: &Gateway) -> Result<Visitor, HttpResponse> {
    let Some(session) = gw.console.of(req) else { return Err(see_other("/-/console/login")) };
    match gw.signing_key(&session.access_key).await {
        Ok(Some(key)) => Ok(Visitor {
            access_key: session.access_key,
            csrf: session.csrf,
            principal: key.principal,
            secret: key.secret,
        }),
        Ok(None) => {
            gw.console.end_all_of(&session.access_key);
            Err(see_other("/-/console/login"))
        }
        Err(e) => Err(pages::failure(None, &e)),
    }
}

impl actix_web::FromRequest for Visitor {
    type Error = Answer;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Visitor, Answer>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let gw = req.app_data::<Gw>().expect("the gateway is the app's data").clone();
            visitor(&req, &gw).await.map_err(answer)
        })
    }
}

impl Visitor {
    /// A form of this visitor's must carry the session's CSRF token.
    fn check(&self, csrf: &str) -> Result<(), Answer> {
        if session::same(&self.csrf, csrf) {
            return Ok(());
        }
        let refusal = S3Error::new(Code::AccessDenied)
            .with_message("The form's security token is missing or stale: reload the page.");
        Err(answer(pages::failure(Some(self), &refusal)))
    }
}

/// That `bucket` and `key` are names S3 takes, and the visitor's key may
/// act on the bucket with `needed`.
async fn object_access(
    gw: &Gateway,
    visitor: &Visitor,
    bucket: &str,
    key: &str,
    needed: Permission,
) -> Result<(), S3Error> {
    validate_bucket_name(bucket)?;
    validate_key(key)?;
    gw.authorize(&visitor.principal, bucket, needed).await
}

fn root_only(visitor: &Visitor) -> Result<(), S3Error> {
    if visitor.principal.root {
        Ok(())
    } else {
        Err(S3Error::new(Code::AccessDenied).with_message("Only root keys may manage access keys."))
    }
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location.to_string())).finish()
}

/// The path of a bucket's page in the console, at a prefix.
fn bucket_page(bucket: &str, prefix: &str) -> String {
    let prefix = crate::sigv4::uri_encode(prefix);
    format!(
        "/-/console/buckets/{bucket}{}",
        if prefix.is_empty() { String::new() } else { format!("?prefix={prefix}") }
    )
}

async fn overview(visitor: Visitor, gw: Gw) -> HttpResponse {
    let result = async {
        let status = if visitor.principal.root { Some(admin::cluster_status(&gw).await) } else { None };
        let buckets = bucket::visible_buckets(&gw, &visitor.principal).await?;
        Ok(Page::Overview { status, buckets: buckets.len() })
    }
    .await;
    pages::render(&visitor, result)
}

async fn login_form(req: HttpRequest, gw: Gw) -> HttpResponse {
    if gw.console.of(&req).is_some() {
        return see_other("/-/console/");
    }
    pages::login(None, gw.config.tls.is_some())
}

#[derive(Deserialize)]
struct Login {
    access_key: String,
    secret_key: String,
    #[serde(default)]
    csrf: String,
}

/// A failed sign-in waits this long: guessing secrets is slow.
const FAILED_LOGIN_DELAY: Duration = Duration::from_millis(500);

async fn login(req: HttpRequest, gw: Gw, form: web::Form<Login>) -> HttpResponse {
    let secure = gw.config.tls.is_some();
    // The sign-in form's token is in a cookie of its own (double submit).
    let expected = req.cookie(session::LOGIN_COOKIE).map(|c| c.value().to_string()).unwrap_or_default();
    if !session::same(&expected, &form.csrf) {
        return pages::login(Some("The form expired: please sign in again."), secure);
    }
    let key = gw.signing_key(form.access_key.trim()).await.ok().flatten();
    let proven = key.is_some_and(|k| session::same(&k.secret, &form.secret_key));
    if !proven {
        let peer = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
        tracing::warn!(target: "jadfs::console", %peer, access_key = form.access_key.trim(), "a sign-in was refused");
        // Two failures wait at a time, whoever sends them: a few guesses a second at most.
        let _turn = gw.console.failures.acquire().await;
        tokio::time::sleep(FAILED_LOGIN_DELAY).await;
        let mut page = pages::login(Some("Wrong access key or secret key."), secure);
        *page.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        return page;
    }
    let id = gw.console.start(form.access_key.trim());
    let mut answer = see_other("/-/console/");
    let _ = answer.add_cookie(&session::cookie(session::COOKIE, id, secure, session::cookie_age()));
    let _ = answer.add_cookie(&session::cookie(session::LOGIN_COOKIE, String::new(), secure, None));
    answer
}

#[derive(Deserialize)]
struct Csrf {
    #[serde(default)]
    csrf: String,
}

async fn logout(req: HttpRequest, visitor: Visitor, gw: Gw, form: web::Form<Csrf>) -> Result<HttpResponse, Answer> {
    visitor.check(&form.csrf)?;
    gw.console.end(&req);
    let mut answer = see_other("/-/console/login");
    let _ = answer.add_cookie(&session::cookie(session::COOKIE, String::new(), gw.config.tls.is_some(), None));
    Ok(answer)
}

async fn buckets(visitor: Visitor, gw: Gw) -> HttpResponse {
    let result = bucket_rows(&gw, &visitor).await.map(|rows| Page::Buckets { rows, error: None });
    pages::render(&visitor, result)
}

async fn bucket_rows(gw: &Gateway, visitor: &Visitor) -> Result<Vec<pages::BucketRow>, S3Error> {
    let mut rows = Vec::new();
    for info in bucket::visible_buckets(gw, &visitor.principal).await? {
        let usage = gw.meta.bucket_usage(&info.name).await?;
        let owner = visitor.principal.root || info.permission_of(&visitor.principal.id) == Some(Permission::Owner);
        rows.push(pages::BucketRow { info, usage, owner });
    }
    Ok(rows)
}

#[derive(Deserialize)]
struct NewBucket {
    name: String,
    #[serde(default)]
    csrf: String,
}

async fn create_bucket(visitor: Visitor, gw: Gw, form: web::Form<NewBucket>) -> Result<HttpResponse, Answer> {
    visitor.check(&form.csrf)?;
    let name = form.name.trim();
    let created = match validate_bucket_name(name) {
        Ok(()) => bucket::create(&gw, name, &visitor.principal, false).await,
        Err(e) => Err(e),
    };
    Ok(match created {
        Ok(()) => see_other("/-/console/buckets"),
        Err(e) => {
            let result = bucket_rows(&gw, &visitor).await.map(|rows| Page::Buckets { rows, error: Some(e) });
            pages::render(&visitor, result)
        }
    })
}

async fn delete_bucket(
    visitor: Visitor,
    gw: Gw,
    path: web::Path<String>,
    form: web::Form<Csrf>,
) -> Result<HttpResponse, Answer> {
    visitor.check(&form.csrf)?;
    let name = path.into_inner();
    let deleted = async {
        gw.authorize(&visitor.principal, &name, Permission::Owner).await?;
        gw.meta.write(&jadfs_meta::Command::DeleteBucket { name: name.clone() }).await?;
        Ok::<_, S3Error>(())
    }
    .await;
    Ok(match deleted {
        Ok(()) => see_other("/-/console/buckets"),
        Err(e) => {
            let result = bucket_rows(&gw, &visitor).await.map(|rows| Page::Buckets { rows, error: Some(e) });
            pages::render(&visitor, result)
        }
    })
}

#[derive(Deserialize)]
struct Listing {
    #[serde(default)]
    prefix: String,
    after: Option<String>,
}

/// Entries shown on one page of a bucket.
const PAGE: usize = 200;

async fn browse(visitor: Visitor, gw: Gw, path: web::Path<String>, query: web::Query<Listing>) -> HttpResponse {
    let result = listing(&gw, &visitor, &path, &query.prefix, query.after.clone(), None).await;
    pages::render(&visitor, result)
}

/// A bucket's page: its entries under `prefix` after `after`.
async fn listing(
    gw: &Gateway,
    visitor: &Visitor,
    bucket: &str,
    prefix: &str,
    after: Option<String>,
    notice: Option<pages::Notice>,
) -> Result<Page, S3Error> {
    validate_bucket_name(bucket)?;
    gw.authorize(&visitor.principal, bucket, Permission::Read).await?;
    let page = gw
        .meta
        .list_objects(jadfs_meta::api::ListObjectsQuery {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            delimiter: Some("/".into()),
            start_after: after,
            max_keys: PAGE,
        })
        .await?;
    Ok(Page::Bucket { bucket: bucket.to_string(), prefix: prefix.to_string(), page, notice })
}

#[derive(Deserialize)]
struct ObjectForm {
    key: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    csrf: String,
    /// Share links: seconds the link works.
    expires: Option<i64>,
}

async fn delete_object(
    visitor: Visitor,
    gw: Gw,
    path: web::Path<String>,
    form: web::Form<ObjectForm>,
) -> Result<HttpResponse, Answer> {
    visitor.check(&form.csrf)?;
    let bucket = path.into_inner();
    let deleted = async {
        object_access(&gw, &visitor, &bucket, &form.key, Permission::Write).await?;
        let command = jadfs_meta::Command::DeleteObject {
            bucket: bucket.clone(),
            key: form.key.clone(),
            version_id: None,
            now_ms: jadfs_common::now_ms(),
            bypass_governance: false,
            condition: None,
        };
        gw.meta.write(&command).await?;
        Ok::<_, S3Error>(())
    }
    .await;
    Ok(match deleted {
        Ok(()) => see_other(&bucket_page(&bucket, &form.prefix)),
        Err(e) => pages::failure(Some(&visitor), &e),
    })
}

/// Longest a share link may work: AWS's limit for presigned URLs.
const MAX_SHARE: i64 = crate::sigv4::MAX_PRESIGN_SECONDS;

async fn share(
    req: HttpRequest,
    visitor: Visitor,
    gw: Gw,
    path: web::Path<String>,
    form: web::Form<ObjectForm>,
) -> Result<HttpResponse, Answer> {
    visitor.check(&form.csrf)?;
    let bucket = path.into_inner();
    let result = async {
        let expires = form.expires.unwrap_or(3600).clamp(60, MAX_SHARE);
        // Only a key that may read it can share it; the link proves that key.
        object_access(&gw, &visitor, &bucket, &form.key, Permission::Read).await?;
        gw.get_object(&bucket, &form.key, None).await?;
        let url = presigned(&req, &gw, &visitor, "GET", &bucket, &form.key, expires, &[])?;
        let notice = pages::Notice::Shared { key: form.key.clone(), url, expires };
        listing(&gw, &visitor, &bucket, &form.prefix, None, Some(notice)).await
    }
    .await;
    Ok(pages::render(&visitor, result))
}

#[derive(Deserialize)]
struct UploadRequest {
    key: String,
}

/// A URL the browser PUTs one file to (JSON in, JSON out; the CSRF token
/// in the `x-csrf-token` header).
async fn upload_url(req: HttpRequest, gw: Gw, path: web::Path<String>, body: web::Json<UploadRequest>) -> HttpResponse {
    let csrf = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    let visitor = match visitor(&req, &gw).await {
        Ok(v) if session::same(&v.csrf, csrf) => v,
        _ => return HttpResponse::Forbidden().json(serde_json::json!({ "error": "not signed in, or no token" })),
    };
    let bucket = path.into_inner();
    let url = async {
        if body.key.is_empty() {
            return Err(S3Error::new(Code::InvalidArgument).with_message("An object needs a name."));
        }
        object_access(&gw, &visitor, &bucket, &body.key, Permission::Write).await?;
        presigned(&req, &gw, &visitor, "PUT", &bucket, &body.key, UPLOAD_URL_SECONDS, &[])
    }
    .await;
    match url {
        Ok(url) => HttpResponse::Ok().json(serde_json::json!({ "url": url })),
        Err(e) => HttpResponse::build(e.status()).json(serde_json::json!({ "error": e.message })),
    }
}

/// How long an upload URL works (a large file's upload must start within it).
const UPLOAD_URL_SECONDS: i64 = 15 * 60;
/// How long a download link works.
const DOWNLOAD_URL_SECONDS: i64 = 5 * 60;

#[derive(Deserialize)]
struct KeyQuery {
    key: String,
}

/// Sends the browser on to a short-lived URL of the object, as a download.
async fn download(
    req: HttpRequest,
    visitor: Visitor,
    gw: Gw,
    path: web::Path<String>,
    query: web::Query<KeyQuery>,
) -> HttpResponse {
    if let Err(e) = validate_bucket_name(&path).and_then(|()| validate_key(&query.key)) {
        return pages::failure(Some(&visitor), &e);
    }
    let name: String = query.key.rsplit('/').next().unwrap_or_default().chars().filter(|c| !c.is_control()).collect();
    let disposition = format!("attachment; filename=\"{}\"", name.replace(['"', '\\'], "_"));
    let params = [("response-content-disposition", disposition.as_str())];
    match presigned(&req, &gw, &visitor, "GET", &path, &query.key, DOWNLOAD_URL_SECONDS, &params) {
        Ok(url) => see_other(&url),
        Err(e) => pages::failure(Some(&visitor), &e),
    }
}

/// A URL (on the host the browser reached us at) for one S3 request as the visitor's key.
#[allow(clippy::too_many_arguments)]
fn presigned(
    req: &HttpRequest,
    gw: &Gateway,
    visitor: &Visitor,
    method: &str,
    bucket: &str,
    key: &str,
    expires_s: i64,
    params: &[(&str, &str)],
) -> Result<String, S3Error> {
    let host = browser_host(req)?;
    let raw_path = format!("/{bucket}/{}", crate::ops::url_encode_key(key));
    let presign = Presign { method, raw_path: &raw_path, host, expires_s, params };
    let query = presign.query(&visitor.access_key, &visitor.secret, &gw.config.region, chrono::Utc::now());
    let scheme = if gw.config.tls.is_some() { "https" } else { "http" };
    Ok(format!("{scheme}://{host}{raw_path}?{query}"))
}

/// The host the browser reached us at: its own Host header (never a
/// forwarding header, which a proxy may pass on from anyone), if it is a
/// plain `host[:port]`.
fn browser_host(req: &HttpRequest) -> Result<&str, S3Error> {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    let host = host.or_else(|| req.uri().authority().map(|a| a.as_str())).unwrap_or("");
    let plain =
        (1..=255).contains(&host.len()) && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if plain {
        Ok(host)
    } else {
        Err(S3Error::new(Code::InvalidArgument).with_message("The Host header is not a host name."))
    }
}

async fn keys(visitor: Visitor, gw: Gw) -> HttpResponse {
    let result = keys_page(&gw, &visitor, None).await;
    pages::render(&visitor, result)
}

async fn keys_page(gw: &Gateway, visitor: &Visitor, notice: Option<pages::Notice>) -> Result<Page, S3Error> {
    root_only(visitor)?;
    let keys = gw.meta.list_access_keys().await?;
    let buckets = gw.meta.list_buckets().await?;
    Ok(Page::Keys { keys, buckets, notice })
}

#[derive(Deserialize)]
struct NewKey {
    #[serde(default)]
    name: String,
    #[serde(default)]
    csrf: String,
}

async fn create_key(visitor: Visitor, gw: Gw, form: web::Form<NewKey>) -> Result<HttpResponse, Answer> {
    visitor.check(&form.csrf)?;
    let result = async {
        root_only(&visitor)?;
        let notice = match admin::create_access_key(&gw, form.name.trim().to_string(), None, None).await {
            Ok(key) => pages::Notice::KeyCreated { access_key: key.access_key, secret_key: key.secret_key },
            Err(e) => pages::Notice::Failed(e),
        };
        keys_page(&gw, &visitor, Some(notice)).await
    }
    .await;
    Ok(pages::render(&visitor, result))
}

#[derive(Deserialize)]
struct KeyForm {
    access_key: String,
    #[serde(default)]
    csrf: String,
}

async fn delete_key(visitor: Visitor, gw: Gw, form: web::Form<KeyForm>) -> Result<HttpResponse, Answer> {
    visitor.check(&form.csrf)?;
    let result = async {
        root_only(&visitor)?;
        admin::delete_access_key(&gw, &form.access_key).await?;
        gw.console.end_all_of(&form.access_key);
        Ok(())
    }
    .await;
    Ok(match result {
        Ok(()) => see_other("/-/console/keys"),
        Err(e) => pages::failure(Some(&visitor), &e),
    })
}

#[derive(Deserialize)]
struct GrantForm {
    bucket: String,
    access_key: String,
    /// read, write, owner, or none.
    permission: String,
    #[serde(default)]
    csrf: String,
}

async fn grant(visitor: Visitor, gw: Gw, form: web::Form<GrantForm>) -> Result<HttpResponse, Answer> {
    visitor.check(&form.csrf)?;
    let result = async {
        root_only(&visitor)?;
        let permission = match form.permission.as_str() {
            "read" => Some(Permission::Read),
            "write" => Some(Permission::Write),
            "owner" => Some(Permission::Owner),
            "none" => None,
            _ => return Err(S3Error::new(Code::InvalidArgument).with_message("Unknown permission.")),
        };
        let grant = Grant { access_key: form.access_key.trim().to_string(), permission };
        admin::set_bucket_grant(&gw, &form.bucket, grant).await?;
        let notice = pages::Notice::Granted { bucket: form.bucket.clone(), access_key: form.access_key.clone() };
        keys_page(&gw, &visitor, Some(notice)).await
    }
    .await;
    Ok(pages::render(&visitor, result))
}

/// This gateway's totals (requests, bytes in and out) for the overview's
/// chart, which turns them into rates: root keys only.
async fn throughput(req: HttpRequest, gw: Gw) -> HttpResponse {
    match visitor(&req, &gw).await {
        Ok(v) if v.principal.root => {
            let (requests, received, sent) = crate::metrics::totals();
            HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(serde_json::json!({
                "ms": jadfs_common::now_ms(),
                "requests": requests,
                "received": received,
                "sent": sent,
            }))
        }
        _ => HttpResponse::Forbidden().finish(),
    }
}

async fn asset(name: web::Path<String>) -> HttpResponse {
    let (body, kind) = match name.as_str() {
        "console.css" => (include_str!("assets/console.css"), "text/css; charset=utf-8"),
        "console.js" => (include_str!("assets/console.js"), "text/javascript; charset=utf-8"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}
