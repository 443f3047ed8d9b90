//! ddns-dns: ddnsd's authoritative DNS server.
//!
//! It answers A, AAAA, SOA and NS for every configured zone from the [`ddns_core::LiveZone`] that
//! the projector keeps current, over UDP and TCP, and over QUIC (RFC 9250, on an address of its
//! own). UDP runs on worker threads of its own (one `SO_REUSEPORT` socket each,
//! `recvmmsg`/`sendmmsg`), which answer the common query with [`FastPath`] and the rest with
//! [`Responder`]; TCP runs through hickory-server's request-handler interface, answered by
//! [`Responder`] (none of hickory's zone store is used); QUIC runs on quinn, answered by
//! [`Responder`] as TCP is.
//!
//! - [`DnsServer`]: binds UDP and TCP on one address and serves until shut down.
//! - [`DoqServer`]: DNS over QUIC (RFC 9250) on its own UDP address, on quinn, answering with
//!   [`Responder`] as TCP does (the same bytes), with the TLS certificate resolver it is given;
//!   [`DoqConfig`] holds its limits.
//! - [`FastPath`]: the common UDP query from its bytes to the reply's bytes, in place.
//! - [`Responder`]: the whole DNS logic without sockets, one query's bytes in, the reply's bytes
//!   out; benchmarks and fuzzers call both directly.
//!
//! Each answered query increments `ddns_dns_queries_total{rcode="NOERROR"|"NXDOMAIN"|...}` (the
//! UDP workers add their fast replies in batches, every 200 ms).
//!
//! Logging: hickory-server logs two `info` lines per TCP reply (target `hickory_server::server`),
//! so the binary's filter must raise it to `warn`: add [`HICKORY_LOG_DIRECTIVE`], e.g. a default
//! of `info,hickory_server=warn`. This crate itself logs only at start, stop, and at `debug`.

mod answer;
mod doq;
mod fast;
mod server;
mod udp;

/// The tracing filter directive that keeps hickory-server's per-reply `info` lines out of the
/// log while keeping its warnings (socket errors, encoding failures).
pub const HICKORY_LOG_DIRECTIVE: &str = "hickory_server=warn";

pub use answer::{MAX_UDP_PAYLOAD, Responder, Transport};
pub use doq::{
    DOQ_ALPN, DOQ_NO_ERROR, DOQ_PROTOCOL_ERROR, DoqConfig, DoqError, DoqServer, QUERY_TIMEOUT,
};
pub use fast::{Fast, FastPath};
pub use server::{DnsError, DnsServer, UDP_WORKERS_ENV};
