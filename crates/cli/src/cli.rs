use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "logbook",
    version,
    about = "A tamper-evident audit log: a signed Merkle log anyone can verify.",
    after_help = "Every setting is also read from its LOGBOOK_<NAME> variable (e.g. LOGBOOK_DATA_DIR) and from the \
                  TOML file: flags win over variables, variables over the file, the file over the defaults. \
                  `logbook config` prints the result and where each value came from."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The settings every command uses. Each flag wins over its `LOGBOOK_*` variable, which wins over
/// the TOML file, which wins over the default (`logbook config` shows the result).
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// TOML file with any of the settings (see `logbook config`; an unknown key is an error).
    #[arg(long, env = "LOGBOOK_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the embedded store and (by default) the signing key. [default: ./logbook-data]
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of the embedded one: postgres://USER@HOST:PORT/DB (several
    /// Logbook processes can share it) or sqlite://PATH. A URL with a password belongs in
    /// LOGBOOK_DATABASE_URL or LOGBOOK_DATABASE_URL_FILE, not on the command line.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<crate::config::DatabaseUrl>,
    /// Checkpoint signing key (signed-note form). [default: <data-dir>/checkpoint-signing.key,
    /// generated at first use]
    #[arg(long, global = true, value_name = "FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Checkpoint origins are <origin-prefix>/<organization>. [default: logbook.local]
    #[arg(long, global = true)]
    pub origin_prefix: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Recompute every log from its stored events and check every tile and checkpoint.
    /// Exit 0: intact; 1: damaged (the first bad seq is named); 2: usage or I/O error.
    Verify(VerifyArgs),
    /// Administration from the command line.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write the events the filters select, newest first, as CSV or NDJSON on stdout or to a
    /// file (the export is itself recorded in the log as "Audit Log Exported").
    Export(ExportArgs),
    /// Fill a store with realistic demo events through the real append path.
    Demo(DemoArgs),
    /// Copy every log, checkpoint and API token from one store to another (e.g. SQLite to
    /// PostgreSQL), then verify that the copy has the same roots.
    MigrateStore(MigrateArgs),
    /// Print the effective configuration (secrets redacted) and where each value came from.
    /// Takes the flags of `serve`, to show what a `serve` with them would use.
    Config(ConfigArgs),
    /// Be a witness for other logs (C2SP tlog-witness): cosign their checkpoints after checking
    /// each extends the last one cosigned. Its key and state are in --data-dir (`witness.key`,
    /// `witness.db`); it opens no log store.
    #[command(subcommand)]
    Witness(WitnessCommand),
}

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Serve `POST /add-checkpoint`. The witness key is generated at first start.
    Serve(WitnessServeArgs),
    /// Print the witness's verifier key (generating the key if there is none yet), for the
    /// logs' `--witness URL=KEY`.
    Key(WitnessNameArgs),
    /// Witness a log: its origin line and its checkpoint verifier key.
    AddLog(WitnessAddLogArgs),
}

#[derive(Debug, Args)]
pub struct WitnessServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub name: WitnessNameArgs,
}

