//! Hostile HTTP: the real application on port 0 with a fresh store, driven with raw TCP and
//! reqwest — oversized bodies and headers, slow clients, invalid UTF-8, path tricks, a sign-in
//! flood. Every answer is a 4xx (or 429), the server keeps serving others, and no response body
//! collected here contains a stack trace, SQL, a file path or a secret.
//!
//! `HOSTILE_SHOW=1 cargo test -p logbook-server --test hostile -- --nocapture` lists every
//! request with its status and the start of its body.

#![allow(clippy::unwrap_used)]

mod helpers;

mod costly;
mod encoding;
mod flood;
mod limits;
mod shutdown;
mod slow_clients;
mod transport;
