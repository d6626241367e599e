//! The HTTP client gateways use to reach the meta cluster. It follows the
//! leader: a write or read sent to a follower is retried at the leader it
//! names, and a cluster in election is retried until a deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jadfs_common::cluster_auth::{self, Signer};
use jadfs_common::links::Links;
use jadfs_common::ObjectManifest;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::*;

/// The answer to a query, which must be of the variant named.
macro_rules! answer {
    ($query:expr, $variant:ident) => {
        match $query.await? {
            QueryResult::$variant(answer) => Ok(answer),
            other => Err(unexpected(&other)),
        }
    };
}

fn unexpected(answer: &impl std::fmt::Debug) -> MetaError {
    MetaError::Internal(format!("unexpected meta answer {answer:?}"))
}

/// A metadata call takes milliseconds; one that hangs (a paused or cut-off
/// node) is retried at another node soon.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A heartbeat that hangs moves on to another meta node quickly, so the
/// leader hears from every live node well within its suspicion time.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// Adding a learner waits until it has caught up with the log.
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(300);

pub struct MetaClient {
    http: reqwest::Client,
    signer: Arc<Signer>,
    links: Links,
    addrs: Vec<String>,
    /// The address that answered last: most likely the leader.
    preferred: Mutex<String>,
}

impl MetaClient {
    pub fn new(addrs: Vec<String>, signer: Arc<Signer>, links: &Links) -> MetaClient {
        assert!(!addrs.is_empty(), "a meta client needs at least one address");
        let http = links.client().build().expect("an HTTP client with a parsed CA always builds");
        let preferred = Mutex::new(addrs[0].clone());
        MetaClient { http, signer, links: links.clone(), addrs, preferred }
    }

    /// Commits a command through Raft; a command the state machine refused
    /// (a missing bucket, a failed condition) is its error.
    pub async fn write(&self, command: &Command) -> Result<CommandResult, MetaError> {
        // Every attempt carries the same request id: one that was committed
        // although its answer was lost is not applied again.
        let once = Command::Once { request: jadfs_common::random_u64() >> 1, command: Box::new(command.clone()) };
        match self.call("/v1/write", &once, CALL_TIMEOUT).await? {
            CommandResult::Failed(e) => Err(e),
            done => Ok(done),
        }
    }

    /// Commits a command that answers with an object (a copy, a completed upload).
    pub async fn write_object(&self, command: &Command) -> Result<ObjectManifest, MetaError> {
        match self.write(command).await? {
            CommandResult::Object(manifest) => Ok(*manifest),
            other => Err(unexpected(&other)),
        }
    }

    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>, MetaError> {
        answer!(self.query(Query::ListBuckets), Buckets)
    }

    pub async fn get_bucket(&self, name: &str) -> Result<Option<BucketInfo>, MetaError> {
        answer!(self.query(Query::GetBucket { name: name.into() }), Bucket)
    }

    /// The object (its current version, or `version_id`) and where its chunks are.
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<LocatedObject>, MetaError> {
        let query = Query::GetObject { bucket: bucket.into(), key: key.into(), version_id: version_id.map(Into::into) };
        answer!(self.query(query), Object)
    }

    pub async fn list_versions(&self, query: ListVersionsQuery) -> Result<VersionsPage, MetaError> {
        answer!(self.query(Query::ListVersions(query)), Versions)
    }

    pub async fn list_objects(&self, query: ListObjectsQuery) -> Result<ListPage, MetaError> {
        answer!(self.query(Query::ListObjects(query)), Page)
    }

    /// Storage nodes, with the state the leader gives them from heartbeats.
    pub async fn list_nodes(&self) -> Result<Vec<StorageNodeInfo>, MetaError> {
        answer!(self.query(Query::ListNodes), Nodes)
    }

    pub async fn usage(&self) -> Result<ClusterUsage, MetaError> {
        answer!(self.query(Query::Usage), Usage)
    }

    pub async fn stats(&self) -> Result<MetaStats, MetaError> {
        answer!(self.query(Query::Stats), Stats)
    }

    pub async fn get_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Option<UploadInfo>, MetaError> {
        let query = Query::GetUpload { bucket: bucket.into(), key: key.into(), upload_id: upload_id.into() };
        answer!(self.query(query), Upload)
    }

