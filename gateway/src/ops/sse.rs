//! Server-side encryption as S3 asks for it: the encryption a write gets
//! (its headers, or else its bucket's default), the key a read must bring,
//! and the headers that answer. The cipher itself is `jadfs_common::sse`.

use jadfs_common::sse::{key_md5, DataKey, Encryption, Keystream, SseMode, WrappingKey};
use jadfs_common::ObjectManifest;

use actix_web::HttpResponse;
use jadfs_meta::Command;

use super::{xml_response, Ctx};
use crate::body::RequestBody;
use crate::error::{Code, S3Error};
use crate::xml::{self, XmlWriter};
use crate::Gateway;

pub const SSE: &str = "x-amz-server-side-encryption";
pub const KMS_KEY_ID: &str = "x-amz-server-side-encryption-aws-kms-key-id";
const KMS_CONTEXT: &str = "x-amz-server-side-encryption-context";
/// The prefix of the SSE-C headers of the object a request names, and of
/// the source of a copy.
pub const CUSTOMER: &str = "x-amz-server-side-encryption-customer-";
pub const CUSTOMER_ALGORITHM: &str = "x-amz-server-side-encryption-customer-algorithm";
pub const SOURCE_CUSTOMER: &str = "x-amz-copy-source-server-side-encryption-customer-";
pub const AES256: &str = "AES256";
pub const KMS: &str = "aws:kms";

/// The encryption of new bytes, with the key that seals their data keys.
pub struct Sealer {
    pub mode: SseMode,
    wrapping: WrappingKey,
}

impl Sealer {
    /// A fresh key for one body.
    pub fn new_body(&self) -> NewBody {
        let key = DataKey::random();
        let sealed = key.seal(&self.wrapping);
        NewBody { key, sealed, hide_md5: !matches!(self.mode, SseMode::S3) }
    }

    /// The manifest's `encryption` of one body sealed as `sealed`.
    pub fn encryption(&self, sealed: String) -> Encryption {
        Encryption { mode: self.mode.clone(), keys: vec![sealed] }
    }
}

/// One body's data key, as its write uses it.
pub struct NewBody {
    key: DataKey,
    /// The key sealed, for the manifest.
    pub sealed: String,
    hide_md5: bool,
}

impl NewBody {
    pub fn keystream(&self) -> Keystream {
        self.key.keystream()
    }

    /// The MD5 the body's ETag shows: its own under SSE-S3 (as AWS), one
    /// derived from it and the data key under SSE-C and SSE-KMS, whose
    /// ETags AWS does not make the MD5 of the data either.
    pub fn etag_md5(&self, md5: [u8; 16]) -> [u8; 16] {
        if self.hide_md5 {
            self.key.hidden_md5(&md5)
        } else {
            md5
        }
    }
}

/// The ETag MD5 of a body stored with `body`'s key (or in the clear).
pub fn etag_md5(body: Option<&NewBody>, md5: [u8; 16]) -> [u8; 16] {
    body.map_or(md5, |b| b.etag_md5(md5))
}

fn invalid(message: &str) -> S3Error {
    S3Error::new(Code::InvalidArgument).with_message(message)
}

fn kms_key_without_kms() -> S3Error {
    invalid("A KMS key id needs x-amz-server-side-encryption: aws:kms.")
}

