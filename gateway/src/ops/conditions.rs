//! Conditional requests: `If-*` on reads (412 or 304), `x-amz-copy-source-if-*`
//! on copies, and `If-Match` / `If-None-Match` on writes, which are
//! checked once before any byte is read and decided when the write applies.

use jadfs_common::ObjectManifest;
use jadfs_meta::api::WriteCondition;

use super::{parse_http_date, Ctx};
use crate::error::{Code, S3Error};

/// What the conditional headers decide for an object (RFC 7232 order):
/// 412, or 304, or go ahead.
pub fn check_read_conditions(ctx: &Ctx, manifest: &ObjectManifest) -> Result<(), S3Error> {
    let modified_s = manifest.last_modified_ms / 1000;
    if let Some(list) = ctx.header("if-match") {
        if !manifest.etag.matches(list) {
            return Err(S3Error::new(Code::PreconditionFailed));
        }
    } else if let Some(date) = ctx.header("if-unmodified-since").and_then(parse_http_date) {
        if modified_s > date.timestamp() {
            return Err(S3Error::new(Code::PreconditionFailed));
        }
    }
    if let Some(list) = ctx.header("if-none-match") {
        if manifest.etag.matches(list) {
            return Err(S3Error::new(Code::NotModified));
        }
    } else if let Some(date) = ctx.header("if-modified-since").and_then(parse_http_date) {
        if modified_s <= date.timestamp() {
            return Err(S3Error::new(Code::NotModified));
        }
    }
    Ok(())
}

/// `x-amz-copy-source-if-*`: a copy whose source fails them is refused with 412.
pub fn check_copy_source_conditions(ctx: &Ctx, source: &ObjectManifest) -> Result<(), S3Error> {
    let modified_s = source.last_modified_ms / 1000;
    let failed = ctx.header("x-amz-copy-source-if-match").is_some_and(|l| !source.etag.matches(l))
        || ctx.header("x-amz-copy-source-if-none-match").is_some_and(|l| source.etag.matches(l))
        || ctx
            .header("x-amz-copy-source-if-unmodified-since")
            .and_then(parse_http_date)
            .is_some_and(|d| modified_s > d.timestamp())
        || ctx
            .header("x-amz-copy-source-if-modified-since")
            .and_then(parse_http_date)
            .is_some_and(|d| modified_s <= d.timestamp());
    if failed {
        Err(S3Error::new(Code::PreconditionFailed))
    } else {
        Ok(())
    }
}

impl Ctx<'_> {
    /// `If-Match` / `If-None-Match` of a write, if any.
    pub fn write_condition(&self) -> Option<WriteCondition> {
        let condition = WriteCondition {
            if_match: self.header("if-match").map(str::to_string),
            if_none_match: self.header("if-none-match").map(str::to_string),
        };
        (condition != WriteCondition::default()).then_some(condition)
    }

    /// Checks a write condition before any byte is read, so a write that
    /// cannot succeed is refused at once.
    pub async fn check_write_condition(&self, key: &str, condition: &WriteCondition) -> Result<(), S3Error> {
        let current = match self.object(key).await {
            Ok(object) => Some(object.manifest.etag),
            Err(e) if e.code == Code::NoSuchKey => None,
            Err(e) => return Err(e),
        };
        condition.check(current.as_ref()).map_err(S3Error::from)
    }
}

/// A conditional write that passed its first check but failed when it
/// applied lost a race with another write: S3 answers 409.
pub fn conditional_commit_error(e: S3Error, condition: &Option<WriteCondition>) -> S3Error {
    let lost_race = condition.is_some() && (e.code == Code::PreconditionFailed || e.code == Code::NoSuchKey);
    if lost_race {
        S3Error::new(Code::ConditionalRequestConflict)
    } else {
        e
    }
}
