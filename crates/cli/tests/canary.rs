//! The canary: every secret the platform handles — the setup token, passwords (right and
//! wrong), session cookies, CSRF tokens, TOTP secrets, enrolment and pending tokens, invitation
//! tokens, API tokens — is given a recognisable value, driven through the real binary
//! (`logbook serve` with `LOGBOOK_LOG=debug`, the most an operator would turn on), and then
//! looked for everywhere it must not be: every log line, every event (both exports), every
//! response except the one that hands that secret out, and (SQLite) the database's bytes.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};

use common::{bin, fresh_database, stdout};
use logbook_test_support::Backend;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_sqlite() {
    no_secret_leaks(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_postgres() {
    no_secret_leaks(Backend::Postgres).await;
}

const ADMIN: &str = "canary-admin@example.com";
const PASSWORD: &str = "canary-Password-7QxZ1";
const NEW_PASSWORD: &str = "canary-NewPassword-4WvK8";
const WRONG_PASSWORD: &str = "canary-WrongPassword-9JmT2";
const INVITEE: &str = "canary-invitee@example.com";
const INVITEE_PASSWORD: &str = "canary-InviteePassword-3HsR6";
const OPERATOR: &str = "canary-operator@example.com";
const OPERATOR_PASSWORD: &str = "canary-OperatorPassword-5BnL0";

/// One secret: its value and the labels of the responses allowed to carry it (those that
/// hand it out).
struct Secret {
    name: &'static str,
    value: String,
    handed_out_by: Vec<&'static str>,
}

/// Every response the test got: a label, its headers and its body.
#[derive(Default)]
struct Transcript {
    responses: Vec<(&'static str, String)>,
}

struct Running {
    child: Child,
    base: String,
    setup_token: String,
    stderr: std::path::PathBuf,
    http: reqwest::Client,
    transcript: Transcript,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Running {
    async fn call(&mut self, label: &'static str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(t) = &self.csrf {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = format!("{:?}", resp.headers());
        let text = resp.text().await.unwrap();
        self.transcript.responses.push((label, format!("{headers}\n{text}")));
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Signs in with the API, keeping the cookie and CSRF token for the next calls.
    async fn sign_in(&mut self, label: &'static str, email: &str, password: &str) -> (u16, Value) {
        self.cookie = None;
        self.csrf = None;
        let resp = self
            .http
            .post(format!("{}/api/v1/session", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let cookie = resp
            .headers()
            .get("set-cookie")
            .map(|c| c.to_str().unwrap().split(';').next().unwrap_or_default().to_owned());
        let headers = format!("{:?}", resp.headers());
        let text = resp.text().await.unwrap();
        self.transcript.responses.push((label, format!("{headers}\n{text}")));
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 {
            self.cookie = cookie;
            self.csrf = body["csrf_token"].as_str().map(str::to_owned);
        }
        (status, body)
    }
}

fn start(data_dir: &std::path::Path, database_url: Option<&str>) -> Running {
    let stderr = data_dir.join("canary-stderr.log");
    let mut cmd = bin();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("LOGBOOK_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap());
    if let Some(url) = database_url {
        cmd.env("LOGBOOK_DATABASE_URL", url);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut base, mut setup_token) = (None, None);
    let mut line = String::new();
    while base.is_none() || setup_token.is_none() {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the server exited before it was ready");
        if let Some(addr) = line.trim().strip_prefix("Logbook is listening on ") {
            base = Some(addr.to_owned());
        }
        if let Some((_, token)) = line.trim().split_once("/setup?token=") {
            setup_token = Some(token.to_owned());
        }
    }
    // The rest of stdout is the start-up banner, which hands out the setup link on purpose.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Running {
        child,
        base: base.unwrap(),
        setup_token: setup_token.unwrap(),
        stderr,
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        transcript: Transcript::default(),
        cookie: None,
        csrf: None,
    }
}

/// Runs `logbook ARGS` on the store, with `stdin` on its standard input and the most logging.
fn logbook(data_dir: &std::path::Path, url: Option<&str>, args: &[&str], stdin: &str) -> std::process::Output {
    let mut cmd = bin();
    cmd.args(args).arg("--data-dir").arg(data_dir).env("LOGBOOK_LOG", "debug");
    if let Some(u) = url {
        cmd.env("LOGBOOK_DATABASE_URL", u);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "logbook {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

async fn no_secret_leaks(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match fresh_database().await {
            Some(url) => Some(url),
            None => return, // the skip has been reported
        },
    };
    let data_dir = dir.path().join("data");
    let mut secrets: Vec<Secret> = Vec::new();
    let mut elsewhere: Vec<(String, String)> = Vec::new(); // (where, text) outside the transcript

    // The API token: printed once on stdout by `create-token`; its own stdout may carry it.
    let out = logbook(&data_dir, url.as_deref(), &["admin", "create-token", "--name", "canary-service"], "");
    let api_token = stdout(&out).trim().to_owned();
    elsewhere.push(("create-token's stderr".into(), String::from_utf8_lossy(&out.stderr).into_owned()));
    secrets.push(Secret { name: "API token", value: api_token.clone(), handed_out_by: vec![] });

    let mut app = start(&data_dir, url.as_deref());
    secrets.push(Secret { name: "setup token", value: app.setup_token.clone(), handed_out_by: vec!["setup page"] });

    // The setup link's page, with its token in the URL (a request log would show it), then the
    // first admin.
    let token = app.setup_token.clone();
    app.call("setup page", Method::GET, &format!("/setup?token={token}"), None).await;
    let (status, body) = app
        .call(
            "setup",
            Method::POST,
            "/api/v1/setup",
            Some(json!({"token": token, "email": ADMIN, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    secrets.push(Secret { name: "password", value: PASSWORD.into(), handed_out_by: vec![] });

    // A wrong password, then the right one.
    let (status, _) = app.sign_in("wrong sign-in", ADMIN, WRONG_PASSWORD).await;
    assert_eq!(status, 401);
    secrets.push(Secret { name: "wrong password", value: WRONG_PASSWORD.into(), handed_out_by: vec![] });
    let (status, _) = app.sign_in("sign-in", ADMIN, PASSWORD).await;
    assert_eq!(status, 200);
    let first_cookie = app.cookie.clone().unwrap();
    let first_cookie_value = first_cookie.split_once('=').unwrap().1.to_owned();
    secrets.push(Secret { name: "session cookie", value: first_cookie_value, handed_out_by: vec!["sign-in"] });
    secrets.push(Secret { name: "CSRF token", value: app.csrf.clone().unwrap(), handed_out_by: vec!["sign-in"] });

    // A wrong current password behind the session, then a password change.
    let change = |current: &str, new: &str| json!({"current_password": current, "new_password": new});
    let (status, _) = app
        .call(
            "wrong password change",
            Method::PUT,
            "/api/v1/account/password",
            Some(change(WRONG_PASSWORD, NEW_PASSWORD)),
        )
        .await;
    assert!(status >= 400, "a wrong current password is refused: {status}");
    let (status, body) = app
        .call("password change", Method::PUT, "/api/v1/account/password", Some(change(PASSWORD, NEW_PASSWORD)))
        .await;
    assert!(status < 300, "{status} {body}");
    secrets.push(Secret { name: "new password", value: NEW_PASSWORD.into(), handed_out_by: vec![] });
    // A password change may end this session; sign in again with the new password.
    let (status, _) = app.sign_in("sign-in with the new password", ADMIN, NEW_PASSWORD).await;
    assert_eq!(status, 200);
    secrets.push(Secret {
        name: "second session cookie",
        value: app.cookie.clone().unwrap().split_once('=').unwrap().1.to_owned(),
        handed_out_by: vec!["sign-in with the new password"],
    });

    // TOTP: enrol (the secret and enrolment token are handed out once), confirm, sign in with a
    // pending token and a code.
    let (status, enrol) = app.call("TOTP enrolment", Method::POST, "/api/v1/account/totp", None).await;
    assert_eq!(status, 200, "{enrol}");
    let totp_secret = enrol["secret"].as_str().unwrap().to_owned();
    let enrolment_token = enrol["token"].as_str().unwrap().to_owned();
    secrets.push(Secret { name: "TOTP secret", value: totp_secret.clone(), handed_out_by: vec!["TOTP enrolment"] });
    secrets.push(Secret {
        name: "enrolment token",
        value: enrolment_token.clone(),
        handed_out_by: vec!["TOTP enrolment"],
    });
    let secret = logbook_store::accounts::TotpSecret(totp_secret);
    let now = || logbook_core::Timestamp::from_micros(jiff::Timestamp::now().as_microsecond());
    let code = logbook_accounts::totp::code_at(&secret, now()).unwrap();
    let (status, body) = app
        .call(
            "TOTP confirmation",
            Method::POST,
            "/api/v1/account/totp/confirm",
            Some(json!({"token": enrolment_token, "code": code, "current_password": NEW_PASSWORD})),
        )
        .await;
    assert!(status < 300, "{status} {body}");
    let (status, body) = app.sign_in("TOTP sign-in, first step", ADMIN, NEW_PASSWORD).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("totp_required")), "{body}");
    let pending = body["error"]["pending"].as_str().unwrap().to_owned();
    secrets.push(Secret {
        name: "pending token",
        value: pending.clone(),
        handed_out_by: vec!["TOTP sign-in, first step"],
    });
    let step = |code: &str| json!({"email": "", "password": "", "pending": pending, "totp": code});
    app.call("wrong TOTP code", Method::POST, "/api/v1/session", Some(step("000000"))).await;
    // The code of the next step, so it was never used (a code works once).
    let next = logbook_core::Timestamp::from_micros(now().as_micros() + 30_000_000);
    let code = logbook_accounts::totp::code_at(&secret, next).unwrap();
    // The same code is accepted within the drift window; a refusal here only loses coverage of
    // the completed second step, so it is asserted.
    let resp = app.http.post(format!("{}/api/v1/session", app.base)).json(&step(&code)).send().await.unwrap();
    let status = resp.status().as_u16();
    let set_cookie = resp.headers().get("set-cookie").map(|c| c.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    app.transcript.responses.push(("TOTP sign-in, second step", text.clone()));
    assert_eq!(status, 200, "{text}");
    let cookie = set_cookie.unwrap().split(';').next().unwrap().to_owned();
    let csrf = serde_json::from_str::<Value>(&text).unwrap()["csrf_token"].as_str().unwrap().to_owned();
    secrets.push(Secret {
        name: "TOTP session cookie",
        value: cookie.split_once('=').unwrap().1.to_owned(),
        handed_out_by: vec!["TOTP sign-in, second step"],
    });
    (app.cookie, app.csrf) = (Some(cookie), Some(csrf));

    // An invitation: its link is handed to the inviting admin; the invitee accepts it.
    let (status, invited) = app
        .call("invitation", Method::POST, "/api/v1/invitations", Some(json!({"email": INVITEE, "role": "auditor"})))
        .await;
    assert_eq!(status, 201, "{invited}");
    let invitation_token = invited["link"].as_str().unwrap().split("token=").nth(1).unwrap().to_owned();
    // The invitation's page carries its token in its form, to send back.
    secrets.push(Secret {
        name: "invitation token",
        value: invitation_token.clone(),
        handed_out_by: vec!["invitation", "invitation page"],
    });
    let (own_cookie, own_csrf) = (app.cookie.take(), app.csrf.take());
    app.call("invitation page", Method::GET, &format!("/invite?token={invitation_token}"), None).await;
    let (status, body) = app
        .call(
            "invitation acceptance",
            Method::POST,
            "/api/v1/invitations/accept",
            Some(json!({"token": invitation_token, "password": INVITEE_PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    secrets.push(Secret { name: "invitee password", value: INVITEE_PASSWORD.into(), handed_out_by: vec![] });
    (app.cookie, app.csrf) = (own_cookie, own_csrf);

    // The sessions: listed (never with their tokens), the others ended, and the invitee signed
    // out everywhere by the admin.
    let (status, listed) = app.call("sessions", Method::GET, "/api/v1/account/sessions", None).await;
    assert_eq!(status, 200, "{listed}");
    let (status, body) = app.call("ending the other sessions", Method::DELETE, "/api/v1/account/sessions", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, users) = app.call("users", Method::GET, "/api/v1/users", None).await;
    assert_eq!(status, 200, "{users}");
    let invitee =
        users.as_array().or(users["users"].as_array()).unwrap().iter().find(|u| u["email"] == INVITEE).unwrap()["id"]
            .clone();
    let (status, body) =
        app.call("signing the invitee out", Method::POST, &format!("/api/v1/users/{invitee}/sign-out"), None).await;
    assert!(status < 300, "{status} {body}");

    // Events through the API token, then both exports.
    let resp = app
        .http
        .post(format!("{}/api/v1/events", app.base))
        .bearer_auth(&api_token)
        .json(&json!([{"action": "billing.invoice.paid", "action_label": "Invoice paid", "actor": {"type": "service", "id": "billing"}, "details": "paid"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "a service event is recorded");
    let text = resp.text().await.unwrap();
    app.transcript.responses.push(("ingestion", text));
    app.call("list", Method::GET, "/api/v1/events", None).await;
    for format in ["csv", "ndjson"] {
        let resp = app
            .http
            .get(format!("{}/api/v1/events/export?format={format}", app.base))
            .header("cookie", app.cookie.as_deref().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "the {format} export");
        let text = resp.text().await.unwrap();
        assert!(text.contains("canary-admin@example.com"), "the {format} export holds the events: {text}");
        app.transcript.responses.push(("export", text));
    }
    app.call("sign-out", Method::DELETE, "/api/v1/session", None).await;

    let pid = app.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(app.child.wait().unwrap().success(), "a clean stop");

    // A management user made from the command line, whose password comes on stdin.
    let out = logbook(
        &data_dir,
        url.as_deref(),
        &["admin", "create", "--role", "admin", "--password-stdin", "--email", OPERATOR],
        &format!("{OPERATOR_PASSWORD}\n"),
    );
    secrets.push(Secret { name: "operator password", value: OPERATOR_PASSWORD.into(), handed_out_by: vec![] });
    elsewhere
        .push(("admin create's output".into(), format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))));
    let out = logbook(&data_dir, url.as_deref(), &["export", "--format", "csv"], "");
    elsewhere.push((
        "the command line's export".into(),
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)),
    ));

    elsewhere.push(("the server's log".into(), std::fs::read_to_string(&app.stderr).unwrap()));
    assert!(elsewhere.last().unwrap().1.contains("DEBUG"), "the server logged at debug");

    let mut leaks = Vec::new();
    for s in &secrets {
        for (label, text) in &app.transcript.responses {
            if text.contains(&s.value) && !s.handed_out_by.contains(label) {
                leaks.push(format!("the {} is in the response to {label}", s.name));
            }
        }
        for (place, text) in &elsewhere {
            if let Some(line) = text.lines().find(|l| l.contains(&s.value)) {
                leaks.push(format!("the {} is in {place}: {line}", s.name));
            }
        }
    }
    if backend == Backend::Sqlite {
        // The database's bytes: only hashes and ciphertexts of secrets belong there.
        for entry in std::fs::read_dir(&data_dir).unwrap() {
            let path = entry.unwrap().path();
            if !path.file_name().unwrap().to_string_lossy().starts_with("logbook.db") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for s in &secrets {
                if bytes.windows(s.value.len()).any(|w| w == s.value.as_bytes()) {
                    leaks.push(format!("the {} is in {}", s.name, path.display()));
                }
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
}
