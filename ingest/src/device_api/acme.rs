//! TXT records for ACME DNS-01 (SPEC §3): a host's owner publishes challenge values at
//! `_acme-challenge.<host>` and withdraws them, so a certificate for the host (or its wildcard)
//! can be issued. Two ways in, with dyndns2's credentials (an account's, the host's own, or an
//! update token):
//!
//! - the `httpreq` interface lego and acme.sh (`dns_acmeproxy`) speak: `POST /present` and
//!   `POST /cleanup` with the JSON `{"fqdn": "_acme-challenge.<host>.", "value": "…"}` and Basic
//!   auth; `200` with the request echoed (acme.sh looks for the value in it), `400` for a body
//!   or name that is not one, `401` for missing or wrong credentials, `404` for a host that is
//!   not the caller's, `429` past a quota, `503` when the log cannot take the change;
//! - dyndns2's `/nic/update?hostname=H&txt=VALUE` (`good` or `nochg` per hostname), and
//!   `&txt=VALUE&clear=true` (that value) or `&txt=&clear=true` (every value).
//!
//! A reply that says the value is published means it is in the log and in the live zone: DNS
//! answers it from then on. A host keeps at most [`ddns_core::ACME_TXT_MAX`] values (the oldest
//! goes), so values a client never cleans up cannot pile up.

use axum::http::StatusCode;
use ddns_core::{EventBody, Fqdn, Outcome};

use super::dyndns2::{Caller, credentials};
use super::{Answer, DeviceApi, Head, Params};

/// The label challenges are published under (RFC 8555 §8.4).
const ACME_LABEL: &str = "_acme-challenge.";

/// Longest value: one TXT character-string.
const VALUE_MAX: usize = 255;

/// Which `httpreq` path was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AcmeAction {
    /// `POST /present`: publish the value.
    Present,
    /// `POST /cleanup`: withdraw it.
    Cleanup,
}

/// A change to a host's challenge values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum TxtChange {
    /// Publish this value.
    Set(String),
    /// Withdraw this value, or (none) every value.
    Clear(Option<String>),
}

/// What became of a [`TxtChange`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TxtResult {
    /// DNS answers the change.
    Changed,
    /// It was so already.
    Unchanged,
    /// No such host of the caller's.
    NoHost,
    /// The host is marked abusive.
    Abuse,
    /// Past the host's quota of challenge changes.
    Flood,
    /// The log did not take it (or the fold did not confirm it in time).
    ServerError,
}

/// The `httpreq` body: a JSON object with the strings `fqdn` and `value` (other members are
/// ignored).
struct HttpreqBody {
    fqdn: String,
    value: String,
}

impl HttpreqBody {
    fn parse(body: &[u8]) -> Option<HttpreqBody> {
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(body).ok()?;
        let text = |name: &str| object.get(name)?.as_str().map(str::to_owned);
        Some(HttpreqBody {
            fqdn: text("fqdn")?,
            value: text("value")?,
        })
    }
}

/// True if `value` can be a challenge value: 1 to 255 printable ASCII characters.
pub(super) fn valid_value(value: &str) -> bool {
    (1..=VALUE_MAX).contains(&value.len()) && value.bytes().all(|b| (b' '..=b'~').contains(&b))
}

/// The host whose challenge name `fqdn` is (`_acme-challenge.<host>`, trailing dot optional,
/// any case).
fn challenged_host(fqdn: &str) -> Option<Fqdn> {
    let name = fqdn.strip_suffix('.').unwrap_or(fqdn);
    let prefix = name.get(..ACME_LABEL.len())?;
    if !prefix.eq_ignore_ascii_case(ACME_LABEL) {
        return None;
    }
    Fqdn::parse(&name[ACME_LABEL.len()..]).ok()
}

fn count(action: AcmeAction, code: impl Into<metrics::SharedString>) {
    let path = match action {
        AcmeAction::Present => "present",
        AcmeAction::Cleanup => "cleanup",
    };
    metrics::counter!("ddns_ingest_replies_total", "path" => path, "code" => code.into())
        .increment(1);
}

/// An error status with a line saying why (a 401 carries the Basic challenge).
fn refused(action: AcmeAction, status: StatusCode, message: &str) -> Answer {
    count(action, status.as_str().to_owned());
    Answer::status(status, format!("{message}\n"))
}

