//! The operator's commands on people: `ddnsd user add|list|remove`, `ddnsd host
//! add|list|token`.
//!
//! A running server listens on `<data_dir>/admin.sock` (owner-only: whoever can open it can
//! create accounts): the command sends one JSON request line and prints the one reply line's
//! output. With the server stopped, the command opens the data dir itself (the log, and the
//! snapshot to fold from), runs the same [`execute`], and closes it again. Either way every
//! change is an event through the portal's [`LogDirectory`], with the portal's rules.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use ddns_core::{Fqdn, HostStatus, Label, LiveZone, State};
use ddns_ingest::{PasswordHasher, generate_host_password};
use ddns_portal::{
    Change, CreateGroup, CreateHost, Directory, LogDirectory, NewAccount, NewHost, SignUp, UserId,
    format_time,
};
use ddns_projector::{Committer, Projector, ProjectorView};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::config::Config;

/// One command, as it crosses the admin socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// `ddnsd user add USER_ID --email E` (password from stdin).
    UserAdd {
        user_id: String,
        email: String,
        password: String,
    },
    /// `ddnsd user list`.
    UserList,
    /// `ddnsd user remove USER_ID`: the account, its groups and its hosts.
    UserRemove { user_id: String },
    /// `ddnsd host add FQDN --user USER_ID` (host password from stdin, or generated).
    HostAdd {
        fqdn: String,
        user_id: String,
        password: Option<String>,
    },
    /// `ddnsd host list [--user USER_ID]`.
    HostList { user_id: Option<String> },
    /// `ddnsd host token FQDN --user USER_ID [--revoke ID]`: a new update token (printed
    /// once), or revoke one.
    HostToken {
        fqdn: String,
        user_id: String,
        revoke: Option<String>,
    },
}

/// What a command printed, or why it failed.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    Done { output: String },
    Failed { error: String },
}

/// Binds the admin socket at `path` (replacing a stale one), owner-only. Bound before the
/// server says it is ready, so a command sent right after finds it.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    // A socket left by a killed server; a running one holds the data dir's log (or its
    // snapshot), so it cannot be here too.
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers the admin socket's commands until the process ends.
pub async fn serve(
    listener: UnixListener,
    directory: Arc<LogDirectory>,
    hasher: Arc<PasswordHasher>,
    view: ProjectorView,
    zones: Vec<Fqdn>,
) -> anyhow::Result<()> {
    let admin = Arc::new(Admin {
        directory,
        hasher,
        view,
        zones,
    });
    loop {
        let (stream, _) = listener.accept().await?;
        let admin = admin.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(stream, &admin).await {
                tracing::warn!(%error, "admin request failed");
            }
        });
    }
}

/// What [`execute`] works with: the server's directory, hasher, fold and portal zones.
struct Admin {
    directory: Arc<LogDirectory>,
    hasher: Arc<PasswordHasher>,
    view: ProjectorView,
    zones: Vec<Fqdn>,
}

async fn answer(stream: UnixStream, admin: &Admin) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(64 * 1024))
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<Request>(&line) {
        Ok(request) => execute(request, admin).await,
        Err(error) => Reply::Failed {
            error: format!("malformed request: {error}"),
        },
    };
    let mut out = serde_json::to_vec(&reply)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    Ok(())
}

/// Runs one command.
async fn execute(request: Request, admin: &Admin) -> Reply {
    match run(request, admin).await {
        Ok(output) => Reply::Done { output },
        Err(error) => Reply::Failed {
            error: format!("{error:#}"),
        },
    }
}

