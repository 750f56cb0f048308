//! Hostile HTTP: the real application on port 0 with a fresh store, driven with raw TCP and
//! reqwest — oversized bodies and headers, slow clients, invalid UTF-8, path tricks, a sign-in
//! flood. Every answer is a 4xx (or 429), the server keeps serving others, and no response body
//! collected here contains a stack trace, SQL, a file path or a secret.
//!
//! `HOSTILE_SHOW=1 cargo test -p logbook-server --test hostile -- --nocapture` lists every
//! request with its status and the start of its body.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logbook_core::{Actor, OrgSlug, Role, SeededRandom, Source, SystemClock};
use logbook_server::{Application, Settings};
use logbook_store::Store;
use logbook_store_postgres::PgStore;
use logbook_store_sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READER: &str = "reader@example.com";
const READER_PASSWORD: &str = "correct horse battery staple";
const VICTIM: &str = "victim@example.com";
const VICTIM_PASSWORD: &str = "purple elephant marmalade sky";
const WRONG_PASSWORD: &str = "wrong-password-9f3a1c";

/// One collected answer.
#[derive(Debug, Clone)]
struct Answer {
    /// `None` when the server closed the connection without answering.
    status: Option<u16>,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }

    fn is_4xx(&self) -> bool {
        self.status.is_some_and(|s| (400..500).contains(&s))
    }
}

struct TestApp {
    addr: SocketAddr,
    base: String,
    client: reqwest::Client,
    store: Arc<dyn Store>,
    token: String,
    /// The reader's session cookie (`name=value`) and CSRF token.
    cookie: String,
    csrf: String,
    /// Never to be seen in any answer.
    secrets: Vec<String>,
    /// Every body answered in this test, with what was asked.
    answers: Mutex<Vec<(String, Answer)>>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl TestApp {
    /// The application on a fresh store; `None` when that backend is not available here.
    async fn spawn(backend: Backend, tune: impl FnOnce(&mut Settings)) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(dir.path().to_owned());
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.checkpoint_interval = Duration::from_millis(20);
        tune(&mut settings);
        let store: Arc<dyn Store> = match backend {
            Backend::Sqlite => Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
            Backend::Postgres => {
                Arc::new(PgStore::connect(&logbook_store_postgres::testing::fresh_database().await?).await.unwrap())
            }
        };
        let app = Application::build(&settings, store.clone(), Arc::new(SystemClock), Arc::new(SeededRandom::new(7)))
            .await
            .unwrap();
        let addr = app.local_addr();
        let base = format!("http://{addr}");
        let log = app.log().clone();
        let org = log.org(&OrgSlug::default_org()).await.unwrap();
        let (_, secret) =
            log.create_api_token(&org, "billing", Actor::system(), Source::default(), "test").await.unwrap();
        app.accounts().create_user_as_operator(READER, Role::Admin, READER_PASSWORD).await.unwrap();
        app.accounts().create_user_as_operator(VICTIM, Role::Auditor, VICTIM_PASSWORD).await.unwrap();
        let signing_key = std::fs::read_to_string(dir.path().join("checkpoint-signing.key")).unwrap();
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
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let csrf = resp.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
        let session_token = cookie.split_once('=').unwrap().1.to_owned();
        let signing_key = signing_key.trim().to_owned();
        let key_material = signing_key.rsplit('+').next().unwrap().to_owned();
        let secrets = vec![
            secret.expose().to_owned(),
            session_token,
            READER_PASSWORD.to_owned(),
            VICTIM_PASSWORD.to_owned(),
            WRONG_PASSWORD.to_owned(),
            signing_key,
            key_material,
        ];
        Some(Self {
            addr,
            base,
            client,
            store,
            token: secret.expose().to_owned(),
            cookie,
            csrf,
            secrets,
            answers: Mutex::new(Vec::new()),
            _dir: dir,
            stop: Some(tx),
            server: Some(server),
        })
    }

    fn record(&self, what: &str, answer: &Answer) {
        self.answers.lock().unwrap().push((what.to_owned(), answer.clone()));
    }

