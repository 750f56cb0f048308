//! The subcommands. Each takes the one [`Config`] (layered in `config.rs`), so every command
//! sees the same store, signing key and origin.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use figment::Figment;
use logbook_core::{Actor, Clock, OrgSlug, OsRandom, Source, SystemClock};
use logbook_integrity::checkpoint::CheckpointVerifier;
use logbook_log::audit::{audit_org_with_progress, SuppliedCheckpoint};
use logbook_log::LogService;
use logbook_server::Application;

use crate::cli::{AdminCommand, Cli, Command, CreateTokenArgs, VerifyArgs};
use crate::config::{Config, Flags};
use crate::{progress, store_url};

/// What this invocation's flags set, for the top layer of the configuration.
pub fn flags(cli: &Cli) -> Flags {
    let g = &cli.global;
    let mut f = Flags {
        data_dir: g.data_dir.clone(),
        database_url: g.database_url.clone(),
        signing_key_file: g.signing_key_file.clone(),
        origin_prefix: g.origin_prefix.clone(),
        ..Flags::default()
    };
    let (server, key) = match &cli.command {
        Command::Serve(a) => (Some(&a.server), None),
        Command::Config(a) => (Some(&a.server), Some(&a.key)),
        Command::Verify(a) => (None, Some(&a.key)),
        Command::MigrateStore(a) => (None, Some(&a.key)),
        Command::Admin(_) | Command::Export(_) | Command::Demo(_) | Command::Witness(_) => (None, None),
    };
    if let Some(s) = server {
        f.listen = s.listen;
        f.witness_dir = s.witness_dir.clone();
        f.refuse_damaged = s.refuse_damaged.then_some(true);
        f.witness = (!s.witness.is_empty()).then(|| s.witness.clone());
        f.witness_quorum = s.witness_quorum;
        f.public_url = s.public_url.clone();
        f.smtp_host = s.smtp_host.clone();
        f.smtp_port = s.smtp_port;
        f.smtp_from = s.smtp_from.clone();
        f.smtp_username = s.smtp_username.clone();
        f.sign_in_max_failures = s.sign_in_max_failures;
        f.sign_in_window_minutes = s.sign_in_window_minutes;
        f.self_check_interval = s.self_check_interval;
        f.full_self_check_interval = s.full_self_check_interval;
        f.smtp_tls = s.smtp_tls;
        f.trusted_proxies = s.trusted_proxies.clone();
        f.forwarded_header = s.forwarded_header;
        f.max_connections_per_address = s.max_connections_per_address;
        f.export_max_concurrent = s.export_max_concurrent;
        f.export_max_per_user = s.export_max_per_user;
        f.query_timeout = s.query_timeout;
    }
    if let Some(k) = key {
        f.public_key = k.public_key.clone();
    }
    if let Command::Verify(a) = &cli.command {
        if a.witness_dir.is_some() {
            f.witness_dir = a.witness_dir.clone();
        }
    }
    f
}

/// The tracing filter when neither `LOGBOOK_LOG` nor the file's `log` says: the server logs what
/// it does; a one-shot command prints its result, and only warnings besides.
pub fn default_log_filter(command: &Command) -> &'static str {
    match command {
        Command::Serve(_) | Command::Witness(crate::cli::WitnessCommand::Serve(_)) => "info",
        _ => "warn",
    }
}

