//! People's part of the fold: accounts, their groups and their hosts (SPEC §4).
//!
//! Devices are many and alike, so they live in the packed records of [`State`](super::State);
//! people's hosts are few and each carries more (a password hash, a status, an owner), so they
//! are plain maps here, and a device record costs nothing more because they exist. Both share
//! one namespace per zone: a name has one owner, a device, an import, an account's group or an
//! account's host. [`State::apply`](super::State::apply) asks this part whether it holds a name
//! before a device or an import may claim it, and tells it whether a device holds a name before
//! a group or host may claim it.
//!
//! Two kinds of events, in two kinds of partition (see [`crate::ACCOUNTS_KEY`]): account events
//! look only at accounts; zone events (groups, hosts) look only at their zone's names and at the
//! accounts released in that zone, never at the accounts table. That is what lets replicas that
//! interleave the partitions differently agree: a host created for an account whose removal is
//! not yet folded here is created, and removed again by the `AccountReleased` that follows the
//! removal into the zone's partition; one appended after that release is refused by it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Applied, Outcome, changed, unchanged};
use crate::event::{ACME_TXT_MAX, AccountId, EventBody, HostStatus};
use crate::names::{Fqdn, Label};
use crate::zone::HostAddrs;

/// A person's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its id (the id of the event that created it).
    pub id: AccountId,
    /// The user ID it signs in with.
    pub user_id: String,
    /// Its e-mail address, lowercase.
    pub email: String,
    /// The password's argon2id hash (PHC string).
    pub password_hash: String,
    /// When it was created (ms since the Unix epoch, from the event).
    pub created_ms: u64,
}

/// A group: `label.zone`, reserved for its account's hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The zone it is in.
    pub zone: Fqdn,
    /// Its owner.
    pub account: AccountId,
    /// When it was created.
    pub created_ms: u64,
}

/// An account's host, updated by its DVR with the host password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The zone it is in.
    pub zone: Fqdn,
    /// Its owner.
    pub account: AccountId,
    /// The owner's group it is under, if any.
    pub group: Option<Label>,
    /// The host password's argon2id hash (PHC string).
    pub password_hash: String,
    /// The device's TCP port (the Live link, the probe).
    pub port: Option<u16>,
    /// Its A record.
    pub v4: Option<Ipv4Addr>,
    /// Its AAAA record.
    pub v6: Option<Ipv6Addr>,
    /// STANDBY until its device first updates it.
    pub status: HostStatus,
    /// Marked abusive: its updates are answered `abuse` until its owner clears the mark.
    pub abusive: bool,
    /// Its update tokens, oldest first.
    pub tokens: Vec<HostToken>,
    /// The ACME DNS-01 challenge values of `_acme-challenge.<host>`, oldest first.
    pub acme_txt: Vec<String>,
    /// When it was created.
    pub created_ms: u64,
    /// When its device last changed it (none before the first update).
    pub updated_ms: Option<u64>,
}

/// An update token of a host: a random secret, kept only as a keyed hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostToken {
    /// Its public id.
    pub id: String,
    /// Its keyed hash.
    pub hash: String,
    /// When it was created.
    pub created_ms: u64,
}

impl Host {
    /// Its DNS records.
    pub fn addrs(&self) -> HostAddrs {
        HostAddrs {
            v4: self.v4,
            v6: self.v6,
        }
    }
}

/// One entry of people's state, as the snapshot stores it: an event reports the entries it
/// changed, and the projector writes each as [`State::people_entry`](super::State::people_entry)
/// then has it (or deletes it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeopleKey {
    /// An account, by user ID.
    Account(String),
    /// A removed account's id (its removal is final).
    Removed(AccountId),
    /// A group, by its name.
    Group(Fqdn),
    /// A host, by its name.
    Host(Fqdn),
    /// An account released in a zone.
    Released(Fqdn, AccountId),
}

/// The value stored under a [`PeopleKey`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeopleEntry {
    /// An account.
    Account(Account),
    /// A removed account (the key says which).
    Removed,
    /// A group.
    Group(Group),
    /// A host.
    Host(Host),
    /// A release (the key says which).
    Released,
}

