//! Secrets people choose: argon2id hashing off the async threads with a bounded number at once,
//! the dummy hash that makes an unknown user cost what a wrong password costs, generated host
//! passwords, and the memory of verified host passwords that lets a DVR, which re-sends its
//! host password on every update, be checked in microseconds instead of an argon2 run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

/// Why no hash was computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// More hashes are queued than the server will wait for.
    #[error("too many password hashes queued")]
    Busy,
    /// argon2 refused (a bug: the parameters and salt are ours).
    #[error("argon2: {0}")]
    Failed(String),
}

/// Hashes and verifies passwords with argon2id; share one per server (it is `Sync`).
pub struct PasswordHasher {
    params: Params,
    /// One permit per CPU: each hash holds a core and `m_cost` KiB for its whole run.
    permits: Arc<Semaphore>,
    /// Hashes waiting for a permit; past `waiting_max` new ones are refused at once.
    waiting: AtomicUsize,
    waiting_max: usize,
    dummy: OnceCell<String>,
}

/// Decrements the waiting count when the wait ends, however it ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Default for PasswordHasher {
    fn default() -> PasswordHasher {
        PasswordHasher::new()
    }
}

impl PasswordHasher {
    /// OWASP's argon2id parameters (m = 19 MiB, t = 2, p = 1): argon2's `Params::DEFAULT`.
    pub fn new() -> PasswordHasher {
        PasswordHasher::with_params(Params::DEFAULT)
    }

