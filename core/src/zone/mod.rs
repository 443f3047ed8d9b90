//! The live zone that the DNS server answers from.
//!
//! The projector is its only writer and changes one host entry at a time; DNS readers look up
//! names concurrently. Each apex has its own [`table::HostTable`]: hosts by their name relative to
//! the apex, in lowercase wire form, in 64 shards each behind its own lock, so a reader waits at
//! most for one entry's change, never for a whole batch. A host costs one 16-byte slot (name and
//! A address inline, for names up to 10 characters) plus the hash table's slack; the layout is
//! in `table.rs`. The DNS server looks names up as they arrive, in wire form
//! ([`LiveZone::lookup_wire`]), without building a string. The SOA serial is an atomic that the
//! projector advances with the applied log position.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use crate::names::Fqdn;

mod table;

use table::HostTable;

/// Longest name in wire form, the root label included (RFC 1035 §3.1).
const MAX_WIRE_NAME: usize = 255;

/// The label an ACME DNS-01 challenge is published under (RFC 8555 §8.4), in wire form.
const ACME_LABEL: &[u8] = b"\x0f_acme-challenge";

/// TXT values of one name (each at most 255 octets, as ingest checked).
pub type TxtValues = Arc<[Box<str>]>;

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

    /// The address of `addr`'s family, if the host has one.
    pub fn of_family(&self, addr: IpAddr) -> Option<IpAddr> {
        match addr {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
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
    /// Each apex's origin in lowercase wire form, root label included; same order as `apexes`.
    origins: Vec<Box<[u8]>>,
    /// Each apex's hosts and empty non-terminals (names between a host and its apex, such as
    /// `sub` for `www.sub.zone`, which exist while a host is below them); same order.
    tables: Vec<HostTable>,
    hosts: AtomicUsize,
    /// ACME challenge values by their name (`_acme-challenge.<host>`, full lowercase wire
    /// form). Few and short-lived, so one plain map; looked at only when a name is not a host
    /// or a TXT is asked for, and not at all while `acme_names` is zero.
    acme: RwLock<HashMap<Box<[u8]>, TxtValues>>,
    acme_names: AtomicUsize,
    serial: AtomicU32,
}

impl LiveZone {
    /// An empty zone set serving `apexes`.
    pub fn new(apexes: Vec<ZoneApex>) -> LiveZone {
        let origins = apexes
            .iter()
            .map(|apex| {
                let mut buf = [0; MAX_WIRE_NAME];
                let wire = to_wire(apex.origin.as_str(), &mut buf);
                wire.expect("an Fqdn fits the wire form").into()
            })
            .collect();
        LiveZone {
            tables: apexes.iter().map(|_| HostTable::new()).collect(),
            apexes,
            origins,
            hosts: AtomicUsize::new(0),
            acme: RwLock::default(),
            acme_names: AtomicUsize::new(0),
            serial: AtomicU32::new(0),
        }
    }

    /// The configured zones.
    pub fn apexes(&self) -> &[ZoneApex] {
        &self.apexes
    }

    /// Sets the host's addresses, or removes the host when `addrs` is empty. A host outside every
    /// configured zone is not kept (no query could reach it).
    pub fn set(&self, host: &Fqdn, addrs: HostAddrs) {
        if addrs.is_empty() {
            return self.remove(host);
        }
        let mut buf = [0; MAX_WIRE_NAME];
        let Some((index, relative)) = self.relative(host, &mut buf) else {
            return;
        };
        if self.tables[index].insert(relative, addrs) {
            self.hosts.fetch_add(1, Ordering::Relaxed);
            self.count_ancestors(index, relative, true);
        }
    }

    /// Removes the host.
    pub fn remove(&self, host: &Fqdn) {
        let mut buf = [0; MAX_WIRE_NAME];
        let Some((index, relative)) = self.relative(host, &mut buf) else {
            return;
        };
        if self.tables[index].remove(relative) {
            self.hosts.fetch_sub(1, Ordering::Relaxed);
            self.count_ancestors(index, relative, false);
        }
    }

    /// Publishes `values` as the TXT records of `_acme-challenge.<host>`, or removes them when
    /// `values` is empty. A name outside every zone, or too long for the label, is not kept.
    pub fn set_acme_txt(&self, host: &Fqdn, values: &[String]) {
        if values.is_empty() && self.acme_names.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut buf = [0; MAX_WIRE_NAME];
        let Some(name) = acme_name(host, &mut buf) else {
            return;
        };
        if self.route(name).is_none() {
            return;
        }
        let mut acme = self.acme.write().unwrap_or_else(PoisonError::into_inner);
        if values.is_empty() {
            acme.remove(name);
        } else {
            let values = values.iter().map(|v| v.as_str().into()).collect();
            acme.insert(name.into(), values);
        }
        self.acme_names.store(acme.len(), Ordering::Release);
    }

    /// The TXT values of `name` (wire form, lowercase, as [`LiveZone::lookup_wire`] takes it).
    pub fn txt_wire(&self, name: &[u8]) -> Option<TxtValues> {
        if self.acme_names.load(Ordering::Acquire) == 0 {
            return None;
        }
        let acme = self.acme.read().unwrap_or_else(PoisonError::into_inner);
        acme.get(name).cloned()
    }

    /// True if `name` (wire form, lowercase) has ACME values, or a name below it has: it exists
    /// though no host has it (a host that has no address yet, or `_acme-challenge` itself).
    fn has_acme_at_or_below(&self, name: &[u8]) -> bool {
        if self.acme_names.load(Ordering::Acquire) == 0 {
            return false;
        }
        let acme = self.acme.read().unwrap_or_else(PoisonError::into_inner);
        if acme.contains_key(name) {
            return true;
        }
        let mut buf = [0; MAX_WIRE_NAME];
        let Some(below) = buf.get_mut(..ACME_LABEL.len() + name.len()) else {
            return false;
        };
        below[..ACME_LABEL.len()].copy_from_slice(ACME_LABEL);
        below[ACME_LABEL.len()..].copy_from_slice(name);
        acme.contains_key(&*below)
    }

    /// The index of `host`'s apex and the host's name relative to it, in wire form.
    fn relative<'b>(
        &self,
        host: &Fqdn,
        buf: &'b mut [u8; MAX_WIRE_NAME],
    ) -> Option<(usize, &'b [u8])> {
        let wire = to_wire(host.as_str(), buf).expect("an Fqdn fits the wire form");
        let (index, at) = self.route(wire)?;
        Some((index, &wire[..at]))
    }

    /// Adds or removes one host below each name between the host `relative` and its apex.
    fn count_ancestors(&self, index: usize, relative: &[u8], added: bool) {
        let mut at = 0;
        while let Some(&len) = relative.get(at) {
            at += 1 + usize::from(len);
            if at < relative.len() {
                self.tables[index].count_below(&relative[at..], added);
            }
        }
    }

    /// The apex `name` (wire form, lowercase) is or lies below, the longest if several are
    /// nested: its index, and where its origin starts in `name`.
    fn route(&self, name: &[u8]) -> Option<(usize, usize)> {
        let mut at = 0;
        // From the first label on, so the first origin found is the longest.
        loop {
            let rest = name.get(at..)?;
            if let Some(index) = self.origins.iter().position(|origin| **origin == *rest) {
                return Some((index, at));
            }
            let len = usize::from(*rest.first()?);
            if len == 0 || len > 63 {
                return None;
            }
            at += 1 + len;
        }
    }

    /// The host's addresses, if it is in the zone; `host` as [`LiveZone::lookup`] takes it.
    pub fn get(&self, host: &str) -> Option<HostAddrs> {
        let mut buf = [0; MAX_WIRE_NAME];
        let wire = to_wire(host.strip_suffix('.').unwrap_or(host), &mut buf)?;
        let (index, at) = self.route(wire)?;
        self.tables[index]
            .find(&wire[..at])
            .filter(|addrs| !addrs.is_empty())
    }

    /// Number of hosts across all zones.
    pub fn len(&self) -> usize {
        self.hosts.load(Ordering::Relaxed)
    }

    /// True if no zone has a host.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The SOA serial now.
    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Acquire)
    }

    /// Sets the SOA serial (the projector derives it from the applied log position).
    pub fn set_serial(&self, serial: u32) {
        self.serial.store(serial, Ordering::Release);
    }

    /// Looks up `name` in presentation form (`cam.dyn.example`, any case, trailing dot
    /// optional). A name that cannot be a domain name (an empty label, a label over 63 octets,
    /// over 255 octets in all) is outside every zone.
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        let mut buf = [0; MAX_WIRE_NAME];
        match to_wire(name.strip_suffix('.').unwrap_or(name), &mut buf) {
            Some(wire) => self.lookup_wire(wire),
            None => Lookup::Refused,
        }
    }

    /// Looks up `name` in wire form as a query carries it, lowercased: uncompressed labels, each
    /// a length octet and that many octets, ending with the root label (`\x03cam\x03dyn\x07example\x00`).
    /// Labels may hold any octet (`.` too): only ASCII letters must be lowercase. A malformed
    /// name (a label length over 63, no root label) is outside every zone.
    pub fn lookup_wire(&self, name: &[u8]) -> Lookup<'_> {
        let Some((index, at)) = self.route(name) else {
            return Lookup::Refused;
        };
        let apex = &self.apexes[index];
        if at == 0 {
            return Lookup::Apex(apex);
        }
        match self.tables[index].find(&name[..at]) {
            Some(addrs) => Lookup::Host(apex, addrs),
            None if self.has_acme_at_or_below(name) => Lookup::Host(apex, HostAddrs::default()),
            None => Lookup::NxDomain(apex),
        }
    }
}