/// Accounts, groups and hosts; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct People {
    /// By user ID.
    accounts: HashMap<String, Account>,
    /// Account id → user ID.
    user_ids: HashMap<AccountId, String>,
    /// E-mail → user ID.
    emails: HashMap<String, String>,
    removed: HashSet<AccountId>,
    groups: HashMap<Fqdn, Group>,
    hosts: HashMap<Fqdn, Host>,
    /// The names (groups and hosts) of each account.
    names_of: HashMap<AccountId, BTreeSet<Fqdn>>,
    released: HashSet<(Fqdn, AccountId)>,
}

impl People {
    pub(crate) fn account(&self, user_id: &str) -> Option<&Account> {
        self.accounts.get(user_id)
    }

    pub(crate) fn account_by_id(&self, id: AccountId) -> Option<&Account> {
        self.user_ids.get(&id).and_then(|u| self.accounts.get(u))
    }

    pub(crate) fn account_by_email(&self, email: &str) -> Option<&Account> {
        self.emails.get(email).and_then(|u| self.accounts.get(u))
    }

    pub(crate) fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub(crate) fn is_removed(&self, id: AccountId) -> bool {
        self.removed.contains(&id)
    }

    pub(crate) fn is_released(&self, zone: &Fqdn, id: AccountId) -> bool {
        self.released.contains(&(zone.clone(), id))
    }

    pub(crate) fn group(&self, name: &Fqdn) -> Option<&Group> {
        self.groups.get(name)
    }

    pub(crate) fn host(&self, name: &Fqdn) -> Option<&Host> {
        self.hosts.get(name)
    }

    pub(crate) fn hosts(&self) -> impl Iterator<Item = (&Fqdn, &Host)> {
        self.hosts.iter()
    }

    /// The names of an account's groups and hosts, in name order.
    pub(crate) fn names_of(&self, id: AccountId) -> impl Iterator<Item = &Fqdn> {
        self.names_of.get(&id).into_iter().flatten()
    }

    /// Every account that has groups or hosts.
    pub(crate) fn owners(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.names_of.keys().copied()
    }

    /// Every removed account.
    pub(crate) fn removed(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.removed.iter().copied()
    }

    /// True if `name` is a group's or a host's, or lies directly under a group (reserved for
    /// its account): no device or import may claim it.
    pub(crate) fn reserves(&self, name: &Fqdn) -> bool {
        if self.groups.is_empty() && self.hosts.is_empty() {
            return false;
        }
        self.groups.contains_key(name)
            || self.hosts.contains_key(name)
            || name
                .parent()
                .is_some_and(|parent| self.groups.contains_key(&parent))
    }

