//! The answer to one query, computed from the live zone without sockets.
//!
//! [`Responder::answer`] maps a decoded request and the [`LiveZone`] to the parts of a reply
//! (header, answer and authority records, OPT); [`Reply::fit`] applies the transport's size limit;
//! for TCP the server hands the parts to hickory, and [`Responder::respond`] encodes them itself
//! (bytes in, bytes out: the path the UDP workers take for whatever the fast path declines, and
//! that benchmarks and fuzzers drive).

use std::iter;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ddns_core::{LiveZone, Lookup, ZoneApex};
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA, TXT};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder,
};
use hickory_server::server::Request;
use hickory_server::zone_handler::{
    MessageRequest, MessageResponse, MessageResponseBuilder, Queries,
};

/// The largest UDP reply we send, whatever the client advertises: the DNS Flag Day 2020 value,
/// which fits the IPv6 minimum MTU without fragmentation.
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// The UDP reply size every client supports (RFC 1035 §4.2.1), also the floor for EDNS clients.
pub(crate) const MIN_UDP_PAYLOAD: u16 = 512;

/// Header length, and the length of an OPT record without options (root name, type, class, TTL,
/// RDLENGTH).
const HEADER_LEN: usize = 12;
const OPT_LEN: usize = 11;

/// The transport a query arrived on, which decides how large its reply may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP: 512 bytes, or the EDNS(0) payload size the client advertises (at most
    /// [`MAX_UDP_PAYLOAD`]); a larger reply is sent empty with TC=1.
    Udp,
    /// TCP: up to 65535 bytes.
    Tcp,
}

/// The zone's apex data in hickory's types, converted once so that a query does not parse names.
#[derive(Debug)]
struct ApexRecords {
    origin: Name,
    mname: Name,
    rname: Name,
    name_servers: Vec<Name>,
}

impl ApexRecords {
    fn new(apex: &ZoneApex) -> ApexRecords {
        let name = |fqdn: &ddns_core::Fqdn| {
            Name::from_ascii(format!("{fqdn}.")).expect("an Fqdn is a valid DNS name")
        };
        let origin = name(&apex.origin);
        let name_servers: Vec<Name> = apex.name_servers.iter().map(name).collect();
        // A zone without name servers is a configuration error caught by config validation; the
        // SOA still needs an MNAME, and the origin is the conventional stand-in.
        let mname = name_servers
            .first()
            .cloned()
            .unwrap_or_else(|| origin.clone());
        ApexRecords {
            origin,
            mname,
            rname: name(&apex.hostmaster),
            name_servers,
        }
    }
}

/// Answers queries from a [`LiveZone`]: the whole DNS logic of ddnsd, without sockets.
///
/// The server uses it for every TCP request and for the UDP queries [`crate::FastPath`] declines;
/// benchmarks and fuzzers call [`Responder::respond`].
#[derive(Debug)]
pub struct Responder {
    zone: Arc<LiveZone>,
    /// One entry per `zone.apexes()`, same order.
    apexes: Vec<ApexRecords>,
    /// The question section of replies to messages without exactly one question.
    no_question: Queries,
}

impl Responder {
    /// A responder serving `zone` (its set of apexes is fixed for the zone's life).
    pub fn new(zone: Arc<LiveZone>) -> Responder {
        let apexes = zone.apexes().iter().map(ApexRecords::new).collect();
        let no_question =
            Queries::read(&mut BinDecoder::new(&[]), 0).expect("reading zero queries cannot fail");
        Responder {
            zone,
            apexes,
            no_question,
        }
    }

