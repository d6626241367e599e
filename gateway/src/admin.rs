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
//! - `GET /-/admin/status`: the cluster at a glance ([`ClusterStatus`]), with its alarms

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
    cfg.route("/keys", web::get().to(list_keys))
        .route("/keys", web::post().to(create_key))
        .route("/keys/{access_key}", web::delete().to(delete_key))
        .route("/buckets/{bucket}/grants", web::put().to(set_grant))
        .route("/replication", web::get().to(get_replication))
        .route("/replication", web::put().to(set_replication))
        .route("/buckets/{bucket}/replication", web::get().to(get_replication))
        .route("/buckets/{bucket}/replication", web::put().to(set_replication))
        .route("/nodes", web::get().to(list_nodes))
        .route("/nodes/{id}/drain", web::put().to(drain_node))
        .route("/rebalance", web::put().to(rebalance))
        .route("/scrub", web::get().to(scrub))
        .route("/scrub", web::post().to(scrub))
        .route("/status", web::get().to(status));
}

type Gw = web::Data<Arc<Gateway>>;

/// Authenticates a root key and checks a signed body hash.
async fn admin(req: &HttpRequest, gw: &Gateway, body: &[u8]) -> Result<(), S3Error> {
    let (verified, principal) = gw.authenticate(req.method(), req.uri(), req.headers()).await?;
    if !principal.root {
        return Err(S3Error::new(Code::AccessDenied).with_message("Only root keys may administer JaDFS."));
    }
    // A signed hash of the body, always: an unsigned payload (a presigned
    // URL, say) would let whoever holds the request send any body.
    let PayloadMode::Sha256(expected) = &verified.payload else {
        return Err(S3Error::new(Code::AccessDenied)
            .with_message("Administration requests must sign their payload's SHA-256 (x-amz-content-sha256)."));
    };
    if hex::encode(Sha256::digest(body)) != *expected {
        return Err(S3Error::new(Code::XAmzContentSHA256Mismatch));
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
        let created = create_access_key(&gw, request.name, request.access_key, request.secret_key).await?;
        Ok(HttpResponse::Ok().json(created))
    }
    .await;
    respond(&req, result)
}

/// Creates an access key (a random id and secret unless given); the key
/// with its secret in the clear, the one time it is shown.
pub async fn create_access_key(
    gw: &Gateway,
    name: String,
    access_key: Option<String>,
    secret_key: Option<String>,
) -> Result<AccessKey, S3Error> {
    let access_key = access_key.unwrap_or_else(jadfs_common::generate_access_key);
    let secret_key = secret_key.unwrap_or_else(jadfs_common::generate_secret_key);
    if !valid_access_key(&access_key) || !(8..=128).contains(&secret_key.len()) || name.len() > 256 {
        return Err(S3Error::new(Code::InvalidArgument).with_message(
            "An access key is 3 to 128 letters and digits; a secret key 8 to 128 characters; a name at most 256.",
        ));
    }
    if gw.is_root(&access_key) {
        return Err(S3Error::new(Code::InvalidArgument).with_message("That access key already exists."));
    }
    // The metadata keeps the secret sealed, under an id of the key's own.
    let sealed = jadfs_common::sealed::seal(gw.config.cluster_key.secrets_key(), &access_key, &secret_key);
    let id = format!("k{:016x}{:016x}", jadfs_common::random_u64(), jadfs_common::random_u64());
    let stored =
        AccessKey { access_key: access_key.clone(), secret_key: sealed, name, created_ms: jadfs_common::now_ms(), id };
    gw.meta.write(&Command::PutAccessKey { key: stored.clone() }).await.map_err(|e| match e {
        jadfs_meta::MetaError::AccessKeyExists => {
            S3Error::new(Code::InvalidArgument).with_message("That access key already exists.")
        }
        e => e.into(),
    })?;
    gw.forget_key(&access_key);
    Ok(AccessKey { secret_key, ..stored })
}

