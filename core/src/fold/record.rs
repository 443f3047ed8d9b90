//! A device's record: everything the fold keeps about one device, packed into the state's arena.
//!
//! # Layout
//!
//! ```text
//! u8 flags                          V4 = 1, V6 = 2, IMPORT = 4, bits 3-4 the MAC's form
//! [4] A address                     if V4
//! [16] AAAA address                 if V6
//! u64 created_ms, u64 updated_ms    little-endian
//! var vendor, mac                   unless IMPORT; mac is `var len, text` or 6 octets
//! var parent + 1                    the name after its first label; 0: a one-label name
//! var len, label                    the name's first label
//! var user_agent + 1                0: empty
//! var count, count × (var key, var len, value)    the fields
//! zero padding to a multiple of 4
//! ```
//!
//! `var` is an unsigned LEB128 number (one byte below 128). The vendor, parent, user agent and
//! field keys are ids of the state's interner, and a record holds one reference to each id it
//! names. An IMPORT record's owner is `(IMPORT_VENDOR, its name)` (what `import_owner` gives), so
//! it stores neither: a record is IMPORT exactly when its owner has that form. A MAC spelled the
//! way MACs usually are (12 upper-case hex digits, bare or in pairs joined by `:` or `-`; ingest
//! upper-cases them) is stored as its 6 octets and the form, and spelled out again when read.
//!
//! The addresses and the update time have fixed places, so an address change is written in
//! place; any other change writes a new record and leaves the old one as garbage.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::interner::Interner;
use crate::event::Fields;

pub(super) const V4: u8 = 1;
pub(super) const V6: u8 = 2;
pub(super) const IMPORT: u8 = 4;
/// Bits 3-4: how the MAC is stored (see [`Mac`]).
const MAC_FORM: u8 = 0x18;
const MAC_BARE: u8 = 0x08;
const MAC_COLONS: u8 = 0x10;
const MAC_DASHES: u8 = 0x18;
/// The longest MAC kept as octets: `00:11:22:33:44:55`.
pub(super) const MAC_TEXT_MAX: usize = 17;

/// Records start at multiples of this, so that a `u32` offset in these units spans 16 GiB.
pub(super) const ALIGN: usize = 4;

/// A record as read from the arena.
#[derive(Clone, Copy, Debug)]
pub(super) struct Record<'a> {
    pub(super) flags: u8,
    pub(super) v4: Option<Ipv4Addr>,
    pub(super) v6: Option<Ipv6Addr>,
    pub(super) created_ms: u64,
    pub(super) updated_ms: u64,
    /// The vendor's id, `None` for an IMPORT record.
    pub(super) vendor: Option<u32>,
    /// Empty for an IMPORT record.
    pub(super) mac: Mac<'a>,
    pub(super) parent: Option<u32>,
    pub(super) label: &'a str,
    pub(super) user_agent: Option<u32>,
    /// The fields, from their count on (and whatever follows the record in the arena).
    pub(super) fields: &'a [u8],
    /// Where `fields` starts in the record.
    fields_at: usize,
}

impl<'a> Record<'a> {
    /// Reads the record at the start of `bytes`.
    pub(super) fn parse(bytes: &'a [u8]) -> Record<'a> {
        let mut r = Cursor { bytes, at: 0 };
        let flags = r.u8();
        let v4 = (flags & V4 != 0).then(|| Ipv4Addr::from(r.array::<4>()));
        let v6 = (flags & V6 != 0).then(|| Ipv6Addr::from(r.array::<16>()));
        let created_ms = u64::from_le_bytes(r.array());
        let updated_ms = u64::from_le_bytes(r.array());
        let (vendor, mac) = if flags & IMPORT == 0 {
            let vendor = r.id();
            let mac = match flags & MAC_FORM {
                0 => {
                    let len = r.var();
                    Mac::Text(r.take(len))
                }
                form => Mac::Octets(form, r.array()),
            };
            (Some(vendor), mac)
        } else {
            (None, Mac::Text(&[]))
        };
        let parent = r.var().checked_sub(1).map(as_id);
        let len = r.var();
        let label = std::str::from_utf8(r.take(len)).expect("a stored label is ASCII");
        let user_agent = r.var().checked_sub(1).map(as_id);
        Record {
            flags,
            v4,
            v6,
            created_ms,
            updated_ms,
            vendor,
            mac,
            parent,
            label,
            user_agent,
            fields: &bytes[r.at..],
            fields_at: r.at,
        }
    }

    /// The record's length with its padding.
    pub(super) fn padded_len(&self) -> usize {
        (self.fields_at + self.fields_bytes().len()).next_multiple_of(ALIGN)
    }

    /// The fields, from their count through the last one.
    pub(super) fn fields_bytes(&self) -> &'a [u8] {
        let mut r = Cursor {
            bytes: self.fields,
            at: 0,
        };
        for _ in 0..r.var() {
            r.var();
            let len = r.var();
            r.take(len);
        }
        &self.fields[..r.at]
    }

