//! Object Lock. Every rule is checked here, in the command that would break
//! it, against the version as it is when the command applies: no gateway,
//! lifecycle worker or admin path can get around it. A locked version
//! cannot be deleted (`versions.rs` asks [`ObjectManifest::lock_at`]); a
//! bucket with Object Lock keeps versioning enabled, so a write never
//! replaces a version in place.

use jadfs_common::{LockMode, ObjectManifest, Retention};

use super::{refuse, Applier, Fail, Outcome};
use crate::api::{CommandResult, MetaError, ObjectLockConfig, Versioning};
use crate::state::rows::{
    load_bucket_setting, load_manifest, load_version, rewrite_version, set_bucket_setting, write_object, BucketSetting,
};

/// A version by bucket, key and id (None: the current one).
type VersionRef<'a> = (&'a str, &'a str, Option<&'a str>);

impl Applier<'_> {
    pub(super) fn object_lock(&self, bucket: &str) -> rusqlite::Result<Option<ObjectLockConfig>> {
        load_bucket_setting(self.tx, BucketSetting::ObjectLock, bucket)
    }

    /// Enables Object Lock (versioning must be enabled) or changes its
    /// default retention.
    pub(super) fn set_object_lock(&self, bucket: &str, config: &ObjectLockConfig) -> Outcome {
        self.require_bucket(bucket)?;
        if self.versioning(bucket)? != Some(Versioning::Enabled) {
            return refuse(MetaError::InvalidBucketState("versioning must be enabled for Object Lock".into()));
        }
        set_bucket_setting(self.tx, BucketSetting::ObjectLock, bucket, Some(config))?;
        Ok(CommandResult::Done)
    }

    /// A new version's lock: what its write asked for, else the bucket's
    /// default retention from when it was written. A bucket without Object
    /// Lock refuses a write that asks for one.
    pub(super) fn lock_new_version(&self, bucket: &str, manifest: &mut ObjectManifest) -> Result<(), Fail> {
        let Some(config) = self.object_lock(bucket)? else {
            if manifest.retention.is_some() || manifest.legal_hold {
                return refuse(MetaError::NoObjectLock);
            }
            return Ok(());
        };
        if manifest.retention.is_none() {
            if let Some(default) = config.default_retention {
                let until_ms = manifest.last_modified_ms.saturating_add(default.period.ms());
                manifest.retention = Some(Retention { mode: default.mode, until_ms });
            }
        }
        Ok(())
    }

    /// Refuses the deletion of a version Object Lock keeps.
    pub(super) fn check_unlocked(&self, version: &ObjectManifest, now_ms: i64, bypass: bool) -> Result<(), Fail> {
        match version.lock_at(now_ms, bypass) {
            Some(why) => refuse(MetaError::ObjectLocked(why.into())),
            None => Ok(()),
        }
    }

    /// Sets or removes a retention: compliance only ever lengthens until it
    /// ends; governance too, unless `bypass` (which may also shorten it,
    /// remove it or change its mode).
    pub(super) fn set_retention(
        &self,
        at: VersionRef,
        retention: Option<&Retention>,
        bypass: bool,
        now_ms: i64,
    ) -> Outcome {
        let (bucket, _, _) = at;
        self.require_bucket(bucket)?;
        if self.object_lock(bucket)?.is_none() {
            return refuse(MetaError::NoObjectLock);
        }
        let mut manifest = self.object_version(at.0, at.1, at.2)?;
        if let Some(old) = manifest.retention.as_ref().filter(|r| r.until_ms > now_ms) {
            // Only as long or longer, in the same mode; any other change of
            // a governance retention needs the bypass.
            let lengthened = retention.is_some_and(|new| new.until_ms >= old.until_ms && new.mode == old.mode);
            let allowed = lengthened || (old.mode == LockMode::Governance && bypass);
            if !allowed {
                let why = format!("under {} retention", old.mode.as_str().to_lowercase());
                return refuse(MetaError::ObjectLocked(why));
            }
        }
        manifest.retention = retention.cloned();
        self.rewrite(at, &manifest)?;
        Ok(CommandResult::Done)
    }

    pub(super) fn set_legal_hold(&self, at: VersionRef, on: bool) -> Outcome {
        self.require_bucket(at.0)?;
        if self.object_lock(at.0)?.is_none() {
            return refuse(MetaError::NoObjectLock);
        }
        let mut manifest = self.object_version(at.0, at.1, at.2)?;
        manifest.legal_hold = on;
        self.rewrite(at, &manifest)?;
        Ok(CommandResult::Done)
    }

    /// Writes a version's manifest back where it is kept (its metadata changed).
    pub(super) fn rewrite(
        &self,
        (bucket, key, version_id): VersionRef,
        manifest: &ObjectManifest,
    ) -> rusqlite::Result<()> {
        let current = load_manifest(self.tx, bucket, key)?;
        let is_current = |id: &str| current.as_ref().is_some_and(|m| m.version() == id);
        match version_id {
            Some(id) if !is_current(id) => match load_version(self.tx, bucket, key, id)? {
                Some(version) => rewrite_version(self.tx, bucket, key, version.seq, manifest),
                None => Ok(()),
            },
            _ => write_object(self.tx, bucket, key, manifest),
        }
    }
}
