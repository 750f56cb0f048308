//! The server's life: health and metrics, the final checkpoint at shutdown, the signing key.

use std::sync::Arc;

use logbook_core::{OrgSlug, SeededRandom, SystemClock};
use logbook_server::{Application, Settings};
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;
use logbook_test_support::on_both_stores;

use crate::helpers::{login_failed, ApiApp};

on_both_stores!(
    fixture = crate::helpers::reader;
    health_and_metrics,
    shutdown_commits_and_signs_a_final_checkpoint,
);

async fn health_and_metrics(app: ApiApp) {
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

async fn shutdown_commits_and_signs_a_final_checkpoint(app: ApiApp) {
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
    settings.signing_key_file = Some(configured.clone());

    // One that its group or others may read is refused at start, naming the file and the fix.
    std::fs::set_permissions(&configured, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
    let err = Application::build(&settings, store, Arc::new(SystemClock), Arc::new(SeededRandom::new(5)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("configured.key") && err.contains("chmod 600"), "{err}");

    std::fs::set_permissions(&configured, std::fs::Permissions::from_mode(0o600)).unwrap();
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
