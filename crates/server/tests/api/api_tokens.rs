//! What an API token may record (issue 12, item 4): the platform's own actions and the actor
//! type `system` only when granted, services' own codes registered with a label once, the
//! grant recorded, and every event's Source (the token's name, or `platform`) in the console
//! and the CSV.

use logbook_core::Action;
use serde_json::{json, Value};

use crate::helpers::ApiApp;
use logbook_test_support::on_both_stores;

on_both_stores!(
    fixture = crate::helpers::reader;
    a_default_token_records_only_service_codes,
    a_token_granted_login_records_login_and_nothing_else,
    service_codes_register_their_label_once_and_join_the_action_filter,
    malformed_or_reserved_service_codes_are_refused,
    the_source_is_the_token_or_the_platform,
    admins_create_and_revoke_tokens_in_the_console_and_the_grant_is_recorded,
);

fn event(action: &str, actor_type: &str) -> Value {
    json!({"action": action, "actor": {"type": actor_type, "id": "admin@example.com"}, "details": "d"})
}

fn paid() -> Value {
    let mut e = event("billing.invoice.paid", "user");
    e["action_label"] = json!("Invoice Paid");
    e
}

async fn post(app: &ApiApp, token: &str, body: &Value) -> (u16, Value) {
    app.post_raw(serde_json::to_vec(body).unwrap(), Some(token), None).await
}

/// A refusal: its status, its message naming `what`, and nothing appended.
async fn refused(app: &ApiApp, token: &str, body: &Value, status: u16, what: &str) {
    let before = app.size().await;
    let (got, resp) = post(app, token, body).await;
    assert_eq!(got, status, "{body}: {resp}");
    let message = resp["error"]["message"].as_str().unwrap();
    assert!(message.contains(what), "{message:?} names {what:?}");
    assert_eq!(app.size().await, before, "nothing of the request was appended");
}

async fn a_default_token_records_only_service_codes(app: ApiApp) {
    let svc = app.create_token_with("svc", "*").await;
    for code in ["management_user.added", "login.success", "user.role_updated", "logout", "api_token.created"] {
        refused(&app, &svc, &event(code, "user"), 403, code).await;
    }
    let mut system = paid();
    system["actor"]["type"] = json!("system");
    refused(&app, &svc, &system, 403, "system").await;
    // All or nothing: one refused event refuses the whole batch.
    refused(&app, &svc, &json!([paid(), event("login.success", "user")]), 403, "events[1]").await;
    let (status, body) = post(&app, &svc, &paid()).await;
    assert_eq!(status, 201, "{body}");
    // So does a token created before grants existed: the migration gives it the default.
    let token = app.log.authenticate(&svc).await.unwrap().unwrap();
    assert_eq!(token.grant.to_string(), "*");
    app.stop().await;
}

async fn a_token_granted_login_records_login_and_nothing_else(app: ApiApp) {
    let sso = app.create_token_with("sso", "login.*").await;
    for code in ["login.success", "login.failed"] {
        let (status, body) = post(&app, &sso, &event(code, "user")).await;
        assert_eq!(status, 201, "{code}: {body}");
    }
    refused(&app, &sso, &event("user.role_updated", "user"), 403, "user.role_updated").await;
    refused(&app, &sso, &event("logout", "user"), 403, "logout").await;
    refused(&app, &sso, &paid(), 403, "billing.invoice.paid").await;
    refused(&app, &sso, &event("login.success", "system"), 403, "system").await;
    let with_system = app.create_token_with("setup", "login.success,actor:system").await;
    let (status, body) = post(&app, &with_system, &event("login.success", "system")).await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}

