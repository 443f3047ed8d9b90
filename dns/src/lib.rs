//! ddns-dns: ddnsd's authoritative DNS server.
//!
//! It answers A, AAAA, SOA and NS for every configured zone from the [`ddns_core::LiveZone`] that
//! the projector keeps current, over UDP and TCP, through hickory-server's request-handler
//! interface (hickory owns the sockets and the wire format; none of its zone store is used).
//!
//! - [`DnsServer`]: binds UDP and TCP on one address and serves until shut down.
//! - [`Responder`]: the DNS logic without sockets, one query's bytes in, the reply's bytes out;
//!   the server calls it for every request, benchmarks and fuzzers call it directly.
//!
//! Each answered query increments `ddns_dns_queries_total{rcode="NOERROR"|"NXDOMAIN"|...}`.
//!
//! Logging: hickory-server logs two `info` lines per reply (target `hickory_server::server`), so
//! the binary's filter must raise it to `warn`: add [`HICKORY_LOG_DIRECTIVE`], e.g. a default of
//! `info,hickory_server=warn`. This crate itself logs only at start, stop, and at `debug`.

mod answer;
mod fast;
mod server;
mod udp;

/// The tracing filter directive that keeps hickory-server's per-reply `info` lines out of the
/// log while keeping its warnings (socket errors, encoding failures).
pub const HICKORY_LOG_DIRECTIVE: &str = "hickory_server=warn";

pub use answer::{MAX_UDP_PAYLOAD, Responder, Transport};
pub use fast::{Fast, FastPath};
pub use server::{DnsError, DnsServer};
