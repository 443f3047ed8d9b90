//! ddns-fuzz: ddnsd's fuzz targets, each a property checked on arbitrary bytes.
//!
//! Every target is a module with one `pub fn check(data: &[u8])` that panics when the property
//! fails. Two things call it: the afl-fuzz harness binaries in `fuzz_targets/` (built only with
//! the `afl` feature, by `scripts/fuzz.sh`), and the corpus replay in `tests/corpus.rs`, which
//! runs every file under `corpus/<target>/` through it on stable Rust, in the test command.
//! `fuzz/README.md` says what each property is and why the fuzzer is cargo-afl.
//!
//! - [`codec`]: the event codec and snapshot records: decode → encode gives the same bytes.
//! - [`dns`]: the whole DNS query path (`Responder` over UDP and TCP, `FastPath`): a well-formed,
//!   bounded reply, and the fast path answers as the `Responder` does.
//! - [`device_api`], [`dyndns2`], [`dvr`], [`acme`]: the device API's request parsers through
//!   its router: a known status, a reply in the protocol's words, bounded.
//! - [`http_framing`]: our HTTP/1.1 server against hyper's on the same bytes.
//! - [`token`]: the device credential: opening never panics, seal → open is the identity,
//!   an altered token never opens.
//! - [`zonefile`]: the zone-file reader ends, and what it reads reads back the same.
//! - [`portal`]: the portal's forms: never a 5xx, whatever is posted.
//! - [`quic_wire`]: the QUIC device channel's messages, both directions: canonical, so
//!   whatever decodes re-encodes to its bytes.

pub mod acme;
pub mod codec;
pub mod device_api;
pub mod dns;
pub mod dvr;
pub mod dyndns2;
pub mod http_framing;
pub mod http_oracle;
pub mod portal;
pub mod quic_wire;
pub mod token;
pub mod zonefile;

mod ingest;
mod runtime;

/// A target's check: panics when its property fails on the input.
pub type Check = fn(&[u8]);

/// Every target: its name (its corpus directory and harness binary) and its check.
pub const TARGETS: [(&str, Check); 11] = [
    ("codec", codec::check),
    ("dns", dns::check),
    ("device_api", device_api::check),
    ("dyndns2", dyndns2::check),
    ("dvr", dvr::check),
    ("acme", acme::check),
    ("http_framing", http_framing::check),
    ("token", token::check),
    ("zonefile", zonefile::check),
    ("portal", portal::check),
    ("quic_wire", quic_wire::check),
];
