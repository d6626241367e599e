//! Object Lock as S3 speaks it: the bucket's configuration, a version's
//! retention and legal hold (as subresources and as `x-amz-object-lock-*`
//! headers of a write), and the bypass of governance retention. Every rule
//! is decided by the state machine (`meta/src/state/apply/lock.rs`); this
//! parses, answers, and says who may bypass.

use actix_web::HttpResponse;
use jadfs_common::{LockMode, ObjectManifest, Retention};
use jadfs_meta::api::{DefaultRetention, LockPeriod, ObjectLockConfig, Permission};
use jadfs_meta::Command;

use super::{iso8601, xml_response, Ctx};
use crate::body::RequestBody;
use crate::error::{Code, S3Error};
use crate::xml::{self, XmlWriter, MAX_XML_BODY};

/// The lock a write asks for in its headers (or a form's fields): a
/// retention (mode and date, both or neither, the date in the future) and
/// a legal hold.
pub fn lock_from<'h>(
    header: impl Fn(&str) -> Option<&'h str>,
    now_ms: i64,
) -> Result<(Option<Retention>, bool), S3Error> {
    let invalid = |message: &str| S3Error::new(Code::InvalidArgument).with_message(message);
    let retention = match (header("x-amz-object-lock-mode"), header("x-amz-object-lock-retain-until-date")) {
        (None, None) => None,
        (Some(mode), Some(until)) => {
            let mode = LockMode::parse(mode).ok_or_else(|| invalid("Unknown wormMode directive."))?;
            let until_ms =
                parse_date(until).ok_or_else(|| invalid("The retain until date must be in ISO 8601 format"))?;
            if until_ms <= now_ms {
                return Err(invalid("The retain until date must be in the future!"));
            }
            Some(Retention { mode, until_ms })
        }
        _ => {
            return Err(invalid("x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"))
        }
    };
    let legal_hold = match header("x-amz-object-lock-legal-hold") {
        None | Some("OFF") => false,
        Some("ON") => true,
        Some(_) => return Err(invalid("Legal Hold must be either of 'ON' or 'OFF'")),
    };
    Ok((retention, legal_hold))
}

fn parse_date(value: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(value.trim()).ok().map(|t| t.timestamp_millis())
}

/// AWS asks writes that lock a version to prove their bytes: Content-MD5
/// or a flexible checksum.
pub fn require_integrity(ctx: &Ctx) -> Result<(), S3Error> {
    let checksummed = ctx.header("content-md5").is_some()
        || ctx.req.headers().keys().any(|name| name.as_str().starts_with("x-amz-checksum-"))
        || ctx.header("x-amz-trailer").is_some_and(|t| t.starts_with("x-amz-checksum-"))
        || ctx.header("x-amz-sdk-checksum-algorithm").is_some();
    if checksummed {
        Ok(())
    } else {
        Err(S3Error::new(Code::InvalidRequest)
            .with_message("Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"))
    }
}

/// Whether the request asks to bypass governance retention and its key may:
/// the bucket's owner (or root) only.
pub async fn bypass_governance(ctx: &Ctx<'_>) -> Result<bool, S3Error> {
    if !ctx.header("x-amz-bypass-governance-retention").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    Ok(ctx.authorize(Permission::Owner).await.is_ok())
}

/// The `x-amz-object-lock-*` headers of a read.
pub fn lock_headers(manifest: &ObjectManifest) -> Vec<(&'static str, String)> {
    let mut headers = Vec::new();
    if let Some(r) = &manifest.retention {
        headers.push(("x-amz-object-lock-mode", r.mode.as_str().to_string()));
        headers.push(("x-amz-object-lock-retain-until-date", iso8601(r.until_ms)));
    }
    if manifest.legal_hold {
        headers.push(("x-amz-object-lock-legal-hold", "ON".to_string()));
    }
    headers
}

pub async fn get_object_lock_configuration(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let config = ctx.bucket().await?.object_lock.clone().ok_or(Code::ObjectLockConfigurationNotFoundError)?;
    let mut x = XmlWriter::new();
    x.open("ObjectLockConfiguration");
    x.element("ObjectLockEnabled", "Enabled");
    if let Some(default) = &config.default_retention {
        x.open("Rule");
        x.open("DefaultRetention");
        x.element("Mode", default.mode.as_str());
        match default.period {
            LockPeriod::Days(days) => x.element("Days", &days.to_string()),
            LockPeriod::Years(years) => x.element("Years", &years.to_string()),
        }
        x.close("DefaultRetention");
        x.close("Rule");
    }
    x.close("ObjectLockConfiguration");
    Ok(xml_response(x))
}