/// `_acme-challenge.<host>` in wire form in `buf`; `None` if it would be over 255 octets.
fn acme_name<'b>(host: &Fqdn, buf: &'b mut [u8; MAX_WIRE_NAME]) -> Option<&'b [u8]> {
    let mut host_wire = [0; MAX_WIRE_NAME];
    let host_wire = to_wire(host.as_str(), &mut host_wire)?;
    let len = ACME_LABEL.len() + host_wire.len();
    let name = buf.get_mut(..len)?;
    name[..ACME_LABEL.len()].copy_from_slice(ACME_LABEL);
    name[ACME_LABEL.len()..].copy_from_slice(host_wire);
    Some(name)
}

/// `name` in presentation form without the trailing dot, lowercase and in wire form in `buf`;
/// `None` for an empty label (other than the root's, `""`), a label over 63 octets, or a name over
/// 255 octets.
fn to_wire<'b>(name: &str, buf: &'b mut [u8; MAX_WIRE_NAME]) -> Option<&'b [u8]> {
    let mut len = 0;
    if !name.is_empty() {
        for label in name.split('.') {
            let size = label.len();
            if size == 0 || size > 63 {
                return None;
            }
            *buf.get_mut(len)? = size as u8;
            let dest = buf.get_mut(len + 1..len + 1 + size)?;
            for (dest, byte) in dest.iter_mut().zip(label.bytes()) {
                *dest = byte.to_ascii_lowercase();
            }
            len += 1 + size;
        }
    }
    *buf.get_mut(len)? = 0;
    Some(&buf[..=len])
}

