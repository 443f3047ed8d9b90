//! Views of a device's record read in place, without copying: what [`State`](super::State)'s
//! lookups return. [`DeviceRef::to_device`] makes the owned [`Device`] (the snapshot's record).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Device;
use super::interner::Interner;
use super::record::FieldsIter;
use crate::event::Fields;
use crate::names::Fqdn;
use crate::zone::HostAddrs;

/// A registered device, as the state holds it (see [`Device`] for the owned record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRef<'a> {
    /// Its host name.
    pub fqdn: NameRef<'a>,
    /// Its A record.
    pub v4: Option<Ipv4Addr>,
    /// Its AAAA record.
    pub v6: Option<Ipv6Addr>,
    /// The User-Agent of its last add or update.
    pub user_agent: &'a str,
    /// Vendor-configured fields from its last add or update.
    pub fields: FieldsRef<'a>,
    /// When it was added (ms since the Unix epoch, from the event).
    pub created_ms: u64,
    /// When an address last changed (ms since the Unix epoch, from the event).
    pub updated_ms: u64,
}

impl DeviceRef<'_> {
    /// Its DNS records.
    pub fn addrs(&self) -> HostAddrs {
        HostAddrs {
            v4: self.v4,
            v6: self.v6,
        }
    }

    /// The address of `addr`'s family, if the device has one.
    pub fn addr_of_family(&self, addr: IpAddr) -> Option<IpAddr> {
        self.addrs().of_family(addr)
    }

    /// The owned record (for the snapshot).
    pub fn to_device(&self) -> Device {
        Device {
            fqdn: self.fqdn.to_fqdn(),
            v4: self.v4,
            v6: self.v6,
            user_agent: self.user_agent.into(),
            fields: self.fields.to_fields(),
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
        }
    }
}

impl From<DeviceRef<'_>> for Device {
    fn from(device: DeviceRef<'_>) -> Device {
        device.to_device()
    }
}

/// A host name as the state stores it: its first label, and the name it sits under (stored once
/// for all the hosts under it). Compares equal to the [`Fqdn`] it spells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NameRef<'a> {
    label: &'a str,
    parent: Option<&'a str>,
}

impl<'a> NameRef<'a> {
    /// `name` split at its first dot.
    pub fn of(name: &'a Fqdn) -> NameRef<'a> {
        NameRef::split(name.as_str())
    }

    pub(super) fn split(name: &'a str) -> NameRef<'a> {
        match name.split_once('.') {
            Some((label, parent)) => NameRef {
                label,
                parent: Some(parent),
            },
            None => NameRef {
                label: name,
                parent: None,
            },
        }
    }

    pub(super) fn new(label: &'a str, parent: Option<&'a str>) -> NameRef<'a> {
        NameRef { label, parent }
    }

    /// The first label.
    pub fn label(&self) -> &'a str {
        self.label
    }

    /// The name after the first label, if there is one.
    pub fn parent(&self) -> Option<&'a str> {
        self.parent
    }

    /// The name as an [`Fqdn`] (allocates).
    pub fn to_fqdn(&self) -> Fqdn {
        let parent_len = self.parent.map_or(0, |parent| parent.len() + 1);
        let mut name = String::with_capacity(self.label.len() + parent_len);
        name.push_str(self.label);
        if let Some(parent) = self.parent {
            name.push('.');
            name.push_str(parent);
        }
        Fqdn::parse(&name).expect("a stored name is canonical")
    }

    /// True if the name is `zone` or lies below it.
    pub fn is_within(&self, zone: &Fqdn) -> bool {
        *self == *zone
            || self
                .parent
                .is_some_and(|parent| crate::names::is_within(parent, zone.as_str()))
    }
}

impl PartialEq<str> for NameRef<'_> {
    fn eq(&self, name: &str) -> bool {
        match self.parent {
            None => self.label == name,
            Some(parent) => {
                name.len() == self.label.len() + 1 + parent.len()
                    && name.starts_with(self.label)
                    && name.as_bytes()[self.label.len()] == b'.'
                    && name.ends_with(parent)
            }
        }
    }
}

impl PartialEq<Fqdn> for NameRef<'_> {
    fn eq(&self, name: &Fqdn) -> bool {
        *self == *name.as_str()
    }
}

impl PartialEq<NameRef<'_>> for Fqdn {
    fn eq(&self, name: &NameRef<'_>) -> bool {
        *name == *self.as_str()
    }
}

impl fmt::Display for NameRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label)?;
        match self.parent {
            Some(parent) => write!(f, ".{parent}"),
            None => Ok(()),
        }
    }
}

/// A device's fields, read in place: iterate for `(key, value)` pairs.
#[derive(Clone, Copy)]
pub struct FieldsRef<'a> {
    bytes: &'a [u8],
    strings: &'a Interner,
}

impl<'a> FieldsRef<'a> {
    pub(super) fn new(bytes: &'a [u8], strings: &'a Interner) -> FieldsRef<'a> {
        FieldsRef { bytes, strings }
    }

    /// The `(key, value)` pairs, in the order the request gave them.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + use<'a> {
        FieldsIter::new(self.bytes, self.strings)
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.iter().len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fields, owned.
    pub fn to_fields(&self) -> Fields {
        self.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }
}

impl PartialEq for FieldsRef<'_> {
    fn eq(&self, other: &FieldsRef<'_>) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for FieldsRef<'_> {}

impl PartialEq<Fields> for FieldsRef<'_> {
    fn eq(&self, other: &Fields) -> bool {
        self.iter()
            .eq(other.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl fmt::Debug for FieldsRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}
