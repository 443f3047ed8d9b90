//! Signing up (with the seed's duplicate check), signing in and out, and the account page.

use super::*;

pub(super) async fn signin_page(State(portal): State<Portal>, mut visit: Visit) -> Answer {
    if visit.user().is_some() {
        return Ok(see_other("/hosts"));
    }
    visit.ensure(&portal);
    signin(&portal, &visit, StatusCode::OK, None, None, String::new())
}

fn signin(
    portal: &Portal,
    visit: &Visit,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
    user_id: String,
) -> Answer {
    let page = pages::SignIn {
        layout: portal.layout(visit),
        notice: notice.map(str::to_owned),
        error: error.map(str::to_owned),
        user_id,
        signup_open: portal.config().signup != SignupMode::Closed,
    };
    render(status, &page, visit)
}

#[derive(Deserialize)]
pub(super) struct CheckUserQuery {
    #[serde(default)]
    user_id: Option<String>,
}

/// What a duplicate check for a user ID answered.
enum UserCheck {
    Invalid,
    Free,
    Taken,
}

/// Runs the sign-up duplicate check and remembers a `Not existed` answer in the session.
async fn run_user_check(
    portal: &Portal,
    visit: &mut Visit,
    typed: &str,
) -> Result<UserCheck, PageError> {
    let Some(user_id) = UserId::parse(typed) else {
        return Ok(UserCheck::Invalid);
    };
    let exists = portal.directory().user_exists(&user_id).await?;
    visit.ensure(portal);
    let checked = (!exists).then_some(user_id);
    if let Some((id, session)) = &mut visit.session {
        session.checked_user_id = checked.clone();
        portal
            .inner
            .sessions
            .update(id, |s| s.checked_user_id = checked);
    }
    Ok(if exists {
        UserCheck::Taken
    } else {
        UserCheck::Free
    })
}

fn user_check_reply(check: &UserCheck, typed: &str) -> String {
    let typed = typed.trim();
    match check {
        UserCheck::Invalid => format!("Invalid [{typed}]: {}", msg::USER_ID_INVALID),
        UserCheck::Free => format!("Not existed [{typed}]"),
        UserCheck::Taken => format!("Already existed [{typed}]"),
    }
}

