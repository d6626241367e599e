//! Proof that a request between JaDFS roles comes from a holder of the
//! cluster secret. Every internal request carries
//! `x-jadfs-auth: v1 <session> <sequence> <unix seconds> <hmac>`, where the
//! HMAC-SHA256 (keyed by a key derived from the secret) covers the method,
//! the path with its query, and the three numbers.
//!
//! Replays are refused without remembering every request: each client
//! process signs under a random session id and numbers its requests; the
//! checker keeps, per session, the highest number seen and which of the
//! [`WINDOW`] numbers below it were used (IPsec's anti-replay window). The
//! timestamp need only be within [`MAX_SKEW`] of the checker's clock, as
//! loose as SigV4's, so a node whose clock is minutes off keeps working;
//! a session silent for twice that is forgotten, by when every request it
//! signed is too old to be taken.
//!
//! Bodies are not covered: what an on-path attacker could change, TLS on
//! internal links protects; chunk bytes are checked by their CRC32C and id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header an internal request proves itself in.
pub const HEADER: &str = "x-jadfs-auth";
/// How far a request's timestamp may be from the checker's clock, in seconds.
pub const MAX_SKEW: i64 = 15 * 60;
/// How far behind the highest number of its session a request may arrive
/// (requests of one process travel on many connections at once).
pub const WINDOW: u64 = 4096;
/// Sessions remembered at most; only holders of the secret make sessions.
const MAX_SESSIONS: usize = 100_000;
/// The shortest cluster secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// The keys derived from the cluster secret, one per use.
pub struct ClusterKey {
    requests: [u8; 32],
    secrets: [u8; 32],
    objects: [u8; 32],
}

/// Never prints the keys.
impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the cluster secret must be at least {MIN_SECRET_LEN} characters")]
pub struct WeakSecret;

impl ClusterKey {
    pub fn from_secret(secret: &str) -> Result<ClusterKey, WeakSecret> {
        let secret = secret.trim();
        if secret.len() < MIN_SECRET_LEN {
            return Err(WeakSecret);
        }
        let derive = |purpose: &[u8]| -> [u8; 32] {
            let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
            mac.update(purpose);
            mac.finalize().into_bytes().into()
        };
        Ok(ClusterKey {
            requests: derive(b"jadfs cluster requests v1"),
            secrets: derive(b"jadfs secrets at rest v1"),
            objects: derive(b"jadfs object encryption v1"),
        })
    }

    /// The key that seals access-key secrets kept in the metadata.
    pub fn secrets_key(&self) -> &[u8; 32] {
        &self.secrets
    }

    /// The root of the keys that seal encrypted objects' data keys
    /// (SSE-S3 and SSE-KMS): see `sse::KeyRing`.
    pub fn objects_key(&self) -> &[u8; 32] {
        &self.objects
    }

    fn mac(&self, method: &str, path_and_query: &str, session: u64, sequence: u64, time: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.requests).expect("HMAC takes keys of any length");
        mac.update(format!("JADFS-V1\n{method}\n{path_and_query}\n{session:016x}\n{sequence}\n{time}").as_bytes());
        mac
    }
}

/// The signing side: one per client process, numbering its requests.
pub struct Signer {
    key: std::sync::Arc<ClusterKey>,
    session: u64,
    next: AtomicU64,
}

impl Signer {
    pub fn new(key: std::sync::Arc<ClusterKey>) -> Signer {
        Signer { key, session: rand::random(), next: AtomicU64::new(1) }
    }

