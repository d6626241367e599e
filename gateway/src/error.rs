//! The one S3 error type: an AWS error code, its HTTP status and a message,
//! rendered as S3's XML error body in one place.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::xml::XmlWriter;

/// An error as an S3 client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
}

macro_rules! s3_errors {
    ($($name:ident => ($code:literal, $status:ident, $message:literal);)*) => {
        impl S3Error {
            $(
                #[allow(non_snake_case)]
                pub fn $name() -> S3Error {
                    S3Error { code: $code, status: StatusCode::$status, message: $message.to_string() }
                }
            )*
        }
    };
}

s3_errors! {
    AccessForbidden => ("AccessForbidden", FORBIDDEN, "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.");
    AccessDenied => ("AccessDenied", FORBIDDEN, "Access Denied");
    BadDigest => ("BadDigest", BAD_REQUEST, "The Content-MD5 or checksum you specified did not match what we received.");
    BucketAlreadyExists => ("BucketAlreadyExists", CONFLICT, "The requested bucket name is not available.");
    BucketAlreadyOwnedByYou => ("BucketAlreadyOwnedByYou", CONFLICT, "Your previous request to create the named bucket succeeded and you already own it.");
    BucketNotEmpty => ("BucketNotEmpty", CONFLICT, "The bucket you tried to delete is not empty.");
    ConditionalRequestConflict => ("ConditionalRequestConflict", CONFLICT, "A conflicting operation occurred. If using PutObject you can retry the request.");
    EntityTooLarge => ("EntityTooLarge", BAD_REQUEST, "Your proposed upload exceeds the maximum allowed object size.");
    EntityTooSmall => ("EntityTooSmall", BAD_REQUEST, "Your proposed upload is smaller than the minimum allowed object size.");
    IncompleteBody => ("IncompleteBody", BAD_REQUEST, "You did not provide the number of bytes specified by the Content-Length HTTP header.");
    InternalError => ("InternalError", INTERNAL_SERVER_ERROR, "We encountered an internal error. Please try again.");
    InvalidAccessKeyId => ("InvalidAccessKeyId", FORBIDDEN, "The AWS Access Key Id you provided does not exist in our records.");
    InvalidArgument => ("InvalidArgument", BAD_REQUEST, "Invalid Argument");
    InvalidBucketName => ("InvalidBucketName", BAD_REQUEST, "The specified bucket is not valid.");
    InvalidDigest => ("InvalidDigest", BAD_REQUEST, "The Content-MD5 you specified is not valid.");
    InvalidPolicyDocument => ("InvalidPolicyDocument", BAD_REQUEST, "The content of the form does not meet the conditions specified in the policy document.");
    InvalidPart => ("InvalidPart", BAD_REQUEST, "One or more of the specified parts could not be found.");
    InvalidPartOrder => ("InvalidPartOrder", BAD_REQUEST, "The list of parts was not in ascending order.");
    InvalidRange => ("InvalidRange", RANGE_NOT_SATISFIABLE, "The requested range is not satisfiable");
    InvalidRequest => ("InvalidRequest", BAD_REQUEST, "Invalid Request");
    InvalidTag => ("InvalidTag", BAD_REQUEST, "The tag provided was not a valid tag.");
    InvalidURI => ("InvalidURI", BAD_REQUEST, "Couldn't parse the specified URI.");
    KeyTooLongError => ("KeyTooLongError", BAD_REQUEST, "Your key is too long.");
    MalformedXML => ("MalformedXML", BAD_REQUEST, "The XML you provided was not well-formed or did not validate against our published schema.");
    MalformedPOSTRequest => ("MalformedPOSTRequest", BAD_REQUEST, "The body of your POST request is not well-formed multipart/form-data.");
    MetadataTooLarge => ("MetadataTooLarge", BAD_REQUEST, "Your metadata headers exceed the maximum allowed metadata size.");
    MethodNotAllowed => ("MethodNotAllowed", METHOD_NOT_ALLOWED, "The specified method is not allowed against this resource.");
    MissingContentLength => ("MissingContentLength", LENGTH_REQUIRED, "You must provide the Content-Length HTTP header.");
    NoSuchBucket => ("NoSuchBucket", NOT_FOUND, "The specified bucket does not exist.");
    NoSuchCORSConfiguration => ("NoSuchCORSConfiguration", NOT_FOUND, "The CORS configuration does not exist");
    NoSuchKey => ("NoSuchKey", NOT_FOUND, "The specified key does not exist.");
    NoSuchTagSet => ("NoSuchTagSet", NOT_FOUND, "The TagSet does not exist");
    NoSuchUpload => ("NoSuchUpload", NOT_FOUND, "The specified multipart upload does not exist.");
    NotImplemented => ("NotImplemented", NOT_IMPLEMENTED, "A header or query you provided implies functionality that is not implemented.");
    NotModified => ("NotModified", NOT_MODIFIED, "Not Modified");
    PreconditionFailed => ("PreconditionFailed", PRECONDITION_FAILED, "At least one of the preconditions you specified did not hold.");
    RequestTimeTooSkewed => ("RequestTimeTooSkewed", FORBIDDEN, "The difference between the request time and the server's time is too large.");
    ServiceUnavailable => ("ServiceUnavailable", SERVICE_UNAVAILABLE, "Please reduce your request rate.");
    SignatureDoesNotMatch => ("SignatureDoesNotMatch", FORBIDDEN, "The request signature we calculated does not match the signature you provided. Check your key and signing method.");
    XAmzContentSHA256Mismatch => ("XAmzContentSHA256Mismatch", BAD_REQUEST, "The provided 'x-amz-content-sha256' header does not match what was computed.");
}

impl S3Error {
    /// The same error with a more specific message.
    pub fn with_message(mut self, message: impl Into<String>) -> S3Error {
        self.message = message.into();
        self
    }

    /// An unexpected failure: the cause is logged, never shown to the client.
    pub fn internal(cause: impl std::fmt::Display) -> S3Error {
        tracing::error!(%cause, "internal error");
        S3Error::InternalError()
    }

    /// Renders the error as S3 does: XML body with code, message, resource
    /// and request id (no body for HEAD requests and 304s).
    pub fn to_response(&self, resource: &str, request_id: &str, head: bool) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        builder.insert_header(("x-amz-request-id", request_id.to_string()));
        if head || self.status == StatusCode::NOT_MODIFIED {
            return builder.finish();
        }
        let mut xml = XmlWriter::without_namespace();
        xml.open("Error");
        xml.element("Code", self.code);
        xml.element("Message", &self.message);
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
            M::NoSuchBucket => S3Error::NoSuchBucket(),
            M::NoSuchKey => S3Error::NoSuchKey(),
            M::BucketNotEmpty => S3Error::BucketNotEmpty(),
            M::BucketAlreadyOwnedByYou => S3Error::BucketAlreadyOwnedByYou(),
            M::BucketAlreadyExists => S3Error::BucketAlreadyExists(),
            M::NoSuchUpload => S3Error::NoSuchUpload(),
            M::InvalidPart(message) => S3Error::InvalidPart().with_message(message),
            M::InvalidPartOrder => S3Error::InvalidPartOrder(),
            M::PreconditionFailed => S3Error::PreconditionFailed(),
            M::BadDigest(message) => S3Error::BadDigest().with_message(message),
            M::EntityTooSmall(_) => S3Error::EntityTooSmall(),
            M::ForwardToLeader { .. } | M::Unavailable(_) => {
                tracing::warn!(error = %e, "meta service unavailable");
                S3Error::ServiceUnavailable()
            }
            M::Internal(_) => S3Error::internal(e),
        }
    }
}
