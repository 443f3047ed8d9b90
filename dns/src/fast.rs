//! The UDP fast path: the common query answered from its bytes straight into reply bytes, in the
//! buffer it arrived in, with no decoding into hickory's types and no allocation.
//!
//! "Common" is what resolvers and load generators send: one question, opcode QUERY, class IN, a
//! name of letters, digits, `-` and `_` without compression, type other than ANY/AXFR/IXFR (and
//! not SOA/NS at an apex), optionally one OPT (EDNS version 0) at the end whose options are all
//! ones hickory keeps opaque, and a reply that fits the client's limit even uncompressed. For
//! those, [`FastPath::answer`] writes the same reply [`crate::Responder`] would (see "Same answer"
//! below); for anything else it says [`Fast::Slow`] and the caller asks the `Responder`, so every
//! unusual case keeps exactly the behaviour it had. A message with QR=1 is [`Fast::Drop`]ped.
//!
//! Same answer: a fast reply decodes to the same message as the `Responder`'s (header bits,
//! question bytes, records with their owner names in the same case, OPT). Only name compression
//! differs: the fast path points the answer's owner at the question (2 bytes) and the SOA's names
//! at the zone origin, as NSD and Knot do, where hickory writes the owner in full. The reply is
//! therefore never larger, and because the fast path only answers when even the uncompressed
//! reply fits, it never answers what the `Responder` would truncate.

use std::sync::Arc;

use ddns_core::{HostAddrs, LiveZone, Lookup, ZoneApex};

use crate::answer::{MAX_UDP_PAYLOAD, MIN_UDP_PAYLOAD};

const HEADER_LEN: usize = 12;
/// An OPT record without options: root name, type, class, TTL, RDLENGTH.
const OPT_LEN: usize = 11;
/// Type, class, TTL and RDLENGTH of a resource record.
const RR_FIXED_LEN: usize = 10;
/// Serial, refresh, retry, expire and minimum of an SOA.
const SOA_NUMBERS_LEN: usize = 20;
/// Longest name on the wire, terminating zero included (RFC 1035 §3.1).
const MAX_NAME_LEN: usize = 255;

const TYPE_A: u16 = 1;
const TYPE_NS: u16 = 2;
const TYPE_SOA: u16 = 6;
const TYPE_TXT: u16 = 16;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const TYPE_IXFR: u16 = 251;
const TYPE_AXFR: u16 = 252;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;

const RCODE_NOERROR: u8 = 0;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_REFUSED: u8 = 5;

/// EDNS options whose data hickory parses (NSID, DAU, DHU, N3U, client subnet) and could reject;
/// a query carrying one goes the slow way so that its FORMERR, if any, stays hickory's.
const PARSED_EDNS_OPTIONS: [u16; 5] = [3, 5, 6, 7, 8];

/// What the fast path did with one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fast {
    /// The reply is in the first `len` bytes of the buffer.
    Reply(usize),
    /// No reply: a response (QR=1) or a message shorter than a header.
    Drop,
    /// Not the common case: ask [`crate::Responder::respond`]. The buffer is unchanged.
    Slow,
}

/// A zone apex in wire form, built once.
#[derive(Debug)]
struct ApexWire {
    /// The origin as wire labels with the terminating zero, lowercase.
    origin: Vec<u8>,
    /// Number of labels of the origin.
    origin_labels: usize,
    host_ttl: u32,
    /// TTL of the SOA in negative answers: min(SOA TTL, SOA minimum) (RFC 2308 §3).
    negative_ttl: u32,
    mname: SoaName,
    rname: SoaName,
    /// Refresh, retry, expire, minimum, encoded as the `Responder` encodes them.
    timers: [u8; 16],
}

/// A name inside the SOA's RDATA, compressed against the origin or the MNAME before it.
#[derive(Debug)]
enum SoaName {
    /// Its labels before the origin, then a pointer to the origin.
    UnderOrigin(Vec<u8>),
    /// Its labels before the part it shares with the MNAME (written in full before it), then a
    /// pointer to that part: `hostmaster.provider.net` after `ns1.provider.net`.
    AfterMname {
        prefix: Vec<u8>,
        /// Where the shared part starts within the MNAME.
        offset: usize,
        /// The whole name, for the uncompressed size.
        full_len: usize,
    },
    /// Outside the zone: the whole name, terminating zero included.
    Elsewhere(Vec<u8>),
}

impl SoaName {
    /// `name` compressed against `origin`, and against `mname` (whole, wire form) if it is given.
    fn new(name: &str, origin: &str, mname: Option<&SoaName>) -> SoaName {
        if name == origin {
            return SoaName::UnderOrigin(Vec::new());
        }
        if let Some(prefix) = name
            .strip_suffix(origin)
            .and_then(|prefix| prefix.strip_suffix('.'))
        {
            return SoaName::UnderOrigin(wire_labels(prefix));
        }
        let mut full = wire_labels(name);
        full.push(0);
        if let Some(SoaName::Elsewhere(mname)) = mname {
            // The longest label-aligned suffix the two share (at least one label).
            let mut at = 0;
            while let Some(&len) = full.get(at)
                && len > 0
            {
                let suffix = &full[at..];
                if let Some(offset) = label_starts(mname).find(|&o| &mname[o..] == suffix) {
                    return SoaName::AfterMname {
                        prefix: full[..at].to_vec(),
                        offset,
                        full_len: full.len(),
                    };
                }
                at += 1 + usize::from(len);
            }
        }
        SoaName::Elsewhere(full)
    }

