//! Inviting someone (from the users page), revoking, and accepting an invitation link.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use logbook_accounts::permission::ManageUsers;
use logbook_accounts::Secret;
use logbook_core::Role;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{flash, public_page, respond, Flash};
use super::users::users_result;
use super::{form_error, parse_role, path_id, see_other, Empty, TokenQuery};
use crate::auth::{PageForm, SameOrigin};
use crate::extract::RequestSource;
use crate::AppState;

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
    token: Secret,
    password: Secret,
}

pub async fn accept_invite(
    State(state): State<AppState>,
    _: SameOrigin,
    RequestSource(source): RequestSource,
    Form(f): Form<AcceptForm>,
) -> Response {
    let inv = match state.accounts.open_invitation(f.token.expose()).await {
        Ok(inv) => inv,
        Err(e) => {
            return match form_error(e) {
                Ok((status, m)) => super::layout::error_page(status.as_u16(), "Invitation not valid", &m),
                Err(page) => page,
            }
        }
    };
    match state.accounts.accept_invitation(f.token.expose(), f.password.expose(), &source).await {
        Ok(_) => see_other("/login?notice=accepted"),
        Err(e) => match form_error(e) {
            Ok((status, m)) => {
                respond(status, invite_form(f.token.expose(), &inv.email, inv.role, Some(Flash::Error(m))))
            }
            Err(page) => page,
        },
    }
}

#[derive(Debug, Deserialize)]
pub struct InviteForm {
    email: String,
    role: String,
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
