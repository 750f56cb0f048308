//! The application driven like a client: the real server on port 0, a fresh store per test,
//! each test on both stores (`logbook_test_support::on_both_stores!`). One test binary, one
//! module per feature.

#![allow(clippy::unwrap_used)]

mod helpers;

mod api_tokens;
mod console;
mod export;
mod ingest;
mod integrity_mark;
mod invitations;
mod lifecycle;
mod login_csrf;
mod openapi;
mod proofs;
mod protected_users;
mod query;
mod role_matrix;
mod self_check;
mod sessions;
mod settings;
mod users;
mod witnesses;
mod your_sessions;