impl DeviceApi {
    /// `POST /present` and `POST /cleanup`.
    pub(crate) async fn acme_txt(&self, head: &Head<'_>, action: AcmeAction) -> Answer {
        let source = self.source_of(head);
        if !self.flood.allow_source(source) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "source").increment(1);
            return refused(action, StatusCode::TOO_MANY_REQUESTS, "too many requests");
        }
        // The body first: checking it costs nothing, checking a password may cost argon2.
        let Some(body) = HttpreqBody::parse(head.body) else {
            return refused(
                action,
                StatusCode::BAD_REQUEST,
                r#"the body must be JSON {"fqdn": "_acme-challenge.HOST.", "value": "…"}"#,
            );
        };
        let Some(host) = challenged_host(&body.fqdn) else {
            return refused(
                action,
                StatusCode::BAD_REQUEST,
                "fqdn must be _acme-challenge.HOST of one of your hosts",
            );
        };
        if !valid_value(&body.value) {
            return refused(
                action,
                StatusCode::BAD_REQUEST,
                "value must be 1 to 255 printable ASCII characters",
            );
        }
        let params = Params::parse(head.query);
        let Some((user, password)) = credentials(head, &params) else {
            return refused(action, StatusCode::UNAUTHORIZED, "badauth");
        };
        let caller = match self.authenticate(&user, &password, source).await {
            Ok(caller) => caller,
            Err("911") => return refused(action, StatusCode::TOO_MANY_REQUESTS, "911"),
            Err("dnserr") => {
                return refused(action, StatusCode::SERVICE_UNAVAILABLE, "try again later");
            }
            Err(_) => return refused(action, StatusCode::UNAUTHORIZED, "badauth"),
        };
        let change = match action {
            AcmeAction::Present => TxtChange::Set(body.value.clone()),
            AcmeAction::Cleanup => TxtChange::Clear(Some(body.value.clone())),
        };
        match self.change_txt(&caller, &host, change).await {
            TxtResult::Changed | TxtResult::Unchanged => {
                count(action, "200");
                let echo = serde_json::json!({ "fqdn": body.fqdn, "value": body.value });
                Answer::json(format!("{echo}\n"))
            }
            TxtResult::NoHost => refused(action, StatusCode::NOT_FOUND, "no such host of yours"),
            TxtResult::Abuse => refused(
                action,
                StatusCode::FORBIDDEN,
                "the host is marked abusive; its owner can clear it on the portal",
            ),
            TxtResult::Flood => refused(action, StatusCode::TOO_MANY_REQUESTS, "911"),
            TxtResult::ServerError => {
                refused(action, StatusCode::SERVICE_UNAVAILABLE, "try again later")
            }
        }
    }

    /// Applies `change` to `host`'s challenge values if `caller` may change the host.
    pub(super) async fn change_txt(
        &self,
        caller: &Caller,
        host: &Fqdn,
        change: TxtChange,
    ) -> TxtResult {
        // The caller was just authenticated, which caught up with a shared log.
        let found = self.committer.view().with_state(|state| {
            state
                .account_host(host)
                .filter(|h| caller.may_change(host, h))
                .map(|h| {
                    let already = match &change {
                        TxtChange::Set(value) => h.acme_txt.contains(value),
                        TxtChange::Clear(Some(value)) => !h.acme_txt.contains(value),
                        TxtChange::Clear(None) => h.acme_txt.is_empty(),
                    };
                    (h.zone.clone(), h.abusive, already)
                })
        });
        let Some((zone, abusive, already)) = found else {
            return TxtResult::NoHost;
        };
        if abusive {
            return TxtResult::Abuse;
        }
        // A repeat (a client retrying) appends nothing.
        if already {
            return TxtResult::Unchanged;
        }
        // Its own quota, so that certificates cannot starve the host's address updates.
        if !self.flood.allow_device("@acme", host.as_str()) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "host").increment(1);
            return TxtResult::Flood;
        }
        let account = caller.account();
        let body = match change {
            TxtChange::Set(value) => EventBody::HostTxtSet {
                zone,
                fqdn: host.clone(),
                value,
                account,
            },
            TxtChange::Clear(value) => EventBody::HostTxtCleared {
                zone,
                fqdn: host.clone(),
                value,
                account,
            },
        };
        match self.committer.commit(body).await {
            Some(Outcome::Modified) => TxtResult::Changed,
            Some(Outcome::NoChange) => TxtResult::Unchanged,
            Some(Outcome::NotFound) => TxtResult::NoHost,
            Some(_) | None => TxtResult::ServerError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_name_gives_the_host() {
        let host = Fqdn::parse("cam.dyn.example").expect("valid");
        for name in [
            "_acme-challenge.cam.dyn.example.",
            "_acme-challenge.cam.dyn.example",
            "_ACME-Challenge.CAM.dyn.example.",
        ] {
            assert_eq!(challenged_host(name).as_ref(), Some(&host), "{name}");
        }
        for name in [
            "cam.dyn.example.",
            "_acme-challenge.",
            "_acme-challenge",
            "_acme-challengecam.dyn.example",
            "x._acme-challenge.cam.dyn.example",
            "_acme-challenge..dyn.example",
            "",
            "é",
        ] {
            assert_eq!(challenged_host(name), None, "{name:?}");
        }
    }

    #[test]
    fn values_are_one_txt_string_of_printable_ascii() {
        assert!(valid_value("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        assert!(valid_value("a b"));
        assert!(valid_value(&"v".repeat(255)));
        for bad in ["", "tab\there", "line\n", "ünïcode", "nul\0"] {
            assert!(!valid_value(bad), "{bad:?}");
        }
        assert!(!valid_value(&"v".repeat(256)));
    }
}
