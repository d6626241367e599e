//! Applying committed commands to the state, inside the transaction of
//! their log entries. [`Applier::apply`] is the one place a command is
//! matched; each family (buckets, objects, multipart uploads, access,
//! nodes and repair) has its module. A refused command (a missing bucket,
//! a failed condition) changes nothing: each runs under a savepoint that is
//! rolled back when it is refused.

mod access;
mod bucket;
mod chunks;
mod lifecycle;
mod lock;
mod multipart;
mod nodes;
mod object;
mod requests;
mod versions;

use rusqlite::Transaction;

use crate::api::{Command, CommandResult, MetaError};
use chunks::Written;

/// Why a command did not apply: refused (its answer to the client), or the
/// database failed (the whole apply fails, and openraft stops the node). A
/// constraint the command broke is a refusal, never a failure: it follows
/// from the command and the state alone, so every replica refuses alike,
/// where a storage error would stop every replica at the same entry.
pub(super) enum Fail {
    Refused(MetaError),
    Storage(rusqlite::Error),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Fail {
        Fail::Storage(e)
    }
}

type Outcome = Result<CommandResult, Fail>;

/// Refuses the command with `error`.
fn refuse<T>(error: MetaError) -> Result<T, Fail> {
    Err(Fail::Refused(error))
}

/// Applies commands within one transaction, at one log index.
pub(super) struct Applier<'t> {
    tx: &'t Transaction<'t>,
    /// The index of the entry being applied: it dates repairs and orphans.
    log_index: u64,
    /// Versions made so far at this index (see `versions.rs`).
    versions_made: std::cell::Cell<u32>,
}

