//! The administration API, for root keys only (signed with SigV4 like any
//! S3 request): access keys and bucket grants. `jadfs admin` speaks it.
//!
//! - `GET /-/admin/keys`, `POST /-/admin/keys` (`{"name", "access_key"?, "secret_key"?}`),
//!   `DELETE /-/admin/keys/{access_key}`
//! - `PUT /-/admin/buckets/{bucket}/grants` (`{"access_key", "permission": "read"|"write"|"owner"|null}`)
//! - `GET|PUT /-/admin/replication`, `GET|PUT /-/admin/buckets/{bucket}/replication`
//!   (`{"mode": "sync"|"async", "copies", "write_quorum"}`; PUT `null` on a bucket: back to the default)
//! - `GET /-/admin/nodes`: storage nodes with their state, and the repair queue's length
//! - `GET /-/admin/scrub[?node=N]`: each storage node's scrubber; `POST` starts a pass now

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use jadfs_common::node::ScrubStatus;
use jadfs_meta::api::{AccessKey, Permission, Replication, StorageNodeInfo};
use jadfs_meta::Command;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Code, S3Error};
use crate::sigv4::PayloadMode;
use crate::target::validate_bucket_name;
use crate::Gateway;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/-/admin/keys", web::get().to(list_keys))
        .route("/-/admin/keys", web::post().to(create_key))
        .route("/-/admin/keys/{access_key}", web::delete().to(delete_key))
        .route("/-/admin/buckets/{bucket}/grants", web::put().to(set_grant))
        .route("/-/admin/replication", web::get().to(get_replication))
        .route("/-/admin/replication", web::put().to(set_replication))
        .route("/-/admin/buckets/{bucket}/replication", web::get().to(get_replication))
        .route("/-/admin/buckets/{bucket}/replication", web::put().to(set_replication))
        .route("/-/admin/nodes", web::get().to(list_nodes))
        .route("/-/admin/nodes/{id}/drain", web::put().to(drain_node))
        .route("/-/admin/rebalance", web::put().to(rebalance))
        .route("/-/admin/scrub", web::get().to(scrub))
        .route("/-/admin/scrub", web::post().to(scrub));
}

type Gw = web::Data<Arc<Gateway>>;

/// Authenticates a root key and checks a signed body hash.
async fn admin(req: &HttpRequest, gw: &Gateway, body: &[u8]) -> Result<(), S3Error> {
    let (verified, principal) = gw.authenticate(req.method(), req.uri(), req.headers()).await?;
    if !principal.root {
        return Err(S3Error::new(Code::AccessDenied).with_message("Only root keys may administer JaDFS."));
    }
    if let PayloadMode::Sha256(expected) = &verified.payload {
        if hex::encode(Sha256::digest(body)) != *expected {
            return Err(S3Error::new(Code::XAmzContentSHA256Mismatch));
        }
    }
    Ok(())
}

fn respond(req: &HttpRequest, result: Result<HttpResponse, S3Error>) -> HttpResponse {
    result.unwrap_or_else(|e| e.to_response(req.uri().path(), "-", false))
}

/// A key as listed: never its secret.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
pub struct KeyListing {
    pub access_key: String,
    pub name: String,
    pub created_ms: i64,
}

async fn list_keys(req: HttpRequest, gw: Gw) -> HttpResponse {
    let result = async {
        admin(&req, &gw, b"").await?;
        let keys = gw.meta.list_access_keys().await?;
        let listing: Vec<KeyListing> = keys
            .into_iter()
            .map(|k| KeyListing { access_key: k.access_key, name: k.name, created_ms: k.created_ms })
            .collect();
        Ok(HttpResponse::Ok().json(listing))
    }
    .await;
    respond(&req, result)
}

#[derive(Deserialize)]
struct CreateKey {
    name: String,
    access_key: Option<String>,
    secret_key: Option<String>,
}

