//! `logbook demo` and `logbook export`: realistic data through the real append path, and
//! exports that a strict CSV parser reads back exactly, filters included.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use logbook_core::{Action, Actor, ActorKind, NewEvent, Outcome, Source};

fn export(dir: &std::path::Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["export", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&args);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut r = csv::ReaderBuilder::new().has_headers(false).flexible(false).from_reader(text.as_bytes());
    r.records().map(|rec| rec.unwrap().iter().map(str::to_owned).collect()).collect()
}

#[test]
fn demo_fills_a_verifiable_store_and_export_reads_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = run(&["demo", "--data-dir", d, "--events", "3000", "--days", "30"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["verify", "--data-dir", d]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // The demo's 3000 events and its record of the run.
    assert!(stdout(&o).contains("3001 events"), "{}", stdout(&o));

    let (code, out, err) = export(dir.path(), &[]);
    assert_eq!(code, 0, "{err}");
    let rows = parse_csv(&out);
    assert_eq!(
        rows[0],
        [
            "Timestamp",
            "User",
            "Action",
            "Details",
            "Timestamp (UTC)",
            "Seq",
            "Target",
            "Outcome",
            "IP",
            "User Agent",
            "Recorded By",
            "Leaf Hash"
        ]
    );
    assert_eq!(rows.len(), 3002);
    let seqs: Vec<u64> = rows[1..].iter().map(|r| r[5].parse().unwrap()).collect();
    assert_eq!(seqs, (0..3001).rev().collect::<Vec<_>>(), "every event, newest first");
    assert_eq!(rows[1][2], "Demo Events Added", "the run's record comes last");
    // Spread over the 30 days, never backwards.
    let first = rows.last().unwrap()[4].clone();
    let last = rows[1][4].clone();
    let days =
        (last.parse::<jiff::Timestamp>().unwrap() - first.parse::<jiff::Timestamp>().unwrap()).get_seconds() / 86_400;
    assert!((25..=30).contains(&days), "{first} .. {last}");

    // The export was itself recorded.
    let (_, out, _) = export(dir.path(), &["--action", "audit_log.exported", "--format", "ndjson"]);
    let recorded: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let mine: Vec<_> = recorded.iter().filter(|e| e["recorded_by"] == "cli").collect();
    assert_eq!(mine.len(), 1, "{out}");
    // The same fields as an export through the API (it is recorded before the first byte, so it
    // names the filters, not a count; the export above holds exactly the 3001 events before it).
    assert_eq!(mine[0]["fields"], serde_json::json!({"format": "csv", "time_zone": "UTC"}));
    assert_eq!(mine[0]["details"], "Exported the audit log as CSV (no filters)");
    assert_eq!(mine[0]["action_label"], "Audit Log Exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_survive_a_round_trip_and_cannot_become_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = [
        ("=HYPERLINK(\"http://evil.example\",\"click\")", "@admin"),
        ("+1+1", "-1@example.com"),
        ("Zoë said \"hi\", then left; 名前", "zoë@example.com"),
        ("a,b,c", "plain@example.com"),
    ];
    let events: Vec<NewEvent> = hostile
        .iter()
        .map(|(details, user)| NewEvent {
            action: Action::UserRoleUpdated.into(),
            actor: Actor { kind: ActorKind::User, id: (*user).into(), email: None },
            target: Some(logbook_core::Target {
                kind: "management_user".into(),
                id: "t".into(),
                display: "=cmd|' /C calc'!A0".into(),
            }),
            details: (*details).into(),
            fields: Default::default(),
            outcome: Outcome::Success,
            source: Source { via: None, ip: Some([192, 0, 2, 9].into()), user_agent: Some("-ua, \"quoted\"".into()) },
            recorded_by: "test".into(),
        })
        .collect();
    append_events(dir.path(), events).await;
    let (code, out, err) = export(dir.path(), &["--time-zone", "Asia/Tokyo"]);
    assert_eq!(code, 0, "{err}");
    let rows = parse_csv(&out);
    assert_eq!(rows.len(), 5);
    for (row, (details, user)) in rows[1..].iter().rev().zip(hostile) {
        let expect = |v: &str| if "=+-@".contains(&v[..1]) { format!("'{v}") } else { v.to_owned() };
        assert_eq!(row[3], expect(details));
        assert_eq!(row[1], expect(user));
        assert_eq!(row[6], "'=cmd|' /C calc'!A0");
        assert_eq!(row[9], "'-ua, \"quoted\"");
        assert!(row[0].ends_with("+09:00"), "{}", row[0]);
        assert_eq!(row[10], "platform", "not recorded through an API token");
        assert_eq!(row[11].len(), 64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_select_exactly_and_bad_filters_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    append_range(dir.path(), 0..500, 100).await;
    let (_, all, _) = export(dir.path(), &["--format", "ndjson"]);
    let all: Vec<serde_json::Value> = all.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(all.len(), 500);

    let (_, out, _) = export(
        dir.path(),
        &["--format", "ndjson", "--user", "user3@example.com", "--action", "login.failed", "--action", "logout"],
    );
    let got: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let want: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["user"] == "user3@example.com" && (e["action"] == "login.failed" || e["action"] == "logout"))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(got.iter().map(|e| &e["seq"]).collect::<Vec<_>>(), want.iter().map(|e| &e["seq"]).collect::<Vec<_>>());

    // A time window around the middle events, by instant: both ends inclusive.
    let t = |i: usize| all[i]["time"].as_str().unwrap().to_owned();
    let (_, out, _) = export(dir.path(), &["--format", "ndjson", "--from", &t(300), "--to", &t(200)]);
    let got: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let want: Vec<&serde_json::Value> = all
        .iter()
        .filter(|e| e["time"].as_str().unwrap() >= t(300).as_str() && e["time"].as_str().unwrap() <= t(200).as_str())
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(!got.is_empty());

    for (args, needle) in [
        (vec!["--action", "user.hacked"], "unknown action"),
        (vec!["--time-zone", "Mars/Olympus"], "unknown time zone"),
        (vec!["--from", "last tuesday"], "neither an RFC 3339 instant"),
    ] {
        let (code, _, err) = export(dir.path(), &args);
        assert_eq!(code, 2, "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
