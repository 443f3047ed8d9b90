//! The binary encoding of events (the log's payload) and of device records (the snapshot's).
//!
//! # Event layout, version 1
//!
//! All integers big-endian. `str` is a u16 length and that many UTF-8 bytes; `ip` is a family
//! byte (4 or 6) and 4 or 16 address bytes; `fields` is a u16 count of (`str` key, `str` value).
//!
//! ```text
//! u8 version = 1 | u8 kind | u128 event id | u64 at_ms | body
//! kind 1 DeviceAdd:    str vendor, str mac, str zone, str label, ip addr, str user_agent, fields
//! kind 2 DeviceUpdate: str vendor, str mac, str zone, ip addr, str user_agent, fields
//! kind 3 DeviceRemove: str vendor, str mac, str zone
//! kind 4 HostImport:   str zone, str name, ip addr
//! ```
//!
//! # Event layout, version 2
//!
//! Version 2 adds the kinds of accounts, groups and hosts (`people.rs` documents their bodies);
//! kinds 1–4 are still written as version 1, whose layout they keep, so a log of devices alone
//! reads the same with an older build. Version 1 admits only kinds 1–4.
//!
//! Names are stored in their canonical form (lowercase, no trailing dot) and decoding rejects any
//! other form, so `encode(decode(bytes)) == bytes` for every accepted input. A new field or kind
//! means a new version; decoders keep reading every older version.
//!
//! # Device record layout, version 1
//!
//! ```text
//! u8 version = 1 | str fqdn | opt v4 | opt v6 | str user_agent | fields | u64 created_ms | u64 updated_ms
//! ```
//! where `opt` is a byte 0 (absent) or 1 followed by the 4 or 16 address bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::event::{DeviceId, Event, EventBody, EventId, Fields};
use crate::fold::Device;
use crate::names::{Fqdn, Label};

mod people;

pub use people::{decode_people_entry, decode_people_key, encode_people_entry, encode_people_key};

const EVENT_VERSION: u8 = 1;
const PEOPLE_EVENT_VERSION: u8 = 2;
const DEVICE_VERSION: u8 = 1;
const KIND_ADD: u8 = 1;
const KIND_UPDATE: u8 = 2;
const KIND_REMOVE: u8 = 3;
const KIND_IMPORT: u8 = 4;

/// Why bytes are not a valid event or device record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A version this build cannot read.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// An unknown event kind.
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
    /// The input ends inside a field.
    #[error("truncated input")]
    Truncated,
    /// Bytes after the last field.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A string that is not UTF-8.
    #[error("string is not UTF-8")]
    NotUtf8,
    /// An address family byte other than 4 or 6, or an option byte other than 0 or 1.
    #[error("bad tag byte {0}")]
    BadTag(u8),
    /// A name that is not in canonical form.
    #[error("name {0:?} is not canonical")]
    BadName(String),
}

/// Why an event cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or field list longer than 65,535.
    #[error("{0} is longer than 65535")]
    TooLong(&'static str),
}