    /// Answers one DNS message in wire format, returning the reply in wire format, or `None` when
    /// the message gets no reply (shorter than a header, or a response rather than a query).
    ///
    /// This is the server's path minus the sockets: a message whose header parses but whose body
    /// does not gets FORMERR with an empty question, as hickory's server sends it (even with QR=1).
    pub fn respond(&self, message: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let header = Header::read(&mut BinDecoder::new(message)).ok()?;
        let protocol = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
        };
        let unknown_src = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        match Request::from_bytes(message.to_vec(), unknown_src, protocol) {
            Ok(request) => {
                let reply = self.reply(&request, transport)?;
                Some(reply.encode(self.question(&request), transport))
            }
            // Hickory answers an undecodable message even when its QR bit is set; a 12-byte
            // reply cannot amplify, and its own QR=1 means no server answers it in turn.
            Err(_) => {
                let reply = Reply::error(&header.metadata, None, ResponseCode::FormErr);
                Some(reply.encode(&self.no_question, transport))
            }
        }
    }

    /// The reply to `request` fitted to `transport`, counted in `ddns_dns_queries_total`; `None`
    /// for a message that must not be answered.
    pub(crate) fn reply(&self, request: &MessageRequest, transport: Transport) -> Option<Reply> {
        let mut reply = self.answer(request)?;
        let limit = match transport {
            Transport::Udp => reply.udp_limit(),
            Transport::Tcp => u16::MAX,
        };
        reply.fit(self.question(request), limit);
        metrics::counter!("ddns_dns_queries_total", "rcode" => rcode_label(reply.metadata.response_code))
            .increment(1);
        Some(reply)
    }

    /// The question section to echo in the reply to `request`: its own if it has exactly one
    /// question, else none. Echoing many questions (a FORMERR or NOTIMP reply) could make even
    /// the reply without records too large for UDP.
    pub(crate) fn question<'q>(&'q self, request: &'q MessageRequest) -> &'q Queries {
        if request.queries.len() == 1 {
            &request.queries
        } else {
            &self.no_question
        }
    }

    /// The reply to `request` before any size limit: the DNS logic proper.
    ///
    /// `None` for a response (QR=1), which must never be answered (it would let anyone bounce
    /// packets between two servers).
    pub(crate) fn answer(&self, request: &MessageRequest) -> Option<Reply> {
        let metadata = &request.metadata;
        if metadata.message_type == MessageType::Response {
            return None;
        }
        let edns = request.edns.as_ref().map(|query_edns| {
            let mut edns = Edns::new();
            // Advertise what this reply is allowed to use; hickory's encoder also takes its UDP
            // limit from the reply's OPT, so both agree.
            edns.set_max_payload(
                query_edns
                    .max_payload()
                    .clamp(MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD),
            );
            // RFC 3225 §3: the DO bit of the query is copied into the response.
            edns.set_dnssec_ok(query_edns.flags().dnssec_ok);
            edns
        });
        // RFC 6891 §6.1.3: a version we do not implement gets BADVERS, with our OPT (version 0).
        if request
            .edns
            .as_ref()
            .is_some_and(|query_edns| query_edns.version() > 0)
        {
            return Some(Reply::error(metadata, edns, ResponseCode::BADVERS));
        }
        if metadata.op_code != OpCode::Query {
            return Some(Reply::error(metadata, edns, ResponseCode::NotImp));
        }
        let [query] = request.queries.queries() else {
            return Some(Reply::error(metadata, edns, ResponseCode::FormErr));
        };
        // Only class IN has data here; CHAOS (`version.bind`) and the rest are refused, like
        // names outside our zones.
        if query.query_class() != DNSClass::IN {
            return Some(Reply::error(metadata, edns, ResponseCode::Refused));
        }
        let qtype = query.query_type();
        match qtype {
            // No zone transfers (not yet: SPEC §5 "later").
            RecordType::AXFR | RecordType::IXFR => {
                return Some(Reply::error(metadata, edns, ResponseCode::Refused));
            }
            // OPT is a pseudo-record and never a question (RFC 6891 §6.1.1).
            RecordType::OPT => return Some(Reply::error(metadata, edns, ResponseCode::FormErr)),
            _ => {}
        }

        let qname = query.original().name();
        let mut key = [0u8; KEY_CAPACITY];
        let Some(key) = lookup_key(qname, &mut key) else {
            return Some(Reply::error(metadata, edns, ResponseCode::Refused));
        };
        let mut reply = Reply::error(metadata, edns, ResponseCode::NoError);
        reply.metadata.authoritative = true;
        match self.zone.lookup_wire(key) {
            Lookup::Refused => {
                reply.metadata.authoritative = false;
                reply.metadata.response_code = ResponseCode::Refused;
            }
            Lookup::Apex(apex) => match qtype {
                // RFC 8482: ANY gets one RRset; the SOA says the most about the zone.
                RecordType::SOA | RecordType::ANY => {
                    let soa = self.soa(apex, qname.clone(), apex.apex_ttl_secs);
                    reply.answers.push(soa);
                }
                RecordType::NS => {
                    let records = &self.apex_records(apex).name_servers;
                    reply.answers.extend(records.iter().map(|ns| {
                        Record::from_rdata(
                            qname.clone(),
                            apex.apex_ttl_secs,
                            RData::NS(NS(ns.clone())),
                        )
                    }));
                }
                _ => reply.authorities.push(self.negative_soa(apex)),
            },
            Lookup::Host(apex, _) if qtype == RecordType::TXT => {
                // ACME challenge values (`_acme-challenge.<host>`), one record each.
                match self.zone.txt_wire(key) {
                    Some(values) => reply.answers.extend(values.iter().map(|value| {
                        let txt = TXT::new(vec![value.to_string()]);
                        Record::from_rdata(qname.clone(), apex.host_ttl_secs, RData::TXT(txt))
                    })),
                    None => reply.authorities.push(self.negative_soa(apex)),
                }
            }
            Lookup::Host(apex, addrs) => {
                let data = match qtype {
                    RecordType::A => addrs.v4.map(|v4| RData::A(A(v4))),
                    RecordType::AAAA => addrs.v6.map(|v6| RData::AAAA(AAAA(v6))),
                    // RFC 8482: one RRset, the A if there is one.
                    RecordType::ANY => addrs
                        .v4
                        .map(|v4| RData::A(A(v4)))
                        .or(addrs.v6.map(|v6| RData::AAAA(AAAA(v6)))),
                    _ => None,
                };
                match data {
                    Some(data) => reply.answers.push(Record::from_rdata(
                        qname.clone(),
                        apex.host_ttl_secs,
                        data,
                    )),
                    None => reply.authorities.push(self.negative_soa(apex)),
                }
            }
            Lookup::NxDomain(apex) => {
                reply.metadata.response_code = ResponseCode::NXDomain;
                reply.authorities.push(self.negative_soa(apex));
            }
        }
        Some(reply)
    }

    fn apex_records(&self, apex: &ZoneApex) -> &ApexRecords {
        let index = self
            .zone
            .apexes()
            .iter()
            .position(|candidate| std::ptr::eq(candidate, apex))
            .expect("LiveZone::lookup returns one of the zone's own apexes");
        &self.apexes[index]
    }

    fn soa(&self, apex: &ZoneApex, owner: Name, ttl_secs: u32) -> Record {
        let records = self.apex_records(apex);
        let [refresh, retry, expire, minimum] = apex.soa_timers_secs;
        // The wire fields are unsigned; hickory types three of them i32. Timers beyond 68 years
        // are nonsense, so saturate rather than wrap.
        let signed = |secs: u32| i32::try_from(secs).unwrap_or(i32::MAX);
        let soa = SOA::new(
            records.mname.clone(),
            records.rname.clone(),
            self.zone.serial(),
            signed(refresh),
            signed(retry),
            signed(expire),
            minimum,
        );
        Record::from_rdata(owner, ttl_secs, RData::SOA(soa))
    }

    /// The SOA that goes with NXDOMAIN and NODATA, its TTL capped by the SOA minimum (RFC 2308
    /// §3), so a resolver caches the absence for at most that long.
    fn negative_soa(&self, apex: &ZoneApex) -> Record {
        let ttl_secs = apex.apex_ttl_secs.min(apex.soa_timers_secs[3]);
        self.soa(apex, self.apex_records(apex).origin.clone(), ttl_secs)
    }
}

