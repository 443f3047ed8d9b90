//! The device API's side of the QUIC device channel (`crate::quic`): HELLO, UPDATE, REMOVE and
//! QUERY with the credentials, quotas, validation and committer of the HTTP paths, so that a
//! reply code means over QUIC what it means over HTTP and an update is the same event.
//!
//! - A device's HELLO opens its `mac` token as `update.aspx` does (`02` if it does not open);
//!   a host's checks its host password or update token as the DVR protocol does (argon2 only
//!   for a password not verified before, charged to the host and the source first).
//! - Every request is charged to its source (`911`). An update that changes something is
//!   charged to the device (hosts: their own key, as DVR updates are), whether the device
//!   asked for it or the server made it after the connection moved.
//! - A device's update keeps its User-Agent and vendor fields (the event carries what the
//!   state holds), so only its address changes.

use std::net::IpAddr;

use ddns_core::{DeviceId, EventBody, Fqdn, HostAddrs, HostStatus, Outcome, Reply};

use super::dyndns2::Caller;
use super::{DeviceApi, now_ms, usable};

/// Who a channel connection authenticated as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    /// A device, by its `mac` token.
    Device(DeviceId),
    /// An account's host, by its password or an update token.
    Host(Fqdn),
}

/// A record as the channel shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChannelRecord {
    pub(crate) name: Fqdn,
    pub(crate) addrs: HostAddrs,
}

