//! The device credential: the `mac=TOKEN` field of every device API request.
//!
//! A device proves who it is by sending its MAC address (or serial) encrypted with its vendor's
//! secret key. Devices in the field ship with this format, so it never changes in place: a new
//! layout gets a new version byte.
//!
//! # Wire format, version 1
//!
//! ```text
//! TOKEN = base64url( version | key_id | nonce | ciphertext | tag )
//!
//!   offset  size  field
//!        0     1  version     = 1
//!        1     2  key_id      u16 big-endian: which vendor key sealed it
//!        3    12  nonce       random, never reused with the same key
//!       15   8+n  ciphertext  AES-256-GCM(key, nonce, aad = bytes 0..3,
//!                                plaintext = issued_at u64 BE | mac, n bytes of UTF-8)
//!   15+8+n   16  tag         the GCM tag
//! ```
//!
//! - `issued_at` is Unix seconds, or 0 for "no issue time" (a token the device reuses forever).
//! - `mac` is 1–64 characters of `[A-Za-z0-9:.-]` once trimmed; it is compared trimmed and in
//!   ASCII upper case, so `e0:46:9a:b8:1b:fc` and `E0:46:9A:B8:1B:FC` are the same device.
//! - The header is the AAD, so a token cannot be moved to another key id or version without
//!   failing the tag check. A token is at least 39 bytes (52 characters) and, with a 64-character
//!   MAC, at most 103 bytes (138 characters).
//!
//! We produce unpadded base64url, which needs no URL-encoding. We accept base64url and standard
//! base64, padded or not, and a space where a `+` was (a classic base64 token that was not
//! URL-encoded arrives with its `+` turned into spaces). Inputs over [`TOKEN_LEN_MAX`] bytes are
//! refused before decoding.
//!
//! # Keys and vendors
//!
//! Every key has an id that is unique across all vendors, so the id in the header names both the
//! key and the vendor; a vendor rotates by adding a key with a higher id (new tokens are sealed
//! with the highest) and removing the old one once its devices have moved.
//!
//! # Freshness and replay
//!
//! A vendor without `max_age_secs` accepts a token forever: devices in the field store one token
//! and send it on every request. A vendor with `max_age_secs` requires fresh tokens: `issued_at`
//! must be set, at most `max_age_secs` old and at most [`FUTURE_SKEW_SECS`] in the future, and
//! each (key id, nonce) is accepted once. The replay cache remembers a token until it would be
//! stale anyway (`issued_at + max_age_secs`), so its size is bounded by the fresh tokens seen in
//! one window, and in any case by [`REPLAY_CACHE_MAX`] entries per vendor (about 25 MiB). At that
//! cap it first drops expired entries; if it is still full it forgets the older half (by expiry)
//! and from then on refuses, as [`TokenError::Stale`], every token that expires no later than the
//! ones it forgot, so a forgotten token can never be replayed. Under that load the vendor's
//! effective window shrinks; newly issued tokens keep working.
//!
//! A token is spent when it opens, even if the request then fails for another reason (bad
//! hostname, flood): a device that requires fresh tokens seals a new one for every request.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// The token format version this module reads and writes.
const VERSION: u8 = 1;
/// Version and key id: the AAD.
const HEADER_LEN: usize = 3;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// `issued_at`, at the front of the plaintext.
const ISSUED_AT_LEN: usize = 8;
/// The smallest token that can authenticate (it then fails as [`TokenError::BadMac`]).
const RAW_LEN_MIN: usize = HEADER_LEN + NONCE_LEN + ISSUED_AT_LEN + TAG_LEN;
/// The longest device identifier, in bytes (all allowed characters are ASCII).
pub const MAC_LEN_MAX: usize = 64;
/// Longer `mac` fields are refused before decoding.
pub const TOKEN_LEN_MAX: usize = 512;
/// How far in the future a fresh token's `issued_at` may be (device clocks drift).
pub const FUTURE_SKEW_SECS: u64 = 60;
/// Most remembered tokens per vendor that requires fresh tokens. 7/8 of 2^20, so the hash
/// table stays at 2^20 buckets of 24 bytes (plus a control byte): about 25 MiB.
pub const REPLAY_CACHE_MAX: usize = (1 << 20) / 8 * 7;

/// One of a vendor's keys, as written in the config file. `Debug` never shows the secret.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorKey {
    /// The key id devices put in the token header; unique across all vendors.
    pub id: u16,
    /// The AES-256 key: 64 hex digits (32 bytes).
    pub secret_hex: String,
}

