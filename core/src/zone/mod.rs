//! The live zone that the DNS server answers from.
//!
//! The projector is its only writer and changes one host entry at a time; DNS readers look up
//! names concurrently. The host map is a `DashMap` (sharded locks), so a reader waits at most for
//! one entry's change, never for a whole batch. The SOA serial is an atomic that the projector
//! advances with the applied log position.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use dashmap::DashMap;

use crate::names::{Fqdn, is_within};

/// SOA timers and contacts of a zone, plus the TTL of its host records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneApex {
    /// The zone's origin (`dyn.example`).
    pub origin: Fqdn,
    /// The zone's name servers, published as NS at the apex; the first is the SOA MNAME.
    pub name_servers: Vec<Fqdn>,
    /// The responsible mailbox in domain form (`hostmaster.dyn.example`).
    pub hostmaster: Fqdn,
    /// TTL of host A/AAAA records, in seconds.
    pub host_ttl_secs: u32,
    /// TTL of the SOA and NS records, in seconds.
    pub apex_ttl_secs: u32,
    /// SOA refresh, retry, expire, and minimum (negative-caching TTL), in seconds.
    pub soa_timers_secs: [u32; 4],
}

impl ZoneApex {
    /// A zone with usual timers: `ns1.<origin>` as name server, `hostmaster.<origin>` as contact.
    pub fn with_defaults(origin: Fqdn, host_ttl_secs: u32) -> ZoneApex {
        let ns = Fqdn::parse(&format!("ns1.{origin}")).expect("a child of a valid zone is valid");
        let hostmaster =
            Fqdn::parse(&format!("hostmaster.{origin}")).expect("a child of a valid zone is valid");
        ZoneApex {
            origin,
            name_servers: vec![ns],
            hostmaster,
            host_ttl_secs,
            apex_ttl_secs: 3600,
            soa_timers_secs: [3600, 600, 1_209_600, host_ttl_secs],
        }
    }
}

/// The addresses of one host; a host has at least one of them while it is in the zone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostAddrs {
    /// The A record.
    pub v4: Option<Ipv4Addr>,
    /// The AAAA record.
    pub v6: Option<Ipv6Addr>,
}

impl HostAddrs {
    /// True if the host has neither address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

/// What the zone holds for a queried name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The name is outside every configured zone.
    Refused,
    /// The name is a zone apex.
    Apex(&'a ZoneApex),
    /// The name is a host of the zone; with empty addresses, an empty non-terminal (a name
    /// that only has hosts below it), which exists and so answers NODATA, not NXDOMAIN.
    Host(&'a ZoneApex, HostAddrs),
    /// The name is inside the zone and does not exist.
    NxDomain(&'a ZoneApex),
}

/// Every configured zone and its hosts, shared between the projector and the DNS server.
#[derive(Debug)]
pub struct LiveZone {
    apexes: Vec<ZoneApex>,
    hosts: DashMap<Box<str>, HostAddrs>,
    /// Names between a host and its apex (`sub.zone` for `www.sub.zone`), with the number of
    /// hosts below each. Device names sit right under the apex and add nothing here.
    empty_non_terminals: DashMap<Box<str>, u32>,
    serial: AtomicU32,
}

impl LiveZone {
    /// An empty zone set serving `apexes`.
    pub fn new(apexes: Vec<ZoneApex>) -> LiveZone {
        LiveZone {
            apexes,
            hosts: DashMap::new(),
            empty_non_terminals: DashMap::new(),
            serial: AtomicU32::new(0),
        }
    }

    /// The configured zones.
    pub fn apexes(&self) -> &[ZoneApex] {
        &self.apexes
    }

    /// Sets the host's addresses, or removes the host when `addrs` is empty.
    pub fn set(&self, host: &Fqdn, addrs: HostAddrs) {
        if addrs.is_empty() {
            self.remove(host);
        } else if self.hosts.insert(host.as_str().into(), addrs).is_none() {
            self.count_ancestors(host.as_str(), true);
        }
    }

    /// Removes the host.
    pub fn remove(&self, host: &Fqdn) {
        if self.hosts.remove(host.as_str()).is_some() {
            self.count_ancestors(host.as_str(), false);
        }
    }

    /// Adds or removes one host below each name between `host` and its apex.
    fn count_ancestors(&self, host: &str, added: bool) {
        let Some(apex) = self.apex_of(host) else {
            return;
        };
        let apex_len = apex.origin.as_str().len();
        let mut name = host;
        while let Some((_, parent)) = name.split_once('.') {
            if parent.len() <= apex_len {
                break;
            }
            if added {
                *self.empty_non_terminals.entry(parent.into()).or_insert(0) += 1;
            } else {
                self.empty_non_terminals.remove_if_mut(parent, |_, count| {
                    *count -= 1;
                    *count == 0
                });
            }
            name = parent;
        }
    }

    fn apex_of(&self, name: &str) -> Option<&ZoneApex> {
        self.apexes
            .iter()
            .filter(|apex| is_within(name, apex.origin.as_str()))
            .max_by_key(|apex| apex.origin.as_str().len())
    }

    /// The host's addresses, if it is in the zone.
    pub fn get(&self, host: &str) -> Option<HostAddrs> {
        self.hosts.get(host).map(|entry| *entry)
    }

    /// Number of hosts across all zones.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// True if no zone has a host.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The SOA serial now.
    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Acquire)
    }

    /// Sets the SOA serial (the projector derives it from the applied log position).
    pub fn set_serial(&self, serial: u32) {
        self.serial.store(serial, Ordering::Release);
    }

    /// Looks up `name`, which must be lowercase and without the trailing dot (see [`normalize`]).
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        let Some(apex) = self.apex_of(name) else {
            return Lookup::Refused;
        };
        if name == apex.origin.as_str() {
            return Lookup::Apex(apex);
        }
        match self.get(name) {
            Some(addrs) => Lookup::Host(apex, addrs),
            None if self.empty_non_terminals.contains_key(name) => {
                Lookup::Host(apex, HostAddrs::default())
            }
            None => Lookup::NxDomain(apex),
        }
    }
}

