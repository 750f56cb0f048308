//! Two `logbook serve` processes, each witnessed by its own `logbook witness serve` process:
//! every new checkpoint is cosigned and served with the witness's line; the delay from signing to
//! the stored cosignature is printed (docs/BENCHMARKS.md has the benchmark's figures).

#![allow(clippy::unwrap_used)]

mod common;

use common::{bin, run, start, start_witness, stderr, stdout, terminate, wait_until};
use logbook_core::{OrgSlug, OsRandom};
use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_integrity::cosignature::CosignatureVerifier;
use logbook_store::Store;

struct Installation {
    data: tempfile::TempDir,
    token: String,
    log_key: String,
    witness_key: String,
    witness: common::Server,
}

/// A data directory with an API token (and so the signing key and a first checkpoint), and a
/// witness process that knows the log.
fn install() -> Installation {
    let data = tempfile::tempdir().unwrap();
    let wdir = data.path().join("witness-host");
    let d = data.path().to_str().unwrap();
    let o = run(&["admin", "create-token", "--data-dir", d, "--name", "svc", "--actions", "login.*"]);
    assert!(o.status.success(), "create-token: {}", stderr(&o));
    let token = stdout(&o).trim().to_owned();
    let settings = logbook_server::Settings::new(data.path().to_owned());
    let log_key = logbook_server::keys::load_or_create(&settings, &OsRandom).unwrap().verifier_key().to_owned();
    let o = bin()
        .args(["witness", "add-log", "--origin", "logbook.local/default", "--key", &log_key, "--data-dir"])
        .arg(&wdir)
        .output()
        .unwrap();
    assert!(o.status.success(), "add-log: {}", stderr(&o));
    let witness = start_witness(&wdir);
    let o = bin().args(["witness", "key", "--data-dir"]).arg(&wdir).output().unwrap();
    assert!(o.status.success(), "witness key: {}", stderr(&o));
    let witness_key = stdout(&o).trim().to_owned();
    Installation { data, token, log_key, witness_key, witness }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logbooks_each_witnessed_serve_cosigned_checkpoints() {
    let installs = [install(), install()];
    let servers: Vec<_> = installs
        .iter()
        .map(|i| {
            let witness = format!("{}={}", i.witness.base, i.witness_key);
            start(&["--data-dir", i.data.path().to_str().unwrap(), "--witness", &witness])
        })
        .collect();
    let http = reqwest::Client::new();
    for round in 0..3 {
        for (n, (i, server)) in installs.iter().zip(&servers).enumerate() {
            let events: Vec<serde_json::Value> = (0..5)
                .map(|k| {
                    serde_json::json!({"action": "login.failed", "actor": {"type": "anonymous", "id": format!("p{n}r{round}e{k}")}})
                })
                .collect();
            let resp = http
                .post(format!("{}/api/v1/events", server.base))
                .bearer_auth(&i.token)
                .json(&events)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
            let size: u64 = resp.json::<serde_json::Value>().await.unwrap()["seqs"][4].as_u64().unwrap() + 1;
            // The served checkpoint of that size carries the witness's cosignature.
            let note = wait_until(&format!("process {n}: the cosigned checkpoint of size {size}"), || async {
                let resp = http.get(format!("{}/api/v1/checkpoint", server.base)).send().await.ok()?;
                let cosigned = resp.headers().get("logbook-witness-quorum")?.to_str().ok()?.starts_with("reached");
                let note = resp.text().await.ok()?;
                let at: u64 = note.lines().nth(1)?.parse().ok()?;
                (cosigned && at >= size).then_some(note)
            })
            .await;
            CheckpointVerifier::new(&i.log_key).unwrap().verify(&note).unwrap();
            CosignatureVerifier::new(&i.witness_key).unwrap().verify_note(&note).unwrap();
            // The delay from signing to the stored cosignature, read from the store itself.
            let store = logbook_store_sqlite::SqliteStore::open(i.data.path()).await.unwrap();
            let org = store.org(&OrgSlug::default_org()).await.unwrap().unwrap();
            let at: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            let cp = store.checkpoints(org.id).await.unwrap().into_iter().find(|c| c.size == at).unwrap();
            let cosig = store.cosignatures(org.id, at).await.unwrap().pop().unwrap();
            let delay = (cosig.received_at.as_micros() - cp.signed_at.as_micros()) as f64 / 1e3;
            println!("process {n}, round {round}: checkpoint {at} cosigned {delay:.1} ms after it was signed");
            assert!(delay < 30_000.0, "cosigned {delay} ms after signing");
        }
    }
    for s in servers {
        terminate(s);
    }
    for i in installs {
        let mut w = i.witness;
        w.child.kill().unwrap();
        w.child.wait().unwrap();
    }
}
