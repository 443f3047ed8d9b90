//! Sealing the `mac=TOKEN` credential the way a device does.
//!
//! The format is documented in ddnsd's `ingest/src/token.rs` and fixed for devices in the field:
//! `base64url(1 | key_id u16 BE | nonce[12] | AES-256-GCM(issued_at u64 BE | MAC) | tag)`, with
//! the three header bytes as associated data. A test opens our tokens with the server's
//! `TokenBook`, so the two cannot drift apart unnoticed.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 3;
const NONCE_LEN: usize = 12;

/// A vendor key as the server has it: its id and 32-byte secret.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey {
    /// The key id the token header carries.
    pub id: u16,
    /// The AES-256 key.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a key could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyError(String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl DeviceKey {
    /// A key from its id and 64 hex digits.
    pub fn from_hex(id: u16, hex: &str) -> Result<DeviceKey, KeyError> {
        let hex = hex.trim().as_bytes();
        if hex.len() != 64 {
            return Err(KeyError(format!(
                "a key is 64 hex digits, not {}",
                hex.len()
            )));
        }
        let mut secret = [0u8; 32];
        for (byte, pair) in secret.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| {
                (c as char)
                    .to_digit(16)
                    .ok_or_else(|| KeyError(format!("{:?} is not a hex digit", c as char)))
            };
            *byte = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
        }
        Ok(DeviceKey { id, secret })
    }

    /// A key from the text of a ddnsd key file (`<data_dir>/keys/<vendor>.key`): `ID HEX`.
    pub fn from_key_file(text: &str) -> Result<DeviceKey, KeyError> {
        let (id, hex) = text
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| KeyError("expected `ID HEX`".into()))?;
        let id = id
            .parse()
            .map_err(|_| KeyError(format!("bad key id {id:?}")))?;
        DeviceKey::from_hex(id, hex)
    }
}

/// Seals device tokens with one vendor key.
pub struct Sealer {
    key_id: u16,
    cipher: Aes256Gcm,
    fresh: bool,
}

impl Sealer {
    /// `fresh`: stamp each token with the current time, for vendors with `max_age_secs` (such a
    /// token opens once, so every request gets a new one, as it does here anyway).
    pub fn new(key: &DeviceKey, fresh: bool) -> Sealer {
        Sealer {
            key_id: key.id,
            cipher: Aes256Gcm::new(&key.secret.into()),
            fresh,
        }
    }

    /// A token for `mac` (already trimmed and upper case), with a random nonce.
    pub fn seal(&self, mac: &str, now_secs: u64) -> String {
        let issued_at = if self.fresh { now_secs } else { 0 };
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut raw = Vec::with_capacity(HEADER_LEN + NONCE_LEN + 8 + mac.len() + 16);
        raw.push(VERSION);
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&issued_at.to_be_bytes());
        raw.extend_from_slice(mac.as_bytes());
        let (header, rest) = raw.split_at_mut(HEADER_LEN);
        let (nonce, body) = rest.split_at_mut(NONCE_LEN);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(nonce), header, body)
            .expect("AES-GCM seals any message under 64 GiB");
        raw.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }
}

#[cfg(test)]
mod tests {
    use ddns_ingest::{TokenBook, VendorCredentials, VendorKey};

    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn book(max_age_secs: Option<u64>) -> TokenBook {
        TokenBook::new(vec![VendorCredentials {
            vendor: "demo".into(),
            keys: vec![VendorKey {
                id: 7,
                secret_hex: HEX.into(),
            }],
            max_age_secs,
        }])
        .expect("a valid key")
    }

    #[test]
    fn the_server_opens_our_tokens() {
        let key = DeviceKey::from_key_file(&format!("7 {HEX}\n")).expect("parses");
        let token = Sealer::new(&key, false).seal("02:AB:CD:00:00:2A", 1_700_000_000);
        let credential = book(None).open(&token, 1_700_000_000).expect("opens");
        assert_eq!(credential.vendor, "demo");
        assert_eq!(credential.mac, "02:AB:CD:00:00:2A");
        assert_eq!(credential.issued_at, 0);
    }

    #[test]
    fn fresh_tokens_carry_the_time_and_each_opens_once() {
        let key = DeviceKey::from_hex(7, HEX).expect("parses");
        let sealer = Sealer::new(&key, true);
        let book = book(Some(300));
        let token = sealer.seal("02:00:00:00:00:01", 1_700_000_000);
        assert_eq!(
            book.open(&token, 1_700_000_010).expect("fresh").issued_at,
            1_700_000_000
        );
        assert!(book.open(&token, 1_700_000_010).is_err(), "a replay");
        let next = sealer.seal("02:00:00:00:00:01", 1_700_000_000);
        assert_ne!(next, token, "a new nonce each time");
        assert!(book.open(&next, 1_700_000_010).is_ok());
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(DeviceKey::from_hex(1, "abc").is_err());
        assert!(DeviceKey::from_hex(1, &"zz".repeat(32)).is_err());
        assert!(DeviceKey::from_key_file(HEX).is_err());
        assert!(DeviceKey::from_key_file(&format!("x {HEX}")).is_err());
        assert!(!format!("{:?}", DeviceKey::from_hex(1, HEX)).contains("0001"));
    }
}