async fn delete_key(req: HttpRequest, gw: Gw, access_key: web::Path<String>) -> HttpResponse {
    let result = async {
        admin(&req, &gw, b"").await?;
        delete_access_key(&gw, &access_key).await?;
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    respond(&req, result)
}

pub async fn delete_access_key(gw: &Gateway, access_key: &str) -> Result<(), S3Error> {
    gw.meta.write(&Command::DeleteAccessKey { access_key: access_key.to_string() }).await?;
    gw.forget_key(access_key);
    Ok(())
}

#[derive(Deserialize, Serialize)]
pub struct Grant {
    pub access_key: String,
    pub permission: Option<Permission>,
}

async fn set_grant(req: HttpRequest, gw: Gw, bucket: web::Path<String>, body: web::Bytes) -> HttpResponse {
    let result = async {
        admin(&req, &gw, &body).await?;
        let grant: Grant = serde_json::from_slice(&body)
            .map_err(|e| S3Error::new(Code::InvalidArgument).with_message(format!("Invalid grant: {e}")))?;
        set_bucket_grant(&gw, &bucket, grant).await?;
        Ok(HttpResponse::NoContent().finish())
    }
    .await;
    respond(&req, result)
}

/// Lets a key use a bucket at a level, or (`None`) no longer.
pub async fn set_bucket_grant(gw: &Gateway, bucket: &str, grant: Grant) -> Result<(), S3Error> {
    validate_bucket_name(bucket)?;
    gw.meta
        .write(&Command::SetBucketGrant {
            bucket: bucket.to_string(),
            access_key: grant.access_key,
            permission: grant.permission,
        })
        .await?;
    Ok(())
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
    /// Of those, the ones no node holds a copy of.
    #[serde(default)]
    pub chunks_without_copy: u64,
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
        Ok(HttpResponse::Ok().json(NodesReport {
            nodes,
            repair_queue: stats.repair_queue,
            chunks_without_copy: stats.chunks_without_copy,
            usage,
        }))
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

/// The cluster at a glance, for `jadfs admin status` and the console.
#[derive(Serialize, Deserialize, Debug)]
pub struct ClusterStatus {
    /// Every member of the meta cluster, each as it answered for itself.
    pub meta: Vec<MetaMember>,
    /// The leader a majority of the members follow, if there is one.
    pub leader: Option<u64>,
    pub nodes: Vec<NodeStatus>,
    /// What the state machine holds: objects, chunks, the repair queue,
    /// copies waiting to be deleted.
    pub stats: jadfs_meta::api::MetaStats,
    pub rebalance_tolerance: Option<u8>,
    /// What needs an operator: each a sentence.
    pub alarms: Vec<String>,
}

/// A meta member's Raft state as it reported it.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct MetaMember {
    pub id: u64,
    pub addr: String,
    /// Leader, Follower, Candidate or Learner; None when it did not answer.
    pub state: Option<String>,
    pub leader: Option<u64>,
    pub term: Option<u64>,
    pub last_log: Option<u64>,
    pub committed: Option<u64>,
    pub applied: Option<u64>,
    pub error: Option<String>,
}

/// A storage node as the leader sees it, with what it holds and its scrubber.
#[derive(Serialize, Deserialize, Debug)]
pub struct NodeStatus {
    #[serde(flatten)]
    pub info: StorageNodeInfo,
    /// Chunks and bytes the metadata places on it.
    pub chunks: u64,
    pub bytes: u64,
    pub scrub: Option<ScrubStatus>,
    pub error: Option<String>,
}

/// How long each member or node has to answer a status request.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A storage node's disk this full is an alarm (percent free).
const LOW_DISK_PERCENT: u64 = 5;

async fn status(req: HttpRequest, gw: Gw) -> HttpResponse {
    let result = async {
        admin(&req, &gw, b"").await?;
        Ok(HttpResponse::Ok().json(cluster_status(&gw).await))
    }
    .await;
    respond(&req, result)
}

/// Asks each meta member and storage node, each given a few seconds; what
/// does not answer becomes an alarm, never an error.
pub async fn cluster_status(gw: &Gateway) -> ClusterStatus {
    let meta = meta_members(gw).await;
    let voters = meta.len();
    let leader = meta
        .iter()
        .filter_map(|m| m.leader)
        .find(|candidate| meta.iter().filter(|m| m.leader == Some(*candidate)).count() * 2 > voters);
    let alarms: Vec<String> = meta
        .iter()
        .filter_map(|m| m.error.as_ref().map(|e| format!("meta node {} ({}) does not answer: {e}", m.id, m.addr)))
        .collect();
    let mut status =
        ClusterStatus { meta, leader, nodes: Vec::new(), stats: Default::default(), rebalance_tolerance: None, alarms };
    if leader.is_none() {
        status.alarms.push("no meta leader that a majority follows: writes and reads are refused".into());
        return status;
    }
    let (listed, stats, usage) =
        tokio::join!(within(gw.storage_nodes(true)), within(gw.meta.stats()), within(gw.meta.usage()));
    let (Some(listed), Some(stats), Some(usage)) = (listed, stats, usage) else {
        status.alarms.push(format!("the metadata did not answer within {STATUS_TIMEOUT:?}"));
        return status;
    };
    let scrubs = listed.iter().map(|n| tokio::time::timeout(STATUS_TIMEOUT, gw.storage.scrub(&n.addr, false)));
    let scrubs = futures_util::future::join_all(scrubs).await;
    for (info, scrub) in listed.into_iter().zip(scrubs) {
        let held = usage.nodes.iter().find(|u| u.node == info.id);
        let (scrub, error) = match scrub {
            Ok(Ok(status)) => (Some(status), None),
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(_) => (None, Some(format!("no answer in {STATUS_TIMEOUT:?}"))),
        };
        status.alarms.extend(node_alarms(&info));
        status.nodes.push(NodeStatus {
            chunks: held.map_or(0, |h| h.chunks),
            bytes: held.map_or(0, |h| h.bytes),
            info,
            scrub,
            error,
        });
    }
    if stats.chunks_without_copy > 0 {
        status.alarms.push(format!(
            "{} chunks have no copy left on any node: the objects using them cannot be read until a lost node comes back",
            stats.chunks_without_copy
        ));
    }
    status.stats = stats;
    status.rebalance_tolerance = usage.rebalance_tolerance;
    status
}

/// What `answer` gives, if it comes within [`STATUS_TIMEOUT`] and is no error.
async fn within<T, E>(answer: impl std::future::Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(STATUS_TIMEOUT, answer).await.ok()?.ok()
}

fn node_alarms(node: &StorageNodeInfo) -> Option<String> {
    use jadfs_meta::api::NodeState;
    let name = format!("storage node {} ({})", node.id, node.addr);
    match node.state {
        NodeState::Dead => Some(format!("{name} is dead: its chunks are being copied to other nodes")),
        NodeState::Suspect => Some(format!("{name} is silent: it takes no new chunks")),
        NodeState::Alive
            if node.capacity_bytes > 0 && node.free_bytes * 100 < node.capacity_bytes * LOW_DISK_PERCENT =>
        {
            Some(format!("{name} has less than {LOW_DISK_PERCENT}% of its disk free"))
        }
        NodeState::Alive => None,
    }
}

/// Every member of the meta cluster (as the first member that answers
/// lists them), each asked for its own Raft state.
async fn meta_members(gw: &Gateway) -> Vec<MetaMember> {
    // Every configured address asked at once; the first answer lists the members.
    let asked =
        gw.config.meta_addrs.iter().map(|addr| Box::pin(async move { within(gw.meta.status(addr)).await.ok_or(()) }));
    let first = match gw.config.meta_addrs.is_empty() {
        true => None,
        false => futures_util::future::select_ok(asked).await.ok().map(|(status, _)| status),
    };
    let membership = first.and_then(|status| status["membership_config"]["membership"]["nodes"].as_object().cloned());
    let Some(membership) = membership else {
        return gw
            .config
            .meta_addrs
            .iter()
            .map(|addr| MetaMember { addr: addr.clone(), error: Some("no answer".into()), ..Default::default() })
            .collect();
    };
    let asked = membership.iter().map(|(id, node)| async move {
        let addr = node["addr"].as_str().unwrap_or_default().to_string();
        let id = id.parse().unwrap_or_default();
        match tokio::time::timeout(STATUS_TIMEOUT, gw.meta.status(&addr)).await {
            Ok(Ok(m)) => MetaMember {
                id,
                state: m["state"].as_str().map(str::to_string),
                leader: m["current_leader"].as_u64(),
                term: m["current_term"].as_u64(),
                last_log: m["last_log_index"].as_u64(),
                committed: m["committed"].as_u64(),
                applied: m["last_applied"]["index"].as_u64(),
                addr,
                error: None,
            },
            Ok(Err(e)) => MetaMember { id, addr, error: Some(e.to_string()), ..Default::default() },
            Err(_) => {
                MetaMember { id, addr, error: Some(format!("no answer in {STATUS_TIMEOUT:?}")), ..Default::default() }
            }
        }
    });
    futures_util::future::join_all(asked).await
}