    /// Its encoded length.
    fn compressed_len(&self) -> usize {
        match self {
            SoaName::UnderOrigin(prefix) | SoaName::AfterMname { prefix, .. } => prefix.len() + 2,
            SoaName::Elsewhere(full) => full.len(),
        }
    }

    /// Its length uncompressed, as the `Responder`'s size bound counts it.
    fn full_len(&self, origin_len: usize) -> usize {
        match self {
            SoaName::UnderOrigin(prefix) => prefix.len() + origin_len,
            SoaName::AfterMname { full_len, .. } => *full_len,
            SoaName::Elsewhere(full) => full.len(),
        }
    }
}

/// Offsets of the labels of a wire name (terminating zero included), the root excluded.
fn label_starts(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*wire.get(at).filter(|&&len| len > 0)?);
        let start = at;
        at += 1 + len;
        Some(start)
    })
}

/// `a.b` as wire labels, without the terminating zero.
fn wire_labels(name: &str) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 1);
    for label in name.split('.') {
        // An Fqdn's labels are 1..=63 octets.
        wire.push(u8::try_from(label.len()).unwrap_or(63));
        wire.extend_from_slice(label.as_bytes());
    }
    wire
}

impl ApexWire {
    fn new(apex: &ZoneApex) -> ApexWire {
        let origin_str = apex.origin.as_str();
        let mut origin = wire_labels(origin_str);
        origin.push(0);
        // As the Responder: a zone without name servers names its origin as MNAME.
        let mname = apex.name_servers.first().unwrap_or(&apex.origin);
        let [refresh, retry, expire, minimum] = apex.soa_timers_secs;
        // As the Responder, which saturates three timers to i32 (hickory's types).
        let signed = |secs: u32| secs.min(i32::MAX as u32);
        let mname = SoaName::new(mname.as_str(), origin_str, None);
        let mut timers = [0u8; 16];
        for (slot, value) in timers.chunks_exact_mut(4).zip([
            signed(refresh),
            signed(retry),
            signed(expire),
            minimum,
        ]) {
            slot.copy_from_slice(&value.to_be_bytes());
        }
        ApexWire {
            origin_labels: origin_str.split('.').count(),
            origin,
            host_ttl: apex.host_ttl_secs,
            negative_ttl: apex.apex_ttl_secs.min(minimum),
            rname: SoaName::new(apex.hostmaster.as_str(), origin_str, Some(&mname)),
            mname,
            timers,
        }
    }
}

/// The parts of a query the reply needs, as offsets into the message.
struct Query {
    /// Offset of the end of the question section.
    question_end: usize,
    /// Wire length of the question name, terminating zero included.
    qname_len: usize,
    qtype: u16,
    /// Offset (from the start of the name) of each label of the question name.
    label_starts: [u8; MAX_NAME_LEN / 2],
    labels: usize,
    /// The client's EDNS payload size and DO bit, if it sent an OPT.
    edns: Option<(u16, bool)>,
}

/// Answers the common UDP query from bytes to bytes; see the module documentation.
#[derive(Debug)]
pub struct FastPath {
    zone: Arc<LiveZone>,
    /// One entry per `zone.apexes()`, same order.
    apexes: Vec<ApexWire>,
}

impl FastPath {
    /// A fast path serving `zone` (its set of apexes is fixed for the zone's life).
    pub fn new(zone: Arc<LiveZone>) -> FastPath {
        let apexes = zone.apexes().iter().map(ApexWire::new).collect();
        FastPath { zone, apexes }
    }

    /// Answers the datagram in `buf[..len]` in place: on [`Fast::Reply`] the reply has replaced
    /// it. `buf` should have room for the largest UDP reply ([`MAX_UDP_PAYLOAD`]); a reply that
    /// does not fit in `buf` goes the slow way.
    pub fn answer(&self, buf: &mut [u8], len: usize) -> Fast {
        let Some(message) = buf.get(..len) else {
            return Fast::Slow;
        };
        if message.len() < HEADER_LEN {
            return Fast::Drop;
        }
        if message[2] & 0x80 != 0 {
            // QR=1: never answer a response (it would let anyone bounce packets between servers).
            return Fast::Drop;
        }
        let mut key = [0u8; MAX_NAME_LEN];
        let Some(query) = parse(message, &mut key) else {
            return Fast::Slow;
        };
        match self.zone.lookup_wire(&key[..query.qname_len]) {
            Lookup::Refused => self.write(buf, &query, RCODE_REFUSED, false, Section::None),
            Lookup::Apex(apex) => {
                if matches!(query.qtype, TYPE_SOA | TYPE_NS) {
                    return Fast::Slow;
                }
                let apex = self.apex_wire(apex);
                self.write(buf, &query, RCODE_NOERROR, true, Section::Soa(apex))
            }
            // ACME challenge values are few and rare: the slow path answers them.
            Lookup::Host(..) if query.qtype == TYPE_TXT => Fast::Slow,
            Lookup::Host(apex, addrs) => {
                let apex_wire = self.apex_wire(apex);
                let section = match host_data(query.qtype, addrs) {
                    Some(data) => Section::Answer(apex_wire.host_ttl, query.qtype, data),
                    None => Section::Soa(apex_wire),
                };
                self.write(buf, &query, RCODE_NOERROR, true, section)
            }
            Lookup::NxDomain(apex) => {
                let apex = self.apex_wire(apex);
                self.write(buf, &query, RCODE_NXDOMAIN, true, Section::Soa(apex))
            }
        }
    }