/// The mode a write asks for in `header` (a request header or a form
/// field, by lowercase name), or else `default`, its bucket's; None: stored
/// as sent. A customer's key is checked against its MD5.
pub fn mode_for_write<'h>(
    gw: &Gateway,
    header: &impl Fn(&str) -> Option<&'h str>,
    default: Option<&SseMode>,
) -> Result<Option<Sealer>, S3Error> {
    let customer = customer_key(header, CUSTOMER)?;
    if header(KMS_CONTEXT).is_some() {
        return Err(S3Error::new(Code::NotImplemented)
            .with_message("An SSE-KMS encryption context is not implemented; the key id alone is."));
    }
    let key_id = header(KMS_KEY_ID);
    match (header(SSE), customer) {
        (Some(_), Some(_)) => Err(invalid(
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified.",
        )),
        (None, Some(key)) => {
            if key_id.is_some() {
                return Err(kms_key_without_kms());
            }
            Ok(Some(customer_sealer(&key)))
        }
        (Some(AES256), None) if key_id.is_none() => Ok(Some(sealer(gw, SseMode::S3)?)),
        (Some(KMS), None) => {
            let key_id = key_id.ok_or_else(|| {
                invalid("SSE-KMS needs a key id (x-amz-server-side-encryption-aws-kms-key-id): there is no default KMS key.")
            })?;
            Ok(Some(sealer(gw, SseMode::Kms { key_id: key_id.to_string() })?))
        }
        (Some(AES256), None) => Err(kms_key_without_kms()),
        (Some(_), None) => Err(invalid("The encryption method specified is not supported (AES256 or aws:kms).")),
        (None, None) if key_id.is_some() => Err(kms_key_without_kms()),
        (None, None) => default.map(|mode| sealer(gw, mode.clone())).transpose(),
    }
}

/// The sealer of a bucket-held mode (SSE-S3 or SSE-KMS; never SSE-C, whose
/// key only a request brings).
fn sealer(gw: &Gateway, mode: SseMode) -> Result<Sealer, S3Error> {
    let root = gw.config.cluster_key.objects_key();
    let wrapping = match &mode {
        SseMode::S3 => WrappingKey::s3(root),
        SseMode::Kms { key_id } => {
            if !gw.config.kms_keys.iter().any(|k| k == key_id) {
                return Err(invalid(&format!("The KMS key {key_id} is not one of this cluster's.")));
            }
            WrappingKey::kms(root, key_id)
        }
        SseMode::Customer { .. } => return Err(invalid("Customer keys come with each request.")),
    };
    Ok(Sealer { mode, wrapping })
}

/// A customer's key, checked: (the key, its MD5 in base64).
pub struct CustomerKey([u8; 32], String);

impl CustomerKey {
    /// Its MD5, base64, as S3 names the key.
    pub fn md5(&self) -> &str {
        &self.1
    }
}

fn customer_sealer(key: &CustomerKey) -> Sealer {
    Sealer { mode: SseMode::Customer { key_md5: key.1.clone() }, wrapping: WrappingKey::customer(&key.0) }
}

/// The SSE-C key a request brings under `prefix`, or None if it brings no
/// SSE-C header at all; one header without the others is refused.
pub fn customer_key<'h>(
    header: &impl Fn(&str) -> Option<&'h str>,
    prefix: &str,
) -> Result<Option<CustomerKey>, S3Error> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let [algorithm, key, md5] = ["algorithm", "key", "key-md5"].map(|name| header(&format!("{prefix}{name}")));
    if algorithm.is_none() && key.is_none() && md5.is_none() {
        return Ok(None);
    }
    match algorithm {
        Some(AES256) => {}
        Some(_) => return Err(invalid("The encryption algorithm of a customer key must be AES256.")),
        None => return Err(invalid("Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.")),
    }
    let key = key
        .and_then(|k| STANDARD.decode(k.trim()).ok())
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| invalid("The secret key was invalid for the specified algorithm (a 256-bit key, base64)."))?;
    let computed = key_md5(&key);
    match md5 {
        Some(given) if given.trim() == computed => Ok(Some(CustomerKey(key, computed))),
        Some(_) => Err(invalid("The calculated MD5 hash of the key did not match the hash that was provided.")),
        None => Err(invalid(
            "Requests specifying Server Side Encryption with Customer provided keys must provide the key's MD5.",
        )),
    }
}

