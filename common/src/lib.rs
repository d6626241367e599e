//! Types that cross a wire or a disk between JaDFS roles: chunk IDs, object
//! manifests, ETags and checksums, and the storage node's messages. The
//! meta service's own commands and queries live in `jadfs_meta::api`.
//! No I/O here, but for `links` (the HTTP clients roles reach each other
//! with, and the TLS files they read), `serve` (what the internal servers
//! share) and `metrics` (the process's recorder and its `/metrics`).

pub mod checksum;
pub mod cluster_auth;
pub mod disk;
pub mod etag;
pub mod links;
pub mod metrics;
pub mod node;
pub mod sealed;
pub mod serve;
pub mod sse;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use checksum::{Algorithm, Checksum, ChecksumType};
pub use etag::ETag;

/// Default size of a chunk: objects are cut into pieces of this many bytes.
pub const DEFAULT_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// Identifies a storage node in the cluster.
pub type NodeId = u64;

/// The SHA-256 of a chunk's bytes: its name everywhere in the system.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId([u8; 32]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid chunk id: expected 64 lowercase hex digits")]
pub struct InvalidChunkId;

impl ChunkId {
    pub fn from_bytes(bytes: [u8; 32]) -> ChunkId {
        ChunkId(bytes)
    }

    /// The ID of the given content.
    pub fn of(data: &[u8]) -> ChunkId {
        ChunkId(Sha256::digest(data).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for ChunkId {
    type Err = InvalidChunkId;

    /// Accepts exactly 64 lowercase hex digits, so a parsed ID is always safe
    /// to use as a file name.
    fn from_str(s: &str) -> Result<ChunkId, InvalidChunkId> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(InvalidChunkId);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| InvalidChunkId)?;
        Ok(ChunkId(out))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..12])
    }
}

impl Serialize for ChunkId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ChunkId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One piece of an object: which chunk, where it starts in the object, and
/// how long it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub id: ChunkId,
    pub offset: u64,
    pub size: u64,
}

/// Everything the cluster knows about one object version: its chunk list and
/// the HTTP metadata S3 returns with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectManifest {
    pub size: u64,
    pub etag: ETag,
    /// Milliseconds since the Unix epoch.
    pub last_modified_ms: i64,
    pub content_type: Option<String>,
    /// Other stored response headers (Content-Encoding, Cache-Control, …),
    /// lowercase names.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// `x-amz-meta-*` user metadata, names lowercase and without the prefix.
    #[serde(default)]
    pub user_metadata: Vec<(String, String)>,
    /// The verified flexible checksum, if the client sent one.
    #[serde(default)]
    pub checksum: Option<Checksum>,
    pub chunks: Vec<ChunkRef>,
    /// Object tags (key, value), in the order given.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The multipart upload this object was completed from, if any.
    #[serde(default)]
    pub upload_id: Option<String>,
    /// For an object made by a multipart upload: its parts, in order.
    #[serde(default)]
    pub parts: Vec<ObjectPart>,
    /// A small object's bytes, kept in the manifest itself instead of in
    /// chunks (`chunks` is then empty): written with the metadata in one Raft
    /// entry, so they have as many copies as the meta group has voters.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "base64_bytes")]
    pub inline: Option<Vec<u8>>,
    /// The version's id in a bucket with versioning; None is the `null`
    /// version (every object of a bucket that never had versioning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Object Lock: the version may not be deleted before this retention ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Object Lock: the version may not be deleted while the hold is on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub legal_hold: bool,
    /// Server-side encryption: the chunks (or inline bytes) hold ciphertext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<sse::Encryption>,
}

/// An Object Lock retention: until when, and who may shorten it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: LockMode,
    /// Milliseconds since the Unix epoch.
    pub until_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    /// Shortened or removed only with the bypass permission and header.
    Governance,
    /// Extended, never shortened or removed, by anyone, until it ends.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Option<LockMode> {
        match s {
            "GOVERNANCE" => Some(LockMode::Governance),
            "COMPLIANCE" => Some(LockMode::Compliance),
            _ => None,
        }
    }
}

/// The id S3 gives the version a bucket without versioning writes.
pub const NULL_VERSION: &str = "null";

impl ObjectManifest {
    /// The id this version answers to: its own, or `null`.
    pub fn version(&self) -> &str {
        self.version_id.as_deref().unwrap_or(NULL_VERSION)
    }

    /// Why the version may not be deleted at `now_ms` (None: it may be);
    /// `bypass`: a governance retention is lifted by a bypass.
    pub fn lock_at(&self, now_ms: i64, bypass: bool) -> Option<&'static str> {
        if self.legal_hold {
            return Some("a legal hold is on");
        }
        match &self.retention {
            Some(r) if r.until_ms > now_ms && r.mode == LockMode::Compliance => Some("under compliance retention"),
            Some(r) if r.until_ms > now_ms && !bypass => Some("under governance retention"),
            _ => None,
        }
    }
}

/// Optional bytes as a base64 string: JSON would spell each byte as a number.
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => STANDARD.decode(text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// One part of an object made by a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPart {
    pub size: u64,
    /// The part's verified flexible checksum.
    #[serde(default)]
    pub checksum: Option<Checksum>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A random 64-bit identifier (node IDs, request IDs).
pub fn random_u64() -> u64 {
    rand::random::<u64>()
}

/// A new access key: "JADFS" and 15 random capitals and digits (20 characters, as AWS's).
pub fn generate_access_key() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..15).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    format!("JADFS{tail}")
}

/// A new secret key: 40 random letters and digits.
pub fn generate_secret_key() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_id_parses_only_canonical_hex() {
        let id = ChunkId::of(b"hello");
        assert_eq!(id.to_hex().parse::<ChunkId>().unwrap(), id);
        for bad in [
            "",
            "../../etc/passwd",
            &id.to_hex().to_uppercase(),
            &id.to_hex()[..63],
            &format!("{}0", id.to_hex()),
            &format!("{}/", &id.to_hex()[..63]),
        ] {
            assert_eq!(bad.parse::<ChunkId>(), Err(InvalidChunkId), "{bad}");
        }
    }

    #[test]
    fn chunk_id_serializes_as_hex_string() {
        let id = ChunkId::of(b"");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
        assert_eq!(serde_json::from_str::<ChunkId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<ChunkId>("\"../x\"").is_err());
    }

    #[test]
    fn inline_bytes_are_base64_and_optional() {
        let mut manifest: ObjectManifest = serde_json::from_value(serde_json::json!({
            "size": 0, "etag": "\"x\"", "last_modified_ms": 0, "content_type": null, "chunks": []
        }))
        .unwrap();
        assert_eq!(manifest.inline, None);
        assert!(!serde_json::to_string(&manifest).unwrap().contains("inline"));
        manifest.inline = Some(vec![0, 1, 254, 255]);
        let json = serde_json::to_value(&manifest).unwrap();
        assert_eq!(json["inline"], "AAH+/w==");
        assert_eq!(serde_json::from_value::<ObjectManifest>(json).unwrap(), manifest);
    }
}
