//! Objects: put (conditional or not), copy, tags. Deletes and what
//! versioning changes are in `versions.rs`.

use jadfs_common::ObjectManifest;

use super::chunks::Written;
use super::{refuse, Applier, Outcome};
use crate::api::{CommandResult, ExpectedEncryption, MetaError, ObjectMetadata, Retention, WriteCondition};
use crate::state::rows::{load_manifest, load_version, replication_of};

impl Applier<'_> {
    /// Creates or replaces an object; `placement[i]` lists the nodes that
    /// hold `manifest.chunks[i]`. The condition is checked here, against the
    /// object as it is when the command applies.
    pub(super) fn put_object(
        &self,
        bucket: &str,
        key: &str,
        manifest: &ObjectManifest,
        written: Written,
        condition: Option<&WriteCondition>,
    ) -> Outcome {
        self.require_bucket(bucket)?;
        if written.placement.len() != manifest.chunks.len() {
            return refuse(MetaError::Internal("placement does not match the chunk list".into()));
        }
        if manifest.inline.as_ref().is_some_and(|b| b.len() as u64 != manifest.size || !manifest.chunks.is_empty()) {
            return refuse(MetaError::Internal("inline bytes do not match the object".into()));
        }
        self.check_condition(bucket, key, condition)?;
        let copies = replication_of(self.tx, Some(bucket))?.copies;
        let mut manifest = manifest.clone();
        let version_id = self.store_object(bucket, key, &mut manifest, written, copies)?;
        Ok(CommandResult::Version { version_id, delete_marker: false })
    }

    /// A new manifest over the source's chunks: no bytes move. With
    /// `metadata` (or `tags`), the copy's are replaced instead of kept.
    pub(super) fn copy_object(
        &self,
        (src_bucket, src_key, src_version, source_encryption): (&str, &str, Option<&str>, Option<&ExpectedEncryption>),
        (dst_bucket, dst_key): (&str, &str),
        metadata: Option<&ObjectMetadata>,
        last_modified_ms: i64,
        tags: Option<&Vec<(String, String)>>,
        (retention, legal_hold): (Option<&Retention>, bool),
    ) -> Outcome {
        self.require_bucket(src_bucket)?;
        self.require_bucket(dst_bucket)?;
        let mut manifest = self.object_version(src_bucket, src_key, src_version)?;
        // The copy shares the source's chunks because of their encryption:
        // a source replaced since by one encrypted otherwise is not copied.
        if source_encryption.is_some_and(|e| e.mode.as_ref() != manifest.encryption.as_ref().map(|e| &e.mode)) {
            return refuse(MetaError::PreconditionFailed);
        }
        if let Some(metadata) = metadata {
            manifest.content_type = metadata.content_type.clone();
            manifest.headers = metadata.headers.clone();
            manifest.user_metadata = metadata.user_metadata.clone();
        }
        manifest.last_modified_ms = last_modified_ms;
        if let Some(tags) = tags {
            manifest.tags = tags.clone();
        }
        manifest.retention = retention.cloned();
        manifest.legal_hold = legal_hold;
        // The source's chunks, where they are: no write, no new copy.
        let copies = replication_of(self.tx, Some(dst_bucket))?.copies;
        self.store_object(dst_bucket, dst_key, &mut manifest, Written::reused(), copies)?;
        Ok(CommandResult::Object(Box::new(manifest)))
    }

    /// Sets the tags of the current object, or of version `version_id`.
    pub(super) fn set_object_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        tags: &[(String, String)],
    ) -> Outcome {
        self.require_bucket(bucket)?;
        let mut manifest = self.object_version(bucket, key, version_id)?;
        manifest.tags = tags.to_vec();
        self.rewrite((bucket, key, version_id), &manifest)?;
        Ok(CommandResult::Done)
    }

    /// The current object, or with `version_id` that version; a delete
    /// marker is no object.
    pub(super) fn object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectManifest, super::Fail> {
        let current = load_manifest(self.tx, bucket, key)?;
        let Some(version_id) = version_id else {
            return current.map_or_else(|| refuse(MetaError::NoSuchKey), Ok);
        };
        if let Some(current) = current.filter(|m| m.version() == version_id) {
            return Ok(current);
        }
        match load_version(self.tx, bucket, key, version_id)? {
            Some(version) if !version.delete_marker => Ok(version.manifest),
            _ => refuse(MetaError::NoSuchVersion),
        }
    }

    /// Refuses a conditional write whose condition the current object fails.
    pub(super) fn check_condition(
        &self,
        bucket: &str,
        key: &str,
        condition: Option<&WriteCondition>,
    ) -> Result<(), super::Fail> {
        let Some(condition) = condition else { return Ok(()) };
        let current = load_manifest(self.tx, bucket, key)?;
        match condition.check(current.as_ref().map(|m| &m.etag)) {
            Ok(()) => Ok(()),
            Err(e) => refuse(e),
        }
    }

    /// Writes an object, taking references on its chunks before releasing the
    /// ones of the object it replaces, so a chunk both share never drops to
    /// zero. Answers its `x-amz-version-id` (see `replace_object`).
    fn store_object(
        &self,
        bucket: &str,
        key: &str,
        manifest: &mut ObjectManifest,
        written: Written,
        copies: u8,
    ) -> Result<Option<String>, super::Fail> {
        self.take_chunks(&manifest.chunks, written, copies)?;
        self.replace_object(bucket, key, manifest)
    }
}