    /// Other parameters (tests use cheap ones; hashes name their own, so verifying works
    /// whatever hashed them).
    pub fn with_params(params: Params) -> PasswordHasher {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        PasswordHasher {
            params,
            permits: Arc::new(Semaphore::new(cpus)),
            waiting: AtomicUsize::new(0),
            waiting_max: cpus * 32,
            dummy: OnceCell::new(),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.waiting_max {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(HashError::Busy);
        }
        let waiting = Waiting(&self.waiting);
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| HashError::Busy)?;
        drop(waiting);
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        tokio::task::spawn_blocking(move || {
            let result = work(argon);
            drop(permit);
            result
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// The PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of `password` with a fresh
    /// 128-bit salt.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let salt: [u8; 16] = rand::random();
        self.run(move |argon| {
            argon
                .hash_password_with_salt(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// True if `password` matches the PHC string `hash` (with the parameters `hash` names).
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, HashError> {
        self.run(move |argon| {
            argon
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
    }

    /// Verifies `password` against a hash of a password nobody knows, with the same cost as a
    /// real one, so that "no such user" takes as long as "wrong password". Always false.
    pub async fn verify_dummy(&self, password: String) -> Result<bool, HashError> {
        let dummy = self
            .dummy
            .get_or_try_init(|| self.hash(format!("{:032x}", rand::random::<u128>())))
            .await?
            .clone();
        self.verify(password, dummy).await?;
        Ok(false)
    }
}

/// A host password of 128 random bits: 26 characters of lowercase base32 (`a–z`, `2–7`), which
/// a person can type into a DVR and which needs no escaping in a URL.
pub fn generate_host_password() -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bits = rand::random::<u128>();
    let mut out = String::with_capacity(26);
    for _ in 0..26 {
        out.push(char::from(ALPHABET[(bits & 31) as usize]));
        bits >>= 5;
    }
    out
}

/// A new update token: the secret (shown to its owner once), its public id, and what is stored.
#[derive(Clone, Debug)]
pub struct UpdateToken {
    /// The secret: 128 random bits as 26 lowercase base32 characters.
    pub token: String,
    /// Its public id (8 hex digits), to list and revoke it by.
    pub id: String,
    /// `SALT:HASH`, hex: a BLAKE2b-256 of the token keyed with a random 128-bit salt. A token
    /// is random, so a fast keyed hash is enough (nothing to guess from it) and checking one
    /// costs a microsecond, not an argon2 run.
    pub hash: String,
}

/// Makes a new update token.
pub fn new_update_token() -> UpdateToken {
    let token = generate_host_password();
    let salt: [u8; 16] = rand::random();
    let id: [u8; 4] = rand::random();
    UpdateToken {
        hash: format!("{}:{}", hex(&salt), hex(&token_mac(&salt, &token))),
        id: hex(&id),
        token,
    }
}

/// True if `presented` is the token whose stored form is `stored` (`SALT:HASH`).
pub fn token_matches(stored: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    let Some((salt, hash)) = stored.split_once(':') else {
        return false;
    };
    let (Some(salt), Some(hash)) = (unhex(salt), unhex(hash)) else {
        return false;
    };
    bool::from(token_mac(&salt, presented)[..].ct_eq(&hash[..]))
}

fn token_mac(salt: &[u8], token: &str) -> [u8; 32] {
    use blake2::digest::{KeyInit, Mac};
    let mut mac = blake2::Blake2bMac::<blake2::digest::consts::U32>::new_from_slice(salt)
        .expect("a 16-byte key is valid");
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The host passwords verified lately, one per host, remembered as a keyed hash (BLAKE2b with
/// a key of this process's) of the host, its stored hash and the password: a DVR's next update
/// with the same password is checked by one keyed hash and a compare, and a changed host
/// password (a new stored hash) no longer matches what was remembered. Nothing is stored from
/// which the password could be read back, and the key never leaves memory.
pub struct VerifiedPasswords {
    key: [u8; 32],
    seen: std::sync::Mutex<std::collections::HashMap<String, [u8; 32]>>,
    max: usize,
}

impl VerifiedPasswords {
    /// Remembers at most `max` hosts (past that, the memory starts over: a full argon2 run each,
    /// never a wrong answer).
    pub fn new(max: usize) -> VerifiedPasswords {
        VerifiedPasswords {
            key: rand::random(),
            seen: std::sync::Mutex::new(std::collections::HashMap::new()),
            max,
        }
    }

    fn mac(&self, host: &str, hash: &str, password: &str) -> [u8; 32] {
        use blake2::digest::{KeyInit, Mac};
        let mut mac = blake2::Blake2bMac::<blake2::digest::consts::U32>::new_from_slice(&self.key)
            .expect("a 32-byte key is valid");
        for part in [host, hash, password] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// True if `password` was verified for `host` against the same stored `hash` lately: one
    /// keyed hash and a compare.
    pub fn remembers(&self, host: &str, hash: &str, password: &str) -> bool {
        use subtle::ConstantTimeEq;
        let mac = self.mac(host, hash, password);
        self.seen
            .lock()
            .expect("verified passwords poisoned")
            .get(host)
            .is_some_and(|seen| bool::from(seen.ct_eq(&mac)))
    }

    /// True if `password` is `host`'s, by `hasher` (an argon2 run); remembered if so.
    pub async fn verify(
        &self,
        hasher: &PasswordHasher,
        host: &str,
        hash: &str,
        password: &str,
    ) -> Result<bool, HashError> {
        let mac = self.mac(host, hash, password);
        let verified = hasher.verify(password.into(), hash.into()).await?;
        if verified {
            let mut seen = self.seen.lock().expect("verified passwords poisoned");
            if seen.len() >= self.max && !seen.contains_key(host) {
                seen.clear();
            }
            seen.insert(host.into(), mac);
        }
        Ok(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::with_params(Params::new(64, 1, 1, None).expect("valid params"))
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = cheap();
        let hash = hasher.hash("hunter22".into()).await.expect("hashes");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert_eq!(
            hasher.verify("hunter22".into(), hash.clone()).await,
            Ok(true)
        );
        assert_eq!(
            hasher.verify("hunter23".into(), hash.clone()).await,
            Ok(false)
        );
        assert_eq!(
            hasher.verify("x".into(), "not a hash".into()).await,
            Ok(false)
        );
        assert_eq!(hasher.verify_dummy("hunter22".into()).await, Ok(false));
    }

    #[tokio::test]
    async fn a_verified_password_is_remembered_until_the_hash_changes() {
        let hasher = cheap();
        let verified = VerifiedPasswords::new(10);
        let hash = hasher.hash("abc".into()).await.expect("hashes");
        assert_eq!(
            verified.verify(&hasher, "h.example", &hash, "abd").await,
            Ok(false)
        );
        assert!(!verified.remembers("h.example", &hash, "abd"));
        assert!(!verified.remembers("h.example", &hash, "abc"));
        assert_eq!(
            verified.verify(&hasher, "h.example", &hash, "abc").await,
            Ok(true)
        );
        assert!(verified.remembers("h.example", &hash, "abc"));
        assert!(!verified.remembers("h.example", &hash, "abd"));
        assert!(
            !verified.remembers("g.example", &hash, "abc"),
            "another host"
        );
        // A new stored hash (the owner changed the password): the old one no longer passes.
        let new_hash = hasher.hash("xyz".into()).await.expect("hashes");
        assert!(!verified.remembers("h.example", &new_hash, "abc"));
        assert_eq!(
            verified
                .verify(&hasher, "h.example", &new_hash, "xyz")
                .await,
            Ok(true)
        );
        assert!(verified.remembers("h.example", &new_hash, "xyz"));
    }

    #[test]
    fn an_update_token_matches_its_stored_form_only() {
        let a = new_update_token();
        let b = new_update_token();
        assert_eq!((a.token.len(), a.id.len()), (26, 8));
        assert!(token_matches(&a.hash, &a.token));
        assert!(!token_matches(&a.hash, &b.token));
        assert!(!token_matches(&b.hash, &a.token));
        assert!(!token_matches(&a.hash, ""));
        for broken in ["", "nocolon", "zz:zz", "00:", ":00"] {
            assert!(!token_matches(broken, &a.token), "{broken:?}");
        }
        assert!(!a.hash.contains(&a.token), "the secret is not stored");
    }

    #[test]
    fn default_params_are_owasps() {
        let params = PasswordHasher::new().params;
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19 * 1024, 2, 1)
        );
    }

    #[test]
    fn generated_host_passwords_are_26_base32_characters() {
        let a = generate_host_password();
        assert_eq!(a.len(), 26);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
        );
        assert_ne!(a, generate_host_password());
    }
}
