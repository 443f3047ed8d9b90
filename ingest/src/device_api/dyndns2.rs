//! dyndns2 (SPEC §3), as ddclient, inadyn and most routers speak it: `GET /nic/update?
//! hostname=H1[,H2…]&myip=…` with HTTP Basic auth (or `user=`/`pass=` in the URL), answered HTTP
//! 200 `text/plain`, one line per hostname in request order; and `GET /nic/checkip` (and
//! `/checkip`), which echoes the caller's address as `Current IP Address: A.B.C.D`.
//!
//! Every protocol error is a 200 with its word (inadyn exits on an unexpected status, ddclient
//! ignores a non-2xx body), and no error line contains `good` or `OK` (inadyn matches
//! substrings). Only a request without credentials is a 401, with the `WWW-Authenticate`
//! challenge that wget-based firmware waits for before it sends them.
//!
//! Credentials: an account's (user ID and password: any of its hosts) or a host's own (its
//! FQDN and host password, or one of its update tokens: that host). Both are checked like the DVR protocol's host password:
//! from memory when the same client sent them before, else one argon2 run charged to the
//! credential and the source.
//!
//! Addresses in the three dialects in use: `myip=v4,v6`, `myip=v6` alone, `myipv6=`/`myip6=`;
//! only the families sent are touched (Dyn deletes AAAA when only v4 is sent: we do not). No
//! address at all means the source address. An address that is not one (or unspecified,
//! multicast, broadcast) is `dnserr` for every hostname: nothing is changed.
//!
//! A host whose client keeps sending updates that change nothing is counted (in memory, reset
//! by a real change); past `nochg_abuse_threshold` it is marked abusive, an event, and answered
//! `abuse` until its owner clears the mark on the portal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use axum::http::StatusCode;
use base64::Engine;
use ddns_core::{AccountId, EventBody, Fqdn, Host, HostStatus, Outcome};

use super::acme::{TxtChange, TxtResult, valid_value};
use super::{Answer, DeviceApi, Head, Params, usable};
use crate::secret::token_matches;

/// Most hostnames in one request (Dyn's limit); more is `numhost`.
const HOSTNAMES_MAX: usize = 20;

/// Who the credentials name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Caller {
    /// An account: any of its hosts.
    Account(AccountId),
    /// One host, by its own password.
    Host(Fqdn),
}

impl Caller {
    /// True if the caller may change `host`, named `fqdn`.
    pub(super) fn may_change(&self, fqdn: &Fqdn, host: &Host) -> bool {
        match self {
            Caller::Account(id) => host.account == *id,
            Caller::Host(own) => own == fqdn,
        }
    }

    /// The account, for the event (the fold checks it owns the host); none for a host's own
    /// credentials.
    pub(super) fn account(&self) -> Option<AccountId> {
        match self {
            Caller::Account(id) => Some(*id),
            Caller::Host(_) => None,
        }
    }
}

/// The addresses a request sets: at most one per family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Addresses {
    v4: Option<IpAddr>,
    v6: Option<IpAddr>,
}

impl Addresses {
    fn iter(self) -> impl Iterator<Item = IpAddr> {
        self.v4.into_iter().chain(self.v6)
    }

