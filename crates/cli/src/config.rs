//! One configuration for every command, layered once: the defaults (declared here, from the
//! crates' own defaults), then the TOML file (`--config` or `LOGBOOK_CONFIG`), then `LOGBOOK_*`
//! variables (secrets also from the file a `LOGBOOK_*_FILE` variable names), then flags. Every
//! subcommand reads [`Config`], and the crates' settings are derived from it here only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use logbook_accounts::SmtpTls;
use logbook_integrity::keys::SigningKeyFile;
use logbook_log::cosigning::WitnessEndpoint;
use logbook_server::client_addr::{ForwardedHeader, TrustedProxies};
use serde::{Deserialize, Serialize};

/// The effective configuration. Field names are the TOML keys; each `LOGBOOK_<KEY>` variable and
/// `--<key>` flag (with `-` for `_`) sets the same field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database_url: Option<DatabaseUrl>,
    pub signing_key_file: Option<PathBuf>,
    pub origin_prefix: String,
    pub public_key: Option<String>,
    pub witness_dir: Option<PathBuf>,
    /// Refuse to serve a log that does not extend its trusted checkpoints (otherwise it is
    /// served read-only).
    pub refuse_damaged: bool,
    /// The C2SP witnesses (`[[witness]]` tables `url`, `key`; `LOGBOOK_WITNESSES`; `--witness`).
    pub witness: Witnesses,
    pub witness_quorum: Option<usize>,
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: u16,
    pub smtp_from: Option<String>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<Secret>,
    pub smtp_tls: SmtpTls,
    pub sign_in_max_failures: u32,
    pub sign_in_window_minutes: u64,
    /// Seconds; 0 turns the self-check off.
    pub self_check_interval: u64,
    /// Seconds; 0 turns the full self-check off.
    pub full_self_check_interval: u64,
    pub trusted_proxies: TrustedProxies,
    pub forwarded_header: ForwardedHeader,
    pub max_connections_per_address: usize,
    pub export_max_concurrent: usize,
    pub export_max_per_user: usize,
    /// Seconds.
    pub query_timeout: u64,
    /// The tracing filter; unset, `info` for `serve` and `warn` for every other command.
    pub log: Option<String>,
}

/// One setting as the command line, the environment and `logbook config` know it.
#[derive(Debug)]
pub struct Setting {
    pub key: &'static str,
    /// Whether it has a `--flag` (secrets never do: other users can read a command line).
    pub flag: bool,
    /// Shown redacted, and also read from the file `LOGBOOK_<KEY>_FILE` names.
    pub secret: bool,
}

const fn s(key: &'static str, flag: bool, secret: bool) -> Setting {
    Setting { key, flag, secret }
}

/// Every setting, in the order `logbook config` prints them.
pub const SETTINGS: &[Setting] = &[
    s("data_dir", true, false),
    s("database_url", true, true),
    s("signing_key_file", true, false),
    s("origin_prefix", true, false),
    s("public_key", true, false),
    s("witness_dir", true, false),
    s("refuse_damaged", true, false),
    s("witness", true, false),
    s("witness_quorum", true, false),
    s("listen", true, false),
    s("public_url", true, false),
    s("smtp_host", true, false),
    s("smtp_port", true, false),
    s("smtp_from", true, false),
    s("smtp_username", true, false),
    s("smtp_password", false, true),
    s("smtp_tls", true, false),
    s("sign_in_max_failures", true, false),
    s("sign_in_window_minutes", true, false),
    s("self_check_interval", true, false),
    s("full_self_check_interval", true, false),
    s("trusted_proxies", true, false),
    s("forwarded_header", true, false),
    s("max_connections_per_address", true, false),
    s("export_max_concurrent", true, false),
    s("export_max_per_user", true, false),
    s("query_timeout", true, false),
    s("log", false, false),
];

pub fn env_name(key: &str) -> String {
    match key {
        // One variable holds them all (space-separated), so it is named in the plural.
        "witness" => "LOGBOOK_WITNESSES".into(),
        _ => format!("LOGBOOK_{}", key.to_ascii_uppercase()),
    }
}

pub fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

