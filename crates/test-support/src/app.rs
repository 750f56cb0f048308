//! The real application on port 0 with a fresh store, driven like a client
//! (zero-to-production's `spawn_app`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use logbook_accounts::Accounts;
use logbook_core::{leaf, Actor, Clock, Event, ManualClock, OrgSlug, SeededRandom, Source, SystemClock, Timestamp};
use logbook_log::LogService;
use logbook_server::{Application, Settings};
use logbook_store::testing::FaultyStore;
use logbook_store::{Org, Store, StoredCheckpoint};
use logbook_store_postgres::PgStore;
use logbook_store_sqlite::SqliteStore;
use reqwest::Method;
use serde_json::{json, Value};

use crate::wait::within;

/// The user agent of every request the harness's client sends (events record it).
pub const USER_AGENT: &str = "logbook-tests/1.0";

/// Where a test's store lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A fresh, empty store: SQLite's file in `dir`, or a new PostgreSQL database. `None` when
    /// PostgreSQL is not reachable (the skip is reported, see [`crate::skip`]).
    pub async fn open(self, dir: &Path) -> Option<Arc<dyn Store>> {
        Some(match self {
            Backend::Sqlite => Arc::new(SqliteStore::open(dir).await.expect("open the SQLite store")),
            Backend::Postgres => {
                let url = crate::postgres::fresh_database().await?;
                Arc::new(PgStore::connect(&url).await.expect("connect to the fresh PostgreSQL database"))
            }
        })
    }
}

/// A signed-in client: its session cookie (`name=value`) and CSRF token.
#[derive(Clone, Debug)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

type Tweak = Box<dyn FnOnce(&mut Settings) + Send>;

/// How to start a [`TestApp`]: [`TestApp::builder`], then [`Spawn::spawn`].
pub struct Spawn {
    backend: Backend,
    clock: Option<Arc<ManualClock>>,
    seed: u64,
    data_dir: Option<PathBuf>,
    tweaks: Vec<Tweak>,
}

impl std::fmt::Debug for Spawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spawn").field("backend", &self.backend).field("seed", &self.seed).finish_non_exhaustive()
    }
}

impl Spawn {
    /// Runs the application on this manual clock instead of the system's.
    pub fn clock(mut self, clock: Arc<ManualClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Runs it on a manual clock starting at `micros` since the epoch.
    pub fn manual_clock_at(self, micros: i64) -> Self {
        self.clock(Arc::new(ManualClock::new(Timestamp::from_micros(micros))))
    }

    /// Seeds its randomness (default 7).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Keeps the data (the SQLite file, the signing key) in `dir` instead of a new temporary
    /// directory.
    pub fn data_dir(mut self, dir: PathBuf) -> Self {
        self.data_dir = Some(dir);
        self
    }

    /// Changes some settings after the harness's defaults.
    pub fn settings(mut self, tweak: impl FnOnce(&mut Settings) + Send + 'static) -> Self {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// Builds the application and serves it on a port of its own. `None` when the backend is not
    /// available here (the skip is reported).
    pub async fn spawn(self) -> Option<TestApp> {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let data_dir = self.data_dir.clone().unwrap_or_else(|| temp.path().to_owned());
        let mut settings = Settings::new(data_dir.clone());
        settings.listen = "127.0.0.1:0".parse().expect("an address");
        // Checkpoints soon after each append, so that tests need not wait long for them.
        settings.checkpoint_interval = Duration::from_millis(20);
        settings.witness_dir = Some(data_dir.join("witness"));
        // Sessions end when a test says so (through the clock and the accounts API), not when
        // a background sweep happens to run.
        settings.session_sweep_interval = Duration::from_secs(3600);
        for tweak in self.tweaks {
            tweak(&mut settings);
        }
        let (inner, database_url): (Arc<dyn Store>, _) = match self.backend {
            Backend::Sqlite => (self.backend.open(&data_dir).await?, None),
            Backend::Postgres => {
                let url = crate::postgres::fresh_database().await?;
                let store = PgStore::connect(&url).await.expect("connect to the fresh PostgreSQL database");
                (Arc::new(store), Some(url))
            }
        };
        let store = Arc::new(FaultyStore::new(inner));
        let clock: Arc<dyn Clock> = match &self.clock {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock),
        };
        let app = Application::build(&settings, store.clone(), clock.clone(), Arc::new(SeededRandom::new(self.seed)))
            .await
            .expect("the application starts");
        let addr = app.local_addr();
        let log = app.log().clone();
        let accounts = app.accounts().clone();
        let setup_link = app.setup_link().map(str::to_owned);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        Some(TestApp {
            backend: self.backend,
            addr,
            base: format!("http://{addr}"),
            http: client(),
            store,
            log,
            accounts,
            settings,
            database_url,
            setup_link,
            clock,
            manual_clock: self.clock,
            _temp: temp,
            stop: Some(tx),
            server: Some(server),
        })
    }
}

/// The harness's HTTP client: it does not follow redirects (tests check them) and names itself.
/// It reuses a kept-alive connection only within a second of its last use: the server closes
/// idle connections after its header-read timeout (tests set it as low as 2 s), and a request
/// sent on a connection just as the server closes it would fail.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(1))
        .user_agent(USER_AGENT)
        .build()
        .expect("an HTTP client")
}