    /// The [`HEADER`] value for a request, at `time` (unix seconds).
    pub fn sign(&self, method: &str, path_and_query: &str, time: i64) -> String {
        let sequence = self.next.fetch_add(1, Ordering::Relaxed);
        let mac = self.key.mac(method, path_and_query, self.session, sequence, time);
        let tag = hex::encode(mac.finalize().into_bytes());
        format!("v1 {:016x} {sequence} {time} {tag}", self.session)
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request carries no {HEADER} header: internal APIs need the cluster secret")]
    Missing,
    #[error("the {HEADER} header is malformed")]
    Malformed,
    #[error("the request is not signed with this cluster's secret")]
    BadSignature,
    #[error("the request's time is more than {MAX_SKEW} s from this node's clock")]
    Stale,
    #[error("the request was already seen (a replay) or is too far behind its session")]
    Replayed,
}

/// The checking side: refuses unsigned, mis-signed, stale and replayed requests.
pub struct Verifier {
    key: std::sync::Arc<ClusterKey>,
    sessions: Mutex<HashMap<u64, Session>>,
}

/// What a checker remembers of one signer.
struct Session {
    highest: u64,
    /// Bit `i`: number `highest - i` was used.
    used: [u64; (WINDOW / 64) as usize],
    last_seen: i64,
}

impl Session {
    /// Takes `sequence` once; false if it was taken or is below the window.
    fn take(&mut self, sequence: u64) -> bool {
        if sequence > self.highest {
            self.shift(sequence - self.highest);
            self.highest = sequence;
            self.used[0] |= 1;
            return true;
        }
        let behind = self.highest - sequence;
        if behind >= WINDOW {
            return false;
        }
        let (word, bit) = ((behind / 64) as usize, behind % 64);
        if self.used[word] & (1 << bit) != 0 {
            return false;
        }
        self.used[word] |= 1 << bit;
        true
    }

    /// Moves the window up by `by` numbers.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.used = [0; (WINDOW / 64) as usize];
            return;
        }
        let (words, bits) = ((by / 64) as usize, (by % 64) as u32);
        let n = self.used.len();
        for i in (0..n).rev() {
            let from = i.checked_sub(words);
            let high = from.map_or(0, |f| self.used[f]);
            let low = from.and_then(|f| f.checked_sub(1)).map_or(0, |f| self.used[f]);
            self.used[i] = if bits == 0 { high } else { (high << bits) | (low >> (64 - bits)) };
        }
    }
}

impl Verifier {
    pub fn new(key: std::sync::Arc<ClusterKey>) -> Verifier {
        Verifier { key, sessions: Mutex::new(HashMap::new()) }
    }

