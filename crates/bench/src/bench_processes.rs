//! Part of `logbook-bench append --postgres`: single-event appends from many concurrent clients over
//! HTTP, through two real `logbook serve` processes sharing one PostgreSQL database, next to
//! the same clients committing the same rows one transaction each straight into PostgreSQL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use logbook_core::{NewEvent, OrgSlug};
use logbook_store::Store;

use crate::bench::{drop_pg_database, fresh_pg_database, rate, sample_event, BenchArgs, RawRow};

/// A `logbook serve` child, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// SIGTERM (queued events committed, final checkpoint signed), then waits for the exit.
    fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `logbook` binary: `--logbook-bin`, or the one beside this binary (both are built into
/// the same target directory).
fn logbook(a: &BenchArgs) -> anyhow::Result<Command> {
    let path = match &a.logbook_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("finding this binary")?
            .with_file_name(format!("logbook{}", std::env::consts::EXE_SUFFIX)),
    };
    anyhow::ensure!(
        path.is_file(),
        "no logbook binary at {} (build it with `cargo build --release -p logbook`, or pass --logbook-bin)",
        path.display()
    );
    let mut c = Command::new(path);
    c.env("LOGBOOK_LOG", "warn").env_remove("LOGBOOK_DATABASE_URL").env_remove("LOGBOOK_DATA_DIR");
    Ok(c)
}

/// Starts `logbook serve` on a free port and waits for its "listening" line.
fn serve(a: &BenchArgs, url: &str, data_dir: &std::path::Path) -> anyhow::Result<Server> {
    let mut child = logbook(a)?
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url, "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting logbook serve")?;
    let out = child.stdout.take().context("the server's stdout")?;
    let mut lines = BufReader::new(out).lines();
    let base = loop {
        let line = lines.next().context("logbook serve exited before listening")??;
        if let Some(addr) = line.strip_prefix("Logbook is listening on ") {
            break addr.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok(Server { child, base })
}

/// The ingestion API's JSON for a sample event.
fn body(e: &NewEvent) -> serde_json::Value {
    serde_json::json!({
        "action": e.action.code(),
        "actor": {"type": "user", "id": e.actor.id, "email": e.actor.email},
        "target": e.target.as_ref().map(|t| serde_json::json!({"type": t.kind, "id": t.id, "display": t.display})),
        "details": e.details,
        "fields": e.fields,
        "outcome": if e.outcome == logbook_core::Outcome::Failure { "failure" } else { "success" },
        "source": {"ip": e.source.ip.map(|ip| ip.to_string()), "user_agent": e.source.user_agent},
    })
}

/// `clients` concurrent single-row transactions into a fresh database with Logbook's schema,
/// each client its own connection: PostgreSQL's own commit rate for this shape of load.
async fn raw_single_commits(admin: &str, rows: &[RawRow], clients: u64, per: u64) -> anyhow::Result<Duration> {
    let url = fresh_pg_database(admin, "rawsingle").await?;
    drop(logbook_store_postgres::PgStore::connect(&url).await?);
    let mut conns = Vec::new();
    for _ in 0..clients {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        conns.push(client);
    }
    let rows = Arc::new(rows.to_vec());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (c, client) in conns.into_iter().enumerate() {
        let rows = rows.clone();
        tasks.push(tokio::spawn(async move {
            let insert = client
                .prepare(
                    "INSERT INTO events (org, seq, time_us, action, \"user\", leaf, leaf_hash)
                     VALUES (1, $1, $2, $3, $4, $5, $6)",
                )
                .await?;
            for k in 0..per {
                let seq = c as u64 * per + k;
                let r = &rows[seq as usize % rows.len()];
                client.execute(&insert, &[&(seq as i64), &r.0, &r.1, &r.2, &r.3, &&r.4[..]]).await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let took = started.elapsed();
    drop_pg_database(admin, &url).await;
    Ok(took)
}

/// `clients` HTTP clients appending `per` single events each through `processes` fresh
/// `logbook serve` processes on a fresh database; checks the one log they made (gapless, of the
/// right size, accepted by `logbook verify`) and returns the time the appends took.
async fn http_appends(
    a: &BenchArgs,
    admin: &str,
    processes: usize,
    clients: u64,
    per: u64,
) -> anyhow::Result<Duration> {
    let n = clients * per;
    let url = fresh_pg_database(admin, &format!("http{processes}")).await?;
    let keys = tempfile::tempdir()?;
    let token = logbook(a)?
        .args([
            "admin",
            "create-token",
            "--database-url",
            &url,
            "--name",
            "bench",
            "--actions",
            "login.*,logout,protected_user.*,user.*",
            "--data-dir",
        ])
        .arg(keys.path())
        .output()?;
    anyhow::ensure!(token.status.success(), "create-token: {}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout)?.trim().to_owned();
    let store = logbook_store_postgres::PgStore::connect(&url).await?;
    let org = store.org(&OrgSlug::default_org()).await?.context("the default organization")?;
    // Creating the token is itself recorded.
    let before = store.log_head(org.id).await?.size;
    drop(store);
    let servers = (0..processes).map(|_| serve(a, &url, keys.path())).collect::<anyhow::Result<Vec<_>>>()?;
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();

    let http = reqwest::Client::builder().pool_max_idle_per_host(clients as usize).build()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (http, token) = (http.clone(), token.clone());
        let base = bases[c as usize % bases.len()].clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..per {
                let e = sample_event(c * 1_000_003 + k);
                let resp =
                    http.post(format!("{base}/api/v1/events")).bearer_auth(&token).json(&body(&e)).send().await?;
                anyhow::ensure!(resp.status() == 201, "append answered {}: {}", resp.status(), resp.text().await?);
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let took = started.elapsed();
    // Stop cleanly (SIGTERM: final checkpoints), then verify the one log they made.
    servers.into_iter().for_each(Server::stop);
    let store = logbook_store_postgres::PgStore::connect(&url).await?;
    let size = store.log_head(org.id).await?.size;
    drop(store);
    anyhow::ensure!(size == before + n, "expected {before} + {n} events, the log has {size}");
    let verify = logbook(a)?.args(["verify", "--database-url", &url, "--data-dir"]).arg(keys.path()).output()?;
    anyhow::ensure!(verify.status.success(), "verify: {}", String::from_utf8_lossy(&verify.stdout));
    drop_pg_database(admin, &url).await;
    Ok(took)
}

pub async fn two_processes(a: &BenchArgs, admin: &str, rows: &[RawRow]) -> anyhow::Result<()> {
    let (clients, per) = (a.appenders, a.per_appender);
    let n = clients * per;
    println!("## `logbook serve` processes on one PostgreSQL database, {clients} HTTP clients appending single events");
    println!();
    let raw = raw_single_commits(admin, rows, clients, per).await?;
    let one = http_appends(a, admin, 1, clients, per).await?;
    let two = http_appends(a, admin, 2, clients, per).await?;
    println!("| measurement | events/s | vs. raw |");
    println!("|---|---:|---:|");
    println!(
        "| raw: {clients} connections, one INSERT + COMMIT per row (same rows, same schema) | {:.0} | 1.00 |",
        rate(n, raw)
    );
    for (processes, took) in [(1, one), (2, two)] {
        println!(
            "| Logbook: {clients} HTTP clients, one event per request, {processes} `logbook serve` process(es) | {:.0} | {:.2} |",
            rate(n, took),
            raw.as_secs_f64() / took.as_secs_f64()
        );
    }
    println!();
    println!(
        "{n} events per Logbook run, each run on a fresh database; each ended with one gapless log that `logbook verify` accepts."
    );
    println!();
    Ok(())
}
