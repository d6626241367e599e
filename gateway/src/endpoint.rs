//! Every S3 request, parsed once into the operation it asks for and that
//! operation's parameters. From an [`Endpoint`] come the permission it needs
//! on its bucket, its name (for logs), and the handler it goes to (one
//! exhaustive match in the router).

use actix_web::http::Method;
use jadfs_meta::api::Permission;

use crate::error::{Code, S3Error};
use crate::target::CopySource;

/// Highest part number of a multipart upload, as AWS.
pub const MAX_PART_NUMBER: u32 = 10_000;

/// Subresources we do not serve: answered NotImplemented, never as if the
/// request were a plain listing, create or read. `true`: of buckets; `false`:
/// of objects.
const UNSUPPORTED: [(&str, bool); 17] = [
    ("acl", true),
    ("policy", true),
    ("website", true),
    ("logging", true),
    ("notification", true),
    ("replication", true),
    ("requestPayment", true),
    ("accelerate", true),
    ("analytics", true),
    ("inventory", true),
    ("metrics", true),
    ("ownershipControls", true),
    ("publicAccessBlock", true),
    ("intelligent-tiering", true),
    ("acl", false),
    ("torrent", false),
    ("restore", false),
];

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ListBuckets,
    Bucket { bucket: String, op: BucketOp },
    Object { bucket: String, key: String, op: ObjectOp },
}

/// An operation on a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketOp {
    Create,
    Head,
    Delete,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    GetLocation,
    GetVersioning,
    PutVersioning,
    GetObjectLock,
    PutObjectLock,
    GetCors,
    PutCors,
    DeleteCors,
    GetEncryption,
    PutEncryption,
    DeleteEncryption,
    GetLifecycle,
    PutLifecycle,
    DeleteLifecycle,
    GetTagging,
    PutTagging,
    DeleteTagging,
    DeleteObjects,
    /// A subresource we do not serve, and what it would need.
    NotImplemented(&'static str, Permission),
}

/// An operation on an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectOp {
    Get,
    Head,
    Put,
    Copy(CopySource),
    Delete,
    GetAttributes,
    GetTagging,
    PutTagging,
    DeleteTagging,
    GetRetention,
    PutRetention,
    GetLegalHold,
    PutLegalHold,
    CreateMultipartUpload,
    UploadPart {
        upload_id: String,
        part_number: u32,
    },
    UploadPartCopy {
        upload_id: String,
        part_number: u32,
        source: CopySource,
    },
    CompleteMultipartUpload {
        upload_id: String,
    },
    AbortMultipartUpload {
        upload_id: String,
    },
    ListParts {
        upload_id: String,
    },
    /// A subresource we do not serve, and what it would need.
    NotImplemented(&'static str, Permission),
}

/// The parts of a signed request an endpoint is parsed from.
pub struct RequestLine<'a> {
    pub method: &'a Method,
    pub bucket: Option<String>,
    pub key: Option<String>,
    /// Decoded query parameters.
    pub query: &'a [(String, String)],
    /// `x-amz-copy-source`, if sent.
    pub copy_source: Option<&'a str>,
}

impl RequestLine<'_> {
    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first unsupported subresource of buckets (or objects) named.
    fn unsupported(&self, of_buckets: bool) -> Option<&'static str> {
        UNSUPPORTED.iter().find(|(name, buckets)| *buckets == of_buckets && self.has(name)).map(|(name, _)| *name)
    }

    fn part_number(&self) -> Result<u32, S3Error> {
        self.param("partNumber").and_then(|n| n.parse().ok()).filter(|n| (1..=MAX_PART_NUMBER).contains(n)).ok_or_else(
            || {
                S3Error::new(Code::InvalidArgument)
                    .with_message("Part number must be an integer between 1 and 10000, inclusive")
            },
        )
    }
}

