//! Server-side encryption of object data: SSE-S3, SSE-KMS and SSE-C.
//!
//! Every stored body (a PUT's, or each part of a multipart upload) is
//! encrypted with its own random 256-bit data key, AES-256 in counter mode
//! from a zero counter. A data key encrypts one body only, so no keystream
//! is ever used twice, and any byte of a body can be decrypted alone (a
//! ranged GET starts anywhere).
//!
//! The data key is kept in the manifest sealed (ChaCha20-Poly1305, as
//! `sealed` seals access keys' secrets) under a wrapping key:
//! - SSE-S3: a key derived from the cluster secret;
//! - SSE-KMS: a key derived from the cluster secret and the key's name, for
//!   the names the gateway's configuration lists;
//! - SSE-C: the customer's key, which is never stored (its MD5 is, as S3
//!   returns it).
//!
//! A storage node holds ciphertext only. Integrity needs no MAC of our
//! own: every chunk is checked against the SHA-256 its manifest (Raft's)
//! names before a byte of it is decrypted.

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// Who holds the key that opens an object's data keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SseMode {
    /// `x-amz-server-side-encryption: AES256`.
    S3,
    /// `x-amz-server-side-encryption: aws:kms` with this key.
    Kms { key_id: String },
    /// SSE-C: the client sends its key with every request; `key_md5` is its
    /// MD5, base64, as S3 names it in answers.
    Customer { key_md5: String },
}

/// How an object's bytes are encrypted: its mode, and the sealed data key
/// of each stored body (one for a PUT; one per part, in order, for an
/// object made by a multipart upload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    pub mode: SseMode,
    pub keys: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a data key does not open with this key")]
pub struct WrongKey;

/// A key that seals data keys, bound to what it is for: a data key sealed
/// for SSE-S3 does not open as a KMS key's or a customer's.
pub struct WrappingKey {
    key: [u8; 32],
    context: String,
}

impl WrappingKey {
    /// The key of `mode`: derived from `root` (the cluster's object key)
    /// for SSE-S3 and SSE-KMS, the customer's own for SSE-C.
    pub fn s3(root: &[u8; 32]) -> WrappingKey {
        WrappingKey { key: derive(root, b"sse-s3"), context: "sse-s3".into() }
    }

    pub fn kms(root: &[u8; 32], key_id: &str) -> WrappingKey {
        let context = format!("sse-kms:{key_id}");
        WrappingKey { key: derive(root, context.as_bytes()), context }
    }

    pub fn customer(key: &[u8; 32]) -> WrappingKey {
        WrappingKey { key: *key, context: "sse-c".into() }
    }
}

fn derive(root: &[u8; 32], purpose: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(root).expect("HMAC takes keys of any length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

/// The MD5 of a customer's key, base64: how S3 names an SSE-C key.
pub fn key_md5(key: &[u8]) -> String {
    STANDARD.encode(Md5::digest(key))
}

const NONCE_LEN: usize = 12;

/// One body's key. Never printed, never stored unsealed.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    pub fn random() -> DataKey {
        DataKey(rand::random())
    }

    pub fn seal(&self, wrapping: &WrappingKey) -> String {
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&wrapping.key));
        let nonce: [u8; NONCE_LEN] = rand::random();
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &self.0, aad: wrapping.context.as_bytes() })
            .expect("sealing 32 bytes cannot fail");
        STANDARD.encode([&nonce[..], &sealed].concat())
    }

    pub fn unseal(sealed: &str, wrapping: &WrappingKey) -> Result<DataKey, WrongKey> {
        let raw = STANDARD.decode(sealed).map_err(|_| WrongKey)?;
        if raw.len() < NONCE_LEN {
            return Err(WrongKey);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&wrapping.key));
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: wrapping.context.as_bytes() })
            .map_err(|_| WrongKey)?;
        Ok(DataKey(plain.try_into().map_err(|_| WrongKey)?))
    }

    /// What the ETag of this key's body shows instead of the body's MD5,
    /// where S3 does not show the MD5 (SSE-C, SSE-KMS): a MAC of it under
    /// this key, so it says nothing of the plaintext to whoever lists.
    pub fn hidden_md5(&self, md5: &[u8; 16]) -> [u8; 16] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&derive(&self.0, b"etag")).expect("any key length");
        mac.update(md5);
        mac.finalize().into_bytes()[..16].try_into().expect("16 of 32 bytes")
    }

    /// The keystream of this key's body, from its first byte.
    pub fn keystream(&self) -> Keystream {
        Keystream(Aes256Ctr::new(&self.0.into(), &[0u8; 16].into()))
    }
}

/// Encrypts (or decrypts: it is the same) one body's bytes in order.
pub struct Keystream(Aes256Ctr);

impl Keystream {
    /// Moves to byte `position` of the body.
    pub fn seek(&mut self, position: u64) {
        self.0.seek(position);
    }

    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }

    /// A copy of `data` with the keystream applied (the piece a stream
    /// hands on; its own bytes may be shared and are left as they are).
    pub fn applied(&mut self, data: &[u8]) -> Bytes {
        let mut out = BytesMut::from(data);
        self.apply(&mut out);
        out.freeze()
    }
}