/// Encodes an event in the current version.
pub fn encode_event(event: &Event) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(96);
    let (version, kind) = match &event.body {
        EventBody::DeviceAdd { .. } => (EVENT_VERSION, KIND_ADD),
        EventBody::DeviceUpdate { .. } => (EVENT_VERSION, KIND_UPDATE),
        EventBody::DeviceRemove { .. } => (EVENT_VERSION, KIND_REMOVE),
        EventBody::HostImport { .. } => (EVENT_VERSION, KIND_IMPORT),
        body => (PEOPLE_EVENT_VERSION, people::kind_of(body)),
    };
    out.extend_from_slice(&[version, kind]);
    out.extend_from_slice(&event.id.0.to_be_bytes());
    out.extend_from_slice(&event.at_ms.to_be_bytes());
    match &event.body {
        EventBody::DeviceAdd {
            device,
            zone,
            label,
            addr,
            user_agent,
            fields,
        } => {
            put_device(&mut out, device, zone)?;
            put_str(&mut out, label.as_str(), "label")?;
            put_ip(&mut out, *addr);
            put_str(&mut out, user_agent, "user agent")?;
            put_fields(&mut out, fields)?;
        }
        EventBody::DeviceUpdate {
            device,
            zone,
            addr,
            user_agent,
            fields,
        } => {
            put_device(&mut out, device, zone)?;
            put_ip(&mut out, *addr);
            put_str(&mut out, user_agent, "user agent")?;
            put_fields(&mut out, fields)?;
        }
        EventBody::DeviceRemove { device, zone } => put_device(&mut out, device, zone)?,
        EventBody::HostImport { zone, name, addr } => {
            put_str(&mut out, zone.as_str(), "zone")?;
            put_str(&mut out, name.as_str(), "name")?;
            put_ip(&mut out, *addr);
        }
        body => people::put_body(&mut out, body)?,
    }
    Ok(out)
}

/// Decodes an event of any known version.
pub fn decode_event(bytes: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != EVENT_VERSION && version != PEOPLE_EVENT_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let kind = r.u8()?;
    // Each kind has one version, so that re-encoding gives the same bytes.
    let version_of_kind = if people::is_kind(kind) {
        PEOPLE_EVENT_VERSION
    } else {
        EVENT_VERSION
    };
    if version != version_of_kind {
        return Err(DecodeError::UnknownKind(kind));
    }
    let id = EventId(u128::from_be_bytes(r.array()?));
    let at_ms = u64::from_be_bytes(r.array()?);
    let body = match kind {
        KIND_ADD => {
            let (device, zone) = r.device()?;
            let label = r.str()?;
            let label = match Label::parse(label) {
                Ok(parsed) if parsed.as_str() == label => parsed,
                _ => return Err(DecodeError::BadName(label.into())),
            };
            EventBody::DeviceAdd {
                device,
                zone,
                label,
                addr: r.ip()?,
                user_agent: r.str()?.into(),
                fields: r.fields()?,
            }
        }
        KIND_UPDATE => {
            let (device, zone) = r.device()?;
            EventBody::DeviceUpdate {
                device,
                zone,
                addr: r.ip()?,
                user_agent: r.str()?.into(),
                fields: r.fields()?,
            }
        }
        KIND_REMOVE => {
            let (device, zone) = r.device()?;
            EventBody::DeviceRemove { device, zone }
        }
        KIND_IMPORT => EventBody::HostImport {
            zone: r.fqdn()?,
            name: r.fqdn()?,
            addr: r.ip()?,
        },
        kind if people::is_kind(kind) => people::body(kind, &mut r)?,
        other => return Err(DecodeError::UnknownKind(other)),
    };
    r.finish()?;
    Ok(Event { id, at_ms, body })
}

/// Encodes a device record for the snapshot.
pub fn encode_device(device: &Device) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(64);
    out.push(DEVICE_VERSION);
    put_str(&mut out, device.fqdn.as_str(), "fqdn")?;
    match device.v4 {
        Some(v4) => {
            out.push(1);
            out.extend_from_slice(&v4.octets());
        }
        None => out.push(0),
    }
    match device.v6 {
        Some(v6) => {
            out.push(1);
            out.extend_from_slice(&v6.octets());
        }
        None => out.push(0),
    }
    put_str(&mut out, &device.user_agent, "user agent")?;
    put_fields(&mut out, &device.fields)?;
    out.extend_from_slice(&device.created_ms.to_be_bytes());
    out.extend_from_slice(&device.updated_ms.to_be_bytes());
    Ok(out)
}

