//! The console's pages. Each GET renders; each POST checks CSRF (through [`PageForm`]), calls
//! the accounts service, and redirects with a notice, or renders the page again with the error.

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use logbook_accounts::permission::{
    ManageProtectedUsers, ManageSettings, ManageUsers, OwnAccount, ReadAuditLog, ReadProtectedUsers, ReadUsers,
};
use logbook_accounts::{AccountError, Authorized, Caller, SettingsPatch, SignIn};
use logbook_core::Role;
use maud::{html, Markup};
use serde::Deserialize;

use super::form_error;
use super::layout::{csrf_field, flash, page, public_page, respond, Flash};
use crate::auth::{clear_session_cookie, session_cookie, Page, PageCaller, PageForm};
use crate::routes::accounts::RequestSource;
use crate::AppState;

/// Only same-site paths are followed after sign-in.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".into(),
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

#[derive(Debug, Deserialize, Default)]
pub struct Notice {
    notice: Option<String>,
}

/// Notices come from our own redirects: only known keys are shown.
fn notice(n: &Notice) -> Option<Flash> {
    let text = match n.notice.as_deref()? {
        "invited" => "Invitation created.",
        "added" => "User added.",
        "role" => "Role changed.",
        "deleted" => "User deleted.",
        "revoked" => "Invitation revoked.",
        "protected_added" => "Protected user added.",
        "protected_removed" => "Protected user removed.",
        "saved" => "Settings saved.",
        "password" => "Password changed.",
        "totp_on" => "TOTP is enrolled. You will be asked for a code at sign-in.",
        "totp_off" => "TOTP removed.",
        "accepted" => "Your account is ready. Sign in with your email and new password.",
        "setup" => "The first admin is ready. Sign in.",
        _ => return None,
    };
    Some(Flash::Notice(text.into()))
}

pub async fn home(PageCaller(caller): PageCaller) -> Response {
    if caller.may::<ReadAuditLog>() {
        see_other("/audit-log")
    } else {
        see_other("/account")
    }
}

// ---- Sign in -----------------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
    #[serde(flatten)]
    notice: Notice,
}

fn login_form(next: &str, email: &str, message: Option<Flash>) -> Markup {
    public_page(
        "Sign in",
        html! {
            h1 { "Sign in" }
            (flash(&message))
            form.panel method="post" action="/login" {
                input type="hidden" name="next" value=(next);
                label for="email" { "Email" }
                input id="email" type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input id="password" type="password" name="password" autocomplete="current-password" required;
                div.actions { button type="submit" { "Sign in" } }
            }
        },
    )
}

fn totp_form(next: &str, pending: &str, message: Option<Flash>) -> Markup {
    public_page(
        "Verification code",
        html! {
            h1 { "Verification code" }
            (flash(&message))
            form.panel method="post" action="/login/totp" {
                input type="hidden" name="next" value=(next);
                input type="hidden" name="pending" value=(pending);
                label for="code" { "Code from your authenticator app" }
                input id="code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus;
                div.actions { button type="submit" { "Verify" } a href="/login" { "Start over" } }
            }
        },
    )
}

pub async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    respond(StatusCode::OK, login_form(&safe_next(q.next.as_deref()), "", notice(&q.notice)))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

fn signed_in(state: &AppState, token: &logbook_accounts::Secret, next: &str) -> Response {
    let mut resp = see_other(next);
    resp.headers_mut().insert(header::SET_COOKIE, session_cookie(state, token));
    resp
}

