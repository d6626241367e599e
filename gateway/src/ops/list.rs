//! ListObjects (V1 and V2) and ListObjectVersions.

use actix_web::HttpResponse;
use base64::Engine;
use jadfs_meta::api::{ListObjectsQuery, ListPage, ListVersionsQuery};

use super::{iso8601, url_encode_key, xml_response, Ctx};
use crate::error::{Code, S3Error};
use crate::xml::XmlWriter;

const MAX_KEYS: usize = 1000;

struct Listing {
    prefix: String,
    delimiter: Option<String>,
    max_keys: usize,
    url_encoding: bool,
}

impl Listing {
    fn from_request(ctx: &Ctx) -> Result<Listing, S3Error> {
        let max_keys = match ctx.param("max-keys") {
            Some(v) => v.parse::<i64>().map_err(|_| {
                S3Error::new(Code::InvalidArgument)
                    .with_message("Provided max-keys not an integer or within integer range")
            })?,
            None => MAX_KEYS as i64,
        };
        if max_keys < 0 {
            return Err(S3Error::new(Code::InvalidArgument).with_message("max-keys cannot be negative"));
        }
        let url_encoding = match ctx.param("encoding-type") {
            None => false,
            Some(t) if t.eq_ignore_ascii_case("url") => true,
            Some(_) => {
                return Err(
                    S3Error::new(Code::InvalidArgument).with_message("Invalid Encoding Method specified in Request")
                )
            }
        };
        Ok(Listing {
            prefix: ctx.param("prefix").unwrap_or_default().to_string(),
            delimiter: ctx.param("delimiter").filter(|d| !d.is_empty()).map(str::to_string),
            max_keys: (max_keys as usize).min(MAX_KEYS),
            url_encoding,
        })
    }

    fn encode(&self, text: &str) -> String {
        if self.url_encoding {
            url_encode_key(text)
        } else {
            text.to_string()
        }
    }

    /// A page of the request's bucket; a missing bucket is NoSuchBucket.
    async fn page(&self, ctx: &Ctx<'_>, start_after: Option<String>) -> Result<ListPage, S3Error> {
        let query = ListObjectsQuery {
            bucket: ctx.bucket_name().to_string(),
            prefix: self.prefix.clone(),
            delimiter: self.delimiter.clone(),
            start_after,
            max_keys: self.max_keys,
        };
        let page = ctx.gw.meta.list_objects(query).await?;
        // An empty page may mean a missing bucket.
        if page.objects.is_empty() && page.common_prefixes.is_empty() {
            ctx.bucket().await?;
        }
        Ok(page)
    }

    /// The elements every listing shares: contents and common prefixes.
    /// `owner`: the bucket owner, shown per entry (V1 always, V2 with fetch-owner).
    fn write_entries(&self, x: &mut XmlWriter, page: &ListPage, entry: &str, owner: Option<&str>) {
        for object in &page.objects {
            x.open(entry);
            x.element("Key", &self.encode(&object.key));
            x.element("LastModified", &iso8601(object.last_modified_ms));
            x.element("ETag", object.etag.quoted());
            x.element("Size", &object.size.to_string());
            x.element("StorageClass", "STANDARD");
            if let Some(owner) = owner {
                write_owner(x, owner);
            }
            x.close(entry);
        }
        self.write_common_prefixes(x, &page.common_prefixes);
    }

    fn write_common_prefixes(&self, x: &mut XmlWriter, prefixes: &[String]) {
        for prefix in prefixes {
            x.open("CommonPrefixes");
            x.element("Prefix", &self.encode(prefix));
            x.close("CommonPrefixes");
        }
    }

    /// `encode_prefix`: V2 URL-encodes the top-level Prefix with
    /// encoding-type=url; V1 (and what clients decode of it) does not.
    fn write_header(&self, x: &mut XmlWriter, bucket: &str, encode_prefix: bool) {
        x.element("Name", bucket);
        x.element("Prefix", &if encode_prefix { self.encode(&self.prefix) } else { self.prefix.clone() });
        if let Some(delimiter) = &self.delimiter {
            x.element("Delimiter", &self.encode(delimiter));
        }
        x.element("MaxKeys", &self.max_keys.to_string());
        if self.url_encoding {
            x.element("EncodingType", "url");
        }
    }
}

fn write_owner(x: &mut XmlWriter, owner: &str) {
    x.open("Owner");
    x.element("ID", owner);
    x.element("DisplayName", owner);
    x.close("Owner");
}

fn encode_token(start_after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(start_after)
}

fn decode_token(token: &str) -> Result<String, S3Error> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .ok_or_else(|| S3Error::new(Code::InvalidArgument).with_message("The continuation token provided is incorrect"))
}