impl DeviceApi {
    /// Charges `source` one request; false means `911`.
    pub(crate) fn channel_allow_source(&self, source: IpAddr) -> bool {
        let allowed = self.flood.allow_source(source);
        if !allowed {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "source").increment(1);
        }
        allowed
    }

    /// A device's HELLO: its token opened, its record found. (The caller charged its source.)
    pub(crate) async fn channel_hello_device(
        &self,
        token: &str,
        source: IpAddr,
    ) -> Result<(Owner, ChannelRecord), Reply> {
        let credential = match self.tokens.open(token, now_ms() / 1000) {
            Ok(credential) if self.vendors.contains_key(&credential.vendor) => credential,
            Ok(_) => return Err(Reply::InvalidMac),
            Err(error) => {
                tracing::debug!(%source, %error, "QUIC credential refused");
                metrics::counter!("ddns_ingest_bad_credentials_total").increment(1);
                return Err(Reply::InvalidMac);
            }
        };
        let owner = Owner::Device(DeviceId {
            vendor: credential.vendor,
            mac: credential.mac,
        });
        match self.channel_known_record(&owner).await {
            Some(Some(record)) => Ok((owner, record)),
            Some(None) => Err(Reply::NotFound),
            None => Err(Reply::ServerError),
        }
    }

    /// A host's HELLO: its password or update token checked (each argon2 run charged to the
    /// host and the source), its record found.
    pub(crate) async fn channel_hello_host(
        &self,
        host: &str,
        secret: &str,
        source: IpAddr,
    ) -> Result<(Owner, ChannelRecord), Reply> {
        // A host's name has a dot; without one `authenticate` would take it for a user ID.
        if !host.contains('.') || Fqdn::parse(host).is_err() {
            metrics::counter!("ddns_ingest_bad_credentials_total").increment(1);
            return Err(Reply::InvalidMac);
        }
        let fqdn = match self.authenticate(host, secret, source).await {
            Ok(Caller::Host(fqdn)) => fqdn,
            Ok(Caller::Account(_)) | Err("badauth") => return Err(Reply::InvalidMac),
            Err("911") => return Err(Reply::Flood),
            Err(_) => return Err(Reply::ServerError),
        };
        let owner = Owner::Host(fqdn);
        match self.channel_known_record(&owner).await {
            Some(Some(record)) => Ok((owner, record)),
            Some(None) => Err(Reply::NotFound),
            None => Err(Reply::ServerError),
        }
    }

    /// The owner's record as the fold holds it now.
    pub(crate) fn channel_record(&self, owner: &Owner) -> Option<ChannelRecord> {
        self.committer
            .view()
            .with_state(|state| record_of(state, owner))
    }

    /// The record after catching up with a shared log (`None`: that took too long).
    async fn channel_known_record(&self, owner: &Owner) -> Option<Option<ChannelRecord>> {
        self.committer
            .known(|state| Some(record_of(state, owner)))
            .await
    }

    /// Sets the owner's address of `addr`'s family: `09`, `08`, `04`, `13`, `911` or `12`.
    pub(crate) async fn channel_update(&self, owner: &Owner, addr: IpAddr) -> Reply {
        let addr = addr.to_canonical();
        if !usable(addr) {
            return Reply::InvalidIp;
        }
        match owner {
            Owner::Device(device) => {
                // What the fold holds, and what the event keeps of it.
                let known = self.committer.known(|state| {
                    Some(match state.device(device) {
                        None => Err(Reply::NotFound),
                        Some(d) if d.addr_of_family(addr) == Some(addr) => Err(Reply::NoChange),
                        Some(d) => Ok((d.user_agent.to_owned(), d.fields.to_fields())),
                    })
                });
                let (user_agent, fields) = match known.await {
                    Some(Ok(kept)) => kept,
                    Some(Err(reply)) => return reply,
                    None => return Reply::ServerError,
                };
                if !self.flood.allow_device(&device.vendor, &device.mac) {
                    metrics::counter!("ddns_ingest_floods_total", "scope" => "device").increment(1);
                    return Reply::Flood;
                }
                let Some(vendor) = self.vendors.get(&device.vendor) else {
                    return Reply::InvalidMac;
                };
                let body = EventBody::DeviceUpdate {
                    device: device.clone(),
                    zone: vendor.zone.clone(),
                    addr,
                    user_agent,
                    fields,
                };
                self.committer
                    .commit(body)
                    .await
                    .map_or(Reply::ServerError, Reply::from)
            }
            Owner::Host(fqdn) => {
                let known = self.committer.known(|state| {
                    Some(match state.account_host(fqdn) {
                        None => Err(Reply::NotFound),
                        Some(h)
                            if h.status == HostStatus::Ok
                                && h.addrs().of_family(addr) == Some(addr) =>
                        {
                            Err(Reply::NoChange)
                        }
                        Some(h) => Ok(h.zone.clone()),
                    })
                });
                let zone = match known.await {
                    Some(Ok(zone)) => zone,
                    Some(Err(reply)) => return reply,
                    None => return Reply::ServerError,
                };
                if !self.flood.allow_device("@host", fqdn.as_str()) {
                    metrics::counter!("ddns_ingest_floods_total", "scope" => "host").increment(1);
                    return Reply::Flood;
                }
                let body = EventBody::HostAddressSet {
                    zone,
                    fqdn: fqdn.clone(),
                    addr,
                    account: None,
                };
                match self.committer.commit(body).await {
                    Some(outcome @ (Outcome::Modified | Outcome::NoChange | Outcome::NotFound)) => {
                        Reply::from(outcome)
                    }
                    Some(other) => {
                        tracing::error!(?other, "unexpected outcome of a host address");
                        Reply::ServerError
                    }
                    None => Reply::ServerError,
                }
            }
        }
    }

    /// Deletes a device: `15`, `13`, `911` or `16`. A host is removed on the portal: `02`.
    pub(crate) async fn channel_remove(&self, owner: &Owner) -> Reply {
        let Owner::Device(device) = owner else {
            return Reply::InvalidMac;
        };
        let known = self
            .committer
            .known(|state| state.device(device).is_none().then_some(Reply::NotFound));
        if let Some(known) = known.await {
            return known;
        }
        if !self.flood.allow_device(&device.vendor, &device.mac) {
            metrics::counter!("ddns_ingest_floods_total", "scope" => "device").increment(1);
            return Reply::Flood;
        }
        let Some(vendor) = self.vendors.get(&device.vendor) else {
            return Reply::InvalidMac;
        };
        let body = EventBody::DeviceRemove {
            device: device.clone(),
            zone: vendor.zone.clone(),
        };
        self.committer
            .commit(body)
            .await
            .map_or(Reply::DeleteFailed, Reply::from)
    }
}

fn record_of(state: &ddns_core::State, owner: &Owner) -> Option<ChannelRecord> {
    match owner {
        Owner::Device(device) => state.device(device).map(|d| ChannelRecord {
            name: d.fqdn.to_fqdn(),
            addrs: d.addrs(),
        }),
        Owner::Host(fqdn) => state.account_host(fqdn).map(|h| ChannelRecord {
            name: fqdn.clone(),
            addrs: h.addrs(),
        }),
    }
}
