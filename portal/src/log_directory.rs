//! [`LogDirectory`]: the [`Directory`] over the event log and the fold, what the server runs.
//!
//! Every change is one event through a [`Committer`] (durable, then folded), answered with the
//! outcome the fold gave it; every read is the fold's state, first brought up to the log's end
//! when the log is shared with other nodes.
//!
//! Removing an account is two steps in two partitions (see `ddns_core::ACCOUNTS_KEY`): the
//! removal, then one release per zone. A node that stops between them leaves the account's
//! names to [`LogDirectory::release_removed`], which the server runs at start.

use std::sync::Arc;

use async_trait::async_trait;
use ddns_core::{AccountId, EventBody, Fqdn, Label, Outcome, State};
use ddns_projector::Committer;

use crate::directory::{
    AccountView, Change, CreateGroup, CreateHost, Directory, DirectoryError, GroupView, HostEdit,
    HostStatus, HostView, NewAccount, NewHost, SignUp, UserId,
};

/// The directory the server runs: events in, the fold's state out.
pub struct LogDirectory {
    committer: Arc<Committer>,
    /// Every zone an account may have names in: a removal releases the account in each.
    zones: Vec<Fqdn>,
}

impl LogDirectory {
    /// A directory committing through `committer`, for accounts with names in `zones`.
    pub fn new(committer: Arc<Committer>, zones: Vec<Fqdn>) -> LogDirectory {
        LogDirectory { committer, zones }
    }

    /// Releases, in every zone, the names of accounts whose removal was folded but whose
    /// release was not (a node stopped between the two). Returns how many releases it appended.
    pub async fn release_removed(&self) -> Result<usize, DirectoryError> {
        self.caught_up().await?;
        let pending: Vec<(Fqdn, AccountId)> = self.committer.view().with_state(|state| {
            // Every removed account, with names or without: a host creation racing the removal
            // may still land after it in a zone where the account had none.
            let removed: Vec<AccountId> = state.removed_accounts().collect();
            removed
                .into_iter()
                .flat_map(|id| self.zones.iter().map(move |zone| (zone.clone(), id)))
                .filter(|(zone, id)| !state.is_released(zone, *id))
                .collect()
        });
        for (zone, account) in &pending {
            self.commit(EventBody::AccountReleased {
                zone: zone.clone(),
                account: *account,
            })
            .await?;
        }
        Ok(pending.len())
    }

    async fn commit(&self, body: EventBody) -> Result<Outcome, DirectoryError> {
        self.committer
            .commit(body)
            .await
            .ok_or_else(|| unavailable("the change was not made durable and folded in time"))
    }

    /// Folds everything acknowledged anywhere up to now (at once on a log of this node's own).
    pub async fn caught_up(&self) -> Result<(), DirectoryError> {
        self.committer
            .caught_up()
            .await
            .ok_or_else(|| unavailable("the fold did not catch up with the log in time"))
    }

    /// Reads the fold's state, caught up with the log.
    async fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Result<T, DirectoryError> {
        self.caught_up().await?;
        Ok(self.committer.view().with_state(f))
    }

    /// The account and zone of the host `fqdn`, if it is `user_id`'s.
    async fn owned_host(
        &self,
        user_id: &UserId,
        fqdn: &Fqdn,
    ) -> Result<Option<(AccountId, Fqdn)>, DirectoryError> {
        self.read(|state| {
            let account = state.account(user_id.as_str())?;
            let host = state.account_host(fqdn)?;
            (host.account == account.id).then(|| (account.id, host.zone.clone()))
        })
        .await
    }

    async fn account_id(&self, user_id: &UserId) -> Result<Option<AccountId>, DirectoryError> {
        self.read(|state| state.account(user_id.as_str()).map(|a| a.id))
            .await
    }
}

fn unavailable(reason: &str) -> DirectoryError {
    DirectoryError::Unavailable {
        reason: reason.into(),
    }
}

fn unexpected(outcome: Outcome) -> DirectoryError {
    DirectoryError::Unavailable {
        reason: format!("unexpected outcome {outcome:?}"),
    }
}

fn host_view(fqdn: &Fqdn, host: &ddns_core::Host) -> HostView {
    HostView {
        fqdn: fqdn.clone(),
        v4: host.v4,
        v6: host.v6,
        status: match host.status {
            ddns_core::HostStatus::Standby => HostStatus::Standby,
            ddns_core::HostStatus::Ok => HostStatus::Ok,
            ddns_core::HostStatus::Error => HostStatus::Error,
        },
        updated_ms: host.updated_ms,
        port: host.port,
        abusive: host.abusive,
        tokens: host
            .tokens
            .iter()
            .map(|t| (t.id.clone(), t.created_ms))
            .collect(),
    }
}