impl fmt::Debug for VendorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendorKey")
            .field("id", &self.id)
            .field("secret_hex", &"<redacted>")
            .finish()
    }
}

/// A vendor's keys and freshness policy, as written in the config file.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorCredentials {
    /// The vendor's name, as it appears in events, logs and metrics.
    pub vendor: String,
    /// All keys currently accepted; new tokens are sealed with the highest id.
    pub keys: Vec<VendorKey>,
    /// If set, tokens must carry an issue time at most this old and are accepted once each.
    #[serde(default)]
    pub max_age_secs: Option<u64>,
}

/// Why the configured vendor keys cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The secret is not 64 hex digits.
    #[error("vendor {vendor:?}, key {key_id}: secret_hex must be 64 hex digits (32 bytes)")]
    BadSecret {
        /// The vendor.
        vendor: String,
        /// The key's id.
        key_id: u16,
    },
    /// Two keys have the same id (ids are unique across all vendors).
    #[error("key id {key_id} is used by vendor {first:?} and by vendor {second:?}")]
    DuplicateKeyId {
        /// The id.
        key_id: u16,
        /// The vendor of the first key with this id.
        first: String,
        /// The vendor of the second key with this id.
        second: String,
    },
    /// The same vendor is configured twice.
    #[error("vendor {0:?} is configured twice")]
    DuplicateVendor(String),
    /// A vendor has no keys.
    #[error("vendor {0:?} has no keys")]
    NoKeys(String),
    /// `max_age_secs = 0` would refuse every token.
    #[error("vendor {0:?}: max_age_secs must be at least 1")]
    ZeroMaxAge(String),
}

/// Why a token was refused. Every one is reply `02`; they are distinct for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a token: too long, not base64, too short, or an unknown version.
    #[error("malformed token")]
    Malformed,
    /// The header names a key id that no vendor has.
    #[error("unknown key id")]
    UnknownKey,
    /// The tag check failed: wrong key, or the token was altered.
    #[error("forged or corrupted token")]
    Forged,
    /// The sealed identifier is empty, longer than 64, or has characters outside `[A-Za-z0-9:.-]`.
    #[error("invalid device identifier")]
    BadMac,
    /// The vendor requires fresh tokens and this one has no issue time, is too old or is from
    /// the future.
    #[error("stale token")]
    Stale,
    /// The vendor requires fresh tokens and this one was already accepted.
    #[error("replayed token")]
    Replayed,
    /// No such vendor (when sealing).
    #[error("unknown vendor")]
    UnknownVendor,
}

impl TokenError {
    /// A short stable name, for metric labels and structured logs.
    pub const fn label(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Forged => "forged",
            TokenError::BadMac => "bad_mac",
            TokenError::Stale => "stale",
            TokenError::Replayed => "replayed",
            TokenError::UnknownVendor => "unknown_vendor",
        }
    }
}

/// An opened token: who the device is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// The vendor whose key sealed the token.
    pub vendor: String,
    /// The device's MAC address or serial: trimmed, ASCII upper case.
    pub mac: String,
    /// When the token was sealed (Unix seconds), or 0 if it carries no issue time.
    pub issued_at: u64,
}

/// Every vendor's keys, built once from the config and shared by all requests.
pub struct TokenBook {
    vendors: Vec<Vendor>,
    /// Key id → (index into `vendors`, cipher with its key schedule already expanded).
    keys: HashMap<u16, (usize, Aes256Gcm)>,
}

struct Vendor {
    name: String,
    newest_key: u16,
    /// `Some` iff the vendor requires fresh tokens.
    fresh: Option<Freshness>,
}

struct Freshness {
    max_age_secs: u64,
    replay: Mutex<ReplayCache>,
}

impl TokenBook {
    /// Checks and expands every vendor's keys.
    pub fn new(vendors: Vec<VendorCredentials>) -> Result<TokenBook, KeyError> {
        TokenBook::with_replay_cap(vendors, REPLAY_CACHE_MAX)
    }

