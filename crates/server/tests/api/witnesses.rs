//! Cosigning by C2SP witnesses: the real witness (`logbook_witness`, in-process on port 0) and
//! the real application, each on a fresh store.

use logbook_core::OrgSlug;
use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_integrity::cosignature::CosignatureVerifier;
use logbook_integrity::witness_protocol::AddCheckpointRequest;
use logbook_log::cosigning::WitnessEndpoint;
use logbook_store::Store;
use logbook_test_support::{on_both_stores, wait_until, Backend, TestApp, TestWitness};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::login_failed;

on_both_stores!(
    fixture = TestApp::spawn;
    cosignatures_are_stored_and_served,
    a_witness_that_is_down_blocks_nothing_and_the_checkpoint_is_below_quorum,
    a_rolled_back_or_forked_log_raises_the_alarm,
);

fn endpoint(w: &TestWitness) -> WitnessEndpoint {
    WitnessEndpoint { url: w.base.clone(), key: w.verifier_key.clone() }
}

async fn witnessed(backend: Backend, witnesses: Vec<WitnessEndpoint>, key_file: Option<std::path::PathBuf>) -> TestApp {
    TestApp::builder(backend)
        .settings(move |s| {
            s.witnesses = witnesses;
            if key_file.is_some() {
                s.signing_key_file = key_file;
            }
        })
        .spawn()
        .await
        .expect("the backend is available (the caller got it once already)")
}

/// The witness learns the app's log, as `logbook witness add-log` would.
fn add_log(app: &TestApp, w: &TestWitness) {
    w.add_log(&app.log.origin(&OrgSlug::default_org()), app.log.signer().verifier_key());
}

async fn append(app: &TestApp, token: &str, n: usize, tag: &str) -> u64 {
    let batch: Vec<Value> = (0..n).map(|i| login_failed(&format!("{tag}{i}"))).collect();
    let resp = app.http.post(app.url("/api/v1/events")).bearer_auth(token).json(&batch).send().await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    app.size().await
}

/// The served checkpoint once it is of `size`: its note and headers.
async fn served_at(app: &TestApp, size: u64, cosignatures: usize) -> (String, String) {
    wait_until(&format!("the checkpoint of size {size} with {cosignatures} cosignature(s)"), || async {
        let resp = app.http.get(app.url("/api/v1/checkpoint")).send().await.unwrap();
        let n: usize = resp.headers().get("logbook-cosignatures")?.to_str().ok()?.parse().ok()?;
        let quorum = resp.headers().get("logbook-witness-quorum")?.to_str().ok()?.to_owned();
        let note = resp.text().await.unwrap();
        let at = note.lines().nth(1)?.parse::<u64>().ok()?;
        (at == size && n == cosignatures).then_some((note, quorum))
    })
    .await
}

fn event(i: u64) -> logbook_core::NewEvent {
    use logbook_core::{Action, Actor, ActorKind, NewEvent, Outcome, Source};
    NewEvent {
        action: Action::LoginFailed.into(),
        actor: Actor { kind: ActorKind::Anonymous, id: format!("fork{i}"), email: None },
        target: None,
        details: format!("another history {i}"),
        fields: Default::default(),
        outcome: Outcome::Failure,
        source: Source { via: None, ip: None, user_agent: None },
        recorded_by: "test".into(),
    }
}

