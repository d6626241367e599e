//! Who a request is and what it may do: SigV4 verification against the
//! key's secret (root keys from the configuration, others from the meta
//! cluster, where their secrets are sealed; cached briefly), and
//! permissions on buckets, which name keys by id.

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

/// Who signed a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The key's id: what bucket owners and grants name (a root key's is
    /// its access key).
    pub id: String,
    /// Root keys come from the configuration and may do anything.
    pub root: bool,
}

/// A key able to sign: its secret, and who it is.
#[derive(Clone)]
pub struct SigningKey {
    pub secret: String,
    pub principal: Principal,
}

/// Access key → (key, when looked up); None remembers an unknown key.
#[derive(Default)]
pub struct KeyCache(Mutex<HashMap<String, (Option<SigningKey>, Instant)>>);

impl Gateway {
    /// Whether `access_key` is one of the configuration's root keys.
    pub fn is_root(&self, access_key: &str) -> bool {
        self.config.credentials.contains_key(access_key)
    }

    /// The key behind an access key id: a root key, or one kept (sealed) in
    /// the meta cluster.
    pub async fn signing_key(&self, access_key: &str) -> Result<Option<SigningKey>, S3Error> {
        if let Some(secret) = self.config.credentials.get(access_key) {
            let principal = Principal { id: access_key.to_string(), root: true };
            return Ok(Some(SigningKey { secret: secret.clone(), principal }));
        }
        if let Some((key, at)) = self.keys.0.lock().unwrap_or_else(|e| e.into_inner()).get(access_key) {
            if at.elapsed() < KEY_CACHE_TTL {
                return Ok(key.clone());
            }
        }
        let key = match self.meta.get_access_key(access_key).await? {
            Some(stored) => {
                let secrets_key = self.config.cluster_key.secrets_key();
                let secret = jadfs_common::sealed::unseal(secrets_key, access_key, &stored.secret_key)
                    .map_err(|e| S3Error::internal(format_args!("access key {access_key}: {e}")))?;
                Some(SigningKey { secret, principal: Principal { id: stored.id, root: false } })
            }
            None => None,
        };
        let mut keys = self.keys.0.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= KEY_CACHE_MAX {
            keys.clear();
        }
        keys.insert(access_key.to_string(), (key.clone(), Instant::now()));
        Ok(key)
    }

    /// Drops a key from the cache, so a deletion takes effect here at once.
    pub fn forget_key(&self, access_key: &str) {
        self.keys.0.lock().unwrap_or_else(|e| e.into_inner()).remove(access_key);
    }

    /// Checks that `principal` may act on `bucket` with `needed` (root
    /// keys may do anything); NoSuchBucket for a missing bucket.
    pub async fn authorize(&self, principal: &Principal, bucket: &str, needed: Permission) -> Result<(), S3Error> {
        if principal.root {
            return Ok(());
        }
        let info = self.meta.get_bucket(bucket).await?.ok_or(Code::NoSuchBucket)?;
        permits(principal, &info, needed)
    }

    /// Verifies a request's signature with the secret of the key it claims,
    /// and says who that is.
    pub async fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(sigv4::Verified, Principal), S3Error> {
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
        let key = match sigv4::access_key_of(&parts) {
            Some(access_key) => self.signing_key(&access_key).await?,
            None => None,
        };
        let verified =
            sigv4::verify(&parts, Utc::now(), &self.config.region, |_| key.as_ref().map(|k| k.secret.clone()))?;
        let principal = key.map(|k| k.principal).ok_or(Code::InvalidAccessKeyId)?;
        Ok((verified, principal))
    }
}

/// AccessDenied unless `principal` has `needed` on the bucket.
pub fn permits(principal: &Principal, bucket: &BucketInfo, needed: Permission) -> Result<(), S3Error> {
    if principal.root || bucket.permission_of(&principal.id).is_some_and(|p| p >= needed) {
        Ok(())
    } else {
        Err(Code::AccessDenied.into())
    }
}