/// The application, serving on `base` until stopped or dropped.
#[derive(Debug)]
pub struct TestApp {
    pub backend: Backend,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// See [`client`].
    pub http: reqwest::Client,
    /// The store, wrapped so that a test can make it fail.
    pub store: Arc<FaultyStore>,
    pub log: Arc<LogService>,
    pub accounts: Arc<Accounts>,
    pub settings: Settings,
    /// The PostgreSQL database's URL (`None` on SQLite), for tests that act as someone with
    /// direct access to the database.
    pub database_url: Option<String>,
    /// The first-admin link an empty store offers.
    pub setup_link: Option<String>,
    pub clock: Arc<dyn Clock>,
    manual_clock: Option<Arc<ManualClock>>,
    _temp: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// The application on a fresh store of `backend` with the harness's defaults.
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::builder(backend).spawn().await
    }

    pub fn builder(backend: Backend) -> Spawn {
        Spawn { backend, clock: None, seed: 7, data_dir: None, tweaks: Vec::new() }
    }

    /// The data directory (SQLite's file, the signing key, the witness directory).
    pub fn dir(&self) -> &Path {
        &self.settings.data_dir
    }

    /// The manual clock the application was built with ([`Spawn::clock`]).
    pub fn manual_clock(&self) -> &Arc<ManualClock> {
        self.manual_clock.as_ref().expect("this application runs on the system clock")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path` without credentials: the status and the body as text.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self.http.get(self.url(path)).send().await.expect("GET");
        (resp.status().as_u16(), resp.text().await.expect("a body"))
    }

    /// A request with the session's cookie and CSRF token and a JSON body; the status and the
    /// answer as JSON (or as a JSON string when it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, session, body, true).await
    }

    /// [`TestApp::call`], choosing whether the CSRF token is sent.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<Value>,
        send_csrf: bool,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(s) = session {
            req = req.header("cookie", &s.cookie);
            if send_csrf {
                req = req.header("x-csrf-token", &s.csrf);
            }
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("a request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Signs in through the API (asserting it works and the cookie's flags).
    pub async fn sign_in(&self, email: &str, password: &str) -> Session {
        let resp = self
            .http
            .post(self.url("/api/v1/session"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("a sign-in");
        assert_eq!(resp.status(), 200, "sign-in of {email}");
        let cookie = resp.headers()["set-cookie"].to_str().expect("a cookie").to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let cookie = cookie.split(';').next().unwrap_or_default().to_owned();
        let body: Value = resp.json().await.expect("JSON");
        Session { cookie, csrf: body["csrf_token"].as_str().expect("a CSRF token").to_owned() }
    }

    /// Creates the first admin through the setup link, checking that the link works once.
    pub async fn set_up_admin(&self, email: &str, password: &str) {
        let link = self.setup_link.as_deref().expect("an empty store offers the setup link");
        let token = link.split("token=").nth(1).expect("a token in the setup link");
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/setup",
                None,
                Some(json!({"token": token, "email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, _) = self
            .call(
                Method::POST,
                "/api/v1/setup",
                None,
                Some(json!({"token": token, "email": "x@example.com", "password": password})),
            )
            .await;
        assert_eq!(status, 400, "the setup link works once");
    }

    /// Adds a user (as `admin`, through the API) with `password`, and signs them in.
    pub async fn user_with(&self, admin: &Session, email: &str, role: &str, password: &str) -> (i64, Session) {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/users",
                Some(admin),
                Some(json!({"email": email, "role": role, "password": password})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (body["id"].as_i64().expect("an id"), self.sign_in(email, password).await)
    }

    /// An API token for the default organization that may record every action, the
    /// platform's included, and the actor type `system` (what tests that record the platform's
    /// own events need); its secret. See [`TestApp::create_token_with`].
    pub async fn create_token(&self, name: &str) -> String {
        let everything: Vec<&str> = logbook_core::Action::ALL.iter().map(|a| a.code()).collect();
        let grant = format!("*,actor:system,{}", everything.join(","));
        self.create_token_with(name, &grant).await
    }

    /// An API token for the default organization granted `actions` (an [`ActionGrant`] list);
    /// its secret.
    ///
    /// [`ActionGrant`]: logbook_core::ActionGrant
    pub async fn create_token_with(&self, name: &str, actions: &str) -> String {
        let org = self.log.org(&OrgSlug::default_org()).await.expect("the default organization");
        let grant = logbook_core::ActionGrant::parse(actions).expect("a valid grant");
        let (_, secret) = self
            .log
            .create_api_token(&org, name, grant, Actor::system(), Source::default(), "test")
            .await
            .expect("a token");
        secret.expose().to_owned()
    }

    /// The default organization.
    pub async fn org(&self) -> Org {
        self.store.org(&OrgSlug::default_org()).await.expect("the store answers").expect("the default organization")
    }

    /// The default log's size.
    pub async fn size(&self) -> u64 {
        let org = self.org().await;
        self.store.log_head(org.id).await.expect("the log head").size
    }

    /// Every event of the default log, decoded.
    pub async fn events(&self) -> Vec<Event> {
        let org = self.org().await;
        let size = self.store.log_head(org.id).await.expect("the log head").size;
        let rows = self.store.events(org.id, 0..size).await.expect("the events");
        rows.iter().map(|r| leaf::decode(&r.leaf).expect("a valid leaf")).collect()
    }

    pub async fn count(&self) -> usize {
        self.events().await.len()
    }

    /// Waits until this process has signed, stored and witnessed a checkpoint of `org`'s log
    /// that covers `size` events; returns the newest stored checkpoint.
    pub async fn checkpoint_covering(&self, org: &Org, size: u64) -> StoredCheckpoint {
        let mut done = self.log.checkpointed();
        within(&format!("a checkpoint of {} covering {size} events", org.slug), async {
            done.wait_for(|m| m.get(&org.id).is_some_and(|s| *s >= size)).await.expect("the log service runs").clone()
        })
        .await;
        self.store.latest_checkpoint(org.id).await.expect("the store answers").expect("a checkpoint")
    }

    /// Another application on the same store and data directory, as a second process would
    /// be; returns its base URL. It serves until the test ends.
    pub async fn second_process(&self) -> String {
        let mut settings = self.settings.clone();
        settings.listen = "127.0.0.1:0".parse().expect("an address");
        let app = Application::build(&settings, self.store.clone(), self.clock.clone(), Arc::new(SeededRandom::new(8)))
            .await
            .expect("the second application starts");
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until(std::future::pending()));
        base
    }

    /// Tells the server to shut down, without waiting (see [`TestApp::stopped`]).
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Waits until the server has ended (after [`TestApp::begin_shutdown`]); its result.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        let server = self.server.take().expect("the server was running");
        within("the server's end", server).await.expect("the server task ends without a panic")
    }

    /// Shuts the server down gracefully and waits for it (which signs a final checkpoint).
    pub async fn stop(mut self) {
        self.begin_shutdown();
        self.stopped().await.expect("a clean shutdown");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}