async fn run(request: Request, admin: &Admin) -> anyhow::Result<String> {
    let directory = &admin.directory;
    match request {
        Request::UserAdd {
            user_id,
            email,
            password,
        } => {
            let Some(id) = UserId::parse(&user_id) else {
                bail!("user ID {user_id:?}: 5 to 20 letters or digits");
            };
            let Some(email) = ddns_portal::normalize_email(&email) else {
                bail!("e-mail address {email:?} is not valid");
            };
            if let Some(problem) = ddns_portal::password_problem(&password, &password, &user_id) {
                bail!("{problem}");
            }
            let password_hash = admin.hasher.hash(password).await?;
            let account = NewAccount {
                user_id: id.clone(),
                email,
                password_hash,
            };
            match directory.sign_up(account).await? {
                SignUp::Created => Ok(format!("created user {id}")),
                SignUp::UserIdTaken => bail!("USER ID Duplicate Error"),
                SignUp::EmailTaken => bail!("USER EMAIL Duplicate Error"),
            }
        }
        Request::UserList => {
            admin.directory.caught_up().await?;
            Ok(admin.view.with_state(user_list))
        }
        Request::UserRemove { user_id } => {
            let id = UserId::parse(&user_id).context("no such user")?;
            match directory.remove_account(&id).await? {
                Change::Done => Ok(format!("removed user {id} and its hosts")),
                Change::NotFound => bail!("no such user"),
            }
        }
        Request::HostAdd {
            fqdn,
            user_id,
            password,
        } => {
            let id = UserId::parse(&user_id).context("no such user")?;
            let fqdn = Fqdn::parse(&fqdn).with_context(|| format!("{fqdn:?} is not a name"))?;
            let Some(zone) = admin
                .zones
                .iter()
                .filter(|zone| fqdn.is_within(zone) && fqdn != **zone)
                .max_by_key(|zone| zone.as_str().len())
            else {
                bail!("{fqdn} is in none of the portal's zones");
            };
            let relative = &fqdn.as_str()[..fqdn.as_str().len() - zone.as_str().len() - 1];
            let (host, group) = match relative.split_once('.') {
                None => (relative, None),
                Some((host, group)) if !group.contains('.') => (host, Some(group)),
                Some(_) => bail!("{fqdn}: a host is HOST.zone or HOST.GROUP.zone"),
            };
            let host = Label::parse(host)?;
            let group = group.map(Label::parse).transpose()?;
            let (password, generated) = match password {
                Some(password) if ddns_portal::host_password_ok(&password) => (password, false),
                Some(_) => bail!("host password: 3 to 64 visible ASCII characters"),
                None => (generate_host_password(), true),
            };
            if let Some(group) = &group
                && !directory
                    .groups(&id)
                    .await?
                    .iter()
                    .any(|g| &g.zone == zone && &g.name == group)
            {
                match directory.create_group(&id, zone, group).await? {
                    CreateGroup::Created => {}
                    CreateGroup::Taken => bail!("group {group}.{zone} belongs to someone else"),
                    CreateGroup::NoAccount => bail!("no such user"),
                }
            }
            let password_hash = admin.hasher.hash(password.clone()).await?;
            let new = NewHost {
                zone: zone.clone(),
                group,
                host,
                password_hash,
                port: None,
            };
            match directory.create_host(&id, new).await? {
                CreateHost::Created(fqdn) if generated => Ok(format!(
                    "created host {fqdn}\nhost password (shown once): {password}"
                )),
                CreateHost::Created(fqdn) => Ok(format!("created host {fqdn}")),
                CreateHost::Taken => bail!("{fqdn} is taken"),
                CreateHost::NoSuchGroup => bail!("the group is not the user's"),
                CreateHost::NoAccount => bail!("no such user"),
            }
        }
        Request::HostToken {
            fqdn,
            user_id,
            revoke,
        } => {
            let id = UserId::parse(&user_id).context("no such user")?;
            let fqdn = Fqdn::parse(&fqdn).with_context(|| format!("{fqdn:?} is not a name"))?;
            match revoke {
                Some(token_id) => match directory.revoke_token(&id, &fqdn, &token_id).await? {
                    Change::Done => Ok(format!("revoked token {token_id} of {fqdn}")),
                    Change::NotFound => bail!("{fqdn} of {id} has no token {token_id}"),
                },
                None => {
                    let token = ddns_ingest::new_update_token();
                    match directory
                        .add_token(&id, &fqdn, &token.id, &token.hash)
                        .await?
                    {
                        Change::Done => Ok(format!(
                            "token {} for {fqdn} (shown once): {}",
                            token.id, token.token
                        )),
                        Change::NotFound => bail!("{fqdn} is not a host of {id}"),
                    }
                }
            }
        }
        Request::HostList { user_id } => {
            let id = user_id
                .map(|u| UserId::parse(&u).context("no such user"))
                .transpose()?;
            admin.directory.caught_up().await?;
            Ok(admin.view.with_state(|state| host_list(state, id.as_ref())))
        }
    }
}

