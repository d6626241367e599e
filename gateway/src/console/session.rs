//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie
//! names an entry kept in this gateway's memory (never the secret, which the
//! gateway looks up by access key as it does for signatures), with the CSRF
//! token every form of the session must carry. Sessions end after an hour
//! unused, twelve hours at most, or at sign-out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "jadfs_console";
/// The cookie of the sign-in form's own CSRF token (there is no session yet).
pub const LOGIN_COOKIE: &str = "jadfs_console_login";
pub const PATH: &str = "/-/console";

const IDLE: Duration = Duration::from_secs(3600);
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most: beyond, expired ones are dropped, and a sign-in
/// that still finds no room is refused.
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone, Debug)]
pub struct Session {
    pub access_key: String,
    pub csrf: String,
    started: Instant,
    used: Instant,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.used) > IDLE || now.duration_since(self.started) > LIFETIME
    }
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

/// 32 random bytes, hex: a session id or a token.
pub fn token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// A new session for `access_key` (whose secret was just proven): its
    /// id, or None when the table is full.
    pub fn start(&self, access_key: &str) -> Option<String> {
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| !s.expired(now));
            if sessions.len() >= MAX_SESSIONS {
                return None;
            }
        }
        let id = token();
        sessions
            .insert(id.clone(), Session { access_key: access_key.to_string(), csrf: token(), started: now, used: now });
        Some(id)
    }

    /// The session the request's cookie names, if it is still valid.
    pub fn of(&self, req: &HttpRequest) -> Option<Session> {
        let id = req.cookie(COOKIE)?.value().to_string();
        let mut sessions = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let session = sessions.get_mut(&id)?;
        if session.expired(now) {
            sessions.remove(&id);
            return None;
        }
        session.used = now;
        Some(session.clone())
    }

    pub fn end(&self, req: &HttpRequest) {
        if let Some(cookie) = req.cookie(COOKIE) {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(cookie.value());
        }
    }

    /// Ends every session of a key (it was deleted).
    pub fn end_all_of(&self, access_key: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, s| s.access_key != access_key);
    }
}

/// A console cookie: HttpOnly, SameSite=Strict, for the console's path
/// only, Secure when the gateway serves TLS; `max_age` None removes it.
pub fn cookie(name: &'static str, value: String, secure: bool, max_age: Option<Duration>) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, value).path(PATH).http_only(true).same_site(SameSite::Strict).secure(secure);
    cookie = match max_age {
        Some(age) => cookie.max_age(actix_web::cookie::time::Duration::seconds(age.as_secs() as i64)),
        None => cookie.max_age(actix_web::cookie::time::Duration::ZERO),
    };
    cookie.finish()
}

/// The session cookie's lifetime in the browser (the server's limits decide).
pub fn cookie_age() -> Option<Duration> {
    Some(LIFETIME)
}

/// Whether `given` is `expected` (a token or a secret, never empty),
/// compared in constant time.
pub fn same(expected: &str, given: &str) -> bool {
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_compare_exactly() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(same(&a, &a));
        assert!(!same(&a, &b));
        assert!(!same(&a, &a[..63]));
        assert!(!same(&a, ""));
        assert!(!same("", ""));
    }

    #[test]
    fn sessions_expire_when_idle() {
        let sessions = Sessions::default();
        let id = sessions.start("AK").unwrap();
        let table = sessions.0.lock().unwrap();
        let session = &table[&id];
        let now = Instant::now();
        assert!(!session.expired(now + IDLE - Duration::from_secs(1)));
        assert!(session.expired(now + IDLE + Duration::from_secs(1)));
    }
}
