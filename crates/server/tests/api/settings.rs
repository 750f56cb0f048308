//! Platform settings: validated, and every change recorded with its old and new values.

use logbook_test_support::{on_both_stores, TestApp};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{find, ADMIN, PASSWORD};

on_both_stores!(fixture = crate::helpers::admin; settings_changes_are_validated_and_recorded);

async fn settings_changes_are_validated_and_recorded(app: TestApp) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (status, s) = app.call(Method::GET, "/api/v1/settings", Some(&admin), None).await;
    assert_eq!((status, s["time_zone"].as_str(), s["session_idle_minutes"].as_u64()), (200, Some("UTC"), Some(30)));
    let start = app.count().await;
    let (status, s) = app
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"time_zone": "Europe/Berlin", "lockout_threshold": 5})),
        )
        .await;
    assert_eq!(
        (status, s["time_zone"].as_str(), s["lockout_threshold"].as_u64()),
        (200, Some("Europe/Berlin"), Some(5))
    );
    let (status, body) =
        app.call(Method::PATCH, "/api/v1/settings", Some(&admin), Some(json!({"timezone": "UTC"}))).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let events = app.events().await;
    let e = find(&events, start, "settings.updated");
    assert_eq!(e.body.fields["old.time_zone"], "UTC");
    assert_eq!(e.body.fields["new.time_zone"], "Europe/Berlin");
    assert!(e.body.details.contains("time_zone changed from UTC to Europe/Berlin"), "{}", e.body.details);
    assert_eq!(events.len(), start + 1);
}