    fn apex_wire(&self, apex: &ZoneApex) -> &ApexWire {
        let index = self
            .zone
            .apexes()
            .iter()
            .position(|candidate| std::ptr::eq(candidate, apex))
            .unwrap_or(0);
        &self.apexes[index]
    }

    /// Writes the reply over the query in `buf`: header, the question as it is, `section`, OPT.
    fn write(
        &self,
        buf: &mut [u8],
        query: &Query,
        rcode: u8,
        authoritative: bool,
        section: Section<'_>,
    ) -> Fast {
        let question_len = query.question_end - HEADER_LEN;
        let opt_len = if query.edns.is_some() { OPT_LEN } else { 0 };
        // The Responder's size bound: every name uncompressed.
        let records_bound = match &section {
            Section::None => 0,
            Section::Answer(_, _, data) => query.qname_len + RR_FIXED_LEN + data.len(),
            Section::Soa(apex) => {
                let origin_len = apex.origin.len();
                origin_len
                    + RR_FIXED_LEN
                    + apex.mname.full_len(origin_len)
                    + apex.rname.full_len(origin_len)
                    + SOA_NUMBERS_LEN
            }
        };
        let limit = match query.edns {
            Some((payload, _)) => payload.clamp(MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD),
            None => MIN_UDP_PAYLOAD,
        };
        let bound = HEADER_LEN + question_len + records_bound + opt_len;
        if bound > usize::from(limit) || bound > buf.len() {
            return Fast::Slow;
        }

        let (answers, authorities) = match section {
            Section::None => (0, 0),
            Section::Answer(..) => (1, 0),
            Section::Soa(_) => (0, 1),
        };
        // RD and CD are copied (as hickory's `Metadata::response_from_request` does); QR set.
        buf[2] = 0x80 | (buf[2] & 0x01) | if authoritative { 0x04 } else { 0 };
        buf[3] = (buf[3] & 0x10) | rcode;
        buf[4..12].copy_from_slice(&[
            0,
            1,
            0,
            answers,
            0,
            authorities,
            0,
            u8::from(query.edns.is_some()),
        ]);
        let mut out = Writer {
            buf,
            at: query.question_end,
        };
        match section {
            Section::None => {}
            Section::Answer(ttl, qtype, data) => {
                out.put(&[0xc0, HEADER_LEN as u8]);
                out.put_u16(qtype);
                out.put_u16(CLASS_IN);
                out.put_u32(ttl);
                out.put_u16(data.len() as u16);
                out.put(data.as_slice());
            }
            Section::Soa(apex) => {
                let origin_at = match origin_in_question(out.buf, query, apex) {
                    Some(at) => {
                        out.put_u16(0xc000 | at as u16);
                        at
                    }
                    None => {
                        let at = out.at;
                        out.put(&apex.origin);
                        at
                    }
                };
                out.put_u16(TYPE_SOA);
                out.put_u16(CLASS_IN);
                out.put_u32(apex.negative_ttl);
                let rdlength =
                    apex.mname.compressed_len() + apex.rname.compressed_len() + SOA_NUMBERS_LEN;
                out.put_u16(rdlength as u16);
                let mname_at = out.at;
                for name in [&apex.mname, &apex.rname] {
                    match name {
                        SoaName::UnderOrigin(prefix) => {
                            out.put(prefix);
                            out.put_u16(0xc000 | origin_at as u16);
                        }
                        SoaName::AfterMname { prefix, offset, .. } => {
                            out.put(prefix);
                            out.put_u16(0xc000 | (mname_at + offset) as u16);
                        }
                        SoaName::Elsewhere(full) => out.put(full),
                    }
                }
                out.put_u32(self.zone.serial());
                out.put(&apex.timers);
            }
        }
        if let Some((payload, dnssec_ok)) = query.edns {
            let payload = payload.clamp(MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD);
            out.put(&[0]);
            out.put_u16(TYPE_OPT);
            out.put_u16(payload);
            // Extended RCODE 0, version 0, flags: only DO, copied (RFC 3225 §3); no options.
            out.put(&[0, 0, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        }
        Fast::Reply(out.at)
    }
}

/// What follows the question in a fast reply.
enum Section<'a> {
    /// Nothing (REFUSED).
    None,
    /// One A or AAAA record: TTL, type, data.
    Answer(u32, u16, RData),
    /// The zone's SOA in the authority section (NXDOMAIN, NODATA).
    Soa(&'a ApexWire),
}

/// A host's address for `qtype`, if it has one.
fn host_data(qtype: u16, addrs: HostAddrs) -> Option<RData> {
    match qtype {
        TYPE_A => addrs.v4.map(|v4| RData::A(v4.octets())),
        TYPE_AAAA => addrs.v6.map(|v6| RData::Aaaa(v6.octets())),
        _ => None,
    }
}

enum RData {
    A([u8; 4]),
    Aaaa([u8; 16]),
}

impl RData {
    fn as_slice(&self) -> &[u8] {
        match self {
            RData::A(octets) => octets,
            RData::Aaaa(octets) => octets,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }
}

/// Where the question holds the zone's origin exactly (same case), for the SOA's owner to point
/// at; `None` if its case differs (the SOA's owner is the origin as configured).
fn origin_in_question(buf: &[u8], query: &Query, apex: &ApexWire) -> Option<usize> {
    let first = query.labels.checked_sub(apex.origin_labels)?;
    let at = HEADER_LEN + usize::from(*query.label_starts.get(first)?);
    let suffix = buf.get(at..HEADER_LEN + query.qname_len)?;
    (suffix == apex.origin.as_slice()).then_some(at)
}

/// Parses the common query, copying its name lowercase into `key` (wire form, as
/// [`LiveZone::lookup_wire`] takes it); `None` if the message is not the common case.
fn parse(message: &[u8], key: &mut [u8; MAX_NAME_LEN]) -> Option<Query> {
    // Opcode QUERY, exactly one question, no answers or authorities, at most one additional.
    if message[2] & 0x78 != 0 || message[4..11] != [0, 1, 0, 0, 0, 0, 0] || message[11] > 1 {
        return None;
    }
    let mut label_starts = [0u8; MAX_NAME_LEN / 2];
    let mut labels = 0;
    let mut at = HEADER_LEN;
    loop {
        let label_len = usize::from(*message.get(at)?);
        let in_key = at - HEADER_LEN;
        if label_len == 0 {
            *key.get_mut(in_key)? = 0;
            at += 1;
            break;
        }
        // 64 and up: a compression pointer or an extended label type.
        if label_len > 63 || in_key + 1 + label_len + 1 > MAX_NAME_LEN {
            return None;
        }
        let label = message.get(at + 1..at + 1 + label_len)?;
        *label_starts.get_mut(labels)? = u8::try_from(in_key).ok()?;
        labels += 1;
        *key.get_mut(in_key)? = label_len as u8;
        let dest = key.get_mut(in_key + 1..in_key + 1 + label_len)?;
        for (dest, &byte) in dest.iter_mut().zip(label) {
            *dest = match byte {
                b'A'..=b'Z' => byte | 0x20,
                b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => byte,
                _ => return None,
            };
        }
        at += 1 + label_len;
    }
    let qname_len = at - HEADER_LEN;
    let fixed = message.get(at..at + 4)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    if qclass != CLASS_IN || matches!(qtype, TYPE_OPT | TYPE_IXFR | TYPE_AXFR | TYPE_ANY) {
        return None;
    }
    let question_end = at + 4;
    let edns = if message[11] == 1 {
        Some(parse_opt(message.get(question_end..)?)?)
    } else if question_end == message.len() {
        None
    } else {
        return None;
    };
    Some(Query {
        question_end,
        qname_len,
        qtype,
        label_starts,
        labels,
        edns,
    })
}

/// The client's payload size and DO bit from an OPT record that ends the message, if it is one
/// the fast path takes: root owner, extended RCODE 0, version 0, options hickory keeps opaque.
fn parse_opt(opt: &[u8]) -> Option<(u16, bool)> {
    let fixed = opt.get(..OPT_LEN)?;
    let be16 = |at: usize| u16::from_be_bytes([fixed[at], fixed[at + 1]]);
    if fixed[0] != 0 || be16(1) != TYPE_OPT || fixed[5] != 0 || fixed[6] != 0 {
        return None;
    }
    let payload = be16(3);
    let dnssec_ok = fixed[7] & 0x80 != 0;
    let mut options = opt.get(OPT_LEN..)?;
    if options.len() != usize::from(be16(9)) {
        return None;
    }
    while !options.is_empty() {
        let header = options.get(..4)?;
        let code = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if PARSED_EDNS_OPTIONS.contains(&code) {
            return None;
        }
        options = options.get(4 + len..)?;
    }
    Some((payload, dnssec_ok))
}

/// Appends to a reply; the caller has checked that everything fits.
struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(dest) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            dest.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }

    fn put_u16(&mut self, value: u16) {
        self.put(&value.to_be_bytes());
    }

    fn put_u32(&mut self, value: u32) {
        self.put(&value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use ddns_core::Fqdn;
    use hickory_server::proto::op::Message;
    use proptest::prelude::*;
    use proptest::sample::Index;

    use super::*;
    use crate::answer::{Responder, Transport};

    fn fqdn(name: &str) -> Fqdn {
        Fqdn::parse(name).expect("valid test name")
    }

    /// One host of a generated zone: apex index, labels below it, addresses.
    #[derive(Clone, Debug)]
    struct HostSpec {
        apex: usize,
        labels: Vec<String>,
        v4: Option<u32>,
        v6: Option<u128>,
    }

    /// A generated zone set: `dyn.example` (name servers and contact inside it), `example` (its
    /// parent, default apex records) and `big.test` (twelve long name servers elsewhere, so its
    /// negative answers are large), each with random TTLs, plus random hosts.
    #[derive(Clone, Debug)]
    struct ZoneSpec {
        hosts: Vec<HostSpec>,
        serial: u32,
        host_ttl: u32,
        apex_ttl: u32,
        timers: [u32; 4],
    }

    const APEXES: [&str; 3] = ["dyn.example", "example", "big.test"];

    impl ZoneSpec {
        fn build(&self) -> Arc<LiveZone> {
            let apexes = APEXES
                .iter()
                .enumerate()
                .map(|(i, origin)| {
                    let mut apex = ZoneApex::with_defaults(fqdn(origin), self.host_ttl);
                    apex.apex_ttl_secs = self.apex_ttl;
                    apex.soa_timers_secs = self.timers;
                    match i {
                        0 => {
                            apex.name_servers = vec![fqdn("ns1.dyn.example"), fqdn("ns2.example")];
                            apex.hostmaster = fqdn("dyn.example");
                        }
                        2 => {
                            apex.name_servers = (0..12)
                                .map(|n| fqdn(&format!("ns-with-a-long-name-{n:02}.provider.net")))
                                .collect();
                            apex.hostmaster = fqdn("hostmaster.provider.net");
                        }
                        _ => {}
                    }
                    apex
                })
                .collect();
            let zone = LiveZone::new(apexes);
            for host in &self.hosts {
                let name = format!("{}.{}", host.labels.join("."), APEXES[host.apex]);
                let addrs = HostAddrs {
                    v4: host.v4.map(Ipv4Addr::from),
                    v6: host.v6.map(Ipv6Addr::from),
                };
                zone.set(&fqdn(&name), addrs);
            }
            zone.set_serial(self.serial);
            Arc::new(zone)
        }

        /// Every name worth asking about: hosts, the names between them and their apex, apexes.
        fn names(&self) -> Vec<String> {
            let mut names: Vec<String> = APEXES.iter().map(|apex| apex.to_string()).collect();
            for host in &self.hosts {
                for skip in 0..host.labels.len() {
                    names.push(format!(
                        "{}.{}",
                        host.labels[skip..].join("."),
                        APEXES[host.apex]
                    ));
                }
            }
            names
        }
    }

    fn host_spec() -> impl Strategy<Value = HostSpec> {
        (
            0..APEXES.len(),
            prop::collection::vec("[a-c0-9]{1,3}", 1..=3),
            any::<Option<u32>>(),
            any::<Option<u128>>(),
            any::<u32>(),
        )
            .prop_map(|(apex, labels, v4, v6, fallback)| HostSpec {
                apex,
                labels,
                // A host has at least one address.
                v4: v4.or(v6.is_none().then_some(fallback)),
                v6,
            })
    }

    fn zone_spec() -> impl Strategy<Value = ZoneSpec> {
        (
            prop::collection::vec(host_spec(), 0..24),
            any::<u32>(),
            prop_oneof![Just(60u32), any::<u32>()],
            prop_oneof![Just(3600u32), any::<u32>()],
            prop_oneof![Just([3600u32, 600, 1_209_600, 60]), any::<[u32; 4]>()],
        )
            .prop_map(|(hosts, serial, host_ttl, apex_ttl, timers)| ZoneSpec {
                hosts,
                serial,
                host_ttl,
                apex_ttl,
                timers,
            })
    }

    /// The question name: a known name (or a random one) below random extra labels, in random
    /// case, sometimes with octets the fast path leaves to hickory.
    #[derive(Clone, Debug)]
    struct NameSpec {
        known: Index,
        base: u8,
        prefix: Vec<Vec<u8>>,
        case_flips: u64,
    }

    fn label() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => "[a-cA-C0-9_-]{1,4}".prop_map(String::into_bytes),
            1 => prop::collection::vec(any::<u8>(), 1..6),
            1 => "[a-z]{60,63}".prop_map(String::into_bytes),
        ]
    }

    fn name_spec() -> impl Strategy<Value = NameSpec> {
        (
            any::<Index>(),
            0u8..10,
            prop_oneof![
                6 => Just(Vec::new()),
                3 => prop::collection::vec(label(), 1..3),
                1 => prop::collection::vec(label(), 3..6),
            ],
            any::<u64>(),
        )
            .prop_map(|(known, base, prefix, case_flips)| NameSpec {
                known,
                base,
                prefix,
                case_flips,
            })
    }

    impl NameSpec {
        fn labels(&self, zone: &ZoneSpec) -> Vec<Vec<u8>> {
            let names = zone.names();
            let base = match self.base {
                0..=6 => self.known.get(&names).clone(),
                7 => "example.org".to_owned(),
                8 => String::new(),
                _ => "zz.dyn.example".to_owned(),
            };
            let mut labels = self.prefix.clone();
            labels.extend(
                base.split('.')
                    .filter(|label| !label.is_empty())
                    .map(|label| label.as_bytes().to_vec()),
            );
            let mut flip = self.case_flips;
            for byte in labels.iter_mut().flatten() {
                if flip & 1 == 1 && byte.is_ascii_alphabetic() {
                    *byte ^= 0x20;
                }
                flip = flip.rotate_right(1);
            }
            labels
        }
    }

    #[derive(Clone, Debug)]
    struct EdnsSpec {
        payload: u16,
        ext_rcode: u8,
        version: u8,
        flags: u16,
        options: Vec<(u16, Vec<u8>)>,
        /// Declared option length minus the real one (a malformed OPT when not zero).
        rdlen_skew: i8,
    }

    fn edns_spec() -> impl Strategy<Value = EdnsSpec> {
        let option = (
            prop_oneof![Just(10u16), Just(12), Just(8), Just(3), any::<u16>()],
            prop::collection::vec(any::<u8>(), 0..12),
        );
        (
            prop_oneof![Just(1232u16), Just(4096), Just(512), any::<u16>()],
            prop_oneof![9 => Just(0u8), 1 => any::<u8>()],
            prop_oneof![9 => Just(0u8), 1 => any::<u8>()],
            any::<u16>(),
            prop_oneof![
                4 => Just(Vec::new()),
                4 => prop::collection::vec(option, 1..3),
            ],
            prop_oneof![9 => Just(0i8), 1 => -3i8..3],
        )
            .prop_map(
                |(payload, ext_rcode, version, flags, options, rdlen_skew)| EdnsSpec {
                    payload,
                    ext_rcode,
                    version,
                    flags,
                    options,
                    rdlen_skew,
                },
            )
    }

    #[derive(Clone, Debug)]
    struct QuerySpec {
        id: u16,
        flags: [u8; 2],
        name: NameSpec,
        qtype: u16,
        qclass: u16,
        edns: Option<EdnsSpec>,
        counts: Option<[u8; 4]>,
        trailing: Vec<u8>,
    }

    fn query_spec() -> impl Strategy<Value = QuerySpec> {
        (
            any::<u16>(),
            (
                prop_oneof![8 => any::<u8>().prop_map(|b| b & 0x07), 2 => any::<u8>()],
                any::<u8>(),
            ),
            name_spec(),
            prop_oneof![
                4 => Just(1u16),
                2 => Just(28),
                1 => Just(6),
                1 => Just(2),
                1 => Just(255),
                1 => Just(15),
                1 => any::<u16>(),
            ],
            prop_oneof![9 => Just(1u16), 1 => any::<u16>()],
            prop::option::of(edns_spec()),
            prop_oneof![9 => Just(None), 1 => any::<[u8; 4]>().prop_map(Some)],
            prop_oneof![9 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 1..8)],
        )
            .prop_map(
                |(id, (b2, b3), name, qtype, qclass, edns, counts, trailing)| QuerySpec {
                    id,
                    flags: [b2, b3],
                    name,
                    qtype,
                    qclass,
                    edns,
                    counts,
                    trailing,
                },
            )
    }

