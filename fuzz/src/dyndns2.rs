//! dyndns2 (`/nic/update`, `/nic/checkip`, `/checkip`) through the device API's router:
//! hostnames lists, Basic and URL credentials (an account's, a host's password, an update
//! token), `myip`/`myipv6`/`myip6` in their three dialects, `txt=`/`clear=`.
//!
//! Checked: `GET /nic/update` gets a `200` whose every line is one of the protocol's words
//! (`good`/`nochg` with the addresses set, `nohost`, `notfqdn`, `badauth`, `badagent`,
//! `numhost`, `dnserr`, `911`, `abuse`), at most 20 lines (Dyn's limit on hostnames), or a
//! `401` `badauth` without credentials; `checkip` gets `Current IP Address: IP`; bounded.
//! Input: as `crate::ingest` reads it (`GET /nic/update`, then `hostname=…&myip=…`, the
//! User-Agent, `Basic @AUTH`, …).

use std::net::IpAddr;

use axum::http::StatusCode;

use crate::ingest;

const ROUTES: [&str; 3] = ["/nic/update", "/nic/checkip", "/checkip"];

/// Most hostnames (lines) in one request.
const HOSTNAMES_MAX: usize = 20;

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let Some((_, path, status, body)) = ingest::answer(&ROUTES, data) else {
        return;
    };
    if path != "/nic/update" {
        assert_eq!(status, StatusCode::OK);
        let addr = body
            .strip_prefix("Current IP Address: ")
            .and_then(|rest| rest.strip_suffix('\n'));
        assert!(
            addr.is_some_and(|a| a.parse::<IpAddr>().is_ok()),
            "checkip answered {body:?}"
        );
        return;
    }
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(body, "badauth\n");
        return;
    }
    assert_eq!(status, StatusCode::OK, "nic/update answered {body:?}");
    let lines: Vec<&str> = body
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("an unterminated reply {body:?}"))
        .split('\n')
        .collect();
    assert!(
        (1..=HOSTNAMES_MAX).contains(&lines.len()),
        "{} lines",
        lines.len()
    );
    for line in lines {
        assert!(dyndns2_line(line), "nic/update answered {body:?}");
    }
}

fn dyndns2_line(line: &str) -> bool {
    match line.split_once(' ') {
        Some(("good" | "nochg", addrs)) => addrs.split(',').all(|a| a.parse::<IpAddr>().is_ok()),
        Some(_) => false,
        None => [
            "good", "nochg", "nohost", "notfqdn", "badauth", "badagent", "numhost", "dnserr",
            "911", "abuse",
        ]
        .contains(&line),
    }
}