    /// Sends `request` as is on a new connection (writing it while reading, so that an early
    /// answer is not lost), and reads until the server closes the connection.
    async fn raw(&self, what: &str, request: &[u8]) -> Answer {
        let answer = raw_exchange(self.addr, request.to_vec(), Duration::ZERO).await;
        self.record(what, &answer);
        answer
    }

    /// `GET target` with `Connection: close` and the given extra header lines.
    async fn raw_get(&self, target: &[u8], extra: &[u8]) -> Answer {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        req.extend_from_slice(extra);
        req.extend_from_slice(b"\r\n");
        self.raw(&format!("GET {}", String::from_utf8_lossy(target)), &req).await
    }

    /// `POST path` with a body, `Connection: close` and the given extra header lines.
    async fn raw_post(&self, path: &str, content_type: &str, extra: &str, body: &[u8]) -> Answer {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.raw(&format!("POST {path}"), &req).await
    }

    async fn get(&self, path: &str) -> Answer {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        let answer = from_reqwest(resp).await;
        self.record(&format!("GET {path}"), &answer);
        answer
    }

    /// The server answers /healthz (and how long that took).
    async fn healthz(&self) -> Duration {
        let started = Instant::now();
        let answer = self.get("/healthz").await;
        assert_eq!((answer.status, answer.text().as_str()), (Some(200), "ok\n"));
        started.elapsed()
    }

    /// The checks every test ends with: no answer was a 5xx, no handler panicked, and no body
    /// reveals internals or a secret. Then the server is stopped.
    async fn finish(mut self) {
        let metrics = self.client.get(format!("{}/metrics", self.base)).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("logbook_http_panics_total 0"), "{metrics}");
        assert!(!metrics.contains("status=\"5"), "a 5xx was answered:\n{metrics}");
        let answers = self.answers.lock().unwrap().clone();
        assert!(!answers.is_empty());
        if std::env::var_os("HOSTILE_SHOW").is_some() {
            for (what, a) in &answers {
                let w: String = what.chars().take(70).collect();
                eprintln!("{:?} {w:?} {}", a.status, a.text().chars().take(90).collect::<String>().replace('\n', " "));
            }
        }
        for (what, answer) in &answers {
            assert!(answer.status.is_none_or(|s| s < 500), "{what}: {answer:?}");
            assert_clean(what, &answer.head, &answer.body, &self.secrets);
            // Past hyper (which answers a malformed head bare), an API error is JSON.
            let api = what.contains(" /api/") || what.contains(" http://evil.example/api/");
            if api && answer.is_4xx() && answer.head.to_lowercase().contains("content-type") {
                let code = answer.code();
                assert!(!code.is_empty(), "{what}: not the standard error body: {answer:?}");
            }
        }
        let _ = self.stop.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap().unwrap();
    }
}

/// No stack trace, SQL, file path or secret.
fn assert_clean(what: &str, head: &str, body: &[u8], secrets: &[String]) {
    let text = String::from_utf8_lossy(body);
    let lower = text.to_lowercase();
    for marker in
        ["panicked at", "RUST_BACKTRACE", "backtrace", ".rs:", "SELECT", "INSERT", "/work", "/tmp", "/root", "src/"]
    {
        assert!(!text.contains(marker), "{what}: the body contains {marker:?}: {text}");
    }
    for marker in ["sqlite", "postgres", "rusqlite", "tokio_postgres"] {
        assert!(!lower.contains(marker), "{what}: the body mentions {marker:?}: {text}");
    }
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "{what}: the body contains a secret: {text}");
        // The session token is set by a sign-in's Set-Cookie and by nothing else here.
        if !head.to_lowercase().contains("set-cookie") {
            assert!(!head.contains(secret.as_str()), "{what}: the head contains a secret: {head}");
        }
    }
}

async fn from_reqwest(resp: reqwest::Response) -> Answer {
    let status = Some(resp.status().as_u16());
    let head = format!("{:?}", resp.headers());
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Answer { status, head, body }
}

