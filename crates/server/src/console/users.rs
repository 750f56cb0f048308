//! The first admin (the one-time setup link) and the Management users page.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use logbook_accounts::permission::{ManageUsers, ReadUsers};
use logbook_accounts::Secret;
use logbook_accounts::{AccountError, Authorized, Caller};
use logbook_core::Role;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf_field, flash, page, public_page, respond, Flash};
use super::{form_error, notice, parse_role, path_id, see_other, Empty, Notice, TokenQuery};
use crate::auth::{Page, PageForm, SameOrigin};
use crate::extract::RequestSource;
use crate::AppState;

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
    token: Secret,
    email: String,
    password: Secret,
}

pub async fn setup(
    State(state): State<AppState>,
    _: SameOrigin,
    RequestSource(source): RequestSource,
    Form(f): Form<SetupForm>,
) -> Response {
    match state.accounts.complete_setup(f.token.expose(), &f.email, f.password.expose(), &source).await {
        Ok(_) => see_other("/login?notice=setup"),
        Err(e) => match form_error(e) {
            Ok((status, m)) => respond(status, setup_form(f.token.expose(), &f.email, Some(Flash::Error(m)))),
            Err(page) => page,
        },
    }
}

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
                                    form.inline method="post" action=(format!("/users/{}/sign-out", u.id)) {
                                        (csrf_field(&csrf))
                                        button.secondary type="submit" aria-label=(format!("Sign {} out everywhere", u.email)) { "Sign out everywhere" }
                                    }
                                    " "
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
pub(super) async fn users_result(
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
pub struct AddUserForm {
    email: String,
    role: String,
    password: Secret,
}

pub async fn users_add(State(state): State<AppState>, f: PageForm<ManageUsers, AddUserForm>) -> Response {
    let result = match parse_role(&f.form.role) {
        Ok(role) => state.accounts.add_user(&f.auth, &f.form.email, role, f.form.password.expose()).await.map(|_| None),
        Err(e) => Err(e),
    };
    users_result(&state, &f.auth, result, "added").await
}

#[derive(Debug, Deserialize)]
pub struct RoleForm {
    role: String,
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

/// Ends every session of a user. An admin who signs themselves out is sent to sign in again.
pub async fn users_sign_out(
    State(state): State<AppState>,
    Path(id): Path<String>,
    f: PageForm<ManageUsers, Empty>,
) -> Response {
    let result = match path_id(&id) {
        Ok(id) => state.accounts.sign_out_everywhere(&f.auth, id).await.map(|_| None),
        Err(e) => Err(e),
    };
    users_result(&state, &f.auth, result, "signed_out").await
}