async fn service_codes_register_their_label_once_and_join_the_action_filter(app: ApiApp) {
    let svc = app.create_token_with("billing-svc", "billing.*").await;
    let mut unlabelled = paid();
    unlabelled.as_object_mut().unwrap().remove("action_label");
    refused(&app, &svc, &unlabelled, 400, "action_label").await;
    let (status, body) = post(&app, &svc, &json!([unlabelled.clone(), paid()])).await;
    assert_eq!(status, 201, "the label may come with any event of the request: {body}");
    // Registered: later events need no label, and may repeat it; another label is refused.
    assert_eq!(post(&app, &svc, &unlabelled).await.0, 201);
    assert_eq!(post(&app, &svc, &paid()).await.0, 201);
    let mut relabelled = paid();
    relabelled["action_label"] = json!("Paid!");
    refused(&app, &svc, &relabelled, 409, "billing.invoice.paid").await;
    let mut platform_label = event("login.success", "user");
    platform_label["action_label"] = json!("x");
    refused(&app, &app.token, &platform_label, 400, "action_label").await;

    // The Action filter offers it, with its label, beside the platform's.
    let (status, _, html) = app.get_text("/audit-log").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"value="billing.invoice.paid""#), "the filter lists the service code");
    assert!(html.contains("Invoice Paid"));
    assert!(html.contains(&format!(r#"value="{}""#, Action::UserRoleUpdated.code())), "and the platform's");
    // And filtering by it finds its events, shown with the label.
    let events = app.all_pages("action=billing.invoice.paid", 50).await;
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e["action_label"] == "Invoice Paid" && e["origin"] == "billing-svc"), "{events:?}");
    app.stop().await;
}

async fn malformed_or_reserved_service_codes_are_refused(app: ApiApp) {
    // Even a token granted everything cannot record a code outside the catalogue in a
    // platform namespace, or one that is not <service>.<noun>.<verb>.
    for code in
        ["billing.paid", "Billing.Invoice.Paid", "billing.invoice.paid.twice", "login.sso.success", "user.role.changed"]
    {
        let mut e = paid();
        e["action"] = json!(code);
        refused(&app, &app.token, &e, 400, code).await;
    }
    app.stop().await;
}

async fn the_source_is_the_token_or_the_platform(app: ApiApp) {
    let (status, body) = app.post_events(&paid()).await;
    assert_eq!(status, 201, "{body}");
    let (status, _, html) = app.get_text("/audit-log").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"<th scope="col">Source</th>"#), "{html}");
    assert!(html.contains(r#"<td class="source nowrap">billing</td>"#), "the token's event");
    assert!(html.contains(r#"<td class="source nowrap">platform</td>"#), "the platform's own (the token's creation)");

    let (status, _, csv) = app.get_text("/api/v1/events/export?format=csv").await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
    let (action, by) = (col("Action"), col("Recorded By"));
    let rows: Vec<_> = reader.records().map(Result::unwrap).collect();
    let source_of = |label: &str| rows.iter().find(|r| &r[action] == label).map(|r| r[by].to_owned());
    assert_eq!(source_of("Invoice Paid").as_deref(), Some("billing"));
    assert_eq!(source_of(Action::ApiTokenCreated.label()).as_deref(), Some("platform"));
    app.stop().await;
}

async fn admins_create_and_revoke_tokens_in_the_console_and_the_grant_is_recorded(app: ApiApp) {
    let session = app.sign_in(crate::helpers::READER, crate::helpers::READER_PASSWORD).await;
    let form = |path: &str, body: String| {
        app.http
            .post(app.url(path))
            .header("cookie", &session.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}&{body}", session.csrf))
            .send()
    };
    let resp = form("/api-tokens", "name=sso&actions=login.*%2Cactor%3Asystem".into()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    let secret = html.split(r#"<code id="new-token">"#).nth(1).and_then(|s| s.split('<').next()).unwrap().to_owned();
    assert!(secret.starts_with("lbk_"), "the secret is shown once: {secret}");
    let token = app.log.authenticate(&secret).await.unwrap().unwrap();
    assert_eq!((token.name.as_str(), token.grant.to_string().as_str()), ("sso", "login.*,actor:system"));
    let (status, body) = post(&app, &secret, &event("login.success", "system")).await;
    assert_eq!(status, 201, "{body}");

    // The grant is on record, with who gave it.
    let events = app.events().await;
    let created = events.iter().rev().find(|e| e.body.action == Action::ApiTokenCreated).unwrap();
    assert_eq!(created.body.fields.get("actions").map(String::as_str), Some("login.*,actor:system"));
    assert!(created.body.details.contains("login.*,actor:system"), "{}", created.body.details);
    assert_eq!(created.body.actor.email.as_deref(), Some(crate::helpers::READER));

    // The list shows it; a bad grant or name is refused on the form.
    let (_, _, page) = app.get_text("/api-tokens").await;
    assert!(page.contains("sso") && page.contains("login.*,actor:system"), "{page}");
    assert!(!page.contains(&secret), "the secret is never shown again");
    let bad = form("/api-tokens", "name=other&actions=Login.*".into()).await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad = form("/api-tokens", "name=platform&actions=*".into()).await.unwrap();
    assert_eq!(bad.status(), 400, "no token may be called what the Source column calls the platform");

    let resp = form("/api-tokens/sso/revoke", String::new()).await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(app.log.authenticate(&secret).await.unwrap().is_none(), "revoked at once");
    let events = app.events().await;
    let revoked = events.last().unwrap();
    assert_eq!(revoked.body.action, Action::ApiTokenRevoked);
    assert_eq!(revoked.body.actor.email.as_deref(), Some(crate::helpers::READER));
    app.stop().await;
}
