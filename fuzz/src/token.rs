//! The device credential ([`TokenBook`]): `open` on any text never panics, and what it opens is
//! a credential of a configured vendor with a normalised MAC; `seal` then `open` gives back the
//! vendor, the normalised MAC and the issue time; a sealed token with any one byte altered never
//! opens; a fresh-token vendor's token opens once.
//!
//! Input: a selector byte, then: `0` a token as text (`open`); `1` a token's raw bytes, which
//! the harness encodes in base64url first (so the fuzzer reaches past the decoding); `2` a u64
//! time (8 bytes, big-endian), a byte to alter, and a MAC to seal.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ddns_ingest::{Credential, MAC_LEN_MAX, TokenBook, TokenError, VendorCredentials, VendorKey};

/// Vendors: `acme` (key 1, tokens forever), `fresh` (keys 2 and 3, five-minute single-use
/// tokens).
fn book() -> TokenBook {
    let key = |id: u16, byte: u8| VendorKey {
        id,
        secret_hex: format!("{byte:02x}").repeat(32),
    };
    TokenBook::new(vec![
        VendorCredentials {
            vendor: "acme".into(),
            keys: vec![key(1, 0x11)],
            max_age_secs: None,
        },
        VendorCredentials {
            vendor: "fresh".into(),
            keys: vec![key(2, 0x22), key(3, 0x33)],
            max_age_secs: Some(300),
        },
    ])
    .expect("the fuzz vendors are valid")
}

/// A book shared by the open-only inputs (its replay cache grows: bounded by the crate).
fn shared() -> &'static TokenBook {
    static BOOK: OnceLock<TokenBook> = OnceLock::new();
    BOOK.get_or_init(book)
}

/// The time every opened token is judged at, unless the input gives one.
const NOW_SECS: u64 = 1_800_000_000;

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => opened(&shared().open(&String::from_utf8_lossy(rest), NOW_SECS)),
        1 => opened(&shared().open(&URL_SAFE_NO_PAD.encode(rest), NOW_SECS)),
        _ => round_trip(rest),
    }
}

/// What opened is a credential of a configured vendor, its MAC normalised.
fn opened(result: &Result<Credential, TokenError>) {
    let Ok(credential) = result else {
        return;
    };
    assert!(
        ["acme", "fresh"].contains(&credential.vendor.as_str()),
        "{credential:?}"
    );
    assert!(normalised(&credential.mac), "{credential:?}");
}

/// 1–64 of `[A-Z0-9:.-]`: trimmed, upper case.
fn normalised(mac: &str) -> bool {
    (1..=MAC_LEN_MAX).contains(&mac.len())
        && mac
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b":.-".contains(&b))
}

fn round_trip(data: &[u8]) {
    let Some((now, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((&alter, mac)) = rest.split_first() else {
        return;
    };
    // Any time a device's clock may say, but not the last second of u64 (a fresh token then
    // expires past u64::MAX, which saturates).
    let now = u64::from_be_bytes(*now).min(u64::MAX / 2);
    let mac = String::from_utf8_lossy(mac);
    let book = book();
    for vendor in ["acme", "fresh"] {
        let token = match book.seal(vendor, &mac, now) {
            Ok(token) => token,
            Err(error) => {
                assert_eq!(error, TokenError::BadMac, "sealing {mac:?} for {vendor}");
                continue;
            }
        };
        assert!(token.len() <= 138, "a {}-character token", token.len());
        if vendor == "fresh" && now == 0 {
            // Issued at 0 means "no issue time", which a fresh-token vendor refuses.
            assert_eq!(book.open(&token, now), Err(TokenError::Stale));
            continue;
        }
        let credential = book
            .open(&token, now)
            .unwrap_or_else(|error| panic!("{vendor} token for {mac:?} does not open: {error}"));
        assert_eq!(credential.vendor, vendor);
        assert_eq!(credential.mac, mac.trim().to_ascii_uppercase());
        assert!(normalised(&credential.mac), "{credential:?}");
        assert_eq!(
            credential.issued_at,
            if vendor == "fresh" { now } else { 0 }
        );
        if vendor == "fresh" {
            assert_eq!(book.open(&token, now), Err(TokenError::Replayed));
        }
        let mut raw = URL_SAFE_NO_PAD
            .decode(&token)
            .expect("a sealed token is base64url");
        let at = usize::from(alter) % raw.len();
        raw[at] ^= 1 << (alter % 8);
        let altered = book.open(&URL_SAFE_NO_PAD.encode(&raw), now);
        assert!(
            matches!(
                altered,
                Err(TokenError::Malformed | TokenError::UnknownKey | TokenError::Forged)
            ),
            "byte {at} altered and the token still opened: {altered:?}"
        );
    }
}