    /// As the reply shows them: `A`, `AAAA` or `A,AAAA`.
    fn text(self) -> String {
        self.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Consecutive `nochg` answers per host, for the abuse mark (bounded: it starts over when full).
#[derive(Default)]
pub(crate) struct NochgCounts(Mutex<HashMap<Fqdn, u32>>);

/// Hosts whose `nochg` streak is remembered at once.
const NOCHG_HOSTS_MAX: usize = 1 << 20;

impl NochgCounts {
    /// Counts one more `nochg` for `host`; returns the streak.
    fn count(&self, host: &Fqdn) -> u32 {
        let mut counts = self.0.lock().expect("nochg counts poisoned");
        if counts.len() >= NOCHG_HOSTS_MAX && !counts.contains_key(host) {
            counts.clear();
        }
        let streak = counts.entry(host.clone()).or_insert(0);
        *streak += 1;
        *streak
    }

    fn reset(&self, host: &Fqdn) {
        self.0.lock().expect("nochg counts poisoned").remove(host);
    }
}

fn count(word: &'static str) {
    metrics::counter!("ddns_ingest_replies_total", "path" => "nic_update", "code" => word)
        .increment(1);
}

/// The same word for every hostname of the request (at least one line).
fn every_line(word: &'static str, hostnames: usize) -> Answer {
    count(word);
    let mut body = String::new();
    for _ in 0..hostnames.max(1) {
        body.push_str(word);
        body.push('\n');
    }
    Answer::ok(body)
}

impl DeviceApi {
    /// `GET /nic/checkip`: the caller's address, in the form dyndns clients parse.
    pub(crate) fn checkip(&self, head: &Head<'_>) -> Answer {
        let source = self.source_of(head);
        if !self.flood.allow_source(source) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "source").increment(1);
            return every_line("911", 1);
        }
        Answer::ok(format!("Current IP Address: {source}\n"))
    }