impl<'t> Applier<'t> {
    pub fn new(tx: &'t Transaction<'t>, log_index: u64) -> Applier<'t> {
        Applier { tx, log_index, versions_made: std::cell::Cell::new(0) }
    }

    /// The `seq` of the next version this entry makes.
    fn next_seq(&self) -> i64 {
        versions::next_seq(self.log_index, &self.versions_made)
    }

    /// Applies one command (or a batch of them); Err only when the database failed.
    pub fn apply(&self, command: &Command) -> rusqlite::Result<CommandResult> {
        match command {
            Command::Batch(commands) => {
                let results = commands.iter().map(|command| self.apply_one(command));
                Ok(CommandResult::Batch(results.collect::<rusqlite::Result<_>>()?))
            }
            command => self.apply_one(command),
        }
    }

    fn apply_one(&self, command: &Command) -> rusqlite::Result<CommandResult> {
        self.under_savepoint(|| self.dispatch(command))
    }

    /// Runs `f` under a savepoint, which a refusal rolls back.
    fn under_savepoint(&self, f: impl FnOnce() -> Outcome) -> rusqlite::Result<CommandResult> {
        self.tx.execute_batch("SAVEPOINT command")?;
        let outcome = f().map_err(|fail| match fail {
            Fail::Storage(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) => {
                tracing::error!(error = %e, log_index = self.log_index, "a command broke a constraint; refused");
                Fail::Refused(MetaError::Internal(format!("the command conflicts with the state: {e}")))
            }
            other => other,
        });
        match outcome {
            Ok(result) => {
                self.tx.execute_batch("RELEASE command")?;
                Ok(result)
            }
            Err(Fail::Refused(e)) => {
                self.tx.execute_batch("ROLLBACK TO command; RELEASE command")?;
                Ok(CommandResult::Failed(e))
            }
            Err(Fail::Storage(e)) => Err(e),
        }
    }

    fn dispatch(&self, command: &Command) -> Outcome {
        use Command as C;
        match command {
            C::Once { request, command } => self.once(*request, command),
            C::CreateBucket { name, owner, created_ms, object_lock } => {
                self.create_bucket(name, owner, *created_ms, *object_lock)
            }
            C::DeleteBucket { name } => self.delete_bucket(name),
            C::SetBucketCors { bucket, rules } => self.set_bucket_cors(bucket, rules.as_ref()),
            C::SetBucketEncryption { bucket, mode } => self.set_bucket_encryption(bucket, mode.as_ref()),
            C::SetBucketTags { bucket, tags } => self.set_bucket_tags(bucket, tags.as_ref()),
            C::SetBucketLifecycle { bucket, rules } => self.set_bucket_lifecycle(bucket, rules.as_ref()),
            C::ApplyLifecycle { bucket, after, limit, now_ms, day_ms } => {
                self.apply_lifecycle(bucket, after.as_deref(), *limit, *now_ms, *day_ms)
            }
            C::SetBucketGrant { bucket, access_key, permission } => {
                self.set_bucket_grant(bucket, access_key, *permission)
            }
            C::SetReplication { bucket, replication } => self.set_replication(bucket.as_deref(), *replication),
            C::PutObject { bucket, key, manifest, placement, condition, write_id } => {
                self.put_object(bucket, key, manifest, Written::by(placement, *write_id), condition.as_ref())
            }
            C::DeleteObject { bucket, key, version_id, now_ms, bypass_governance, condition } => self.delete_object_if(
                (bucket, key, version_id.as_deref()),
                *now_ms,
                *bypass_governance,
                condition.as_ref(),
            ),
            C::SetObjectLock { bucket, config } => self.set_object_lock(bucket, config),
            C::SetRetention { bucket, key, version_id, retention, bypass_governance, now_ms } => self.set_retention(
                (bucket, key, version_id.as_deref()),
                retention.as_ref(),
                *bypass_governance,
                *now_ms,
            ),
            C::SetLegalHold { bucket, key, version_id, on } => {
                self.set_legal_hold((bucket, key, version_id.as_deref()), *on)
            }
            C::SetBucketVersioning { bucket, versioning } => self.set_bucket_versioning(bucket, *versioning),
            C::CopyObject {
                src_bucket,
                src_key,
                src_version,
                dst_bucket,
                dst_key,
                metadata,
                last_modified_ms,
                tags,
                retention,
                legal_hold,
                source_encryption,
            } => self.copy_object(
                (src_bucket, src_key, src_version.as_deref(), source_encryption.as_ref()),
                (dst_bucket, dst_key),
                metadata.as_ref(),
                *last_modified_ms,
                tags.as_ref(),
                (retention.as_ref(), *legal_hold),
            ),
            C::SetObjectTags { bucket, key, version_id, tags } => {
                self.set_object_tags(bucket, key, version_id.as_deref(), tags)
            }
            C::CreateUpload { bucket, key, upload } => self.create_upload(bucket, key, upload),
            C::PutPart { bucket, key, upload_id, part_number, part, placement, write_id } => {
                self.put_part(bucket, key, upload_id, *part_number, part, Written::by(placement, *write_id))
            }
            C::CompleteUpload(complete) => self.complete_upload(complete),
            C::AbortUpload { bucket, key, upload_id } => self.abort_upload(bucket, key, upload_id),
            C::PutAccessKey { key } => self.put_access_key(key),
            C::DeleteAccessKey { access_key } => self.delete_access_key(access_key),
            C::RegisterNode { node } => self.register_node(node),
            C::RepairDone { chunk, added, done, write_id } => self.repair_done(chunk, added, *done, *write_id),
            C::Pin { write_id, chunk, nodes, expires_ms, .. } => self.pin(*write_id, chunk, nodes, *expires_ms),
            C::RenewPins { write_id, expires_ms, .. } => self.renew_pins(*write_id, *expires_ms),
            C::Unpin { write_id } => self.unpin(*write_id),
            C::Collect { orphaned_by_log, now_ms } => self.collect(*orphaned_by_log, *now_ms),
            C::CollectStrays { node, chunks, now_ms } => self.collect_strays(*node, chunks, *now_ms),
            C::CopiesDeleted { copies } => self.copies_deleted(copies),
            C::TrimCopies { chunk, nodes, now_ms } => self.trim_copies(chunk, nodes, *now_ms),
            C::SetDraining { node, draining } => self.set_draining(*node, *draining),
            C::MoveCopy { chunk, from, to, write_id, now_ms } => self.move_copy(chunk, *from, *to, *write_id, *now_ms),
            C::SetRebalance { tolerance } => self.set_rebalance(*tolerance),
            C::QueueNodeChunks { node } => self.queue_node_chunks(*node),
            C::CopiesLost { node, chunks } => self.copies_lost(*node, chunks),
            // A top-level batch never gets here (see `apply`): this one is nested.
            C::Batch(_) => refuse(MetaError::Internal("a batch inside a batch".into())),
        }
    }

    /// Refuses with NoSuchBucket unless the bucket exists.
    fn require_bucket(&self, name: &str) -> Result<(), Fail> {
        if crate::state::rows::bucket_exists(self.tx, name)? {
            Ok(())
        } else {
            refuse(MetaError::NoSuchBucket)
        }
    }
}

#[cfg(test)]
mod tests;
