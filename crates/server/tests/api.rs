//! The API driven like a client: the real application on port 0, a fresh store per test.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use logbook_core::{Actor, Clock, ManualClock, OrgSlug, SeededRandom, Source, SystemClock, Timestamp};
use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_integrity::from_hex;
use logbook_integrity::proof::{check_consistency, check_inclusion};
use logbook_log::LogService;
use logbook_server::{Application, Settings};
use logbook_store::Store;
use logbook_store_postgres::PgStore;
use logbook_store_sqlite::SqliteStore;
use serde_json::{json, Value};

const READER: &str = "reader@example.com";
const READER_PASSWORD: &str = "correct horse battery staple";

struct TestApp {
    base: String,
    client: reqwest::Client,
    log: Arc<LogService>,
    store: Arc<dyn Store>,
    token: String,
    /// The session of the user who reads the audit log.
    cookie: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// The application on a fresh store of the given backend; `None` when that backend is not
    /// available here (the reason is printed).
    async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with_clock(backend, Arc::new(SystemClock)).await
    }

    async fn spawn_with_clock(backend: Backend, clock: Arc<dyn Clock>) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(dir.path().to_owned());
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.checkpoint_interval = Duration::from_millis(20);
        settings.witness_dir = Some(dir.path().join("witness"));
        let store: Arc<dyn Store> = match backend {
            Backend::Sqlite => Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
            Backend::Postgres => {
                Arc::new(PgStore::connect(&logbook_store_postgres::testing::fresh_database().await?).await.unwrap())
            }
        };
        let app = Application::build(&settings, store.clone(), clock, Arc::new(SeededRandom::new(42))).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let log = app.log().clone();
        let org = log.org(&OrgSlug::default_org()).await.unwrap();
        let (_, secret) =
            log.create_api_token(&org, "billing", Actor::system(), Source::default(), "test").await.unwrap();
        // The audit log is read by a signed-in auditor (through an admin who sets the zone).
        app.accounts().create_user_as_operator(READER, logbook_core::Role::Admin, READER_PASSWORD).await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let client = reqwest::Client::new();
        let resp = client
            .post(format!("{base}/api/v1/session"))
            .json(&json!({"email": READER, "password": READER_PASSWORD}))
            .send()
            .await
            .unwrap();
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let csrf = resp.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
        // A zone with DST, so that every test shows local times and day bounds are not UTC's.
        let resp = client
            .patch(format!("{base}/api/v1/settings"))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .json(&json!({"time_zone": "Europe/Berlin"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Some(Self {
            base,
            client,
            log,
            store,
            token: secret.expose().to_owned(),
            cookie,
            _dir: dir,
            stop: Some(tx),
            server: Some(server),
        })
    }

    async fn post_events(&self, body: &Value) -> (u16, Value) {
        self.post_raw(serde_json::to_vec(body).unwrap(), Some(&self.token), None).await
    }

    async fn post_raw(&self, body: Vec<u8>, token: Option<&str>, key: Option<&str>) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/api/v1/events", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn size(&self) -> u64 {
        let org = self.store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
        self.store.log_head(org.id).await.unwrap().size
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
    }

    /// Waits until the latest checkpoint covers `size` events.
    async fn checkpoint_covering(&self, size: u64) -> String {
        for _ in 0..200 {
            let (status, note) = self.get("/api/v1/checkpoint").await;
            if status == 200 && note.lines().nth(1) == Some(&size.to_string()) {
                return note;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no checkpoint of size {size}");
    }
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Each API test runs on every backend: `on_both_stores!(name, ...)` makes `name::sqlite` and
/// `name::postgres`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::TestApp::spawn(super::Backend::Sqlite).await.unwrap()).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    match super::TestApp::spawn(super::Backend::Postgres).await {
                        Some(app) => super::$name(app).await,
                        None => eprintln!("SKIPPED {}::postgres: PostgreSQL not available", stringify!($name)),
                    }
                }
            }
        )*
    };
}

