//! `logbook-bench append`: append, verify and proof speed, each next to the raw engine measured in the
//! same run on the same disk, so that ratios hold on a noisy machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use logbook_core::{
    leaf, Action, Actor, ActorKind, Event, EventId, NewEvent, OrgSlug, OsRandom, Outcome, Random, Source, SystemClock,
    Target, Timestamp,
};
use logbook_integrity::checkpoint::CheckpointSigner;
use logbook_integrity::record_hash;
use logbook_log::{LogConfig, LogService};
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;
use rusqlite::params;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Events for the batched-ingest measurements (Logbook and each raw-engine variant).
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
    /// Events per append call in the batched measurement (and per raw transaction).
    #[arg(long, default_value_t = 1000)]
    pub batch: u64,
    /// Concurrent single-event appenders.
    #[arg(long, default_value_t = 64)]
    pub appenders: u64,
    /// Events each concurrent appender appends.
    #[arg(long, default_value_t = 300)]
    pub per_appender: u64,
    /// Size of the log for the proof and large-verify measurements (0: skip).
    #[arg(long, default_value_t = 1_000_000)]
    pub proof_log: u64,
    /// Where the stores are made (a fresh directory inside it; removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Alternating rounds of raw engine and Logbook for the ratio (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: u64,
    /// Also measure the PostgreSQL store: an admin URL of a server where fresh databases may be
    /// created (e.g. postgres://postgres@127.0.0.1:5432/postgres).
    #[arg(long)]
    pub postgres: Option<String>,
    /// The `logbook` binary the process benchmarks start. [default: the one beside this binary]
    #[arg(long, value_name = "PATH")]
    pub logbook_bin: Option<PathBuf>,
    /// Skip the raw-engine baselines (for profiling Logbook's own path only).
    #[arg(long, hide = true)]
    pub skip_raw: bool,
}

/// Realistic events: a few dozen users, bursts of failed sign-ins, admin changes.
pub(crate) fn sample_event(i: u64) -> NewEvent {
    let user = i.wrapping_mul(2_654_435_761) % 48;
    let (action, details, outcome) = match i % 10 {
        0..=4 => (Action::LoginSuccess, "Method: password + TOTP", Outcome::Success),
        5 | 6 => (Action::LoginFailed, "Invalid password", Outcome::Failure),
        7 => (Action::Logout, "Signed out", Outcome::Success),
        8 => (Action::ProtectedUserAdded, "Protected user added", Outcome::Success),
        _ => (Action::UserRoleUpdated, "Role changed from Auditor to Analyst", Outcome::Success),
    };
    NewEvent {
        action: action.into(),
        actor: Actor {
            kind: ActorKind::User,
            id: format!("usr_{user:04}"),
            email: Some(format!("person{user}@example.com")),
        },
        target: (i % 10 >= 8).then(|| Target {
            kind: "protected_user".into(),
            id: format!("pu_{}", i % 997),
            display: format!("vip{}@example.com", i % 997),
        }),
        details: details.into(),
        fields: [("method".to_string(), "password".to_string())].into(),
        outcome,
        source: Source {
            via: None,
            ip: Some([198, 51, (i % 200) as u8, (i % 250) as u8].into()),
            user_agent: Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0".into(),
            ),
        },
        recorded_by: "bench".into(),
    }
}

pub(crate) fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn service(dir: &Path) -> anyhow::Result<(Arc<LogService>, logbook_store::Org, Arc<SqliteStore>)> {
    let store = Arc::new(SqliteStore::open(dir).await?);
    let signer = Arc::new(CheckpointSigner::generate(&OsRandom, "bench")?);
    let log = LogService::new(store.clone(), Arc::new(SystemClock), Arc::new(OsRandom), signer, LogConfig::default());
    let org = log.org(&OrgSlug::default_org()).await?;
    Ok((log, org, store))
}

#[derive(Clone, Copy, Debug)]
enum Raw {
    PrimaryKeyOnly,
    PlusUserIndex,
    Full,
    FullPlusFts,
}

impl Raw {
    fn label(self) -> &'static str {
        match self {
            Raw::PrimaryKeyOnly => "raw: events primary key only",
            Raw::PlusUserIndex => "raw: + user index",
            Raw::Full => "raw: + action index (Logbook's schema)",
            Raw::FullPlusFts => "raw: Logbook's schema + FTS5 trigram in the same commit",
        }
    }
}

