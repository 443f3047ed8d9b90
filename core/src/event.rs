//! Events: every change to ddnsd's state is one of these, appended to the log.
//!
//! An event carries everything the fold needs (the zone, the time ingest received it), so that
//! folding the same log always gives the same state. Its [`Event::key`] decides its log
//! partition. Everything that names a name is keyed by its zone, so a zone's whole history is in
//! one partition, in order, and every invariant about names (a name has one owner, a device has
//! one name, a group reserves its name for its account) is decided by one sequential fold.
//! Accounts span zones (a user ID and an e-mail are unique across the server), so their events
//! are keyed by [`ACCOUNTS_KEY`]: the account events' outcomes depend only on account events,
//! and the zone events' only on their zone's events (ARCHITECTURE.md, "Accounts").

use std::borrow::Cow;
use std::net::IpAddr;

use crate::names::{Fqdn, Label};

/// The log key of every account event (no zone name can be spelled like it).
pub const ACCOUNTS_KEY: &[u8] = b"@accounts";

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

/// Most ACME challenge values a host publishes at once (a name and its wildcard, for a few
/// orders in flight); a new one past this replaces the oldest.
pub const ACME_TXT_MAX: usize = 8;

/// The vendor of the owner of imported hosts (`ddnsd import`). Vendor names in the
/// configuration are letters, digits, `-` and `_`, so no device can ever have this vendor.
pub const IMPORT_VENDOR: &str = "@import";

/// An account: the id of the event that created it. A user ID freed by removal and taken again
/// is another account, so nothing of the old one (a session, a host racing the removal) can
/// touch the new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub u128);

/// A portal host's status on the host list (the seed's colours: STANDBY green, OK blue, ERROR red).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostStatus {
    /// Registered, never updated.
    Standby,
    /// Updated (and reachable, where probing is on).
    Ok,
    /// The last update was rejected, or the probe could not connect.
    Error,
}

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
    /// Sign-up: an account with a server-wide unique user ID and e-mail. Its id is the event's.
    AccountCreated {
        /// The user ID (5–20 letters or digits, as the portal checked it).
        user_id: String,
        /// The e-mail address, lowercase.
        email: String,
        /// The password's argon2id hash (PHC string); never the password.
        password_hash: String,
    },
    /// A new password for the account.
    AccountPasswordChanged {
        /// The account.
        account: AccountId,
        /// The new password's argon2id hash.
        password_hash: String,
    },
    /// The account is gone; its user ID and e-mail are free again. Its groups and hosts, which
    /// live in zones' partitions, are released by one [`EventBody::AccountReleased`] per zone.
    AccountRemoved {
        /// The account.
        account: AccountId,
    },
    /// The account's groups and hosts in `zone` are removed, and it can create none there again.
    AccountReleased {
        /// The zone.
        zone: Fqdn,
        /// The removed account.
        account: AccountId,
    },
    /// `GROUP.zone` is reserved for the account: its hosts may be `HOST.GROUP.zone`.
    GroupCreated {
        /// The zone.
        zone: Fqdn,
        /// The owner.
        account: AccountId,
        /// The group's label.
        group: Label,
    },
    /// An empty group is removed and its name freed.
    GroupRemoved {
        /// The zone.
        zone: Fqdn,
        /// The owner.
        account: AccountId,
        /// The group's label.
        group: Label,
    },
    /// A host of the account: `HOST.GROUP.zone` ("group use" on) or `HOST.zone` (off).
    HostCreated {
        /// The zone.
        zone: Fqdn,
        /// The owner.
        account: AccountId,
        /// The owner's group the host is under, if any.
        group: Option<Label>,
        /// The host's label.
        host: Label,
        /// The host password's argon2id hash.
        password_hash: String,
        /// The device's TCP port, for the Live link and the probe.
        port: Option<u16>,
    },
    /// The owner changed the host's password or port.
    HostEdited {
        /// The zone.
        zone: Fqdn,
        /// The owner.
        account: AccountId,
        /// The host.
        fqdn: Fqdn,
        /// A new host password's hash (absent: unchanged).
        password_hash: Option<String>,
        /// The port from now on (absent: none).
        port: Option<u16>,
    },
    /// The owner removed the host.
    HostRemoved {
        /// The zone.
        zone: Fqdn,
        /// The owner.
        account: AccountId,
        /// The host.
        fqdn: Fqdn,
    },
    /// One address of the host (IPv4 sets A, IPv6 AAAA): from its DVR, which proved the host
    /// password (no account; the host's status becomes OK and its update time moves), or from
    /// its owner on the portal (the account, checked by the fold; the status stays).
    HostAddressSet {
        /// The zone.
        zone: Fqdn,
        /// The host.
        fqdn: Fqdn,
        /// The address.
        addr: IpAddr,
        /// The owner when set on the portal; absent when the host's device set it.
        account: Option<AccountId>,
    },
    /// The host's status changed (appended only on a change, so rejected updates cannot grow
    /// the log).
    HostStatusChanged {
        /// The zone.
        zone: Fqdn,
        /// The host.
        fqdn: Fqdn,
        /// The new status.
        status: HostStatus,
    },
    /// A new update token for the host (a random secret its clients may use instead of the
    /// host password, stored as a keyed hash).
    HostTokenAdded {
        /// The zone.
        zone: Fqdn,
        /// The owner.
        account: AccountId,
        /// The host.
        fqdn: Fqdn,
        /// The token's public id (shown on the portal, used to revoke it).
        token_id: String,
        /// The token's keyed hash (`ddns_ingest::hash_token`'s form).
        hash: String,
    },
    /// The owner revoked one of the host's update tokens.
    HostTokenRevoked {
        /// The zone.
        zone: Fqdn,
        /// The owner.
        account: AccountId,
        /// The host.
        fqdn: Fqdn,
        /// The token's public id.
        token_id: String,
    },
    /// An ACME DNS-01 challenge value is published as a TXT record of `_acme-challenge.FQDN`
    /// (several at once: a name and its wildcard validate two; the oldest goes past
    /// [`ACME_TXT_MAX`]).
    HostTxtSet {
        /// The zone.
        zone: Fqdn,
        /// The host.
        fqdn: Fqdn,
        /// The value (1–255 visible ASCII characters, as ingest checked it).
        value: String,
        /// The owner when an account's credentials asked (checked by the fold); absent when the
        /// host's own did.
        account: Option<AccountId>,
    },
    /// One challenge value of the host, or all of them, is withdrawn.
    HostTxtCleared {
        /// The zone.
        zone: Fqdn,
        /// The host.
        fqdn: Fqdn,
        /// The value to withdraw; absent: every value.
        value: Option<String>,
        /// As in [`EventBody::HostTxtSet`].
        account: Option<AccountId>,
    },
    /// The host is marked abusive (its client kept sending updates that changed nothing: it
    /// is answered `abuse` from then on), or its owner cleared the mark.
    HostAbuseChanged {
        /// The zone.
        zone: Fqdn,
        /// The host.
        fqdn: Fqdn,
        /// Marked (by the server) or cleared (by the owner).
        abusive: bool,
        /// The owner when cleared on the portal (checked by the fold); absent when the server
        /// marks it.
        account: Option<AccountId>,
    },
}

