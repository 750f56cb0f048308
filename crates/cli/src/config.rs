//! Configuration: flags, then `LOGBOOK_*` variables (both handled by clap), then the optional
//! TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::cli::StoreArgs;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<DatabaseUrl>,
    pub listen: Option<SocketAddr>,
    pub witness_dir: Option<PathBuf>,
    pub signing_key_file: Option<PathBuf>,
    pub origin_prefix: Option<String>,
    pub public_url: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_from: Option<String>,
    pub smtp_username: Option<String>,
    pub sign_in_max_failures: Option<u32>,
    pub sign_in_window_minutes: Option<u64>,
    /// Seconds; 0 turns the self-check off.
    pub self_check_interval: Option<u64>,
}

/// A secret from `NAME` or from the file `NAME_FILE` names (trailing newline removed).
pub fn secret_from_env(name: &str) -> anyhow::Result<Option<String>> {
    if let Ok(v) = std::env::var(name) {
        return Ok(Some(v));
    }
    match std::env::var(format!("{name}_FILE")) {
        Ok(path) => {
            let v = std::fs::read_to_string(&path).with_context(|| format!("reading {name}_FILE ({path})"))?;
            Ok(Some(v.trim_end_matches(['\n', '\r']).to_owned()))
        }
        Err(_) => Ok(None),
    }
}

pub fn load_file(path: Option<&Path>) -> anyhow::Result<FileConfig> {
    let Some(path) = path else { return Ok(FileConfig::default()) };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("in the configuration file {}", path.display()))
}

/// The store location after merging flags, environment and file.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    pub data_dir: PathBuf,
    pub database_url: Option<DatabaseUrl>,
}

pub fn store_location(args: &StoreArgs, file: &FileConfig) -> StoreLocation {
    StoreLocation {
        data_dir: args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("logbook-data")),
        database_url: args.database_url.clone().or_else(|| file.database_url.clone()),
    }
}

pub const DEFAULT_ORIGIN_PREFIX: &str = "logbook.local";

/// A database URL. It may hold a password, so its `Debug` shows only the scheme.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_never_show_their_password_in_debug() {
        let url: DatabaseUrl = "postgres://app:s3cret@db:5432/logbook".parse().unwrap();
        let loc = StoreLocation { data_dir: "d".into(), database_url: Some(url) };
        let shown = format!("{loc:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://<redacted>"), "{shown}");
    }
}