fn valid_access_key(key: &str) -> bool {
    (3..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

async fn create_key(req: HttpRequest, gw: Gw, body: web::Bytes) -> HttpResponse {
    let result = async {
        admin(&req, &gw, &body).await?;
        let request: CreateKey = serde_json::from_slice(&body)
            .map_err(|e| S3Error::new(Code::InvalidArgument).with_message(format!("Invalid key request: {e}")))?;
        let access_key = request.access_key.unwrap_or_else(jadfs_common::generate_access_key);
        let secret_key = request.secret_key.unwrap_or_else(jadfs_common::generate_secret_key);
        if !valid_access_key(&access_key) || !(8..=128).contains(&secret_key.len()) {
            return Err(S3Error::new(Code::InvalidArgument)
                .with_message("An access key is 3 to 128 letters and digits; a secret key 8 to 128 characters."));
        }
        if gw.is_root(&access_key) {
            return Err(S3Error::new(Code::InvalidArgument).with_message("That access key already exists."));
        }
        // The metadata keeps the secret sealed, under an id of the key's own.
        let sealed = jadfs_common::sealed::seal(gw.config.cluster_key.secrets_key(), &access_key, &secret_key);
        let id = format!("k{:016x}{:016x}", jadfs_common::random_u64(), jadfs_common::random_u64());
        let stored = AccessKey {
            access_key: access_key.clone(),
            secret_key: sealed,
            name: request.name.clone(),
            created_ms: jadfs_common::now_ms(),
            id,
        };
        gw.meta.write(&Command::PutAccessKey { key: stored.clone() }).await.map_err(|e| match e {
            jadfs_meta::MetaError::AccessKeyExists => {
                S3Error::new(Code::InvalidArgument).with_message("That access key already exists.")
            }
            e => e.into(),
        })?;
        gw.forget_key(&access_key);
        // The one time the secret is shown.
        Ok(HttpResponse::Ok().json(AccessKey { secret_key, ..stored }))
    }
    .await;
    respond(&req, result)
}

async fn delete_key(req: HttpRequest, gw: Gw, access_key: web::Path<String>) -> HttpResponse {
    let result = async {
        admin(&req, &gw, b"").await?;
        gw.meta.write(&Command::DeleteAccessKey { access_key: access_key.to_string() }).await?;
        gw.forget_key(&access_key);
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    respond(&req, result)
}

#[derive(Deserialize, Serialize)]
pub struct Grant {
    pub access_key: String,
    pub permission: Option<Permission>,
}

async fn set_grant(req: HttpRequest, gw: Gw, bucket: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let result = async {
        admin(&req, &gw, &body).await?;
        validate_bucket_name(&bucket)?;
        let grant: Grant = serde_json::from_slice(&body)
            .map_err(|e| S3Error::new(Code::InvalidArgument).with_message(format!("Invalid grant: {e}")))?;
        gw.meta
            .write(&Command::SetBucketGrant {
                bucket: bucket.to_string(),
                access_key: grant.access_key,
                permission: grant.permission,
            })
            .await?;
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    respond(&req, result)
}

/// The bucket named in the path, if any (validated).
fn path_bucket(req: &HttpRequest) -> Result<Option<String>, S3Error> {
    match req.match_info().get("bucket") {
        Some(bucket) => {
            validate_bucket_name(bucket)?;
            Ok(Some(bucket.to_string()))
        }
        None => Ok(None),
    }
}

async fn get_replication(req: HttpRequest, gw: Gw) -> HttpResponse {
    let result = async {
        admin(&req, &gw, b"").await?;
        let bucket = path_bucket(&req)?;
        if let Some(bucket) = &bucket {
            gw.meta.get_bucket(bucket).await?.ok_or(Code::NoSuchBucket)?;
        }
        let replication = gw.meta.get_replication(bucket.as_deref()).await?;
        Ok(HttpResponse::Ok().json(replication))
    }
    .await;
    respond(&req, result)
}

async fn set_replication(req: HttpRequest, gw: Gw, body: web::Bytes) -> HttpResponse {
    let result = async {
        admin(&req, &gw, &body).await?;
        let bucket = path_bucket(&req)?;
        let replication: Option<Replication> = serde_json::from_slice(&body)
            .map_err(|e| S3Error::new(Code::InvalidArgument).with_message(format!("Invalid replication: {e}")))?;
        if let Some(r) = &replication {
            if !(1..=7).contains(&r.copies) || !(1..=r.copies).contains(&r.write_quorum) {
                return Err(S3Error::new(Code::InvalidArgument)
                    .with_message("Copies are 1 to 7, and the write quorum 1 to the number of copies."));
            }
        }
        gw.meta.write(&Command::SetReplication { bucket, replication }).await?;
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    respond(&req, result)
}

/// Storage nodes as the meta leader sees them, and the repair backlog.
#[derive(Serialize, Deserialize, Debug)]
pub struct NodesReport {
    pub nodes: Vec<StorageNodeInfo>,
    pub repair_queue: u64,
    /// What each node holds, and the rebalance in progress.
    #[serde(default)]
    pub usage: jadfs_meta::api::ClusterUsage,
}

async fn list_nodes(req: HttpRequest, gw: Gw) -> HttpResponse {
    let result = async {
        admin(&req, &gw, b"").await?;
        let nodes = gw.storage_nodes(true).await?;
        let stats = gw.meta.stats().await?;
        let usage = gw.meta.usage().await?;
        Ok(HttpResponse::Ok().json(NodesReport { nodes, repair_queue: stats.repair_queue, usage }))
    }
    .await;
    respond(&req, result)
}

#[derive(Deserialize)]
struct Drain {
    draining: bool,
}

/// Starts or stops draining a registered node (`{"draining": true}`).
async fn drain_node(req: HttpRequest, gw: Gw, id: web::Path<jadfs_common::NodeId>, body: web::Bytes) -> HttpResponse {
    let result = async {
        admin(&req, &gw, &body).await?;
        let drain: Drain = serde_json::from_slice(&body)
            .map_err(|e| S3Error::new(Code::InvalidArgument).with_message(format!("Invalid drain request: {e}")))?;
        let node = id.into_inner();
        if !gw.storage_nodes(true).await?.iter().any(|n| n.id == node) {
            return Err(
                S3Error::new(Code::InvalidArgument).with_message(format!("No storage node {node} is registered."))
            );
        }
        gw.meta.write(&Command::SetDraining { node, draining: drain.draining }).await?;
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    respond(&req, result)
}

#[derive(Deserialize)]
struct Rebalance {
    tolerance: Option<u8>,
}

/// Starts a rebalance (`{"tolerance": percent}`, 1 to 100) or stops it (`null`).
async fn rebalance(req: HttpRequest, gw: Gw, body: web::Bytes) -> HttpResponse {
    let result = async {
        admin(&req, &gw, &body).await?;
        let asked: Rebalance = serde_json::from_slice(&body)
            .map_err(|e| S3Error::new(Code::InvalidArgument).with_message(format!("Invalid rebalance request: {e}")))?;
        if asked.tolerance.is_some_and(|t| !(1..=100).contains(&t)) {
            return Err(S3Error::new(Code::InvalidArgument).with_message("The tolerance is 1 to 100 percent."));
        }
        gw.meta.write(&Command::SetRebalance { tolerance: asked.tolerance }).await?;
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    respond(&req, result)
}

/// One storage node's scrubber, or why it could not be asked.
#[derive(Serialize, Deserialize, Debug)]
pub struct NodeScrub {
    pub node: jadfs_common::NodeId,
    pub addr: String,
    pub scrub: Option<ScrubStatus>,
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct NodeQuery {
    node: Option<jadfs_common::NodeId>,
}

/// The scrubbers of every registered node (or of `?node=N`): GET shows
/// them, POST starts a pass now on each.
async fn scrub(req: HttpRequest, gw: Gw, query: web::Query<NodeQuery>) -> HttpResponse {
    let start = req.method() == actix_web::http::Method::POST;
    let result = async {
        admin(&req, &gw, b"").await?;
        let nodes: Vec<StorageNodeInfo> =
            gw.storage_nodes(true).await?.into_iter().filter(|n| query.node.is_none_or(|id| id == n.id)).collect();
        if let (Some(id), true) = (query.node, nodes.is_empty()) {
            return Err(
                S3Error::new(Code::InvalidArgument).with_message(format!("No storage node {id} is registered."))
            );
        }
        let asked = nodes.iter().map(|n| gw.storage.scrub(&n.addr, start));
        let answers = futures_util::future::join_all(asked).await;
        let report: Vec<NodeScrub> = nodes
            .into_iter()
            .zip(answers)
            .map(|(n, answer)| {
                let (scrub, error) = match answer {
                    Ok(status) => (Some(status), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                NodeScrub { node: n.id, addr: n.addr, scrub, error }
            })
            .collect();
        Ok(HttpResponse::Ok().json(report))
    }
    .await;
    respond(&req, result)
}
