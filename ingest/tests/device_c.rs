//! The device-side C sealer (`ingest/device/`) against [`TokenBook::open`].
//!
//! These tests need a C compiler (`cc`, or `$CC`) and OpenSSL's headers and libcrypto
//! (`libssl-dev`). Without them they fail, loudly: the C file ships to device makers, so it must
//! never go untested.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use ddns_ingest::{Credential, TokenBook, TokenError, VendorCredentials, VendorKey};

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const FRESH_KEY: &str = "f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100";

/// The pinned vector of `token.rs` (key 258 = KEY, nonce a0..ab, issued_at 1_700_000_000),
/// which Python's `cryptography` AESGCM also produces.
const VECTOR: &str = "AQECoKGio6Slpqeoqaqr5hh8LSCY878nVb3nMUD5n0ruYSqj9Xgq37VhLZnmcl1YAPqwaJS8IqI";

/// Compiles the C files and the CLI into `dir`, or fails the test with what is missing.
fn build_cli(dir: &Path) -> PathBuf {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("device");
    let cli = dir.join("ddns_token_cli");
    let output = Command::new(&cc)
        .args([
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Wpedantic",
            "-Werror",
            "-O2",
        ])
        .arg(src.join("ddns_token.c"))
        .arg(src.join("ddns_token_cli.c"))
        .arg("-o")
        .arg(&cli)
        .arg("-lcrypto")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run the C compiler {cc:?}: {e}. These tests need a C compiler and \
                 OpenSSL (apt-get install build-essential libssl-dev), or CC set to one."
            )
        });
    assert!(
        output.status.success(),
        "compiling ingest/device with {cc:?} failed (is libssl-dev installed?):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    cli
}

fn run(cli: &Path, args: &[&str]) -> Output {
    Command::new(cli)
        .args(args)
        .output()
        .expect("run ddns_token_cli")
}

/// Runs the CLI and returns the token it printed.
fn seal(cli: &Path, args: &[&str]) -> String {
    let output = run(cli, args);
    assert!(
        output.status.success(),
        "ddns_token_cli {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    token.trim_end().to_owned()
}

fn book() -> TokenBook {
    TokenBook::new(vec![
        VendorCredentials {
            vendor: "acme".into(),
            keys: vec![VendorKey {
                id: 258,
                secret_hex: KEY.into(),
            }],
            max_age_secs: None,
        },
        VendorCredentials {
            vendor: "fresh".into(),
            keys: vec![VendorKey {
                id: 7,
                secret_hex: FRESH_KEY.into(),
            }],
            max_age_secs: Some(300),
        },
    ])
    .unwrap()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn c_tokens_open_with_the_right_mac_and_issued_at() {
    let dir = tempfile::tempdir().unwrap();
    let cli = build_cli(dir.path());
    let book = book();
    let now = now_secs();

    // A reusable token (issued_at 0) for a vendor without max age.
    let token = seal(&cli, &[KEY, "258", "e0:46:9a:b8:1b:fc", "0"]);
    let expected = Credential {
        vendor: "acme".into(),
        mac: "E0:46:9A:B8:1B:FC".into(),
        issued_at: 0,
    };
    assert_eq!(book.open(&token, now), Ok(expected.clone()));
    assert_eq!(book.open(&token, now + 86_400), Ok(expected));
    // The longest identifier fits the C buffer and opens.
    let long = "SN-".repeat(21) + "X";
    let token = seal(&cli, &[KEY, "258", &long, "0"]);
    assert_eq!(book.open(&token, now).unwrap().mac, long);

    // A fresh token for a vendor that requires them: accepted once.
    let stamp = now.to_string();
    let token = seal(&cli, &[FRESH_KEY, "7", "SERIAL.0042", &stamp]);
    let cred = book.open(&token, now).unwrap();
    assert_eq!(
        (cred.vendor.as_str(), cred.mac.as_str()),
        ("fresh", "SERIAL.0042")
    );
    assert_eq!(cred.issued_at, now);
    assert_eq!(book.open(&token, now), Err(TokenError::Replayed));
    // Random nonces: the same inputs seal to different tokens, each accepted.
    let again = seal(&cli, &[FRESH_KEY, "7", "SERIAL.0042", &stamp]);
    assert_ne!(again, token);
    assert!(book.open(&again, now).is_ok());
}

#[test]
fn c_token_with_a_fixed_nonce_is_the_pinned_vector() {
    let dir = tempfile::tempdir().unwrap();
    let cli = build_cli(dir.path());
    let nonce = "a0a1a2a3a4a5a6a7a8a9aaab";
    let token = seal(
        &cli,
        &[KEY, "258", "E0:46:9A:B8:1B:FC", "1700000000", nonce],
    );
    assert_eq!(token, VECTOR);
    assert_eq!(
        book().open(&token, 1_700_000_000),
        Ok(Credential {
            vendor: "acme".into(),
            mac: "E0:46:9A:B8:1B:FC".into(),
            issued_at: 1_700_000_000,
        })
    );
}

#[test]
fn c_sealer_refuses_what_the_server_would() {
    let dir = tempfile::tempdir().unwrap();
    let cli = build_cli(dir.path());
    let too_long = "A".repeat(65);
    for mac in ["", "AA BB", "AA_BB", too_long.as_str()] {
        let output = run(&cli, &[KEY, "258", mac, "0"]);
        assert!(!output.status.success(), "{mac:?} should be refused");
        assert!(output.stdout.is_empty());
    }
    for bad in [
        [&KEY[2..], "258", "AA", "0"],
        [KEY, "65536", "AA", "0"],
        [KEY, "258", "AA", "-1"],
    ] {
        assert!(
            !run(&cli, &bad).status.success(),
            "{bad:?} should be refused"
        );
    }
}
