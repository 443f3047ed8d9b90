//! The ACME `httpreq` interface (`POST /present`, `POST /cleanup`) through the device API's
//! router: the JSON body (`{"fqdn": "_acme-challenge.HOST.", "value": "…"}`), challenge
//! names and values, and dyndns2's credentials.
//!
//! Checked: `200` with a JSON object, or `400`/`401`/`404`/`429`/`503` with a line saying why;
//! bounded, and nothing hangs.
//! Input: as `crate::ingest` reads it (`POST /present`, an empty query, the User-Agent,
//! `Basic @HAUTH`, no `X-Forwarded-For`, then the JSON body).

use crate::ingest;

/// Checks one input (see the module docs).
pub fn check(data: &[u8]) {
    let Some((_, path, status, body)) = ingest::answer(&["/present", "/cleanup"], data) else {
        return;
    };
    match status.as_u16() {
        200 => assert!(
            body.starts_with('{') && body.trim_end().ends_with('}'),
            "{path} answered {body:?}"
        ),
        400 | 401 | 404 | 429 | 503 => assert!(
            body.ends_with('\n') && !body.trim_end().contains('\n'),
            "{path} answered {status}: {body:?}"
        ),
        _ => panic!("{path} answered {status}: {body:?}"),
    }
}