    /// Applies a people event; `device_owns` tells whether a device or an import holds a name.
    pub(crate) fn apply(
        &mut self,
        event_id: u128,
        at_ms: u64,
        body: &EventBody,
        device_owns: impl Fn(&Fqdn) -> bool,
    ) -> Applied {
        match body {
            EventBody::AccountCreated {
                user_id,
                email,
                password_hash,
            } => {
                if self.removed.contains(&AccountId(event_id)) {
                    // A replay of a removed account's sign-up: removal is final.
                    return nothing(Outcome::NotFound);
                }
                if self.accounts.contains_key(user_id) {
                    return nothing(Outcome::UserIdTaken);
                }
                if self.emails.contains_key(email) {
                    return nothing(Outcome::EmailTaken);
                }
                let id = AccountId(event_id);
                self.user_ids.insert(id, user_id.clone());
                self.emails.insert(email.clone(), user_id.clone());
                self.accounts.insert(
                    user_id.clone(),
                    Account {
                        id,
                        user_id: user_id.clone(),
                        email: email.clone(),
                        password_hash: password_hash.clone(),
                        created_ms: at_ms,
                    },
                );
                touched(
                    unchanged(Outcome::Done),
                    vec![PeopleKey::Account(user_id.clone())],
                )
            }
            EventBody::AccountPasswordChanged {
                account,
                password_hash,
            } => {
                let Some(user_id) = self.user_ids.get(account) else {
                    return nothing(Outcome::NotFound);
                };
                let entry = self
                    .accounts
                    .get_mut(user_id)
                    .expect("user_ids and accounts agree");
                entry.password_hash.clone_from(password_hash);
                touched(
                    unchanged(Outcome::Done),
                    vec![PeopleKey::Account(user_id.clone())],
                )
            }
            EventBody::AccountRemoved { account } => {
                let Some(user_id) = self.user_ids.remove(account) else {
                    return nothing(Outcome::NotFound);
                };
                let entry = self
                    .accounts
                    .remove(&user_id)
                    .expect("user_ids and accounts agree");
                self.emails.remove(&entry.email);
                self.removed.insert(*account);
                touched(
                    unchanged(Outcome::Removed),
                    vec![PeopleKey::Account(user_id), PeopleKey::Removed(*account)],
                )
            }
            EventBody::AccountReleased { zone, account } => {
                let mut keys = vec![PeopleKey::Released(zone.clone(), *account)];
                let mut names = Vec::new();
                self.released.insert((zone.clone(), *account));
                let in_zone: Vec<Fqdn> = self
                    .names_of(*account)
                    .filter(|name| {
                        let zone_of = self.groups.get(*name).map(|g| &g.zone);
                        let zone_of = zone_of.or_else(|| self.hosts.get(*name).map(|h| &h.zone));
                        zone_of == Some(zone)
                    })
                    .cloned()
                    .collect();
                for name in in_zone {
                    if self.groups.contains_key(&name) {
                        self.forget(*account, &name);
                        self.groups.remove(&name);
                        keys.push(PeopleKey::Group(name));
                    } else {
                        let host = self.remove_host(*account, &name);
                        if host.has_records() {
                            names.push(name.clone());
                        }
                        keys.push(PeopleKey::Host(name));
                    }
                }
                touched(changed(Outcome::Removed, names), keys)
            }
            EventBody::GroupCreated {
                zone,
                account,
                group,
            } => {
                if self.is_released(zone, *account) {
                    return nothing(Outcome::NotFound);
                }
                let Ok(name) = zone.child(group) else {
                    return nothing(Outcome::NotFound);
                };
                if self.is_taken(&name, &device_owns) {
                    return nothing(Outcome::NameTaken);
                }
                self.names_of
                    .entry(*account)
                    .or_default()
                    .insert(name.clone());
                self.groups.insert(
                    name.clone(),
                    Group {
                        zone: zone.clone(),
                        account: *account,
                        created_ms: at_ms,
                    },
                );
                touched(
                    unchanged(Outcome::Created(name.clone())),
                    vec![PeopleKey::Group(name)],
                )
            }
            EventBody::GroupRemoved {
                zone,
                account,
                group,
            } => {
                let Ok(name) = zone.child(group) else {
                    return nothing(Outcome::NotFound);
                };
                if self.groups.get(&name).is_none_or(|g| g.account != *account) {
                    return nothing(Outcome::NotFound);
                }
                if self
                    .names_of(*account)
                    .any(|n| n != &name && n.is_within(&name))
                {
                    return nothing(Outcome::NotEmpty);
                }
                self.forget(*account, &name);
                self.groups.remove(&name);
                touched(unchanged(Outcome::Removed), vec![PeopleKey::Group(name)])
            }
            EventBody::HostCreated {
                zone,
                account,
                group,
                host,
                password_hash,
                port,
            } => {
                if self.is_released(zone, *account) {
                    return nothing(Outcome::NotFound);
                }
                let parent = match group {
                    None => zone.clone(),
                    Some(group) => match zone.child(group) {
                        Ok(name)
                            if self
                                .groups
                                .get(&name)
                                .is_some_and(|g| g.account == *account) =>
                        {
                            name
                        }
                        _ => return nothing(Outcome::NotFound),
                    },
                };
                let Ok(name) = parent.child(host) else {
                    return nothing(Outcome::NotFound);
                };
                if self.is_taken(&name, &device_owns) {
                    return nothing(Outcome::NameTaken);
                }
                self.names_of
                    .entry(*account)
                    .or_default()
                    .insert(name.clone());
                self.hosts.insert(
                    name.clone(),
                    Host {
                        zone: zone.clone(),
                        account: *account,
                        group: group.clone(),
                        password_hash: password_hash.clone(),
                        port: *port,
                        v4: None,
                        v6: None,
                        status: HostStatus::Standby,
                        abusive: false,
                        tokens: Vec::new(),
                        acme_txt: Vec::new(),
                        created_ms: at_ms,
                        updated_ms: None,
                    },
                );
                touched(
                    unchanged(Outcome::Created(name.clone())),
                    vec![PeopleKey::Host(name)],
                )
            }
            EventBody::HostEdited {
                zone,
                account,
                fqdn,
                password_hash,
                port,
            } => {
                let Some(host) = self.hosts.get_mut(fqdn).filter(|h| h.owned(zone, account)) else {
                    return nothing(Outcome::NotFound);
                };
                let new_password = password_hash
                    .as_ref()
                    .is_some_and(|hash| *hash != host.password_hash);
                if !new_password && host.port == *port {
                    return nothing(Outcome::NoChange);
                }
                if let Some(hash) = password_hash {
                    host.password_hash.clone_from(hash);
                }
                host.port = *port;
                touched(
                    unchanged(Outcome::Modified),
                    vec![PeopleKey::Host(fqdn.clone())],
                )
            }
            EventBody::HostRemoved {
                zone,
                account,
                fqdn,
            } => {
                if !self.hosts.get(fqdn).is_some_and(|h| h.owned(zone, account)) {
                    return nothing(Outcome::NotFound);
                }
                let host = self.remove_host(*account, fqdn);
                let names = if host.has_records() {
                    vec![fqdn.clone()]
                } else {
                    Vec::new()
                };
                touched(
                    changed(Outcome::Removed, names),
                    vec![PeopleKey::Host(fqdn.clone())],
                )
            }
            EventBody::HostAddressSet {
                zone,
                fqdn,
                addr,
                account,
            } => {
                let Some(host) = self.caller_host(zone, fqdn, *account) else {
                    return nothing(Outcome::NotFound);
                };
                let addr_changed = match addr {
                    IpAddr::V4(v4) => host.v4.replace(*v4) != Some(*v4),
                    IpAddr::V6(v6) => host.v6.replace(*v6) != Some(*v6),
                };
                // From the device: it is alive, whatever its status was.
                let by_device = account.is_none();
                let status_changed = by_device && host.status != HostStatus::Ok;
                if by_device && (addr_changed || status_changed) {
                    host.status = HostStatus::Ok;
                    host.updated_ms = Some(at_ms);
                }
                let key = vec![PeopleKey::Host(fqdn.clone())];
                match (addr_changed, status_changed) {
                    (true, _) => touched(changed(Outcome::Modified, vec![fqdn.clone()]), key),
                    (false, true) => touched(unchanged(Outcome::Modified), key),
                    (false, false) => nothing(Outcome::NoChange),
                }
            }
            EventBody::HostStatusChanged { zone, fqdn, status } => {
                let Some(host) = self.hosts.get_mut(fqdn).filter(|h| &h.zone == zone) else {
                    return nothing(Outcome::NotFound);
                };
                if host.status == *status {
                    return nothing(Outcome::NoChange);
                }
                host.status = *status;
                touched(
                    unchanged(Outcome::Modified),
                    vec![PeopleKey::Host(fqdn.clone())],
                )
            }
            EventBody::HostTokenAdded {
                zone,
                account,
                fqdn,
                token_id,
                hash,
            } => {
                let Some(host) = self.hosts.get_mut(fqdn).filter(|h| h.owned(zone, account)) else {
                    return nothing(Outcome::NotFound);
                };
                if host.tokens.iter().any(|t| t.id == *token_id) {
                    return nothing(Outcome::NameTaken);
                }
                host.tokens.push(HostToken {
                    id: token_id.clone(),
                    hash: hash.clone(),
                    created_ms: at_ms,
                });
                touched(
                    unchanged(Outcome::Created(fqdn.clone())),
                    vec![PeopleKey::Host(fqdn.clone())],
                )
            }
            EventBody::HostTokenRevoked {
                zone,
                account,
                fqdn,
                token_id,
            } => {
                let Some(host) = self.hosts.get_mut(fqdn).filter(|h| h.owned(zone, account)) else {
                    return nothing(Outcome::NotFound);
                };
                let Some(at) = host.tokens.iter().position(|t| t.id == *token_id) else {
                    return nothing(Outcome::NotFound);
                };
                host.tokens.remove(at);
                touched(
                    unchanged(Outcome::Removed),
                    vec![PeopleKey::Host(fqdn.clone())],
                )
            }
            EventBody::HostAbuseChanged {
                zone,
                fqdn,
                abusive,
                account,
            } => {
                let Some(host) = self.caller_host(zone, fqdn, *account) else {
                    return nothing(Outcome::NotFound);
                };
                if host.abusive == *abusive {
                    return nothing(Outcome::NoChange);
                }
                host.abusive = *abusive;
                touched(
                    unchanged(Outcome::Modified),
                    vec![PeopleKey::Host(fqdn.clone())],
                )
            }
            EventBody::HostTxtSet {
                zone,
                fqdn,
                value,
                account,
            } => {
                let Some(host) = self.caller_host(zone, fqdn, *account) else {
                    return nothing(Outcome::NotFound);
                };
                if host.acme_txt.contains(value) {
                    return nothing(Outcome::NoChange);
                }
                if host.acme_txt.len() >= ACME_TXT_MAX {
                    host.acme_txt.remove(0);
                }
                host.acme_txt.push(value.clone());
                touched(
                    changed(Outcome::Modified, vec![fqdn.clone()]),
                    vec![PeopleKey::Host(fqdn.clone())],
                )
            }
            EventBody::HostTxtCleared {
                zone,
                fqdn,
                value,
                account,
            } => {
                let Some(host) = self.caller_host(zone, fqdn, *account) else {
                    return nothing(Outcome::NotFound);
                };
                let before = host.acme_txt.len();
                host.acme_txt
                    .retain(|v| value.as_ref().is_some_and(|value| v != value));
                if host.acme_txt.len() == before {
                    return nothing(Outcome::NoChange);
                }
                touched(
                    changed(Outcome::Modified, vec![fqdn.clone()]),
                    vec![PeopleKey::Host(fqdn.clone())],
                )
            }
            EventBody::DeviceAdd { .. }
            | EventBody::DeviceUpdate { .. }
            | EventBody::DeviceRemove { .. }
            | EventBody::HostImport { .. } => unreachable!("a device event is not people's"),
        }
    }

