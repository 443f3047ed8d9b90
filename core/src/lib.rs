//! ddns-core: ddnsd's pure logic, with no I/O, no clock and no randomness.
//!
//! - [`names`]: host labels and domain names, validated and canonical.
//! - [`event`] and [`codec`]: every change as a versioned event, and its binary form in the log.
//! - [`fold`]: [`State::apply`], the deterministic fold of events into devices, names, and
//!   people's accounts, groups and hosts.
//! - [`zone`]: the live zone the DNS server reads, written by the projector one host at a time.
//! - [`reply`]: the device API's reply codes.
//! - [`zonefile`]: a streaming reader of zone files' address records, for `ddnsd import`.

mod codec;
mod event;
mod fold;
mod names;
mod reply;
mod zone;
mod zonefile;

pub use codec::{
    DecodeError, EncodeError, decode_device, decode_event, decode_people_entry, decode_people_key,
    encode_device, encode_event, encode_people_entry, encode_people_key,
};
pub use event::{
    ACCOUNTS_KEY, ACME_TXT_MAX, AccountId, DeviceId, Event, EventBody, EventId, Fields, HostStatus,
    IMPORT_VENDOR, import_owner,
};
pub use fold::{
    Account, Applied, Device, DeviceRef, FieldsRef, Footprint, Group, Host, HostToken, NameRef,
    Outcome, PeopleEntry, PeopleKey, State,
};
pub use names::{Fqdn, Label, NameError};
pub use reply::Reply;
pub use zone::{HostAddrs, LiveZone, Lookup, TxtValues, ZoneApex, normalize};
pub use zonefile::{AddressRecord, ZoneFileError, ZoneFileReader};
