//! What a request may ask for that JaDFS does not do: refused with AWS's
//! error, never ignored. A header ignored can be a broken promise (a backup
//! told it is locked, a file told it is encrypted), so every header that
//! changes what a write promises, and that we do not implement, is named
//! here. (Subresources we do not serve are refused by `endpoint`.)

use crate::endpoint::{BucketOp, Endpoint, ObjectOp};
use crate::error::{Code, S3Error};

/// Refuses a request that asks, in `header(name)`, for a feature we lack.
/// Form uploads pass their fields, by lowercase name.
pub fn refuse_unsupported<'h>(endpoint: &Endpoint, header: impl Fn(&str) -> Option<&'h str>) -> Result<(), S3Error> {
    match endpoint {
        Endpoint::Bucket { op: BucketOp::Create, .. } => refuse_bucket_features(&header),
        Endpoint::Object { op: ObjectOp::Put | ObjectOp::Copy(_) | ObjectOp::CreateMultipartUpload, .. } => {
            refuse_write_features(&header)
        }
        _ => Ok(()),
    }
}

/// What a new object (PUT, POST form, copy, multipart upload) may not ask
/// for. (Encryption is `ops::sse`'s.)
pub fn refuse_write_features<'h>(header: &impl Fn(&str) -> Option<&'h str>) -> Result<(), S3Error> {
    if header("x-amz-website-redirect-location").is_some() {
        return Err(not_implemented("Website redirects are not implemented."));
    }
    if let Some(class) = header("x-amz-storage-class") {
        if class != "STANDARD" {
            return Err(S3Error::new(Code::InvalidStorageClass)
                .with_message(format!("The storage class {class} is not offered here; only STANDARD is.")));
        }
    }
    refuse_acls(header)?;
    if header("x-amz-write-offset-bytes").is_some() {
        return Err(not_implemented("Appending to objects is not implemented."));
    }
    Ok(())
}

/// Only what JaDFS does anyway may be asked: the owner alone (`private`),
/// which grants add to through the admin API.
fn refuse_acls<'h>(header: &impl Fn(&str) -> Option<&'h str>) -> Result<(), S3Error> {
    if let Some(acl) = header("x-amz-acl") {
        if !matches!(acl, "private" | "bucket-owner-full-control") {
            return Err(not_implemented(format!("The canned ACL {acl} is not implemented; objects are private.")));
        }
    }
    for name in [
        "x-amz-grant-read",
        "x-amz-grant-write",
        "x-amz-grant-read-acp",
        "x-amz-grant-write-acp",
        "x-amz-grant-full-control",
    ] {
        if header(name).is_some() {
            return Err(not_implemented("ACL grants are not implemented."));
        }
    }
    Ok(())
}

/// What a new bucket may not ask for.
fn refuse_bucket_features<'h>(header: &impl Fn(&str) -> Option<&'h str>) -> Result<(), S3Error> {
    if let Some(ownership) = header("x-amz-object-ownership") {
        if ownership != "BucketOwnerEnforced" {
            return Err(not_implemented(format!("Object ownership {ownership} is not implemented.")));
        }
    }
    refuse_acls(header)
}

fn not_implemented(message: impl Into<String>) -> S3Error {
    S3Error::new(Code::NotImplemented).with_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::CopySource;

    fn object(op: ObjectOp) -> Endpoint {
        Endpoint::Object { bucket: "bkt".into(), key: "k".into(), op }
    }

    fn refused(endpoint: &Endpoint, headers: &[(&str, &str)]) -> Option<Code> {
        refuse_unsupported(endpoint, |name| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
            .err()
            .map(|e| e.code)
    }

    #[test]
    fn writes_that_ask_for_what_we_lack_are_refused() {
        let copy = object(ObjectOp::Copy(CopySource { bucket: "src".into(), key: "k".into(), version_id: None }));
        for write in [object(ObjectOp::Put), copy, object(ObjectOp::CreateMultipartUpload)] {
            let refused = |h: &[(&str, &str)]| refused(&write, h);
            assert_eq!(refused(&[("x-amz-server-side-encryption", "AES256")]), None, "ops::sse judges it");
            assert_eq!(refused(&[("x-amz-website-redirect-location", "/x")]), Some(Code::NotImplemented));
            assert_eq!(refused(&[("x-amz-storage-class", "GLACIER")]), Some(Code::InvalidStorageClass));
            assert_eq!(refused(&[("x-amz-acl", "public-read")]), Some(Code::NotImplemented));
            assert_eq!(refused(&[("x-amz-grant-read", "id=x")]), Some(Code::NotImplemented));
            assert_eq!(refused(&[("x-amz-storage-class", "STANDARD"), ("x-amz-acl", "private")]), None);
            assert_eq!(refused(&[("x-amz-meta-color", "blue")]), None);
        }
        let create = Endpoint::Bucket { bucket: "bkt".into(), op: BucketOp::Create };
        assert_eq!(refused(&create, &[("x-amz-bucket-object-lock-enabled", "True")]), None, "Object Lock is served");
        assert_eq!(refused(&create, &[("x-amz-object-ownership", "ObjectWriter")]), Some(Code::NotImplemented));
    }
}
