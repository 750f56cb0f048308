//! Ingestion: `POST /api/v1/events` answers after the commit, refuses bad input and bad tokens
//! clearly, replays idempotent retries, and keeps organizations apart.

use logbook_core::{Actor, OrgSlug, Source};
use logbook_store::Store;
use logbook_test_support::on_both_stores;
use serde_json::{json, Value};

use crate::helpers::{login_failed, ApiApp};

on_both_stores!(
    fixture = crate::helpers::reader;
    ingests_one_event_or_an_array_and_answers_after_commit,
    bad_input_gets_a_clear_4xx_and_appends_nothing,
    missing_unknown_or_revoked_tokens_are_refused,
    idempotency_key_answers_the_first_result,
    two_organizations_never_mix,
);

async fn ingests_one_event_or_an_array_and_answers_after_commit(app: ApiApp) {
    let before = app.size().await; // the token creation is itself an event
    let (status, body) = app.post_events(&login_failed("bob@example.com")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, json!({"seqs": [before]}));
    let batch: Vec<Value> = (0..1000).map(|i| login_failed(&format!("u{i}@example.com"))).collect();
    let (status, body) = app.post_events(&Value::Array(batch)).await;
    assert_eq!(status, 201);
    let seqs: Vec<u64> = serde_json::from_value(body["seqs"].clone()).unwrap();
    assert_eq!(seqs, (before + 1..before + 1001).collect::<Vec<_>>());
    // Acknowledged means stored.
    assert_eq!(app.size().await, before + 1001);
    let org = app.store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    let row = &app.store.events(org.id, before..before + 1).await.unwrap()[0];
    let event = logbook_core::leaf::decode(&row.leaf).unwrap();
    assert_eq!(event.body.recorded_by, "api-token:billing", "the server records who submitted");
    assert_eq!(event.user(), "bob@example.com");
    app.stop().await;
}

async fn bad_input_gets_a_clear_4xx_and_appends_nothing(app: ApiApp) {
    let before = app.size().await;
    let mut unknown = login_failed("x");
    unknown["action"] = json!("user.hacked");
    let mut long = login_failed("x");
    long["details"] = json!("d".repeat(2001));
    let mut bad_ip = login_failed("x");
    bad_ip["source"]["ip"] = json!("999.1.1.1");
    let mut extra = login_failed("x");
    extra["seq"] = json!(5);
    let mut no_actor = login_failed("x");
    no_actor.as_object_mut().unwrap().remove("actor");
    // Invisible format characters (issue 12, item 15): a bidi override in the details, a
    // zero-width space in the actor's identifier.
    let mut bidi = login_failed("x");
    bidi["details"] = json!("Invalid password \u{202E}moc.elpmaxe@bob");
    let mut zero_width = login_failed("bob\u{200B}@example.com");
    zero_width["details"] = json!("Invalid password");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (serde_json::to_vec(&unknown).unwrap(), "unknown_action"),
        (serde_json::to_vec(&json!([login_failed("ok"), unknown])).unwrap(), "unknown_action"),
        (serde_json::to_vec(&long).unwrap(), "invalid_event"),
        (serde_json::to_vec(&bad_ip).unwrap(), "invalid_event"),
        (serde_json::to_vec(&extra).unwrap(), "invalid_event"),
        (serde_json::to_vec(&no_actor).unwrap(), "invalid_event"),
        (serde_json::to_vec(&bidi).unwrap(), "invalid_event"),
        (serde_json::to_vec(&zero_width).unwrap(), "invalid_event"),
        (b"{\"action\": ".to_vec(), "malformed_json"),
        (b"\"just a string\"".to_vec(), "invalid_event"),
        (b"[]".to_vec(), "invalid_event"),
        (vec![b'{', 0xff, 0xfe, b'}'], "malformed_json"),
        (serde_json::to_vec(&Value::Array((0..1001).map(|_| login_failed("x")).collect())).unwrap(), "too_many_events"),
    ];
    for (body, code) in cases {
        let (status, resp) = app.post_raw(body.clone(), Some(&app.token), None).await;
        assert_eq!(status, 400, "{}: {resp}", String::from_utf8_lossy(&body[..body.len().min(80)]));
        assert_eq!(resp["error"]["code"], code, "{resp}");
        assert!(resp["error"]["message"].as_str().unwrap().len() > 5);
    }
    let (status, resp) = app.post_raw(vec![b' '; 9 * 1024 * 1024], Some(&app.token), None).await;
    assert_eq!((status, resp["error"]["code"].as_str()), (413, Some("payload_too_large")));
    assert_eq!(app.size().await, before, "nothing was appended");
    app.stop().await;
}

