//! The platform's accounts driven like a client, on both stores: every seed action recorded
//! with who, what and details; nothing recorded for what was refused; the role × route matrix;
//! sessions ending; and an administrative change that cannot be recorded is not made.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use logbook_core::{leaf, Event, ManualClock, OrgSlug, SeededRandom, Timestamp};
use logbook_server::{Application, Settings};
use logbook_store::testing::FaultyStore;
use logbook_store::Store;
use logbook_store_postgres::PgStore;
use logbook_store_sqlite::SqliteStore;
use reqwest::Method;
use serde_json::{json, Value};

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery staple";

struct App {
    base: String,
    http: reqwest::Client,
    store: Arc<FaultyStore>,
    clock: Arc<ManualClock>,
    accounts: Arc<logbook_accounts::Accounts>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A signed-in client: its cookie and CSRF token.
#[derive(Clone, Debug)]
struct Session {
    cookie: String,
    csrf: String,
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl App {
    /// The application on a fresh store with its first admin created through the setup link.
    async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// The same, with some settings changed.
    async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::new(dir.path().to_owned());
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.session_sweep_interval = Duration::from_secs(3600);
        tweak(&mut settings);
        let inner: Arc<dyn Store> = match backend {
            Backend::Sqlite => Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
            Backend::Postgres => {
                Arc::new(PgStore::connect(&logbook_store_postgres::testing::fresh_database().await?).await.unwrap())
            }
        };
        let store = Arc::new(FaultyStore::new(inner));
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_790_000_000_000_000)));
        let app =
            Application::build(&settings, store.clone(), clock.clone(), Arc::new(SeededRandom::new(7))).await.unwrap();
        let base = format!("http://{}", app.local_addr());
        let link = app.setup_link().expect("an empty store offers the setup link").to_owned();
        let accounts = app.accounts().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let this = Self {
            base,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("accounts-test/1.0")
                .build()
                .unwrap(),
            store,
            clock,
            accounts,
            _dir: dir,
            stop: Some(tx),
        };
        let token = link.split("token=").nth(1).unwrap();
        let (status, body) = this
            .call(
                Method::POST,
                "/api/v1/setup",
                None,
                Some(json!({"token": token, "email": ADMIN, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, _) = this
            .call(
                Method::POST,
                "/api/v1/setup",
                None,
                Some(json!({"token": token, "email": "x@example.com", "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 400, "the setup link works once");
        Some(this)
    }

    async fn call(&self, method: Method, path: &str, session: Option<&Session>, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, session, body, true).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        session: Option<&Session>,
        body: Option<Value>,
        send_csrf: bool,
    ) -> (u16, Value) {
        let mut req =
            self.http.request(method, format!("{}{path}", self.base)).header("user-agent", "accounts-test/1.0");
        if let Some(s) = session {
            req = req.header("cookie", &s.cookie);
            if send_csrf {
                req = req.header("x-csrf-token", &s.csrf);
            }
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn sign_in(&self, email: &str, password: &str) -> Session {
        let resp = self
            .http
            .post(format!("{}/api/v1/session", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "sign-in of {email}");
        let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let body: Value = resp.json().await.unwrap();
        Session { cookie, csrf: body["csrf_token"].as_str().unwrap().to_owned() }
    }

    /// Adds a user directly as the admin and signs them in.
    async fn user(&self, admin: &Session, email: &str, role: &str) -> (i64, Session) {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/users",
                Some(admin),
                Some(json!({"email": email, "role": role, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (body["id"].as_i64().unwrap(), self.sign_in(email, PASSWORD).await)
    }

    /// Another application on the same store and data directory (as a second process would
    /// be); returns its base URL. It serves until the test ends.
    async fn second_process(&self) -> String {
        let mut settings = Settings::new(self._dir.path().to_owned());
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.session_sweep_interval = Duration::from_secs(3600);
        let app = Application::build(&settings, self.store.clone(), self.clock.clone(), Arc::new(SeededRandom::new(8)))
            .await
            .unwrap();
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until(std::future::pending()));
        base
    }

    async fn events(&self) -> Vec<Event> {
        let org = self.store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
        let size = self.store.log_head(org.id).await.unwrap().size;
        self.store.events(org.id, 0..size).await.unwrap().iter().map(|r| leaf::decode(&r.leaf).unwrap()).collect()
    }

    async fn count(&self) -> usize {
        self.events().await.len()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::App::spawn(super::Backend::Sqlite).await.unwrap()).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    match super::App::spawn(super::Backend::Postgres).await {
                        Some(app) => super::$name(app).await,
                        None => eprintln!("SKIPPED {}::postgres: PostgreSQL not available", stringify!($name)),
                    }
                }
            }
        )*
    };
}

on_both_stores!(
    every_seed_action_is_recorded_with_who_what_and_details,
    refused_requests_record_nothing,
    every_route_checks_the_current_role,
    sessions_end_by_expiry_and_deletion_with_a_logout,
    lockout_after_repeated_failures_is_recorded,
    totp_codes_work_once_and_wrong_codes_are_failed_verification,
    protected_users_import_reports_rows_and_records_each,
    settings_changes_are_validated_and_recorded,
    a_change_whose_event_cannot_be_stored_is_not_made,
    the_audit_log_page_records_views_once_per_filter_set,
    sign_ins_are_throttled_per_address_across_processes,
);

/// The event of `action` after position `from`, checked for its label.
fn find<'a>(events: &'a [Event], from: usize, action: &str) -> &'a Event {
    let e =
        events[from..].iter().find(|e| e.body.action.code() == action).unwrap_or_else(|| panic!("no {action} event"));
    e
}

async fn every_seed_action_is_recorded_with_who_what_and_details(app: App) {
    let start = app.count().await;
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (status, _) = app
        .call(Method::POST, "/api/v1/session", None, Some(json!({"email": ADMIN, "password": "wrong password!"})))
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/session",
            None,
            Some(json!({"email": "ghost@example.com", "password": "whatever it is"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (401, Some("the email, password or code is not correct")),
        "one generic message"
    );

    let (status, inv) = app
        .call(
            Method::POST,
            "/api/v1/invitations",
            Some(&admin),
            Some(json!({"email": "bob@example.com", "role": "auditor"})),
        )
        .await;
    assert_eq!(status, 201, "{inv}");
    let link = inv["link"].as_str().unwrap();
    assert!(link.contains("/invite?token="), "{link}");
    assert_eq!(inv["mailed"], false);
    let token = link.split("token=").nth(1).unwrap();
    let (status, bob) = app
        .call(Method::POST, "/api/v1/invitations/accept", None, Some(json!({"token": token, "password": PASSWORD})))
        .await;
    assert_eq!(status, 201, "{bob}");
    let (status, _) = app
        .call(Method::POST, "/api/v1/invitations/accept", None, Some(json!({"token": token, "password": PASSWORD})))
        .await;
    assert_eq!(status, 400, "an invitation works once");
    let bob_id = bob["id"].as_i64().unwrap();

    let (status, body) = app
        .call(Method::PATCH, &format!("/api/v1/users/{bob_id}"), Some(&admin), Some(json!({"role": "analyst"})))
        .await;
    assert_eq!((status, body["role"].as_str()), (200, Some("analyst")));

    let bob_session = app.sign_in("bob@example.com", PASSWORD).await;
    let (status, p) = app
        .call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&bob_session),
            Some(json!({"email": "Ceo@Example.com", "name": "Grace Hopper"})),
        )
        .await;
    assert_eq!(status, 201, "{p}");
    let (status, _) =
        app.call(Method::DELETE, &format!("/api/v1/protected-users/{}", p["id"]), Some(&bob_session), None).await;
    assert_eq!(status, 204);

    let (carol_id, _) = app.user(&admin, "carol@example.com", "auditor").await;
    let (status, _) = app.call(Method::DELETE, &format!("/api/v1/users/{carol_id}"), Some(&admin), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call(Method::DELETE, "/api/v1/session", Some(&bob_session), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call(Method::GET, "/api/v1/session", Some(&bob_session), None).await;
    assert_eq!(status, 401, "signed out means signed out");

    let events = app.events().await;
    let check = |action: &str, label: &str, user: &str, target: Option<&str>, details: &str| {
        let e = find(&events, start, action);
        assert_eq!(e.body.action.label(), label, "{action}");
        assert_eq!(e.user(), user, "{action}: user");
        assert_eq!(e.body.target.as_ref().map(|t| t.display.as_str()), target, "{action}: target");
        assert!(e.body.details.contains(details), "{action}: {:?} should contain {details:?}", e.body.details);
        assert_eq!(e.body.source.user_agent.as_deref(), Some("accounts-test/1.0"), "{action}: source");
        assert!(e.body.source.ip.is_some(), "{action}: source ip");
        e
    };
    check("login.success", "Login Success", ADMIN, None, "Method: password");
    let failed: Vec<&Event> = events[start..].iter().filter(|e| e.body.action.code() == "login.failed").collect();
    assert_eq!(failed.len(), 2);
    assert_eq!((failed[0].user(), failed[0].body.details.as_str()), (ADMIN, "Invalid password"));
    assert_eq!((failed[1].user(), failed[1].body.details.as_str()), ("ghost@example.com", "Unknown user"));
    check("user.invited", "User Invited", ADMIN, Some("bob@example.com"), "Invited bob@example.com as Auditor");
    let added = check(
        "management_user.added",
        "Management Users Added",
        "bob@example.com",
        Some("bob@example.com"),
        "Accepted the invitation from admin@example.com as Auditor",
    );
    assert_eq!(added.body.fields["method"], "invitation");
    let role = check(
        "user.role_updated",
        "User Role Updated",
        ADMIN,
        Some("bob@example.com"),
        "Role changed from Auditor to Analyst",
    );
    assert_eq!((role.body.fields["old_role"].as_str(), role.body.fields["new_role"].as_str()), ("auditor", "analyst"));
    check("protected_user.added", "Protected Users Added", "bob@example.com", Some("ceo@example.com"), "Grace Hopper");
    check(
        "protected_user.removed",
        "Protected Users Removed",
        "bob@example.com",
        Some("ceo@example.com"),
        "Grace Hopper",
    );
    check(
        "management_user.deleted",
        "Management Users Deleted",
        ADMIN,
        Some("carol@example.com"),
        "Deleted carol@example.com",
    );
    let logouts: Vec<&Event> = events[start..].iter().filter(|e| e.body.action.code() == "logout").collect();
    assert_eq!(logouts.len(), 2, "carol's session ended with her deletion, bob signed out");
    assert_eq!((logouts[0].user(), logouts[0].body.fields["reason"].as_str()), ("carol@example.com", "user_deleted"));
    assert_eq!((logouts[1].user(), logouts[1].body.details.as_str()), ("bob@example.com", "Signed out"));
    for e in &events[start..] {
        let text = format!("{:?}", e.body);
        assert!(!text.contains(PASSWORD) && !text.contains("wrong password!"), "no password in any event: {text}");
        assert!(!text.contains(&admin.csrf) && !text.contains(token), "no token in any event");
    }
}

async fn refused_requests_record_nothing(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, analyst) = app.user(&admin, "ann@example.com", "analyst").await;
    let before = app.count().await;
    // (method, path, session, body, send the CSRF token, expected status)
    type Attempt<'a> = (Method, &'a str, Option<&'a Session>, Value, bool, u16);
    let attempts: Vec<Attempt> = vec![
        // Missing permission.
        (
            Method::POST,
            "/api/v1/users",
            Some(&analyst),
            json!({"email": "x@example.com", "role": "admin", "password": PASSWORD}),
            true,
            403,
        ),
        (Method::PATCH, "/api/v1/settings", Some(&analyst), json!({"time_zone": "Europe/Berlin"}), true, 403),
        // Bad CSRF token, and none at all.
        (
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            json!({"email": "p@example.com", "name": "P"}),
            false,
            403,
        ),
        // Bad input.
        (
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            json!({"email": "not-an-email", "role": "admin", "password": PASSWORD}),
            true,
            400,
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            json!({"email": "y@example.com", "role": "root", "password": PASSWORD}),
            true,
            400,
        ),
        (
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            json!({"email": "y@example.com", "role": "admin", "password": "password1"}),
            true,
            400,
        ),
        (Method::POST, "/api/v1/users", Some(&admin), json!({"email": "y@example.com"}), true, 400),
        (
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            json!({"email": "p@example.com", "name": ""}),
            true,
            400,
        ),
        (Method::PATCH, "/api/v1/settings", Some(&admin), json!({"time_zone": "Mars/Olympus"}), true, 400),
        (Method::PATCH, "/api/v1/users/123", Some(&admin), json!({"role": "admin"}), true, 404),
        (Method::DELETE, "/api/v1/users/abc", Some(&admin), json!(null), true, 400),
        // Anonymous.
        (Method::POST, "/api/v1/invitations", None, json!({"email": "z@example.com", "role": "admin"}), true, 401),
    ];
    for (method, path, session, body, csrf, expected) in attempts {
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = app.call_with(method.clone(), path, session, body, csrf).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(answer["error"]["code"].is_string(), "a JSON error: {answer}");
    }
    let (status, body) = {
        let wrong = Session { cookie: admin.cookie.clone(), csrf: "forged".into() };
        app.call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&wrong),
            Some(json!({"email": "p@example.com", "name": "P"})),
        )
        .await
    };
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("csrf")));
    let (_, me) = app.call(Method::GET, "/api/v1/session", Some(&admin), None).await;
    let (status, body) =
        app.call(Method::DELETE, &format!("/api/v1/users/{}", me["user"]["id"]), Some(&admin), None).await;
    assert_eq!(status, 409, "the last admin cannot be deleted: {body}");
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", me["user"]["id"]),
            Some(&admin),
            Some(json!({"role": "auditor"})),
        )
        .await;
    assert_eq!(status, 409, "nor demoted");
    assert_eq!(app.count().await, before, "no event for any refused request");
}