    fn with_replay_cap(
        vendors: Vec<VendorCredentials>,
        replay_cap: usize,
    ) -> Result<TokenBook, KeyError> {
        let mut book = TokenBook {
            vendors: Vec::with_capacity(vendors.len()),
            keys: HashMap::new(),
        };
        for creds in vendors {
            if book.vendors.iter().any(|v| v.name == creds.vendor) {
                return Err(KeyError::DuplicateVendor(creds.vendor));
            }
            let index = book.vendors.len();
            let mut newest_key = None;
            for key in &creds.keys {
                let secret = parse_secret(&key.secret_hex).ok_or_else(|| KeyError::BadSecret {
                    vendor: creds.vendor.clone(),
                    key_id: key.id,
                })?;
                let cipher = Aes256Gcm::new(&secret.into());
                match book.keys.entry(key.id) {
                    Entry::Occupied(taken) => {
                        return Err(KeyError::DuplicateKeyId {
                            key_id: key.id,
                            first: book
                                .vendors
                                .get(taken.get().0)
                                .map_or_else(|| creds.vendor.clone(), |v| v.name.clone()),
                            second: creds.vendor.clone(),
                        });
                    }
                    Entry::Vacant(slot) => {
                        slot.insert((index, cipher));
                    }
                }
                newest_key = newest_key.max(Some(key.id));
            }
            let newest_key = newest_key.ok_or_else(|| KeyError::NoKeys(creds.vendor.clone()))?;
            let fresh = match creds.max_age_secs {
                None => None,
                Some(0) => return Err(KeyError::ZeroMaxAge(creds.vendor)),
                Some(max_age_secs) => Some(Freshness {
                    max_age_secs,
                    replay: Mutex::new(ReplayCache::new(replay_cap)),
                }),
            };
            book.vendors.push(Vendor {
                name: creds.vendor,
                newest_key,
                fresh,
            });
        }
        Ok(book)
    }

    /// Opens a token. `now_secs` is the current Unix time (passed in, for tests).
    ///
    /// Allocates only the returned strings: decoding and decryption work on the stack.
    pub fn open(&self, token: &str, now_secs: u64) -> Result<Credential, TokenError> {
        let mut buf = [0u8; TOKEN_LEN_MAX / 4 * 3];
        let raw = decode(token, &mut buf)?;
        if raw.len() < RAW_LEN_MIN || raw[0] != VERSION {
            return Err(TokenError::Malformed);
        }
        let key_id = u16::from_be_bytes([raw[1], raw[2]]);
        let (vendor_index, cipher) = self.keys.get(&key_id).ok_or(TokenError::UnknownKey)?;
        let vendor = self
            .vendors
            .get(*vendor_index)
            .expect("every key's vendor index was pushed with it in new()");

        let (header, rest) = raw.split_at_mut(HEADER_LEN);
        let (nonce, rest) = rest.split_at_mut(NONCE_LEN);
        let (body, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        cipher
            .decrypt_in_place_detached(Nonce::from_slice(nonce), header, body, Tag::from_slice(tag))
            .map_err(|_| TokenError::Forged)?;

        let (issued_at, mac) = body.split_at(ISSUED_AT_LEN);
        let issued_at = u64::from_be_bytes(issued_at.try_into().expect("split at 8"));
        let mac = normalize_mac(std::str::from_utf8(mac).map_err(|_| TokenError::BadMac)?)?;

        if let Some(fresh) = &vendor.fresh {
            let too_old = now_secs.saturating_sub(issued_at) > fresh.max_age_secs;
            let too_new = issued_at > now_secs.saturating_add(FUTURE_SKEW_SECS);
            if issued_at == 0 || too_old || too_new {
                return Err(TokenError::Stale);
            }
            let nonce: [u8; NONCE_LEN] = (&*nonce).try_into().expect("split at 12");
            fresh
                .replay
                .lock()
                // The cache is consistent between statements: a panic elsewhere leaves it usable.
                .unwrap_or_else(PoisonError::into_inner)
                .admit(
                    (key_id, nonce),
                    issued_at.saturating_add(fresh.max_age_secs),
                    now_secs,
                )?;
        }

        Ok(Credential {
            vendor: vendor.name.clone(),
            mac,
            issued_at,
        })
    }

    /// Seals `mac` with the vendor's newest (highest id) key and a random nonce. The token
    /// carries `issued_at = now_secs` if the vendor requires fresh tokens, else 0 (a token the
    /// device can keep forever). The MAC is sealed normalised (trimmed, upper case).
    pub fn seal(&self, vendor: &str, mac: &str, now_secs: u64) -> Result<String, TokenError> {
        let vendor = self
            .vendors
            .iter()
            .find(|v| v.name == vendor)
            .ok_or(TokenError::UnknownVendor)?;
        let mac = normalize_mac(mac)?;
        let issued_at = if vendor.fresh.is_some() { now_secs } else { 0 };
        let (_, cipher) = self
            .keys
            .get(&vendor.newest_key)
            .expect("a vendor's newest key is in the key table");
        Ok(seal_with(
            cipher,
            vendor.newest_key,
            &rand::random(),
            issued_at,
            &mac,
        ))
    }
}

impl fmt::Debug for TokenBook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key_ids: Vec<u16> = self.keys.keys().copied().collect();
        key_ids.sort_unstable();
        f.debug_struct("TokenBook")
            .field(
                "vendors",
                &self.vendors.iter().map(|v| &v.name).collect::<Vec<_>>(),
            )
            .field("key_ids", &key_ids)
            .finish_non_exhaustive()
    }
}

