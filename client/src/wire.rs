//! The wire format of the QUIC device channel, ALPN `ddns/1`: every message on the control
//! stream, in both directions, and the codec both ends share. No I/O here.
//!
//! ```text
//! message  = length:u16 (big-endian, 1..=512)  body[length]
//! body     = type:u8  fields of the type, and nothing after them
//!
//! str8     = len:u8  len bytes            (tokens, names, codes: ASCII; a secret: UTF-8)
//! addr     = 0x00                         the address this connection comes from
//!          | 0x04  4 bytes                an IPv4 address
//!          | 0x06  16 bytes               an IPv6 address
//! record   = name:str8  mask:u8  [A:4 bytes if mask bit 0]  [AAAA:16 bytes if mask bit 1]
//!            (no record: an empty name and mask 0; other mask bits are 0)
//!
//! device → server (requests, each answered by one REPLY, in order)
//!   0x01 HELLO_DEVICE  flags:u8  token:str8                 the device API's `mac` token
//!   0x02 HELLO_HOST    flags:u8  host:str8  secret:str8     host password or update token
//!   0x03 UPDATE        addr
//!   0x04 REMOVE
//!   0x05 QUERY
//!   flags: bit 0 (0x01) = publish this connection's IPv6 address; other bits are 0
//!
//! server → device
//!   0x81 REPLY         code:str8  record                    the answer to a request
//!   0x82 PUSH          code:str8  record                    a change the server made itself
//! ```
//!
//! `code` is the device API's reply text (`09`, `08`, `911`, …; `14` for a HELLO or QUERY that
//! found the record); `record` is the device's record after the request. A message that breaks
//! any of these rules (a length of 0 or over 512, an unknown type, a field cut short, bytes
//! after the last field, a reserved flag or mask bit, a bad address tag, text that is not
//! what it should be) is a [`WireError`]: the server closes the connection with
//! [`close::PROTOCOL_ERROR`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The ALPN token of the QUIC device channel.
pub const ALPN: &[u8] = b"ddns/1";

/// The largest body a message may have.
pub const MESSAGE_MAX: usize = 512;

/// The application error codes a connection is closed with (QUIC CONNECTION_CLOSE).
pub mod close {
    /// Orderly: the server is shutting down, the device was removed, or the device left.
    pub const NO_ERROR: u32 = 0x0;
    /// A message (or stream) that breaks the protocol's rules, or one that took too long.
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// The HELLO was refused; its REPLY's code says why (`02`, `13`, `911`, `12`).
    pub const REFUSED: u32 = 0x2;
    /// A newer connection of the same device over the same address family took over.
    pub const SUPERSEDED: u32 = 0x3;
}

const HELLO_DEVICE: u8 = 0x01;
const HELLO_HOST: u8 = 0x02;
const UPDATE: u8 = 0x03;
const REMOVE: u8 = 0x04;
const QUERY: u8 = 0x05;
const REPLY: u8 = 0x81;
const PUSH: u8 = 0x82;

/// HELLO flag: publish the address an IPv6 connection comes from (IPv6 addresses are often
/// temporary privacy addresses, so a device opts in).
const FLAG_PUBLISH_V6: u8 = 0x01;

const ADDR_OBSERVED: u8 = 0x00;
const ADDR_V4: u8 = 0x04;
const ADDR_V6: u8 = 0x06;

const MASK_A: u8 = 0x01;
const MASK_AAAA: u8 = 0x02;

/// How a device proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A device's `mac` token, sealed by its vendor (the device API's credential).
    Device {
        /// The token, as the device API's `mac=` takes it (base64url).
        token: String,
    },
    /// A host of a portal account: its name and its host password or one of its update tokens.
    Host {
        /// The host's FQDN.
        host: String,
        /// The host password, or an update token.
        secret: String,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Device { .. } => f.write_str("Device { token: <hidden> }"),
            Credential::Host { host, .. } => {
                write!(f, "Host {{ host: {host:?}, secret: <hidden> }}")
            }
        }
    }
}