pub async fn run(cli: Cli, config: Config, figment: Figment) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(_) => serve(&config).await,
        Command::Verify(a) => verify(&config, a).await,
        Command::Admin(a) => admin(&config, a).await,
        Command::MigrateStore(a) => migrate_store(&config, a).await,
        Command::Export(a) => crate::export::run(&config, a).await,
        Command::Demo(a) => crate::demo::run(&config, a).await,
        Command::Witness(a) => crate::witness::run(&config, a).await,
        Command::Config(_) => {
            print!("{}", config.render(&figment));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The key checkpoints are checked with: `public_key` if configured, else the signing key's
/// (which is read, never generated).
fn verifier(config: &Config) -> anyhow::Result<CheckpointVerifier> {
    match &config.public_key {
        Some(k) => CheckpointVerifier::new(&read_public_key(k)?).context("the public key is not a note verifier key"),
        None => {
            let key = config.signing_key();
            if !key.path().exists() {
                bail!(
                    "no public key: pass --public-key, or the --data-dir or --signing-key-file of the store's signing key (looked for {})",
                    key.path().display()
                );
            }
            Ok(key.load()?.verifier())
        }
    }
}

async fn migrate_store(config: &Config, a: crate::cli::MigrateArgs) -> anyhow::Result<ExitCode> {
    let verifier = verifier(config)?;
    let open = |url: &crate::config::DatabaseUrl| {
        let loc = crate::config::StoreLocation { data_dir: config.data_dir.clone(), database_url: Some(url.clone()) };
        async move { store_url::open(&loc).await }
    };
    let (from, to) = (open(&a.from).await?, open(&a.to).await?);
    let mut total = 0;
    for org in from.orgs().await? {
        total += from.log_head(org.id).await?.size;
    }
    let started = std::time::Instant::now();
    let bar = progress::bar(total, "copying");
    let copied = logbook_log::copy::copy_store_with_progress(from.clone(), to.clone(), &|n| bar.inc(n)).await;
    bar.finish_and_clear();
    let copied = copied?;
    let bar = progress::bar(2 * total, "verifying both");
    let mut ok = true;
    for c in &copied {
        let slug = OrgSlug::parse(&c.org)?;
        let (Some(src), Some(dst)) = (from.org(&slug).await?, to.org(&slug).await?) else {
            bail!("organization {} vanished", c.org)
        };
        let origin = logbook_log::origin(&config.origin_prefix, &slug);
        let tick = |n| bar.inc(n);
        let r1 = audit_org_with_progress(from.clone(), &src, &origin, &verifier, &[], &tick).await?;
        let r2 = audit_org_with_progress(to.clone(), &dst, &origin, &verifier, &[], &tick).await?;
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
    bar.finish_and_clear();
    eprintln!("copied in {:.1} s", started.elapsed().as_secs_f64());
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    let settings = config.server_settings();
    let loc = config.store();
    let shutdown =
        shutdown_signal("Shutting down: finishing requests, committing queued events, signing the final checkpoint…")?;
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
    println!("  store: {}", loc.describe());
    println!("  public key: {}", app.log().signer().verifier_key());
    println!("  record events from a service: create a token with");
    println!("    logbook admin create-token --data-dir {} --name <service>", loc.data_dir.display());
    println!("  stop with Ctrl-C: queued events are committed and a final checkpoint is signed.");
    app.run_until(shutdown).await.context("serving")?;
    eprintln!("Logbook stopped cleanly.");
    Ok(ExitCode::SUCCESS)
}

/// Completes at the first SIGINT or SIGTERM. The handlers are installed here, before the
/// server announces itself, so a signal sent right after "listening" is a clean shutdown rather
/// than the default action (which kills the process without its final checkpoint).
pub(crate) fn shutdown_signal(
    message: &'static str,
) -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
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
        eprintln!("{message}");
    })
}

fn read_public_key(arg: &str) -> anyhow::Result<String> {
    let p = Path::new(arg);
    if p.is_file() {
        return Ok(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?.trim().to_owned());
    }
    Ok(arg.trim().to_owned())
}