impl Event {
    /// The log key: the zone's name, or [`ACCOUNTS_KEY`] (see the module docs for why).
    pub fn key(&self) -> &[u8] {
        match self.zone() {
            Some(zone) => zone.as_str().as_bytes(),
            None => ACCOUNTS_KEY,
        }
    }

    /// The zone the event changes; none for an account event.
    pub fn zone(&self) -> Option<&Fqdn> {
        match &self.body {
            EventBody::DeviceAdd { zone, .. }
            | EventBody::DeviceUpdate { zone, .. }
            | EventBody::DeviceRemove { zone, .. }
            | EventBody::HostImport { zone, .. }
            | EventBody::AccountReleased { zone, .. }
            | EventBody::GroupCreated { zone, .. }
            | EventBody::GroupRemoved { zone, .. }
            | EventBody::HostCreated { zone, .. }
            | EventBody::HostEdited { zone, .. }
            | EventBody::HostRemoved { zone, .. }
            | EventBody::HostAddressSet { zone, .. }
            | EventBody::HostStatusChanged { zone, .. }
            | EventBody::HostAbuseChanged { zone, .. }
            | EventBody::HostTokenAdded { zone, .. }
            | EventBody::HostTokenRevoked { zone, .. }
            | EventBody::HostTxtSet { zone, .. }
            | EventBody::HostTxtCleared { zone, .. } => Some(zone),
            EventBody::AccountCreated { .. }
            | EventBody::AccountPasswordChanged { .. }
            | EventBody::AccountRemoved { .. } => None,
        }
    }

    /// The device the event is about (for an import, the imported host's owner); none for the
    /// events of accounts, groups and hosts.
    pub fn device(&self) -> Option<Cow<'_, DeviceId>> {
        match &self.body {
            EventBody::DeviceAdd { device, .. }
            | EventBody::DeviceUpdate { device, .. }
            | EventBody::DeviceRemove { device, .. } => Some(Cow::Borrowed(device)),
            EventBody::HostImport { name, .. } => Some(Cow::Owned(import_owner(name))),
            _ => None,
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
