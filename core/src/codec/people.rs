//! The binary form of people's events (event version 2) and snapshot entries.
//!
//! Integers big-endian; `str`, `ip` as in the parent module; `id` is a u128 account id; `opt X`
//! is a byte 0 (absent) or 1 followed by X; `status` a byte: 0 STANDBY, 1 OK, 2 ERROR.
//!
//! ```text
//! kind  5 AccountCreated:         str user_id, str email, str password_hash
//! kind  6 AccountPasswordChanged: id account, str password_hash
//! kind  7 AccountRemoved:         id account
//! kind  8 AccountReleased:        str zone, id account
//! kind  9 GroupCreated:           str zone, id account, str group
//! kind 10 GroupRemoved:           str zone, id account, str group
//! kind 11 HostCreated:            str zone, id account, opt str group, str host, str password_hash, opt u16 port
//! kind 12 HostEdited:             str zone, id account, str fqdn, opt str password_hash, opt u16 port
//! kind 13 HostRemoved:            str zone, id account, str fqdn
//! kind 14 HostAddressSet:         str zone, str fqdn, ip addr, opt id account
//! kind 15 HostStatusChanged:      str zone, str fqdn, status
//! kind 16 HostAbuseChanged:       str zone, str fqdn, u8 abusive (0 or 1), opt id account
//! kind 17 HostTokenAdded:         str zone, id account, str fqdn, str token_id, str hash
//! kind 18 HostTokenRevoked:       str zone, id account, str fqdn, str token_id
//! kind 19 HostTxtSet:             str zone, str fqdn, str value, opt id account
//! kind 20 HostTxtCleared:         str zone, str fqdn, opt str value, opt id account
//! ```
//!
//! A snapshot entry's key is a kind byte and its identity; its value is a version byte (2), and
//! for an account `id, str user_id, str email, str password_hash, u64 created_ms`; for a group
//! `str zone, id account, u64 created_ms`; for a host `str zone, id account, opt str group,
//! str password_hash, opt u16 port, opt v4, opt v6, status, u8 abusive, u64 created_ms,
//! opt u64 updated_ms, u16 token count, (str id, str hash, u64 created_ms) per token,
//! u8 txt count, str per ACME TXT value` (version 1 ends before the TXT values: none);
//! for a removal or a release, nothing more.
//!
//! ```text
//! key kind 1 Account:  user_id bytes        kind 3 Group: name bytes    kind 5 Released: id, zone bytes
//! key kind 2 Removed:  id                   kind 4 Host:  name bytes
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{DecodeError, EncodeError, Reader, put_ip, put_str};
use crate::event::{AccountId, EventBody, HostStatus};
use crate::fold::{Account, Group, Host, HostToken, PeopleEntry, PeopleKey};
use crate::names::{Fqdn, Label};

const KIND_ACCOUNT_CREATED: u8 = 5;
const KIND_ACCOUNT_PASSWORD_CHANGED: u8 = 6;
const KIND_ACCOUNT_REMOVED: u8 = 7;
const KIND_ACCOUNT_RELEASED: u8 = 8;
const KIND_GROUP_CREATED: u8 = 9;
const KIND_GROUP_REMOVED: u8 = 10;
const KIND_HOST_CREATED: u8 = 11;
const KIND_HOST_EDITED: u8 = 12;
const KIND_HOST_REMOVED: u8 = 13;
const KIND_HOST_ADDRESS_SET: u8 = 14;
const KIND_HOST_STATUS_CHANGED: u8 = 15;
const KIND_HOST_ABUSE_CHANGED: u8 = 16;
const KIND_HOST_TOKEN_ADDED: u8 = 17;
const KIND_HOST_TOKEN_REVOKED: u8 = 18;
const KIND_HOST_TXT_SET: u8 = 19;
const KIND_HOST_TXT_CLEARED: u8 = 20;

const ENTRY_VERSION: u8 = 2;
/// Entries before hosts had ACME TXT values; still read.
const ENTRY_VERSION_1: u8 = 1;
const KEY_ACCOUNT: u8 = 1;
const KEY_REMOVED: u8 = 2;
const KEY_GROUP: u8 = 3;
const KEY_HOST: u8 = 4;
const KEY_RELEASED: u8 = 5;

pub(super) fn is_kind(kind: u8) -> bool {
    (KIND_ACCOUNT_CREATED..=KIND_HOST_TXT_CLEARED).contains(&kind)
}