    /// `GET /nic/update`.
    pub(crate) async fn nic_update(&self, head: &Head<'_>) -> Answer {
        let source = self.source_of(head);
        let params = Params::parse(head.query);
        let hostnames: Vec<&str> = params
            .get("hostname")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if !self.flood.allow_source(source) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "source").increment(1);
            return every_line("911", hostnames.len());
        }
        if head.user_agent.is_none_or(|ua| ua.trim().is_empty()) {
            return every_line("badagent", hostnames.len());
        }
        if hostnames.len() > HOSTNAMES_MAX {
            return every_line("numhost", 1);
        }
        let Some((user, password)) = credentials(head, &params) else {
            count("badauth");
            return Answer::status(StatusCode::UNAUTHORIZED, "badauth\n");
        };
        let caller = match self.authenticate(&user, &password, source).await {
            Ok(caller) => caller,
            Err(word) => return every_line(word, hostnames.len()),
        };
        if hostnames.is_empty() {
            return every_line("notfqdn", 1);
        }
        if let Some(txt) = params.get("txt") {
            let clear = params
                .get("clear")
                .is_some_and(|c| c.eq_ignore_ascii_case("true"));
            let change = match (clear, txt.is_empty()) {
                (true, true) => TxtChange::Clear(None),
                (true, false) => TxtChange::Clear(Some(txt.to_owned())),
                (false, _) if valid_value(txt) => TxtChange::Set(txt.to_owned()),
                (false, _) => return every_line("dnserr", hostnames.len()),
            };
            let mut body = String::new();
            for hostname in hostnames {
                body.push_str(self.txt_one(&caller, hostname, change.clone()).await);
                body.push('\n');
            }
            return Answer::ok(body);
        }
        let Some(addrs) = addresses(&params, source) else {
            return every_line("dnserr", hostnames.len());
        };
        let mut body = String::new();
        for hostname in hostnames {
            let line = self.update_one(&caller, hostname, addrs).await;
            body.push_str(&line);
            body.push('\n');
        }
        Answer::ok(body)
    }

    /// Checks the credentials: a host's FQDN and host password, or an account's user ID and
    /// password. `Err` is the word every line gets.
    pub(super) async fn authenticate(
        &self,
        user: &str,
        password: &str,
        source: IpAddr,
    ) -> Result<Caller, &'static str> {
        let as_host = Fqdn::parse(user).ok().filter(|_| user.contains('.'));
        let user_id = user.trim().to_ascii_lowercase();
        let found = self.committer.known(|state| {
            Some(match &as_host {
                Some(fqdn) => state.account_host(fqdn).map(|h| {
                    let tokens = h.tokens.iter().map(|t| t.hash.clone()).collect();
                    (Caller::Host(fqdn.clone()), h.password_hash.clone(), tokens)
                }),
                None => state
                    .account(&user_id)
                    .map(|a| (Caller::Account(a.id), a.password_hash.clone(), Vec::new())),
            })
        });
        let (caller, hash, tokens) = match found.await {
            Some(Some(found)) => found,
            Some(None) => {
                metrics::counter!("ddns_ingest_bad_credentials_total").increment(1);
                return Err("badauth");
            }
            // The fold could not catch up with the log in time: nothing is known, nothing done.
            None => return Err("dnserr"),
        };
        // A host's update token: a keyed hash each, no argon2.
        if tokens.iter().any(|t: &String| token_matches(t, password)) {
            return Ok(caller);
        }
        // Accounts and hosts are remembered apart: `@` is in no host name.
        let key = match &caller {
            Caller::Host(fqdn) => fqdn.to_string(),
            Caller::Account(_) => format!("@{user_id}"),
        };
        match self.check_password(&key, &hash, password, source).await {
            Ok(()) => Ok(caller),
            Err(super::dvr::DvrReply::Flood) => Err("911"),
            Err(super::dvr::DvrReply::ServerError) => Err("dnserr"),
            Err(_) => Err("badauth"),
        }
    }

    /// One hostname's line of a `txt=` request.
    async fn txt_one(&self, caller: &Caller, hostname: &str, change: TxtChange) -> &'static str {
        let word = match Fqdn::parse(hostname) {
            Err(_) => "notfqdn",
            Ok(fqdn) => match self.change_txt(caller, &fqdn, change).await {
                TxtResult::Changed => "good",
                TxtResult::Unchanged => "nochg",
                TxtResult::NoHost => "nohost",
                TxtResult::Abuse => "abuse",
                TxtResult::Flood => "911",
                TxtResult::ServerError => "dnserr",
            },
        };
        count(word);
        word
    }

    /// One hostname's line.
    async fn update_one(&self, caller: &Caller, hostname: &str, addrs: Addresses) -> String {
        let Ok(fqdn) = Fqdn::parse(hostname) else {
            count("notfqdn");
            return "notfqdn".into();
        };
        // What the fold holds of it, if the caller may update it. Read from the state directly:
        // authenticating this request already caught up with a shared log.
        let found = self.committer.view().with_state(|state| {
            let host = state
                .account_host(&fqdn)
                .filter(|h| caller.may_change(&fqdn, h));
            host.map(|h| {
                let current = addrs.iter().all(|a| h.addrs().of_family(a) == Some(a));
                let current = current && h.status == HostStatus::Ok;
                (h.zone.clone(), h.abusive, current)
            })
        });
        let Some((zone, abusive, current)) = found else {
            count("nohost");
            return "nohost".into();
        };
        if abusive {
            count("abuse");
            return "abuse".into();
        }
        if current {
            let streak = self.nochg.count(&fqdn);
            if self.nochg_abuse_threshold > 0 && streak > self.nochg_abuse_threshold {
                let body = EventBody::HostAbuseChanged {
                    zone,
                    fqdn: fqdn.clone(),
                    abusive: true,
                    account: None,
                };
                if self.committer.commit(body).await.is_some() {
                    tracing::info!(host = %fqdn, streak, "host marked abusive: updates that change nothing");
                    self.nochg.reset(&fqdn);
                    count("abuse");
                    return "abuse".into();
                }
            }
            count("nochg");
            return format!("nochg {}", addrs.text());
        }
        if !self.flood.allow_device("@host", fqdn.as_str()) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "host").increment(1);
            count("911");
            return "911".into();
        }
        for addr in addrs.iter() {
            let body = EventBody::HostAddressSet {
                zone: zone.clone(),
                fqdn: fqdn.clone(),
                addr,
                account: None,
            };
            match self.committer.commit(body).await {
                Some(Outcome::Modified | Outcome::NoChange) => {}
                Some(Outcome::NotFound) => {
                    count("nohost");
                    return "nohost".into();
                }
                Some(_) | None => {
                    count("dnserr");
                    return "dnserr".into();
                }
            }
        }
        self.nochg.reset(&fqdn);
        count("good");
        format!("good {}", addrs.text())
    }
}

