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
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
    pub witness_dir: Option<PathBuf>,
    pub signing_key_file: Option<PathBuf>,
    pub origin_prefix: Option<String>,
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
    pub database_url: Option<String>,
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