async fn verify(config: &Config, a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let loc = config.store();
    let prefix = &config.origin_prefix;
    let verifier = verifier(config)?;
    let mut supplied = Vec::new();
    for path in &a.checkpoints {
        let note = std::fs::read_to_string(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
        supplied.push(SuppliedCheckpoint { source: format!("checkpoint {}", path.display()), note });
    }
    if let Some(dir) = &config.witness_dir {
        supplied.extend(witness_dir_checkpoints(dir, &verifier, prefix)?);
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
    let mut stored = 0;
    for org in &orgs {
        stored += store.log_head(org.id).await?.size;
    }
    let bar = progress::bar(stored, "verifying");
    let mut damaged = false;
    let mut total = 0u64;
    for org in &orgs {
        let origin = logbook_log::origin(prefix, &org.slug);
        let report = audit_org_with_progress(store.clone(), org, &origin, &verifier, &supplied, &|n| bar.inc(n)).await;
        let report = report?;
        total += report.size;
        damaged |= !report.is_intact();
        // Printed with the bar out of the way, so that the two do not mix on one terminal.
        bar.suspend(|| print_report(&org.slug, &report));
    }
    // A supplied checkpoint for a log the store does not have: the whole log is gone.
    for s in &supplied {
        if let Ok(v) = verifier.verify(&s.note) {
            let known = orgs.iter().any(|o| logbook_log::origin(prefix, &o.slug) == v.origin);
            if !known && a.org.is_none() {
                damaged = true;
                println!(
                    "{}: DAMAGED — {} commits to {} events of a log the store does not have",
                    v.origin, s.source, v.size
                );
            }
        }
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!("verified {total} events in {secs:.2} s ({:.0} events/s)", total as f64 / secs.max(1e-9));
    Ok(if damaged { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Most checkpoints of one log's witness-directory history that `verify` checks: the newest
/// always, and others spread evenly over the history (each is one more root to compare, and one
/// signature to check).
const MAX_HISTORY_CHECKPOINTS: usize = 1_000;

/// Every log's checkpoints in a witness directory (see `logbook_log::witness`), as checkpoints
/// supplied to the audit.
fn witness_dir_checkpoints(
    dir: &Path,
    verifier: &CheckpointVerifier,
    prefix: &str,
) -> anyhow::Result<Vec<SuppliedCheckpoint>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("the witness directory {} does not exist", dir.display())
        }
        Err(e) => return Err(e).with_context(|| format!("reading the witness directory {}", dir.display())),
    };
    let mut slugs = std::collections::BTreeSet::new();
    for e in entries {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        let slug = name.strip_suffix(".checkpoints").or_else(|| name.strip_suffix(".checkpoint"));
        if let Some(slug) = slug.and_then(|s| OrgSlug::parse(s).ok()) {
            slugs.insert(slug);
        }
    }
    let mut out = Vec::new();
    for slug in slugs {
        let origin = logbook_log::origin(prefix, &slug);
        let read = |e: std::io::Error| anyhow::Error::from(e).context(format!("reading {}", dir.display()));
        let mut all = logbook_log::witness::history(dir, &slug, verifier, &origin).map_err(read)?;
        all.extend(logbook_log::witness::newest(dir, &slug, verifier, &origin).map_err(read)?);
        all.sort_by_key(|c| c.size);
        all.dedup_by_key(|c| c.size);
        let step = all.len().div_ceil(MAX_HISTORY_CHECKPOINTS).max(1);
        let last = all.len().saturating_sub(1);
        for (i, c) in all.into_iter().enumerate() {
            if i % step == 0 || i == last {
                let source = format!("the witness directory's checkpoint of size {} ({})", c.size, dir.display());
                out.push(SuppliedCheckpoint { source, note: c.note });
            }
        }
    }
    Ok(out)
}

fn print_report(slug: &OrgSlug, report: &logbook_integrity::audit::Report) {
    if report.is_intact() {
        println!(
            "{slug}: intact — {} events, {} checkpoint(s) checked, root {}",
            report.size,
            report.checkpoints_checked,
            logbook_log::audit::root_hex(report)
        );
        return;
    }
    match report.first_bad_seq() {
        Some(seq) => println!("{slug}: DAMAGED — first bad seq {seq}"),
        None => println!("{slug}: DAMAGED"),
    }
    for f in report.findings.iter().take(20) {
        println!("  {f}");
    }
    if report.findings.len() > 20 {
        println!("  … and {} more", report.findings.len() - 20);
    }
}

/// The log service for a one-shot command, on the configured store, key and origin; it signs a
/// checkpoint at shutdown. `clock` is the events' clock (`demo` walks it through the past).
pub(crate) async fn one_shot(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<LogService>> {
    let store = store_url::open(&config.store()).await?;
    let signer = logbook_log::signing_key::load_or_create(&*store, &config.signing_key(), &OsRandom).await?;
    Ok(LogService::new(store, clock, Arc::new(OsRandom), Arc::new(signer), config.log_config()))
}

pub(crate) fn cli_actor() -> Actor {
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "cli".into());
    Actor { kind: logbook_core::ActorKind::System, id: format!("cli:{user}"), email: None }
}

async fn admin(config: &Config, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::CreateToken(CreateTokenArgs { token: a, actions }) => {
            let log = one_shot(config, Arc::new(SystemClock)).await?;
            let org = log.org(&OrgSlug::parse(&a.org)?).await?;
            let result = log.create_api_token(&org, &a.name, actions, cli_actor(), Source::default(), "cli").await;
            log.shutdown().await;
            let (token, secret) = result?;
            eprintln!(
                "Created API token {:?} for {}, allowed to record: {}. It is shown only now; store it as a secret.",
                a.name, org.slug, token.grant
            );
            println!("{}", secret.expose());
        }
        AdminCommand::RevokeToken(a) => {
            let log = one_shot(config, Arc::new(SystemClock)).await?;
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
            let log = one_shot(config, Arc::new(SystemClock)).await?;
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
            let store = store_url::open(&config.store()).await?;
            let Some(org) = store.org(&OrgSlug::parse(&a.org)?).await? else { bail!("no organization {:?}", a.org) };
            for t in store.api_tokens(org.id).await? {
                let state = match t.revoked {
                    Some(r) => format!("revoked {r}"),
                    None => "active".into(),
                };
                println!("{}\tcreated {}\t{state}\tactions {}", t.name, t.created, t.grant);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