/// The bare loop: the same rows into the same tables, one transaction per batch, WAL and
/// synchronous=FULL, with nothing of Logbook in between.
/// One pre-encoded row: time, action, user, leaf, leaf hash, search text.
pub(crate) type RawRow = (i64, String, String, Vec<u8>, [u8; 32], String);

fn raw_ingest(dir: &Path, variant: Raw, rows: &[RawRow], batch: usize) -> anyhow::Result<Duration> {
    let path = dir.join(format!("raw-{variant:?}.db"));
    let mut conn = rusqlite::Connection::open(&path)?;
    logbook_store_sqlite::configure(&conn)?;
    logbook_store_sqlite::migrate(&mut conn)?;
    match variant {
        Raw::PrimaryKeyOnly => conn.execute_batch("DROP INDEX events_by_user; DROP INDEX events_by_action;")?,
        Raw::PlusUserIndex => conn.execute_batch("DROP INDEX events_by_action;")?,
        Raw::Full => {}
        Raw::FullPlusFts => {
            conn.execute_batch("CREATE VIRTUAL TABLE events_fts USING fts5(text, tokenize = 'trigram');")?
        }
    }
    let started = Instant::now();
    for (b, chunk) in rows.chunks(batch).enumerate() {
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO events (org, seq, time_us, action, user, leaf, leaf_hash) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut fts = tx.prepare_cached(if matches!(variant, Raw::FullPlusFts) {
                "INSERT INTO events_fts (rowid, text) VALUES (?1, ?2)"
            } else {
                "SELECT ?1, ?2"
            })?;
            for (k, (time, action, user, leaf, hash, text)) in chunk.iter().enumerate() {
                let seq = (b * batch + k) as i64;
                ins.execute(params![seq, time, action, user, leaf, &hash[..]])?;
                if matches!(variant, Raw::FullPlusFts) {
                    fts.execute(params![seq, text])?;
                }
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed())
}

/// `appenders` tasks, spread over `logs`, each appending `per` single events; returns the time.
async fn concurrent_appends(
    logs: &[Arc<LogService>],
    org: &logbook_store::Org,
    appenders: u64,
    per: u64,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..appenders {
        let (log, org) = (logs[t as usize % logs.len()].clone(), org.clone());
        tasks.push(tokio::spawn(async move {
            for k in 0..per {
                log.append(&org, vec![sample_event(t * 1_000_003 + k)], None).await?;
            }
            Ok::<_, logbook_log::AppendError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

async fn raw_run(dir: &Path, v: Raw, rows: &[RawRow], batch: u64, tag: &str) -> anyhow::Result<Duration> {
    let rows = rows.to_vec();
    let d = dir.join(format!("raw-{tag}"));
    std::fs::create_dir_all(&d)?;
    tokio::task::spawn_blocking(move || raw_ingest(&d, v, &rows, batch as usize)).await?
}

pub async fn run(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let parent = a.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work =
        tempfile::Builder::new().prefix("logbook-bench-").tempdir_in(&parent).context("making the bench directory")?;
    let dir = work.path();
    println!("# logbook-bench append");
    println!();
    println!(
        "command: `logbook-bench append --events {} --batch {} --rounds {} --appenders {} --per-appender {} --proof-log {}{}`",
        a.events,
        a.batch,
        a.rounds,
        a.appenders,
        a.per_appender,
        a.proof_log,
        if a.postgres.is_some() { " --postgres …" } else { "" }
    );
    println!(
        "machine: {} cores; store directory: {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        parent.display()
    );
    println!();

    // The rows the raw loops insert: exactly what Logbook stores for the same events.
    let slug = OrgSlug::default_org();
    let random = OsRandom;
    let t0 = 1_764_000_000_000_000i64;
    let rows: Vec<_> = (0..a.events)
        .map(|i| {
            let body = sample_event(i);
            let mut id = [0u8; 16];
            random.fill(&mut id);
            let e = Event {
                org: slug.clone(),
                seq: i,
                id: EventId::from_random_bytes(id),
                time: Timestamp::from_micros(t0 + i as i64),
                body,
            };
            let l = leaf::encode(&e);
            let text =
                format!("{} {} {}", e.user(), e.body.action.platform_label().unwrap_or_default(), e.body.details);
            (
                e.time.as_micros(),
                e.body.action.code().to_owned(),
                e.user().to_owned(),
                l.clone(),
                record_hash(&l).0,
                text,
            )
        })
        .collect();
    let avg_leaf = rows.iter().map(|r| r.3.len()).sum::<usize>() as f64 / rows.len().max(1) as f64;

    println!("## Durable ingest, batches of {} ({} events, average leaf {avg_leaf:.0} bytes)", a.batch, a.events);
    println!();
    println!("What each index costs, raw engine (bare loop, same rows, one transaction per batch):");
    println!();
    println!("| schema | events/s | vs. Logbook's schema |");
    println!("|---|---:|---:|");
    let mut index_costs = Vec::new();
    let variants =
        if a.skip_raw { vec![] } else { vec![Raw::PrimaryKeyOnly, Raw::PlusUserIndex, Raw::Full, Raw::FullPlusFts] };
    for v in variants {
        let t = raw_run(dir, v, &rows, a.batch, "index").await?;
        index_costs.push((v, rate(a.events, t)));
    }
    let full = index_costs.iter().find(|(v, _)| matches!(v, Raw::Full)).map(|x| x.1).unwrap_or(f64::NAN);
    for (v, r) in &index_costs {
        println!("| {} | {r:.0} | {:.2} |", v.label(), r / full);
    }
    println!();
    println!("Logbook's append path against the raw engine with the same schema, alternating, fresh files each round:");
    println!();
    println!("| round | raw engine events/s | Logbook events/s | ratio |");
    println!("|---|---:|---:|---:|");
    let mut ratios = Vec::new();
    let mut last = None;
    for round in 0..a.rounds {
        let raw = if a.skip_raw {
            f64::NAN
        } else {
            rate(a.events, raw_run(dir, Raw::Full, &rows, a.batch, &format!("round{round}")).await?)
        };
        let (log, org, store) = service(&dir.join(format!("logbook-{round}"))).await?;
        let lb = append_batched(&log, &org, &a).await?;
        println!("| {} | {raw:.0} | {lb:.0} | {:.2} |", round + 1, lb / raw);
        ratios.push(lb / raw);
        if let Some((old, _, _)) = last.replace((log, org, store)) {
            let old: Arc<LogService> = old;
            old.shutdown().await;
        }
    }
    ratios.sort_by(|x, y| x.total_cmp(y));
    println!();
    println!("**Median ratio: {:.2}** of the raw engine's rate.", ratios[ratios.len() / 2]);
    println!();
    let (log, org, store) = last.context("at least one round")?;

    // Single-event appends from many tasks: group commit.
    let commits_before = log.metrics().commits.get();
    let conc_time = concurrent_appends(std::slice::from_ref(&log), &org, a.appenders, a.per_appender).await?;
    let conc = a.appenders * a.per_appender;
    let commits = log.metrics().commits.get() - commits_before;
    println!("## {} concurrent single-event appenders", a.appenders);
    println!();
    println!(
        "{conc} events in {:.2} s: **{:.0} events/s**, {commits} commits ({:.1} events per commit)",
        conc_time.as_secs_f64(),
        rate(conc, conc_time),
        conc as f64 / commits.max(1) as f64
    );
    println!();
    log.shutdown().await;

    let verify_rate = measure_verify(&log, &org, store.clone()).await?;
    println!("## Verify");
    println!();
    println!("`logbook verify` work on the {}-event store above: **{verify_rate:.0} events/s**", a.events + conc);
    println!();

    crate::bench_witness::section(&a, &dir.join("witnesses")).await?;

    if let Some(admin) = &a.postgres {
        postgres_section(&a, admin, &rows).await?;
        crate::bench_processes::two_processes(&a, admin, &rows).await?;
    }

    if a.proof_log > 0 {
        let (log, org, store) = service(&dir.join("proofs")).await?;
        let started = Instant::now();
        let mut i = 0;
        while i < a.proof_log {
            let k = 10_000.min(a.proof_log - i);
            log.append(&org, (i..i + k).map(sample_event).collect(), None).await?;
            i += k;
        }
        let fill = started.elapsed();
        log.shutdown().await;
        let size = a.proof_log;
        let mut times = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = x % size;
            let t = Instant::now();
            let p = log.inclusion_proof(&org, seq, Some(size)).await?;
            times.push(t.elapsed());
            anyhow::ensure!(p.verify().is_ok(), "proof did not verify");
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        let p99 = times[times.len() * 99 / 100];
        let single_row = {
            let t = Instant::now();
            for k in 0..2000u64 {
                store.events(org.id, (k * 4999) % size..(k * 4999) % size + 1).await?;
            }
            t.elapsed() / 2000
        };
        let verify_large = measure_verify(&log, &org, store.clone()).await?;
        let scan_large = measure_scan(&org, &store).await?;
        println!("## Proofs and verify at {size} events");
        println!();
        println!("filled in {:.1} s ({:.0} events/s in batches of 10,000)", fill.as_secs_f64(), rate(size, fill));
        println!();
        println!("| measurement | value |");
        println!("|---|---:|");
        println!(
            "| inclusion proof, random seq, mean (2,000 proofs, read tiles + compute + self-check) | {:.3} ms |",
            mean.as_secs_f64() * 1e3
        );
        println!("| inclusion proof p99 | {:.3} ms |", p99.as_secs_f64() * 1e3);
        println!(
            "| baseline: read one event row by primary key through the same store API | {:.3} ms |",
            single_row.as_secs_f64() * 1e3
        );
        println!("| verify, whole log | {verify_large:.0} events/s |");
        println!("| baseline: read every event row through the store API, no checks | {scan_large:.0} events/s |");
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// Baseline for verify: only reading every event row through the store, in the same pages.
async fn measure_scan(org: &logbook_store::Org, store: &SqliteStore) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut n = 0u64;
    loop {
        let rows = store.events(org.id, n..n + 20_000).await?;
        if rows.is_empty() {
            break;
        }
        n += rows.len() as u64;
    }
    Ok(rate(n, started.elapsed()))
}

async fn measure_verify(log: &LogService, org: &logbook_store::Org, store: Arc<SqliteStore>) -> anyhow::Result<f64> {
    let verifier = log.signer().verifier();
    let origin = log.origin(&org.slug);
    let started = Instant::now();
    let report = logbook_log::audit::audit_org(store, org, &origin, &verifier, &[]).await?;
    let t = started.elapsed();
    anyhow::ensure!(report.is_intact(), "bench store did not verify: {:?}", report.findings.first());
    Ok(rate(report.size, t))
}

pub(crate) async fn fresh_pg_database(admin: &str, tag: &str) -> anyhow::Result<String> {
    let (client, conn) =
        tokio_postgres::connect(admin, tokio_postgres::NoTls).await.context("connecting to PostgreSQL")?;
    tokio::spawn(conn);
    let name = format!("logbook_bench_{tag}_{}", std::process::id());
    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).context("the admin URL names no database")?;
    Ok(format!("{base}/{name}"))
}

pub(crate) async fn drop_pg_database(admin: &str, url: &str) {
    if let (Ok((client, conn)), Some((_, name))) =
        (tokio_postgres::connect(admin, tokio_postgres::NoTls).await, url.rsplit_once('/'))
    {
        tokio::spawn(conn);
        let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
    }
}

async fn pg_service(url: &str, signer: Arc<CheckpointSigner>) -> anyhow::Result<(Arc<LogService>, logbook_store::Org)> {
    let store = Arc::new(logbook_store_postgres::PgStore::connect(url).await?);
    let log = LogService::new(store, Arc::new(SystemClock), Arc::new(OsRandom), signer, LogConfig::default());
    let org = log.org(&OrgSlug::default_org()).await?;
    Ok((log, org))
}

/// Batched ingest on PostgreSQL next to a bare multi-row INSERT of the same rows, and 64
/// single-event appenders through two Logbook instances sharing the database.
async fn postgres_section(a: &BenchArgs, admin: &str, rows: &[RawRow]) -> anyhow::Result<()> {
    println!("## PostgreSQL");
    println!();
    println!("| round | raw multi-row INSERT events/s | Logbook events/s | ratio |");
    println!("|---|---:|---:|---:|");
    let signer = Arc::new(CheckpointSigner::generate(&OsRandom, "bench")?);
    let mut ratios = Vec::new();
    for round in 0..a.rounds {
        // Raw: the same schema (made by the store), the same rows, one INSERT … UNNEST per batch.
        let url = fresh_pg_database(admin, &format!("raw{round}")).await?;
        drop(logbook_store_postgres::PgStore::connect(&url).await?);
        let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        let started = Instant::now();
        for (b, chunk) in rows.chunks(a.batch as usize).enumerate() {
            let seqs: Vec<i64> = (0..chunk.len()).map(|k| (b * a.batch as usize + k) as i64).collect();
            let times: Vec<i64> = chunk.iter().map(|r| r.0).collect();
            let actions: Vec<&str> = chunk.iter().map(|r| r.1.as_str()).collect();
            let users: Vec<&str> = chunk.iter().map(|r| r.2.as_str()).collect();
            let leaves: Vec<&[u8]> = chunk.iter().map(|r| r.3.as_slice()).collect();
            let hashes: Vec<&[u8]> = chunk.iter().map(|r| &r.4[..]).collect();
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO events (org, seq, time_us, action, \"user\", leaf, leaf_hash)
                 SELECT 1, * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BYTEA[], $6::BYTEA[])",
                &[&seqs, &times, &actions, &users, &leaves, &hashes],
            )
            .await?;
            tx.commit().await?;
        }
        let raw = rate(rows.len() as u64, started.elapsed());
        drop(client);
        drop_pg_database(admin, &url).await;

        let url = fresh_pg_database(admin, &format!("lb{round}")).await?;
        let (log, org) = pg_service(&url, signer.clone()).await?;
        let batches: Vec<Vec<NewEvent>> = (0..rows.len() as u64)
            .step_by(a.batch as usize)
            .map(|i| (i..(i + a.batch).min(rows.len() as u64)).map(sample_event).collect())
            .collect();
        let started = Instant::now();
        for b in batches {
            log.append(&org, b, None).await?;
        }
        let lb = rate(rows.len() as u64, started.elapsed());
        log.shutdown().await;
        drop(log);
        drop_pg_database(admin, &url).await;
        println!("| {} | {raw:.0} | {lb:.0} | {:.2} |", round + 1, lb / raw);
        ratios.push(lb / raw);
    }
    ratios.sort_by(|x, y| x.total_cmp(y));
    println!();
    println!(
        "**Median ratio: {:.2}** of the bare multi-row INSERT ({} events per round, batches of {}).",
        ratios[ratios.len() / 2],
        rows.len(),
        a.batch
    );
    println!();

    let url = fresh_pg_database(admin, "conc").await?;
    let (one, org) = pg_service(&url, signer.clone()).await?;
    let (two, _) = pg_service(&url, signer.clone()).await?;
    let took = concurrent_appends(&[one.clone(), two.clone()], &org, a.appenders, a.per_appender).await?;
    let n = a.appenders * a.per_appender;
    let commits = one.metrics().commits.get() + two.metrics().commits.get();
    one.shutdown().await;
    two.shutdown().await;
    let store: Arc<dyn Store> = Arc::new(logbook_store_postgres::PgStore::connect(&url).await?);
    let size = store.log_head(org.id).await?.size;
    anyhow::ensure!(size == n, "expected {n} events, the log has {size}");
    drop((one, two));
    println!(
        "{} single-event appenders through two Logbook instances (separate sequencers and connection pools, one database): {n} events in {:.2} s, **{:.0} events/s**, {commits} commits; one gapless log of {size}",
        a.appenders,
        took.as_secs_f64(),
        rate(n, took)
    );
    println!();
    drop(store);
    drop_pg_database(admin, &url).await;
    Ok(())
}

/// Appends `a.events` sample events in batches of `a.batch` and returns the rate (events/s).
/// Like the raw loop's rows, the submissions exist before the clock starts.
pub(crate) async fn append_batched(log: &LogService, org: &logbook_store::Org, a: &BenchArgs) -> anyhow::Result<f64> {
    let batches: Vec<Vec<NewEvent>> = (0..a.events)
        .step_by(a.batch as usize)
        .map(|i| (i..(i + a.batch).min(a.events)).map(sample_event).collect())
        .collect();
    let started = Instant::now();
    for b in batches {
        log.append(org, b, None).await?;
    }
    Ok(rate(a.events, started.elapsed()))
}
