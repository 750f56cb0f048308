//! Batched ingest with two C2SP witnesses configured against the same without, alternating in
//! one run, and the delay from signing a checkpoint to storing each witness's cosignature.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use logbook_core::{OrgSlug, OsRandom, SystemClock};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_log::cosigning::WitnessEndpoint;
use logbook_log::{LogConfig, LogService};
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;

use crate::bench::BenchArgs;

/// A witness in this process, on port 0, knowing the log of `key`.
struct Witness {
    endpoint: WitnessEndpoint,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn witness(dir: &Path, n: usize, origin: &str, log_key: &str) -> anyhow::Result<Witness> {
    let w = logbook_witness::Witness::open(dir, Some(&format!("bench-witness-{n}")), Arc::new(SystemClock), &OsRandom)
        .map_err(|e| anyhow::anyhow!("witness: {e}"))?;
    w.state().add_log(origin, log_key, 0).map_err(|e| anyhow::anyhow!("witness add-log: {e}"))?;
    let key = w.signer().verifier_key().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(logbook_witness::http::serve(listener, Arc::new(w), async move {
        let _ = rx.await;
    }));
    Ok(Witness { endpoint: WitnessEndpoint { url, key }, stop })
}

/// One round: a fresh store, `witnesses` of them configured; the batched rate, and the delays
/// from signing to cosignature of every checkpoint cosigned by the end.
async fn round(a: &BenchArgs, dir: &Path, witnesses: usize) -> anyhow::Result<(f64, Vec<Duration>)> {
    std::fs::create_dir_all(dir)?;
    let store = Arc::new(SqliteStore::open(dir).await?);
    let signer = Arc::new(CheckpointSigner::generate(&OsRandom, "bench")?);
    let origin = logbook_log::origin("logbook.local", &OrgSlug::default_org());
    let mut ws = Vec::new();
    for n in 0..witnesses {
        ws.push(witness(&dir.join(format!("witness-{n}")), n, &origin, signer.verifier_key()).await?);
    }
    let config = LogConfig { witnesses: ws.iter().map(|w| w.endpoint.clone()).collect(), ..LogConfig::default() };
    let log = LogService::new(store.clone(), Arc::new(SystemClock), Arc::new(OsRandom), signer, config);
    let org = log.org(&OrgSlug::default_org()).await?;
    log.start_witnesses();
    let r = crate::bench::append_batched(&log, &org, a).await?;
    // The last checkpoint, and its cosignatures (the witnesses are on this host: seconds at most).
    let mut signed = log.checkpointed();
    signed.wait_for(|m| m.get(&org.id) >= Some(&a.events)).await?;
    let mut delays = Vec::new();
    if witnesses > 0 {
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.cosignatures(org.id, a.events).await?.len() < witnesses {
            anyhow::ensure!(Instant::now() < deadline, "the last checkpoint was not cosigned within 60 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for cp in store.checkpoints(org.id).await? {
            for c in store.cosignatures(org.id, cp.size).await? {
                let us = (c.received_at.as_micros() - cp.signed_at.as_micros()).max(0);
                delays.push(Duration::from_micros(us as u64));
            }
        }
    }
    log.shutdown().await;
    for w in ws {
        let _ = w.stop.send(());
    }
    Ok((r, delays))
}

pub async fn section(a: &BenchArgs, dir: &Path) -> anyhow::Result<()> {
    println!("## Batched ingest with two witnesses");
    println!();
    println!(
        "{} events in batches of {}, each round on a fresh SQLite store; two witnesses (`logbook_witness`, in this process, on loopback) configured or none, alternating:",
        a.events, a.batch
    );
    println!();
    println!("| round | no witness events/s | two witnesses events/s | ratio |");
    println!("|---|---:|---:|---:|");
    let mut ratios = Vec::new();
    let mut delays = Vec::new();
    for r in 0..a.rounds {
        let (without, _) = round(a, &dir.join(format!("nowitness-{r}")), 0).await.context("round without witnesses")?;
        let (with, d) = round(a, &dir.join(format!("witnessed-{r}")), 2).await.context("round with witnesses")?;
        delays.extend(d);
        println!("| {} | {without:.0} | {with:.0} | {:.3} |", r + 1, with / without);
        ratios.push(with / without);
    }
    ratios.sort_by(|x, y| x.total_cmp(y));
    delays.sort();
    println!();
    println!("**Median ratio: {:.3}** of the rate without witnesses.", ratios[ratios.len() / 2]);
    println!();
    if !delays.is_empty() {
        let at = |q: usize| delays[(delays.len() * q / 100).min(delays.len() - 1)].as_secs_f64() * 1e3;
        println!(
            "Cosignature latency, from signing a checkpoint to storing a witness's verified cosignature ({} cosignatures): **p50 {:.1} ms, p99 {:.1} ms**, max {:.1} ms",
            delays.len(),
            at(50),
            at(99),
            delays[delays.len() - 1].as_secs_f64() * 1e3
        );
        println!();
    }
    Ok(())
}
