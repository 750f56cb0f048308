//! Logbook's test harness, shared by every integration test of the workspace (and used by
//! nothing else: `publish = false`, a dev-dependency only).
//!
//! - [`TestApp`]: the real application on port 0 with a fresh store of either [`Backend`]
//!   (zero-to-production's `spawn_app`), with [`TestApp::builder`] for a manual clock, another
//!   seed or settings; and [`on_both_stores!`], which runs a test on both backends;
//! - [`postgres::fresh_database`]: an empty PostgreSQL database per test;
//! - [`skip`]: a test that cannot run here says so where a developer and CI see it, or fails
//!   where it must run (`LOGBOOK_REQUIRE_*`);
//! - [`wait`]: waiting for the event a test means, with one generous bound, never sleeping;
//! - [`witness`]: a `logbook witness` in-process on port 0, and [`toylog`], a log in memory
//!   whose checkpoints and proofs it can be sent (or a fork of it).

#![allow(clippy::unwrap_used)]

pub mod app;
pub mod postgres;
pub mod skip;
pub mod toylog;
pub mod wait;
pub mod witness;

pub use app::{client, Backend, Session, Spawn, TestApp, USER_AGENT};
/// The fault-injecting store every [`TestApp`] runs on (it lives beside the `Store` trait it
/// implements, behind `logbook-store`'s `testing` feature).
pub use logbook_store::testing::FaultyStore;
pub use postgres::fresh_database;
pub use skip::{skip, Needs};
pub use toylog::ToyLog;
pub use wait::{wait_until, within, PATIENCE};
pub use witness::TestWitness;

/// Runs each named test on both stores: `on_both_stores!(a, b)` makes `a::sqlite` and
/// `a::postgres`, … Each test is an `async fn a(app: T)` in the calling module; the app comes
/// from `TestApp::spawn`, or from the fixture given first,
/// `on_both_stores!(fixture = path::to::spawn; a, b)`, an `async fn(Backend) -> Option<T>`.
/// Where PostgreSQL is not reachable the `postgres` case reports its skip and passes (see
/// [`skip`]), unless `LOGBOOK_REQUIRE_POSTGRES` is set.
#[macro_export]
macro_rules! on_both_stores {
    (fixture = $spawn:path; $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let app = $spawn($crate::Backend::Sqlite).await.expect("SQLite is always available");
                    super::$name(app).await
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    // `None` once the skip has been reported.
                    if let Some(app) = $spawn($crate::Backend::Postgres).await {
                        super::$name(app).await
                    }
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $crate::on_both_stores!(fixture = $crate::TestApp::spawn; $($name),*);
    };
}