pub(super) async fn check_user(
    State(portal): State<Portal>,
    mut visit: Visit,
    Query(query): Query<CheckUserQuery>,
) -> Answer {
    let typed = query.user_id.unwrap_or_default();
    let check = run_user_check(&portal, &mut visit, &typed).await?;
    let status = match check {
        UserCheck::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    Ok(text(status, user_check_reply(&check, &typed), &visit))
}

pub(super) async fn signup_page(
    State(portal): State<Portal>,
    mut visit: Visit,
    Query(query): Query<CheckUserQuery>,
) -> Answer {
    let closed = portal.config().signup == SignupMode::Closed;
    let mut check = None;
    let mut user_id = String::new();
    if !closed && let Some(typed) = query.user_id {
        let answer = run_user_check(&portal, &mut visit, &typed).await?;
        check = Some(user_check_reply(&answer, &typed));
        user_id = typed.trim().to_owned();
    }
    visit.ensure(&portal);
    let status = if closed {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    signup_form(
        &portal,
        &visit,
        status,
        Vec::new(),
        check,
        user_id,
        String::new(),
    )
}

fn signup_form(
    portal: &Portal,
    visit: &Visit,
    status: StatusCode,
    errors: Vec<String>,
    check: Option<String>,
    user_id: String,
    email: String,
) -> Answer {
    let checked = visit
        .session
        .as_ref()
        .and_then(|(_, s)| s.checked_user_id.as_ref())
        .map(ToString::to_string);
    let closed = portal.config().signup == SignupMode::Closed;
    let mut errors = errors;
    if closed {
        errors = vec![msg::SIGNUP_CLOSED.to_owned()];
    }
    let page = pages::SignUpPage {
        layout: portal.layout(visit),
        closed,
        invite: portal.config().signup == SignupMode::Invite,
        errors,
        check,
        checked,
        user_id,
        email,
    };
    render(status, &page, visit)
}

#[derive(Deserialize)]
pub(super) struct SignupForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    invite: String,
}

pub(super) async fn signup(
    State(portal): State<Portal>,
    visit: Visit,
    Form(form): Form<SignupForm>,
) -> Answer {
    let mode = portal.config().signup;
    if mode == SignupMode::Closed {
        return signup_form(
            &portal,
            &visit,
            StatusCode::FORBIDDEN,
            Vec::new(),
            None,
            String::new(),
            String::new(),
        );
    }
    let mut errors: Vec<&'static str> = Vec::new();
    let user_id = UserId::parse(&form.user_id);
    match &user_id {
        None => errors.push(msg::USER_ID_INVALID),
        Some(id) => {
            let checked = visit
                .session
                .as_ref()
                .and_then(|(_, s)| s.checked_user_id.as_ref());
            if checked != Some(id) {
                errors.push(msg::USER_ID_UNCHECKED);
            }
        }
    }
    errors.extend(rules::password_problem(
        &form.password,
        &form.password_confirm,
        &form.user_id,
    ));
    let email = rules::email(&form.email);
    if email.is_none() {
        errors.push(msg::EMAIL_INVALID);
    }
    if mode == SignupMode::Invite && !invite_ok(&portal.config().invite_codes, &form.invite) {
        errors.push(msg::INVITE_INVALID);
    }
    let (Some(user_id), Some(email), true) = (user_id, email, errors.is_empty()) else {
        let errors = errors.into_iter().map(str::to_owned).collect();
        return signup_form(
            &portal,
            &visit,
            StatusCode::UNPROCESSABLE_ENTITY,
            errors,
            None,
            form.user_id.trim().to_owned(),
            form.email.trim().to_owned(),
        );
    };
    let taken = |message: &str| {
        signup_form(
            &portal,
            &visit,
            StatusCode::CONFLICT,
            vec![message.to_owned()],
            None,
            form.user_id.trim().to_owned(),
            form.email.trim().to_owned(),
        )
    };
    // Cheap before costly: a taken ID needs no argon2 run.
    if portal.directory().user_exists(&user_id).await? {
        return taken(msg::USER_ID_TAKEN);
    }
    let password_hash = portal.hasher.hash(form.password).await?;
    let outcome = portal
        .directory()
        .sign_up(NewAccount {
            user_id: user_id.clone(),
            email,
            password_hash,
        })
        .await?;
    match outcome {
        SignUp::Created => {
            if let Some(id) = visit.id() {
                portal
                    .inner
                    .sessions
                    .update(id, |s| s.checked_user_id = None);
            }
            tracing::info!(user_id = %user_id, "portal: account created");
            let notice = format!("Account {user_id} created. Sign in below.");
            signin(
                &portal,
                &visit,
                StatusCode::CREATED,
                Some(&notice),
                None,
                user_id.to_string(),
            )
        }
        SignUp::UserIdTaken => taken(msg::USER_ID_TAKEN),
        SignUp::EmailTaken => taken(msg::EMAIL_TAKEN),
    }
}

/// True if `code` is one of `codes`, every one compared in constant time.
fn invite_ok(codes: &[String], code: &str) -> bool {
    let code = code.trim().as_bytes();
    let mut found = subtle::Choice::from(0);
    for accepted in codes.iter().filter(|c| !c.is_empty()) {
        if accepted.len() == code.len() {
            found |= accepted.as_bytes().ct_eq(code);
        }
    }
    bool::from(found)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn login(
    State(portal): State<Portal>,
    Source(source): Source,
    visit: Visit,
    Form(form): Form<LoginForm>,
) -> Answer {
    let inner = &portal.inner;
    let typed = form.user_id.trim().to_owned();
    if inner.throttle.check(&typed, source).is_err() {
        return signin(
            &portal,
            &visit,
            StatusCode::TOO_MANY_REQUESTS,
            None,
            Some(msg::LOGIN_THROTTLED),
            typed,
        );
    }
    let account = match UserId::parse(&typed) {
        Some(user_id) => portal.directory().account(&user_id).await?,
        None => None,
    };
    // An unknown user costs one argon2 run too, against a hash nobody knows the password of.
    let verified = if form.password.len() > rules::PASSWORD_BYTES_MAX {
        false
    } else {
        match &account {
            Some(account) => {
                portal
                    .hasher
                    .verify(form.password, account.password_hash.clone())
                    .await?
            }
            None => portal.hasher.verify_dummy(form.password).await?,
        }
    };
    let (true, Some(account)) = (verified, account) else {
        inner.throttle.failed(&typed, source);
        return signin(
            &portal,
            &visit,
            StatusCode::UNAUTHORIZED,
            None,
            Some(msg::LOGIN_FAILED),
            typed,
        );
    };
    inner.throttle.succeeded(&typed);
    // A new session id at sign-in: an id planted before it is worth nothing after it.
    if let Some(old) = visit.id() {
        inner.sessions.remove(old);
    }
    let (id, session) = inner.sessions.create(Some(account.user_id.clone()));
    let visit = Visit {
        set_cookie: Some(inner.sessions.set_cookie(&id)),
        session: Some((id, session)),
    };
    tracing::info!(user_id = %account.user_id, "portal: signed in");
    let page = pages::Welcome {
        layout: portal.layout(&visit),
        user_id: account.user_id.to_string(),
    };
    render(StatusCode::OK, &page, &visit)
}

pub(super) async fn logout(State(portal): State<Portal>, visit: Visit) -> Response {
    if let Some(id) = visit.id() {
        portal.inner.sessions.remove(id);
    }
    let mut response = see_other("/");
    set_cookie(&mut response, &portal.inner.sessions.clear_cookie());
    response
}

async fn account_form(
    portal: &Portal,
    visit: &Visit,
    user_id: &UserId,
    status: StatusCode,
    notice: Option<&str>,
    error: Option<&str>,
) -> Answer {
    let Some(account) = portal.directory().account(user_id).await? else {
        return Ok(account_gone(portal, visit));
    };
    let page = pages::Account {
        layout: portal.layout(visit),
        notice: notice.map(str::to_owned),
        error: error.map(str::to_owned),
        user_id: account.user_id.to_string(),
        created: pages::created(&account),
        email: account.email,
    };
    render(status, &page, visit)
}

pub(super) async fn account_page(State(portal): State<Portal>, visit: Visit) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    account_form(&portal, &visit, &user_id, StatusCode::OK, None, None).await
}

/// Re-authenticates a signed-in user before a sensitive change, under the sign-in throttle (a
/// stolen session must not become a password-guessing oracle). `Ok(None)`: verified.
async fn reauthenticate(
    portal: &Portal,
    source: Option<IpAddr>,
    user_id: &UserId,
    password: String,
) -> Result<Option<(StatusCode, &'static str)>, PageError> {
    let inner = &portal.inner;
    if inner.throttle.check(user_id.as_str(), source).is_err() {
        return Ok(Some((StatusCode::TOO_MANY_REQUESTS, msg::LOGIN_THROTTLED)));
    }
    let Some(account) = portal.directory().account(user_id).await? else {
        return Err(PageError::NotFound);
    };
    let ok = password.len() <= rules::PASSWORD_BYTES_MAX
        && portal
            .hasher
            .verify(password, account.password_hash)
            .await?;
    if ok {
        Ok(None)
    } else {
        inner.throttle.failed(user_id.as_str(), source);
        Ok(Some((
            StatusCode::UNAUTHORIZED,
            msg::CURRENT_PASSWORD_WRONG,
        )))
    }
}

#[derive(Deserialize)]
pub(super) struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

pub(super) async fn change_password(
    State(portal): State<Portal>,
    Source(source): Source,
    visit: Visit,
    Form(form): Form<PasswordForm>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    if let Some(problem) =
        rules::password_problem(&form.password, &form.password_confirm, user_id.as_str())
    {
        return account_form(
            &portal,
            &visit,
            &user_id,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(problem),
        )
        .await;
    }
    if let Some((status, problem)) =
        reauthenticate(&portal, source, &user_id, form.current_password).await?
    {
        return account_form(&portal, &visit, &user_id, status, None, Some(problem)).await;
    }
    let hash = portal.hasher.hash(form.password).await?;
    match portal.directory().change_password(&user_id, hash).await? {
        Change::Done => {
            // Other sessions end; this one gets a new id.
            let sessions = &portal.inner.sessions;
            sessions.remove_account(&user_id, None);
            let (id, session) = sessions.create(Some(user_id.clone()));
            let visit = Visit {
                set_cookie: Some(sessions.set_cookie(&id)),
                session: Some((id, session)),
            };
            tracing::info!(user_id = %user_id, "portal: password changed");
            account_form(
                &portal,
                &visit,
                &user_id,
                StatusCode::OK,
                Some(msg::PASSWORD_CHANGED),
                None,
            )
            .await
        }
        Change::NotFound => Ok(account_gone(&portal, &visit)),
    }
}

#[derive(Deserialize)]
pub(super) struct RemoveAccountForm {
    #[serde(default)]
    password: String,
}

pub(super) async fn remove_account(
    State(portal): State<Portal>,
    Source(source): Source,
    visit: Visit,
    Form(form): Form<RemoveAccountForm>,
) -> Answer {
    let Some(user_id) = visit.user().cloned() else {
        return Ok(see_other("/"));
    };
    if let Some((status, problem)) =
        reauthenticate(&portal, source, &user_id, form.password).await?
    {
        return account_form(&portal, &visit, &user_id, status, None, Some(problem)).await;
    }
    match portal.directory().remove_account(&user_id).await? {
        Change::Done | Change::NotFound => {
            portal.inner.sessions.remove_account(&user_id, None);
            tracing::info!(user_id = %user_id, "portal: account removed");
            let visit = Visit {
                session: None,
                set_cookie: Some(portal.inner.sessions.clear_cookie()),
            };
            let page = pages::Message {
                layout: portal.layout(&visit),
                title: "Account removed".to_owned(),
                message: format!("Account {user_id}, its groups and its hosts were removed."),
            };
            render(StatusCode::OK, &page, &visit)
        }
    }
}
