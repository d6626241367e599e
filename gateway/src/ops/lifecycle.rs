//! Bucket lifecycle (`?lifecycle`): the configuration, checked as AWS
//! checks it, and the `x-amz-expiration` header of objects a rule will
//! delete. The rules are carried out on the meta leader (see
//! `jadfs_meta::api::LifecycleRule`).

use actix_web::HttpResponse;
use jadfs_meta::api::{Expiration, LifecycleFilter, LifecycleRule, DAY_MS};
use jadfs_meta::Command;

use super::{http_date, iso8601, xml_response, Ctx};
use crate::body::RequestBody;
use crate::error::{Code, S3Error};
use crate::xml::{self, Element, XmlWriter};

/// S3's limit of rules per configuration.
const MAX_RULES: usize = 1000;
const MAX_ID: usize = 255;

pub async fn get_bucket_lifecycle(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let rules = ctx.bucket().await?.lifecycle.as_ref().ok_or(Code::NoSuchLifecycleConfiguration)?;
    Ok(xml_response(render(rules)))
}

pub async fn put_bucket_lifecycle(ctx: &Ctx<'_>, body: RequestBody) -> Result<HttpResponse, S3Error> {
    ctx.require_integrity_header()?;
    let body = ctx.small_body(body, xml::MAX_XML_BODY).await?;
    let rules = parse(&body)?;
    ctx.gw.meta.write(&Command::SetBucketLifecycle { bucket: ctx.bucket_name().into(), rules: Some(rules) }).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn delete_bucket_lifecycle(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    ctx.gw.meta.write(&Command::SetBucketLifecycle { bucket: ctx.bucket_name().into(), rules: None }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `x-amz-expiration` for an object a rule will delete at `at` (the meta
/// node judges which, see `jadfs_meta::api::object_expiry`).
pub fn expiration_header(at: i64, rule: &str) -> String {
    format!("expiry-date=\"{}\", rule-id=\"{}\"", http_date(at), rule.replace('"', ""))
}

fn invalid(message: &str) -> S3Error {
    S3Error::new(Code::InvalidArgument).with_message(message)
}

fn malformed() -> S3Error {
    S3Error::new(Code::MalformedXML)
}

fn text<'a>(e: &'a Element, name: &str) -> Option<&'a str> {
    e.child(name).map(|c| c.text.trim())
}

fn number(e: &Element, name: &str, what: &str) -> Result<Option<u32>, S3Error> {
    match text(e, name) {
        None => Ok(None),
        Some(t) => match t.parse::<u32>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(invalid(&format!("'{name}' for {what} must be a positive integer"))),
        },
    }
}

pub(crate) fn parse(body: &[u8]) -> Result<Vec<LifecycleRule>, S3Error> {
    let root = xml::parse(body, 24 * MAX_RULES + 8)?;
    if root.name != "LifecycleConfiguration" {
        return Err(malformed());
    }
    let mut rules: Vec<LifecycleRule> = Vec::new();
    for rule in root.children_named("Rule") {
        let parsed = parse_rule(rule, rules.len())?;
        if rules.iter().any(|r| r.id == parsed.id) {
            return Err(invalid("Rule ID must be unique. Found same ID for more than one rule"));
        }
        rules.push(parsed);
    }
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(malformed());
    }
    Ok(rules)
}