impl Endpoint {
    /// The operation a signed request asks for; MethodNotAllowed if none.
    pub fn parse(line: RequestLine) -> Result<Endpoint, S3Error> {
        let method = line.method.clone();
        match (line.bucket.clone(), line.key.clone()) {
            (None, _) if method == Method::GET => Ok(Endpoint::ListBuckets),
            (None, _) => Err(Code::MethodNotAllowed.into()),
            (Some(bucket), None) => Ok(Endpoint::Bucket { bucket, op: BucketOp::parse(&method, &line)? }),
            (Some(bucket), Some(key)) => Ok(Endpoint::Object { bucket, key, op: ObjectOp::parse(&method, &line)? }),
        }
    }

    /// The S3 operation's name, as AWS's API calls it.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::ListBuckets => "ListBuckets",
            Endpoint::Bucket { op, .. } => op.name(),
            Endpoint::Object { op, .. } => op.name(),
        }
    }

    /// What the request needs on its bucket; None for what any key may do.
    pub fn permission(&self) -> Option<Permission> {
        match self {
            Endpoint::ListBuckets => None,
            Endpoint::Bucket { op, .. } => op.permission(),
            Endpoint::Object { op, .. } => Some(op.permission()),
        }
    }
}

impl BucketOp {
    fn parse(method: &Method, line: &RequestLine) -> Result<BucketOp, S3Error> {
        use BucketOp as B;
        let has = |name| line.has(name);
        let unsupported = line.unsupported(true);
        Ok(match *method {
            Method::GET if has("cors") => B::GetCors,
            Method::PUT if has("cors") => B::PutCors,
            Method::DELETE if has("cors") => B::DeleteCors,
            Method::GET if has("encryption") => B::GetEncryption,
            Method::PUT if has("encryption") => B::PutEncryption,
            Method::DELETE if has("encryption") => B::DeleteEncryption,
            Method::GET if has("lifecycle") => B::GetLifecycle,
            Method::PUT if has("lifecycle") => B::PutLifecycle,
            Method::DELETE if has("lifecycle") => B::DeleteLifecycle,
            Method::GET if has("tagging") => B::GetTagging,
            Method::PUT if has("tagging") => B::PutTagging,
            Method::DELETE if has("tagging") => B::DeleteTagging,
            Method::GET if has("location") => B::GetLocation,
            Method::GET if has("versioning") => B::GetVersioning,
            Method::PUT if has("versioning") => B::PutVersioning,
            Method::GET if has("object-lock") => B::GetObjectLock,
            Method::PUT if has("object-lock") => B::PutObjectLock,
            Method::GET if has("uploads") => B::ListMultipartUploads,
            Method::GET if has("versions") => B::ListObjectVersions,
            Method::GET if line.param("list-type") == Some("2") => B::ListObjectsV2,
            Method::GET => match unsupported {
                Some(name) => B::NotImplemented(name, Permission::Read),
                None => B::ListObjects,
            },
            Method::PUT => match unsupported {
                Some(name) => B::NotImplemented(name, Permission::Owner),
                None => B::Create,
            },
            Method::HEAD => B::Head,
            Method::DELETE => match unsupported {
                Some(name) => B::NotImplemented(name, Permission::Owner),
                None => B::Delete,
            },
            Method::POST if has("delete") => B::DeleteObjects,
            _ => return Err(Code::MethodNotAllowed.into()),
        })
    }