pub async fn login(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match state.accounts.sign_in(&f.email, &f.password, None, &source).await {
        Ok(SignIn::Done(s)) => signed_in(&state, &s.token, &next),
        Ok(SignIn::NeedsTotp { pending }) => respond(StatusCode::OK, totp_form(&next, &pending, None)),
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, login_form(&next, &f.email, Some(Flash::Error(m)))),
            Err(page) => page,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct TotpForm {
    pending: String,
    code: String,
    next: Option<String>,
}

pub async fn login_totp(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    Form(f): Form<TotpForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match state.accounts.sign_in_totp(&f.pending, &f.code, &source).await {
        Ok(s) => signed_in(&state, &s.token, &next),
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, totp_form(&next, &f.pending, Some(Flash::Error(m)))),
            Err(page) => page,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct Empty {}

pub async fn logout(State(state): State<AppState>, f: PageForm<OwnAccount, Empty>) -> Response {
    if let Err(e) = state.accounts.sign_out(&f.auth).await {
        if let Err(page) = form_error(e) {
            return page;
        }
    }
    let mut resp = see_other("/login");
    resp.headers_mut().insert(header::SET_COOKIE, clear_session_cookie(&state));
    resp
}

// ---- First admin and invitations ---------------------------------------------------------

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn setup_form(token: &str, email: &str, message: Option<Flash>) -> Markup {
    public_page(
        "Create the first admin",
        html! {
            h1 { "Create the first admin" }
            p.muted { "This one-time link creates the first admin of this installation." }
            (flash(&message))
            form.panel method="post" action="/setup" {
                input type="hidden" name="token" value=(token);
                label for="email" { "Email" }
                input id="email" type="email" name="email" value=(email) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input id="password" type="password" name="password" autocomplete="new-password" minlength="8" maxlength="128" required;
                p.small.muted { "8 to 128 characters; common or easily guessed passwords are refused. A passphrase works well." }
                div.actions { button type="submit" { "Create admin" } }
            }
        },
    )
}

pub async fn setup_page(State(state): State<AppState>, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    if !state.accounts.setup_token_is_valid(&token) {
        return super::layout::error_page(
            400,
            "Link not valid",
            "This setup link is not valid: it may have expired or been used. Restart `logbook serve` on an empty store for a new one, or use `logbook admin create`.",
        );
    }
    respond(StatusCode::OK, setup_form(&token, "", None))
}

#[derive(Debug, Deserialize)]
pub struct SetupForm {
    token: String,
    email: String,
    password: String,
}

pub async fn setup(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    Form(f): Form<SetupForm>,
) -> Response {
    match state.accounts.complete_setup(&f.token, &f.email, &f.password, &source).await {
        Ok(_) => see_other("/login?notice=setup"),
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, setup_form(&f.token, &f.email, Some(Flash::Error(m)))),
            Err(page) => page,
        },
    }
}

fn invite_form(token: &str, email: &str, role: Role, message: Option<Flash>) -> Markup {
    public_page(
        "Accept invitation",
        html! {
            h1 { "Accept invitation" }
            p { "You are invited as " strong { (role.label()) } " with the email " strong { (email) } "." }
            (flash(&message))
            form.panel method="post" action="/invite" {
                input type="hidden" name="token" value=(token);
                label for="password" { "Choose a password" }
                input id="password" type="password" name="password" autocomplete="new-password" minlength="8" maxlength="128" required autofocus;
                p.small.muted { "8 to 128 characters; common or easily guessed passwords are refused." }
                div.actions { button type="submit" { "Create my account" } }
            }
        },
    )
}

pub async fn invite_page(State(state): State<AppState>, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    match state.accounts.open_invitation(&token).await {
        Ok(inv) => respond(StatusCode::OK, invite_form(&token, &inv.email, inv.role, None)),
        Err(e) => match form_error(e) {
            Ok((status, m)) => super::layout::error_page(status.as_u16(), "Invitation not valid", &m),
            Err(page) => page,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    token: String,
    password: String,
}

pub async fn accept_invite(
    State(state): State<AppState>,
    RequestSource(source): RequestSource,
    Form(f): Form<AcceptForm>,
) -> Response {
    let inv = match state.accounts.open_invitation(&f.token).await {
        Ok(inv) => inv,
        Err(e) => {
            return match form_error(e) {
                Ok((status, m)) => super::layout::error_page(status.as_u16(), "Invitation not valid", &m),
                Err(page) => page,
            }
        }
    };
    match state.accounts.accept_invitation(&f.token, &f.password, &source).await {
        Ok(_) => see_other("/login?notice=accepted"),
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, invite_form(&f.token, &inv.email, inv.role, Some(Flash::Error(m)))),
            Err(page) => page,
        },
    }
}