/// The sealer of an upload's next part: the upload's mode, whose SSE-C key
/// the part's request must bring again.
pub fn mode_for_part<'h>(
    gw: &Gateway,
    header: &impl Fn(&str) -> Option<&'h str>,
    mode: Option<&SseMode>,
) -> Result<Option<Sealer>, S3Error> {
    let brought = customer_key(header, CUSTOMER)?;
    match (mode, brought) {
        (Some(SseMode::Customer { key_md5 }), Some(key)) if *key_md5 == key.1 => Ok(Some(customer_sealer(&key))),
        (Some(SseMode::Customer { .. }), Some(_)) => {
            Err(invalid("The key of a part must be the key the multipart upload was started with."))
        }
        (Some(SseMode::Customer { .. }), None) => {
            Err(invalid("The multipart upload was started with a customer key; each part must bring it."))
        }
        (_, Some(_)) => Err(invalid("The multipart upload was not started with a customer key.")),
        (Some(mode), None) => Ok(Some(sealer(gw, mode.clone())?)),
        (None, None) => Ok(None),
    }
}

/// The keys of an object's bytes, checked against what the request
/// brings (an SSE-C object's key, under `prefix`); None: not encrypted.
pub fn open<'h>(
    gw: &Gateway,
    header: &impl Fn(&str) -> Option<&'h str>,
    prefix: &str,
    manifest: &ObjectManifest,
) -> Result<Option<Vec<(u64, DataKey)>>, S3Error> {
    let brought = customer_key(header, prefix)?;
    let Some(encryption) = &manifest.encryption else {
        return match brought {
            Some(_) => Err(S3Error::new(Code::InvalidRequest)
                .with_message("The encryption parameters are not applicable to this object.")),
            None => Ok(None),
        };
    };
    let root = gw.config.cluster_key.objects_key();
    let wrapping = match (&encryption.mode, brought) {
        (SseMode::Customer { key_md5 }, Some(key)) if *key_md5 == key.1 => WrappingKey::customer(&key.0),
        (SseMode::Customer { .. }, Some(_)) => {
            return Err(S3Error::new(Code::InvalidRequest)
                .with_message("The provided key is not the key the object was encrypted with."))
        }
        (SseMode::Customer { .. }, None) => {
            return Err(S3Error::new(Code::InvalidRequest).with_message(
                "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.",
            ))
        }
        (_, Some(_)) => {
            return Err(S3Error::new(Code::InvalidRequest)
                .with_message("The encryption parameters are not applicable to this object."))
        }
        (SseMode::S3, None) => WrappingKey::s3(root),
        (SseMode::Kms { key_id }, None) => WrappingKey::kms(root, key_id),
    };
    let sizes: Vec<u64> =
        if manifest.parts.is_empty() { vec![manifest.size] } else { manifest.parts.iter().map(|p| p.size).collect() };
    if sizes.len() != encryption.keys.len() {
        return Err(S3Error::internal("an encrypted object's keys do not match its parts"));
    }
    let mut bodies = Vec::with_capacity(sizes.len());
    for (size, sealed) in sizes.into_iter().zip(&encryption.keys) {
        let key = DataKey::unseal(sealed, &wrapping)
            .map_err(|_| S3Error::internal("an object's data key does not open with the cluster's key"))?;
        bodies.push((size, key));
    }
    Ok(Some(bodies))
}

/// Whether a copy may share its source's chunks, and so keep its
/// source's encryption; otherwise its bytes are decrypted and written anew.
/// A copy asking for nothing in a bucket without a default keeps an SSE-S3
/// or SSE-KMS source's (AWS would encrypt it anyway); an SSE-C source's
/// copy is written in the clear, as AWS's.
pub fn copy_shares(source: Option<&SseMode>, asked: Option<&SseMode>) -> bool {
    source == asked || (matches!(source, Some(SseMode::S3 | SseMode::Kms { .. })) && asked.is_none())
}