pub async fn list_objects_v2(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let listing = Listing::from_request(ctx)?;
    let token = ctx.param("continuation-token");
    let start_after = match token {
        Some(token) => Some(decode_token(token)?),
        None => ctx.param("start-after").filter(|s| !s.is_empty()).map(str::to_string),
    };
    let page = listing.page(ctx, start_after).await?;
    let mut x = XmlWriter::new();
    x.open("ListBucketResult");
    listing.write_header(&mut x, bucket, true);
    x.element("KeyCount", &(page.objects.len() + page.common_prefixes.len()).to_string());
    x.element("IsTruncated", if page.truncated { "true" } else { "false" });
    if let Some(token) = token {
        x.element("ContinuationToken", token);
    }
    if let Some(start_after) = ctx.param("start-after") {
        x.element("StartAfter", &listing.encode(start_after));
    }
    if page.truncated {
        if let Some(last) = &page.last {
            x.element("NextContinuationToken", &encode_token(last));
        }
    }
    let owner = if ctx.param("fetch-owner") == Some("true") { Some(ctx.bucket().await?.owner.clone()) } else { None };
    listing.write_entries(&mut x, &page, "Contents", owner.as_deref());
    x.close("ListBucketResult");
    Ok(xml_response(x))
}

pub async fn list_objects_v1(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let listing = Listing::from_request(ctx)?;
    let marker = ctx.param("marker").filter(|m| !m.is_empty()).map(str::to_string);
    let page = listing.page(ctx, marker.clone()).await?;
    let mut x = XmlWriter::new();
    x.open("ListBucketResult");
    listing.write_header(&mut x, bucket, false);
    x.element("Marker", &listing.encode(marker.as_deref().unwrap_or_default()));
    x.element("IsTruncated", if page.truncated { "true" } else { "false" });
    if page.truncated && listing.delimiter.is_some() {
        if let Some(last) = &page.last {
            x.element("NextMarker", &listing.encode(last));
        }
    }
    let owner = ctx.bucket().await?.owner.clone();
    listing.write_entries(&mut x, &page, "Contents", Some(&owner));
    x.close("ListBucketResult");
    Ok(xml_response(x))
}

/// ListObjectVersions: every version and delete marker, key by key and
/// newest first, paged by key and version id markers.
pub async fn list_object_versions(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let bucket = ctx.bucket_name();
    let listing = Listing::from_request(ctx)?;
    let key_marker = ctx.param("key-marker").filter(|m| !m.is_empty()).map(str::to_string);
    let version_marker = ctx.param("version-id-marker").filter(|m| !m.is_empty()).map(str::to_string);
    if version_marker.is_some() && key_marker.is_none() {
        return Err(S3Error::new(Code::InvalidArgument)
            .with_message("A version-id marker cannot be specified without a key marker."));
    }
    crate::endpoint::check_version_id(version_marker.as_deref())?;
    let query = ListVersionsQuery {
        bucket: bucket.to_string(),
        prefix: listing.prefix.clone(),
        delimiter: listing.delimiter.clone(),
        key_marker: key_marker.clone(),
        version_marker: version_marker.clone(),
        max_keys: listing.max_keys,
    };
    let page = ctx.gw.meta.list_versions(query).await?;
    let owner = ctx.bucket().await?.owner.clone();
    let mut x = XmlWriter::new();
    x.open("ListVersionsResult");
    listing.write_header(&mut x, bucket, false);
    x.element("KeyMarker", &listing.encode(key_marker.as_deref().unwrap_or_default()));
    x.element("VersionIdMarker", version_marker.as_deref().unwrap_or_default());
    x.element("IsTruncated", if page.truncated { "true" } else { "false" });
    if let Some(next) = &page.next_key_marker {
        x.element("NextKeyMarker", &listing.encode(next));
    }
    if let Some(next) = &page.next_version_marker {
        x.element("NextVersionIdMarker", next);
    }
    for version in &page.versions {
        let entry = if version.delete_marker { "DeleteMarker" } else { "Version" };
        x.open(entry);
        x.element("Key", &listing.encode(&version.key));
        x.element("VersionId", &version.version_id);
        x.element("IsLatest", if version.latest { "true" } else { "false" });
        x.element("LastModified", &iso8601(version.last_modified_ms));
        if !version.delete_marker {
            x.element("ETag", version.etag.quoted());
            x.element("Size", &version.size.to_string());
            x.element("StorageClass", "STANDARD");
        }
        write_owner(&mut x, &owner);
        x.close(entry);
    }
    listing.write_common_prefixes(&mut x, &page.common_prefixes);
    x.close("ListVersionsResult");
    Ok(xml_response(x))
}
