//! The meta node's HTTP API: Raft RPCs from peers (`/raft/*`) and the
//! metadata API for gateways (`/v1/write`, `/v1/query`, `/v1/status`).
//! Every route but `/health` and `/metrics` (a token or loopback, see
//! `jadfs_common::metrics`) needs the cluster secret.

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

use crate::api::*;
use crate::nodes::{is_leader, Liveness};
use crate::state::ReadPool;

pub struct MetaState {
    pub raft: Raft,
    pub writes: crate::batch::WriteBatcher,
    pub readers: Arc<ReadPool>,
    pub liveness: Arc<Liveness>,
    pub log: crate::log_store::LogStore,
    pub disk: Arc<crate::disk::Disk>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Raft messages and snapshot pieces can be large; everything else is small.
    cfg.app_data(web::JsonConfig::default().limit(64 << 20))
        .app_data(web::PayloadConfig::new(64 << 20))
        .route("/health", web::get().to(health))
        .route("/metrics", web::get().to(jadfs_common::metrics::scrape))
        .route("/v1/status", web::get().to(status))
        .route("/v1/write", web::post().to(write))
        .route("/v1/query", web::post().to(query))
        .route("/v1/heartbeat", web::post().to(heartbeat))
        .route("/v1/cluster/learners", web::post().to(add_learner))
        .route("/v1/cluster/voters", web::post().to(change_voters))
        .route("/raft/append", web::post().to(append))
        .route("/raft/vote", web::post().to(vote))
        .route("/raft/snapshot", web::post().to(snapshot));
}

type State = web::Data<MetaState>;

/// Refuses, with 401 and a [`MetaError::Unauthorized`], every request but
/// `/health` that does not prove the cluster secret (`actix_web::middleware::from_fn`).
pub async fn require_cluster_auth(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match jadfs_common::serve::check_cluster_auth(&req) {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => {
            let refusal: Result<(), MetaError> = Err(MetaError::Unauthorized(e.to_string()));
            Ok(req.into_response(HttpResponse::Unauthorized().json(refusal)).map_into_right_body())
        }
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// openraft's metrics, plus the commit index (which they leave out).
async fn status(state: State) -> HttpResponse {
    let metrics = state.raft.metrics().borrow().clone();
    let mut status = serde_json::to_value(metrics).unwrap_or_default();
    status["committed"] = serde_json::json!(state.log.committed_index());
    HttpResponse::Ok().json(status)
}

async fn write(state: State, command: web::Json<Command>) -> HttpResponse {
    let result = match command.into_inner() {
        Command::Batch(_) => Err(MetaError::Internal("batches are made by the meta node, not sent to it".into())),
        Command::Once { command, .. } if matches!(*command, Command::Batch(_) | Command::Once { .. }) => {
            Err(MetaError::Internal("a request holds one command".into()))
        }
        mut command => match state.disk.admit(&command) {
            Ok(()) => {
                command.start_leases(jadfs_common::now_ms());
                state.writes.write(command).await
            }
            Err(e) => Err(e),
        },
    };
    HttpResponse::Ok().json(result)
}

async fn query(state: State, query: web::Json<Query>) -> HttpResponse {
    let mut result = match state.raft.ensure_linearizable().await {
        Err(e) => Err(MetaError::from_raft(&e)),
        Ok(_) => state.readers.query(query.into_inner()).await,
    };
    if let Ok(QueryResult::Nodes(nodes)) = &mut result {
        state.liveness.annotate(nodes);
    }
    HttpResponse::Ok().json(result)
}

/// A storage node's heartbeat, taken by the leader only (others name it).
/// The answer says whether the node is registered; if not, it registers.
async fn heartbeat(state: State, beat: web::Json<Heartbeat>) -> HttpResponse {
    let result: Result<bool, MetaError> = if is_leader(&state.raft) {
        let id = beat.id;
        state.liveness.record(beat.into_inner());
        state.readers.list_nodes().await.map(|nodes| nodes.iter().any(|n| n.id == id))
    } else {
        let metrics = state.raft.metrics().borrow().clone();
        let leader_addr = metrics
            .current_leader
            .and_then(|id| metrics.membership_config.membership().get_node(&id).map(|n| n.addr.clone()));
        Err(MetaError::ForwardToLeader { leader_addr })
    };
    HttpResponse::Ok().json(result)
}

/// Adds a node as a learner and waits until it has caught up with the log.
async fn add_learner(state: State, learner: web::Json<Learner>) -> HttpResponse {
    let node = openraft::BasicNode::new(&learner.addr);
    let result: Result<(), MetaError> =
        state.raft.add_learner(learner.node_id, node, true).await.map(|_| ()).map_err(|e| MetaError::from_raft(&e));
    HttpResponse::Ok().json(result)
}

async fn change_voters(state: State, change: web::Json<VoterChange>) -> HttpResponse {
    let change = match change.into_inner() {
        VoterChange::Add(ids) => openraft::ChangeMembers::AddVoterIds(ids),
        VoterChange::Remove(ids) => openraft::ChangeMembers::RemoveVoters(ids),
    };
    let result: Result<(), MetaError> =
        state.raft.change_membership(change, false).await.map(|_| ()).map_err(|e| MetaError::from_raft(&e));
    HttpResponse::Ok().json(result)
}

async fn append(state: State, rpc: web::Json<AppendEntriesRequest<TypeConfig>>) -> HttpResponse {
    HttpResponse::Ok().json(state.raft.append_entries(rpc.into_inner()).await)
}

async fn vote(state: State, rpc: web::Json<VoteRequest<u64>>) -> HttpResponse {
    HttpResponse::Ok().json(state.raft.vote(rpc.into_inner()).await)
}

/// A snapshot piece: its JSON header, a newline, then its bytes raw.
async fn snapshot(state: State, body: web::Bytes) -> HttpResponse {
    let (piece, data) = match SnapshotPiece::split(&body) {
        Ok(split) => split,
        Err(e) => return HttpResponse::BadRequest().body(e),
    };
    let rpc = InstallSnapshotRequest::<TypeConfig> {
        vote: piece.vote,
        meta: piece.meta,
        offset: piece.offset,
        data: data.to_vec(),
        done: piece.done,
    };
    HttpResponse::Ok().json(state.raft.install_snapshot(rpc).await)
}