fn parse_rule(rule: &Element, index: usize) -> Result<LifecycleRule, S3Error> {
    for refused in ["Transition", "NoncurrentVersionTransition"] {
        if rule.child(refused).is_some() {
            // As for a PUT naming a class other than STANDARD: there is no
            // other class to move objects to.
            return Err(S3Error::new(Code::InvalidStorageClass)
                .with_message(format!("{refused} is not supported: STANDARD is the only storage class.")));
        }
    }
    let id = match text(rule, "ID") {
        Some(id) if id.chars().count() > MAX_ID => {
            return Err(invalid("ID length should not exceed allowed limit of 255"));
        }
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!("rule-{}", index + 1),
    };
    let enabled = match text(rule, "Status") {
        Some("Enabled") => true,
        Some("Disabled") => false,
        _ => return Err(malformed()),
    };
    let (filter, legacy_prefix) = match (rule.child("Filter"), text(rule, "Prefix")) {
        (Some(_), Some(_)) => return Err(malformed()),
        (Some(filter), None) => (parse_filter(filter)?, false),
        (None, Some(prefix)) => (LifecycleFilter { prefix: prefix.to_string(), ..Default::default() }, true),
        (None, None) => return Err(malformed()),
    };
    let expiration = match rule.child("Expiration") {
        None => None,
        Some(e) => Some(parse_expiration(e)?),
    };
    let (noncurrent_days, newer_noncurrent_versions) = match rule.child("NoncurrentVersionExpiration") {
        None => (None, None),
        Some(e) => {
            let days = number(e, "NoncurrentDays", "NoncurrentVersionExpiration")?;
            (Some(days.ok_or_else(malformed)?), number(e, "NewerNoncurrentVersions", "NoncurrentVersionExpiration")?)
        }
    };
    let abort_incomplete_days = match rule.child("AbortIncompleteMultipartUpload") {
        None => None,
        Some(e) => Some(number(e, "DaysAfterInitiation", "AbortIncompleteMultipartUpload")?.ok_or_else(malformed)?),
    };
    if abort_incomplete_days.is_some() && !filter.tags.is_empty() {
        return Err(S3Error::new(Code::InvalidRequest)
            .with_message("Tag-based filter cannot be used with AbortIncompleteMultipartUpload action"));
    }
    if expiration.is_none() && noncurrent_days.is_none() && abort_incomplete_days.is_none() {
        return Err(
            S3Error::new(Code::InvalidRequest).with_message("At least one action needs to be specified in a rule")
        );
    }
    Ok(LifecycleRule {
        id,
        enabled,
        filter,
        legacy_prefix,
        expiration,
        noncurrent_days,
        newer_noncurrent_versions,
        abort_incomplete_days,
    })
}

fn parse_expiration(e: &Element) -> Result<Expiration, S3Error> {
    let days = number(e, "Days", "Expiration action")?;
    let date = text(e, "Date");
    let marker = match text(e, "ExpiredObjectDeleteMarker") {
        None => false,
        Some("true") => true,
        Some("false") => false,
        Some(_) => return Err(malformed()),
    };
    match (days, date, marker) {
        (Some(days), None, false) => Ok(Expiration::Days(days)),
        (None, Some(date), false) => {
            let at = chrono::DateTime::parse_from_rfc3339(date)
                .map_err(|_| invalid("Invalid date: the Date must be in ISO 8601 format"))?
                .timestamp_millis();
            if at.rem_euclid(DAY_MS) != 0 {
                return Err(invalid("'Date' must be at midnight GMT"));
            }
            Ok(Expiration::Date(at))
        }
        (None, None, true) => Ok(Expiration::ExpiredObjectDeleteMarker),
        _ => Err(malformed()),
    }
}

