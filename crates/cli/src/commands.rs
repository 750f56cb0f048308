use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use logbook_core::{Actor, OrgSlug, OsRandom, Source, SystemClock};
use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_log::audit::{audit_org, SuppliedCheckpoint};
use logbook_log::{LogConfig, LogService};
use logbook_server::{keys, Application, Settings};

use crate::cli::{AdminCommand, Cli, Command, ServeArgs, StoreArgs, VerifyArgs};
use crate::config::{self, FileConfig, StoreLocation, DEFAULT_ORIGIN_PREFIX};
use crate::store_url;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::Verify(a) => verify(a).await,
        Command::Admin(a) => admin(a).await,
        Command::MigrateStore(a) => migrate_store(a).await,
        Command::Export(a) => export(a).await,
        Command::Demo(a) => crate::demo::run(a).await,
        Command::Bench(a) => crate::bench::run(a).await,
        Command::BenchQuery(a) => crate::bench_query::run(a).await,
    }
}

fn verifier_for(public_key: Option<&str>, key_file: &Path) -> anyhow::Result<CheckpointVerifier> {
    match public_key {
        Some(k) => CheckpointVerifier::new(&read_public_key(k)?).context("the public key is not a note verifier key"),
        None => {
            if !key_file.exists() {
                bail!("no public key: pass --public-key, or --data-dir of a store with its signing key");
            }
            Ok(keys::load(key_file)?.verifier())
        }
    }
}

async fn migrate_store(a: crate::cli::MigrateArgs) -> anyhow::Result<ExitCode> {
    let verifier = verifier_for(a.public_key.as_deref(), &keys::default_path(&a.data_dir))?;
    let from =
        store_url::open(&StoreLocation { data_dir: a.data_dir.clone(), database_url: Some(a.from.clone()) }).await?;
    let to = store_url::open(&StoreLocation { data_dir: a.data_dir.clone(), database_url: Some(a.to.clone()) }).await?;
    let started = std::time::Instant::now();
    let copied = logbook_log::copy::copy_store(from.clone(), to.clone()).await?;
    let mut ok = true;
    for c in &copied {
        let slug = OrgSlug::parse(&c.org)?;
        let (Some(src), Some(dst)) = (from.org(&slug).await?, to.org(&slug).await?) else {
            bail!("organization {} vanished", c.org)
        };
        let origin = logbook_log::origin(&a.origin_prefix, &slug);
        let r1 = audit_org(from.clone(), &src, &origin, &verifier, &[]).await?;
        let r2 = audit_org(to.clone(), &dst, &origin, &verifier, &[]).await?;
        let same = r1.root == r2.root && r1.size == r2.size && r2.is_intact();
        ok &= same;
        println!(
            "{}: {} events, {} checkpoints, {} API tokens copied; roots {} ({})",
            c.org,
            c.events,
            c.checkpoints,
            c.tokens,
            if same { "match" } else { "DIFFER" },
            logbook_log::audit::root_hex(&r2)
        );
        if !r1.is_intact() {
            println!(
                "  note: the source itself does not verify: {}",
                r1.findings.first().map(|f| f.to_string()).unwrap_or_default()
            );
        }
        for f in r2.findings.iter().take(5) {
            println!("  copy: {f}");
        }
    }
    eprintln!("copied in {:.1} s", started.elapsed().as_secs_f64());
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub(crate) fn location(args: &StoreArgs) -> anyhow::Result<(StoreLocation, FileConfig)> {
    let file = config::load_file(args.config.as_deref())?;
    Ok((config::store_location(args, &file), file))
}

async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let (loc, file) = location(&a.store)?;
    let mut settings = Settings::new(loc.data_dir.clone());
    if let Some(l) = a.listen.or(file.listen) {
        settings.listen = l;
    }
    settings.witness_dir = a.witness_dir.or(file.witness_dir);
    settings.signing_key_file = a.signing_key_file.or(file.signing_key_file);
    settings.origin_prefix = a.origin_prefix.or(file.origin_prefix).unwrap_or_else(|| DEFAULT_ORIGIN_PREFIX.into());
    settings.public_url = a.public_url.or(file.public_url);
    if let Some(secs) = a.self_check_interval.or(file.self_check_interval) {
        settings.self_check_interval = std::time::Duration::from_secs(secs);
    }
    if let Some(host) = a.smtp_host.or(file.smtp_host) {
        settings.smtp = Some(logbook_accounts::SmtpConfig {
            port: a.smtp_port.or(file.smtp_port).unwrap_or(25),
            from: a.smtp_from.or(file.smtp_from).unwrap_or_else(|| format!("logbook@{host}")),
            username: a.smtp_username.or(file.smtp_username),
            password: crate::config::secret_from_env("LOGBOOK_SMTP_PASSWORD")?,
            host,
        });
    }
    if let Some(n) = a.sign_in_max_failures.or(file.sign_in_max_failures) {
        settings.sign_in_throttle.max_failures = n;
    }
    if let Some(m) = a.sign_in_window_minutes.or(file.sign_in_window_minutes) {
        anyhow::ensure!((1..=1440).contains(&m), "sign_in_window_minutes must be 1 to 1440, not {m}");
        settings.sign_in_throttle.window = std::time::Duration::from_secs(m * 60);
    }

    let shutdown = shutdown_signal()?;
    let store = store_url::open(&loc).await?;
    let app = Application::build(&settings, store, Arc::new(SystemClock), Arc::new(OsRandom)).await?;
    let addr = app.local_addr();
    let url = settings.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    println!("Logbook is listening on http://{addr}");
    println!("  console: {url}/");
    if let Some(link) = app.setup_link() {
        println!("  no admin yet: open this one-time link to create the first admin (valid 24 hours):");
        println!("    {link}");
        println!("  or, for scripted set-ups: logbook admin create --email you@example.com --password-stdin");
    }
    println!("  store: {}", describe(&loc));
    println!("  public key: {}", app.log().signer().verifier_key());
    println!("  record events from a service: create a token with");
    println!("    logbook admin create-token --data-dir {} --name <service>", loc.data_dir.display());
    println!("  stop with Ctrl-C: queued events are committed and a final checkpoint is signed.");
    app.run_until(shutdown).await.context("serving")?;
    eprintln!("Logbook stopped cleanly.");
    Ok(ExitCode::SUCCESS)
}

