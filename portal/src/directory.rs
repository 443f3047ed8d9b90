//! The seam between the portal and the rest of ddnsd: the [`Directory`] trait.
//!
//! The portal keeps no store of its own. Every change it makes is one call here, which the
//! implementation turns into an event appended to the log; the reply is the outcome the fold
//! gave that event (a sign-up that lost a race for its user ID is [`SignUp::UserIdTaken`], not
//! an error). Every page is read from the fold's projection through the query methods.
//!
//! The inputs are already validated by the portal: user IDs are [`UserId`]s (5–20 ASCII letters
//! or digits, lowercase), names are `ddns_core` [`Label`]s and [`Fqdn`]s, e-mail addresses are
//! trimmed and lowercased, secrets arrive as argon2id PHC strings (`$argon2id$v=19$...`), never
//! in the clear.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;
use ddns_core::{Fqdn, Label};

/// Everything the portal reads and changes, as one object shared by every request.
///
/// Methods that change state return only once the change is durable and applied (or definitely
/// not made: then [`DirectoryError::Unavailable`] and the page says `INTERNAL ERROR`). Ownership
/// is checked here as well as in the portal: a host or group that exists but belongs to another
/// account is reported exactly like one that does not exist.
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// Creates an account. User IDs and e-mail addresses are unique across the server.
    async fn sign_up(&self, account: NewAccount) -> Result<SignUp, DirectoryError>;

    /// The account `user_id`, if it exists.
    async fn account(&self, user_id: &UserId) -> Result<Option<AccountView>, DirectoryError>;

    /// True if an account `user_id` exists (the sign-up duplicate check).
    async fn user_exists(&self, user_id: &UserId) -> Result<bool, DirectoryError>;

    /// Replaces the account's password hash.
    async fn change_password(
        &self,
        user_id: &UserId,
        password_hash: String,
    ) -> Result<Change, DirectoryError>;

    /// Removes the account, its groups and its hosts (their names leave the zone).
    async fn remove_account(&self, user_id: &UserId) -> Result<Change, DirectoryError>;

    /// True if `group.zone` is taken: by any account's group, or by a device, host or import
    /// that already owns that name.
    async fn group_exists(&self, zone: &Fqdn, group: &Label) -> Result<bool, DirectoryError>;

    /// Creates group `group` in `zone` for `user_id`, reserving `group.zone` for the account.
    async fn create_group(
        &self,
        user_id: &UserId,
        zone: &Fqdn,
        group: &Label,
    ) -> Result<CreateGroup, DirectoryError>;

    /// The account's groups, in creation order.
    async fn groups(&self, user_id: &UserId) -> Result<Vec<GroupView>, DirectoryError>;

    /// True if `fqdn` has an owner of any kind (device, host, group, import).
    async fn name_exists(&self, fqdn: &Fqdn) -> Result<bool, DirectoryError>;

    /// Creates a host: `host.group.zone` with a group, `host.zone` without.
    async fn create_host(
        &self,
        user_id: &UserId,
        host: NewHost,
    ) -> Result<CreateHost, DirectoryError>;

    /// The account's hosts, in creation order (oldest first).
    async fn hosts(&self, user_id: &UserId) -> Result<Vec<HostView>, DirectoryError>;

    /// The host `fqdn` if it belongs to `user_id`; `None` if it does not exist or is another's.
    async fn host(&self, user_id: &UserId, fqdn: &Fqdn)
    -> Result<Option<HostView>, DirectoryError>;

    /// Changes what `edit` sets on the host `fqdn` of `user_id`.
    async fn edit_host(
        &self,
        user_id: &UserId,
        fqdn: &Fqdn,
        edit: HostEdit,
    ) -> Result<Change, DirectoryError>;

    /// Removes the host `fqdn` of `user_id`.
    async fn remove_host(&self, user_id: &UserId, fqdn: &Fqdn) -> Result<Change, DirectoryError>;

    /// Clears the abuse mark of the host `fqdn` of `user_id` (its dyndns2 client sent too many
    /// updates that changed nothing).
    async fn clear_abuse(&self, user_id: &UserId, fqdn: &Fqdn) -> Result<Change, DirectoryError>;

    /// Adds an update token (its public id and stored hash) to the host `fqdn` of `user_id`.
    async fn add_token(
        &self,
        user_id: &UserId,
        fqdn: &Fqdn,
        token_id: &str,
        hash: &str,
    ) -> Result<Change, DirectoryError>;

    /// Revokes the update token `token_id` of the host `fqdn` of `user_id`.
    async fn revoke_token(
        &self,
        user_id: &UserId,
        fqdn: &Fqdn,
        token_id: &str,
    ) -> Result<Change, DirectoryError>;
}