/// Decrypts an object's bytes read in order from some offset: each byte is
/// given the keystream of the body (the part) it belongs to.
pub struct ObjectDecryptor {
    /// (first byte in the object, length, key) of each body.
    bodies: Vec<(u64, u64, DataKey)>,
    position: u64,
    current: Option<(usize, Keystream)>,
}

impl ObjectDecryptor {
    /// `bodies`: each body's length and key, in order; the bytes to decrypt
    /// start at `start`.
    pub fn new(bodies: Vec<(u64, DataKey)>, start: u64) -> ObjectDecryptor {
        let mut offset = 0;
        let bodies = bodies
            .into_iter()
            .map(|(len, key)| {
                let body = (offset, len, key);
                offset += len;
                body
            })
            .collect();
        ObjectDecryptor { bodies, position: start, current: None }
    }

    pub fn apply(&mut self, mut data: &mut [u8]) {
        while !data.is_empty() {
            let Some(index) = self.bodies.iter().position(|(first, len, _)| self.position < first + len) else {
                return; // past the end: nothing of ours to decrypt
            };
            let (first, len, key) = &self.bodies[index];
            if self.current.as_ref().map(|(i, _)| *i) != Some(index) {
                let mut stream = key.keystream();
                stream.seek(self.position - first);
                self.current = Some((index, stream));
            }
            let take = ((first + len - self.position) as usize).min(data.len());
            let (now, rest) = data.split_at_mut(take);
            self.current.as_mut().expect("just set").1.apply(now);
            self.position += take as u64;
            data = rest;
        }
    }

    /// A decrypted copy of `data`, the next bytes read.
    pub fn applied(&mut self, data: &[u8]) -> Bytes {
        let mut out = BytesMut::from(data);
        self.apply(&mut out);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_key_opens_only_with_the_key_and_purpose_it_was_sealed_for() {
        let root = [9u8; 32];
        let key = DataKey::random();
        let sealed = key.seal(&WrappingKey::s3(&root));
        assert_eq!(DataKey::unseal(&sealed, &WrappingKey::s3(&root)).unwrap().0, key.0);
        assert_eq!(DataKey::unseal(&sealed, &WrappingKey::s3(&[8u8; 32])).unwrap_err(), WrongKey);
        assert_eq!(DataKey::unseal(&sealed, &WrappingKey::kms(&root, "k1")).unwrap_err(), WrongKey);
        let kms = key.seal(&WrappingKey::kms(&root, "k1"));
        assert_eq!(DataKey::unseal(&kms, &WrappingKey::kms(&root, "k2")).unwrap_err(), WrongKey);
        // A customer's key that equals the derived one still differs by purpose.
        let derived = derive(&root, b"sse-s3");
        assert_eq!(DataKey::unseal(&sealed, &WrappingKey::customer(&derived)).unwrap_err(), WrongKey);
        assert_eq!(DataKey::unseal("not base64!", &WrappingKey::s3(&root)).unwrap_err(), WrongKey);
        assert_eq!(DataKey::unseal("", &WrappingKey::s3(&root)).unwrap_err(), WrongKey);
    }

    #[test]
    fn any_range_of_a_multi_body_object_decrypts_alone() {
        let keys = [DataKey::random(), DataKey::random(), DataKey::random()];
        let lengths = [100u64, 37, 250];
        let plain: Vec<u8> = (0..387u32).map(|i| (i * 7 % 251) as u8).collect();
        // Encrypt each body from its own start, as the write path does.
        let mut cipher = Vec::new();
        let mut offset = 0;
        for (key, len) in keys.iter().zip(lengths) {
            let mut body = plain[offset..offset + len as usize].to_vec();
            key.keystream().apply(&mut body);
            cipher.extend(body);
            offset += len as usize;
        }
        assert_ne!(cipher, plain);
        let bodies = || keys.iter().cloned().zip(lengths).map(|(k, l)| (l, k)).collect::<Vec<_>>();
        for (start, end) in [(0, 386), (5, 5), (99, 100), (90, 150), (137, 386), (136, 137), (200, 300)] {
            let mut got = cipher[start..=end].to_vec();
            let mut decryptor = ObjectDecryptor::new(bodies(), start as u64);
            // In pieces of odd sizes, as a stream delivers them.
            for piece in got.chunks_mut(13) {
                decryptor.apply(piece);
            }
            assert_eq!(got, &plain[start..=end], "range {start}-{end}");
        }
    }

    #[test]
    fn the_md5_of_a_customer_key_is_as_s3_names_it() {
        // The key and MD5 of Ceph's s3-tests, as AWS's documentation computes them.
        let key = STANDARD.decode("pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=").unwrap();
        assert_eq!(key_md5(&key), "DWygnHRtgiJ77HCm+1rvHw==");
    }
}