pub(super) fn kind_of(body: &EventBody) -> u8 {
    match body {
        EventBody::AccountCreated { .. } => KIND_ACCOUNT_CREATED,
        EventBody::AccountPasswordChanged { .. } => KIND_ACCOUNT_PASSWORD_CHANGED,
        EventBody::AccountRemoved { .. } => KIND_ACCOUNT_REMOVED,
        EventBody::AccountReleased { .. } => KIND_ACCOUNT_RELEASED,
        EventBody::GroupCreated { .. } => KIND_GROUP_CREATED,
        EventBody::GroupRemoved { .. } => KIND_GROUP_REMOVED,
        EventBody::HostCreated { .. } => KIND_HOST_CREATED,
        EventBody::HostEdited { .. } => KIND_HOST_EDITED,
        EventBody::HostRemoved { .. } => KIND_HOST_REMOVED,
        EventBody::HostAddressSet { .. } => KIND_HOST_ADDRESS_SET,
        EventBody::HostStatusChanged { .. } => KIND_HOST_STATUS_CHANGED,
        EventBody::HostAbuseChanged { .. } => KIND_HOST_ABUSE_CHANGED,
        EventBody::HostTokenAdded { .. } => KIND_HOST_TOKEN_ADDED,
        EventBody::HostTokenRevoked { .. } => KIND_HOST_TOKEN_REVOKED,
        EventBody::HostTxtSet { .. } => KIND_HOST_TXT_SET,
        EventBody::HostTxtCleared { .. } => KIND_HOST_TXT_CLEARED,
        EventBody::DeviceAdd { .. }
        | EventBody::DeviceUpdate { .. }
        | EventBody::DeviceRemove { .. }
        | EventBody::HostImport { .. } => unreachable!("a device event is not people's"),
    }
}

pub(super) fn put_body(out: &mut Vec<u8>, body: &EventBody) -> Result<(), EncodeError> {
    match body {
        EventBody::AccountCreated {
            user_id,
            email,
            password_hash,
        } => {
            put_str(out, user_id, "user id")?;
            put_str(out, email, "email")?;
            put_str(out, password_hash, "password hash")?;
        }
        EventBody::AccountPasswordChanged {
            account,
            password_hash,
        } => {
            put_id(out, *account);
            put_str(out, password_hash, "password hash")?;
        }
        EventBody::AccountRemoved { account } => put_id(out, *account),
        EventBody::AccountReleased { zone, account } => {
            put_str(out, zone.as_str(), "zone")?;
            put_id(out, *account);
        }
        EventBody::GroupCreated {
            zone,
            account,
            group,
        }
        | EventBody::GroupRemoved {
            zone,
            account,
            group,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_id(out, *account);
            put_str(out, group.as_str(), "group")?;
        }
        EventBody::HostCreated {
            zone,
            account,
            group,
            host,
            password_hash,
            port,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_id(out, *account);
            put_opt_str(out, group.as_ref().map(Label::as_str), "group")?;
            put_str(out, host.as_str(), "host")?;
            put_str(out, password_hash, "password hash")?;
            put_opt_port(out, *port);
        }
        EventBody::HostEdited {
            zone,
            account,
            fqdn,
            password_hash,
            port,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_id(out, *account);
            put_str(out, fqdn.as_str(), "fqdn")?;
            put_opt_str(out, password_hash.as_deref(), "password hash")?;
            put_opt_port(out, *port);
        }
        EventBody::HostRemoved {
            zone,
            account,
            fqdn,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_id(out, *account);
            put_str(out, fqdn.as_str(), "fqdn")?;
        }
        EventBody::HostAddressSet {
            zone,
            fqdn,
            addr,
            account,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_str(out, fqdn.as_str(), "fqdn")?;
            put_ip(out, *addr);
            put_opt_id(out, *account);
        }
        EventBody::HostStatusChanged { zone, fqdn, status } => {
            put_str(out, zone.as_str(), "zone")?;
            put_str(out, fqdn.as_str(), "fqdn")?;
            out.push(status_byte(*status));
        }
        EventBody::HostAbuseChanged {
            zone,
            fqdn,
            abusive,
            account,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_str(out, fqdn.as_str(), "fqdn")?;
            out.push(u8::from(*abusive));
            put_opt_id(out, *account);
        }
        EventBody::HostTokenAdded {
            zone,
            account,
            fqdn,
            token_id,
            hash,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_id(out, *account);
            put_str(out, fqdn.as_str(), "fqdn")?;
            put_str(out, token_id, "token id")?;
            put_str(out, hash, "token hash")?;
        }
        EventBody::HostTokenRevoked {
            zone,
            account,
            fqdn,
            token_id,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_id(out, *account);
            put_str(out, fqdn.as_str(), "fqdn")?;
            put_str(out, token_id, "token id")?;
        }
        EventBody::HostTxtSet {
            zone,
            fqdn,
            value,
            account,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_str(out, fqdn.as_str(), "fqdn")?;
            put_str(out, value, "txt value")?;
            put_opt_id(out, *account);
        }
        EventBody::HostTxtCleared {
            zone,
            fqdn,
            value,
            account,
        } => {
            put_str(out, zone.as_str(), "zone")?;
            put_str(out, fqdn.as_str(), "fqdn")?;
            put_opt_str(out, value.as_deref(), "txt value")?;
            put_opt_id(out, *account);
        }
        EventBody::DeviceAdd { .. }
        | EventBody::DeviceUpdate { .. }
        | EventBody::DeviceRemove { .. }
        | EventBody::HostImport { .. } => unreachable!("a device event is not people's"),
    }
    Ok(())
}

