//! Bucket CORS: the configuration (`?cors`), preflight `OPTIONS` requests,
//! and the `Access-Control-*` headers of actual requests from a browser.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use jadfs_meta::api::CorsRule;
use jadfs_meta::Command;

use super::{xml_response, Ctx};
use crate::body::RequestBody;
use crate::error::{Code, S3Error};
use crate::xml::{self, XmlWriter};
use crate::Gateway;

const MAX_RULES: usize = 100;

/// `*` matches any run of characters (AWS allows one `*` per pattern).
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((prefix, suffix)) => {
            value.len() >= prefix.len() + suffix.len() && value.starts_with(prefix) && value.ends_with(suffix)
        }
    }
}

/// The first rule allowing `origin` to use `method` with `headers`.
pub fn find_rule<'a>(rules: &'a [CorsRule], origin: &str, method: &str, headers: &[String]) -> Option<&'a CorsRule> {
    rules.iter().find(|rule| {
        rule.allowed_origins.iter().any(|o| wildcard_match(o, origin))
            && rule.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                rule.allowed_headers.iter().any(|a| wildcard_match(&a.to_ascii_lowercase(), &h.to_ascii_lowercase()))
            })
    })
}

fn parse_rules(body: &[u8]) -> Result<Vec<CorsRule>, S3Error> {
    let root = xml::parse(body, 20 * MAX_RULES + 8)?;
    if root.name != "CORSConfiguration" {
        return Err(S3Error::new(Code::MalformedXML));
    }
    let mut rules = Vec::new();
    for rule in root.children_named("CORSRule") {
        let texts = |name: &str| rule.children_named(name).map(|e| e.text.trim().to_string()).collect::<Vec<_>>();
        let parsed = CorsRule {
            id: rule.child("ID").map(|e| e.text.trim().to_string()),
            allowed_origins: texts("AllowedOrigin"),
            allowed_methods: texts("AllowedMethod"),
            allowed_headers: texts("AllowedHeader"),
            expose_headers: texts("ExposeHeader"),
            max_age_seconds: match rule.child("MaxAgeSeconds") {
                Some(e) => Some(e.text.trim().parse().map_err(|_| S3Error::new(Code::MalformedXML))?),
                None => None,
            },
        };
        if parsed.allowed_origins.is_empty() || parsed.allowed_methods.is_empty() {
            return Err(S3Error::new(Code::MalformedXML));
        }
        if let Some(bad) =
            parsed.allowed_methods.iter().find(|m| !["GET", "PUT", "POST", "DELETE", "HEAD"].contains(&m.as_str()))
        {
            return Err(S3Error::new(Code::InvalidRequest)
                .with_message(format!("Found unsupported HTTP method in CORS config. Unsupported method is {bad}")));
        }
        rules.push(parsed);
    }
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(S3Error::new(Code::MalformedXML));
    }
    Ok(rules)
}

/// The CORS rules of a bucket a browser's request names (not the request's
/// context: preflights and the decoration of answers have none).
async fn bucket_rules(gw: &Gateway, bucket: &str) -> Result<Option<Vec<CorsRule>>, S3Error> {
    Ok(gw.meta.get_bucket(bucket).await?.ok_or(Code::NoSuchBucket)?.cors)
}

pub async fn get_bucket_cors(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let rules = ctx.bucket().await?.cors.as_ref().ok_or(Code::NoSuchCORSConfiguration)?;
    let mut x = XmlWriter::new();
    x.open("CORSConfiguration");
    for rule in rules {
        x.open("CORSRule");
        if let Some(id) = &rule.id {
            x.element("ID", id);
        }
        for (name, values) in [
            ("AllowedHeader", &rule.allowed_headers),
            ("AllowedMethod", &rule.allowed_methods),
            ("AllowedOrigin", &rule.allowed_origins),
            ("ExposeHeader", &rule.expose_headers),
        ] {
            for value in values {
                x.element(name, value);
            }
        }
        if let Some(max_age) = rule.max_age_seconds {
            x.element("MaxAgeSeconds", &max_age.to_string());
        }
        x.close("CORSRule");
    }
    x.close("CORSConfiguration");
    Ok(xml_response(x))
}