/// The address an UPDATE sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    /// The address the connection comes from (as `update.aspx` without `myip`).
    Observed,
    /// This address.
    Ip(IpAddr),
}

/// What a device asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Authenticates the connection; the first message, and only once.
    Hello {
        /// Who the device is.
        credential: Credential,
        /// Publish the address of an IPv6 connection (an IPv4 connection's is always followed).
        publish_v6: bool,
    },
    /// Sets the record's address of the family of `Addr`.
    Update(Addr),
    /// Deletes the device and releases its name (device credentials only).
    Remove,
    /// Asks for the current record.
    Query,
}

/// A device's record: its name and addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// Its fully qualified name.
    pub name: String,
    /// Its A record.
    pub v4: Option<Ipv4Addr>,
    /// Its AAAA record.
    pub v6: Option<Ipv6Addr>,
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(v4) = self.v4 {
            write!(f, " A {v4}")?;
        }
        if let Some(v6) = self.v6 {
            write!(f, " AAAA {v6}")?;
        }
        Ok(())
    }
}

/// What the server sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerMessage {
    /// The answer to the oldest request not yet answered.
    Reply {
        /// The device API's reply code.
        code: String,
        /// The record after the request (`None`: the device has none).
        record: Option<Record>,
    },
    /// A change the server made on its own (a confirmed address change), or refused to make.
    Push {
        /// `09` (set), `911` (the device's quota is spent: retried later), `13`, `12`.
        code: String,
        /// The record now.
        record: Option<Record>,
    },
}

/// Why bytes are not a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length of 0.
    #[error("empty message")]
    Empty,
    /// A length over [`MESSAGE_MAX`].
    #[error("message of {0} bytes (at most 512)")]
    TooLong(usize),
    /// A type this side does not take.
    #[error("unknown message type {0:#04x}")]
    UnknownType(u8),
    /// The body ends inside a field.
    #[error("message cut short")]
    Truncated,
    /// Bytes after the last field.
    #[error("bytes after the message's last field")]
    Trailing,
    /// A reserved flag or mask bit set.
    #[error("reserved bits set")]
    Reserved,
    /// An address tag other than 0, 4 and 6.
    #[error("bad address tag {0}")]
    AddrTag(u8),
    /// Text that is empty, too long, or not the characters it may hold.
    #[error("bad text field")]
    Text,
}

/// The body length a 2-byte prefix announces, if it is one a message may have.
pub fn body_len(prefix: [u8; 2]) -> Result<usize, WireError> {
    match usize::from(u16::from_be_bytes(prefix)) {
        0 => Err(WireError::Empty),
        n if n > MESSAGE_MAX => Err(WireError::TooLong(n)),
        n => Ok(n),
    }
}

