//! The schema, applied at start under a transaction-scoped advisory lock so processes that
//! start together do not race; versions are recorded in `logbook_migrations`. And the refusal
//! to run on a server that would lose acknowledged events.

use deadpool_postgres::GenericClient;
use logbook_store::StoreError;

use crate::rows::pg;

const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("accounts.sql"),
    include_str!("search.sql"),
    include_str!("throttle.sql"),
    include_str!("pending.sql"),
    include_str!("sessions_client.sql"),
    include_str!("token_grants.sql"),
    include_str!("cosignatures.sql"),
    include_str!("self_check.sql"),
];

/// How many schema versions this build applies.
pub const MIGRATION_COUNT: usize = MIGRATIONS.len();

/// Advisory lock namespace of the migrations (first key of the two-key form).
const LOCK_MIGRATIONS: i32 = 0x4c42_0001;

pub(crate) async fn check_durability(c: &impl GenericClient) -> Result<(), StoreError> {
    for setting in ["fsync", "synchronous_commit"] {
        let v: String = c.query_one(&format!("SHOW {setting}"), &[]).await.map_err(pg)?.get(0);
        if v == "off" {
            return Err(StoreError::backend(format!(
                "PostgreSQL runs with {setting}=off: acknowledged events could be lost; turn it on"
            )));
        }
    }
    Ok(())
}

pub(crate) async fn migrate(c: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    // Up to date already: nothing to lock or create (a role without CREATE can run Logbook).
    let exists: bool =
        c.query_one("SELECT to_regclass('logbook_migrations') IS NOT NULL", &[]).await.map_err(pg)?.get(0);
    let current: Option<i32> = if exists {
        c.query_one("SELECT MAX(version) FROM logbook_migrations", &[]).await.map_err(pg)?.get(0)
    } else {
        None
    };
    if current == Some(MIGRATIONS.len() as i32) {
        return Ok(());
    }
    let tx = c.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&LOCK_MIGRATIONS]).await.map_err(pg)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS logbook_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(pg)?;
    let applied: i32 =
        tx.query_one("SELECT COALESCE(MAX(version), 0) FROM logbook_migrations", &[]).await.map_err(pg)?.get(0);
    for (n, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        tracing::info!(version = n + 1, "applying PostgreSQL migration");
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute("INSERT INTO logbook_migrations (version) VALUES ($1)", &[&((n + 1) as i32)]).await.map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}