/// Decodes a device record.
pub fn decode_device(bytes: &[u8]) -> Result<Device, DecodeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != DEVICE_VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let fqdn = r.fqdn()?;
    let v4 = match r.u8()? {
        0 => None,
        1 => Some(Ipv4Addr::from(r.array::<4>()?)),
        other => return Err(DecodeError::BadTag(other)),
    };
    let v6 = match r.u8()? {
        0 => None,
        1 => Some(Ipv6Addr::from(r.array::<16>()?)),
        other => return Err(DecodeError::BadTag(other)),
    };
    let device = Device {
        fqdn,
        v4,
        v6,
        user_agent: r.str()?.into(),
        fields: r.fields()?,
        created_ms: u64::from_be_bytes(r.array()?),
        updated_ms: u64::from_be_bytes(r.array()?),
    };
    r.finish()?;
    Ok(device)
}

fn put_device(out: &mut Vec<u8>, device: &DeviceId, zone: &Fqdn) -> Result<(), EncodeError> {
    put_str(out, &device.vendor, "vendor")?;
    put_str(out, &device.mac, "mac")?;
    put_str(out, zone.as_str(), "zone")
}

fn put_str(out: &mut Vec<u8>, s: &str, what: &'static str) -> Result<(), EncodeError> {
    let len = u16::try_from(s.len()).map_err(|_| EncodeError::TooLong(what))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_ip(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

fn put_fields(out: &mut Vec<u8>, fields: &Fields) -> Result<(), EncodeError> {
    let count = u16::try_from(fields.len()).map_err(|_| EncodeError::TooLong("fields"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for (key, value) in fields {
        put_str(out, key, "field name")?;
        put_str(out, value, "field value")?;
    }
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = u16::from_be_bytes(self.array()?);
        std::str::from_utf8(self.take(len.into())?).map_err(|_| DecodeError::NotUtf8)
    }

    fn fqdn(&mut self) -> Result<Fqdn, DecodeError> {
        let name = self.str()?;
        match Fqdn::parse(name) {
            Ok(fqdn) if fqdn.as_str() == name => Ok(fqdn),
            _ => Err(DecodeError::BadName(name.into())),
        }
    }

    fn device(&mut self) -> Result<(DeviceId, Fqdn), DecodeError> {
        let vendor = self.str()?.into();
        let mac = self.str()?.into();
        Ok((DeviceId { vendor, mac }, self.fqdn()?))
    }

    fn ip(&mut self) -> Result<IpAddr, DecodeError> {
        match self.u8()? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>()?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>()?))),
            other => Err(DecodeError::BadTag(other)),
        }
    }

    fn fields(&mut self) -> Result<Fields, DecodeError> {
        let count = u16::from_be_bytes(self.array()?);
        (0..count)
            .map(|_| Ok((self.str()?.into(), self.str()?.into())))
            .collect()
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.0.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_add() -> Event {
        Event {
            id: EventId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            at_ms: 1_700_000_000_000,
            body: EventBody::DeviceAdd {
                device: DeviceId {
                    vendor: "acme".into(),
                    mac: "E0:46:9A:B8:1B:FC".into(),
                },
                zone: Fqdn::parse("dyn.example").expect("valid"),
                label: Label::parse("cam42").expect("valid"),
                addr: "192.0.2.7".parse().expect("valid"),
                user_agent: "Acme - Cam - 1.0".into(),
                fields: vec![("port".into(), "8080".into())],
            },
        }
    }

    /// Pins the version-1 format: a change here breaks every log already written.
    #[test]
    fn golden_bytes_of_a_device_add() {
        let bytes = encode_event(&sample_add()).expect("encodes");
        let golden: &[u8] = b"\x01\x01\
            \x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\
            \x00\x00\x01\x8b\xcf\xe5\x68\x00\
            \x00\x04acme\x00\x11E0:46:9A:B8:1B:FC\x00\x0bdyn.example\x00\x05cam42\
            \x04\xc0\x00\x02\x07\
            \x00\x10Acme - Cam - 1.0\
            \x00\x01\x00\x04port\x00\x048080";
        assert_eq!(bytes, golden);
        assert_eq!(decode_event(golden), Ok(sample_add()));
    }

    #[test]
    fn golden_bytes_of_update_and_remove() {
        let device = DeviceId {
            vendor: "v".into(),
            mac: "m".into(),
        };
        let zone = Fqdn::parse("z").expect("valid");
        let update = Event {
            id: EventId(1),
            at_ms: 2,
            body: EventBody::DeviceUpdate {
                device: device.clone(),
                zone: zone.clone(),
                addr: "2001:db8::1".parse().expect("valid"),
                user_agent: String::new(),
                fields: vec![],
            },
        };
        let mut golden = vec![1, 2];
        golden.extend_from_slice(&1u128.to_be_bytes());
        golden.extend_from_slice(&2u64.to_be_bytes());
        golden.extend_from_slice(b"\x00\x01v\x00\x01m\x00\x01z\x06");
        golden.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().expect("valid").octets());
        golden.extend_from_slice(b"\x00\x00\x00\x00");
        assert_eq!(encode_event(&update), Ok(golden.clone()));
        assert_eq!(decode_event(&golden), Ok(update));

        let remove = Event {
            id: EventId(1),
            at_ms: 2,
            body: EventBody::DeviceRemove { device, zone },
        };
        let mut golden = vec![1, 3];
        golden.extend_from_slice(&1u128.to_be_bytes());
        golden.extend_from_slice(&2u64.to_be_bytes());
        golden.extend_from_slice(b"\x00\x01v\x00\x01m\x00\x01z");
        assert_eq!(encode_event(&remove), Ok(golden.clone()));
        assert_eq!(decode_event(&golden), Ok(remove));
    }

    #[test]
    fn golden_bytes_of_a_host_import() {
        let import = Event {
            id: EventId(3),
            at_ms: 4,
            body: EventBody::HostImport {
                zone: Fqdn::parse("z").expect("valid"),
                name: Fqdn::parse("a.b.z").expect("valid"),
                addr: "192.0.2.9".parse().expect("valid"),
            },
        };
        let mut golden = vec![1, 4];
        golden.extend_from_slice(&3u128.to_be_bytes());
        golden.extend_from_slice(&4u64.to_be_bytes());
        golden.extend_from_slice(b"\x00\x01z\x00\x05a.b.z\x04\xc0\x00\x02\x09");
        assert_eq!(encode_event(&import), Ok(golden.clone()));
        assert_eq!(decode_event(&golden), Ok(import));
    }

    #[test]
    fn hostile_bytes_are_rejected() {
        let good = encode_event(&sample_add()).expect("encodes");
        assert_eq!(decode_event(&[]), Err(DecodeError::Truncated));
        assert_eq!(decode_event(&[9]), Err(DecodeError::UnknownVersion(9)));
        let mut bad_kind = good.clone();
        bad_kind[1] = 77;
        assert_eq!(decode_event(&bad_kind), Err(DecodeError::UnknownKind(77)));
        for cut in 0..good.len() {
            assert_eq!(
                decode_event(&good[..cut]),
                Err(DecodeError::Truncated),
                "cut at {cut}"
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode_event(&trailing), Err(DecodeError::TrailingBytes(1)));
        let at = good
            .windows(5)
            .position(|w| w == b"cam42")
            .expect("label is in the bytes");
        let mut upper = good.clone();
        upper[at..at + 5].copy_from_slice(b"CAM42");
        assert_eq!(
            decode_event(&upper),
            Err(DecodeError::BadName("CAM42".into()))
        );
    }

    #[test]
    fn device_records_round_trip() {
        let device = Device {
            fqdn: Fqdn::parse("a.b").expect("valid"),
            v4: Some(Ipv4Addr::new(1, 2, 3, 4)),
            v6: None,
            user_agent: "ua".into(),
            fields: vec![("k".into(), "v".into())],
            created_ms: 5,
            updated_ms: 6,
        };
        let bytes = encode_device(&device).expect("encodes");
        assert_eq!(decode_device(&bytes), Ok(device));
        assert_eq!(
            decode_device(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated)
        );
    }
}