    /// The host `fqdn` of `zone`, if the caller may change it: its owner's account, or (no
    /// account) the host's own credentials, which ingest checked.
    fn caller_host(
        &mut self,
        zone: &Fqdn,
        fqdn: &Fqdn,
        account: Option<AccountId>,
    ) -> Option<&mut Host> {
        self.hosts
            .get_mut(fqdn)
            .filter(|h| &h.zone == zone && account.is_none_or(|a| h.account == a))
    }

    /// The snapshot's entry under `key`, if there is one.
    pub(crate) fn entry(&self, key: &PeopleKey) -> Option<PeopleEntry> {
        match key {
            PeopleKey::Account(user_id) => self
                .accounts
                .get(user_id)
                .cloned()
                .map(PeopleEntry::Account),
            PeopleKey::Removed(id) => self.removed.contains(id).then_some(PeopleEntry::Removed),
            PeopleKey::Group(name) => self.groups.get(name).cloned().map(PeopleEntry::Group),
            PeopleKey::Host(name) => self.hosts.get(name).cloned().map(PeopleEntry::Host),
            PeopleKey::Released(zone, id) => self
                .released
                .contains(&(zone.clone(), *id))
                .then_some(PeopleEntry::Released),
        }
    }

    /// Restores a snapshot entry. Panics on a key and entry of different kinds or a second
    /// owner of a name: such a snapshot is corrupt.
    pub(crate) fn restore(&mut self, key: PeopleKey, entry: PeopleEntry) {
        match (key, entry) {
            (PeopleKey::Account(user_id), PeopleEntry::Account(account)) => {
                assert_eq!(
                    user_id, account.user_id,
                    "snapshot account under another key"
                );
                self.user_ids.insert(account.id, user_id.clone());
                let email = self.emails.insert(account.email.clone(), user_id.clone());
                assert!(email.is_none(), "snapshot has an e-mail twice");
                self.accounts.insert(user_id, account);
            }
            (PeopleKey::Removed(id), PeopleEntry::Removed) => {
                self.removed.insert(id);
            }
            (PeopleKey::Group(name), PeopleEntry::Group(group)) => {
                assert!(
                    !self.hosts.contains_key(&name),
                    "snapshot has two owners of {name}"
                );
                self.names_of
                    .entry(group.account)
                    .or_default()
                    .insert(name.clone());
                self.groups.insert(name, group);
            }
            (PeopleKey::Host(name), PeopleEntry::Host(host)) => {
                assert!(
                    !self.groups.contains_key(&name),
                    "snapshot has two owners of {name}"
                );
                self.names_of
                    .entry(host.account)
                    .or_default()
                    .insert(name.clone());
                self.hosts.insert(name, host);
            }
            (PeopleKey::Released(zone, id), PeopleEntry::Released) => {
                self.released.insert((zone, id));
            }
            (key, _) => panic!("snapshot entry of another kind under {key:?}"),
        }
    }

