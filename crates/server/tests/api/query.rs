//! Reading the log: `GET /api/v1/events` (every filter, day bounds across DST, pagination under
//! appends, cursors, bad parameters, search of new events) and `/api/v1/users-in-log`.

use std::sync::Arc;

use logbook_core::Timestamp;
use logbook_store::Store;
use logbook_test_support::{on_both_stores, wait_until, within};
use serde_json::{json, Value};

use crate::helpers::{login_failed, ApiApp, READER};

on_both_stores!(
    fixture = crate::helpers::reader;
    every_filter_alone_and_combined,
    pagination_under_concurrent_appends_has_no_duplicates_or_gaps,
    forged_or_foreign_cursors_are_refused,
    bad_query_parameters_get_clear_400s,
    new_events_are_found_at_once_and_indexed_soon_after,
    users_in_log_feeds_the_user_filter,
    reading_the_log_through_the_api_is_recorded_once_per_session_and_filter,
    opening_an_entry_is_recorded_once_per_session_and_entry,
);

// The DST test drives its own clock.
on_both_stores!(fixture = crate::helpers::reader_in_march; day_bounds_follow_the_platform_zone_across_dst);

fn seqs_of(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

fn enc(s: &str) -> String {
    // Everything but RFC 3986's unreserved characters.
    const QUERY_VALUE: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// What the search text of an event is, from its JSON view (the rule the stores implement).
fn haystack(e: &Value) -> String {
    let mut parts = vec![
        e["user"].as_str().unwrap().to_owned(),
        e["actor"]["id"].as_str().unwrap().to_owned(),
        e["action_label"].as_str().unwrap().to_owned(),
        e["action"].as_str().unwrap().to_owned(),
        e["details"].as_str().unwrap().to_owned(),
    ];
    if e["target"].is_object() {
        parts.push(e["target"]["display"].as_str().unwrap().to_owned());
        parts.push(e["target"]["id"].as_str().unwrap().to_owned());
    }
    parts.join("\n").to_lowercase()
}

fn varied_event(i: usize) -> Value {
    let users = ["ada@acme.example", "Ben@Acme.example", "chen@acme.example", "dana.ü@acme.example"];
    let actions = ["login.success", "login.failed", "user.role_updated", "protected_user.added", "logout"];
    let mut e = json!({
        "action": actions[i % actions.len()],
        "actor": {"type": "user", "id": format!("usr_{}", i % 4), "email": users[i % users.len()]},
        "details": format!("Step {i}: {}", ["Invalid password", "Role changed from Auditor to Admin", "Signed out", "Method: password"][i % 4]),
        "outcome": if i % 5 == 1 { "failure" } else { "success" },
        "source": {"ip": "198.51.100.7", "user_agent": "Mozilla/5.0"}
    });
    if i.is_multiple_of(3) {
        e["target"] =
            json!({"type": "protected_user", "id": format!("pu_{i}"), "display": format!("VIP{i}@Example.com")});
    }
    e
}

async fn every_filter_alone_and_combined(app: ApiApp) {
    for chunk in (0..120).collect::<Vec<_>>().chunks(40) {
        let (s, b) = app.post_events(&Value::Array(chunk.iter().map(|&i| varied_event(i)).collect())).await;
        assert_eq!(s, 201, "{b}");
    }
    // Each read with new filters is itself recorded (audit_log.viewed); those records are not the
    // data under test, so they are left out of what the reads return.
    let pages = |query: &str, limit: usize| {
        let query = query.to_owned();
        let app = &app;
        async move {
            let mut events = app.all_pages(&query, limit).await;
            events.retain(|e| e["action"] != "audit_log.viewed");
            events
        }
    };
    let all = app.all_pages("", 500).await;
    assert_eq!(
        all.len() as u64 + 1,
        app.size().await,
        "every event, the token's creation included, and then the read's record"
    );
    assert!(seqs_of(&all).windows(2).all(|w| w[0] > w[1]), "newest first");
    let e = &all[0];
    for key in [
        "seq",
        "id",
        "time",
        "time_local",
        "user",
        "actor",
        "action",
        "action_label",
        "details",
        "fields",
        "outcome",
        "source",
        "leaf_hash",
    ] {
        assert!(!e[key].is_null(), "{key} in {e}");
    }
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    let local = e["time_local"].as_str().unwrap();
    assert!(local.ends_with("+01:00") || local.ends_with("+02:00"), "Berlin offset: {local}");

    let check = |name: &str, got: Vec<Value>, keep: &dyn Fn(&Value) -> bool| {
        let want: Vec<u64> = all.iter().filter(|e| keep(e)).map(|e| e["seq"].as_u64().unwrap()).collect();
        assert!(!want.is_empty(), "{name}: the test data has matches");
        assert_eq!(seqs_of(&got), want, "{name}");
    };
    let user = |e: &Value| e["user"] == "Ben@Acme.example";
    check("user", pages("user=Ben%40Acme.example", 7).await, &user);
    assert!(pages("user=ben%40acme.example", 7).await.is_empty(), "user is exact");
    let one = |e: &Value| e["action"] == "login.failed";
    check("one action", pages("action=login.failed", 9).await, &one);
    let two = |e: &Value| e["action"] == "login.failed" || e["action"] == "user.role_updated";
    check("two actions", pages("action=login.failed&action=user.role_updated", 9).await, &two);
    check("two actions, comma", pages("action=login.failed,user.role_updated", 500).await, &two);
    for q in [
        "invalid PASSWORD",
        "vip9@example",
        "Protected Users Added",
        "dana.Ü",
        "usr_2",
        "pu_1",
        "step 1",
        "ro",
        "%",
        "_",
    ] {
        let needle = q.to_lowercase();
        let got = pages(&format!("q={}", enc(q)), 11).await;
        let want: Vec<u64> =
            all.iter().filter(|e| haystack(e).contains(&needle)).map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs_of(&got), want, "q={q:?}");
    }
    // A time range: the instants of two events, `to` inclusive.
    let (hi, lo) = (&all[10], &all[70]);
    let (t_hi, t_lo) = (hi["time"].as_str().unwrap(), lo["time"].as_str().unwrap());
    let in_range = |e: &Value| {
        let t = e["time"].as_str().unwrap();
        t >= t_lo && t <= t_hi
    };
    check("from/to", pages(&format!("from={}&to={}", enc(t_lo), enc(t_hi)), 13).await, &in_range);
    let combined = |e: &Value| two(e) && in_range(e) && haystack(e).contains("step") && e["user"] != "nobody";
    check(
        "combined",
        pages(&format!("action=login.failed&action=user.role_updated&from={}&to={}&q=STEP", enc(t_lo), enc(t_hi)), 3)
            .await,
        &combined,
    );
    let all_four = |e: &Value| user(e) && two(e) && in_range(e) && haystack(e).contains("role");
    let got = pages(
        &format!(
            "user=Ben%40Acme.example&action=login.failed&action=user.role_updated&from={}&to={}&q=role",
            enc(t_lo),
            enc(t_hi)
        ),
        2,
    )
    .await;
    let want: Vec<u64> = all.iter().filter(|e| all_four(e)).map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs_of(&got), want, "all filters at once");
    // Default page size and the end of the list.
    let (_, first) = app.get_json("/api/v1/events").await;
    assert_eq!(first["events"].as_array().unwrap().len(), 50);
    assert_eq!(first["time_zone"], "Europe/Berlin");
    let (_, last) = app.get_json("/api/v1/events?limit=500").await;
    assert!(last["next_cursor"].is_null(), "one page holds everything: no next page");
    app.stop().await;
}

