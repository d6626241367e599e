//! Versions. A key's current object is its row in `objects`, as in a bucket
//! without versioning, so reads and listings of current objects are the
//! same whatever the bucket's versioning. Its other versions (noncurrent
//! ones, and delete markers) are rows of `versions`, ordered by `seq`: the
//! current object is always newer than all of them, and when the newest
//! version of a key is a delete marker, the key has no current object.
//!
//! A version is given its `seq` when it enters `versions`, from the log
//! index of the command, so it is the same on every replica, and a version
//! id made of the same number. Every version holds its references on its
//! chunks until it is deleted for good.

use std::cell::Cell;

use jadfs_common::{ETag, ObjectManifest};

use super::{refuse, Applier, Fail, Outcome};
use crate::api::{CommandResult, DeleteCondition, MetaError, Versioning};
use crate::state::rows::{
    delete_object_row, delete_version_row, load_bucket_setting, load_manifest, load_version, newest_version,
    retire_object_row, set_bucket_setting, write_object, write_version, BucketSetting, StoredVersion, NULL_VERSION,
};

/// Versions made within one log entry: the low bits of their `seq`.
const SEQ_BITS: u32 = 20;

/// The `seq` of the next version made at `log_index`.
pub(super) fn next_seq(log_index: u64, made: &Cell<u32>) -> i64 {
    let n = made.get();
    made.set(n + 1);
    ((log_index << SEQ_BITS) | u64::from(n)) as i64
}

/// A version id: the `seq` of the version when it was made, in hex.
fn new_version_id(seq: i64) -> String {
    format!("{seq:016x}")
}

