use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "logbook", version, about = "A tamper-evident audit log: a signed Merkle log anyone can verify.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the store is. Every command that opens one takes these.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory for the embedded store, the signing key and (by default) nothing else.
    /// [default: ./logbook-data]
    #[arg(long, env = "LOGBOOK_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Use this database instead of the embedded one: postgres://USER@HOST:PORT/DB (several
    /// Logbook processes can share it) or sqlite://PATH.
    #[arg(long, env = "LOGBOOK_DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<crate::config::DatabaseUrl>,
    /// TOML file with any of: data_dir, database_url, listen, witness_dir, signing_key_file,
    /// origin_prefix. Flags and environment variables win over it.
    #[arg(long, env = "LOGBOOK_CONFIG", global = true)]
    pub config: Option<PathBuf>,
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
    /// Write the events the filters select, newest first, as CSV or NDJSON on stdout (the
    /// export is itself recorded in the log as "Audit Log Exported").
    Export(ExportArgs),
    /// Fill a store with realistic demo events through the real append path.
    Demo(DemoArgs),
    /// Copy every log, checkpoint and API token from one store to another (e.g. SQLite to
    /// PostgreSQL), then verify that the copy has the same roots.
    MigrateStore(MigrateArgs),
    /// Measure append, verify and proof speed against the raw engine, in one run.
    Bench(crate::bench::BenchArgs),
    /// Measure the audit log's queries, export and API overhead on a demo-filled store.
    BenchQuery(crate::bench_query::BenchQueryArgs),
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
    /// Where the checkpoint signing key is (to check both stores' checkpoints).
    #[arg(long, env = "LOGBOOK_DATA_DIR", default_value = "logbook-data")]
    pub data_dir: PathBuf,
    /// The verifier key, instead of deriving it from the signing key.
    #[arg(long, env = "LOGBOOK_PUBLIC_KEY")]
    pub public_key: Option<String>,
    /// Checkpoint origins are <origin-prefix>/<organization>.
    #[arg(long, env = "LOGBOOK_ORIGIN_PREFIX", default_value = "logbook.local")]
    pub origin_prefix: String,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on. [default: 127.0.0.1:8080]
    #[arg(long, env = "LOGBOOK_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Also write every new checkpoint here, outside the database.
    #[arg(long, env = "LOGBOOK_WITNESS_DIR")]
    pub witness_dir: Option<PathBuf>,
    /// Checkpoint signing key (signed-note form). [default: <data-dir>/checkpoint-signing.key,
    /// generated at first start]
    #[arg(long, env = "LOGBOOK_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Checkpoint origins are <origin-prefix>/<organization>. [default: logbook.local]
    #[arg(long, env = "LOGBOOK_ORIGIN_PREFIX")]
    pub origin_prefix: Option<String>,
    /// The console's address as users reach it, for setup and invitation links; an https://
    /// address also marks the session cookie Secure. [default: http://<listen>]
    #[arg(long, env = "LOGBOOK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// SMTP relay for invitation emails (plain SMTP, e.g. the local MTA). Without it,
    /// invitation links are shown to the inviting admin only.
    #[arg(long, env = "LOGBOOK_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// [default: 25]
    #[arg(long, env = "LOGBOOK_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// Sender address of invitation emails. [default: logbook@<smtp-host>]
    #[arg(long, env = "LOGBOOK_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// SMTP user name. The password is read from LOGBOOK_SMTP_PASSWORD or from the file that
    /// LOGBOOK_SMTP_PASSWORD_FILE names, never from a flag.
    #[arg(long, env = "LOGBOOK_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    /// Failed sign-ins allowed from one address (an IPv6 /64) within the window; then its
    /// sign-ins are refused (429) until the window ends. 0 turns this off. [default: 30]
    #[arg(long, env = "LOGBOOK_SIGN_IN_MAX_FAILURES")]
    pub sign_in_max_failures: Option<u32>,
    /// The window of --sign-in-max-failures, in minutes, from an address's first failure.
    /// [default: 15]
    #[arg(long, env = "LOGBOOK_SIGN_IN_WINDOW_MINUTES", value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub sign_in_window_minutes: Option<u64>,
    /// Seconds between two integrity self-checks (each log's newest part audited against its
    /// newest signed checkpoint; result in /metrics and on the Settings page); 0 turns them
    /// off. [default: 300]
    #[arg(long, env = "LOGBOOK_SELF_CHECK_INTERVAL", value_name = "SECONDS")]
    pub self_check_interval: Option<u64>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// A checkpoint saved earlier (e.g. from the witness directory); repeatable. Catches
    /// truncation and wholesale rewrites of the store.
    #[arg(long = "checkpoint", value_name = "FILE")]
    pub checkpoints: Vec<PathBuf>,
    /// The verifier key (`name+id+base64`, or a file holding it). [default: derived from the
    /// signing key in the data directory]
    #[arg(long, env = "LOGBOOK_PUBLIC_KEY")]
    pub public_key: Option<String>,
    /// Checkpoint origins are <origin-prefix>/<organization>. [default: logbook.local]
    #[arg(long, env = "LOGBOOK_ORIGIN_PREFIX")]
    pub origin_prefix: Option<String>,
    /// Only this organization.
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an API token for a service; the token is printed once, on stdout.
    CreateToken(TokenArgs),
    /// Revoke an API token: it stops working at once.
    RevokeToken(TokenArgs),
    /// List API tokens (names and state, never secrets).
    ListTokens(OrgArgs),
    /// Create a management user (for scripted set-ups); the password is read from stdin.
    Create(CreateUserArgs),
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    #[command(flatten)]
    pub store: StoreArgs,
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
pub struct TokenArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The token's name, e.g. the service that will use it.
    #[arg(long)]
    pub name: String,
    /// Organization. [default: default]
    #[arg(long, default_value = "default")]
    pub org: String,
}

#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(flatten)]
    pub store: StoreArgs,
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
    #[command(flatten)]
    pub store: StoreArgs,
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
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub store: StoreArgs,
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
}
