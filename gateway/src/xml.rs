//! S3's XML: a small writer for responses and bounded parsers for the
//! request bodies we accept (DeleteObjects, CompleteMultipartUpload,
//! CreateBucketConfiguration).

use quick_xml::events::Event;
use quick_xml::Reader;

pub const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Builds an XML document element by element, escaping all text.
pub struct XmlWriter {
    out: String,
    first: bool,
}

impl Default for XmlWriter {
    fn default() -> Self {
        XmlWriter::new()
    }
}

impl XmlWriter {
    pub fn new() -> XmlWriter {
        XmlWriter { out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), first: true }
    }

    /// A document whose root has no namespace, as S3's `<Error>` bodies.
    pub fn without_namespace() -> XmlWriter {
        XmlWriter { first: false, ..XmlWriter::new() }
    }

    /// Opens an element; the document's first element carries S3's namespace.
    pub fn open(&mut self, name: &str) {
        if std::mem::take(&mut self.first) {
            self.out.push_str(&format!("<{name} xmlns=\"{S3_NAMESPACE}\">"));
        } else {
            self.out.push_str(&format!("<{name}>"));
        }
    }

    pub fn close(&mut self, name: &str) {
        self.out.push_str(&format!("</{name}>"));
    }

    pub fn element(&mut self, name: &str, text: &str) {
        self.open(name);
        self.out.push_str(&quick_xml::escape::escape(text));
        self.close(name);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A request body that is not XML of the expected shape (S3's MalformedXML).
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// The largest XML request body we parse.
pub const MAX_XML_BODY: usize = 2 << 20;

/// A parsed XML element tree, small and bounded.
#[derive(Debug, Default)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses a body into an element tree, refusing anything malformed, deeper
/// than a few levels or with more than `max_elements` elements.
pub fn parse(body: &[u8], max_elements: usize) -> Result<Element, Malformed> {
    const MAX_DEPTH: usize = 8;
    // Text is kept as sent: a key may be a single space.
    let mut reader = Reader::from_reader(body);
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut count = 0usize;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|_| Malformed)?;
        match event {
            Event::Start(start) => {
                count += 1;
                if count > max_elements || stack.len() > MAX_DEPTH {
                    return Err(Malformed);
                }
                let name = local_name(start.name().as_ref())?;
                stack.push(Element { name, ..Default::default() });
            }
            Event::Empty(start) => {
                count += 1;
                if count > max_elements {
                    return Err(Malformed);
                }
                let name = local_name(start.name().as_ref())?;
                stack.last_mut().expect("root is always there").children.push(Element { name, ..Default::default() });
            }
            Event::End(_) => {
                let done = stack.pop().ok_or(Malformed)?;
                stack.last_mut().ok_or(Malformed)?.children.push(done);
            }
            Event::Text(text) => {
                let text = text.unescape().map_err(|_| Malformed)?;
                stack.last_mut().expect("root is always there").text.push_str(&text);
            }
            Event::CData(data) => {
                let text = std::str::from_utf8(&data).map_err(|_| Malformed)?;
                stack.last_mut().expect("root is always there").text.push_str(text);
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let mut root = stack.pop().ok_or(Malformed)?;
    if !stack.is_empty() || root.children.len() != 1 {
        return Err(Malformed);
    }
    Ok(root.children.pop().expect("checked above"))
}

fn local_name(raw: &[u8]) -> Result<String, Malformed> {
    let name = std::str::from_utf8(raw).map_err(|_| Malformed)?;
    Ok(name.rsplit(':').next().unwrap_or(name).to_string())
}

/// `<Delete><Quiet>…</Quiet><Object><Key>…</Key>[<VersionId>…</VersionId>]</Object>…</Delete>`
pub struct DeleteRequest {
    pub quiet: bool,
    pub objects: Vec<DeleteTarget>,
}

/// One object a DeleteObjects request names.
#[derive(Debug, PartialEq, Eq)]
pub struct DeleteTarget {
    pub key: String,
    pub version_id: Option<String>,
    /// `<ETag>`, `<LastModifiedTime>`, `<Size>`: delete only if they hold.
    pub condition: jadfs_meta::api::DeleteCondition,
}

pub const MAX_DELETE_KEYS: usize = 1000;

pub fn parse_delete(body: &[u8]) -> Result<DeleteRequest, Malformed> {
    let root = parse(body, 6 * MAX_DELETE_KEYS + 16)?;
    if root.name != "Delete" {
        return Err(Malformed);
    }
    let quiet = root.child("Quiet").is_some_and(|q| q.text.trim().eq_ignore_ascii_case("true"));
    let mut objects = Vec::new();
    for object in root.children_named("Object") {
        let key = object.child("Key").ok_or(Malformed)?.text.clone();
        let version_id = object.child("VersionId").map(|v| v.text.clone());
        let last_modified_ms = match object.child("LastModifiedTime") {
            // The SDKs send an HTTP date here; ISO 8601 is taken too.
            Some(t) => {
                let t = t.text.trim();
                let parsed =
                    chrono::DateTime::parse_from_rfc2822(t).or_else(|_| chrono::DateTime::parse_from_rfc3339(t));
                Some(parsed.map_err(|_| Malformed)?.timestamp_millis())
            }
            None => None,
        };
        let size = match object.child("Size") {
            Some(n) => Some(n.text.trim().parse().map_err(|_| Malformed)?),
            None => None,
        };
        let etag = object.child("ETag").map(|e| e.text.clone());
        let condition = jadfs_meta::api::DeleteCondition { etag, last_modified_ms, size };
        objects.push(DeleteTarget { key, version_id, condition });
    }
    if objects.is_empty() || objects.len() > MAX_DELETE_KEYS {
        return Err(Malformed);
    }
    Ok(DeleteRequest { quiet, objects })
}

/// One part listed in a CompleteMultipartUpload body.
pub struct CompletePart {
    pub number: u32,
    pub etag: String,
    /// A `Checksum*` element given for the part.
    pub checksum: Option<String>,
}

/// `<CompleteMultipartUpload><Part><PartNumber/><ETag/>[<ChecksumX/>]</Part>…`
pub fn parse_complete(body: &[u8]) -> Result<Vec<CompletePart>, Malformed> {
    let root = parse(body, 4 * 10_000 + 16)?;
    if root.name != "CompleteMultipartUpload" {
        return Err(Malformed);
    }
    let mut parts = Vec::new();
    for part in root.children_named("Part") {
        let number = part.child("PartNumber").and_then(|n| n.text.trim().parse::<u32>().ok()).ok_or(Malformed)?;
        let etag = part.child("ETag").map(|e| e.text.trim().to_string()).ok_or(Malformed)?;
        let checksum = part.children.iter().find(|c| c.name.starts_with("Checksum")).map(|c| c.text.trim().to_string());
        parts.push(CompletePart { number, etag, checksum });
    }
    if parts.is_empty() {
        return Err(Malformed);
    }
    Ok(parts)
}

/// `<VersioningConfiguration><Status>Enabled|Suspended</Status>
/// <MfaDelete>Enabled|Disabled</MfaDelete></VersioningConfiguration>`:
/// the status (None: left as it is) and whether MFA delete is asked for.
pub fn parse_versioning(body: &[u8]) -> Result<(Option<String>, bool), Malformed> {
    let root = parse(body, 8)?;
    if root.name != "VersioningConfiguration" {
        return Err(Malformed);
    }
    let status = root.child("Status").map(|s| s.text.clone());
    let mfa_delete = root.child("MfaDelete").is_some_and(|m| m.text == "Enabled");
    Ok((status, mfa_delete))
}

/// `<Tagging><TagSet><Tag><Key/><Value/></Tag>…</TagSet></Tagging>`
pub fn parse_tagging(body: &[u8]) -> Result<Vec<(String, String)>, Malformed> {
    let root = parse(body, 4 * 64 + 8)?;
    let tag_set = root.child("TagSet").filter(|_| root.name == "Tagging").ok_or(Malformed)?;
    tag_set
        .children_named("Tag")
        .map(|tag| {
            let key = tag.child("Key").ok_or(Malformed)?;
            let value = tag.child("Value").map(|v| v.text.clone()).unwrap_or_default();
            Ok((key.text.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_escapes_text() {
        let mut w = XmlWriter::new();
        w.open("A");
        w.element("Key", "a<b>&\"c\"");
        w.close("A");
        assert!(w
            .finish()
            .ends_with(&format!("<A xmlns=\"{S3_NAMESPACE}\"><Key>a&lt;b&gt;&amp;&quot;c&quot;</Key></A>")));
    }

    #[test]
    fn delete_request_parses_and_bounds() {
        let body = br#"<?xml version="1.0"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>a&amp;b</Key></Object><Object><Key> </Key><VersionId>v1</VersionId></Object><Quiet>true</Quiet></Delete>"#;
        let parsed = parse_delete(body).unwrap();
        assert!(parsed.quiet);
        let target = |key: &str, version_id: Option<&str>| DeleteTarget {
            key: key.into(),
            version_id: version_id.map(String::from),
            condition: Default::default(),
        };
        assert_eq!(parsed.objects, [target("a&b", None), target(" ", Some("v1"))], "keys keep their spaces");
        for bad in [&b"<Delete>"[..], b"<Delete></Delete>", b"not xml", b"<Other><Object><Key>a</Key></Object></Other>"]
        {
            assert_eq!(parse_delete(bad).err(), Some(Malformed), "{}", String::from_utf8_lossy(bad));
        }
        let too_many: String = (0..1001).map(|i| format!("<Object><Key>{i}</Key></Object>")).collect();
        assert!(parse_delete(format!("<Delete>{too_many}</Delete>").as_bytes()).is_err());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "<a>".repeat(50) + &"</a>".repeat(50);
        assert!(parse(deep.as_bytes(), 1000).is_err());
    }
}