/// Writes `request` (pausing `pace` between bytes, when not zero) while reading the answer until
/// the server closes the connection (or 30 s pass).
async fn raw_exchange(addr: SocketAddr, request: Vec<u8>, pace: Duration) -> Answer {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        if pace.is_zero() {
            let _ = wr.write_all(&request).await;
        } else {
            for b in request {
                if wr.write_all(&[b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(pace).await;
            }
        }
        wr
    });
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writer.abort();
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Answer { status: None, head: String::from_utf8_lossy(raw).into_owned(), body: Vec::new() };
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok());
    let mut body = raw[end + 4..].to_vec();
    if head.to_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Answer { status, head, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}

/// Each test runs on both stores: `on_both_stores!(name, ...)` makes `name::sqlite` and
/// `name::postgres` (skipped when PostgreSQL is not reachable).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::Backend::Sqlite).await.unwrap()
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if super::$name(super::Backend::Postgres).await.is_none() {
                        eprintln!("SKIPPED {}::postgres: PostgreSQL not available", stringify!($name));
                    }
                }
            }
        )*
    };
}

on_both_stores!(
    oversized_bodies_are_refused_with_413,
    oversized_headers_are_refused_and_the_server_carries_on,
    slow_clients_are_cut_off_while_others_are_served,
    the_connection_cap_holds_and_idle_connections_are_reaped,
    invalid_utf8_anywhere_is_a_4xx,
    path_tricks_answer_4xx_and_never_serve_a_file,
    a_sign_in_flood_is_refused_while_others_are_served,
    shutdown_finishes_a_request_in_flight,
);

fn event() -> Value {
    json!({"action": "login.failed", "actor": {"type": "anonymous", "id": "x@example.com"}, "outcome": "failure"})
}

