//! The PostgreSQL store over TLS, against the local server with a certificate from a CA made for
//! the purpose (`.ci/postgres-tls`, which names it in `LOGBOOK_TEST_POSTGRES_CA`): `sslmode` means
//! what it means to libpq. Skipped where that set-up is missing, required in CI.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use logbook_store::Store;
use logbook_store_postgres::PgStore;
use logbook_test_support::{fresh_database, skip, Needs};
use tokio_postgres::NoTls;

/// The CA the server's certificate comes from, and a CA that signed nothing it shows.
fn cas() -> Option<(PathBuf, PathBuf)> {
    let Some(ca) = std::env::var_os("LOGBOOK_TEST_POSTGRES_CA").map(PathBuf::from) else {
        skip(Needs::PostgresTls, "LOGBOOK_TEST_POSTGRES_CA is not set (run .ci/postgres-tls as root)");
        return None;
    };
    let other = ca.with_file_name("other-ca.pem");
    assert!(ca.is_file() && other.is_file(), "{} and other-ca.pem beside it", ca.display());
    Some((ca, other))
}

/// `url` (a fresh database's, on 127.0.0.1) reached as `host` (the name the certificate is
/// checked against; the connection still goes to 127.0.0.1), with these parameters.
fn reach(url: &str, host: &str, params: &str) -> String {
    let url = url.replacen("@127.0.0.1:", &format!("@{host}:"), 1);
    format!("{url}?hostaddr=127.0.0.1&{params}")
}

/// Whether the database's connections (the store's pool) are encrypted.
async fn encrypted(url: &str) -> Vec<bool> {
    let db = url.rsplit('/').next().unwrap().to_owned();
    let (c, conn) = tokio_postgres::connect(&logbook_test_support::postgres::admin_url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    let rows = c
        .query("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1", &[&db])
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn connect(url: &str) -> Result<PgStore, String> {
    PgStore::connect(url).await.map_err(|e| e.to_string())
}

#[tokio::test]
async fn sslmode_is_honoured() {
    let Some((ca, other)) = cas() else { return };
    let Some(url) = fresh_database().await else { return };
    let (ca, other) = (ca.display().to_string(), other.display().to_string());

    // verify-full with the right CA and the name in the certificate: connected, encrypted.
    let store = connect(&reach(&url, "localhost", &format!("sslmode=verify-full&sslrootcert={ca}"))).await.unwrap();
    store.ping().await.unwrap();
    let seen = encrypted(&url).await;
    assert!(!seen.is_empty() && seen.iter().all(|s| *s), "every connection is encrypted: {seen:?}");
    drop(store);

    // The wrong CA: refused, and the error says why.
    let e = connect(&reach(&url, "localhost", &format!("sslmode=verify-full&sslrootcert={other}"))).await.unwrap_err();
    assert!(e.contains("certificate") && e.contains("UnknownIssuer"), "{e}");
    let e = connect(&reach(&url, "localhost", &format!("sslmode=verify-ca&sslrootcert={other}"))).await.unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");

    // A name the certificate does not carry: verify-full refuses, verify-ca (chain only) accepts.
    let e =
        connect(&reach(&url, "db.example.net", &format!("sslmode=verify-full&sslrootcert={ca}"))).await.unwrap_err();
    assert!(e.contains("certificate not valid for name \"db.example.net\""), "{e}");
    connect(&reach(&url, "db.example.net", &format!("sslmode=verify-ca&sslrootcert={ca}"))).await.unwrap();

    // require: encrypted without checking who answers.
    let store = connect(&reach(&url, "db.example.net", "sslmode=require")).await.unwrap();
    store.ping().await.unwrap();
    let seen = encrypted(&url).await;
    assert!(!seen.is_empty() && seen.iter().all(|s| *s), "{seen:?}");
    drop(store);

    // A bad mode is an error that does not quote the URL.
    let e = connect(&format!("{url}?sslmode=verify&password=hunter2")).await.unwrap_err();
    assert!(e.contains("sslmode=verify is not one of") && !e.contains("hunter2"), "{e}");
}