    pub fn name(&self) -> &'static str {
        use BucketOp as B;
        match self {
            B::Create => "CreateBucket",
            B::Head => "HeadBucket",
            B::Delete => "DeleteBucket",
            B::ListObjects => "ListObjects",
            B::ListObjectsV2 => "ListObjectsV2",
            B::ListObjectVersions => "ListObjectVersions",
            B::ListMultipartUploads => "ListMultipartUploads",
            B::GetLocation => "GetBucketLocation",
            B::GetVersioning => "GetBucketVersioning",
            B::PutVersioning => "PutBucketVersioning",
            B::GetObjectLock => "GetObjectLockConfiguration",
            B::PutObjectLock => "PutObjectLockConfiguration",
            B::GetCors => "GetBucketCors",
            B::PutCors => "PutBucketCors",
            B::DeleteCors => "DeleteBucketCors",
            B::GetEncryption => "GetBucketEncryption",
            B::PutEncryption => "PutBucketEncryption",
            B::DeleteEncryption => "DeleteBucketEncryption",
            B::GetLifecycle => "GetBucketLifecycleConfiguration",
            B::PutLifecycle => "PutBucketLifecycleConfiguration",
            B::DeleteLifecycle => "DeleteBucketLifecycle",
            B::GetTagging => "GetBucketTagging",
            B::PutTagging => "PutBucketTagging",
            B::DeleteTagging => "DeleteBucketTagging",
            B::DeleteObjects => "DeleteObjects",
            B::NotImplemented(..) => "NotImplemented",
        }
    }

    /// Reading needs Read, deleting keys Write, changing the bucket Owner;
    /// any key may create a bucket.
    fn permission(&self) -> Option<Permission> {
        use BucketOp as B;
        Some(match self {
            B::Create => return None,
            B::Head
            | B::ListObjects
            | B::ListObjectsV2
            | B::ListObjectVersions
            | B::ListMultipartUploads
            | B::GetLocation
            | B::GetVersioning
            | B::GetObjectLock
            | B::GetCors
            | B::GetEncryption
            | B::GetLifecycle
            | B::GetTagging => Permission::Read,
            B::DeleteObjects => Permission::Write,
            B::Delete
            | B::PutVersioning
            | B::PutObjectLock
            | B::PutCors
            | B::DeleteCors
            | B::PutEncryption
            | B::DeleteEncryption
            | B::PutLifecycle
            | B::DeleteLifecycle
            | B::PutTagging
            | B::DeleteTagging => Permission::Owner,
            B::NotImplemented(_, needed) => *needed,
        })
    }
}

/// A version id must be one this cluster could have made (or `null`):
/// anything else is refused before it reaches a query.
pub fn check_version_id(version_id: Option<&str>) -> Result<(), S3Error> {
    match version_id {
        Some(id) if !jadfs_meta::api::is_version_id(id) => {
            Err(S3Error::new(Code::InvalidArgument).with_message("Invalid version id specified"))
        }
        _ => Ok(()),
    }
}

impl ObjectOp {
    fn parse(method: &Method, line: &RequestLine) -> Result<ObjectOp, S3Error> {
        use ObjectOp as O;
        let has = |name| line.has(name);
        check_version_id(line.param("versionId"))?;
        let upload_id = line.param("uploadId").map(str::to_string);
        let unsupported = line.unsupported(false);
        Ok(match (method.clone(), upload_id) {
            (Method::GET, None) if has("tagging") => O::GetTagging,
            (Method::GET, None) if has("attributes") => O::GetAttributes,
            (Method::GET, None) if has("retention") => O::GetRetention,
            (Method::PUT, None) if has("retention") => O::PutRetention,
            (Method::GET, None) if has("legal-hold") => O::GetLegalHold,
            (Method::PUT, None) if has("legal-hold") => O::PutLegalHold,
            (Method::PUT, None) if has("tagging") => O::PutTagging,
            (Method::DELETE, None) if has("tagging") => O::DeleteTagging,
            (Method::PUT, Some(upload_id)) => {
                let part_number = line.part_number()?;
                match line.copy_source {
                    Some(source) => O::UploadPartCopy { upload_id, part_number, source: CopySource::parse(source)? },
                    None => O::UploadPart { upload_id, part_number },
                }
            }
            (Method::PUT, None) => match (line.copy_source, unsupported) {
                (Some(source), _) => O::Copy(CopySource::parse(source)?),
                (None, Some(name)) => O::NotImplemented(name, Permission::Write),
                (None, None) => O::Put,
            },
            (Method::GET, Some(upload_id)) => O::ListParts { upload_id },
            (Method::GET | Method::HEAD, None) => match unsupported {
                Some(name) => O::NotImplemented(name, Permission::Read),
                None if *method == Method::GET => O::Get,
                None => O::Head,
            },
            (Method::DELETE, Some(upload_id)) => O::AbortMultipartUpload { upload_id },
            (Method::DELETE, None) => O::Delete,
            (Method::POST, None) if has("uploads") => O::CreateMultipartUpload,
            (Method::POST, Some(upload_id)) => O::CompleteMultipartUpload { upload_id },
            _ => return Err(Code::MethodNotAllowed.into()),
        })
    }

