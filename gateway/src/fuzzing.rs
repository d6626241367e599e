//! Entry points for the fuzz targets (`fuzz/`): the parsers that take what
//! a client sends, reachable without a running gateway. Built only with the
//! `fuzzing` feature.

pub use crate::body::{BodyHeaders, ObjectBody, RequestBody};
pub use crate::endpoint::{Endpoint, RequestLine};
pub use crate::sigv4::test_signer;
pub use crate::target::{resolve_target, CopySource};

use crate::error::S3Error;

/// A `Range` header against an object of `size` bytes.
pub fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>, S3Error> {
    crate::ops::object::parse_range(value, size)
}

/// An HTTP date (`If-Modified-Since` and the others).
pub fn parse_http_date(value: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    crate::ops::parse_http_date(value)
}

/// A lifecycle configuration (`PUT ?lifecycle`), checked as S3 checks it.
pub fn parse_lifecycle(body: &[u8]) -> Result<Vec<jadfs_meta::api::LifecycleRule>, S3Error> {
    crate::ops::lifecycle::parse(body)
}

/// A browser form's policy checked against its fields, as POST Object does.
pub fn check_post_policy(policy: &serde_json::Value, fields: &[(String, String)], bucket: &str) -> bool {
    use crate::ops::post_object::{check_policy, Field, Form};
    let fields = fields.iter().map(|(name, value)| Field { name: name.clone(), value: value.clone() }).collect();
    check_policy(policy, &Form { fields, filename: None }, bucket, chrono::Utc::now()).is_ok()
}
