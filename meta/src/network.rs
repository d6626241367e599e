//! Raft RPCs between meta nodes over HTTP (JSON bodies).

use std::sync::Arc;

use jadfs_common::cluster_auth::{self, Signer};
use jadfs_common::links::Links;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::BasicNode;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{SnapshotPiece, TypeConfig};

#[derive(Clone)]
pub struct HttpNetwork {
    http: reqwest::Client,
    signer: Arc<Signer>,
    links: Links,
}

impl HttpNetwork {
    pub fn new(signer: Arc<Signer>, links: &Links) -> HttpNetwork {
        let http = links.client().build().expect("an HTTP client with a parsed CA always builds");
        HttpNetwork { http, signer, links: links.clone() }
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerConnection {
        PeerConnection {
            http: self.http.clone(),
            signer: self.signer.clone(),
            url: self.links.url(&node.addr, ""),
            target,
        }
    }
}

pub struct PeerConnection {
    http: reqwest::Client,
    signer: Arc<Signer>,
    target: u64,
    /// The peer's base URL (scheme and address).
    url: String,
}

impl PeerConnection {
    async fn call<Req, Resp, Err>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, Err>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let body = serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.send(path, body, "application/json", option).await
    }

    async fn send<Resp, Err>(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<u64, BasicNode, Err>>
    where
        Resp: DeserializeOwned,
        Err: std::error::Error + DeserializeOwned,
    {
        let path = format!("/raft/{path}");
        let request = self
            .http
            .post(format!("{}{path}", self.url))
            .header(cluster_auth::HEADER, self.signer.sign("POST", &path, jadfs_common::now_ms() / 1000))
            .timeout(option.hard_ttl())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                RPCError::Unreachable(Unreachable::new(&e))
            } else {
                RPCError::Network(NetworkError::new(&e))
            }
        })?;
        let result: Result<Resp, Err> = response.json().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>> {
        let piece = SnapshotPiece { vote: rpc.vote, meta: rpc.meta, offset: rpc.offset, done: rpc.done };
        let mut body = serde_json::to_vec(&piece).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        body.push(b'\n');
        body.extend_from_slice(&rpc.data);
        self.send("snapshot", body, "application/octet-stream", &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        self.call("vote", &rpc, &option).await
    }
}