#[async_trait]
impl Directory for LogDirectory {
    async fn sign_up(&self, account: NewAccount) -> Result<SignUp, DirectoryError> {
        let body = EventBody::AccountCreated {
            user_id: account.user_id.as_str().into(),
            email: account.email,
            password_hash: account.password_hash,
        };
        match self.commit(body).await? {
            Outcome::Done => Ok(SignUp::Created),
            Outcome::UserIdTaken => Ok(SignUp::UserIdTaken),
            Outcome::EmailTaken => Ok(SignUp::EmailTaken),
            other => Err(unexpected(other)),
        }
    }

    async fn account(&self, user_id: &UserId) -> Result<Option<AccountView>, DirectoryError> {
        self.read(|state| {
            state.account(user_id.as_str()).map(|a| AccountView {
                user_id: user_id.clone(),
                email: a.email.clone(),
                password_hash: a.password_hash.clone(),
                created_ms: a.created_ms,
            })
        })
        .await
    }

    async fn user_exists(&self, user_id: &UserId) -> Result<bool, DirectoryError> {
        Ok(self.account_id(user_id).await?.is_some())
    }

    async fn change_password(
        &self,
        user_id: &UserId,
        password_hash: String,
    ) -> Result<Change, DirectoryError> {
        let Some(account) = self.account_id(user_id).await? else {
            return Ok(Change::NotFound);
        };
        let body = EventBody::AccountPasswordChanged {
            account,
            password_hash,
        };
        match self.commit(body).await? {
            Outcome::Done => Ok(Change::Done),
            Outcome::NotFound => Ok(Change::NotFound),
            other => Err(unexpected(other)),
        }
    }

    async fn remove_account(&self, user_id: &UserId) -> Result<Change, DirectoryError> {
        let Some(account) = self.account_id(user_id).await? else {
            return Ok(Change::NotFound);
        };
        match self.commit(EventBody::AccountRemoved { account }).await? {
            Outcome::Removed => {}
            Outcome::NotFound => return Ok(Change::NotFound),
            other => return Err(unexpected(other)),
        }
        // In every zone, even those where it has no names yet: a host creation racing this
        // removal may still be on its way there.
        for zone in &self.zones {
            let body = EventBody::AccountReleased {
                zone: zone.clone(),
                account,
            };
            self.commit(body).await?;
        }
        Ok(Change::Done)
    }

    async fn group_exists(&self, zone: &Fqdn, group: &Label) -> Result<bool, DirectoryError> {
        let Ok(name) = zone.child(group) else {
            return Ok(true);
        };
        self.name_exists(&name).await
    }

    async fn create_group(
        &self,
        user_id: &UserId,
        zone: &Fqdn,
        group: &Label,
    ) -> Result<CreateGroup, DirectoryError> {
        let Some(account) = self.account_id(user_id).await? else {
            return Ok(CreateGroup::NoAccount);
        };
        let body = EventBody::GroupCreated {
            zone: zone.clone(),
            account,
            group: group.clone(),
        };
        match self.commit(body).await? {
            Outcome::Created(_) => Ok(CreateGroup::Created),
            Outcome::NameTaken => Ok(CreateGroup::Taken),
            // Only a released account is refused a group.
            Outcome::NotFound => Ok(CreateGroup::NoAccount),
            other => Err(unexpected(other)),
        }
    }

    async fn groups(&self, user_id: &UserId) -> Result<Vec<GroupView>, DirectoryError> {
        self.read(|state| {
            let Some(account) = state.account(user_id.as_str()) else {
                return Vec::new();
            };
            let mut groups: Vec<(u64, GroupView)> = state
                .names_of(account.id)
                .filter_map(|name| {
                    let group = state.group(name)?;
                    let label = name.as_str().split('.').next()?;
                    Some((
                        group.created_ms,
                        GroupView {
                            zone: group.zone.clone(),
                            name: Label::parse(label).ok()?,
                        },
                    ))
                })
                .collect();
            groups.sort_by(|a, b| (a.0, a.1.zone.as_str()).cmp(&(b.0, b.1.zone.as_str())));
            groups.into_iter().map(|(_, g)| g).collect()
        })
        .await
    }

