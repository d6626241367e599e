//! The one S3 error type: an AWS error code, its HTTP status and a message,
//! rendered as S3's XML error body in one place. The table below is the one
//! place AWS's codes, statuses and default messages are written.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::xml::XmlWriter;

macro_rules! s3_errors {
    ($($code:ident => ($status:ident, $message:literal);)*) => {
        /// An AWS S3 error code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Code {
            $($code,)*
        }

        impl Code {
            /// The code as AWS spells it, e.g. `NoSuchKey`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code),)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(Code::$code => StatusCode::$status,)*
                }
            }

            /// AWS's default message for the code.
            pub fn message(self) -> &'static str {
                match self {
                    $(Code::$code => $message,)*
                }
            }
        }
    };
}

s3_errors! {
    AccessForbidden => (FORBIDDEN, "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.");
    AccessDenied => (FORBIDDEN, "Access Denied");
    AuthorizationHeaderMalformed => (BAD_REQUEST, "The authorization header is malformed.");
    AuthorizationQueryParametersError => (BAD_REQUEST, "Error parsing the query parameters of the authorization.");
    BadDigest => (BAD_REQUEST, "The Content-MD5 or checksum you specified did not match what we received.");
    BucketAlreadyExists => (CONFLICT, "The requested bucket name is not available.");
    BucketAlreadyOwnedByYou => (CONFLICT, "Your previous request to create the named bucket succeeded and you already own it.");
    BucketNotEmpty => (CONFLICT, "The bucket you tried to delete is not empty.");
    ConditionalRequestConflict => (CONFLICT, "A conflicting operation occurred. If using PutObject you can retry the request.");
    EntityTooLarge => (BAD_REQUEST, "Your proposed upload exceeds the maximum allowed object size.");
    EntityTooSmall => (BAD_REQUEST, "Your proposed upload is smaller than the minimum allowed object size.");
    IncompleteBody => (BAD_REQUEST, "You did not provide the number of bytes specified by the Content-Length HTTP header.");
    InsufficientStorage => (INSUFFICIENT_STORAGE, "Storage backend has reached its minimum free drive threshold. Please delete a few objects to proceed.");
    InternalError => (INTERNAL_SERVER_ERROR, "We encountered an internal error. Please try again.");
    InvalidAccessKeyId => (FORBIDDEN, "The AWS Access Key Id you provided does not exist in our records.");
    InvalidBucketState => (CONFLICT, "The request is not valid with the current state of the bucket.");
    InvalidArgument => (BAD_REQUEST, "Invalid Argument");
    InvalidBucketName => (BAD_REQUEST, "The specified bucket is not valid.");
    InvalidDigest => (BAD_REQUEST, "The Content-MD5 you specified is not valid.");
    InvalidPolicyDocument => (BAD_REQUEST, "The content of the form does not meet the conditions specified in the policy document.");
    InvalidPart => (BAD_REQUEST, "One or more of the specified parts could not be found.");
    InvalidPartOrder => (BAD_REQUEST, "The list of parts was not in ascending order.");
    InvalidRange => (RANGE_NOT_SATISFIABLE, "The requested range is not satisfiable");
    InvalidRequest => (BAD_REQUEST, "Invalid Request");
    InvalidRetentionPeriod => (BAD_REQUEST, "The retention period is not valid.");
    InvalidStorageClass => (BAD_REQUEST, "The storage class you specified is not valid.");
    InvalidTag => (BAD_REQUEST, "The tag provided was not a valid tag.");
    InvalidURI => (BAD_REQUEST, "Couldn't parse the specified URI.");
    KeyTooLongError => (BAD_REQUEST, "Your key is too long.");
    MalformedXML => (BAD_REQUEST, "The XML you provided was not well-formed or did not validate against our published schema.");
    MalformedPOSTRequest => (BAD_REQUEST, "The body of your POST request is not well-formed multipart/form-data.");
    MetadataTooLarge => (BAD_REQUEST, "Your metadata headers exceed the maximum allowed metadata size.");
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "The specified method is not allowed against this resource.");
    MissingContentLength => (LENGTH_REQUIRED, "You must provide the Content-Length HTTP header.");
    NoSuchBucket => (NOT_FOUND, "The specified bucket does not exist.");
    NoSuchCORSConfiguration => (NOT_FOUND, "The CORS configuration does not exist");
    ServerSideEncryptionConfigurationNotFoundError => (NOT_FOUND, "The server side encryption configuration was not found");
    NoSuchKey => (NOT_FOUND, "The specified key does not exist.");
    NoSuchLifecycleConfiguration => (NOT_FOUND, "The lifecycle configuration does not exist");
    NoSuchTagSet => (NOT_FOUND, "The TagSet does not exist");
    NoSuchUpload => (NOT_FOUND, "The specified multipart upload does not exist.");
    NoSuchObjectLockConfiguration => (NOT_FOUND, "The specified object does not have a ObjectLock configuration");
    ObjectLockConfigurationNotFoundError => (NOT_FOUND, "Object Lock configuration does not exist for this bucket");
    NoSuchVersion => (NOT_FOUND, "The specified version does not exist.");
    NotImplemented => (NOT_IMPLEMENTED, "A header or query you provided implies functionality that is not implemented.");
    NotModified => (NOT_MODIFIED, "Not Modified");
    PreconditionFailed => (PRECONDITION_FAILED, "At least one of the preconditions you specified did not hold.");
    RequestTimeout => (BAD_REQUEST, "Your socket connection to the server was not read from or written to within the timeout period.");
    RequestTimeTooSkewed => (FORBIDDEN, "The difference between the request time and the server's time is too large.");
    ServiceUnavailable => (SERVICE_UNAVAILABLE, "Please reduce your request rate.");
    SlowDown => (SERVICE_UNAVAILABLE, "Please reduce your request rate.");
    SignatureDoesNotMatch => (FORBIDDEN, "The request signature we calculated does not match the signature you provided. Check your key and signing method.");
    XAmzContentSHA256Mismatch => (BAD_REQUEST, "The provided 'x-amz-content-sha256' header does not match what was computed.");
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as an S3 client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub code: Code,
    pub message: String,
    /// The region the request should have been signed for, shown as AWS
    /// does (clients such as s3cmd read it and sign again).
    region: Option<String>,
    /// What went wrong inside, for the log only: never shown to the client.
    cause: Option<String>,
    /// Headers the answer carries (a delete marker's, on a read of one).
    headers: Vec<(&'static str, String)>,
}