/// The user and password: from Basic auth, else from `user=`/`pass=` (also `username=`/
/// `password=`) in the URL, for routers that cannot send Basic auth.
pub(super) fn credentials(head: &Head<'_>, params: &Params<'_>) -> Option<(String, String)> {
    if let Some(value) = head.authorization {
        let (scheme, encoded) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        return Some((user.to_owned(), password.to_owned()));
    }
    let user = params.get("user").or(params.get("username"))?;
    let password = params.get("pass").or(params.get("password"))?;
    Some((user.to_owned(), password.to_owned()))
}

/// The addresses to set, from `myip` (`v4`, `v6` or `v4,v6`) and `myipv6`/`myip6`; the source
/// address when none is sent; `None` if one sent is not an address a host may have.
fn addresses(params: &Params<'_>, source: IpAddr) -> Option<Addresses> {
    let mut addrs = Addresses::default();
    let sent = params
        .get("myip")
        .into_iter()
        .flat_map(|v| v.split(','))
        .chain(params.get("myipv6"))
        .chain(params.get("myip6"))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    for text in sent {
        let addr = text.parse::<IpAddr>().ok()?.to_canonical();
        if !usable(addr) {
            return None;
        }
        match addr {
            IpAddr::V4(_) => addrs.v4 = Some(addr),
            IpAddr::V6(_) => addrs.v6 = Some(addr),
        }
    }
    if addrs.v4.is_none() && addrs.v6.is_none() {
        match source {
            IpAddr::V4(_) => addrs.v4 = Some(source),
            IpAddr::V6(_) => addrs.v6 = Some(source),
        }
    }
    Some(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> IpAddr {
        "198.51.100.1".parse().expect("valid")
    }

    #[test]
    fn the_three_address_dialects() {
        let parse = |q: &str| addresses(&Params::parse(q), source());
        let v4: IpAddr = "192.0.2.1".parse().expect("valid");
        let v6: IpAddr = "2001:db8::1".parse().expect("valid");
        assert_eq!(
            parse("myip=192.0.2.1,2001:db8::1"),
            Some(Addresses {
                v4: Some(v4),
                v6: Some(v6)
            })
        );
        assert_eq!(
            parse("myip=2001:db8::1"),
            Some(Addresses {
                v4: None,
                v6: Some(v6)
            })
        );
        assert_eq!(
            parse("myip=192.0.2.1&myipv6=2001:db8::1"),
            Some(Addresses {
                v4: Some(v4),
                v6: Some(v6)
            })
        );
        assert_eq!(
            parse("myip6=2001:db8::1"),
            Some(Addresses {
                v4: None,
                v6: Some(v6)
            })
        );
        assert_eq!(
            parse(""),
            Some(Addresses {
                v4: Some(source()),
                v6: None
            })
        );
        assert_eq!(
            parse("myip="),
            Some(Addresses {
                v4: Some(source()),
                v6: None
            })
        );
        for bad in [
            "myip=banana",
            "myip=0.0.0.0",
            "myip=192.0.2.1,nope",
            "myipv6=ff02::1",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn credentials_from_basic_auth_or_the_url() {
        let head = |authorization| Head {
            peer: "127.0.0.1:1".parse().expect("valid"),
            query: "",
            user_agent: None,
            forwarded_for: Vec::new(),
            authorization,
            body: b"",
        };
        let none = Params::parse("");
        // "brian01:pass word" in base64.
        let basic = Some("Basic YnJpYW4wMTpwYXNzIHdvcmQ=");
        assert_eq!(
            credentials(&head(basic), &none),
            Some(("brian01".into(), "pass word".into()))
        );
        assert_eq!(credentials(&head(Some("Bearer x")), &none), None);
        assert_eq!(credentials(&head(Some("Basic !!!")), &none), None);
        assert_eq!(credentials(&head(None), &none), None);
        let url = Params::parse("user=cam.dyn.example&pass=abc");
        assert_eq!(
            credentials(&head(None), &url),
            Some(("cam.dyn.example".into(), "abc".into()))
        );
    }
}