    async fn name_exists(&self, fqdn: &Fqdn) -> Result<bool, DirectoryError> {
        self.read(|state| state.has_owner(fqdn)).await
    }

    async fn create_host(
        &self,
        user_id: &UserId,
        host: NewHost,
    ) -> Result<CreateHost, DirectoryError> {
        let Some(account) = self.account_id(user_id).await? else {
            return Ok(CreateHost::NoAccount);
        };
        let zone = host.zone.clone();
        let body = EventBody::HostCreated {
            zone: host.zone,
            account,
            group: host.group,
            host: host.host,
            password_hash: host.password_hash,
            port: host.port,
        };
        match self.commit(body).await? {
            Outcome::Created(fqdn) => Ok(CreateHost::Created(fqdn)),
            Outcome::NameTaken => Ok(CreateHost::Taken),
            Outcome::NotFound => {
                let released = self.read(|state| state.is_released(&zone, account)).await?;
                Ok(match released {
                    true => CreateHost::NoAccount,
                    false => CreateHost::NoSuchGroup,
                })
            }
            other => Err(unexpected(other)),
        }
    }

    async fn hosts(&self, user_id: &UserId) -> Result<Vec<HostView>, DirectoryError> {
        self.read(|state| {
            let Some(account) = state.account(user_id.as_str()) else {
                return Vec::new();
            };
            let mut hosts: Vec<(u64, HostView)> = state
                .names_of(account.id)
                .filter_map(|name| {
                    let host = state.account_host(name)?;
                    Some((host.created_ms, host_view(name, host)))
                })
                .collect();
            hosts.sort_by(|a, b| (a.0, a.1.fqdn.as_str()).cmp(&(b.0, b.1.fqdn.as_str())));
            hosts.into_iter().map(|(_, h)| h).collect()
        })
        .await
    }

    async fn host(
        &self,
        user_id: &UserId,
        fqdn: &Fqdn,
    ) -> Result<Option<HostView>, DirectoryError> {
        self.read(|state| {
            let account = state.account(user_id.as_str())?;
            let host = state.account_host(fqdn)?;
            (host.account == account.id).then(|| host_view(fqdn, host))
        })
        .await
    }

    async fn edit_host(
        &self,
        user_id: &UserId,
        fqdn: &Fqdn,
        edit: HostEdit,
    ) -> Result<Change, DirectoryError> {
        let found = self
            .read(|state| {
                let account = state.account(user_id.as_str())?;
                let host = state.account_host(fqdn)?;
                (host.account == account.id).then(|| (account.id, host.zone.clone(), host.port))
            })
            .await?;
        let Some((account, zone, port)) = found else {
            return Ok(Change::NotFound);
        };
        let new_port = edit.port.unwrap_or(port);
        if edit.password_hash.is_some() || new_port != port {
            let body = EventBody::HostEdited {
                zone: zone.clone(),
                account,
                fqdn: fqdn.clone(),
                password_hash: edit.password_hash,
                port: new_port,
            };
            match self.commit(body).await? {
                Outcome::Modified | Outcome::NoChange => {}
                Outcome::NotFound => return Ok(Change::NotFound),
                other => return Err(unexpected(other)),
            }
        }
        if let Some(addr) = edit.ip {
            let body = EventBody::HostAddressSet {
                zone,
                fqdn: fqdn.clone(),
                addr,
                account: Some(account),
            };
            match self.commit(body).await? {
                Outcome::Modified | Outcome::NoChange => {}
                Outcome::NotFound => return Ok(Change::NotFound),
                other => return Err(unexpected(other)),
            }
        }
        Ok(Change::Done)
    }

    async fn remove_host(&self, user_id: &UserId, fqdn: &Fqdn) -> Result<Change, DirectoryError> {
        let Some((account, zone)) = self.owned_host(user_id, fqdn).await? else {
            return Ok(Change::NotFound);
        };
        let body = EventBody::HostRemoved {
            zone,
            account,
            fqdn: fqdn.clone(),
        };
        match self.commit(body).await? {
            Outcome::Removed => Ok(Change::Done),
            Outcome::NotFound => Ok(Change::NotFound),
            other => Err(unexpected(other)),
        }
    }