/// `body` with its length prefix.
fn framed(body: Vec<u8>) -> Vec<u8> {
    let len = u16::try_from(body.len()).expect("every message this codec builds is short");
    assert!(body.len() <= MESSAGE_MAX, "message over MESSAGE_MAX");
    let mut out = Vec::with_capacity(2 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    out
}

fn put_str8(out: &mut Vec<u8>, text: &str) {
    let len = u8::try_from(text.len()).expect("callers keep str8 fields within 255 bytes");
    out.push(len);
    out.extend_from_slice(text.as_bytes());
}

fn put_record(out: &mut Vec<u8>, record: Option<&Record>) {
    let Some(record) = record else {
        out.extend_from_slice(&[0, 0]);
        return;
    };
    put_str8(out, &record.name);
    let mut mask = 0;
    if record.v4.is_some() {
        mask |= MASK_A;
    }
    if record.v6.is_some() {
        mask |= MASK_AAAA;
    }
    out.push(mask);
    if let Some(v4) = record.v4 {
        out.extend_from_slice(&v4.octets());
    }
    if let Some(v6) = record.v6 {
        out.extend_from_slice(&v6.octets());
    }
}

impl Request {
    /// The message, length prefix included. Panics on a field over 255 bytes: check with
    /// [`Request::fits`] first when the fields come from outside.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(64);
        match self {
            Request::Hello {
                credential,
                publish_v6,
            } => {
                let flags = if *publish_v6 { FLAG_PUBLISH_V6 } else { 0 };
                match credential {
                    Credential::Device { token } => {
                        body.extend_from_slice(&[HELLO_DEVICE, flags]);
                        put_str8(&mut body, token);
                    }
                    Credential::Host { host, secret } => {
                        body.extend_from_slice(&[HELLO_HOST, flags]);
                        put_str8(&mut body, host);
                        put_str8(&mut body, secret);
                    }
                }
            }
            Request::Update(addr) => {
                body.push(UPDATE);
                match addr {
                    Addr::Observed => body.push(ADDR_OBSERVED),
                    Addr::Ip(IpAddr::V4(v4)) => {
                        body.push(ADDR_V4);
                        body.extend_from_slice(&v4.octets());
                    }
                    Addr::Ip(IpAddr::V6(v6)) => {
                        body.push(ADDR_V6);
                        body.extend_from_slice(&v6.octets());
                    }
                }
            }
            Request::Remove => body.push(REMOVE),
            Request::Query => body.push(QUERY),
        }
        framed(body)
    }

    /// True if every text field is 1 to 255 bytes and the body at most [`MESSAGE_MAX`] (what
    /// [`Request::encode`] needs).
    pub fn fits(&self) -> bool {
        let ok = |s: &str| (1..=255).contains(&s.len());
        match self {
            Request::Hello {
                credential: Credential::Device { token },
                ..
            } => ok(token),
            // Type, flags and two length bytes: two full-length fields are 2 bytes too many.
            Request::Hello {
                credential: Credential::Host { host, secret },
                ..
            } => ok(host) && ok(secret) && 4 + host.len() + secret.len() <= MESSAGE_MAX,
            _ => true,
        }
    }

    /// Decodes one message body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Request, WireError> {
        let mut r = Reader(body);
        let request = match r.u8()? {
            kind @ (HELLO_DEVICE | HELLO_HOST) => {
                let flags = r.u8()?;
                if flags & !FLAG_PUBLISH_V6 != 0 {
                    return Err(WireError::Reserved);
                }
                let credential = if kind == HELLO_DEVICE {
                    Credential::Device {
                        token: r.ascii()?.to_owned(),
                    }
                } else {
                    Credential::Host {
                        host: r.ascii()?.to_owned(),
                        secret: r.utf8()?.to_owned(),
                    }
                };
                Request::Hello {
                    credential,
                    publish_v6: flags & FLAG_PUBLISH_V6 != 0,
                }
            }
            UPDATE => Request::Update(match r.u8()? {
                ADDR_OBSERVED => Addr::Observed,
                ADDR_V4 => Addr::Ip(IpAddr::from(r.array::<4>()?)),
                ADDR_V6 => Addr::Ip(IpAddr::from(r.array::<16>()?)),
                tag => return Err(WireError::AddrTag(tag)),
            }),
            REMOVE => Request::Remove,
            QUERY => Request::Query,
            other => return Err(WireError::UnknownType(other)),
        };
        r.end()?;
        Ok(request)
    }
}

impl ServerMessage {
    /// The message, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, code, record) = match self {
            ServerMessage::Reply { code, record } => (REPLY, code, record),
            ServerMessage::Push { code, record } => (PUSH, code, record),
        };
        let mut body = Vec::with_capacity(64);
        body.push(kind);
        put_str8(&mut body, code);
        put_record(&mut body, record.as_ref());
        framed(body)
    }

    /// Decodes one message body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<ServerMessage, WireError> {
        let mut r = Reader(body);
        let kind = r.u8()?;
        if kind != REPLY && kind != PUSH {
            return Err(WireError::UnknownType(kind));
        }
        let code = r.ascii()?.to_owned();
        let name = r.str8()?;
        let mask = r.u8()?;
        if mask & !(MASK_A | MASK_AAAA) != 0 {
            return Err(WireError::Reserved);
        }
        let v4 = match mask & MASK_A {
            0 => None,
            _ => Some(Ipv4Addr::from(r.array::<4>()?)),
        };
        let v6 = match mask & MASK_AAAA {
            0 => None,
            _ => Some(Ipv6Addr::from(r.array::<16>()?)),
        };
        let record = match name {
            [] if mask == 0 => None,
            [] => return Err(WireError::Text),
            name => Some(Record {
                name: ascii(name)?.to_owned(),
                v4,
                v6,
            }),
        };
        r.end()?;
        Ok(match kind {
            REPLY => ServerMessage::Reply { code, record },
            _ => ServerMessage::Push { code, record },
        })
    }
}