/// A query name in the form [`LiveZone::lookup`] takes: lowercase, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fqdn(s: &str) -> Fqdn {
        Fqdn::parse(s).expect("valid test name")
    }

    #[test]
    fn lookup_routes_to_the_longest_zone() {
        let zone = LiveZone::new(vec![
            ZoneApex::with_defaults(fqdn("example"), 60),
            ZoneApex::with_defaults(fqdn("dyn.example"), 30),
        ]);
        let v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        zone.set(&fqdn("cam.dyn.example"), HostAddrs { v4, v6: None });
        assert_eq!(zone.lookup("org"), Lookup::Refused);
        assert_eq!(
            zone.lookup("xdyn.example").clone(),
            Lookup::NxDomain(&zone.apexes()[0])
        );
        assert_eq!(zone.lookup("dyn.example"), Lookup::Apex(&zone.apexes()[1]));
        assert_eq!(
            zone.lookup("cam.dyn.example"),
            Lookup::Host(&zone.apexes()[1], HostAddrs { v4, v6: None })
        );
        assert_eq!(
            zone.lookup(&normalize("CAM.Dyn.Example.")),
            zone.lookup("cam.dyn.example")
        );
        zone.set(&fqdn("cam.dyn.example"), HostAddrs::default());
        assert_eq!(
            zone.lookup("cam.dyn.example"),
            Lookup::NxDomain(&zone.apexes()[1])
        );
        assert!(zone.is_empty());
    }

    #[test]
    fn names_between_a_host_and_its_apex_exist_while_hosts_are_below_them() {
        let zone = LiveZone::new(vec![ZoneApex::with_defaults(fqdn("dyn.example"), 30)]);
        let v4 = HostAddrs {
            v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            v6: None,
        };
        zone.set(&fqdn("www.a.b.dyn.example"), v4);
        zone.set(&fqdn("ftp.a.b.dyn.example"), v4);
        zone.set(&fqdn("ftp.a.b.dyn.example"), v4); // a change, not a second host
        let empty = Lookup::Host(&zone.apexes()[0], HostAddrs::default());
        let nx = Lookup::NxDomain(&zone.apexes()[0]);
        assert_eq!(zone.lookup("a.b.dyn.example"), empty);
        assert_eq!(zone.lookup("b.dyn.example"), empty);
        assert_eq!(zone.lookup("c.b.dyn.example"), nx);
        zone.remove(&fqdn("www.a.b.dyn.example"));
        assert_eq!(
            zone.lookup("a.b.dyn.example"),
            empty,
            "ftp is still below it"
        );
        zone.set(&fqdn("ftp.a.b.dyn.example"), HostAddrs::default());
        assert_eq!(zone.lookup("a.b.dyn.example"), nx);
        assert_eq!(zone.lookup("b.dyn.example"), nx);
        assert!(zone.empty_non_terminals.is_empty());
    }
}