/// Builds a token. `mac` must already be normalised.
fn seal_with(
    cipher: &Aes256Gcm,
    key_id: u16,
    nonce: &[u8; NONCE_LEN],
    issued_at: u64,
    mac: &str,
) -> String {
    let mut raw = Vec::with_capacity(RAW_LEN_MIN + mac.len());
    raw.push(VERSION);
    raw.extend_from_slice(&key_id.to_be_bytes());
    raw.extend_from_slice(nonce);
    raw.extend_from_slice(&issued_at.to_be_bytes());
    raw.extend_from_slice(mac.as_bytes());
    let (header, rest) = raw.split_at_mut(HEADER_LEN);
    let (nonce, body) = rest.split_at_mut(NONCE_LEN);
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), header, body)
        .expect("AES-GCM seals any message under 64 GiB");
    raw.extend_from_slice(&tag);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Decodes either base64 alphabet, padded or not, with `' '` read as `'+'`, into `out`.
fn decode<'a>(token: &str, out: &'a mut [u8]) -> Result<&'a mut [u8], TokenError> {
    let token = token.trim_matches(|c| matches!(c, '\t' | '\r' | '\n'));
    if token.len() > TOKEN_LEN_MAX {
        return Err(TokenError::Malformed);
    }
    let token = token.as_bytes();
    // Padding only at the end, at most two; the decoder refuses any '=' left in the middle.
    let unpadded = match token {
        [head @ .., b'=', b'='] | [head @ .., b'='] => head,
        _ => token,
    };
    let mut std_alphabet = [0u8; TOKEN_LEN_MAX];
    let std_alphabet = &mut std_alphabet[..unpadded.len()];
    for (to, &from) in std_alphabet.iter_mut().zip(unpadded) {
        *to = match from {
            b'-' | b' ' => b'+',
            b'_' => b'/',
            other => other,
        };
    }
    let len = STANDARD_NO_PAD
        .decode_slice(&*std_alphabet, out)
        .map_err(|_| TokenError::Malformed)?;
    Ok(&mut out[..len])
}

/// Trims and upper-cases a MAC or serial, and checks its length and characters.
fn normalize_mac(mac: &str) -> Result<String, TokenError> {
    let mac = mac.trim();
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'-');
    if mac.is_empty() || mac.len() > MAC_LEN_MAX || !mac.bytes().all(allowed) {
        return Err(TokenError::BadMac);
    }
    Ok(mac.to_ascii_uppercase())
}

fn parse_secret(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim().as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).ok()?;
    }
    Some(key)
}

type ReplayKey = (u16, [u8; NONCE_LEN]);

/// The tokens a fresh-token vendor has accepted and that are not yet stale.
struct ReplayCache {
    /// (key id, nonce) → the Unix second after which the token is stale anyway.
    seen: HashMap<ReplayKey, u64>,
    /// Tokens expiring at or before this may have been forgotten at the cap: refused as stale.
    floor: u64,
    /// When to next drop expired entries (they are also dropped when the cache is full).
    next_sweep: u64,
    cap: usize,
}

impl ReplayCache {
    fn new(cap: usize) -> ReplayCache {
        ReplayCache {
            seen: HashMap::new(),
            floor: 0,
            next_sweep: 0,
            cap: cap.max(2),
        }
    }

    /// Remembers a fresh token, or says why it cannot be accepted.
    fn admit(&mut self, key: ReplayKey, expires: u64, now: u64) -> Result<(), TokenError> {
        if expires <= self.floor {
            return Err(TokenError::Stale);
        }
        if self.seen.contains_key(&key) {
            return Err(TokenError::Replayed);
        }
        if now >= self.next_sweep || self.seen.len() >= self.cap {
            // Sweeping costs O(len); doing it once a minute, or when full, keeps that amortised.
            self.seen.retain(|_, &mut exp| exp >= now);
            self.next_sweep = now.saturating_add(60);
        }
        if self.seen.len() >= self.cap {
            self.forget_older_half();
            if expires <= self.floor {
                return Err(TokenError::Stale);
            }
        }
        self.seen.insert(key, expires);
        Ok(())
    }

