//! Events: every change to ddnsd's state is one of these, appended to the log.
//!
//! An event carries everything the fold needs (the zone, the time ingest received it), so that
//! folding the same log always gives the same state. Its [`Event::key`] decides its log
//! partition: events are keyed by zone, so a zone's whole history is in one partition, in order,
//! and both cross-key invariants (a name has one owner, a device has one name) are decided by
//! one sequential fold.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::names::{Fqdn, Label};

/// Unique id of an event, chosen by the node that appends it; ingest recognises its own event
/// by this id when the fold reaches it (an offset from the log's acknowledgement may be wrong).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u128);

/// A device: its vendor's name and its MAC (or serial), as the decrypted credential gives them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId {
    /// The vendor whose key encrypted the credential.
    pub vendor: String,
    /// The device's MAC address or serial, normalised by ingest.
    pub mac: String,
}

/// The vendor of the owner of imported hosts (`ddnsd import`). Vendor names in the
/// configuration are letters, digits, `-` and `_`, so no device can ever have this vendor.
pub const IMPORT_VENDOR: &str = "@import";

/// Extra fields a vendor configures (TCP port, firmware version, …), stored with the device.
pub type Fields = Vec<(String, String)>;

/// One change, with its id and the time ingest received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unique id (see [`EventId`]).
    pub id: EventId,
    /// Milliseconds since the Unix epoch when ingest received the request.
    pub at_ms: u64,
    /// What changed.
    pub body: EventBody,
}

/// The kinds of change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBody {
    /// `add.aspx`: claim `label.zone` for the device and set one address.
    DeviceAdd {
        /// The device.
        device: DeviceId,
        /// The vendor's zone.
        zone: Fqdn,
        /// The requested host label.
        label: Label,
        /// The address to set (IPv4 sets A, IPv6 sets AAAA).
        addr: IpAddr,
        /// The request's User-Agent.
        user_agent: String,
        /// Vendor-configured extra fields from the request.
        fields: Fields,
    },
    /// `update.aspx`: set one address of the device's host.
    DeviceUpdate {
        /// The device.
        device: DeviceId,
        /// The vendor's zone.
        zone: Fqdn,
        /// The address to set.
        addr: IpAddr,
        /// The request's User-Agent.
        user_agent: String,
        /// Vendor-configured extra fields from the request.
        fields: Fields,
    },
    /// `remove.aspx`: delete the device and release its name.
    DeviceRemove {
        /// The device.
        device: DeviceId,
        /// The vendor's zone.
        zone: Fqdn,
    },
    /// `ddnsd import`: one address record of a host from a zone file. The host is owned by
    /// `(IMPORT_VENDOR, name)`, so no device can claim its name.
    HostImport {
        /// The zone the host is in.
        zone: Fqdn,
        /// The host's name (any depth below the zone).
        name: Fqdn,
        /// The address to set.
        addr: IpAddr,
    },
}

impl Event {
    /// The log key: the zone's name (see the module docs for why).
    pub fn key(&self) -> &[u8] {
        self.zone().as_str().as_bytes()
    }

    /// The zone the event changes.
    pub fn zone(&self) -> &Fqdn {
        match &self.body {
            EventBody::DeviceAdd { zone, .. }
            | EventBody::DeviceUpdate { zone, .. }
            | EventBody::DeviceRemove { zone, .. }
            | EventBody::HostImport { zone, .. } => zone,
        }
    }

    /// The device the event is about (for an import, the imported host's owner).
    pub fn device(&self) -> Cow<'_, DeviceId> {
        match &self.body {
            EventBody::DeviceAdd { device, .. }
            | EventBody::DeviceUpdate { device, .. }
            | EventBody::DeviceRemove { device, .. } => Cow::Borrowed(device),
            EventBody::HostImport { name, .. } => Cow::Owned(import_owner(name)),
        }
    }
}

/// The owner of an imported host.
pub fn import_owner(name: &Fqdn) -> DeviceId {
    DeviceId {
        vendor: IMPORT_VENDOR.into(),
        mac: name.as_str().into(),
    }
}