/// Every route, for anonymous, auditor, analyst and admin: 401 without a session, 403 without
/// the permission, through to the handler otherwise.
async fn every_route_checks_the_current_role(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, auditor) = app.user(&admin, "aud@example.com", "auditor").await;
    let (_, analyst) = app.user(&admin, "ana@example.com", "analyst").await;
    let body = |v: Value| Some(v);
    // (method, path, body, [auditor, analyst, admin] allowed)
    let routes: Vec<(Method, &str, Option<Value>, [bool; 3])> = vec![
        (Method::GET, "/api/v1/session", None, [true, true, true]),
        (Method::GET, "/api/v1/users", None, [true, false, true]),
        (Method::POST, "/api/v1/users", body(json!({"email": "bad"})), [false, false, true]),
        (Method::PATCH, "/api/v1/users/1", body(json!({"role": "auditor"})), [false, false, true]),
        (Method::DELETE, "/api/v1/users/1", None, [false, false, true]),
        (Method::GET, "/api/v1/invitations", None, [true, false, true]),
        (Method::POST, "/api/v1/invitations", body(json!({"email": "bad", "role": "auditor"})), [false, false, true]),
        (Method::DELETE, "/api/v1/invitations/1", None, [false, false, true]),
        (Method::GET, "/api/v1/protected-users", None, [true, true, true]),
        (Method::POST, "/api/v1/protected-users", body(json!({"email": "bad", "name": "x"})), [false, true, true]),
        (Method::DELETE, "/api/v1/protected-users/1", None, [false, true, true]),
        (Method::GET, "/api/v1/settings", None, [false, false, true]),
        (Method::PATCH, "/api/v1/settings", body(json!({"lockout_minutes": 0})), [false, false, true]),
        (
            Method::PUT,
            "/api/v1/account/password",
            body(json!({"current_password": "x", "new_password": "y"})),
            [true, true, true],
        ),
        (Method::POST, "/api/v1/account/totp/confirm", body(json!({"secret": "!", "code": "1"})), [true, true, true]),
        (Method::DELETE, "/api/v1/account/totp", body(json!({"password": "x"})), [true, true, true]),
    ];
    let sessions = [&auditor, &analyst, &admin];
    for (method, path, b, allowed) in &routes {
        let (status, answer) = app.call(method.clone(), path, None, b.clone()).await;
        assert_eq!(status, 401, "anonymous {method} {path}: {answer}");
        for (i, session) in sessions.iter().enumerate() {
            let (status, answer) = app.call(method.clone(), path, Some(session), b.clone()).await;
            if allowed[i] {
                assert!(status != 401 && status != 403, "role {i} {method} {path} should pass: {status} {answer}");
            } else {
                assert_eq!(status, 403, "role {i} {method} {path}: {answer}");
            }
        }
    }
    // The import takes CSV, not JSON.
    let import = |s: &Session| {
        app.http
            .post(format!("{}/api/v1/protected-users/import", app.base))
            .header("cookie", &s.cookie)
            .header("x-csrf-token", &s.csrf)
            .body("email,name\n")
            .send()
    };
    assert_eq!(import(&auditor).await.unwrap().status(), 403);
    assert_eq!(import(&analyst).await.unwrap().status(), 200);

    // Console pages: anonymous is sent to sign in, a missing permission is 403.
    let pages: [(&str, [bool; 3]); 6] = [
        ("/audit-log", [true, true, true]),
        ("/audit-log/events/0", [true, true, true]),
        ("/users", [true, false, true]),
        ("/protected-users", [true, true, true]),
        ("/settings", [false, false, true]),
        ("/account", [true, true, true]),
    ];
    for (path, allowed) in pages {
        let resp = app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "anonymous {path}");
        assert!(resp.headers()["location"].to_str().unwrap().starts_with("/login?next="), "{path}");
        for (i, s) in sessions.iter().enumerate() {
            let resp = app.http.get(format!("{}{path}", app.base)).header("cookie", &s.cookie).send().await.unwrap();
            assert_eq!(resp.status(), if allowed[i] { 200 } else { 403 }, "role {i} {path}");
        }
    }

    // Console forms: anonymous is sent to sign in, a missing permission is 403, and the others
    // reach the handler (which answers a page or a redirect).
    let forms: [(&str, &str, [bool; 3]); 9] = [
        ("/users/invite", "email=bad&role=auditor", [false, false, true]),
        ("/users/add", "email=bad&role=auditor&password=x", [false, false, true]),
        ("/users/1/role", "role=auditor", [false, false, true]),
        ("/users/1/delete", "", [false, false, true]),
        ("/invitations/1/revoke", "", [false, false, true]),
        ("/protected-users/add", "email=bad&name=x", [false, true, true]),
        ("/protected-users/1/remove", "", [false, true, true]),
        (
            "/settings",
            "time_zone=UTC&session_idle_minutes=x&session_absolute_hours=1&lockout_threshold=1&lockout_minutes=1",
            [false, false, true],
        ),
        ("/account/password", "current_password=x&new_password=y", [true, true, true]),
    ];
    for (path, body, allowed) in forms {
        let post = |s: Option<&Session>| {
            let mut req = app
                .http
                .post(format!("{}{path}", app.base))
                .header("content-type", "application/x-www-form-urlencoded");
            let mut body = body.to_owned();
            if let Some(s) = s {
                req = req.header("cookie", &s.cookie);
                body = format!("csrf={}&{body}", s.csrf);
            }
            req.body(body).send()
        };
        let resp = post(None).await.unwrap();
        assert_eq!(resp.status(), 303, "anonymous {path}");
        for (i, s) in sessions.iter().enumerate() {
            let status = post(Some(s)).await.unwrap().status().as_u16();
            if allowed[i] {
                assert!(status != 403 && status != 401, "role {i} POST {path}: {status}");
            } else {
                assert_eq!(status, 403, "role {i} POST {path}");
            }
        }
    }

    // A role change bites on the very next request.
    let (_, me) = app.call(Method::GET, "/api/v1/session", Some(&analyst), None).await;
    let id = me["user"]["id"].as_i64().unwrap();
    let (status, _) =
        app.call(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&admin), body(json!({"role": "auditor"}))).await;
    assert_eq!(status, 200);
    let (status, _) = app.call(Method::DELETE, "/api/v1/protected-users/1", Some(&analyst), None).await;
    assert_eq!(status, 403, "demoted: no longer allowed");
    let (status, _) = app.call(Method::GET, "/api/v1/users", Some(&analyst), None).await;
    assert_eq!(status, 200, "and now allowed what auditors may");
}