fn describe(loc: &StoreLocation) -> String {
    match &loc.database_url {
        None => format!("{} (embedded SQLite)", loc.data_dir.join(logbook_store_sqlite::FILE_NAME).display()),
        Some(url) if url.expose().starts_with("postgres") => "PostgreSQL (from --database-url)".into(),
        Some(_) => "SQLite file (from --database-url)".into(),
    }
}

/// Completes at the first SIGINT or SIGTERM. The handlers are installed here, before the
/// server announces itself, so a signal sent right after "listening" is a clean shutdown rather
/// than the default action (which kills the process without its final checkpoint).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("Shutting down: finishing requests, committing queued events, signing the final checkpoint…");
    })
}

fn read_public_key(arg: &str) -> anyhow::Result<String> {
    let p = Path::new(arg);
    if p.is_file() {
        return Ok(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?.trim().to_owned());
    }
    Ok(arg.trim().to_owned())
}

async fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (loc, file) = location(&a.store)?;
    let prefix = a.origin_prefix.or(file.origin_prefix).unwrap_or_else(|| DEFAULT_ORIGIN_PREFIX.into());
    let verifier = match &a.public_key {
        Some(k) => {
            CheckpointVerifier::new(&read_public_key(k)?).context("the public key is not a note verifier key")?
        }
        None => {
            let path = file.signing_key_file.clone().unwrap_or_else(|| keys::default_path(&loc.data_dir));
            if !path.exists() {
                bail!("no public key: pass --public-key, or --data-dir of a store with its signing key");
            }
            keys::load(&path)?.verifier()
        }
    };
    let mut supplied = Vec::new();
    for path in &a.checkpoints {
        let note = std::fs::read_to_string(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
        supplied.push(SuppliedCheckpoint { source: format!("checkpoint {}", path.display()), note });
    }
    if loc.database_url.is_none() && !loc.data_dir.join(logbook_store_sqlite::FILE_NAME).exists() {
        bail!("no store in {}", loc.data_dir.display());
    }
    let store = store_url::open(&loc).await?;
    let mut orgs = store.orgs().await?;
    if let Some(only) = &a.org {
        orgs.retain(|o| o.slug.as_str() == only);
        if orgs.is_empty() {
            bail!("no organization {only:?} in the store");
        }
    }

    let started = std::time::Instant::now();
    let mut damaged = false;
    let mut total = 0u64;
    for org in &orgs {
        let origin = logbook_log::origin(&prefix, &org.slug);
        let report = audit_org(store.clone(), org, &origin, &verifier, &supplied).await?;
        total += report.size;
        if report.is_intact() {
            println!(
                "{}: intact — {} events, {} checkpoint(s) checked, root {}",
                org.slug,
                report.size,
                report.checkpoints_checked,
                logbook_log::audit::root_hex(&report)
            );
        } else {
            damaged = true;
            match report.first_bad_seq() {
                Some(seq) => println!("{}: DAMAGED — first bad seq {seq}", org.slug),
                None => println!("{}: DAMAGED", org.slug),
            }
            for f in report.findings.iter().take(20) {
                println!("  {f}");
            }
            if report.findings.len() > 20 {
                println!("  … and {} more", report.findings.len() - 20);
            }
        }
    }
    // A supplied checkpoint for a log the store does not have: the whole log is gone.
    for s in &supplied {
        if let Ok(v) = verifier.verify(&s.note) {
            let known = orgs.iter().any(|o| logbook_log::origin(&prefix, &o.slug) == v.origin);
            if !known && a.org.is_none() {
                damaged = true;
                println!(
                    "{}: DAMAGED — {} commits to {} events of a log the store does not have",
                    v.origin, s.source, v.size
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("verified {total} events in {secs:.2} s ({:.0} events/s)", total as f64 / secs.max(1e-9));
    Ok(if damaged { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

async fn export(a: crate::cli::ExportArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;

    use logbook_core::{Action, NewEvent, Outcome, Target};
    use logbook_log::export::{for_each_event, parse_from, parse_to, seq_range, ExportEncoder, ExportFormat};

    let tz = jiff::tz::TimeZone::get(&a.time_zone).with_context(|| format!("unknown time zone {:?}", a.time_zone))?;
    for code in &a.actions {
        Action::from_code(code)?;
    }
    let from = a.from.as_deref().map(|s| parse_from(s, &tz)).transpose()?;
    let to = a.to.as_deref().map(|s| parse_to(s, &tz)).transpose()?;
    let (loc, file) = location(&a.store)?;
    let log = one_shot(&loc, &file).await?;
    let Some(org) = log.existing_org(&OrgSlug::parse(&a.org)?).await? else { bail!("no organization {:?}", a.org) };
    let store = log.store().clone();
    let filter = logbook_store::EventFilter {
        user: a.user.clone(),
        actions: a.actions.clone(),
        seqs: seq_range(&*store, &org, from, to).await?,
        text: None,
    };

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let format = match a.format {
        crate::cli::ExportFormat::Csv => ExportFormat::Csv,
        crate::cli::ExportFormat::Ndjson => ExportFormat::Ndjson,
    };
    // Streamed a page at a time; the encoder only ever holds what the last rows produced.
    let mut enc = ExportEncoder::new(format, tz.clone())?;
    let n = for_each_event(&*store, &org, &filter, |row| {
        enc.row(row).map_err(std::io::Error::other)?;
        out.write_all(&enc.take().map_err(std::io::Error::other)?)
    })
    .await;
    out.write_all(&enc.take()?)?;
    out.flush()?;
    let n = n?;

    // The export itself is audited, with the filters that made it.
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("format".to_string(), format!("{:?}", a.format).to_lowercase());
    fields.insert("events".to_string(), n.to_string());
    if let Some(u) = &a.user {
        fields.insert("filter.user".into(), u.clone());
    }
    if !a.actions.is_empty() {
        fields.insert("filter.actions".into(), a.actions.join(","));
    }
    if let Some(f) = &a.from {
        fields.insert("filter.from".into(), f.clone());
    }
    if let Some(t) = &a.to {
        fields.insert("filter.to".into(), t.clone());
    }
    let event = NewEvent {
        action: Action::AuditLogExported,
        actor: cli_actor(),
        target: Some(Target { kind: "audit_log".into(), id: org.slug.to_string(), display: org.slug.to_string() }),
        details: format!("Exported {n} events as {}", fields["format"].to_uppercase()),
        fields,
        outcome: Outcome::Success,
        source: Source::default(),
        recorded_by: "cli".into(),
    };
    let recorded = log.append(&org, vec![event], None).await;
    log.shutdown().await;
    recorded?;
    eprintln!("exported {n} events");
    Ok(ExitCode::SUCCESS)
}

/// The log service for a one-shot command (signs a checkpoint when done).
pub(crate) async fn one_shot(loc: &StoreLocation, file: &FileConfig) -> anyhow::Result<Arc<LogService>> {
    let store = store_url::open(loc).await?;
    let mut settings = Settings::new(loc.data_dir.clone());
    settings.signing_key_file = file.signing_key_file.clone();
    settings.origin_prefix = file.origin_prefix.clone().unwrap_or_else(|| DEFAULT_ORIGIN_PREFIX.into());
    let signer = keys::load_or_create(&settings, &OsRandom)?;
    let config = LogConfig { origin_prefix: settings.origin_prefix.clone(), ..LogConfig::default() };
    Ok(LogService::new(store, Arc::new(SystemClock), Arc::new(OsRandom), Arc::new(signer), config))
}

pub(crate) fn cli_actor() -> Actor {
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "cli".into());
    Actor { kind: logbook_core::ActorKind::System, id: format!("cli:{user}"), email: None }
}

async fn admin(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::CreateToken(a) => {
            let (loc, file) = location(&a.store)?;
            let log = one_shot(&loc, &file).await?;
            let org = log.org(&OrgSlug::parse(&a.org)?).await?;
            let result = log.create_api_token(&org, &a.name, cli_actor(), Source::default(), "cli").await;
            log.shutdown().await;
            let (_, secret) = result?;
            eprintln!("Created API token {:?} for {}. It is shown only now; store it as a secret.", a.name, org.slug);
            println!("{}", secret.expose());
        }
        AdminCommand::RevokeToken(a) => {
            let (loc, file) = location(&a.store)?;
            let log = one_shot(&loc, &file).await?;
            let org = log.org(&OrgSlug::parse(&a.org)?).await?;
            let result = log.revoke_api_token(&org, &a.name, cli_actor(), Source::default(), "cli").await;
            log.shutdown().await;
            result?;
            println!("Revoked API token {:?}.", a.name);
        }
        AdminCommand::Create(a) => {
            let role = logbook_core::Role::from_code(&a.role)?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let (loc, file) = location(&a.store)?;
            let log = one_shot(&loc, &file).await?;
            let org = log.org(&OrgSlug::default_org()).await?;
            let accounts = logbook_accounts::Accounts::new(
                log.clone(),
                org,
                logbook_accounts::AccountsConfig::default(),
                log.signer().secret(),
            )?;
            let result = accounts.create_user_as_operator(&a.email, role, password).await;
            log.shutdown().await;
            let user = result?;
            println!("Created {} ({}). Sign in to the console with this email and password.", user.email, user.role);
        }
        AdminCommand::ListTokens(a) => {
            let (loc, _) = location(&a.store)?;
            let store = store_url::open(&loc).await?;
            let Some(org) = store.org(&OrgSlug::parse(&a.org)?).await? else { bail!("no organization {:?}", a.org) };
            for t in store.api_tokens(org.id).await? {
                let state = match t.revoked {
                    Some(r) => format!("revoked {r}"),
                    None => "active".into(),
                };
                println!("{}\tcreated {}\t{state}", t.name, t.created);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