    pub fn name(&self) -> &'static str {
        use ObjectOp as O;
        match self {
            O::Get => "GetObject",
            O::Head => "HeadObject",
            O::Put => "PutObject",
            O::Copy(_) => "CopyObject",
            O::Delete => "DeleteObject",
            O::GetAttributes => "GetObjectAttributes",
            O::GetTagging => "GetObjectTagging",
            O::PutTagging => "PutObjectTagging",
            O::DeleteTagging => "DeleteObjectTagging",
            O::GetRetention => "GetObjectRetention",
            O::PutRetention => "PutObjectRetention",
            O::GetLegalHold => "GetObjectLegalHold",
            O::PutLegalHold => "PutObjectLegalHold",
            O::CreateMultipartUpload => "CreateMultipartUpload",
            O::UploadPart { .. } => "UploadPart",
            O::UploadPartCopy { .. } => "UploadPartCopy",
            O::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            O::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            O::ListParts { .. } => "ListParts",
            O::NotImplemented(..) => "NotImplemented",
        }
    }

    /// Reading needs Read, anything else Write (a copy also needs Read on
    /// its source, checked by the operation).
    fn permission(&self) -> Permission {
        use ObjectOp as O;
        match self {
            O::Get
            | O::Head
            | O::GetAttributes
            | O::GetTagging
            | O::GetRetention
            | O::GetLegalHold
            | O::ListParts { .. } => Permission::Read,
            O::Put
            | O::PutRetention
            | O::PutLegalHold
            | O::Copy(_)
            | O::Delete
            | O::PutTagging
            | O::DeleteTagging
            | O::CreateMultipartUpload
            | O::UploadPart { .. }
            | O::UploadPartCopy { .. }
            | O::CompleteMultipartUpload { .. }
            | O::AbortMultipartUpload { .. } => Permission::Write,
            O::NotImplemented(_, needed) => *needed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, path: &str, query: &str, copy_source: Option<&str>) -> Result<Endpoint, S3Error> {
        let (bucket, key) = crate::target::resolve_target(path, "", None)?;
        let query = crate::sigv4::parse_query(query);
        Endpoint::parse(RequestLine { method: &method, bucket, key, query: &query, copy_source })
    }

    fn op(method: Method, path: &str, query: &str) -> &'static str {
        parse(method, path, query, None).map(|e| e.name()).unwrap_or_else(|e| e.code.as_str())
    }

    #[test]
    fn requests_parse_into_their_operations() {
        use Method as M;
        for (method, path, query, expected) in [
            (M::GET, "/", "", "ListBuckets"),
            (M::PUT, "/", "", "MethodNotAllowed"),
            (M::PUT, "/bkt", "", "CreateBucket"),
            (M::GET, "/bkt", "", "ListObjects"),
            (M::GET, "/bkt", "list-type=2", "ListObjectsV2"),
            (M::GET, "/bkt", "versions", "ListObjectVersions"),
            (M::GET, "/bkt", "uploads", "ListMultipartUploads"),
            (M::GET, "/bkt", "cors", "GetBucketCors"),
            (M::DELETE, "/bkt", "tagging", "DeleteBucketTagging"),
            (M::GET, "/bkt", "acl", "NotImplemented"),
            (M::PUT, "/bkt", "object-lock", "PutObjectLockConfiguration"),
            (M::PUT, "/bkt", "encryption", "PutBucketEncryption"),
            (M::PUT, "/bkt", "website", "NotImplemented"),
            (M::PUT, "/bkt", "versioning", "PutBucketVersioning"),
            (M::GET, "/bkt", "versioning", "GetBucketVersioning"),
            (M::GET, "/bkt/k", "versionId=null", "GetObject"),
            (M::GET, "/bkt/k", "versionId=3HL4kqtJlcpXroDTDmJ", "InvalidArgument"),
            (M::DELETE, "/bkt/k", "versionId=abc", "InvalidArgument"),
            (M::HEAD, "/bkt/k", "versionId=", "InvalidArgument"),
            (M::DELETE, "/bkt", "lifecycle", "DeleteBucketLifecycle"),
            (M::PUT, "/bkt", "lifecycle", "PutBucketLifecycleConfiguration"),
            (M::GET, "/bkt", "website", "NotImplemented"),
            (M::POST, "/bkt", "delete", "DeleteObjects"),
            (M::POST, "/bkt", "", "MethodNotAllowed"),
            (M::PUT, "/bkt/k", "", "PutObject"),
            (M::PUT, "/bkt/k", "retention", "PutObjectRetention"),
            (M::PUT, "/bkt/k", "torrent", "NotImplemented"),
            (M::PUT, "/bkt/k", "uploadId=u&partNumber=3", "UploadPart"),
            (M::PUT, "/bkt/k", "uploadId=u&partNumber=0", "InvalidArgument"),
            (M::PUT, "/bkt/k", "uploadId=u&partNumber=10001", "InvalidArgument"),
            (M::GET, "/bkt/k", "uploadId=u", "ListParts"),
            (M::GET, "/bkt/k", "legal-hold", "GetObjectLegalHold"),
            (M::HEAD, "/bkt/k", "torrent", "NotImplemented"),
            (M::GET, "/bkt/k", "attributes", "GetObjectAttributes"),
            (M::POST, "/bkt/k", "uploads", "CreateMultipartUpload"),
            (M::POST, "/bkt/k", "uploadId=u", "CompleteMultipartUpload"),
            (M::DELETE, "/bkt/k", "uploadId=u", "AbortMultipartUpload"),
            (M::POST, "/bkt/k", "restore", "MethodNotAllowed"),
        ] {
            assert_eq!(op(method.clone(), path, query), expected, "{method} {path}?{query}");
        }
        let copy = parse(Method::PUT, "/bkt/k", "", Some("/src/a%20b")).unwrap();
        let source = CopySource { bucket: "src".into(), key: "a b".into(), version_id: None };
        assert_eq!(copy, Endpoint::Object { bucket: "bkt".into(), key: "k".into(), op: ObjectOp::Copy(source) });
        let part_copy = parse(Method::PUT, "/bkt/k", "uploadId=u&partNumber=2", Some("src/x")).unwrap();
        assert_eq!(part_copy.name(), "UploadPartCopy");
        assert_eq!(parse(Method::PUT, "/bkt/k", "", Some("nokey")).unwrap_err().code, Code::InvalidArgument);
    }

    #[test]
    fn each_operation_needs_its_permission() {
        let needs = |method, path, query| parse(method, path, query, None).unwrap().permission();
        assert_eq!(needs(Method::PUT, "/bkt", ""), None, "any key may create a bucket");
        assert_eq!(needs(Method::GET, "/bkt", "cors"), Some(Permission::Read));
        assert_eq!(needs(Method::PUT, "/bkt", "cors"), Some(Permission::Owner));
        assert_eq!(needs(Method::DELETE, "/bkt", ""), Some(Permission::Owner));
        assert_eq!(needs(Method::POST, "/bkt", "delete"), Some(Permission::Write));
        assert_eq!(needs(Method::HEAD, "/bkt/k", ""), Some(Permission::Read));
        assert_eq!(needs(Method::DELETE, "/bkt/k", ""), Some(Permission::Write));
        assert_eq!(needs(Method::PUT, "/bkt", "policy"), Some(Permission::Owner));
        assert_eq!(needs(Method::GET, "/", ""), None);
    }
}