impl Applier<'_> {
    pub(super) fn versioning(&self, bucket: &str) -> rusqlite::Result<Option<Versioning>> {
        load_bucket_setting(self.tx, BucketSetting::Versioning, bucket)
    }

    pub(super) fn set_bucket_versioning(&self, bucket: &str, versioning: Versioning) -> Outcome {
        self.require_bucket(bucket)?;
        if versioning == Versioning::Suspended && self.object_lock(bucket)?.is_some() {
            // Suspended, a write would replace the null version in place.
            return refuse(MetaError::InvalidBucketState("versioning cannot be suspended with Object Lock".into()));
        }
        set_bucket_setting(self.tx, BucketSetting::Versioning, bucket, Some(&versioning))?;
        Ok(CommandResult::Done)
    }

    /// Makes `manifest` the key's current object, as the bucket's versioning
    /// says: without, it replaces the current one (whose chunks it
    /// releases); enabled, the current one becomes noncurrent and the new
    /// one gets an id of its own; suspended, the new one is the null
    /// version, which replaces the null version there was. Answers the
    /// `x-amz-version-id` of the write: None without versioning, and for
    /// the null version a suspended bucket writes (AWS sends none).
    pub(super) fn replace_object(
        &self,
        bucket: &str,
        key: &str,
        manifest: &mut ObjectManifest,
    ) -> Result<Option<String>, Fail> {
        let versioning = self.versioning(bucket)?;
        self.lock_new_version(bucket, manifest)?;
        manifest.version_id = None;
        match versioning {
            None => {
                if let Some(old) = load_manifest(self.tx, bucket, key)? {
                    self.release_chunks(&old.chunks)?;
                }
            }
            Some(Versioning::Enabled) => {
                self.retire_current(bucket, key, Versioning::Enabled)?;
                manifest.version_id = Some(new_version_id(self.next_seq()));
            }
            Some(Versioning::Suspended) => {
                self.retire_current(bucket, key, Versioning::Suspended)?;
                self.drop_null_version(bucket, key)?;
            }
        }
        write_object(self.tx, bucket, key, manifest)?;
        Ok(manifest.version_id.clone())
    }

    /// A delete with a condition: only if the version it names (or the
    /// current object) is there and is the one described; one that is not
    /// there is gone all the same. Behind a delete marker, the key is
    /// there but is no object: only `If-Match: *` passes (and does nothing).
    pub(super) fn delete_object_if(
        &self,
        (bucket, key, version_id): (&str, &str, Option<&str>),
        now_ms: i64,
        bypass_governance: bool,
        condition: Option<&DeleteCondition>,
    ) -> Outcome {
        if let Some(condition) = condition {
            self.require_bucket(bucket)?;
            match self.object_version(bucket, key, version_id) {
                Ok(target) if !condition.holds(&target) => return refuse(MetaError::PreconditionFailed),
                Ok(_) => {}
                Err(Fail::Refused(MetaError::NoSuchKey)) => {
                    let behind_marker = newest_version(self.tx, bucket, key)?.is_some_and(|v| v.delete_marker);
                    let only_exists = *condition == DeleteCondition { etag: Some("*".into()), ..Default::default() };
                    if behind_marker && !only_exists {
                        return refuse(MetaError::PreconditionFailed);
                    }
                    return Ok(CommandResult::Version { version_id: None, delete_marker: false });
                }
                Err(Fail::Refused(MetaError::NoSuchVersion)) => {
                    return Ok(CommandResult::Version { version_id: version_id.map(Into::into), delete_marker: false })
                }
                Err(other) => return Err(other),
            }
        }
        self.delete_object(bucket, key, version_id, now_ms, bypass_governance)
    }

    /// Without `version_id`: deletes the current object (no versioning), or
    /// puts a delete marker in front of it. With: deletes that version for
    /// good, and the newest version left, unless a delete marker, becomes
    /// the current object.
    /// A delete marker is dated `now_ms` (the gateway's clock, as objects
    /// are); a version Object Lock keeps at `now_ms` is not deleted.
    pub(super) fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        now_ms: i64,
        bypass_governance: bool,
    ) -> Outcome {
        self.require_bucket(bucket)?;
        if let Some(version_id) = version_id {
            return self.delete_version(bucket, key, version_id, now_ms, bypass_governance);
        }
        let Some(versioning) = self.versioning(bucket)? else {
            if let Some(old) = load_manifest(self.tx, bucket, key)? {
                self.release_chunks(&old.chunks)?;
                delete_object_row(self.tx, bucket, key)?;
            }
            return Ok(CommandResult::Version { version_id: None, delete_marker: false });
        };
        self.retire_current(bucket, key, versioning)?;
        let id = match versioning {
            Versioning::Enabled => None,
            Versioning::Suspended => {
                self.drop_null_version(bucket, key)?;
                Some(NULL_VERSION.to_string())
            }
        };
        let seq = self.next_seq();
        let manifest = ObjectManifest {
            size: 0,
            etag: ETag::from_quoted(String::new()),
            last_modified_ms: now_ms,
            content_type: None,
            headers: Vec::new(),
            user_metadata: Vec::new(),
            checksum: None,
            chunks: Vec::new(),
            tags: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            inline: None,
            version_id: Some(id.unwrap_or_else(|| new_version_id(seq))).filter(|id| id != NULL_VERSION),
            retention: None,
            legal_hold: false,
            encryption: None,
        };
        let shown = manifest.version().to_string();
        write_version(self.tx, bucket, key, &StoredVersion { seq, delete_marker: true, manifest })?;
        Ok(CommandResult::Version { version_id: Some(shown), delete_marker: true })
    }

    fn delete_version(&self, bucket: &str, key: &str, version_id: &str, now_ms: i64, bypass: bool) -> Outcome {
        let current = load_manifest(self.tx, bucket, key)?;
        let mut delete_marker = false;
        if current.as_ref().is_some_and(|m| m.version() == version_id) {
            let current = current.expect("just matched");
            self.check_unlocked(&current, now_ms, bypass)?;
            self.release_chunks(&current.chunks)?;
            delete_object_row(self.tx, bucket, key)?;
        } else if let Some(version) = load_version(self.tx, bucket, key, version_id)? {
            self.check_unlocked(&version.manifest, now_ms, bypass)?;
            self.release_chunks(&version.manifest.chunks)?;
            delete_version_row(self.tx, bucket, key, version.seq)?;
            delete_marker = version.delete_marker;
        }
        // A version that was never there is gone all the same.
        self.promote_newest(bucket, key)?;
        Ok(CommandResult::Version { version_id: Some(version_id.to_string()), delete_marker })
    }

    /// The current object becomes the newest noncurrent version, except the
    /// null version under suspended versioning, which is replaced (deleted).
    fn retire_current(&self, bucket: &str, key: &str, versioning: Versioning) -> rusqlite::Result<()> {
        if versioning == Versioning::Suspended {
            let Some(current) = load_manifest(self.tx, bucket, key)? else { return Ok(()) };
            if current.version_id.is_none() {
                delete_object_row(self.tx, bucket, key)?;
                return self.release_chunks(&current.chunks);
            }
        }
        retire_object_row(self.tx, bucket, key, self.next_seq()).map(drop)
    }

    /// Deletes the noncurrent null version (object or delete marker), if any.
    fn drop_null_version(&self, bucket: &str, key: &str) -> rusqlite::Result<()> {
        if let Some(null) = load_version(self.tx, bucket, key, NULL_VERSION)? {
            self.release_chunks(&null.manifest.chunks)?;
            delete_version_row(self.tx, bucket, key, null.seq)?;
        }
        Ok(())
    }

    /// With no current object, the newest version becomes it, unless it is
    /// a delete marker.
    fn promote_newest(&self, bucket: &str, key: &str) -> rusqlite::Result<()> {
        if load_manifest(self.tx, bucket, key)?.is_some() {
            return Ok(());
        }
        match newest_version(self.tx, bucket, key)? {
            Some(newest) if !newest.delete_marker => {
                delete_version_row(self.tx, bucket, key, newest.seq)?;
                write_object(self.tx, bucket, key, &newest.manifest)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::api::{Command, ListVersionsQuery, Query, QueryResult};
    use crate::state::{listing::list_versions, query::answer, schema};

    #[test]
    fn version_ids_are_their_seq_and_nothing_else_passes_for_one() {
        let made = Cell::new(0);
        let first = next_seq(7, &made);
        let second = next_seq(7, &made);
        assert!(second > first && next_seq(8, &Cell::new(0)) > second);
        assert!(crate::api::is_version_id(&new_version_id(first)) && crate::api::is_version_id("null"));
        for bad in ["", "NULL", "0000000000000000x", "../../etc", "000000000000000G"] {
            assert!(!crate::api::is_version_id(bad), "{bad}");
        }
    }

    /// A version as the model keeps it: id, delete marker, ETag (its chunk's name).
    type ModelVersion = (String, bool, String);

    fn put(key: &str, n: u32) -> Command {
        let chunk = jadfs_common::ChunkId::of(&n.to_be_bytes());
        let manifest: ObjectManifest = serde_json::from_value(serde_json::json!({
            "size": 4, "etag": format!("\"{n}\""), "last_modified_ms": n, "content_type": null,
            "chunks": [{"id": chunk.to_hex(), "offset": 0, "size": 4}]
        }))
        .unwrap();
        Command::PutObject {
            bucket: "b".into(),
            key: key.into(),
            manifest,
            placement: vec![vec![1, 2, 3]],
            condition: None,
            write_id: None,
        }
    }

    /// Random puts, deletes with and without a version id and changes of
    /// versioning against a model of S3's rules; after each, every version
    /// listed (whole and paged, with and without a delimiter), every current
    /// object and every chunk still referenced are the model's.
    #[test]
    fn versions_follow_s3s_rules_against_a_model() {
        let mut conn = schema::in_memory();
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        let keys = ["a", "d/x", "d/y", "e", "e/z"];
        let mut model: BTreeMap<String, Vec<ModelVersion>> = BTreeMap::new();
        let mut versioning: Option<Versioning> = None;
        let mut log_index = 1;
        let mut apply = |conn: &mut rusqlite::Connection, command: Command| {
            let tx = conn.transaction().unwrap();
            let result = Applier::new(&tx, log_index).apply(&command).unwrap();
            tx.commit().unwrap();
            log_index += 1;
            result
        };
        apply(
            &mut conn,
            Command::CreateBucket { name: "b".into(), owner: "o".into(), created_ms: 0, object_lock: false },
        );
        for step in 0..1500u32 {
            let key = keys[rng.gen_range(0..keys.len())];
            let versions = model.entry(key.to_string()).or_default();
            let drop_null = |versions: &mut Vec<ModelVersion>| versions.retain(|v| v.0 != NULL_VERSION);
            match rng.gen_range(0..10) {
                0 if step > 100 => {
                    let next = if rng.gen_bool(0.6) { Versioning::Enabled } else { Versioning::Suspended };
                    apply(&mut conn, Command::SetBucketVersioning { bucket: "b".into(), versioning: next });
                    versioning = Some(next);
                }
                0..=4 => {
                    let CommandResult::Version { version_id, delete_marker: false } = apply(&mut conn, put(key, step))
                    else {
                        panic!("a put answers its version")
                    };
                    match versioning {
                        None => versions.clear(),
                        Some(Versioning::Suspended) => drop_null(versions),
                        Some(Versioning::Enabled) => {}
                    }
                    let id = version_id.unwrap_or_else(|| NULL_VERSION.into());
                    versions.insert(0, (id, false, format!("\"{step}\"")));
                }
                5..=6 => {
                    let command = Command::DeleteObject {
                        bucket: "b".into(),
                        key: key.into(),
                        version_id: None,
                        now_ms: 0,
                        bypass_governance: false,
                        condition: None,
                    };
                    let CommandResult::Version { version_id, delete_marker } = apply(&mut conn, command) else {
                        panic!("a delete answers its version")
                    };
                    match versioning {
                        None => versions.clear(),
                        Some(v) => {
                            if v == Versioning::Suspended {
                                drop_null(versions);
                            }
                            assert!(delete_marker);
                            versions.insert(0, (version_id.unwrap(), true, "\"\"".into()));
                        }
                    }
                }
                _ => {
                    let id = match versions.len() {
                        0 => NULL_VERSION.to_string(),
                        n => versions[rng.gen_range(0..n)].0.clone(),
                    };
                    let command = Command::DeleteObject {
                        bucket: "b".into(),
                        key: key.into(),
                        version_id: Some(id.clone()),
                        now_ms: 0,
                        bypass_governance: false,
                        condition: None,
                    };
                    apply(&mut conn, command);
                    versions.retain(|v| v.0 != id);
                }
            }
            check(&conn, &model, &mut rng);
        }
        assert!(model.values().map(Vec::len).sum::<usize>() > 20, "the run made versions");
    }

    fn check(conn: &rusqlite::Connection, model: &BTreeMap<String, Vec<ModelVersion>>, rng: &mut impl Rng) {
        let expected: Vec<(String, String, bool, bool)> = model
            .iter()
            .flat_map(|(key, versions)| {
                versions.iter().enumerate().map(|(i, (id, marker, _))| (key.clone(), id.clone(), *marker, i == 0))
            })
            .collect();
        let max_keys = rng.gen_range(1..6);
        let mut got = Vec::new();
        let mut q = ListVersionsQuery { bucket: "b".into(), max_keys, ..Default::default() };
        loop {
            let page = list_versions(conn, &q).unwrap();
            assert!(page.versions.len() <= max_keys);
            got.extend(page.versions.iter().map(|v| (v.key.clone(), v.version_id.clone(), v.delete_marker, v.latest)));
            if !page.truncated {
                break;
            }
            q.key_marker = page.next_key_marker;
            q.version_marker = page.next_version_marker;
        }
        assert_eq!(got, expected, "every version, newest first, {max_keys} a page");
        let q =
            ListVersionsQuery { bucket: "b".into(), delimiter: Some("/".into()), max_keys: 1000, ..Default::default() };
        let page = list_versions(conn, &q).unwrap();
        let folded: Vec<&str> = page.versions.iter().map(|v| v.key.as_str()).filter(|k| k.contains('/')).collect();
        assert!(folded.is_empty(), "keys under d/ are folded: {folded:?}");
        let under_d = model.iter().any(|(k, v)| k.starts_with("d/") && !v.is_empty());
        assert_eq!(page.common_prefixes.contains(&"d/".to_string()), under_d);
        for (key, versions) in model {
            let QueryResult::Object(found) =
                answer(conn, &Query::GetObject { bucket: "b".into(), key: key.clone(), version_id: None }).unwrap()
            else {
                panic!("an object query answers an object")
            };
            match versions.first() {
                Some((id, false, etag)) => {
                    let found = found.expect("the latest version is the object");
                    assert!(!found.delete_marker);
                    assert_eq!(
                        (found.manifest.etag.quoted(), found.manifest.version_id.as_deref().unwrap_or("null")),
                        (etag.as_str(), id.as_str())
                    );
                }
                Some((id, true, _)) => {
                    let found = found.expect("a delete marker is answered as one");
                    assert!(found.delete_marker);
                    assert_eq!(found.manifest.version_id.as_deref().unwrap_or("null"), id);
                }
                None => assert!(found.is_none(), "{key} has no version"),
            }
        }
        // Every version holds its chunk; nothing else is held.
        let mut held: Vec<String> = conn
            .prepare("SELECT id FROM chunks WHERE refcount > 0")
            .unwrap()
            .query_map([], |r| r.get::<_, Vec<u8>>(0))
            .unwrap()
            .map(|id| jadfs_common::ChunkId::from_bytes(id.unwrap().try_into().unwrap()).to_hex())
            .collect();
        held.sort();
        let mut wanted: Vec<String> = model
            .values()
            .flatten()
            .filter(|v| !v.1)
            .map(|v| {
                let n: u32 = v.2.trim_matches('"').parse().unwrap();
                jadfs_common::ChunkId::of(&n.to_be_bytes()).to_hex()
            })
            .collect();
        wanted.sort();
        assert_eq!(held, wanted, "chunks held by versions");
    }
}