async fn day_bounds_follow_the_platform_zone_across_dst(mut app: ApiApp) {
    let clock = app.manual_clock().clone();
    // Berlin springs forward on 2026-03-29 at 02:00 CET: that day is 23 hours long, from
    // 2026-03-28T23:00Z to 2026-03-29T22:00Z.
    let at = |rfc: &str| Timestamp::from_micros(rfc.parse::<jiff::Timestamp>().unwrap().as_microsecond());
    let times = [
        ("before", "2026-03-28T22:59:59.999999Z"),
        ("first", "2026-03-28T23:00:00Z"),       // 00:00 CET on the 29th
        ("pre-jump", "2026-03-29T00:59:59Z"),    // 01:59:59 CET
        ("post-jump", "2026-03-29T01:00:00Z"),   // 03:00 CEST
        ("last", "2026-03-29T21:59:59.999999Z"), // 23:59:59.999999 CEST
        ("next-day", "2026-03-29T22:00:00Z"),    // 00:00 CEST on the 30th
    ];
    for (name, t) in times {
        clock.set(at(t));
        let mut e = login_failed(name);
        e["details"] = json!(format!("dst {name}"));
        let (s, b) = app.post_events(&e).await;
        assert_eq!(s, 201, "{b}");
    }
    // The clock jumped by more than the idle timeout: the reader's session ended.
    app.sign_in_again().await;
    let users = |events: Vec<Value>| -> Vec<String> {
        let mut u: Vec<String> = events.iter().map(|e| e["user"].as_str().unwrap().to_owned()).collect();
        u.reverse();
        u
    };
    let day = app.all_pages("from=2026-03-29&to=2026-03-29&q=dst", 2).await;
    assert_eq!(users(day.clone()), ["first", "pre-jump", "post-jump", "last"]);
    assert_eq!(day[0]["time_local"], "2026-03-29T23:59:59.999999+02:00");
    assert_eq!(day[3]["time_local"], "2026-03-29T00:00:00.000000+01:00");
    assert_eq!(users(app.all_pages("from=2026-03-30&q=dst", 5).await), ["next-day"]);
    assert_eq!(users(app.all_pages("to=2026-03-28&q=dst", 5).await), ["before"]);
    // An instant `to` is inclusive; the range is the same whichever way it is written.
    assert_eq!(
        users(app.all_pages("from=2026-03-29T00:00:00%2B01:00&to=2026-03-29T21:59:59.999999Z&q=dst", 5).await),
        ["first", "pre-jump", "post-jump", "last"]
    );
    app.stop().await;
}

