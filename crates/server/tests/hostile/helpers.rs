//! The hostile suite's fixture and raw HTTP: a signed-in reader, an ingestion token, every
//! answer collected and checked at the end for 5xx, internals and secrets.

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use logbook_core::Role;
use logbook_server::Settings;
use logbook_test_support::{Backend, TestApp, PATIENCE};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const READER: &str = "reader@example.com";
pub const READER_PASSWORD: &str = "correct horse battery staple";
pub const VICTIM: &str = "victim@example.com";
pub const VICTIM_PASSWORD: &str = "purple elephant marmalade sky";
pub const WRONG_PASSWORD: &str = "wrong-password-9f3a1c";

/// The application as the hostile tests use it: an ingestion token, the reader (an admin)
/// signed in, a victim account, and every answer collected for [`Hostile::finish`].
#[derive(Debug)]
pub struct Hostile {
    pub app: TestApp,
    pub token: String,
    /// The reader's session cookie (`name=value`) and CSRF token.
    pub cookie: String,
    pub csrf: String,
    /// Never to be seen in any answer.
    pub secrets: Vec<String>,
    /// Every body answered in this test, with what was asked.
    answers: Mutex<Vec<(String, Answer)>>,
}

impl Deref for Hostile {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl DerefMut for Hostile {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.app
    }
}

/// [`Hostile`] with the default settings.
pub async fn hostile(backend: Backend) -> Option<Hostile> {
    Hostile::spawn(backend, |_| {}).await
}

impl Hostile {
    /// The application on a fresh store with some settings changed; `None` when that backend
    /// is not available here.
    pub async fn spawn(backend: Backend, tune: impl FnOnce(&mut Settings) + Send + 'static) -> Option<Self> {
        let app = TestApp::builder(backend).settings(tune).spawn().await?;
        let token = app.create_token("billing").await;
        app.accounts.create_user_as_operator(READER, Role::Admin, READER_PASSWORD).await.unwrap();
        app.accounts.create_user_as_operator(VICTIM, Role::Auditor, VICTIM_PASSWORD).await.unwrap();
        let signing_key = std::fs::read_to_string(app.dir().join("checkpoint-signing.key")).unwrap();
        let session = app.sign_in(READER, READER_PASSWORD).await;
        let session_token = session.cookie.split_once('=').unwrap().1.to_owned();
        let signing_key = signing_key.trim().to_owned();
        let key_material = signing_key.rsplit('+').next().unwrap().to_owned();
        let secrets = vec![
            token.clone(),
            session_token,
            READER_PASSWORD.to_owned(),
            VICTIM_PASSWORD.to_owned(),
            WRONG_PASSWORD.to_owned(),
            signing_key,
            key_material,
        ];
        Some(Self { app, token, cookie: session.cookie, csrf: session.csrf, secrets, answers: Mutex::new(Vec::new()) })
    }

    pub fn record(&self, what: &str, answer: &Answer) {
        self.answers.lock().unwrap().push((what.to_owned(), answer.clone()));
    }

    /// Sends `request` as is on a new connection (writing it while reading, so that an early
    /// answer is not lost), and reads until the server closes the connection.
    pub async fn raw(&self, what: &str, request: &[u8]) -> Answer {
        let answer = raw_exchange(self.addr, request.to_vec(), Duration::ZERO).await;
        self.record(what, &answer);
        answer
    }

    /// `GET target` with `Connection: close` and the given extra header lines.
    pub async fn raw_get(&self, target: &[u8], extra: &[u8]) -> Answer {
        let mut req = b"GET ".to_vec();
        req.extend_from_slice(target);
        req.extend_from_slice(b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        req.extend_from_slice(extra);
        req.extend_from_slice(b"\r\n");
        self.raw(&format!("GET {}", String::from_utf8_lossy(target)), &req).await
    }

    /// `POST path` with a body, `Connection: close` and the given extra header lines.
    pub async fn raw_post(&self, path: &str, content_type: &str, extra: &str, body: &[u8]) -> Answer {
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.raw(&format!("POST {path}"), &req).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        let resp = self.http.get(self.url(path)).send().await.unwrap();
        let answer = from_reqwest(resp).await;
        self.record(&format!("GET {path}"), &answer);
        answer
    }

    /// The server answers /healthz; how long that took.
    pub async fn healthz(&self) -> Duration {
        let started = Instant::now();
        let answer = self.get("/healthz").await;
        assert_eq!((answer.status, answer.text().as_str()), (Some(200), "ok\n"));
        started.elapsed()
    }

    /// The checks every test ends with: no answer was a 5xx, no handler panicked, and no body
    /// reveals internals or a secret. Then the server is stopped.
    pub async fn finish(self) {
        let metrics = self.http.get(self.url("/metrics")).send().await.unwrap().text().await.unwrap();
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
        self.app.stop().await;
    }
}

/// One collected answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `None` when the server closed the connection without answering.
    pub status: Option<u16>,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_owned()
    }

    pub fn is_4xx(&self) -> bool {
        self.status.is_some_and(|s| (400..500).contains(&s))
    }
}

/// No stack trace, SQL, file path or secret.
pub fn assert_clean(what: &str, head: &str, body: &[u8], secrets: &[String]) {
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

pub async fn from_reqwest(resp: reqwest::Response) -> Answer {
    let status = Some(resp.status().as_u16());
    let head = format!("{:?}", resp.headers());
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Answer { status, head, body }
}

/// Writes `request` (pausing `pace` between bytes, when not zero) while reading the answer until
/// the server closes the connection (or [`PATIENCE`] passes).
pub async fn raw_exchange(addr: SocketAddr, request: Vec<u8>, pace: Duration) -> Answer {
    raw_exchange_on(TcpStream::connect(addr).await.unwrap(), request, pace).await
}

/// [`raw_exchange`] on a connection already made.
pub async fn raw_exchange_on(stream: TcpStream, request: Vec<u8>, pace: Duration) -> Answer {
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
    let _ = tokio::time::timeout(PATIENCE, async {
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

pub fn parse_answer(raw: &[u8]) -> Answer {
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

pub fn event() -> Value {
    json!({"action": "login.failed", "actor": {"type": "anonymous", "id": "x@example.com"}, "outcome": "failure"})
}
