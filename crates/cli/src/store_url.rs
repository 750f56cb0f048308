//! The backend is chosen once, here, from the URL.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use logbook_store::Store;
use logbook_store_sqlite::SqliteStore;

use crate::config::StoreLocation;

pub async fn open(loc: &StoreLocation) -> anyhow::Result<Arc<dyn Store>> {
    match loc.database_url.as_ref().map(|u| u.expose()) {
        None => Ok(Arc::new(
            SqliteStore::open(&loc.data_dir)
                .await
                .with_context(|| format!("opening the store in {}", loc.data_dir.display()))?,
        )),
        Some(url) => open_url(url).await,
    }
}

async fn open_url(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let Some((scheme, rest)) = url.split_once(':') else {
        bail!("the database URL must look like sqlite://PATH or postgres://USER@HOST/DB");
    };
    match scheme {
        "sqlite" => {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                bail!("sqlite:// needs a file path, e.g. sqlite:///var/lib/logbook/logbook.db");
            }
            Ok(Arc::new(SqliteStore::open_file(Path::new(path)).await.with_context(|| format!("opening {path}"))?))
        }
        "postgres" | "postgresql" => {
            Ok(Arc::new(logbook_store_postgres::PgStore::connect(url).await.context("opening the PostgreSQL store")?))
        }
        other => bail!("unsupported database URL scheme {other:?}: use sqlite://PATH or postgres://…"),
    }
}