async fn sessions_end_by_expiry_and_deletion_with_a_logout(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, idle) = app.user(&admin, "idle@example.com", "auditor").await;
    let start = app.count().await;
    // 29 minutes of quiet: still alive (the default idle timeout is 30 minutes).
    app.clock.advance_micros(29 * 60 * 1_000_000);
    assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&admin), None).await.0, 200);
    app.clock.advance_micros(2 * 60 * 1_000_000);
    assert_eq!(
        app.call(Method::GET, "/api/v1/session", Some(&admin), None).await.0,
        200,
        "activity kept the admin's alive"
    );
    assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&idle), None).await.0, 401, "idle for 31 minutes");
    assert_eq!(app.accounts.end_expired_sessions().await.unwrap(), 0, "already ended, once");
    let events = app.events().await;
    let logout = find(&events, start, "logout");
    assert_eq!((logout.user(), logout.body.details.as_str()), ("idle@example.com", "Session expired (idle timeout)"));

    // The background sweep ends sessions nobody uses any more.
    let (_, quiet) = app.user(&admin, "quiet@example.com", "auditor").await;
    let from = app.count().await;
    // 31 + 23 × 29 = 698 minutes: the admin, active, is still within the 12-hour limit.
    for _ in 0..23 {
        app.clock.advance_micros(29 * 60 * 1_000_000);
        assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&admin), None).await.0, 200);
    }
    assert_eq!(app.accounts.end_expired_sessions().await.unwrap(), 1, "quiet's idle session");
    assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&quiet), None).await.0, 401);
    // 727 minutes: the admin's session reaches its absolute limit, whatever the activity.
    app.clock.advance_micros(29 * 60 * 1_000_000);
    assert_eq!(app.call(Method::GET, "/api/v1/session", Some(&admin), None).await.0, 401, "absolute limit");
    let events = app.events().await;
    let reasons: Vec<&str> =
        events[from..].iter().filter(|e| e.body.action.code() == "logout").map(|e| e.body.details.as_str()).collect();
    assert_eq!(reasons, ["Session expired (idle timeout)", "Session expired (absolute limit)"]);
}