pub(super) fn body(kind: u8, r: &mut Reader<'_>) -> Result<EventBody, DecodeError> {
    Ok(match kind {
        KIND_ACCOUNT_CREATED => EventBody::AccountCreated {
            user_id: r.str()?.into(),
            email: r.str()?.into(),
            password_hash: r.str()?.into(),
        },
        KIND_ACCOUNT_PASSWORD_CHANGED => EventBody::AccountPasswordChanged {
            account: r.id()?,
            password_hash: r.str()?.into(),
        },
        KIND_ACCOUNT_REMOVED => EventBody::AccountRemoved { account: r.id()? },
        KIND_ACCOUNT_RELEASED => EventBody::AccountReleased {
            zone: r.fqdn()?,
            account: r.id()?,
        },
        KIND_GROUP_CREATED => EventBody::GroupCreated {
            zone: r.fqdn()?,
            account: r.id()?,
            group: r.label()?,
        },
        KIND_GROUP_REMOVED => EventBody::GroupRemoved {
            zone: r.fqdn()?,
            account: r.id()?,
            group: r.label()?,
        },
        KIND_HOST_CREATED => EventBody::HostCreated {
            zone: r.fqdn()?,
            account: r.id()?,
            group: r.opt(Reader::label)?,
            host: r.label()?,
            password_hash: r.str()?.into(),
            port: r.opt(Reader::port)?,
        },
        KIND_HOST_EDITED => EventBody::HostEdited {
            zone: r.fqdn()?,
            account: r.id()?,
            fqdn: r.fqdn()?,
            password_hash: r.opt(|r| Ok(r.str()?.into()))?,
            port: r.opt(Reader::port)?,
        },
        KIND_HOST_REMOVED => EventBody::HostRemoved {
            zone: r.fqdn()?,
            account: r.id()?,
            fqdn: r.fqdn()?,
        },
        KIND_HOST_ADDRESS_SET => EventBody::HostAddressSet {
            zone: r.fqdn()?,
            fqdn: r.fqdn()?,
            addr: r.ip()?,
            account: r.opt(Reader::id)?,
        },
        KIND_HOST_STATUS_CHANGED => EventBody::HostStatusChanged {
            zone: r.fqdn()?,
            fqdn: r.fqdn()?,
            status: r.status()?,
        },
        KIND_HOST_ABUSE_CHANGED => EventBody::HostAbuseChanged {
            zone: r.fqdn()?,
            fqdn: r.fqdn()?,
            abusive: r.flag()?,
            account: r.opt(Reader::id)?,
        },
        KIND_HOST_TOKEN_ADDED => EventBody::HostTokenAdded {
            zone: r.fqdn()?,
            account: r.id()?,
            fqdn: r.fqdn()?,
            token_id: r.str()?.into(),
            hash: r.str()?.into(),
        },
        KIND_HOST_TOKEN_REVOKED => EventBody::HostTokenRevoked {
            zone: r.fqdn()?,
            account: r.id()?,
            fqdn: r.fqdn()?,
            token_id: r.str()?.into(),
        },
        KIND_HOST_TXT_SET => EventBody::HostTxtSet {
            zone: r.fqdn()?,
            fqdn: r.fqdn()?,
            value: r.str()?.into(),
            account: r.opt(Reader::id)?,
        },
        KIND_HOST_TXT_CLEARED => EventBody::HostTxtCleared {
            zone: r.fqdn()?,
            fqdn: r.fqdn()?,
            value: r.opt(|r| Ok(r.str()?.to_owned()))?,
            account: r.opt(Reader::id)?,
        },
        other => return Err(DecodeError::UnknownKind(other)),
    })
}

