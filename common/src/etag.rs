//! S3 entity tags.

use serde::{Deserialize, Serialize};

/// An object's or a part's ETag, kept and sent quoted as S3 does: the hex
/// MD5 of the bytes (`"9e10…19d6"`), or for an object made by a multipart
/// upload the MD5 of its parts' binary MD5s and the part count
/// (`"ab12…-3"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ETag(String);

impl ETag {
    /// The ETag of bytes whose MD5 is `md5`.
    pub fn of_md5(md5: &[u8; 16]) -> ETag {
        ETag(format!("\"{}\"", hex::encode(md5)))
    }

    /// The ETag of an object assembled from `parts` parts whose binary MD5s
    /// hash to `md5_of_md5s`.
    pub fn multipart(md5_of_md5s: &[u8; 16], parts: usize) -> ETag {
        ETag(format!("\"{}-{parts}\"", hex::encode(md5_of_md5s)))
    }

    /// An ETag as stored or sent, quotes included.
    pub fn from_quoted(quoted: String) -> ETag {
        ETag(quoted)
    }

    /// With its quotes, as in an `ETag` header or XML element.
    pub fn quoted(&self) -> &str {
        &self.0
    }

    /// Without its quotes, as GetObjectAttributes prints it.
    pub fn unquoted(&self) -> &str {
        self.0.trim_matches('"')
    }

    /// The MD5 this ETag spells, for an ETag of plain bytes (not multipart).
    pub fn md5(&self) -> Option<[u8; 16]> {
        let mut md5 = [0u8; 16];
        hex::decode_to_slice(self.unquoted(), &mut md5).ok()?;
        Some(md5)
    }

    /// Whether a client's ETag (quoted or not) names this one.
    pub fn is(&self, other: &str) -> bool {
        self.unquoted() == other.trim().trim_matches('"')
    }

    /// Whether an `If-Match`-style list (`*`, or ETags, quoted or not) names this one.
    pub fn matches(&self, list: &str) -> bool {
        list.split(',').map(str::trim).any(|t| t == "*" || self.is(t))
    }
}

impl std::fmt::Display for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_and_match_lists() {
        let etag = ETag::of_md5(&[0xab; 16]);
        assert_eq!(etag.quoted(), format!("\"{}\"", "ab".repeat(16)));
        assert_eq!(etag.md5(), Some([0xab; 16]));
        assert!(etag.matches("*"));
        assert!(etag.matches(&format!("\"x\", {}", "ab".repeat(16))));
        assert!(!etag.matches("\"other\""));
        let multi = ETag::multipart(&[1; 16], 3);
        assert!(multi.unquoted().ends_with("-3"));
        assert_eq!(multi.md5(), None);
        assert_eq!(serde_json::to_string(&etag).unwrap(), format!("\"\\\"{}\\\"\"", "ab".repeat(16)));
    }
}