async fn pagination_under_concurrent_appends_has_no_duplicates_or_gaps(app: ApiApp) {
    let batch: Vec<Value> = (0..300).map(varied_event).collect();
    app.post_events(&Value::Array(batch)).await;
    let top = app.size().await - 1;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // How many appends the writer has made, so that the paging can wait for them.
    let (appended_tx, appended) = tokio::sync::watch::channel(0u64);
    let writer = {
        let (client, base, token, stop) = (app.http.clone(), app.base.clone(), app.token.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body: Vec<Value> = (0..5).map(|i| varied_event(1000 + n as usize * 5 + i)).collect();
                let r =
                    client.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 201);
                n += 1;
                appended_tx.send_replace(n);
            }
            n
        })
    };
    for query in ["", "action=login.failed&action=logout", "q=step"] {
        // Each walk goes on only once an append has landed since it began: appends do run
        // between its pages, however the tasks are scheduled.
        let start = *appended.borrow();
        let during = || {
            let mut appended = appended.clone();
            async move {
                within("an append during the paging", appended.wait_for(|n| *n > start)).await.unwrap();
            }
        };
        let got = seqs_of(&app.all_pages_between(query, 7, during).await);
        let mut sorted = got.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), got.len(), "{query}: no duplicates");
        assert!(got.windows(2).all(|w| w[0] > w[1]), "{query}: newest first");
        if query.is_empty() {
            // Everything from the first page's newest down to 0, without a hole.
            let first = got[0];
            assert!(first >= top);
            assert_eq!(got, (0..=first).rev().collect::<Vec<_>>(), "no gaps");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(writer.await.unwrap() > 0, "appends ran during the paging");
    // Deep pages answer like the first.
    let (_, body) = app.get_json("/api/v1/events?limit=1").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn forged_or_foreign_cursors_are_refused(app: ApiApp) {
    app.post_events(&Value::Array((0..30).map(varied_event).collect())).await;
    let (_, page) = app.get_json("/api/v1/events?limit=5&action=login.failed").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (s, _) = app.get_json(&format!("/api/v1/events?limit=5&action=login.failed&cursor={cursor}")).await;
    assert_eq!(s, 200);
    let mut forged: Vec<String> = Vec::new();
    for i in 0..cursor.len() {
        let mut b = cursor.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        forged.push(String::from_utf8(b).unwrap());
    }
    forged.extend(["", "AAAA", "not a cursor", "%00"].map(String::from));
    forged.push(format!("{cursor}A"));
    for c in &forged {
        if c.is_empty() {
            continue;
        }
        let (s, body) = app.get_json(&format!("/api/v1/events?limit=5&action=login.failed&cursor={}", enc(c))).await;
        assert_eq!((s, body["error"]["code"].as_str()), (400, Some("bad_cursor")), "{c:?}: {body}");
    }
    // The cursor of one filter does not open another query.
    for other in
        ["limit=5", "limit=5&action=logout", "limit=5&action=login.failed&q=x", "limit=5&action=login.failed&user=a"]
    {
        let (s, body) = app.get_json(&format!("/api/v1/events?{other}&cursor={cursor}")).await;
        assert_eq!((s, body["error"]["code"].as_str()), (400, Some("bad_cursor")), "{other}");
    }
    // A different page size is the same query.
    let (s, _) = app.get_json(&format!("/api/v1/events?limit=50&action=login.failed&cursor={cursor}")).await;
    assert_eq!(s, 200);
    app.stop().await;
}

async fn bad_query_parameters_get_clear_400s(app: ApiApp) {
    for (path, code) in [
        ("/api/v1/events?limit=0", "bad_limit"),
        ("/api/v1/events?limit=501", "bad_limit"),
        ("/api/v1/events?limit=ten", "bad_limit"),
        ("/api/v1/events?limit=-1", "bad_limit"),
        ("/api/v1/events?from=yesterday", "bad_time"),
        ("/api/v1/events?to=2026-02-30", "bad_time"),
        ("/api/v1/events?from=2026-03-02&to=2026-03-01", "bad_range"),
        ("/api/v1/events?action=user.hacked", "unknown_action"),
        ("/api/v1/events?action=login.failed&action=nope", "unknown_action"),
        ("/api/v1/events?cursor=%21%21", "bad_cursor"),
        ("/api/v1/events?colour=red", "bad_query"),
        ("/api/v1/events?user=a&user=b", "bad_query"),
        ("/api/v1/events?q=a%0Ab", "bad_query"),
        ("/api/v1/events?format=csv", "bad_query"),
        ("/api/v1/events/export?format=xml", "bad_format"),
        ("/api/v1/events/export?limit=5", "bad_query"),
        ("/api/v1/events/export?from=soon", "bad_time"),
        ("/api/v1/users-in-log?limit=0", "bad_limit"),
        ("/api/v1/users-in-log?limit=x", "bad_query"),
    ] {
        let (s, body) = app.get_json(path).await;
        assert_eq!((s, body["error"]["code"].as_str()), (400, Some(code)), "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().len() > 10, "{path}: {body}");
    }
    let (s, _) = app.get_json(&format!("/api/v1/events?q={}", "x".repeat(201))).await;
    assert_eq!(s, 400);
    // Unauthenticated reads are refused like appends.
    for path in ["/api/v1/events", "/api/v1/events/export", "/api/v1/users-in-log"] {
        let (s, body) = app.get(path).await;
        assert_eq!(s, 401, "{path}: {body}");
    }
    let before = app.size().await;
    let (s, _, _) = app.get_text("/api/v1/events/export?format=xml").await;
    assert_eq!(s, 400);
    assert_eq!(app.size().await, before, "a refused export is not recorded");
    app.stop().await;
}

/// The indexer is woken by every commit, so an event is normally indexed within milliseconds;
/// the test waits for that (a busy machine may take longer) rather than timing it.
async fn new_events_are_found_at_once_and_indexed_soon_after(app: ApiApp) {
    app.post_events(&Value::Array((0..500).map(varied_event).collect())).await;
    let org = app.org().await;
    for round in 0..5 {
        let word = format!("needle{round}xyz");
        let mut e = login_failed("searcher@example.com");
        e["details"] = json!(format!("Found the {word} here"));
        let (s, b) = app.post_events(&e).await;
        assert_eq!(s, 201);
        let seq = b["seqs"][0].as_u64().unwrap();
        // At once, whether or not the indexer got to it.
        let (_, page) = app.get_json(&format!("/api/v1/events?q={}", word.to_uppercase())).await;
        assert_eq!(seqs_of(page["events"].as_array().unwrap()), vec![seq], "round {round}");
        wait_until(&format!("seq {seq} in the search index"), || async {
            (app.store.search_indexed(org.id).await.unwrap() > seq).then_some(())
        })
        .await;
        let (_, page) = app.get_json(&format!("/api/v1/events?q={word}")).await;
        assert_eq!(seqs_of(page["events"].as_array().unwrap()), vec![seq]);
    }
    app.stop().await;
}

async fn users_in_log_feeds_the_user_filter(app: ApiApp) {
    app.post_events(&Value::Array((0..20).map(varied_event).collect())).await;
    let (s, body) = app.get_json("/api/v1/users-in-log").await;
    assert_eq!(s, 200);
    let users: Vec<String> = serde_json::from_value(body["users"].clone()).unwrap();
    assert_eq!(
        users,
        ["Ben@Acme.example", "ada@acme.example", "chen@acme.example", "dana.ü@acme.example", READER, "system"]
    );
    let (_, body) = app.get_json("/api/v1/users-in-log?prefix=c&limit=5").await;
    assert_eq!(body["users"], json!(["chen@acme.example"]));
    let (_, body) = app.get_json("/api/v1/users-in-log?limit=2").await;
    assert_eq!(body["users"].as_array().unwrap().len(), 2);
    app.stop().await;
}

/// The reader's `audit_log.viewed` events, oldest first.
async fn views(app: &ApiApp) -> Vec<logbook_core::Event> {
    app.events().await.into_iter().filter(|e| e.body.action.code() == "audit_log.viewed").collect()
}

/// Item 5: `GET /api/v1/events` and `GET /api/v1/users-in-log` are recorded as Audit Log Viewed,
/// once per session and filter set: another page or page size of the same filters records
/// nothing more, other filters or another session record again, a refused query nothing.
async fn reading_the_log_through_the_api_is_recorded_once_per_session_and_filter(mut app: ApiApp) {
    assert!(views(&app).await.is_empty());
    let (s, first) = app.get_json("/api/v1/events?limit=1").await;
    assert_eq!(s, 200, "{first}");
    let v = views(&app).await;
    assert_eq!(v.len(), 1, "a list read is recorded");
    assert_eq!(v[0].user(), READER);
    assert_eq!(v[0].body.details, "Opened the audit log");
    assert!(v[0].body.source.ip.is_some(), "with the request's address");

    let cursor = first["next_cursor"].as_str().unwrap();
    assert_eq!(app.get_json(&format!("/api/v1/events?limit=1&cursor={}", enc(cursor))).await.0, 200);
    assert_eq!(app.get_json("/api/v1/events?limit=7").await.0, 200);
    assert_eq!(app.get_json("/api/v1/events").await.0, 200);
    assert_eq!(views(&app).await.len(), 1, "the next page, another page size: the same filters");

    let filtered = "/api/v1/events?action=login.failed&q=needle-xyz&user=ada%40acme.example";
    assert_eq!(app.get_json(filtered).await.0, 200);
    let v = views(&app).await;
    assert_eq!(v.len(), 2, "other filters are recorded");
    let f = &v[1].body.fields;
    assert_eq!(f["filter.action"], "login.failed");
    assert_eq!(f["filter.q"], "needle-xyz");
    assert_eq!(f["filter.user"], "ada@acme.example");
    assert!(!v[1].body.details.contains("needle-xyz"), "the searched word is not in the details");
    assert_eq!(app.get_json(filtered).await.0, 200);
    assert_eq!(views(&app).await.len(), 2);
    assert_eq!(app.get_json("/api/v1/events?from=not-a-date").await.0, 400);
    assert_eq!(views(&app).await.len(), 2, "a refused query read nothing");

    // The users in the log: recorded once per prefix.
    assert_eq!(app.get_json("/api/v1/users-in-log").await.0, 200);
    assert_eq!(app.get_json("/api/v1/users-in-log?limit=5").await.0, 200);
    let v = views(&app).await;
    assert_eq!(v.len(), 3, "users-in-log is recorded");
    assert_eq!(v[2].body.details, "Listed the users in the audit log");
    assert_eq!(app.get_json("/api/v1/users-in-log?prefix=re").await.0, 200);
    let v = views(&app).await;
    assert_eq!(v.len(), 4);
    assert_eq!(v[3].body.fields["filter.prefix"], "re");

    // Another session of the same user records the same reads again.
    app.sign_in_again().await;
    assert_eq!(app.get_json("/api/v1/events?limit=1").await.0, 200);
    assert_eq!(app.get_json("/api/v1/users-in-log").await.0, 200);
    assert_eq!(views(&app).await.len(), 6);
}

/// Item 5: the entry page records which entry was opened, once per session and entry; a
/// missing entry records nothing.
async fn opening_an_entry_is_recorded_once_per_session_and_entry(app: ApiApp) {
    let entry =
        |seq: u64| app.http.get(app.url(&format!("/audit-log/events/{seq}"))).header("cookie", &app.cookie).send();
    assert_eq!(entry(0).await.unwrap().status(), 200);
    let v = views(&app).await;
    assert_eq!(v.len(), 1, "opening an entry is recorded");
    assert_eq!(v[0].body.details, "Opened entry 0 of the audit log");
    assert_eq!(v[0].body.fields["entry"], "0");
    assert_eq!(v[0].user(), READER);
    assert_eq!(entry(0).await.unwrap().status(), 200);
    assert_eq!(views(&app).await.len(), 1, "the same entry again");
    assert_eq!(entry(1).await.unwrap().status(), 200);
    assert_eq!(views(&app).await.len(), 2, "another entry");
    assert_eq!(views(&app).await[1].body.fields["entry"], "1");
    assert_eq!(entry(999_999).await.unwrap().status(), 404);
    assert_eq!(views(&app).await.len(), 2, "no such entry: nothing read");
}
