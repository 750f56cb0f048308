//! The console's audit log page: views recorded once per filter set, clear errors, the entry
//! page with its proof status.

use logbook_test_support::{on_both_stores, Session, TestApp};

use crate::helpers::{Users, ADMIN, PASSWORD};

on_both_stores!(fixture = crate::helpers::admin; the_audit_log_page_records_views_once_per_filter_set);

async fn the_audit_log_page_records_views_once_per_filter_set(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, auditor) = app.user(&admin, "aud@example.com", "auditor").await;
    let page = |s: &Session, query: &str| {
        app.http.get(format!("{}/audit-log{query}", app.base)).header("cookie", &s.cookie).send()
    };
    let views = || async { app.events().await.iter().filter(|e| e.body.action.code() == "audit_log.viewed").count() };
    let resp = page(&auditor, "").await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Timestamp (UTC)") && html.contains("Management Users Added"), "the table, zone named");
    assert_eq!(views().await, 1);
    page(&auditor, "").await.unwrap();
    page(&auditor, "?limit=25").await.unwrap();
    assert_eq!(views().await, 1, "the same filters again (another page size) record nothing");
    let html = page(&auditor, "?action=login.success&action=management_user.added&user=admin%40example.com")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(views().await, 2, "a new filter set is recorded");
    assert!(html.contains("2 selected"), "both actions stay selected");
    let viewed = app.events().await.into_iter().rev().find(|e| e.body.action.code() == "audit_log.viewed").unwrap();
    assert_eq!(viewed.user(), "aud@example.com");
    assert_eq!(viewed.body.fields["filter.action"], "login.success,management_user.added");
    page(&admin, "").await.unwrap();
    assert_eq!(views().await, 3, "once per session");

    let resp = page(&auditor, "?from=not-a-date").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("class=\"error\""), "a clear error, on the page");
    let html = page(&auditor, "?q=no-such-thing-anywhere").await.unwrap().text().await.unwrap();
    assert!(html.contains("No entries match these filters."));
    // The view of that search is recorded without the searched word in its details, so searching
    // again still finds nothing.
    let html = page(&admin, "?q=no-such-thing-anywhere").await.unwrap().text().await.unwrap();
    assert!(html.contains("No entries match these filters."), "the record of a search does not match it");
    assert!(!html.contains("class=\"pager\""), "no empty pager");

    let entry = app
        .http
        .get(format!("{}/audit-log/events/0", app.base))
        .header("cookie", &auditor.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(entry.status(), 200);
    let html = entry.text().await.unwrap();
    assert!(html.contains("Leaf hash") && html.contains("Sequence number"));
    assert!(html.contains("Verified") || html.contains("Not yet covered"), "the proof status is shown");
    let missing = app
        .http
        .get(format!("{}/audit-log/events/999999", app.base))
        .header("cookie", &auditor.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let anonymous = app.http.get(format!("{}/audit-log", app.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 303, "sign in first");
}