impl Default for Config {
    /// The defaults of the crates themselves, so that each is declared once.
    fn default() -> Self {
        let data_dir = PathBuf::from("logbook-data");
        let server = logbook_server::Settings::new(data_dir.clone());
        Self {
            data_dir,
            database_url: None,
            signing_key_file: None,
            origin_prefix: server.origin_prefix,
            public_key: None,
            witness_dir: None,
            refuse_damaged: false,
            witness: Witnesses::default(),
            witness_quorum: None,
            listen: server.listen,
            public_url: None,
            smtp_host: None,
            smtp_port: 25,
            smtp_from: None,
            smtp_username: None,
            smtp_password: None,
            smtp_tls: SmtpTls::default(),
            sign_in_max_failures: server.sign_in_throttle.max_failures,
            sign_in_window_minutes: server.sign_in_throttle.minutes(),
            self_check_interval: server.self_check_interval.as_secs(),
            full_self_check_interval: server.full_self_check_interval.as_secs(),
            trusted_proxies: server.trusted_proxies,
            forwarded_header: server.forwarded_header,
            max_connections_per_address: server.max_connections_per_address,
            export_max_concurrent: server.export_max_concurrent,
            export_max_per_user: server.export_max_per_user,
            query_timeout: server.query_timeout.as_secs(),
            log: None,
        }
    }
}

/// What the flags of this invocation set (only what was given).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Flags {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<DatabaseUrl>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness_dir: Option<PathBuf>,
    /// `--witness URL=KEY`, each flag one item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witness_quorum: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refuse_damaged: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<SmtpTls>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_max_failures: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sign_in_window_minutes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_check_interval: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_self_check_interval: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<TrustedProxies>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_header: Option<ForwardedHeader>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_address: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_max_concurrent: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_max_per_user: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_timeout: Option<u64>,
}

/// A provider with the metadata we want `logbook config` to show.
struct Named<P> {
    inner: P,
    metadata: fn() -> Metadata,
}

impl<P: Provider> Provider for Named<P> {
    fn metadata(&self) -> Metadata {
        (self.metadata)()
    }
    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        self.inner.data()
    }
}

/// The `LOGBOOK_<KEY>` variables of the known settings, as strings: typed fields are converted
/// when extracted (`extract_lossy`), so a password of digits stays a string. Other `LOGBOOK_*`
/// variables (the test suites', `LOGBOOK_MIGRATE_FROM`, …) are not settings and are left alone.
struct EnvVars;