    /// Where `addr`'s family's address is in the record, if it has one.
    pub(super) fn addr_at(&self, addr: IpAddr) -> Option<usize> {
        match addr {
            IpAddr::V4(_) => (self.flags & V4 != 0).then_some(1),
            IpAddr::V6(_) => {
                (self.flags & V6 != 0).then_some(1 + if self.flags & V4 != 0 { 4 } else { 0 })
            }
        }
    }

    /// Where the update time is in the record.
    pub(super) fn updated_at(&self) -> usize {
        let mut at = 1 + 8;
        if self.flags & V4 != 0 {
            at += 4;
        }
        if self.flags & V6 != 0 {
            at += 16;
        }
        at
    }

    /// The user agent, `""` if none.
    pub(super) fn user_agent<'s>(&self, strings: &'s Interner) -> &'s str {
        self.user_agent.map_or("", |id| strings.get(id))
    }

    /// True if the record's fields are `fields`.
    pub(super) fn fields_are(&self, fields: &Fields, strings: &Interner) -> bool {
        let mut stored = FieldsIter::new(self.fields, strings);
        stored.len() == fields.len()
            && fields
                .iter()
                .zip(&mut stored)
                .all(|((key, value), (k, v))| key == k && value == v)
    }

    /// The ids of the field keys.
    pub(super) fn field_keys(&self) -> impl Iterator<Item = u32> + 'a {
        let mut r = Cursor {
            bytes: self.fields,
            at: 0,
        };
        let count = r.var();
        (0..count).map(move |_| {
            let key = r.id();
            let len = r.var();
            r.take(len);
            key
        })
    }

    /// Every id the record holds a reference to.
    pub(super) fn ids(&self) -> impl Iterator<Item = u32> + 'a {
        self.vendor
            .into_iter()
            .chain(self.parent)
            .chain(self.user_agent)
            .chain(self.field_keys())
    }
}

/// What a new record holds, the fields aside (see [`write_head`]).
pub(super) struct Head<'a> {
    pub(super) v4: Option<Ipv4Addr>,
    pub(super) v6: Option<Ipv6Addr>,
    pub(super) created_ms: u64,
    pub(super) updated_ms: u64,
    /// `None` for an IMPORT record.
    pub(super) vendor: Option<u32>,
    pub(super) mac: Mac<'a>,
    pub(super) parent: Option<u32>,
    pub(super) label: &'a str,
    pub(super) user_agent: Option<u32>,
}

/// A MAC as a record stores it: its text, or its octets and the form of its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mac<'a> {
    Text(&'a [u8]),
    Octets(u8, [u8; 6]),
}

