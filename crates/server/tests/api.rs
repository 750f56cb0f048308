//! The API driven like a client: the real application on port 0, a fresh store per test.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use logbook_core::{Actor, OrgSlug, SeededRandom, Source, SystemClock};
use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_integrity::from_hex;
use logbook_integrity::proof::{check_consistency, check_inclusion};
use logbook_log::LogService;
use logbook_server::{Application, Settings};
use logbook_store::Store;
use logbook_store_postgres::PgStore;
use logbook_store_sqlite::SqliteStore;
use serde_json::{json, Value};

struct TestApp {
    base: String,
    client: reqwest::Client,
    log: Arc<LogService>,
    store: Arc<dyn Store>,
    token: String,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// The application on a fresh store of the given backend; `None` when that backend is not
    /// available here (the reason is printed).
    async fn spawn(backend: Backend) -> Option<Self> {
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
        let app = Application::build(&settings, store.clone(), Arc::new(SystemClock), Arc::new(SeededRandom::new(42)))
            .await
            .unwrap();
        let base = format!("http://{}", app.local_addr());
        let log = app.log().clone();
        let org = log.org(&OrgSlug::default_org()).await.unwrap();
        let (_, secret) =
            log.create_api_token(&org, "billing", Actor::system(), Source::default(), "test").await.unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Some(Self {
            base,
            client: reqwest::Client::new(),
            log,
            store,
            token: secret.expose().to_owned(),
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
    assert!(metrics.contains("logbook_events_appended_total 2"), "{metrics}");
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
