//! Logbook's application.
//!
//! [`Application::build`] wires the log service to a store and binds the HTTP listener (any
//! port: tests use port 0 and drive the real server like a client). `main` only parses the
//! configuration, chooses the store from the URL, and calls it.

mod auth;
pub mod client_addr;
mod console;
mod cursor;
pub mod error;
mod export_limit;
mod extract;
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
mod metrics;
pub mod openapi;
#[cfg(test)]
mod redaction;
mod request_log;
mod routes;
mod serve;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use logbook_core::{Clock, OrgSlug, Random};
use logbook_log::{LogConfig, LogService};
use logbook_store::{Org, Store};

pub use error::ApiError;

/// What the server needs to start. Parsed from flags, `LOGBOOK_*` variables and the optional
/// TOML file by the binary.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub witness_dir: Option<PathBuf>,
    /// Refuse to start when a log does not extend its trusted checkpoints (see
    /// `logbook_log::LogConfig::refuse_damaged`).
    pub refuse_damaged: bool,
    /// The C2SP witnesses each new checkpoint is sent to for cosigning.
    pub witnesses: Vec<logbook_log::cosigning::WitnessEndpoint>,
    /// How many of them must cosign a checkpoint for it to count as witnessed; all when `None`.
    pub witness_quorum: Option<usize>,
    /// The checkpoint signing key; default `<data_dir>/checkpoint-signing.key`, made at first start.
    pub signing_key_file: Option<PathBuf>,
    /// Checkpoint origins are `<origin_prefix>/<org>`; the key is named `<origin_prefix>`.
    pub origin_prefix: String,
    pub checkpoint_interval: Duration,
    /// The organization of the platform itself (single-tenant installations have only this one).
    pub default_org: OrgSlug,
    /// The console's address as users reach it (for setup and invitation links); default
    /// `http://<listen>`. An `https://` address also marks the session cookie `Secure`.
    pub public_url: Option<String>,
    /// Where invitations are mailed from; without it, links are only shown to the admin.
    pub smtp: Option<logbook_accounts::SmtpConfig>,
    /// How often expired sessions are looked for (each is ended with its Logout event).
    pub session_sweep_interval: Duration,
    /// Failed sign-ins allowed per source address before its sign-ins are refused (429).
    pub sign_in_throttle: logbook_accounts::SignInThrottle,
    /// A client must send a request's line and headers within this time (slowloris); it also
    /// bounds how long an idle keep-alive connection stays open. Default 10 s.
    pub header_read_timeout: Duration,
    /// A request's whole body must arrive within this time once its headers are in, or it is
    /// answered 408. Default 60 s.
    pub body_read_timeout: Duration,
    /// At most this many client connections at once; further ones wait in the listen backlog
    /// until one closes. Default 512.
    pub max_connections: usize,
    /// At most this many of them from one address (a trusted proxy is not limited); a
    /// connection beyond that is closed at once. Zero turns the limit off. Default 64.
    pub max_connections_per_address: usize,
    /// Peers allowed to report the client's address (`forwarded_header`): reverse proxies.
    /// Empty (the default): the peer is the client, and the headers are ignored.
    pub trusted_proxies: client_addr::TrustedProxies,
    /// The header the trusted proxies write the client's address in.
    pub forwarded_header: client_addr::ForwardedHeader,
    /// At most this many exports stream at once (each reads the whole filtered log); beyond it,
    /// 429. Default 4.
    pub export_max_concurrent: usize,
    /// At most this many of them by one user. Default 1.
    pub export_max_per_user: usize,
    /// A list or search of the audit log is stopped after this long (503 `query_timeout`), so a
    /// costly filter cannot keep the database busy. Default 30 s.
    pub query_timeout: Duration,
    /// How often the integrity self-check audits each log's newest part against its newest
    /// signed checkpoint (`logbook_log::selfcheck`); zero turns it off.
    pub self_check_interval: Duration,
    /// How often the full self-check recomputes every whole log against its newest signed
    /// checkpoint (`logbook_log::fullcheck`; resumed after a restart); zero turns it off.
    pub full_self_check_interval: Duration,
}