impl Provider for EnvVars {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable").interpolater(|_: &Profile, k: &[&str]| env_name(&k.join(".")))
    }
    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let mut dict = Dict::new();
        for setting in SETTINGS {
            if let Some(v) = std::env::var_os(env_name(setting.key)).filter(|v| !v.is_empty()) {
                let v = v.into_string().map_err(|_| format!("{} is not UTF-8", env_name(setting.key)))?;
                dict.insert(setting.key.to_owned(), Value::from(v));
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Secrets from the files `LOGBOOK_<KEY>_FILE` names (for container secrets); trailing newline
/// removed. Merged below [`EnvVars`], so `LOGBOOK_<KEY>` itself wins.
struct SecretFiles;

impl Provider for SecretFiles {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_: &Profile, k: &[&str]| format!("{}_FILE", env_name(&k.join("."))))
    }
    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        let mut dict = Dict::new();
        for setting in SETTINGS.iter().filter(|s| s.secret) {
            let var = format!("{}_FILE", env_name(setting.key));
            if let Some(path) = std::env::var_os(&var).filter(|v| !v.is_empty()) {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("reading {var} ({}): {e}", Path::new(&path).display()))?;
                dict.insert(setting.key.to_owned(), Value::from(text.trim_end_matches(['\n', '\r']).to_owned()));
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// The layers, lowest first.
pub fn figment(config_file: Option<&Path>, flags: &Flags) -> Figment {
    let mut f = Figment::new()
        .merge(Named { inner: Serialized::defaults(Config::default()), metadata: || Metadata::named("default") });
    if let Some(path) = config_file {
        f = f.merge(Toml::file_exact(path));
    }
    f.merge(SecretFiles).merge(EnvVars).merge(Named {
        inner: Serialized::defaults(flags.clone()),
        metadata: || Metadata::named("flag").interpolater(|_: &Profile, k: &[&str]| flag_name(&k.join("."))),
    })
}

impl Config {
    /// Layers and checks the configuration. `config_file` is `--config` / `LOGBOOK_CONFIG`.
    pub fn load(config_file: Option<&Path>, flags: &Flags) -> anyhow::Result<(Self, Figment)> {
        let figment = figment(config_file, flags);
        let config: Config = figment.extract_lossy().map_err(|e| anyhow::anyhow!(describe_error(e)))?;
        config.validate()?;
        Ok((config, figment))
    }

    fn validate(&self) -> anyhow::Result<()> {
        let m = self.sign_in_window_minutes;
        anyhow::ensure!((1..=1440).contains(&m), "sign_in_window_minutes must be 1 to 1440, not {m}");
        anyhow::ensure!(
            self.export_max_concurrent >= 1 && self.export_max_per_user >= 1,
            "export_max_concurrent and export_max_per_user must be at least 1"
        );
        anyhow::ensure!(self.query_timeout >= 1, "query_timeout must be at least 1 second");
        for w in &self.witness.0 {
            w.check().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        }
        if let Some(k) = self.witness_quorum {
            let n = self.witness.0.len();
            anyhow::ensure!(n > 0, "configuration: witness_quorum is set but no witness is configured");
            anyhow::ensure!(
                (1..=n).contains(&k),
                "configuration: witness_quorum must be 1 to the number of witnesses ({n}), not {k}"
            );
        }
        if let Some(smtp) = self.server_settings().smtp {
            // Credentials over an unencrypted connection are refused here, at load, rather
            // than at the first invitation.
            smtp.check().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        }
        Ok(())
    }

    pub fn store(&self) -> StoreLocation {
        StoreLocation { data_dir: self.data_dir.clone(), database_url: self.database_url.clone() }
    }

    /// The checkpoint signing key every command uses.
    pub fn signing_key(&self) -> SigningKeyFile {
        SigningKeyFile::resolve(self.signing_key_file.as_deref(), &self.data_dir, &self.origin_prefix)
    }

    /// The log service's settings (one-shot commands; `serve` derives them through
    /// [`Config::server_settings`]).
    pub fn log_config(&self) -> logbook_log::LogConfig {
        logbook_log::LogConfig {
            origin_prefix: self.origin_prefix.clone(),
            witness_dir: self.witness_dir.clone(),
            refuse_damaged: self.refuse_damaged,
            witnesses: self.witness.0.clone(),
            witness_quorum: self.witness_quorum,
            ..logbook_log::LogConfig::default()
        }
    }

    pub fn server_settings(&self) -> logbook_server::Settings {
        let mut s = logbook_server::Settings::new(self.data_dir.clone());
        s.listen = self.listen;
        s.witness_dir = self.witness_dir.clone();
        s.refuse_damaged = self.refuse_damaged;
        s.witnesses = self.witness.0.clone();
        s.witness_quorum = self.witness_quorum;
        s.signing_key_file = self.signing_key_file.clone();
        s.origin_prefix = self.origin_prefix.clone();
        s.public_url = self.public_url.clone();
        s.self_check_interval = Duration::from_secs(self.self_check_interval);
        s.full_self_check_interval = Duration::from_secs(self.full_self_check_interval);
        s.smtp = self.smtp_host.as_ref().map(|host| logbook_accounts::SmtpConfig {
            port: self.smtp_port,
            from: self.smtp_from.clone().unwrap_or_else(|| format!("logbook@{host}")),
            username: self.smtp_username.clone(),
            password: self.smtp_password.as_ref().map(|p| p.0.clone()),
            host: host.clone(),
            tls: self.smtp_tls,
        });
        s.sign_in_throttle.max_failures = self.sign_in_max_failures;
        s.sign_in_throttle.window = Duration::from_secs(self.sign_in_window_minutes * 60);
        s.trusted_proxies = self.trusted_proxies.clone();
        s.forwarded_header = self.forwarded_header;
        s.max_connections_per_address = self.max_connections_per_address;
        s.export_max_concurrent = self.export_max_concurrent;
        s.export_max_per_user = self.export_max_per_user;
        s.query_timeout = Duration::from_secs(self.query_timeout);
        s
    }

    /// The value of one setting as `logbook config` shows it: TOML, secrets redacted.
    fn shown(&self, key: &str) -> Option<String> {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let p = |p: &Path| q(&p.display().to_string());
        match key {
            "data_dir" => Some(p(&self.data_dir)),
            "database_url" => self.database_url.as_ref().map(|u| q(&u.redacted())),
            "signing_key_file" => self.signing_key_file.as_deref().map(p),
            "origin_prefix" => Some(q(&self.origin_prefix)),
            "public_key" => self.public_key.as_deref().map(q),
            "witness_dir" => self.witness_dir.as_deref().map(p),
            "refuse_damaged" => Some(self.refuse_damaged.to_string()),
            "witness" => (!self.witness.0.is_empty()).then(|| {
                let items: Vec<String> = self.witness.0.iter().map(|w| q(&format!("{}={}", w.url, w.key))).collect();
                format!("[{}]", items.join(", "))
            }),
            "witness_quorum" => self.witness_quorum.map(|k| k.to_string()),
            "listen" => Some(q(&self.listen.to_string())),
            "public_url" => self.public_url.as_deref().map(q),
            "smtp_host" => self.smtp_host.as_deref().map(q),
            "smtp_port" => Some(self.smtp_port.to_string()),
            "smtp_from" => self.smtp_from.as_deref().map(q),
            "smtp_username" => self.smtp_username.as_deref().map(q),
            "smtp_password" => self.smtp_password.as_ref().map(|_| q("<redacted>")),
            "smtp_tls" => Some(q(match self.smtp_tls {
                SmtpTls::Starttls => "starttls",
                SmtpTls::Tls => "tls",
                SmtpTls::None => "none",
            })),
            "sign_in_max_failures" => Some(self.sign_in_max_failures.to_string()),
            "sign_in_window_minutes" => Some(self.sign_in_window_minutes.to_string()),
            "self_check_interval" => Some(self.self_check_interval.to_string()),
            "full_self_check_interval" => Some(self.full_self_check_interval.to_string()),
            "trusted_proxies" => Some(q(&self.trusted_proxies.to_string())),
            "forwarded_header" => Some(q(match self.forwarded_header {
                ForwardedHeader::XForwardedFor => "x-forwarded-for",
                ForwardedHeader::Forwarded => "forwarded",
            })),
            "max_connections_per_address" => Some(self.max_connections_per_address.to_string()),
            "export_max_concurrent" => Some(self.export_max_concurrent.to_string()),
            "export_max_per_user" => Some(self.export_max_per_user.to_string()),
            "query_timeout" => Some(self.query_timeout.to_string()),
            "log" => self.log.as_deref().map(q),
            _ => None,
        }
    }

    /// `logbook config`: every setting, where its value came from, secrets redacted. The output
    /// is itself a valid configuration file (sources and unset settings are comments).
    pub fn render(&self, figment: &Figment) -> String {
        let mut out = String::new();
        for setting in SETTINGS {
            let source = source_of(figment, setting.key);
            match self.shown(setting.key) {
                Some(v) => out.push_str(&format!("{} = {v}  # {source}\n", setting.key)),
                None => out.push_str(&format!("# {} is not set  ({})\n", setting.key, how_to_set(setting))),
            }
        }
        let key = self.signing_key();
        out.push_str(&format!(
            "# signing key in use: {}{}\n",
            key.path().display(),
            if key.is_configured() { "" } else { " (the data directory's, generated at first start)" }
        ));
        out.push_str(&format!("# store in use: {}\n", self.store().describe()));
        out
    }
}

fn how_to_set(setting: &Setting) -> String {
    let mut ways = Vec::new();
    if setting.flag {
        ways.push(flag_name(setting.key));
    }
    ways.push(env_name(setting.key));
    if setting.secret {
        ways.push(format!("{}_FILE", env_name(setting.key)));
    }
    ways.push(format!("`{}` in the file", setting.key));
    ways.join(", ")
}

/// Where the value of `key` came from: `default`, `file PATH`, `environment variable NAME`,
/// `flag --NAME`.
pub fn source_of(figment: &Figment, key: &str) -> String {
    let Some(md) = figment.find_metadata(key) else { return "default".into() };
    if let Some(path) = md.source.as_ref().and_then(|s| s.file_path()) {
        return format!("file {}", path.display());
    }
    if md.name == "default" {
        return "default".into();
    }
    format!("{} {}", md.name, md.interpolate(&Profile::Default, &[key]))
}

/// figment's errors name the key and the layer it came from; say that in our words.
fn describe_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let from = e.metadata.as_ref().map(|md| match md.source.as_ref().and_then(|s| s.file_path()) {
                Some(path) => format!(" (in the configuration file {})", path.display()),
                None if md.name == "default" => String::new(),
                None => {
                    let key: Vec<&str> = e.path.iter().map(String::as_str).collect();
                    format!(" (from {} {})", md.name, md.interpolate(&Profile::Default, &key))
                }
            });
            let key = if e.path.is_empty() { String::new() } else { format!("{}: ", e.path.join(".")) };
            format!("configuration: {key}{}{}", e.kind, from.unwrap_or_default())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The store location.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    pub data_dir: PathBuf,
    pub database_url: Option<DatabaseUrl>,
}

impl StoreLocation {
    pub fn describe(&self) -> String {
        match &self.database_url {
            None => format!("{} (embedded SQLite)", self.data_dir.join(logbook_store_sqlite::FILE_NAME).display()),
            Some(url) => url.redacted(),
        }
    }
}

/// A database URL. It may hold a password, so its `Debug` shows only the scheme.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password (`user:password@` or a `password=` parameter) replaced.
    pub fn redacted(&self) -> String {
        let url = &self.0;
        let mut out = match url.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, tail) = rest.find(['/', '?']).map_or((rest, ""), |i| rest.split_at(i));
                match authority.rsplit_once('@') {
                    Some((userinfo, host)) => match userinfo.split_once(':') {
                        Some((user, _)) => format!("{scheme}://{user}:<redacted>@{host}{tail}"),
                        None => url.clone(),
                    },
                    None => url.clone(),
                }
            }
            None => url.clone(),
        };
        if let Some((head, query)) = out.split_once('?') {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=<redacted>"),
                    _ => kv.to_owned(),
                })
                .collect();
            out = format!("{head}?{}", query.join("&"));
        }
        out
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.0.split_once(':').map_or("?", |(s, _)| s);
        write!(f, "DatabaseUrl({scheme}://<redacted>)")
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// The configured witnesses. Read from `[[witness]]` tables (`url`, `key`), from `URL=KEY`
/// strings (a list of them, or one string of them separated by spaces, as `LOGBOOK_WITNESSES`
/// holds), and checked as they are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Witnesses(pub Vec<WitnessEndpoint>);

#[derive(Deserialize)]
#[serde(untagged)]
enum WitnessItem {
    Pair(String),
    Table { url: String, key: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WitnessList {
    Spaced(String),
    Items(Vec<WitnessItem>),
}

impl<'de> Deserialize<'de> for Witnesses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let items = match WitnessList::deserialize(d)? {
            WitnessList::Spaced(s) => s.split_whitespace().map(|i| WitnessItem::Pair(i.to_owned())).collect(),
            WitnessList::Items(items) => items,
        };
        items
            .into_iter()
            .map(|i| match i {
                WitnessItem::Pair(p) => WitnessEndpoint::parse(&p),
                WitnessItem::Table { url, key } => {
                    let w = WitnessEndpoint { url: url.trim_end_matches('/').to_owned(), key };
                    w.check().map(|_| w)
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Witnesses)
            .map_err(D::Error::custom)
    }
}

impl Serialize for Witnesses {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for w in &self.0 {
            seq.serialize_element(&format!("{}={}", w.url, w.key))?;
        }
        seq.end()
    }
}

/// A secret setting: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