pub async fn put_bucket_cors(ctx: &Ctx<'_>, body: RequestBody) -> Result<HttpResponse, S3Error> {
    let body = ctx.small_body(body, 64 << 10).await?;
    let rules = parse_rules(&body)?;
    ctx.gw.meta.write(&Command::SetBucketCors { bucket: ctx.bucket_name().into(), rules: Some(rules) }).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn delete_bucket_cors(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    ctx.gw.meta.write(&Command::SetBucketCors { bucket: ctx.bucket_name().into(), rules: None }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A browser's preflight `OPTIONS`: unauthenticated, answered from the
/// bucket's rules.
pub async fn preflight(req: &HttpRequest, gw: &Gateway, bucket: &str) -> Result<HttpResponse, S3Error> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let origin = header("origin").ok_or_else(|| {
        S3Error::new(Code::InvalidRequest).with_message("Insufficient information. Origin request header needed.")
    })?;
    let method = header("access-control-request-method").ok_or_else(|| {
        S3Error::new(Code::InvalidRequest).with_message("Invalid Access-Control-Request-Method: null")
    })?;
    let requested: Vec<String> = header("access-control-request-headers")
        .map(|h| h.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let rules = bucket_rules(gw, bucket).await?.unwrap_or_default();
    let rule = find_rule(&rules, origin, method, &requested).ok_or(Code::AccessForbidden)?;
    let mut response = HttpResponse::Ok();
    let allow_origin = if rule.allowed_origins.iter().any(|o| o == "*") { "*" } else { origin };
    response.insert_header(("access-control-allow-origin", allow_origin));
    response.insert_header(("access-control-allow-methods", rule.allowed_methods.join(", ")));
    if !requested.is_empty() {
        response.insert_header(("access-control-allow-headers", requested.join(", ")));
    }
    if !rule.expose_headers.is_empty() {
        response.insert_header(("access-control-expose-headers", rule.expose_headers.join(", ")));
    }
    if let Some(max_age) = rule.max_age_seconds {
        response.insert_header(("access-control-max-age", max_age.to_string()));
    }
    response.insert_header(("vary", "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"));
    Ok(response.finish())
}

/// Adds `Access-Control-*` headers to the answer of an actual request whose
/// Origin a rule of the bucket allows (errors included, as S3 does).
pub async fn decorate(req: &HttpRequest, gw: &Gateway, bucket: &str, response: &mut HttpResponse) {
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else { return };
    let Ok(Some(rules)) = bucket_rules(gw, bucket).await else { return };
    let Some(rule) = find_rule(&rules, origin, req.method().as_str(), &[]) else { return };
    let allow_origin = if rule.allowed_origins.iter().any(|o| o == "*") { "*".to_string() } else { origin.to_string() };
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("access-control-allow-origin", allow_origin);
    set("access-control-allow-methods", rule.allowed_methods.join(", "));
    if !rule.expose_headers.is_empty() {
        set("access-control-expose-headers", rule.expose_headers.join(", "));
    }
    if let Some(max_age) = rule.max_age_seconds {
        set("access-control-max-age", max_age.to_string());
    }
    set("vary", "Origin".to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_with_one_wildcard() {
        assert!(wildcard_match("*suffix", "foo.suffix"));
        assert!(!wildcard_match("*suffix", "foo.suffix.get"));
        assert!(wildcard_match("start*end", "startend"));
        assert!(wildcard_match("start*end", "start12end"));
        assert!(!wildcard_match("start*end", "0start12end"));
        assert!(wildcard_match("prefix*", "prefix.suffix"));
        assert!(!wildcard_match("prefix*", "bla.prefix"));
        assert!(wildcard_match("*", "anything"));
    }

    #[test]
    fn rules_parse_and_match() {
        let body = b"<CORSConfiguration><CORSRule><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>x-amz-*</AllowedHeader><MaxAgeSeconds>300</MaxAgeSeconds></CORSRule></CORSConfiguration>";
        let rules = parse_rules(body).unwrap();
        assert!(find_rule(&rules, "https://app.example.com", "PUT", &["X-Amz-Date".into()]).is_some());
        assert!(find_rule(&rules, "https://app.example.com", "DELETE", &[]).is_none());
        assert!(find_rule(&rules, "https://evil.com", "GET", &[]).is_none());
        assert!(find_rule(&rules, "https://app.example.com", "GET", &["authorization".into()]).is_none());
        assert!(parse_rules(b"<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod></CORSRule></CORSConfiguration>").is_err());
    }
}
