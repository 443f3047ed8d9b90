//! The device API's request parsers (`add`, `update`, `remove`, `ipcheck`, `ipdetect` and the
//! test beds' `cipher` form) through its router: the query (`Params::parse`, form decoding),
//! the `mac` credential, labels, `myip`, vendor fields, `User-Agent` and `X-Forwarded-For`.
//!
//! Checked: a route's other methods get `405`; `GET` gets `200` and one reply code in the
//! protocol's words (`01`…`16`, `911`, `10|FQDN`, `14|IP`; `ipdetect` an address; `cipher` a
//! token or a `400` saying why), never more than [`crate::ingest`]'s bound, and nothing hangs.
//! Input: as `crate::ingest` reads it (`GET /update.aspx`, then `mac=@MAC&myip=…`, …).

use std::net::IpAddr;

use axum::http::StatusCode;
use ddns_core::Fqdn;

use crate::ingest;

const ROUTES: [&str; 6] = [
    "/add.aspx",
    "/update.aspx",
    "/remove.aspx",
    "/ipcheck.aspx",
    "/ipdetect.aspx",
    "/cipher.aspx",
];

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let Some((_, path, status, body)) = ingest::answer(&ROUTES, data) else {
        return;
    };
    match path {
        "/ipdetect.aspx" => {
            assert_eq!(status, StatusCode::OK);
            assert!(body.parse::<IpAddr>().is_ok(), "ipdetect answered {body:?}");
        }
        "/cipher.aspx" => match status {
            StatusCode::OK => assert!(
                body.len() <= 138
                    && body
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "cipher answered {body:?}"
            ),
            StatusCode::BAD_REQUEST => assert!(body.ends_with('\n'), "{body:?}"),
            other => panic!("cipher answered {other}"),
        },
        _ => {
            assert_eq!(status, StatusCode::OK, "{path} answered {body:?}");
            assert!(reply_code(&body), "{path} answered {body:?}");
        }
    }
}

/// One of the device API's replies (`ddns_core::Reply`'s texts).
fn reply_code(body: &str) -> bool {
    match body.split_once('|') {
        Some(("10", name)) => Fqdn::parse(name).is_ok_and(|fqdn| fqdn.as_str() == name),
        Some(("14", addr)) => addr.parse::<IpAddr>().is_ok(),
        Some(_) => false,
        None => [
            "01", "02", "04", "07", "08", "09", "911", "12", "13", "15", "16",
        ]
        .contains(&body),
    }
}