/// A read request may not ask for an encryption: only a write chooses one.
pub fn refuse_on_read<'h>(header: &impl Fn(&str) -> Option<&'h str>) -> Result<(), S3Error> {
    if header(SSE).is_some() || header(KMS_KEY_ID).is_some() {
        return Err(invalid("x-amz-server-side-encryption is for writes; a read names only a customer key."));
    }
    Ok(())
}

/// The headers that tell a client how an object is encrypted.
pub fn headers(mode: Option<&SseMode>) -> Vec<(&'static str, String)> {
    match mode {
        None => Vec::new(),
        Some(SseMode::S3) => vec![(SSE, AES256.to_string())],
        Some(SseMode::Kms { key_id }) => vec![(SSE, KMS.to_string()), (KMS_KEY_ID, key_id.clone())],
        Some(SseMode::Customer { key_md5 }) => vec![
            ("x-amz-server-side-encryption-customer-algorithm", AES256.to_string()),
            ("x-amz-server-side-encryption-customer-key-md5", key_md5.clone()),
        ],
    }
}

/// GetBucketEncryption: the encryption of objects written without asking.
pub async fn get_bucket_encryption(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    let mode = ctx.bucket().await?.encryption.clone().ok_or(Code::ServerSideEncryptionConfigurationNotFoundError)?;
    let mut x = XmlWriter::new();
    x.open("ServerSideEncryptionConfiguration");
    x.open("Rule");
    x.open("ApplyServerSideEncryptionByDefault");
    match &mode {
        SseMode::Kms { key_id } => {
            x.element("SSEAlgorithm", KMS);
            x.element("KMSMasterKeyID", key_id);
        }
        _ => x.element("SSEAlgorithm", AES256),
    }
    x.close("ApplyServerSideEncryptionByDefault");
    x.element("BucketKeyEnabled", "false");
    x.close("Rule");
    x.close("ServerSideEncryptionConfiguration");
    Ok(xml_response(x))
}

/// PutBucketEncryption: one rule, SSE-S3 or SSE-KMS with a key of ours.
pub async fn put_bucket_encryption(ctx: &Ctx<'_>, body: RequestBody) -> Result<HttpResponse, S3Error> {
    let body = ctx.small_body(body, 16 << 10).await?;
    let root = xml::parse(&body, 16)?;
    let rules: Vec<_> = root.children_named("Rule").collect();
    let [rule] = rules[..] else {
        return Err(Code::MalformedXML.into());
    };
    if root.name != "ServerSideEncryptionConfiguration" {
        return Err(Code::MalformedXML.into());
    }
    let default = rule.child("ApplyServerSideEncryptionByDefault").ok_or(Code::MalformedXML)?;
    let algorithm = default.child("SSEAlgorithm").map(|a| a.text.as_str());
    let key_id = default.child("KMSMasterKeyID").map(|k| k.text.trim()).filter(|k| !k.is_empty());
    let mode = match (algorithm, key_id) {
        (Some(AES256), None) => SseMode::S3,
        (Some(KMS), Some(key_id)) => SseMode::Kms { key_id: key_id.to_string() },
        (Some(KMS), None) => return Err(invalid("SSE-KMS needs a KMSMasterKeyID: there is no default KMS key.")),
        (Some(AES256), Some(_)) => return Err(invalid("A KMSMasterKeyID needs the aws:kms algorithm.")),
        _ => return Err(invalid("The encryption method specified is not supported (AES256 or aws:kms).")),
    };
    sealer(&ctx.gw, mode.clone())?; // the KMS key must be one of ours
    ctx.gw.meta.write(&Command::SetBucketEncryption { bucket: ctx.bucket_name().into(), mode: Some(mode) }).await?;
    Ok(HttpResponse::Ok().finish())
}

pub async fn delete_bucket_encryption(ctx: &Ctx<'_>) -> Result<HttpResponse, S3Error> {
    ctx.gw.meta.write(&Command::SetBucketEncryption { bucket: ctx.bucket_name().into(), mode: None }).await?;
    Ok(HttpResponse::NoContent().finish())
}
