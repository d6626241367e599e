//! Who a request is and what it may do: SigV4 verification against the
//! key's secret (root keys from the configuration, others from the meta
//! cluster, cached briefly), and permissions on buckets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use actix_web::http::{Method, Uri};
use chrono::Utc;
use jadfs_meta::api::{BucketInfo, Permission};

use crate::error::{Code, S3Error};
use crate::sigv4::{self, RequestParts};
use crate::Gateway;

/// How long a looked-up key is trusted: a deleted key stops working on
/// other gateways within this time (at once on the gateway that deleted it).
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
const KEY_CACHE_MAX: usize = 10_000;

/// Access key → (secret, when looked up); None remembers an unknown key.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<String, (Option<String>, Instant)>>);

impl Gateway {
    /// Root keys come from the configuration and may do anything.
    pub fn is_root(&self, access_key: &str) -> bool {
        self.config.credentials.contains_key(access_key)
    }

    /// The secret of an access key: a root key, or one kept in the meta cluster.
    pub async fn secret_of(&self, access_key: &str) -> Result<Option<String>, S3Error> {
        if let Some(secret) = self.config.credentials.get(access_key) {
            return Ok(Some(secret.clone()));
        }
        if let Some((secret, at)) = self.keys.0.lock().unwrap_or_else(|e| e.into_inner()).get(access_key) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(secret.clone());
            }
        }
        let secret = self.meta.get_access_key(access_key).await?.map(|k| k.secret_key);
        let mut keys = self.keys.0.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= KEY_CACHE_MAX {
            keys.clear();
        }
        keys.insert(access_key.to_string(), (secret.clone(), Instant::now()));
        Ok(secret)
    }

    /// Drops a key from the cache, so a deletion takes effect here at once.
    pub fn forget_key(&self, access_key: &str) {
        self.keys.0.lock().unwrap_or_else(|e| e.into_inner()).remove(access_key);
    }

    /// Checks that `access_key` may act on `bucket` with `needed` (root
    /// keys may do anything); NoSuchBucket for a missing bucket.
    pub async fn authorize(&self, access_key: &str, bucket: &str, needed: Permission) -> Result<(), S3Error> {
        if self.is_root(access_key) {
            return Ok(());
        }
        let info = self.meta.get_bucket(bucket).await?.ok_or(Code::NoSuchBucket)?;
        self.permits(access_key, &info, needed)
    }

    /// AccessDenied unless `access_key` has `needed` on the bucket.
    pub fn permits(&self, access_key: &str, bucket: &BucketInfo, needed: Permission) -> Result<(), S3Error> {
        if self.is_root(access_key) || bucket.permission_of(access_key).is_some_and(|p| p >= needed) {
            Ok(())
        } else {
            Err(Code::AccessDenied.into())
        }
    }

    /// Verifies a request's signature with the secret of the key it claims.
    pub async fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<sigv4::Verified, S3Error> {
        let parts = RequestParts {
            method: method.as_str(),
            raw_path: uri.path(),
            raw_query: uri.query().unwrap_or(""),
            headers: headers
                .iter()
                .map(|(name, value)| {
                    (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned())
                })
                .collect(),
        };
        let secret = match sigv4::access_key_of(&parts) {
            Some(access_key) => self.secret_of(&access_key).await?,
            None => None,
        };
        sigv4::verify(&parts, Utc::now(), |_| secret.clone())
    }
}
