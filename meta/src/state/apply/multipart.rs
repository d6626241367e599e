//! Multipart uploads: parts take chunk references as they arrive;
//! completing an upload moves the chosen parts' references to the object.

use jadfs_common::checksum::{self, Algorithm, ChecksumType};
use jadfs_common::sse::{Encryption, SseMode};
use jadfs_common::{ChunkRef, ETag, ObjectManifest, ObjectPart};
use rusqlite::params;

use super::chunks::Written;
use super::{refuse, Applier, Fail, Outcome};
use crate::api::{CommandResult, CompleteUpload, MetaError, PartManifest, UploadInfo};
use crate::state::rows::{load_manifest, load_part, load_parts, load_upload, replication_of, to_json};

impl Applier<'_> {
    /// Starts an upload. The same command applied again (a client retried
    /// it after its answer was lost) finds its upload there: done.
    pub(super) fn create_upload(&self, bucket: &str, key: &str, upload: &UploadInfo) -> Outcome {
        self.require_bucket(bucket)?;
        let taken = self.tx.execute(
            "INSERT OR IGNORE INTO uploads (upload_id, bucket, key, info) VALUES (?1, ?2, ?3, ?4)",
            params![upload.upload_id, bucket, key.as_bytes(), to_json(upload)?],
        )? == 0;
        if taken {
            let same: bool = self.tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM uploads WHERE upload_id = ?1 AND bucket = ?2 AND key = ?3)",
                params![upload.upload_id, bucket, key.as_bytes()],
                |r| r.get(0),
            )?;
            if !same {
                return refuse(MetaError::Internal(format!("upload id {} is taken", upload.upload_id)));
            }
        }
        Ok(CommandResult::Done)
    }

    /// Adds or replaces one part of an upload.
    pub(super) fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        part: &PartManifest,
        written: Written,
    ) -> Outcome {
        let Some(upload) = load_upload(self.tx, bucket, key, upload_id)? else {
            return refuse(MetaError::NoSuchUpload);
        };
        // An encrypted upload's parts all carry their sealed key (the
        // object's `encryption.keys` is made of them), a plain one's none.
        if part.sealed_key.is_some() != upload.metadata.encryption.is_some() {
            return refuse(MetaError::Internal("a part's encryption does not match its upload's".into()));
        }
        if written.placement.len() != part.chunks.len() {
            return refuse(MetaError::Internal("placement does not match the chunk list".into()));
        }
        let copies = replication_of(self.tx, Some(bucket))?.copies;
        self.take_chunks(&part.chunks, written, copies)?;
        if let Some(old) = load_part(self.tx, upload_id, part_number)? {
            self.release_chunks(&old.chunks)?;
        }
        self.tx.execute(
            "INSERT OR REPLACE INTO parts (upload_id, part_number, manifest) VALUES (?1, ?2, ?3)",
            params![upload_id, part_number, to_json(part)?],
        )?;
        Ok(CommandResult::Done)
    }

    /// Joins the listed parts into the object: only metadata is written.
    pub(super) fn complete_upload(&self, c: &CompleteUpload) -> Outcome {
        let Some(upload) = load_upload(self.tx, &c.bucket, &c.key, &c.upload_id)? else {
            // Completing again an upload that already completed answers
            // as the first time did, while its object is still there.
            return match load_manifest(self.tx, &c.bucket, &c.key)? {
                Some(current) if current.upload_id.as_deref() == Some(c.upload_id.as_str()) => {
                    Ok(CommandResult::Object(Box::new(current)))
                }
                _ => refuse(MetaError::NoSuchUpload),
            };
        };
        if let Some(SseMode::Customer { key_md5 }) = &upload.metadata.encryption {
            if c.customer_key_md5.as_ref() != Some(key_md5) {
                return refuse(MetaError::WrongCustomerKey);
            }
        }
        if c.parts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return refuse(MetaError::InvalidPartOrder);
        }
        let mut chosen = Vec::with_capacity(c.parts.len());
        for (i, (number, etag)) in c.parts.iter().enumerate() {
            let part = match load_part(self.tx, &c.upload_id, *number)? {
                Some(part) if part.etag.is(etag) => part,
                _ => return refuse(MetaError::InvalidPart(format!("part {number} with ETag {etag} was not uploaded"))),
            };
            if i + 1 < c.parts.len() && part.size < c.min_part_size {
                return refuse(MetaError::EntityTooSmall(*number));
            }
            if let Some(Some(listed)) = c.part_checksums.get(i) {
                if part.checksum.as_ref().map(|checksum| &checksum.value) != Some(listed) {
                    return refuse(MetaError::BadDigest(format!(
                        "the checksum listed for part {number} is not the part's"
                    )));
                }
            }
            chosen.push(part);
        }
        self.check_condition(&c.bucket, &c.key, c.condition.as_ref())?;
        let mut manifest = assemble(&upload, &chosen, c.last_modified_ms);
        if let Some(expected) = &c.expected_checksum {
            if !manifest.checksum.as_ref().is_some_and(|checksum| checksum.is(expected)) {
                return refuse(MetaError::BadDigest("the object checksum does not match".into()));
            }
        }
        // The chosen parts' chunk references pass to the object; the parts
        // left out release theirs.
        for (number, part) in load_parts(self.tx, &c.upload_id)? {
            if !c.parts.iter().any(|(n, _)| *n == number) {
                self.release_chunks(&part.chunks)?;
            }
        }
        self.replace_object(&c.bucket, &c.key, &mut manifest)?;
        self.delete_upload_rows(&c.upload_id)?;
        Ok(CommandResult::Object(Box::new(manifest)))
    }

    pub(super) fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Outcome {
        self.require_upload(bucket, key, upload_id)?;
        self.drop_upload(upload_id)?;
        Ok(CommandResult::Done)
    }

    /// Removes an upload and its parts, releasing their chunks.
    pub(super) fn drop_upload(&self, upload_id: &str) -> rusqlite::Result<()> {
        for (_, part) in load_parts(self.tx, upload_id)? {
            self.release_chunks(&part.chunks)?;
        }
        self.delete_upload_rows(upload_id)
    }

    fn delete_upload_rows(&self, upload_id: &str) -> rusqlite::Result<()> {
        self.tx.execute("DELETE FROM parts WHERE upload_id = ?1", [upload_id])?;
        self.tx.execute("DELETE FROM uploads WHERE upload_id = ?1", [upload_id])?;
        Ok(())
    }

    fn require_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<(), Fail> {
        match load_upload(self.tx, bucket, key, upload_id)? {
            Some(_) => Ok(()),
            None => refuse(MetaError::NoSuchUpload),
        }
    }
}

