//! Invitations mailed through SMTP, with links on the public URL.

use std::sync::Arc;

use logbook_core::{ManualClock, SeededRandom, Timestamp};
use logbook_server::{Application, Settings};
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;
use logbook_test_support::within;
use serde_json::{json, Value};

use crate::helpers::{ADMIN, PASSWORD};

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
        // The fake relay speaks plain SMTP.
        tls: logbook_accounts::SmtpTls::None,
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
    let message = within("the invitation's mail", mail).await.unwrap();
    assert!(message.contains("To: new@example.com"), "{message}");
    assert!(message.contains(link), "the mail carries the link: {message}");
    assert!(message.contains("as Analyst"), "{message}");
}