/// Room for a name in wire form (RFC 1035 §3.1: at most 255 octets, the root label included).
const KEY_CAPACITY: usize = 255;

/// `name` as [`LiveZone::lookup_wire`] takes it: wire form, ASCII letters lowercased, written into
/// `buf`.
///
/// A label may hold any octet on the wire, and keeps it: a label is delimited by its length, so
/// `a\.b.dyn.example` (one label `a.b`) still routes to its zone by its suffix and can never alias
/// the host `a.b.dyn.example`, and octets that cannot occur in a zone name match no host.
fn lookup_key<'b>(name: &Name, buf: &'b mut [u8; KEY_CAPACITY]) -> Option<&'b [u8]> {
    let mut len = 0;
    for label in name.iter() {
        *buf.get_mut(len)? = u8::try_from(label.len()).ok()?;
        let dest = buf.get_mut(len + 1..len + 1 + label.len())?;
        for (dest, byte) in dest.iter_mut().zip(label) {
            *dest = byte.to_ascii_lowercase();
        }
        len += 1 + label.len();
    }
    *buf.get_mut(len)? = 0;
    Some(&buf[..=len])
}

/// The parts of a reply: hickory encodes them, echoing the question as the client sent it.
#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) metadata: Metadata,
    pub(crate) answers: Vec<Record>,
    pub(crate) authorities: Vec<Record>,
    pub(crate) edns: Option<Edns>,
}

impl Reply {
    /// A reply with no records and `rcode`.
    fn error(query: &Metadata, edns: Option<Edns>, rcode: ResponseCode) -> Reply {
        let mut metadata = Metadata::response_from_request(query);
        metadata.response_code = rcode;
        Reply {
            metadata,
            answers: Vec::new(),
            authorities: Vec::new(),
            edns,
        }
    }

    /// The UDP size limit: 512 without EDNS, else the payload size set in our OPT.
    pub(crate) fn udp_limit(&self) -> u16 {
        self.edns
            .as_ref()
            .map_or(MIN_UDP_PAYLOAD, Edns::max_payload)
    }

    /// Makes the reply fit in `limit` bytes: if the records do not, they all go and TC=1 tells
    /// the client to ask again over TCP (RFC 2181 §9: a partial RRset must not be used, so none
    /// is sent).
    pub(crate) fn fit(&mut self, queries: &Queries, limit: u16) {
        if self.size_bound(queries) <= usize::from(limit) {
            return;
        }
        // The bound is pessimistic (no compression); encode to know.
        let mut scratch = Vec::with_capacity(usize::from(limit));
        let mut encoder = BinEncoder::new(&mut scratch);
        encoder.set_max_size(limit);
        let truncated = match self.message(queries).destructive_emit(&mut encoder) {
            Ok(info) => info.truncation,
            Err(_) => true,
        };
        if truncated {
            self.answers.clear();
            self.authorities.clear();
            self.metadata.truncation = true;
        }
    }

    /// An upper bound of the encoded length: every name uncompressed.
    fn size_bound(&self, queries: &Queries) -> usize {
        let records: usize = self
            .answers
            .iter()
            .chain(&self.authorities)
            .map(record_bound)
            .sum();
        let opt = if self.edns.is_some() { OPT_LEN } else { 0 };
        HEADER_LEN + queries.as_bytes().len() + records + opt
    }

    /// The reply as hickory's response type, borrowing the records.
    pub(crate) fn message<'q>(
        &'q self,
        queries: &'q Queries,
    ) -> MessageResponse<
        'q,
        'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
        impl Iterator<Item = &'q Record> + Send + 'q,
    > {
        MessageResponseBuilder::new(queries, self.edns.as_ref()).build(
            self.metadata,
            self.answers.iter(),
            self.authorities.iter(),
            iter::empty(),
            iter::empty(),
        )
    }

    /// Encodes the (already fitted) reply; a failure, which would be a bug, becomes SERVFAIL.
    pub(crate) fn encode(&self, queries: &Queries, transport: Transport) -> Vec<u8> {
        let limit = match transport {
            Transport::Udp => self.udp_limit(),
            Transport::Tcp => u16::MAX,
        };
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(limit);
        if self.message(queries).destructive_emit(&mut encoder).is_ok() {
            return bytes;
        }
        let mut metadata = self.metadata;
        metadata.response_code = ResponseCode::ServFail;
        let header = Header {
            metadata,
            counts: HeaderCounts::default(),
        };
        let mut bytes = Vec::with_capacity(HEADER_LEN);
        header
            .emit(&mut BinEncoder::new(&mut bytes))
            .expect("a bare header always encodes");
        bytes
    }
}

