//! Secrets kept in the metadata (access keys' secrets), sealed with
//! ChaCha20-Poly1305 under a key derived from the cluster secret, so that
//! the Raft log, the state database and its snapshots never hold them in
//! plain text. SigV4 needs the secret itself (a hash would not do), so the
//! gateway, which holds the cluster secret, unseals it when it checks a
//! signature. The access key id is bound to the sealed bytes: a sealed
//! secret moved to another key's record does not open.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

const PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a sealed secret does not open with this cluster's secret")]
pub struct Unsealable;

/// `secret`, sealed for the access key `access_key`.
pub fn seal(key: &[u8; 32], access_key: &str, secret: &str) -> String {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let nonce: [u8; NONCE_LEN] = rand::random();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: access_key.as_bytes() })
        .expect("sealing a short secret cannot fail");
    format!("{PREFIX}{}", STANDARD.encode([&nonce[..], &sealed].concat()))
}

/// Whether a stored secret is sealed (secrets written before sealing are not).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The secret a stored value holds: unsealed, or as it is if it was
/// written before secrets were sealed.
pub fn unseal(key: &[u8; 32], access_key: &str, stored: &str) -> Result<String, Unsealable> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_string()) };
    let raw = STANDARD.decode(encoded).map_err(|_| Unsealable)?;
    if raw.len() < NONCE_LEN {
        return Err(Unsealable);
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: access_key.as_bytes() })
        .map_err(|_| Unsealable)?;
    String::from_utf8(plain).map_err(|_| Unsealable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_for_its_access_key() {
        let key = [7u8; 32];
        let sealed = seal(&key, "AK1", "the secret");
        assert!(is_sealed(&sealed) && !sealed.contains("the secret"));
        assert_ne!(sealed, seal(&key, "AK1", "the secret"), "a fresh nonce each time");
        assert_eq!(unseal(&key, "AK1", &sealed).unwrap(), "the secret");
        assert_eq!(unseal(&[8u8; 32], "AK1", &sealed), Err(Unsealable));
        assert_eq!(unseal(&key, "AK2", &sealed), Err(Unsealable), "moved to another key's record");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(unseal(&key, "AK1", &tampered), Err(Unsealable));
        assert_eq!(unseal(&key, "AK1", "written before sealing").unwrap(), "written before sealing");
    }
}