fn user_list(state: &State) -> String {
    let mut accounts: Vec<_> = state.accounts().collect();
    accounts.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    let mut out = String::from("USER ID\tE-MAIL\tHOSTS\tCREATED\n");
    for account in accounts {
        let hosts = state
            .names_of(account.id)
            .filter(|n| state.account_host(n).is_some())
            .count();
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            account.user_id,
            account.email,
            hosts,
            format_time(Some(account.created_ms))
        ));
    }
    out.truncate(out.trim_end().len());
    out
}

fn host_list(state: &State, user: Option<&UserId>) -> String {
    let mut rows: Vec<(String, String)> = state
        .account_hosts()
        .filter_map(|(fqdn, host)| {
            let owner = state.account_by_id(host.account)?;
            if user.is_some_and(|u| u.as_str() != owner.user_id) {
                return None;
            }
            let status = match host.status {
                HostStatus::Standby => "STANDBY",
                HostStatus::Ok => "OK",
                HostStatus::Error => "ERROR",
            };
            let addr = |a: Option<String>| a.unwrap_or_else(|| "-".into());
            Some((
                fqdn.to_string(),
                format!(
                    "{fqdn}\t{}\t{status}\t{}\t{}\t{}\n",
                    owner.user_id,
                    addr(host.v4.map(|a| a.to_string())),
                    addr(host.v6.map(|a| a.to_string())),
                    format_time(host.updated_ms),
                ),
            ))
        })
        .collect();
    rows.sort();
    let mut out = String::from("HOST\tUSER ID\tSTATUS\tIPV4\tIPV6\tLAST UPDATED\n");
    out.extend(rows.into_iter().map(|(_, row)| row));
    out.truncate(out.trim_end().len());
    out
}

/// Runs `request` against the server of `config`: through its admin socket if it is running,
/// else on its data dir directly. Returns what to print.
pub async fn send(config: &Config, request: Request) -> anyhow::Result<String> {
    let path = config.admin_socket();
    let reply = match UnixStream::connect(&path).await {
        Ok(mut stream) => {
            let mut line = serde_json::to_vec(&request)?;
            line.push(b'\n');
            stream.write_all(&line).await?;
            let mut reply = String::new();
            BufReader::new(stream).read_line(&mut reply).await?;
            serde_json::from_str(&reply).context("reading the server's reply")?
        }
        Err(_) => offline(config, request).await?,
    };
    match reply {
        Reply::Done { output } => Ok(output),
        Reply::Failed { error } => bail!("{error}"),
    }
}

/// Runs `request` on a stopped server's data dir: folds its log, commits, and closes it.
async fn offline(config: &Config, request: Request) -> anyhow::Result<Reply> {
    let log = crate::eventlog::open(config).await?;
    let snapshot_dir = config.data_dir.join("snapshot");
    let zone = Arc::new(LiveZone::new(Vec::new()));
    let projector = Projector::open_or_rebuild(&snapshot_dir, zone, log.clone())
        .with_context(|| format!("opening the snapshot in {}", snapshot_dir.display()))?;
    let view = projector.view();
    let task = tokio::spawn(projector.run());
    let end = log.end().await.context("reading the log's end")?;
    view.wait_applied(&end).await;
    let timeout = Duration::from_millis(config.ingest.reply_timeout_ms);
    let committer = Arc::new(Committer::new(log, view.clone(), timeout));
    let zones = config.portal_zones()?;
    let admin = Admin {
        directory: Arc::new(LogDirectory::new(committer, zones.clone())),
        hasher: Arc::new(PasswordHasher::new()),
        view,
        zones,
    };
    let reply = execute(request, &admin).await;
    // Dropping the projector writes what it folded to the snapshot.
    task.abort();
    let _ = task.await;
    Ok(reply)
}