    async fn add_token(
        &self,
        user_id: &UserId,
        fqdn: &Fqdn,
        token_id: &str,
        hash: &str,
    ) -> Result<Change, DirectoryError> {
        let Some((account, zone)) = self.owned_host(user_id, fqdn).await? else {
            return Ok(Change::NotFound);
        };
        let body = EventBody::HostTokenAdded {
            zone,
            account,
            fqdn: fqdn.clone(),
            token_id: token_id.into(),
            hash: hash.into(),
        };
        match self.commit(body).await? {
            Outcome::Created(_) => Ok(Change::Done),
            Outcome::NotFound => Ok(Change::NotFound),
            other => Err(unexpected(other)),
        }
    }

    async fn revoke_token(
        &self,
        user_id: &UserId,
        fqdn: &Fqdn,
        token_id: &str,
    ) -> Result<Change, DirectoryError> {
        let Some((account, zone)) = self.owned_host(user_id, fqdn).await? else {
            return Ok(Change::NotFound);
        };
        let body = EventBody::HostTokenRevoked {
            zone,
            account,
            fqdn: fqdn.clone(),
            token_id: token_id.into(),
        };
        match self.commit(body).await? {
            Outcome::Removed => Ok(Change::Done),
            Outcome::NotFound => Ok(Change::NotFound),
            other => Err(unexpected(other)),
        }
    }

