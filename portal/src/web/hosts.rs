//! The host list, groups and hosts: creating them with their duplicate checks, editing and
//! removing a host.

use super::*;

#[derive(Default)]
struct HostsExtras {
    notice: Option<String>,
    error: Option<String>,
    generated: Option<Generated>,
    group_check: Option<String>,
    host_check: Option<String>,
    group_value: String,
    host_value: String,
    host_group_value: String,
    port_value: String,
}

async fn hosts_list(
    portal: &Portal,
    visit: &Visit,
    user_id: &UserId,
    status: StatusCode,
    extras: HostsExtras,
) -> Answer {
    let directory = portal.directory();
    let Some(account) = directory.account(user_id).await? else {
        return Ok(account_gone(portal, visit));
    };
    let groups = directory.groups(user_id).await?;
    let hosts = directory.hosts(user_id).await?;
    let count = hosts.len();
    // Newest first, numbered as the seed numbers them: the newest has the highest number.
    let rows = hosts
        .iter()
        .enumerate()
        .rev()
        .map(|(i, h)| HostRow::from_view(i + 1, h))
        .collect();
    let page = pages::Hosts {
        layout: portal.layout(visit),
        notice: extras.notice,
        error: extras.error,
        generated: extras.generated,
        user_id: account.user_id.to_string(),
        email: account.email,
        group_count: groups.len(),
        host_count: count,
        last_updated: pages::last_updated(&hosts),
        rows,
        groups: groups.iter().map(GroupOption::from_view).collect(),
        zones: portal.inner.zones.iter().map(ToString::to_string).collect(),
        group_check: extras.group_check,
        host_check: extras.host_check,
        group_value: extras.group_value,
        host_value: extras.host_value,
        host_group_value: extras.host_group_value,
        port_value: extras.port_value,
    };
    render(status, &page, visit)
}

#[derive(Deserialize)]
pub(super) struct HostsQuery {
    #[serde(default)]
    check_group: Option<String>,
    #[serde(default)]
    check_host: Option<String>,
    #[serde(default)]
    in_group: String,
    #[serde(default)]
    zone: Option<String>,
}

pub(super) async fn hosts_page(
    State(portal): State<Portal>,
    visit: Visit,
    Query(query): Query<HostsQuery>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let mut extras = HostsExtras::default();
    if let Some(group) = query.check_group {
        extras.group_check = Some(
            group_check_reply(&portal, query.zone.as_deref(), &group)
                .await?
                .1,
        );
        extras.group_value = group.trim().to_owned();
    }
    if let Some(host) = query.check_host {
        let reply =
            host_check_reply(&portal, query.zone.as_deref(), &host, &query.in_group).await?;
        extras.host_check = Some(reply.1);
        extras.host_value = host.trim().to_owned();
        extras.host_group_value = query.in_group.trim().to_owned();
    }
    hosts_list(&portal, &visit, &user_id, StatusCode::OK, extras).await
}

#[derive(Deserialize)]
pub(super) struct CheckGroupQuery {
    #[serde(default)]
    group: String,
    #[serde(default)]
    zone: Option<String>,
}

/// The group duplicate check: `[Group Name] => Not existed [brave.zone]`.
async fn group_check_reply(
    portal: &Portal,
    zone: Option<&str>,
    group: &str,
) -> Result<(StatusCode, String), PageError> {
    let zone = match portal.zone(zone) {
        Ok(zone) => zone,
        Err(message) => return Ok((StatusCode::UNPROCESSABLE_ENTITY, message.to_owned())),
    };
    let Ok(label) = Label::parse(group) else {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            msg::GROUP_INVALID.to_owned(),
        ));
    };
    let exists = portal.directory().group_exists(&zone, &label).await?;
    let word = if exists {
        "Already existed"
    } else {
        "Not existed"
    };
    Ok((
        StatusCode::OK,
        format!("[Group Name] => {word} [{label}.{zone}]"),
    ))
}

pub(super) async fn check_group(
    State(portal): State<Portal>,
    visit: Visit,
    Query(query): Query<CheckGroupQuery>,
) -> Answer {
    let (status, reply) = group_check_reply(&portal, query.zone.as_deref(), &query.group).await?;
    Ok(text(status, reply, &visit))
}

#[derive(Deserialize)]
pub(super) struct CheckHostQuery {
    #[serde(default)]
    host: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    zone: Option<String>,
}

