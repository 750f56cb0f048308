//! An export through the API and one through `logbook export` are on record with the same
//! `audit_log.exported` fields (one builder, `logbook_log::export::ExportRecord`).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

const EMAIL: &str = "auditor@example.com";
const PASSWORD: &str = "a long enough passphrase 7";
const FILTERS: [(&str, &str); 4] =
    [("user", "user3@example.com"), ("action", "login.failed"), ("from", "2020-01-01"), ("to", "2099-12-31")];

#[test]
fn the_api_and_the_cli_record_an_export_with_the_same_fields() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(append_range(dir.path(), 0..100, 50));
    let mut child = bin()
        .args(["admin", "create", "--data-dir", d, "--email", EMAIL, "--role", "auditor", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());

    // Through the API, signed in as the auditor.
    let server = start(&["--data-dir", d]);
    let api_csv = rt.block_on(async {
        let http = reqwest::Client::new();
        let resp = http
            .post(format!("{}/api/v1/session", server.base))
            .json(&serde_json::json!({"email": EMAIL, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let query: Vec<(&str, &str)> = FILTERS.to_vec();
        let resp = http
            .get(format!("{}/api/v1/events/export", server.base))
            .query(&query)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    });
    terminate(server);

    // Through the command line, with the same filters.
    let mut args = vec!["export", "--data-dir", d];
    for (k, v) in FILTERS {
        args.extend([["--", k].concat().leak() as &str, v]);
    }
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).replace("\r\n", "\n"), api_csv.replace("\r\n", "\n"), "the same bytes either way");

    // The two records, read back with the export itself.
    let o = run(&["export", "--data-dir", d, "--format", "ndjson", "--action", "audit_log.exported"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let records: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let (cli, api) = (&records[0], &records[1]); // newest first
    assert_eq!(api["recorded_by"], "logbook");
    assert_eq!(cli["recorded_by"], "cli");
    assert_eq!(cli["fields"], api["fields"], "the same fields");
    assert_eq!(cli["details"], api["details"]);
    assert_eq!(cli["target"], api["target"]);
    assert_eq!(
        api["fields"],
        serde_json::json!({
            "format": "csv",
            "time_zone": "UTC",
            "filter.user": "user3@example.com",
            "filter.actions": "login.failed",
            "filter.from": "2020-01-01",
            "filter.to": "2099-12-31",
        })
    );
}