impl<'a> Mac<'a> {
    /// How `text` is stored: each text has one form, so two are equal if their texts are.
    pub(super) fn of(text: &'a [u8]) -> Mac<'a> {
        let (form, step) = match (text.len(), text.get(2)) {
            (12, _) => (MAC_BARE, 2),
            (17, Some(b':')) => (MAC_COLONS, 3),
            (17, Some(b'-')) => (MAC_DASHES, 3),
            _ => return Mac::Text(text),
        };
        let separator = text.get(2).copied();
        let mut octets = [0; 6];
        for (i, octet) in octets.iter_mut().enumerate() {
            let at = i * step;
            let joined = i == 0 || step == 2 || text.get(at - 1).copied() == separator;
            match (joined, hex_digit(text[at]), hex_digit(text[at + 1])) {
                (true, Some(high), Some(low)) => *octet = high << 4 | low,
                _ => return Mac::Text(text),
            }
        }
        Mac::Octets(form, octets)
    }

    /// The text, spelled into `buf` if stored as octets.
    pub(super) fn text<'b>(&self, buf: &'b mut [u8; MAC_TEXT_MAX]) -> &'b [u8]
    where
        'a: 'b,
    {
        let (form, octets) = match *self {
            Mac::Text(text) => return text,
            Mac::Octets(form, octets) => (form, octets),
        };
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut len = 0;
        for (i, octet) in octets.iter().enumerate() {
            if i > 0 && form != MAC_BARE {
                buf[len] = if form == MAC_COLONS { b':' } else { b'-' };
                len += 1;
            }
            buf[len] = HEX[usize::from(octet >> 4)];
            buf[len + 1] = HEX[usize::from(octet & 0xf)];
            len += 2;
        }
        &buf[..len]
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Writes a record up to its fields; the caller writes them (copied from an old record or with
/// [`write_fields`]) and then [`pad`]s.
pub(super) fn write_head(out: &mut Vec<u8>, head: &Head<'_>) {
    let mut flags = 0;
    if head.v4.is_some() {
        flags |= V4;
    }
    if head.v6.is_some() {
        flags |= V6;
    }
    if head.vendor.is_none() {
        flags |= IMPORT;
    }
    if let Mac::Octets(form, _) = head.mac {
        flags |= form;
    }
    out.push(flags);
    if let Some(v4) = head.v4 {
        out.extend_from_slice(&v4.octets());
    }
    if let Some(v6) = head.v6 {
        out.extend_from_slice(&v6.octets());
    }
    out.extend_from_slice(&head.created_ms.to_le_bytes());
    out.extend_from_slice(&head.updated_ms.to_le_bytes());
    if let Some(vendor) = head.vendor {
        put_var(out, vendor as usize);
        match head.mac {
            Mac::Text(text) => {
                put_var(out, text.len());
                out.extend_from_slice(text);
            }
            Mac::Octets(_, octets) => out.extend_from_slice(&octets),
        }
    }
    put_var(out, head.parent.map_or(0, |id| id as usize + 1));
    put_var(out, head.label.len());
    out.extend_from_slice(head.label.as_bytes());
    put_var(out, head.user_agent.map_or(0, |id| id as usize + 1));
}

/// Writes `fields`, interning their keys.
pub(super) fn write_fields(out: &mut Vec<u8>, fields: &Fields, strings: &mut Interner) {
    put_var(out, fields.len());
    for (key, value) in fields {
        put_var(out, strings.acquire(key) as usize);
        put_var(out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
}

/// Pads the record that ends `out` to a multiple of [`ALIGN`].
pub(super) fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(ALIGN), 0);
}

/// A record's fields, read in place.
#[derive(Clone)]
pub(super) struct FieldsIter<'a> {
    cursor: Cursor<'a>,
    left: usize,
    strings: &'a Interner,
}

impl<'a> FieldsIter<'a> {
    /// The fields whose count starts `bytes`.
    pub(super) fn new(bytes: &'a [u8], strings: &'a Interner) -> FieldsIter<'a> {
        let mut cursor = Cursor { bytes, at: 0 };
        let left = cursor.var();
        FieldsIter {
            cursor,
            left,
            strings,
        }
    }
}

impl<'a> Iterator for FieldsIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<(&'a str, &'a str)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let key = self.strings.get(self.cursor.id());
        let len = self.cursor.var();
        let value = std::str::from_utf8(self.cursor.take(len)).expect("a stored value is UTF-8");
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for FieldsIter<'_> {}

fn put_var(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn as_id(n: usize) -> u32 {
    u32::try_from(n).expect("a stored id fits in 32 bits")
}

/// Reads a record the state wrote: running off its end is a bug, and panics.
#[derive(Clone)]
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let taken = &self.bytes[self.at..self.at + n];
        self.at += n;
        taken
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        self.take(N).try_into().expect("took N bytes")
    }

    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    fn var(&mut self) -> usize {
        let mut n = 0;
        let mut shift = 0;
        loop {
            let byte = self.u8();
            n |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return n;
            }
            shift += 7;
        }
    }

    fn id(&mut self) -> u32 {
        as_id(self.var())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_in_their_usual_forms_are_kept_as_octets() {
        for text in [
            "00:11:22:33:44:5F",
            "00-11-22-33-44-5F",
            "0011223344AB",
            "E0:46:9A:B8:1B:FC",
        ] {
            let mac = Mac::of(text.as_bytes());
            assert!(matches!(mac, Mac::Octets(..)), "{text}");
            assert_eq!(mac.text(&mut [0; MAC_TEXT_MAX]), text.as_bytes());
        }
        for text in [
            "00:11:22:33:44:5f",
            "00:11-22:33:44:55",
            "00:11:22:33:44:5G",
            "0011.2233.4455",
            "001122334455X",
            "SERIAL-12345",
            "00:11:22:33:44:55:",
            "",
        ] {
            assert_eq!(
                Mac::of(text.as_bytes()),
                Mac::Text(text.as_bytes()),
                "{text}"
            );
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let mut strings = Interner::default();
        let vendor = strings.acquire("acme");
        let parent = strings.acquire("dyn.example");
        let user_agent = strings.acquire("Acme - Cam - 1.0");
        let mut out = vec![0xee; 4];
        let head = Head {
            v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
            v6: Some("2001:db8::1".parse().expect("valid")),
            created_ms: 1,
            updated_ms: u64::MAX,
            vendor: Some(vendor),
            mac: Mac::of(&[b'm'; 200]),
            parent: Some(parent),
            label: "cam",
            user_agent: Some(user_agent),
        };
        write_head(&mut out, &head);
        let fields = vec![("port".into(), "8080".into()), ("fw".into(), String::new())];
        write_fields(&mut out, &fields, &mut strings);
        let end = out.len();
        pad(&mut out);
        out.extend_from_slice(&[0xff; 8]);
        let r = Record::parse(&out[4..]);
        assert_eq!((r.v4, r.v6), (head.v4, head.v6));
        assert_eq!((r.created_ms, r.updated_ms), (1, u64::MAX));
        assert_eq!(
            (r.vendor, r.mac, r.parent),
            (Some(vendor), Mac::Text(&[b'm'; 200]), Some(parent))
        );
        assert_eq!(
            (r.label, r.user_agent(&strings)),
            ("cam", "Acme - Cam - 1.0")
        );
        assert!(r.fields_are(&fields, &strings));
        assert_eq!(r.padded_len(), (end - 4).next_multiple_of(ALIGN));
        assert_eq!(r.fields_bytes().len(), end - 4 - r.fields_at);
        let mut ids: Vec<_> = r.ids().collect();
        ids.sort();
        assert_eq!(ids.len(), 5);
        assert_eq!(&out[4 + r.updated_at()..][..8], &[0xff; 8]);
        assert_eq!(r.addr_at("2001:db8::2".parse().expect("valid")), Some(5));
    }

    #[test]
    fn an_import_record_has_no_owner_and_maybe_no_parent() {
        let mut out = Vec::new();
        write_head(
            &mut out,
            &Head {
                v4: None,
                v6: Some(Ipv6Addr::LOCALHOST),
                created_ms: 7,
                updated_ms: 7,
                vendor: None,
                mac: Mac::Text(b""),
                parent: None,
                label: "localhost",
                user_agent: None,
            },
        );
        write_fields(&mut out, &Vec::new(), &mut Interner::default());
        pad(&mut out);
        let r = Record::parse(&out);
        assert_eq!(r.flags, V6 | IMPORT);
        assert_eq!((r.vendor, r.parent, r.label), (None, None, "localhost"));
        assert_eq!(r.addr_at(IpAddr::V6(Ipv6Addr::LOCALHOST)), Some(1));
        assert_eq!(r.addr_at(IpAddr::V4(Ipv4Addr::LOCALHOST)), None);
        assert_eq!(r.padded_len(), out.len());
        assert_eq!(r.ids().count(), 0);
    }
}
