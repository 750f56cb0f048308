//! A store that already holds signed checkpoints is never given a freshly generated key: a
//! command run without the key that signed them refuses, instead of signing with a stray one.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Instant;

use common::{bin, fresh_database, stderr};
use logbook_test_support::PATIENCE;

const KEY: &str = "checkpoint-signing.key";

fn create_token(data_dir: &Path, url: Option<&str>, extra: &[&str]) -> std::process::Output {
    let mut cmd = bin();
    // Each call names a new token: the names are unique.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("svc{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    cmd.args(["admin", "create-token", "--name", &name, "--data-dir"]).arg(data_dir).args(extra);
    if let Some(u) = url {
        cmd.env("LOGBOOK_DATABASE_URL", u);
    }
    cmd.output().unwrap()
}

fn assert_refused(out: &std::process::Output, key_dir: &Path) {
    assert!(!out.status.success(), "refused");
    let err = stderr(out);
    assert!(err.contains("already holds checkpoints signed by"), "{err}");
    assert!(err.contains("--signing-key-file"), "says what to do: {err}");
    assert!(!key_dir.join(KEY).exists(), "no stray key was written");
}

#[test]
fn a_store_with_checkpoints_gets_no_new_key_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    assert!(create_token(data, None, &[]).status.success());
    let key = std::fs::read(data.join(KEY)).unwrap();
    std::fs::remove_file(data.join(KEY)).unwrap();

    assert_refused(&create_token(data, None, &[]), data);

    // `serve` refuses too, at once.
    let mut serve = bin()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while serve.try_wait().unwrap().is_none() {
        if started.elapsed() > PATIENCE {
            serve.kill().unwrap();
            panic!("serve started with a new key on a store that has checkpoints");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = serve.wait_with_output().unwrap();
    assert_refused(&out, data);

    // With its key back, the store works again.
    let kept = dir.path().join("kept.key");
    std::fs::write(&kept, &key).unwrap();
    std::fs::set_permissions(&kept, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = create_token(data, None, &["--signing-key-file", kept.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_checkpoints_gets_no_new_key_postgres() {
    let Some(url) = fresh_database().await else { return };
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert!(create_token(first.path(), Some(&url), &[]).status.success());
    // Another host's data directory, without the key, on the same database.
    assert_refused(&create_token(second.path(), Some(&url), &[]), second.path());
    let key = first.path().join(KEY);
    let out = create_token(second.path(), Some(&url), &["--signing-key-file", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
}
