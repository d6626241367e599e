//! A minimal S3 client for the CLI (`jadfs bench`, `jadfs admin bucket
//! empty`): path-style requests signed with SigV4, payloads unsigned (TLS
//! or the endpoint's own checks cover them; a DeleteObjects body carries
//! its Content-MD5). Nothing in it is specific to JaDFS.

use anyhow::{bail, Context};
use base64::Engine;
use jadfs_gateway::sigv4::{self, RequestParts};
use md5::{Digest, Md5};
use quick_xml::events::Event;

use crate::credentials::Credentials;

/// Keys one DeleteObjects request may name (S3's limit).
pub const DELETE_BATCH: usize = 1000;

pub struct S3 {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    credentials: Credentials,
    region: String,
}

/// One page of a ListObjectsV2.
#[derive(Debug, Default, PartialEq)]
pub struct ListPage {
    pub keys: Vec<String>,
    /// The token of the next page, if the listing was truncated.
    pub next: Option<String>,
}

/// A key DeleteObjects did not delete, and S3's error code for it.
#[derive(Debug, PartialEq)]
pub struct NotDeleted {
    pub key: String,
    pub code: String,
}

impl S3 {
    pub fn new(endpoint: &str, credentials: Credentials, region: &str) -> anyhow::Result<S3> {
        let url: reqwest::Url = endpoint.parse().context("invalid endpoint")?;
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(S3 { http, endpoint: endpoint.trim_end_matches('/').to_string(), host, credentials, region: region.into() })
    }

    /// A request with an unsigned payload.
    pub fn request(&self, method: &str, path: &str, query: &str) -> anyhow::Result<reqwest::RequestBuilder> {
        self.signed(method, path, query, "UNSIGNED-PAYLOAD")
    }

    /// A request signing `payload_hash` (the body's hex SHA-256, or
    /// `UNSIGNED-PAYLOAD`); `path` and `query` as sent, already encoded.
    pub fn signed(
        &self,
        method: &str,
        path: &str,
        query: &str,
        payload_hash: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        let parts = RequestParts {
            method,
            raw_path: path,
            raw_query: query,
            headers: vec![
                ("host".into(), self.host.clone()),
                ("x-amz-content-sha256".into(), payload_hash.to_string()),
            ],
        };
        let (date, authorization) = sigv4::sign(
            &parts,
            &self.credentials.access_key,
            &self.credentials.secret_key,
            &self.region,
            chrono::Utc::now(),
        )
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        Ok(self
            .http
            .request(method.parse()?, url)
            .header("x-amz-content-sha256", payload_hash)
            .header("x-amz-date", date)
            .header("authorization", authorization))
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder, what: &str) -> anyhow::Result<reqwest::Response> {
        let response = builder.send().await.with_context(|| what.to_string())?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            bail!("{what}: {status}: {}", body.chars().take(300).collect::<String>());
        }
        Ok(response)
    }

    pub fn object_path(bucket: &str, key: &str) -> String {
        let encoded: Vec<String> = key.split('/').map(sigv4::uri_encode).collect();
        format!("/{bucket}/{}", encoded.join("/"))
    }

    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        let response = self.request("PUT", &format!("/{bucket}"), "")?.header("content-length", 0).send().await?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() || body.contains("BucketAlreadyOwnedByYou") {
            return Ok(());
        }
        bail!("creating bucket {bucket}: {status}: {body}")
    }

    pub async fn enable_versioning(&self, bucket: &str) -> anyhow::Result<()> {
        let body = "<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>";
        let request = self.request("PUT", &format!("/{bucket}"), "versioning=")?.body(body);
        self.send(request, &format!("turning versioning on in {bucket}")).await.map(|_| ())
    }

    /// One page of up to 1,000 keys under `prefix` (ListObjectsV2), from
    /// the continuation token `after`.
    pub async fn list_page(&self, bucket: &str, prefix: &str, after: Option<&str>) -> anyhow::Result<ListPage> {
        let mut query = vec![("list-type", "2"), ("max-keys", "1000"), ("prefix", prefix)];
        if let Some(token) = after {
            query.push(("continuation-token", token));
        }
        query.sort();
        let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", sigv4::uri_encode(v))).collect();
        let request = self.request("GET", &format!("/{bucket}"), &query.join("&"))?;
        let body = self.send(request, &format!("listing {bucket}")).await?.text().await?;
        parse_list_page(&body)
    }

    /// Deletes up to [`DELETE_BATCH`] keys in one DeleteObjects request
    /// (quiet: only failures are answered); returns the keys not deleted.
    pub async fn delete_batch(&self, bucket: &str, keys: &[String]) -> anyhow::Result<Vec<NotDeleted>> {
        let body = delete_request(keys);
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        let request = self.request("POST", &format!("/{bucket}"), "delete=")?.header("content-md5", md5).body(body);
        let answer = self.send(request, &format!("deleting {} keys of {bucket}", keys.len())).await?.text().await?;
        parse_delete_result(&answer)
    }
}