    /// A page of an upload's parts after `after_part`; None if there is no such upload.
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after_part: u32,
        max_parts: usize,
    ) -> Result<Option<PartsPage>, MetaError> {
        let query = Query::ListParts {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            after_part,
            max_parts,
        };
        answer!(self.query(query), Parts)
    }

    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after_key: Option<&str>,
        max_uploads: usize,
    ) -> Result<UploadsPage, MetaError> {
        let query = Query::ListUploads {
            bucket: bucket.into(),
            prefix: prefix.into(),
            after_key: after_key.map(Into::into),
            max_uploads,
        };
        answer!(self.query(query), Uploads)
    }

    pub async fn get_access_key(&self, access_key: &str) -> Result<Option<AccessKey>, MetaError> {
        answer!(self.query(Query::GetAccessKey { access_key: access_key.into() }), AccessKey)
    }

    /// Access keys, without their secrets.
    pub async fn list_access_keys(&self) -> Result<Vec<KeyInfo>, MetaError> {
        answer!(self.query(Query::ListAccessKeys), AccessKeys)
    }

    /// The replication in force for a bucket, or the cluster default.
    pub async fn bucket_usage(&self, bucket: &str) -> Result<BucketUsage, MetaError> {
        answer!(self.query(Query::BucketUsage { bucket: bucket.into() }), BucketUsage)
    }

    pub async fn get_replication(&self, bucket: Option<&str>) -> Result<Replication, MetaError> {
        answer!(self.query(Query::GetReplication { bucket: bucket.map(Into::into) }), Replication)
    }

    async fn query(&self, query: Query) -> Result<QueryResult, MetaError> {
        self.call("/v1/query", &query, CALL_TIMEOUT).await
    }

    /// Reports a storage node's liveness and space to the leader; false if
    /// the cluster does not know the node (it should register).
    pub async fn heartbeat(&self, beat: &Heartbeat) -> Result<bool, MetaError> {
        self.call("/v1/heartbeat", beat, HEARTBEAT_TIMEOUT).await
    }

    /// Adds a learner through the leader; returns once it has caught up.
    pub async fn add_learner(&self, node_id: u64, addr: &str) -> Result<(), MetaError> {
        let learner = Learner { node_id, addr: addr.into() };
        self.call("/v1/cluster/learners", &learner, MEMBERSHIP_TIMEOUT).await
    }

    /// Makes a learner a voter (atomically, whatever else changes meanwhile).
    pub async fn promote(&self, node_id: u64) -> Result<(), MetaError> {
        self.call("/v1/cluster/voters", &VoterChange::Add([node_id].into()), MEMBERSHIP_TIMEOUT).await
    }

    /// Removes a voter from the cluster.
    pub async fn remove_voter(&self, node_id: u64) -> Result<(), MetaError> {
        self.call("/v1/cluster/voters", &VoterChange::Remove([node_id].into()), MEMBERSHIP_TIMEOUT).await
    }

    /// Raft metrics of the node at `addr` (leader, term, log and apply indexes, membership).
    pub async fn status(&self, addr: &str) -> Result<serde_json::Value, MetaError> {
        let response = self
            .http
            .get(self.links.url(addr, "/v1/status"))
            .header(cluster_auth::HEADER, self.signer.sign("GET", "/v1/status", jadfs_common::now_ms() / 1000))
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|e| MetaError::Unavailable(format!("{addr}: {e}")))?;
        response.json().await.map_err(|e| MetaError::Unavailable(format!("{addr}: {e}")))
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, MetaError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut addr = self.preferred.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let request = self
                .http
                .post(self.links.url(&addr, path))
                .header(cluster_auth::HEADER, self.signer.sign("POST", path, jadfs_common::now_ms() / 1000))
                .json(body)
                .timeout(timeout);
            let outcome = match request.send().await {
                Ok(response) => response
                    .json::<Result<Resp, MetaError>>()
                    .await
                    .unwrap_or_else(|e| Err(MetaError::Unavailable(e.to_string()))),
                Err(e) => Err(MetaError::Unavailable(format!("{addr}: {e}"))),
            };
            let next = match outcome {
                Ok(resp) => {
                    *self.preferred.lock().unwrap_or_else(|e| e.into_inner()) = addr;
                    return Ok(resp);
                }
                Err(MetaError::ForwardToLeader { leader_addr: Some(leader) }) if leader != addr => leader,
                Err(e @ (MetaError::ForwardToLeader { .. } | MetaError::Unavailable(_))) => {
                    if Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(Duration::from_millis(50 * attempt.min(10) as u64)).await;
                    self.addrs[attempt % self.addrs.len()].clone()
                }
                Err(e) => return Err(e),
            };
            addr = next;
        }
    }
}
