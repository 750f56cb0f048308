//! SIGKILL in the middle of concurrent appends loses no acknowledged event.
//!
//! The real `logbook serve` runs as a child; eight clients append (singly and in small
//! batches) and record every acknowledged `seq`; the server is killed with SIGKILL at a random
//! moment and restarted, again and again. At the end every acknowledged event is in the log,
//! exactly once, at the `seq` it was acknowledged with, and `logbook verify` passes.
//!
//! Short form by default (5 kills); `LOGBOOK_CRASH_ROUNDS=200` for the long form.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use logbook_core::OrgSlug;
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;
use rand::Rng;
use serde_json::{json, Value};

struct Server {
    child: Child,
    base: String,
    _out: BufReader<std::process::ChildStdout>,
}

#[allow(clippy::zombie_processes)] // the caller kills and waits
fn start(dir: &Path) -> Server {
    let mut child = bin()
        .args(["serve", "--data-dir", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "server exited before listening");
        if let Some(addr) = line.trim().strip_prefix("Logbook is listening on ") {
            return Server { child, base: addr.to_owned(), _out: out };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_appends_loses_no_acknowledged_event() {
    let rounds: usize = std::env::var("LOGBOOK_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let seed: u64 = rand::thread_rng().gen();
    eprintln!("crash test: {rounds} rounds, seed {seed}");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["admin", "create-token", "--data-dir", dir.path().to_str().unwrap(), "--name", "crash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o).trim().to_owned();

    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    for round in 0..rounds {
        let mut server = start(dir.path());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..8 {
            let (client, base, token, acked, stop) =
                (client.clone(), server.base.clone(), token.clone(), acked.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let n = if c % 2 == 0 { 1 } else { 5 };
                    let names: Vec<String> = (0..n).map(|k| format!("c{c}-r{round}-{i}-{k}")).collect();
                    let body: Vec<Value> = names
                        .iter()
                        .map(|d| json!({"action": "login.success", "actor": {"type": "user", "id": d}, "details": d}))
                        .collect();
                    i += 1;
                    let Ok(resp) =
                        client.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&body).send().await
                    else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    if resp.status().as_u16() != 201 {
                        continue;
                    }
                    let Ok(v) = resp.json::<Value>().await else { continue };
                    let seqs: Vec<u64> = serde_json::from_value(v["seqs"].clone()).unwrap();
                    assert_eq!(seqs.len(), names.len());
                    acked.lock().unwrap().extend(names.into_iter().zip(seqs));
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
    }

    // A clean start and stop: the tail gets its checkpoint.
    let server = start(dir.path());
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut child = server.child;
    assert!(child.wait().unwrap().success(), "graceful shutdown exits 0");

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 50 * rounds, "the clients got work done: {} acknowledged", acked.len());
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let org = store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
    let size = store.log_head(org.id).await.unwrap().size;
    let rows = store.events(org.id, 0..size).await.unwrap();
    assert_eq!(rows.len() as u64, size, "gapless");
    let mut found: HashMap<String, Vec<u64>> = HashMap::new();
    for r in &rows {
        let e = logbook_core::leaf::decode(&r.leaf).unwrap();
        found.entry(e.body.details.clone()).or_default().push(r.seq);
    }
    for (name, seq) in &acked {
        assert_eq!(found.get(name), Some(&vec![*seq]), "acknowledged {name} at seq {seq}: present exactly once, there");
    }
    drop(store);
    let o = run(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    eprintln!("crash test: {} acknowledged events survived {rounds} kills; log size {size}", acked.len());
}
