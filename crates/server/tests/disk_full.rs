//! A real full disk: the SQLite store on a small tmpfs, filled until SQLite itself answers
//! SQLITE_FULL. Appends get a clear 503 that says so, `/readyz` turns unhealthy, nothing
//! acknowledged is lost, and once space is freed the same process takes appends again.
//!
//! Mounting needs root (CI runs as root); elsewhere the test reports its skip
//! (`logbook_test_support::skip`), or fails if `LOGBOOK_REQUIRE_MOUNT` is set.

#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use logbook_core::leaf;
use logbook_store::Store;
use logbook_test_support::{skip, Backend, Needs, TestApp};
use serde_json::{json, Value};

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Self { path: dir.path().to_owned(), _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fills the disk with a ballast file, then frees `leave` bytes of it.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("ballast");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(_) => break,
        }
    }
    let _ = f.flush();
    f.set_len(written.saturating_sub(leave)).unwrap();
    f.sync_all().unwrap();
    path
}

fn batch(round: u64) -> Value {
    Value::Array(
        (0..50)
            .map(|i| {
                json!({
                    "action": "login.failed",
                    "actor": {"type": "anonymous", "id": format!("guess{round}-{i}@example.com")},
                    "details": format!("Invalid password, attempt {round}-{i} {}", "x".repeat(200)),
                    "outcome": "failure",
                    "source": {"ip": "203.0.113.9", "user_agent": "disk-full-test"}
                })
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_a_clear_error_loses_nothing_and_recovers() {
    let disk = match SmallDisk::mount("16m") {
        Ok(d) => d,
        Err(why) => return skip(Needs::Mount, &format!("needs root to mount a tmpfs ({why})")),
    };
    let mut app = TestApp::builder(Backend::Sqlite)
        .data_dir(disk.path.clone())
        .seed(5)
        .settings(|s| {
            s.checkpoint_interval = Duration::from_millis(50);
            // Nothing but the store on the small disk.
            s.witness_dir = None;
        })
        .spawn()
        .await
        .unwrap();
    let base = app.base.clone();
    let token = app.create_token("svc").await;
    let org = app.org().await;
    let store = app.store.clone();
    let http = reqwest::Client::new();
    let ballast = fill(&disk.path, 1024 * 1024);

    // Append until the disk is full.
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut full = None;
    for round in 0..2_000u64 {
        let body = batch(round);
        let resp = http.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        if status == 201 {
            for (seq, e) in answer["seqs"].as_array().unwrap().iter().zip(body.as_array().unwrap()) {
                acked.push((seq.as_u64().unwrap(), e["details"].as_str().unwrap().to_owned()));
            }
            continue;
        }
        let refused: Vec<String> =
            body.as_array().unwrap().iter().map(|e| e["details"].as_str().unwrap().to_owned()).collect();
        full = Some((status, answer, refused));
        break;
    }
    let (status, answer, refused) = full.expect("the disk filled up");
    assert_eq!(status, 503, "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("disk is full") && message.contains("nothing was stored"), "{message}");
    assert!(acked.len() > 100, "some events were stored before the disk filled: {}", acked.len());
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready while the disk is full");

    // Space again: the same process takes appends, and says it is ready.
    std::fs::remove_file(&ballast).unwrap();
    let resp = http.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&batch(9_999)).send().await.unwrap();
    assert_eq!(resp.status(), 201, "appends work again once there is space");
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    app.begin_shutdown();
    app.stopped().await.unwrap();

    // Every acknowledged event is there, at its seq.
    let size = store.log_head(org.id).await.unwrap().size;
    let rows = store.events(org.id, 0..size).await.unwrap();
    for (seq, details) in &acked {
        assert_eq!(&leaf::decode(&rows[*seq as usize].leaf).unwrap().body.details, details, "seq {seq}");
    }
    // And the refused batch ("nothing was stored") is not.
    let stored: std::collections::HashSet<String> =
        rows.iter().map(|r| leaf::decode(&r.leaf).unwrap().body.details).collect();
    assert!(refused.iter().all(|d| !stored.contains(d)), "a batch answered 'nothing was stored' is not in the log");
    eprintln!("disk full after {} acknowledged events; log size {size}", acked.len());
}