/// The object made of `parts`, in order: chunk offsets run on across parts
/// and the ETag is the MD5 of the parts' binary MD5s, then `-N`.
fn assemble(upload: &UploadInfo, parts: &[PartManifest], last_modified_ms: i64) -> ObjectManifest {
    use md5::{Digest, Md5};
    let mut md5_of_md5s = Md5::new();
    let mut chunks = Vec::new();
    let mut offset = 0;
    for part in parts {
        if let Some(md5) = part.etag.md5() {
            md5_of_md5s.update(md5);
        }
        for chunk in &part.chunks {
            chunks.push(ChunkRef { id: chunk.id, offset: offset + chunk.offset, size: chunk.size });
        }
        offset += part.size;
    }
    ObjectManifest {
        size: offset,
        etag: ETag::multipart(&md5_of_md5s.finalize().into(), parts.len()),
        last_modified_ms,
        content_type: upload.metadata.content_type.clone(),
        headers: upload.metadata.headers.clone(),
        user_metadata: upload.metadata.user_metadata.clone(),
        checksum: upload.checksum_algorithm.and_then(|algorithm| object_checksum(upload, algorithm, parts)),
        chunks,
        tags: upload.metadata.tags.clone(),
        upload_id: Some(upload.upload_id.clone()),
        parts: parts.iter().map(|p| ObjectPart { size: p.size, checksum: p.checksum.clone() }).collect(),
        inline: None,
        version_id: None,
        retention: upload.metadata.retention.clone(),
        legal_hold: upload.metadata.legal_hold,
        encryption: upload.metadata.encryption.clone().map(|mode| Encryption {
            mode,
            keys: parts.iter().map(|p| p.sealed_key.clone().unwrap_or_default()).collect(),
        }),
    }
}

/// The object's checksum from its parts': a CRC of every byte, or S3's composite.
fn object_checksum(upload: &UploadInfo, algorithm: Algorithm, parts: &[PartManifest]) -> Option<checksum::Checksum> {
    let part_checksums: Vec<Option<String>> = parts
        .iter()
        .map(|p| p.checksum.as_ref().filter(|c| c.algorithm == algorithm).map(|c| c.value.clone()))
        .collect();
    match upload.checksum_type() {
        ChecksumType::FullObject => {
            let sized: Vec<(Option<String>, u64)> =
                part_checksums.into_iter().zip(parts.iter().map(|p| p.size)).collect();
            checksum::full_object(algorithm, &sized)
        }
        ChecksumType::Composite => checksum::composite(algorithm, &part_checksums),
    }
}