/// The name a host gets: `host.group.zone`, or `host.zone` with group use off (`group` empty).
fn host_name(
    zone: &Fqdn,
    group: &str,
    host: &str,
) -> Result<(Option<Label>, Label, Fqdn), &'static str> {
    let host = Label::parse(host).map_err(|_| msg::HOST_INVALID)?;
    let group = match group.trim() {
        "" => None,
        group => Some(Label::parse(group).map_err(|_| msg::GROUP_INVALID)?),
    };
    let too_long = |_: NameError| msg::NAME_TOO_LONG;
    let parent = match &group {
        Some(group) => zone.child(group).map_err(too_long)?,
        None => zone.clone(),
    };
    let fqdn = parent.child(&host).map_err(too_long)?;
    Ok((group, host, fqdn))
}

/// The host duplicate check: `[DNS Name] => Not existed [rifa001.brian.zone]`.
async fn host_check_reply(
    portal: &Portal,
    zone: Option<&str>,
    host: &str,
    group: &str,
) -> Result<(StatusCode, String), PageError> {
    let named = portal
        .zone(zone)
        .and_then(|zone| host_name(&zone, group, host));
    let fqdn = match named {
        Ok((_, _, fqdn)) => fqdn,
        Err(message) => return Ok((StatusCode::UNPROCESSABLE_ENTITY, message.to_owned())),
    };
    let exists = portal.directory().name_exists(&fqdn).await?;
    let word = if exists {
        "Already existed"
    } else {
        "Not existed"
    };
    Ok((StatusCode::OK, format!("[DNS Name] => {word} [{fqdn}]")))
}

pub(super) async fn check_host(
    State(portal): State<Portal>,
    visit: Visit,
    Query(query): Query<CheckHostQuery>,
) -> Answer {
    let (status, reply) =
        host_check_reply(&portal, query.zone.as_deref(), &query.host, &query.group).await?;
    Ok(text(status, reply, &visit))
}

#[derive(Deserialize)]
pub(super) struct GroupForm {
    #[serde(default)]
    group: String,
    #[serde(default)]
    zone: Option<String>,
}

pub(super) async fn add_group(
    State(portal): State<Portal>,
    visit: Visit,
    Form(form): Form<GroupForm>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let refuse = |status: StatusCode, message: String| {
        let extras = HostsExtras {
            error: Some(message),
            group_value: form.group.trim().to_owned(),
            ..Default::default()
        };
        (status, extras)
    };
    let zone = match portal.zone(form.zone.as_deref()) {
        Ok(zone) => zone,
        Err(message) => {
            let (status, extras) = refuse(StatusCode::UNPROCESSABLE_ENTITY, message.to_owned());
            return hosts_list(&portal, &visit, &user_id, status, extras).await;
        }
    };
    let Ok(group) = Label::parse(&form.group) else {
        let (status, extras) = refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            msg::GROUP_INVALID.to_owned(),
        );
        return hosts_list(&portal, &visit, &user_id, status, extras).await;
    };
    match portal
        .directory()
        .create_group(&user_id, &zone, &group)
        .await?
    {
        CreateGroup::Created => {
            tracing::info!(user_id = %user_id, group = %group, zone = %zone, "portal: group created");
            let extras = HostsExtras {
                notice: Some(format!("Group {group}.{zone} registered.")),
                host_group_value: group.to_string(),
                ..Default::default()
            };
            hosts_list(&portal, &visit, &user_id, StatusCode::CREATED, extras).await
        }
        CreateGroup::Taken => {
            let message = format!("[Group Name] => Already existed [{group}.{zone}]");
            let (status, extras) = refuse(StatusCode::CONFLICT, message);
            hosts_list(&portal, &visit, &user_id, status, extras).await
        }
        CreateGroup::NoAccount => Ok(account_gone(&portal, &visit)),
    }
}

#[derive(Deserialize)]
pub(super) struct HostForm {
    #[serde(default)]
    host: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    host_password: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    zone: Option<String>,
}

