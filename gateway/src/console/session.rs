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
/// Sessions kept at most: a sign-in beyond ends the one unused longest,
/// so no key can fill the table and lock others out.
const MAX_SESSIONS: usize = 10_000;
/// Sessions one key may hold: a sign-in beyond ends its oldest.
const MAX_PER_KEY: usize = 16;

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

pub struct Sessions {
    table: Mutex<HashMap<String, Session>>,
    /// Failed sign-ins wait their delay holding one of these: guesses are
    /// slowed over all clients, not only per connection.
    pub failures: tokio::sync::Semaphore,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions { table: Mutex::default(), failures: tokio::sync::Semaphore::new(2) }
    }
}

/// 32 random bytes, hex: a session id or a token.
pub fn token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// A new session for `access_key` (whose secret was just proven): its id.
    pub fn start(&self, access_key: &str) -> String {
        let mut sessions = self.lock();
        let now = Instant::now();
        let own = sessions.iter().filter(|(_, s)| s.access_key == access_key);
        if own.clone().count() >= MAX_PER_KEY {
            let oldest = own.min_by_key(|(_, s)| s.started).map(|(id, _)| id.clone());
            sessions.remove(&oldest.expect("the key has sessions"));
        }
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| !s.expired(now));
        }
        if sessions.len() >= MAX_SESSIONS {
            let idle = sessions.iter().min_by_key(|(_, s)| s.used).map(|(id, _)| id.clone());
            sessions.remove(&idle.expect("the table is full"));
        }
        let id = token();
        sessions
            .insert(id.clone(), Session { access_key: access_key.to_string(), csrf: token(), started: now, used: now });
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session the request's cookie names, if it is still valid.
    pub fn of(&self, req: &HttpRequest) -> Option<Session> {
        let id = req.cookie(COOKIE)?.value().to_string();
        let mut sessions = self.lock();
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
            self.lock().remove(cookie.value());
        }
    }

    /// Ends every session of a key (it was deleted).
    pub fn end_all_of(&self, access_key: &str) {
        self.lock().retain(|_, s| s.access_key != access_key);
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
    fn one_key_holds_a_few_sessions_at_most_and_cannot_crowd_out_others() {
        let sessions = Sessions::default();
        let first = sessions.start("ALICE");
        for _ in 0..MAX_PER_KEY * 3 {
            sessions.start("ALICE");
        }
        let table = sessions.lock();
        assert_eq!(table.values().filter(|s| s.access_key == "ALICE").count(), MAX_PER_KEY);
        assert!(!table.contains_key(&first), "the oldest went first");
        drop(table);
        let root = sessions.start("ROOT");
        assert!(sessions.lock().contains_key(&root));
    }

    #[test]
    fn sessions_expire_when_idle() {
        let sessions = Sessions::default();
        let id = sessions.start("AK");
        let table = sessions.lock();
        let session = &table[&id];
        let now = Instant::now();
        assert!(!session.expired(now + IDLE - Duration::from_secs(1)));
        assert!(session.expired(now + IDLE + Duration::from_secs(1)));
    }
}
