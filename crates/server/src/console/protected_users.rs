//! The Protected users page: search, add, remove, CSV import.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use logbook_accounts::permission::{ManageProtectedUsers, ReadProtectedUsers};
use logbook_accounts::{AccountError, Authorized, Caller};
use maud::html;
use serde::Deserialize;

use super::layout::{csrf_field, flash, page, respond, Flash};
use super::{form_error, notice, path_id, see_other, urlencode, Empty, Notice};
use crate::auth::{Page, PageForm};
use crate::AppState;

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