    /// Drops every entry expiring no later than the median expiry, and raises the floor to it.
    fn forget_older_half(&mut self) {
        let mut expiries: Vec<u64> = self.seen.values().copied().collect();
        let middle = expiries.len() / 2;
        let (_, &mut median, _) = expiries.select_nth_unstable(middle);
        self.seen.retain(|_, &mut exp| exp > median);
        self.floor = self.floor.max(median);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use proptest::prelude::*;

    const KEY_A1: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const KEY_A2: &str = "A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF";
    const KEY_B: &str = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100";
    const NOW: u64 = 1_700_000_000;
    const MAX_AGE: u64 = 300;

    fn creds(vendor: &str, keys: &[(u16, &str)], max_age_secs: Option<u64>) -> VendorCredentials {
        VendorCredentials {
            vendor: vendor.into(),
            keys: keys
                .iter()
                .map(|&(id, secret)| VendorKey {
                    id,
                    secret_hex: secret.into(),
                })
                .collect(),
            max_age_secs,
        }
    }

    /// "acme" (keys 1 and 2, tokens forever), "fresh" (key 7, max age 300 s), "other" (key 9).
    fn book() -> TokenBook {
        TokenBook::new(vec![
            creds("acme", &[(1, KEY_A1), (2, KEY_A2)], None),
            creds("fresh", &[(7, KEY_B)], Some(MAX_AGE)),
            creds("other", &[(9, KEY_B)], None),
        ])
        .unwrap()
    }

    fn cipher(hex: &str) -> Aes256Gcm {
        Aes256Gcm::new(&parse_secret(hex).unwrap().into())
    }

    /// A token with every field chosen by the test.
    fn token(key: &str, key_id: u16, issued_at: u64, mac: &str) -> String {
        seal_with(&cipher(key), key_id, &rand::random(), issued_at, mac)
    }

    fn raw(token: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(token).unwrap()
    }

    #[test]
    fn round_trip_normalises_the_mac() {
        let book = book();
        let token = book.seal("acme", " e0:46:9a:b8:1b:fc\n", NOW).unwrap();
        let cred = book.open(&token, NOW).unwrap();
        assert_eq!(
            cred,
            Credential {
                vendor: "acme".into(),
                mac: "E0:46:9A:B8:1B:FC".into(),
                issued_at: 0,
            }
        );
        // A vendor without max age accepts the same token again, years later.
        assert_eq!(book.open(&token, NOW + 10 * 365 * 86_400), Ok(cred));
    }

    /// Pins the wire format. Python's `cryptography` AESGCM and `ingest/device/ddns_token.c`
    /// produce the same string (tests/device_c.rs checks the C side).
    #[test]
    fn pinned_vector() {
        let nonce = [
            0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
        ];
        let vector = "AQECoKGio6Slpqeoqaqr5hh8LSCY878nVb3nMUD5n0ruYSqj9Xgq37VhLZnmcl1YAPqwaJS8IqI";
        let sealed = seal_with(
            &cipher(KEY_A1),
            258,
            &nonce,
            1_700_000_000,
            "E0:46:9A:B8:1B:FC",
        );
        assert_eq!(sealed, vector);
        let book = TokenBook::new(vec![creds("acme", &[(258, KEY_A1)], None)]).unwrap();
        assert_eq!(
            book.open(vector, NOW),
            Ok(Credential {
                vendor: "acme".into(),
                mac: "E0:46:9A:B8:1B:FC".into(),
                issued_at: 1_700_000_000,
            })
        );
    }

    #[test]
    fn seal_uses_the_newest_key_and_fresh_vendors_stamp_it() {
        let book = book();
        let acme = raw(&book.seal("acme", "SERIAL-1", NOW).unwrap());
        assert_eq!(&acme[..3], &[1, 0, 2]);
        let fresh = book.seal("fresh", "SERIAL-1", NOW).unwrap();
        assert_eq!(&raw(&fresh)[..3], &[1, 0, 7]);
        assert_eq!(book.open(&fresh, NOW).unwrap().issued_at, NOW);
        // Random nonces: two seals of the same MAC differ.
        assert_ne!(
            book.seal("acme", "SERIAL-1", NOW).unwrap(),
            book.seal("acme", "SERIAL-1", NOW).unwrap()
        );
        assert_eq!(
            book.seal("nobody", "X", NOW),
            Err(TokenError::UnknownVendor)
        );
        assert_eq!(book.seal("acme", "bad mac", NOW), Err(TokenError::BadMac));
    }

    #[test]
    fn key_rotation_old_and_new_keys_both_open() {
        let book = book();
        let old = token(KEY_A1, 1, 0, "AA:BB");
        let new = token(KEY_A2, 2, 0, "AA:BB");
        assert_eq!(book.open(&old, NOW).unwrap().mac, "AA:BB");
        assert_eq!(book.open(&new, NOW).unwrap().mac, "AA:BB");
        // After the old key is retired, its tokens name an unknown key.
        let rotated = TokenBook::new(vec![creds("acme", &[(2, KEY_A2)], None)]).unwrap();
        assert_eq!(rotated.open(&old, NOW), Err(TokenError::UnknownKey));
        assert!(rotated.open(&new, NOW).is_ok());
    }

    #[test]
    fn both_alphabets_padding_and_plus_as_space() {
        let book = book();
        // Find a token whose encoding has both '+'/'-' and '/'/'_' and needs padding.
        let bytes = (0..10_000)
            .map(|i| raw(&token(KEY_A1, 1, 0, &format!("DEVICE-{i}"))))
            .find(|b| {
                let s = STANDARD.encode(b);
                s.contains('+') && s.contains('/') && s.ends_with('=')
            })
            .expect("some token has every special character");
        let std_padded = STANDARD.encode(&bytes);
        let forms = [
            std_padded.clone(),
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
            std_padded.replace('+', " "),
            format!("{}\r\n", URL_SAFE_NO_PAD.encode(&bytes)),
        ];
        for form in &forms {
            assert!(book.open(form, NOW).is_ok(), "{form:?} should open");
        }
        // At most two padding characters, and only at the end.
        let over_padded = format!("{std_padded}==");
        assert_eq!(book.open(&over_padded, NOW), Err(TokenError::Malformed));
        let inner_pad = std_padded.replacen(|c: char| c.is_ascii_alphanumeric(), "=", 1);
        assert_eq!(book.open(&inner_pad, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn garbage_and_truncation_are_malformed() {
        let book = book();
        let good = book.seal("acme", "AA:BB:CC:DD:EE:FF", NOW).unwrap();
        for bad in ["", "=", "not base64!", "%2B%2F", "é", "AAAA"] {
            assert_eq!(book.open(bad, NOW), Err(TokenError::Malformed), "{bad:?}");
        }
        assert_eq!(book.open(&"A".repeat(513), NOW), Err(TokenError::Malformed));
        // Raw bytes cut short of the minimum are malformed; longer cuts lose the tag.
        let bytes = raw(&good);
        for len in 0..bytes.len() {
            let cut = URL_SAFE_NO_PAD.encode(&bytes[..len]);
            let expected = if len < RAW_LEN_MIN {
                TokenError::Malformed
            } else {
                TokenError::Forged
            };
            assert_eq!(book.open(&cut, NOW), Err(expected), "cut to {len}");
        }
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(
            book.open(&URL_SAFE_NO_PAD.encode(&v2), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let book = book();
        let bytes = raw(&book.seal("acme", "AA:BB:CC:DD:EE:FF", NOW).unwrap());
        for pos in 0..bytes.len() {
            for bit in 0..8 {
                let mut flipped = bytes.clone();
                flipped[pos] ^= 1 << bit;
                let result = book.open(&URL_SAFE_NO_PAD.encode(&flipped), NOW);
                let expected: &[TokenError] = match pos {
                    0 => &[TokenError::Malformed],
                    // A flipped key id names no key, or another key that fails the tag.
                    1 | 2 => &[TokenError::UnknownKey, TokenError::Forged],
                    _ => &[TokenError::Forged],
                };
                assert!(
                    matches!(result, Err(e) if expected.contains(&e)),
                    "byte {pos} bit {bit}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn wrong_and_unknown_keys() {
        let book = book();
        // Unknown key id.
        assert_eq!(
            book.open(&token(KEY_A1, 3, 0, "AA"), NOW),
            Err(TokenError::UnknownKey)
        );
        // The right id with the wrong secret.
        assert_eq!(
            book.open(&token(KEY_A2, 1, 0, "AA"), NOW),
            Err(TokenError::Forged)
        );
        // Sealed with vendor "other"'s key but claiming acme's key id.
        assert_eq!(
            book.open(&token(KEY_B, 2, 0, "AA"), NOW),
            Err(TokenError::Forged)
        );
        // A token sealed for one vendor opens as that vendor, never as another.
        let theirs = token(KEY_B, 9, 0, "AA");
        assert_eq!(book.open(&theirs, NOW).unwrap().vendor, "other");
    }

    #[test]
    fn bad_macs() {
        let book = book();
        let long = "A".repeat(MAC_LEN_MAX + 1);
        for mac in ["", "   ", "AA BB", "AA_BB", "ÄA", "AA/BB", long.as_str()] {
            let sealed = token(KEY_A1, 1, 0, mac);
            assert_eq!(book.open(&sealed, NOW), Err(TokenError::BadMac), "{mac:?}");
        }
        let max = "a".repeat(MAC_LEN_MAX);
        assert_eq!(
            book.open(&token(KEY_A1, 1, 0, &max), NOW).unwrap().mac,
            max.to_ascii_uppercase()
        );
        // Not UTF-8 at all.
        let mut raw = vec![VERSION, 0, 1];
        raw.extend_from_slice(&[0; NONCE_LEN]);
        raw.extend_from_slice(&[0; ISSUED_AT_LEN]);
        raw.extend_from_slice(&[0xff, 0xfe]);
        let (header, rest) = raw.split_at_mut(HEADER_LEN);
        let (nonce, body) = rest.split_at_mut(NONCE_LEN);
        let tag = cipher(KEY_A1)
            .encrypt_in_place_detached(Nonce::from_slice(nonce), header, body)
            .unwrap();
        raw.extend_from_slice(&tag);
        assert_eq!(
            book.open(&URL_SAFE_NO_PAD.encode(&raw), NOW),
            Err(TokenError::BadMac)
        );
    }

    #[test]
    fn fresh_vendor_refuses_stale_future_and_unstamped_tokens() {
        let book = book();
        let open = |issued_at| book.open(&token(KEY_B, 7, issued_at, "AA"), NOW);
        assert_eq!(open(0), Err(TokenError::Stale));
        assert_eq!(open(NOW - MAX_AGE - 1), Err(TokenError::Stale));
        assert_eq!(open(NOW + FUTURE_SKEW_SECS + 1), Err(TokenError::Stale));
        assert_eq!(open(u64::MAX), Err(TokenError::Stale));
        assert_eq!(open(NOW - MAX_AGE).unwrap().issued_at, NOW - MAX_AGE);
        assert_eq!(
            open(NOW + FUTURE_SKEW_SECS).unwrap().issued_at,
            NOW + FUTURE_SKEW_SECS
        );
        // A vendor without max age ignores the issue time.
        assert!(book.open(&token(KEY_B, 9, 1, "AA"), NOW).is_ok());
        assert!(book.open(&token(KEY_B, 9, u64::MAX, "AA"), NOW).is_ok());
    }

    #[test]
    fn fresh_vendor_refuses_replays_until_the_token_is_stale() {
        let book = book();
        let sealed = book.seal("fresh", "AA", NOW).unwrap();
        assert!(book.open(&sealed, NOW).is_ok());
        assert_eq!(book.open(&sealed, NOW), Err(TokenError::Replayed));
        assert_eq!(book.open(&sealed, NOW + MAX_AGE), Err(TokenError::Replayed));
        // The same bytes in another alphabet are the same token.
        let std = STANDARD.encode(raw(&sealed));
        assert_eq!(book.open(&std, NOW + 1), Err(TokenError::Replayed));
        assert_eq!(
            book.open(&sealed, NOW + MAX_AGE + 1),
            Err(TokenError::Stale)
        );
        // A new token for the same device is fine.
        assert!(
            book.open(&book.seal("fresh", "AA", NOW).unwrap(), NOW)
                .is_ok()
        );
    }

    #[test]
    fn replay_cache_sweeps_expired_entries() {
        let book =
            TokenBook::with_replay_cap(vec![creds("f", &[(1, KEY_A1)], Some(10))], 100).unwrap();
        for i in 0..50 {
            assert!(
                book.open(&token(KEY_A1, 1, NOW, &format!("D{i}")), NOW)
                    .is_ok()
            );
        }
        let cache = || {
            book.vendors[0]
                .fresh
                .as_ref()
                .unwrap()
                .replay
                .lock()
                .unwrap()
                .len()
        };
        assert_eq!(cache(), 50);
        let later = NOW + 61;
        assert!(book.open(&token(KEY_A1, 1, later, "X"), later).is_ok());
        assert_eq!(cache(), 1);
    }

    #[test]
    fn replay_cache_at_its_cap_forgets_the_oldest_and_refuses_them() {
        let book = TokenBook::with_replay_cap(vec![creds("f", &[(1, KEY_A1)], Some(MAX_AGE))], 10)
            .unwrap();
        let cache = || {
            book.vendors[0]
                .fresh
                .as_ref()
                .unwrap()
                .replay
                .lock()
                .unwrap()
                .len()
        };
        // Ten tokens issued over ten seconds fill the cache.
        let tokens: Vec<String> = (0..10)
            .map(|i| token(KEY_A1, 1, NOW + i, &format!("D{i}")))
            .collect();
        for t in &tokens {
            assert!(book.open(t, NOW + 10).is_ok());
        }
        assert_eq!(cache(), 10);
        // The eleventh evicts the older half; those can no longer be told apart from new ones,
        // so they (and anything as old) are refused as stale, never accepted twice.
        assert!(
            book.open(&token(KEY_A1, 1, NOW + 10, "NEW"), NOW + 10)
                .is_ok()
        );
        assert!(cache() <= 6, "{}", cache());
        for t in &tokens[..5] {
            assert_eq!(book.open(t, NOW + 10), Err(TokenError::Stale));
        }
        for t in &tokens[6..] {
            assert_eq!(book.open(t, NOW + 10), Err(TokenError::Replayed));
        }
        assert_eq!(
            book.open(&token(KEY_A1, 1, NOW + 3, "OLDISH"), NOW + 10),
            Err(TokenError::Stale)
        );
        assert!(
            book.open(&token(KEY_A1, 1, NOW + 10, "FRESH"), NOW + 10)
                .is_ok()
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let err = |v| TokenBook::new(v).unwrap_err();
        assert!(matches!(
            err(vec![creds("a", &[(1, "00")], None)]),
            KeyError::BadSecret { key_id: 1, .. }
        ));
        let not_hex = "g".repeat(64);
        assert!(matches!(
            err(vec![creds("a", &[(1, not_hex.as_str())], None)]),
            KeyError::BadSecret { .. }
        ));
        assert_eq!(
            err(vec![
                creds("a", &[(1, KEY_A1)], None),
                creds("b", &[(1, KEY_B)], None)
            ]),
            KeyError::DuplicateKeyId {
                key_id: 1,
                first: "a".into(),
                second: "b".into()
            }
        );
        assert!(matches!(
            err(vec![creds("a", &[(1, KEY_A1), (1, KEY_A2)], None)]),
            KeyError::DuplicateKeyId { .. }
        ));
        assert_eq!(
            err(vec![
                creds("a", &[(1, KEY_A1)], None),
                creds("a", &[(2, KEY_B)], None)
            ]),
            KeyError::DuplicateVendor("a".into())
        );
        assert_eq!(
            err(vec![creds("a", &[], None)]),
            KeyError::NoKeys("a".into())
        );
        assert_eq!(
            err(vec![creds("a", &[(1, KEY_A1)], Some(0))]),
            KeyError::ZeroMaxAge("a".into())
        );
        // Secrets never reach logs.
        let shown = format!("{:?} {:?}", creds("a", &[(1, KEY_A1)], None), book());
        assert!(
            !shown.contains(KEY_A1) && !shown.contains("0001020304"),
            "{shown}"
        );
    }

    proptest! {
        #[test]
        fn random_strings_never_panic(s in any::<String>(), t in "[A-Za-z0-9+/_= -]{0,200}") {
            let book = book();
            let _ = book.open(&s, NOW);
            let _ = book.open(&t, NOW);
        }

        #[test]
        fn flipped_tokens_never_open_to_another_mac(
            mac in "[A-Za-z0-9:.-]{1,64}",
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..4),
            char_edit in (any::<prop::sample::Index>(), "[A-Za-z0-9+/_=-]"),
        ) {
            let book = book();
            let good = book.seal("acme", &mac, NOW).unwrap();
            let mut bytes = raw(&good);
            for (at, mask) in &flips {
                let at = at.index(bytes.len());
                bytes[at] ^= mask;
            }
            prop_assert!(book.open(&URL_SAFE_NO_PAD.encode(&bytes), NOW).is_err());
            // Editing the text may keep the bytes (e.g. '-' for '+'), but never changes the MAC.
            let mut text: Vec<char> = good.chars().collect();
            let at = char_edit.0.index(text.len());
            text[at] = char_edit.1.chars().next().unwrap();
            let edited: String = text.into_iter().collect();
            if let Ok(cred) = book.open(&edited, NOW) {
                prop_assert_eq!(cred.mac, mac.to_ascii_uppercase());
            }
        }
    }
}