    /// Checks a request's [`HEADER`] at `now` (unix seconds).
    pub fn check(&self, method: &str, path_and_query: &str, header: Option<&str>, now: i64) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let fields: Vec<&str> = header.split(' ').collect();
        let [version, session, sequence, time, tag] = fields[..] else { return Err(AuthError::Malformed) };
        if version != "v1" || session.len() != 16 {
            return Err(AuthError::Malformed);
        }
        let session = u64::from_str_radix(session, 16).map_err(|_| AuthError::Malformed)?;
        let sequence: u64 = sequence.parse().map_err(|_| AuthError::Malformed)?;
        let time: i64 = time.parse().map_err(|_| AuthError::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| AuthError::Malformed)?;
        let mac = self.key.mac(method, path_and_query, session, sequence, time);
        mac.verify_slice(&tag).map_err(|_| AuthError::BadSignature)?;
        if (now - time).abs() > MAX_SKEW {
            return Err(AuthError::Stale);
        }
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if sessions.len() >= MAX_SESSIONS && !sessions.contains_key(&session) {
            sessions.retain(|_, s| now - s.last_seen <= 2 * MAX_SKEW);
            if sessions.len() >= MAX_SESSIONS {
                return Err(AuthError::Replayed);
            }
        }
        let entry = sessions.entry(session).or_insert(Session {
            highest: 0,
            used: [0; (WINDOW / 64) as usize],
            last_seen: now,
        });
        entry.last_seen = entry.last_seen.max(now);
        if entry.take(sequence) {
            Ok(())
        } else {
            Err(AuthError::Replayed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(secret: &str) -> Arc<ClusterKey> {
        Arc::new(ClusterKey::from_secret(secret).unwrap())
    }

    #[test]
    fn a_signed_request_passes_once() {
        let (signer, verifier) = (Signer::new(key("a cluster secret!")), Verifier::new(key("a cluster secret!")));
        let header = signer.sign("POST", "/v1/write", 1000);
        assert_eq!(verifier.check("POST", "/v1/write", Some(&header), 1000), Ok(()));
        assert_eq!(verifier.check("POST", "/v1/write", Some(&header), 1001), Err(AuthError::Replayed));
    }

    #[test]
    fn anything_changed_or_missing_is_refused() {
        let (signer, verifier) = (Signer::new(key("a cluster secret!")), Verifier::new(key("a cluster secret!")));
        let header = signer.sign("GET", "/v1/chunks?limit=5", 1000);
        assert_eq!(verifier.check("GET", "/v1/chunks?limit=5", None, 1000), Err(AuthError::Missing));
        assert_eq!(verifier.check("GET", "/v1/chunks?limit=6", Some(&header), 1000), Err(AuthError::BadSignature));
        assert_eq!(verifier.check("PUT", "/v1/chunks?limit=5", Some(&header), 1000), Err(AuthError::BadSignature));
        let other = Signer::new(key("another secret!!"));
        let forged = other.sign("GET", "/v1/chunks?limit=5", 1000);
        assert_eq!(verifier.check("GET", "/v1/chunks?limit=5", Some(&forged), 1000), Err(AuthError::BadSignature));
        let later = header.replace(" 1000 ", " 1001 ");
        assert_eq!(verifier.check("GET", "/v1/chunks?limit=5", Some(&later), 1000), Err(AuthError::BadSignature));
        for bad in ["", "v1", "v2 0000000000000001 1 1000 00", "v1 1 1 1000 00", "v1 0000000000000001 x 1000 00"] {
            assert_eq!(verifier.check("GET", "/", Some(bad), 1000), Err(AuthError::Malformed), "{bad:?}");
        }
        assert!(ClusterKey::from_secret("short").is_err());
    }

    #[test]
    fn clocks_may_differ_by_minutes_but_not_more() {
        let (signer, verifier) = (Signer::new(key("a cluster secret!")), Verifier::new(key("a cluster secret!")));
        let ten_minutes_ahead = signer.sign("GET", "/v1/stats", 1000 + 600);
        assert_eq!(verifier.check("GET", "/v1/stats", Some(&ten_minutes_ahead), 1000), Ok(()));
        let old = signer.sign("GET", "/v1/stats", 1000 - MAX_SKEW - 1);
        assert_eq!(verifier.check("GET", "/v1/stats", Some(&old), 1000), Err(AuthError::Stale));
    }

    #[test]
    fn requests_may_arrive_out_of_order_within_the_window() {
        let (signer, verifier) = (Signer::new(key("a cluster secret!")), Verifier::new(key("a cluster secret!")));
        let headers: Vec<String> = (0..WINDOW + 100).map(|_| signer.sign("GET", "/", 0)).collect();
        // The newest first, then the others from the most recent down.
        let check = |i: usize| verifier.check("GET", "/", Some(&headers[i]), 0);
        assert_eq!(check(headers.len() - 1), Ok(()));
        for i in (100..headers.len() - 1).rev().step_by(7) {
            assert_eq!(check(i), Ok(()), "{i} is within the window");
            assert_eq!(check(i), Err(AuthError::Replayed), "{i} twice");
        }
        assert_eq!(check(50), Err(AuthError::Replayed), "below the window");
        // The window slides by more than a word, keeping what it knew.
        let mut session = Session { highest: 0, used: [0; (WINDOW / 64) as usize], last_seen: 0 };
        for n in [1u64, 2, 70, 200] {
            assert!(session.take(n));
        }
        for n in [1u64, 2, 70, 200] {
            assert!(!session.take(n), "{n} was taken");
        }
        assert!(session.take(3) && session.take(199) && session.take(71));
    }
}
