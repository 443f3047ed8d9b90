//! The DVR protocol (`/dvr/update?host=FQDN&pw=PASSWORD[&ip=IP]`) through the device API's
//! router: host names, host passwords and update tokens, addresses.
//!
//! Checked: `GET` gets a `200` with `ACT` or one of `ERR 0x80008001`…`ERR 0x80008005` (what the
//! DVR shows on its status screen), and nothing hangs.
//! Input: as `crate::ingest` reads it (`GET /dvr/update`, then `host=home.dyn.example&pw=@PASS`).

use axum::http::StatusCode;

use crate::ingest;

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let Some((_, _, status, body)) = ingest::answer(&["/dvr/update"], data) else {
        return;
    };
    assert_eq!(status, StatusCode::OK, "answered {body:?}");
    assert!(
        [
            "ACT",
            "ERR 0x80008001",
            "ERR 0x80008002",
            "ERR 0x80008003",
            "ERR 0x80008004",
            "ERR 0x80008005",
        ]
        .contains(&body.as_str()),
        "answered {body:?}"
    );
}
