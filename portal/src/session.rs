//! Server-side sessions: a map from a 128-bit random id (the cookie's value) to what the portal
//! remembers about a browser.
//!
//! - Ids come from `rand`'s thread RNG (ChaCha, seeded and reseeded from the OS), 32 hex digits.
//! - A session ends when idle for `session_idle_secs`, `session_lifetime_secs` after it began,
//!   at sign-out, when its account is removed, and when the store is full and it is the oldest
//!   (anonymous sessions are evicted before signed-in ones). Expired sessions are pruned as the
//!   store fills, so memory is bounded by `sessions_max`.
//! - Signing in ends the anonymous session and begins a new one (a fixed session id cannot be
//!   planted before sign-in).
//! - The cookie is host-only (never `Domain`: users' hosts live under the same domain), `Path=/;
//!   HttpOnly; SameSite=Lax`, and `__Host-` with `Secure` under TLS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use crate::directory::UserId;

/// The cookie's name over plain HTTP.
pub const COOKIE_NAME: &str = "ddnsd_session";
/// The cookie's name over HTTPS: the `__Host-` prefix makes browsers refuse it unless it is
/// `Secure`, `Path=/` and host-only.
pub const COOKIE_NAME_TLS: &str = "__Host-ddnsd_session";

/// What the portal remembers about one browser.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The signed-in account, if any.
    pub user_id: Option<UserId>,
    /// The synchronizer token every form of this session carries (32 hex digits).
    pub csrf: String,
    /// The user ID `/check/user` last answered `Not existed` for in this session.
    pub checked_user_id: Option<UserId>,
    created: Instant,
    last_seen: Instant,
}

impl Session {
    fn new(now: Instant, user_id: Option<UserId>) -> Session {
        Session {
            user_id,
            csrf: random_hex(),
            checked_user_id: None,
            created: now,
            last_seen: now,
        }
    }

    /// True if the form token `token` is this session's, compared in constant time.
    pub fn csrf_matches(&self, token: &str) -> bool {
        self.csrf.len() == token.len() && bool::from(self.csrf.as_bytes().ct_eq(token.as_bytes()))
    }
}

/// The live sessions.
pub(crate) struct SessionStore {
    sessions: Mutex<HashMap<String, Session>>,
    max: usize,
    idle: Duration,
    lifetime: Duration,
    cookie_name: &'static str,
    secure: bool,
}

impl SessionStore {
    pub fn new(max: usize, idle: Duration, lifetime: Duration, tls: bool) -> SessionStore {
        SessionStore {
            sessions: Mutex::new(HashMap::new()),
            max,
            idle,
            lifetime,
            cookie_name: if tls { COOKIE_NAME_TLS } else { COOKIE_NAME },
            secure: tls,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves the map consistent (every change is one
        // insert or remove), so a poisoned lock is still usable.
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) >= self.idle
            || now.duration_since(session.created) >= self.lifetime
    }

    /// The session named by the request's cookie, if it is live; marks it used.
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let id = self.cookie_id(headers)?;
        let now = Instant::now();
        let mut sessions = self.lock();
        let session = sessions.get_mut(id)?;
        if self.expired(session, now) {
            sessions.remove(id);
            return None;
        }
        session.last_seen = now;
        Some((id.to_owned(), session.clone()))
    }

    /// Begins a session (anonymous, or signed in as `user_id`) and returns its id.
    pub fn create(&self, user_id: Option<UserId>) -> (String, Session) {
        let now = Instant::now();
        let session = Session::new(now, user_id);
        let mut sessions = self.lock();
        if sessions.len() >= self.max {
            self.make_room(&mut sessions, now);
        }
        loop {
            let id = random_hex();
            if let std::collections::hash_map::Entry::Vacant(slot) = sessions.entry(id.clone()) {
                slot.insert(session.clone());
                return (id, session);
            }
        }
    }

    /// Prunes expired sessions and, if that is not enough, evicts the oldest tenth (by last
    /// use, anonymous first) so that the O(n) pass is paid once per many insertions.
    fn make_room(&self, sessions: &mut HashMap<String, Session>, now: Instant) {
        sessions.retain(|_, s| !self.expired(s, now));
        if sessions.len() < self.max {
            return;
        }
        let target = self.max - self.max.div_ceil(10);
        let mut by_age: Vec<(bool, Instant, String)> = sessions
            .iter()
            .map(|(id, s)| (s.user_id.is_some(), s.last_seen, id.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, _, id) in by_age.into_iter().take(sessions.len() - target) {
            sessions.remove(&id);
        }
    }

    /// Applies `change` to the live session `id`; false if it is gone.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut Session)) -> bool {
        match self.lock().get_mut(id) {
            Some(session) => {
                change(session);
                true
            }
            None => false,
        }
    }

    /// Ends the session `id`.
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session of `user_id` except `keep`.
    pub fn remove_account(&self, user_id: &UserId, keep: Option<&str>) {
        self.lock()
            .retain(|id, s| s.user_id.as_ref() != Some(user_id) || Some(id.as_str()) == keep);
    }

    /// How many sessions are held (for tests and metrics).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The `Set-Cookie` value that gives the browser session `id`.
    pub fn set_cookie(&self, id: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Lax{secure}",
            self.cookie_name
        )
    }

    /// The `Set-Cookie` value that makes the browser forget its session.
    pub fn clear_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
            self.cookie_name
        )
    }

    /// The session id in the request's cookies, if it is well-formed.
    fn cookie_id<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie_name)
            .map(|(_, value)| value.trim())
            .filter(|value| value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()))
    }
}

/// 128 random bits as 32 lowercase hex digits.
fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn store(max: usize) -> SessionStore {
        SessionStore::new(
            max,
            Duration::from_secs(60),
            Duration::from_secs(600),
            false,
        )
    }

    fn cookie(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("other=1; ddnsd_session={id}"))
            .expect("hex is a valid header value");
        headers.insert(COOKIE, value);
        headers
    }

    #[tokio::test(start_paused = true)]
    async fn idle_and_absolute_timeouts_end_sessions() {
        let store = store(10);
        let (id, _) = store.create(None);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(
            store.get(&cookie(&id)).is_some(),
            "used within the idle time"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(store.get(&cookie(&id)).is_none(), "idle for 60 s");

        let (id, _) = store.create(None);
        for _ in 0..19 {
            tokio::time::advance(Duration::from_secs(30)).await;
            assert!(store.get(&cookie(&id)).is_some());
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(store.get(&cookie(&id)).is_none(), "600 s after it began");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_store_evicts_anonymous_sessions_first() {
        let store = store(10);
        let user = UserId::parse("alice1").expect("valid");
        let (signed_in, _) = store.create(Some(user));
        tokio::time::advance(Duration::from_secs(1)).await;
        let mut ids = Vec::new();
        for _ in 0..30 {
            ids.push(store.create(None).0);
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        assert!(store.len() <= 10);
        assert!(store.get(&cookie(&signed_in)).is_some());
        assert!(store.get(&cookie(&ids[29])).is_some(), "the newest stays");
        assert!(store.get(&cookie(&ids[0])).is_none(), "the oldest went");
    }

    #[test]
    fn ids_are_128_bit_hex_and_distinct() {
        let store = store(10);
        let (a, _) = store.create(None);
        let (b, _) = store.create(None);
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(store.cookie_id(&cookie("zz")).is_none());
    }
}
