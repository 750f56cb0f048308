//! `logbook-bench query`: the audit log's reads on a store filled by the demo scenario through
//! the real append path: first pages of each filter kind, a deep page against the first, the
//! free-text backfill, export speed and memory, and the HTTP API against the same query made
//! directly on the store, in one run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use logbook_core::{Clock, ManualClock, OrgSlug, OsRandom, SystemClock, Timestamp};
use logbook_log::export::{seq_range, EventView};
use logbook_log::{LogConfig, LogService};
use logbook_server::{Application, Settings};
use logbook_store::{EventFilter, Store};

#[derive(Debug, Args)]
pub struct BenchQueryArgs {
    /// Demo events in the measured store.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Requests per measured query (p50 and p99 are over these).
    #[arg(long, default_value_t = 200)]
    pub runs: usize,
    /// Where the SQLite store is made (a fresh directory inside it; removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Measure PostgreSQL instead: an admin URL where a fresh database may be created.
    #[arg(long)]
    pub postgres: Option<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `f` `runs` times (after one warm-up) and returns (p50, p99).
async fn percentiles<F, Fut>(runs: usize, mut f: F) -> anyhow::Result<(Duration, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    f().await?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f().await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((times[times.len() / 2], times[(times.len() * 99 / 100).min(times.len() - 1)]))
}

/// Peak resident memory of this process since the last [`reset_peak_rss`], in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the kernel's peak-RSS mark (Linux: writing 5 to clear_refs).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub async fn run(a: BenchQueryArgs) -> anyhow::Result<ExitCode> {
    let parent = a.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new().prefix("logbook-bench-query-").tempdir_in(&parent)?;
    let (store, backend, pg_url): (Arc<dyn Store>, &str, Option<String>) = match &a.postgres {
        Some(admin) => {
            let url = crate::bench::fresh_pg_database(admin, "query").await?;
            (Arc::new(logbook_store_postgres::PgStore::connect(&url).await?), "PostgreSQL", Some(url))
        }
        None => (Arc::new(logbook_store_sqlite::SqliteStore::open(work.path()).await?), "SQLite", None),
    };
    println!("# logbook-bench query ({backend})");
    println!();
    println!(
        "command: `logbook-bench query --events {} --runs {}{}`",
        a.events,
        a.runs,
        if a.postgres.is_some() { " --postgres …" } else { "" }
    );
    println!("machine: {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!();

    // Fill exactly as `logbook demo --events N` does (180 days, seed 1).
    let mut settings = Settings::new(work.path().to_owned());
    settings.listen = "127.0.0.1:0".parse()?;
    let signer = settings.signing_key().load_or_create(&OsRandom)?;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let log = LogService::new(store.clone(), clock.clone(), Arc::new(OsRandom), Arc::new(signer), LogConfig::default());
    let org = log.org(&OrgSlug::default_org()).await?;
    let started = Instant::now();
    logbook::demo::fill(&log, &org, &clock, a.events, 180, 1, &|_| {}).await?;
    let fill = started.elapsed();
    clock.set(SystemClock.now());
    log.shutdown().await;
    drop(log);
    println!(
        "filled with `logbook demo`'s scenario through the append path: {} events in {:.1} s ({:.0} events/s)",
        a.events,
        fill.as_secs_f64(),
        a.events as f64 / fill.as_secs_f64()
    );
    println!();

    // The free-text index, built as the background indexer builds it (also the backfill rate
    // of a store upgraded from before search existed).
    let started = Instant::now();
    while store.index_search_text(org.id, logbook_log::search::BATCH).await? > 0 {}
    let indexing = started.elapsed();
    println!(
        "free-text index backfill: {} events in {:.1} s (**{:.0} events/s**)",
        a.events,
        indexing.as_secs_f64(),
        a.events as f64 / indexing.as_secs_f64()
    );
    println!();

    // A bulk load leaves PostgreSQL without statistics until autovacuum's ANALYZE runs; without
    // them it may plan a page as a full scan. Measure what a settled database does.
    if let Some(url) = &pg_url {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let conn = tokio::spawn(conn);
        client.batch_execute("ANALYZE").await?;
        drop(client);
        let _ = conn.await;
        println!("ran ANALYZE after the bulk load (autovacuum does the same on its own schedule)");
        println!();
    }

    let tz = jiff::tz::TimeZone::UTC;
    let head = store.log_head(org.id).await?;
    let last = head.last_time.context("the store is empty")?;
    let week =
        seq_range(&*store, &org, Some(Timestamp::from_micros(last.as_micros() - 7 * 86_400_000_000)), None).await?;
    let user = "ada@acme.example".to_owned();
    let two_actions = vec!["login.failed".to_owned(), "user.role_updated".to_owned()];
    let kinds: Vec<(&str, EventFilter, String)> = vec![
        ("no filter", EventFilter::default(), String::new()),
        ("user", EventFilter { user: Some(user.clone()), ..Default::default() }, "user=ada%40acme.example".into()),
        (
            "two actions",
            EventFilter { actions: two_actions.clone(), ..Default::default() },
            "action=login.failed&action=user.role_updated".into(),
        ),
        ("7-day range", EventFilter { seqs: week.clone(), ..Default::default() }, String::new()),
        (
            "substring \"role changed\"",
            EventFilter { text: Some("role changed".into()), ..Default::default() },
            "q=role%20changed".into(),
        ),
        (
            "substring \"vip123@\" (rare)",
            EventFilter { text: Some("vip123@".into()), ..Default::default() },
            "q=vip123%40".into(),
        ),
        (
            "substring \"zq\" (2 chars: bounded scan)",
            EventFilter { text: Some("zq".into()), ..Default::default() },
            "q=zq".into(),
        ),
        (
            "all combined (user, two actions, 7 days, \"admin\")",
            EventFilter {
                user: Some(user.clone()),
                actions: two_actions.clone(),
                seqs: week.clone(),
                text: Some("admin".into()),
            },
            String::new(),
        ),
    ];
    println!("## First page (50 events, newest first), directly on the store, {} runs each", a.runs);
    println!();
    println!("| filter | rows | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for (name, filter, _) in &kinds {
        let rows = store.query_events(org.id, filter, u64::MAX, 50).await?.rows.len();
        let (p50, p99) = percentiles(a.runs, || async {
            store.query_events(org.id, filter, u64::MAX, 50).await?;
            Ok(())
        })
        .await?;
        println!("| {name} | {rows} | {:.3} | {:.3} |", ms(p50), ms(p99));
    }
    println!();

    // Page 1,000 against page 1: walk to it with the keyset cursor, then time both.
    println!("## Page 1,000 against page 1 (50 events a page)");
    println!();
    println!("| filter | page 1 p50 ms | page 1,000 p50 ms | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, filter, _) in
        kinds.iter().filter(|k| k.0 == "no filter" || k.0 == "two actions" || k.0.starts_with("substring \"role"))
    {
        let mut before = u64::MAX;
        let mut reached = true;
        for _ in 0..999 {
            match store.query_events(org.id, filter, before, 50).await?.next_before {
                Some(b) => before = b,
                None => {
                    reached = false;
                    break;
                }
            }
        }
        if !reached {
            println!("| {name} | | fewer than 1,000 pages | |");
            continue;
        }
        let (p1, _) = percentiles(a.runs, || async {
            store.query_events(org.id, filter, u64::MAX, 50).await?;
            Ok(())
        })
        .await?;
        let (p1000, _) = percentiles(a.runs, || async {
            store.query_events(org.id, filter, before, 50).await?;
            Ok(())
        })
        .await?;
        println!("| {name} | {:.3} | {:.3} | {:.2} |", ms(p1), ms(p1000), p1000.as_secs_f64() / p1.as_secs_f64());
    }
    println!();

    // The HTTP API on the same store, against the same query made directly plus the JSON view.
    let app = Application::build(&settings, store.clone(), Arc::new(SystemClock), Arc::new(OsRandom)).await?;
    let base = format!("http://{}", app.local_addr());
    // Read as a signed-in auditor, as the console does: every request checks the session.
    let password = "bench reader passphrase, not a real one";
    let reader = format!("bench-reader-{}@example.com", std::process::id());
    app.accounts().create_user_as_operator(&reader, logbook_core::Role::Auditor, password).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    let client = reqwest::Client::new();
    let signed_in = client
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"email": reader, "password": password}))
        .send()
        .await?;
    anyhow::ensure!(signed_in.status().is_success(), "sign-in: {}", signed_in.status());
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("no session cookie")?
        .to_owned();
    println!("## HTTP API against the same query directly on the store ({} runs each)", a.runs);
    println!();
    println!("Direct: `Store::query_events` plus building the JSON view of each row. API: `GET /api/v1/events?limit=50&…` over loopback HTTP/1.1 with keep-alive, body read.");
    println!();
    println!("| filter | direct p50 ms | API p50 ms | API p99 ms | ratio (p50) |");
    println!("|---|---:|---:|---:|---:|");
    let labels = logbook_log::export::ActionLabels::default();
    for (name, filter, query) in kinds.iter().filter(|k| !k.2.is_empty() || k.0 == "no filter") {
        let (d50, _) = percentiles(a.runs, || async {
            let page = store.query_events(org.id, filter, u64::MAX, 50).await?;
            let views: Vec<EventView> =
                page.rows.iter().map(|r| EventView::from_row(r, &tz, &labels)).collect::<Result<_, _>>()?;
            serde_json::to_vec(&views)?;
            Ok(())
        })
        .await?;
        let url = format!("{base}/api/v1/events?limit=50&{query}");
        let (h50, h99) = percentiles(a.runs, || async {
            let r = client.get(&url).header("cookie", &cookie).send().await?;
            anyhow::ensure!(r.status().is_success(), "{}", r.status());
            r.bytes().await?;
            Ok(())
        })
        .await?;
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.2} |",
            ms(d50),
            ms(h50),
            ms(h99),
            h50.as_secs_f64() / d50.as_secs_f64()
        );
    }
    println!();

    // Export: every event as CSV through the API, read and discarded as it streams.
    println!("## Export through the API (CSV, every event)");
    println!();
    for (name, query) in [("CSV, no filter", "format=csv"), ("NDJSON, no filter", "format=ndjson")] {
        let reset = reset_peak_rss();
        let rss_before = peak_rss_kib().unwrap_or(0);
        let started = Instant::now();
        let mut resp =
            client.get(format!("{base}/api/v1/events/export?{query}")).header("cookie", &cookie).send().await?;
        anyhow::ensure!(resp.status().is_success(), "export: {}", resp.status());
        let (mut bytes, mut lines) = (0u64, 0u64);
        while let Some(chunk) = resp.chunk().await? {
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        let took = started.elapsed();
        let rss_after = peak_rss_kib().unwrap_or(0);
        let rows = if query.contains("csv") { lines.saturating_sub(1) } else { lines };
        println!(
            "- {name}: {rows} rows, {:.0} MB in {:.1} s: **{:.0} rows/s**; peak RSS {} (before {:.1} MiB, peak during {:.1} MiB)",
            bytes as f64 / 1e6,
            took.as_secs_f64(),
            rows as f64 / took.as_secs_f64(),
            if reset { format!("growth {:.1} MiB", (rss_after.saturating_sub(rss_before)) as f64 / 1024.0) } else { "not resettable here".into() },
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
        );
    }
    println!();
    let _ = stop_tx.send(());
    server.await??;
    drop(store);
    if let (Some(admin), Some(url)) = (&a.postgres, &pg_url) {
        crate::bench::drop_pg_database(admin, url).await;
    }
    Ok(ExitCode::SUCCESS)
}