/// The body of a quiet DeleteObjects naming `keys`.
fn delete_request(keys: &[String]) -> Vec<u8> {
    let mut xml = String::from("<Delete><Quiet>true</Quiet>");
    for key in keys {
        xml.push_str("<Object><Key>");
        xml.push_str(&quick_xml::escape::escape(key.as_str()));
        xml.push_str("</Key></Object>");
    }
    xml.push_str("</Delete>");
    xml.into_bytes()
}

/// The text of every element named by `path` (outermost first) in `xml`,
/// in document order, with its path's position: enough of S3's answers for
/// this client, whose elements never nest text in mixed content.
fn texts(xml: &str, wanted: &[&[&str]]) -> anyhow::Result<Vec<(usize, String)>> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut found = Vec::new();
    loop {
        match reader.read_event().context("the answer is not XML")? {
            Event::Start(e) => path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned()),
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                if let Some(which) = wanted.iter().position(|w| path.iter().map(String::as_str).eq(w.iter().copied())) {
                    found.push((which, t.unescape().context("bad text in the answer")?.into_owned()));
                }
            }
            Event::Eof => return Ok(found),
            _ => {}
        }
    }
}

fn parse_list_page(xml: &str) -> anyhow::Result<ListPage> {
    const KEY: &[&str] = &["ListBucketResult", "Contents", "Key"];
    const NEXT: &[&str] = &["ListBucketResult", "NextContinuationToken"];
    let mut page = ListPage::default();
    for (which, text) in texts(xml, &[KEY, NEXT])? {
        match which {
            0 => page.keys.push(text),
            _ => page.next = Some(text),
        }
    }
    Ok(page)
}

fn parse_delete_result(xml: &str) -> anyhow::Result<Vec<NotDeleted>> {
    const KEY: &[&str] = &["DeleteResult", "Error", "Key"];
    const CODE: &[&str] = &["DeleteResult", "Error", "Code"];
    let mut failed: Vec<NotDeleted> = Vec::new();
    for (which, text) in texts(xml, &[KEY, CODE])? {
        match (which, failed.last_mut()) {
            (0, _) => failed.push(NotDeleted { key: text, code: String::new() }),
            (_, Some(last)) => last.code = text,
            (_, None) => bail!("an error code without its key in the DeleteObjects answer"),
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_page_gives_its_keys_unescaped_and_the_next_token() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>a</Prefix>
<KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>
<Contents><Key>a&amp;b &lt;1&gt;</Key><Size>3</Size></Contents>
<Contents><Key>a/é</Key><Owner><ID>x</ID></Owner></Contents>
<NextContinuationToken>tok+/=</NextContinuationToken></ListBucketResult>"#;
        let page = parse_list_page(xml).unwrap();
        assert_eq!(page.keys, ["a&b <1>", "a/é"]);
        assert_eq!(page.next.as_deref(), Some("tok+/="));
        let last = parse_list_page("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>").unwrap();
        assert_eq!(last, ListPage::default());
    }

    #[test]
    fn a_delete_request_escapes_keys_and_its_answer_names_each_failure() {
        let body = String::from_utf8(delete_request(&["a<&>".into(), "b".into()])).unwrap();
        assert_eq!(
            body,
            "<Delete><Quiet>true</Quiet><Object><Key>a&lt;&amp;&gt;</Key></Object><Object><Key>b</Key></Object></Delete>"
        );
        let answer = r#"<DeleteResult><Error><Key>k&amp;1</Key><Code>AccessDenied</Code><Message>no</Message></Error>
<Error><Key>k2</Key><Code>InternalError</Code></Error></DeleteResult>"#;
        assert_eq!(
            parse_delete_result(answer).unwrap(),
            [
                NotDeleted { key: "k&1".into(), code: "AccessDenied".into() },
                NotDeleted { key: "k2".into(), code: "InternalError".into() }
            ]
        );
        assert!(parse_delete_result("<DeleteResult/>").unwrap().is_empty());
    }
}