/// Encodes a snapshot entry's key.
pub fn encode_people_key(key: &PeopleKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    match key {
        PeopleKey::Account(user_id) => {
            out.push(KEY_ACCOUNT);
            out.extend_from_slice(user_id.as_bytes());
        }
        PeopleKey::Removed(id) => {
            out.push(KEY_REMOVED);
            put_id(&mut out, *id);
        }
        PeopleKey::Group(name) => {
            out.push(KEY_GROUP);
            out.extend_from_slice(name.as_str().as_bytes());
        }
        PeopleKey::Host(name) => {
            out.push(KEY_HOST);
            out.extend_from_slice(name.as_str().as_bytes());
        }
        PeopleKey::Released(zone, id) => {
            out.push(KEY_RELEASED);
            put_id(&mut out, *id);
            out.extend_from_slice(zone.as_str().as_bytes());
        }
    }
    out
}

/// Decodes a snapshot entry's key.
pub fn decode_people_key(bytes: &[u8]) -> Result<PeopleKey, DecodeError> {
    let (&kind, rest) = bytes.split_first().ok_or(DecodeError::Truncated)?;
    let text = || std::str::from_utf8(rest).map_err(|_| DecodeError::NotUtf8);
    let name = |s: &str| match Fqdn::parse(s) {
        Ok(fqdn) if fqdn.as_str() == s => Ok(fqdn),
        _ => Err(DecodeError::BadName(s.into())),
    };
    Ok(match kind {
        KEY_ACCOUNT => PeopleKey::Account(text()?.into()),
        KEY_REMOVED => {
            let mut r = Reader(rest);
            let id = r.id()?;
            r.finish()?;
            PeopleKey::Removed(id)
        }
        KEY_GROUP => PeopleKey::Group(name(text()?)?),
        KEY_HOST => PeopleKey::Host(name(text()?)?),
        KEY_RELEASED => {
            let mut r = Reader(rest);
            let id = r.id()?;
            let zone = std::str::from_utf8(r.0).map_err(|_| DecodeError::NotUtf8)?;
            PeopleKey::Released(name(zone)?, id)
        }
        other => return Err(DecodeError::BadTag(other)),
    })
}

/// Encodes a snapshot entry's value.
pub fn encode_people_entry(entry: &PeopleEntry) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![ENTRY_VERSION];
    match entry {
        PeopleEntry::Account(account) => {
            put_id(&mut out, account.id);
            put_str(&mut out, &account.user_id, "user id")?;
            put_str(&mut out, &account.email, "email")?;
            put_str(&mut out, &account.password_hash, "password hash")?;
            out.extend_from_slice(&account.created_ms.to_be_bytes());
        }
        PeopleEntry::Group(group) => {
            put_str(&mut out, group.zone.as_str(), "zone")?;
            put_id(&mut out, group.account);
            out.extend_from_slice(&group.created_ms.to_be_bytes());
        }
        PeopleEntry::Host(host) => {
            put_str(&mut out, host.zone.as_str(), "zone")?;
            put_id(&mut out, host.account);
            put_opt_str(&mut out, host.group.as_ref().map(Label::as_str), "group")?;
            put_str(&mut out, &host.password_hash, "password hash")?;
            put_opt_port(&mut out, host.port);
            match host.v4 {
                Some(v4) => {
                    out.push(1);
                    out.extend_from_slice(&v4.octets());
                }
                None => out.push(0),
            }
            match host.v6 {
                Some(v6) => {
                    out.push(1);
                    out.extend_from_slice(&v6.octets());
                }
                None => out.push(0),
            }
            out.push(status_byte(host.status));
            out.push(u8::from(host.abusive));
            out.extend_from_slice(&host.created_ms.to_be_bytes());
            match host.updated_ms {
                Some(at) => {
                    out.push(1);
                    out.extend_from_slice(&at.to_be_bytes());
                }
                None => out.push(0),
            }
            let count =
                u16::try_from(host.tokens.len()).map_err(|_| EncodeError::TooLong("tokens"))?;
            out.extend_from_slice(&count.to_be_bytes());
            for token in &host.tokens {
                put_str(&mut out, &token.id, "token id")?;
                put_str(&mut out, &token.hash, "token hash")?;
                out.extend_from_slice(&token.created_ms.to_be_bytes());
            }
            let count = u8::try_from(host.acme_txt.len())
                .map_err(|_| EncodeError::TooLong("txt values"))?;
            out.push(count);
            for value in &host.acme_txt {
                put_str(&mut out, value, "txt value")?;
            }
        }
        PeopleEntry::Removed | PeopleEntry::Released => {}
    }
    Ok(out)
}

