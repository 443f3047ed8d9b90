//! ddns-ingest: the HTTP front door for devices.
//!
//! A request flows through [`DeviceApi`]: its source address is charged against the flood
//! quotas, its credential opened, its fields validated; what needs no change is answered from
//! the projector's state, anything else becomes an event appended to the log, and the reply is
//! the outcome the fold gave that event once it is durable and applied.
//!
//! - [`DeviceApi`]: the device API's routes (`add`, `update`, `remove`, `ipcheck`, `ipdetect`)
//!   and the DVR protocol's `/dvr/update`,
//!   served by its own HTTP/1.1 server ([`DeviceApi::serve`]) or as an axum router.
//! - [`TokenBook`]: the device credential (`mac=TOKEN`), its wire format and key rotation.
//! - [`FloodGuard`]: the per-source and per-device quotas behind reply `911`, and the quota on
//!   host-password guesses.
//! - [`PasswordHasher`], [`VerifiedPasswords`]: argon2id for people's passwords (bounded runs),
//!   and the memory that checks a DVR's repeated host password in microseconds.
//! - [`TlsCertificate`]: the one certificate every TLS listener presents (the device API's
//!   [`DeviceApi::serve_tls`], the portal's), from [`TlsConfig`], reloadable.
//! - [`QuicChannel`]: the QUIC device channel (ALPN `ddns/1`): devices keep a connection open
//!   and the server moves their record when the connection migrates ([`QuicConfig`]).

mod device_api;
mod flood;
mod http;
mod quic;
mod secret;
mod source;
mod tls;
mod token;

pub use device_api::{DeviceApi, IngestConfig, IngestError, VendorConfig};
pub use http::IDLE_TIMEOUT;
pub use quic::{
    ADDRESS_CHECK_INTERVAL, HELLO_TIMEOUT as QUIC_HELLO_TIMEOUT, MESSAGE_TIMEOUT, QuicChannel,
    QuicConfig, QuicError,
};
pub use source::{Cidr, CidrError, client_addr};
pub use tls::{HANDSHAKE_TIMEOUT, TlsCertificate, TlsConfig, TlsError, accept_tls};

pub use flood::{FloodConfig, FloodGuard};
pub use secret::{
    HashError, PasswordHasher, UpdateToken, VerifiedPasswords, generate_host_password,
    new_update_token, token_matches,
};
pub use token::{
    Credential, FUTURE_SKEW_SECS, KeyError, MAC_LEN_MAX, REPLAY_CACHE_MAX, TOKEN_LEN_MAX,
    TokenBook, TokenError, VendorCredentials, VendorKey,
};