on_both_stores!(
    ingests_one_event_or_an_array_and_answers_after_commit,
    bad_input_gets_a_clear_4xx_and_appends_nothing,
    missing_unknown_or_revoked_tokens_are_refused,
    idempotency_key_answers_the_first_result,
    proofs_verify_with_the_public_key_alone,
    two_organizations_never_mix,
    health_and_metrics,
    shutdown_commits_and_signs_a_final_checkpoint,
);

fn login_failed(user: &str) -> Value {
    json!({
        "action": "login.failed",
        "actor": {"type": "anonymous", "id": user},
        "details": "Invalid password",
        "fields": {"reason": "invalid_password"},
        "outcome": "failure",
        "source": {"ip": "203.0.113.9", "user_agent": "Mozilla/5.0"}
    })
}

async fn ingests_one_event_or_an_array_and_answers_after_commit(app: TestApp) {
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

async fn bad_input_gets_a_clear_4xx_and_appends_nothing(app: TestApp) {
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
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (serde_json::to_vec(&unknown).unwrap(), "unknown_action"),
        (serde_json::to_vec(&json!([login_failed("ok"), unknown])).unwrap(), "unknown_action"),
        (serde_json::to_vec(&long).unwrap(), "invalid_event"),
        (serde_json::to_vec(&bad_ip).unwrap(), "invalid_event"),
        (serde_json::to_vec(&extra).unwrap(), "invalid_event"),
        (serde_json::to_vec(&no_actor).unwrap(), "invalid_event"),
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

async fn missing_unknown_or_revoked_tokens_are_refused(app: TestApp) {
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

async fn idempotency_key_answers_the_first_result(app: TestApp) {
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

async fn futures_join(app: &TestApp, body: &[u8], key: &str) -> Vec<(u16, Value)> {
    let mut handles = Vec::new();
    for _ in 0..8 {
        let (client, base, token, body, key) =
            (app.client.clone(), app.base.clone(), app.token.clone(), body.to_vec(), key.to_owned());
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

async fn proofs_verify_with_the_public_key_alone(app: TestApp) {
    let batch: Vec<Value> = (0..600).map(|i| login_failed(&format!("u{i}"))).collect();
    app.post_events(&Value::Array(batch)).await;
    let size = app.size().await;
    let note = app.checkpoint_covering(size).await;
    let (_, key) = app.get("/api/v1/public-key").await;
    let cp = CheckpointVerifier::new(&key).unwrap().verify(&note).unwrap();
    assert_eq!(cp.origin, "logbook.local/default");

    for seq in [0, 1, 255, 256, 300, size - 1] {
        let (status, body) = app.get(&format!("/api/v1/proof/inclusion?seq={seq}&size={size}")).await;
        assert_eq!(status, 200, "{body}");
        let p: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(p["seq"], seq);
        let hashes: Vec<_> =
            p["hashes"].as_array().unwrap().iter().map(|h| from_hex(h.as_str().unwrap()).unwrap()).collect();
        let leaf = from_hex(p["leaf_hash"].as_str().unwrap()).unwrap();
        assert_eq!(p["root"].as_str().unwrap(), logbook_integrity::to_hex(&cp.root));
        check_inclusion(seq, size, leaf, &hashes, cp.root).unwrap();
        assert!(body.chars().all(|c| !c.is_ascii_uppercase()), "lowercase hex");
    }
    // Without size: against the latest checkpoint.
    let (status, _) = app.get("/api/v1/proof/inclusion?seq=3").await;
    assert_eq!(status, 200);

    let (status, body) = app.get(&format!("/api/v1/proof/consistency?from=10&to={size}")).await;
    assert_eq!(status, 200, "{body}");
    let c: Value = serde_json::from_str(&body).unwrap();
    let hashes: Vec<_> =
        c["hashes"].as_array().unwrap().iter().map(|h| from_hex(h.as_str().unwrap()).unwrap()).collect();
    check_consistency(10, size, from_hex(c["old_root"].as_str().unwrap()).unwrap(), &hashes, cp.root).unwrap();

    for (path, code) in [
        (format!("/api/v1/proof/inclusion?seq={size}&size={size}"), 400),
        (format!("/api/v1/proof/inclusion?seq=0&size={}", size + 5), 400),
        ("/api/v1/proof/inclusion?seq=-1".to_string(), 400),
        ("/api/v1/proof/inclusion".to_string(), 400),
        ("/api/v1/proof/consistency?from=0&to=5".to_string(), 400),
        ("/api/v1/proof/consistency?from=9&to=5".to_string(), 400),
        ("/api/v1/proof/inclusion?seq=0&org=nobody".to_string(), 404),
        ("/api/v1/proof/inclusion?seq=0&org=Bad%20Org".to_string(), 400),
        ("/api/v1/nothing-here".to_string(), 404),
    ] {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, code, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{path}: not JSON: {body}"));
        assert!(v["error"]["code"].is_string());
    }
    app.stop().await;
}

async fn two_organizations_never_mix(app: TestApp) {
    let acme = app.log.org(&OrgSlug::parse("acme").unwrap()).await.unwrap();
    let (_, acme_token) =
        app.log.create_api_token(&acme, "svc", Actor::system(), Source::default(), "test").await.unwrap();
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
    tokio::time::sleep(Duration::from_millis(100)).await;
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

async fn health_and_metrics(app: TestApp) {
    assert_eq!(app.get("/healthz").await, (200, "ok\n".into()));
    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, body.as_str()), (200, "{\"status\":\"ready\"}"));
    app.post_events(&login_failed("m")).await;
    let (status, metrics) = app.get("/metrics").await;
    assert_eq!(status, 200);
    // The set-up's four (token created, reader added, signed in, time zone set) and this one.
    assert!(metrics.contains("logbook_events_appended_total 5"), "{metrics}");
    assert!(metrics.contains("logbook_http_responses_total{status=\"201\"} 1"), "{metrics}");
    app.stop().await;
}

async fn shutdown_commits_and_signs_a_final_checkpoint(app: TestApp) {
    app.post_events(&login_failed("last")).await;
    let size = app.size().await;
    let log = app.log.clone();
    let store = app.store.clone();
    app.stop().await;
    let org = store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    let cp = store.latest_checkpoint(org.id).await.unwrap().unwrap();
    assert_eq!(cp.size, size);
    log.signer().verifier().verify(&cp.note).unwrap();
}

#[test]
fn openapi_document_is_checked_in() {
    let generated = logbook_server::openapi::document();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p logbook-server --test api openapi` and commit it"
    );
    let v: Value = serde_json::from_str(&generated).unwrap();
    for p in [
        "/api/v1/events",
        "/api/v1/checkpoint",
        "/api/v1/public-key",
        "/api/v1/proof/inclusion",
        "/api/v1/proof/consistency",
    ] {
        assert!(v["paths"][p].is_object(), "{p} is documented");
    }
}

#[tokio::test]
async fn the_signing_key_is_made_once_with_mode_0600_or_read_from_a_configured_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path().to_owned());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    let start = |settings: Settings| async move {
        let store = Arc::new(SqliteStore::open(&settings.data_dir).await.unwrap());
        let app =
            Application::build(&settings, store, Arc::new(SystemClock), Arc::new(SeededRandom::new(5))).await.unwrap();
        let key = app.log().signer().verifier_key().to_owned();
        app.log().shutdown().await;
        key
    };
    let first = start(settings.clone()).await;
    let path = dir.path().join("checkpoint-signing.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the owner may read the key");
    assert_eq!(start(settings.clone()).await, first, "the same key at the next start");

    // A configured key file wins over the data directory's.
    let other = logbook_integrity::checkpoint::CheckpointSigner::generate(&SeededRandom::new(99), "elsewhere").unwrap();
    let configured = dir.path().join("configured.key");
    std::fs::write(&configured, other.secret()).unwrap();
    settings.signing_key_file = Some(configured);
    assert_eq!(start(settings.clone()).await, other.verifier_key());

    // A malformed key is a clear start error that does not echo the file.
    std::fs::write(dir.path().join("configured.key"), "PRIVATE+KEY+oops").unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let err = Application::build(&settings, store, Arc::new(SystemClock), Arc::new(SeededRandom::new(5)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("signing key") && !err.contains("oops"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Reading the log: GET /api/v1/events, /api/v1/events/export, /api/v1/users-in-log.

/// The DST test drives its own clock: `on_both_stores!` with a manual clock.
macro_rules! on_both_stores_with_clock {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                fn clock() -> std::sync::Arc<logbook_core::ManualClock> {
                    // 2026-03-27T12:00:00Z, before the test's events.
                    std::sync::Arc::new(logbook_core::ManualClock::new(logbook_core::Timestamp::from_micros(1_774_612_800_000_000)))
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let c = clock();
                    super::$name(super::TestApp::spawn_with_clock(super::Backend::Sqlite, c.clone()).await.unwrap(), c).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let c = clock();
                    match super::TestApp::spawn_with_clock(super::Backend::Postgres, c.clone()).await {
                        Some(app) => super::$name(app, c).await,
                        None => eprintln!("SKIPPED {}::postgres: PostgreSQL not available", stringify!($name)),
                    }
                }
            }
        )*
    };
}

on_both_stores!(
    every_filter_alone_and_combined,
    pagination_under_concurrent_appends_has_no_duplicates_or_gaps,
    forged_or_foreign_cursors_are_refused,
    csv_export_round_trips_hostile_values_and_is_audited,
    bad_query_parameters_get_clear_400s,
    new_events_are_found_at_once_and_indexed_within_two_seconds,
    users_in_log_feeds_the_user_filter,
);

on_both_stores_with_clock!(day_bounds_follow_the_platform_zone_across_dst);

impl TestApp {
    async fn sign_in_again(&mut self) {
        let resp = self
            .client
            .post(format!("{}/api/v1/session", self.base))
            .json(&json!({"email": READER, "password": READER_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        self.cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    }

    async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.client.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
    }

    async fn get_text(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self.client.get(format!("{}{path}", self.base)).header("cookie", &self.cookie).send().await.unwrap();
        (resp.status().as_u16(), resp.headers().clone(), resp.text().await.unwrap())
    }

    /// Walks every page of a query string (without limit/cursor); returns the events in order.
    async fn all_pages(&self, query: &str, limit: usize) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10_000 {
            let mut path = format!("/api/v1/events?{query}&limit={limit}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let (status, body) = self.get_json(&path).await;
            assert_eq!(status, 200, "{path}: {body}");
            let events = body["events"].as_array().unwrap();
            assert!(events.len() <= limit);
            out.extend(events.iter().cloned());
            match body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
        panic!("paging never ended");
    }
}

fn seqs_of(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
    if i % 3 == 0 {
        e["target"] =
            json!({"type": "protected_user", "id": format!("pu_{i}"), "display": format!("VIP{i}@Example.com")});
    }
    e
}

async fn every_filter_alone_and_combined(app: TestApp) {
    for chunk in (0..120).collect::<Vec<_>>().chunks(40) {
        let (s, b) = app.post_events(&Value::Array(chunk.iter().map(|&i| varied_event(i)).collect())).await;
        assert_eq!(s, 201, "{b}");
    }
    let all = app.all_pages("", 500).await;
    assert_eq!(all.len() as u64, app.size().await, "every event, the token's creation included");
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
    check("user", app.all_pages("user=Ben%40Acme.example", 7).await, &user);
    assert!(app.all_pages("user=ben%40acme.example", 7).await.is_empty(), "user is exact");
    let one = |e: &Value| e["action"] == "login.failed";
    check("one action", app.all_pages("action=login.failed", 9).await, &one);
    let two = |e: &Value| e["action"] == "login.failed" || e["action"] == "user.role_updated";
    check("two actions", app.all_pages("action=login.failed&action=user.role_updated", 9).await, &two);
    check("two actions, comma", app.all_pages("action=login.failed,user.role_updated", 500).await, &two);
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
        let got = app.all_pages(&format!("q={}", enc(q)), 11).await;
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
    check("from/to", app.all_pages(&format!("from={}&to={}", enc(t_lo), enc(t_hi)), 13).await, &in_range);
    let combined = |e: &Value| two(e) && in_range(e) && haystack(e).contains("step") && e["user"] != "nobody";
    check(
        "combined",
        app.all_pages(
            &format!("action=login.failed&action=user.role_updated&from={}&to={}&q=STEP", enc(t_lo), enc(t_hi)),
            3,
        )
        .await,
        &combined,
    );
    let all_four = |e: &Value| user(e) && two(e) && in_range(e) && haystack(e).contains("role");
    let got = app
        .all_pages(
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

async fn day_bounds_follow_the_platform_zone_across_dst(mut app: TestApp, clock: Arc<ManualClock>) {
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

async fn pagination_under_concurrent_appends_has_no_duplicates_or_gaps(app: TestApp) {
    let batch: Vec<Value> = (0..300).map(varied_event).collect();
    app.post_events(&Value::Array(batch)).await;
    let top = app.size().await - 1;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (client, base, token, stop) = (app.client.clone(), app.base.clone(), app.token.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let body: Vec<Value> = (0..5).map(|i| varied_event(1000 + n * 5 + i)).collect();
                let r =
                    client.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 201);
                n += 1;
            }
            n
        })
    };
    for query in ["", "action=login.failed&action=logout", "q=step"] {
        let got = seqs_of(&app.all_pages(query, 7).await);
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

async fn forged_or_foreign_cursors_are_refused(app: TestApp) {
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

async fn csv_export_round_trips_hostile_values_and_is_audited(app: TestApp) {
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
    let org = app.store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    let filter = logbook_store::EventFilter {
        actions: vec!["login.failed".into()],
        seqs: 0..app.size().await - 1,
        ..Default::default()
    };
    let mut enc = logbook_log::export::ExportEncoder::new(
        logbook_log::export::ExportFormat::Csv,
        jiff::tz::TimeZone::get("Europe/Berlin").unwrap(),
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

async fn bad_query_parameters_get_clear_400s(app: TestApp) {
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

async fn new_events_are_found_at_once_and_indexed_within_two_seconds(app: TestApp) {
    app.post_events(&Value::Array((0..500).map(varied_event).collect())).await;
    let org = app.store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    for round in 0..5 {
        let word = format!("needle{round}xyz");
        let mut e = login_failed("searcher@example.com");
        e["details"] = json!(format!("Found the {word} here"));
        let (s, b) = app.post_events(&e).await;
        assert_eq!(s, 201);
        let seq = b["seqs"][0].as_u64().unwrap();
        let acknowledged = std::time::Instant::now();
        // At once, whether or not the indexer got to it.
        let (_, page) = app.get_json(&format!("/api/v1/events?q={}", word.to_uppercase())).await;
        assert_eq!(seqs_of(page["events"].as_array().unwrap()), vec![seq], "round {round}");
        loop {
            if app.store.search_indexed(org.id).await.unwrap() > seq {
                break;
            }
            assert!(acknowledged.elapsed() < Duration::from_secs(2), "indexed within 2 s of the acknowledgement");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, page) = app.get_json(&format!("/api/v1/events?q={word}")).await;
        assert_eq!(seqs_of(page["events"].as_array().unwrap()), vec![seq]);
    }
    app.stop().await;
}

async fn users_in_log_feeds_the_user_filter(app: TestApp) {
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
