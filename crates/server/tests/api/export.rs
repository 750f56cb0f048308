//! `GET /api/v1/events/export`: CSV that round-trips hostile values byte for byte like the CLI's
//! export, NDJSON with every field, and each export on record.

use logbook_test_support::on_both_stores;
use serde_json::{json, Value};

use crate::helpers::{login_failed, ApiApp, READER};

on_both_stores!(fixture = crate::helpers::reader; csv_export_round_trips_hostile_values_and_is_audited);

async fn csv_export_round_trips_hostile_values_and_is_audited(app: ApiApp) {
    let hostile = [
        "=HYPERLINK(\"http://evil.example\",\"click\")",
        "+1+1",
        "-2",
        "@SUM(A1:A9)",
        "plain, with \"quotes\", commas",
        "Zoë 日本語 — ünïcödé",
    ];
    let mut body = Vec::new();
    for (i, h) in hostile.iter().enumerate() {
        let mut e = login_failed(&format!("{h}-user"));
        e["details"] = json!(h);
        e["target"] = json!({"type": "protected_user", "id": format!("pu_{i}"), "display": format!("{h} target")});
        body.push(e);
    }
    let (s, b) = app.post_events(&Value::Array(body.clone())).await;
    assert_eq!(s, 201, "{b}");
    // Control characters (newlines included) never get in: nothing to break a CSV row.
    let mut nl = login_failed("x");
    nl["details"] = json!("two\nlines");
    assert_eq!(app.post_events(&nl).await.0, 400);

    let (s, headers, text) = app.get_text("/api/v1/events/export?format=csv&action=login.failed").await;
    assert_eq!(s, 200, "{text}");
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename="));
    assert!(text.ends_with("\r\n") && text.matches("\r\n").count() > hostile.len(), "CRLF records");
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(text.as_bytes());
    let header: Vec<String> = rdr.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, logbook_log::export::CSV_HEADER);
    let records: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), hostile.len());
    for (rec, h) in records.iter().rev().zip(hostile) {
        let cell = |s: String| if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s };
        assert_eq!(&rec[1], cell(format!("{h}-user")), "User");
        assert_eq!(&rec[2], "Login Failed");
        assert_eq!(&rec[3], cell(h.to_string()), "Details");
        assert_eq!(&rec[6], cell(format!("{h} target")), "Target");
        assert!(rec[0].ends_with("+01:00") || rec[0].ends_with("+02:00"), "local time: {}", &rec[0]);
    }
    // The same bytes as `logbook export` would write: the shared encoder, fed the same rows.
    let org = app.org().await;
    let filter = logbook_store::EventFilter {
        actions: vec!["login.failed".into()],
        seqs: 0..app.size().await - 1,
        ..Default::default()
    };
    let mut enc = logbook_log::export::ExportEncoder::new(
        logbook_log::export::ExportFormat::Csv,
        jiff::tz::TimeZone::get("Europe/Berlin").unwrap(),
        logbook_log::export::ActionLabels::default(),
    )
    .unwrap();
    let mut expected = enc.take().unwrap();
    logbook_log::export::for_each_event(&*app.store, &org, &filter, |r| {
        enc.row(r).unwrap();
        expected.extend(enc.take().unwrap());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(text.as_bytes(), &expected[..], "byte for byte what the CLI's encoder writes");

    // The export is on record, with its filters, and NDJSON carries every field.
    let (s, _, nd) = app.get_text("/api/v1/events/export?format=ndjson&q=ZO%C3%8B").await;
    assert_eq!(s, 200);
    let lines: Vec<Value> = nd.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["details"], "Zoë 日本語 — ünïcödé");
    let (_, audit) = app.get_json("/api/v1/events?action=audit_log.exported").await;
    let audits = audit["events"].as_array().unwrap();
    assert_eq!(audits.len(), 2, "{audit}");
    assert_eq!(audits[0]["fields"]["format"], "ndjson");
    assert_eq!(audits[0]["fields"]["filter.q"], "ZOË");
    assert_eq!(audits[1]["fields"]["filter.actions"], "login.failed");
    assert_eq!(audits[1]["actor"]["type"], "user");
    assert_eq!(audits[1]["actor"]["email"], READER, "the export is recorded with who exported");
    assert!(audits[1]["details"].as_str().unwrap().contains("actions login.failed"), "{}", audits[1]);
    assert!(!nd.contains("audit_log.exported"), "an export does not contain its own record");
    app.stop().await;
}
