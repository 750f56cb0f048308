//! The suite's fixtures on top of the workspace harness (`logbook_test_support`): who is
//! signed in, with which token, in which time zone.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use logbook_core::{Event, ManualClock, Role, Timestamp};
use logbook_server::Settings;
use logbook_test_support::{Backend, Session, TestApp};
use serde_json::{json, Value};

/// The auditor of the API tests (an admin, who also sets the time zone).
pub const READER: &str = "reader@example.com";
pub const READER_PASSWORD: &str = "correct horse battery staple";
/// The first admin of the account tests, and every account's password there.
pub const ADMIN: &str = "admin@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

/// The application as the log's API tests use it: an ingestion token `billing`, and the
/// reader signed in, with the platform's zone set to one with DST (Europe/Berlin), so that
/// every test shows local times and day bounds that are not UTC's.
#[derive(Debug)]
pub struct ApiApp {
    pub app: TestApp,
    /// The ingestion token's secret.
    pub token: String,
    /// The reader's session cookie.
    pub cookie: String,
}

impl Deref for ApiApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl DerefMut for ApiApp {
    fn deref_mut(&mut self) -> &mut TestApp {
        &mut self.app
    }
}

/// [`ApiApp`] on the system clock.
pub async fn reader(backend: Backend) -> Option<ApiApp> {
    ApiApp::on(TestApp::builder(backend).seed(42).spawn().await?).await
}

/// [`ApiApp`] on a manual clock at 2026-03-27T12:00:00Z, two days before Berlin's switch to
/// summer time.
pub async fn reader_in_march(backend: Backend) -> Option<ApiApp> {
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_774_612_800_000_000)));
    ApiApp::on(TestApp::builder(backend).seed(42).clock(clock).spawn().await?).await
}

impl ApiApp {
    async fn on(app: TestApp) -> Option<Self> {
        let token = app.create_token("billing").await;
        app.accounts.create_user_as_operator(READER, Role::Admin, READER_PASSWORD).await.unwrap();
        let Session { cookie, csrf } = app.sign_in(READER, READER_PASSWORD).await;
        let session = Session { cookie: cookie.clone(), csrf };
        let (status, body) = app
            .call(
                reqwest::Method::PATCH,
                "/api/v1/settings",
                Some(&session),
                Some(json!({"time_zone": "Europe/Berlin"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        Some(Self { app, token, cookie })
    }

    /// Shuts the server down gracefully (see [`TestApp::stop`]).
    pub async fn stop(self) {
        self.app.stop().await
    }

    pub async fn post_events(&self, body: &Value) -> (u16, Value) {
        self.post_raw(serde_json::to_vec(body).unwrap(), Some(&self.token), None).await
    }

    pub async fn post_raw(&self, body: Vec<u8>, token: Option<&str>, key: Option<&str>) -> (u16, Value) {
        let mut req = self.http.post(self.url("/api/v1/events")).header("content-type", "application/json").body(body);
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

    /// Waits until the served checkpoint of the default log covers `size` events; returns it.
    pub async fn checkpoint_covering(&self, size: u64) -> String {
        let org = self.org().await;
        self.app.checkpoint_covering(&org, size).await;
        let (status, note) = self.get("/api/v1/checkpoint").await;
        assert_eq!(status, 200, "{note}");
        assert_eq!(note.lines().nth(1), Some(size.to_string().as_str()), "the newest checkpoint: {note}");
        note
    }

    pub async fn sign_in_again(&mut self) {
        self.cookie = self.app.sign_in(READER, READER_PASSWORD).await.cookie;
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(path)).header("cookie", &self.cookie).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}")))
    }

    pub async fn get_text(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let resp = self.http.get(self.url(path)).header("cookie", &self.cookie).send().await.unwrap();
        (resp.status().as_u16(), resp.headers().clone(), resp.text().await.unwrap())
    }

    /// Walks every page of a query string (without limit/cursor); returns the events in order.
    pub async fn all_pages(&self, query: &str, limit: usize) -> Vec<Value> {
        self.all_pages_between(query, limit, || async {}).await
    }

    /// [`ApiApp::all_pages`], awaiting `between` after each page but the last.
    pub async fn all_pages_between<F, Fut>(&self, query: &str, limit: usize, mut between: F) -> Vec<Value>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
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
            between().await;
        }
        panic!("paging never ended");
    }
}

/// A failed sign-in, as another service of the platform would submit it.
pub fn login_failed(user: &str) -> Value {
    json!({
        "action": "login.failed",
        "actor": {"type": "anonymous", "id": user},
        "details": "Invalid password",
        "fields": {"reason": "invalid_password"},
        "outcome": "failure",
        "source": {"ip": "203.0.113.9", "user_agent": "Mozilla/5.0"}
    })
}

/// The application as the account tests use it: on a manual clock, with its first admin
/// created through the setup link.
pub async fn admin(backend: Backend) -> Option<TestApp> {
    admin_with(backend, |_| {}).await
}

/// [`admin`], with some settings changed.
pub async fn admin_with(backend: Backend, tweak: impl FnOnce(&mut Settings) + Send + 'static) -> Option<TestApp> {
    let app = TestApp::builder(backend).manual_clock_at(1_790_000_000_000_000).settings(tweak).spawn().await?;
    app.set_up_admin(ADMIN, PASSWORD).await;
    Some(app)
}

/// The account tests' shorthand for adding a user.
pub trait Users {
    /// Adds a user directly as the admin (password [`PASSWORD`]) and signs them in.
    async fn user(&self, admin: &Session, email: &str, role: &str) -> (i64, Session);
}

impl Users for TestApp {
    async fn user(&self, admin: &Session, email: &str, role: &str) -> (i64, Session) {
        self.user_with(admin, email, role, PASSWORD).await
    }
}

/// The event of `action` after position `from`.
pub fn find<'a>(events: &'a [Event], from: usize, action: &str) -> &'a Event {
    events[from..].iter().find(|e| e.body.action.code() == action).unwrap_or_else(|| panic!("no {action} event"))
}