/// Decodes a snapshot entry's value, of the kind its key says.
pub fn decode_people_entry(key: &PeopleKey, bytes: &[u8]) -> Result<PeopleEntry, DecodeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != ENTRY_VERSION && version != ENTRY_VERSION_1 {
        return Err(DecodeError::UnknownVersion(version));
    }
    let entry = match key {
        PeopleKey::Account(_) => PeopleEntry::Account(Account {
            id: r.id()?,
            user_id: r.str()?.into(),
            email: r.str()?.into(),
            password_hash: r.str()?.into(),
            created_ms: u64::from_be_bytes(r.array()?),
        }),
        PeopleKey::Group(_) => PeopleEntry::Group(Group {
            zone: r.fqdn()?,
            account: r.id()?,
            created_ms: u64::from_be_bytes(r.array()?),
        }),
        PeopleKey::Host(_) => PeopleEntry::Host(Host {
            zone: r.fqdn()?,
            account: r.id()?,
            group: r.opt(Reader::label)?,
            password_hash: r.str()?.into(),
            port: r.opt(Reader::port)?,
            v4: r.opt(|r| Ok(Ipv4Addr::from(r.array::<4>()?)))?,
            v6: r.opt(|r| Ok(Ipv6Addr::from(r.array::<16>()?)))?,
            status: r.status()?,
            abusive: r.flag()?,
            created_ms: u64::from_be_bytes(r.array()?),
            updated_ms: r.opt(|r| Ok(u64::from_be_bytes(r.array()?)))?,
            tokens: {
                let count = u16::from_be_bytes(r.array()?);
                (0..count)
                    .map(|_| {
                        Ok(HostToken {
                            id: r.str()?.into(),
                            hash: r.str()?.into(),
                            created_ms: u64::from_be_bytes(r.array()?),
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?
            },
            acme_txt: if version == ENTRY_VERSION_1 {
                Vec::new()
            } else {
                let count = r.u8()?;
                (0..count)
                    .map(|_| Ok(r.str()?.to_owned()))
                    .collect::<Result<_, DecodeError>>()?
            },
        }),
        PeopleKey::Removed(_) => PeopleEntry::Removed,
        PeopleKey::Released(..) => PeopleEntry::Released,
    };
    r.finish()?;
    Ok(entry)
}

fn put_id(out: &mut Vec<u8>, id: AccountId) {
    out.extend_from_slice(&id.0.to_be_bytes());
}

fn put_opt_id(out: &mut Vec<u8>, id: Option<AccountId>) {
    match id {
        Some(id) => {
            out.push(1);
            put_id(out, id);
        }
        None => out.push(0),
    }
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>, what: &'static str) -> Result<(), EncodeError> {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s, what)
        }
        None => {
            out.push(0);
            Ok(())
        }
    }
}

fn put_opt_port(out: &mut Vec<u8>, port: Option<u16>) {
    match port {
        Some(port) => {
            out.push(1);
            out.extend_from_slice(&port.to_be_bytes());
        }
        None => out.push(0),
    }
}

fn status_byte(status: HostStatus) -> u8 {
    match status {
        HostStatus::Standby => 0,
        HostStatus::Ok => 1,
        HostStatus::Error => 2,
    }
}

impl Reader<'_> {
    fn id(&mut self) -> Result<AccountId, DecodeError> {
        Ok(AccountId(u128::from_be_bytes(self.array()?)))
    }

    fn port(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn label(&mut self) -> Result<Label, DecodeError> {
        let label = self.str()?;
        match Label::parse(label) {
            Ok(parsed) if parsed.as_str() == label => Ok(parsed),
            _ => Err(DecodeError::BadName(label.into())),
        }
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::BadTag(other)),
        }
    }

    fn status(&mut self) -> Result<HostStatus, DecodeError> {
        match self.u8()? {
            0 => Ok(HostStatus::Standby),
            1 => Ok(HostStatus::Ok),
            2 => Ok(HostStatus::Error),
            other => Err(DecodeError::BadTag(other)),
        }
    }

    fn opt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            other => Err(DecodeError::BadTag(other)),
        }
    }
}