/// The directory could not answer; nothing was acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The log append failed or timed out, or the projection is not available. The portal
    /// shows `INTERNAL ERROR` and logs `reason`; the user never sees it.
    #[error("directory unavailable: {reason}")]
    Unavailable {
        /// What failed, for the log.
        reason: String,
    },
}

/// An account's user ID: 5–20 ASCII letters or digits, case-insensitive (kept lowercase, so
/// `TestUser` and `testuser` are one account).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

impl UserId {
    /// Shortest user ID, from the seed.
    pub const LEN_MIN: usize = 5;
    /// Longest user ID, from the seed.
    pub const LEN_MAX: usize = 20;

    /// Validates `input` (trimmed) and lowercases it; `None` if it breaks the seed's rule.
    pub fn parse(input: &str) -> Option<UserId> {
        let id = input.trim();
        let ok = (Self::LEN_MIN..=Self::LEN_MAX).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| UserId(id.to_ascii_lowercase()))
    }

    /// The user ID, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sign-up that passed the portal's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// The new account's user ID.
    pub user_id: UserId,
    /// Trimmed, lowercased, syntactically plausible.
    pub email: String,
    /// argon2id PHC string of the account password.
    pub password_hash: String,
}

/// What became of a sign-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignUp {
    /// The account exists now.
    Created,
    /// Another account has this user ID (`USER ID Duplicate Error`).
    UserIdTaken,
    /// Another account has this e-mail address (`USER EMAIL Duplicate Error`).
    EmailTaken,
}

/// An account as the portal shows and authenticates it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    /// The user ID.
    pub user_id: UserId,
    /// The e-mail address given at sign-up.
    pub email: String,
    /// argon2id PHC string of the account password.
    pub password_hash: String,
    /// When the account was created (the event's timestamp), ms since the Unix epoch.
    pub created_ms: u64,
}

/// What became of a change to an existing account or host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Applied.
    Done,
    /// No such account, or no such host of this account (the portal answers 404).
    NotFound,
}

/// What became of a new group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateGroup {
    /// The group exists now and `group.zone` is the account's.
    Created,
    /// `group.zone` has another owner.
    Taken,
    /// The account no longer exists (removed meanwhile).
    NoAccount,
}

/// A group of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    /// The zone the group is in.
    pub zone: Fqdn,
    /// The group's label.
    pub name: Label,
}

/// A host that passed the portal's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewHost {
    /// One of the zones the portal offers.
    pub zone: Fqdn,
    /// `Some`: "group use" on, the name is `host.group.zone`, and the group must be the
    /// account's; `None`: the name is `host.zone`.
    pub group: Option<Label>,
    /// The host's own label.
    pub host: Label,
    /// argon2id PHC string of the host password (the DVR's credential).
    pub password_hash: String,
    /// The TCP port of the device's web interface, for the Live/Playback link and the probe.
    pub port: Option<u16>,
}

/// What became of a new host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateHost {
    /// The host exists now, under this name.
    Created(Fqdn),
    /// The name has another owner.
    Taken,
    /// The group is not one of the account's groups in that zone.
    NoSuchGroup,
    /// The account no longer exists (removed meanwhile).
    NoAccount,
}

/// A host's status, as the host list colours it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostStatus {
    /// Registered, never updated (green).
    Standby,
    /// Updated, and reachable where a probe is configured (blue).
    Ok,
    /// The last update was rejected, or the probe cannot connect (red).
    Error,
}

/// A host as the host list and the edit page show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostView {
    /// The host's name.
    pub fqdn: Fqdn,
    /// The A record, if any.
    pub v4: Option<Ipv4Addr>,
    /// The AAAA record, if any.
    pub v6: Option<Ipv6Addr>,
    /// Its status.
    pub status: HostStatus,
    /// When an address was last set, ms since the Unix epoch; `None` before the first update.
    pub updated_ms: Option<u64>,
    /// The device's web port, if one was given.
    pub port: Option<u16>,
    /// Marked abusive: its dyndns2 updates are answered `abuse` until the owner clears it.
    pub abusive: bool,
    /// Its update tokens: (public id, created ms), oldest first.
    pub tokens: Vec<(String, u64)>,
}

/// Changes to a host from its edit page; `None` fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostEdit {
    /// Sets the A record (IPv4) or the AAAA record (IPv6); the other family is untouched.
    pub ip: Option<IpAddr>,
    /// A new host password, as an argon2id PHC string.
    pub password_hash: Option<String>,
    /// `Some(None)` clears the port, `Some(Some(p))` sets it.
    pub port: Option<Option<u16>>,
}