    /// Every entry, for a snapshot of the whole state.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (PeopleKey, PeopleEntry)> + '_ {
        let accounts = self.accounts.values().map(|a| {
            (
                PeopleKey::Account(a.user_id.clone()),
                PeopleEntry::Account(a.clone()),
            )
        });
        let removed = self
            .removed
            .iter()
            .map(|id| (PeopleKey::Removed(*id), PeopleEntry::Removed));
        let groups = self
            .groups
            .iter()
            .map(|(n, g)| (PeopleKey::Group(n.clone()), PeopleEntry::Group(g.clone())));
        let hosts = self
            .hosts
            .iter()
            .map(|(n, h)| (PeopleKey::Host(n.clone()), PeopleEntry::Host(h.clone())));
        let released = self
            .released
            .iter()
            .map(|(z, id)| (PeopleKey::Released(z.clone(), *id), PeopleEntry::Released));
        accounts
            .chain(removed)
            .chain(groups)
            .chain(hosts)
            .chain(released)
    }

    fn is_taken(&self, name: &Fqdn, device_owns: impl Fn(&Fqdn) -> bool) -> bool {
        self.groups.contains_key(name) || self.hosts.contains_key(name) || device_owns(name)
    }

    fn forget(&mut self, account: AccountId, name: &Fqdn) {
        if let Some(names) = self.names_of.get_mut(&account) {
            names.remove(name);
            if names.is_empty() {
                self.names_of.remove(&account);
            }
        }
    }

    fn remove_host(&mut self, account: AccountId, name: &Fqdn) -> Host {
        self.forget(account, name);
        self.hosts.remove(name).expect("the host exists")
    }
}

impl Host {
    /// True if DNS has records of it: an address, or an ACME challenge below it.
    fn has_records(&self) -> bool {
        !self.addrs().is_empty() || !self.acme_txt.is_empty()
    }

    fn owned(&self, zone: &Fqdn, account: &AccountId) -> bool {
        &self.zone == zone && self.account == *account
    }
}

fn nothing(outcome: Outcome) -> Applied {
    unchanged(outcome)
}

fn touched(mut applied: Applied, entries: Vec<PeopleKey>) -> Applied {
    applied.people = entries;
    applied
}
