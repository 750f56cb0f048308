//! The API tokens page (admins): the tokens services record with, what each may record, and
//! forms to create one (its secret shown once) and to revoke one.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use logbook_accounts::permission::ManageApiTokens;
use logbook_accounts::{AccountError, Authorized};
use maud::html;
use serde::Deserialize;

use super::layout::{csrf_field, flash, page, respond, Flash};
use super::{form_error, notice, see_other, Empty, Notice};
use crate::auth::{Page, PageForm};
use crate::AppState;

/// What a new token may record unless the admin lists more (service codes only).
const DEFAULT_ACTIONS: &str = "*";

async fn render(
    state: &AppState,
    auth: &Authorized<ManageApiTokens>,
    message: Option<Flash>,
    created: Option<(&str, &str)>,
    status: StatusCode,
) -> Response {
    let csrf = state.accounts.csrf_token(auth);
    let tokens = match state.accounts.api_tokens(auth).await {
        Ok(t) => t,
        Err(e) => return super::layout::api_error_page(e.into()),
    };
    let body = html! {
        h1 { "API tokens" }
        p.muted.small {
            "The platform's services record their events with these tokens. A token records its service's own actions ("
            code { "<service>.<noun>.<verb>" } ", e.g. " code { "billing.invoice.paid" } "). The platform's own actions (sign-ins, users, roles, settings, …) and the actor type "
            code { "system" } " only when its list names them, e.g. " code { "login.*" } " for an external sign-in service, or " code { "actor:system" } "."
        }
        (flash(&message))
        @if let Some((name, secret)) = created {
            div.panel role="status" {
                h2 { "Token " (name) " created" }
                p { "Copy it now: it is shown only once, and only its hash is stored." }
                p { code #new-token { (secret) } }
            }
        }
        form.panel method="post" action="/api-tokens" {
            h2 { "Create a token" }
            (csrf_field(&csrf))
            label for="t-name" { "Name (the service that will use it; shown as the Source of its events)" }
            input id="t-name" type="text" name="name" maxlength="64" pattern="[A-Za-z0-9._\\-]+" required;
            label for="t-actions" { "May record (comma-separated: * for every service code, billing.*, login.success, actor:system)" }
            input id="t-actions" type="text" name="actions" value=(DEFAULT_ACTIONS) maxlength="1000" required;
            div.actions { button type="submit" { "Create" } }
        }
        h2 { "Tokens" }
        @if tokens.is_empty() {
            p.muted { "No API tokens yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr { th { "Name" } th { "May record" } th { "Created (UTC)" } th { "State" } th { span.skip { "Actions" } } } }
                    tbody {
                        @for t in &tokens {
                            tr {
                                td { (t.name) }
                                td {
                                    code { (t.grant) }
                                    @if t.grant.grants_platform() { " " span.badge.fail { "platform actions" } }
                                }
                                td.small { (t.created) }
                                td.small { @match t.revoked { Some(r) => { "revoked " (r) }, None => { "active" } } }
                                td {
                                    @if t.revoked.is_none() {
                                        form.inline method="post" action=(format!("/api-tokens/{}/revoke", t.name)) {
                                            (csrf_field(&csrf))
                                            button.danger type="submit" aria-label=(format!("Revoke {}", t.name)) { "Revoke" }
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
    respond(status, page(state, "API tokens", auth, &csrf, "/api-tokens", body))
}

pub async fn api_tokens(
    State(state): State<AppState>,
    Page(auth): Page<ManageApiTokens>,
    Query(n): Query<Notice>,
) -> Response {
    render(&state, &auth, notice(&n), None, StatusCode::OK).await
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    name: String,
    actions: String,
}

pub async fn api_tokens_create(State(state): State<AppState>, f: PageForm<ManageApiTokens, CreateForm>) -> Response {
    match state.accounts.create_api_token(&f.auth, &f.form.name, &f.form.actions).await {
        // The secret is in this response only: no redirect could carry it without a copy.
        Ok((token, secret)) => {
            render(&state, &f.auth, None, Some((&token.name, secret.expose())), StatusCode::OK).await
        }
        Err(e) => failed(&state, &f.auth, e).await,
    }
}

pub async fn api_tokens_revoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    f: PageForm<ManageApiTokens, Empty>,
) -> Response {
    match state.accounts.revoke_api_token(&f.auth, &name).await {
        Ok(()) => see_other("/api-tokens?notice=token_revoked"),
        Err(e) => failed(&state, &f.auth, e).await,
    }
}

async fn failed(state: &AppState, auth: &Authorized<ManageApiTokens>, e: AccountError) -> Response {
    match form_error(e) {
        Ok((status, m)) => render(state, auth, Some(Flash::Error(m)), None, status).await,
        Err(page) => page,
    }
}