async fn metrics(app: &TestApp) -> String {
    app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

async fn admin(app: &TestApp) -> logbook_test_support::Session {
    app.set_up_admin("admin@example.com", "correct horse battery staple").await;
    app.sign_in("admin@example.com", "correct horse battery staple").await
}

async fn cosignatures_are_stored_and_served(app: TestApp) {
    let backend = app.backend;
    drop(app);
    let (w1, w2) = (TestWitness::spawn(1).await, TestWitness::spawn(2).await);
    let app = witnessed(backend, vec![endpoint(&w1), endpoint(&w2)], None).await;
    add_log(&app, &w1);
    add_log(&app, &w2);
    let token = app.create_token("billing").await;
    let size = append(&app, &token, 300, "a").await;

    let (note, quorum) = served_at(&app, size, 2).await;
    assert_eq!(quorum, "reached; quorum=2");
    // One note that the log's key and each witness's key verify.
    let cp = CheckpointVerifier::new(app.log.signer().verifier_key()).unwrap().verify(&note).unwrap();
    assert_eq!(cp.size, size);
    for w in [&w1, &w2] {
        CosignatureVerifier::new(&w.verifier_key).unwrap().verify_note(&note).unwrap();
        assert_eq!(w.held(&cp.origin).0, size, "the witness holds what it cosigned");
    }
    let org = app.org().await;
    assert_eq!(app.store.cosignatures(org.id, size).await.unwrap().len(), 2, "stored with the checkpoint");

    // The log goes on: the witnesses follow, each from the size it holds (a consistency proof).
    let size = append(&app, &token, 500, "b").await;
    served_at(&app, size, 2).await;

    // Proofs say which checkpoint they are against and who cosigned it.
    let (status, body) = app.get(&format!("/api/v1/proof/inclusion?seq=3&size={size}")).await;
    assert_eq!(status, 200, "{body}");
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["checkpoint"]["size"], size);
    assert_eq!(p["checkpoint"]["quorum"], 2);
    assert_eq!(p["checkpoint"]["quorum_reached"], true);
    let names: Vec<&str> =
        p["checkpoint"]["cosigned_by"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(names, ["witness.test/w1", "witness.test/w2"]);
    let (_, body) = app.get(&format!("/api/v1/proof/consistency?from=10&to={size}")).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["checkpoint"]["quorum_reached"], true);

    // The status, for admins, and the metrics.
    let session = admin(&app).await;
    let size = app.size().await;
    served_at(&app, size, 2).await;
    let (status, v) = app.call(Method::GET, "/api/v1/witnesses", Some(&session), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["quorum"], 2);
    assert_eq!(v["alarms"], serde_json::json!([]));
    let rows = v["witnesses"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    for row in rows {
        assert_eq!(row["cosigned_size"], size, "{row}");
        assert_eq!(row["lag_events"], 0, "{row}");
        assert_eq!(row["alarm"], Value::Null);
        assert!(row["url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    }
    let m = metrics(&app).await;
    assert!(
        m.contains(&format!("logbook_witness_cosigned_size{{witness=\"witness.test/w1\",org=\"default\"}} {size}")),
        "{m}"
    );
    assert!(m.contains("logbook_witness_alarm{witness=\"witness.test/w2\",org=\"default\"} 0"), "{m}");
    let page = app.http.get(app.url("/settings")).header("cookie", &session.cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("witness.test/w1") && page.contains("Last cosigned size"), "{page}");
}

async fn a_witness_that_is_down_blocks_nothing_and_the_checkpoint_is_below_quorum(app: TestApp) {
    let backend = app.backend;
    drop(app);
    // A port nothing listens on: connections are refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let w = TestWitness::spawn(3).await;
    let down = WitnessEndpoint { url, key: TestWitness::spawn(4).await.verifier_key.clone() };
    let app = witnessed(backend, vec![endpoint(&w), down], None).await;
    add_log(&app, &w);
    let token = app.create_token("billing").await;
    // Appends go on and checkpoints are signed while one witness cannot be reached.
    let mut size = 0;
    for round in 0..20 {
        size = append(&app, &token, 10, &format!("r{round}-")).await;
    }
    let org = app.org().await;
    logbook_test_support::within("the checkpoint", app.log.checkpointed().wait_for(|m| m.get(&org.id) >= Some(&size)))
        .await
        .unwrap();
    let (_, quorum) = served_at(&app, size, 1).await;
    assert_eq!(quorum, "not-reached; quorum=2", "one of two: below the quorum");
    let (_, body) = app.get("/api/v1/proof/inclusion?seq=0").await;
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["checkpoint"]["quorum_reached"], false, "{p}");
    let session = admin(&app).await;
    let v = wait_until("the error of the witness that is down", || async {
        let (_, v) = app.call(Method::GET, "/api/v1/witnesses", Some(&session), None).await;
        let row = v["witnesses"].as_array()?.iter().find(|r| r["url"].as_str() != Some(w.base.as_str()))?.clone();
        row["last_error"].as_str().is_some().then_some(row)
    })
    .await;
    assert!(v["last_error"].as_str().unwrap().contains("cannot reach the witness"), "{v}");
    assert_eq!(v["cosigned_size"], Value::Null);
    assert!(v["lag_events"].as_u64().unwrap() > 0);
    assert_eq!(v["alarm"], Value::Null, "unreachable is no alarm");
    assert!(app.log.integrity_alarms().is_empty());
}

async fn a_rolled_back_or_forked_log_raises_the_alarm(app: TestApp) {
    let backend = app.backend;
    drop(app);
    let w = TestWitness::spawn(5).await;
    let first = witnessed(backend, vec![endpoint(&w)], None).await;
    add_log(&first, &w);
    let token = first.create_token("billing").await;
    let size = append(&first, &token, 20, "x").await;
    served_at(&first, size, 1).await;
    let key_file = first.settings.signing_key().path().to_owned();
    let origin = first.log.origin(&OrgSlug::default_org());

    // A second store, same key and origin, a shorter tree: the log "rolled back".
    let rolled = witnessed(backend, vec![endpoint(&w)], Some(key_file.clone())).await;
    let token2 = rolled.create_token("billing").await;
    assert!(append(&rolled, &token2, 3, "y").await < size);
    let alarm = wait_until("the rollback alarm", || async { rolled.log.integrity_alarms().first().cloned() }).await;
    assert!(alarm.message.contains(&format!("size {size}")) && alarm.message.contains("rolled back"), "{alarm:?}");
    assert!(alarm.source.contains("witness.test/w5"), "{alarm:?}");
    assert_eq!(w.held(&origin).0, size, "the witness keeps what it cosigned");
    let m = metrics(&rolled).await;
    assert!(m.contains("logbook_witness_alarm{witness=\"witness.test/w5\",org=\"default\"} 1"), "{m}");
    // Admins see it above every page.
    let session = admin(&rolled).await;
    let page = rolled.http.get(rolled.url("/audit-log")).header("cookie", &session.cookie).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("Integrity alarm.") && page.contains("rolled back"), "{page}");
    let (_, v) = rolled.call(Method::GET, "/api/v1/witnesses", Some(&session), None).await;
    assert!(v["witnesses"][0]["alarm"].as_str().unwrap().contains("rolled back"), "{v}");

    // A third store, same key and origin, a longer but different tree: a fork. The witness
    // answers 409 with its size, then refuses the proof from it (422).
    let forked = witnessed(backend, vec![endpoint(&w)], Some(key_file)).await;
    // Its first checkpoint is already longer than what the witness holds.
    let org = forked.log.org(&OrgSlug::default_org()).await.unwrap();
    forked.log.append(&org, (0..40).map(event).collect(), None).await.unwrap();
    let long = forked.size().await;
    assert!(long > size);
    let alarm = wait_until("the fork alarm", || async { forked.log.integrity_alarms().first().cloned() }).await;
    assert!(alarm.message.contains("does not extend"), "{alarm:?}");
    assert_eq!(w.held(&origin).0, size, "the witness keeps what it cosigned");
    served_at(&forked, long, 0).await;
}

/// A witness that already holds the log's checkpoint (sent before this process knew of it) answers
/// 409 with its size; the client resends from that size and gets the cosignature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_is_resent_from_the_size_the_witness_holds() {
    let dir = tempfile::tempdir().unwrap();
    let w = TestWitness::spawn(6).await;
    let app = TestApp::builder(Backend::Sqlite).data_dir(dir.path().to_owned()).spawn().await.unwrap();
    add_log(&app, &w);
    let token = app.create_token("billing").await;
    let size = append(&app, &token, 30, "a").await;
    app.stop().await;
    let store = Backend::Sqlite.open(dir.path()).await.unwrap();
    let org = store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    let note = store.latest_checkpoint(org.id).await.unwrap().unwrap().note;
    drop(store);
    let answer = w.send(&AddCheckpointRequest { old_size: 0, proof: Vec::new(), checkpoint: note }).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // Restarted with the witness: its store knows no cosignature, so it first sends size 0.
    let app = TestApp::builder(Backend::Sqlite)
        .data_dir(dir.path().to_owned())
        .settings({
            let e = endpoint(&w);
            move |s| s.witnesses = vec![e]
        })
        .spawn()
        .await
        .unwrap();
    let (_, quorum) = served_at(&app, size, 1).await;
    assert_eq!(quorum, "reached; quorum=1");
    let size = append(&app, &token, 5, "b").await;
    served_at(&app, size, 1).await;
    assert!(app.log.integrity_alarms().is_empty());
}
