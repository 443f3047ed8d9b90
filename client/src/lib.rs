//! ddns-client: the device side of ddnsd's QUIC device channel (ALPN `ddns/1`).
//!
//! A device keeps one QUIC connection open to the server and does nothing else: when its NAT
//! or ISP changes its address, its next packet comes from the new address, the connection
//! migrates, and the server moves the device's record there itself and tells the device (a
//! PUSH). The crate holds nothing of the server, so device firmware on Linux builds it alone.
//!
//! - [`wire`]: the protocol's messages, byte by byte, and their codec (the server uses it too).
//! - [`Session`]: one connection: the handshake, HELLO, requests, the server's pushes.
//! - [`Device`]: a task that stays connected: keep-alive, reconnects with jittered exponential
//!   [`Backoff`], [`Event`]s on a channel. Many devices share one endpoint (one UDP socket),
//!   which is how `ddns-client --devices N` and the tests simulate a fleet from one process.

mod device;
mod session;
pub mod wire;

pub use device::{Backoff, Device, DeviceConfig, DeviceEvent, Event};
pub use session::{
    Answer, HELLO_TIMEOUT, Server, Session, SessionError, endpoint, roots_from_pem, tls_config,
};
pub use wire::{Addr, Credential, Record, Request, ServerMessage, WireError};