async fn lockout_after_repeated_failures_is_recorded(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, _) = app.user(&admin, "dan@example.com", "auditor").await;
    let start = app.count().await;
    for _ in 0..10 {
        let (status, _) = app
            .call(
                Method::POST,
                "/api/v1/session",
                None,
                Some(json!({"email": "dan@example.com", "password": "nope nope nope"})),
            )
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = app
        .call(Method::POST, "/api/v1/session", None, Some(json!({"email": "dan@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("sign_in_failed")),
        "locked: the right password fails too, same message"
    );
    let events = app.events().await;
    let locked = find(&events, start, "account.locked");
    assert_eq!(locked.body.target.as_ref().unwrap().display, "dan@example.com");
    assert!(locked.body.details.contains("after 10 consecutive failed sign-ins"), "{}", locked.body.details);
    let last = events.last().unwrap();
    assert_eq!((last.body.action.code(), last.body.details.as_str()), ("login.failed", "Account locked"));
    app.clock.advance_micros(31 * 60 * 1_000_000);
    app.sign_in("dan@example.com", PASSWORD).await;
}

async fn totp_codes_work_once_and_wrong_codes_are_failed_verification(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (status, enrol) = app.call(Method::POST, "/api/v1/account/totp", Some(&admin), None).await;
    assert_eq!(status, 200);
    assert!(enrol["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert!(enrol["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = logbook_store::accounts::TotpSecret(enrol["secret"].as_str().unwrap().to_owned());
    let code = |t: Timestamp| logbook_accounts::totp::code_at(&secret, t).unwrap();
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/account/totp/confirm",
            Some(&admin),
            Some(json!({"secret": secret.0, "code": "000000"})),
        )
        .await;
    assert_eq!(status, 400, "a wrong code does not enrol");
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/account/totp/confirm",
            Some(&admin),
            Some(json!({"secret": secret.0, "code": code(app.clock.now_ts())})),
        )
        .await;
    assert_eq!(status, 204);
    app.clock.advance_micros(60 * 1_000_000);

    let start = app.count().await;
    let (status, body) =
        app.call(Method::POST, "/api/v1/session", None, Some(json!({"email": ADMIN, "password": PASSWORD}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("totp_required")));
    let pending = body["error"]["pending"].as_str().unwrap().to_owned();
    let step = |code: String| json!({"email": "", "password": "", "pending": pending, "totp": code});
    let (status, _) = app.call(Method::POST, "/api/v1/session", None, Some(step("123456".into()))).await;
    assert_eq!(status, 401);
    let good = code(app.clock.now_ts());
    let (status, _) = app.call(Method::POST, "/api/v1/session", None, Some(step(good.clone()))).await;
    assert_eq!(status, 200);
    let (status, _) = app.call(Method::POST, "/api/v1/session", None, Some(step(good))).await;
    assert_eq!(status, 401, "the same code does not work twice");
    let events = app.events().await;
    let kinds: Vec<(&str, &str)> =
        events[start..].iter().map(|e| (e.body.action.code(), e.body.details.as_str())).collect();
    assert_eq!(
        kinds,
        [
            ("login.failed", "Failed verification (wrong TOTP code)"),
            ("login.success", "Method: password + TOTP"),
            ("login.failed", "Failed verification (TOTP code already used)"),
        ]
    );
}

async fn protected_users_import_reports_rows_and_records_each(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            Some(json!({"email": "old@example.com", "name": "Already There"})),
        )
        .await;
    assert_eq!(status, 201);
    let start = app.count().await;
    let csv = "Email,Name\nada@example.com,Ada Lovelace\nnot-an-email,Nobody\n\"grace@example.com\",\"Hopper, Grace\"\nold@example.com,Again\nada@example.com,Twice\nzoe@example.com,\n";
    let resp = app
        .http
        .post(format!("{}/api/v1/protected-users/import", app.base))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["added"], 2, "{report}");
    let lines: Vec<i64> = report["errors"].as_array().unwrap().iter().map(|e| e["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, [3, 5, 6, 7], "{report}");
    let events = app.events().await;
    let added: Vec<&str> = events[start..]
        .iter()
        .filter(|e| e.body.action.code() == "protected_user.added")
        .map(|e| e.body.target.as_ref().unwrap().display.as_str())
        .collect();
    assert_eq!(added.len(), 2);
    assert!(added.contains(&"ada@example.com") && added.contains(&"grace@example.com"));
    let (_, page) = app.call(Method::GET, "/api/v1/protected-users?q=hopper", Some(&admin), None).await;
    assert_eq!(page["protected_users"][0]["name"], "Hopper, Grace");
    let (status, _) = app.call(Method::GET, "/api/v1/protected-users?limit=0", Some(&admin), None).await;
    assert_eq!(status, 400);
}

async fn settings_changes_are_validated_and_recorded(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (status, s) = app.call(Method::GET, "/api/v1/settings", Some(&admin), None).await;
    assert_eq!((status, s["time_zone"].as_str(), s["session_idle_minutes"].as_u64()), (200, Some("UTC"), Some(30)));
    let start = app.count().await;
    let (status, s) = app
        .call(
            Method::PATCH,
            "/api/v1/settings",
            Some(&admin),
            Some(json!({"time_zone": "Europe/Berlin", "lockout_threshold": 5})),
        )
        .await;
    assert_eq!(
        (status, s["time_zone"].as_str(), s["lockout_threshold"].as_u64()),
        (200, Some("Europe/Berlin"), Some(5))
    );
    let (status, body) =
        app.call(Method::PATCH, "/api/v1/settings", Some(&admin), Some(json!({"timezone": "UTC"}))).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    let events = app.events().await;
    let e = find(&events, start, "settings.updated");
    assert_eq!(e.body.fields["old.time_zone"], "UTC");
    assert_eq!(e.body.fields["new.time_zone"], "Europe/Berlin");
    assert!(e.body.details.contains("time_zone changed from UTC to Europe/Berlin"), "{}", e.body.details);
    assert_eq!(events.len(), start + 1);
}

async fn a_change_whose_event_cannot_be_stored_is_not_made(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let before = app.count().await;
    app.store.fail_before_commit.store(1, Ordering::SeqCst);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(json!({"email": "eve@example.com", "role": "admin", "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.to_string().contains("injected"), "internal details are not sent: {body}");
    let (_, users) = app.call(Method::GET, "/api/v1/users", Some(&admin), None).await;
    assert!(!users.to_string().contains("eve@example.com"), "the user was not added");
    assert_eq!(app.count().await, before, "and nothing was recorded");
    app.store.fail_before_commit.store(1, Ordering::SeqCst);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            Some(json!({"email": "p@example.com", "name": "P"})),
        )
        .await;
    assert_eq!(status, 503);
    let (_, page) = app.call(Method::GET, "/api/v1/protected-users", Some(&admin), None).await;
    assert_eq!(page["protected_users"].as_array().unwrap().len(), 0);
    // Once the store works again, so does the change.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/protected-users",
            Some(&admin),
            Some(json!({"email": "p@example.com", "name": "P"})),
        )
        .await;
    assert_eq!(status, 201);
}

trait Now {
    fn now_ts(&self) -> Timestamp;
}

impl Now for ManualClock {
    fn now_ts(&self) -> Timestamp {
        logbook_core::Clock::now(self)
    }
}

async fn the_audit_log_page_records_views_once_per_filter_set(app: App) {
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, auditor) = app.user(&admin, "aud@example.com", "auditor").await;
    let page = |s: &Session, query: &str| {
        app.http.get(format!("{}/audit-log{query}", app.base)).header("cookie", &s.cookie).send()
    };
    let views = || async { app.events().await.iter().filter(|e| e.body.action.code() == "audit_log.viewed").count() };
    let resp = page(&auditor, "").await.unwrap();
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Timestamp (UTC)") && html.contains("Management Users Added"), "the table, zone named");
    assert_eq!(views().await, 1);
    page(&auditor, "").await.unwrap();
    page(&auditor, "?limit=25").await.unwrap();
    assert_eq!(views().await, 1, "the same filters again (another page size) record nothing");
    let html = page(&auditor, "?action=login.success&action=management_user.added&user=admin%40example.com")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(views().await, 2, "a new filter set is recorded");
    assert!(html.contains("2 selected"), "both actions stay selected");
    let viewed = app.events().await.into_iter().rev().find(|e| e.body.action.code() == "audit_log.viewed").unwrap();
    assert_eq!(viewed.user(), "aud@example.com");
    assert_eq!(viewed.body.fields["filter.action"], "login.success,management_user.added");
    page(&admin, "").await.unwrap();
    assert_eq!(views().await, 3, "once per session");

    let resp = page(&auditor, "?from=not-a-date").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("class=\"error\""), "a clear error, on the page");
    let html = page(&auditor, "?q=no-such-thing-anywhere").await.unwrap().text().await.unwrap();
    assert!(html.contains("No entries match these filters."));
    // The view of that search is recorded without the searched word in its details, so searching
    // again still finds nothing.
    let html = page(&admin, "?q=no-such-thing-anywhere").await.unwrap().text().await.unwrap();
    assert!(html.contains("No entries match these filters."), "the record of a search does not match it");
    assert!(!html.contains("class=\"pager\""), "no empty pager");

    let entry = app
        .http
        .get(format!("{}/audit-log/events/0", app.base))
        .header("cookie", &auditor.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(entry.status(), 200);
    let html = entry.text().await.unwrap();
    assert!(html.contains("Leaf hash") && html.contains("Sequence number"));
    assert!(html.contains("Verified") || html.contains("Not yet covered"), "the proof status is shown");
    let missing = app
        .http
        .get(format!("{}/audit-log/events/999999", app.base))
        .header("cookie", &auditor.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let anonymous = app.http.get(format!("{}/audit-log", app.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), 303, "sign in first");
}

/// A minimal SMTP server that accepts one message and hands over its DATA.
async fn fake_smtp() -> (u16, tokio::sync::oneshot::Receiver<String>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (r, mut w) = sock.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"220 fake ESMTP\r\n").await.unwrap();
        let mut data = String::new();
        let mut in_data = false;
        while let Ok(Some(line)) = lines.next_line().await {
            if in_data {
                if line == "." {
                    in_data = false;
                    w.write_all(b"250 queued\r\n").await.unwrap();
                } else {
                    data.push_str(&line);
                    data.push('\n');
                }
                continue;
            }
            let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            let reply: &[u8] = match verb.as_str() {
                "EHLO" | "HELO" => b"250 fake\r\n",
                "DATA" => {
                    in_data = true;
                    b"354 go ahead\r\n"
                }
                "QUIT" => {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                }
                _ => b"250 ok\r\n",
            };
            w.write_all(reply).await.unwrap();
        }
        let _ = tx.send(data);
    });
    (port, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_are_mailed_when_smtp_is_configured() {
    let (port, mail) = fake_smtp().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new(dir.path().to_owned());
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.public_url = Some("https://logbook.example.com".into());
    settings.smtp = Some(logbook_accounts::SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        from: "logbook@example.com".into(),
        username: None,
        password: None,
    });
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(1_790_000_000_000_000)));
    let app = Application::build(&settings, store, clock, Arc::new(SeededRandom::new(8))).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    assert!(
        app.setup_link().unwrap().starts_with("https://logbook.example.com/setup?token="),
        "links use the public URL"
    );
    let accounts = app.accounts().clone();
    accounts.create_user_as_operator(ADMIN, logbook_core::Role::Admin, PASSWORD).await.unwrap();
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Secure"), "served as https: the cookie is Secure: {cookie}");
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let csrf = resp.json::<Value>().await.unwrap()["csrf_token"].as_str().unwrap().to_owned();
    let created: Value = http
        .post(format!("{base}/api/v1/invitations"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"email": "new@example.com", "role": "analyst"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["mailed"], true, "{created}");
    let link = created["link"].as_str().unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), mail).await.unwrap().unwrap();
    assert!(message.contains("To: new@example.com"), "{message}");
    assert!(message.contains(link), "the mail carries the link: {message}");
    assert!(message.contains("as Analyst"), "{message}");
}