/// Printable ASCII without spaces, 1 to 255 bytes.
fn ascii(bytes: &[u8]) -> Result<&str, WireError> {
    if bytes.is_empty() || !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(WireError::Text);
    }
    std::str::from_utf8(bytes).map_err(|_| WireError::Text)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, WireError> {
        let (&first, rest) = self.0.split_first().ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(first)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn str8(&mut self) -> Result<&'a [u8], WireError> {
        let len = usize::from(self.u8()?);
        if self.0.len() < len {
            return Err(WireError::Truncated);
        }
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(text)
    }

    fn ascii(&mut self) -> Result<&'a str, WireError> {
        ascii(self.str8()?)
    }

    /// Any UTF-8 without control characters, 1 to 255 bytes (a password may hold spaces).
    fn utf8(&mut self) -> Result<&'a str, WireError> {
        let text = std::str::from_utf8(self.str8()?).map_err(|_| WireError::Text)?;
        if text.is_empty() || text.chars().any(char::is_control) {
            return Err(WireError::Text);
        }
        Ok(text)
    }

    fn end(&self) -> Result<(), WireError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(WireError::Trailing),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(message: &[u8]) -> &[u8] {
        let len = body_len([message[0], message[1]]).expect("a valid length");
        assert_eq!(len, message.len() - 2);
        &message[2..]
    }

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::Hello {
                credential: Credential::Device {
                    token: "AQABAAAAAAAAAAAAAAAA_-x".into(),
                },
                publish_v6: false,
            },
            Request::Hello {
                credential: Credential::Host {
                    host: "cam.brian.dyn.example".into(),
                    secret: "a long pass phrase €".into(),
                },
                publish_v6: true,
            },
            Request::Update(Addr::Observed),
            Request::Update(Addr::Ip("192.0.2.7".parse().expect("valid"))),
            Request::Update(Addr::Ip("2001:db8::7".parse().expect("valid"))),
            Request::Remove,
            Request::Query,
        ];
        for request in requests {
            let message = request.encode();
            assert_eq!(Request::decode(body(&message)), Ok(request));
        }
    }

    #[test]
    fn the_bytes_are_the_documented_ones() {
        let hello = Request::Hello {
            credential: Credential::Device { token: "AB".into() },
            publish_v6: true,
        };
        assert_eq!(hello.encode(), [0, 5, 0x01, 0x01, 2, b'A', b'B']);
        let update = Request::Update(Addr::Ip("192.0.2.7".parse().expect("valid")));
        assert_eq!(update.encode(), [0, 6, 0x03, 0x04, 192, 0, 2, 7]);
        assert_eq!(Request::Update(Addr::Observed).encode(), [0, 2, 0x03, 0x00]);
        assert_eq!(Request::Remove.encode(), [0, 1, 0x04]);
        let reply = ServerMessage::Reply {
            code: "14".into(),
            record: Some(Record {
                name: "c.d".into(),
                v4: Some(Ipv4Addr::new(127, 0, 0, 2)),
                v6: None,
            }),
        };
        assert_eq!(
            reply.encode(),
            [
                0, 13, 0x81, 2, b'1', b'4', 3, b'c', b'.', b'd', 0x01, 127, 0, 0, 2
            ]
        );
        let push = ServerMessage::Push {
            code: "13".into(),
            record: None,
        };
        assert_eq!(push.encode(), [0, 6, 0x82, 2, b'1', b'3', 0, 0]);
    }

    #[test]
    fn server_messages_round_trip() {
        for message in [
            ServerMessage::Reply {
                code: "911".into(),
                record: None,
            },
            ServerMessage::Push {
                code: "09".into(),
                record: Some(Record {
                    name: "cam42.dyn.example".into(),
                    v4: Some(Ipv4Addr::new(203, 0, 113, 7)),
                    v6: Some("2001:db8::42".parse().expect("valid")),
                }),
            },
        ] {
            let bytes = message.encode();
            assert_eq!(ServerMessage::decode(body(&bytes)), Ok(message));
        }
    }

    #[test]
    fn malformed_bodies_are_named() {
        assert_eq!(body_len([0, 0]), Err(WireError::Empty));
        assert_eq!(body_len([2, 1]), Err(WireError::TooLong(513)));
        assert_eq!(body_len([2, 0]), Ok(512));
        let cases: &[(&[u8], WireError)] = &[
            (&[], WireError::Truncated),
            (&[0x7f], WireError::UnknownType(0x7f)),
            (&[0x81], WireError::UnknownType(0x81)),
            (&[0x01], WireError::Truncated),
            (&[0x01, 0x02, 1, b'A'], WireError::Reserved),
            (&[0x01, 0x80, 1, b'A'], WireError::Reserved),
            (&[0x01, 0, 3, b'A'], WireError::Truncated),
            (&[0x01, 0, 0], WireError::Text),
            (&[0x01, 0, 2, b'A', b' '], WireError::Text),
            (&[0x01, 0, 1, b'A', 0], WireError::Trailing),
            (&[0x02, 0, 1, b'h', 0], WireError::Text),
            (&[0x02, 0, 1, b'h', 1, b'\n'], WireError::Text),
            (&[0x02, 0, 1, b'h', 1, 0xff], WireError::Text),
            (&[0x03], WireError::Truncated),
            (&[0x03, 0x05], WireError::AddrTag(5)),
            (&[0x03, 0x04, 1, 2, 3], WireError::Truncated),
            (&[0x03, 0x00, 0], WireError::Trailing),
            (&[0x04, 0], WireError::Trailing),
            (&[0x05, 0x05], WireError::Trailing),
        ];
        for (bytes, error) in cases {
            assert_eq!(Request::decode(bytes), Err(*error), "{bytes:02x?}");
        }
        let server: &[(&[u8], WireError)] = &[
            (&[0x01, 1, b'1', 0, 0], WireError::UnknownType(1)),
            (&[0x81, 2, b'1', b'4', 0, 1, 1, 2, 3, 4], WireError::Text),
            (&[0x81, 2, b'1', b'4', 1, b'a', 4], WireError::Reserved),
            (&[0x81, 2, b'1', b'4', 1, b'a', 1, 1], WireError::Truncated),
            (&[0x81, 2, b'1', b'4', 0, 0, 0], WireError::Trailing),
        ];
        for (bytes, error) in server {
            assert_eq!(ServerMessage::decode(bytes), Err(*error), "{bytes:02x?}");
        }
    }

    #[test]
    fn a_full_host_hello_is_exactly_the_maximum() {
        let hello = Request::Hello {
            credential: Credential::Host {
                host: "h".repeat(253),
                secret: "s".repeat(255),
            },
            publish_v6: false,
        };
        assert!(hello.fits());
        assert_eq!(hello.encode().len(), 2 + MESSAGE_MAX);
        let over = Request::Hello {
            credential: Credential::Host {
                host: "h".repeat(254),
                secret: "s".repeat(255),
            },
            publish_v6: false,
        };
        assert!(!over.fits(), "fields within 255 bytes, the body over");
        let too_long = Request::Hello {
            credential: Credential::Device {
                token: "t".repeat(256),
            },
            publish_v6: false,
        };
        assert!(!too_long.fits());
    }
}