pub(super) async fn add_host(
    State(portal): State<Portal>,
    visit: Visit,
    Form(form): Form<HostForm>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let refuse = |status: StatusCode, message: String| {
        let extras = HostsExtras {
            error: Some(message),
            host_value: form.host.trim().to_owned(),
            host_group_value: form.group.trim().to_owned(),
            port_value: form.port.trim().to_owned(),
            ..Default::default()
        };
        (status, extras)
    };
    let checked = portal
        .zone(form.zone.as_deref())
        .and_then(|zone| Ok((host_name(&zone, &form.group, &form.host)?, zone)))
        .and_then(|named| Ok((named, rules::port(&form.port)?)))
        .and_then(|named| {
            let password = form.host_password.as_str();
            if password.is_empty() || rules::host_password_ok(password) {
                Ok(named)
            } else {
                Err(msg::HOST_PASSWORD_INVALID)
            }
        });
    let (((group, host, fqdn), zone), port) = match checked {
        Ok(checked) => checked,
        Err(message) => {
            let (status, extras) = refuse(StatusCode::UNPROCESSABLE_ENTITY, message.to_owned());
            return hosts_list(&portal, &visit, &user_id, status, extras).await;
        }
    };
    let directory = portal.directory();
    // Cheap before costly: refuse a group that is not the account's, or a taken name, before
    // an argon2 run. The directory decides again when it appends.
    if let Some(group) = &group {
        let groups = directory.groups(&user_id).await?;
        if !groups.iter().any(|g| g.zone == zone && &g.name == group) {
            let (status, extras) = refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                msg::NO_SUCH_GROUP.to_owned(),
            );
            return hosts_list(&portal, &visit, &user_id, status, extras).await;
        }
    }
    let taken = format!("[DNS Name] => Already existed [{fqdn}]");
    if directory.name_exists(&fqdn).await? {
        let (status, extras) = refuse(StatusCode::CONFLICT, taken);
        return hosts_list(&portal, &visit, &user_id, status, extras).await;
    }
    let generated = form.host_password.is_empty();
    let password = if generated {
        ddns_ingest::generate_host_password()
    } else {
        form.host_password.clone()
    };
    let password_hash = portal.hasher.hash(password.clone()).await?;
    let new_host = NewHost {
        zone,
        group,
        host,
        password_hash,
        port,
    };
    match directory.create_host(&user_id, new_host).await? {
        CreateHost::Created(fqdn) => {
            tracing::info!(user_id = %user_id, fqdn = %fqdn, "portal: host created");
            let extras = HostsExtras {
                notice: Some(format!("USER HOST REGISTRATION: {fqdn}")),
                generated: generated.then(|| Generated {
                    fqdn: fqdn.to_string(),
                    password,
                }),
                ..Default::default()
            };
            hosts_list(&portal, &visit, &user_id, StatusCode::CREATED, extras).await
        }
        CreateHost::Taken => {
            let (status, extras) = refuse(StatusCode::CONFLICT, taken);
            hosts_list(&portal, &visit, &user_id, status, extras).await
        }
        CreateHost::NoSuchGroup => {
            let (status, extras) = refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                msg::NO_SUCH_GROUP.to_owned(),
            );
            hosts_list(&portal, &visit, &user_id, status, extras).await
        }
        CreateHost::NoAccount => Ok(account_gone(&portal, &visit)),
    }
}

/// The host `fqdn` if it is the account's; 404 for a malformed name, a missing host and
/// another account's host alike.
async fn own_host(
    portal: &Portal,
    user_id: &UserId,
    fqdn: &str,
) -> Result<(Fqdn, crate::directory::HostView), PageError> {
    let fqdn = Fqdn::parse(fqdn).map_err(|_| PageError::NotFound)?;
    let host = portal
        .directory()
        .host(user_id, &fqdn)
        .await?
        .ok_or(PageError::NotFound)?;
    Ok((fqdn, host))
}

fn edit_form(
    portal: &Portal,
    visit: &Visit,
    status: StatusCode,
    host: &crate::directory::HostView,
    notice: Option<&str>,
    error: Option<&str>,
) -> Answer {
    edit_form_with_token(portal, visit, status, host, notice, error, None)
}

/// The edit page, showing `new_token` once if one was just created.
fn edit_form_with_token(
    portal: &Portal,
    visit: &Visit,
    status: StatusCode,
    host: &crate::directory::HostView,
    notice: Option<&str>,
    error: Option<&str>,
    new_token: Option<String>,
) -> Answer {
    let page = pages::EditHost {
        layout: portal.layout(visit),
        notice: notice.map(str::to_owned),
        error: error.map(str::to_owned),
        row: HostRow::from_view(0, host),
        port_value: host.port.map(|p| p.to_string()).unwrap_or_default(),
        tokens: host
            .tokens
            .iter()
            .map(|(id, created)| (id.clone(), pages::format_time(Some(*created))))
            .collect(),
        new_token,
    };
    render(status, &page, visit)
}

pub(super) async fn edit_page(
    State(portal): State<Portal>,
    visit: Visit,
    Path(fqdn): Path<String>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let (_, host) = own_host(&portal, &user_id, &fqdn).await?;
    edit_form(&portal, &visit, StatusCode::OK, &host, None, None)
}