async fn oversized_bodies_are_refused_with_413(backend: Backend) -> Option<()> {
    let app = TestApp::spawn(backend, |_| {}).await?;
    let bearer = format!("Authorization: Bearer {}\r\n", app.token);

    // Declared too large: refused before anything is read, so a client that waits for
    // `100 Continue` never sends the body.
    for (path, size, extra) in [
        ("/api/v1/events", 8 * 1024 * 1024 + 1_u64, bearer.as_str()),
        ("/api/v1/events", 1 << 40, bearer.as_str()),
        ("/api/v1/session", 64 * 1024 + 1, ""),
        ("/api/v1/protected-users/import", 4 * 1024 * 1024 + 1, ""),
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {size}\r\nExpect: 100-continue\r\n{extra}\r\n"
        );
        let answer = app.raw(&format!("POST {path} ({size} bytes declared)"), req.as_bytes()).await;
        assert_eq!(answer.status, Some(413), "{path} {size}: {answer:?}");
        assert_eq!(answer.code(), "payload_too_large");
        assert!(!answer.head.contains("100 Continue"), "{answer:?}");
    }

    // The routes with large bodies read them only after authentication: a client without
    // credentials is refused at once, without the server waiting for (or holding) its body.
    for (path, size) in [
        ("/api/v1/events", 8 * 1024 * 1024),
        ("/api/v1/protected-users/import", 4 * 1024 * 1024),
        ("/protected-users/import", 4 * 1024 * 1024),
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/csv\r\nContent-Length: {size}\r\n\r\n"
        );
        let started = Instant::now();
        let answer = app.raw(&format!("POST {path} (unauthenticated, body never sent)"), req.as_bytes()).await;
        assert!(matches!(answer.status, Some(401) | Some(303)), "{path}: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path}: answered after {:?}", started.elapsed());
    }

    // A client that sends the body without waiting still reads the 413 (the server reads and
    // discards a refused body of up to 16 MiB rather than resetting the connection).
    for (path, size) in [("/api/v1/session", 200 * 1024), ("/api/v1/events", 9 * 1024 * 1024)] {
        let resp = app
            .client
            .post(format!("{}{path}", app.base))
            .bearer_auth(&app.token)
            .header("content-type", "application/json")
            .body(vec![b' '; size])
            .send()
            .await
            .unwrap();
        let answer = from_reqwest(resp).await;
        app.record(&format!("POST {path} ({size} bytes sent)"), &answer);
        assert_eq!((answer.status, answer.code().as_str()), (Some(413), "payload_too_large"), "{answer:?}");
    }

    // Not declared (chunked): cut at the limit.
    let mut req =
        b"POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for _ in 0..40 {
        req.extend_from_slice(format!("{:x}\r\n", 4096).as_bytes());
        req.extend_from_slice(&[b' '; 4096]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = app.raw("POST /api/v1/session (chunked, 160 KiB)", &req).await;
    assert_eq!((answer.status, answer.code().as_str()), (Some(413), "payload_too_large"), "{answer:?}");

    // Ingestion really takes more than the small limit; the import too (its 20,000 rows are
    // read, then refused for their number, not their size).
    let big: Vec<Value> = (0..1000).map(|_| event()).collect();
    let body = serde_json::to_vec(&big).unwrap();
    assert!(body.len() > 64 * 1024);
    let answer = app.raw_post("/api/v1/events", "application/json", &bearer, &body).await;
    assert_eq!(answer.status, Some(201), "{answer:?}");
    let mut csv = String::from("email,name\n");
    for i in 0..20_000 {
        csv.push_str(&format!("user{i}@example.com,User {i}\n"));
    }
    let extra = format!("Cookie: {}\r\nX-CSRF-Token: {}\r\n", app.cookie, app.csrf);
    let answer = app.raw_post("/api/v1/protected-users/import", "text/csv", &extra, csv.as_bytes()).await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    assert!(answer.text().contains("at most 10000 rows"), "{answer:?}");

    // A console form: the same limit, answered with a page.
    let answer = app
        .raw(
            "POST /login (declared too large)",
            b"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await;
    assert_eq!(answer.status, Some(413), "{answer:?}");
    assert!(answer.head.to_lowercase().contains("text/html"), "{answer:?}");
    app.healthz().await;
    app.finish().await;
    Some(())
}

async fn oversized_headers_are_refused_and_the_server_carries_on(backend: Backend) -> Option<()> {
    let app = TestApp::spawn(backend, |_| {}).await?;
    // One 20 KiB header.
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let answer = app.raw_get(b"/healthz", big.as_bytes()).await;
    assert!(matches!(answer.status, Some(431) | None), "{answer:?}");
    // A 20 KiB cookie.
    let cookie = format!("Cookie: logbook_session={}\r\n", "b".repeat(20 * 1024));
    let answer = app.raw_get(b"/api/v1/session", cookie.as_bytes()).await;
    assert!(matches!(answer.status, Some(431) | None), "{answer:?}");
    // 200 small headers.
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = app.raw_get(b"/healthz", many.as_bytes()).await;
    assert!(matches!(answer.status, Some(431) | None), "{answer:?}");
    // Just under the limits: served.
    let fine: String = (0..50).map(|i| format!("X-H{i}: {}\r\n", "c".repeat(100))).collect();
    let answer = app.raw_get(b"/healthz", fine.as_bytes()).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    // A header that is not a header, and one with a NUL.
    let answer = app.raw_get(b"/healthz", b"no colon here\r\n").await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    let answer = app.raw_get(b"/healthz", b"X-Nul: a\0b\r\n").await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    // Many at once, then a normal client.
    let mut floods = Vec::new();
    for _ in 0..20 {
        let addr = app.addr;
        let big = big.clone();
        floods.push(tokio::spawn(async move {
            let req = format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{big}\r\n");
            raw_exchange(addr, req.into_bytes(), Duration::ZERO).await
        }));
    }
    for f in floods {
        let answer = f.await.unwrap();
        assert!(matches!(answer.status, Some(431) | None), "{answer:?}");
        app.record("GET /healthz (20 KiB header, concurrent)", &answer);
    }
    app.healthz().await;
    app.finish().await;
    Some(())
}

async fn slow_clients_are_cut_off_while_others_are_served(backend: Backend) -> Option<()> {
    let timeout = Duration::from_secs(2);
    let app = TestApp::spawn(backend, |s| {
        s.header_read_timeout = timeout;
        s.body_read_timeout = timeout;
    })
    .await?;
    let started = Instant::now();
    // Ten clients send their headers one byte per second; one sends its body that way.
    let mut slow = Vec::new();
    for _ in 0..10 {
        let addr = app.addr;
        slow.push(tokio::spawn(async move {
            let req = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: 0123456789\r\n\r\n".to_vec();
            (raw_exchange(addr, req, Duration::from_secs(1)).await, Instant::now())
        }));
    }
    let body_client = {
        let addr = app.addr;
        let token = app.token.clone();
        tokio::spawn(async move {
            let body = serde_json::to_vec(&event()).unwrap();
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut rd, mut wr) = stream.into_split();
            let head = format!(
                "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            wr.write_all(head.as_bytes()).await.unwrap();
            let writer = tokio::spawn(async move {
                for b in body {
                    if wr.write_all(&[b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            let mut raw = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut raw)).await;
            writer.abort();
            (parse_answer(&raw), Instant::now())
        })
    };
    // Meanwhile, normal clients are served at once.
    let mut slowest = Duration::ZERO;
    while started.elapsed() < timeout + Duration::from_secs(1) {
        slowest = slowest.max(app.healthz().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slowest < Duration::from_secs(1), "a normal client waited {slowest:?}");
    for s in slow {
        let (answer, ended) = s.await.unwrap();
        let after = ended - started;
        // Cut off without an answer once the header-read timeout passed, long before the
        // request line and headers were complete (they would have taken 67 s).
        assert_eq!(answer.status, None, "{answer:?}");
        assert!(after >= timeout - Duration::from_millis(500) && after < timeout * 4, "cut off after {after:?}");
        app.record("slow headers", &answer);
    }
    let (answer, ended) = body_client.await.unwrap();
    app.record("slow body", &answer);
    assert_eq!((answer.status, answer.code().as_str()), (Some(408), "request_timeout"), "{answer:?}");
    let after = ended - started;
    assert!(after >= timeout - Duration::from_millis(500) && after < timeout * 4, "answered after {after:?}");
    app.healthz().await;
    app.finish().await;
    Some(())
}

async fn the_connection_cap_holds_and_idle_connections_are_reaped(backend: Backend) -> Option<()> {
    let timeout = Duration::from_secs(2);
    let app = TestApp::spawn(backend, |s| {
        s.header_read_timeout = timeout;
        s.max_connections = 4;
    })
    .await?;
    // A keep-alive connection left idle after a request is closed after the timeout too (so the
    // reqwest client's pooled connection from the set-up is gone by then, with its permit).
    let started = Instant::now();
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), conn.read_to_end(&mut raw)).await.unwrap().unwrap();
    let closed_after = started.elapsed();
    let answer = parse_answer(&raw);
    app.record("GET /healthz (keep-alive)", &answer);
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(closed_after >= timeout - Duration::from_millis(500) && closed_after < timeout * 3, "{closed_after:?}");
    // Four connections that say nothing take every permit…
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(app.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // …so the fifth is served only once the server has closed them (header-read timeout).
    let started = Instant::now();
    let answer = raw_exchange(
        app.addr,
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_vec(),
        Duration::ZERO,
    )
    .await;
    let waited = started.elapsed();
    app.record("GET /healthz behind the cap", &answer);
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert!(waited >= Duration::from_secs(1) && waited < timeout * 4, "waited {waited:?}");
    for mut c in idle {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0, "an idle connection was answered");
    }
    app.healthz().await;
    app.finish().await;
    Some(())
}

async fn invalid_utf8_anywhere_is_a_4xx(backend: Backend) -> Option<()> {
    let app = TestApp::spawn(backend, |_| {}).await?;
    let bearer = format!("Authorization: Bearer {}\r\n", app.token);
    let session = format!("Cookie: {}\r\nX-CSRF-Token: {}\r\n", app.cookie, app.csrf);

    // JSON bodies.
    let bad_json: &[&[u8]] = &[
        b"{\"email\": \"\xff\xfe\", \"password\": \"x\"}",
        b"{\"email\": \"a@example.com\", \"password\": \"\xc3\x28\"}",
        b"\xef\xbb\xbf\xff{}",
        b"{\"email\": \"\\ud800\", \"password\": \"x\"}",
    ];
    for body in bad_json {
        let answer = app.raw_post("/api/v1/session", "application/json", "", body).await;
        assert!(matches!(answer.status, Some(400) | Some(401)), "{answer:?}");
    }
    let answer = app.raw_post("/api/v1/events", "application/json", &bearer, b"{\"action\": \"\xff\"}").await;
    assert_eq!((answer.status, answer.code().as_str()), (Some(400), "malformed_json"), "{answer:?}");
    let answer = app
        .raw_post("/api/v1/users", "application/json", &session, b"{\"email\": \"\xff@x\", \"role\": \"admin\"}")
        .await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    let answer =
        app.raw_post("/api/v1/protected-users/import", "text/csv", &session, b"email,name\n\xff@x,\xfe\n").await;
    assert!(answer.is_4xx() || answer.status == Some(200), "{answer:?}");
    if answer.status == Some(200) {
        assert_eq!(answer.json()["added"], 0, "{answer:?}");
    }

    // Query strings: raw bytes are not a URI; encoded ones are read lossily or refused.
    let answer = app.raw_get(b"/api/v1/events?q=\xff\xfe", session.as_bytes()).await;
    assert_eq!(answer.status, Some(400), "{answer:?}");
    for target in [
        "/api/v1/events?q=%FF%FE",
        "/api/v1/events?user=%C3%28&action=%FF",
        "/api/v1/events?from=%FF",
        "/api/v1/events?cursor=%FF%00",
        "/api/v1/proof/inclusion?seq=%FF",
        "/api/v1/checkpoint?org=%FF",
        "/audit-log?q=%FF&from=%C3%28",
        "/login?next=%FF%2F%2Fevil.example",
    ] {
        let answer = app.raw_get(target.as_bytes(), session.as_bytes()).await;
        assert!(answer.status.is_some_and(|s| s < 500), "{target}: {answer:?}");
        if target.starts_with("/api/v1/events?") || target.starts_with("/api/v1/proof") {
            assert!(matches!(answer.status, Some(200) | Some(400)), "{target}: {answer:?}");
        }
    }
    let answer = app.raw_get(b"/api/v1/events?q=%FF", b"").await;
    assert_eq!(answer.status, Some(401), "{answer:?}");

    // Form bodies.
    for body in [&b"email=%FF%FE&password=%C3%28"[..], b"email=\xff\xfe&password=\xc3\x28", b"email&password", b"\xff"]
    {
        let answer = app.raw_post("/login", "application/x-www-form-urlencoded", "", body).await;
        assert!(answer.is_4xx(), "{answer:?}");
    }
    let answer = app
        .raw_post("/protected-users/add", "application/x-www-form-urlencoded", &session, b"email=\xff&name=%FF")
        .await;
    assert!(answer.is_4xx(), "{answer:?}");

    // Cookies and other header values.
    for cookie in [&b"logbook_session=\xff\xfe"[..], b"logbook_session=%FF%00", b"\xff=\xff; logbook_session"] {
        let mut extra = b"Cookie: ".to_vec();
        extra.extend_from_slice(cookie);
        extra.extend_from_slice(b"\r\n");
        let answer = app.raw_get(b"/api/v1/session", &extra).await;
        assert_eq!(answer.status, Some(401), "{answer:?}");
        let answer = app.raw_get(b"/audit-log", &extra).await;
        assert_eq!(answer.status, Some(303), "{answer:?}");
    }
    let answer = app.raw_get(b"/api/v1/events", b"Authorization: Bearer \xff\xfe\r\n").await;
    assert_eq!(answer.status, Some(401), "{answer:?}");
    let answer = app.raw_post("/api/v1/events", "application/json", "Authorization: Bearer \u{ff}\r\n", b"{}").await;
    assert_eq!(answer.status, Some(401), "{answer:?}");
    let answer = app.raw_get(b"/healthz", b"User-Agent: \xff\xfe\r\nIdempotency-Key: \xff\r\n").await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    let mut extra = bearer.clone().into_bytes();
    extra.extend_from_slice(b"Idempotency-Key: \xff\xfe\r\nUser-Agent: \xc3\x28\r\n");
    let mut req =
        b"POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n"
            .to_vec();
    let body = serde_json::to_vec(&event()).unwrap();
    req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    req.extend_from_slice(&extra);
    req.extend_from_slice(b"\r\n");
    req.extend_from_slice(&body);
    let answer = app.raw("POST /api/v1/events (Idempotency-Key not UTF-8)", &req).await;
    assert_eq!(answer.status, Some(400), "{answer:?}");

    // Paths.
    for target in [&b"/\xff"[..], b"/api/v1/users/\xff", b"/api/v1/\xc3\x28"] {
        let answer = app.raw_get(target, session.as_bytes()).await;
        assert_eq!(answer.status, Some(400), "{answer:?}");
    }
    for (method, target) in [
        ("DELETE", "/api/v1/users/%FF"),
        ("DELETE", "/api/v1/invitations/%C3%28"),
        ("DELETE", "/api/v1/protected-users/%FF%FE"),
        ("PATCH", "/api/v1/users/%FF"),
        ("GET", "/audit-log/events/%FF"),
        ("POST", "/users/%FF/delete"),
        ("GET", "/%FF"),
    ] {
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{session}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        let answer = app.raw(&format!("{method} {target}"), req.as_bytes()).await;
        assert!(answer.is_4xx(), "{method} {target}: {answer:?}");
    }
    app.healthz().await;
    app.finish().await;
    Some(())
}

async fn path_tricks_answer_4xx_and_never_serve_a_file(backend: Backend) -> Option<()> {
    let app = TestApp::spawn(backend, |_| {}).await?;
    let long = format!("/{}", "a".repeat(8 * 1024));
    let longer = format!("/api/v1/{}", "b/".repeat(10 * 1024));
    let mut targets: Vec<Vec<u8>> = [
        "/../../../../etc/passwd",
        "/assets/../../../../etc/passwd",
        "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/assets/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/%2e%2e/%2e%2e/Cargo.toml",
        "/assets/..%2f..%2f..%2fCargo.toml",
        "/assets/..%5c..%5cCargo.toml",
        "/assets/%252e%252e/%252e%252e/etc/passwd",
        "/assets/style.css/../../Cargo.toml",
        "/assets/style.css%00.txt",
        "/assets/%00",
        "/api/v1/events/../../../etc/passwd",
        "/api/v1/events%2F..%2F..%2Fhealthz",
        "/api%2Fv1%2Fevents",
        "//api/v1/events",
        "///etc/passwd",
        "/.git/config",
        "/Cargo.toml",
        "/crates/server/src/lib.rs",
        "/checkpoint-signing.key",
        "/api/v1/users/..%2f..%2fsetup",
        "/api/v1/users/%2e%2e",
        "/audit-log/events/..%2f..%2f..%2fetc%2fpasswd",
        "/audit-log/events/-1",
        "/audit-log/events/99999999999999999999999",
        "/api/v1/proof/inclusion?seq=-1",
        "/api/v1/proof/consistency?from=18446744073709551615&to=1",
        "http://evil.example/../etc/passwd",
        "*",
    ]
    .iter()
    .map(|t| t.as_bytes().to_vec())
    .collect();
    targets.push(long.into_bytes());
    targets.push(longer.into_bytes());
    targets.push(b"/assets/\0/etc/passwd".to_vec());
    targets.push(b"/assets/..\\..\\Cargo.toml".to_vec());
    targets.push(b"/etc/passwd\r\nX-Injected: 1".to_vec());
    for target in &targets {
        for cookie in [String::new(), format!("Cookie: {}\r\n", app.cookie)] {
            let answer = app.raw_get(target, cookie.as_bytes()).await;
            let shown = String::from_utf8_lossy(&target[..target.len().min(60)]).into_owned();
            // A console page without a session sends to the sign-in page instead.
            let to_sign_in = cookie.is_empty()
                && answer.status == Some(303)
                && answer.head.to_lowercase().contains("\r\nlocation: /login?next=");
            assert!(answer.is_4xx() || to_sign_in, "{shown}: {answer:?}");
            let text = answer.text();
            for leak in ["root:", "[workspace]", "[package]", "fn main", "repositoryformatversion", "PRIVATE+KEY"] {
                assert!(!text.contains(leak), "{shown} served a file: {text}");
            }
            assert!(!answer.head.contains("X-Injected"), "{answer:?}");
        }
    }
    app.healthz().await;
    app.finish().await;
    Some(())
}

async fn a_sign_in_flood_is_refused_while_others_are_served(backend: Backend) -> Option<()> {
    let app = Arc::new(TestApp::spawn(backend, |_| {}).await?);
    let url = format!("{}/api/v1/session", app.base);
    let started = Instant::now();
    let mut flood = Vec::new();
    for i in 0..300 {
        let client = app.client.clone();
        let url = url.clone();
        // Half against an existing account, half against addresses that do not exist.
        let email = if i % 2 == 0 { VICTIM.to_owned() } else { format!("nobody{i}@example.com") };
        flood.push(tokio::spawn(async move {
            let resp =
                client.post(&url).json(&json!({"email": email, "password": WRONG_PASSWORD})).send().await.unwrap();
            from_reqwest(resp).await
        }));
    }
    // Meanwhile: liveness answers quickly, and another user signs in (from another address, so
    // that no per-address throttle confuses them with the flood; retrying after a 429 like a
    // person would).
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        slowest = slowest.max(app.healthz().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut other = reqwest::Client::builder().local_address(Some("127.0.0.2".parse().unwrap())).build().unwrap();
    if other.get(format!("{}/healthz", app.base)).send().await.is_err() {
        // Not Linux: only 127.0.0.1 is a loopback address.
        other = reqwest::Client::new();
    }
    let mut signed_in = None;
    let mut tries = 0;
    while started.elapsed() < Duration::from_secs(60) {
        tries += 1;
        let resp = other.post(&url).json(&json!({"email": READER, "password": READER_PASSWORD})).send().await.unwrap();
        let answer = from_reqwest(resp).await;
        app.record("POST /api/v1/session (the reader, during the flood)", &answer);
        match answer.status {
            Some(200) => {
                signed_in = Some(answer);
                break;
            }
            Some(429) => tokio::time::sleep(Duration::from_millis(500)).await,
            _ => panic!("{answer:?}"),
        }
    }
    let signed_in =
        signed_in.unwrap_or_else(|| panic!("the reader could not sign in during the flood ({tries} tries)"));
    assert_eq!(signed_in.json()["user"]["email"], READER);
    let (mut refused, mut busy) = (0, 0);
    for f in flood {
        let answer = f.await.unwrap();
        match answer.status {
            Some(401) => {
                assert_eq!(answer.code(), "sign_in_failed");
                refused += 1;
            }
            Some(429) => {
                assert!(["too_many_requests", "too_many_attempts"].contains(&answer.code().as_str()), "{answer:?}");
                busy += 1;
            }
            _ => panic!("{answer:?}"),
        }
        app.record("POST /api/v1/session (flood)", &answer);
    }
    assert_eq!(refused + busy, 300);
    eprintln!(
        "flood: {refused} × 401, {busy} × 429 in {:?}; slowest /healthz {slowest:?}; reader signed in after {tries} tries",
        started.elapsed()
    );
    assert!(slowest < Duration::from_secs(2), "/healthz took {slowest:?} during the flood");
    app.healthz().await;
    Arc::into_inner(app).unwrap().finish().await;
    Some(())
}

async fn shutdown_finishes_a_request_in_flight(backend: Backend) -> Option<()> {
    let mut app = TestApp::spawn(backend, |_| {}).await?;
    let body = serde_json::to_vec(&event()).unwrap();
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.token,
        body.len()
    );
    wr.write_all(head.as_bytes()).await.unwrap();
    wr.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Shut down while the body is half sent: the request still completes.
    let _ = app.stop.take().unwrap().send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    wr.write_all(&body[10..]).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), rd.read_to_end(&mut raw)).await.unwrap().unwrap();
    let answer = parse_answer(&raw);
    assert_eq!(answer.status, Some(201), "{answer:?}");
    let seq = answer.json()["seqs"][0].as_u64().unwrap();
    // No new connection is taken, and the server ends.
    tokio::time::timeout(Duration::from_secs(30), app.server.take().unwrap()).await.unwrap().unwrap().unwrap();
    assert!(TcpStream::connect(app.addr).await.is_err());
    let org = app.store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    let cp = app.store.latest_checkpoint(org.id).await.unwrap().unwrap();
    assert_eq!(cp.size, seq + 1, "the final checkpoint covers the last event");
    assert_clean("POST /api/v1/events during shutdown", &answer.head, &answer.body, &app.secrets);
    Some(())
}