impl Settings {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            witness_dir: None,
            refuse_damaged: false,
            witnesses: Vec::new(),
            witness_quorum: None,
            signing_key_file: None,
            origin_prefix: "logbook.local".into(),
            checkpoint_interval: Duration::from_secs(1),
            default_org: OrgSlug::default_org(),
            public_url: None,
            smtp: None,
            session_sweep_interval: Duration::from_secs(30),
            sign_in_throttle: logbook_accounts::SignInThrottle::default(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            max_connections: 512,
            max_connections_per_address: 64,
            trusted_proxies: client_addr::TrustedProxies::default(),
            forwarded_header: client_addr::ForwardedHeader::default(),
            self_check_interval: Duration::from_secs(300),
            full_self_check_interval: Duration::from_secs(86_400),
            export_max_concurrent: 4,
            export_max_per_user: 1,
            query_timeout: Duration::from_secs(30),
        }
    }

    /// Where the checkpoint signing key is: the configured file, or the data directory's.
    pub fn signing_key(&self) -> keys::SigningKeyFile {
        keys::SigningKeyFile::resolve(self.signing_key_file.as_deref(), &self.data_dir, &self.origin_prefix)
    }
}

/// Why serving on `listen` with `public_url` would send passwords and session cookies over the
/// network unencrypted, if it would: another host can reach the listener, and users are not sent
/// to an `https://` address (a TLS-terminating proxy in front).
pub fn transport_warning(listen: SocketAddr, public_url: &str) -> Option<String> {
    if listen.ip().is_loopback() || public_url.starts_with("https://") {
        return None;
    }
    Some(format!(
        "listening on {listen}, which other hosts can reach, but the public URL {public_url} is not https: \
         passwords and session cookies would cross the network unencrypted. Serve Logbook behind a \
         TLS-terminating reverse proxy and set public_url to its https:// address"
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("checkpoint signing key: {0}")]
    Key(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("the log cannot start: {0}")]
    Log(#[from] logbook_log::AppendError),
    #[error("storage: {0}")]
    Store(#[from] logbook_store::StoreError),
    #[error("accounts: {0}")]
    Accounts(#[from] logbook_accounts::AccountError),
}

/// Shared by every handler.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub log: Arc<LogService>,
    pub default_org: Org,
    pub metrics: Arc<metrics::Metrics>,
    pub accounts: Arc<logbook_accounts::Accounts>,
    /// Whether the session cookie is marked `Secure` and named `__Host-…` (the public URL is
    /// https).
    pub secure_cookies: bool,
    /// The public URL's origin, which the `Origin` of a sign-in form must be (`auth::SameOrigin`).
    pub public_origin: String,
    /// Authenticates query cursors. Derived from the checkpoint signing key, so every process
    /// of a cluster (which shares that key) accepts the cursors of the others.
    pub cursor_key: Arc<cursor::CursorKey>,
    /// How long a request body may take to arrive (`Settings::body_read_timeout`).
    pub body_read_timeout: Duration,
    /// The running exports and their limits.
    pub exports: Arc<export_limit::ExportLimiter>,
    /// `Settings::query_timeout`.
    pub query_timeout: Duration,
    /// `Settings::full_self_check_interval` (shown in Settings → Integrity).
    pub full_self_check_interval: Duration,
}

#[derive(Debug)]
pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    log: Arc<LogService>,
    accounts: Arc<logbook_accounts::Accounts>,
    setup_link: Option<String>,
    sweep_interval: Duration,
    connections: serve::ConnectionLimits,
    clients: Arc<client_addr::ClientAddrPolicy>,
    self_check_interval: Duration,
    full_self_check_interval: Duration,
}

impl Application {
    pub async fn build(
        settings: &Settings,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
    ) -> Result<Self, StartError> {
        let valid_prefix = !settings.origin_prefix.is_empty()
            && !settings.origin_prefix.contains('+')
            && !settings.origin_prefix.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid_prefix {
            return Err(StartError::Config(
                "the origin prefix must be non-empty, without spaces, control characters or '+' (e.g. logbook.example.com)".into(),
            ));
        }
        if settings.max_connections == 0 {
            return Err(StartError::Config("max_connections must be at least 1".into()));
        }
        if settings.export_max_concurrent == 0 || settings.export_max_per_user == 0 {
            return Err(StartError::Config("export_max_concurrent and export_max_per_user must be at least 1".into()));
        }
        let signer = logbook_log::signing_key::load_or_create(&*store, &settings.signing_key(), &*random)
            .await
            .map_err(|e| StartError::Key(e.to_string()))?;
        let mac_secret = signer.secret().to_owned();
        let cursor_key = Arc::new(cursor::CursorKey::derive(signer.secret()));
        let config = LogConfig {
            origin_prefix: settings.origin_prefix.clone(),
            checkpoint_interval: settings.checkpoint_interval,
            witness_dir: settings.witness_dir.clone(),
            refuse_damaged: settings.refuse_damaged,
            witnesses: settings.witnesses.clone(),
            witness_quorum: settings.witness_quorum,
            ..LogConfig::default()
        };
        let log = LogService::new(store, clock, random, Arc::new(signer), config);
        let default_org = log.org(&settings.default_org).await?;
        log.start_all().await?;
        log.start_witnesses();
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| StartError::Listen { addr: settings.listen, source })?;
        let bound = listener.local_addr().map_err(|source| StartError::Listen { addr: settings.listen, source })?;
        let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{bound}"));
        if let Some(warning) = transport_warning(bound, &public_url) {
            tracing::warn!("{warning}");
        }
        let accounts_config = logbook_accounts::AccountsConfig {
            public_url: public_url.clone(),
            smtp: settings.smtp.clone(),
            sign_in_throttle: settings.sign_in_throttle,
            ..Default::default()
        };
        let accounts =
            Arc::new(logbook_accounts::Accounts::new(log.clone(), default_org.clone(), accounts_config, &mac_secret)?);
        // TOTP secrets an earlier version stored in plain are encrypted before anyone signs in.
        accounts.seal_plain_totp_secrets().await?;
        let metrics = Arc::new(metrics::Metrics::new(log.metrics(), accounts.metrics()));
        let setup_link = accounts.setup_link().await?;
        let state = AppState {
            log: log.clone(),
            default_org,
            accounts: accounts.clone(),
            secure_cookies: public_url.starts_with("https://"),
            public_origin: auth::origin_of(&public_url).ok_or_else(|| {
                StartError::Config(format!("the public URL {public_url:?} is not an absolute http(s) URL"))
            })?,
            cursor_key,
            body_read_timeout: settings.body_read_timeout,
            exports: Arc::new(export_limit::ExportLimiter::new(
                settings.export_max_concurrent,
                settings.export_max_per_user,
                metrics.exports_in_progress.clone(),
            )),
            query_timeout: settings.query_timeout,
            metrics,
            full_self_check_interval: settings.full_self_check_interval,
        };
        let router = routes::router(state);
        let connections = serve::ConnectionLimits {
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
            max_connections_per_address: settings.max_connections_per_address,
        };
        let clients = Arc::new(client_addr::ClientAddrPolicy {
            trusted: settings.trusted_proxies.clone(),
            header: settings.forwarded_header,
        });
        Ok(Self {
            listener,
            router,
            log,
            accounts,
            setup_link,
            sweep_interval: settings.session_sweep_interval,
            connections,
            clients,
            self_check_interval: settings.self_check_interval,
            full_self_check_interval: settings.full_self_check_interval,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn log(&self) -> &Arc<LogService> {
        &self.log
    }

    pub fn accounts(&self) -> &Arc<logbook_accounts::Accounts> {
        &self.accounts
    }

    /// On a store without users: the one-time link that creates the first admin.
    pub fn setup_link(&self) -> Option<&str> {
        self.setup_link.as_deref()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests, commits what is
    /// queued, and signs the final checkpoints.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let Self {
            listener,
            router,
            log,
            accounts,
            sweep_interval,
            connections,
            clients,
            self_check_interval,
            full_self_check_interval,
            ..
        } = self;
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(sweep_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match accounts.end_expired_sessions().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "ended expired sessions"),
                    Err(e) => tracing::warn!(error = %e, "looking for expired sessions failed"),
                }
                if let Err(e) = accounts.prune_sign_in_throttle().await {
                    tracing::warn!(error = %e, "forgetting old sign-in failures failed");
                }
            }
        });
        // The first check runs at once, then one per interval; a slow run delays the next.
        let self_check = (!self_check_interval.is_zero()).then(|| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(self_check_interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    log.self_check().await;
                }
            })
        });
        let full_check = (!full_self_check_interval.is_zero())
            .then(|| tokio::spawn(log.clone().full_self_check_schedule(full_self_check_interval)));
        let served = serve::serve(listener, router, connections, clients, shutdown).await;
        sweeper.abort();
        for t in [self_check, full_check].into_iter().flatten() {
            // A full check stopped mid-run resumes from its last saved page at the next start.
            t.abort();
        }
        log.shutdown().await;
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reachable_listener_without_https_is_warned_about() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let lan: SocketAddr = "192.0.2.10:8080".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let local6: SocketAddr = "[::1]:8080".parse().unwrap();
        let w = transport_warning(any, "http://logbook.example.com").unwrap();
        assert!(w.contains("0.0.0.0:8080") && w.contains("not https"), "{w}");
        assert!(transport_warning(lan, "http://192.0.2.10:8080").is_some());
        assert!(transport_warning(any, "https://logbook.example.com").is_none());
        assert!(transport_warning(local, "http://127.0.0.1:8080").is_none());
        assert!(transport_warning(local6, "http://[::1]:8080").is_none());
    }
}