async fn missing_unknown_or_revoked_tokens_are_refused(app: ApiApp) {
    let body = serde_json::to_vec(&login_failed("x")).unwrap();
    for token in [None, Some("lbk_not-a-token"), Some("Basic abc")] {
        let (status, resp) = app.post_raw(body.clone(), token, None).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(resp["error"]["code"], "unauthorized");
    }
    let org = app.log.org(&OrgSlug::default_org()).await.unwrap();
    app.log.revoke_api_token(&org, "billing", Actor::system(), Source::default(), "test").await.unwrap();
    let before = app.size().await;
    let (status, _) = app.post_raw(body, Some(&app.token), None).await;
    assert_eq!(status, 401, "a revoked token stops working at once");
    assert_eq!(app.size().await, before);
    app.stop().await;
}

async fn idempotency_key_answers_the_first_result(app: ApiApp) {
    let body = serde_json::to_vec(&json!([login_failed("a"), login_failed("b")])).unwrap();
    let (s1, r1) = app.post_raw(body.clone(), Some(&app.token), Some("req-42")).await;
    let (s2, r2) = app.post_raw(body.clone(), Some(&app.token), Some("req-42")).await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(r1, r2, "the retry answers the first result");
    let size = app.size().await;
    // Concurrent retries of a new key: exactly one appends.
    let body3 = serde_json::to_vec(&login_failed("c")).unwrap();
    let results = futures_join(&app, &body3, "req-43").await;
    assert!(results.iter().all(|(s, _)| *s == 201));
    assert!(results.windows(2).all(|w| w[0].1 == w[1].1), "{results:?}");
    assert_eq!(app.size().await, size + 1);
    // The same key for another body is an error, not a silent replay.
    let (s, r) = app.post_raw(body3, Some(&app.token), Some("req-42")).await;
    assert_eq!((s, r["error"]["code"].as_str()), (422, Some("idempotency_key_reused")));
    let (s, r) = app.post_raw(body, Some(&app.token), Some("bad key with spaces")).await;
    assert_eq!((s, r["error"]["code"].as_str()), (400, Some("bad_idempotency_key")));
    app.stop().await;
}

async fn futures_join(app: &ApiApp, body: &[u8], key: &str) -> Vec<(u16, Value)> {
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (client, base, token, body, key) =
            (app.http.clone(), app.base.clone(), app.token.clone(), body.to_vec(), key.to_owned());
        handles.push(tokio::spawn(async move {
            let resp = client
                .post(format!("{base}/api/v1/events"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .body(body)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn two_organizations_never_mix(app: ApiApp) {
    let acme = app.log.org(&OrgSlug::parse("acme").unwrap()).await.unwrap();
    let (_, acme_token) = app
        .log
        .create_api_token(&acme, "svc", "login.*".parse().unwrap(), Actor::system(), Source::default(), "test")
        .await
        .unwrap();
    for _ in 0..3 {
        app.post_events(&login_failed("default-user")).await;
    }
    let (status, body) =
        app.post_raw(serde_json::to_vec(&login_failed("acme-user")).unwrap(), Some(acme_token.expose()), None).await;
    assert_eq!(status, 201);
    assert_eq!(body["seqs"], json!([1]), "acme's log has its own seqs (0 was its token's creation)");
    let acme_rows = app.store.events(acme.id, 0..100).await.unwrap();
    assert!(acme_rows.iter().all(|r| logbook_core::leaf::decode(&r.leaf).unwrap().org.as_str() == "acme"));
    assert_eq!(acme_rows.len(), 2);
    // Each log's checkpoint follows its appends.
    let default_org = app.org().await;
    let default_size = app.size().await;
    app.app.checkpoint_covering(&default_org, default_size).await;
    app.app.checkpoint_covering(&acme, 2).await;
    let (_, default_cp) = app.get("/api/v1/checkpoint").await;
    let (_, acme_cp) = app.get("/api/v1/checkpoint?org=acme").await;
    assert!(default_cp.starts_with("logbook.local/default\n"));
    assert!(acme_cp.starts_with("logbook.local/acme\n2\n"), "{acme_cp}");
    let (status, _) = app.get("/api/v1/proof/inclusion?seq=1&size=2&org=acme").await;
    assert_eq!(status, 200);
    let (status, _) = app.get("/api/v1/proof/inclusion?seq=3&org=acme").await;
    assert_eq!(status, 400, "acme has no seq 3");
    app.stop().await;
}