/// A name in canonical presentation form: lowercase, no trailing dot ([`LiveZone::lookup`] takes
/// any case and an optional trailing dot, so it no longer needs this).
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
    fn acme_values_exist_below_their_host_until_removed() {
        let zone = LiveZone::new(vec![ZoneApex::with_defaults(fqdn("dyn.example"), 30)]);
        let apex = &zone.apexes()[0];
        let wire = |name: &str| {
            let mut buf = [0; MAX_WIRE_NAME];
            to_wire(name, &mut buf).expect("a test name fits").to_vec()
        };
        let challenge = wire("_acme-challenge.cam.dyn.example");
        assert_eq!(zone.txt_wire(&challenge), None);
        assert_eq!(zone.lookup_wire(&challenge), Lookup::NxDomain(apex));

        let values = vec!["first".to_owned(), "second".to_owned()];
        zone.set_acme_txt(&fqdn("CAM.dyn.example"), &values);
        let found = zone.txt_wire(&challenge).expect("published");
        assert_eq!(&*found, ["first".into(), "second".into()]);
        assert_eq!(
            zone.lookup_wire(&challenge),
            Lookup::Host(apex, HostAddrs::default()),
            "the challenge name exists: A there is NODATA, not NXDOMAIN"
        );
        // The host itself exists while a challenge is below it, even with no address yet.
        assert_eq!(
            zone.lookup("cam.dyn.example"),
            Lookup::Host(apex, HostAddrs::default())
        );
        assert_eq!(zone.lookup("other.dyn.example"), Lookup::NxDomain(apex));
        assert_eq!(zone.txt_wire(&wire("cam.dyn.example")), None);
        assert!(zone.is_empty(), "challenges are not hosts");

        zone.set_acme_txt(&fqdn("cam.dyn.example"), &[]);
        assert_eq!(zone.txt_wire(&challenge), None);
        assert_eq!(zone.lookup_wire(&challenge), Lookup::NxDomain(apex));
        assert_eq!(zone.lookup("cam.dyn.example"), Lookup::NxDomain(apex));

        // Outside every zone, or too long for the label: not kept.
        zone.set_acme_txt(&fqdn("cam.other.example"), &values);
        let long = format!(
            "{}.{}.dyn.example",
            vec!["a".repeat(63); 3].join("."),
            "b".repeat(47)
        );
        zone.set_acme_txt(&fqdn(&long), &values);
        assert_eq!(zone.acme_names.load(Ordering::Relaxed), 0);
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
        assert_eq!(zone.tables[0].empty_non_terminals(), 0);
    }

    fn a(last: u8) -> HostAddrs {
        HostAddrs {
            v4: Some(Ipv4Addr::new(192, 0, 2, last)),
            v6: None,
        }
    }

    #[test]
    fn names_are_looked_up_in_any_case_and_in_wire_form() {
        let zone = LiveZone::new(vec![ZoneApex::with_defaults(fqdn("dyn.example"), 30)]);
        zone.set(&fqdn("cam.dyn.example"), a(1));
        let host = Lookup::Host(&zone.apexes()[0], a(1));
        assert_eq!(zone.lookup("CAM.Dyn.Example."), host);
        assert_eq!(zone.lookup("cam.dyn.example"), host);
        assert_eq!(zone.get("Cam.DYN.example"), Some(a(1)));
        assert_eq!(zone.lookup_wire(b"\x03cam\x03dyn\x07example\x00"), host);
        assert_eq!(
            zone.lookup_wire(b"\x03dyn\x07example\x00"),
            Lookup::Apex(&zone.apexes()[0])
        );
        // A label holding a dot is not two labels.
        zone.set(&fqdn("a.b.dyn.example"), a(2));
        assert_eq!(
            zone.lookup_wire(b"\x03a.b\x03dyn\x07example\x00"),
            Lookup::NxDomain(&zone.apexes()[0])
        );
        assert_eq!(zone.lookup_wire(b"\x0bdyn.example\x00"), Lookup::Refused);
        // Malformed: no root label, a label longer than the rest, a pointer.
        for malformed in [
            &b"\x03cam\x03dyn\x07example"[..],
            b"\x09cam\x03dyn\x07example\x00",
            b"\xc0\x0c",
            b"",
        ] {
            assert_eq!(
                zone.lookup_wire(malformed),
                Lookup::Refused,
                "{malformed:?}"
            );
        }
        for odd in [
            "",
            ".",
            "a..dyn.example",
            &format!("{}.dyn.example", "a".repeat(64)),
        ] {
            assert_eq!(zone.lookup(odd), Lookup::Refused, "{odd:?}");
        }
    }

    #[test]
    fn hosts_of_nested_zones_and_of_no_zone() {
        let zone = LiveZone::new(vec![
            ZoneApex::with_defaults(fqdn("example"), 60),
            ZoneApex::with_defaults(fqdn("dyn.example"), 30),
        ]);
        let (outer, inner) = (&zone.apexes()[0], &zone.apexes()[1]);
        zone.set(&fqdn("www.a.dyn.example"), a(1));
        zone.set(&fqdn("x.b.example"), a(2));
        zone.set(&fqdn("cam.example"), a(3));
        zone.set(&fqdn("elsewhere.org"), a(4));
        assert_eq!(zone.len(), 3, "a host outside every zone is not kept");
        assert_eq!(zone.lookup("elsewhere.org"), Lookup::Refused);
        assert_eq!(zone.get("elsewhere.org"), None);
        assert_eq!(zone.lookup("www.a.dyn.example"), Lookup::Host(inner, a(1)));
        assert_eq!(
            zone.lookup("a.dyn.example"),
            Lookup::Host(inner, HostAddrs::default())
        );
        assert_eq!(zone.lookup("x.b.example"), Lookup::Host(outer, a(2)));
        assert_eq!(
            zone.lookup("b.example"),
            Lookup::Host(outer, HostAddrs::default())
        );
        assert_eq!(zone.lookup("cam.example"), Lookup::Host(outer, a(3)));
        assert_eq!(zone.lookup("cam.dyn.example"), Lookup::NxDomain(inner));
        assert_eq!(zone.lookup("dyn.example"), Lookup::Apex(inner));
        assert_eq!(zone.lookup("example"), Lookup::Apex(outer));
        // A host named like an apex is kept, and the apex answers for it.
        zone.set(&fqdn("dyn.example"), a(5));
        assert_eq!(zone.len(), 4);
        assert_eq!(zone.lookup("dyn.example"), Lookup::Apex(inner));
        zone.remove(&fqdn("dyn.example"));
        zone.remove(&fqdn("www.a.dyn.example"));
        assert_eq!(zone.lookup("a.dyn.example"), Lookup::NxDomain(inner));
        assert_eq!(zone.len(), 2);
    }

    mod model {
        use std::collections::BTreeMap;
        use std::net::Ipv6Addr;

        use proptest::prelude::*;

        use super::*;
        use crate::names::is_within;

        const APEXES: [&str; 2] = ["example", "dyn.example"];
        const LABELS: [&str; 5] = ["a", "www", "h123456", "dyn", "a-label-too-long-to-inline"];

        /// A name made of 1..=3 labels from `LABELS` under one of `APEXES`.
        fn name() -> impl Strategy<Value = String> {
            (
                prop::collection::vec(prop::sample::select(&LABELS[..]), 1..=3),
                0..APEXES.len(),
            )
                .prop_map(|(labels, apex)| format!("{}.{}", labels.join("."), APEXES[apex]))
        }

        fn addrs() -> impl Strategy<Value = HostAddrs> {
            (
                prop::option::of(any::<u32>()),
                prop::option::of(any::<u128>()),
            )
                .prop_map(|(v4, v6)| HostAddrs {
                    v4: v4.map(Ipv4Addr::from),
                    v6: v6.map(Ipv6Addr::from),
                })
        }

        fn apex_of(name: &str) -> Option<usize> {
            (0..APEXES.len())
                .filter(|&i| is_within(name, APEXES[i]))
                .max_by_key(|&i| APEXES[i].len())
        }

        /// What the zone should answer, from the plain map of hosts.
        fn expected<'z>(
            zone: &'z LiveZone,
            hosts: &BTreeMap<String, HostAddrs>,
            name: &str,
        ) -> Lookup<'z> {
            let Some(index) = apex_of(name) else {
                return Lookup::Refused;
            };
            let apex = &zone.apexes()[index];
            if name == APEXES[index] {
                return Lookup::Apex(apex);
            }
            if let Some(addrs) = hosts.get(name) {
                return Lookup::Host(apex, *addrs);
            }
            let below = hosts
                .keys()
                .any(|host| host != name && is_within(host, name) && apex_of(host) == Some(index));
            if below {
                Lookup::Host(apex, HostAddrs::default())
            } else {
                Lookup::NxDomain(apex)
            }
        }

        proptest! {
            /// Random sets and removals: every name, its ancestors and the apexes answer as the
            /// model says, after every step.
            #[test]
            fn the_zone_answers_as_a_map_of_hosts(
                steps in prop::collection::vec((name(), addrs()), 1..60)
            ) {
                let apexes = APEXES.iter().map(|origin| ZoneApex::with_defaults(fqdn(origin), 60));
                let zone = LiveZone::new(apexes.collect());
                let mut hosts = BTreeMap::new();
                let mut names: Vec<String> = APEXES.iter().map(|s| s.to_string()).collect();
                names.push("org".into());
                for (name, addrs) in &steps {
                    zone.set(&fqdn(name), *addrs);
                    if addrs.is_empty() {
                        hosts.remove(name);
                    } else {
                        hosts.insert(name.clone(), *addrs);
                    }
                    let mut ancestor = name.as_str();
                    while let Some((_, parent)) = ancestor.split_once('.') {
                        names.push(ancestor.to_string());
                        ancestor = parent;
                    }
                    for name in &names {
                        prop_assert_eq!(zone.lookup(name), expected(&zone, &hosts, name), "{}", name);
                    }
                    prop_assert_eq!(zone.len(), hosts.len());
                }
                for name in hosts.keys() {
                    zone.remove(&fqdn(name));
                }
                prop_assert!(zone.is_empty());
                for table in &zone.tables {
                    prop_assert_eq!(table.empty_non_terminals(), 0);
                }
            }
        }
    }
}
