//! openraft's own storage test suite, run against our SQLite log store and
//! state machine: the contract openraft relies on (log reads after appends,
//! truncation, purge, vote, applied state, snapshots) holds for our code.

use jadfs_common::cluster_auth::ClusterKey;
use jadfs_meta::api::TypeConfig;
use jadfs_meta::disk::Disk;
use jadfs_meta::log_store::LogStore;
use jadfs_meta::state::StateMachineStore;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;

struct SqliteStores;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for SqliteStores {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let disk = Disk::open(dir.path(), 0);
        let log = LogStore::open(&dir.path().join("raft-log.db"), disk.clone()).expect("log store");
        let key = std::sync::Arc::new(ClusterKey::from_secret("the conformance suite's secret").unwrap());
        let state_machine = StateMachineStore::open(dir.path(), key, disk).expect("state machine");
        Ok((dir, log, state_machine))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(SqliteStores).expect("openraft storage suite");
}
