//! Which bucket and key a request addresses (path-style or virtual-host
//! style), and the source a copy names. Both come from the client and are
//! only ever used as metadata, never as file paths.

use percent_encoding::percent_decode_str;

use crate::error::{Code, S3Error};

/// Longest object key S3 allows, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// The bucket and key of a request to `path` on `host` (whose port, if
/// any, is ignored): `bucket.<domain>` names the bucket, else the first
/// path segment does.
pub fn resolve_target(
    path: &str,
    host: &str,
    domain: Option<&str>,
) -> Result<(Option<String>, Option<String>), S3Error> {
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    let vhost_bucket = domain.and_then(|d| host.strip_suffix(d)?.strip_suffix('.')).filter(|b| !b.is_empty());
    let (bucket, raw_key) = match vhost_bucket {
        Some(bucket) => (Some(bucket.to_string()), path.strip_prefix('/').unwrap_or(path)),
        None => {
            let rest = path.strip_prefix('/').unwrap_or(path);
            match rest.split_once('/') {
                Some((bucket, key)) => (Some(decode(bucket)?), key),
                None if rest.is_empty() => (None, ""),
                None => (Some(decode(rest)?), ""),
            }
        }
    };
    let Some(bucket) = bucket else { return Ok((None, None)) };
    validate_bucket_name(&bucket)?;
    if raw_key.is_empty() {
        return Ok((Some(bucket), None));
    }
    let key = decode(raw_key)?;
    validate_key(&key)?;
    Ok((Some(bucket), Some(key)))
}

fn decode(raw: &str) -> Result<String, S3Error> {
    percent_decode_str(raw).decode_utf8().map(|s| s.into_owned()).map_err(|_| Code::InvalidURI.into())
}

/// A key is at most [`MAX_KEY_BYTES`] long.
pub fn validate_key(key: &str) -> Result<(), S3Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Code::KeyTooLongError.into());
    }
    Ok(())
}

/// S3's bucket naming rules.
pub fn validate_bucket_name(name: &str) -> Result<(), S3Error> {
    let bytes = name.as_bytes();
    let valid_chars = bytes.iter().all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ip_like =
        name.split('.').count() == 4 && name.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let ok = (3..=63).contains(&bytes.len())
        && valid_chars
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
        && !name.contains("..")
        && !ip_like
        && !name.starts_with("xn--")
        && !name.ends_with("-s3alias");
    if ok {
        Ok(())
    } else {
        Err(Code::InvalidBucketName.into())
    }
}

/// The object a copy reads: `x-amz-copy-source: [/]bucket/key[?versionId=…]`, URL-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopySource {
    pub bucket: String,
    pub key: String,
    /// The version to copy; None: the current one.
    pub version_id: Option<String>,
}

impl CopySource {
    pub fn parse(value: &str) -> Result<CopySource, S3Error> {
        let (value, version_id) = match value.split_once("?versionId=") {
            Some((source, version_id)) => (source, Some(version_id)),
            None => (value, None),
        };
        crate::endpoint::check_version_id(version_id)?;
        let decoded = percent_decode_str(value)
            .decode_utf8()
            .map_err(|_| S3Error::new(Code::InvalidArgument).with_message("Invalid copy source encoding"))?;
        let decoded = decoded.strip_prefix('/').unwrap_or(&decoded);
        let (bucket, key) = decoded.split_once('/').filter(|(_, key)| !key.is_empty()).ok_or_else(|| {
            S3Error::new(Code::InvalidArgument)
                .with_message("Copy Source must mention the source bucket and key: sourcebucket/sourcekey")
        })?;
        validate_bucket_name(bucket)?;
        validate_key(key)?;
        Ok(CopySource { bucket: bucket.to_string(), key: key.to_string(), version_id: version_id.map(str::to_string) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        for good in ["abc", "my-bucket.2024", "a1b", &"a".repeat(63)] {
            assert!(validate_bucket_name(good).is_ok(), "{good}");
        }
        for bad in ["ab", "ABC", "-abc", "abc-", "a..b", "192.168.1.1", "a_b", &"a".repeat(64), "xn--abc", "..", "a/b"]
        {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_path_and_virtual_host_style() {
        assert_eq!(
            resolve_target("/bucket/dir/%2E%2E/a%20b", "localhost:9000", Some("localhost")).unwrap(),
            (Some("bucket".into()), Some("dir/../a b".into()))
        );
        assert_eq!(
            resolve_target("/k%C3%A9y", "bucket.localhost:9000", Some("localhost")).unwrap(),
            (Some("bucket".into()), Some("kéy".into()))
        );
        assert_eq!(resolve_target("/", "localhost", Some("localhost")).unwrap(), (None, None));
        assert_eq!(resolve_target("/bucket/", "", None).unwrap(), (Some("bucket".into()), None));
        let long = format!("/bucket/{}", "k".repeat(1025));
        assert_eq!(resolve_target(&long, "", None).unwrap_err().code, Code::KeyTooLongError);
        assert_eq!(resolve_target("/Bad_Bucket/k", "", None).unwrap_err().code, Code::InvalidBucketName);
    }

    #[test]
    fn copy_sources() {
        let source = |bucket: &str, key: &str| CopySource { bucket: bucket.into(), key: key.into(), version_id: None };
        assert_eq!(CopySource::parse("/src/a%20b/c").unwrap(), source("src", "a b/c"));
        let versioned = CopySource { version_id: Some("000000000000001f".into()), ..source("src", "k") };
        assert_eq!(CopySource::parse("src/k?versionId=000000000000001f").unwrap(), versioned);
        assert_eq!(CopySource::parse("src/k?versionId=3HL4kqtJlcpXroDTDmJ").unwrap_err().code, Code::InvalidArgument);
        assert!(CopySource::parse("src").is_err());
        assert!(CopySource::parse("/src/").is_err());
    }
}