fn parse_filter(filter: &Element) -> Result<LifecycleFilter, S3Error> {
    let mut parsed = LifecycleFilter::default();
    // S3 wants several conditions inside one `And`; like Ceph, we also take
    // them beside it or side by side. All must hold wherever they are.
    let mut conditions: Vec<&Element> = Vec::new();
    let mut ands = 0;
    for child in &filter.children {
        if child.name == "And" {
            ands += 1;
            if ands > 1 || child.children.iter().any(|c| c.name == "And") {
                return Err(malformed());
            }
            conditions.extend(&child.children);
        } else {
            conditions.push(child);
        }
    }
    let mut prefixes = 0;
    for condition in conditions {
        match condition.name.as_str() {
            "Prefix" => {
                // Two prefixes both hold only where the longer one does.
                let prefix = condition.text.trim();
                if prefixes > 0 && !(prefix.starts_with(&parsed.prefix) || parsed.prefix.starts_with(prefix)) {
                    return Err(malformed());
                }
                if prefixes == 0 || prefix.len() > parsed.prefix.len() {
                    parsed.prefix = prefix.to_string();
                }
                prefixes += 1;
            }
            "Tag" => {
                let key = text(condition, "Key").ok_or_else(malformed)?;
                let value = text(condition, "Value").unwrap_or("");
                if parsed.tags.iter().any(|(k, _)| k == key) {
                    return Err(invalid("Duplicate Tag Keys are not allowed."));
                }
                parsed.tags.push((key.to_string(), value.to_string()));
            }
            "ObjectSizeGreaterThan" => {
                parsed.size_greater_than = Some(condition.text.trim().parse().map_err(|_| malformed())?);
            }
            "ObjectSizeLessThan" => {
                parsed.size_less_than = Some(condition.text.trim().parse().map_err(|_| malformed())?);
            }
            _ => return Err(malformed()),
        }
    }
    if let (Some(min), Some(max)) = (parsed.size_greater_than, parsed.size_less_than) {
        if min >= max {
            return Err(invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan"));
        }
    }
    Ok(parsed)
}

fn render_filter(x: &mut XmlWriter, f: &LifecycleFilter) {
    let conditions = usize::from(!f.prefix.is_empty())
        + f.tags.len()
        + usize::from(f.size_greater_than.is_some())
        + usize::from(f.size_less_than.is_some());
    x.open("Filter");
    if conditions > 1 {
        x.open("And");
    }
    if !f.prefix.is_empty() || conditions == 0 {
        x.element("Prefix", &f.prefix);
    }
    for (key, value) in &f.tags {
        x.open("Tag");
        x.element("Key", key);
        x.element("Value", value);
        x.close("Tag");
    }
    if let Some(n) = f.size_greater_than {
        x.element("ObjectSizeGreaterThan", &n.to_string());
    }
    if let Some(n) = f.size_less_than {
        x.element("ObjectSizeLessThan", &n.to_string());
    }
    if conditions > 1 {
        x.close("And");
    }
    x.close("Filter");
}

fn render(rules: &[LifecycleRule]) -> XmlWriter {
    let mut x = XmlWriter::new();
    x.open("LifecycleConfiguration");
    for rule in rules {
        x.open("Rule");
        x.element("ID", &rule.id);
        let f = &rule.filter;
        if rule.legacy_prefix {
            x.element("Prefix", &f.prefix);
        } else {
            render_filter(&mut x, f);
        }
        x.element("Status", if rule.enabled { "Enabled" } else { "Disabled" });
        if let Some(expiration) = &rule.expiration {
            x.open("Expiration");
            match expiration {
                Expiration::Days(days) => x.element("Days", &days.to_string()),
                Expiration::Date(at) => x.element("Date", &iso8601(*at)),
                Expiration::ExpiredObjectDeleteMarker => x.element("ExpiredObjectDeleteMarker", "true"),
            }
            x.close("Expiration");
        }
        if let Some(days) = rule.noncurrent_days {
            x.open("NoncurrentVersionExpiration");
            x.element("NoncurrentDays", &days.to_string());
            if let Some(n) = rule.newer_noncurrent_versions {
                x.element("NewerNoncurrentVersions", &n.to_string());
            }
            x.close("NoncurrentVersionExpiration");
        }
        if let Some(days) = rule.abort_incomplete_days {
            x.open("AbortIncompleteMultipartUpload");
            x.element("DaysAfterInitiation", &days.to_string());
            x.close("AbortIncompleteMultipartUpload");
        }
        x.close("Rule");
    }
    x.close("LifecycleConfiguration");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(xml: &str) -> Code {
        parse(xml.as_bytes()).unwrap_err().code
    }

    #[test]
    fn rules_are_read_as_aws_writes_them_and_answered_back_alike() {
        let xml = r#"<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Rule><ID>logs</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>
  <Expiration><Days>30</Days></Expiration>
  <AbortIncompleteMultipartUpload><DaysAfterInitiation>7</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
<Rule><ID>tmp</ID><Filter><And><Prefix>tmp/</Prefix><Tag><Key>k</Key><Value>v</Value></Tag>
  <ObjectSizeGreaterThan>10</ObjectSizeGreaterThan></And></Filter><Status>Disabled</Status>
  <Expiration><Date>2030-01-01T00:00:00Z</Date></Expiration>
  <NoncurrentVersionExpiration><NoncurrentDays>3</NoncurrentDays><NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>
<Rule><Prefix></Prefix><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>
</LifecycleConfiguration>"#;
        let rules = parse(xml.as_bytes()).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].expiration, Some(Expiration::Days(30)));
        assert_eq!(rules[0].abort_incomplete_days, Some(7));
        assert_eq!(rules[0].filter.prefix, "logs/");
        assert!(!rules[1].enabled);
        assert_eq!(rules[1].filter.tags, [("k".to_string(), "v".to_string())]);
        assert_eq!(rules[1].filter.size_greater_than, Some(10));
        assert_eq!(rules[1].expiration, Some(Expiration::Date(1_893_456_000_000)));
        assert_eq!((rules[1].noncurrent_days, rules[1].newer_noncurrent_versions), (Some(3), Some(2)));
        assert_eq!(rules[2].id, "rule-3", "a rule without an ID gets one");
        assert!(rules[2].legacy_prefix && !rules[0].legacy_prefix, "answered in the form it was given");
        let answered = render(&rules).finish();
        assert_eq!(parse(answered.as_bytes()).unwrap(), rules, "{answered}");
    }

    #[test]
    fn what_aws_refuses_is_refused() {
        let rule = |body: &str| format!("<LifecycleConfiguration><Rule>{body}</Rule></LifecycleConfiguration>");
        let expire = "<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>";
        assert_eq!(code_of("<LifecycleConfiguration></LifecycleConfiguration>"), Code::MalformedXML);
        assert_eq!(code_of(&rule(&format!("<ID>{}</ID><Filter/>{expire}", "x".repeat(256)))), Code::InvalidArgument);
        assert_eq!(
            code_of(&rule("<Filter/><Status>On</Status><Expiration><Days>1</Days></Expiration>")),
            Code::MalformedXML
        );
        assert_eq!(
            code_of(&rule("<Filter/><Status>Enabled</Status><Expiration><Days>0</Days></Expiration>")),
            Code::InvalidArgument
        );
        assert_eq!(
            code_of(&rule("<Filter/><Status>Enabled</Status><Expiration><Days>-1</Days></Expiration>")),
            Code::InvalidArgument
        );
        assert_eq!(
            code_of(&rule(
                "<Filter/><Status>Enabled</Status><Expiration><Date>2030-01-01T10:00:00Z</Date></Expiration>"
            )),
            Code::InvalidArgument
        );
        assert_eq!(
            code_of(&rule("<Filter/><Status>Enabled</Status><Expiration><Days>1</Days><Date>2030-01-01T00:00:00Z</Date></Expiration>")),
            Code::MalformedXML
        );
        assert_eq!(
            code_of(&rule("<Status>Enabled</Status><Expiration><Days>1</Days></Expiration>")),
            Code::MalformedXML
        );
        assert_eq!(code_of(&rule(&format!("<Filter/><Prefix>a</Prefix>{expire}"))), Code::MalformedXML);
        assert_eq!(
            code_of(&rule(&format!("<Filter><And><Prefix>a</Prefix></And><Prefix>b</Prefix></Filter>{expire}"))),
            Code::MalformedXML
        );
        // Side by side outside `And` (Ceph's leniency): both conditions hold.
        let side_by_side =
            rule(&format!("<Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter>{expire}"));
        let filter = &parse(side_by_side.as_bytes()).unwrap()[0].filter;
        assert_eq!((filter.prefix.as_str(), filter.tags.len()), ("a", 1));
        let beside_and = rule(&format!(
            "<Filter><Prefix>days1/</Prefix><Tag><Key>a</Key><Value>1</Value></Tag>\
             <And><Prefix>days1</Prefix><Tag><Key>b</Key><Value>2</Value></Tag></And></Filter>{expire}"
        ));
        let filter = &parse(beside_and.as_bytes()).unwrap()[0].filter;
        assert_eq!((filter.prefix.as_str(), filter.tags.len()), ("days1/", 2), "the longer prefix, every tag");
        assert_eq!(code_of(&rule("<Filter/><Status>Enabled</Status>")), Code::InvalidRequest);
        assert_eq!(
            code_of(&rule("<Filter/><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition>")),
            Code::InvalidStorageClass
        );
        let twice = format!(
            "<LifecycleConfiguration><Rule><ID>a</ID><Filter/>{expire}</Rule><Rule><ID>a</ID><Filter/>{expire}</Rule></LifecycleConfiguration>"
        );
        assert_eq!(code_of(&twice), Code::InvalidArgument);
        assert_eq!(
            code_of(&rule("<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>")),
            Code::InvalidRequest
        );
    }

    #[test]
    fn the_expiration_header_names_the_time_and_the_rule() {
        let rules = vec![LifecycleRule {
            id: "old \"logs\"".into(),
            enabled: true,
            filter: LifecycleFilter { prefix: "logs/".into(), ..Default::default() },
            expiration: Some(Expiration::Days(1)),
            ..Default::default()
        }];
        // Written 2012-12-21 10:00 UTC: expires at the midnight after a day.
        let written = 1_356_084_000_000;
        let (at, id) = jadfs_meta::api::object_expiry(&rules, "logs/a", 1, &[], written, DAY_MS).unwrap();
        assert_eq!(expiration_header(at, id), "expiry-date=\"Sun, 23 Dec 2012 00:00:00 GMT\", rule-id=\"old logs\"");
    }
}