pub async fn put_object_lock_configuration(ctx: &Ctx<'_>, body: RequestBody) -> Result<HttpResponse, S3Error> {
    require_integrity(ctx)?;
    let body = ctx.small_body(body, MAX_XML_BODY).await?;
    let root = xml::parse(&body, 16)?;
    let malformed = || S3Error::from(Code::MalformedXML);
    if root.name != "ObjectLockConfiguration"
        || root.child("ObjectLockEnabled").map(|e| e.text.as_str()) != Some("Enabled")
    {
        return Err(malformed());
    }
    let default_retention = match root.child("Rule") {
        None => None,
        Some(rule) => {
            let retention = rule.child("DefaultRetention").ok_or_else(malformed)?;
            let mode = retention.child("Mode").and_then(|m| LockMode::parse(&m.text)).ok_or_else(malformed)?;
            let number = |name: &str| -> Result<Option<u32>, S3Error> {
                match retention.child(name) {
                    None => Ok(None),
                    Some(e) => match e.text.trim().parse::<u32>() {
                        Ok(n) if n > 0 => Ok(Some(n)),
                        _ => Err(S3Error::new(Code::InvalidRetentionPeriod)
                            .with_message("Default retention period must be a positive integer value.")),
                    },
                }
            };
            let period = match (number("Days")?, number("Years")?) {
                (Some(days), None) => LockPeriod::Days(days),
                (None, Some(years)) => LockPeriod::Years(years),
                _ => return Err(malformed()),
            };
            Some(DefaultRetention { mode, period })
        }
    };
    let config = ObjectLockConfig { default_retention };
    ctx.gw.meta.write(&Command::SetObjectLock { bucket: ctx.bucket_name().into(), config }).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn get_object_retention(ctx: &Ctx<'_>, key: &str) -> Result<HttpResponse, S3Error> {
    ctx.bucket().await?.object_lock.as_ref().ok_or_else(no_lock)?;
    let object = ctx.object(key).await?;
    let retention = object.manifest.retention.ok_or(Code::NoSuchObjectLockConfiguration)?;
    let mut x = XmlWriter::new();
    x.open("Retention");
    x.element("Mode", retention.mode.as_str());
    x.element("RetainUntilDate", &iso8601(retention.until_ms));
    x.close("Retention");
    Ok(xml_response(x))
}

pub async fn put_object_retention(ctx: &Ctx<'_>, key: &str, body: RequestBody) -> Result<HttpResponse, S3Error> {
    require_integrity(ctx)?;
    let body = ctx.small_body(body, MAX_XML_BODY).await?;
    let root = xml::parse(&body, 8)?;
    if root.name != "Retention" {
        return Err(Code::MalformedXML.into());
    }
    let mode = root.child("Mode").map(|m| m.text.as_str());
    let until = root.child("RetainUntilDate").map(|d| d.text.as_str());
    let now_ms = jadfs_common::now_ms();
    let headers = |name: &str| match name {
        "x-amz-object-lock-mode" => mode,
        "x-amz-object-lock-retain-until-date" => until,
        _ => None,
    };
    let retention = match (mode, until) {
        (None, None) => None,
        _ => lock_from(headers, now_ms).map_err(|_| S3Error::from(Code::MalformedXML))?.0,
    };
    let command = Command::SetRetention {
        bucket: ctx.bucket_name().into(),
        key: key.into(),
        version_id: ctx.param("versionId").map(str::to_string),
        retention,
        bypass_governance: bypass_governance(ctx).await?,
        now_ms,
    };
    ctx.gw.meta.write(&command).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn get_object_legal_hold(ctx: &Ctx<'_>, key: &str) -> Result<HttpResponse, S3Error> {
    ctx.bucket().await?.object_lock.as_ref().ok_or_else(no_lock)?;
    let object = ctx.object(key).await?;
    let mut x = XmlWriter::new();
    x.open("LegalHold");
    x.element("Status", if object.manifest.legal_hold { "ON" } else { "OFF" });
    x.close("LegalHold");
    Ok(xml_response(x))
}

pub async fn put_object_legal_hold(ctx: &Ctx<'_>, key: &str, body: RequestBody) -> Result<HttpResponse, S3Error> {
    require_integrity(ctx)?;
    let body = ctx.small_body(body, MAX_XML_BODY).await?;
    let root = xml::parse(&body, 4)?;
    let on = match (root.name.as_str(), root.child("Status").map(|s| s.text.as_str())) {
        ("LegalHold", Some("ON")) => true,
        ("LegalHold", Some("OFF")) => false,
        _ => return Err(Code::MalformedXML.into()),
    };
    let command = Command::SetLegalHold {
        bucket: ctx.bucket_name().into(),
        key: key.into(),
        version_id: ctx.param("versionId").map(str::to_string),
        on,
    };
    ctx.gw.meta.write(&command).await?;
    Ok(HttpResponse::Ok().finish())
}

fn no_lock() -> S3Error {
    S3Error::new(Code::InvalidRequest).with_message("Bucket is missing Object Lock Configuration")
}