    async fn clear_abuse(&self, user_id: &UserId, fqdn: &Fqdn) -> Result<Change, DirectoryError> {
        let Some((account, zone)) = self.owned_host(user_id, fqdn).await? else {
            return Ok(Change::NotFound);
        };
        let body = EventBody::HostAbuseChanged {
            zone,
            fqdn: fqdn.clone(),
            abusive: false,
            account: Some(account),
        };
        match self.commit(body).await? {
            Outcome::Modified | Outcome::NoChange => Ok(Change::Done),
            Outcome::NotFound => Ok(Change::NotFound),
            other => Err(unexpected(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The directory over a real log and fold: races decided by the log's order, and an account
    //! removal that a stopped node left half done.

    use ddns_core::{ACCOUNTS_KEY, EventBody, Fqdn, Label, Outcome};

    use super::*;
    use crate::fixture::Backend;

    const ZONE: &str = "dyn.example";
    const OTHER_ZONE: &str = "cam.example";
    /// Rounds of each race: enough for both orders to come up on two threads.
    const ROUNDS: usize = 20;

    fn fqdn(name: &str) -> Fqdn {
        Fqdn::parse(name).expect("test names are valid")
    }

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("test user IDs are valid")
    }

    fn account(user_id: &str, email: &str) -> NewAccount {
        NewAccount {
            user_id: user(user_id),
            email: email.into(),
            password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
        }
    }

    fn new_host(host: &str) -> NewHost {
        NewHost {
            zone: fqdn(ZONE),
            group: None,
            host: Label::parse(host).expect("valid label"),
            password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            port: None,
        }
    }

    #[test]
    fn accounts_and_the_zone_are_in_different_partitions() {
        // The premise of these tests: an account's events and its names' events are ordered
        // by different partitions, as on a server.
        assert_ne!(
            ddns_log::partition_for(ACCOUNTS_KEY, 2),
            ddns_log::partition_for(ZONE.as_bytes(), 2)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_sign_ups_for_one_user_id_create_one_account() {
        let backend = Backend::new(&[ZONE]).await;
        let directory = &backend.directory;
        for round in 0..ROUNDS {
            let id = format!("alice{round}");
            let (a, b) = tokio::join!(
                directory.sign_up(account(&id, &format!("a{round}@example.com"))),
                directory.sign_up(account(&id, &format!("b{round}@example.com"))),
            );
            let mut got = [a.expect("answers"), b.expect("answers")];
            got.sort_by_key(|s| *s != SignUp::Created);
            assert_eq!(got, [SignUp::Created, SignUp::UserIdTaken], "round {round}");
            assert!(directory.user_exists(&user(&id)).await.expect("answers"));
        }
        let accounts = backend.view.with_state(|s| s.accounts().count());
        assert_eq!(accounts, ROUNDS);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_sign_ups_with_one_email_create_one_account() {
        let backend = Backend::new(&[ZONE]).await;
        let directory = &backend.directory;
        for round in 0..ROUNDS {
            let email = format!("shared{round}@example.com");
            let (a, b) = tokio::join!(
                directory.sign_up(account(&format!("alice{round}"), &email)),
                directory.sign_up(account(&format!("bobby{round}"), &email)),
            );
            let mut got = [a.expect("answers"), b.expect("answers")];
            got.sort_by_key(|s| *s != SignUp::Created);
            assert_eq!(got, [SignUp::Created, SignUp::EmailTaken], "round {round}");
            let owners = backend
                .view
                .with_state(|s| s.accounts().filter(|a| a.email == email).count());
            assert_eq!(owners, 1, "round {round}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_host_created_while_its_account_is_removed_leaves_nothing() {
        let backend = Backend::new(&[ZONE, OTHER_ZONE]).await;
        let directory = &backend.directory;
        for round in 0..ROUNDS {
            let user_id = user(&format!("alice{round}"));
            let signed_up = directory
                .sign_up(account(user_id.as_str(), &format!("a{round}@example.com")))
                .await;
            assert_eq!(signed_up, Ok(SignUp::Created));
            let id = backend
                .view
                .with_state(|s| s.account(user_id.as_str()).map(|a| a.id))
                .expect("the account exists");
            let name = fqdn(&format!("cam{round}.{ZONE}"));
            // The owner creates the host and gives it an address (so the zone would have a
            // record), while another of their sessions removes the account.
            let add = async {
                let outcome = directory.create_host(&user_id, new_host(&format!("cam{round}")));
                match outcome.await.expect("answers") {
                    CreateHost::Created(fqdn) => {
                        assert_eq!(fqdn, name);
                        let edit = HostEdit {
                            ip: Some("192.0.2.7".parse().expect("literal")),
                            ..HostEdit::default()
                        };
                        let edited = directory.edit_host(&user_id, &fqdn, edit).await;
                        assert!(matches!(edited, Ok(Change::Done | Change::NotFound)));
                    }
                    CreateHost::NoAccount => {}
                    other => panic!("round {round}: {other:?}"),
                }
            };
            let ((), removed) = tokio::join!(add, directory.remove_account(&user_id));
            assert_eq!(removed, Ok(Change::Done), "round {round}");

            assert_eq!(directory.account(&user_id).await, Ok(None));
            assert_eq!(directory.hosts(&user_id).await, Ok(vec![]));
            assert_eq!(
                directory.name_exists(&name).await,
                Ok(false),
                "round {round}"
            );
            backend.view.with_state(|s| {
                assert_eq!(s.names_of(id).count(), 0, "round {round}");
                assert!(s.account_host(&name).is_none(), "round {round}");
            });
            assert_eq!(
                backend.view.zone().get(name.as_str()),
                None,
                "round {round}"
            );
        }
    }

    #[tokio::test]
    async fn release_removed_finishes_a_removal_a_stopped_node_left() {
        let backend = Backend::new(&[ZONE, OTHER_ZONE]).await;
        let directory = &backend.directory;
        let alice = user("alice1");
        let signed_up = directory
            .sign_up(account("alice1", "alice@example.com"))
            .await;
        assert_eq!(signed_up, Ok(SignUp::Created));
        let name = fqdn("cam1.dyn.example");
        let created = directory.create_host(&alice, new_host("cam1")).await;
        assert_eq!(created, Ok(CreateHost::Created(name.clone())));
        let edit = HostEdit {
            ip: Some("192.0.2.7".parse().expect("literal")),
            ..HostEdit::default()
        };
        assert_eq!(
            directory.edit_host(&alice, &name, edit).await,
            Ok(Change::Done)
        );
        assert!(backend.view.zone().get(name.as_str()).is_some());
        assert_eq!(directory.release_removed().await, Ok(0), "nothing to do");

        // A node commits the removal and stops before releasing the account's names.
        let id = backend
            .view
            .with_state(|s| s.account("alice1").map(|a| a.id))
            .expect("the account exists");
        let removed = backend
            .commit(EventBody::AccountRemoved { account: id })
            .await;
        assert_eq!(removed, Outcome::Removed);
        assert_eq!(directory.account(&alice).await, Ok(None));
        assert_eq!(directory.name_exists(&name).await, Ok(true), "not released");
        assert!(backend.view.zone().get(name.as_str()).is_some());

        // The next start releases it, in every zone, once.
        assert_eq!(directory.release_removed().await, Ok(2));
        assert_eq!(directory.name_exists(&name).await, Ok(false));
        assert_eq!(backend.view.zone().get(name.as_str()), None);
        backend.view.with_state(|s| {
            assert_eq!(s.names_of(id).count(), 0);
            assert!(s.is_released(&fqdn(ZONE), id) && s.is_released(&fqdn(OTHER_ZONE), id));
        });
        assert_eq!(directory.release_removed().await, Ok(0));
    }
}