/// Encoded length of `record` with its names uncompressed; unknown record types count as too
/// large, which only costs a trial encoding.
fn record_bound(record: &Record) -> usize {
    let name_bound = |name: &Name| name.len() + 1;
    let rdata = match &record.data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::NS(ns) => name_bound(&ns.0),
        RData::SOA(soa) => name_bound(&soa.mname) + name_bound(&soa.rname) + 20,
        _ => usize::from(u16::MAX),
    };
    name_bound(&record.name) + 10 + rdata
}

/// The `rcode` label of `ddns_dns_queries_total`.
fn rcode_label(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::BADVERS => "BADVERS",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv6Addr;
    use std::sync::Mutex;

    use ddns_core::{Fqdn, HostAddrs};
    use hickory_server::proto::op::{Message, Query};

    use super::*;

    const ZONE: &str = "dyn.example";
    const CAM_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const V6ONLY_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const BOTH_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const BOTH_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);

    fn fqdn(name: &str) -> Fqdn {
        Fqdn::parse(name).expect("valid test name")
    }

    fn name(name: &str) -> Name {
        Name::from_ascii(name).expect("valid test name")
    }

    /// `dyn.example` with hosts `cam` (A), `v6only` (AAAA) and `both`; `big.test`, whose twelve
    /// long NS names make its NS set larger than 512 bytes but smaller than 1232.
    fn zone() -> Arc<LiveZone> {
        let mut big = ZoneApex::with_defaults(fqdn("big.test"), 60);
        big.name_servers = (0..12)
            .map(|i| {
                fqdn(&format!(
                    "ns-with-a-rather-long-name-{i:02}.dns-provider-example.net"
                ))
            })
            .collect();
        let zone = LiveZone::new(vec![ZoneApex::with_defaults(fqdn(ZONE), 60), big]);
        zone.set(
            &fqdn("cam.dyn.example"),
            HostAddrs {
                v4: Some(CAM_V4),
                v6: None,
            },
        );
        zone.set(
            &fqdn("v6only.dyn.example"),
            HostAddrs {
                v4: None,
                v6: Some(V6ONLY_V6),
            },
        );
        zone.set(
            &fqdn("both.dyn.example"),
            HostAddrs {
                v4: Some(BOTH_V4),
                v6: Some(BOTH_V6),
            },
        );
        zone.set_serial(77);
        Arc::new(zone)
    }

    fn query(qname: &str, qtype: RecordType) -> Message {
        let mut message = Message::new(4242, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(name(qname), qtype));
        message
    }

    fn with_edns(mut message: Message, payload: u16) -> Message {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
        message
    }

    /// The reply to `message` over `transport`, decoded; panics if there is none.
    fn ask_over(responder: &Responder, message: &Message, transport: Transport) -> Message {
        let bytes = message.to_vec().expect("test query encodes");
        let reply = responder.respond(&bytes, transport).expect("a reply");
        Message::from_vec(&reply).expect("the reply decodes")
    }

    fn ask(message: &Message) -> Message {
        ask_over(&Responder::new(zone()), message, Transport::Udp)
    }

    fn rcode(reply: &Message) -> ResponseCode {
        reply.metadata.response_code
    }

    fn only_soa(records: &[Record]) -> (&Record, &SOA) {
        let [record] = records else {
            panic!("expected one SOA record, got {records:?}")
        };
        let RData::SOA(soa) = &record.data else {
            panic!("expected SOA, got {record:?}")
        };
        (record, soa)
    }

    /// A NODATA reply: NOERROR, authoritative, no answer, the zone's SOA with the negative TTL.
    fn assert_nodata(reply: &Message) {
        assert_eq!(rcode(reply), ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert!(reply.answers.is_empty(), "{:?}", reply.answers);
        let (record, _) = only_soa(&reply.authorities);
        assert_eq!(record.name, name("dyn.example."));
        assert_eq!(record.ttl, 60);
    }

    #[test]
    fn a_and_aaaa_for_hosts_with_the_host_ttl() {
        let reply = ask(&query("cam.dyn.example.", RecordType::A));
        assert_eq!(rcode(&reply), ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert_eq!(reply.metadata.id, 4242);
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert_eq!(
            reply.answers,
            vec![Record::from_rdata(
                name("cam.dyn.example."),
                60,
                RData::A(A(CAM_V4))
            )]
        );
        assert!(reply.authorities.is_empty());
        assert!(
            reply.edns.is_none(),
            "no OPT in the query, none in the reply"
        );

        let reply = ask(&query("both.dyn.example.", RecordType::AAAA));
        assert_eq!(
            reply.answers,
            vec![Record::from_rdata(
                name("both.dyn.example."),
                60,
                RData::AAAA(AAAA(BOTH_V6))
            )]
        );
        let reply = ask(&query("both.dyn.example.", RecordType::A));
        assert_eq!(reply.answers[0].data, RData::A(A(BOTH_V4)));
    }

    #[test]
    fn nodata_for_missing_types_at_a_host_or_the_apex() {
        assert_nodata(&ask(&query("cam.dyn.example.", RecordType::AAAA)));
        assert_nodata(&ask(&query("v6only.dyn.example.", RecordType::A)));
        assert_nodata(&ask(&query("cam.dyn.example.", RecordType::MX)));
        assert_nodata(&ask(&query("cam.dyn.example.", RecordType::TXT)));
        assert_nodata(&ask(&query("dyn.example.", RecordType::A)));
        assert_nodata(&ask(&query("dyn.example.", RecordType::AAAA)));
    }

    #[test]
    fn acme_challenge_values_are_txt_records_below_their_host() {
        let zone = zone();
        zone.set_acme_txt(&fqdn("cam.dyn.example"), &["one".into(), "two two".into()]);
        let responder = Responder::new(zone);
        let ask = |qname: &str, qtype| ask_over(&responder, &query(qname, qtype), Transport::Udp);
        let reply = ask("_acme-challenge.CAM.dyn.example.", RecordType::TXT);
        assert_eq!(rcode(&reply), ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        let values: Vec<String> = reply
            .answers
            .iter()
            .map(|record| {
                assert_eq!(record.ttl, 60, "the host TTL");
                match &record.data {
                    RData::TXT(txt) => txt.to_string(),
                    other => panic!("not a TXT: {other:?}"),
                }
            })
            .collect();
        assert_eq!(values, ["one", "two two"]);
        // The name exists: other types are NODATA; the host has no TXT; elsewhere NXDOMAIN.
        assert_nodata(&ask("_acme-challenge.cam.dyn.example.", RecordType::A));
        assert_nodata(&ask("cam.dyn.example.", RecordType::TXT));
        let nx = ask("_acme-challenge.both.dyn.example.", RecordType::TXT);
        assert_eq!(rcode(&nx), ResponseCode::NXDomain);
    }

    #[test]
    fn soa_and_ns_at_the_apex() {
        let reply = ask(&query("dyn.example.", RecordType::SOA));
        assert_eq!(rcode(&reply), ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        let (record, soa) = only_soa(&reply.answers);
        assert_eq!(record.name, name("dyn.example."));
        assert_eq!(record.ttl, 3600);
        assert_eq!(soa.mname, name("ns1.dyn.example."));
        assert_eq!(soa.rname, name("hostmaster.dyn.example."));
        assert_eq!(soa.serial, 77);
        assert_eq!(
            (soa.refresh, soa.retry, soa.expire, soa.minimum),
            (3600, 600, 1_209_600, 60)
        );
        assert!(reply.authorities.is_empty());

        let reply = ask(&query("dyn.example.", RecordType::NS));
        assert!(reply.metadata.authoritative);
        assert_eq!(
            reply.answers,
            vec![Record::from_rdata(
                name("dyn.example."),
                3600,
                RData::NS(NS(name("ns1.dyn.example.")))
            )]
        );
    }

    #[test]
    fn soa_serial_follows_the_live_zone() {
        let zone = zone();
        let responder = Responder::new(zone.clone());
        zone.set_serial(78);
        let reply = ask_over(
            &responder,
            &query("dyn.example.", RecordType::SOA),
            Transport::Udp,
        );
        assert_eq!(only_soa(&reply.answers).1.serial, 78);
        let reply = ask_over(
            &responder,
            &query("nope.dyn.example.", RecordType::A),
            Transport::Udp,
        );
        assert_eq!(only_soa(&reply.authorities).1.serial, 78);
    }

    #[test]
    fn nxdomain_with_the_soa_and_the_negative_ttl() {
        let reply = ask(&query("missing.dyn.example.", RecordType::A));
        assert_eq!(rcode(&reply), ResponseCode::NXDomain);
        assert!(reply.metadata.authoritative);
        assert!(reply.answers.is_empty());
        let (record, soa) = only_soa(&reply.authorities);
        assert_eq!(record.name, name("dyn.example."));
        assert_eq!(record.ttl, 60, "min(SOA TTL 3600, minimum 60)");
        assert_eq!(soa.serial, 77);
        // Below a host too: hosts have no children.
        assert_eq!(
            rcode(&ask(&query("x.cam.dyn.example.", RecordType::A))),
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn negative_ttl_is_the_smaller_of_soa_ttl_and_minimum() {
        let mut apex = ZoneApex::with_defaults(fqdn(ZONE), 60);
        apex.apex_ttl_secs = 30;
        apex.soa_timers_secs[3] = 300;
        let responder = Responder::new(Arc::new(LiveZone::new(vec![apex])));
        let reply = ask_over(
            &responder,
            &query("nope.dyn.example.", RecordType::A),
            Transport::Udp,
        );
        assert_eq!(only_soa(&reply.authorities).0.ttl, 30);
    }

    #[test]
    fn refused_outside_every_zone() {
        for qname in ["example.org.", "xdyn.example.", "example.", "."] {
            let reply = ask(&query(qname, RecordType::A));
            assert_eq!(rcode(&reply), ResponseCode::Refused, "{qname}");
            assert!(!reply.metadata.authoritative, "{qname}");
            assert!(
                reply.answers.is_empty() && reply.authorities.is_empty(),
                "{qname}"
            );
        }
    }

    #[test]
    fn names_are_case_insensitive_and_the_case_is_echoed() {
        let reply = ask(&query("CAM.Dyn.Example.", RecordType::A));
        assert_eq!(rcode(&reply), ResponseCode::NoError);
        assert!(reply.queries[0].name().eq_case(&name("CAM.Dyn.Example.")));
        assert!(
            reply.answers[0].name.eq_case(&name("CAM.Dyn.Example.")),
            "{:?}",
            reply.answers
        );
        assert_eq!(reply.answers[0].data, RData::A(A(CAM_V4)));

        let reply = ask(&query("DYN.example.", RecordType::SOA));
        assert!(reply.answers[0].name.eq_case(&name("DYN.example.")));
        let reply = ask(&query("Nope.DYN.example.", RecordType::A));
        assert_eq!(rcode(&reply), ResponseCode::NXDomain);
    }

    #[test]
    fn a_dot_inside_a_label_never_aliases_a_host_or_a_zone() {
        let zone = zone();
        zone.set(
            &fqdn("a.b.dyn.example"),
            HostAddrs {
                v4: Some(CAM_V4),
                v6: None,
            },
        );
        let responder = Responder::new(zone);
        let dotted = |labels: &[&[u8]]| {
            let mut message = Message::new(1, MessageType::Query, OpCode::Query);
            let qname = Name::from_labels(labels.iter().copied()).expect("valid raw labels");
            message.add_query(Query::query(qname, RecordType::A));
            ask_over(&responder, &message, Transport::Udp)
        };
        // `a\.b.dyn.example`: one label `a.b`, in the zone, not the host `a.b.dyn.example`.
        let reply = dotted(&[b"a.b", b"dyn", b"example"]);
        assert_eq!(rcode(&reply), ResponseCode::NXDomain);
        // `dyn\.example`: one label under the root, in no zone.
        assert_eq!(rcode(&dotted(&[b"dyn.example"])), ResponseCode::Refused);
        // Octets outside ASCII route by suffix and match nothing.
        assert_eq!(
            rcode(&dotted(&[b"c\xc3\xa4m", b"dyn", b"example"])),
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn edns_opt_echoed_with_the_payload_size_clamped() {
        let reply = ask(&with_edns(query("cam.dyn.example.", RecordType::A), 4096));
        let edns = reply.edns.as_ref().expect("OPT in the reply");
        assert_eq!(edns.max_payload(), MAX_UDP_PAYLOAD);
        assert_eq!(edns.version(), 0);
        assert_eq!(reply.answers.len(), 1);

        let reply = ask(&with_edns(query("cam.dyn.example.", RecordType::A), 1400));
        assert_eq!(reply.edns.as_ref().map(Edns::max_payload), Some(1232));
        let reply = ask(&with_edns(query("cam.dyn.example.", RecordType::A), 800));
        assert_eq!(reply.edns.as_ref().map(Edns::max_payload), Some(800));

        // A payload below 512 counts as 512 (RFC 6891 §6.2.5). `Edns::set_max_payload` clamps,
        // so write the OPT's class by hand.
        let message = with_edns(query("cam.dyn.example.", RecordType::A), 512);
        let mut bytes = message.to_vec().expect("encodes");
        let class_at = bytes.len() - OPT_LEN + 3;
        bytes[class_at..class_at + 2].copy_from_slice(&100u16.to_be_bytes());
        let reply = Responder::new(zone())
            .respond(&bytes, Transport::Udp)
            .expect("a reply");
        let reply = Message::from_vec(&reply).expect("decodes");
        assert_eq!(reply.edns.as_ref().map(Edns::max_payload), Some(512));
        assert_eq!(reply.answers.len(), 1);

        // The DO bit is copied (RFC 3225 §3).
        let mut message = with_edns(query("cam.dyn.example.", RecordType::A), 1232);
        message
            .edns
            .as_mut()
            .expect("set above")
            .set_dnssec_ok(true);
        let reply = ask(&message);
        assert!(
            reply
                .edns
                .as_ref()
                .is_some_and(|edns| edns.flags().dnssec_ok)
        );
    }

    #[test]
    fn badvers_for_edns_versions_above_zero() {
        let mut message = with_edns(query("cam.dyn.example.", RecordType::A), 1232);
        message.edns.as_mut().expect("set above").set_version(1);
        let reply = ask(&message);
        // BADVERS and BADSIG share the value 16; the decoder names it BADSIG.
        assert_eq!(u16::from(rcode(&reply)), u16::from(ResponseCode::BADVERS));
        assert_eq!(reply.edns.as_ref().map(Edns::version), Some(0));
        assert!(reply.answers.is_empty());
    }

    #[test]
    fn udp_truncates_to_an_empty_tc_reply_and_tcp_gets_everything() {
        let responder = Responder::new(zone());
        let ns_query = query("big.test.", RecordType::NS);

        let bytes = responder
            .respond(&ns_query.to_vec().expect("encodes"), Transport::Udp)
            .expect("a reply");
        assert!(bytes.len() <= 512, "{} bytes", bytes.len());
        let reply = Message::from_vec(&bytes).expect("decodes");
        assert!(reply.metadata.truncation);
        assert!(reply.metadata.authoritative);
        assert_eq!(rcode(&reply), ResponseCode::NoError);
        assert!(
            reply.answers.is_empty() && reply.authorities.is_empty(),
            "stripped: {reply:?}"
        );
        assert_eq!(reply.queries.len(), 1, "the question stays");

        let full = ask_over(&responder, &ns_query, Transport::Tcp);
        assert!(!full.metadata.truncation);
        assert_eq!(full.answers.len(), 12);
        let encoded = full.to_vec().expect("encodes").len();
        assert!(
            encoded > 512,
            "the test needs an NS set over 512 bytes, it is {encoded}"
        );

        // An EDNS client with room for it gets it all over UDP, and the OPT stays when truncated.
        let reply = ask_over(
            &responder,
            &with_edns(ns_query.clone(), 1232),
            Transport::Udp,
        );
        assert!(!reply.metadata.truncation);
        assert_eq!(reply.answers.len(), 12);
        let reply = ask_over(&responder, &with_edns(ns_query, 512), Transport::Udp);
        assert!(reply.metadata.truncation);
        assert!(reply.answers.is_empty());
        assert!(reply.edns.is_some());
    }

    #[test]
    fn size_bound_is_never_below_the_encoded_size() {
        let responder = Responder::new(zone());
        let queries = [
            query("cam.dyn.example.", RecordType::A),
            query("Both.dyn.example.", RecordType::AAAA),
            query("dyn.example.", RecordType::SOA),
            query("nope.dyn.example.", RecordType::A),
            with_edns(query("big.test.", RecordType::NS), 1232),
            query("example.org.", RecordType::A),
        ];
        for message in queries {
            let bytes = message.to_vec().expect("encodes");
            let request =
                Request::from_bytes(bytes, "192.0.2.9:53".parse().expect("addr"), Protocol::Tcp)
                    .expect("decodes");
            let reply = responder.answer(&request).expect("a reply");
            let question = responder.question(&request);
            let encoded = reply.encode(question, Transport::Tcp).len();
            assert!(reply.size_bound(question) >= encoded, "{message:?}");
        }
    }

    #[test]
    fn minimal_any_gets_one_rrset() {
        let reply = ask(&query("both.dyn.example.", RecordType::ANY));
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].data, RData::A(A(BOTH_V4)));
        let reply = ask(&query("v6only.dyn.example.", RecordType::ANY));
        assert_eq!(reply.answers.len(), 1);
        assert_eq!(reply.answers[0].data, RData::AAAA(AAAA(V6ONLY_V6)));
        let reply = ask(&query("dyn.example.", RecordType::ANY));
        assert!(reply.metadata.authoritative);
        assert_eq!(only_soa(&reply.answers).0.ttl, 3600);
        assert_eq!(
            rcode(&ask(&query("nope.dyn.example.", RecordType::ANY))),
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn responses_get_no_reply() {
        let responder = Responder::new(zone());
        let mut message = query("cam.dyn.example.", RecordType::A);
        message.metadata.message_type = MessageType::Response;
        let bytes = message.to_vec().expect("encodes");
        assert_eq!(responder.respond(&bytes, Transport::Udp), None);
        assert_eq!(responder.respond(&bytes, Transport::Tcp), None);
    }

    #[test]
    fn other_opcodes_get_notimp() {
        for op_code in [OpCode::Notify, OpCode::Update, OpCode::Status] {
            let mut message = query("dyn.example.", RecordType::SOA);
            message.metadata.op_code = op_code;
            let reply = ask(&message);
            assert_eq!(rcode(&reply), ResponseCode::NotImp, "{op_code:?}");
            assert_eq!(reply.metadata.op_code, op_code);
            assert!(reply.answers.is_empty());
        }
    }

    #[test]
    fn zero_or_several_questions_get_formerr() {
        let reply = ask(&Message::new(7, MessageType::Query, OpCode::Query));
        assert_eq!(rcode(&reply), ResponseCode::FormErr);

        let mut message = query("cam.dyn.example.", RecordType::A);
        message.add_query(Query::query(name("both.dyn.example."), RecordType::A));
        let reply = ask(&message);
        assert_eq!(rcode(&reply), ResponseCode::FormErr);
        assert!(reply.answers.is_empty());
    }

    #[test]
    fn a_formerr_for_many_questions_fits_in_udp_without_echoing_them() {
        let mut message = Message::new(8, MessageType::Query, OpCode::Query);
        for i in 0..40 {
            let qname = name(&format!("a-rather-long-host-name-number-{i}.dyn.example."));
            message.add_query(Query::query(qname, RecordType::A));
        }
        let bytes = message.to_vec().expect("encodes");
        assert!(bytes.len() > 512);
        let reply = Responder::new(zone())
            .respond(&bytes, Transport::Udp)
            .expect("a reply");
        let reply = Message::from_vec(&reply).expect("decodes");
        assert_eq!(rcode(&reply), ResponseCode::FormErr);
        assert!(reply.queries.is_empty());
        assert!(!reply.metadata.truncation);

        message.metadata.op_code = OpCode::Update;
        let bytes = message.to_vec().expect("encodes");
        let reply = Responder::new(zone())
            .respond(&bytes, Transport::Udp)
            .expect("a reply");
        let reply = Message::from_vec(&reply).expect("decodes");
        assert_eq!(rcode(&reply), ResponseCode::NotImp);
        assert!(reply.queries.is_empty());
    }

    #[test]
    fn classes_other_than_in_are_refused_and_so_are_transfers() {
        for class in [DNSClass::CH, DNSClass::HS, DNSClass::ANY] {
            let mut message = Message::new(7, MessageType::Query, OpCode::Query);
            let mut question = Query::query(name("cam.dyn.example."), RecordType::A);
            question.set_query_class(class);
            message.add_query(question);
            let reply = ask(&message);
            assert_eq!(rcode(&reply), ResponseCode::Refused, "{class:?}");
            assert!(!reply.metadata.authoritative);
        }
        for qtype in [RecordType::AXFR, RecordType::IXFR] {
            assert_eq!(
                rcode(&ask(&query("dyn.example.", qtype))),
                ResponseCode::Refused
            );
        }
    }

    #[test]
    fn rd_is_copied_and_ra_never_set() {
        let mut message = query("cam.dyn.example.", RecordType::A);
        message.metadata.recursion_desired = true;
        let reply = ask(&message);
        assert!(reply.metadata.recursion_desired);
        assert!(!reply.metadata.recursion_available);
    }

    /// The compression loop, huge label count and random-bytes cases of the server test, without
    /// sockets: nothing panics, and only messages shorter than a header go unanswered.
    #[test]
    fn garbage_gets_formerr_or_nothing_and_never_panics() {
        let responder = Responder::new(zone());
        assert_eq!(responder.respond(&[], Transport::Udp), None);
        assert_eq!(responder.respond(&[0x12; 11], Transport::Udp), None);

        // A question whose name points at itself.
        let mut looped = vec![0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let reply = responder.respond(&looped, Transport::Udp).expect("FORMERR");
        let reply = Message::from_vec(&reply).expect("decodes");
        assert_eq!(rcode(&reply), ResponseCode::FormErr);
        assert_eq!(reply.metadata.id, 0xabcd);

        // 200 one-octet labels: over the 255-octet name limit.
        let mut long = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..200 {
            long.extend_from_slice(&[1, b'a']);
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        let reply = responder.respond(&long, Transport::Udp).expect("FORMERR");
        assert_eq!(
            rcode(&Message::from_vec(&reply).expect("decodes")),
            ResponseCode::FormErr
        );

        // A header that claims 65535 questions and has none.
        let claims = [0, 2, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(responder.respond(&claims, Transport::Udp).is_some());

        // Random bytes, and random bytes after a valid query header.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let good = query("cam.dyn.example.", RecordType::A)
            .to_vec()
            .expect("encodes");
        for round in 0..20_000 {
            let len = (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && bytes.len() >= good.len() {
                // Mutate a valid query instead, so the decoder gets further.
                bytes.truncate(good.len());
                bytes.copy_from_slice(&good);
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            if let Some(reply) = responder.respond(&bytes, Transport::Udp) {
                assert!(reply.len() <= 512 || bytes.len() >= 512, "round {round}");
            }
        }
    }

    #[test]
    fn zone_changes_show_in_the_next_answer() {
        let zone = zone();
        let responder = Responder::new(zone.clone());
        let host = fqdn("new.dyn.example");
        let a = query("new.dyn.example.", RecordType::A);
        assert_eq!(
            rcode(&ask_over(&responder, &a, Transport::Udp)),
            ResponseCode::NXDomain
        );
        let v4 = Ipv4Addr::new(203, 0, 113, 5);
        zone.set(
            &host,
            HostAddrs {
                v4: Some(v4),
                v6: None,
            },
        );
        assert_eq!(
            ask_over(&responder, &a, Transport::Udp).answers[0].data,
            RData::A(A(v4))
        );
        zone.remove(&host);
        assert_eq!(
            rcode(&ask_over(&responder, &a, Transport::Udp)),
            ResponseCode::NXDomain
        );
    }

    /// A metrics recorder that keeps `ddns_dns_queries_total` by its `rcode` label.
    #[derive(Clone, Default)]
    struct RcodeCounts(Arc<Mutex<HashMap<String, u64>>>);

    struct RcodeCell {
        rcode: String,
        counts: Arc<Mutex<HashMap<String, u64>>>,
    }

    impl metrics::CounterFn for RcodeCell {
        fn increment(&self, value: u64) {
            let mut counts = self.counts.lock().expect("not poisoned");
            *counts.entry(self.rcode.clone()).or_default() += value;
        }

        fn absolute(&self, _value: u64) {}
    }

    impl metrics::Recorder for RcodeCounts {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }

        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            assert_eq!(key.name(), "ddns_dns_queries_total");
            let rcode = key
                .labels()
                .find(|label| label.key() == "rcode")
                .map(|label| label.value().to_owned())
                .expect("an rcode label");
            metrics::Counter::from_arc(Arc::new(RcodeCell {
                rcode,
                counts: self.0.clone(),
            }))
        }

        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }

        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    #[test]
    fn every_answer_is_counted_by_rcode() {
        let recorder = RcodeCounts::default();
        let responder = Responder::new(zone());
        metrics::with_local_recorder(&recorder, || {
            let send = |message: Message| {
                responder.respond(&message.to_vec().expect("encodes"), Transport::Udp)
            };
            send(query("cam.dyn.example.", RecordType::A));
            send(query("cam.dyn.example.", RecordType::AAAA));
            send(query("nope.dyn.example.", RecordType::A));
            send(query("example.org.", RecordType::A));
            send(Message::new(1, MessageType::Query, OpCode::Query));
            let mut response = query("cam.dyn.example.", RecordType::A);
            response.metadata.message_type = MessageType::Response;
            send(response);
        });
        let counts = recorder.0.lock().expect("not poisoned").clone();
        let expected: HashMap<String, u64> = [
            ("NOERROR", 2),
            ("NXDOMAIN", 1),
            ("REFUSED", 1),
            ("FORMERR", 1),
        ]
        .into_iter()
        .map(|(rcode, count)| (rcode.to_owned(), count))
        .collect();
        assert_eq!(counts, expected);
    }
}
