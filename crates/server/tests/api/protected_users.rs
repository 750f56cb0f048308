//! Protected users: the CSV import reports its rows and records each addition.

use logbook_test_support::{on_both_stores, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{ADMIN, PASSWORD};

on_both_stores!(fixture = crate::helpers::admin; protected_users_import_reports_rows_and_records_each);

async fn protected_users_import_reports_rows_and_records_each(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            Some(json!({"email": "old@example.com", "name": "Already There"})),
        )
        .await;
    assert_eq!(status, 201);
    let start = app.count().await;
    let csv = "Email,Name\nada@example.com,Ada Lovelace\nnot-an-email,Nobody\n\"grace@example.com\",\"Hopper, Grace\"\nold@example.com,Again\nada@example.com,Twice\nzoe@example.com,\n";
    let resp = app
        .http
        .post(format!("{}/api/v1/protected-users/import", app.base))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["added"], 2, "{report}");
    let lines: Vec<i64> = report["errors"].as_array().unwrap().iter().map(|e| e["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [3, 5, 6, 7], "{report}");
    let events = app.events().await;
    let added: Vec<&str> = events[start..]
        .iter()
        .filter(|e| e.body.action.code() == "protected_user.added")
        .map(|e| e.body.target.as_ref().unwrap().display.as_str())
        .collect();
    assert_eq!(added.len(), 2);
    assert!(added.contains(&"ada@example.com") && added.contains(&"grace@example.com"));
    let (_, page) = app.call(Method::GET, "/api/v1/protected-users?q=hopper", Some(&admin), None).await;
    assert_eq!(page["protected_users"][0]["name"], "Hopper, Grace");
    let (status, _) = app.call(Method::GET, "/api/v1/protected-users?limit=0", Some(&admin), None).await;
    assert_eq!(status, 400);
}