// ---- Management users ----------------------------------------------------------------------

fn role_select(name: &str, selected: Role) -> Markup {
    html! {
        select name=(name) aria-label="Role" {
            @for r in Role::ALL {
                option value=(r.code()) selected[r == selected] { (r.label()) }
            }
        }
    }
}

async fn render_users(
    state: &AppState,
    auth: &Authorized<ReadUsers>,
    message: Option<Flash>,
    status: StatusCode,
) -> Response {
    let csrf = state.accounts.csrf_token(auth);
    let (users, invitations) =
        match (state.accounts.list_users(auth).await, state.accounts.list_invitations(auth).await) {
            (Ok(u), Ok(i)) => (u, i),
            (Err(e), _) | (_, Err(e)) => return super::layout::api_error_page(e.into()),
        };
    let manage = auth.may::<ManageUsers>();
    let body = html! {
        h1 { "Management users" }
        (flash(&message))
        @if manage {
            div.grid2 {
                form.panel method="post" action="/users/invite" {
                    h2 { "Invite a user" }
                    (csrf_field(&csrf))
                    div.row {
                        div { label for="invite-email" { "Email" } input id="invite-email" type="email" name="email" required; }
                        div.fit { label for="invite-role" { "Role" } (role_select("role", Role::Auditor)) }
                    }
                    div.actions { button type="submit" { "Send invitation" } }
                }
                form.panel method="post" action="/users/add" {
                    h2 { "Add a user directly" }
                    (csrf_field(&csrf))
                    div.row {
                        div { label for="add-email" { "Email" } input id="add-email" type="email" name="email" required; }
                        div.fit { label for="add-role" { "Role" } (role_select("role", Role::Auditor)) }
                    }
                    label for="add-password" { "Initial password" }
                    input id="add-password" type="password" name="password" autocomplete="new-password" minlength="8" maxlength="128" required;
                    div.actions { button type="submit" { "Add user" } }
                }
            }
        }
        h2 { "Users" }
        div.table-wrap {
            table {
                thead { tr { th { "Email" } th { "Role" } th { "TOTP" } th { "Created (UTC)" } @if manage { th { span.skip { "Actions" } } } } }
                tbody {
                    @for u in &users {
                        tr {
                            td { (u.email) @if u.locked { " " span.badge.fail { "locked" } } }
                            td {
                                @if manage {
                                    form.inline method="post" action=(format!("/users/{}/role", u.id)) {
                                        (csrf_field(&csrf))
                                        (role_select("role", u.role))
                                        " " button.secondary type="submit" { "Change" }
                                    }
                                } @else { (u.role.label()) }
                            }
                            td { @if u.totp_enrolled { span.badge.ok { "on" } } @else { span.badge { "off" } } }
                            td.small { (u.created.get(..19).unwrap_or(&u.created).replace('T', " ")) }
                            @if manage {
                                td {
                                    form.inline method="post" action=(format!("/users/{}/delete", u.id)) {
                                        (csrf_field(&csrf))
                                        button.danger type="submit" aria-label=(format!("Delete {}", u.email)) { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Invitations" }
        @if invitations.is_empty() {
            p.muted { "No invitations yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Email" } th { "Role" } th { "Invited by" } th { "Expires (UTC)" } th { "Status" } @if manage { th { span.skip { "Actions" } } } } }
                    tbody {
                        @for i in &invitations {
                            tr {
                                td { (i.email) }
                                td { (i.role.label()) }
                                td { (i.invited_by) }
                                td.small { (i.expires.get(..19).unwrap_or(&i.expires).replace('T', " ")) }
                                td { span.badge { (i.status) } }
                                @if manage {
                                    td {
                                        @if i.status == "open" {
                                            form.inline method="post" action=(format!("/invitations/{}/revoke", i.id)) {
                                                (csrf_field(&csrf))
                                                button.danger type="submit" { "Revoke" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(status, page(state, "Management users", auth, &csrf, "/users", body))
}

pub async fn users(State(state): State<AppState>, Page(auth): Page<ReadUsers>, Query(n): Query<Notice>) -> Response {
    render_users(&state, &auth, notice(&n), StatusCode::OK).await
}

/// After a change on the users page: back to it with a notice, or the page with the error.
async fn users_result(
    state: &AppState,
    caller: &Caller,
    result: Result<Option<Flash>, AccountError>,
    key: &str,
) -> Response {
    let flash = match result {
        Ok(None) => return see_other(&format!("/users?notice={key}")),
        Ok(Some(f)) => (StatusCode::OK, f),
        Err(e) => match form_error(e) {
            Ok((status, m)) => (status, Flash::Error(m)),
            Err(page) => return page,
        },
    };
    match caller.clone().authorize::<ReadUsers>() {
        Ok(read) => render_users(state, &read, Some(flash.1), flash.0).await,
        // An analyst cannot get here (the page needs ManageUsers), but stay safe.
        Err(_) => see_other("/"),
    }
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    email: String,
    role: String,
}

fn parse_role(s: &str) -> Result<Role, AccountError> {
    Role::from_code(s).map_err(|e| AccountError::Invalid(e.to_string()))
}

pub async fn users_invite(State(state): State<AppState>, f: PageForm<ManageUsers, InviteForm>) -> Response {
    let result = match parse_role(&f.form.role) {
        Ok(role) => state.accounts.invite(&f.auth, &f.form.email, role).await.map(|created| {
            let sent = if created.mailed { " It was sent by email." } else { "" };
            Some(Flash::Notice(format!(
                "Invitation created for {}.{sent} Share this single-use link (it expires {}): {}",
                created.invitation.email, created.invitation.expires, created.link
            )))
        }),
        Err(e) => Err(e),
    };
    users_result(&state, &f.auth, result, "invited").await
}

#[derive(Debug, Deserialize)]
pub struct AddUserForm {
    email: String,
    role: String,
    password: String,
}

pub async fn users_add(State(state): State<AppState>, f: PageForm<ManageUsers, AddUserForm>) -> Response {
    let result = match parse_role(&f.form.role) {
        Ok(role) => state.accounts.add_user(&f.auth, &f.form.email, role, &f.form.password).await.map(|_| None),
        Err(e) => Err(e),
    };
    users_result(&state, &f.auth, result, "added").await
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: String,
}

fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, AccountError> {
    raw.parse().map_err(|_| AccountError::NotFound("record"))
}

pub async fn users_role(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: PageForm<ManageUsers, RoleForm>,
) -> Response {
    let result = match (path_id(&id), parse_role(&f.form.role)) {
        (Ok(id), Ok(role)) => state.accounts.set_role(&f.auth, id, role).await.map(|_| None),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    users_result(&state, &f.auth, result, "role").await
}

pub async fn users_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: PageForm<ManageUsers, Empty>,
) -> Response {
    let result = match path_id(&id) {
        Ok(id) => state.accounts.delete_user(&f.auth, id).await.map(|_| None),
        Err(e) => Err(e),
    };
    users_result(&state, &f.auth, result, "deleted").await
}

pub async fn invitation_revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: PageForm<ManageUsers, Empty>,
) -> Response {
    let result = match path_id(&id) {
        Ok(id) => state.accounts.revoke_invitation(&f.auth, id).await.map(|_| None),
        Err(e) => Err(e),
    };
    users_result(&state, &f.auth, result, "revoked").await
}

// ---- Protected users -----------------------------------------------------------------------

#[derive(Debug, Deserialize, Default)]
pub struct ProtectedQuery {
    q: Option<String>,
    after: Option<String>,
    #[serde(flatten)]
    notice: Notice,
}

const PROTECTED_PAGE: usize = 50;

async fn render_protected(
    state: &AppState,
    auth: &Authorized<ReadProtectedUsers>,
    q: &ProtectedQuery,
    message: Option<Flash>,
    status: StatusCode,
) -> Response {
    let csrf = state.accounts.csrf_token(auth);
    let rows = match state.accounts.list_protected(auth, q.q.as_deref(), q.after.as_deref(), PROTECTED_PAGE).await {
        Ok(r) => r,
        Err(e) => return super::layout::api_error_page(e.into()),
    };
    let manage = auth.may::<ManageProtectedUsers>();
    let search = q.q.clone().unwrap_or_default();
    let next = (rows.len() == PROTECTED_PAGE).then(|| rows.last().map(|r| r.email.clone())).flatten();
    let body = html! {
        h1 { "Protected users" }
        (flash(&message))
        @if manage {
            div.grid2 {
                form.panel method="post" action="/protected-users/add" {
                    h2 { "Add a protected user" }
                    (csrf_field(&csrf))
                    label for="p-email" { "Email" }
                    input id="p-email" type="email" name="email" required;
                    label for="p-name" { "Name" }
                    input id="p-name" type="text" name="name" maxlength="200" required;
                    div.actions { button type="submit" { "Add" } }
                }
                form.panel method="post" action="/protected-users/import" {
                    h2 { "Import from CSV" }
                    (csrf_field(&csrf))
                    label for="p-csv" { "CSV with the header " code { "email,name" } " (paste it, or pick a file)" }
                    input #p-file type="file" accept=".csv,text/csv" aria-label="CSV file";
                    textarea id="p-csv" name="csv" placeholder="email,name\nada@example.com,Ada Lovelace" required {}
                    div.actions { button type="submit" { "Import" } }
                }
            }
            script src="/assets/console.js" defer {}
        }
        h2 { "List" }
        form.row method="get" action="/protected-users" role="search" {
            div { label for="p-q" { "Search email or name" } input id="p-q" type="search" name="q" value=(search); }
            div.fit { button.secondary type="submit" { "Search" } }
        }
        p {}
        @if rows.is_empty() {
            p.muted { @if search.is_empty() { "No protected users yet." } @else { "No protected user matches." } }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Email" } th { "Name" } th { "Added (UTC)" } @if manage { th { span.skip { "Actions" } } } } }
                    tbody {
                        @for p in &rows {
                            tr {
                                td { (p.email) }
                                td { (p.name) }
                                td.small { (p.added.get(..19).unwrap_or(&p.added).replace('T', " ")) }
                                @if manage {
                                    td {
                                        form.inline method="post" action=(format!("/protected-users/{}/remove", p.id)) {
                                            (csrf_field(&csrf))
                                            button.danger type="submit" aria-label=(format!("Remove {}", p.email)) { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            div.actions {
                @if q.after.is_some() { a.button.secondary href=(format!("/protected-users?q={}", urlencode(&search))) { "First page" } }
                @if let Some(n) = next { a.button.secondary href=(format!("/protected-users?q={}&after={}", urlencode(&search), urlencode(&n))) { "Next page" } }
            }
        }
    };
    respond(status, page(state, "Protected users", auth, &csrf, "/protected-users", body))
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn protected(
    State(state): State<AppState>,
    Page(auth): Page<ReadProtectedUsers>,
    Query(q): Query<ProtectedQuery>,
) -> Response {
    let n = notice(&q.notice);
    render_protected(&state, &auth, &q, n, StatusCode::OK).await
}

async fn protected_result(
    state: &AppState,
    caller: &Caller,
    result: Result<Option<Flash>, AccountError>,
    key: &str,
) -> Response {
    let (status, flash) = match result {
        Ok(None) => return see_other(&format!("/protected-users?notice={key}")),
        Ok(Some(f)) => (StatusCode::OK, f),
        Err(e) => match form_error(e) {
            Ok((status, m)) => (status, Flash::Error(m)),
            Err(page) => return page,
        },
    };
    match caller.clone().authorize::<ReadProtectedUsers>() {
        Ok(read) => render_protected(state, &read, &ProtectedQuery::default(), Some(flash), status).await,
        Err(_) => see_other("/"),
    }
}

#[derive(Debug, Deserialize)]
pub struct ProtectedForm {
    email: String,
    name: String,
}

pub async fn protected_add(
    State(state): State<AppState>,
    f: PageForm<ManageProtectedUsers, ProtectedForm>,
) -> Response {
    let result = state.accounts.add_protected(&f.auth, &f.form.email, &f.form.name).await.map(|_| None);
    protected_result(&state, &f.auth, result, "protected_added").await
}

pub async fn protected_remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: PageForm<ManageProtectedUsers, Empty>,
) -> Response {
    let result = match path_id(&id) {
        Ok(id) => state.accounts.remove_protected(&f.auth, id).await.map(|_| None),
        Err(e) => Err(e),
    };
    protected_result(&state, &f.auth, result, "protected_removed").await
}

#[derive(Debug, Deserialize)]
pub struct ImportForm {
    csv: String,
}

pub async fn protected_import(
    State(state): State<AppState>,
    f: PageForm<ManageProtectedUsers, ImportForm>,
) -> Response {
    let result = state.accounts.import_protected(&f.auth, f.form.csv.as_bytes()).await.map(|report| {
        let mut text = format!("Imported {} protected user(s).", report.added);
        if !report.errors.is_empty() {
            let shown: Vec<String> =
                report.errors.iter().take(20).map(|e| format!("line {} ({}): {}", e.line, e.email, e.error)).collect();
            text.push_str(&format!(" {} row(s) were not imported: {}", report.errors.len(), shown.join("; ")));
            if report.errors.len() > 20 {
                text.push_str("; …");
            }
            return Some(Flash::Error(text));
        }
        Some(Flash::Notice(text))
    });
    protected_result(&state, &f.auth, result, "imported").await
}

// ---- Settings ------------------------------------------------------------------------------

async fn render_settings(
    state: &AppState,
    auth: &Authorized<ManageSettings>,
    message: Option<Flash>,
    status: StatusCode,
) -> Response {
    let csrf = state.accounts.csrf_token(auth);
    let s = match state.accounts.get_settings(auth).await {
        Ok(s) => s,
        Err(e) => return super::layout::api_error_page(e.into()),
    };
    let checkpoint = state.log.latest_checkpoint(&state.default_org).await.ok().flatten();
    let zones: Vec<String> = jiff::tz::db().available().map(|z| z.to_string()).collect();
    let body = html! {
        h1 { "Settings" }
        (flash(&message))
        form.panel method="post" action="/settings" {
            (csrf_field(&csrf))
            h2 { "Time zone" }
            label for="tz" { "Platform time zone (the audit log shows times in it)" }
            select id="tz" name="time_zone" {
                @for z in &zones { option value=(z) selected[*z == s.time_zone] { (z) } }
            }
            h2 { "Sessions" }
            div.row {
                div { label for="idle" { "Idle timeout (minutes)" } input id="idle" type="number" name="session_idle_minutes" min="1" max="1440" value=(s.session_idle_minutes) required; }
                div { label for="abs" { "Absolute limit (hours)" } input id="abs" type="number" name="session_absolute_hours" min="1" max="720" value=(s.session_absolute_hours) required; }
            }
            h2 { "Lockout" }
            div.row {
                div { label for="thr" { "Failed sign-ins before lockout" } input id="thr" type="number" name="lockout_threshold" min="1" max="1000" value=(s.lockout_threshold) required; }
                div { label for="lock" { "Lockout (minutes)" } input id="lock" type="number" name="lockout_minutes" min="1" max="1440" value=(s.lockout_minutes) required; }
            }
            div.actions { button type="submit" { "Save settings" } }
        }
        h2 id="integrity" { "Integrity" }
        (self_check_panel(&state.log.self_check_status()))
        div.panel {
            p { "Every entry of the audit log is part of a signed Merkle log. Anyone with the public key can verify it with " code { "logbook verify" } "." }
            p { strong { "Public key: " } code { (state.log.signer().verifier_key()) } }
            @match &checkpoint {
                Some(c) => {
                    p { strong { "Latest signed checkpoint: " } (c.size) " entries, signed " (c.signed_at.to_rfc3339()) }
                    pre.mono { (c.note) }
                }
                None => { p.muted { "No checkpoint signed yet." } }
            }
        }
    };
    respond(status, page(state, "Settings", auth, &csrf, "/settings", body))
}

/// The last integrity self-check, as the settings page shows it.
fn self_check_panel(status: &logbook_log::selfcheck::SelfCheckStatus) -> Markup {
    html! {
        div.panel {
            h3 { "Self-check" }
            p.muted {
                "In the background, the newest part of each organization's log (everything since the previous check, and at least the last "
                (logbook_log::selfcheck::RECENT_EVENTS) " entries) is recomputed and compared with its newest signed checkpoint."
            }
            @match &status.last {
                None => { p.muted { "No self-check has run yet." } }
                Some(run) => {
                    @if run.is_ok() {
                        p.notice role="status" {
                            "Passed: the log matches its newest signed checkpoint ("
                            (run.verified_size()) " entries)."
                        }
                    } @else {
                        p.error role="alert" {
                            strong { "Self-check FAILED. " }
                            "The stored audit log does not match its newest signed checkpoint: entries, tree tiles or checkpoints were changed or removed outside Logbook. Run "
                            code { "logbook verify" } " on the store and keep the witness copies of the checkpoints."
                        }
                        @if let Some(e) = &run.error { p.error { (e) } }
                    }
                    p { strong { "Last run: " } (run.at.to_rfc3339()) }
                    p {
                        strong { "Last passed: " }
                        @match status.last_success { Some(t) => { (t.to_rfc3339()) } None => { "never" } }
                    }
                    table {
                        thead { tr { th { "Organization" } th { "Checkpoint size" } th { "Entries re-read" } th { "Result" } } }
                        tbody {
                            @for o in &run.orgs {
                                tr {
                                    td { (o.org) }
                                    td { (o.size) }
                                    td { (o.from) "–" (o.size) }
                                    td {
                                        @if o.is_ok() { "intact" } @else {
                                            strong { "DAMAGED" }
                                            @if let Some(seq) = o.first_bad_seq { " — first bad seq " (seq) }
                                            ul { @for p in &o.problems { li { (p) } } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn settings(
    State(state): State<AppState>,
    Page(auth): Page<ManageSettings>,
    Query(n): Query<Notice>,
) -> Response {
    render_settings(&state, &auth, notice(&n), StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct SettingsForm {
    time_zone: String,
    session_idle_minutes: String,
    session_absolute_hours: String,
    lockout_threshold: String,
    lockout_minutes: String,
}

fn number(field: &str, v: &str) -> Result<u32, AccountError> {
    v.trim().parse().map_err(|_| AccountError::Invalid(format!("{field} must be a whole number")))
}

pub async fn settings_save(State(state): State<AppState>, f: PageForm<ManageSettings, SettingsForm>) -> Response {
    let form = &f.form;
    let patch = (|| {
        Ok::<_, AccountError>(SettingsPatch {
            time_zone: Some(form.time_zone.clone()),
            session_idle_minutes: Some(number("Idle timeout", &form.session_idle_minutes)?),
            session_absolute_hours: Some(number("Absolute limit", &form.session_absolute_hours)?),
            lockout_threshold: Some(number("Failed sign-ins before lockout", &form.lockout_threshold)?),
            lockout_minutes: Some(number("Lockout", &form.lockout_minutes)?),
        })
    })();
    let result = match patch {
        Ok(p) => state.accounts.update_settings(&f.auth, &p).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => see_other("/settings?notice=saved"),
        Err(e) => match form_error(e) {
            Ok((status, m)) => render_settings(&state, &f.auth, Some(Flash::Error(m)), status).await,
            Err(page) => page,
        },
    }
}

// ---- Own account ---------------------------------------------------------------------------

async fn render_account(state: &AppState, caller: &Caller, message: Option<Flash>, status: StatusCode) -> Response {
    let csrf = state.accounts.csrf_token(caller);
    let enrolment = if caller.totp_enrolled() { None } else { state.accounts.begin_totp(caller).ok() };
    let body = html! {
        h1 { "My account" }
        (flash(&message))
        div.grid2 {
            form.panel method="post" action="/account/password" {
                h2 { "Change password" }
                (csrf_field(&csrf))
                label for="cur" { "Current password" }
                input id="cur" type="password" name="current_password" autocomplete="current-password" required;
                label for="new" { "New password" }
                input id="new" type="password" name="new_password" autocomplete="new-password" minlength="8" maxlength="128" required;
                div.actions { button type="submit" { "Change password" } }
            }
            div.panel {
                h2 { "Two-step verification (TOTP)" }
                @match &enrolment {
                    None => {
                        p { span.badge.ok { "on" } " A code from your authenticator app is asked at sign-in." }
                        form method="post" action="/account/totp/remove" {
                            (csrf_field(&csrf))
                            label for="rm-pw" { "Password, to remove TOTP" }
                            input id="rm-pw" type="password" name="password" autocomplete="current-password" required;
                            div.actions { button.danger type="submit" { "Remove TOTP" } }
                        }
                    }
                    Some(e) => {
                        p { "Scan this code with an authenticator app, or enter the secret by hand, then type the code it shows." }
                        div.qr { (maud::PreEscaped(&e.qr_svg)) }
                        p.small { "Secret: " code { (e.secret) } }
                        form method="post" action="/account/totp" {
                            (csrf_field(&csrf))
                            input type="hidden" name="secret" value=(e.secret);
                            label for="totp-code" { "Code" }
                            input id="totp-code" type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                            div.actions { button type="submit" { "Turn on TOTP" } }
                        }
                    }
                }
            }
        }
    };
    respond(status, page(state, "My account", caller, &csrf, "/account", body))
}

pub async fn account(
    State(state): State<AppState>,
    PageCaller(caller): PageCaller,
    Query(n): Query<Notice>,
) -> Response {
    render_account(&state, &caller, notice(&n), StatusCode::OK).await
}

async fn account_result(state: &AppState, caller: &Caller, result: Result<(), AccountError>, key: &str) -> Response {
    match result {
        Ok(()) => see_other(&format!("/account?notice={key}")),
        Err(e) => match form_error(e) {
            Ok((status, m)) => render_account(state, caller, Some(Flash::Error(m)), status).await,
            Err(page) => page,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
}

pub async fn account_password(State(state): State<AppState>, f: PageForm<OwnAccount, PasswordForm>) -> Response {
    let r = state.accounts.change_password(&f.auth, &f.form.current_password, &f.form.new_password).await;
    account_result(&state, &f.auth, r, "password").await
}

#[derive(Debug, Deserialize)]
pub struct TotpConfirmForm {
    secret: String,
    code: String,
}

pub async fn account_totp_confirm(State(state): State<AppState>, f: PageForm<OwnAccount, TotpConfirmForm>) -> Response {
    let r = state.accounts.confirm_totp(&f.auth, &f.form.secret, &f.form.code).await;
    account_result(&state, &f.auth, r, "totp_on").await
}

#[derive(Debug, Deserialize)]
pub struct TotpRemoveForm {
    password: String,
}

pub async fn account_totp_remove(State(state): State<AppState>, f: PageForm<OwnAccount, TotpRemoveForm>) -> Response {
    let r = state.accounts.remove_totp(&f.auth, &f.form.password).await;
    account_result(&state, &f.auth, r, "totp_off").await
}
