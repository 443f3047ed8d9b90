//! The DVR host-password protocol (SPEC §3, seed 000): `GET /dvr/update?host=FQDN&pw=PASSWORD
//! [&ip=IP]`, answered `ACT` or `ERR 0x8000800N`, which the DVR shows on its status screen.
//!
//! The steps: charge the source (flood), find the host (from the fold), check the password
//! (one of the host's update tokens; else the host password, from memory when this host's DVR
//! sent it before, else one argon2 run charged to the host and the source), check the address, answer from memory when nothing would change, else
//! charge the host's write quota, append `HostAddressSet` and answer with the fold's outcome
//! once the event is durable. An authenticated update with a bad address sets the host's
//! status to ERROR (an event only when the status changes); a wrong password does not, or
//! anyone who knows a host's name could paint it red.

use std::fmt;
use std::net::IpAddr;

use ddns_core::{EventBody, Fqdn, HostStatus, Outcome};

use super::{Answer, DeviceApi, Head, Params, usable};
use crate::secret::token_matches;

/// One reply of the DVR protocol; `Display` gives the exact text on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DvrReply {
    /// `ACT`: the address was set, or was already current.
    Act,
    /// `ERR 0x80008001`: no such host.
    NoSuchHost,
    /// `ERR 0x80008002`: wrong host password.
    WrongPassword,
    /// `ERR 0x80008003`: invalid IP address.
    InvalidIp,
    /// `ERR 0x80008004`: flood.
    Flood,
    /// `ERR 0x80008005`: server error; nothing was acknowledged.
    ServerError,
}

impl DvrReply {
    fn code(self) -> &'static str {
        match self {
            DvrReply::Act => "ACT",
            DvrReply::NoSuchHost => "0x80008001",
            DvrReply::WrongPassword => "0x80008002",
            DvrReply::InvalidIp => "0x80008003",
            DvrReply::Flood => "0x80008004",
            DvrReply::ServerError => "0x80008005",
        }
    }
}

impl fmt::Display for DvrReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DvrReply::Act => f.write_str("ACT"),
            other => write!(f, "ERR {}", other.code()),
        }
    }
}

fn answer(reply: DvrReply) -> Answer {
    metrics::counter!("ddns_ingest_replies_total", "path" => "dvr", "code" => reply.code())
        .increment(1);
    Answer::ok(reply.to_string())
}

/// What the fold holds of a host that an update needs.
struct Known {
    zone: Fqdn,
    password_hash: String,
    /// Its update tokens' stored forms.
    tokens: Vec<String>,
    /// The requested address is already its address and it shows OK: nothing to change.
    current: bool,
}

impl DeviceApi {
    pub(crate) async fn dvr_update(&self, head: &Head<'_>) -> Answer {
        let source = self.source_of(head);
        if !self.flood.allow_source(source) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "source").increment(1);
            return answer(DvrReply::Flood);
        }
        let params = Params::parse(head.query);
        let Ok(fqdn) = Fqdn::parse(params.get("host").unwrap_or_default()) else {
            return answer(DvrReply::NoSuchHost);
        };
        // Not an address a host may have: refused once the password is checked.
        let addr = match params.get("ip").map(str::trim) {
            None | Some("") => Some(source),
            Some(text) => text
                .parse::<IpAddr>()
                .ok()
                .map(|a| a.to_canonical())
                .filter(|a| usable(*a)),
        };
        // One read of the fold (on a shared log, one catch-up) for the whole request.
        let found = self.committer.known(|state| {
            Some(match state.account_host(&fqdn) {
                Some(host) => Ok(Known {
                    zone: host.zone.clone(),
                    password_hash: host.password_hash.clone(),
                    tokens: host.tokens.iter().map(|t| t.hash.clone()).collect(),
                    current: addr.is_some_and(|a| {
                        host.status == HostStatus::Ok && host.addrs().of_family(a) == Some(a)
                    }),
                }),
                None => Err(DvrReply::NoSuchHost),
            })
        });
        let host = match found.await {
            Some(Ok(host)) => host,
            Some(Err(reply)) => return answer(reply),
            None => return answer(DvrReply::ServerError),
        };
        let password = params.get("pw").unwrap_or_default();
        // An update token (a keyed hash each: microseconds), else the host password.
        if !host.tokens.iter().any(|t| token_matches(t, password)) {
            let checked = self.check_password(fqdn.as_str(), &host.password_hash, password, source);
            if let Err(reply) = checked.await {
                return answer(reply);
            }
        }
        let Some(addr) = addr else {
            self.set_status(&host.zone, &fqdn, HostStatus::Error).await;
            return answer(DvrReply::InvalidIp);
        };
        if host.current {
            return answer(DvrReply::Act);
        }
        if !self.flood.allow_device("@host", fqdn.as_str()) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "host").increment(1);
            return answer(DvrReply::Flood);
        }
        let body = EventBody::HostAddressSet {
            zone: host.zone,
            fqdn,
            addr,
            account: None,
        };
        answer(match self.committer.commit(body).await {
            Some(Outcome::Modified | Outcome::NoChange) => DvrReply::Act,
            // Removed between the lookup and the fold.
            Some(Outcome::NotFound) => DvrReply::NoSuchHost,
            Some(other) => {
                tracing::error!(?other, "unexpected outcome of a host address");
                DvrReply::ServerError
            }
            None => DvrReply::ServerError,
        })
    }

    /// Checks `password` against the stored `hash` of the credential `key` (a host's name, or
    /// `@user_id` for an account): from memory if the same client sent it before, else by
    /// argon2, which is charged to the credential and the source first.
    pub(super) async fn check_password(
        &self,
        key: &str,
        hash: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<(), DvrReply> {
        if self.verified.remembers(key, hash, password) {
            return Ok(());
        }
        if !self.flood.allow_password_guess(key, source) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "password").increment(1);
            return Err(DvrReply::Flood);
        }
        match self
            .verified
            .verify(&self.hasher, key, hash, password)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                metrics::counter!("ddns_ingest_bad_credentials_total").increment(1);
                Err(DvrReply::WrongPassword)
            }
            Err(error) => {
                tracing::warn!(%error, "host password not checked");
                Err(DvrReply::ServerError)
            }
        }
    }

    /// Records the host's new status, if it is new (best effort: the reply does not depend on
    /// it, and a status is not worth a flood's events).
    async fn set_status(&self, zone: &Fqdn, fqdn: &Fqdn, status: HostStatus) {
        let unchanged = self.committer.view().with_state(|state| {
            state
                .account_host(fqdn)
                .is_none_or(|host| host.status == status)
        });
        if unchanged || !self.flood.allow_device("@host", fqdn.as_str()) {
            return;
        }
        let body = EventBody::HostStatusChanged {
            zone: zone.clone(),
            fqdn: fqdn.clone(),
            status,
        };
        self.committer.commit(body).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_text_of_every_reply() {
        let cases = [
            (DvrReply::Act, "ACT"),
            (DvrReply::NoSuchHost, "ERR 0x80008001"),
            (DvrReply::WrongPassword, "ERR 0x80008002"),
            (DvrReply::InvalidIp, "ERR 0x80008003"),
            (DvrReply::Flood, "ERR 0x80008004"),
            (DvrReply::ServerError, "ERR 0x80008005"),
        ];
        for (reply, text) in cases {
            assert_eq!(reply.to_string(), text);
        }
    }
}