    impl QuerySpec {
        fn bytes(&self, zone: &ZoneSpec) -> Vec<u8> {
            let [b2, b3] = self.flags;
            let additional = u8::from(self.edns.is_some());
            let [qd, an, ns, ar] = self.counts.unwrap_or([1, 0, 0, additional]);
            let mut bytes = vec![0, 0, b2, b3, 0, qd, 0, an, 0, ns, 0, ar];
            bytes[..2].copy_from_slice(&self.id.to_be_bytes());
            for label in self.name.labels(zone) {
                bytes.push(label.len() as u8);
                bytes.extend_from_slice(&label);
            }
            bytes.push(0);
            bytes.extend_from_slice(&self.qtype.to_be_bytes());
            bytes.extend_from_slice(&self.qclass.to_be_bytes());
            if let Some(edns) = &self.edns {
                let mut rdata = Vec::new();
                for (code, data) in &edns.options {
                    rdata.extend_from_slice(&code.to_be_bytes());
                    rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
                    rdata.extend_from_slice(data);
                }
                let rdlen = (rdata.len() as i32 + i32::from(edns.rdlen_skew)).max(0) as u16;
                bytes.extend_from_slice(&[0, 0, 41]);
                bytes.extend_from_slice(&edns.payload.to_be_bytes());
                bytes.extend_from_slice(&[edns.ext_rcode, edns.version]);
                bytes.extend_from_slice(&edns.flags.to_be_bytes());
                bytes.extend_from_slice(&rdlen.to_be_bytes());
                bytes.extend_from_slice(&rdata);
            }
            bytes.extend_from_slice(&self.trailing);
            bytes
        }
    }