impl From<Code> for S3Error {
    fn from(code: Code) -> S3Error {
        S3Error::new(code)
    }
}

impl S3Error {
    /// The error with AWS's default message.
    pub fn new(code: Code) -> S3Error {
        S3Error { code, message: code.message().to_string(), region: None, cause: None, headers: Vec::new() }
    }

    /// The same error with a more specific message.
    pub fn with_message(mut self, message: impl Into<String>) -> S3Error {
        self.message = message.into();
        self
    }

    /// The same error naming the region the request should have used.
    pub fn with_region(mut self, region: &str) -> S3Error {
        self.region = Some(region.to_string());
        self
    }

    /// The same error answered with a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> S3Error {
        self.headers.push((name, value.into()));
        self
    }

    /// The same error with what caused it inside, logged when it is answered.
    pub fn caused_by(mut self, cause: impl std::fmt::Display) -> S3Error {
        self.cause = Some(cause.to_string());
        self
    }

    /// An unexpected failure: InternalError, with the cause logged (when
    /// the error is answered, not if a caller recovers) and never shown.
    pub fn internal(cause: impl std::fmt::Display) -> S3Error {
        S3Error::new(Code::InternalError).caused_by(cause)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// Renders the error as S3 does: XML body with code, message, resource
    /// and request id (no body for HEAD requests and 304s). Logs its cause,
    /// if it has one.
    pub fn to_response(&self, resource: &str, request_id: &str, head: bool) -> HttpResponse {
        if let Some(cause) = &self.cause {
            if self.status().is_server_error() && self.code != Code::ServiceUnavailable {
                tracing::error!(code = self.code.as_str(), %cause, "internal error");
            } else {
                tracing::warn!(code = self.code.as_str(), %cause, "request failed");
            }
        }
        let mut builder = HttpResponse::build(self.status());
        builder.insert_header(("x-amz-request-id", request_id.to_string()));
        for (name, value) in &self.headers {
            builder.insert_header((*name, value.as_str()));
        }
        if head || self.status() == StatusCode::NOT_MODIFIED {
            return builder.finish();
        }
        let mut xml = XmlWriter::without_namespace();
        xml.open("Error");
        xml.element("Code", self.code.as_str());
        xml.element("Message", &self.message);
        if let Some(region) = &self.region {
            xml.element("Region", region);
        }
        xml.element("Resource", resource);
        xml.element("RequestId", request_id);
        xml.close("Error");
        builder.content_type("application/xml").body(xml.finish())
    }
}

