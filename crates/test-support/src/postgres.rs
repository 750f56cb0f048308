//! Fresh PostgreSQL databases, on the server named by `LOGBOOK_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, trust auth).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::NoTls;

use crate::skip::{skip, Needs};

/// The administrative connection's URL.
pub fn admin_url() -> String {
    std::env::var("LOGBOOK_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Creates an empty database and returns its URL. `None` when no PostgreSQL answers: the skip
/// is then reported (see [`crate::skip`]), or the test fails if `LOGBOOK_REQUIRE_POSTGRES` is set.
pub async fn fresh_database() -> Option<String> {
    static N: AtomicU64 = AtomicU64::new(0);
    let admin = admin_url();
    // A server that is there answers at once; the bound is only for an address that swallows
    // packets, and is generous so that a busy machine is not mistaken for a missing server.
    let connected = tokio::time::timeout(Duration::from_secs(30), tokio_postgres::connect(&admin, NoTls)).await;
    let (client, conn) = match connected {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return unavailable(&e.to_string()),
        Err(_) => return unavailable("connection timed out"),
    };
    tokio::spawn(conn);
    let name = format!(
        "logbook_t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0)
    );
    if let Err(e) = client.batch_execute(&format!("CREATE DATABASE {name}")).await {
        return unavailable(&format!("cannot create a test database: {e}"));
    }
    let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap_or(admin);
    Some(format!("{base}/{name}"))
}

fn unavailable(why: &str) -> Option<String> {
    skip(
        Needs::Postgres,
        &format!(
            "PostgreSQL not reachable at {} ({why}); set LOGBOOK_TEST_POSTGRES_URL to run the PostgreSQL tests",
            admin_url()
        ),
    );
    None
}