    /// Runs the fast path on `query` in a reply-sized buffer.
    fn fast_answer(fast: &FastPath, query: &[u8]) -> (Fast, Vec<u8>) {
        let mut buf = vec![0u8; 4096];
        buf[..query.len()].copy_from_slice(query);
        let outcome = fast.answer(&mut buf, query.len());
        (outcome, buf)
    }

    /// `Ok` if the fast reply is the `Responder`'s: the same header and question bytes, and the same
    /// message once both are decoded and re-encoded by hickory (which makes name compression,
    /// the one permitted difference, the same; names keep their case through both).
    fn same_reply(fast: &[u8], slow: &[u8]) -> Result<(), String> {
        let question_end = |reply: &[u8]| {
            let mut at = HEADER_LEN;
            while let Some(&len) = reply.get(at) {
                at += 1;
                if len == 0 {
                    break;
                }
                at += usize::from(len);
            }
            at + 4
        };
        let end = question_end(slow);
        if fast.get(..end) != slow.get(..end) || question_end(fast) != end {
            return Err(format!(
                "header or question differ:\nfast {fast:02x?}\nslow {slow:02x?}"
            ));
        }
        let canonical = |reply: &[u8]| {
            let message =
                Message::from_vec(reply).map_err(|error| format!("{error}: {reply:02x?}"))?;
            message
                .to_vec()
                .map_err(|error| format!("{error}: {reply:02x?}"))
        };
        let (fast_canonical, slow_canonical) = (canonical(fast)?, canonical(slow)?);
        if fast_canonical != slow_canonical {
            return Err(format!(
                "records differ:\nfast {:?}\nslow {:?}",
                Message::from_vec(fast),
                Message::from_vec(slow)
            ));
        }
        if fast.len() > slow.len() {
            return Err(format!(
                "fast reply longer: {} > {}",
                fast.len(),
                slow.len()
            ));
        }
        Ok(())
    }