#[derive(Deserialize)]
pub(super) struct EditForm {
    #[serde(default)]
    ip: String,
    #[serde(default)]
    host_password: String,
    #[serde(default)]
    port: String,
}

pub(super) async fn edit_host(
    State(portal): State<Portal>,
    visit: Visit,
    Path(fqdn): Path<String>,
    Form(form): Form<EditForm>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let (fqdn, host) = own_host(&portal, &user_id, &fqdn).await?;
    let checked = rules::ip(&form.ip)
        .and_then(|ip| Ok((ip, rules::port(&form.port)?)))
        .and_then(|checked| {
            let password = form.host_password.as_str();
            if password.is_empty() || rules::host_password_ok(password) {
                Ok(checked)
            } else {
                Err(msg::HOST_PASSWORD_INVALID)
            }
        });
    let (ip, port) = match checked {
        Ok(checked) => checked,
        Err(message) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return edit_form(&portal, &visit, status, &host, None, Some(message));
        }
    };
    let password_hash = match form.host_password.is_empty() {
        true => None,
        false => Some(portal.hasher.hash(form.host_password).await?),
    };
    let edit = HostEdit {
        ip,
        password_hash,
        port: Some(port),
    };
    match portal.directory().edit_host(&user_id, &fqdn, edit).await? {
        Change::Done => {
            tracing::info!(user_id = %user_id, fqdn = %fqdn, "portal: host edited");
            let (_, host) = own_host(&portal, &user_id, fqdn.as_str()).await?;
            edit_form(
                &portal,
                &visit,
                StatusCode::OK,
                &host,
                Some(msg::HOST_CHANGED),
                None,
            )
        }
        Change::NotFound => Err(PageError::NotFound),
    }
}

pub(super) async fn remove_host(
    State(portal): State<Portal>,
    visit: Visit,
    Path(fqdn): Path<String>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let fqdn = Fqdn::parse(&fqdn).map_err(|_| PageError::NotFound)?;
    let change = portal.directory().remove_host(&user_id, &fqdn).await?;
    back_to_hosts(change, &user_id, &fqdn, "host removed")
}

pub(super) async fn clear_abuse(
    State(portal): State<Portal>,
    visit: Visit,
    Path(fqdn): Path<String>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let fqdn = Fqdn::parse(&fqdn).map_err(|_| PageError::NotFound)?;
    let change = portal.directory().clear_abuse(&user_id, &fqdn).await?;
    back_to_hosts(change, &user_id, &fqdn, "abuse mark cleared")
}

/// Most update tokens a host may have at once.
const TOKENS_MAX: usize = 10;

pub(super) async fn add_token(
    State(portal): State<Portal>,
    visit: Visit,
    Path(fqdn): Path<String>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let (fqdn, host) = own_host(&portal, &user_id, &fqdn).await?;
    if host.tokens.len() >= TOKENS_MAX {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return edit_form(&portal, &visit, status, &host, None, Some(msg::TOKENS_FULL));
    }
    let token = ddns_ingest::new_update_token();
    match portal
        .directory()
        .add_token(&user_id, &fqdn, &token.id, &token.hash)
        .await?
    {
        Change::Done => {
            tracing::info!(user_id = %user_id, fqdn = %fqdn, token_id = %token.id, "portal: update token created");
            let (_, host) = own_host(&portal, &user_id, fqdn.as_str()).await?;
            edit_form_with_token(
                &portal,
                &visit,
                StatusCode::OK,
                &host,
                None,
                None,
                Some(token.token),
            )
        }
        Change::NotFound => Err(PageError::NotFound),
    }
}

pub(super) async fn revoke_token(
    State(portal): State<Portal>,
    visit: Visit,
    Path((fqdn, token_id)): Path<(String, String)>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    let fqdn = Fqdn::parse(&fqdn).map_err(|_| PageError::NotFound)?;
    let change = portal
        .directory()
        .revoke_token(&user_id, &fqdn, &token_id)
        .await?;
    back_to_hosts(change, &user_id, &fqdn, "update token revoked")
}

/// Back to the host list after the owner's change, logged; 404 for a host that is not theirs.
fn back_to_hosts(change: Change, user_id: &UserId, fqdn: &Fqdn, what: &'static str) -> Answer {
    match change {
        Change::Done => {
            tracing::info!(user_id = %user_id, fqdn = %fqdn, "portal: {what}");
            Ok(see_other("/hosts"))
        }
        Change::NotFound => Err(PageError::NotFound),
    }
}