impl From<jadfs_meta::MetaError> for S3Error {
    fn from(e: jadfs_meta::MetaError) -> S3Error {
        use jadfs_meta::MetaError as M;
        match e {
            M::NoSuchBucket => Code::NoSuchBucket.into(),
            M::NoSuchKey => Code::NoSuchKey.into(),
            M::NoSuchVersion => Code::NoSuchVersion.into(),
            M::ObjectLocked(why) => S3Error::new(Code::AccessDenied)
                .with_message(format!("Access Denied because object protected by object lock: {why}.")),
            M::NoObjectLock => {
                S3Error::new(Code::InvalidRequest).with_message("Bucket is missing Object Lock Configuration")
            }
            M::InvalidBucketState(why) => S3Error::new(Code::InvalidBucketState).with_message(why),
            M::BucketNotEmpty => Code::BucketNotEmpty.into(),
            M::BucketAlreadyOwnedByYou => Code::BucketAlreadyOwnedByYou.into(),
            M::BucketAlreadyExists => Code::BucketAlreadyExists.into(),
            M::NoSuchUpload => Code::NoSuchUpload.into(),
            M::NoSuchAccessKey => S3Error::new(Code::InvalidArgument).with_message("No such access key."),
            M::AccessKeyExists => S3Error::new(Code::InvalidArgument).with_message("That access key already exists."),
            M::InvalidPart(message) => S3Error::new(Code::InvalidPart).with_message(message),
            M::InvalidPartOrder => Code::InvalidPartOrder.into(),
            M::PreconditionFailed => Code::PreconditionFailed.into(),
            M::BadDigest(message) => S3Error::new(Code::BadDigest).with_message(message),
            M::EntityTooSmall(_) => Code::EntityTooSmall.into(),
            M::WrongCustomerKey => S3Error::new(Code::InvalidArgument)
                .with_message("The multipart upload was started with a customer key; its completion must bring it."),
            M::ChunkGone(_) => S3Error::new(Code::ServiceUnavailable)
                .with_message("The data was collected while this write ran; please retry.")
                .caused_by(e),
            M::DiskFull(_) => S3Error::new(Code::InsufficientStorage).caused_by(e),
            M::ForwardToLeader { .. } | M::Unavailable(_) => {
                S3Error::new(Code::ServiceUnavailable).caused_by(format_args!("meta service unavailable: {e}"))
            }
            M::Internal(_) | M::Unauthorized(_) => S3Error::internal(e),
        }
    }
}

impl From<crate::xml::Malformed> for S3Error {
    fn from(_: crate::xml::Malformed) -> S3Error {
        Code::MalformedXML.into()
    }
}