    /// `dyn.example` with `cam` (A) and `both` (A, AAAA), and `big.test`, whose twelve long name
    /// servers make its NS set too large for 512 bytes.
    fn small_zone() -> Arc<LiveZone> {
        let mut big = ZoneApex::with_defaults(fqdn("big.test"), 60);
        big.name_servers = (0..12)
            .map(|i| fqdn(&format!("ns-with-a-rather-long-name-{i:02}.example.net")))
            .collect();
        let zone = LiveZone::new(vec![ZoneApex::with_defaults(fqdn("dyn.example"), 60), big]);
        let v4 = Some(Ipv4Addr::new(192, 0, 2, 1));
        zone.set(&fqdn("cam.dyn.example"), HostAddrs { v4, v6: None });
        let v6 = Some(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
        zone.set(&fqdn("both.dyn.example"), HostAddrs { v4, v6 });
        zone.set_serial(77);
        Arc::new(zone)
    }

    /// A query as dig sends it by default: RD and AD set, EDNS with a 1232-byte payload and a
    /// client cookie.
    fn dig_query(name: &str, qtype: u16) -> Vec<u8> {
        let mut bytes = vec![0xbe, 0xef, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            bytes.push(label.len() as u8);
            bytes.extend_from_slice(label.as_bytes());
        }
        bytes.push(0);
        bytes.extend_from_slice(&qtype.to_be_bytes());
        bytes.extend_from_slice(&[0, 1, 0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8]);
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        bytes
    }

    /// The fast reply to `query`, checked against the Responder's.
    fn fast_reply(zone: &Arc<LiveZone>, query: &[u8]) -> Option<Vec<u8>> {
        let (outcome, buf) = fast_answer(&FastPath::new(zone.clone()), query);
        let Fast::Reply(len) = outcome else {
            return None;
        };
        let slow = Responder::new(zone.clone()).respond(query, Transport::Udp);
        let slow = slow.expect("the Responder answers what the fast path answers");
        if let Err(difference) = same_reply(&buf[..len], &slow) {
            panic!("{difference}");
        }
        Some(buf[..len].to_vec())
    }

    #[test]
    fn txt_at_a_name_in_the_zone_goes_the_slow_way() {
        let zone = small_zone();
        zone.set_acme_txt(&fqdn("cam.dyn.example"), &["value".into()]);
        for name in ["_acme-challenge.cam.dyn.example", "cam.dyn.example"] {
            let query = dig_query(name, TYPE_TXT);
            assert_eq!(fast_reply(&zone, &query), None, "{name}");
        }
        // A for the challenge name is NODATA, answered fast and as the slow path does.
        let query = dig_query("_acme-challenge.cam.dyn.example", TYPE_A);
        let reply = fast_reply(&zone, &query).expect("answered fast");
        assert_eq!(reply[3] & 0x0f, RCODE_NOERROR);
    }

    #[test]
    fn what_resolvers_and_dig_ask_is_answered_fast() {
        let zone = small_zone();
        for (name, qtype, rcode, answers, authorities) in [
            ("cam.dyn.example", TYPE_A, RCODE_NOERROR, 1, 0),
            ("CaM.dYn.ExAmple", TYPE_A, RCODE_NOERROR, 1, 0),
            ("both.dyn.example", TYPE_AAAA, RCODE_NOERROR, 1, 0),
            ("cam.dyn.example", TYPE_AAAA, RCODE_NOERROR, 0, 1),
            ("cam.dyn.example", 15, RCODE_NOERROR, 0, 1),
            ("dyn.example", TYPE_A, RCODE_NOERROR, 0, 1),
            ("nope.dyn.example", TYPE_A, RCODE_NXDOMAIN, 0, 1),
            ("Nope.DYN.example", TYPE_AAAA, RCODE_NXDOMAIN, 0, 1),
            ("x.big.test", TYPE_A, RCODE_NXDOMAIN, 0, 1),
            ("example.org", TYPE_A, RCODE_REFUSED, 0, 0),
        ] {
            let query = dig_query(name, qtype);
            let reply = fast_reply(&zone, &query).unwrap_or_else(|| panic!("{name} {qtype}"));
            assert_eq!(reply[..2], [0xbe, 0xef]);
            assert_eq!(reply[3] & 0x0f, rcode, "{name} {qtype}");
            assert_eq!([reply[7], reply[9], reply[11]], [answers, authorities, 1]);
            // Without EDNS too, and with RD clear.
            let mut plain = query[..query.len() - 23].to_vec();
            plain[2] = 0;
            plain[11] = 0;
            let reply = fast_reply(&zone, &plain).unwrap_or_else(|| panic!("{name} {qtype}"));
            assert_eq!([reply[2] & 0x01, reply[11]], [0, 0]);
        }
        // The answer's owner points at the question.
        let reply = fast_reply(&zone, &dig_query("cam.dyn.example", TYPE_A)).expect("fast");
        let answer_at = 12 + 17 + 4;
        assert_eq!(reply[answer_at..answer_at + 2], [0xc0, 12]);
    }

    #[test]
    fn the_unusual_goes_the_slow_way_and_responses_are_dropped() {
        let fast = FastPath::new(small_zone());
        let slow = |query: Vec<u8>| {
            let (outcome, buf) = fast_answer(&fast, &query);
            assert_eq!(outcome, Fast::Slow, "{query:02x?}");
            assert_eq!(buf[..query.len()], query[..], "left as it was");
        };
        slow(dig_query("dyn.example", TYPE_SOA));
        slow(dig_query("dyn.example", TYPE_NS));
        slow(dig_query("both.dyn.example", TYPE_ANY));
        slow(dig_query("dyn.example", TYPE_AXFR));
        slow(dig_query("dyn.example", TYPE_IXFR));
        let mut chaos = dig_query("version.bind", 16);
        chaos[12 + 14 + 2..12 + 14 + 4].copy_from_slice(&[0, 3]);
        slow(chaos);
        let mut notify = dig_query("dyn.example", TYPE_SOA);
        notify[2] = 4 << 3;
        slow(notify);
        let mut two_questions = dig_query("cam.dyn.example", TYPE_A);
        two_questions[5] = 2;
        slow(two_questions);
        let mut version_1 = dig_query("cam.dyn.example", TYPE_A);
        let version_at = version_1.len() - 12 - 6;
        version_1[version_at] = 1;
        slow(version_1);
        // A client-subnet option: hickory parses it, so hickory decides.
        let mut subnet = dig_query("cam.dyn.example", TYPE_A);
        let code_at = subnet.len() - 12;
        subnet[code_at + 1] = 8;
        slow(subnet);
        // A dot inside a label, and a compression pointer as the question name.
        let mut dotted = dig_query("a-b.dyn.example", TYPE_A);
        dotted[14] = b'.';
        slow(dotted);
        let mut pointer = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        slow(pointer);
        slow(dig_query("big.test", TYPE_NS));

        let mut response = dig_query("cam.dyn.example", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(fast_answer(&fast, &response).0, Fast::Drop);
        assert_eq!(fast_answer(&fast, &[0; 11]).0, Fast::Drop);
    }

    #[test]
    fn a_reply_that_might_not_fit_goes_the_slow_way() {
        // An SOA whose names are long and elsewhere: a negative answer for a long name is over
        // 512 bytes uncompressed.
        let mut apex = ZoneApex::with_defaults(fqdn("t.test"), 60);
        let long = |tail: &str| fqdn(&format!("{}.{tail}", vec!["n".repeat(60); 3].join(".")));
        apex.name_servers = vec![long("provider.net")];
        apex.hostmaster = long("contact.org");
        let zone = Arc::new(LiveZone::new(vec![apex]));
        let name = format!("{}.t.test", vec!["q".repeat(60); 3].join("."));
        let query = dig_query(&name, TYPE_A);
        let mut plain = query[..query.len() - 23].to_vec();
        plain[11] = 0;
        let (outcome, _) = fast_answer(&FastPath::new(zone.clone()), &plain);
        assert_eq!(outcome, Fast::Slow, "512 bytes without EDNS");
        let reply = fast_reply(&zone, &query).expect("fits in 1232 with EDNS");
        assert_eq!(reply[3] & 0x0f, RCODE_NXDOMAIN);
    }

    #[test]
    fn names_at_the_length_limit_agree_with_the_responder() {
        let zone = small_zone();
        let responder = Responder::new(zone.clone());
        let fast = FastPath::new(zone);
        // "dyn.example" is 13 octets on the wire; fill up to and past 255 with labels before it.
        for total in 240..=260usize {
            let mut labels = Vec::new();
            let mut left = total - 13;
            while left > 0 {
                let len = left.min(64) - 1;
                if len == 0 {
                    break;
                }
                labels.push("a".repeat(len));
                left -= len + 1;
            }
            let name = format!("{}.dyn.example", labels.join("."));
            let wire_len = name.len() + 2;
            let mut query = dig_query(&name, TYPE_A);
            query.truncate(query.len() - 23);
            query[11] = 0;
            let (outcome, buf) = fast_answer(&fast, &query);
            let slow = responder.respond(&query, Transport::Udp);
            match outcome {
                Fast::Reply(len) => {
                    let slow = slow.expect("the Responder answers");
                    same_reply(&buf[..len], &slow).unwrap_or_else(|e| panic!("{wire_len}: {e}"));
                }
                Fast::Slow => assert!(wire_len > 255, "{wire_len} octets should be fast"),
                Fast::Drop => panic!("{wire_len}: dropped"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random queries over a random zone: whatever the fast path answers, it answers as the
        /// Responder does; what it declines it leaves untouched; it drops only responses.
        #[test]
        fn fast_path_answers_as_the_responder(zone in zone_spec(), query in query_spec()) {
            let live = zone.build();
            let fast = FastPath::new(live.clone());
            let responder = Responder::new(live);
            let bytes = query.bytes(&zone);
            let (outcome, buf) = fast_answer(&fast, &bytes);
            let slow = responder.respond(&bytes, Transport::Udp);
            match outcome {
                Fast::Reply(len) => {
                    let slow = slow.ok_or_else(|| TestCaseError::fail("the Responder has no reply"))?;
                    same_reply(&buf[..len], &slow).map_err(TestCaseError::fail)?;
                }
                Fast::Drop => prop_assert!(
                    slow.is_none() || bytes[2] & 0x80 != 0,
                    "dropped a query the Responder answers"
                ),
                Fast::Slow => prop_assert_eq!(&buf[..bytes.len()], &bytes[..]),
            }
        }

        /// Arbitrary bytes: no panic, and the same agreement.
        #[test]
        fn garbage_is_declined_or_answered_alike(zone in zone_spec(), bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            let live = zone.build();
            let fast = FastPath::new(live.clone());
            let (outcome, buf) = fast_answer(&fast, &bytes);
            if let Fast::Reply(len) = outcome {
                let slow = Responder::new(live).respond(&bytes, Transport::Udp);
                let slow = slow.ok_or_else(|| TestCaseError::fail("the Responder has no reply"))?;
                same_reply(&buf[..len], &slow).map_err(TestCaseError::fail)?;
            }
        }
    }
}