#[derive(Debug, Args)]
pub struct WitnessNameArgs {
    /// The witness's name in its cosignatures, conventionally its URL without the scheme
    /// (e.g. witness.example.com/w1); fixed when the key is generated. [default: logbook-witness]
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct WitnessAddLogArgs {
    /// The log's origin, the first line of its checkpoints (e.g. logbook.example/default).
    #[arg(long)]
    pub origin: String,
    /// The log's checkpoint verifier key (`name+id+base64`, as `logbook serve` prints it).
    #[arg(long)]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The source: sqlite://PATH or postgres://… (the embedded store of a data directory is
    /// sqlite://<data-dir>/logbook.db). Also LOGBOOK_MIGRATE_FROM, to keep a password off the
    /// command line.
    #[arg(long, env = "LOGBOOK_MIGRATE_FROM", hide_env_values = true)]
    pub from: crate::config::DatabaseUrl,
    /// The destination, which must hold no events yet (also LOGBOOK_MIGRATE_TO).
    #[arg(long, env = "LOGBOOK_MIGRATE_TO", hide_env_values = true)]
    pub to: crate::config::DatabaseUrl,
    #[command(flatten)]
    pub key: PublicKeyArgs,
}

/// The key checkpoints are checked with.
#[derive(Debug, Clone, Args)]
pub struct PublicKeyArgs {
    /// The verifier key (`name+id+base64`, or a file holding it). [default: derived from the
    /// signing key]
    #[arg(long)]
    pub public_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub key: PublicKeyArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

/// The server's settings (flags of `serve` and `config`).
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Also write every new checkpoint here, outside the database (its history is kept), and
    /// check at start and before every checkpoint that the log extends the newest one there.
    #[arg(long)]
    pub witness_dir: Option<PathBuf>,
    /// Refuse to start when a log does not extend its trusted checkpoints (the witness
    /// directory's, the store's). Without it such a log is still served for reading and
    /// export, but takes no appends and signs nothing.
    #[arg(long)]
    pub refuse_damaged: bool,
    /// A C2SP witness to send every new checkpoint to for cosigning, as URL=VERIFIER_KEY (its
    /// URL prefix, and the cosignature verifier key `logbook witness key` prints); repeatable.
    /// Also LOGBOOK_WITNESSES (space-separated) or `[[witness]]` tables in the file.
    #[arg(long = "witness", value_name = "URL=VERIFIER_KEY")]
    pub witness: Vec<String>,
    /// How many witnesses must cosign a checkpoint for it to count as witnessed.
    /// [default: all configured]
    #[arg(long, value_name = "K")]
    pub witness_quorum: Option<usize>,
    /// The console's address as users reach it, for setup and invitation links; an https://
    /// address also marks the session cookie Secure. [default: http://<listen>]
    #[arg(long)]
    pub public_url: Option<String>,
    /// SMTP relay for invitation emails (STARTTLS unless --smtp-tls says otherwise). Without
    /// it, invitation links are shown to the inviting admin only.
    #[arg(long)]
    pub smtp_host: Option<String>,
    /// [default: 25]
    #[arg(long)]
    pub smtp_port: Option<u16>,
    /// Sender address of invitation emails. [default: logbook@<smtp-host>]
    #[arg(long)]
    pub smtp_from: Option<String>,
    /// SMTP user name. The password is read from LOGBOOK_SMTP_PASSWORD or from the file that
    /// LOGBOOK_SMTP_PASSWORD_FILE names, never from a flag.
    #[arg(long)]
    pub smtp_username: Option<String>,
    /// Failed sign-ins allowed from one address (an IPv6 /64) within the window; then its
    /// sign-ins are refused (429) until the window ends. 0 turns this off. [default: 30]
    #[arg(long)]
    pub sign_in_max_failures: Option<u32>,
    /// The window of --sign-in-max-failures, in minutes (1 to 1440), from an address's first
    /// failure. [default: 15]
    #[arg(long)]
    pub sign_in_window_minutes: Option<u64>,
    /// Seconds between two integrity self-checks (each log's newest part audited against its
    /// newest signed checkpoint; result in /metrics and on the Settings page); 0 turns them
    /// off. [default: 300]
    #[arg(long, value_name = "SECONDS")]
    pub self_check_interval: Option<u64>,
    /// Seconds between two full integrity self-checks (every log recomputed from its first
    /// entry against its newest signed checkpoint, page by page in the background, resumed
    /// after a restart; result in /metrics and on the Settings page); 0 turns them off.
    /// [default: 86400]
    #[arg(long, value_name = "SECONDS")]
    pub full_self_check_interval: Option<u64>,
    /// How the connection to the SMTP relay is encrypted: starttls (required, not
    /// opportunistic), tls (SMTPS, port 465) or none (a local relay; never with credentials).
    /// [default: starttls]
    #[arg(long)]
    pub smtp_tls: Option<logbook_accounts::SmtpTls>,
    /// Reverse proxies (comma-separated CIDR blocks or addresses) whose X-Forwarded-For (or
    /// Forwarded, see --forwarded-header) names the client. Events then record the client's
    /// address and the proxy's; the headers of any other peer are ignored. [default: none]
    #[arg(long, value_name = "CIDR,...")]
    pub trusted_proxies: Option<logbook_server::client_addr::TrustedProxies>,
    /// The header the trusted proxies write: x-forwarded-for or forwarded (RFC 7239).
    /// [default: x-forwarded-for]
    #[arg(long)]
    pub forwarded_header: Option<logbook_server::client_addr::ForwardedHeader>,
    /// Connections one address may hold open at once (trusted proxies are not limited); 0
    /// turns the limit off. [default: 64]
    #[arg(long)]
    pub max_connections_per_address: Option<usize>,
    /// Exports streaming at once; beyond it, 429. [default: 4]
    #[arg(long)]
    pub export_max_concurrent: Option<usize>,
    /// Exports one user may run at once. [default: 1]
    #[arg(long)]
    pub export_max_per_user: Option<usize>,
    /// A list or search of the audit log is stopped after this many seconds (503). [default: 30]
    #[arg(long, value_name = "SECONDS")]
    pub query_timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A checkpoint saved earlier (e.g. a copy of the witness directory's); repeatable. Catches
    /// truncation and wholesale rewrites of the store.
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoints: Vec<PathBuf>,
    /// A witness directory whose checkpoints (its history included) the log must match.
    /// [default: the configured witness_dir]
    #[arg(long)]
    pub witness_dir: Option<PathBuf>,
    #[command(flatten)]
    pub key: PublicKeyArgs,
    /// Only this organization.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an API token for a service; the token is printed once, on stdout.
    CreateToken(CreateTokenArgs),
    /// Revoke an API token: it stops working at once.
    RevokeToken(TokenArgs),
    /// List API tokens (names and state, never secrets).
    ListTokens(OrgArgs),
    /// Create a management user (for scripted set-ups); the password is read from stdin.
    Create(CreateUserArgs),
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    #[arg(long)]
    pub email: String,
    /// admin, analyst or auditor.
    #[arg(long, default_value = "admin")]
    pub role: String,
    /// Read the password from the first line of stdin (required: a password never goes on
    /// the command line, where other users can see it).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct CreateTokenArgs {
    #[command(flatten)]
    pub token: TokenArgs,
    /// What the token may record, comma-separated: `*` (every service code
    /// `<service>.<noun>.<verb>`), a prefix (`billing.*`, `login.*`), a code (`login.success`,
    /// `logout`), `actor:system` (the actor type `system`). The platform's own codes and the
    /// actor type `system` are refused unless listed. [default: *]
    #[arg(long, default_value = "*", value_parser = parse_grant)]
    pub actions: logbook_core::ActionGrant,
}

fn parse_grant(s: &str) -> Result<logbook_core::ActionGrant, String> {
    logbook_core::ActionGrant::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The token's name, e.g. the service that will use it.
    #[arg(long)]
    pub name: String,
    /// Organization. [default: default]
    #[arg(long, default_value = "default")]
    pub org: String,
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[arg(long, default_value = "default")]
    pub org: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Ndjson,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ExportFormat,
    /// Only this user (exact email or identifier).
    #[arg(long)]
    pub user: Option<String>,
    /// Only these actions (repeatable), by code, e.g. login.failed.
    #[arg(long = "action")]
    pub actions: Vec<String>,
    /// From this instant (RFC 3339) or day (YYYY-MM-DD, in --time-zone).
    #[arg(long)]
    pub from: Option<String>,
    /// Up to this instant, or through this day (inclusive).
    #[arg(long)]
    pub to: Option<String>,
    /// The zone for day bounds and the local Timestamp column (IANA name).
    #[arg(long, default_value = "UTC")]
    pub time_zone: String,
    #[arg(long, default_value = "default")]
    pub org: String,
    /// Write to this file instead of stdout (with a progress bar on a terminal).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many events to add.
    #[arg(long, default_value_t = 10_000)]
    pub events: u64,
    /// Spread them over this many days, ending now.
    #[arg(long, default_value_t = 180)]
    pub days: u64,
    /// Seed of the generator (the same seed gives the same events).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value = "default")]
    pub org: String,
    /// Add them even to a log that holds more than its set-up (the first admin, API tokens):
    /// fabricated events mixed into a log in use cannot be told apart but by `recorded_by`.
    #[arg(long)]
    pub force: bool,
}