/// A client whose connections come from `ip` (any 127.x.y.z address reaches the server).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn try_sign_in(http: &reqwest::Client, base: &str, email: &str, password: &str) -> reqwest::Response {
    http.post(format!("{base}/api/v1/session"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn sign_ins_are_throttled_per_address_across_processes(app: App) {
    let limit = logbook_accounts::SignInThrottle::default().max_failures;
    let attacker = client_from("127.0.0.2");
    let start = app.count().await;
    for i in 1..=limit {
        let resp = try_sign_in(&attacker, &app.base, &format!("ghost{i}@example.com"), "not the password").await;
        assert_eq!(resp.status(), 401, "failure {i} of {limit} is an ordinary failed sign-in");
    }
    let events = app.events().await;
    assert_eq!(events.len() - start, limit as usize, "every failure is recorded");
    let last = events.last().unwrap();
    assert_eq!(last.body.action.code(), "login.failed");
    assert!(
        last.body.details.starts_with(
            "Unknown user; 30 failed sign-ins from this address, further sign-ins from it refused for 15 minutes"
        ),
        "the failure that reaches the limit says so: {}",
        last.body.details
    );
    assert_eq!(last.body.fields.get("address_failures").map(String::as_str), Some("30"));

    // Over the limit, even the right password is refused, before any hashing, and not recorded.
    let resp = try_sign_in(&attacker, &app.base, ADMIN, PASSWORD).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "900");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    let form = attacker
        .post(format!("{}/login", app.base))
        .form(&[("email", ADMIN), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 429, "the console's sign-in form is refused too");
    assert!(form.text().await.unwrap().contains("too many failed sign-ins from this address"));
    assert_eq!(app.count().await, start + limit as usize, "refusals are counted in /metrics, not logged one by one");

    // Another address is not affected.
    let resp = try_sign_in(&client_from("127.0.0.3"), &app.base, ADMIN, PASSWORD).await;
    assert_eq!(resp.status(), 200);

    // A second process on the same database refuses the address too: the counter is stored.
    let other = app.second_process().await;
    let resp = try_sign_in(&attacker, &other, ADMIN, PASSWORD).await;
    assert_eq!(resp.status(), 429, "the other process shares the count");

    let (_, metrics) = app.call(Method::GET, "/metrics", None, None).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("logbook_sign_ins_throttled_total 2"), "{metrics}");

    // After the window the address may try again.
    app.clock.advance_micros(16 * 60 * 1_000_000);
    let resp = try_sign_in(&attacker, &app.base, ADMIN, PASSWORD).await;
    assert_eq!(resp.status(), 200, "the window is over");
}

/// The value of a metric without labels in `/metrics`.
async fn metric(app: &App, name: &str) -> Option<f64> {
    let text = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn page_text(app: &App, s: &Session, path: &str) -> String {
    let resp = app.http.get(format!("{}{path}", app.base)).header("cookie", &s.cookie).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

/// Polls `/metrics` until `name` has `value`.
async fn wait_metric(app: &App, name: &str, value: f64) {
    for _ in 0..200 {
        if metric(app, name).await == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never became {value}: {:?}", metric(app, name).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_check_reports_damage_in_metrics_and_to_admins() {
    let app = App::spawn_with(Backend::Sqlite, |s| {
        s.self_check_interval = Duration::from_millis(100);
        s.checkpoint_interval = Duration::from_millis(50);
    })
    .await
    .unwrap();
    let admin = app.sign_in(ADMIN, PASSWORD).await;
    let (_, analyst) = app.user(&admin, "ann@example.com", "analyst").await;
    let org = app.store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    let size = app.store.log_head(org.id).await.unwrap().size;
    assert!(size >= 3, "setup, sign-in and the new user are in the log");

    // Healthy: the check passes and covers the whole log once its checkpoint is signed.
    wait_metric(&app, "logbook_self_check_verified_size", size as f64).await;
    assert_eq!(metric(&app, "logbook_self_check_ok").await, Some(1.0));
    assert_eq!(metric(&app, "logbook_self_check_failures_total").await, Some(0.0));
    assert!(metric(&app, "logbook_self_check_last_success_timestamp_seconds").await.unwrap() > 1.7e9);
    let settings = page_text(&app, &admin, "/settings").await;
    assert!(settings.contains("Self-check") && settings.contains("Passed: the log matches"), "{settings}");
    assert!(!page_text(&app, &admin, "/account").await.contains("Integrity self-check failed"));

    // An attacker with the file changes one byte of the first event.
    let db = rusqlite::Connection::open(app._dir.path().join(logbook_store_sqlite::FILE_NAME)).unwrap();
    db.execute_batch("DROP TRIGGER events_append_only_update").unwrap();
    let leaf: Vec<u8> = db.query_row("SELECT leaf FROM events WHERE seq = 1", [], |r| r.get(0)).unwrap();
    let mut bad = leaf.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    db.execute("UPDATE events SET leaf = ?1 WHERE seq = 1", [&bad]).unwrap();

    wait_metric(&app, "logbook_self_check_ok", 0.0).await;
    assert!(metric(&app, "logbook_self_check_failures_total").await.unwrap() >= 1.0);
    let settings = page_text(&app, &admin, "/settings").await;
    assert!(settings.contains("Self-check FAILED"), "{settings}");
    assert!(settings.contains("DAMAGED") && settings.contains("first bad seq 1"), "{settings}");
    assert!(settings.contains("role=\"alert\""), "{settings}");
    let account = page_text(&app, &admin, "/account").await;
    assert!(account.contains("Integrity self-check failed"), "admins see the banner on every page: {account}");
    let account = page_text(&app, &analyst, "/account").await;
    assert!(!account.contains("Integrity self-check failed"), "only admins see it");

    // Restored: the next run passes again.
    db.execute("UPDATE events SET leaf = ?1 WHERE seq = 1", [&leaf]).unwrap();
    wait_metric(&app, "logbook_self_check_ok", 1.0).await;
    assert!(!page_text(&app, &admin, "/account").await.contains("Integrity self-check failed"));
}
