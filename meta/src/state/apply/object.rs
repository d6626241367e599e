//! Objects: put (conditional or not), delete, copy, tags.

use jadfs_common::ObjectManifest;

use super::chunks::Written;
use super::{refuse, Applier, Outcome};
use crate::api::{CommandResult, MetaError, ObjectMetadata, WriteCondition};
use crate::state::rows::{delete_object_row, load_manifest, replication_of, write_object};

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
        self.store_object(bucket, key, manifest, written, copies)?;
        Ok(CommandResult::Done)
    }

    pub(super) fn delete_object(&self, bucket: &str, key: &str) -> Outcome {
        self.require_bucket(bucket)?;
        if let Some(old) = load_manifest(self.tx, bucket, key)? {
            self.release_chunks(&old.chunks)?;
            delete_object_row(self.tx, bucket, key)?;
        }
        Ok(CommandResult::Done)
    }

    /// A new manifest over the source's chunks: no bytes move. With
    /// `metadata` (or `tags`), the copy's are replaced instead of kept.
    pub(super) fn copy_object(
        &self,
        (src_bucket, src_key): (&str, &str),
        (dst_bucket, dst_key): (&str, &str),
        metadata: Option<&ObjectMetadata>,
        last_modified_ms: i64,
        tags: Option<&Vec<(String, String)>>,
    ) -> Outcome {
        self.require_bucket(src_bucket)?;
        self.require_bucket(dst_bucket)?;
        let Some(mut manifest) = load_manifest(self.tx, src_bucket, src_key)? else {
            return refuse(MetaError::NoSuchKey);
        };
        if let Some(metadata) = metadata {
            manifest.content_type = metadata.content_type.clone();
            manifest.headers = metadata.headers.clone();
            manifest.user_metadata = metadata.user_metadata.clone();
        }
        manifest.last_modified_ms = last_modified_ms;
        if let Some(tags) = tags {
            manifest.tags = tags.clone();
        }
        // The source's chunks, where they are: no write, no new copy.
        let copies = replication_of(self.tx, Some(dst_bucket))?.copies;
        self.store_object(dst_bucket, dst_key, &manifest, Written::reused(), copies)?;
        Ok(CommandResult::Object(Box::new(manifest)))
    }

    pub(super) fn set_object_tags(&self, bucket: &str, key: &str, tags: &[(String, String)]) -> Outcome {
        self.require_bucket(bucket)?;
        let Some(mut manifest) = load_manifest(self.tx, bucket, key)? else {
            return refuse(MetaError::NoSuchKey);
        };
        manifest.tags = tags.to_vec();
        write_object(self.tx, bucket, key, &manifest)?;
        Ok(CommandResult::Done)
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
    /// ones of the object it replaces, so a chunk both share never drops to zero.
    fn store_object(
        &self,
        bucket: &str,
        key: &str,
        manifest: &ObjectManifest,
        written: Written,
        copies: u8,
    ) -> Result<(), super::Fail> {
        self.take_chunks(&manifest.chunks, written, copies)?;
        Ok(self.replace_object(bucket, key, manifest)?)
    }

    /// Writes an object in place of the current one, whose chunks it releases.
    pub(super) fn replace_object(&self, bucket: &str, key: &str, manifest: &ObjectManifest) -> rusqlite::Result<()> {
        if let Some(old) = load_manifest(self.tx, bucket, key)? {
            self.release_chunks(&old.chunks)?;
        }
        write_object(self.tx, bucket, key, manifest)
    }
}
